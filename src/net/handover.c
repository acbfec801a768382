/* handover.c - listening sockets handed from a running process to its
 * replacement (see handover.h): the old side's fork + exec and readiness
 * pipe, the new side's inherited sockets matched by address. */
#include "net/handover.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <poll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/common.h"

#define ENV_FDS "PORTICO_LISTEN_FDS"
#define ENV_READY "PORTICO_UPGRADE_FD"
#define HANDOVER_MAX_FDS 4096

extern char **environ;

/* ---- the new process ---- */

struct inherited {
    int fd;
    struct addr addr;
    bool taken;
};

static struct inherited *inh;
static size_t n_inh;
static int ready_fd = -1;

static int parse_fd(const char *s, const char **end)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (e == s || errno || v < 3 || v > INT_MAX)
        return -1;
    *end = e;
    return (int)v;
}

static void set_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0)
        fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

/* A listening TCP socket? Then its local address goes into *a. */
static bool listening_socket(int fd, struct addr *a)
{
    int v = 0;
    socklen_t l = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0 || !v)
        return false;
    l = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0 || v != SOCK_STREAM)
        return false;
    memset(a, 0, sizeof(*a));
    a->len = sizeof(a->ss);
    if (getsockname(fd, (struct sockaddr *)&a->ss, &a->len) < 0)
        return false;
    return a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6;
}

size_t handover_init(void)
{
    const char *s = getenv(ENV_FDS), *r = getenv(ENV_READY), *end;
    if (r) {
        int fd = parse_fd(r, &end);
        if (fd >= 0 && *end == '\0' && fcntl(fd, F_GETFD) >= 0) {
            ready_fd = fd;
            set_cloexec(fd); /* a later upgrade must not pass it on */
        }
    }
    while (s && *s) {
        int fd = parse_fd(s, &end);
        if (fd < 0 || (*end && *end != ','))
            break;
        s = *end ? end + 1 : end;
        struct addr a;
        if (n_inh == HANDOVER_MAX_FDS || !listening_socket(fd, &a))
            continue; /* not ours to touch */
        set_cloexec(fd);
        inh = xrealloc(inh, (n_inh + 1) * sizeof(*inh));
        inh[n_inh++] = (struct inherited){fd, a, false};
    }
    unsetenv(ENV_FDS);
    unsetenv(ENV_READY);
    return n_inh;
}

static bool same_addr(const struct addr *a, const struct addr *b)
{
    if (a->ss.ss_family != b->ss.ss_family)
        return false;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

int handover_take(const struct addr *a)
{
    for (size_t i = 0; i < n_inh; i++) {
        if (!inh[i].taken && same_addr(&inh[i].addr, a)) {
            inh[i].taken = true;
            return inh[i].fd;
        }
    }
    return -1;
}

void handover_close_unused(void)
{
    for (size_t i = 0; i < n_inh; i++)
        if (!inh[i].taken)
            close(inh[i].fd);
    free(inh);
    inh = NULL;
    n_inh = 0;
}

void handover_ready(void)
{
    if (ready_fd < 0)
        return;
    ssize_t w;
    do
        w = write(ready_fd, "R", 1);
    while (w < 0 && errno == EINTR);
    close(ready_fd);
    ready_fd = -1;
}

/* ---- the old process ----
 *
 * The new process is started by a helper, the spawner, forked at start-up
 * while this process has no thread and no connection. Forking the serving
 * process itself would copy every client connection's descriptor into the
 * child until its exec: a connection a worker closes meanwhile would stay
 * open, and stay registered in the worker's epoll set, which could then
 * report an event for a connection already freed. The spawner holds only
 * its socket to us; we send it the listening sockets (SCM_RIGHTS) when an
 * upgrade starts, it forks and execs, and tells us the new pid and, later,
 * how it exited. */

#define SP_STARTED 1 /* pid: the new process runs */
#define SP_FAILED 2  /* status: errno of fork */
#define SP_EXITED 3  /* pid, status (waitpid) */
#define SP_FDS_PER_MSG 200 /* below the kernel's SCM_MAX_FD (253) */

struct sp_req {
    int32_t last; /* 1 on the final message of a request */
    int32_t n;    /* descriptors in this message */
};
struct sp_msg {
    int32_t kind, pid, status;
};

static char exe_path[PATH_MAX];
static char **exec_argv;
static int sp_fd = -1; /* our end of the spawner's socket */

static void close_from(int lo, int hi)
{
    if (lo > hi)
        return;
    if (syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0u) == 0)
        return;
    struct rlimit rl;
    int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (1u << 20) ? (int)rl.rlim_cur
                                                                             : 1 << 20;
    for (int fd = lo; fd <= hi && fd < max; fd++)
        close(fd);
}

