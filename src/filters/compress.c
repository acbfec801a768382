/* compress.c - the streaming content encoders behind compress.h: gzip (zlib),
 * brotli and zstd, each with a bounded window so a response costs a known
 * amount of memory, and a small per-thread free list of encoder states so a
 * compressed response does not pay for allocating a fresh one (states of
 * 256 KiB and more are mmaps: system calls and page faults every time).
 *
 * Memory per encoder, measured with 16 KiB writes (the library's own tables,
 * the struct zenc is ~200 bytes):
 *   gzip  any level  ~270 KiB (32 KiB window, memLevel 8)
 *   br    q0-1 ~150 KiB, q2-3 ~1.1 MiB, q4 (default) ~3 MiB, q5-6 ~4.7 MiB;
 *         q7 and above grow to 10-38 MiB whatever the window: a route
 *         that sets such a level pays that per response
 *   zstd  level 3 (default) ~1.8 MiB, at most ~6 MiB at level 19 (see
 *         zs_params: the hash and chain tables are capped with the window)
 * tests/unit/test_compress.c checks the gzip, zstd and default br figures. */
#include "filters/compress.h"

#include <brotli/encode.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
/* for ZSTD_getCParams (the level's table entry), in every zstd since 1.0
 * and exported by the shared library; see zs_params */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "core/common.h"

/* 2^18 = 256 KiB of history for brotli and zstd: big enough for the usual
 * text responses (a page, a script bundle) to find their repeats, small
 * enough that the default levels stay around 2 MiB per encoder. */
#define BR_LGWIN 18
#define ZSTD_WLOG_MAX 18

/* Recycled states kept per algorithm and thread. A worker compresses many
 * responses at once only under load, and then allocation is not the cost
 * that matters; a few states cover the common back-to-back case. */
#define ZPOOL_MAX 4

/* zlib repeats its flush marker (an empty stored block, 4-5 bytes) each time
 * a Z_SYNC_FLUSH call ends with avail_out == 0, and with avail_out below ~6
 * it can do so forever (zlib.h: "make sure that avail_out is greater than
 * six"). When the caller's room is smaller than this, deflate writes into a
 * spill buffer that later calls hand out first. */
#define GZ_SPILL 32

struct zenc {
    enum zalg alg;
    int level;
    bool ended;     /* the whole stream end has been handed to the caller */
    bool finishing; /* ZFLUSH_FINISH was asked: every later call finishes too */
    bool synced;    /* a SYNC flush completed and no input came since: a new
                     * SYNC without input must not write another marker */
    bool failed;    /* the library reported an error: never recycled */
    struct zenc *next_free;
    union {
        struct {
            z_stream s; /* zlib keeps a pointer to it: never moved */
            bool stream_end;
            uint8_t spill_off, spill_len;
            uint8_t spill[GZ_SPILL];
        } gz;
        BrotliEncoderState *br;
        ZSTD_CCtx *zs;
    } u;
};

/* Per-thread free lists (index: enum zalg; brotli's stays empty, see
 * zenc_free). A state is freed on the thread that uses it, which is the
 * worker owning the connection, so no lock. */
static __thread struct zenc *zpool[ZALG__COUNT];
static __thread unsigned zpool_n[ZALG__COUNT];

static const char *const zalg_names[ZALG__COUNT] = {
    [ZALG_IDENTITY] = "identity",
    [ZALG_GZIP] = "gzip",
    [ZALG_BR] = "br",
    [ZALG_ZSTD] = "zstd",
};

const char *zalg_name(enum zalg alg)
{
    BUG_ON((unsigned)alg >= ZALG__COUNT);
    return zalg_names[alg];
}

int zalg_lookup(const char *name, size_t len)
{
    /* content-coding tokens are case-insensitive (RFC 9110 8.4.1) */
    for (int a = ZALG_GZIP; a < ZALG__COUNT; a++) {
        if (strlen(zalg_names[a]) == len && strncasecmp(name, zalg_names[a], len) == 0)
            return a;
    }
    return -1;
}

