# Real AWS clients against awssim: Debian's awscli and python3-boto3 drive
# every operation the simulator serves (tests/clients/README.md). Three
# tests, each starting its own awssim on a free port:
#   clients.boto3   boto3 through STS, S3, CloudFormation, CUR, Organizations
#   clients.awscli  the aws command line, output and exit codes
#   clients.moto    the S3, STS and CloudFormation checks against awssim and
#                   moto (OB_TEST_MOTO_URL, else moto_server from the deps venv)
# Exit 77 (skipped) when a client or moto is missing, unless
# OB_TEST_REQUIRE_SERVICES=1 makes that a failure.
set(OB_CLIENTS_PY ${CMAKE_CURRENT_SOURCE_DIR}/clients/test_awssim_clients.py)
foreach(group boto3 awscli moto)
  if(EXISTS /usr/bin/python3)
    add_test(NAME clients.${group}
      COMMAND /usr/bin/python3 ${OB_CLIENTS_PY} --group ${group})
  else()
    add_test(NAME clients.${group}
      COMMAND sh -c "echo 'clients: /usr/bin/python3 missing'; [ \"$OB_TEST_REQUIRE_SERVICES\" = 1 ] && exit 1; exit 77")
  endif()
  set_tests_properties(clients.${group} PROPERTIES
    ENVIRONMENT "OB_AWSSIM=$<TARGET_FILE:awssim>;PYTHONDONTWRITEBYTECODE=1"
    LABELS integration TIMEOUT 600 SKIP_RETURN_CODE 77)
endforeach()
