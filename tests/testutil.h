/*
 * testutil: helpers shared by the unit and integration tests.
 *
 * Include this instead of <cmocka.h> directly: it pulls in the headers cmocka
 * needs in the right order.
 */
#ifndef OB_TESTUTIL_H
#define OB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Exit code CTest reports as "skipped" (SKIP_RETURN_CODE 77). */
#define OB_TEST_SKIP 77

/* Read a whole file into a NUL-terminated malloc'd buffer; NULL if absent.
 * *len (if not NULL) receives the length without the terminator. */
char *ob_test_read_file(const char *path, size_t *len);

/* Service address from the environment, or NULL. When NULL and
 * OB_TEST_REQUIRE_SERVICES=1, prints why and exits 1; otherwise prints a loud
 * SKIPPED line and exits OB_TEST_SKIP. */
const char *ob_test_service_env(const char *var, const char *what);

#endif
