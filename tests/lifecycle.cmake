# integration.lifecycle offboards accounts with onboardctl and feeds the example
# AWS events to the intake: it needs the tool's path and the examples.
target_compile_definitions(itest_lifecycle PRIVATE OB_ONBOARDCTL="$<TARGET_FILE:onboardctl>"
  OB_EVENTS="${PROJECT_SOURCE_DIR}/proto/examples/aws-events")
add_dependencies(itest_lifecycle onboardctl)
