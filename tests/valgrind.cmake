# The workers' normal paths under valgrind: each stage's integration test
# (the worker runs in the test's process against the real broker, Redis and
# awssim) with memcheck, failing on any memory error or definite/indirect
# leak. Not in sanitizer builds (ASan and valgrind exclude each other).
find_program(OB_VALGRIND valgrind)
if(OB_VALGRIND AND NOT OB_SANITIZE)
  foreach(stage bucket cur iam connect)
    add_test(NAME valgrind.worker_${stage}
      COMMAND ${OB_VALGRIND} --quiet --error-exitcode=99 --leak-check=full
              --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
              $<TARGET_FILE:itest_worker_${stage}>)
    set_property(TEST valgrind.worker_${stage} PROPERTY ENVIRONMENT
      "OB_AWSSIM=$<TARGET_FILE:awssim>")
    set_tests_properties(valgrind.worker_${stage} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
      LABELS "integration;valgrind")
  endforeach()
  # A fleet process under memcheck, run by an integration test's OB_TEST_ONLY
  # tests (OB_TEST_FLEET_WRAPPER); stopped with SIGTERM it must exit 0, so an
  # error or a leak fails the test.
  function(ob_valgrind_process name itest only timeout)
    add_test(NAME valgrind.${name} COMMAND ${itest})
    set_property(TEST valgrind.${name} PROPERTY ENVIRONMENT
      "OB_AWSSIM=$<TARGET_FILE:awssim>" "OB_TEST_ONLY=${only}"
      "OB_TEST_FLEET_WRAPPER=${OB_VALGRIND} --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect")
    set_tests_properties(valgrind.${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT ${timeout}
      LABELS "integration;valgrind")
  endfunction()
  # onboard-lifecycle: the watcher and the periodic verification, each replica.
  ob_valgrind_process(lifecycle itest_lifecycle "test_watcher,test_periodic_verify" 900)
  # onboard-lag-exporter: integration.metrics's exporter test.
  ob_valgrind_process(lag_exporter itest_metrics test_lag_exporter 600)
elseif(NOT OB_VALGRIND)
  message(WARNING "valgrind not found: the valgrind.* tests are not registered")
endif()
