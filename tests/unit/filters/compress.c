/* Unit tests for filters/compress.c: every encoder's output is decoded with
 * the real decoder (zlib inflate, BrotliDecoder*, ZSTD_decompress*), fed in
 * pieces through tiny output buffers, flushed mid-stream, and recycled. */
#include <brotli/decode.h>
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "core/common.h"
#include "filters/compress.h"

static const enum zalg ALGS[] = {ZALG_GZIP, ZALG_BR, ZALG_ZSTD};

/* ---- helpers ------------------------------------------------------------ */

struct blob {
    uint8_t *p;
    size_t len, cap;
};

static void blob_add(struct blob *b, const uint8_t *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static uint8_t *random_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
    return p;
}

/* Text-like input: words from a small vocabulary, so it compresses well
 * but is not one repeated block. */
static uint8_t *text_bytes(size_t n)
{
    static const char *const words[] = {"portico ", "proxy ", "upstream ", "<div class=\"x\">",
                                        "</div>\n", "GET /index.html ", "keep-alive ",
                                        "compress ", "0123456789 ", "lorem ipsum "};
    uint8_t *p = malloc(n ? n : 1);
    size_t i = 0;
    while (i < n) {
        const char *w = words[rnd() % 10];
        for (size_t k = 0; w[k] && i < n; k++)
            p[i++] = (uint8_t)w[k];
    }
    return p;
}

/* Runs z like a response filter would: calls again while the output buffer
 * comes back full (or, for FINISH, until 1), checking the contract on every
 * call. Appends what is produced to b; returns the last zenc_run result. */
static int drive(struct zenc *z, const uint8_t *in, size_t len, enum zflush mode, size_t ocap,
                 struct blob *b)
{
    uint8_t *tmp = malloc(ocap ? ocap : 1);
    int rc;
    for (size_t guard = 0;; guard++) {
        cr_assert_lt(guard, 50u * 1000 * 1000, "no progress");
        size_t used = 12345, made = 12345;
        rc = zenc_run(z, in, len, &used, tmp, ocap, &made, mode);
        cr_assert_geq(rc, 0, "encoder error");
        cr_assert_leq(used, len);
        cr_assert_leq(made, ocap);
        blob_add(b, tmp, made);
        in += used;
        len -= used;
        if (rc == 1) {
            cr_assert_eq(mode, ZFLUSH_FINISH, "1 only for FINISH");
            cr_assert_eq(len, 0, "the end is written only after all input");
            break;
        }
        if (made < ocap) {
            /* the contract: 0 means out is full or the input is consumed,
             * and FINISH is not over while out has room */
            cr_assert_eq(len, 0, "0 with room left but input not consumed");
            cr_assert_neq(mode, ZFLUSH_FINISH, "FINISH returned 0 with room left");
            break;
        }
    }
    free(tmp);
    return rc;
}

/* Feeds in[] in pieces of random sizes up to `piece` bytes with NONE, then
 * FINISH, through an output buffer of ocap bytes. */
static void encode_pieces(struct zenc *z, const uint8_t *in, size_t len, size_t piece,
                          size_t ocap, struct blob *b)
{
    size_t off = 0;
    while (off < len) {
        size_t n = 1 + rnd() % piece;
        if (n > len - off)
            n = len - off;
        drive(z, in + off, n, ZFLUSH_NONE, ocap, b);
        off += n;
    }
    cr_assert_eq(drive(z, NULL, 0, ZFLUSH_FINISH, ocap, b), 1);
}

static void encode_all(enum zalg alg, int level, const uint8_t *in, size_t len, size_t ocap,
                       struct blob *b)
{
    struct zenc *z = zenc_new(alg, level);
    cr_assert_not_null(z);
    cr_assert_eq(drive(z, in, len, ZFLUSH_FINISH, ocap, b), 1);
    zenc_free(z);
}

/* Decodes a complete stream with the real decoder; asserts it is exactly
 * one complete stream (nothing missing, nothing trailing). */
