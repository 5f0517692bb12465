/*
 * test_xml: the strict XML parser. Covers well-formed documents as AWS sends
 * them, every decoding rule (entities, character references, CDATA, line
 * ends, attribute normalisation, namespaces), every rejection path, the
 * limits, and robustness: each real reply in tests/fixtures/aws truncated at
 * every byte offset must fail cleanly, and random mutations must never crash
 * (run this under ASan/valgrind to make that meaningful).
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_xml.h"

static ob_xml_doc_t *parse_ok(const char *s)
{
    char err[256] = "";
    ob_xml_doc_t *doc = NULL;
    ob_err_t rc = ob_xml_parse(s, strlen(s), &doc, err, sizeof(err));
    if (rc != OB_OK)
        fail_msg("expected OK for <<%s>>, got %s: %s", s, ob_err2str(rc), err);
    assert_non_null(doc);
    return doc;
}

static void expect_err(const char *s, size_t len, ob_err_t want, const char *needle)
{
    char err[256] = "";
    ob_xml_doc_t *doc = (ob_xml_doc_t *)1;
    ob_err_t rc = ob_xml_parse(s, len, &doc, err, sizeof(err));
    if (rc != want)
        fail_msg("<<%.*s>>: expected %s, got %s (%s)", (int)len, s, ob_err2str(want),
                 ob_err2str(rc), err);
    assert_null(doc);
    if (strncmp(err, "line ", 5) != 0)
        fail_msg("error text lacks position: %s", err);
    if (needle && !strstr(err, needle))
        fail_msg("error text <<%s>> lacks <<%s>>", err, needle);
}

#define EXPECT_PARSE_ERR(lit, needle) expect_err(lit, strlen(lit), OB_ERR_PARSE, needle)

static char *fixture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/aws/%s", OB_FIXTURES, name);
    char *d = ob_test_read_file(path, len);
    if (!d)
        fail_msg("missing fixture %s", path);
    return d;
}

static void test_valid_reply(void **state)
{
    (void)state;
    size_t len;
    char *body = fixture("cfn_describe_stacks.xml", &len);
    char err[256];
    ob_xml_doc_t *doc = NULL;
    assert_int_equal(ob_xml_parse(body, len, &doc, err, sizeof(err)), OB_OK);
    const ob_xml_node_t *root = ob_xml_root(doc);
    assert_string_equal(ob_xml_name(root), "DescribeStacksResponse");
    assert_string_equal(ob_xml_ns(root), "http://cloudformation.amazonaws.com/doc/2010-05-15/");
    assert_string_equal(ob_xml_attr(root, "xmlns"),
                        "http://cloudformation.amazonaws.com/doc/2010-05-15/");
    assert_string_equal(ob_xml_text(root), ""); /* indentation only */
    const ob_xml_node_t *stack = ob_xml_path(root, "DescribeStacksResult/Stacks/member");
    assert_non_null(stack);
    assert_string_equal(ob_xml_path_text(stack, "StackStatus"), "CREATE_COMPLETE");
    assert_string_equal(ob_xml_path_text(stack, "StackName"), "MyStack");
    assert_null(ob_xml_path_text(stack, "StackStatusReason"));
    assert_int_equal(ob_xml_child_count(ob_xml_child(stack, "Outputs"), "member"), 2);
    const char *keys[2] = {"StartPage", "RoleArn"};
    int i = 0;
    for (const ob_xml_node_t *m = ob_xml_path(stack, "Outputs/member"); m;
         m = ob_xml_next(m, "member"), i++)
        assert_string_equal(ob_xml_path_text(m, "OutputKey"), keys[i]);
    assert_int_equal(i, 2);
    assert_string_equal(ob_xml_path_text(root, "ResponseMetadata/RequestId"),
                        "b9b4b068-3a41-11e5-94eb-example");
    /* "" and "//" paths are the node itself; empty components are ignored. */
    assert_ptr_equal(ob_xml_path(root, ""), root);
    assert_ptr_equal(ob_xml_path(root, "/ResponseMetadata//RequestId/"),
                     ob_xml_path(root, "ResponseMetadata/RequestId"));
    assert_int_equal(ob_xml_line(root), 1);
    assert_int_equal(ob_xml_line(stack), 4);
    assert_ptr_equal(ob_xml_parent(stack), ob_xml_path(root, "DescribeStacksResult/Stacks"));
    assert_ptr_equal(ob_xml_first_child(root), ob_xml_child(root, NULL));
    assert_null(ob_xml_next(ob_xml_child(root, "ResponseMetadata"), NULL));
    ob_xml_free(doc);
    free(body);
}

