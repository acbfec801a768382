/* Unit tests for src/http/chunked.c: valid bodies, every split of them, invalid
 * sizes/extensions/CRLFs/trailers, limits, and the size-line encoder. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "http/chunked.h"

struct result {
    int status;        /* last status returned */
    size_t consumed;   /* total input bytes consumed */
    char data[8192];   /* concatenated data spans */
    size_t data_len;
    uint64_t total;    /* decoder's own count */
};

/* Feeds in[0..len) in pieces cut at cuts[0..ncuts) (ascending offsets), calling
 * the decoder until each piece is consumed or it stops. Each piece is a heap
 * copy of exactly its size so ASan catches over-reads. */
static void decode_split(const char *in, size_t len, size_t max_trailer, const size_t *cuts,
                         size_t ncuts, struct result *r)
{
    struct chunked_dec d;
    chunked_dec_init(&d, max_trailer);
    memset(r, 0, sizeof(*r));
    r->status = CHUNKED_MORE;
    size_t from = 0;
    for (size_t k = 0; k <= ncuts && r->status == CHUNKED_MORE; k++) {
        size_t to = k < ncuts ? cuts[k] : len;
        char *piece = malloc(to - from ? to - from : 1);
        memcpy(piece, in + from, to - from);
        size_t off = 0;
        while (r->status == CHUNKED_MORE && off < to - from) {
            size_t used, doff, dlen;
            r->status = chunked_decode(&d, piece + off, to - from - off, &used, &doff, &dlen);
            cr_assert_leq(used, to - from - off);
            if (dlen) {
                cr_assert_leq(doff + dlen, used);
                cr_assert_leq(r->data_len + dlen, sizeof(r->data));
                memcpy(r->data + r->data_len, piece + off + doff, dlen);
                r->data_len += dlen;
            }
            off += used;
            r->consumed += used;
            if (r->status == CHUNKED_MORE && used == 0)
                cr_assert_fail("no progress");
        }
        free(piece);
        from = to;
    }
    r->total = d.total;
}

static void decode(const char *in, size_t len, size_t max_trailer, struct result *r)
{
    decode_split(in, len, max_trailer, NULL, 0, r);
}

static struct result R, R2;

#define DECODE(s) decode((s), strlen(s), 256, &R)

static void expect_done(const char *s, const char *data)
{
    decode(s, strlen(s), 256, &R);
    cr_assert_eq(R.status, CHUNKED_DONE, "expected DONE for %s", s);
    cr_assert_eq(R.consumed, strlen(s));
    cr_assert_eq(R.data_len, strlen(data));
    cr_assert_eq(R.total, strlen(data));
    cr_assert(memcmp(R.data, data, R.data_len) == 0);
}

static void expect_error(const char *s)
{
    decode(s, strlen(s), 256, &R);
    cr_assert_eq(R.status, CHUNKED_ERROR, "expected ERROR for \"%s\", got %d", s, R.status);
}

static const struct {
    const char *in;
    const char *data;
} valid[] = {
    {"0\r\n\r\n", ""},
    {"5\r\nhello\r\n0\r\n\r\n", "hello"},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"},
    {"A\r\n0123456789\r\na\r\nabcdefghij\r\n000\r\n\r\n", "0123456789abcdefghij"},
    {"0005\r\nab\r\nc\r\n0\r\n\r\n", "ab\r\nc"},
    {"3;name\r\nabc\r\n0;a=b;c=\"q \\\" ;x\"\r\n\r\n", "abc"},
    {"3;a=b;c;d=\"\"\r\nabc\r\n0\r\n\r\n", "abc"},
    {"1\r\nx\r\n0\r\nX-Trailer: v\r\nY:\r\nZ: a b\t\xff\r\n\r\n", "x"},
};

Test(chunked, valid_bodies)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        expect_done(valid[i].in, valid[i].data);
    /* binary data, including NUL */
    static const char bin[] = "2\r\n\0\xff\r\n0\r\n\r\n";
    decode(bin, sizeof(bin) - 1, 0, &R);
    cr_assert_eq(R.status, CHUNKED_DONE);
    cr_assert_eq(R.data_len, 2);
    cr_assert_eq(R.data[0], 0);
    cr_assert_eq((unsigned char)R.data[1], 0xff);
}

