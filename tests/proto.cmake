# proto.schemas: every example in proto/examples checked against its JSON
# Schema by a real validator (ajv-cli from npm, installed into the cache
# folder by the script itself). Skipped (77) when npm is missing, unless
# OB_TEST_REQUIRE_SERVICES=1. The C codec's side of the same examples is
# unit.msg (tests/unit/test_msg.c).
add_test(NAME proto.schemas COMMAND ${CMAKE_SOURCE_DIR}/scripts/check-schemas.sh)
set_tests_properties(proto.schemas PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS proto)