static void test_null_safety(void **state)
{
    (void)state;
    assert_null(ob_xml_root(NULL));
    assert_null(ob_xml_name(NULL));
    assert_null(ob_xml_text(NULL));
    assert_null(ob_xml_child(NULL, "x"));
    assert_null(ob_xml_next(NULL, NULL));
    assert_null(ob_xml_attr(NULL, "x"));
    assert_null(ob_xml_path(NULL, "a"));
    assert_null(ob_xml_path_text(NULL, "a"));
    assert_int_equal(ob_xml_child_count(NULL, NULL), 0);
    ob_xml_free(NULL);
    ob_xml_doc_t *doc;
    assert_int_equal(ob_xml_parse(NULL, 3, &doc, NULL, 0), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_xml_parse("<a/>", 4, NULL, NULL, 0), OB_ERR_INVALID_ARG);
    /* No NUL terminator needed: parse only the first 4 bytes. */
    ob_xml_doc_t *d = NULL;
    assert_int_equal(ob_xml_parse("<a/>garbage", 4, &d, NULL, 0), OB_OK);
    ob_xml_free(d);
}

static void test_entities_decoding(void **state)
{
    (void)state;
    ob_xml_doc_t *doc =
        parse_ok("<a t=\"&lt;&gt;&amp;&apos;&quot;\">&lt;&gt;&amp;&apos;&quot; &#65;&#x42;"
                 "&#233;&#x20AC;&#x1F600;&#xa;</a>");
    const ob_xml_node_t *r = ob_xml_root(doc);
    assert_string_equal(ob_xml_attr(r, "t"), "<>&'\"");
    assert_string_equal(ob_xml_text(r), "<>&'\" AB\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\n");
    ob_xml_free(doc);

    EXPECT_PARSE_ERR("<a>&#0;</a>", "code point");
    EXPECT_PARSE_ERR("<a>&#x0;</a>", "code point");
    EXPECT_PARSE_ERR("<a>&#xD800;</a>", "code point");
    EXPECT_PARSE_ERR("<a>&#xDFFF;</a>", "code point");
    EXPECT_PARSE_ERR("<a>&#xFFFE;</a>", "code point");
    EXPECT_PARSE_ERR("<a>&#x110000;</a>", "code point");
    EXPECT_PARSE_ERR("<a>&#99999999999999999999;</a>", "code point");
    EXPECT_PARSE_ERR("<a>&#1;</a>", "code point");
    EXPECT_PARSE_ERR("<a>&#;</a>", "malformed character reference");
    EXPECT_PARSE_ERR("<a>&#x;</a>", "malformed character reference");
    EXPECT_PARSE_ERR("<a>&#12a;</a>", "malformed character reference");
    EXPECT_PARSE_ERR("<a>&#X43;</a>", "malformed character reference");
    EXPECT_PARSE_ERR("<a>&#65</a>", "malformed character reference");
    EXPECT_PARSE_ERR("<a>&amp</a>", "without ';'");
    EXPECT_PARSE_ERR("<a>&nbsp;</a>", "undefined entity '&nbsp;'");
    EXPECT_PARSE_ERR("<a>& b</a>", "'&' must start");
    EXPECT_PARSE_ERR("<a x=\"&bogus;\"/>", "undefined entity");
    EXPECT_PARSE_ERR("<a x=\"a&b\"/>", "without ';'");
}

