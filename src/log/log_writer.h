/* log_writer.h - the access-log writer thread. Workers fill their own buffers
 * and hand full ones over here; only this thread calls write() on the log, so
 * a slow or failing disk never blocks a worker. */
#ifndef PORTICO_LOG_LOG_WRITER_H
#define PORTICO_LOG_LOG_WRITER_H

#include <stddef.h>

/* Starts the writer for `dest` ("stdout" or a path). 0 or -errno. Main thread. */
int log_writer_start(const char *dest);
/* Flushes everything handed over, then stops the thread. Main thread. */
void log_writer_stop(void);
/* Re-opens the file (SIGUSR1). Any thread. */
void log_writer_reopen(void);
/* True when a writer is running. */
int log_writer_active(void);
/* Hands `len` bytes over (copied into a queue block). Any thread; takes a
 * mutex once per block, not per line. */
void log_writer_submit(const char *data, size_t len);

#endif