int zalg_default_level(enum zalg alg)
{
    switch (alg) {
    case ZALG_GZIP:
        return 1; /* most of gzip's gain for a fraction of level 6's CPU */
    case ZALG_BR:
        return 4;
    case ZALG_ZSTD:
        return 3;
    default:
        return 0;
    }
}

void zalg_level_range(enum zalg alg, int *min, int *max)
{
    switch (alg) {
    case ZALG_GZIP:
        *min = 1;
        *max = 9;
        break;
    case ZALG_BR:
        *min = BROTLI_MIN_QUALITY;
        *max = BROTLI_MAX_QUALITY;
        break;
    case ZALG_ZSTD:
        *min = 1;
        *max = 19; /* 20-22 are the "ultra" levels, with windows far above our cap */
        break;
    default:
        *min = *max = 0;
        break;
    }
}

static int clamp_level(enum zalg alg, int level)
{
    int lo, hi;
    if (level < 0)
        return zalg_default_level(alg);
    zalg_level_range(alg, &lo, &hi);
    return level < lo ? lo : level > hi ? hi : level;
}

/* ---- library states ---------------------------------------------------- */

static bool gz_init(struct zenc *z)
{
    memset(&z->u.gz.s, 0, sizeof(z->u.gz.s));
    /* 15 + 16: a 32 KiB window and the gzip wrapper (header + CRC-32 trailer) */
    return deflateInit2(&z->u.gz.s, z->level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) ==
           Z_OK;
}

/* Makes a recycled gzip state a fresh stream at z->level (z->level is the
 * new level, old_level the one the state was last set to). */
static bool gz_reuse(struct zenc *z, int old_level)
{
    z_stream *s = &z->u.gz.s;
    if (deflateReset(s) != Z_OK)
        return false;
    if (z->level == old_level)
        return true;
    /* Since zlib 1.2.12 deflateParams on a just-reset stream only changes the
     * parameters. Older versions may first try to compress pending input
     * with Z_BLOCK; no output room makes that attempt fail without writing
     * anything, and the caller then builds a new state instead. */
    s->next_in = NULL;
    s->avail_in = 0;
    s->next_out = NULL;
    s->avail_out = 0;
    return deflateParams(s, z->level, Z_DEFAULT_STRATEGY) == Z_OK;
}

static bool zs_params(struct zenc *z)
{
    ZSTD_CCtx *c = z->u.zs;
    /* A smaller window alone does not bound zstd's memory: its hash and
     * chain tables follow the level (4 + 16 MiB... at level 19), and only a
     * known source size makes zstd shrink them to the window. Streams have
     * no known size, so the tables are capped here as zstd would cap them:
     * hashLog <= windowLog + 1, chainLog <= windowLog + 1. */
    ZSTD_compressionParameters cp = ZSTD_getCParams(z->level, ZSTD_CONTENTSIZE_UNKNOWN, 0);
    unsigned wlog = MIN(cp.windowLog, (unsigned)ZSTD_WLOG_MAX);
    unsigned hlog = MIN(cp.hashLog, wlog + 1);
    unsigned clog = MIN(cp.chainLog, wlog + 1);

    /* a reset drops the previous user's parameters too, so a recycled
     * context is configured exactly like a new one */
    if (ZSTD_isError(ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters)))
        return false;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, z->level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, (int)wlog)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, (int)hlog)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_chainLog, (int)clog)) ||
        /* HTTP has its own integrity checks; 4 bytes and a hash pass saved */
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0)))
        return false;
    return true;
}

static bool br_init(struct zenc *z)
{
    z->u.br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
    if (!z->u.br)
        return false;
    if (!BrotliEncoderSetParameter(z->u.br, BROTLI_PARAM_QUALITY, (uint32_t)z->level) ||
        !BrotliEncoderSetParameter(z->u.br, BROTLI_PARAM_LGWIN, BR_LGWIN)) {
        BrotliEncoderDestroyInstance(z->u.br);
        z->u.br = NULL;
        return false;
    }
    return true;
}

