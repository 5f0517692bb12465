/*
 * ob_xml: a small, strict, non-validating XML 1.0 parser that builds a
 * read-only tree, plus an escaping helper for writing XML.
 *
 * It is enough for what AWS sends and what we send to AWS: S3 REST-XML
 * replies and request bodies (CreateBucketConfiguration...), Query-protocol
 * replies (<OpResponse><OpResult>...) and the XML error envelopes. Input must
 * be UTF-8 (a BOM is skipped; an XML declaration naming another encoding is
 * rejected). Comments and processing instructions are skipped, CDATA is
 * text, the five predefined entities and character references are decoded,
 * attributes are kept (xmlns included) and namespace prefixes are resolved.
 * There is no DTD support at all: a DOCTYPE is rejected, which closes the
 * door on entity-expansion attacks ("billion laughs") and external entities.
 *
 * Strictness: anything that is not well-formed (truncated input, mismatched
 * tags, undefined entities, bad UTF-8, characters XML forbids, unbound
 * namespace prefixes, duplicate attributes, text outside the root...) fails
 * with OB_ERR_PARSE and an errstr of the form "line L col C: reason" (column
 * counted in characters, both 1-based). Exceeding a limit (input size, depth,
 * node count, attributes per element) fails with OB_ERR_TOO_LARGE and the
 * same "line L col C: ..." prefix.
 *
 * Names: lookups compare element *local* names (prefix stripped), so
 * ob_xml_child(n, "Code") finds <Code>, <s3:Code> or <x:Code>. The qualified
 * name and the resolved namespace URI are available when they matter.
 *
 * Text: ob_xml_text() is the concatenation of an element's own character
 * data and CDATA (not its descendants'), with entities decoded and line ends
 * normalised to "\n". Whitespace-only text in an element that also has
 * child elements (indentation) is dropped, so it reads as "". Other text is
 * returned exactly, never trimmed.
 *
 * Ownership: ob_xml_parse() returns a document the caller frees with
 * ob_xml_free(). Every node and string pointer obtained from a document
 * stays valid, unchanged, until that document is freed. The input buffer is
 * not referenced after ob_xml_parse() returns.
 *
 * Thread safety: parsing is reentrant; a parsed document is immutable, so
 * any number of threads may read it concurrently. Freeing it must not race
 * with readers.
 */
#ifndef OB_XML_H
#define OB_XML_H

#include <stddef.h>

#include "ob_buf.h"
#include "ob_err.h"

typedef struct ob_xml_doc_s ob_xml_doc_t;
typedef struct ob_xml_node_s ob_xml_node_t;

#define OB_XML_DEFAULT_MAX_BYTES (4u * 1024u * 1024u)
#define OB_XML_DEFAULT_MAX_DEPTH 64u
#define OB_XML_DEFAULT_MAX_NODES 100000u
#define OB_XML_DEFAULT_MAX_ATTRS 256u
#define OB_XML_MAX_DEPTH_CAP     4096u /* larger max_depth values are clamped to this */

/* Parser limits; a zero field means its default. */
typedef struct ob_xml_limits_s {
    size_t max_bytes;   /* input length (default 4 MiB) */
    unsigned max_depth; /* element nesting, the root is depth 1 (default 64) */
    size_t max_nodes;   /* elements plus attributes (default 100000) */
    unsigned max_attrs; /* attributes on one element (default 256) */
} ob_xml_limits_t;

/* Parse len bytes of data (need not be NUL-terminated) with default limits.
 * On success *out owns the new document; on failure *out is NULL and errstr
 * says why. Errors: OB_ERR_PARSE, OB_ERR_TOO_LARGE, OB_ERR_NOMEM,
 * OB_ERR_INVALID_ARG. */
ob_err_t ob_xml_parse(const char *data, size_t len, ob_xml_doc_t **out, char *errstr,
                      size_t errstr_size);
/* Same with explicit limits (NULL = defaults). */
ob_err_t ob_xml_parse_ex(const char *data, size_t len, const ob_xml_limits_t *limits,
                         ob_xml_doc_t **out, char *errstr, size_t errstr_size);
/* Free a document and everything in it; NULL is a no-op. */
void ob_xml_free(ob_xml_doc_t *doc);

/* The root element (never NULL for a parsed document; NULL for NULL). */
const ob_xml_node_t *ob_xml_root(const ob_xml_doc_t *doc);

/* All accessors below accept NULL nodes and then return NULL. */

/* Local name ("Code" for <s3:Code>). */
const char *ob_xml_name(const ob_xml_node_t *node);
/* Qualified name as written ("s3:Code"). */
const char *ob_xml_qname(const ob_xml_node_t *node);
/* Namespace URI the element is in, "" when none. */
const char *ob_xml_ns(const ob_xml_node_t *node);
/* The element's own text (see above), "" when none. */
const char *ob_xml_text(const ob_xml_node_t *node);
/* 1-based line where the element's start tag begins. */
unsigned long ob_xml_line(const ob_xml_node_t *node);

const ob_xml_node_t *ob_xml_parent(const ob_xml_node_t *node);
const ob_xml_node_t *ob_xml_first_child(const ob_xml_node_t *node);
/* First child element with this local name (NULL name: first child). */
const ob_xml_node_t *ob_xml_child(const ob_xml_node_t *node, const char *local_name);
/* Next sibling element; with a name, the next sibling with that local name.
 * Iterate list members: for (m = ob_xml_child(l, "member"); m; m = ob_xml_next(m, "member")) */
const ob_xml_node_t *ob_xml_next(const ob_xml_node_t *node, const char *local_name);
/* Number of child elements with this local name (NULL: all children). */
size_t ob_xml_child_count(const ob_xml_node_t *node, const char *local_name);

/* Attribute value by qualified name ("xmlns", "xmlns:s3", "xsi:type"); when
 * no attribute has that exact name and name has no prefix, the first
 * attribute with that local name (namespace declarations excluded). */
const char *ob_xml_attr(const ob_xml_node_t *node, const char *name);
size_t ob_xml_attr_count(const ob_xml_node_t *node);
/* i-th attribute in document order (NULL when out of range). */
const char *ob_xml_attr_name(const ob_xml_node_t *node, size_t i);
const char *ob_xml_attr_value(const ob_xml_node_t *node, size_t i);

/* Walk a slash-separated path of child local names from node, taking the
 * first match at each step: ob_xml_path(root, "Error/Code"). Empty
 * components are ignored; "" is node itself. NULL when any step is absent. */
const ob_xml_node_t *ob_xml_path(const ob_xml_node_t *node, const char *path);
/* ob_xml_text() of ob_xml_path(), or NULL when the path is absent. */
const char *ob_xml_path_text(const ob_xml_node_t *node, const char *path);

/* Append s to out escaped for XML text or attribute values: & < > " ' become
 * entities and CR becomes &#13; (so it survives line-end normalisation).
 * s must be valid UTF-8 made of characters XML 1.0 allows (no NUL or other
 * C0 controls except TAB, LF, CR; no U+FFFE/U+FFFF): otherwise
 * OB_ERR_INVALID_ARG and out is left as it was. OB_ERR_NOMEM also leaves out
 * unchanged. Note that TAB and LF inside an attribute value read back as
 * spaces (XML attribute normalisation). */
ob_err_t ob_xml_escape(ob_buf_t *out, const char *s);

#endif