static void decode_full(enum zalg alg, const struct blob *enc, struct blob *dec)
{
    dec->len = 0;
    if (alg == ZALG_GZIP) {
        z_stream s;
        memset(&s, 0, sizeof(s));
        cr_assert_eq(inflateInit2(&s, 15 + 16), Z_OK); /* 31: gzip wrapper only */
        s.next_in = enc->p;
        s.avail_in = (uInt)enc->len;
        uint8_t buf[65536];
        int rc;
        do {
            s.next_out = buf;
            s.avail_out = sizeof(buf);
            rc = inflate(&s, Z_NO_FLUSH);
            cr_assert(rc == Z_OK || rc == Z_STREAM_END, "inflate: %d", rc);
            blob_add(dec, buf, sizeof(buf) - s.avail_out);
        } while (rc != Z_STREAM_END);
        cr_assert_eq(s.avail_in, 0, "bytes after the gzip trailer");
        inflateEnd(&s);
    } else if (alg == ZALG_BR) {
        size_t cap = 64 + enc->len * 1100; /* brotli cannot expand data past ~1000:1 here */
        if (cap < 4u << 20)
            cap = 4u << 20;
        uint8_t *out = malloc(cap);
        size_t n = cap;
        cr_assert_eq(BrotliDecoderDecompress(enc->len, enc->p, &n, out),
                     BROTLI_DECODER_RESULT_SUCCESS);
        blob_add(dec, out, n);
        free(out);
    } else {
        /* a frame whose input came in several calls carries no content
         * size: ZSTD_decompress still decodes it given room enough */
        cr_assert_eq(ZSTD_findFrameCompressedSize(enc->p, enc->len), enc->len);
        size_t cap = (4u << 20) + enc->len * 64;
        uint8_t *out = malloc(cap);
        size_t n = ZSTD_decompress(out, cap, enc->p, enc->len);
        cr_assert(!ZSTD_isError(n), "zstd: %s", ZSTD_getErrorName(n));
        blob_add(dec, out, n);
        free(out);
    }
}

/* A streaming decoder that can be fed a prefix of the stream and must give
 * back everything that prefix encodes (what a SYNC flush promises). */
struct sdec {
    enum zalg alg;
    z_stream gz;
    BrotliDecoderState *br;
    ZSTD_DStream *zs;
    struct blob out;
    bool ended;
};

static void sdec_init(struct sdec *d, enum zalg alg)
{
    memset(d, 0, sizeof(*d));
    d->alg = alg;
    if (alg == ZALG_GZIP)
        cr_assert_eq(inflateInit2(&d->gz, 31), Z_OK);
    else if (alg == ZALG_BR)
        cr_assert_not_null(d->br = BrotliDecoderCreateInstance(NULL, NULL, NULL));
    else
        cr_assert_not_null(d->zs = ZSTD_createDStream());
}

/* Feeds the next bytes of the stream; all must be consumed. */
static void sdec_feed(struct sdec *d, const uint8_t *p, size_t n)
{
    uint8_t buf[4096];
    if (d->alg == ZALG_GZIP) {
        d->gz.next_in = (Bytef *)(uintptr_t)p;
        d->gz.avail_in = (uInt)n;
        for (;;) {
            d->gz.next_out = buf;
            d->gz.avail_out = sizeof(buf);
            int rc = inflate(&d->gz, Z_SYNC_FLUSH);
            cr_assert(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR, "inflate %d", rc);
            blob_add(&d->out, buf, sizeof(buf) - d->gz.avail_out);
            if (rc == Z_STREAM_END)
                d->ended = true;
            if (d->gz.avail_out != 0 || rc != Z_OK)
                break;
        }
        cr_assert_eq(d->gz.avail_in, 0);
    } else if (d->alg == ZALG_BR) {
        size_t ai = n;
        const uint8_t *ni = p;
        for (;;) {
            size_t ao = sizeof(buf);
            uint8_t *no = buf;
            BrotliDecoderResult r = BrotliDecoderDecompressStream(d->br, &ai, &ni, &ao, &no, NULL);
            cr_assert_neq(r, BROTLI_DECODER_RESULT_ERROR);
            blob_add(&d->out, buf, sizeof(buf) - ao);
            if (r == BROTLI_DECODER_RESULT_SUCCESS)
                d->ended = true;
            /* the decoder may report NEEDS_MORE_INPUT while it still holds
             * decoded bytes for a full output buffer: ask for them too */
            if (r != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT && !BrotliDecoderHasMoreOutput(d->br))
                break;
        }
        cr_assert_eq(ai, 0);
    } else {
        ZSTD_inBuffer ib = {p, n, 0};
        for (;;) {
            ZSTD_outBuffer ob = {buf, sizeof(buf), 0};
            size_t r = ZSTD_decompressStream(d->zs, &ob, &ib);
            cr_assert(!ZSTD_isError(r), "zstd: %s", ZSTD_getErrorName(r));
            blob_add(&d->out, buf, ob.pos);
            if (r == 0)
                d->ended = true;
            if (ob.pos < ob.size && ib.pos == ib.size)
                break;
        }
    }
}