/* Releases the library state of z and z itself. */
static void zenc_destroy(struct zenc *z)
{
    switch (z->alg) {
    case ZALG_GZIP:
        deflateEnd(&z->u.gz.s);
        break;
    case ZALG_BR:
        if (z->u.br)
            BrotliEncoderDestroyInstance(z->u.br);
        break;
    case ZALG_ZSTD:
        ZSTD_freeCCtx(z->u.zs);
        break;
    default:
        break;
    }
    free(z);
}

static void zenc_clear_flags(struct zenc *z)
{
    z->ended = z->finishing = z->synced = z->failed = false;
    z->next_free = NULL;
}

/* A recycled state of this thread for alg, preferring one already at
 * `level` (a gzip state then needs no parameter change), made ready for a
 * new stream; NULL when none is free or the reset failed (the state is then
 * destroyed). */
static struct zenc *zpool_take(enum zalg alg, int level)
{
    struct zenc **pp = &zpool[alg], **pick = NULL;
    for (; *pp; pp = &(*pp)->next_free) {
        if (!pick || (*pp)->level == level)
            pick = pp;
        if ((*pp)->level == level)
            break;
    }
    if (!pick)
        return NULL;
    struct zenc *z = *pick;
    *pick = z->next_free;
    zpool_n[alg]--;

    int old_level = z->level;
    z->level = level;
    zenc_clear_flags(z);
    bool ok = false;
    if (alg == ZALG_GZIP) {
        z->u.gz.stream_end = false;
        z->u.gz.spill_off = z->u.gz.spill_len = 0;
        ok = gz_reuse(z, old_level);
    } else if (alg == ZALG_ZSTD) {
        ok = zs_params(z);
    }
    if (!ok) {
        zenc_destroy(z);
        return NULL;
    }
    return z;
}

struct zenc *zenc_new(enum zalg alg, int level)
{
    BUG_ON(alg == ZALG_IDENTITY || (unsigned)alg >= ZALG__COUNT);
    level = clamp_level(alg, level);

    struct zenc *z = zpool_take(alg, level);
    if (z)
        return z;

    z = xcalloc(1, sizeof(*z));
    z->alg = alg;
    z->level = level;
    switch (alg) {
    case ZALG_GZIP:
        if (!gz_init(z)) {
            free(z); /* deflateInit2 frees what it allocated when it fails */
            return NULL;
        }
        break;
    case ZALG_BR:
        if (!br_init(z)) {
            free(z);
            return NULL;
        }
        break;
    case ZALG_ZSTD:
        z->u.zs = ZSTD_createCCtx();
        if (!z->u.zs) {
            free(z);
            return NULL;
        }
        if (!zs_params(z)) {
            zenc_destroy(z);
            return NULL;
        }
        break;
    default:
        break;
    }
    return z;
}

void zenc_free(struct zenc *z)
{
    if (!z)
        return;
    /* A brotli encoder cannot be reset, so a recycled one would have to be
     * destroyed and created on reuse anyway: keeping it would only hold its
     * megabytes idle. A failed state is in an unknown condition. */
    if (z->alg == ZALG_BR || z->failed || zpool_n[z->alg] >= ZPOOL_MAX) {
        zenc_destroy(z);
        return;
    }
    /* The state may be mid-stream (the client went away): zpool_take resets
     * it before anyone uses it again. */
    z->next_free = zpool[z->alg];
    zpool[z->alg] = z;
    zpool_n[z->alg]++;
}

void zenc_thread_exit(void)
{
    for (int a = 0; a < ZALG__COUNT; a++) {
        while (zpool[a]) {
            struct zenc *z = zpool[a];
            zpool[a] = z->next_free;
            zenc_destroy(z);
        }
        zpool_n[a] = 0;
    }
}

/* ---- running ----------------------------------------------------------- */

