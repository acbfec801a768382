/* buf.c - fixed-size I/O buffers, recycled through per-thread free lists
 * by size class. */
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* Recycled sizes: multiples of BUF_CLASS_UNIT up to BUF_CLASSES units. The
 * client buffer is sized from limits.max_header_bytes (17 KiB by default),
 * not a standard size: before classes it went back to malloc after every
 * request, and with OpenSSL's released record buffers the freed chunks
 * coalesced past glibc's trim threshold, so each request paid an madvise and
 * fresh page faults on the next allocation. */
#define BUF_CLASS_UNIT 4096u
#define BUF_CLASSES 64u
/* Each class caches at most this many bytes, so that a worker that once had
 * many busy connections returns most of that memory when they go idle. */
#define BUF_CACHE_BYTES (4u << 20)

static __thread struct buf *free_list[BUF_CLASSES];
static __thread uint32_t free_count[BUF_CLASSES];

/* The class of a request for `size` bytes, or -1 for sizes not recycled. */
static inline int size_class(size_t size)
{
    size_t units = (size + BUF_CLASS_UNIT - 1) / BUF_CLASS_UNIT;
    return units >= 1 && units <= BUF_CLASSES ? (int)units - 1 : -1;
}

static inline uint32_t class_limit(int c)
{
    return BUF_CACHE_BYTES / (((uint32_t)c + 1) * BUF_CLASS_UNIT);
}

struct buf *buf_get(size_t size)
{
    struct buf *b;
    int c = size_class(size);
    if (c >= 0 && free_list[c]) {
        b = free_list[c];
        free_list[c] = b->next_free;
        free_count[c]--;
    } else {
        /* A recyclable buffer gets its class's whole capacity, so that it
         * can serve any later request of the class. */
        b = xmalloc(sizeof(*b) + (c >= 0 ? ((size_t)c + 1) * BUF_CLASS_UNIT : size));
    }
    b->size = (uint32_t)size;
    b->head = b->tail = 0;
    b->next_free = NULL;
    return b;
}

void buf_put(struct buf *b)
{
    if (!b)
        return;
    int c = size_class(b->size);
    if (c >= 0 && free_count[c] < class_limit(c)) {
        b->next_free = free_list[c];
        free_list[c] = b;
        free_count[c]++;
        return;
    }
    free(b);
}

size_t buf_cached_bytes(void)
{
    size_t n = 0;
    for (unsigned c = 0; c < BUF_CLASSES; c++)
        n += (size_t)free_count[c] * (c + 1) * BUF_CLASS_UNIT;
    return n;
}

void buf_cache_drain(void)
{
    for (unsigned c = 0; c < BUF_CLASSES; c++) {
        while (free_list[c]) {
            struct buf *b = free_list[c];
            free_list[c] = b->next_free;
            free(b);
        }
        free_count[c] = 0;
    }
}

void buf_compact(struct buf *b)
{
    if (b->head == 0)
        return;
    size_t n = buf_len(b);
    if (n)
        memmove(b->data, b->data + b->head, n);
    b->head = 0;
    b->tail = (uint32_t)n;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (buf_room(b) < n) {
        if (b->size - buf_len(b) < n)
            return -1;
        buf_compact(b);
    }
    memcpy(b->data + b->tail, p, n);
    b->tail += (uint32_t)n;
    return 0;
}
