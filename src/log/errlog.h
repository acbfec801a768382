/* errlog.h - the error log: leveled, one write() per line so that lines from
 * several threads never interleave. Used for rare events only (errors, state
 * changes), never per request. */
#ifndef PORTICO_LOG_ERRLOG_H
#define PORTICO_LOG_ERRLOG_H

#include "conf/conf.h"

/* Opens the destination ("stderr", "stdout" or a path). Returns 0 or -errno;
 * on failure the log stays on stderr. Main thread, before workers start. */
int errlog_open(const char *dest, enum log_level level);
void errlog_set_level(enum log_level level);
/* Re-opens a file destination (SIGUSR1, after logrotate). */
void errlog_reopen(void);

void errlog(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) errlog(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) errlog(LOG_INFO, __VA_ARGS__)
#define log_warn(...) errlog(LOG_WARN, __VA_ARGS__)
#define log_error(...) errlog(LOG_ERROR, __VA_ARGS__)

/* Formats wall-clock ms as RFC 3339 UTC with milliseconds into out (>= 25
 * bytes); returns the length. */
size_t fmt_rfc3339_ms(char *out, uint64_t wall_ms);

#endif
