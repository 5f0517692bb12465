/*
 * ob_awsconfig: a line parser that reproduces configparser.RawConfigParser as
 * botocore drives it, plus botocore's section naming and profile merging.
 *
 * Each file is read whole (bounded by OB_AWSCONFIG_MAX_FILE) and parsed line
 * by line. A key line opens a "pending" value that later, more deeply
 * indented lines extend (blank lines inside are kept, comment lines skipped);
 * when the next key, section or end of file closes it, the joined value is
 * right-trimmed and, if it starts with a line break, parsed as a nested
 * sub-section. Sections are kept in file order with the file they came from;
 * lookups walk them backwards so that the last section naming a profile wins,
 * and try the credentials file before the config file.
 */
#include "ob_awsconfig.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ob_alloc.h"
#include "ob_buf.h"

#define KIND_OTHER (-1)

typedef struct kv_s {
    char *key;
    char *value;      /* NULL for a nested sub-section */
    struct kv_s *sub; /* nested entries */
    size_t nsub;
} kv_t;

typedef struct sect_s {
    int from_credentials;
    int kind;   /* ob_awsconfig_kind_t or KIND_OTHER */
    char *raw;  /* the text between the brackets */
    char *name; /* profile / session / services name; NULL for KIND_OTHER */
    kv_t *kv;
    size_t n, cap;
} sect_t;

struct ob_awsconfig_s {
    sect_t *s;
    size_t n, cap;
    char *profile;
};

/* ---- environment and paths ----------------------------------------------- */

const char *ob_awsconfig_getenv(ob_getenv_fn getenv_fn, void *ctx, const char *name)
{
    const char *v = getenv_fn ? getenv_fn(name, ctx) : getenv(name);
    return v && *v ? v : NULL;
}

/* Expand a leading "~" or "~user" as os.path.expanduser does. OB_ERR_NOT_FOUND
 * when there is no home directory to expand to. */
static ob_err_t expand_home(const char *path, ob_getenv_fn getenv_fn, void *ctx, char **out)
{
    *out = NULL;
    if (path[0] != '~') {
        *out = ob_strdup(path);
        return *out ? OB_OK : OB_ERR_NOMEM;
    }
    size_t ulen = strcspn(path + 1, "/");
    const char *rest = path + 1 + ulen;
    const char *home = ulen == 0 ? ob_awsconfig_getenv(getenv_fn, ctx, "HOME") : NULL;
    char *pwbuf = NULL;
    if (!home) {
        size_t bufsz = 16384;
        struct passwd pw, *res = NULL;
        pwbuf = ob_malloc(bufsz);
        if (!pwbuf)
            return OB_ERR_NOMEM;
        if (ulen == 0) {
            getpwuid_r(getuid(), &pw, pwbuf, bufsz, &res);
        } else {
            char user[256];
            if (ulen < sizeof(user)) {
                memcpy(user, path + 1, ulen);
                user[ulen] = '\0';
                getpwnam_r(user, &pw, pwbuf, bufsz, &res);
            }
        }
        if (res && res->pw_dir && *res->pw_dir)
            home = res->pw_dir;
    }
    ob_err_t err = OB_ERR_NOT_FOUND;
    if (home) {
        size_t hl = strlen(home);
        while (hl > 1 && home[hl - 1] == '/' && *rest == '/')
            hl--;
        size_t rl = strlen(rest);
        *out = ob_malloc(hl + rl + 1);
        if (*out) {
            memcpy(*out, home, hl);
            memcpy(*out + hl, rest, rl + 1);
        }
        err = *out ? OB_OK : OB_ERR_NOMEM;
    }
    free(pwbuf);
    return err;
}

/* Read a whole file. A file that does not exist leaves *text NULL. */
static ob_err_t read_text(const char *path, char **text, size_t *len, char *errstr,
                          size_t errstr_size)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            return OB_OK;
        return ob_errf(errstr, errstr_size, OB_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    char *buf = ob_malloc(OB_AWSCONFIG_MAX_FILE + 2);
    if (!buf) {
        fclose(f);
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    }
    errno = 0;
    size_t n = fread(buf, 1, OB_AWSCONFIG_MAX_FILE + 1, f);
    int failed = ferror(f), saved = errno;
    fclose(f);
    if (failed) {
        free(buf);
        return ob_errf(errstr, errstr_size, OB_ERR_IO, "cannot read %s: %s", path,
                       saved ? strerror(saved) : "read error");
    }
    if (n > OB_AWSCONFIG_MAX_FILE) {
        free(buf);
        return ob_errf(errstr, errstr_size, OB_ERR_TOO_LARGE, "%s is larger than %d bytes", path,
                       OB_AWSCONFIG_MAX_FILE);
    }
    if (memchr(buf, '\0', n)) {
        free(buf);
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "%s contains NUL bytes", path);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return OB_OK;
}

