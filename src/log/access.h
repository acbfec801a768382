/* access.h - per-worker access-log buffers: one JSON line per request,
 * appended without locks, handed to the writer thread when the buffer fills
 * or on the worker's periodic tick. */
#ifndef PORTICO_LOG_ACCESS_H
#define PORTICO_LOG_ACCESS_H

#include <stddef.h>

struct access_log;

struct access_log *access_log_new(void);
void access_log_free(struct access_log *al);
/* Hands buffered lines to the writer. Owning worker only. */
void access_log_flush(struct access_log *al);

#endif
