/* main.c - command line, start-up, workers, signals and shutdown.
 * The main thread owns the config, creates every listening socket before any
 * worker starts (so a bad address fails start-up with a clear error), then
 * only waits for signals and relays them to the workers through their inboxes. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "conf/conf.h"
#include "core/clock.h"
#include "core/common.h"
#include "lb/health_check.h"
#include "log/errlog.h"
#include "log/log_writer.h"
#include "net/sock.h"
#include "net/tls.h"
#include "proxy/h2.h"
#include "proxy/proxy.h"
#include "version.h"

#define LISTEN_BACKLOG 65535
/* Session-ticket keys rotate this often; a ticket stays valid for two periods. */
#define TICKET_ROTATE_MS (12ull * 3600 * 1000)

static void usage(FILE *f)
{
    fprintf(f, "usage: portico -c FILE              run with a config file\n"
               "       portico -t -c FILE           validate the config: prints \"ok\" or every error\n"
               "       portico --from [HOST]:PORT --to HOST:PORT [--to ...]\n"
               "                                    quick mode: round-robin proxy, no file\n"
               "       portico --version | --help\n"
               "signals: HUP reload, TERM/INT graceful stop, QUIT immediate stop, USR1 reopen logs\n");
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void print_errors(const struct conf_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "%s\n", e->msgs[i]);
}

/* Binds every listener once per worker (SO_REUSEPORT). Returns per-worker fd
 * arrays, or NULL after printing the error. */
static int **open_listeners(const struct conf *c, unsigned n_workers)
{
    int **fds = xcalloc(n_workers, sizeof(int *));
    for (unsigned w = 0; w < n_workers; w++) {
        fds[w] = xcalloc(c->n_listeners ? c->n_listeners : 1, sizeof(int));
        for (size_t i = 0; i < c->n_listeners; i++) {
            int fd = sock_listen(&c->listeners[i].addr, LISTEN_BACKLOG);
            if (fd < 0) {
                fprintf(stderr, "portico: listen %s (%s): %s\n", c->listeners[i].listen,
                        c->listeners[i].name, strerror(-fd));
                for (unsigned k = 0; k <= w; k++) {
                    for (size_t j = 0; j < (k < w ? c->n_listeners : i); j++)
                        close(fds[k][j]);
                    free(fds[k]);
                }
                free(fds);
                return NULL;
            }
            fds[w][i] = fd;
        }
    }
    return fds;
}