static void sdec_end(struct sdec *d)
{
    if (d->alg == ZALG_GZIP)
        inflateEnd(&d->gz);
    else if (d->alg == ZALG_BR)
        BrotliDecoderDestroyInstance(d->br);
    else
        ZSTD_freeDStream(d->zs);
    free(d->out.p);
}

static void roundtrip(enum zalg alg, int level, const uint8_t *in, size_t len, size_t ocap)
{
    struct blob enc = {0}, dec = {0};
    encode_all(alg, level, in, len, ocap, &enc);
    decode_full(alg, &enc, &dec);
    cr_assert_eq(dec.len, len, "%s level %d: %zu bytes back for %zu", zalg_name(alg), level,
                 dec.len, len);
    cr_assert(len == 0 || memcmp(dec.p, in, len) == 0, "%s level %d: content differs",
              zalg_name(alg), level);
    free(enc.p);
    free(dec.p);
}

/* ---- names and levels --------------------------------------------------- */

Test(compress, names_and_lookup)
{
    cr_assert_str_eq(zalg_name(ZALG_GZIP), "gzip");
    cr_assert_str_eq(zalg_name(ZALG_BR), "br");
    cr_assert_str_eq(zalg_name(ZALG_ZSTD), "zstd");
    cr_assert_str_eq(zalg_name(ZALG_IDENTITY), "identity");
    cr_assert_eq(zalg_lookup("gzip", 4), ZALG_GZIP);
    cr_assert_eq(zalg_lookup("br", 2), ZALG_BR);
    cr_assert_eq(zalg_lookup("zstd", 4), ZALG_ZSTD);
    cr_assert_eq(zalg_lookup("GZip", 4), ZALG_GZIP, "tokens are case-insensitive");
    cr_assert_eq(zalg_lookup("gzipped", 4), ZALG_GZIP, "len bounds the name");
    cr_assert_eq(zalg_lookup("gzip", 3), -1);
    cr_assert_eq(zalg_lookup("brotli", 6), -1);
    cr_assert_eq(zalg_lookup("identity", 8), -1);
    cr_assert_eq(zalg_lookup("deflate", 7), -1);
    cr_assert_eq(zalg_lookup("", 0), -1);
}

Test(compress, levels)
{
    int lo, hi;
    cr_assert_eq(zalg_default_level(ZALG_GZIP), 1);
    cr_assert_eq(zalg_default_level(ZALG_BR), 4);
    cr_assert_eq(zalg_default_level(ZALG_ZSTD), 3);
    zalg_level_range(ZALG_GZIP, &lo, &hi);
    cr_assert(lo == 1 && hi == 9);
    zalg_level_range(ZALG_BR, &lo, &hi);
    cr_assert(lo == 0 && hi == 11);
    zalg_level_range(ZALG_ZSTD, &lo, &hi);
    cr_assert(lo == 1 && hi == 19);
}

/* the BUG_ON message goes to stderr: kept out of the test output */
Test(compress, identity_is_a_bug, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    zenc_new(ZALG_IDENTITY, 1);
}

/* ---- round trips -------------------------------------------------------- */

