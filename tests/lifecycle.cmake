# integration.lifecycle offboards accounts with onboardctl: it needs the tool's path.
target_compile_definitions(itest_lifecycle PRIVATE OB_ONBOARDCTL="$<TARGET_FILE:onboardctl>")
add_dependencies(itest_lifecycle onboardctl)
