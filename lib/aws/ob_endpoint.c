/*
 * ob_endpoint: region and endpoint resolution, and S3 bucket addressing.
 *
 * Resolution is a short fixed chain (see the header) over the injectable
 * environment and the parsed shared config; every value that ends up in a
 * host name or URL is validated first, since the region and the override
 * come from the outside and a bad one should fail at startup with a sentence
 * naming its source, not as a TLS or DNS error later. Partitions are a small
 * table (DNS suffix and where the single-region services live) instead of
 * botocore's endpoints.json: the fleet talks to five services only.
 */
#include "ob_endpoint.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int ob_aws_region_valid(const char *r)
{
    size_t n = r ? strlen(r) : 0;
    if (n == 0 || n > OB_REGION_MAX - 1 || !islower((unsigned char)r[0]) || r[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)r[i];
        if (!(islower(c) || isdigit(c) || c == '-') || (c == '-' && r[i + 1] == '-'))
            return 0;
    }
    return 1;
}

ob_err_t ob_aws_region_resolve(ob_getenv_fn getenv_fn, void *ctx, const ob_awsconfig_t *cfg,
                               const char *profile, char *out, size_t outsz)
{
    if (!out || outsz == 0)
        return OB_ERR_INVALID_ARG;
    out[0] = '\0';
    const char *r = ob_awsconfig_getenv(getenv_fn, ctx, "AWS_REGION");
    if (!r)
        r = ob_awsconfig_getenv(getenv_fn, ctx, "AWS_DEFAULT_REGION");
    if (!r)
        r = ob_awsconfig_get(cfg, profile, "region");
    if (!r || !*r)
        return OB_ERR_NOT_FOUND;
    if (!ob_aws_region_valid(r))
        return OB_ERR_CONFIG;
    if (strlen(r) >= outsz)
        return OB_ERR_INVALID_ARG;
    memcpy(out, r, strlen(r) + 1);
    return OB_OK;
}

/* ---- partitions ---------------------------------------------------------- */

typedef struct partition_s {
    const char *prefix;     /* region name prefix; "" matches everything (aws) */
    const char *dns_suffix; /* NULL: not supported */
    const char *cur_region; /* where CUR lives (NULL: not offered) */
    const char *org_region; /* where Organizations lives */
} partition_t;

/* From botocore's endpoints.json (partitions aws, aws-cn, aws-us-gov; the
 * isolated ones are recognised only to be refused). The catch-all aws
 * partition must stay last. */
static const partition_t partitions[] = {
    {"cn-", "amazonaws.com.cn", "cn-northwest-1", "cn-northwest-1"},
    {"us-gov-", "amazonaws.com", NULL, "us-gov-west-1"},
    {"us-iso-", NULL, NULL, NULL},
    {"us-isob-", NULL, NULL, NULL},
    {"us-isof-", NULL, NULL, NULL},
    {"eu-isoe-", NULL, NULL, NULL},
    {"eusc-", NULL, NULL, NULL},
    {"", "amazonaws.com", "us-east-1", "us-east-1"},
};

static const partition_t *partition_of(const char *region)
{
    for (size_t i = 0;; i++)
        if (strncmp(region, partitions[i].prefix, strlen(partitions[i].prefix)) == 0)
            return &partitions[i];
}

/* ---- override URLs ------------------------------------------------------- */

static int is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

static int is_hostname(const char *h, size_t n)
{
    if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
            return 0;
        if (c == '.' && i + 1 < n && h[i + 1] == '.')
            return 0;
    }
    return 1;
}

static int is_ipv6_literal(const char *h, size_t n)
{
    if (n < 4 || h[0] != '[' || h[n - 1] != ']')
        return 0;
    int colons = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!(isxdigit(c) || c == ':' || c == '.'))
            return 0;
        colons += c == ':';
    }
    return colons >= 2;
}

/* RFC 3986 path characters, with well-formed %XX escapes. */
static int is_url_path(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)p[i + 1]) ||
                !isxdigit((unsigned char)p[i + 2]))
                return 0;
            i += 2;
        } else if (!is_unreserved(c) && !strchr("/!$&'()*+,;=:@", c)) {
            return 0;
        }
    }
    return 1;
}

