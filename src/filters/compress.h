/* compress.h - streaming content encoders (gzip via zlib, brotli, zstd) with
 * bounded memory, recycled per thread so a compressed response does not pay
 * for allocating a fresh encoder state. */
#ifndef PORTICO_FILTERS_COMPRESS_H
#define PORTICO_FILTERS_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h" /* enum zalg */

enum zflush {
    ZFLUSH_NONE = 0, /* compress as much as fits; output may lag behind input */
    ZFLUSH_SYNC,     /* everything given so far must be decodable from the output */
    ZFLUSH_FINISH,   /* no more input: write the stream's end */
};

struct zenc;

/* An encoder for alg (not ZALG_IDENTITY) at `level` (clamped to the
 * algorithm's range; < 0 = the default). NULL on allocation failure. Takes
 * a recycled state of this thread when one is free. */
struct zenc *zenc_new(enum zalg alg, int level);
/* Ends the encoder (its state goes back to this thread's free list, bounded). */
void zenc_free(struct zenc *z);
/* Consumes up to in_len bytes of in and writes up to out_cap bytes to out.
 * Returns 1 once ZFLUSH_FINISH has written the complete stream end (all input
 * consumed), 0 when more calls are needed (out full, or input consumed), -1
 * on an encoder error. Call again with the unconsumed input while out fills. */
int zenc_run(struct zenc *z, const uint8_t *in, size_t in_len, size_t *in_used, uint8_t *out,
             size_t out_cap, size_t *out_made, enum zflush mode);
/* Content-Coding token: "gzip", "br", "zstd" ("identity" for ZALG_IDENTITY). */
const char *zalg_name(enum zalg alg);
/* enum zalg for a token ("gzip", "br", "zstd"), or -1. */
int zalg_lookup(const char *name, size_t len);
int zalg_default_level(enum zalg alg);
/* Valid level range of alg (gzip 1-9, br 0-11, zstd 1-19). */
void zalg_level_range(enum zalg alg, int *min, int *max);
/* Frees this thread's recycled states (worker exit). */
void zenc_thread_exit(void);

#endif
