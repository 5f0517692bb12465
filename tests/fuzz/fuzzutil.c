/*
 * fuzzutil: helpers shared by the fuzz targets (see fuzz.h).
 */
#include "fuzz.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ob_log.h"

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: property broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void fuzz_quiet(void)
{
    ob_log_set_level(OB_LOG_OFF);
}

void fuzz_file_init(fuzz_file_t *f)
{
    f->fd = memfd_create("fuzz-input", MFD_CLOEXEC);
    if (f->fd < 0)
        fuzz_fail("memfd_create: %s", strerror(errno));
    snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
}

void fuzz_file_set(fuzz_file_t *f, const void *data, size_t len)
{
    if (ftruncate(f->fd, 0) != 0)
        fuzz_fail("ftruncate: %s", strerror(errno));
    const char *p = data;
    off_t off = 0;
    while (len > 0) {
        ssize_t n = pwrite(f->fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fuzz_fail("pwrite: %s", strerror(errno));
        p += n;
        off += n;
        len -= (size_t)n;
    }
}

char *fuzz_strndup(const void *data, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        abort();
    if (len)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}