static void test_cdata_and_line_ends(void **state)
{
    (void)state;
    ob_xml_doc_t *doc = parse_ok("<a>x<![CDATA[<b>&amp;]]]]><![CDATA[>]]>y</a>");
    assert_string_equal(ob_xml_text(ob_xml_root(doc)), "x<b>&amp;]]>y");
    ob_xml_free(doc);

    doc = parse_ok("<a>1\r\n2\r3\n<![CDATA[4\r\n5\r]]></a>");
    assert_string_equal(ob_xml_text(ob_xml_root(doc)), "1\n2\n3\n4\n5\n");
    ob_xml_free(doc);

    /* Attribute normalisation: literal TAB/LF/CR/CRLF are spaces, references kept. */
    doc = parse_ok("<a v=\"a\tb\nc\r\nd&#10;e&#9;f\" w='single \"q\"'/>");
    assert_string_equal(ob_xml_attr(ob_xml_root(doc), "v"), "a b c d\ne\tf");
    assert_string_equal(ob_xml_attr(ob_xml_root(doc), "w"), "single \"q\"");
    ob_xml_free(doc);

    doc = parse_ok("<a>]] ] ]></a>");
    assert_string_equal(ob_xml_text(ob_xml_root(doc)), "]] ] ]>");
    ob_xml_free(doc);

    EXPECT_PARSE_ERR("<a>x]]>y</a>", "']]>'");
    EXPECT_PARSE_ERR("<![CDATA[x]]><a/>", NULL);
    EXPECT_PARSE_ERR("<a><![CDATA[x]]</a>", "CDATA");
    EXPECT_PARSE_ERR("<a><![CDAT[x]]></a>", "unexpected markup");
}

static void test_whitespace_text(void **state)
{
    (void)state;
    ob_xml_doc_t *doc = parse_ok("<a>\n  <b>  keep me  </b>\n  <c> </c>\n</a>");
    const ob_xml_node_t *r = ob_xml_root(doc);
    assert_string_equal(ob_xml_text(r), "");
    assert_string_equal(ob_xml_path_text(r, "b"), "  keep me  ");
    assert_string_equal(ob_xml_path_text(r, "c"), " ");
    ob_xml_free(doc);

    doc = parse_ok("<a>mixed <b/>content</a>");
    assert_string_equal(ob_xml_text(ob_xml_root(doc)), "mixed content");
    ob_xml_free(doc);

    doc = parse_ok("<a><b></b><c/></a>");
    assert_string_equal(ob_xml_path_text(ob_xml_root(doc), "b"), "");
    assert_string_equal(ob_xml_path_text(ob_xml_root(doc), "c"), "");
    ob_xml_free(doc);
}

