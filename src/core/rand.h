/* rand.h - fast per-thread pseudo-random numbers (xoshiro256**), seeded from
 * getrandom(). Not for secrets; good for request ids and balancer choices. */
#ifndef PORTICO_CORE_RAND_H
#define PORTICO_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

uint64_t rand64(void);
/* Writes n random bytes as 2n lowercase hex characters. */
void rand_hex(char *out, size_t n);

#endif
