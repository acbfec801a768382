/* log_writer.c - access-log writer thread with a bounded queue of blocks.
 * A destination that fails (disk full, I/O errors) or is too slow (the
 * queue is full) costs log lines, never a request: both are reported once
 * in the error log when they start and once when they end. */
#include "log/log_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "log/errlog.h"

/* Beyond this much queued data, blocks are dropped (and counted) rather than
 * letting a stuck disk grow memory without bound. */
#define QUEUE_MAX_BYTES (64u << 20)

struct block {
    struct block *next;
    size_t len;
    char data[];
};

static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct block *head, *tail;
    size_t queued;
    bool stop, running;
    int fd;
    char *path;
    atomic_bool reopen;
    /* Blocks refused because the queue was full (under mu), and the
     * writer's record of its own reports: each kind of trouble is reported
     * once when it starts and once when it ends, never per line. */
    unsigned long long dropped_bytes;
    bool failing, overflowing;
    unsigned long long lost_failing, lost_overflow;
} lw = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .fd = -1};

static int open_log(const char *dest)
{
    if (strcmp(dest, "stdout") == 0)
        return 1;
    int fd = open(dest, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

/* Writes one block; a write error (disk full, I/O error, a closed pipe)
 * drops the rest of the block. Writer thread only. */
static void write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(lw.fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (!lw.failing)
                log_error("access log: cannot write to %s: %s (lines are dropped until "
                          "writing works again)",
                          lw.path, w < 0 ? strerror(errno) : "nothing written");
            lw.failing = true;
            lw.lost_failing += n;
            return;
        }
        if (lw.failing) {
            log_info("access log: writing to %s again (%llu bytes of lines were dropped)",
                     lw.path, lw.lost_failing);
            lw.failing = false;
            lw.lost_failing = 0;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* The queue overflowed since the last batch (`dropped` bytes refused), or
 * it did not: reported when it starts and when it ends. */
static void note_overflow(unsigned long long dropped)
{
    if (dropped) {
        if (!lw.overflowing)
            log_error("access log: %s is too slow: more than %u MiB of lines wait, new lines "
                      "are dropped",
                      lw.path, QUEUE_MAX_BYTES >> 20);
        lw.overflowing = true;
        lw.lost_overflow += dropped;
    } else if (lw.overflowing) {
        log_info("access log: %s caught up (%llu bytes of lines were dropped)", lw.path,
                 lw.lost_overflow);
        lw.overflowing = false;
        lw.lost_overflow = 0;
    }
}

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lw.mu);
    for (;;) {
        while (!lw.head && !lw.stop && !atomic_load(&lw.reopen))
            pthread_cond_wait(&lw.cv, &lw.mu);
        struct block *b = lw.head;
        lw.head = lw.tail = NULL;
        lw.queued = 0;
        unsigned long long dropped = lw.dropped_bytes;
        lw.dropped_bytes = 0;
        bool stop = lw.stop;
        pthread_mutex_unlock(&lw.mu);
        note_overflow(dropped);
        if (atomic_exchange(&lw.reopen, false) && lw.fd > 2) {
            int fd = open_log(lw.path);
            if (fd >= 0) {
                close(lw.fd);
                lw.fd = fd;
            } else {
                log_error("access log: cannot reopen %s: %s", lw.path, strerror(-fd));
            }
        }
        while (b) {
            struct block *next = b->next;
            write_all(b->data, b->len);
            free(b);
            b = next;
        }
        if (stop)
            return NULL;
        pthread_mutex_lock(&lw.mu);
    }
}

int log_writer_start(const char *dest)
{
    int fd = open_log(dest);
    if (fd < 0)
        return fd;
    lw.fd = fd;
    lw.path = xstrdup(dest);
    lw.stop = false;
    if (pthread_create(&lw.thread, NULL, writer_main, NULL) != 0) {
        if (fd > 2)
            close(fd);
        return -EAGAIN;
    }
    lw.running = true;
    return 0;
}

void log_writer_stop(void)
{
    if (!lw.running)
        return;
    pthread_mutex_lock(&lw.mu);
    lw.stop = true;
    pthread_cond_signal(&lw.cv);
    pthread_mutex_unlock(&lw.mu);
    pthread_join(lw.thread, NULL);
    lw.running = false;
    if (lw.fd > 2)
        close(lw.fd);
    lw.fd = -1;
    free(lw.path);
    lw.path = NULL;
}

void log_writer_reopen(void)
{
    atomic_store(&lw.reopen, true);
    pthread_mutex_lock(&lw.mu);
    pthread_cond_signal(&lw.cv);
    pthread_mutex_unlock(&lw.mu);
}

int log_writer_active(void)
{
    return lw.running;
}

void log_writer_submit(const char *data, size_t len)
{
    if (!lw.running || !len)
        return;
    struct block *b = xmalloc(sizeof(*b) + len);
    b->next = NULL;
    b->len = len;
    memcpy(b->data, data, len);
    pthread_mutex_lock(&lw.mu);
    if (lw.queued + len > QUEUE_MAX_BYTES) {
        lw.dropped_bytes += len;
        pthread_mutex_unlock(&lw.mu);
        free(b);
        return;
    }
    if (lw.tail)
        lw.tail->next = b;
    else
        lw.head = b;
    lw.tail = b;
    lw.queued += len;
    pthread_cond_signal(&lw.cv);
    pthread_mutex_unlock(&lw.mu);
}
