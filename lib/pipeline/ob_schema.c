/*
 * ob_schema: load the compiled-in schemas once (checking that they use only
 * the keywords enforced here and compiling every pattern), then validate
 * documents by walking schema and document together. The walk stops at the
 * first problem, reported with the document pointer it was found at.
 */
#include "ob_schema.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_re.h"

#define PTR_LEN   256
#define MAX_PROPS 64 /* members a schema's "properties" may name (checked at load) */

/* ---- the schemas, loaded once ---- */

typedef struct doc_s {
    const char *name;
    json_t *root;
} doc_t;

typedef struct pat_s {
    const json_t *node; /* the "pattern" string of a schema */
    ob_re_t *re;
} pat_t;

/* Every schema object's keywords, looked up once when the schemas load:
 * validation reads a slot, not a hash lookup per keyword per node. */
typedef enum {
    KW_TYPE,
    KW_CONST,
    KW_ENUM,
    KW_MINLENGTH,
    KW_MAXLENGTH,
    KW_PATTERN,
    KW_FORMAT,
    KW_MINIMUM,
    KW_MAXIMUM,
    KW_REQUIRED,
    KW_PROPERTIES,
    KW_ADDITIONALPROPERTIES,
    KW_PROPERTYNAMES,
    KW_MINPROPERTIES,
    KW_MAXPROPERTIES,
    KW_ITEMS,
    KW_MINITEMS,
    KW_MAXITEMS,
    KW_UNIQUEITEMS,
    KW_CONTAINS,
    KW_ALLOF,
    KW_ANYOF,
    KW_ONEOF,
    KW_NOT,
    KW_IF,
    KW_THEN,
    KW_ELSE,
    KW_REF,
    KW_DESCRIPTION,
    KW_WRITEONLY,
    KW__COUNT
} kw_id_t;
static const char *const KW_NAMES[KW__COUNT] = {"type",
                                                "const",
                                                "enum",
                                                "minLength",
                                                "maxLength",
                                                "pattern",
                                                "format",
                                                "minimum",
                                                "maximum",
                                                "required",
                                                "properties",
                                                "additionalProperties",
                                                "propertyNames",
                                                "minProperties",
                                                "maxProperties",
                                                "items",
                                                "minItems",
                                                "maxItems",
                                                "uniqueItems",
                                                "contains",
                                                "allOf",
                                                "anyOf",
                                                "oneOf",
                                                "not",
                                                "if",
                                                "then",
                                                "else",
                                                "$ref",
                                                "description",
                                                "writeOnly"};

typedef struct kw_s {
    const json_t *node;
    const json_t *v[KW__COUNT];
    const ob_re_t *re;        /* the compiled pattern */
    const json_t *target;     /* what $ref names */
    const struct doc_s *tdoc; /* the file that is in */
    int combines;             /* has allOf, anyOf, oneOf or not */
    int simple; /* only required, properties, const, pattern, not, contains (see quick()) */
    /* "properties" as arrays, in order: names, schemas, whether a schema is a
     * const (np 0: none). */
    size_t np;
    const char **pn;
    const json_t **ps;
    unsigned char *pconst;
} kw_t;

static struct {
    kw_t *kws; /* open addressing on the node's address; node NULL: free */
    size_t nkws, capkws;
    doc_t *docs;
    size_t ndocs;
    pat_t *pats;
    size_t npats, cappats;
    char error[512]; /* "" when loaded */
} S;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

/* Names resolved before (see named()). */
#define NAMED 64
static struct {
    pthread_mutex_t lock;
    struct {
        char *name;
        const json_t *node;
        const doc_t *doc;
    } e[NAMED];
    size_t n;
} N = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};

/* Keywords: those whose value is a schema, a list of schemas, a map of
 * schemas, a value the validator reads, and annotations. */
static const char *const SCHEMA_KW[] = {
    "not",           "if", "then", "else", "items", "contains", "additionalProperties",
    "propertyNames", NULL};
static const char *const LIST_KW[] = {"allOf", "anyOf", "oneOf", NULL};
static const char *const MAP_KW[] = {"properties", "$defs", NULL};
static const char *const VALUE_KW[] = {
    "type",        "const",   "enum",     "minLength",     "maxLength",     "pattern",  "format",
    "minimum",     "maximum", "required", "minProperties", "maxProperties", "minItems", "maxItems",
    "uniqueItems", "$ref",    NULL};
static const char *const NOTE_KW[] = {"$schema",     "$id",       "$comment", "title",
                                      "description", "default",   "examples", "deprecated",
                                      "readOnly",    "writeOnly", NULL};

static int in(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (!strcmp(*list, s))
            return 1;
    return 0;
}

static void load_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void load_fail(const char *fmt, ...)
{
    if (S.error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S.error, sizeof(S.error), fmt, ap);
    va_end(ap);
}

/* Check a schema's keywords (recursively) and compile its patterns. */
static void check_schema(const char *file, const char *where, const json_t *s)
{
    if (json_is_boolean(s))
        return;
    if (!json_is_object(s)) {
        load_fail("%s%s: a schema is an object or a boolean", file, where);
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v)
    {
        char at[512];
        snprintf(at, sizeof(at), "%.300s/%.100s", where, k);
        if (in(SCHEMA_KW, k)) {
            check_schema(file, at, v);
        } else if (in(LIST_KW, k)) {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) check_schema(file, at, x);
        } else if (in(MAP_KW, k)) {
            const char *name;
            json_t *x;
            if (!strcmp(k, "properties") && json_object_size(v) > MAX_PROPS)
                load_fail("%s%s: more than %d properties", file, at, MAX_PROPS);
            json_object_foreach(v, name, x)
            {
                char at2[700];
                snprintf(at2, sizeof(at2), "%s/%.100s", at, name);
                check_schema(file, at2, x);
            }
        } else if (!strcmp(k, "pattern")) {
            char err[300];
            ob_re_t *re =
                json_is_string(v) ? ob_re_compile(json_string_value(v), err, sizeof(err)) : NULL;
            if (!re) {
                load_fail("%s%s: %s", file, at, json_is_string(v) ? err : "not a string");
                continue;
            }
            if (S.npats == S.cappats) {
                S.cappats = S.cappats ? 2 * S.cappats : 64;
                S.pats = ob_realloc(S.pats, S.cappats * sizeof(*S.pats));
            }
            S.pats[S.npats++] = (pat_t){v, re};
        } else if (!strcmp(k, "format")) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "date-time") != 0)
                load_fail("%s%s: only the date-time format is enforced", file, at);
        } else if (!in(VALUE_KW, k) && !in(NOTE_KW, k)) {
            load_fail("%s%s: the keyword \"%s\" is not enforced by the codec", file, at, k);
        }
    }
}