static char *env_entry(const char *name, const char *value)
{
    size_t a = strlen(name), b = strlen(value);
    char *e = xmalloc(a + b + 2);
    memcpy(e, name, a);
    e[a] = '=';
    memcpy(e + a + 1, value, b + 1);
    return e;
}

static void sp_send(int fd, int32_t kind, int32_t pid, int32_t status)
{
    struct sp_msg m = {kind, pid, status};
    ssize_t w;
    do
        w = send(fd, &m, sizeof(m), MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
}

/* The spawner: starts fds[0] = the readiness pipe, fds[1..n) = the
 * listening sockets, as a new process of the binary. */
static void sp_start(int sock, const int *fds, size_t n)
{
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **envp = xcalloc(ne + 3, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], ENV_FDS "=", sizeof(ENV_FDS)) != 0 &&
            strncmp(environ[i], ENV_READY "=", sizeof(ENV_READY)) != 0)
            envp[k++] = environ[i];
    size_t cap = n * 12 + 1, off = 0;
    char *list = xmalloc(cap), num[16];
    list[0] = '\0';
    for (size_t i = 1; i < n; i++)
        off += (size_t)snprintf(list + off, cap - off, "%s%d", i > 1 ? "," : "", fds[i]);
    snprintf(num, sizeof(num), "%d", fds[0]);
    envp[k++] = env_entry(ENV_FDS, list);
    envp[k++] = env_entry(ENV_READY, num);

    pid_t pid = fork();
    if (pid == 0) {
        /* What the spawner ignores must not stay ignored after exec. */
        static const int sigs[] = {SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGPIPE};
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
            signal(sigs[i], SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        close(sock);
        for (size_t i = 0; i < n; i++)
            fcntl(fds[i], F_SETFD, 0); /* received close-on-exec: inherit them */
        execve(exe_path, exec_argv, envp);
        _exit(127);
    }
    if (pid < 0)
        sp_send(sock, SP_FAILED, 0, errno);
    else
        sp_send(sock, SP_STARTED, pid, 0);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
    free(envp[k - 1]);
    free(envp[k - 2]);
    free(envp);
    free(list);
}

static void spawner_main(int sock)
{
    close_from(3, sock - 1);
    close_from(sock + 1, INT_MAX);
    static const int sigs[] = {SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGPIPE};
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
        signal(sigs[i], SIG_IGN); /* the serving process handles those */
    prctl(PR_SET_NAME, "portico-spawn", 0, 0, 0); /* how ps and top show it */
    int *fds = NULL;
    size_t n = 0;
    for (;;) {
        struct pollfd pf = {.fd = sock, .events = POLLIN};
        int pr = poll(&pf, 1, 200);
        int status;
        pid_t w;
        while ((w = waitpid(-1, &status, WNOHANG)) > 0)
            sp_send(sock, SP_EXITED, w, status);
        if (pr <= 0)
            continue;
        struct sp_req rq;
        char cbuf[CMSG_SPACE(SP_FDS_PER_MSG * sizeof(int))];
        struct iovec iov = {&rq, sizeof(rq)};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                            .msg_controllen = sizeof(cbuf)};
        ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            _exit(0); /* the serving process is gone */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            fds = xrealloc(fds, (n + got) * sizeof(int));
            memcpy(fds + n, CMSG_DATA(c), got * sizeof(int));
            n += got;
        }
        if (r == sizeof(rq) && rq.last) {
            if (n >= 1)
                sp_start(sock, fds, n);
            n = 0;
        }
    }
}

int handover_spawner_start(char **argv, char *err, size_t errlen)
{
    ssize_t len = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
    if (len <= 0 || (size_t)len >= sizeof(exe_path) - 1) {
        /* No /proc: argv[0] as it was given (a relative path is taken
         * against the working directory, which portico never changes). */
        snprintf(exe_path, sizeof(exe_path), "%s", argv[0]);
    } else {
        exe_path[len] = '\0';
    }
    exec_argv = argv;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        spawner_main(sv[1]);
        _exit(0);
    }
    close(sv[1]);
    sp_fd = sv[0];
    return 0;
}

/* Waits up to wait_ms for a message of the spawner of one of the kinds in
 * `kinds` (bit 1 << kind) about pid (0: any). Returns true with it in *m. */