static void test_namespaces(void **state)
{
    (void)state;
    ob_xml_doc_t *doc =
        parse_ok("<s3:Error xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\" xmlns=\"urn:d\""
                 " xml:lang=\"en\" s3:kind=\"k\" plain=\"p\">"
                 "<s3:Code>NoSuchKey</s3:Code><Message>m</Message>"
                 "<inner xmlns=\"\"><x/></inner><y xmlns:s3=\"urn:other\"><s3:z/></y></s3:Error>");
    const ob_xml_node_t *r = ob_xml_root(doc);
    assert_string_equal(ob_xml_name(r), "Error");
    assert_string_equal(ob_xml_qname(r), "s3:Error");
    assert_string_equal(ob_xml_ns(r), "http://s3.amazonaws.com/doc/2006-03-01/");
    assert_string_equal(ob_xml_path_text(r, "Code"), "NoSuchKey");
    assert_string_equal(ob_xml_ns(ob_xml_child(r, "Code")),
                        "http://s3.amazonaws.com/doc/2006-03-01/");
    assert_string_equal(ob_xml_ns(ob_xml_child(r, "Message")), "urn:d");
    assert_string_equal(ob_xml_ns(ob_xml_path(r, "inner/x")), "");
    assert_string_equal(ob_xml_ns(ob_xml_path(r, "y/z")), "urn:other");
    /* Attributes: exact qualified name, then local name; xmlns by name. */
    assert_string_equal(ob_xml_attr(r, "xml:lang"), "en");
    assert_string_equal(ob_xml_attr(r, "lang"), "en");
    assert_string_equal(ob_xml_attr(r, "s3:kind"), "k");
    assert_string_equal(ob_xml_attr(r, "kind"), "k");
    assert_string_equal(ob_xml_attr(r, "plain"), "p");
    assert_string_equal(ob_xml_attr(r, "xmlns:s3"), "http://s3.amazonaws.com/doc/2006-03-01/");
    assert_string_equal(ob_xml_attr(r, "xmlns"), "urn:d");
    assert_null(ob_xml_attr(r, "s3")); /* declarations are not found by local name */
    assert_null(ob_xml_attr(r, "x:plain"));
    assert_int_equal(ob_xml_attr_count(r), 5);
    assert_string_equal(ob_xml_attr_name(r, 0), "xmlns:s3");
    assert_string_equal(ob_xml_attr_value(r, 4), "p");
    assert_null(ob_xml_attr_name(r, 5));
    ob_xml_free(doc);

    /* A declaration on the element applies to the element itself; scope ends with it. */
    EXPECT_PARSE_ERR("<a><p:b xmlns:p=\"urn:p\"/><p:c/></a>", "unbound namespace prefix in <p:c>");
    EXPECT_PARSE_ERR("<p:a/>", "unbound namespace prefix");
    EXPECT_PARSE_ERR("<a p:x=\"1\"/>", "unbound namespace prefix in attribute");
    EXPECT_PARSE_ERR("<a xmlns:p=\"\"/>", "empty URI");
    EXPECT_PARSE_ERR("<a xmlns:xmlns=\"urn:x\"/>", "xmlns prefix");
    EXPECT_PARSE_ERR("<a xmlns:xml=\"urn:x\"/>", "xml prefix");
    EXPECT_PARSE_ERR("<xmlns:a/>", "unbound");
    EXPECT_PARSE_ERR("<a xmlns:p=\"u\" xmlns:q=\"u\" p:x=\"1\" q:x=\"2\"/>", "same qualified name");
    EXPECT_PARSE_ERR("<a:b:c xmlns:a=\"u\"/>", "malformed qualified name");
    EXPECT_PARSE_ERR("<:a/>", "malformed qualified name");
    EXPECT_PARSE_ERR("<a: x=\"1\"/>", "malformed qualified name");
    doc = parse_ok("<a xmlns:xml=\"http://www.w3.org/XML/1998/namespace\"/>");
    ob_xml_free(doc);
}

static void test_prolog_misc(void **state)
{
    (void)state;
    ob_xml_doc_t *doc =
        parse_ok("\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\" standalone='yes' ?>\n"
                 "<!-- c1 --><?xml-stylesheet href=\"x\"?>\n<a><!-- inside --><?pi data?>t</a>\n"
                 "<!-- after --><?end?>\n");
    assert_string_equal(ob_xml_text(ob_xml_root(doc)), "t");
    ob_xml_free(doc);
    doc = parse_ok("<?xml version='1.1'?><a/>");
    ob_xml_free(doc);
    doc = parse_ok("  \n<a/>  \n");
    ob_xml_free(doc);

    EXPECT_PARSE_ERR("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>", "unsupported encoding");
    EXPECT_PARSE_ERR("<?xml version=\"2.0\"?><a/>", "unsupported XML version");
    EXPECT_PARSE_ERR("<?xml encoding=\"UTF-8\"?><a/>", "expected version");
    EXPECT_PARSE_ERR("<?xml version=\"1.0\" standalone=\"maybe\"?><a/>", "standalone");
    EXPECT_PARSE_ERR("<?xml version=\"1.0\"encoding=\"UTF-8\"?><a/>", "malformed XML declaration");
    EXPECT_PARSE_ERR(" <?xml version=\"1.0\"?><a/>", "only allowed at the very start");
    EXPECT_PARSE_ERR("<a/><?xml version=\"1.0\"?>", "only allowed at the very start");
    EXPECT_PARSE_ERR("<a><?XML x?></a>", "only allowed at the very start");
    EXPECT_PARSE_ERR("<!-- a -- b --><a/>", "'--'");
    EXPECT_PARSE_ERR("<!-- a ---><a/>", "'--'");
    EXPECT_PARSE_ERR("<? x?><a/>", "without a target");
    EXPECT_PARSE_ERR("<?pi?x?><a/>", "malformed processing instruction");
}

