/*
 * ob_schema: the message schemas of proto/, compiled into the binary, and a
 * validator that enforces them: the one place a message's rules are written
 * (names, required members, types, lengths, ranges, patterns, enums) is the
 * schema; the codec (ob_msg) asks this module instead of repeating them.
 *
 * The validator knows the JSON Schema 2020-12 keywords the schemas use: type,
 * const, enum, minLength/maxLength (in characters), pattern (ob_re),
 * format date-time (a real date and time), minimum/maximum, required,
 * properties, additionalProperties, propertyNames, min/maxProperties, items,
 * min/maxItems, uniqueItems, contains, allOf, anyOf, oneOf, not, if/then/else,
 * $ref (to another schema file or within one) and the annotations
 * (description, $comment, default, title, examples, writeOnly...). A schema
 * that uses any other keyword is refused when the schemas load, so no schema
 * can ask for a rule that nothing enforces.
 *
 * The cross-member rules (if/then/else, oneOf, not over required) are the
 * schemas' too: Parquet needs Parquet compression, an AWS request needs a
 * role, a dead letter keeps its payload as JSON or as base64 but not both.
 * An object's members are checked in the order of "properties", each with
 * what the rules that hold say of it, so the answer names the first member
 * that is wrong. Inside a rule that holds, a failure is "combination" unless
 * a member is missing ("missing"; "combination" when its default is what
 * breaks the rule), of the wrong type or of the wrong form; the rule's
 * description is the sentence.
 *
 * The first problem found is reported as the codec reports it: a JSON pointer
 * to the member, a code (type, missing, unknown_field, pattern, range, enum,
 * combination), and a sentence for people that starts with the pointer. A
 * value under a schema marked writeOnly (an ExternalId) is never echoed.
 *
 * Cost: every schema node's keywords are indexed when the schemas load, and
 * names the codec asks for are resolved once; a failure is only put into
 * words when it is the answer.
 *
 * Threading: the schemas load once (the first call, under a once-only guard)
 * and are read-only after; validation is reentrant.
 */
#ifndef OB_SCHEMA_H
#define OB_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

#include "ob_err.h"

/* One compiled-in schema file (ob_proto_files.c, generated from proto/). */
typedef struct ob_proto_file_s {
    const char *name; /* "onboard.request.v1.json"; NULL ends the table */
    const char *text;
    size_t len;
} ob_proto_file_t;
extern const ob_proto_file_t ob_proto_files[];

typedef struct ob_schema_error_s {
    char field[256];   /* JSON pointer of the offending member; "" = the whole document */
    char code[24];     /* type, missing, unknown_field, pattern, range, enum */
    char message[512]; /* "<field>: <what is wrong>" */
} ob_schema_error_t;

/* Validate doc against the schema file `name` ("onboard.request.v1.json")
 * or a part of it (`name` "onboard.stage.v1.json#/$defs/normalized_request").
 * OB_OK; OB_ERR_PARSE with err filled; OB_ERR_CONFIG when the schemas cannot
 * be loaded or name is unknown (err->message says why). */
ob_err_t ob_schema_validate(const char *name, const json_t *doc, ob_schema_error_t *err);

/* The schema (sub)document of `name`, as above (borrowed; NULL when
 * unknown): for the codec's defaults and for tests. */
const json_t *ob_schema_get(const char *name);

/* A JSON value's type as messages name it: "an object", "a string", "an
 * integer", "a number with a fraction or exponent", "a boolean", "null"... */
const char *ob_schema_type_of(const json_t *v);

/* Release what loading the schemas took (for leak checkers at exit). */
void ob_schema_unload(void);

#endif
