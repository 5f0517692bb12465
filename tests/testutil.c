/*
 * testutil: file reading and service discovery for the tests.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *ob_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

const char *ob_test_service_env(const char *var, const char *what)
{
    const char *v = getenv(var);
    if (v && *v)
        return v;
    const char *req = getenv("OB_TEST_REQUIRE_SERVICES");
    if (req && strcmp(req, "1") == 0) {
        fprintf(stderr, "FAILED: %s is required (OB_TEST_REQUIRE_SERVICES=1) but %s is not set\n",
                what, var);
        exit(1);
    }
    fprintf(stderr, "SKIPPED: %s not available (%s is not set); run scripts/test.sh\n", what, var);
    exit(OB_TEST_SKIP);
}