static void index_schema(const doc_t *d, const json_t *s);

static void load(void)
{
    size_t n = 0;
    while (ob_proto_files[n].name)
        n++;
    S.docs = ob_calloc(n ? n : 1, sizeof(*S.docs));
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        json_t *root =
            json_loadb(ob_proto_files[i].text, ob_proto_files[i].len, JSON_REJECT_DUPLICATES, &je);
        if (!root) {
            load_fail("%s: %s (line %d)", ob_proto_files[i].name, je.text, je.line);
            continue;
        }
        S.docs[S.ndocs++] = (doc_t){ob_proto_files[i].name, root};
        check_schema(ob_proto_files[i].name, "", root);
    }
    if (!n)
        load_fail("no schemas compiled in");
    for (size_t i = 0; i < S.ndocs && !S.error[0]; i++)
        index_schema(&S.docs[i], S.docs[i].root);
}

static int loaded(void)
{
    pthread_once(&load_once, load);
    return S.error[0] == '\0';
}

void ob_schema_unload(void)
{
    for (size_t i = 0; i < S.ndocs; i++)
        json_decref(S.docs[i].root);
    for (size_t i = 0; i < S.npats; i++)
        ob_re_free(S.pats[i].re);
    free(S.docs);
    free(S.pats);
    for (size_t i = 0; i < S.capkws; i++) {
        free(S.kws[i].pn);
        free(S.kws[i].ps);
        free(S.kws[i].pconst);
    }
    free(S.kws);
    pthread_mutex_lock(&N.lock);
    for (size_t i = 0; i < N.n; i++)
        free(N.e[i].name);
    N.n = 0;
    pthread_mutex_unlock(&N.lock);
    memset(&S, 0, sizeof(S));
    load_once = (pthread_once_t)PTHREAD_ONCE_INIT;
}

static const ob_re_t *pattern_of(const json_t *node)
{
    for (size_t i = 0; i < S.npats; i++)
        if (S.pats[i].node == node)
            return S.pats[i].re;
    return NULL;
}

static const doc_t *doc_named(const char *name, size_t len)
{
    for (size_t i = 0; i < S.ndocs; i++)
        if (strlen(S.docs[i].name) == len && !strncmp(S.docs[i].name, name, len))
            return &S.docs[i];
    return NULL;
}

/* A JSON pointer ("/$defs/x") into a document. */
static const json_t *pointer(const json_t *root, const char *p)
{
    const json_t *cur = root;
    while (cur && *p == '/') {
        p++;
        char tok[256];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof(tok)) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                tok[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else
                tok[n++] = *p++;
        }
        tok[n] = '\0';
        cur = json_is_object(cur) ? json_object_get(cur, tok) : NULL;
    }
    return *p ? NULL : cur;
}

/* "file#/pointer", "#/pointer" (within `within`) or "file". */
static const json_t *resolve(const char *ref, const doc_t *within, const doc_t **doc)
{
    const char *hash = strchr(ref, '#');
    size_t flen = hash ? (size_t)(hash - ref) : strlen(ref);
    const doc_t *d = flen ? doc_named(ref, flen) : within;
    if (!d)
        return NULL;
    *doc = d;
    return hash ? pointer(d->root, hash + 1) : d->root;
}

/* resolve() of a name the codec asks for again and again, remembered (the
 * last NAMED names; a name not remembered is resolved each time). */

static const json_t *named(const char *name, const doc_t **doc)
{
    const json_t *node = NULL;
    pthread_mutex_lock(&N.lock);
    for (size_t i = 0; i < N.n && !node; i++)
        if (!strcmp(N.e[i].name, name)) {
            node = N.e[i].node;
            *doc = N.e[i].doc;
        }
    if (!node && (node = resolve(name, NULL, doc)) && N.n < NAMED) {
        N.e[N.n].name = ob_strdup(name);
        N.e[N.n].node = node;
        N.e[N.n++].doc = *doc;
    }
    pthread_mutex_unlock(&N.lock);
    return node;
}

const json_t *ob_schema_get(const char *name)
{
    const doc_t *d;
    return loaded() ? named(name, &d) : NULL;
}

static uint64_t node_hash(const json_t *node)
{
    uint64_t h = (uint64_t)(uintptr_t)node * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 32); /* the product's high bits, where the address's bits meet */
}

static const kw_t *kw_of(const json_t *node)
{
    if (!S.capkws)
        return NULL;
    for (size_t i = node_hash(node) & (S.capkws - 1);; i = (i + 1) & (S.capkws - 1)) {
        if (S.kws[i].node == node)
            return &S.kws[i];
        if (!S.kws[i].node)
            return NULL;
    }
}

/* A keyword of a schema (NULL: absent). */
static const json_t *kwv(const json_t *s, kw_id_t id)
{
    const kw_t *k = kw_of(s);
    return k ? k->v[id] : json_is_object(s) ? json_object_get(s, KW_NAMES[id]) : NULL;
}

