# The chaos run (tests/chaos/chaos.c): the four workers as processes, killed
# and restarted, with the Kafka broker and Redis restarted once and the AWS
# simulator injecting faults; then repair and replay. It restarts the shared
# services, so it runs alone (RUN_SERIAL) with the other integration tests.
add_executable(ob-chaos ${CMAKE_CURRENT_SOURCE_DIR}/chaos/chaos.c)
target_link_libraries(ob-chaos PRIVATE obtestutil)
add_dependencies(ob-chaos onboard-bucket onboard-cur onboard-iam onboard-connect onboard-lifecycle
  onboardctl)
add_test(NAME integration.chaos
  COMMAND ob-chaos --workers $<TARGET_FILE_DIR:onboard-bucket>
          --onboardctl $<TARGET_FILE:onboardctl> --accounts 1000)
set_tests_properties(integration.chaos PROPERTIES
  SKIP_RETURN_CODE 77 TIMEOUT 1800 RUN_SERIAL TRUE LABELS "integration;chaos")
