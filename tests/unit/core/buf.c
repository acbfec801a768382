/* Unit tests for core/buf: bounded buffers and their per-thread recycling. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/buf.h"

Test(buf, size_is_what_was_asked_even_from_a_larger_class)
{
    struct buf *b = buf_get(17 * 1024 + 1);
    cr_assert_eq(b->size, 17 * 1024 + 1);
    cr_assert_eq(buf_room(b), 17 * 1024 + 1);
    buf_put(b);
    /* Same 4 KiB class (17-20 KiB): recycled, with the new size. */
    struct buf *c = buf_get(18 * 1024);
    cr_assert_eq(c, b, "a buffer of the same class is reused");
    cr_assert_eq(c->size, 18 * 1024);
    cr_assert_eq(buf_len(c), 0);
    /* The class's whole capacity is writable. */
    memset(buf_wptr(c), 0xab, 20 * 1024 > c->size ? c->size : 20 * 1024);
    buf_put(c);
    buf_cache_drain();
}

Test(buf, odd_sizes_are_recycled)
{
    /* The client buffer is max_header_bytes + 1 KiB: not a power of two. */
    buf_cache_drain();
    struct buf *b = buf_get(BUF_STD_SIZE + 1024);
    buf_put(b);
    cr_assert_eq(buf_cached_bytes(), 20 * 1024, "kept in the 20 KiB class");
    cr_assert_eq(buf_get(BUF_STD_SIZE + 1024), b);
    cr_assert_eq(buf_cached_bytes(), 0);
    buf_put(b);
    buf_cache_drain();
}

Test(buf, different_classes_do_not_mix)
{
    struct buf *small = buf_get(BUF_STD_SIZE);
    buf_put(small);
    struct buf *big = buf_get(BUF_BIG_SIZE);
    cr_assert_neq(big, small);
    cr_assert_eq(big->size, BUF_BIG_SIZE);
    buf_put(big);
    cr_assert_eq(buf_get(BUF_STD_SIZE), small);
    buf_put(small);
    buf_cache_drain();
}

Test(buf, huge_buffers_are_freed_not_cached)
{
    buf_cache_drain();
    struct buf *b = buf_get(1024 * 1024);
    cr_assert_eq(b->size, 1024 * 1024);
    memset(buf_wptr(b), 0, buf_room(b));
    buf_put(b);
    cr_assert_eq(buf_cached_bytes(), 0);
    buf_cache_drain();
}

Test(buf, cache_is_bounded_per_class)
{
    /* 4 MiB per class: 256 buffers of 16 KiB are kept, later ones freed.
     * The list is LIFO, so the first buffer handed out again is the last
     * one cached: bs[255], not bs[N - 1]. */
    enum { N = 300 };
    struct buf *bs[N];
    for (int i = 0; i < N; i++)
        bs[i] = buf_get(BUF_STD_SIZE);
    buf_cache_drain();
    for (int i = 0; i < N; i++)
        buf_put(bs[i]);
    cr_assert_eq(buf_cached_bytes(), 4u << 20);
    for (int i = 255; i >= 0; i--)
        cr_assert_eq(buf_get(BUF_STD_SIZE), bs[i]);
    for (int i = 0; i < 256; i++)
        buf_put(bs[i]);
    buf_cache_drain();
}

Test(buf, append_and_compact)
{
    struct buf *b = buf_get(8);
    cr_assert_eq(buf_append(b, "abcdef", 6), 0);
    buf_consume(b, 4);
    cr_assert_eq(buf_append(b, "ghijkl", 6), 0, "compacts to make room");
    cr_assert_eq(buf_len(b), 8);
    cr_assert_eq(memcmp(buf_rptr(b), "efghijkl", 8), 0);
    cr_assert_eq(buf_append(b, "x", 1), -1, "full: nothing written");
    cr_assert_eq(buf_len(b), 8);
    buf_put(b);
    buf_cache_drain();
}
