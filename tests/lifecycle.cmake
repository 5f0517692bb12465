# integration.lifecycle offboards accounts with onboardctl, feeds the example
# AWS events to the intake and runs the onboard-lifecycle process (the
# watcher, the periodic verification) as processes of their own: it needs
# the executables' paths and the examples.
target_compile_definitions(itest_lifecycle PRIVATE OB_ONBOARDCTL="$<TARGET_FILE:onboardctl>"
  OB_LIFECYCLE_BIN="$<TARGET_FILE:onboard-lifecycle>"
  OB_EVENTS="${PROJECT_SOURCE_DIR}/proto/examples/aws-events")
add_dependencies(itest_lifecycle onboardctl onboard-lifecycle)
