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
#include "log/metrics.h"
#include "net/handover.h"
#include "net/sock.h"
#include "lb/server.h"
#include "net/tls.h"
#include "proxy/h2.h"
#include "proxy/proxy.h"
#include "version.h"

#define LISTEN_BACKLOG 65535
/* Session-ticket keys rotate this often; a ticket stays valid for two periods. */
#define TICKET_ROTATE_MS (12ull * 3600 * 1000)
/* A new process that does not serve within this time after SIGUSR2 is
 * killed, and the old one goes on. */
#define UPGRADE_TIMEOUT_MS 30000

static void usage(FILE *f)
{
    fprintf(f, "usage: portico -c FILE              run with a config file\n"
               "       portico -t -c FILE           validate the config: prints \"ok\" or every error\n"
               "       portico --from [HOST]:PORT --to HOST:PORT [--to ...]\n"
               "                                    quick mode: round-robin proxy, no file\n"
               "       portico --upgrade PID        binary upgrade of the running portico PID\n"
               "                                    (sends it SIGUSR2)\n"
               "       portico --version | --help\n"
               "signals: HUP reload, TERM/INT graceful stop, QUIT immediate stop, USR1 reopen logs,\n"
               "         USR2 binary upgrade (start the binary anew, hand it the listening sockets)\n");
}