Test(compress, text_every_level)
{
    size_t len = 64 * 1000; /* brotli 10-11 run at ~1 MB/s */
    uint8_t *in = text_bytes(len);
    for (size_t a = 0; a < 3; a++) {
        int lo, hi;
        zalg_level_range(ALGS[a], &lo, &hi);
        for (int lvl = lo; lvl <= hi; lvl++)
            roundtrip(ALGS[a], lvl, in, len, 65536);
        roundtrip(ALGS[a], -1, in, len, 65536);  /* default */
        roundtrip(ALGS[a], 1000, in, len, 65536); /* clamped to the maximum */
    }
    free(in);
}

Test(compress, text_actually_compresses)
{
    size_t len = 100 * 1000;
    uint8_t *in = text_bytes(len);
    for (size_t a = 0; a < 3; a++) {
        struct blob enc = {0};
        encode_all(ALGS[a], -1, in, len, 4096, &enc);
        cr_assert_lt(enc.len, len / 4, "%s: %zu bytes for %zu of text", zalg_name(ALGS[a]),
                     enc.len, len);
        free(enc.p);
    }
    free(in);
}

Test(compress, random_binary)
{
    size_t len = 300 * 1000;
    uint8_t *in = random_bytes(len);
    for (size_t a = 0; a < 3; a++) {
        roundtrip(ALGS[a], -1, in, len, 16384);
        roundtrip(ALGS[a], 9, in, len, 1000);
    }
    free(in);
}

Test(compress, empty_input)
{
    for (size_t a = 0; a < 3; a++) {
        for (size_t ocap = 1; ocap <= 64; ocap *= 4) {
            struct blob enc = {0}, dec = {0};
            encode_all(ALGS[a], -1, NULL, 0, ocap, &enc);
            cr_assert_gt(enc.len, 0, "an empty stream still has a header / end");
            decode_full(ALGS[a], &enc, &dec);
            cr_assert_eq(dec.len, 0);
            free(enc.p);
            free(dec.p);
        }
    }
}

Test(compress, one_mib_in_pieces_tiny_output)
{
    size_t len = 1u << 20;
    uint8_t *in = text_bytes(len);
    /* a third of it random, so the encoders also have incompressible runs */
    uint8_t *r = random_bytes(len / 3);
    memcpy(in + len / 3, r, len / 3);
    free(r);
    for (size_t a = 0; a < 3; a++) {
        struct blob enc = {0}, dec = {0};
        struct zenc *z = zenc_new(ALGS[a], -1);
        cr_assert_not_null(z);
        encode_pieces(z, in, len, 3000, 7, &enc);
        zenc_free(z);
        decode_full(ALGS[a], &enc, &dec);
        cr_assert_eq(dec.len, len, "%s", zalg_name(ALGS[a]));
        cr_assert(memcmp(dec.p, in, len) == 0, "%s", zalg_name(ALGS[a]));
        free(enc.p);
        free(dec.p);
    }
    free(in);
}

Test(compress, one_byte_output_buffer)
{
    size_t len = 64 * 1000;
    uint8_t *in = text_bytes(len);
    for (size_t a = 0; a < 3; a++) {
        struct blob enc = {0}, dec = {0};
        struct zenc *z = zenc_new(ALGS[a], -1);
        encode_pieces(z, in, len, 700, 1, &enc);
        zenc_free(z);
        decode_full(ALGS[a], &enc, &dec);
        cr_assert_eq(dec.len, len);
        cr_assert(memcmp(dec.p, in, len) == 0);
        free(enc.p);
        free(dec.p);
    }
    free(in);
}

Test(compress, zero_output_room_is_not_an_error)
{
    uint8_t in[100] = "hello hello hello", out[1];
    for (size_t a = 0; a < 3; a++) {
        struct zenc *z = zenc_new(ALGS[a], -1);
        size_t used, made;
        cr_assert_eq(zenc_run(z, in, sizeof(in), &used, out, 0, &made, ZFLUSH_FINISH), 0);
        cr_assert_eq(made, 0);
        /* and the stream still completes afterwards */
        struct blob enc = {0}, dec = {0};
        cr_assert_eq(drive(z, in + used, sizeof(in) - used, ZFLUSH_FINISH, 5, &enc), 1);
        decode_full(ALGS[a], &enc, &dec);
        cr_assert_eq(dec.len, sizeof(in));
        cr_assert(memcmp(dec.p, in, sizeof(in)) == 0);
        zenc_free(z);
        free(enc.p);
        free(dec.p);
    }
}

