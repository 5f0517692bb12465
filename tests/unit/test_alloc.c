/*
 * ob_alloc: the out-of-memory policy. An allocation that cannot be had
 * stops the process with a line saying so (it never returns NULL to a
 * caller that would then skip work); what can be had is zeroed, copied and
 * resized as the C library's functions do. The third-party libraries that
 * take allocators (jansson, hiredis, curl) are given these.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ob_alloc.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* Run fn in a child with stderr captured; its status and what it said. */
static int in_child(void (*fn)(void), char *said, size_t n)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fds[0], said + got, n - 1 - got)) > 0)
        got += (size_t)r;
    said[got] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void huge_malloc(void)
{
    volatile size_t n = SIZE_MAX / 2;
    char *p = ob_malloc(n);
    /* Not reached: had it returned, the caller would go on with NULL. */
    printf("%p\n", (void *)p);
}

static void huge_calloc(void)
{
    volatile size_t n = SIZE_MAX / 4;
    void *p = ob_calloc(n, 2);
    printf("%p\n", p);
}

static void huge_realloc(void)
{
    void *p = ob_malloc(16);
    volatile size_t n = SIZE_MAX / 2;
    p = ob_realloc(p, n);
    printf("%p\n", p);
}

static void expect_stop(void (*fn)(void))
{
    char said[4096];
    int status = in_child(fn, said, sizeof(said));
    /* Never a normal exit: the child did not go on without the memory. */
    assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (UNDER_ASAN) {
        /* AddressSanitizer's allocator refuses first, and stops the process itself. */
        return;
    }
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(said, "out of memory"));
    assert_non_null(strstr(said, "stopping"));
}

static void test_failure_stops_the_process(void **state)
{
    (void)state;
    expect_stop(huge_malloc);
    expect_stop(huge_calloc);
    expect_stop(huge_realloc);
}

static void test_what_can_be_had(void **state)
{
    (void)state;
    unsigned char *z = ob_calloc(64, 4);
    for (int i = 0; i < 256; i++)
        assert_int_equal(z[i], 0);
    z = ob_realloc(z, 4096);
    z[4095] = 7;
    assert_null(ob_realloc(z, 0)); /* freed, as realloc(p, 0) may */
    char *d = ob_strdup("account 123456789012");
    assert_string_equal(d, "account 123456789012");
    free(d);
    d = ob_strndup("123456789012-extra", 12);
    assert_string_equal(d, "123456789012");
    free(d);
    d = ob_strndup("short", 100);
    assert_string_equal(d, "short");
    free(d);
    free(ob_malloc(0)); /* a real pointer, never NULL */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure_stops_the_process),
        cmocka_unit_test(test_what_can_be_had),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
