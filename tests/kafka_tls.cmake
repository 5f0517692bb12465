# The workers and onboardctl over the broker's TLS listener (tests/tools/kafka_tls_test.sh).
add_test(NAME integration.kafka_tls
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tools/kafka_tls_test.sh $<TARGET_FILE:onboardctl>
          $<TARGET_FILE:awssim> $<TARGET_FILE:onboard-bucket>)
set_tests_properties(integration.kafka_tls PROPERTIES
  SKIP_RETURN_CODE 77 TIMEOUT 180 LABELS integration)
