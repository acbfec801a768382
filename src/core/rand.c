/* rand.c - per-thread xoshiro256** generator. */
#include "core/rand.h"

#include <sys/random.h>
#include <time.h>

static __thread uint64_t rs[4];
static __thread int seeded;

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static void seed(void)
{
    if (getrandom(rs, sizeof(rs), 0) != (ssize_t)sizeof(rs)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)&ts << 17);
        for (int i = 0; i < 4; i++) {
            x += 0x9e3779b97f4a7c15ULL;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            rs[i] = z ^ (z >> 31);
        }
    }
    seeded = 1;
}

uint64_t rand64(void)
{
    if (!seeded)
        seed();
    uint64_t result = rotl(rs[1] * 5, 7) * 9;
    uint64_t t = rs[1] << 17;
    rs[2] ^= rs[0];
    rs[3] ^= rs[1];
    rs[1] ^= rs[2];
    rs[0] ^= rs[3];
    rs[2] ^= t;
    rs[3] = rotl(rs[3], 45);
    return result;
}

void rand_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0)
            r = rand64();
        unsigned b = r & 0xff;
        r >>= 8;
        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 15];
    }
}
