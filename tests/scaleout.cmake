# The scale-out run (tests/scaleout/scaleout.py): 2,000 accounts through the
# four workers as processes, each scenario on its own broker (or cluster of
# three) and Redis, with replicas scaled, rolled and SIGKILLed (also as
# StatefulSet pods that come back under their names), every stage
# autoscaled 1 -> 4 -> 1 on its backlog, the Redis primary SIGKILLed (TLS,
# Sentinel), and a broker SIGKILLed, mid-batch;
# it fails on a duplicate message, a lost account or lag left over. Heavy, so it runs once: not in the sanitizer pass. Its tables
# go to $OB_TEST_SERVICES_DIR, which scripts/test.sh prints.
if(NOT OB_SANITIZE)
  find_package(Python3 COMPONENTS Interpreter REQUIRED)
  add_test(NAME integration.scaleout
    COMMAND sh -c "s=\"\${OB_TEST_SERVICES_DIR:-/tmp}/scaleout-summary.txt\"; \"$0\" \"$1\" --build \"$2\" --scenario baseline,scale,roll,kill,kill-static,autoscale,redis --summary \"$s\" && \"$0\" \"$1\" --build \"$2\" --brokers 3 --scenario broker --summary \"$s\""
            ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/scaleout/scaleout.py ${CMAKE_BINARY_DIR})
  set_tests_properties(integration.scaleout PROPERTIES
    SKIP_RETURN_CODE 77 TIMEOUT 2400 RUN_SERIAL TRUE LABELS "integration;scaleout")
endif()