/* ---- flushes ------------------------------------------------------------ */

static void sync_prefixes(enum zalg alg, size_t ocap)
{
    size_t len = 150 * 1000;
    uint8_t *in = text_bytes(len);
    size_t cuts[] = {1, 17, 5000, 5001, 60000, 149000, len};
    struct zenc *z = zenc_new(alg, -1);
    struct sdec d;
    sdec_init(&d, alg);
    struct blob enc = {0};
    size_t fed = 0;
    for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
        size_t before = enc.len;
        /* the new part goes in with NONE first, so the flush has buffered
         * data to push out and not only its own input */
        size_t half = (cuts[i] - fed) / 2;
        drive(z, in + fed, half, ZFLUSH_NONE, ocap, &enc);
        drive(z, in + fed + half, cuts[i] - fed - half, ZFLUSH_SYNC, ocap, &enc);
        fed = cuts[i];
        sdec_feed(&d, enc.p + before, enc.len - before);
        cr_assert_eq(d.out.len, fed, "%s ocap %zu: %zu bytes decodable after SYNC at %zu",
                     zalg_name(alg), ocap, d.out.len, fed);
        cr_assert(memcmp(d.out.p, in, fed) == 0);
        cr_assert(!d.ended, "a SYNC flush must not end the stream");

        /* A second SYNC with nothing new writes nothing (no repeated marker). */
        size_t again = enc.len;
        drive(z, NULL, 0, ZFLUSH_SYNC, ocap, &enc);
        cr_assert_eq(enc.len, again, "%s: a repeated SYNC wrote %zu bytes", zalg_name(alg),
                     enc.len - again);
    }
    size_t before = enc.len;
    cr_assert_eq(drive(z, NULL, 0, ZFLUSH_FINISH, ocap, &enc), 1);
    sdec_feed(&d, enc.p + before, enc.len - before);
    cr_assert(d.ended, "%s: the stream is complete after FINISH", zalg_name(alg));
    cr_assert_eq(d.out.len, len);

    struct blob dec = {0};
    decode_full(alg, &enc, &dec);
    cr_assert_eq(dec.len, len);
    cr_assert(memcmp(dec.p, in, len) == 0);
    zenc_free(z);
    sdec_end(&d);
    free(enc.p);
    free(dec.p);
    free(in);
}

Test(compress, sync_flush_makes_prefix_decodable)
{
    for (size_t a = 0; a < 3; a++) {
        sync_prefixes(ALGS[a], 65536);
        sync_prefixes(ALGS[a], 7);
        sync_prefixes(ALGS[a], 1); /* zlib needs > 6 bytes per flush call: the spill */
    }
}

Test(compress, sync_flush_without_new_input_after_none)
{
    /* data given with NONE only, then a SYNC with no input: it must push out
     * what NONE kept buffered */
    const char *msg = "event: tick\ndata: {\"n\": 1}\n\n";
    size_t len = strlen(msg);
    for (size_t a = 0; a < 3; a++) {
        struct zenc *z = zenc_new(ALGS[a], -1);
        struct sdec d;
        sdec_init(&d, ALGS[a]);
        struct blob enc = {0};
        drive(z, (const uint8_t *)msg, len, ZFLUSH_NONE, 3, &enc);
        drive(z, NULL, 0, ZFLUSH_SYNC, 3, &enc);
        sdec_feed(&d, enc.p, enc.len);
        cr_assert_eq(d.out.len, len, "%s", zalg_name(ALGS[a]));
        cr_assert(memcmp(d.out.p, msg, len) == 0);
        zenc_free(z);
        sdec_end(&d);
        free(enc.p);
    }
}

