/*
 * fuzz_xml: the XML parser (lib/aws/ob_xml.h).
 *
 * The input is parsed with the default limits and every node of the tree is
 * read back through the accessors. Properties:
 *   - escaping round-trips: every element's text and every attribute value,
 *     escaped with ob_xml_escape() into a small document, parses back to the
 *     same string (a value the parser produced is one XML can carry);
 *   - limits only ever refuse: parsed again under tight limits (picked from
 *     the first byte), a document that parsed either parses or fails with
 *     OB_ERR_TOO_LARGE, and one that did not parse still does not.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "ob_xml.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static void check_text_roundtrip(const char *text)
{
    ob_buf_t b = {0};
    if (ob_buf_puts(&b, "<a>") != OB_OK)
        fuzz_fail("out of memory");
    if (ob_xml_escape(&b, text) != OB_OK)
        fuzz_fail("text the parser produced cannot be escaped: \"%s\"", text);
    if (ob_buf_puts(&b, "</a>") != OB_OK)
        fuzz_fail("out of memory");
    ob_xml_doc_t *doc = NULL;
    char errstr[256];
    if (ob_xml_parse(b.data, b.len, &doc, errstr, sizeof(errstr)) != OB_OK)
        fuzz_fail("escaped text does not parse (%s): %s", errstr, b.data);
    const char *back = ob_xml_text(ob_xml_root(doc));
    if (strcmp(back, text) != 0)
        fuzz_fail("escaped text comes back changed: \"%s\" -> \"%s\"", text, back);
    ob_xml_free(doc);
    ob_buf_free(&b);
}

static void check_attr_roundtrip(const char *value)
{
    /* TAB and LF in an attribute read back as spaces (documented): skip. */
    if (strpbrk(value, "\t\n"))
        return;
    ob_buf_t b = {0};
    if (ob_buf_puts(&b, "<a v=\"") != OB_OK)
        fuzz_fail("out of memory");
    if (ob_xml_escape(&b, value) != OB_OK)
        fuzz_fail("an attribute value the parser produced cannot be escaped: \"%s\"", value);
    if (ob_buf_puts(&b, "\"/>") != OB_OK)
        fuzz_fail("out of memory");
    ob_xml_doc_t *doc = NULL;
    char errstr[256];
    if (ob_xml_parse(b.data, b.len, &doc, errstr, sizeof(errstr)) != OB_OK)
        fuzz_fail("escaped attribute does not parse (%s): %s", errstr, b.data);
    const char *back = ob_xml_attr(ob_xml_root(doc), "v");
    if (!back || strcmp(back, value) != 0)
        fuzz_fail("escaped attribute comes back changed: \"%s\" -> \"%s\"", value,
                  back ? back : "(none)");
    ob_xml_free(doc);
    ob_buf_free(&b);
}

static void walk(const ob_xml_node_t *n, unsigned depth)
{
    const char *name = ob_xml_name(n);
    if (!name || !ob_xml_qname(n) || !ob_xml_ns(n) || !ob_xml_text(n))
        fuzz_fail("an element without a name, namespace or text");
    if (ob_xml_line(n) < 1)
        fuzz_fail("an element on line 0");
    const char *text = ob_xml_text(n);
    if (*text)
        check_text_roundtrip(text);
    size_t na = ob_xml_attr_count(n);
    for (size_t i = 0; i < na; i++) {
        const char *an = ob_xml_attr_name(n, i), *av = ob_xml_attr_value(n, i);
        if (!an || !av)
            fuzz_fail("attribute %zu of %zu is missing", i, na);
        if (!ob_xml_attr(n, an))
            fuzz_fail("attribute \"%s\" not found by its name", an);
        check_attr_roundtrip(av);
    }
    if (ob_xml_attr_name(n, na) != NULL)
        fuzz_fail("an attribute past the end");

    size_t count = 0;
    for (const ob_xml_node_t *c = ob_xml_first_child(n); c; c = ob_xml_next(c, NULL)) {
        if (ob_xml_parent(c) != n)
            fuzz_fail("a child whose parent is another element");
        if (ob_xml_child(n, ob_xml_name(c)) == NULL)
            fuzz_fail("child <%s> not found by its name", ob_xml_name(c));
        walk(c, depth + 1);
        count++;
    }
    if (count != ob_xml_child_count(n, NULL))
        fuzz_fail("child count %zu, but %zu children walked", ob_xml_child_count(n, NULL), count);
    if (depth > OB_XML_DEFAULT_MAX_DEPTH)
        fuzz_fail("a tree deeper than the limit");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *xml = (const char *)data;
    char errstr[256];
    ob_xml_doc_t *doc = NULL;
    ob_err_t rc = ob_xml_parse(xml, size, &doc, errstr, sizeof(errstr));
    if (rc == OB_OK) {
        const ob_xml_node_t *root = ob_xml_root(doc);
        if (!root || ob_xml_parent(root) != NULL)
            fuzz_fail("a document without a root");
        walk(root, 1);
        /* The lookups the AWS reply parsers make. */
        (void)ob_xml_path_text(root, "Error/Code");
        (void)ob_xml_path_text(root, "ResponseMetadata/RequestId");
        (void)ob_xml_path(root, "//a//b/");
        ob_xml_free(doc);
    } else if (doc) {
        fuzz_fail("a failed parse returned a document");
    } else if (strncmp(errstr, "line ", 5) != 0 && rc != OB_ERR_NOMEM) {
        fuzz_fail("an error without its position: %s", errstr);
    }

    unsigned b = size ? data[0] : 0;
    ob_xml_limits_t lim = {
        .max_bytes = size > 1 ? size - (b & 1) : 0,
        .max_depth = 1 + (b >> 1) % 6,
        .max_nodes = 1 + (b >> 2) % 24,
        .max_attrs = 1 + (b >> 5),
    };
    ob_xml_doc_t *tight = NULL;
    ob_err_t rt = ob_xml_parse_ex(xml, size, &lim, &tight, errstr, sizeof(errstr));
    if (rc == OB_OK && rt != OB_OK && rt != OB_ERR_TOO_LARGE)
        fuzz_fail("parses, but under tighter limits fails with %d: %s", (int)rt, errstr);
    if (rc != OB_OK && rt == OB_OK)
        fuzz_fail("does not parse, but does under tighter limits");
    ob_xml_free(tight);
    return 0;
}
