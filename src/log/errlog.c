/* errlog.c - leveled error log with atomic line writes. */
#include "log/errlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"

static atomic_int log_fd = 2;
static atomic_int log_level = LOG_INFO;
static char log_path[4096];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int open_dest(const char *dest)
{
    if (!dest || strcmp(dest, "stderr") == 0)
        return 2;
    if (strcmp(dest, "stdout") == 0)
        return 1;
    int fd = open(dest, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

int errlog_open(const char *dest, enum log_level level)
{
    atomic_store(&log_level, level);
    int fd = open_dest(dest);
    if (fd < 0)
        return fd;
    int old = atomic_exchange(&log_fd, fd);
    if (old > 2)
        close(old);
    if (fd > 2)
        snprintf(log_path, sizeof(log_path), "%s", dest);
    else
        log_path[0] = '\0';
    return 0;
}

void errlog_set_level(enum log_level level)
{
    atomic_store(&log_level, level);
}

void errlog_reopen(void)
{
    if (!log_path[0])
        return;
    int fd = open_dest(log_path);
    if (fd < 0) {
        errlog(LOG_ERROR, "cannot reopen the error log %s: %s (still writing to the old file)",
               log_path, strerror(-fd));
        return;
    }
    /* dup3 puts the new file under the descriptor number every thread
     * writes to, in one step: a line being written now goes to the old or
     * the new file, never to a closed number that a socket may have taken. */
    if (dup3(fd, atomic_load(&log_fd), O_CLOEXEC) < 0)
        errlog(LOG_ERROR, "cannot reopen the error log %s: %s", log_path, strerror(errno));
    close(fd);
}

size_t fmt_rfc3339_ms(char *out, uint64_t wall_ms)
{
    time_t s = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(out + n, 8, ".%03uZ", (unsigned)(wall_ms % 1000));
    return n;
}

void errlog(enum log_level level, const char *fmt, ...)
{
    if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    char line[2048];
    size_t n = fmt_rfc3339_ms(line, clock_wall_ms());
    n += (size_t)snprintf(line + n, sizeof(line) - n, " [%s] ", level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(atomic_load_explicit(&log_fd, memory_order_relaxed), line, n);
    (void)w;
}
