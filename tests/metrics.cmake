# integration.metrics runs onboard-lag-exporter as a process of its own.
target_compile_definitions(itest_metrics PRIVATE
  OB_LAG_EXPORTER_BIN="$<TARGET_FILE:onboard-lag-exporter>")
add_dependencies(itest_metrics onboard-lag-exporter)