/* gzip. deflate() returns when its input is consumed (and, with a flush
 * mode, the flush is complete) or when its output is full: avail_out != 0
 * after a call therefore means "done with what it was given". The loop only
 * matters for buffers over 4 GiB (zlib counts in uInt) and for the spill. */
static int gz_run(struct zenc *z, const uint8_t *in, size_t in_len, size_t *in_used,
                  uint8_t *out, size_t out_cap, size_t *out_made, enum zflush mode)
{
    z_stream *s = &z->u.gz.s;
    int flush = mode == ZFLUSH_FINISH ? Z_FINISH : mode == ZFLUSH_SYNC ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    size_t used = 0, made = 0;
    bool done = false; /* deflate said it is done with what it was given */

    for (;;) {
        if (z->u.gz.spill_off < z->u.gz.spill_len) {
            size_t n = MIN((size_t)(z->u.gz.spill_len - z->u.gz.spill_off), out_cap - made);
            memcpy(out + made, z->u.gz.spill + z->u.gz.spill_off, n);
            made += n;
            z->u.gz.spill_off += n;
            if (z->u.gz.spill_off < z->u.gz.spill_len)
                break; /* out is full */
        }
        if (z->u.gz.stream_end) {
            z->ended = true; /* and the spill is empty: the end is out */
            break;
        }
        size_t room = out_cap - made;
        if (done || room == 0)
            break;
        if (used == in_len && mode == ZFLUSH_SYNC && z->synced)
            break; /* nothing new since the last completed flush */

        bool spill = room < GZ_SPILL;
        size_t give = MIN(in_len - used, (size_t)UINT_MAX);
        s->next_in = (Bytef *)(uintptr_t)(in + used); /* zlib's API is not const */
        s->avail_in = (uInt)give;
        s->next_out = spill ? z->u.gz.spill : out + made;
        s->avail_out = spill ? GZ_SPILL : (uInt)MIN(room, (size_t)UINT_MAX);
        size_t out_before = s->avail_out;

        int rc = deflate(s, flush);
        size_t consumed = give - s->avail_in;
        size_t produced = out_before - s->avail_out;
        used += consumed;
        if (spill) {
            z->u.gz.spill_off = 0;
            z->u.gz.spill_len = (uint8_t)produced;
        } else {
            made += produced;
        }
        if (consumed)
            z->synced = false;
        if (rc == Z_STREAM_END) {
            z->u.gz.stream_end = true;
            continue; /* hand out the spill, then report the end */
        }
        if (rc == Z_BUF_ERROR) {
            /* no progress possible (e.g. no input, nothing pending): not an
             * error for zlib, and nothing more to do in this call */
            done = true;
            continue;
        }
        if (rc != Z_OK)
            return -1;
        if (s->avail_out != 0 && used == in_len) {
            if (mode == ZFLUSH_SYNC)
                z->synced = true;
            done = true; /* loop once more only to hand the spill out */
        }
    }
    *in_used = used;
    *out_made = made;
    return z->ended ? 1 : 0;
}

/* brotli. Output the encoder could not place is kept inside it; it is taken
 * first (BrotliEncoderTakeOutput), so a new call never hands the encoder
 * input while it still holds a flush's output (it refuses that). */