Test(chunked, every_split_matches_whole)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        const char *s = valid[i].in;
        size_t len = strlen(s);
        decode(s, len, 256, &R);
        /* every byte on its own */
        size_t *cuts = malloc(len * sizeof(*cuts));
        for (size_t k = 0; k < len; k++)
            cuts[k] = k + 1;
        decode_split(s, len, 256, cuts, len - 1, &R2);
        cr_assert_eq(R2.status, R.status);
        cr_assert_eq(R2.consumed, R.consumed);
        cr_assert_eq(R2.data_len, R.data_len);
        cr_assert(memcmp(R2.data, R.data, R.data_len) == 0);
        /* every two-piece and three-piece split */
        for (size_t a = 0; a <= len; a++) {
            for (size_t b = a; b <= len; b += 3) {
                size_t c2[2] = {a, b};
                decode_split(s, len, 256, c2, 2, &R2);
                cr_assert_eq(R2.status, CHUNKED_DONE, "case %zu cut %zu,%zu", i, a, b);
                cr_assert_eq(R2.consumed, len);
                cr_assert_eq(R2.data_len, R.data_len);
                cr_assert(memcmp(R2.data, R.data, R.data_len) == 0);
            }
        }
        free(cuts);
    }
}

Test(chunked, random_splits_of_invalid_match_whole)
{
    static const char *const inputs[] = {
        "5\r\nhelloX\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\nA : b\r\n\r\n",
        "ff;x=\"unterminated\r\n", "1\r\na\r\n1 \r\nb\r\n0\r\n\r\n",
    };
    srand(1234);
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        const char *s = inputs[i];
        size_t len = strlen(s);
        decode(s, len, 256, &R);
        for (int round = 0; round < 200; round++) {
            size_t cuts[6];
            size_t nc = (size_t)(rand() % 6);
            for (size_t k = 0; k < nc; k++)
                cuts[k] = (size_t)rand() % (len + 1);
            for (size_t x = 0; x < nc; x++) /* sort */
                for (size_t y = x + 1; y < nc; y++)
                    if (cuts[y] < cuts[x]) {
                        size_t t = cuts[x];
                        cuts[x] = cuts[y];
                        cuts[y] = t;
                    }
            decode_split(s, len, 256, cuts, nc, &R2);
            cr_assert_eq(R2.status, R.status);
            cr_assert_eq(R2.data_len, R.data_len);
            cr_assert(memcmp(R2.data, R.data, R.data_len) == 0);
        }
    }
}