Test(compress, finish_is_sticky_and_final)
{
    uint8_t in[3000];
    memset(in, 'a', sizeof(in));
    for (size_t a = 0; a < 3; a++) {
        struct zenc *z = zenc_new(ALGS[a], -1);
        uint8_t out[2];
        size_t used, made;
        struct blob enc = {0}, dec = {0};
        /* FINISH starts, the output fills ... */
        cr_assert_eq(zenc_run(z, in, sizeof(in), &used, out, sizeof(out), &made, ZFLUSH_FINISH), 0);
        blob_add(&enc, out, made);
        /* ... and a caller that continues with NONE still gets the end */
        const uint8_t *p = in + used;
        size_t left = sizeof(in) - used;
        int rc = 0;
        for (int guard = 0; rc == 0; guard++) {
            cr_assert_lt(guard, 100000);
            rc = zenc_run(z, p, left, &used, out, sizeof(out), &made, ZFLUSH_NONE);
            cr_assert_geq(rc, 0);
            blob_add(&enc, out, made);
            p += used;
            left -= used;
            cr_assert(rc == 1 || made == sizeof(out), "%s: 0 with room left while finishing",
                      zalg_name(ALGS[a]));
        }
        cr_assert_eq(left, 0);
        decode_full(ALGS[a], &enc, &dec);
        cr_assert_eq(dec.len, sizeof(in));
        /* after the end: nothing more, and input is refused */
        cr_assert_eq(zenc_run(z, NULL, 0, &used, out, sizeof(out), &made, ZFLUSH_FINISH), 1);
        cr_assert_eq(made, 0);
        cr_assert_eq(zenc_run(z, in, 1, &used, out, sizeof(out), &made, ZFLUSH_NONE), -1);
        cr_assert_eq(used, 0);
        zenc_free(z); /* a failed encoder is destroyed, not recycled */
        free(enc.p);
        free(dec.p);
    }
}

/* ---- recycling ---------------------------------------------------------- */

/* The bytes a brand-new encoder produces for in[] at level. */
static void fresh_output(enum zalg alg, int level, const uint8_t *in, size_t len,
                         struct blob *b)
{
    zenc_thread_exit(); /* empty the free list: the next zenc_new allocates */
    encode_all(alg, level, in, len, 4096, b);
    zenc_thread_exit();
}

Test(compress, recycled_state_after_other_level)
{
    size_t len = 50 * 1000;
    uint8_t *in = text_bytes(len);
    for (size_t a = 0; a < 3; a++) {
        int lo, hi;
        zalg_level_range(ALGS[a], &lo, &hi);
        struct blob want_lo = {0}, want_hi = {0};
        fresh_output(ALGS[a], lo, in, len, &want_lo);
        fresh_output(ALGS[a], hi, in, len, &want_hi);
        if (ALGS[a] != ZALG_BR)
            cr_assert_neq(want_lo.len, want_hi.len, "the levels must differ to test anything");

        /* A stream at the top level abandoned midway, then a stream at the
         * lowest level: gzip and zstd get the same state back. */
        struct zenc *z1 = zenc_new(ALGS[a], hi);
        struct blob junk = {0};
        drive(z1, in, len / 2, ZFLUSH_NONE, 4096, &junk);
        zenc_free(z1);
        struct zenc *z2 = zenc_new(ALGS[a], lo);
        if (ALGS[a] != ZALG_BR)
            cr_assert_eq(z2, z1, "%s: the freed state is reused", zalg_name(ALGS[a]));
        struct blob got = {0};
        cr_assert_eq(drive(z2, in, len, ZFLUSH_FINISH, 4096, &got), 1);
        cr_assert_eq(got.len, want_lo.len, "%s: recycled state at level %d: %zu bytes, fresh %zu",
                     zalg_name(ALGS[a]), lo, got.len, want_lo.len);
        cr_assert(memcmp(got.p, want_lo.p, got.len) == 0, "%s: not what a fresh state writes",
                  zalg_name(ALGS[a]));

        /* and back up to the top level, from a finished stream */
        zenc_free(z2);
        struct zenc *z3 = zenc_new(ALGS[a], hi);
        got.len = 0;
        cr_assert_eq(drive(z3, in, len, ZFLUSH_FINISH, 4096, &got), 1);
        cr_assert_eq(got.len, want_hi.len, "%s level %d", zalg_name(ALGS[a]), hi);
        cr_assert(memcmp(got.p, want_hi.p, got.len) == 0);
        zenc_free(z3);

        zenc_thread_exit();
        free(want_lo.p);
        free(want_hi.p);
        free(junk.p);
        free(got.p);
    }
    free(in);
}

