/*
 * The CUR report definition a request asks for, and how an existing one
 * differs from it: the cur stage makes the account's report so, the verify
 * stage checks it still is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages.h"

/* ---- the definition the request asks for ---- */

static json_t *name_list(unsigned set, const char *(*name_of)(unsigned bit))
{
    json_t *a = json_array();
    for (unsigned bit = 1; a && bit && bit <= 0x80u; bit <<= 1) {
        const char *n = (set & bit) ? name_of(bit) : NULL;
        if (n)
            json_array_append_new(a, json_string(n));
    }
    return a;
}

/* "[A, B]" of a set, for messages. */
void ob_cur_set_text(char *out, size_t n, unsigned set, const char *(*name_of)(unsigned bit))
{
    size_t used = 0;
    int first = 1;
    used += (size_t)snprintf(out, n, "[");
    for (unsigned bit = 1; bit && bit <= 0x80u && used < n; bit <<= 1) {
        const char *s = (set & bit) ? name_of(bit) : NULL;
        if (!s)
            continue;
        used += (size_t)snprintf(out + used, n - used, "%s%s", first ? "" : ", ", s);
        first = 0;
    }
    if (used < n)
        snprintf(out + used, n - used, "]");
}

json_t *ob_cur_definition(const ob_request_t *r, const char *bucket, const char *bucket_region)
{
    const ob_report_settings_t *s = &r->report;
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:o, s:b, s:s}", "ReportName",
                     s->name, "TimeUnit", ob_time_unit_name(s->time_unit), "Format",
                     ob_format_name(s->format), "Compression", ob_compression_name(s->compression),
                     "AdditionalSchemaElements", name_list(s->schema_elements, ob_schema_elem_name),
                     "S3Bucket", bucket, "S3Prefix", s->prefix, "S3Region", bucket_region,
                     "AdditionalArtifacts", name_list(s->artifacts, ob_artifact_name),
                     "RefreshClosedReports", s->refresh_closed_reports, "ReportVersioning",
                     ob_versioning_name(s->versioning));
}

/* ---- comparing with what AWS holds ---- */

static int list_has(const json_t *list, const char *s)
{
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e)
    {
        if (json_is_string(e) && !strcmp(json_string_value(e), s))
            return 1;
    }
    return 0;
}

/* Two string lists hold the same set (order and repeats do not matter). */
static int same_set(const json_t *a, const json_t *b)
{
    size_t i;
    const json_t *e;
    json_array_foreach(a, i, e)
    {
        if (!json_is_string(e) || !list_has(b, json_string_value(e)))
            return 0;
    }
    json_array_foreach(b, i, e)
    {
        if (!json_is_string(e) || !list_has(a, json_string_value(e)))
            return 0;
    }
    return 1;
}

static void value_text(char *out, size_t n, const json_t *v)
{
    if (!v || json_is_null(v)) {
        snprintf(out, n, "(absent)");
        return;
    }
    if (json_is_string(v)) {
        snprintf(out, n, "%s", json_string_value(v));
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(out, n, "%s", s ? s : "?");
    free(s);
}

static void note_change(char *changes, size_t size, const char *member, const json_t *have,
                        const json_t *want)
{
    char h[96], w[96];
    value_text(h, sizeof(h), have);
    value_text(w, sizeof(w), want);
    size_t used = strlen(changes);
    if (used + 1 < size)
        snprintf(changes + used, size - used, "%s%s %s -> %s", used ? "; " : "", member, h, w);
}

/*
 * How many members of the existing definition differ from ours (noted in
 * changes). Absent optional members read as AWS's defaults: no artifacts,
 * CREATE_NEW_REPORT; an absent RefreshClosedReports is unknown, so it differs
 * (one Modify makes it explicit). Members we do not manage (BillingViewArn,
 * ReportStatus) are not compared.
 */
int ob_cur_differences(const json_t *have, const json_t *want, char *changes, size_t size)
{
    static const char *const strings[] = {"TimeUnit", "Format",   "Compression", "S3Bucket",
                                          "S3Prefix", "S3Region", NULL};
    int n = 0;
    changes[0] = '\0';
    for (int i = 0; strings[i]; i++) {
        const json_t *h = json_object_get(have, strings[i]);
        const json_t *w = json_object_get(want, strings[i]);
        if (!json_is_string(h) || strcmp(json_string_value(h), json_string_value(w)) != 0) {
            note_change(changes, size, strings[i], h, w);
            n++;
        }
    }
    static const char *const lists[] = {"AdditionalSchemaElements", "AdditionalArtifacts", NULL};
    for (int i = 0; lists[i]; i++) {
        const json_t *h = json_object_get(have, lists[i]);
        const json_t *w = json_object_get(want, lists[i]);
        json_t *empty = json_array();
        int same = (h == NULL || json_is_null(h)) ? same_set(empty, w)
                                                  : json_is_array(h) && same_set(h, w);
        json_decref(empty);
        if (!same) {
            note_change(changes, size, lists[i], h, w);
            n++;
        }
    }
    const json_t *h = json_object_get(have, "RefreshClosedReports");
    const json_t *w = json_object_get(want, "RefreshClosedReports");
    if (!json_is_boolean(h) || json_is_true(h) != json_is_true(w)) {
        note_change(changes, size, "RefreshClosedReports", h, w);
        n++;
    }
    h = json_object_get(have, "ReportVersioning");
    w = json_object_get(want, "ReportVersioning");
    const char *hv = json_is_string(h)         ? json_string_value(h)
                     : (!h || json_is_null(h)) ? "CREATE_NEW_REPORT"
                                               : "";
    if (strcmp(hv, json_string_value(w)) != 0) {
        note_change(changes, size, "ReportVersioning", h, w);
        n++;
    }
    return n;
}
