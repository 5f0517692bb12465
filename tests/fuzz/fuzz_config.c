/*
 * fuzz_config: the settings file parser (lib/base/ob_config.h).
 *
 * The input up to its first NUL byte is a settings file (`key = value`
 * lines); after it come "NAME=value" lines that make up the environment (the
 * real one is never read). Both are loaded into the workers' table
 * (ob_config_load) and into a small table of every type with passthrough
 * kafka.* keys (ob_cfg_load). Properties: a load that succeeds leaves every
 * number within its bounds; everything is released on every path.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ob_config.h"

static fuzz_file_t file;

typedef struct env_s {
    char *text; /* "NAME=value\n..." with each '\n' and the first '=' cut to NUL */
    const char *names[32];
    const char *values[32];
    size_t n;
} env_t;

typedef struct small_s {
    char *name;
    long long count;
    int flag;
    long long wait_ms;
    long long size;
} small_t;

static const ob_cfg_def_t small_table[] = {
    {"a.name", OB_CFG_STR, "x", 0, 0, offsetof(small_t, name), 0, "a string"},
    {"a.count", OB_CFG_INT, "3", -5, 1000, offsetof(small_t, count), 0, "an integer"},
    {"a.flag", OB_CFG_BOOL, "true", 0, 0, offsetof(small_t, flag), 0, "a flag"},
    {"a.wait", OB_CFG_MS, "30s", 0, 86400000, offsetof(small_t, wait_ms), 0, "a duration"},
    {"a.size", OB_CFG_SIZE, "8M", 1, 1LL << 40, offsetof(small_t, size), 1, "a size"},
};
#define SMALL_N (sizeof(small_table) / sizeof(small_table[0]))

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    fuzz_file_init(&file);
    return 0;
}

static const char *env_get(const char *name, void *ctx)
{
    const env_t *env = ctx;
    for (size_t i = 0; i < env->n; i++)
        if (strcmp(env->names[i], name) == 0)
            return env->values[i];
    return NULL;
}

static void env_parse(env_t *env, const char *p, size_t len)
{
    env->text = fuzz_strndup(p, len);
    env->n = 0;
    for (char *line = env->text; line && *line && env->n < 32;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            env->names[env->n] = line;
            env->values[env->n] = eq + 1;
            env->n++;
        }
        line = next;
    }
}

static void check_bounds(const ob_cfg_def_t *table, size_t n, const void *target)
{
    for (size_t i = 0; i < n; i++) {
        const ob_cfg_def_t *d = &table[i];
        const char *field = (const char *)target + d->offset;
        if (d->type == OB_CFG_STR) {
            if (!*(char *const *)field)
                fuzz_fail("%s: no string after a successful load", d->name);
        } else if (d->type == OB_CFG_BOOL) {
            int v = *(const int *)field;
            if (v != 0 && v != 1)
                fuzz_fail("%s: flag %d", d->name, v);
        } else {
            long long v = *(const long long *)field;
            if (v < d->min || v > d->max)
                fuzz_fail("%s: %lld outside [%lld, %lld]", d->name, v, d->min, d->max);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t flen = nul ? (size_t)(nul - data) : size;
    env_t env;
    env_parse(&env, nul ? (const char *)nul + 1 : "", nul ? size - flen - 1 : 0);
    fuzz_file_set(&file, data, flen);

    char errstr[512];
    ob_config_t cfg;
    if (ob_config_load(&cfg, file.path, env_get, &env, errstr, sizeof(errstr)) == OB_OK) {
        check_bounds(ob_config_table, ob_config_table_len, &cfg);
        ob_config_free(&cfg);
    }

    small_t small;
    ob_cfg_kv_t kafka = {0};
    memset(&small, 0, sizeof(small));
    if (ob_cfg_load(small_table, SMALL_N, &small, file.path, env_get, &env, &kafka, errstr,
                    sizeof(errstr)) == OB_OK) {
        check_bounds(small_table, SMALL_N, &small);
        for (size_t i = 0; i < kafka.n; i++)
            if (ob_cfg_kv_get(&kafka, kafka.keys[i]) == NULL)
                fuzz_fail("kafka.%s collected but not found", kafka.keys[i]);
    }
    ob_cfg_free(small_table, SMALL_N, &small);
    ob_cfg_kv_free(&kafka);

    /* Without a place for kafka.* keys they are refused, never leaked. */
    memset(&small, 0, sizeof(small));
    (void)ob_cfg_load(small_table, SMALL_N, &small, file.path, env_get, &env, NULL, errstr,
                      sizeof(errstr));
    ob_cfg_free(small_table, SMALL_N, &small);
    free(env.text);
    return 0;
}