static int br_run(struct zenc *z, const uint8_t *in, size_t in_len, size_t *in_used,
                  uint8_t *out, size_t out_cap, size_t *out_made, enum zflush mode)
{
    BrotliEncoderState *b = z->u.br;
    size_t made = 0;

    while (made < out_cap && BrotliEncoderHasMoreOutput(b)) {
        size_t n = out_cap - made;
        const uint8_t *p = BrotliEncoderTakeOutput(b, &n);
        memcpy(out + made, p, n);
        made += n;
    }
    *out_made = made;
    *in_used = 0;
    if (BrotliEncoderHasMoreOutput(b))
        return 0; /* out is full */
    if (BrotliEncoderIsFinished(b)) {
        z->ended = true;
        return 1;
    }
    if (made == out_cap || (in_len == 0 && mode == ZFLUSH_SYNC && z->synced))
        return 0;

    BrotliEncoderOperation op = mode == ZFLUSH_FINISH ? BROTLI_OPERATION_FINISH
                                : mode == ZFLUSH_SYNC ? BROTLI_OPERATION_FLUSH
                                                      : BROTLI_OPERATION_PROCESS;
    size_t avail_in = in_len, avail_out = out_cap - made;
    const uint8_t *next_in = in;
    uint8_t *next_out = out + made;
    if (!BrotliEncoderCompressStream(b, op, &avail_in, &next_in, &avail_out, &next_out, NULL))
        return -1;
    *in_used = in_len - avail_in;
    *out_made = out_cap - avail_out;
    if (*in_used)
        z->synced = false;
    if (mode == ZFLUSH_SYNC && avail_in == 0 && !BrotliEncoderHasMoreOutput(b))
        z->synced = true;
    if (BrotliEncoderIsFinished(b)) {
        z->ended = true;
        return 1;
    }
    return 0;
}

/* zstd. ZSTD_compressStream2 loops internally until the input is consumed
 * or the output is full; with ZSTD_e_flush / ZSTD_e_end it returns how much
 * is still to be written, 0 once the flush or the frame end is complete. */
static int zs_run(struct zenc *z, const uint8_t *in, size_t in_len, size_t *in_used,
                  uint8_t *out, size_t out_cap, size_t *out_made, enum zflush mode)
{
    *in_used = 0;
    *out_made = 0;
    if (out_cap == 0 || (in_len == 0 && mode == ZFLUSH_SYNC && z->synced))
        return 0;

    ZSTD_EndDirective op = mode == ZFLUSH_FINISH ? ZSTD_e_end
                           : mode == ZFLUSH_SYNC ? ZSTD_e_flush
                                                 : ZSTD_e_continue;
    ZSTD_inBuffer ib = {in, in_len, 0};
    ZSTD_outBuffer ob = {out, out_cap, 0};
    size_t left = ZSTD_compressStream2(z->u.zs, &ob, &ib, op);
    if (ZSTD_isError(left))
        return -1;
    *in_used = ib.pos;
    *out_made = ob.pos;
    if (ib.pos)
        z->synced = false;
    if (left == 0 && ib.pos == ib.size) {
        if (mode == ZFLUSH_SYNC)
            z->synced = true;
        if (mode == ZFLUSH_FINISH) {
            z->ended = true;
            return 1;
        }
    }
    return 0;
}

/* The contract is in compress.h. Beyond it: once ZFLUSH_FINISH has been
 * asked, every later call finishes whatever mode it names (the libraries
 * refuse to go back to plain compression mid-end); after the end, a call
 * with no input returns 1 again and a call with input is an error. A SYNC
 * whose output did not fit should be continued with SYNC (the caller's
 * natural loop); a SYNC with no new input since the last completed one
 * writes nothing. */
int zenc_run(struct zenc *z, const uint8_t *in, size_t in_len, size_t *in_used, uint8_t *out,
             size_t out_cap, size_t *out_made, enum zflush mode)
{
    int rc;

    *in_used = 0;
    *out_made = 0;
    if (z->failed)
        return -1;
    if (z->ended)
        return in_len ? -1 : 1;
    if (mode == ZFLUSH_FINISH)
        z->finishing = true;
    else if (z->finishing)
        mode = ZFLUSH_FINISH;

    switch (z->alg) {
    case ZALG_GZIP:
        rc = gz_run(z, in, in_len, in_used, out, out_cap, out_made, mode);
        break;
    case ZALG_BR:
        rc = br_run(z, in, in_len, in_used, out, out_cap, out_made, mode);
        break;
    case ZALG_ZSTD:
        rc = zs_run(z, in, in_len, in_used, out, out_cap, out_made, mode);
        break;
    default:
        rc = -1;
        break;
    }
    if (rc < 0)
        z->failed = true;
    return rc;
}