static ob_err_t parse_override(const char *url, const char *source, ob_endpoint_t *out,
                               char *errstr, size_t errstr_size)
{
#define BAD(...) ob_errf(errstr, errstr_size, OB_ERR_CONFIG, __VA_ARGS__)
    const char *scheme;
    int default_port;
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        scheme = "https", default_port = 443, p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        scheme = "http", default_port = 80, p = url + 7;
    } else {
        return BAD("%s: endpoint URL '%.200s' must start with http:// or https://", source, url);
    }
    size_t alen = strcspn(p, "/?#");
    const char *path = p + alen;
    if (memchr(p, '@', alen))
        return BAD("%s: endpoint URL must not contain user info", source);

    size_t hlen = alen;
    const char *port = NULL;
    if (p[0] == '[') {
        const char *rb = memchr(p, ']', alen);
        hlen = rb ? (size_t)(rb - p) + 1 : alen;
        if (hlen < alen) {
            if (p[hlen] != ':')
                return BAD("%s: endpoint URL '%.200s' has junk after the IPv6 address", source,
                           url);
            port = p + hlen + 1;
        }
        if (!is_ipv6_literal(p, hlen))
            return BAD("%s: endpoint URL '%.200s' has a malformed IPv6 address", source, url);
    } else {
        const char *colon = memchr(p, ':', alen);
        if (colon) {
            hlen = (size_t)(colon - p);
            port = colon + 1;
        }
        if (!is_hostname(p, hlen))
            return BAD("%s: endpoint URL '%.200s' has no valid host name", source, url);
    }
    long portnum = default_port;
    if (port) {
        size_t plen = (size_t)(p + alen - port);
        if (plen == 0 || plen > 5)
            return BAD("%s: endpoint URL '%.200s' has an invalid port", source, url);
        portnum = 0;
        for (size_t i = 0; i < plen; i++) {
            if (!isdigit((unsigned char)port[i]))
                return BAD("%s: endpoint URL '%.200s' has an invalid port", source, url);
            portnum = portnum * 10 + (port[i] - '0');
        }
        if (portnum < 1 || portnum > 65535)
            return BAD("%s: endpoint URL '%.200s' has a port out of range", source, url);
    }
    size_t pathlen = strcspn(path, "?#");
    if (path[pathlen])
        return BAD("%s: endpoint URL '%.200s' must not have a query or fragment", source, url);
    if (!is_url_path(path, pathlen))
        return BAD("%s: endpoint URL '%.200s' has invalid characters in its path", source, url);
    while (pathlen > 0 && path[pathlen - 1] == '/')
        pathlen--;

    char host[sizeof(out->host)];
    int hn = portnum == default_port
                 ? snprintf(host, sizeof(host), "%.*s", (int)hlen, p)
                 : snprintf(host, sizeof(host), "%.*s:%ld", (int)hlen, p, portnum);
    if (hn < 0 || (size_t)hn >= sizeof(host) || pathlen >= sizeof(out->base_path))
        return BAD("%s: endpoint URL is too long", source);
    for (char *c = host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    memcpy(out->host, host, (size_t)hn + 1);
    snprintf(out->url, sizeof(out->url), "%s://%s", scheme, host);
    memcpy(out->base_path, path, pathlen);
    out->base_path[pathlen] = '\0';
    return OB_OK;
#undef BAD
}

/* ---- resolution ---------------------------------------------------------- */

static int is_true(const char *v)
{
    return v && strcasecmp(v, "true") == 0;
}