static void test_doctype_rejected(void **state)
{
    (void)state;
    static const char laughs[] =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE lolz [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        "]>\n"
        "<lolz>&lol3;</lolz>\n";
    expect_err(laughs, strlen(laughs), OB_ERR_PARSE, "line 2 col 1: DOCTYPE is not allowed");
    EXPECT_PARSE_ERR("<!DOCTYPE a SYSTEM \"file:///etc/passwd\"><a/>", "DOCTYPE");
    EXPECT_PARSE_ERR("<a><!DOCTYPE a></a>", "DOCTYPE");
    EXPECT_PARSE_ERR("<!ENTITY x \"y\"><a/>", "unexpected markup");
    EXPECT_PARSE_ERR("<a><!ELEMENT a ANY></a>", "unexpected markup");
}

static void test_malformed(void **state)
{
    (void)state;
    EXPECT_PARSE_ERR("", "no root element");
    EXPECT_PARSE_ERR("   \n ", "no root element");
    EXPECT_PARSE_ERR("<!-- only a comment -->", "no root element");
    EXPECT_PARSE_ERR("hello", "text is not allowed outside the root");
    EXPECT_PARSE_ERR("<a/>tail", "content after the root element");
    EXPECT_PARSE_ERR("<a/><b/>", "content after the root element");
    EXPECT_PARSE_ERR("<a></b>", "mismatched end tag </b>, expected </a>");
    EXPECT_PARSE_ERR("<a><b></a></b>", "mismatched");
    EXPECT_PARSE_ERR("<a></a >x", "content after");
    EXPECT_PARSE_ERR("<a></a b>", "expected '>'");
    EXPECT_PARSE_ERR("<a x=1/>", "must be quoted");
    EXPECT_PARSE_ERR("<a x/>", "expected '='");
    EXPECT_PARSE_ERR("<a x=\"1\"y=\"2\"/>", "expected whitespace");
    EXPECT_PARSE_ERR("<a x=\"<\"/>", "'<' is not allowed");
    EXPECT_PARSE_ERR("<a x=\"1\" x='2'/>", "duplicate attribute 'x'");
    EXPECT_PARSE_ERR("<a / >", "expected '/>'");
    EXPECT_PARSE_ERR("< a/>", "expected an element name");
    EXPECT_PARSE_ERR("<1a/>", "expected an element name");
    EXPECT_PARSE_ERR("<a><1/></a>", "expected an element name");
    EXPECT_PARSE_ERR("<a></ a>", "expected an element name");
    EXPECT_PARSE_ERR("<a =\"1\"/>", "expected an attribute name");
    /* Encoding: invalid UTF-8, overlongs, surrogates, forbidden characters. */
    EXPECT_PARSE_ERR("<a>\xC3(</a>", "invalid UTF-8 byte 0xC3");
    EXPECT_PARSE_ERR("<a>\xC0\xAF</a>", "invalid UTF-8");
    EXPECT_PARSE_ERR("<a>\xED\xA0\x80</a>", "invalid UTF-8");
    EXPECT_PARSE_ERR("<a>\xF4\x90\x80\x80</a>", "invalid UTF-8");
    EXPECT_PARSE_ERR("<a>\xFF</a>", "invalid UTF-8");
    EXPECT_PARSE_ERR("<a>\x01</a>", "U+0001 is not allowed");
    EXPECT_PARSE_ERR("<a>\xEF\xBF\xBE</a>", "U+FFFE is not allowed");
    expect_err("<a>\0</a>", 8, OB_ERR_PARSE, "U+0000");
    /* Non-ASCII names are fine. */
    ob_xml_doc_t *doc =
        parse_ok("<caf\xC3\xA9 \xC3\xA9t\xC3\xA9=\"\xE2\x82\xAC\">\xE6\x97\xA5</caf\xC3\xA9>");
    assert_string_equal(ob_xml_name(ob_xml_root(doc)), "caf\xC3\xA9");
    assert_string_equal(ob_xml_attr(ob_xml_root(doc), "\xC3\xA9t\xC3\xA9"), "\xE2\x82\xAC");
    ob_xml_free(doc);
}

static void test_error_position(void **state)
{
    (void)state;
    /* Column counts characters, not bytes. */
    expect_err("<a>\n  <b>\xC3\xA9\xC3\xA9</c>", strlen("<a>\n  <b>\xC3\xA9\xC3\xA9</c>"),
               OB_ERR_PARSE, "line 2 col 8: mismatched end tag </c>, expected </b>");
    expect_err("<a>\n\n<b x='1' x='1'/>", strlen("<a>\n\n<b x='1' x='1'/>"), OB_ERR_PARSE,
               "line 3 col 10: duplicate");
    expect_err("<a>", 3, OB_ERR_PARSE, "line 1 col 4: unexpected end of input: <a> is not closed");
}

/* Every strict prefix of a real reply that ends before the root element is
 * closed must be rejected with a positioned error; longer prefixes (only
 * trailing whitespace removed) must still parse. */
static void truncate_everywhere(const char *name)
{
    size_t len;
    char *body = fixture(name, &len);
    /* Offset just past the root's end tag ('>' of the last "</"). */
    const char *last = NULL;
    for (const char *p = body; (p = strstr(p, "</")) != NULL; p++)
        last = p;
    size_t closed = last ? (size_t)(strchr(last, '>') - body) + 1 : len;
    if (!last) { /* root is self-closing or text-free; not expected for fixtures */
        free(body);
        fail_msg("fixture %s has no end tag", name);
    }
    for (size_t cut = 0; cut <= len; cut++) {
        /* Copy into an exact-size heap block so ASan/valgrind see any overread. */
        char *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, body, cut);
        char err[256] = "";
        ob_xml_doc_t *doc = NULL;
        ob_err_t rc = ob_xml_parse(copy, cut, &doc, err, sizeof(err));
        if (cut < closed) {
            if (rc != OB_ERR_PARSE)
                fail_msg("%s cut at %zu/%zu: expected parse error, got %s", name, cut, len,
                         ob_err2str(rc));
            assert_null(doc);
            assert_true(strncmp(err, "line ", 5) == 0);
        } else {
            if (rc != OB_OK)
                fail_msg("%s cut at %zu/%zu: expected OK, got %s: %s", name, cut, len,
                         ob_err2str(rc), err);
            ob_xml_free(doc);
        }
        free(copy);
    }
    free(body);
}

