# onboardctl against the real Kafka broker and Redis (tests/tools/onboardctl_test.sh).
add_test(NAME integration.onboardctl
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tools/onboardctl_test.sh $<TARGET_FILE:onboardctl>
          $<TARGET_FILE:awssim> $<TARGET_FILE:onboard-bucket> $<TARGET_FILE:ob-mockkafka>)
set_tests_properties(integration.onboardctl PROPERTIES
  SKIP_RETURN_CODE 77 TIMEOUT 180 LABELS integration)
# Its progress line on a real terminal (tmux), and none in a pipe
# (tests/tools/onboardctl_tty_test.sh; skipped, saying so, without tmux).
add_test(NAME integration.onboardctl_tty
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tools/onboardctl_tty_test.sh $<TARGET_FILE:onboardctl>)
set_tests_properties(integration.onboardctl_tty PROPERTIES
  SKIP_RETURN_CODE 77 TIMEOUT 180 LABELS integration)