Test(compress, recycled_same_level_and_many_at_once)
{
    size_t len = 30 * 1000;
    uint8_t *in = text_bytes(len);
    for (size_t a = 0; a < 3; a++) {
        struct blob want = {0};
        fresh_output(ALGS[a], -1, in, len, &want);
        /* more live encoders than the free list keeps, all freed, then
         * reused: each must still produce a correct, identical stream */
        for (int round = 0; round < 3; round++) {
            struct zenc *zs[10];
            for (size_t i = 0; i < ARRAY_SIZE(zs); i++)
                cr_assert_not_null(zs[i] = zenc_new(ALGS[a], -1));
            for (size_t i = 0; i < ARRAY_SIZE(zs); i++) {
                struct blob got = {0};
                cr_assert_eq(drive(zs[i], in, len, ZFLUSH_FINISH, 999, &got), 1);
                cr_assert_eq(got.len, want.len);
                cr_assert(memcmp(got.p, want.p, got.len) == 0);
                free(got.p);
            }
            for (size_t i = 0; i < ARRAY_SIZE(zs); i++)
                zenc_free(zs[i]);
        }
        zenc_thread_exit();
        free(want.p);
    }
    free(in);
}

Test(compress, free_null_and_exit_twice)
{
    zenc_free(NULL);
    zenc_thread_exit();
    zenc_thread_exit();
}

/* ---- memory bound ------------------------------------------------------- */

static void *volatile probe;

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd; /* brk heap + mmapped blocks */
}

Test(compress, memory_per_encoder_is_bounded)
{
    /* the window caps hold at every level a route may set (brotli's top
     * qualities excepted: their cost is documented, not capped) */
    /* mallinfo2 sees glibc's heap only: under a sanitizer's allocator the
     * measure would read 0 and prove nothing */
    size_t before = heap_in_use();
    probe = malloc(1u << 20); /* through a volatile: the compiler may not elide it */
    bool measurable = heap_in_use() - before >= 1u << 20;
    free(probe);
    if (!measurable)
        cr_skip_test("mallinfo2 does not see this allocator");

    size_t len = 1u << 20; /* four times the windows: the tables are all in use */
    uint8_t *in = random_bytes(len);
    struct {
        enum zalg alg;
        int level;
        size_t max;
    } cases[] = {
        {ZALG_GZIP, 1, 400u << 10}, {ZALG_GZIP, 9, 400u << 10},
        {ZALG_ZSTD, 3, 3u << 20},   {ZALG_ZSTD, 19, 8u << 20},
        {ZALG_BR, 4, 4u << 20},
    };
    uint8_t *out = malloc(1 << 16);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        zenc_thread_exit();
        size_t base = heap_in_use(), peak = 0;
        struct zenc *z = zenc_new(cases[i].alg, cases[i].level);
        for (size_t off = 0; off < len; off += 16384) {
            const uint8_t *p = in + off;
            size_t n = 16384;
            while (n) {
                size_t used, made;
                cr_assert_geq(zenc_run(z, p, n, &used, out, 1 << 16, &made, ZFLUSH_NONE), 0);
                p += used;
                n -= used;
            }
            size_t now = heap_in_use() - base;
            if (now > peak)
                peak = now;
        }
        zenc_free(z);
        cr_log_info("%s level %d: %zu KiB", zalg_name(cases[i].alg), cases[i].level, peak >> 10);
        cr_assert_leq(peak, cases[i].max, "%s level %d holds %zu KiB",
                      zalg_name(cases[i].alg), cases[i].level, peak >> 10);
    }
    zenc_thread_exit();
    free(out);
    free(in);
}
