/* buf.c - fixed-size I/O buffers with a per-thread free list. */
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* Bounded so that a worker that once had many busy connections returns most
 * of that memory when they go idle. */
#define BUF_CACHE_MAX 256

/* Two recycled size classes: BUF_STD_SIZE and BUF_BIG_SIZE. */
static __thread struct buf *free_list[2];
static __thread unsigned free_count[2];

static inline int size_class(size_t size)
{
    return size == BUF_STD_SIZE ? 0 : size == BUF_BIG_SIZE ? 1 : -1;
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
    int c = size_class(b->size);
    if (c >= 0 && free_count[c] < (c ? BUF_CACHE_MAX / 4 : BUF_CACHE_MAX)) {
        b->next_free = free_list[c];
        free_list[c] = b;
        free_count[c]++;
        return;
    }
    free(b);
}

void buf_cache_drain(void)
{
    for (int c = 0; c < 2; c++) {
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