static void test_truncated_replies(void **state)
{
    (void)state;
    static const char *const names[] = {
        "cfn_describe_stacks.xml",
        "cfn_describe_stacks_does_not_exist.xml",
        "sts_assume_role_access_denied.xml",
        "sts_get_caller_identity.xml",
        "s3_bucket_already_owned_by_you.xml",
        "s3_no_such_bucket_policy.xml",
        "s3_slow_down.xml",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        truncate_everywhere(names[i]);
}

/* Deterministic mutation fuzzing: flip, insert and delete bytes of real
 * replies. Only "no crash, no leak, consistent result" is checked. */
static void test_mutations(void **state)
{
    (void)state;
    static const char *const names[] = {"cfn_describe_stacks.xml", "s3_slow_down.xml",
                                        "sts_assume_role_access_denied.xml"};
    static const char pool[] = "<>&;#x/=\"'!?[]-: \n\xC3\xA9\x80\xFF\x01";
    unsigned long seed = 12345;
    for (size_t f = 0; f < sizeof(names) / sizeof(names[0]); f++) {
        size_t len;
        char *body = fixture(names[f], &len);
        for (int iter = 0; iter < 1500; iter++) {
            char *m = malloc(len + 8);
            assert_non_null(m);
            memcpy(m, body, len);
            size_t mlen = len;
            int edits = 1 + iter % 4;
            for (int e = 0; e < edits; e++) {
                seed = seed * 6364136223846793005ul + 1442695040888963407ul;
                size_t at = (size_t)(seed >> 33) % (mlen ? mlen : 1);
                char c = pool[(seed >> 20) % (sizeof(pool) - 1)];
                switch ((seed >> 12) % 3) {
                case 0:
                    if (mlen)
                        m[at] = c;
                    break;
                case 1:
                    if (mlen < len + 8) {
                        memmove(m + at + 1, m + at, mlen - at);
                        m[at] = c;
                        mlen++;
                    }
                    break;
                default:
                    if (mlen) {
                        memmove(m + at, m + at + 1, mlen - at - 1);
                        mlen--;
                    }
                    break;
                }
            }
            char err[256] = "";
            ob_xml_doc_t *doc = NULL;
            ob_err_t rc = ob_xml_parse(m, mlen, &doc, err, sizeof(err));
            if (rc == OB_OK) {
                assert_non_null(ob_xml_root(doc));
                ob_xml_free(doc);
            } else {
                assert_int_equal(rc, OB_ERR_PARSE);
                assert_null(doc);
                assert_true(strncmp(err, "line ", 5) == 0);
            }
            free(m);
        }
        free(body);
    }
}

static char *nested(unsigned depth, size_t *len)
{
    ob_buf_t b = {0};
    for (unsigned i = 0; i < depth; i++)
        assert_int_equal(ob_buf_puts(&b, "<d>"), OB_OK);
    assert_int_equal(ob_buf_puts(&b, "x"), OB_OK);
    for (unsigned i = 0; i < depth; i++)
        assert_int_equal(ob_buf_puts(&b, "</d>"), OB_OK);
    *len = b.len;
    return ob_buf_steal(&b);
}

static void test_depth_limit(void **state)
{
    (void)state;
    size_t len;
    char *s = nested(OB_XML_DEFAULT_MAX_DEPTH, &len);
    ob_xml_doc_t *doc = NULL;
    char err[256];
    assert_int_equal(ob_xml_parse(s, len, &doc, err, sizeof(err)), OB_OK);
    const ob_xml_node_t *n = ob_xml_root(doc);
    for (unsigned i = 1; i < OB_XML_DEFAULT_MAX_DEPTH; i++)
        n = ob_xml_child(n, "d");
    assert_string_equal(ob_xml_text(n), "x");
    ob_xml_free(doc);
    free(s);

    s = nested(OB_XML_DEFAULT_MAX_DEPTH + 1, &len);
    expect_err(s, len, OB_ERR_TOO_LARGE, "nested deeper than 64 levels");
    free(s);

    /* Hostile nesting: 200000 opening tags fail fast, with no C stack use. */
    s = nested(200000, &len);
    expect_err(s, len, OB_ERR_TOO_LARGE, "line 1 col 193:");
    free(s);

    /* Custom limit; an empty element counts as a level too. */
    ob_xml_limits_t lim = {.max_depth = 2};
    assert_int_equal(ob_xml_parse_ex("<a><b/></a>", 11, &lim, &doc, err, sizeof(err)), OB_OK);
    ob_xml_free(doc);
    assert_int_equal(ob_xml_parse_ex("<a><b><c/></b></a>", 18, &lim, &doc, err, sizeof(err)),
                     OB_ERR_TOO_LARGE);
    assert_null(doc);
}

static void test_size_and_node_limits(void **state)
{
    (void)state;
    ob_xml_doc_t *doc = NULL;
    char err[256];
    /* Input size: checked before anything is read. */
    size_t big = OB_XML_DEFAULT_MAX_BYTES + 1;
    char *s = malloc(big);
    assert_non_null(s);
    memset(s, ' ', big);
    memcpy(s, "<a>", 3);
    memcpy(s + big - 4, "</a>", 4);
    assert_int_equal(ob_xml_parse(s, big, &doc, err, sizeof(err)), OB_ERR_TOO_LARGE);
    assert_null(doc);
    assert_non_null(strstr(err, "exceeds the 4194304 byte limit"));
    /* The same document is fine when the caller allows it. */
    ob_xml_limits_t lim = {.max_bytes = big};
    assert_int_equal(ob_xml_parse_ex(s, big, &lim, &doc, err, sizeof(err)), OB_OK);
    ob_xml_free(doc);
    free(s);

    lim = (ob_xml_limits_t){.max_bytes = 10};
    assert_int_equal(ob_xml_parse_ex("<a>0123456789</a>", 17, &lim, &doc, err, sizeof(err)),
                     OB_ERR_TOO_LARGE);

    /* Node count: elements and attributes. */
    lim = (ob_xml_limits_t){.max_nodes = 3};
    assert_int_equal(ob_xml_parse_ex("<a><b/><c/></a>", 15, &lim, &doc, err, sizeof(err)), OB_OK);
    ob_xml_free(doc);
    assert_int_equal(ob_xml_parse_ex("<a><b/><c/><d/></a>", 19, &lim, &doc, err, sizeof(err)),
                     OB_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "more than 3 nodes"));
    assert_int_equal(ob_xml_parse_ex("<a x='1' y='2' z='3'/>", 22, &lim, &doc, err, sizeof(err)),
                     OB_ERR_TOO_LARGE);

    /* Many siblings within the default limits parse fine (and quickly). */
    ob_buf_t b = {0};
    assert_int_equal(ob_buf_puts(&b, "<list>"), OB_OK);
    for (int i = 0; i < 50000; i++)
        assert_int_equal(ob_buf_printf(&b, "<member>%d</member>", i), OB_OK);
    assert_int_equal(ob_buf_puts(&b, "</list>"), OB_OK);
    assert_int_equal(ob_xml_parse(b.data, b.len, &doc, err, sizeof(err)), OB_OK);
    assert_int_equal(ob_xml_child_count(ob_xml_root(doc), "member"), 50000);
    ob_xml_free(doc);
    /* ...but 100001 elements exceed the default node limit. */
    ob_buf_reset(&b);
    assert_int_equal(ob_buf_puts(&b, "<l>"), OB_OK);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(ob_buf_puts(&b, "<m/>"), OB_OK);
    assert_int_equal(ob_buf_puts(&b, "</l>"), OB_OK);
    assert_int_equal(ob_xml_parse(b.data, b.len, &doc, err, sizeof(err)), OB_ERR_TOO_LARGE);
    ob_buf_free(&b);

    /* Attributes per element. */
    lim = (ob_xml_limits_t){.max_attrs = 2};
    assert_int_equal(ob_xml_parse_ex("<a x='1' y='2' z='3'/>", 22, &lim, &doc, err, sizeof(err)),
                     OB_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "more than 2 attributes"));
}

