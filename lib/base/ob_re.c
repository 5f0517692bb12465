/*
 * ob_re: a recursive-descent parser to a tree, the tree compiled to a small
 * program (sets of bytes, splits, jumps, anchors, match), and a Thompson
 * simulation of the program: every thread advances on the same byte, states
 * reached twice at one position are kept once, so matching costs at most
 * (program length x subject length) steps.
 */
#include "ob_re.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "ob_alloc.h"
#include "ob_hash.h"

#define MAX_COUNT 1000  /* largest {n,m} */
#define MAX_PROG  20000 /* instructions of a compiled pattern */
#define MAX_DEPTH 200   /* nesting of groups */

/* ---- the tree ---- */

typedef enum { N_SET, N_BOL, N_EOL, N_CAT, N_ALT, N_REP, N_EMPTY } ntype_t;

typedef struct node_s {
    ntype_t type;
    int set;              /* N_SET: index into the sets */
    struct node_s **kids; /* N_CAT, N_ALT: nkids; N_REP: one */
    size_t nkids;
    int min, max; /* N_REP: max -1 is unbounded */
} node_t;

typedef struct set_s {
    uint8_t bits[32];
} set_t;

typedef struct parser_s {
    const char *pat;
    size_t pos, len;
    int depth;
    set_t *sets;
    size_t nsets, capsets;
    char *err;
    size_t errsz;
    int failed;
} parser_t;

