/*
 * ob_xml: a single-pass, non-recursive XML parser.
 *
 * Design. The whole input is first checked to be UTF-8 made only of
 * characters XML 1.0 allows; after that the scanner works on bytes and only
 * needs to recognise ASCII markup. Elements are parsed with an explicit stack
 * of frames (one per open element, bounded by the depth limit), so hostile
 * nesting cannot exhaust the C stack. Each frame accumulates the element's
 * own text in a growable buffer; when the element closes, the text is copied
 * into the document.
 *
 * Memory. Every node, attribute array and string of a document lives in one
 * arena (a list of chunks freed together), so a document is one allocation
 * family and ob_xml_free() is a list walk. The parser's scratch state (frame
 * stack, text buffers, namespace bindings) is separate and freed before
 * returning. Output size is bounded by the input size plus a per-node
 * overhead, and node count is bounded by a limit, so memory use is bounded
 * by the caller's limits.
 *
 * Namespaces. In-scope xmlns bindings form a stack; an element pushes its
 * declarations and pops them when it closes. Prefixes are resolved when the
 * start tag has been read (an element's own declarations apply to itself).
 *
 * Errors carry "line L col C"; the position is computed from the byte
 * offset only when an error happens. Element line numbers are counted
 * incrementally between start tags.
 */
#include "ob_xml.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ob_alloc.h"

/* ---------------------------------------------------------------- arena */

typedef struct xml_chunk_s {
    struct xml_chunk_s *next;
    size_t used;
    size_t cap;
    max_align_t data[]; /* max_align_t elements keep every allocation aligned */
} xml_chunk_t;

typedef struct xml_attr_s {
    const char *name;  /* qualified name */
    const char *local; /* points into name */
    const char *value;
} xml_attr_t;

struct ob_xml_node_s {
    const char *qname;
    const char *local; /* points into qname */
    const char *ns;
    const char *text;
    const xml_attr_t *attrs;
    size_t nattrs;
    struct ob_xml_node_s *parent;
    struct ob_xml_node_s *first_child;
    struct ob_xml_node_s *last_child;
    struct ob_xml_node_s *next;
    unsigned long line;
};

struct ob_xml_doc_s {
    xml_chunk_t *chunks;
    size_t next_chunk_cap;
    ob_xml_node_t *root;
};

#define XML_ALIGN           (_Alignof(max_align_t))
#define XML_CHUNK_MIN       4096u
#define XML_CHUNK_MAX       (256u * 1024u)
#define XML_MAX_NS_BINDINGS 256u

static const char xml_empty[] = "";
static const char xml_ns_xml[] = "http://www.w3.org/XML/1998/namespace";
static const char xml_ns_xmlns[] = "http://www.w3.org/2000/xmlns/";

static void *arena_alloc(ob_xml_doc_t *d, size_t n)
{
    if (n > ((size_t)-1) / 2)
        return NULL;
    n = (n + XML_ALIGN - 1) & ~(size_t)(XML_ALIGN - 1);
    xml_chunk_t *c = d->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = d->next_chunk_cap ? d->next_chunk_cap : XML_CHUNK_MIN;
        if (cap < XML_CHUNK_MAX)
            d->next_chunk_cap = cap * 2;
        if (cap < n)
            cap = n;
        c = ob_malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        /* Keep the partly used chunk at the head only if it has more room. */
        if (d->chunks && d->chunks->cap - d->chunks->used > cap - n) {
            c->next = d->chunks->next;
            d->chunks->next = c;
        } else {
            c->next = d->chunks;
            d->chunks = c;
        }
    }
    void *p = (unsigned char *)c->data + c->used;
    c->used += n;
    return p;
}

