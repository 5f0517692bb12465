/*
 * ob_re: the regular expressions of JSON Schema "pattern", as the message
 * schemas in proto/ write them, matched in linear time.
 *
 * The syntax is the ECMA-262 subset those schemas use: literals; "." (any
 * byte); escapes \. \\ \/ \- and the like, \d \w \s and their negations \D
 * \W \S; classes [a-z0-9_.-], [^~], with escapes inside; groups ( ) and
 * (?: ) (nothing is captured), alternation |; quantifiers * + ? {n} {n,}
 * {n,m} (counts up to 1000); anchors ^ and $. Anything else (lookaround,
 * backreferences, lazy quantifiers, Unicode classes) is refused at compile
 * time with a reason, so a schema cannot ask for a rule the codec would not
 * enforce.
 *
 * As JSON Schema says, a pattern is not implicitly anchored: it matches when
 * it matches anywhere in the string, and ^ $ anchor it. Matching is a
 * Thompson simulation of the compiled program (a set of threads advanced one
 * byte at a time): time linear in the subject's length whatever the pattern,
 * so no input can make a nested repetition such as ^(/([^~]|~[01])*)*$ take
 * exponential time. Bytes, not characters: classes are ASCII, and a byte of
 * a multi-byte UTF-8 character matches only "." and negated classes.
 *
 * The simulation's sets of threads are kept as the states of a DFA, built as
 * subjects need them (at most 1,024 per pattern; past that, the simulation
 * itself): matching a field of a form seen before is one table step per
 * byte.
 *
 * Ownership: ob_re_compile returns a program the caller frees. Threading:
 * ob_re_match may run on a program from any thread (the DFA it grows is
 * under the program's own lock).
 */
#ifndef OB_RE_H
#define OB_RE_H

#include <stddef.h>

typedef struct ob_re_s ob_re_t;

/* NULL with errstr set ("pattern ...: what is wrong at offset N") on a
 * pattern outside the subset above. */
ob_re_t *ob_re_compile(const char *pattern, char *errstr, size_t errstr_size);
/* 1 when the pattern matches s (len bytes), 0 when not. */
int ob_re_match(const ob_re_t *re, const char *s, size_t len);
void ob_re_free(ob_re_t *re);
/* The pattern it was compiled from. */
const char *ob_re_pattern(const ob_re_t *re);

#endif
