# The deployment check: the Helm chart (lint, render, Kubernetes and CRD
# validation, schema, alerts), docker-compose.yml, the Prometheus config, the
# topic script and the Dockerfile's build context (scripts/check-deploy.sh).
# Reported skipped (77) when its tools are missing, unless
# OB_TEST_REQUIRE_SERVICES=1. The first run builds helm from the Go module
# proxy into ~/.cache/onboard, hence the long timeout.
add_test(NAME integration.deploy COMMAND ${CMAKE_SOURCE_DIR}/scripts/check-deploy.sh)
set_tests_properties(integration.deploy PROPERTIES
  SKIP_RETURN_CODE 77
  LABELS integration
  TIMEOUT 900)
