/* buf.c - fixed-size I/O buffers with a per-thread free list. */
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* Bounded so that a worker that once had many busy connections returns most
 * of that memory when they go idle. */
#define BUF_CACHE_MAX 256

static __thread struct buf *free_list;
static __thread unsigned free_count;

struct buf *buf_get(size_t size)
{
    struct buf *b;
    if (size == BUF_STD_SIZE && free_list) {
        b = free_list;
        free_list = b->next_free;
        free_count--;
    } else {
        b = xmalloc(sizeof(*b) + size);
        b->size = (uint32_t)size;
    }
    b->head = b->tail = 0;
    b->next_free = NULL;
    return b;
}

void buf_put(struct buf *b)
{
    if (!b)
        return;
    if (b->size == BUF_STD_SIZE && free_count < BUF_CACHE_MAX) {
        b->next_free = free_list;
        free_list = b;
        free_count++;
        return;
    }
    free(b);
}

void buf_cache_drain(void)
{
    while (free_list) {
        struct buf *b = free_list;
        free_list = b->next_free;
        free(b);
    }
    free_count = 0;
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
