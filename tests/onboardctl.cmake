# onboardctl against the real Kafka broker and Redis (tests/tools/onboardctl_test.sh).
add_test(NAME integration.onboardctl
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tools/onboardctl_test.sh $<TARGET_FILE:onboardctl>
          $<TARGET_FILE:awssim> $<TARGET_FILE:onboard-bucket>)
set_tests_properties(integration.onboardctl PROPERTIES
  SKIP_RETURN_CODE 77 TIMEOUT 120 LABELS integration)
