/*
 * ob_zip: small buffers deflated and inflated again (raw deflate, zlib).
 *
 * For what a worker keeps a long while and reads rarely: a hand-off parsed
 * and waiting half a minute for its stack is kept packed at about half its
 * size. One ob_zip_t holds a deflate and an inflate stream, made once and
 * reset for every buffer (a stream costs more to make than a kilobyte costs
 * to deflate); its small window suits inputs of a few kilobytes.
 *
 * Ownership: ob_zip_pack's output is malloc'd (the caller frees it).
 * Allocation goes through ob_alloc. Threading: one thread per ob_zip_t.
 */
#ifndef OB_ZIP_H
#define OB_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "ob_err.h"

typedef struct ob_zip_s ob_zip_t;

ob_zip_t *ob_zip_new(void);
void ob_zip_free(ob_zip_t *z);
/* n bytes deflated: *out (malloc'd, *out_len bytes). */
void ob_zip_pack(ob_zip_t *z, const void *in, size_t n, uint8_t **out, size_t *out_len);
/* Inflate n bytes into out, which holds exactly what was packed: OB_OK, or
 * OB_ERR_PARSE when they do not inflate to out_len bytes. */
ob_err_t ob_zip_unpack(ob_zip_t *z, const uint8_t *in, size_t n, void *out, size_t out_len);

#endif
