# integration.account runs onboardctl check and rebuild after Redis lost its
# data: it needs the tool's path.
target_compile_definitions(itest_account PRIVATE OB_ONBOARDCTL="$<TARGET_FILE:onboardctl>")
add_dependencies(itest_account onboardctl)