/* ---- model --------------------------------------------------------------- */

static void kv_free(kv_t *kv)
{
    for (size_t i = 0; i < kv->nsub; i++)
        kv_free(&kv->sub[i]);
    free(kv->sub);
    free(kv->key);
    free(kv->value);
}

void ob_awsconfig_destroy(ob_awsconfig_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++) {
        sect_t *s = &cfg->s[i];
        for (size_t j = 0; j < s->n; j++)
            kv_free(&s->kv[j]);
        free(s->kv);
        free(s->raw);
        free(s->name);
    }
    free(cfg->s);
    free(cfg->profile);
    free(cfg);
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static char *strndup_trim(const char *s, size_t n)
{
    while (n && is_ws((unsigned char)*s))
        s++, n--;
    while (n && is_ws((unsigned char)s[n - 1]))
        n--;
    return ob_strndup(s, n);
}

/* shlex.split() of a section header, enough for "profile NAME" and
 * "profile 'my name'": returns the number of words (counting stops at 3) and,
 * when there are exactly two, a copy of the second in *second. -1 on
 * unbalanced quotes, -2 on ENOMEM. */
static int split_words(const char *s, char **second)
{
    int words = 0;
    *second = NULL;
    const char *p = s;
    while (*p) {
        while (is_ws((unsigned char)*p))
            p++;
        if (!*p)
            break;
        size_t cap = strlen(p) + 1, n = 0;
        char *w = ob_malloc(cap);
        if (!w) {
            free(*second);
            *second = NULL;
            return -2;
        }
        while (*p && !is_ws((unsigned char)*p)) {
            char q = *p;
            if (q == '\'' || q == '"') {
                const char *end = strchr(p + 1, q);
                if (!end) {
                    free(w);
                    free(*second);
                    *second = NULL;
                    return -1;
                }
                memcpy(w + n, p + 1, (size_t)(end - p - 1));
                n += (size_t)(end - p - 1);
                p = end + 1;
            } else if (q == '\\' && p[1]) {
                w[n++] = p[1];
                p += 2;
            } else {
                w[n++] = *p++;
            }
        }
        w[n] = '\0';
        if (++words == 2)
            *second = w;
        else
            free(w);
        if (words > 2)
            break;
    }
    if (words != 2) {
        free(*second);
        *second = NULL;
    }
    return words;
}

/* Config-file section header -> kind and name (botocore's build_profile_map). */
static ob_err_t classify(const char *raw, int *kind, char **name)
{
    static const struct {
        const char *prefix;
        int kind;
    } kinds[] = {{"profile", OB_AWSCONFIG_PROFILE},
                 {"sso-session", OB_AWSCONFIG_SSO_SESSION},
                 {"services", OB_AWSCONFIG_SERVICES}};
    *kind = KIND_OTHER;
    *name = NULL;
    if (strcmp(raw, "default") == 0) {
        *kind = OB_AWSCONFIG_PROFILE;
        *name = ob_strdup("default");
        return *name ? OB_OK : OB_ERR_NOMEM;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t pl = strlen(kinds[i].prefix);
        if (strncmp(raw, kinds[i].prefix, pl) != 0 || !is_ws((unsigned char)raw[pl]))
            continue;
        char *second;
        int words = split_words(raw, &second);
        if (words == -2)
            return OB_ERR_NOMEM;
        if (words == 2) {
            *kind = kinds[i].kind;
            *name = second;
        }
        return OB_OK;
    }
    return OB_OK;
}

/* ---- parser -------------------------------------------------------------- */

typedef struct parser_s {
    ob_awsconfig_t *cfg;
    const char *path;
    int creds;
    size_t first;  /* index of this file's first section */
    long cur;      /* current section index, -1 before the first */
    long pending;  /* index of the open key in the current section, -1 if none */
    size_t indent; /* indentation of the line that opened the key or section */
    size_t key_line;
    ob_buf_t val;
    char *errstr;
    size_t errstr_size;
} parser_t;

static ob_err_t nomem(parser_t *ps)
{
    return ob_errf(ps->errstr, ps->errstr_size, OB_ERR_NOMEM, "out of memory");
}

