/*
 * jemalloc's options for the stage workers that link it (workers/CMakeLists.txt,
 * OB_JEMALLOC): one arena. A worker's work is on its loop's thread, and
 * librdkafka's threads allocate little; one arena keeps the resident memory
 * within a few MiB of glibc's malloc (jemalloc makes four per core by
 * default), at the same CPU (docs/BENCHMARKS.md). MALLOC_CONF in the
 * environment still adds to or overrides it.
 */
const char *malloc_conf = "narenas:1";
