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
  # onboard-lifecycle's normal paths: integration.lifecycle's watcher and
  # periodic-verification tests with each replica under memcheck; a replica
  # stopped with SIGTERM must exit 0, so an error or a leak fails the test.
  add_test(NAME valgrind.lifecycle COMMAND itest_lifecycle)
  set_property(TEST valgrind.lifecycle PROPERTY ENVIRONMENT
    "OB_AWSSIM=$<TARGET_FILE:awssim>" "OB_TEST_ONLY=test_watcher,test_periodic_verify"
    "OB_TEST_FLEET_WRAPPER=${OB_VALGRIND} --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect")
  set_tests_properties(valgrind.lifecycle PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900
    LABELS "integration;valgrind")
  # onboard-lag-exporter's normal paths: integration.metrics's exporter test
  # with the exporter under memcheck (stopped with SIGTERM, it must exit 0).
  add_test(NAME valgrind.lag_exporter COMMAND itest_metrics)
  set_property(TEST valgrind.lag_exporter PROPERTY ENVIRONMENT
    "OB_AWSSIM=$<TARGET_FILE:awssim>" "OB_TEST_ONLY=test_lag_exporter"
    "OB_TEST_FLEET_WRAPPER=${OB_VALGRIND} --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect")
  set_tests_properties(valgrind.lag_exporter PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
    LABELS "integration;valgrind")
elseif(NOT OB_VALGRIND)
  message(WARNING "valgrind not found: the valgrind.* tests are not registered")
endif()
