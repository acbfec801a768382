/* clock.h - cached per-thread clocks. The loop refreshes them once per wake-up,
 * so the hot path reads a thread-local instead of calling clock_gettime. */
#ifndef PORTICO_CORE_CLOCK_H
#define PORTICO_CORE_CLOCK_H

#include <stdint.h>

extern __thread uint64_t clock_cached_ms;

/* Reads CLOCK_MONOTONIC (milliseconds) and refreshes the cached value. */
uint64_t clock_update(void);
/* Monotonic milliseconds as of the last clock_update() on this thread. */
static inline uint64_t clock_ms(void)
{
    return clock_cached_ms;
}
/* Monotonic microseconds, read now (for durations in logs). */
uint64_t clock_mono_us(void);
/* Wall-clock time in milliseconds since the epoch, read now. */
uint64_t clock_wall_ms(void);

#endif