Test(chunked, invalid_sizes)
{
    static const char *const bad[] = {
        "+1\r\na\r\n0\r\n\r\n", "-1\r\na\r\n0\r\n\r\n", "0x1\r\na\r\n0\r\n\r\n",
        " 1\r\na\r\n0\r\n\r\n", "1 \r\na\r\n0\r\n\r\n", "\r\na\r\n0\r\n\r\n",
        "g\r\n", "1g\r\n", "\t1\r\n", "1\t\r\n", "1\n", "1\r\r\n", "1\rx",
        "00000000000000001\r\n",    /* 17 digits */
        "4000000000000001\r\n",     /* 2^62 + 1 */
        "ffffffffffffffff\r\n",     /* 2^64 - 1 */
        "10000000000000000\r\n",    /* 2^64 */
        ";a\r\n", "1;\r\n", "1;=b\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(bad[i]);
}

Test(chunked, max_size_accepted)
{
    DECODE("4000000000000000\r\nabc"); /* 2^62: valid size, data still to come */
    cr_assert_eq(R.status, CHUNKED_MORE);
    cr_assert_eq(R.data_len, 3);
    cr_assert_eq(R.consumed, 21);
}

Test(chunked, extensions_strict)
{
    expect_error("1 ;a=b\r\nx\r\n0\r\n\r\n");   /* BWS before ';' refused */
    expect_error("1; a=b\r\nx\r\n0\r\n\r\n");
    expect_error("1;a =b\r\nx\r\n0\r\n\r\n");
    expect_error("1;a= b\r\nx\r\n0\r\n\r\n");
    expect_error("1;a=\r\nx\r\n0\r\n\r\n");
    expect_error("1;a=b c\r\nx\r\n0\r\n\r\n");
    expect_error("1;a=\"b\"c\r\nx\r\n0\r\n\r\n");
    expect_error("1;a=\"b\r\nx\r\n0\r\n\r\n");  /* CR inside quoted-string */
    expect_error("1;a(b)\r\nx\r\n0\r\n\r\n");
    expect_error("1;a\nx\r\n0\r\n\r\n");
    expect_done("1;a=\"\\\\\";b=c\r\nx\r\n0\r\n\r\n", "x");
}

/* Builds "1;aaaa..." of `content` bytes (no CRLF) followed by tail. */
static size_t long_line(char *s, size_t content, const char *tail)
{
    s[0] = '1';
    s[1] = ';';
    memset(s + 2, 'a', content - 2);
    size_t t = strlen(tail);
    memcpy(s + content, tail, t + 1);
    return content + t;
}

Test(chunked, size_line_limit)
{
    char *s = malloc(8192);
    /* the bound is 4096 bytes including the CRLF */
    size_t n = long_line(s, 4094, "\r\nx\r\n0\r\n\r\n");
    decode(s, n, 256, &R);
    cr_assert_eq(R.status, CHUNKED_DONE);
    n = long_line(s, 4095, "\r\nx\r\n0\r\n\r\n");
    decode(s, n, 256, &R);
    cr_assert_eq(R.status, CHUNKED_ERROR);
    /* rejected before the line ends */
    n = long_line(s, 4096, "");
    decode(s, n, 256, &R);
    cr_assert_eq(R.status, CHUNKED_MORE);
    n = long_line(s, 4097, "");
    decode(s, n, 256, &R);
    cr_assert_eq(R.status, CHUNKED_ERROR);
    free(s);
}

Test(chunked, data_crlf)
{
    expect_error("5\r\nhelloX\r\n0\r\n\r\n");
    expect_error("5\r\nhello\n0\r\n\r\n");
    expect_error("5\r\nhello\r0\r\n\r\n");
    expect_error("5\r\nhello\r\r\n0\r\n\r\n");
    expect_error("5\r\nhello world\r\n0\r\n\r\n"); /* more data than the size */
    DECODE("5\r\nhel");
    cr_assert_eq(R.status, CHUNKED_MORE);
    cr_assert_eq(R.data_len, 3);
}

Test(chunked, last_chunk_and_final_crlf)
{
    expect_error("0\r\n\n");
    expect_error("0\r\n\rx");
    expect_error("0\n\r\n");
    DECODE("0\r\n\r");
    cr_assert_eq(R.status, CHUNKED_MORE);
    cr_assert_eq(R.consumed, 4);
}

Test(chunked, bad_trailers)
{
    expect_error("0\r\nA: b\r\n c\r\n\r\n");  /* obs-fold */
    expect_error("0\r\n\tA: b\r\n\r\n");
    expect_error("0\r\nA: b\n\r\n");         /* bare LF */
    expect_error("0\r\nA: b\r\n\n");
    expect_error("0\r\nA : b\r\n\r\n");      /* space before colon */
    expect_error("0\r\n: b\r\n\r\n");        /* empty name */
    expect_error("0\r\nA b\r\n\r\n");        /* no colon */
    expect_error("0\r\nA: b\rc\r\n\r\n");    /* CR inside value */
    expect_error("0\r\nA: \x7f\r\n\r\n");
    static const char nul[] = "0\r\nA: \0\r\n\r\n";
    decode(nul, sizeof(nul) - 1, 256, &R);
    cr_assert_eq(R.status, CHUNKED_ERROR);
}

Test(chunked, trailer_limit)
{
    const char *s = "0\r\nAb: cdefgh\r\n\r\n"; /* field line incl. CRLF = 12 bytes */
    decode(s, strlen(s), 12, &R);
    cr_assert_eq(R.status, CHUNKED_DONE);
    decode(s, strlen(s), 11, &R);
    cr_assert_eq(R.status, CHUNKED_ERROR);
    decode("0\r\n\r\n", 5, 0, &R);
    cr_assert_eq(R.status, CHUNKED_DONE);
    decode("0\r\nA:\r\n\r\n", 9, 0, &R);
    cr_assert_eq(R.status, CHUNKED_ERROR);
    /* the limit spans the whole section, not each line */
    s = "0\r\nA: 1\r\nB: 2\r\n\r\n";
    decode(s, strlen(s), 12, &R);
    cr_assert_eq(R.status, CHUNKED_DONE);
    decode(s, strlen(s), 11, &R);
    cr_assert_eq(R.status, CHUNKED_ERROR);
}

Test(chunked, bytes_after_done_unconsumed)
{
    const char *s = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    struct chunked_dec d;
    chunked_dec_init(&d, 0);
    size_t used, off, dlen, pos = 0;
    int st;
    do {
        st = chunked_decode(&d, s + pos, strlen(s) - pos, &used, &off, &dlen);
        pos += used;
    } while (st == CHUNKED_MORE);
    cr_assert_eq(st, CHUNKED_DONE);
    cr_assert_eq(pos, 13);
    cr_assert_eq(d.total, 3);
    /* after DONE: nothing more is consumed */
    st = chunked_decode(&d, s + pos, strlen(s) - pos, &used, &off, &dlen);
    cr_assert_eq(st, CHUNKED_DONE);
    cr_assert_eq(used, 0);
    cr_assert_eq(dlen, 0);
}

Test(chunked, error_is_sticky)
{
    struct chunked_dec d;
    chunked_dec_init(&d, 0);
    size_t used, off, dlen;
    cr_assert_eq(chunked_decode(&d, "z", 1, &used, &off, &dlen), CHUNKED_ERROR);
    cr_assert_eq(chunked_decode(&d, "0\r\n\r\n", 5, &used, &off, &dlen), CHUNKED_ERROR);
    cr_assert_eq(used, 0);
}

Test(chunked, one_span_per_call)
{
    const char *s = "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n";
    struct chunked_dec d;
    chunked_dec_init(&d, 0);
    size_t used, off, dlen;
    int st = chunked_decode(&d, s, strlen(s), &used, &off, &dlen);
    cr_assert_eq(st, CHUNKED_MORE);
    cr_assert_eq(off, 3);
    cr_assert_eq(dlen, 2);
    cr_assert_eq(used, 5);
    st = chunked_decode(&d, s + 5, strlen(s) - 5, &used, &off, &dlen);
    cr_assert_eq(st, CHUNKED_MORE);
    cr_assert_eq(off, 5);
    cr_assert_eq(dlen, 3);
    cr_assert(memcmp(s + 5 + off, "cde", 3) == 0);
    cr_assert_eq(d.total, 5);
}

Test(chunked, size_line_encoder)
{
    char out[20];
    size_t n = chunked_size_line(out, 0);
    cr_assert_eq(n, 3);
    cr_assert(memcmp(out, "0\r\n", 3) == 0);
    n = chunked_size_line(out, 255);
    cr_assert(n == 4 && memcmp(out, "ff\r\n", 4) == 0);
    n = chunked_size_line(out, 0x1000);
    cr_assert(n == 6 && memcmp(out, "1000\r\n", 6) == 0);
    n = chunked_size_line(out, UINT64_MAX);
    cr_assert(n == 18 && memcmp(out, "ffffffffffffffff\r\n", 18) == 0);
    /* round trip through the decoder */
    char msg[64];
    n = chunked_size_line(msg, 11);
    memcpy(msg + n, "hello world\r\n0\r\n\r\n", 18);
    decode(msg, n + 18, 0, &R);
    cr_assert_eq(R.status, CHUNKED_DONE);
    cr_assert_eq(R.data_len, 11);
}
