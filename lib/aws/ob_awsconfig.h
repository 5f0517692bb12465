/*
 * ob_awsconfig: the AWS shared config and credentials files, read as the AWS
 * CLI (botocore + Python's configparser) reads them.
 *
 * Files: AWS_CONFIG_FILE (default ~/.aws/config) and
 * AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials); a leading "~" or
 * "~user" is expanded; a missing file is simply empty.
 *
 * Syntax: "[section]" headers; "key = value" or "key: value" lines (the
 * first '=' or ':' splits; keys are lowercased, values trimmed); full-line
 * comments starting with '#' or ';' (there are no inline comments: "a = b #c"
 * has the value "b #c", as in the CLI); a line indented deeper than its key
 * continues that key's value. A key whose first line is empty and which has
 * continuation lines is a nested sub-section of "k = v" lines, e.g.
 *     s3 =
 *       addressing_style = path
 * (nested keys are kept as written, not lowercased). As in the CLI, a
 * duplicated section or key within one file, a line that is neither, or a
 * key line before any section is an error.
 *
 * Sections: in the config file "[default]" and "[profile NAME]" are profiles
 * ("[profile default]" and "[default]" both name "default"; the later one in
 * the file wins), "[sso-session NAME]" and "[services NAME]" are kept for
 * lookups, anything else is ignored. In the credentials file every "[NAME]"
 * is the profile NAME. For a given profile a key in the credentials file takes
 * precedence over the config file (a nested key is replaced as a whole).
 *
 * The profile used when a lookup passes profile == NULL is AWS_PROFILE, else
 * AWS_DEFAULT_PROFILE, else "default"; naming a profile that is in neither
 * file is an error at load time (as the CLI's ProfileNotFound).
 *
 * Environment access goes through an ob_getenv_fn so tests can inject a fake
 * environment; an empty variable counts as unset.
 *
 * Ownership: ob_awsconfig_load() returns a handle the caller frees with
 * ob_awsconfig_destroy(); returned strings belong to the handle and live as
 * long as it does.
 *
 * Thread safety: loading reads the environment (getenv is not thread-safe
 * with setenv). A loaded handle is immutable: lookups may run concurrently.
 */
#ifndef OB_AWSCONFIG_H
#define OB_AWSCONFIG_H

#include <stddef.h>

#include "ob_config.h" /* ob_getenv_fn */
#include "ob_err.h"

/* Environment lookup: value of `name` or NULL. ctx is passed through. */

typedef struct ob_awsconfig_s ob_awsconfig_t;

typedef enum ob_awsconfig_kind_e {
    OB_AWSCONFIG_PROFILE = 0, /* [default], [profile NAME]; credentials [NAME] */
    OB_AWSCONFIG_SSO_SESSION, /* [sso-session NAME] */
    OB_AWSCONFIG_SERVICES     /* [services NAME] */
} ob_awsconfig_kind_t;

/* Largest file accepted (OB_ERR_TOO_LARGE above it). */
#define OB_AWSCONFIG_MAX_FILE (1024 * 1024)

/* Read an environment variable through getenv_fn (NULL: getenv); NULL when
 * unset or empty. */
const char *ob_awsconfig_getenv(ob_getenv_fn getenv_fn, void *ctx, const char *name);

/*
 * Load both files as the environment says. On success *out is a new handle.
 * Errors: OB_ERR_PARSE ("path:line: reason"), OB_ERR_IO (a file exists but
 * cannot be read), OB_ERR_TOO_LARGE, OB_ERR_CONFIG (the selected profile does
 * not exist; "~" cannot be expanded), OB_ERR_NOMEM.
 */
ob_err_t ob_awsconfig_load(ob_getenv_fn getenv_fn, void *ctx, ob_awsconfig_t **out, char *errstr,
                           size_t errstr_size);

/* Load from explicit paths (either may be NULL; no "~" expansion); the
 * selected profile is "default" and need not exist. Same errors. */
ob_err_t ob_awsconfig_load_files(const char *config_path, const char *credentials_path,
                                 ob_awsconfig_t **out, char *errstr, size_t errstr_size);

void ob_awsconfig_destroy(ob_awsconfig_t *cfg);

/* The profile lookups use when passed NULL. Never NULL for a valid handle. */
const char *ob_awsconfig_profile(const ob_awsconfig_t *cfg);

/* Whether a section exists (a profile in either file). cfg may be NULL (0). */
int ob_awsconfig_has(const ob_awsconfig_t *cfg, ob_awsconfig_kind_t kind, const char *name);

/* Plain value of `key` in a profile (NULL: the selected one), credentials file
 * first; NULL when absent or when the key is a nested sub-section. cfg may be
 * NULL (NULL). */
const char *ob_awsconfig_get(const ob_awsconfig_t *cfg, const char *profile, const char *key);

/* Value of `key` inside the nested sub-section `section` of a profile, e.g.
 * ("s3", "addressing_style"). */
const char *ob_awsconfig_get_sub(const ob_awsconfig_t *cfg, const char *profile,
                                 const char *section, const char *key);

/* General lookup in a section of any kind; `sub` NULL for a top-level key.
 * For OB_AWSCONFIG_PROFILE this is ob_awsconfig_get/_get_sub (name NULL means
 * the selected profile); other kinds come from the config file only. */
const char *ob_awsconfig_section_get(const ob_awsconfig_t *cfg, ob_awsconfig_kind_t kind,
                                     const char *name, const char *sub, const char *key);

#endif