static node_t *fail_at(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static node_t *fail_at(parser_t *p, const char *fmt, ...)
{
    if (!p->failed) {
        char what[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        snprintf(p->err, p->errsz, "pattern %.200s: %s at offset %zu", p->pat, what, p->pos);
        p->failed = 1;
    }
    return NULL;
}

static node_t *node_new(ntype_t t)
{
    node_t *n = ob_calloc(1, sizeof(*n));
    n->type = t;
    return n;
}

static void node_free(node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n);
}

static void node_add(node_t *n, node_t *kid)
{
    n->kids = ob_realloc(n->kids, (n->nkids + 1) * sizeof(*n->kids));
    n->kids[n->nkids++] = kid;
}

static int set_new(parser_t *p)
{
    if (p->nsets == p->capsets) {
        p->capsets = p->capsets ? 2 * p->capsets : 8;
        p->sets = ob_realloc(p->sets, p->capsets * sizeof(*p->sets));
    }
    memset(&p->sets[p->nsets], 0, sizeof(set_t));
    return (int)p->nsets++;
}

static void set_add(set_t *s, unsigned c)
{
    s->bits[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static int set_has(const set_t *s, unsigned c)
{
    return (s->bits[c >> 3] >> (c & 7)) & 1;
}

static void set_range(set_t *s, unsigned a, unsigned b)
{
    for (unsigned c = a; c <= b; c++)
        set_add(s, c);
}

static void set_invert(set_t *s)
{
    for (int i = 0; i < 32; i++)
        s->bits[i] = (uint8_t)~s->bits[i];
}

/* \d \w \s (and, inverted, \D \W \S) into s; 0 when c is not one of them. */
static int class_escape(set_t *s, char c)
{
    set_t t;
    memset(&t, 0, sizeof(t));
    switch (c) {
    case 'd':
    case 'D':
        set_range(&t, '0', '9');
        break;
    case 'w':
    case 'W':
        set_range(&t, '0', '9');
        set_range(&t, 'A', 'Z');
        set_range(&t, 'a', 'z');
        set_add(&t, '_');
        break;
    case 's':
    case 'S':
        set_add(&t, ' ');
        set_range(&t, '\t', '\r');
        break;
    default:
        return 0;
    }
    if (c == 'D' || c == 'W' || c == 'S')
        set_invert(&t);
    for (int i = 0; i < 32; i++)
        s->bits[i] |= t.bits[i];
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* An escaped single character after the backslash (p->pos at it): its byte,
 * or -1 (failed). \d and the like are the caller's. */
static int escape_char(parser_t *p)
{
    char c = p->pat[p->pos++];
    switch (c) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'f':
        return '\f';
    case 'v':
        return '\v';
    case '0':
        return 0;
    case 'x':
    case 'u': {
        int digits = c == 'x' ? 2 : 4, v = 0;
        for (int i = 0; i < digits; i++) {
            int h = p->pos < p->len ? hexval(p->pat[p->pos]) : -1;
            if (h < 0) {
                fail_at(p, "\\%c needs %d hex digits", c, digits);
                return -1;
            }
            v = v * 16 + h;
            p->pos++;
        }
        if (v > 0x7f) {
            fail_at(p, "only ASCII characters are supported in escapes");
            return -1;
        }
        return v;
    }
    default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9')) {
            p->pos--;
            fail_at(p, "\\%c is not supported", c);
            return -1;
        }
        return (unsigned char)c;
    }
}

static node_t *parse_class(parser_t *p)
{
    p->pos++; /* [ */
    int si = set_new(p);
    int neg = 0;
    if (p->pos < p->len && p->pat[p->pos] == '^') {
        neg = 1;
        p->pos++;
    }
    int first = 1;
    for (;;) {
        if (p->pos >= p->len)
            return fail_at(p, "unterminated class");
        char c = p->pat[p->pos];
        if (c == ']' && !first) {
            p->pos++;
            break;
        }
        first = 0;
        int lo;
        if (c == '\\') {
            p->pos++;
            if (p->pos >= p->len)
                return fail_at(p, "a class ends in a backslash");
            if (class_escape(&p->sets[si], p->pat[p->pos])) {
                p->pos++;
                continue;
            }
            if ((lo = escape_char(p)) < 0)
                return NULL;
        } else {
            lo = (unsigned char)c;
            p->pos++;
        }
        /* A range a-b; "-" first or last is itself. */
        if (p->pos + 1 < p->len && p->pat[p->pos] == '-' && p->pat[p->pos + 1] != ']') {
            p->pos++;
            int hi;
            if (p->pat[p->pos] == '\\') {
                p->pos++;
                if (p->pos >= p->len)
                    return fail_at(p, "a class ends in a backslash");
                if (class_escape(&p->sets[si], p->pat[p->pos]))
                    return fail_at(p, "a range cannot end in a class escape");
                if ((hi = escape_char(p)) < 0)
                    return NULL;
            } else {
                hi = (unsigned char)p->pat[p->pos++];
            }
            if (hi < lo)
                return fail_at(p, "range out of order");
            set_range(&p->sets[si], (unsigned)lo, (unsigned)hi);
        } else {
            set_add(&p->sets[si], (unsigned)lo);
        }
    }
    if (neg)
        set_invert(&p->sets[si]);
    node_t *n = node_new(N_SET);
    n->set = si;
    return n;
}

static node_t *parse_alt(parser_t *p);

static node_t *single(parser_t *p, int byte)
{
    int si = set_new(p);
    set_add(&p->sets[si], (unsigned)byte);
    node_t *n = node_new(N_SET);
    n->set = si;
    return n;
}

static node_t *parse_atom(parser_t *p)
{
    char c = p->pat[p->pos];
    switch (c) {
    case '(': {
        p->pos++;
        if (p->pos < p->len && p->pat[p->pos] == '?') {
            if (p->pos + 1 < p->len && p->pat[p->pos + 1] == ':')
                p->pos += 2;
            else
                return fail_at(p, "lookaround and named groups are not supported");
        }
        if (++p->depth > MAX_DEPTH)
            return fail_at(p, "groups nested too deep");
        node_t *n = parse_alt(p);
        p->depth--;
        if (!n)
            return NULL;
        if (p->pos >= p->len || p->pat[p->pos] != ')') {
            node_free(n);
            return fail_at(p, "missing )");
        }
        p->pos++;
        return n;
    }
    case '[':
        return parse_class(p);
    case '.': {
        p->pos++;
        int si = set_new(p);
        set_invert(&p->sets[si]);
        node_t *n = node_new(N_SET);
        n->set = si;
        return n;
    }
    case '^':
        p->pos++;
        return node_new(N_BOL);
    case '$':
        p->pos++;
        return node_new(N_EOL);
    case '\\': {
        p->pos++;
        if (p->pos >= p->len)
            return fail_at(p, "the pattern ends in a backslash");
        int si = set_new(p);
        if (class_escape(&p->sets[si], p->pat[p->pos])) {
            p->pos++;
            node_t *n = node_new(N_SET);
            n->set = si;
            return n;
        }
        p->nsets--; /* not needed after all */
        int b = escape_char(p);
        return b < 0 ? NULL : single(p, b);
    }
    case '*':
    case '+':
    case '?':
    case '{':
        return fail_at(p, "nothing to repeat");
    default:
        p->pos++;
        return single(p, (unsigned char)c);
    }
}

/* A count of {n,m}: digits, at most MAX_COUNT. */
static int parse_count(parser_t *p, int *out)
{
    int v = 0, digits = 0;
    while (p->pos < p->len && p->pat[p->pos] >= '0' && p->pat[p->pos] <= '9') {
        v = v * 10 + (p->pat[p->pos++] - '0');
        if (++digits > 4 || v > MAX_COUNT)
            return -1;
    }
    *out = v;
    return digits ? 0 : -1;
}

static node_t *parse_repeat(parser_t *p)
{
    node_t *a = parse_atom(p);
    while (a && p->pos < p->len) {
        char c = p->pat[p->pos];
        int min, max;
        if (c == '*')
            min = 0, max = -1;
        else if (c == '+')
            min = 1, max = -1;
        else if (c == '?')
            min = 0, max = 1;
        else if (c == '{') {
            p->pos++;
            if (parse_count(p, &min) != 0) {
                node_free(a);
                return fail_at(p, "a count in { } must be 0 to %d", MAX_COUNT);
            }
            max = min;
            if (p->pos < p->len && p->pat[p->pos] == ',') {
                p->pos++;
                if (p->pos < p->len && p->pat[p->pos] == '}')
                    max = -1;
                else if (parse_count(p, &max) != 0 || max < min) {
                    node_free(a);
                    return fail_at(p,
                                   "a count in { } must be 0 to %d, the second not below "
                                   "the first",
                                   MAX_COUNT);
                }
            }
            if (p->pos >= p->len || p->pat[p->pos] != '}') {
                node_free(a);
                return fail_at(p, "missing }");
            }
        } else
            break;
        p->pos++;
        if (p->pos < p->len && p->pat[p->pos] == '?') {
            node_free(a);
            return fail_at(p, "lazy quantifiers are not supported");
        }
        if (a->type == N_BOL || a->type == N_EOL) {
            node_free(a);
            return fail_at(p, "an anchor cannot be repeated");
        }
        node_t *r = node_new(N_REP);
        node_add(r, a);
        r->min = min;
        r->max = max;
        a = r;
    }
    return a;
}

static node_t *parse_cat(parser_t *p)
{
    node_t *cat = node_new(N_CAT);
    while (p->pos < p->len && p->pat[p->pos] != '|' && p->pat[p->pos] != ')') {
        node_t *k = parse_repeat(p);
        if (!k) {
            node_free(cat);
            return NULL;
        }
        node_add(cat, k);
    }
    return cat;
}

static node_t *parse_alt(parser_t *p)
{
    node_t *first = parse_cat(p);
    if (!first || p->pos >= p->len || p->pat[p->pos] != '|')
        return first;
    node_t *alt = node_new(N_ALT);
    node_add(alt, first);
    while (p->pos < p->len && p->pat[p->pos] == '|') {
        p->pos++;
        node_t *k = parse_cat(p);
        if (!k) {
            node_free(alt);
            return NULL;
        }
        node_add(alt, k);
    }
    return alt;
}

/* ---- the program ---- */

typedef enum { I_SET, I_SPLIT, I_JMP, I_BOL, I_EOL, I_MATCH } op_t;

typedef struct inst_s {
    uint8_t op;
    int x, y; /* I_SET: x the set; I_SPLIT: x and y; I_JMP: x */
} inst_t;

/* A state of the lazy DFA: the threads (I_SET pcs, sorted) alive after a
 * position, whether the subject matched already, whether it matches if the
 * subject ends here, and the state each byte leads to (-1: not built yet). */
typedef struct dstate_s {
    int *pcs;
    size_t npcs;
    int matched, at_end;
    int next[]; /* per byte class (-1: not built yet) */
} dstate_t;

#define DFA_MAX_STATES 1024 /* beyond: the plain simulation */

struct ob_re_s {
    char *pattern;
    inst_t *prog;
    size_t n;
    set_t *sets;
    /* Bytes no set of the pattern tells apart share a class: a DFA state
     * has a transition per class, not per byte. */
    uint8_t byte_class[256];
    int nclasses;
    /* The DFA, built as subjects need it (under lock): matching a field of
     * the same form again walks a table, one step per byte. */
    pthread_mutex_t lock;
    dstate_t **states;
    size_t nstates;
    int *slots; /* open addressing on the pcs: state index + 1, 0 free */
    size_t nslots;
    int start; /* -1 until built */
};

typedef struct emit_s {
    inst_t *prog;
    size_t n, cap;
    int over;
} emit_t;

static int emit(emit_t *e, op_t op, int x, int y)
{
    if (e->n >= MAX_PROG) {
        e->over = 1;
        return (int)e->n;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->prog = ob_realloc(e->prog, e->cap * sizeof(*e->prog));
    }
    e->prog[e->n] = (inst_t){(uint8_t)op, x, y};
    return (int)e->n++;
}

static void compile(emit_t *e, const node_t *n)
{
    if (e->over)
        return;
    switch (n->type) {
    case N_EMPTY:
        break;
    case N_SET:
        emit(e, I_SET, n->set, 0);
        break;
    case N_BOL:
        emit(e, I_BOL, 0, 0);
        break;
    case N_EOL:
        emit(e, I_EOL, 0, 0);
        break;
    case N_CAT:
        for (size_t i = 0; i < n->nkids; i++)
            compile(e, n->kids[i]);
        break;
    case N_ALT: {
        /* split L1, next; L1: a; jmp end; next: split L2, next2; ... */
        int *jumps = ob_calloc(n->nkids, sizeof(int));
        for (size_t i = 0; i < n->nkids; i++) {
            int split = -1;
            if (i + 1 < n->nkids)
                split = emit(e, I_SPLIT, 0, 0);
            if (split >= 0 && !e->over)
                e->prog[split].x = (int)e->n;
            compile(e, n->kids[i]);
            if (i + 1 < n->nkids) {
                jumps[i] = emit(e, I_JMP, 0, 0);
                if (split >= 0 && !e->over)
                    e->prog[split].y = (int)e->n;
            }
        }
        for (size_t i = 0; i + 1 < n->nkids && !e->over; i++)
            e->prog[jumps[i]].x = (int)e->n;
        free(jumps);
        break;
    }
    case N_REP: {
        const node_t *k = n->kids[0];
        for (int i = 0; i < n->min; i++)
            compile(e, k);
        if (n->max < 0) {
            /* L: split body, end; body; jmp L */
            int l = emit(e, I_SPLIT, 0, 0);
            if (!e->over)
                e->prog[l].x = (int)e->n;
            compile(e, k);
            emit(e, I_JMP, l, 0);
            if (!e->over)
                e->prog[l].y = (int)e->n;
        } else {
            /* (k(k(k)?)?)?: each optional copy may skip to the end. */
            int opt = n->max - n->min;
            int *splits = ob_calloc((size_t)(opt ? opt : 1), sizeof(int));
            for (int i = 0; i < opt; i++) {
                splits[i] = emit(e, I_SPLIT, 0, 0);
                if (!e->over)
                    e->prog[splits[i]].x = (int)e->n;
                compile(e, k);
            }
            for (int i = 0; i < opt && !e->over; i++)
                e->prog[splits[i]].y = (int)e->n;
            free(splits);
        }
        break;
    }
    }
}

ob_re_t *ob_re_compile(const char *pattern, char *errstr, size_t errstr_size)
{
    char scratch[8];
    parser_t p = {pattern,
                  0,
                  strlen(pattern),
                  0,
                  NULL,
                  0,
                  0,
                  errstr ? errstr : scratch,
                  errstr ? errstr_size : sizeof(scratch),
                  0};
    node_t *root = parse_alt(&p);
    if (root && p.pos < p.len) {
        node_free(root);
        root = fail_at(&p, "unbalanced )");
    }
    if (!root) {
        free(p.sets);
        return NULL;
    }
    emit_t e = {0};
    compile(&e, root);
    emit(&e, I_MATCH, 0, 0);
    node_free(root);
    if (e.over) {
        free(e.prog);
        free(p.sets);
        snprintf(p.err, p.errsz,
                 "pattern %.200s: more than %d instructions once counts are "
                 "expanded",
                 pattern, MAX_PROG);
        return NULL;
    }
    ob_re_t *re = ob_calloc(1, sizeof(*re));
    re->pattern = ob_strdup(pattern);
    re->prog = e.prog;
    re->n = e.n;
    re->sets = p.sets;
    pthread_mutex_init(&re->lock, NULL);
    re->start = -1;
    size_t nsets = p.nsets;
    for (unsigned c = 0; c < 256; c++) {
        int k = 0;
        for (; k < re->nclasses; k++) {
            unsigned r = 0; /* the first byte of class k */
            while (re->byte_class[r] != k)
                r++;
            size_t i = 0;
            while (i < nsets && set_has(&re->sets[i], c) == set_has(&re->sets[i], r))
                i++;
            if (i == nsets)
                break;
        }
        re->byte_class[c] = (uint8_t)k;
        if (k == re->nclasses)
            re->nclasses++;
    }
    return re;
}

void ob_re_free(ob_re_t *re)
{
    if (!re)
        return;
    for (size_t i = 0; i < re->nstates; i++) {
        free(re->states[i]->pcs);
        free(re->states[i]);
    }
    free(re->states);
    free(re->slots);
    pthread_mutex_destroy(&re->lock);
    free(re->pattern);
    free(re->prog);
    free(re->sets);
    free(re);
}

const char *ob_re_pattern(const ob_re_t *re)
{
    return re->pattern;
}

/* ---- matching ---- */

typedef struct threads_s {
    int *pc;
    size_t n;
} threads_t;

typedef struct sim_s {
    const ob_re_t *re;
    unsigned *seen; /* seen[pc] == gen: pc already in the list for this position */
    unsigned gen;
    int *stack;
    size_t len;
} sim_t;

/* Add pc and everything reachable from it without a byte to t, at position
 * pos. 1 when a MATCH is reached. */
static int add(sim_t *m, threads_t *t, int pc0, size_t pos)
{
    size_t sp = 0;
    m->stack[sp++] = pc0;
    while (sp > 0) {
        int pc = m->stack[--sp];
        if (m->seen[pc] == m->gen)
            continue;
        m->seen[pc] = m->gen;
        const inst_t *in = &m->re->prog[pc];
        switch (in->op) {
        case I_MATCH:
            return 1;
        case I_JMP:
            m->stack[sp++] = in->x;
            break;
        case I_SPLIT:
            m->stack[sp++] = in->y;
            m->stack[sp++] = in->x;
            break;
        case I_BOL:
            if (pos == 0)
                m->stack[sp++] = pc + 1;
            break;
        case I_EOL:
            if (pos == m->len)
                m->stack[sp++] = pc + 1;
            break;
        case I_SET:
            t->pc[t->n++] = pc;
            break;
        }
    }
    return 0;
}

/* What a match works in, for a program of n instructions: two thread lists
 * (n each; a list holds each pc at most once), the closure's stack (2n + 2:
 * every pc's two successors) and the DFA's seeds (n + 1); seen[n]. The
 * schemas' programs are a few hundred instructions: it fits on the stack,
 * and matching a field allocates nothing. */
#define SMALL_PROG 512
typedef struct work_s {
    size_t n;
    int *mem;
    unsigned *seen;
    unsigned gen;
    int mem_small[5 * SMALL_PROG + 3];
    unsigned seen_small[SMALL_PROG];
} work_t;

static void work_init(work_t *w, size_t n)
{
    w->n = n;
    w->mem = n <= SMALL_PROG ? w->mem_small : ob_malloc((5 * n + 3) * sizeof(int));
    w->seen = n <= SMALL_PROG ? w->seen_small : ob_malloc(n * sizeof(unsigned));
    memset(w->seen, 0, n * sizeof(unsigned));
    w->gen = 0;
}

static void work_done(work_t *w)
{
    if (w->n > SMALL_PROG) {
        free(w->mem);
        free(w->seen);
    }
}

static int nfa_match(const ob_re_t *re, const char *s, size_t len)
{
    size_t n = re->n;
    work_t w;
    work_init(&w, n);
    threads_t cur = {w.mem, 0}, next = {w.mem + n, 0};
    sim_t m = {re, w.seen, 1, w.mem + 2 * n, len};
    int found = 0;
    for (size_t pos = 0;; pos++) {
        /* Not anchored: a match may start at any position. */
        if (add(&m, &cur, 0, pos)) {
            found = 1;
            break;
        }
        if (pos == len || cur.n == 0) {
            if (pos == len)
                break;
            /* Nothing alive: the next start is the only thread. */
            m.gen++;
            continue;
        }
        unsigned char c = (unsigned char)s[pos];
        m.gen++;
        next.n = 0;
        for (size_t i = 0; i < cur.n && !found; i++) {
            const inst_t *in = &re->prog[cur.pc[i]];
            if (set_has(&re->sets[in->x], c))
                found = add(&m, &next, cur.pc[i] + 1, pos + 1);
        }
        if (found)
            break;
        threads_t tmp = cur;
        cur = next;
        next = tmp;
    }
    work_done(&w);
    return found;
}

/* ---- the lazy DFA ---- */

/*
 * A DFA state stands for the Thompson threads alive between two bytes, at a
 * position that is neither the subject's start nor (necessarily) its end:
 * ^ holds only in the start state, and $ is answered by at_end when the
 * subject runs out. The search is not anchored, so every step also starts a
 * thread at pc 0 (its ^ failing past the start), as the simulation does.
 */

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* The closure of seeds: the I_SET threads (sorted, once each) into t, and
 * whether MATCH is reached, with ^ true at pos 0 only and $ true when `end`. */
static int closure(const ob_re_t *re, const int *seeds, size_t nseeds, int bol, int end,
                   threads_t *t, unsigned *seen, unsigned gen, int *stack)
{
    /* Only whether pos is 0 and whether it is the length matter. */
    size_t pos = bol ? 0 : 1;
    sim_t m = {re, seen, gen, stack, end ? pos : pos + 1};
    int found = 0;
    t->n = 0;
    for (size_t i = 0; i < nseeds && !found; i++)
        found = add(&m, t, seeds[i], pos);
    qsort(t->pc, t->n, sizeof(int), cmp_int);
    return found;
}

/* The state of these seeds (built if new); -1 when the DFA is full. */
static int state_for(ob_re_t *re, const int *seeds, size_t nseeds, int bol, work_t *w)
{
    size_t n = re->n;
    threads_t t = {w->mem, 0}, t2 = {w->mem + n, 0};
    int matched = closure(re, seeds, nseeds, bol, 0, &t, w->seen, ++w->gen, w->mem + 2 * n);
    int at_end =
        matched || closure(re, seeds, nseeds, bol, 1, &t2, w->seen, ++w->gen, w->mem + 2 * n);
    uint64_t h = ob_hash_bytes(t.pc, t.n * sizeof(int)) ^ (uint64_t)(matched | at_end << 1);
    if (re->nslots) {
        for (size_t i = h & (re->nslots - 1);; i = (i + 1) & (re->nslots - 1)) {
            int k = re->slots[i];
            if (!k)
                break;
            const dstate_t *d = re->states[k - 1];
            if (d->npcs == t.n && d->matched == matched && d->at_end == at_end &&
                !memcmp(d->pcs, t.pc, t.n * sizeof(int)))
                return k - 1;
        }
    }
    if (re->nstates >= DFA_MAX_STATES)
        return -1;
    if (2 * (re->nstates + 1) > re->nslots) {
        size_t ns = re->nslots ? 2 * re->nslots : 64;
        int *slots = ob_calloc(ns, sizeof(int));
        for (size_t k = 0; k < re->nstates; k++) {
            const dstate_t *d = re->states[k];
            uint64_t hk = ob_hash_bytes(d->pcs, d->npcs * sizeof(int)) ^
                          (uint64_t)(d->matched | d->at_end << 1);
            size_t i = hk & (ns - 1);
            while (slots[i])
                i = (i + 1) & (ns - 1);
            slots[i] = (int)k + 1;
        }
        free(re->slots);
        re->slots = slots;
        re->nslots = ns;
        re->states = ob_realloc(re->states, ns / 2 * sizeof(*re->states));
    }
    dstate_t *d = ob_malloc(sizeof(*d) + (size_t)re->nclasses * sizeof(int));
    d->npcs = t.n;
    d->pcs = ob_malloc((t.n ? t.n : 1) * sizeof(int));
    memcpy(d->pcs, t.pc, t.n * sizeof(int));
    d->matched = matched;
    d->at_end = at_end;
    for (int c = 0; c < re->nclasses; c++)
        d->next[c] = -1;
    size_t i = h & (re->nslots - 1);
    while (re->slots[i])
        i = (i + 1) & (re->nslots - 1);
    re->slots[i] = (int)re->nstates + 1;
    re->states[re->nstates] = d;
    return (int)re->nstates++;
}

/* The state after byte c from state k; -1 when the DFA is full. */
static int step(ob_re_t *re, int k, unsigned char c, work_t *w)
{
    const dstate_t *d = re->states[k];
    int *seeds = w->mem + 4 * re->n + 2; /* room for npcs + 1 */
    size_t ns = 0;
    for (size_t i = 0; i < d->npcs; i++)
        if (set_has(&re->sets[re->prog[d->pcs[i]].x], c))
            seeds[ns++] = d->pcs[i] + 1;
    seeds[ns++] = 0; /* a match may start at any position */
    int to = state_for(re, seeds, ns, 0, w);
    if (to >= 0)
        re->states[k]->next[re->byte_class[c]] = to;
    return to;
}

int ob_re_match(const ob_re_t *cre, const char *s, size_t len)
{
    ob_re_t *re = (ob_re_t *)cre; /* the DFA cache is not part of what it means */
    if (len == 0)
        return nfa_match(re, s, len); /* ^ and $ at one position */
    pthread_mutex_lock(&re->lock);
    /* A walk through the states; a state or a transition not built yet is
     * built on the way (the slow path, while the DFA still grows). */
    work_t w;
    int have_work = 0;
    if (re->start < 0) {
        work_init(&w, re->n);
        have_work = 1;
        int zero = 0;
        re->start = state_for(re, &zero, 1, 1, &w);
    }
    int result = -1; /* -1: the DFA is full, ask the simulation */
    size_t pos = 0;
    for (int k = re->start; k >= 0; pos++) {
        const dstate_t *d = re->states[k];
        if (d->matched || pos == len) {
            result = d->matched ? 1 : d->at_end;
            break;
        }
        unsigned char c = (unsigned char)s[pos];
        int to = d->next[re->byte_class[c]];
        if (to < 0) {
            if (!have_work) {
                work_init(&w, re->n);
                have_work = 1;
            }
            to = step(re, k, c, &w);
        }
        k = to;
    }
    pthread_mutex_unlock(&re->lock);
    if (have_work)
        work_done(&w);
    return result >= 0 ? result : nfa_match(re, s, len);
}
