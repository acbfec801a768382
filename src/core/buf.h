/* buf.h - bounded byte buffers for socket I/O.
 * Invariant: 0 <= head <= tail <= size; bytes [head, tail) are pending data.
 * A buffer never grows: its size is fixed at allocation, which bounds the
 * memory of every connection whatever the message size. Buffers up to
 * 256 KiB come from per-thread free lists by 4 KiB size class, so the hot
 * path rarely calls malloc. */
#ifndef PORTICO_CORE_BUF_H
#define PORTICO_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_STD_SIZE (16 * 1024)
/* Response bodies from upstreams are read in larger steps: fewer syscalls per
 * large response, still a fixed bound per connection. */
#define BUF_BIG_SIZE (64 * 1024)

struct buf {
    uint32_t size;
    uint32_t head;
    uint32_t tail;
    uint32_t _pad;
    struct buf *next_free;
    char data[];
};

/* Returns an empty buffer of `size` bytes. */
struct buf *buf_get(size_t size);
/* Returns b to the per-thread free list (or frees it). NULL is allowed. */
void buf_put(struct buf *b);
/* Bytes held by this thread's free lists. */
size_t buf_cached_bytes(void);
/* Frees this thread's cached buffers (at thread exit). */
void buf_cache_drain(void);

static inline size_t buf_len(const struct buf *b)
{
    return b->tail - b->head;
}
static inline size_t buf_room(const struct buf *b)
{
    return b->size - b->tail;
}
static inline char *buf_rptr(struct buf *b)
{
    return b->data + b->head;
}
static inline char *buf_wptr(struct buf *b)
{
    return b->data + b->tail;
}
static inline void buf_consume(struct buf *b, size_t n)
{
    b->head += (uint32_t)n;
    if (b->head == b->tail)
        b->head = b->tail = 0;
}
/* Moves pending bytes to the start so that reads get the most room. */
void buf_compact(struct buf *b);
/* Appends n bytes; returns 0, or -1 (nothing written) when they do not fit. */
int buf_append(struct buf *b, const void *p, size_t n);

#endif