/* Split a nested value ("\nk = v\nk2 = v2") into entries. */
static ob_err_t parse_nested(parser_t *ps, kv_t *kv, const char *text)
{
    size_t lines = 1;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    kv->sub = ob_calloc(lines, sizeof(*kv->sub));
    if (!kv->sub)
        return nomem(ps);
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        char *line = strndup_trim(p, len);
        if (!line)
            return nomem(ps);
        if (*line) {
            char *eq = strchr(line, '=');
            if (!eq) {
                free(line);
                return ob_errf(ps->errstr, ps->errstr_size, OB_ERR_PARSE,
                               "%s:%zu: the nested value of '%s' has a line without '='", ps->path,
                               ps->key_line, kv->key);
            }
            kv_t *e = &kv->sub[kv->nsub];
            e->key = strndup_trim(line, (size_t)(eq - line));
            e->value = strndup_trim(eq + 1, strlen(eq + 1));
            if (!e->key || !e->value) {
                free(line);
                kv_free(e);
                memset(e, 0, sizeof(*e));
                return nomem(ps);
            }
            kv->nsub++; /* later duplicates win, as in a dict */
        }
        free(line);
        p += len;
        if (*p)
            p++;
    }
    return OB_OK;
}

static ob_err_t close_pending(parser_t *ps)
{
    if (ps->pending < 0)
        return OB_OK;
    sect_t *s = &ps->cfg->s[ps->cur];
    kv_t *kv = &s->kv[ps->pending];
    ps->pending = -1;
    size_t n = ps->val.len;
    const char *v = ps->val.data ? ps->val.data : "";
    while (n && is_ws((unsigned char)v[n - 1]))
        n--;
    if (n && v[0] == '\n')
        return parse_nested(ps, kv, v);
    kv->value = ob_strndup(v, n);
    return kv->value ? OB_OK : nomem(ps);
}

static ob_err_t open_section(parser_t *ps, const char *raw, size_t rawlen, size_t lineno)
{
    ob_awsconfig_t *cfg = ps->cfg;
    char *r = ob_strndup(raw, rawlen);
    if (!r)
        return nomem(ps);
    for (size_t i = ps->first; i < cfg->n; i++)
        if (strcmp(cfg->s[i].raw, r) == 0) {
            ob_err_t e = ob_errf(ps->errstr, ps->errstr_size, OB_ERR_PARSE,
                                 "%s:%zu: section [%s] appears twice", ps->path, lineno, r);
            free(r);
            return e;
        }
    if (cfg->n == cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap * 2 : 8;
        sect_t *s = ob_realloc(cfg->s, cap * sizeof(*s));
        if (!s) {
            free(r);
            return nomem(ps);
        }
        cfg->s = s;
        cfg->cap = cap;
    }
    sect_t *s = &cfg->s[cfg->n];
    memset(s, 0, sizeof(*s));
    s->raw = r;
    s->from_credentials = ps->creds;
    ob_err_t err;
    if (ps->creds) {
        s->kind = OB_AWSCONFIG_PROFILE;
        s->name = ob_strdup(r);
        err = s->name ? OB_OK : OB_ERR_NOMEM;
    } else {
        err = classify(r, &s->kind, &s->name);
    }
    cfg->n++; /* owned by cfg from here on, even on error */
    if (err != OB_OK)
        return nomem(ps);
    ps->cur = (long)cfg->n - 1;
    return OB_OK;
}

static ob_err_t open_key(parser_t *ps, const char *line, size_t lineno)
{
    size_t klen = strcspn(line, "=:");
    if (!line[klen])
        return ob_errf(ps->errstr, ps->errstr_size, OB_ERR_PARSE,
                       "%s:%zu: expected 'key = value' or a [section]", ps->path, lineno);
    char *key = strndup_trim(line, klen);
    if (!key)
        return nomem(ps);
    if (!*key) {
        free(key);
        return ob_errf(ps->errstr, ps->errstr_size, OB_ERR_PARSE, "%s:%zu: empty key", ps->path,
                       lineno);
    }
    for (char *c = key; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    sect_t *s = &ps->cfg->s[ps->cur];
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->kv[i].key, key) == 0) {
            ob_err_t e =
                ob_errf(ps->errstr, ps->errstr_size, OB_ERR_PARSE,
                        "%s:%zu: key '%s' appears twice in [%s]", ps->path, lineno, key, s->raw);
            free(key);
            return e;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        kv_t *kv = ob_realloc(s->kv, cap * sizeof(*kv));
        if (!kv) {
            free(key);
            return nomem(ps);
        }
        s->kv = kv;
        s->cap = cap;
    }
    memset(&s->kv[s->n], 0, sizeof(kv_t));
    s->kv[s->n].key = key;
    ps->pending = (long)s->n++;
    ps->key_line = lineno;
    ob_buf_reset(&ps->val);
    const char *v = line + klen + 1;
    while (is_ws((unsigned char)*v))
        v++;
    return ob_buf_puts(&ps->val, v) == OB_OK ? OB_OK : nomem(ps);
}