ob_err_t ob_endpoint_resolve(ob_aws_svc_t svc, const char *region, ob_getenv_fn getenv_fn,
                             void *ctx, const ob_awsconfig_t *cfg, const char *profile,
                             ob_endpoint_t *out, char *errstr, size_t errstr_size)
{
    const ob_aws_svc_info_t *info = ob_aws_svc_info(svc);
    if (!info || !out)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "endpoint: unknown service");
    memset(out, 0, sizeof(*out));
    if (!ob_aws_region_valid(region))
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "%s: invalid region '%.64s'", info->id,
                       region ? region : "(none)");
    const partition_t *part = partition_of(region);
    if (!part->dns_suffix)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "%s: region %s is in an isolated partition, which is not supported",
                       info->id, region);

    /* Single-region services: their region in this partition hosts and signs. */
    const char *host_region = region;
    if (info->global_region) {
        host_region = part->prefix[0] == '\0' ? info->global_region
                      : svc == OB_SVC_CUR     ? part->cur_region
                                              : part->org_region;
        if (!host_region)
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s is not offered in the partition of region %s", info->id, region);
    }
    snprintf(out->signing_region, sizeof(out->signing_region), "%s", host_region);

    const char *style = NULL;
    if (svc == OB_SVC_S3) {
        style = ob_awsconfig_get_sub(cfg, profile, "s3", "addressing_style");
        if (style && strcmp(style, "path") != 0 && strcmp(style, "virtual") != 0 &&
            strcmp(style, "auto") != 0)
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "s3: addressing_style '%.32s' in profile %s is not path, virtual or "
                           "auto",
                           style, profile ? profile : ob_awsconfig_profile(cfg));
    }

    const char *ignore = ob_awsconfig_getenv(getenv_fn, ctx, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    if (!ignore)
        ignore = ob_awsconfig_get(cfg, profile, "ignore_configured_endpoint_urls");
    const char *url = NULL;
    char source[160];
    if (!is_true(ignore)) {
        char var[96];
        snprintf(var, sizeof(var), "AWS_ENDPOINT_URL_%s", info->env_suffix);
        if ((url = ob_awsconfig_getenv(getenv_fn, ctx, var)) != NULL) {
            snprintf(source, sizeof(source), "%s", var);
        } else if ((url = ob_awsconfig_getenv(getenv_fn, ctx, "AWS_ENDPOINT_URL")) != NULL) {
            snprintf(source, sizeof(source), "AWS_ENDPOINT_URL");
        } else {
            const char *pname = profile ? profile : ob_awsconfig_profile(cfg);
            const char *services = ob_awsconfig_get(cfg, profile, "services");
            if (services) {
                if (!ob_awsconfig_has(cfg, OB_AWSCONFIG_SERVICES, services))
                    return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                                   "profile %s uses services section '%s', which does not exist",
                                   pname, services);
                char id[64];
                size_t i = 0;
                for (; info->env_suffix[i] && i + 1 < sizeof(id); i++)
                    id[i] = (char)tolower((unsigned char)info->env_suffix[i]);
                id[i] = '\0';
                url = ob_awsconfig_section_get(cfg, OB_AWSCONFIG_SERVICES, services, id,
                                               "endpoint_url");
                snprintf(source, sizeof(source), "[services %s] %s.endpoint_url", services, id);
            }
            if (!url && (url = ob_awsconfig_get(cfg, profile, "endpoint_url")) != NULL)
                snprintf(source, sizeof(source), "profile %s endpoint_url", pname);
            if (url && !*url)
                url = NULL;
        }
    }

    if (url) {
        ob_err_t err = parse_override(url, source, out, errstr, errstr_size);
        if (err != OB_OK) {
            memset(out, 0, sizeof(*out));
            return err;
        }
        out->is_override = 1;
        out->path_style = 1;
    } else {
        snprintf(out->host, sizeof(out->host), "%s.%s.%s", info->endpoint_prefix, host_region,
                 part->dns_suffix);
        snprintf(out->url, sizeof(out->url), "https://%s", out->host);
    }
    if (style && strcmp(style, "path") == 0)
        out->path_style = 1;
    else if (style && strcmp(style, "virtual") == 0)
        out->path_style = 0;
    return OB_OK;
}

/* ---- S3 addressing ------------------------------------------------------- */

static int bucket_addressable(const char *b)
{
    size_t n = strlen(b);
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)b[i]) || b[i] == '.' || b[i] == '-' || b[i] == '_'))
            return 0;
    return 1;
}

/* A bucket that can be the first label of a TLS-valid virtual host. */
static int bucket_is_dns_label(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63 || !(islower((unsigned char)b[0]) || isdigit((unsigned char)b[0])) ||
        b[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '-'))
            return 0;
    return 1;
}

static ob_err_t put_key(ob_buf_t *b, const char *key)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        ob_err_t e;
        if (is_unreserved(*p) || *p == '/')
            e = ob_buf_putc(b, (char)*p);
        else
            e = ob_buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
        if (e != OB_OK)
            return OB_ERR_NOMEM;
    }
    return OB_OK;
}

ob_err_t ob_s3_url(const ob_endpoint_t *ep, const char *bucket, const char *key_or_null,
                   ob_buf_t *path_out, ob_buf_t *host_out)
{
    if (!ep || !bucket || !path_out || !host_out || !bucket_addressable(bucket) ||
        (key_or_null && !*key_or_null))
        return OB_ERR_INVALID_ARG;
    ob_buf_reset(path_out);
    ob_buf_reset(host_out);
    int virtual_host = !ep->path_style && bucket_is_dns_label(bucket);
    ob_err_t e = ob_buf_puts(path_out, ep->base_path);
    if (e == OB_OK && virtual_host)
        e = ob_buf_printf(host_out, "%s.%s", bucket, ep->host);
    else if (e == OB_OK)
        e = ob_buf_puts(host_out, ep->host);
    if (e == OB_OK && !virtual_host)
        e = ob_buf_printf(path_out, "/%s", bucket);
    if (e == OB_OK && (key_or_null || virtual_host))
        e = ob_buf_putc(path_out, '/');
    if (e == OB_OK && key_or_null)
        e = put_key(path_out, key_or_null);
    return e == OB_OK ? OB_OK : OB_ERR_NOMEM;
}