static bool sp_wait(int kinds, pid_t pid, int wait_ms, struct sp_msg *m)
{
    for (int waited = 0; sp_fd >= 0;) {
        struct pollfd pf = {.fd = sp_fd, .events = POLLIN};
        int pr = poll(&pf, 1, wait_ms - waited > 50 ? 50 : wait_ms - waited);
        if (pr > 0) {
            ssize_t r = recv(sp_fd, m, sizeof(*m), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                close(sp_fd); /* the spawner is gone: no more upgrades */
                sp_fd = -1;
                return false;
            }
            if (r == sizeof(*m) && (kinds & (1 << m->kind)) && (!pid || m->pid == pid))
                return true;
            continue; /* news about an earlier attempt */
        }
        waited += 50;
        if (waited >= wait_ms)
            return false;
    }
    return false;
}

int handover_spawn(const int *fds, size_t n, uint64_t now_ms, uint64_t timeout_ms,
                   struct handover_child *h, char *err, size_t errlen)
{
    int p[2];
    struct sp_msg m;
    if (sp_fd < 0) {
        snprintf(err, errlen, "the helper process that starts the new binary is gone");
        return -1;
    }
    while (sp_wait(1 << SP_EXITED, 0, 0, &m))
        ; /* drop what is left of earlier attempts */
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    /* fds go in messages of at most SP_FDS_PER_MSG, the pipe first. */
    int *all = xmalloc((n + 1) * sizeof(int));
    all[0] = p[1];
    memcpy(all + 1, fds, n * sizeof(int));
    bool sent = true;
    for (size_t off = 0; off < n + 1 && sent; off += SP_FDS_PER_MSG) {
        size_t k = MIN((size_t)SP_FDS_PER_MSG, n + 1 - off);
        struct sp_req rq = {.last = off + k == n + 1, .n = (int32_t)k};
        char cbuf[CMSG_SPACE(SP_FDS_PER_MSG * sizeof(int))];
        memset(cbuf, 0, sizeof(cbuf));
        struct iovec iov = {&rq, sizeof(rq)};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                            .msg_controllen = CMSG_SPACE(k * sizeof(int))};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(k * sizeof(int));
        memcpy(CMSG_DATA(c), all + off, k * sizeof(int));
        ssize_t w;
        do
            w = sendmsg(sp_fd, &mh, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        sent = w == sizeof(rq);
    }
    free(all);
    close(p[1]);
    if (!sent) {
        snprintf(err, errlen, "cannot reach the helper process: %s", strerror(errno));
        close(p[0]);
        return -1;
    }
    if (!sp_wait(1 << SP_STARTED | 1 << SP_FAILED, 0, 5000, &m)) {
        snprintf(err, errlen, "the helper process did not start the new binary");
        close(p[0]);
        return -1;
    }
    if (m.kind == SP_FAILED) {
        snprintf(err, errlen, "fork: %s", strerror(m.status));
        close(p[0]);
        return -1;
    }
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    *h = (struct handover_child){.pid = m.pid, .ready_fd = p[0], .deadline = now_ms + timeout_ms};
    return 0;
}

static void describe_exit(int status, char *msg, size_t len, pid_t pid)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        snprintf(msg, len, "the new process (pid %d) could not start %s", (int)pid, exe_path);
    else if (WIFEXITED(status))
        snprintf(msg, len, "the new process (pid %d) exited with status %d", (int)pid,
                 WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(msg, len, "the new process (pid %d) was killed by signal %d", (int)pid,
                 WTERMSIG(status));
    else
        snprintf(msg, len, "the new process (pid %d) stopped", (int)pid);
}

int handover_poll(struct handover_child *h, uint64_t now_ms, char *msg, size_t len)
{
    char c;
    ssize_t r = read(h->ready_fd, &c, 1);
    if (r < 0 && (errno == EAGAIN || errno == EINTR) && now_ms < h->deadline)
        return 0;
    pid_t pid = h->pid;
    close(h->ready_fd);
    *h = (struct handover_child){.ready_fd = -1};
    if (r == 1) {
        snprintf(msg, len, "the new process (pid %d) serves", (int)pid);
        return 1;
    }
    /* The pipe closed without a word, or the deadline passed: whatever the
     * new process is doing, it is not serving. An exiting process closes
     * its descriptors a moment before the spawner can reap it: give that a
     * second, for the exit status. */
    struct sp_msg m;
    if (r == 0 && sp_wait(1 << SP_EXITED, pid, 1000, &m)) {
        describe_exit(m.status, msg, len, pid);
        return -1;
    }
    kill(pid, SIGKILL);
    snprintf(msg, len, "the new process (pid %d) %s; killed", (int)pid,
             r == 0 ? "closed its pipe without serving" : "was not serving in time");
    return -1;
}
