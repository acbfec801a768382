/* common.h - project-wide macros, checked allocation and invariants.
 * Owns: likely/unlikely, container_of, ARRAY_SIZE, BUG_ON, xmalloc family.
 * Allocation failures abort: the error paths that remain are the real ones. */
#ifndef PORTICO_CORE_COMMON_H
#define PORTICO_CORE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define UNUSED __attribute__((unused))

/* Always-on invariant check: a violated invariant is a bug, never bad input. */
#define BUG_ON(cond)                                                                   \
    do {                                                                               \
        if (unlikely(cond))                                                            \
            bug_fail(__FILE__, __LINE__, #cond);                                       \
    } while (0)

__attribute__((noreturn)) void bug_fail(const char *file, int line, const char *expr);

void *xmalloc(size_t n) __attribute__((malloc));
void *xcalloc(size_t nmemb, size_t size) __attribute__((malloc));
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s) __attribute__((malloc));
char *xstrndup(const char *s, size_t n) __attribute__((malloc));

#endif