/* portico --upgrade PID: the same as kill -USR2 PID, with a check. */
static int ask_upgrade(const char *arg)
{
    char *end;
    long pid = strtol(arg, &end, 10);
    if (end == arg || *end || pid < 2 || pid > INT32_MAX) {
        fprintf(stderr, "portico: --upgrade: '%s' is not a process id\n", arg);
        return 1;
    }
    if (kill((pid_t)pid, SIGUSR2) < 0) {
        fprintf(stderr, "portico: --upgrade: process %ld: %s\n", pid, strerror(errno));
        return 1;
    }
    printf("sent SIGUSR2 to %ld: it starts the new binary, hands it the listening sockets "
           "and drains once the new process serves (see its error log)\n", pid);
    return 0;
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

/* Binds every listener once per worker (SO_REUSEPORT), or takes the socket
 * a previous process handed over (binary upgrade). Returns per-worker fd
 * arrays, or NULL after printing the error. */
static int **open_listeners(const struct conf *c, unsigned n_workers)
{
    int **fds = xcalloc(n_workers, sizeof(int *));
    for (unsigned w = 0; w < n_workers; w++) {
        fds[w] = xcalloc(c->n_listeners ? c->n_listeners : 1, sizeof(int));
        for (size_t i = 0; i < c->n_listeners; i++) {
            int fd = handover_take(&c->listeners[i].addr);
            if (fd < 0)
                fd = sock_listen(&c->listeners[i].addr, LISTEN_BACKLOG);
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

/* What a reload needs to know and change. */
struct runtime {
    const char *path;
    struct conf *conf; /* running snapshot (ref held) */
    struct worker **ws;
    unsigned n_workers;
    int **fds; /* main's copy of each worker's listen fds (the workers own them) */
    struct health_checker *checker;
    struct admin *admin;
    unsigned long reloads_ok, reloads_failed;
    unsigned long generation; /* of the running config (conf.generation) */
    struct handover_child upgrade; /* binary upgrade in progress (pid != 0) */
};

static int **fds_copy(int **src, unsigned n_workers, size_t n)
{
    int **c = xcalloc(n_workers, sizeof(int *));
    for (unsigned w = 0; w < n_workers; w++) {
        c[w] = xcalloc(n ? n : 1, sizeof(int));
        memcpy(c[w], src[w], n * sizeof(int));
    }
    return c;
}

static void fds_free(int **f, unsigned n_workers)
{
    for (unsigned w = 0; w < n_workers; w++)
        free(f[w]);
    free(f);
}

static const struct conf_listener *same_listener(const struct conf *c, const struct addr *a,
                                                 size_t *idx)
{
    for (size_t j = 0; j < c->n_listeners; j++) {
        const struct addr *b = &c->listeners[j].addr;
        if (a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0) {
            *idx = j;
            return &c->listeners[j];
        }
    }
    return NULL;
}

/* Loads the config file and builds its TLS contexts (reading certificates
 * and keys): the new snapshot, or NULL with every error in errs. */
static struct conf *load_file(const char *path, struct conf_errors *errs)
{
    struct conf *nc = conf_load_file(path, errs);
    if (nc && tls_build_listeners(nc, path, errs) < 0) {
        conf_unref(nc);
        nc = NULL;
    }
    return nc;
}

/* Makes nc (validated, TLS contexts built; the caller keeps its reference)
 * the running config, for SIGHUP and the admin API alike: opens the new
 * listeners (kept ones keep their sockets), hands the snapshot to every
 * worker and waits until each switched. Settings a reload cannot change
 * keep their running values (one warning each in warns). Returns 0, or -1
 * with the reason in errs, and then nothing changed. Main thread. */
static int apply_conf(struct runtime *rt, struct conf *nc, struct conf_errors *errs,
                      struct conf_errors *warns)
{
    {
        char cerr[256];
        if (engine_cache_setup(nc, cerr, sizeof(cerr)) < 0)
            log_error("reload: cache: %s (caching stays off)", cerr);
    }
    conf_keep_restart_settings(nc, rt->conf, rt->n_workers, warns);
    server_states_carry_over(nc, rt->conf);

    int **nf = xcalloc(rt->n_workers, sizeof(int *));
    for (unsigned w = 0; w < rt->n_workers; w++)
        nf[w] = xcalloc(nc->n_listeners ? nc->n_listeners : 1, sizeof(int));
    bool ok = true;
    size_t opened = 0;
    for (size_t i = 0; i < nc->n_listeners && ok; i++) {
        size_t j;
        if (same_listener(rt->conf, &nc->listeners[i].addr, &j)) {
            for (unsigned w = 0; w < rt->n_workers; w++)
                nf[w][i] = rt->fds[w][j];
            continue;
        }
        for (unsigned w = 0; w < rt->n_workers; w++) {
            int fd = sock_listen(&nc->listeners[i].addr, LISTEN_BACKLOG);
            if (fd < 0) {
                conf_errors_add(errs, "listen %s: %s", nc->listeners[i].listen, strerror(-fd));
                ok = false;
                for (unsigned k = 0; k < w; k++)
                    close(nf[k][i]);
                break;
            }
            nf[w][i] = fd;
        }
        opened = i + 1;
    }
    if (!ok) {
        /* Close what this reload opened; kept sockets stay with the workers.
         * The listener that failed (the last opened) closed its own. */
        for (size_t i = 0; i + 1 < opened; i++) {
            size_t j;
            if (same_listener(rt->conf, &nc->listeners[i].addr, &j))
                continue;
            for (unsigned w = 0; w < rt->n_workers; w++)
                if (nf[w][i] > 0)
                    close(nf[w][i]);
        }
        fds_free(nf, rt->n_workers);
        return -1;
    }

    nc->generation = ++rt->generation;
    unsigned *gen = xcalloc(rt->n_workers, sizeof(unsigned));
    for (unsigned w = 0; w < rt->n_workers; w++) {
        gen[w] = atomic_load(&rt->ws[w]->applied_gen);
        conf_ref(nc);
        int *own = xcalloc(nc->n_listeners ? nc->n_listeners : 1, sizeof(int));
        memcpy(own, nf[w], nc->n_listeners * sizeof(int));
        worker_post_conf(rt->ws[w], nc, own);
    }
    /* Each worker switches between two events: this takes microseconds. */
    for (unsigned w = 0; w < rt->n_workers; w++) {
        for (int t = 0; t < 10000 && atomic_load(&rt->ws[w]->applied_gen) == gen[w]; t++) {
            struct timespec ts = {0, 500 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    free(gen);
    fds_free(rt->fds, rt->n_workers);
    rt->fds = nf;

    health_stop(rt->checker);
    rt->checker = health_start(nc);
    admin_set_conf(rt->admin, nc);
    errlog_set_level(nc->log.level);
    conf_ref(nc);
    conf_unref(rt->conf);
    rt->conf = nc;
    return 0;
}

/* Logs the outcome of a config change: errors and warnings prefixed with
 * `who`, then "WHAT: 2 listeners, ..." (`what` says what happened, e.g.
 * "reloaded FILE") or "reload failed: the running config is unchanged". */
static void log_outcome(struct runtime *rt, int rc, const char *who, const char *what,
                        const struct conf_errors *errs, const struct conf_errors *warns)
{
    for (size_t i = 0; i < errs->n; i++)
        log_error("%s: %s", who, errs->msgs[i]);
    for (size_t i = 0; i < warns->n; i++)
        log_warn("%s: %s", who, warns->msgs[i]);
    metrics_reload(rc == 0); /* portico_config_reloads_total */
    if (rc < 0) {
        log_error("reload failed: the running config is unchanged");
        rt->reloads_failed++;
        return;
    }
    rt->reloads_ok++;
    const struct conf *nc = rt->conf;
    log_info("%s: %zu listener%s, %zu upstream%s, %zu route%s (generation %lu)", what,
             nc->n_listeners, nc->n_listeners == 1 ? "" : "s", nc->n_upstreams,
             nc->n_upstreams == 1 ? "" : "s", nc->n_routes, nc->n_routes == 1 ? "" : "s",
             nc->generation);
}

/* SIGHUP and POST /reload: re-reads the file and applies it. On any error
 * nothing changes. Returns 0 or -1 (errs, warns: as for apply_conf). */
static int reload(struct runtime *rt, const char *who, struct conf_errors *errs,
                  struct conf_errors *warns)
{
    struct conf *nc = load_file(rt->path, errs);
    int rc = nc ? apply_conf(rt, nc, errs, warns) : -1;
    conf_unref(nc);
    char what[4096];
    snprintf(what, sizeof(what), "reloaded %s", rt->path);
    log_outcome(rt, rc, who, what, errs, warns);
    return rc;
}

/* Carries out one admin API change (admin.h: admin_op) and hands back its
 * outcome. */
static void admin_op_run(struct runtime *rt, struct admin_op *op, bool draining)
{
    if (draining) {
        op->status = 503;
    } else if (op->kind == ADMIN_OP_RELOAD) {
        if (!rt->path) {
            conf_errors_add(&op->errs, "quick mode has no config file to reload");
            op->status = 409;
        } else {
            log_info("admin API: reloading %s", rt->path);
            op->status = reload(rt, "reload", &op->errs, &op->warnings) == 0 ? 200 : 400;
        }
    } else if (op->base && op->base != rt->conf) {
        /* An edit of a snapshot that a reload replaced meanwhile: applying it
         * would undo that reload. The admin thread recomputes it. */
        conf_errors_add(&op->errs, "the config changed meanwhile, try again");
        op->status = 409;
    } else {
        int rc = apply_conf(rt, op->conf, &op->errs, &op->warnings);
        log_outcome(rt, rc, "admin API", "applied a config from the admin API", &op->errs,
                    &op->warnings);
        op->status = rc == 0 ? 200 : 400;
    }
    op->generation = rt->conf->generation;
    admin_op_done(op);
}

/* SIGUSR2: starts the binary anew with every listening socket (each
 * worker's, and the admin API's) inherited. The new process reads the
 * config itself; once it serves, this one drains (see the main loop). */
static void start_upgrade(struct runtime *rt)
{
    size_t n = 0, cap = rt->n_workers * rt->conf->n_listeners + 1;
    int *fds = xcalloc(cap, sizeof(int));
    for (unsigned w = 0; w < rt->n_workers; w++)
        for (size_t i = 0; i < rt->conf->n_listeners; i++)
            fds[n++] = rt->fds[w][i];
    int afd = admin_listen_fd(rt->admin);
    if (afd >= 0)
        fds[n++] = afd;
    char err[256];
    if (handover_spawn(fds, n, clock_ms(), UPGRADE_TIMEOUT_MS, &rt->upgrade, err,
                       sizeof(err)) < 0)
        log_error("upgrade failed: %s; this process keeps serving", err);
    else
        log_info("upgrade: started the new process (pid %d) with %zu listening socket%s",
                 (int)rt->upgrade.pid, n, n == 1 ? "" : "s");
    free(fds);
}

/* Checks on an upgrade in progress. Returns true when the new process
 * serves: this one must then stop accepting and drain. */
static bool upgrade_done(struct runtime *rt)
{
    char msg[512];
    int r = handover_poll(&rt->upgrade, clock_ms(), msg, sizeof(msg));
    if (r < 0)
        log_error("upgrade failed: %s; this process keeps serving", msg);
    if (r <= 0)
        return false;
    log_info("upgrade: %s: this process stops accepting and drains (grace %llu ms)", msg,
             (unsigned long long)rt->conf->shutdown_grace_ms);
    /* The admin socket is the new process's now (it has a copy). */
    admin_stop(rt->admin);
    rt->admin = NULL;
    return true;
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
    const char *upgrade_pid = NULL;
    size_t n_to = 0;
    bool test_only = false;

    /* Before any thread: sockets (and the environment) a previous process
     * handed over. */
    size_t n_inherited = handover_init();

    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
        {"from", required_argument, NULL, 'F'},   {"to", required_argument, NULL, 'T'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {"upgrade", required_argument, NULL, 'U'}, {NULL, 0, NULL, 0}};
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
        case 'U':
            upgrade_pid = optarg;
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
    if (upgrade_pid && !conf_path && !from && !n_to && !test_only && optind == argc) {
        free(to);
        return ask_upgrade(upgrade_pid);
    }
    if (optind < argc || (!conf_path && !from) || (conf_path && from) ||
        (from && n_to == 0) || (!from && n_to) || upgrade_pid) {
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
    {
        /* The helper that starts a new binary on SIGUSR2: forked now, while
         * there is no thread and no connection (net/handover.c says why). */
        char herr[256];
        if (handover_spawner_start(argv, herr, sizeof(herr)) < 0)
            fprintf(stderr, "portico: binary upgrade unavailable: %s\n", herr);
    }
    {
        char cerr[256];
        if (engine_cache_setup(conf, cerr, sizeof(cerr)) < 0) {
            fprintf(stderr, "portico: cache: %s\n", cerr);
            conf_unref(conf);
            return 1;
        }
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
    sigaddset(&sigs, admin_wake_signal());
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
    struct runtime rt = {.path = conf_path, .conf = conf, .ws = ws, .n_workers = n_workers,
                         .fds = fds_copy(fds, n_workers, conf->n_listeners),
                         .checker = checker, .admin = admin, .generation = 1};
    conf->generation = 1;
    for (unsigned i = 0; i < n_workers; i++) {
        ws[i] = worker_new(i, conf, fds[i]);
        if ((rc = worker_start(ws[i])) < 0) {
            fprintf(stderr, "portico: cannot start worker: %s\n", strerror(-rc));
            return 1;
        }
    }
    free(fds);
    log_info("portico %s started: %u worker%s, %zu listener%s, pid %d", PORTICO_VERSION,
             n_workers, n_workers == 1 ? "" : "s", conf->n_listeners,
             conf->n_listeners == 1 ? "" : "s", (int)getpid());
    if (n_inherited)
        log_info("upgrade: took over the listening sockets of the previous process");
    /* Sockets the previous process had and this config has no use for. */
    handover_close_unused();
    handover_ready();

    bool draining = false;
    uint64_t drain_deadline = 0;
    uint64_t next_ticket_rotation = clock_update() + TICKET_ROTATE_MS;
    admin_ops_open();
    for (;;) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (clock_update() >= next_ticket_rotation) {
            tls_rotate_ticket_keys();
            next_ticket_rotation = clock_ms() + TICKET_ROTATE_MS;
        }
        bool upgraded = rt.upgrade.pid && upgrade_done(&rt);
        if (sig == SIGTERM || sig == SIGINT || upgraded) {
            if (!draining) {
                if (!upgraded)
                    log_info("received %s: graceful stop (grace %llu ms)",
                             sig == SIGTERM ? "SIGTERM" : "SIGINT",
                             (unsigned long long)rt.conf->shutdown_grace_ms);
                draining = true;
                drain_deadline = clock_ms() + rt.conf->shutdown_grace_ms;
                for (unsigned i = 0; i < n_workers; i++)
                    worker_post(ws[i], WORKER_MSG_DRAIN);
            }
        } else if (sig == SIGQUIT) {
            log_info("received SIGQUIT: immediate stop");
            for (unsigned i = 0; i < n_workers; i++)
                worker_post(ws[i], WORKER_MSG_STOP);
            break;
        } else if (sig == SIGHUP) {
            if (draining || !conf_path)
                log_warn("received SIGHUP: %s", draining ? "stopping, not reloading"
                                                        : "quick mode has no file to reload");
            else {
                log_info("received SIGHUP: reloading %s", conf_path);
                struct conf_errors rerrs = {0}, warns = {0};
                reload(&rt, "reload", &rerrs, &warns);
                conf_errors_free(&rerrs);
                conf_errors_free(&warns);
            }
        } else if (sig == SIGUSR1) {
            log_info("received SIGUSR1: reopening logs");
            errlog_reopen();
            log_writer_reopen();
        } else if (sig == SIGUSR2) {
            if (draining || rt.upgrade.pid)
                log_warn("received SIGUSR2: %s", draining ? "stopping, not upgrading"
                                                         : "an upgrade is already running");
            else {
                log_info("received SIGUSR2: binary upgrade");
                start_upgrade(&rt);
            }
        }
        /* Admin API changes (the wake signal says one waits; looking every
         * turn also covers a signal merged with an earlier one). */
        for (struct admin_op *op; (op = admin_op_take());)
            admin_op_run(&rt, op, draining);
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
    fds_free(rt.fds, n_workers);
    health_stop(rt.checker);
    admin_stop(rt.admin);
    engine_cache_free();
    log_writer_stop();
    log_info("stopped");
    conf_unref(rt.conf);
    return 0;
}