static ob_err_t parse_text(parser_t *ps, char *text)
{
    ob_err_t err = OB_OK;
    if ((unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF)
        text += 3;
    size_t lineno = 0;
    for (char *p = text; *p && err == OB_OK;) {
        size_t len = strcspn(p, "\n");
        char *next = p[len] ? p + len + 1 : p + len;
        p[len] = '\0';
        lineno++;

        size_t indent = 0;
        while (p[indent] && is_ws((unsigned char)p[indent]))
            indent++;
        char *line = p + indent;
        size_t llen = strlen(line);
        while (llen && is_ws((unsigned char)line[llen - 1]))
            line[--llen] = '\0';
        p = next;

        if (line[0] == '#' || line[0] == ';')
            continue;
        if (!llen) {
            if (ps->pending >= 0 && ob_buf_putc(&ps->val, '\n') != OB_OK)
                err = nomem(ps);
            continue;
        }
        if (ps->pending >= 0 && indent > ps->indent) {
            if (ob_buf_putc(&ps->val, '\n') != OB_OK || ob_buf_puts(&ps->val, line) != OB_OK)
                err = nomem(ps);
            continue;
        }
        if ((err = close_pending(ps)) != OB_OK)
            break;
        ps->indent = indent;
        char *close = strrchr(line, ']');
        if (line[0] == '[' && close && close > line + 1)
            err = open_section(ps, line + 1, (size_t)(close - line - 1), lineno);
        else if (ps->cur < 0)
            err = ob_errf(ps->errstr, ps->errstr_size, OB_ERR_PARSE,
                          "%s:%zu: a key before any [section] header", ps->path, lineno);
        else
            err = open_key(ps, line, lineno);
    }
    if (err == OB_OK)
        err = close_pending(ps);
    return err;
}

static ob_err_t load_file(ob_awsconfig_t *cfg, const char *path, int creds, char *errstr,
                          size_t errstr_size)
{
    char *text;
    size_t len;
    ob_err_t err = read_text(path, &text, &len, errstr, errstr_size);
    if (err != OB_OK || !text)
        return err;
    parser_t ps = {
        .cfg = cfg,
        .path = path,
        .creds = creds,
        .first = cfg->n,
        .cur = -1,
        .pending = -1,
        .errstr = errstr,
        .errstr_size = errstr_size,
    };
    err = parse_text(&ps, text);
    ob_buf_free(&ps.val);
    free(text);
    return err;
}

static ob_err_t new_config(ob_awsconfig_t **out, const char *profile)
{
    *out = ob_calloc(1, sizeof(**out));
    if (!*out)
        return OB_ERR_NOMEM;
    (*out)->profile = ob_strdup(profile);
    if (!(*out)->profile) {
        free(*out);
        *out = NULL;
        return OB_ERR_NOMEM;
    }
    return OB_OK;
}

ob_err_t ob_awsconfig_load_files(const char *config_path, const char *credentials_path,
                                 ob_awsconfig_t **out, char *errstr, size_t errstr_size)
{
    if (!out)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "awsconfig: out is NULL");
    *out = NULL;
    ob_awsconfig_t *cfg;
    if (new_config(&cfg, "default") != OB_OK)
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    ob_err_t err = OB_OK;
    if (config_path)
        err = load_file(cfg, config_path, 0, errstr, errstr_size);
    if (err == OB_OK && credentials_path)
        err = load_file(cfg, credentials_path, 1, errstr, errstr_size);
    if (err != OB_OK) {
        ob_awsconfig_destroy(cfg);
        return err;
    }
    *out = cfg;
    return OB_OK;
}

/* The path named by `var`, or the default; NULL *path with OB_OK when the
 * default cannot be expanded (no home directory: no file). */
static ob_err_t file_path(ob_getenv_fn getenv_fn, void *ctx, const char *var, const char *fallback,
                          char **path, char *errstr, size_t errstr_size)
{
    const char *v = ob_awsconfig_getenv(getenv_fn, ctx, var);
    ob_err_t err = expand_home(v ? v : fallback, getenv_fn, ctx, path);
    if (err == OB_ERR_NOT_FOUND)
        return v ? ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s=%s: cannot expand '~' (no home directory)", var, v)
                 : OB_OK;
    return err == OB_OK ? OB_OK : ob_errf(errstr, errstr_size, err, "out of memory");
}

