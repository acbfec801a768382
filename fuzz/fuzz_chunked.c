/* fuzz_chunked.c - libFuzzer harness for the chunked decoder. The input is
 * decoded whole, then again in three pieces cut at offsets taken from the
 * input itself; status, bytes consumed, data count and a hash of the data must
 * agree. Each piece is an exact-size heap copy so over-reads are caught. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/chunked.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c))                                                                      \
            __builtin_trap();                                                          \
    } while (0)

struct outcome {
    int status;
    size_t consumed;
    uint64_t data_bytes;
    uint64_t total;
    uint64_t hash;
};

static void run(const uint8_t *in, size_t len, size_t max_trailer, const size_t *cuts,
                size_t ncuts, struct outcome *o)
{
    struct chunked_dec d;
    chunked_dec_init(&d, max_trailer);
    memset(o, 0, sizeof(*o));
    o->status = CHUNKED_MORE;
    o->hash = 1469598103934665603ULL;
    size_t from = 0;
    for (size_t k = 0; k <= ncuts && o->status == CHUNKED_MORE; k++) {
        size_t to = k < ncuts ? cuts[k] : len;
        size_t plen = to - from;
        char *piece = malloc(plen ? plen : 1);
        memcpy(piece, in + from, plen);
        size_t off = 0;
        while (o->status == CHUNKED_MORE && off < plen) {
            size_t used = 0, doff = 0, dlen = 0;
            o->status = chunked_decode(&d, piece + off, plen - off, &used, &doff, &dlen);
            CHECK(used <= plen - off);
            CHECK(o->status != CHUNKED_MORE || used > 0);
            if (dlen) {
                CHECK(o->status == CHUNKED_MORE);
                CHECK(doff + dlen <= used);
                for (size_t i = 0; i < dlen; i++)
                    o->hash = (o->hash ^ (uint8_t)piece[off + doff + i]) * 1099511628211ULL;
                o->data_bytes += dlen;
            }
            off += used;
            o->consumed += used;
        }
        free(piece);
        from = to;
    }
    o->total = d.total;
    CHECK(o->total == o->data_bytes);
    CHECK(o->consumed <= len);
    if (o->status == CHUNKED_DONE) {
        CHECK(o->consumed >= 5);
        CHECK(memcmp(in + o->consumed - 2, "\r\n", 2) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    /* byte 0: trailer limit; bytes 1-2: where to cut; the rest: the body */
    size_t max_trailer = (size_t)data[0] * 4;
    const uint8_t *in = data + 3;
    size_t len = size - 3;
    size_t a = len ? data[1] % (len + 1) : 0, b = len ? data[2] % (len + 1) : 0;
    size_t cuts[2] = {a < b ? a : b, a < b ? b : a};
    struct outcome whole, split;

    run(in, len, max_trailer, NULL, 0, &whole);
    run(in, len, max_trailer, cuts, 2, &split);
    CHECK(whole.status == split.status);
    CHECK(whole.data_bytes == split.data_bytes);
    CHECK(whole.hash == split.hash);
    CHECK(whole.consumed == split.consumed);
    return 0;
}