static char *arena_strndup(ob_xml_doc_t *d, const char *s, size_t n)
{
    if (n == 0)
        return (char *)xml_empty;
    char *p = arena_alloc(d, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ob_xml_free(ob_xml_doc_t *doc)
{
    if (!doc)
        return;
    xml_chunk_t *c = doc->chunks;
    while (c) {
        xml_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(doc);
}

/* ---------------------------------------------------------------- UTF-8 */

/* Decode one UTF-8 sequence from s (n bytes available). Returns its length
 * and sets *cp, or 0 when the bytes are not valid UTF-8 (overlong forms,
 * surrogates and values above U+10FFFF are invalid). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* XML 1.0 Char production. */
static int xml_is_char(uint32_t c)
{
    return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
           (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

static size_t utf8_encode(uint32_t c, char out[4])
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---------------------------------------------------------------- parser */

typedef struct xml_ns_s {
    const char *prefix; /* NULL for the default namespace */
    const char *uri;
} xml_ns_t;

typedef struct xml_frame_s {
    ob_xml_node_t *node;
    ob_buf_t text;
    int had_child;
    size_t ns_mark;
} xml_frame_t;

typedef struct xml_parser_s {
    const char *s;
    size_t len;
    size_t pos;
    size_t max_nodes;
    unsigned max_depth;
    unsigned max_attrs;
    ob_xml_doc_t *doc;
    char *errstr;
    size_t errstr_size;
    size_t nodes;
    unsigned depth;      /* open elements */
    xml_frame_t *frames; /* max_depth entries */
    xml_ns_t *ns;
    size_t nns;
    size_t ns_cap;
    xml_attr_t *attrs; /* start-tag scratch */
    size_t attrs_cap;
    ob_buf_t scratch; /* attribute value scratch */
    size_t line_off;  /* newlines before this offset are counted in line */
    unsigned long line;
} xml_parser_t;

static ob_err_t xp_fail(xml_parser_t *p, size_t off, ob_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ob_err_t xp_fail(xml_parser_t *p, size_t off, ob_err_t code, const char *fmt, ...)
{
    if (off > p->len)
        off = p->len;
    unsigned long line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
        unsigned char c = (unsigned char)p->s[i];
        if (c == '\n') {
            line++;
            col = 1;
        } else if ((c & 0xC0) != 0x80) {
            col++;
        }
    }
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return ob_errf(p->errstr, p->errstr_size, code, "line %lu col %lu: %s", line, col, reason);
}

static ob_err_t xp_nomem(xml_parser_t *p)
{
    return ob_errf(p->errstr, p->errstr_size, OB_ERR_NOMEM, "out of memory while parsing XML");
}

static ob_err_t xp_eof(xml_parser_t *p, const char *where)
{
    return xp_fail(p, p->len, OB_ERR_PARSE, "unexpected end of input %s", where);
}

static int xp_at(const xml_parser_t *p, const char *lit)
{
    size_t n = strlen(lit);
    return p->len - p->pos >= n && memcmp(p->s + p->pos, lit, n) == 0;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t xp_skip_ws(xml_parser_t *p)
{
    size_t start = p->pos;
    while (p->pos < p->len && is_ws(p->s[p->pos]))
        p->pos++;
    return p->pos - start;
}

static int name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || c >= 0x80;
}

static int name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* Scan a Name at pos; returns its length (0 if none). */
static size_t xp_name(xml_parser_t *p)
{
    size_t i = p->pos;
    if (i >= p->len || !name_start((unsigned char)p->s[i]))
        return 0;
    i++;
    while (i < p->len && name_char((unsigned char)p->s[i]))
        i++;
    return i - p->pos;
}

/* Namespaces-in-XML QName rule: at most one colon, not first or last. */
static int qname_ok(const char *s, size_t n)
{
    const char *c = memchr(s, ':', n);
    if (!c)
        return 1;
    if (c == s || c == s + n - 1)
        return 0;
    return memchr(c + 1, ':', n - (size_t)(c + 1 - s)) == NULL;
}

/* Validate that the whole input is UTF-8 of allowed XML characters. */
static ob_err_t xp_check_chars(xml_parser_t *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t i = 0;
    while (i < p->len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(s + i, p->len - i, &cp);
        if (n == 0)
            return xp_fail(p, i, OB_ERR_PARSE, "invalid UTF-8 byte 0x%02X", c);
        if (!xml_is_char(cp))
            return xp_fail(p, i, OB_ERR_PARSE, "character U+%04X is not allowed in XML",
                           (unsigned)cp);
        i += n;
    }
    return OB_OK;
}

/* Decode a reference at pos ('&') and append it to out. */
static ob_err_t xp_reference(xml_parser_t *p, ob_buf_t *out)
{
    size_t start = p->pos;
    p->pos++; /* '&' */
    if (p->pos < p->len && p->s[p->pos] == '#') {
        p->pos++;
        int hex = 0;
        if (p->pos < p->len && p->s[p->pos] == 'x') {
            hex = 1;
            p->pos++;
        }
        uint32_t v = 0;
        size_t digits = 0;
        int too_big = 0;
        while (p->pos < p->len) {
            char c = p->s[p->pos];
            int d;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if (hex && c >= 'a' && c <= 'f')
                d = c - 'a' + 10;
            else if (hex && c >= 'A' && c <= 'F')
                d = c - 'A' + 10;
            else
                break;
            if (!too_big) {
                v = v * (hex ? 16u : 10u) + (uint32_t)d;
                if (v > 0x10FFFF)
                    too_big = 1;
            }
            digits++;
            p->pos++;
        }
        if (p->pos >= p->len)
            return xp_eof(p, "in a character reference");
        if (digits == 0 || p->s[p->pos] != ';')
            return xp_fail(p, start, OB_ERR_PARSE, "malformed character reference");
        p->pos++;
        if (too_big || !xml_is_char(v))
            return xp_fail(p, start, OB_ERR_PARSE,
                           "character reference to a code point XML does not allow");
        char enc[4];
        size_t n = utf8_encode(v, enc);
        return ob_buf_append(out, enc, n) == OB_OK ? OB_OK : xp_nomem(p);
    }
    size_t n = xp_name(p);
    if (n == 0) {
        if (p->pos >= p->len)
            return xp_eof(p, "in an entity reference");
        return xp_fail(p, start, OB_ERR_PARSE, "'&' must start an entity or character reference");
    }
    const char *name = p->s + p->pos;
    p->pos += n;
    if (p->pos >= p->len)
        return xp_eof(p, "in an entity reference");
    if (p->s[p->pos] != ';')
        return xp_fail(p, start, OB_ERR_PARSE, "entity reference without ';'");
    p->pos++;
    static const struct {
        const char *name;
        char c;
    } predefined[] = {{"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"apos", '\''}, {"quot", '"'}};
    for (size_t i = 0; i < sizeof(predefined) / sizeof(predefined[0]); i++) {
        if (strlen(predefined[i].name) == n && memcmp(predefined[i].name, name, n) == 0)
            return ob_buf_putc(out, predefined[i].c) == OB_OK ? OB_OK : xp_nomem(p);
    }
    return xp_fail(p, start, OB_ERR_PARSE, "undefined entity '&%.*s;' (no DTD support)",
                   (int)(n > 40 ? 40 : n), name);
}

static ob_err_t xp_comment(xml_parser_t *p)
{
    p->pos += 4; /* "<!--" */
    const char *dd = memmem(p->s + p->pos, p->len - p->pos, "--", 2);
    if (!dd)
        return xp_eof(p, "in a comment");
    size_t at = (size_t)(dd - p->s);
    if (at + 2 >= p->len)
        return xp_eof(p, "in a comment");
    if (p->s[at + 2] != '>')
        return xp_fail(p, at, OB_ERR_PARSE, "'--' is not allowed inside a comment");
    p->pos = at + 3;
    return OB_OK;
}

static ob_err_t xp_pi(xml_parser_t *p)
{
    size_t start = p->pos;
    p->pos += 2; /* "<?" */
    size_t n = xp_name(p);
    if (n == 0) {
        if (p->pos >= p->len)
            return xp_eof(p, "in a processing instruction");
        return xp_fail(p, start, OB_ERR_PARSE, "processing instruction without a target");
    }
    if (n == 3 && strncasecmp(p->s + p->pos, "xml", 3) == 0)
        return xp_fail(p, start, OB_ERR_PARSE,
                       "the XML declaration is only allowed at the very start");
    p->pos += n;
    if (xp_at(p, "?>")) {
        p->pos += 2;
        return OB_OK;
    }
    if (p->pos < p->len && !is_ws(p->s[p->pos]))
        return xp_fail(p, p->pos, OB_ERR_PARSE, "malformed processing instruction");
    const char *end = memmem(p->s + p->pos, p->len - p->pos, "?>", 2);
    if (!end)
        return xp_eof(p, "in a processing instruction");
    p->pos = (size_t)(end - p->s) + 2;
    return OB_OK;
}

/* Read one pseudo-attribute of the XML declaration: name="value". */
static ob_err_t xp_decl_attr(xml_parser_t *p, const char *name, const char **val, size_t *vlen)
{
    size_t n = strlen(name);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, name, n) != 0)
        return p->pos >= p->len ? xp_eof(p, "in the XML declaration")
                                : xp_fail(p, p->pos, OB_ERR_PARSE,
                                          "malformed XML declaration (expected %s)", name);
    p->pos += n;
    xp_skip_ws(p);
    if (p->pos >= p->len)
        return xp_eof(p, "in the XML declaration");
    if (p->s[p->pos] != '=')
        return xp_fail(p, p->pos, OB_ERR_PARSE, "malformed XML declaration (expected '=')");
    p->pos++;
    xp_skip_ws(p);
    if (p->pos >= p->len)
        return xp_eof(p, "in the XML declaration");
    char q = p->s[p->pos];
    if (q != '"' && q != '\'')
        return xp_fail(p, p->pos, OB_ERR_PARSE, "malformed XML declaration (expected a quote)");
    p->pos++;
    const char *e = memchr(p->s + p->pos, q, p->len - p->pos);
    if (!e)
        return xp_eof(p, "in the XML declaration");
    *val = p->s + p->pos;
    *vlen = (size_t)(e - *val);
    p->pos = (size_t)(e - p->s) + 1;
    return OB_OK;
}

static ob_err_t xp_xmldecl(xml_parser_t *p)
{
    size_t start = p->pos;
    p->pos += 5; /* "<?xml" */
    const char *v;
    size_t vn;
    ob_err_t err;
    if (xp_skip_ws(p) == 0)
        return p->pos >= p->len ? xp_eof(p, "in the XML declaration")
                                : xp_fail(p, p->pos, OB_ERR_PARSE, "malformed XML declaration");
    if ((err = xp_decl_attr(p, "version", &v, &vn)) != OB_OK)
        return err;
    if (vn < 3 || memcmp(v, "1.", 2) != 0 || strspn(v + 2, "0123456789") < vn - 2)
        return xp_fail(p, start, OB_ERR_PARSE, "unsupported XML version '%.*s'",
                       (int)(vn > 20 ? 20 : vn), v);
    size_t ws = xp_skip_ws(p);
    if (ws && xp_at(p, "encoding")) {
        if ((err = xp_decl_attr(p, "encoding", &v, &vn)) != OB_OK)
            return err;
        if (!((vn == 5 && strncasecmp(v, "UTF-8", 5) == 0) ||
              (vn == 8 && strncasecmp(v, "US-ASCII", 8) == 0)))
            return xp_fail(p, start, OB_ERR_PARSE,
                           "unsupported encoding '%.*s' (only UTF-8 is accepted)",
                           (int)(vn > 40 ? 40 : vn), v);
        ws = xp_skip_ws(p);
    }
    if (ws && xp_at(p, "standalone")) {
        if ((err = xp_decl_attr(p, "standalone", &v, &vn)) != OB_OK)
            return err;
        if (!((vn == 3 && memcmp(v, "yes", 3) == 0) || (vn == 2 && memcmp(v, "no", 2) == 0)))
            return xp_fail(p, start, OB_ERR_PARSE, "malformed standalone value");
        xp_skip_ws(p);
    }
    if (xp_at(p, "?>")) {
        p->pos += 2;
        return OB_OK;
    }
    if (p->len - p->pos < 2)
        return xp_eof(p, "in the XML declaration");
    return xp_fail(p, p->pos, OB_ERR_PARSE, "malformed XML declaration");
}

/* Markup that may appear outside the root element or between elements:
 * comments, PIs; DOCTYPE and anything else starting "<!" is refused. Returns
 * OB_OK with *handled = 1 when it consumed something. */
static ob_err_t xp_misc(xml_parser_t *p, int *handled)
{
    *handled = 0;
    if (xp_at(p, "<!--")) {
        *handled = 1;
        return xp_comment(p);
    }
    if (xp_at(p, "<?")) {
        *handled = 1;
        return xp_pi(p);
    }
    if (xp_at(p, "<!DOCTYPE"))
        return xp_fail(p, p->pos, OB_ERR_PARSE,
                       "DOCTYPE is not allowed (no DTDs, no entity expansion)");
    if (p->len - p->pos < 4 && p->len - p->pos >= 2 && p->s[p->pos] == '<' &&
        (p->s[p->pos + 1] == '!'))
        return xp_eof(p, "in markup");
    return OB_OK;
}

static const char *xp_lookup_ns(const xml_parser_t *p, const char *prefix, size_t plen)
{
    if (plen == 3 && memcmp(prefix, "xml", 3) == 0)
        return xml_ns_xml;
    for (size_t i = p->nns; i-- > 0;) {
        const char *bp = p->ns[i].prefix;
        if (prefix == NULL) {
            if (bp == NULL)
                return p->ns[i].uri;
        } else if (bp && strlen(bp) == plen && memcmp(bp, prefix, plen) == 0) {
            return p->ns[i].uri;
        }
    }
    return prefix == NULL ? xml_empty : NULL;
}

static ob_err_t xp_push_ns(xml_parser_t *p, size_t at, const char *prefix, const char *uri)
{
    if (p->nns == XML_MAX_NS_BINDINGS)
        return xp_fail(p, at, OB_ERR_TOO_LARGE, "more than %u namespace declarations in scope",
                       XML_MAX_NS_BINDINGS);
    if (p->nns == p->ns_cap) {
        size_t cap = p->ns_cap ? p->ns_cap * 2 : 8;
        xml_ns_t *v = ob_realloc(p->ns, cap * sizeof(*v));
        if (!v)
            return xp_nomem(p);
        p->ns = v;
        p->ns_cap = cap;
    }
    p->ns[p->nns].prefix = prefix;
    p->ns[p->nns].uri = uri;
    p->nns++;
    return OB_OK;
}

/* Decode an attribute value between quotes at pos into p->scratch. */
static ob_err_t xp_attr_value(xml_parser_t *p)
{
    char q = p->s[p->pos];
    p->pos++;
    ob_buf_reset(&p->scratch);
    for (;;) {
        size_t run = p->pos;
        while (run < p->len) {
            char c = p->s[run];
            if (c == q || c == '<' || c == '&' || c == '\t' || c == '\n' || c == '\r')
                break;
            run++;
        }
        if (run > p->pos && ob_buf_append(&p->scratch, p->s + p->pos, run - p->pos) != OB_OK)
            return xp_nomem(p);
        p->pos = run;
        if (p->pos >= p->len)
            return xp_eof(p, "in an attribute value");
        char c = p->s[p->pos];
        if (c == q) {
            p->pos++;
            return OB_OK;
        }
        if (c == '<')
            return xp_fail(p, p->pos, OB_ERR_PARSE, "'<' is not allowed in an attribute value");
        if (c == '&') {
            ob_err_t err = xp_reference(p, &p->scratch);
            if (err != OB_OK)
                return err;
            continue;
        }
        /* Attribute-value normalisation: literal TAB, LF, CR and CRLF become one space. */
        if (c == '\r' && p->pos + 1 < p->len && p->s[p->pos + 1] == '\n')
            p->pos++;
        p->pos++;
        if (ob_buf_putc(&p->scratch, ' ') != OB_OK)
            return xp_nomem(p);
    }
}

static ob_err_t xp_count_node(xml_parser_t *p, size_t at, const char *what)
{
    if (++p->nodes > p->max_nodes)
        return xp_fail(p, at, OB_ERR_TOO_LARGE, "more than %zu nodes (%s)", p->max_nodes, what);
    return OB_OK;
}

static ob_err_t xp_finish_text(xml_parser_t *p, xml_frame_t *f)
{
    const char *t = xml_empty;
    if (f->text.len > 0) {
        int blank = 1;
        if (f->had_child)
            for (size_t i = 0; i < f->text.len && blank; i++)
                blank = is_ws(f->text.data[i]);
        if (!f->had_child || !blank) {
            t = arena_strndup(p->doc, f->text.data, f->text.len);
            if (!t)
                return xp_nomem(p);
        }
    }
    f->node->text = t;
    ob_buf_reset(&f->text);
    return OB_OK;
}

/* Parse a start tag at pos ('<' followed by a name start). Pushes a frame
 * unless the element is empty. */
static ob_err_t xp_start_tag(xml_parser_t *p)
{
    size_t tag_at = p->pos;
    ob_err_t err;
    p->pos++; /* '<' */
    size_t n = xp_name(p);
    if (n == 0)
        return p->pos >= p->len ? xp_eof(p, "in a tag")
                                : xp_fail(p, tag_at, OB_ERR_PARSE, "expected an element name");
    const char *qn = p->s + p->pos;
    if (!qname_ok(qn, n))
        return xp_fail(p, p->pos, OB_ERR_PARSE, "malformed qualified name '%.*s'",
                       (int)(n > 60 ? 60 : n), qn);
    if (p->depth + 1 > p->max_depth)
        return xp_fail(p, tag_at, OB_ERR_TOO_LARGE, "elements nested deeper than %u levels",
                       p->max_depth);
    if ((err = xp_count_node(p, tag_at, "elements and attributes")) != OB_OK)
        return err;
    p->pos += n;

    ob_xml_node_t *node = arena_alloc(p->doc, sizeof(*node));
    if (!node)
        return xp_nomem(p);
    memset(node, 0, sizeof(*node));
    node->qname = arena_strndup(p->doc, qn, n);
    if (!node->qname)
        return xp_nomem(p);
    const char *colon = strchr(node->qname, ':');
    node->local = colon ? colon + 1 : node->qname;

    size_t ns_mark = p->nns;
    size_t nattrs = 0;
    int empty = 0;
    for (;;) {
        size_t ws = xp_skip_ws(p);
        if (p->pos >= p->len)
            return xp_eof(p, "in a start tag");
        char c = p->s[p->pos];
        if (c == '>') {
            p->pos++;
            break;
        }
        if (c == '/') {
            if (p->pos + 1 >= p->len)
                return xp_eof(p, "in a start tag");
            if (p->s[p->pos + 1] != '>')
                return xp_fail(p, p->pos, OB_ERR_PARSE, "expected '/>'");
            p->pos += 2;
            empty = 1;
            break;
        }
        if (ws == 0)
            return xp_fail(p, p->pos, OB_ERR_PARSE, "expected whitespace, '>' or '/>'");
        size_t attr_at = p->pos;
        size_t an = xp_name(p);
        if (an == 0)
            return xp_fail(p, p->pos, OB_ERR_PARSE, "expected an attribute name");
        const char *aq = p->s + p->pos;
        if (!qname_ok(aq, an))
            return xp_fail(p, p->pos, OB_ERR_PARSE, "malformed attribute name '%.*s'",
                           (int)(an > 60 ? 60 : an), aq);
        p->pos += an;
        xp_skip_ws(p);
        if (p->pos >= p->len)
            return xp_eof(p, "in a start tag");
        if (p->s[p->pos] != '=')
            return xp_fail(p, p->pos, OB_ERR_PARSE, "expected '=' after attribute name");
        p->pos++;
        xp_skip_ws(p);
        if (p->pos >= p->len)
            return xp_eof(p, "in a start tag");
        if (p->s[p->pos] != '"' && p->s[p->pos] != '\'')
            return xp_fail(p, p->pos, OB_ERR_PARSE, "attribute value must be quoted");
        if ((err = xp_attr_value(p)) != OB_OK)
            return err;
        if (nattrs == p->max_attrs)
            return xp_fail(p, attr_at, OB_ERR_TOO_LARGE, "more than %u attributes on <%s>",
                           p->max_attrs, node->qname);
        if ((err = xp_count_node(p, attr_at, "elements and attributes")) != OB_OK)
            return err;
        for (size_t i = 0; i < nattrs; i++)
            if (strlen(p->attrs[i].name) == an && memcmp(p->attrs[i].name, aq, an) == 0)
                return xp_fail(p, attr_at, OB_ERR_PARSE, "duplicate attribute '%s'",
                               p->attrs[i].name);
        if (nattrs == p->attrs_cap) {
            size_t cap = p->attrs_cap ? p->attrs_cap * 2 : 8;
            xml_attr_t *v = ob_realloc(p->attrs, cap * sizeof(*v));
            if (!v)
                return xp_nomem(p);
            p->attrs = v;
            p->attrs_cap = cap;
        }
        xml_attr_t *a = &p->attrs[nattrs++];
        a->name = arena_strndup(p->doc, aq, an);
        a->value = arena_strndup(p->doc, p->scratch.data ? p->scratch.data : "", p->scratch.len);
        if (!a->name || !a->value)
            return xp_nomem(p);
        const char *ac = strchr(a->name, ':');
        a->local = ac ? ac + 1 : a->name;

        /* Namespace declarations. */
        if (strcmp(a->name, "xmlns") == 0) {
            if (strcmp(a->value, xml_ns_xml) == 0 || strcmp(a->value, xml_ns_xmlns) == 0)
                return xp_fail(p, attr_at, OB_ERR_PARSE, "reserved namespace as default");
            if ((err = xp_push_ns(p, attr_at, NULL, a->value)) != OB_OK)
                return err;
        } else if (strncmp(a->name, "xmlns:", 6) == 0) {
            const char *pre = a->local;
            if (strcmp(pre, "xmlns") == 0)
                return xp_fail(p, attr_at, OB_ERR_PARSE, "the xmlns prefix cannot be declared");
            if (strcmp(pre, "xml") == 0) {
                if (strcmp(a->value, xml_ns_xml) != 0)
                    return xp_fail(p, attr_at, OB_ERR_PARSE, "the xml prefix cannot be rebound");
                continue;
            }
            if (a->value[0] == '\0')
                return xp_fail(p, attr_at, OB_ERR_PARSE,
                               "namespace prefix '%s' declared with an empty URI", pre);
            if (strcmp(a->value, xml_ns_xml) == 0 || strcmp(a->value, xml_ns_xmlns) == 0)
                return xp_fail(p, attr_at, OB_ERR_PARSE, "reserved namespace bound to '%s'", pre);
            if ((err = xp_push_ns(p, attr_at, pre, a->value)) != OB_OK)
                return err;
        }
    }

    /* Resolve the element's namespace. */
    if (colon) {
        node->ns = xp_lookup_ns(p, node->qname, (size_t)(colon - node->qname));
        if (!node->ns)
            return xp_fail(p, tag_at, OB_ERR_PARSE, "unbound namespace prefix in <%s>",
                           node->qname);
    } else {
        node->ns = xp_lookup_ns(p, NULL, 0);
    }
    /* Attribute prefixes must be bound; no two attributes may share
     * a local name and a namespace. */
    for (size_t i = 0; i < nattrs; i++) {
        const xml_attr_t *a = &p->attrs[i];
        if (a->local == a->name || strncmp(a->name, "xmlns:", 6) == 0)
            continue;
        const char *uri = xp_lookup_ns(p, a->name, (size_t)(a->local - 1 - a->name));
        if (!uri)
            return xp_fail(p, tag_at, OB_ERR_PARSE, "unbound namespace prefix in attribute '%s'",
                           a->name);
        for (size_t j = 0; j < i; j++) {
            const xml_attr_t *b = &p->attrs[j];
            if (b->local == b->name || strncmp(b->name, "xmlns:", 6) == 0 ||
                strcmp(b->local, a->local) != 0)
                continue;
            const char *buri = xp_lookup_ns(p, b->name, (size_t)(b->local - 1 - b->name));
            if (buri && strcmp(buri, uri) == 0)
                return xp_fail(p, tag_at, OB_ERR_PARSE,
                               "attributes '%s' and '%s' are the same qualified name", b->name,
                               a->name);
        }
    }
    if (nattrs) {
        xml_attr_t *v = arena_alloc(p->doc, nattrs * sizeof(*v));
        if (!v)
            return xp_nomem(p);
        memcpy(v, p->attrs, nattrs * sizeof(*v));
        node->attrs = v;
        node->nattrs = nattrs;
    }

    /* Line of the start tag: count newlines since the previous element, so
     * the whole document is scanned once in total. */
    for (; p->line_off < tag_at; p->line_off++)
        if (p->s[p->line_off] == '\n')
            p->line++;
    node->line = p->line;
    if (p->depth > 0) {
        xml_frame_t *pf = &p->frames[p->depth - 1];
        node->parent = pf->node;
        if (pf->node->last_child)
            pf->node->last_child->next = node;
        else
            pf->node->first_child = node;
        pf->node->last_child = node;
        pf->had_child = 1;
    } else {
        p->doc->root = node;
    }

    if (empty) {
        node->text = xml_empty;
        p->nns = ns_mark;
        return OB_OK;
    }
    xml_frame_t *f = &p->frames[p->depth++];
    f->node = node;
    f->had_child = 0;
    f->ns_mark = ns_mark;
    ob_buf_reset(&f->text);
    return OB_OK;
}

static ob_err_t xp_end_tag(xml_parser_t *p)
{
    size_t at = p->pos;
    p->pos += 2; /* "</" */
    size_t n = xp_name(p);
    xml_frame_t *f = &p->frames[p->depth - 1];
    if (n == 0)
        return p->pos >= p->len ? xp_eof(p, "in an end tag")
                                : xp_fail(p, at, OB_ERR_PARSE, "expected an element name");
    if (strlen(f->node->qname) != n || memcmp(f->node->qname, p->s + p->pos, n) != 0) {
        if (p->pos + n >= p->len)
            return xp_eof(p, "in an end tag");
        return xp_fail(p, at, OB_ERR_PARSE, "mismatched end tag </%.*s>, expected </%s>",
                       (int)(n > 60 ? 60 : n), p->s + p->pos, f->node->qname);
    }
    p->pos += n;
    xp_skip_ws(p);
    if (p->pos >= p->len)
        return xp_eof(p, "in an end tag");
    if (p->s[p->pos] != '>')
        return xp_fail(p, p->pos, OB_ERR_PARSE, "expected '>' to close </%s>", f->node->qname);
    p->pos++;
    ob_err_t err = xp_finish_text(p, f);
    if (err != OB_OK)
        return err;
    p->nns = f->ns_mark;
    p->depth--;
    return OB_OK;
}

/* Character data up to the next '<' or '&'. */
static ob_err_t xp_chardata(xml_parser_t *p, ob_buf_t *out)
{
    for (;;) {
        size_t run = p->pos;
        while (run < p->len) {
            char c = p->s[run];
            if (c == '<' || c == '&' || c == '\r' || c == ']')
                break;
            run++;
        }
        if (run > p->pos && ob_buf_append(out, p->s + p->pos, run - p->pos) != OB_OK)
            return xp_nomem(p);
        p->pos = run;
        if (p->pos >= p->len || p->s[p->pos] == '<' || p->s[p->pos] == '&')
            return OB_OK;
        if (p->s[p->pos] == ']') {
            if (xp_at(p, "]]>"))
                return xp_fail(p, p->pos, OB_ERR_PARSE, "']]>' is not allowed in text");
            if (ob_buf_putc(out, ']') != OB_OK)
                return xp_nomem(p);
            p->pos++;
            continue;
        }
        /* CR or CRLF -> LF */
        if (p->pos + 1 < p->len && p->s[p->pos + 1] == '\n')
            p->pos++;
        p->pos++;
        if (ob_buf_putc(out, '\n') != OB_OK)
            return xp_nomem(p);
    }
}

static ob_err_t xp_cdata(xml_parser_t *p, ob_buf_t *out)
{
    p->pos += 9; /* "<![CDATA[" */
    const char *end = memmem(p->s + p->pos, p->len - p->pos, "]]>", 3);
    if (!end)
        return xp_eof(p, "in a CDATA section");
    size_t stop = (size_t)(end - p->s);
    while (p->pos < stop) {
        const char *cr = memchr(p->s + p->pos, '\r', stop - p->pos);
        size_t run_end = cr ? (size_t)(cr - p->s) : stop;
        if (run_end > p->pos && ob_buf_append(out, p->s + p->pos, run_end - p->pos) != OB_OK)
            return xp_nomem(p);
        p->pos = run_end;
        if (cr) {
            if (p->pos + 1 < stop && p->s[p->pos + 1] == '\n')
                p->pos++;
            p->pos++;
            if (ob_buf_putc(out, '\n') != OB_OK)
                return xp_nomem(p);
        }
    }
    p->pos = stop + 3;
    return OB_OK;
}

static ob_err_t xp_document(xml_parser_t *p)
{
    ob_err_t err;
    int handled;
    if (xp_at(p, "\xEF\xBB\xBF"))
        p->pos += 3;
    if (xp_at(p, "<?xml") &&
        (p->pos + 5 >= p->len || is_ws(p->s[p->pos + 5]) || p->s[p->pos + 5] == '?')) {
        if ((err = xp_xmldecl(p)) != OB_OK)
            return err;
    }
    /* Prolog. */
    for (;;) {
        xp_skip_ws(p);
        if (p->pos >= p->len)
            return xp_fail(p, p->pos, OB_ERR_PARSE, "no root element");
        if ((err = xp_misc(p, &handled)) != OB_OK)
            return err;
        if (handled)
            continue;
        if (p->s[p->pos] != '<')
            return xp_fail(p, p->pos, OB_ERR_PARSE, "text is not allowed outside the root element");
        if (p->pos + 1 >= p->len)
            return xp_eof(p, "in a tag");
        if (p->s[p->pos + 1] == '!')
            return xp_fail(p, p->pos, OB_ERR_PARSE, "unexpected markup before the root element");
        break;
    }
    if ((err = xp_start_tag(p)) != OB_OK)
        return err;
    /* Content. */
    while (p->depth > 0) {
        xml_frame_t *f = &p->frames[p->depth - 1];
        if (p->pos >= p->len)
            return xp_fail(p, p->len, OB_ERR_PARSE, "unexpected end of input: <%s> is not closed",
                           f->node->qname);
        char c = p->s[p->pos];
        if (c == '&') {
            err = xp_reference(p, &f->text);
        } else if (c != '<') {
            err = xp_chardata(p, &f->text);
        } else if (p->pos + 1 >= p->len) {
            err = xp_eof(p, "in a tag");
        } else if (p->s[p->pos + 1] == '/') {
            err = xp_end_tag(p);
        } else if (xp_at(p, "<![CDATA[")) {
            err = xp_cdata(p, &f->text);
        } else if (p->s[p->pos + 1] == '!' || p->s[p->pos + 1] == '?') {
            if ((err = xp_misc(p, &handled)) == OB_OK && !handled) {
                /* Could be a truncated "<![CDATA[" prefix. */
                if (p->len - p->pos < 9 && memcmp(p->s + p->pos, "<![CDATA[", p->len - p->pos) == 0)
                    err = xp_eof(p, "in a CDATA section");
                else
                    err = xp_fail(p, p->pos, OB_ERR_PARSE, "unexpected markup inside <%s>",
                                  f->node->qname);
            }
        } else {
            err = xp_start_tag(p);
        }
        if (err != OB_OK)
            return err;
    }
    /* Epilog. */
    for (;;) {
        xp_skip_ws(p);
        if (p->pos >= p->len)
            return OB_OK;
        if ((err = xp_misc(p, &handled)) != OB_OK)
            return err;
        if (!handled)
            return xp_fail(p, p->pos, OB_ERR_PARSE, "content after the root element");
    }
}

ob_err_t ob_xml_parse_ex(const char *data, size_t len, const ob_xml_limits_t *limits,
                         ob_xml_doc_t **out, char *errstr, size_t errstr_size)
{
    if (!out)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "ob_xml_parse: out is NULL");
    *out = NULL;
    if (!data && len > 0)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "ob_xml_parse: data is NULL");
    ob_xml_limits_t lim = {0};
    if (limits)
        lim = *limits;
    if (!lim.max_bytes)
        lim.max_bytes = OB_XML_DEFAULT_MAX_BYTES;
    if (!lim.max_depth)
        lim.max_depth = OB_XML_DEFAULT_MAX_DEPTH;
    if (lim.max_depth > OB_XML_MAX_DEPTH_CAP)
        lim.max_depth = OB_XML_MAX_DEPTH_CAP;
    if (!lim.max_nodes)
        lim.max_nodes = OB_XML_DEFAULT_MAX_NODES;
    if (!lim.max_attrs)
        lim.max_attrs = OB_XML_DEFAULT_MAX_ATTRS;
    if (len > lim.max_bytes)
        return ob_errf(errstr, errstr_size, OB_ERR_TOO_LARGE,
                       "line 1 col 1: XML input of %zu bytes exceeds the %zu byte limit", len,
                       lim.max_bytes);

    xml_parser_t p = {0};
    p.s = data ? data : "";
    p.len = len;
    p.max_nodes = lim.max_nodes;
    p.max_depth = lim.max_depth;
    p.max_attrs = lim.max_attrs;
    p.errstr = errstr;
    p.errstr_size = errstr_size;
    p.line = 1;

    ob_err_t err = xp_check_chars(&p);
    if (err != OB_OK)
        return err;
    p.doc = ob_calloc(1, sizeof(*p.doc));
    p.frames = ob_calloc(lim.max_depth, sizeof(*p.frames));
    if (!p.doc || !p.frames) {
        err = xp_nomem(&p);
    } else {
        err = xp_document(&p);
    }

    for (unsigned i = 0; p.frames && i < lim.max_depth; i++)
        ob_buf_free(&p.frames[i].text);
    free(p.frames);
    free(p.ns);
    free(p.attrs);
    ob_buf_free(&p.scratch);
    if (err != OB_OK) {
        ob_xml_free(p.doc);
        return err;
    }
    *out = p.doc;
    return OB_OK;
}

ob_err_t ob_xml_parse(const char *data, size_t len, ob_xml_doc_t **out, char *errstr,
                      size_t errstr_size)
{
    return ob_xml_parse_ex(data, len, NULL, out, errstr, errstr_size);
}

/* ---------------------------------------------------------------- access */

const ob_xml_node_t *ob_xml_root(const ob_xml_doc_t *doc)
{
    return doc ? doc->root : NULL;
}

const char *ob_xml_name(const ob_xml_node_t *node)
{
    return node ? node->local : NULL;
}

const char *ob_xml_qname(const ob_xml_node_t *node)
{
    return node ? node->qname : NULL;
}

const char *ob_xml_ns(const ob_xml_node_t *node)
{
    return node ? node->ns : NULL;
}

const char *ob_xml_text(const ob_xml_node_t *node)
{
    return node ? node->text : NULL;
}

unsigned long ob_xml_line(const ob_xml_node_t *node)
{
    return node ? node->line : 0;
}

const ob_xml_node_t *ob_xml_parent(const ob_xml_node_t *node)
{
    return node ? node->parent : NULL;
}

const ob_xml_node_t *ob_xml_first_child(const ob_xml_node_t *node)
{
    return node ? node->first_child : NULL;
}

const ob_xml_node_t *ob_xml_child(const ob_xml_node_t *node, const char *local_name)
{
    if (!node)
        return NULL;
    for (const ob_xml_node_t *c = node->first_child; c; c = c->next)
        if (!local_name || strcmp(c->local, local_name) == 0)
            return c;
    return NULL;
}

const ob_xml_node_t *ob_xml_next(const ob_xml_node_t *node, const char *local_name)
{
    if (!node)
        return NULL;
    for (const ob_xml_node_t *c = node->next; c; c = c->next)
        if (!local_name || strcmp(c->local, local_name) == 0)
            return c;
    return NULL;
}

size_t ob_xml_child_count(const ob_xml_node_t *node, const char *local_name)
{
    size_t n = 0;
    for (const ob_xml_node_t *c = ob_xml_child(node, local_name); c; c = ob_xml_next(c, local_name))
        n++;
    return n;
}

const char *ob_xml_attr(const ob_xml_node_t *node, const char *name)
{
    if (!node || !name)
        return NULL;
    for (size_t i = 0; i < node->nattrs; i++)
        if (strcmp(node->attrs[i].name, name) == 0)
            return node->attrs[i].value;
    if (strchr(name, ':'))
        return NULL;
    for (size_t i = 0; i < node->nattrs; i++) {
        const xml_attr_t *a = &node->attrs[i];
        if (strcmp(a->name, "xmlns") == 0 || strncmp(a->name, "xmlns:", 6) == 0)
            continue;
        if (strcmp(a->local, name) == 0)
            return a->value;
    }
    return NULL;
}

size_t ob_xml_attr_count(const ob_xml_node_t *node)
{
    return node ? node->nattrs : 0;
}

const char *ob_xml_attr_name(const ob_xml_node_t *node, size_t i)
{
    return node && i < node->nattrs ? node->attrs[i].name : NULL;
}

const char *ob_xml_attr_value(const ob_xml_node_t *node, size_t i)
{
    return node && i < node->nattrs ? node->attrs[i].value : NULL;
}

const ob_xml_node_t *ob_xml_path(const ob_xml_node_t *node, const char *path)
{
    if (!node || !path)
        return NULL;
    const char *s = path;
    while (node && *s) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (n > 0) {
            const ob_xml_node_t *c = node->first_child;
            while (c && !(strlen(c->local) == n && memcmp(c->local, s, n) == 0))
                c = c->next;
            node = c;
        }
        s += n;
        if (*s == '/')
            s++;
    }
    return node;
}

const char *ob_xml_path_text(const ob_xml_node_t *node, const char *path)
{
    const ob_xml_node_t *n = ob_xml_path(node, path);
    return n ? n->text : NULL;
}

/* ---------------------------------------------------------------- escape */

ob_err_t ob_xml_escape(ob_buf_t *out, const char *s)
{
    if (!out || !s)
        return OB_ERR_INVALID_ARG;
    size_t orig = out->len;
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '&' && u[run] != '<' &&
               u[run] != '>' && u[run] != '"' && u[run] != '\'')
            run++;
        if (run > i && ob_buf_append(out, s + i, run - i) != OB_OK)
            goto nomem;
        i = run;
        if (i >= n)
            break;
        const char *rep = NULL;
        switch (u[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '\r':
            rep = "&#13;";
            break;
        default:
            break;
        }
        if (rep) {
            if (ob_buf_puts(out, rep) != OB_OK)
                goto nomem;
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_decode(u + i, n - i, &cp);
        if (len == 0 || !xml_is_char(cp)) {
            out->len = orig;
            if (out->data)
                out->data[orig] = '\0';
            return OB_ERR_INVALID_ARG;
        }
        if (ob_buf_append(out, s + i, len) != OB_OK)
            goto nomem;
        i += len;
    }
    return OB_OK;
nomem:
    out->len = orig;
    if (out->data)
        out->data[orig] = '\0';
    return OB_ERR_NOMEM;
}