/* A keyword of schema s, whose index entry (or NULL) is ks. */
static inline const json_t *kwk(const kw_t *ks, const json_t *s, kw_id_t id)
{
    return ks ? ks->v[id] : kwv(s, id);
}

static void kw_put(const kw_t *k)
{
    if (2 * (S.nkws + 1) > S.capkws) {
        size_t cap = S.capkws ? 2 * S.capkws : 256;
        kw_t *old = S.kws;
        size_t oldcap = S.capkws;
        S.kws = ob_calloc(cap, sizeof(*S.kws));
        S.capkws = cap;
        S.nkws = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].node)
                kw_put(&old[i]);
        free(old);
    }
    size_t i = node_hash(k->node) & (S.capkws - 1);
    while (S.kws[i].node && S.kws[i].node != k->node)
        i = (i + 1) & (S.capkws - 1);
    if (!S.kws[i].node)
        S.nkws++;
    S.kws[i] = *k;
}

/* Index every schema object of a document (after all are loaded: $ref
 * targets resolve across files). */
static void index_schema(const doc_t *d, const json_t *s)
{
    if (!json_is_object(s) || kw_of(s))
        return;
    kw_t k = {.node = s};
    for (int id = 0; id < KW__COUNT; id++)
        k.v[id] = json_object_get(s, KW_NAMES[id]);
    if (k.v[KW_PATTERN])
        k.re = pattern_of(k.v[KW_PATTERN]);
    k.combines = k.v[KW_ALLOF] || k.v[KW_ANYOF] || k.v[KW_ONEOF] || k.v[KW_NOT];
    static const char *const SIMPLE[] = {"required", "properties",  "const",    "pattern", "not",
                                         "contains", "description", "$comment", NULL};
    k.simple = 1;
    const char *sk;
    json_t *sv;
    json_object_foreach((json_t *)s, sk, sv) k.simple &= in(SIMPLE, sk);
    if (json_is_string(k.v[KW_REF])) {
        k.target = resolve(json_string_value(k.v[KW_REF]), d, &k.tdoc);
    }
    size_t np = json_object_size(k.v[KW_PROPERTIES]);
    if (np && np <= MAX_PROPS) {
        k.pn = ob_calloc(np, sizeof(*k.pn));
        k.ps = ob_calloc(np, sizeof(*k.ps));
        k.pconst = ob_calloc(np, 1);
        const char *pk;
        json_t *pv;
        json_object_foreach((json_t *)k.v[KW_PROPERTIES], pk, pv)
        {
            k.pn[k.np] = pk;
            k.ps[k.np] = pv;
            k.pconst[k.np++] = json_object_get(pv, "const") != NULL;
        }
    }
    kw_put(&k);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)s, key, v)
    {
        if (in(SCHEMA_KW, key)) {
            index_schema(d, v);
        } else if (in(LIST_KW, key)) {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) index_schema(d, x);
        } else if (in(MAP_KW, key)) {
            const char *name;
            json_t *x;
            json_object_foreach(v, name, x) index_schema(d, x);
        }
    }
}

/* ---- validation ---- */

typedef struct ctx_s {
    const doc_t *doc; /* the file the current schema is in (for "#..." refs) */
    const char *desc; /* the schema's description (or its referrer's), for pattern reasons */
    int via_ref;      /* walking the target of a $ref: the referrer's description holds */
    int secret;       /* under a writeOnly schema: never echo the value */
    /* Inside the then/else of a rule that holds: the rule's description
     * ("" when it has none), NULL outside one. A failure there is a
     * combination of members that does not go together, unless it is a
     * member missing, of the wrong type or of the wrong form. */
    const char *rule;
    int quiet; /* only whether it passes matters (an if, a not, an anyOf's other branches) */
    ob_schema_error_t *err;
} ctx_t;