static void test_escape(void **state)
{
    (void)state;
    ob_buf_t b = {0};
    assert_int_equal(ob_buf_puts(&b, "<v>"), OB_OK);
    const char *raw = "a<b>&c\"d'e\r\nf\tg \xC3\xA9\xF0\x9F\x98\x80";
    assert_int_equal(ob_xml_escape(&b, raw), OB_OK);
    assert_string_equal(b.data,
                        "<v>a&lt;b&gt;&amp;c&quot;d&apos;e&#13;\nf\tg \xC3\xA9\xF0\x9F\x98\x80");
    assert_int_equal(ob_buf_puts(&b, "</v>"), OB_OK);
    /* Round trip through the parser, CR included. */
    ob_xml_doc_t *doc = NULL;
    assert_int_equal(ob_xml_parse(b.data, b.len, &doc, NULL, 0), OB_OK);
    assert_string_equal(ob_xml_text(ob_xml_root(doc)), raw);
    ob_xml_free(doc);

    /* Invalid input leaves the buffer untouched. */
    size_t before = b.len;
    assert_int_equal(ob_xml_escape(&b, "ok\x01"), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_xml_escape(&b, "ok\xC3"), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_xml_escape(&b, "\xEF\xBF\xBF"), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_xml_escape(&b, "\xED\xA0\x80"), OB_ERR_INVALID_ARG);
    assert_int_equal(b.len, before);
    assert_int_equal(strlen(b.data), before);
    assert_int_equal(ob_xml_escape(NULL, "x"), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_xml_escape(&b, NULL), OB_ERR_INVALID_ARG);
    ob_buf_reset(&b);
    assert_int_equal(ob_xml_escape(&b, ""), OB_OK);
    assert_int_equal(b.len, 0);
    ob_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_reply),
        cmocka_unit_test(test_null_safety),
        cmocka_unit_test(test_entities_decoding),
        cmocka_unit_test(test_cdata_and_line_ends),
        cmocka_unit_test(test_whitespace_text),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_prolog_misc),
        cmocka_unit_test(test_doctype_rejected),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_error_position),
        cmocka_unit_test(test_truncated_replies),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_size_and_node_limits),
        cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
