/*
 * fuzz_awsconfig: the AWS shared config and credentials files
 * (lib/aws/ob_awsconfig.h).
 *
 * The input up to its first NUL byte is the config file, the rest (if there
 * is a NUL) the credentials file: a NUL can be in neither, the parser refuses
 * it. After a successful load every section header and key named in the
 * input is looked up (as the profile, in every kind of section, and as a
 * nested key), so the lookups walk what the parser built. Properties: the
 * selected profile is "default"; a section that gives a value is one that
 * ob_awsconfig_has().
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ob_awsconfig.h"

#define MAX_NAMES 16

static fuzz_file_t config_file, credentials_file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    fuzz_file_init(&config_file);
    fuzz_file_init(&credentials_file);
    return 0;
}

/* Section names ("[x]" lines, the "profile " prefix dropped) and keys
 * ("k = v" lines) named in text, trimmed, appended up to cap of each. */
static void collect(const char *text, size_t len, char **sections, size_t *ns, char **keys,
                    size_t *nk, size_t cap)
{
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        const char *l = text + i, *e = text + end;
        while (l < e && isspace((unsigned char)*l))
            l++;
        while (e > l && isspace((unsigned char)e[-1]))
            e--;
        if (l < e && *l == '[' && e[-1] == ']' && *ns < cap) {
            l++;
            e--;
            if ((size_t)(e - l) > 8 && memcmp(l, "profile ", 8) == 0)
                l += 8;
            sections[(*ns)++] = fuzz_strndup(l, (size_t)(e - l));
        } else if (l < e && *nk < cap) {
            const char *sep = l;
            while (sep < e && *sep != '=' && *sep != ':')
                sep++;
            while (sep > l && isspace((unsigned char)sep[-1]))
                sep--;
            if (sep > l)
                keys[(*nk)++] = fuzz_strndup(l, (size_t)(sep - l));
        }
        i = nl ? end + 1 : len;
    }
}

static void lookups(const ob_awsconfig_t *cfg, char **sections, size_t ns, char **keys, size_t nk)
{
    if (strcmp(ob_awsconfig_profile(cfg), "default") != 0)
        fuzz_fail("selected profile \"%s\", not default", ob_awsconfig_profile(cfg));
    for (size_t k = 0; k < nk; k++) {
        (void)ob_awsconfig_get(cfg, NULL, keys[k]);
        (void)ob_awsconfig_get_sub(cfg, NULL, "s3", keys[k]);
    }
    for (size_t s = 0; s < ns; s++) {
        const char *name = sections[s];
        for (int kind = OB_AWSCONFIG_PROFILE; kind <= OB_AWSCONFIG_SERVICES; kind++) {
            int has = ob_awsconfig_has(cfg, (ob_awsconfig_kind_t)kind, name);
            for (size_t k = 0; k < nk; k++) {
                const char *v =
                    ob_awsconfig_section_get(cfg, (ob_awsconfig_kind_t)kind, name, NULL, keys[k]);
                if (v && !has)
                    fuzz_fail("a value in section \"%s\", which does not exist", name);
                for (size_t k2 = 0; k < 4 && k2 < nk && k2 < 4; k2++)
                    (void)ob_awsconfig_section_get(cfg, (ob_awsconfig_kind_t)kind, name, keys[k],
                                                   keys[k2]);
            }
        }
    }
    (void)ob_awsconfig_get(cfg, "default", "region");
    (void)ob_awsconfig_get_sub(cfg, "default", "s3", "addressing_style");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    size_t clen = nul ? (size_t)(nul - text) : size;
    fuzz_file_set(&config_file, text, clen);
    if (nul)
        fuzz_file_set(&credentials_file, nul + 1, size - clen - 1);

    char errstr[512];
    ob_awsconfig_t *cfg = NULL;
    ob_err_t rc = ob_awsconfig_load_files(config_file.path, nul ? credentials_file.path : NULL,
                                          &cfg, errstr, sizeof(errstr));
    if (rc == OB_OK) {
        char *sections[2 * MAX_NAMES], *keys[2 * MAX_NAMES];
        size_t ns = 0, nk = 0;
        collect(text, clen, sections, &ns, keys, &nk, MAX_NAMES);
        if (nul)
            collect(nul + 1, size - clen - 1, sections, &ns, keys, &nk, 2 * MAX_NAMES);
        lookups(cfg, sections, ns, keys, nk);
        for (size_t i = 0; i < ns; i++)
            free(sections[i]);
        for (size_t i = 0; i < nk; i++)
            free(keys[i]);
    } else if (cfg) {
        fuzz_fail("a failed load returned a handle");
    }
    ob_awsconfig_destroy(cfg);
    return 0;
}