static void reason_of(const char *desc, char *out, size_t n, int must_be);
/* snprintf for text that may be cut on purpose. */
static void vput(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void vput(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}
static int in(const char *const *list, const char *s);
static ob_err_t fail(ctx_t *c, const char *field, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ob_err_t fail(ctx_t *c, const char *field, const char *code, const char *fmt, ...)
{
    if (c->quiet)
        return OB_ERR_PARSE;
    ob_schema_error_t *e = c->err;
    static const char *const KEEP[] = {"missing",       "type",        "pattern",
                                       "unknown_field", "combination", NULL};
    if (c->rule && !in(KEEP, code))
        code = "combination";
    snprintf(e->field, sizeof(e->field), "%s", field);
    snprintf(e->code, sizeof(e->code), "%s", code);
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (c->rule && c->rule[0]) {
        char rule[256];
        reason_of(c->rule, rule, sizeof(rule), 0);
        size_t l = (size_t)snprintf(e->message, sizeof(e->message), "%s: ", field);
        if (l < sizeof(e->message))
            vput(e->message + l, sizeof(e->message) - l, "%s: %s", rule, what);
    } else {
        snprintf(e->message, sizeof(e->message), "%s: %s", field, what);
    }
    return OB_ERR_PARSE;
}

/* The first sentence of a description, lowercased: after "must be " (as a
 * pattern's reason wants it) or as it is (a rule's). */
static void reason_of(const char *desc, char *out, size_t n, int must_be)
{
    if (!desc) {
        snprintf(out, n, "is not of the expected form");
        return;
    }
    size_t len = strcspn(desc, ".");
    while (desc[len] == '.' && desc[len + 1] && desc[len + 1] != ' ')
        len += 1 + strcspn(desc + len + 1, "."); /* "e.g." and the like */
    if (len > 200)
        len = 200;
    snprintf(out, n, "%s%c%.*s", must_be ? "must be " : "",
             must_be ? tolower((unsigned char)desc[0]) : desc[0], (int)len - 1, desc + 1);
}

static void ptr_child(char out[PTR_LEN], const char *base, const char *key)
{
    size_t n = strlen(base);
    if (n > PTR_LEN - 2)
        n = PTR_LEN - 2;
    memmove(out, base, n);
    out[n++] = '/';
    for (; *key && n + 3 < PTR_LEN; key++) {
        if (*key == '~' || *key == '/') {
            out[n++] = '~';
            out[n++] = *key == '~' ? '0' : '1';
        } else
            out[n++] = *key;
    }
    out[n < PTR_LEN ? n : PTR_LEN - 1] = '\0';
}

static void ptr_index(char out[PTR_LEN], const char *base, size_t i)
{
    snprintf(out, PTR_LEN, "%.230s/%zu", base, i);
}

const char *ob_schema_type_of(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction or exponent";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static int is_type(const json_t *j, const char *t)
{
    /* The JSON type names differ in their first two letters. */
    switch (t[0]) {
    case 's':
        return json_is_string(j);
    case 'i':
        return json_is_integer(j);
    case 'o':
        return json_is_object(j);
    case 'a':
        return json_is_array(j);
    case 'b':
        return json_is_boolean(j);
    case 'n':
        return t[1] == 'u' && t[2] == 'm' ? json_is_number(j) : json_is_null(j);
    }
    if (!strcmp(t, "string"))
        return json_is_string(j);
    if (!strcmp(t, "integer"))
        return json_is_integer(j);
    if (!strcmp(t, "number"))
        return json_is_number(j);
    if (!strcmp(t, "boolean"))
        return json_is_boolean(j);
    if (!strcmp(t, "object"))
        return json_is_object(j);
    if (!strcmp(t, "array"))
        return json_is_array(j);
    if (!strcmp(t, "null"))
        return json_is_null(j);
    return 0;
}

static const char *a_type(const char *t)
{
    return !strcmp(t, "string")    ? "a string"
           : !strcmp(t, "integer") ? "an integer"
           : !strcmp(t, "number")  ? "a number"
           : !strcmp(t, "boolean") ? "true or false"
           : !strcmp(t, "object")  ? "an object"
           : !strcmp(t, "array")   ? "an array"
                                   : "null";
}

/* Characters (code points) of valid UTF-8. */
static size_t chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* A value quoted for a message: cut, and never a secret. */
static const char *echo(const ctx_t *c, const json_t *v, char *buf, size_t n)
{
    if (c->quiet)
        return "";
    if (c->secret)
        return "(value not shown)";
    if (!json_is_string(v)) {
        char *d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(buf, n, "%.60s", d ? d : "?");
        free(d);
        return buf;
    }
    const char *s = json_string_value(v);
    size_t len = strlen(s), cut = len > 60 ? 60 : len;
    while (cut < len && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--; /* not inside a character */
    snprintf(buf, n, "\"%.*s%s\"", (int)cut, s, cut < len ? "..." : "");
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = '?';
    return buf;
}

static int days_in(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

/* RFC 3339 date-time whose date and time exist (the pattern checks the shape). */
/* n digits at s as a number; -1 when one is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int real_date_time(const char *s)
{
    /* YYYY-MM-DD[Tt]HH:MM:SS[.F+](Z|z|+HH:MM|-HH:MM) */
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return 0;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo) || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || sec < 0 || sec > 60)
        return 0;
    if (sec == 60 && !(h == 23 && mi == 59)) /* a leap second, as ajv-formats checks it */
        return 0;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z' || *p == 'z')
        return p[1] == '\0';
    if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
    }
    return 0;
}

static ob_err_t walk(ctx_t *c, const json_t *s, const json_t *v, const char *f);
static ob_err_t combinators(ctx_t *c, ctx_t *hp, const kw_t *ks, const json_t *s, const json_t *v,
                            const char *f);

static ob_err_t walk_string(ctx_t *c, const kw_t *ks, const json_t *s, const json_t *v,
                            const char *f)
{
    const char *str = json_string_value(v);
    size_t len = json_string_length(v);
    char q[128];
    const json_t *mn = kwk(ks, s, KW_MINLENGTH), *mx = kwk(ks, s, KW_MAXLENGTH);
    size_t lo = mn ? (size_t)json_integer_value(mn) : 0;
    size_t hi = mx ? (size_t)json_integer_value(mx) : 0;
    /* A character is 1 to 4 bytes: count them only when the byte length
     * does not settle it. */
    size_t n = ((mn && len < 4 * lo) || (mx && len > hi)) ? chars(str, len) : len;
    if ((mn && n < lo) || (mx && n > hi)) {
        if (!mx)
            return fail(c, f, "range", "must be at least %zu characters, got %zu", lo, n);
        if (!mn)
            return fail(c, f, "range", "must be at most %zu characters, got %zu", hi, n);
        return fail(c, f, "range", "must be %zu to %zu characters, got %zu", lo, hi, n);
    }
    const json_t *pat = kwk(ks, s, KW_PATTERN);
    if (pat) {
        const ob_re_t *re = ks ? ks->re : pattern_of(pat);
        if (strlen(str) != len)
            return fail(c, f, "pattern", "contains a NUL character");
        if (re && !ob_re_match(re, str, len)) {
            if (c->rule && c->rule[0]) /* the rule says what the form must be */
                return fail(c, f, "pattern", "got %s", echo(c, v, q, sizeof(q)));
            if (!c->desc)
                return fail(c, f, "pattern", "must match %s, got %s", json_string_value(pat),
                            echo(c, v, q, sizeof(q)));
            char why[256];
            reason_of(c->desc, why, sizeof(why), 1);
            return fail(c, f, "pattern", "%s, got %s", why, echo(c, v, q, sizeof(q)));
        }
    }
    const json_t *fmt = kwk(ks, s, KW_FORMAT);
    if (fmt && !strcmp(json_string_value(fmt), "date-time") && !real_date_time(str))
        return fail(c, f, "pattern", "%s is not a real date and time", echo(c, v, q, sizeof(q)));
    return OB_OK;
}

static ob_err_t walk_number(ctx_t *c, const kw_t *ks, const json_t *s, const json_t *v,
                            const char *f)
{
    double x = json_number_value(v);
    const json_t *mn = kwk(ks, s, KW_MINIMUM), *mx = kwk(ks, s, KW_MAXIMUM);
    if ((mn && x < json_number_value(mn)) || (mx && x > json_number_value(mx))) {
        if (mn && mx)
            return fail(c, f, "range", "must be %.0f to %.0f, got %.15g", json_number_value(mn),
                        json_number_value(mx), x);
        if (mn)
            return fail(c, f, "range", "must be at least %.0f, got %.15g", json_number_value(mn),
                        x);
        return fail(c, f, "range", "must be at most %.0f, got %.15g", json_number_value(mx), x);
    }
    return OB_OK;
}

/* The closest allowed member name to key (at most 2 edits), for "did you mean". */
static const char *closest(const char *key, const json_t *props)
{
    size_t kl = strlen(key);
    if (kl > 40 || !props)
        return NULL;
    const char *best = NULL;
    size_t best_d = 3;
    const char *a;
    json_t *unused;
    json_object_foreach((json_t *)props, a, unused)
    {
        size_t al = strlen(a);
        if (al > 40)
            continue;
        size_t row[42];
        for (size_t j = 0; j <= al; j++)
            row[j] = j;
        for (size_t i = 1; i <= kl; i++) {
            size_t prev = row[0];
            row[0] = i;
            for (size_t j = 1; j <= al; j++) {
                size_t cur = row[j];
                size_t v = prev + (key[i - 1] != a[j - 1]);
                if (row[j] + 1 < v)
                    v = row[j] + 1;
                if (row[j - 1] + 1 < v)
                    v = row[j - 1] + 1;
                row[j] = v;
                prev = cur;
            }
        }
        if (row[al] < best_d) {
            best_d = row[al];
            best = a;
        }
    }
    return best;
}

/* The rules (if/then/else) of an object schema that hold for v: up to
 * MAX_RULES then/else schemas, from its own if and from its allOf items. */
#define MAX_RULES 16
typedef struct rules_s {
    const json_t *s[MAX_RULES];
    const json_t *req[MAX_RULES], *props[MAX_RULES]; /* each one's required, properties */
    size_t n;
} rules_t;

/* Whether v passes a schema made only of the keywords of a rule's if
 * (required, properties, const, pattern, not, contains): 1 or 0; -1 when
 * the schema has others (then the full walk answers). */
static int quick(const json_t *s, const json_t *v)
{
    const kw_t *k = kw_of(s);
    if (!k || !k->simple)
        return -1;
    const json_t *x;
    size_t i;
    if (json_is_object(v)) {
        json_array_foreach(k->v[KW_REQUIRED], i, x)
        {
            if (!json_object_get(v, json_string_value(x)))
                return 0;
        }
        const char *name;
        json_t *sub;
        json_object_foreach((json_t *)k->v[KW_PROPERTIES], name, sub)
        {
            const json_t *m = json_object_get(v, name);
            int r = m ? quick(sub, m) : 1;
            if (r != 1)
                return r;
        }
    }
    if (k->v[KW_CONST] && !json_equal(k->v[KW_CONST], v))
        return 0;
    if (k->re && json_is_string(v) &&
        !ob_re_match(k->re, json_string_value(v), json_string_length(v)))
        return 0;
    if (k->v[KW_NOT]) {
        int r = quick(k->v[KW_NOT], v);
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
    if (k->v[KW_CONTAINS] && json_is_array(v)) {
        int found = 0;
        json_array_foreach(v, i, x)
        {
            int r = quick(k->v[KW_CONTAINS], x);
            if (r < 0)
                return -1;
            if ((found = r))
                break;
        }
        if (!found)
            return 0;
    }
    return 1;
}

static int holds(ctx_t *c, const json_t *cond, const json_t *v, const char *f)
{
    int r = quick(cond, v);
    if (r >= 0)
        return r;
    ctx_t sub = *c;
    sub.quiet = 1;
    sub.rule = NULL;
    return walk(&sub, cond, v, f) == OB_OK;
}

static void rule_of(ctx_t *c, const json_t *x, const json_t *v, const char *f, rules_t *r)
{
    const json_t *cond = kwv(x, KW_IF);
    if (!cond)
        return;
    const json_t *then = holds(c, cond, v, f) ? kwv(x, KW_THEN) : kwv(x, KW_ELSE);
    if (then && r->n < MAX_RULES) {
        r->req[r->n] = kwv(then, KW_REQUIRED);
        r->props[r->n] = kwv(then, KW_PROPERTIES);
        r->s[r->n++] = then;
    }
}

static void rules_of(ctx_t *c, const json_t *s, const json_t *v, const char *f, rules_t *r)
{
    r->n = 0;
    rule_of(c, s, v, f, r);
    size_t i;
    const json_t *x;
    json_array_foreach(kwv(s, KW_ALLOF), i, x) rule_of(c, x, v, f, r);
}

static ctx_t in_rule(const ctx_t *c, const json_t *then)
{
    ctx_t sub = *c;
    const json_t *d = kwv(then, KW_DESCRIPTION);
    sub.rule = json_is_string(d) ? json_string_value(d) : "";
    return sub;
}

/* A required member is missing. Under a rule, a member the object's schema
 * gives a default is not missing: its default does not fit the rule. */
static ob_err_t missing(ctx_t *c, const json_t *props, const char *f, const char *name)
{
    char fk[PTR_LEN];
    ptr_child(fk, f, name);
    const json_t *dflt = json_object_get(json_object_get(props, name), "default");
    if (c->rule && dflt) {
        char q[128];
        return fail(c, fk, "combination", "got %s (the default)",
                    echo(&(ctx_t){0}, dflt, q, sizeof(q)));
    }
    if (c->rule)
        return fail(c, fk, "missing", "\"%s\" is required here", name);
    return fail(c, fk, "missing", "required member \"%s\" is missing", name);
}

/*
 * The order of the checks is the order of the answers: a member whose value
 * is a constant (what the document is), members not allowed (a typo is
 * told as such, not by the member it then lacks), the required members, the
 * member count, then each member in the order of "properties"
 * with what the rules that hold say about it (that it must be there, too),
 * and last the rest of those rules. So a document is told about its
 * first member that is wrong, whether the rule that member breaks is its own
 * or one that ties it to another.
 */
/* The member `name` of v, trying the member after the last one found first:
 * messages mostly list their members in the schema's order. */
static const json_t *member_next(const json_t *v, void **it, const char *name)
{
    if (*it && !strcmp(json_object_iter_key(*it), name)) {
        const json_t *x = json_object_iter_value(*it);
        *it = json_object_iter_next((json_t *)v, *it);
        return x;
    }
    return json_object_get(v, name); /* out of order: the iterator waits where it is */
}

static ob_err_t walk_object(ctx_t *c, const kw_t *ks, const json_t *s, const json_t *v,
                            const char *f)
{
    char fk[PTR_LEN] = ""; /* a member's pointer (not built when quiet) */
    const json_t *req = kwk(ks, s, KW_REQUIRED), *props = kwk(ks, s, KW_PROPERTIES);
    /* The schema's members, their schemas and the values v gives them. */
    const char *pn[MAX_PROPS];
    const json_t *psch[MAX_PROPS], *pv[MAX_PROPS];
    int pconst[MAX_PROPS]; /* the member's schema is a const */
    size_t np = 0;
    void *it = json_object_iter((json_t *)v);
    if (ks && ks->np) { /* indexed at load */
        np = ks->np;
        for (size_t p = 0; p < np; p++) {
            pn[p] = ks->pn[p];
            psch[p] = ks->ps[p];
            pconst[p] = ks->pconst[p];
            pv[p] = member_next(v, &it, pn[p]);
        }
    } else {
        const char *pname;
        json_t *ps;
        json_object_foreach((json_t *)props, pname, ps)
        {
            if (np == MAX_PROPS)
                break;
            pn[np] = pname;
            psch[np] = ps;
            pconst[np] = kwv(ps, KW_CONST) != NULL;
            pv[np++] = member_next(v, &it, pname);
        }
    }
    for (size_t p = 0; p < np; p++) {
        if (!pv[p] || !pconst[p])
            continue;
        if (!c->quiet)
            ptr_child(fk, f, pn[p]);
        ob_err_t e = walk(c, psch[p], pv[p], fk);
        if (e != OB_OK)
            return e;
    }
    rules_t rules;
    rules_of(c, s, v, f, &rules);
    const json_t *addl = kwk(ks, s, KW_ADDITIONALPROPERTIES);
    const json_t *names = kwk(ks, s, KW_PROPERTYNAMES);
    const char *key;
    json_t *val;
    /* Members beyond "properties" matter only when the schema says what
     * they may be (most rules' ifs do not). */
    json_object_foreach((json_t *)((addl || names) ? v : NULL), key, val)
    {
        if (props && json_object_get(props, key))
            continue;
        if (!c->quiet)
            ptr_child(fk, f, key);
        if (json_is_false(addl)) {
            const char *near = closest(key, props);
            char q[128];
            json_t *kj = json_string(key);
            const char *k = echo(&(ctx_t){0}, kj, q, sizeof(q));
            ob_err_t e = near ? fail(c, fk, "unknown_field",
                                     "unknown member %s (did you mean \"%s\"?)", k, near)
                              : fail(c, fk, "unknown_field", "unknown member %s", k);
            json_decref(kj);
            return e;
        }
        if (names) {
            json_t *kj = json_string(key);
            ob_err_t e = walk(c, names, kj, fk);
            json_decref(kj);
            if (e != OB_OK)
                return e;
        }
        if (json_is_object(addl)) {
            ob_err_t e = walk(c, addl, val, fk);
            if (e != OB_OK)
                return e;
        }
    }
    size_t i;
    const json_t *r;
    json_array_foreach(req, i, r)
    {
        const char *name = json_string_value(r);
        const json_t *x = NULL;
        size_t p = 0;
        while (p < np && strcmp(pn[p], name) != 0)
            p++;
        x = p < np ? pv[p] : json_object_get(v, name);
        if (!x)
            return missing(c, props, f, name);
    }
    const json_t *mx = kwk(ks, s, KW_MAXPROPERTIES), *mn = kwk(ks, s, KW_MINPROPERTIES);
    size_t n = json_object_size(v);
    if (mx && n > (size_t)json_integer_value(mx))
        return fail(c, f, "range", "at most %lld members, got %zu",
                    (long long)json_integer_value(mx), n);
    if (mn && n < (size_t)json_integer_value(mn))
        return fail(c, f, "range", "at least %lld members, got %zu",
                    (long long)json_integer_value(mn), n);
    for (size_t p = 0; p < np; p++) {
        for (size_t k = 0; !pv[p] && k < rules.n; k++) {
            json_array_foreach(rules.req[k], i, r)
            {
                ctx_t sub = in_rule(c, rules.s[k]);
                if (!strcmp(json_string_value(r), pn[p]))
                    return missing(&sub, props, f, pn[p]);
            }
        }
        if (!pv[p])
            continue;
        if (!c->quiet)
            ptr_child(fk, f, pn[p]);
        ob_err_t e = pconst[p] ? OB_OK : walk(c, psch[p], pv[p], fk);
        for (size_t k = 0; e == OB_OK && k < rules.n; k++) {
            /* A rule names a few members: a scan beats a lookup. */
            const char *rname;
            json_t *rs;
            json_object_foreach((json_t *)rules.props[k], rname, rs)
            {
                if (strcmp(rname, pn[p]) != 0)
                    continue;
                ctx_t sub = in_rule(c, rules.s[k]);
                e = walk(&sub, rs, pv[p], fk);
                break;
            }
        }
        if (e != OB_OK)
            return e;
    }
    /* The rest of each rule: its members passed above; what is left is
     * what it requires beyond "properties" and its not, anyOf, oneOf. */
    for (size_t k = 0; k < rules.n; k++) {
        ctx_t sub = in_rule(c, rules.s[k]);
        json_array_foreach(rules.req[k], i, r)
        {
            const char *name = json_string_value(r);
            if (!(props && json_object_get(props, name)) && !json_object_get(v, name))
                return missing(&sub, props, f, name);
        }
        const char *rname;
        json_t *rs;
        json_object_foreach((json_t *)rules.props[k], rname, rs)
        {
            const json_t *x;
            if ((props && json_object_get(props, rname)) || !(x = json_object_get(v, rname)))
                continue; /* walked above, or absent */
            if (!c->quiet)
                ptr_child(fk, f, rname);
            ob_err_t e = walk(&sub, rs, x, fk);
            if (e != OB_OK)
                return e;
        }
        ob_err_t e = combinators(&sub, &sub, kw_of(rules.s[k]), rules.s[k], v, f);
        if (e != OB_OK)
            return e;
    }
    return OB_OK;
}

static ob_err_t walk_array(ctx_t *c, const kw_t *ks, const json_t *s, const json_t *v,
                           const char *f)
{
    size_t n = json_array_size(v);
    const json_t *mx = kwk(ks, s, KW_MAXITEMS), *mn = kwk(ks, s, KW_MINITEMS);
    if (mx && n > (size_t)json_integer_value(mx))
        return fail(c, f, "range", "at most %lld items, got %zu", (long long)json_integer_value(mx),
                    n);
    if (mn && n < (size_t)json_integer_value(mn))
        return fail(c, f, "range", "at least %lld items, got %zu",
                    (long long)json_integer_value(mn), n);
    const json_t *items = kwk(ks, s, KW_ITEMS);
    char fi[PTR_LEN] = ""; /* an item's pointer (not built when quiet) */
    for (size_t i = 0; i < n; i++) {
        if (!c->quiet)
            ptr_index(fi, f, i);
        if (items) {
            ob_err_t e = walk(c, items, json_array_get(v, i), fi);
            if (e != OB_OK)
                return e;
        }
        if (json_is_true(kwk(ks, s, KW_UNIQUEITEMS)))
            for (size_t k = 0; k < i; k++)
                if (json_equal(json_array_get(v, k), json_array_get(v, i))) {
                    char q[128];
                    return fail(c, fi, "enum", "%s appears more than once",
                                echo(c, json_array_get(v, i), q, sizeof(q)));
                }
    }
    const json_t *has = kwk(ks, s, KW_CONTAINS);
    if (has) {
        ctx_t sub = *c;
        sub.quiet = 1;
        int found = 0;
        for (size_t i = 0; i < n && !found; i++)
            found = walk(&sub, has, json_array_get(v, i), f) == OB_OK;
        if (!found)
            return fail(c, f, "enum", "has no item of the kind it must contain");
    }
    return OB_OK;
}

/* allOf (but the rules), anyOf, oneOf and not of schema s; c is the caller's
 * context, here the schema's own. */
static ob_err_t combinators(ctx_t *c, ctx_t *hp, const kw_t *ks, const json_t *s, const json_t *v,
                            const char *f)
{
    ctx_t here = *hp;
    char q[128];
    ob_err_t e;
    size_t i;
    const json_t *x;
    json_array_foreach(kwk(ks, s, KW_ALLOF), i, x)
    {
        /* An item with an if is a rule of an object: walk_object's. */
        if (kwv(x, KW_IF))
            continue;
        if ((e = walk(&here, x, v, f)) != OB_OK)
            return e;
    }
    const json_t *any = kwk(ks, s, KW_ANYOF);
    if (any) {
        ob_schema_error_t first;
        int ok = 0;
        json_array_foreach(any, i, x)
        {
            ctx_t sub = here;
            sub.err = &first;
            sub.quiet = here.quiet || i > 0;
            ok |= walk(&sub, x, v, f) == OB_OK;
        }
        if (!ok) {
            if (!c->quiet)
                *c->err = first;
            return OB_ERR_PARSE;
        }
    }
    const json_t *one = kwk(ks, s, KW_ONEOF);
    if (one) {
        ob_schema_error_t first;
        size_t matched = 0;
        const json_t *second = NULL;
        json_array_foreach(one, i, x)
        {
            ctx_t sub = here;
            sub.err = &first;
            sub.quiet = here.quiet || i > 0;
            if (walk(&sub, x, v, f) == OB_OK && ++matched == 2)
                second = x;
        }
        if (matched == 0) {
            if (!c->quiet)
                *c->err = first;
            return OB_ERR_PARSE;
        }
        if (second) {
            const char *m = json_string_value(json_array_get(kwv(second, KW_REQUIRED), 0));
            char fm[PTR_LEN];
            if (m)
                ptr_child(fm, f, m);
            return fail(&here, m ? fm : f, "combination", "only one of %s may be given",
                        m ? "these members" : "the alternatives");
        }
    }
    const json_t *not = kwk(ks, s, KW_NOT);
    if (not ) {
        ctx_t sub = here;
        sub.quiet = 1;
        if (walk(&sub, not, v, f) == OB_OK) {
            /* Members that must not be given (together): name the last. */
            const json_t *req = kwv(not, KW_REQUIRED);
            json_array_foreach(kwv(not, KW_ANYOF), i, x)
            {
                if (!req && holds(&here, x, v, f))
                    req = kwv(x, KW_REQUIRED);
            }
            size_t nreq = json_array_size(req);
            if (nreq) {
                const char *m = json_string_value(json_array_get(req, nreq - 1));
                char fm[PTR_LEN];
                ptr_child(fm, f, m);
                if (nreq == 1)
                    return fail(&here, fm, "combination", "\"%s\" is not allowed here", m);
                return fail(&here, fm, "combination", "\"%s\" and \"%s\" do not go together",
                            json_string_value(json_array_get(req, 0)), m);
            }
            /* A not with its own description states the rule it
             * keeps ("A bucket name is not an IP address."). */
            char why[256];
            if (json_is_string(kwk(ks, s, KW_DESCRIPTION)) && !c->rule)
                reason_of(json_string_value(kwk(ks, s, KW_DESCRIPTION)), why, sizeof(why), 0);
            else
                reason_of(here.desc, why, sizeof(why), 1);
            return fail(&here, f, kwv(not, KW_PATTERN) ? "pattern" : "enum", "%s, got %s", why,
                        echo(&here, v, q, sizeof(q)));
        }
    }
    return OB_OK;
}

static ob_err_t walk(ctx_t *c, const json_t *s, const json_t *v, const char *f)
{
    const kw_t *ks = kw_of(s);
    if (json_is_true(s))
        return OB_OK;
    if (json_is_false(s))
        return fail(c, f, "unknown_field", "is not allowed here");
    ctx_t here = *c;
    const json_t *desc = kwk(ks, s, KW_DESCRIPTION);
    if (json_is_string(desc))
        here.desc = json_string_value(desc);
    else if (!c->via_ref)
        here.desc = NULL; /* a parent's description is not this member's */
    here.via_ref = 0;
    if (json_is_true(kwk(ks, s, KW_WRITEONLY)))
        here.secret = 1;
    const json_t *ref = kwk(ks, s, KW_REF);
    if (ref) {
        const doc_t *d = NULL;
        const kw_t *k = kw_of(s);
        const json_t *target =
            k && k->target ? (d = k->tdoc, k->target) : resolve(json_string_value(ref), c->doc, &d);
        if (!target)
            return fail(c, f, "type", "the schema's $ref %s is not found", json_string_value(ref));
        ctx_t sub = here;
        sub.doc = d;
        sub.via_ref = 1;
        /* The referring schema's description, if any, speaks first. */
        const json_t *tdesc = kwv(target, KW_DESCRIPTION);
        if (!json_is_string(desc) && json_is_string(tdesc))
            sub.desc = json_string_value(tdesc);
        ob_err_t e = walk(&sub, target, v, f);
        if (e != OB_OK)
            return e;
    }
    char q[128];
    const json_t *type = kwk(ks, s, KW_TYPE);
    if (json_is_string(type) && !is_type(v, json_string_value(type)))
        return fail(&here, f, "type", "expected %s, got %s", a_type(json_string_value(type)),
                    ob_schema_type_of(v));
    if (json_is_array(type)) {
        int ok = 0;
        size_t i;
        const json_t *t;
        json_array_foreach(type, i, t) ok |= is_type(v, json_string_value(t));
        if (!ok)
            return fail(&here, f, "type", "has the wrong type (%s)", ob_schema_type_of(v));
    }
    const json_t *cst = kwk(ks, s, KW_CONST);
    if (cst && !json_equal(cst, v)) {
        if (here.quiet)
            return OB_ERR_PARSE;
        char w[128];
        return fail(&here, f, "enum", "expected %s, got %s", echo(&(ctx_t){0}, cst, w, sizeof(w)),
                    echo(&here, v, q, sizeof(q)));
    }
    const json_t *en = kwk(ks, s, KW_ENUM);
    if (en && !json_is_string(v) && json_is_string(json_array_get(en, 0)))
        return fail(&here, f, "type", "expected a string, got %s", ob_schema_type_of(v));
    if (en) {
        int ok = 0;
        size_t i;
        const json_t *x;
        json_array_foreach(en, i, x)
        {
            if ((ok = json_equal(x, v)))
                break;
        }
        if (!ok && !here.quiet) {
            char list[256] = "";
            json_array_foreach(en, i, x)
            {
                size_t l = strlen(list);
                if (json_is_string(x))
                    snprintf(list + l, sizeof(list) - l, "%s%s", i ? ", " : "",
                             json_string_value(x));
            }
            return fail(&here, f, "enum", "must be one of %s; got %s", list,
                        echo(&here, v, q, sizeof(q)));
        }
        if (!ok)
            return OB_ERR_PARSE;
    }
    ob_err_t e = OB_OK;
    if (json_is_string(v))
        e = walk_string(&here, ks, s, v, f);
    else if (json_is_number(v))
        e = walk_number(&here, ks, s, v, f);
    else if (json_is_object(v))
        e = walk_object(&here, ks, s, v, f);
    else if (json_is_array(v))
        e = walk_array(&here, ks, s, v, f);
    if (e != OB_OK || (ks && !ks->combines))
        return e;
    return combinators(c, &here, ks, s, v, f);
}

ob_err_t ob_schema_validate(const char *name, const json_t *doc, ob_schema_error_t *err)
{
    memset(err, 0, sizeof(*err));
    if (!loaded()) {
        snprintf(err->message, sizeof(err->message), "the message schemas: %.400s", S.error);
        snprintf(err->code, sizeof(err->code), "schema");
        return OB_ERR_CONFIG;
    }
    const doc_t *d = NULL;
    const json_t *s = named(name, &d);
    if (!s) {
        snprintf(err->message, sizeof(err->message), "no schema %.200s", name);
        snprintf(err->code, sizeof(err->code), "schema");
        return OB_ERR_CONFIG;
    }
    ctx_t c = {d, NULL, 0, 0, NULL, 0, err};
    return walk(&c, s, doc, "");
}
