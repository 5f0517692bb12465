# One CTest test per case of the AWS SigV4 test suite (${OB_SIGV4_SUITE}, in
# shared/testdata; the files are read in place, never copied). A case is a
# directory holding NAME/NAME.req; nested groups (normalize-path/*,
# post-sts-token/*) are found too. Tests are named sigv4.<relative dir>.
add_executable(sigv4_vector ${CMAKE_CURRENT_SOURCE_DIR}/sigv4/sigv4_vector.c)
target_link_libraries(sigv4_vector PRIVATE obtestutil)

set(_ob_sigv4_cases "")
if(IS_DIRECTORY "${OB_SIGV4_SUITE}")
  file(GLOB_RECURSE _ob_sigv4_reqs CONFIGURE_DEPENDS LIST_DIRECTORIES false
    "${OB_SIGV4_SUITE}/*.req")
  foreach(req ${_ob_sigv4_reqs})
    get_filename_component(dir "${req}" DIRECTORY)
    get_filename_component(dname "${dir}" NAME)
    get_filename_component(fname "${req}" NAME_WE)
    if(fname STREQUAL dname)
      list(APPEND _ob_sigv4_cases "${dir}")
    endif()
  endforeach()
endif()

if(_ob_sigv4_cases)
  list(SORT _ob_sigv4_cases)
  foreach(dir ${_ob_sigv4_cases})
    file(RELATIVE_PATH rel "${OB_SIGV4_SUITE}" "${dir}")
    add_test(NAME sigv4.${rel} COMMAND sigv4_vector "${dir}")
    set_tests_properties(sigv4.${rel} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 30 LABELS sigv4)
  endforeach()
else()
  message(WARNING "AWS SigV4 test suite not found at ${OB_SIGV4_SUITE}; "
                  "registering the skipped test sigv4.vectors_missing")
  add_test(NAME sigv4.vectors_missing COMMAND sigv4_vector --missing "${OB_SIGV4_SUITE}")
  set_tests_properties(sigv4.vectors_missing PROPERTIES SKIP_RETURN_CODE 77 LABELS sigv4)
endif()
