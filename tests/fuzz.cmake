# fuzz.NAME: each fuzz target of tests/fuzz (see tests/fuzz/CMakeLists.txt)
# built with the normal compiler and tests/fuzz/replay.c as its main, which
# runs every file of tests/fuzz/regressions/fuzz_NAME (inputs that once broke
# the target, kept once fixed), tests/fuzz/seeds/fuzz_NAME and the repository
# files its seeds come from through the target once. Fuzzing itself is
# scripts/fuzz.sh (clang, libFuzzer).
file(GLOB _ob_fuzz_targets CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_*.c)

add_library(obfuzzreplay OBJECT ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzzutil.c
                                ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/replay.c)
target_include_directories(obfuzzreplay PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
target_link_libraries(obfuzzreplay PUBLIC obpipeline)

# The repository files each target's seeds come from (scripts/fuzz.sh uses
# the same ones); the AWS SigV4 suite is read in place when it is there.
set(_ob_fuzz_from_msg ${CMAKE_SOURCE_DIR}/proto/examples)
set(_ob_fuzz_from_xml ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/aws)
set(_ob_fuzz_from_awsreply ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/aws)
set(_ob_fuzz_from_awsconfig ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/awsconfig)
set(_ob_fuzz_from_sigv4 ${OB_SIGV4_SUITE})

foreach(src ${_ob_fuzz_targets})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" short ${name})
  add_executable(replay_${name} ${src})
  target_link_libraries(replay_${name} PRIVATE obfuzzreplay)
  add_test(NAME fuzz.${short}
           COMMAND replay_${name} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/regressions/${name}
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/seeds/${name} ${_ob_fuzz_from_${short}})
  set_tests_properties(fuzz.${short} PROPERTIES TIMEOUT 300 LABELS fuzz)
endforeach()
