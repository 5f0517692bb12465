/*
 * fuzz.h: what every fuzz target in tests/fuzz defines, and the few helpers
 * they share (fuzzutil.c).
 *
 * A target is one file defining LLVMFuzzerInitialize and
 * LLVMFuzzerTestOneInput. The fuzz build (OB_FUZZ, clang) links it with
 * libFuzzer; the normal build links it with replay.c, a main that runs files
 * through it once (the regression inputs, the seeds). A target must release
 * everything it allocates on every path (libFuzzer runs with leak detection)
 * and calls fuzz_fail() when a property it checks does not hold, so the input
 * is kept as a crash.
 *
 * Threading: one thread; targets keep no state between inputs beyond what
 * LLVMFuzzerInitialize sets up.
 */
#ifndef OB_FUZZ_H
#define OB_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Report a broken property on stderr and abort(). */
_Noreturn void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Quiet the project's logs (parsers log what they refuse). */
void fuzz_quiet(void);

/*
 * An in-memory file that the parsers which take a path can read: fuzz_file_path()
 * names it (/proc/self/fd/N of a memfd), fuzz_file_set() replaces its contents.
 * Opened once per process; never closed (the process ends with it).
 */
typedef struct fuzz_file_s {
    int fd;
    char path[64];
} fuzz_file_t;

/* Create f (abort()s when the system has no memfd). */
void fuzz_file_init(fuzz_file_t *f);
/* Make f hold exactly len bytes of data. */
void fuzz_file_set(fuzz_file_t *f, const void *data, size_t len);

/* A NUL-terminated copy of len bytes of data (free() it). */
char *fuzz_strndup(const void *data, size_t len);

#endif