static bool all_exited(struct worker **ws, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!atomic_load(&ws[i]->exited))
            return false;
    return true;
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL;
    const char *from = NULL;
    const char **to = xcalloc((size_t)argc + 1, sizeof(char *));
    size_t n_to = 0;
    bool test_only = false;

    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
        {"from", required_argument, NULL, 'F'},   {"to", required_argument, NULL, 'T'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:thV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            conf_path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'F':
            from = optarg;
            break;
        case 'T':
            to[n_to++] = optarg;
            break;
        case 'V':
            printf("portico %s\n", PORTICO_VERSION);
            free(to);
            return 0;
        case 'h':
            usage(stdout);
            free(to);
            return 0;
        default:
            usage(stderr);
            free(to);
            return 1;
        }
    }
    if (optind < argc || (!conf_path && !from) || (conf_path && from) ||
        (from && n_to == 0) || (!from && n_to)) {
        usage(stderr);
        free(to);
        return 1;
    }

    struct conf_errors errs = {0};
    struct conf *conf = conf_path ? conf_load_file(conf_path, &errs)
                                  : conf_quick(from, to, n_to, &errs);
    free(to);
    h2_init_global(); /* before the TLS contexts: ALPN may then offer h2 */
    if (conf && tls_build_listeners(conf, conf_path ? conf_path : "quick", &errs) < 0) {
        conf_unref(conf);
        conf = NULL;
    }
    if (!conf) {
        print_errors(&errs);
        conf_errors_free(&errs);
        return 1;
    }
    conf_errors_free(&errs);
    if (test_only) {
        printf("ok\n");
        conf_unref(conf);
        return 0;
    }

    int rc = errlog_open(conf->log.error, conf->log.level);
    if (rc < 0) {
        fprintf(stderr, "portico: cannot open error log %s: %s\n", conf->log.error,
                strerror(-rc));
        return 1;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGQUIT);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    /* Blocked before threads start, so only this thread receives them. */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    /* Admin API: its own thread; a bad address or token file stops start-up. */
    struct admin *admin = NULL;
    if (conf->admin.listen) {
        char aerr[512];
        if (!(admin = admin_start(conf, aerr, sizeof(aerr)))) {
            fprintf(stderr, "portico: %s\n", aerr);
            conf_unref(conf);
            return 1;
        }
    }
    unsigned n_workers = conf->workers;
    int **fds = open_listeners(conf, n_workers);
    if (!fds) {
        admin_stop(admin);
        conf_unref(conf);
        return 1;
    }
    if (conf->log.access) {
        rc = log_writer_start(conf->log.access);
        if (rc < 0) {
            fprintf(stderr, "portico: cannot open access log %s: %s\n", conf->log.access,
                    strerror(-rc));
            return 1;
        }
    }

    /* Health checks: their own thread, off the request path. */
    struct health_checker *checker = health_start(conf);

    struct worker **ws = xcalloc(n_workers, sizeof(*ws));
    for (unsigned i = 0; i < n_workers; i++) {
        ws[i] = worker_new(i, conf, fds[i]);
        if ((rc = worker_start(ws[i])) < 0) {
            fprintf(stderr, "portico: cannot start worker: %s\n", strerror(-rc));
            return 1;
        }
    }
    free(fds);
    log_info("portico %s started: %u worker%s, %zu listener%s", PORTICO_VERSION, n_workers,
             n_workers == 1 ? "" : "s", conf->n_listeners, conf->n_listeners == 1 ? "" : "s");

    bool draining = false;
    uint64_t drain_deadline = 0;
    uint64_t next_ticket_rotation = clock_update() + TICKET_ROTATE_MS;
    for (;;) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (clock_update() >= next_ticket_rotation) {
            tls_rotate_ticket_keys();
            next_ticket_rotation = clock_ms() + TICKET_ROTATE_MS;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            if (!draining) {
                log_info("received %s: graceful stop (grace %llu ms)",
                         sig == SIGTERM ? "SIGTERM" : "SIGINT",
                         (unsigned long long)conf->shutdown_grace_ms);
                draining = true;
                drain_deadline = clock_ms() + conf->shutdown_grace_ms;
                for (unsigned i = 0; i < n_workers; i++)
                    worker_post(ws[i], WORKER_MSG_DRAIN);
            }
        } else if (sig == SIGQUIT) {
            log_info("received SIGQUIT: immediate stop");
            for (unsigned i = 0; i < n_workers; i++)
                worker_post(ws[i], WORKER_MSG_STOP);
            break;
        } else if (sig == SIGHUP) {
            log_warn("received SIGHUP: live reload is not supported yet; restart to apply");
        } else if (sig == SIGUSR1) {
            log_info("received SIGUSR1: reopening logs");
            errlog_reopen();
            log_writer_reopen();
        }
        if (draining) {
            if (all_exited(ws, n_workers))
                break;
            if (clock_ms() >= drain_deadline) {
                log_warn("shutdown grace expired: closing remaining connections");
                for (unsigned i = 0; i < n_workers; i++)
                    worker_post(ws[i], WORKER_MSG_STOP);
                break;
            }
        }
    }
    for (unsigned i = 0; i < n_workers; i++)
        worker_join_free(ws[i]);
    free(ws);
    health_stop(checker);
    admin_stop(admin);
    log_writer_stop();
    log_info("stopped");
    conf_unref(conf);
    return 0;
}