ob_err_t ob_awsconfig_load(ob_getenv_fn getenv_fn, void *ctx, ob_awsconfig_t **out, char *errstr,
                           size_t errstr_size)
{
    if (!out)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "awsconfig: out is NULL");
    *out = NULL;
    char *conf = NULL, *creds = NULL;
    ob_err_t err =
        file_path(getenv_fn, ctx, "AWS_CONFIG_FILE", "~/.aws/config", &conf, errstr, errstr_size);
    if (err == OB_OK)
        err = file_path(getenv_fn, ctx, "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", &creds,
                        errstr, errstr_size);
    ob_awsconfig_t *cfg = NULL;
    if (err == OB_OK)
        err = ob_awsconfig_load_files(conf, creds, &cfg, errstr, errstr_size);

    const char *var = "AWS_PROFILE";
    const char *profile = ob_awsconfig_getenv(getenv_fn, ctx, var);
    if (!profile)
        profile = ob_awsconfig_getenv(getenv_fn, ctx, var = "AWS_DEFAULT_PROFILE");
    if (err == OB_OK && profile) {
        char *copy = ob_strdup(profile);
        if (!copy) {
            err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        } else {
            free(cfg->profile);
            cfg->profile = copy;
            if (!ob_awsconfig_has(cfg, OB_AWSCONFIG_PROFILE, profile))
                err = ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                              "profile '%s' (from %s) is in neither %s nor %s", profile, var,
                              conf ? conf : "the config file",
                              creds ? creds : "the credentials file");
        }
    }
    free(conf);
    free(creds);
    if (err != OB_OK) {
        ob_awsconfig_destroy(cfg);
        return err;
    }
    *out = cfg;
    return OB_OK;
}

/* ---- lookups ------------------------------------------------------------- */

const char *ob_awsconfig_profile(const ob_awsconfig_t *cfg)
{
    return cfg ? cfg->profile : "default";
}

static const sect_t *find_section(const ob_awsconfig_t *cfg, int kind, const char *name,
                                  int from_credentials)
{
    for (size_t i = cfg->n; i-- > 0;) {
        const sect_t *s = &cfg->s[i];
        if (s->kind == kind && s->from_credentials == from_credentials &&
            strcmp(s->name, name) == 0)
            return s;
    }
    return NULL;
}

static const kv_t *find_kv(const sect_t *s, const char *key)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (strcasecmp(s->kv[i].key, key) == 0)
            return &s->kv[i];
    return NULL;
}

int ob_awsconfig_has(const ob_awsconfig_t *cfg, ob_awsconfig_kind_t kind, const char *name)
{
    if (!cfg || !name)
        return 0;
    return find_section(cfg, (int)kind, name, 0) ||
           (kind == OB_AWSCONFIG_PROFILE && find_section(cfg, (int)kind, name, 1));
}

const char *ob_awsconfig_section_get(const ob_awsconfig_t *cfg, ob_awsconfig_kind_t kind,
                                     const char *name, const char *sub, const char *key)
{
    if (!cfg || !key)
        return NULL;
    if (!name) {
        if (kind != OB_AWSCONFIG_PROFILE)
            return NULL;
        name = cfg->profile;
    }
    const kv_t *kv = NULL;
    if (kind == OB_AWSCONFIG_PROFILE)
        kv = find_kv(find_section(cfg, (int)kind, name, 1), sub ? sub : key);
    if (!kv)
        kv = find_kv(find_section(cfg, (int)kind, name, 0), sub ? sub : key);
    if (!kv)
        return NULL;
    if (!sub)
        return kv->value;
    if (kv->value) /* a plain value where a sub-section was expected */
        return NULL;
    const char *found = NULL;
    for (size_t i = 0; i < kv->nsub; i++)
        if (strcmp(kv->sub[i].key, key) == 0)
            found = kv->sub[i].value;
    return found;
}

const char *ob_awsconfig_get(const ob_awsconfig_t *cfg, const char *profile, const char *key)
{
    return ob_awsconfig_section_get(cfg, OB_AWSCONFIG_PROFILE, profile, NULL, key);
}

const char *ob_awsconfig_get_sub(const ob_awsconfig_t *cfg, const char *profile,
                                 const char *section, const char *key)
{
    if (!section)
        return NULL;
    return ob_awsconfig_section_get(cfg, OB_AWSCONFIG_PROFILE, profile, section, key);
}
