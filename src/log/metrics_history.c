/* metrics_history.c - the dashboard's memory: a small thread that adds the
 * workers' counters up once a second and keeps the last METRICS_HISTORY
 * one-second samples (request rate, status classes, duration percentiles
 * from the histogram deltas, bytes, open connections) in a ring, so the
 * page shows the last minutes as soon as it loads. It only reads the
 * counter blocks (see metrics.h); it runs whether or not the admin API is
 * on, at the cost of one sum per second. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/common.h"
#include "log/metrics.h"

#define SAMPLE_MS 1000

static struct {
    pthread_mutex_t mu; /* ring and the previous totals */
    pthread_cond_t cv;
    pthread_t thread;
    bool running, stop;
    struct metrics_sample ring[METRICS_HISTORY];
    size_t head, n; /* oldest at head */
    /* previous totals */
    bool have_prev;
    uint64_t prev_us;
    uint64_t prev_classes[METRICS_CLASSES];
    uint64_t prev_hist[METRICS_BUCKETS + 1];
    uint64_t prev_in, prev_out;
    struct metrics_counters *tot; /* scratch for the sums */
} hs = {.mu = PTHREAD_MUTEX_INITIALIZER};

void metrics_history_sample(void)
{
    pthread_mutex_lock(&hs.mu);
    if (!hs.tot)
        hs.tot = xmalloc(sizeof(*hs.tot));
    struct metrics_counters *t = hs.tot;
    unsigned nr = metrics_count(MK_ROUTE);
    memset(t, 0, sizeof(*t));
    metrics_sum(t, NULL, 0);

    uint64_t classes[METRICS_CLASSES] = {0}, hist[METRICS_BUCKETS + 1] = {0}, in = 0, out = 0;
    for (unsigned r = 0; r < nr; r++) {
        for (unsigned c = 0; c < METRICS_CLASSES; c++)
            for (unsigned m = 0; m < MM__COUNT; m++)
                classes[c] += t->requests[r][c][m];
        for (unsigned b = 0; b <= METRICS_BUCKETS; b++)
            hist[b] += t->route_dur[r].b[b];
        in += t->bytes_in[r];
        out += t->bytes_out[r];
    }
    uint64_t now_us = clock_mono_us();
    if (hs.have_prev) {
        struct metrics_sample *s = &hs.ring[(hs.head + hs.n) % METRICS_HISTORY];
        if (hs.n == METRICS_HISTORY)
            hs.head = (hs.head + 1) % METRICS_HISTORY;
        else
            hs.n++;
        memset(s, 0, sizeof(*s));
        s->t_ms = clock_wall_ms();
        s->span_ms = (uint32_t)((now_us - hs.prev_us) / 1000);
        uint64_t d[METRICS_BUCKETS + 1];
        /* Counters only grow while a worker lives; a worker freed at exit
         * takes its counts away, so a drop reads as zero. */
        for (unsigned c = 0; c < METRICS_CLASSES; c++) {
            s->classes[c] = classes[c] >= hs.prev_classes[c] ? classes[c] - hs.prev_classes[c] : 0;
            s->requests += s->classes[c];
        }
        for (unsigned b = 0; b <= METRICS_BUCKETS; b++)
            d[b] = hist[b] >= hs.prev_hist[b] ? hist[b] - hs.prev_hist[b] : 0;
        s->p50_ms = metrics_quantile_ms(d, 0.50);
        s->p90_ms = metrics_quantile_ms(d, 0.90);
        s->p99_ms = metrics_quantile_ms(d, 0.99);
        s->bytes_in = in >= hs.prev_in ? in - hs.prev_in : 0;
        s->bytes_out = out >= hs.prev_out ? out - hs.prev_out : 0;
        s->conns = t->w_conns;
    }
    hs.have_prev = true;
    hs.prev_us = now_us;
    memcpy(hs.prev_classes, classes, sizeof(classes));
    memcpy(hs.prev_hist, hist, sizeof(hist));
    hs.prev_in = in;
    hs.prev_out = out;
    pthread_mutex_unlock(&hs.mu);
}

size_t metrics_history(struct metrics_sample *out, size_t max)
{
    pthread_mutex_lock(&hs.mu);
    size_t n = MIN(max, hs.n);
    /* The newest n. */
    size_t first = hs.n - n;
    for (size_t i = 0; i < n; i++)
        out[i] = hs.ring[(hs.head + first + i) % METRICS_HISTORY];
    pthread_mutex_unlock(&hs.mu);
    return n;
}

static void *sampler_main(void *arg)
{
    (void)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    metrics_history_sample(); /* the baseline */
    pthread_mutex_lock(&hs.mu);
    while (!hs.stop) {
        next.tv_sec += SAMPLE_MS / 1000;
        int rc = 0;
        while (!hs.stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&hs.cv, &hs.mu, &next);
        if (hs.stop)
            break;
        pthread_mutex_unlock(&hs.mu);
        metrics_history_sample();
        pthread_mutex_lock(&hs.mu);
    }
    pthread_mutex_unlock(&hs.mu);
    return NULL;
}

void metrics_history_start(void)
{
    pthread_mutex_lock(&hs.mu);
    if (hs.running) {
        pthread_mutex_unlock(&hs.mu);
        return;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    /* Waits run on the monotonic clock: a wall-clock step changes nothing. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&hs.cv, &ca);
    pthread_condattr_destroy(&ca);
    hs.stop = false;
    hs.have_prev = false;
    hs.head = hs.n = 0;
    /* Signals stay with the main thread: the sampler inherits its mask
     * only if started after main blocked them, so block them here too. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    hs.running = pthread_create(&hs.thread, NULL, sampler_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_unlock(&hs.mu);
}

void metrics_history_stop(void)
{
    pthread_mutex_lock(&hs.mu);
    if (!hs.running) {
        pthread_mutex_unlock(&hs.mu);
        return;
    }
    hs.stop = true;
    pthread_cond_signal(&hs.cv);
    pthread_mutex_unlock(&hs.mu);
    pthread_join(hs.thread, NULL);
    pthread_mutex_lock(&hs.mu);
    hs.running = false;
    pthread_cond_destroy(&hs.cv);
    free(hs.tot);
    hs.tot = NULL;
    pthread_mutex_unlock(&hs.mu);
}
