#include "ob_zip.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ob_alloc.h"
#include "ob_log.h"

/* A 1 KiB window and the least memory for the match tables: the inputs are a
 * few KiB, and the streams stay small (about 6 KiB for both). */
#define WINDOW_BITS 10
#define MEM_LEVEL   2

struct ob_zip_s {
    z_stream def, inf;
};

static voidpf zalloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return ob_calloc(items, size);
}

static void zfree(voidpf opaque, voidpf p)
{
    (void)opaque;
    free(p);
}

/* zlib fails to make a stream only for want of memory (ob_alloc aborts first)
 * or for parameters that are ours: either way, nothing to continue with. */
static void must(int rc, const char *what)
{
    if (rc != Z_OK) {
        ob_logf(OB_LOG_ERROR, "zip", "%s: zlib error %d", what, rc);
        abort();
    }
}

ob_zip_t *ob_zip_new(void)
{
    ob_zip_t *z = ob_calloc(1, sizeof(*z));
    z->def.zalloc = z->inf.zalloc = zalloc;
    z->def.zfree = z->inf.zfree = zfree;
    must(deflateInit2(&z->def, 1, Z_DEFLATED, -WINDOW_BITS, MEM_LEVEL, Z_DEFAULT_STRATEGY),
         "deflateInit2");
    must(inflateInit2(&z->inf, -WINDOW_BITS), "inflateInit2");
    return z;
}

void ob_zip_free(ob_zip_t *z)
{
    if (!z)
        return;
    deflateEnd(&z->def);
    inflateEnd(&z->inf);
    free(z);
}

void ob_zip_pack(ob_zip_t *z, const void *in, size_t n, uint8_t **out, size_t *out_len)
{
    if (n > UINT_MAX / 2) {
        ob_logf(OB_LOG_ERROR, "zip", "%zu bytes: too many to pack", n);
        abort();
    }
    uLong bound = deflateBound(&z->def, (uLong)n);
    uint8_t *buf = ob_malloc(bound);
    deflateReset(&z->def);
    z->def.next_in = (Bytef *)(uintptr_t)in;
    z->def.avail_in = (uInt)n;
    z->def.next_out = buf;
    z->def.avail_out = (uInt)bound;
    int rc = deflate(&z->def, Z_FINISH);
    if (rc != Z_STREAM_END) { /* deflateBound is a bound: this cannot be */
        ob_logf(OB_LOG_ERROR, "zip", "deflate: zlib error %d", rc);
        abort();
    }
    *out_len = bound - z->def.avail_out;
    *out = ob_realloc(buf, *out_len ? *out_len : 1);
}

ob_err_t ob_zip_unpack(ob_zip_t *z, const uint8_t *in, size_t n, void *out, size_t out_len)
{
    if (n > UINT_MAX || out_len > UINT_MAX)
        return OB_ERR_PARSE;
    inflateReset(&z->inf);
    z->inf.next_in = (Bytef *)(uintptr_t)in;
    z->inf.avail_in = (uInt)n;
    z->inf.next_out = out;
    z->inf.avail_out = (uInt)out_len;
    int rc = inflate(&z->inf, Z_FINISH);
    return rc == Z_STREAM_END && z->inf.avail_out == 0 && z->inf.avail_in == 0 ? OB_OK
                                                                               : OB_ERR_PARSE;
}
