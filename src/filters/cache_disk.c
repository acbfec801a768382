/* cache_disk.c - the response store's disk tier (see cache_store.h and
 * cache_store_int.h): one file per object in the cache_path directory, an
 * in-memory index of the files with its own LRU and byte limit, and one
 * writer thread that creates, renames and deletes the files in queue order.
 * Also the start-up scan that indexes the files of an earlier run, and the
 * failure counting and logging of disk operations. The memory tier
 * (cache_store.c) calls in through cache_disk_*.
 *
 * Locks. The disk mutex (d->mu) covers the file index and the writer's
 * queue; it is taken on memory misses, inserts, removals and by the writer,
 * and never held across file I/O, nor together with a shard mutex.
 *
 * Ordering. After start-up only the writer thread creates, renames
 * or deletes files, in queue order, so "delete this file" and a later "write
 * this key" cannot overtake each other. The index is what lookups trust: an
 * entry is published when its file is complete (rename done), and removed at
 * once when the object is removed or purged (the file itself goes later, in
 * queue order). A write whose object was removed or replaced in the
 * meantime is cancelled: taken out of the queue (and freed, with its object
 * reference) when still queued, flagged when already running, so the queue
 * only ever holds live work. Reading a file happens on the
 * caller's thread without any lock (rename is atomic, so a reader sees an old
 * file or a new one, never half of one). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/common.h"
#include "filters/cache_store_int.h"
#include "log/errlog.h"

/* Disk tier. */
#define DISK_MAGIC "PRTCACHE"
#define DISK_QUEUE_MAX 1024       /* pending writes; more are dropped and counted */
#define DISK_KEY_MAX (64u << 10)  /* longer keys stay in memory only */
#define DISK_HEAD_MAX (16u << 20) /* a file claiming a longer head is corrupt */
#define TMP_PREFIX ".tmp-"

/* ------------------------------------------------------------------------ */
/* Types. */

/* An index entry: one per file name (= key hash). */
struct dent {
    struct dent *hnext;
    struct dent *prev, *next; /* LRU ring, most recently written or read first */
    uint64_t hash;
    char *key;
    size_t key_len;
    uint64_t size;   /* bytes of the file in place; 0 = no file yet */
    struct job *job; /* the pending write for this name, NULL = none */
    bool marker;     /* a Vary marker (CACHE_F_VARY): not counted by purges */
};

enum job_type { JOB_WRITE, JOB_DELETE };

struct job {
    struct job *prev, *next; /* the queue; after job_cancel: the canceller's free list */
    enum job_type type;
    bool queued;           /* in the queue (d->mu); false once the writer took it */
    atomic_bool cancelled; /* set under the disk mutex, read by the writer */
    uint64_t hash;         /* JOB_WRITE */
    struct cache_obj *obj; /* JOB_WRITE: a reference */
    uint64_t *hashes;      /* JOB_DELETE: names to unlink */
    size_t n_hashes;
};

enum disk_err { DERR_WRITE, DERR_READ, DERR_DELETE, DERR_QUEUE, DERR__COUNT };

struct disk {
    char *path;
    int dirfd;
    uint64_t limit, max_file;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct dent **buckets;
    size_t mask, count;
    struct dent lru;
    struct job *qhead, *qtail;
    size_t qwrites; /* writes in the queue (cancelled ones leave it) */
    bool stop;
    pthread_t thread;
    bool started;
    uint64_t tmp_seq;                    /* writer thread only */
    atomic_bool reported[DERR__COUNT];   /* one log line per kind of failure */
};

/* The fixed part of a file. Host byte order and layout: the directory is a
 * cache for this machine, and the magic plus the sizes guard against a file
 * from elsewhere. */
struct disk_hdr {
    char magic[8];
    uint32_t version;  /* CACHE_META_VERSION */
    uint32_t hdr_size; /* sizeof(struct disk_hdr) */
    struct cache_meta meta;
    uint64_t key_len, head_len, body_len;
};
_Static_assert(sizeof(struct disk_hdr) == 112, "disk header layout");

/* ------------------------------------------------------------------------ */
/* Disk tier: errors. */

static void disk_error(struct cache_store *cs, enum disk_err kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Counts a disk failure; the first of each kind (until the next success of
 * that kind) is logged, so a full disk produces one line, not one per write. */
static void disk_error(struct cache_store *cs, enum disk_err kind, const char *fmt, ...)
{
    atomic_fetch_add(&cs->st.disk_errors, 1);
    if (atomic_exchange(&cs->disk->reported[kind], true))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_error("cache: %s (further such errors are only counted)", msg);
}

static void disk_ok(struct cache_store *cs, enum disk_err kind)
{
    /* Load first: the common case (nothing reported) writes nothing shared. */
    if (atomic_load_explicit(&cs->disk->reported[kind], memory_order_relaxed))
        atomic_store(&cs->disk->reported[kind], false);
}

/* ------------------------------------------------------------------------ */
/* Disk tier: file helpers. */

static void hex_name(uint64_t hash, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, hash);
}

static bool parse_hex_name(const char *s, uint64_t *hash)
{
    uint64_t v = 0;
    size_t i;
    for (i = 0; s[i]; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return false;
        if (i >= 16)
            return false;
        v = v << 4 | d;
    }
    if (i != 16)
        return false;
    *hash = v;
    return true;
}

/* Reads exactly n bytes. 0, or -1 with errno (EIO stands for a short file). */
static int read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int writev_full(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t left = (size_t)w;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

enum hdr_state { HDR_OK, HDR_DAMAGED, HDR_OTHER_VERSION };

/* Checks a header read from a file of file_size bytes. */
static enum hdr_state hdr_check(const struct disk_hdr *h, uint64_t file_size)
{
    if (memcmp(h->magic, DISK_MAGIC, 8) != 0)
        return HDR_DAMAGED;
    if (h->version != CACHE_META_VERSION || h->hdr_size != sizeof(*h) ||
        h->meta.version != CACHE_META_VERSION)
        return HDR_OTHER_VERSION;
    if (h->key_len > DISK_KEY_MAX || h->head_len > DISK_HEAD_MAX || h->body_len > file_size)
        return HDR_DAMAGED;
    if (sizeof(*h) + h->key_len + h->head_len + h->body_len != file_size)
        return HDR_DAMAGED;
    return HDR_OK;
}

static uint64_t file_size_of(const struct cache_obj *o)
{
    return sizeof(struct disk_hdr) + o->key_len + o->head_len + o->body_len;
}

/* ------------------------------------------------------------------------ */
/* Disk tier: the index (all with d->mu held, except during start-up). */

static struct dent *dent_find(struct disk *d, uint64_t hash)
{
    for (struct dent *e = d->buckets[hash & d->mask]; e; e = e->hnext)
        if (e->hash == hash)
            return e;
    return NULL;
}

static void dent_lru_front(struct disk *d, struct dent *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = &d->lru;
    e->next = d->lru.next;
    d->lru.next->prev = e;
    d->lru.next = e;
}

static void dent_grow(struct disk *d)
{
    size_t old_n = d->mask + 1, nn = old_n * 4;
    struct dent **nb = xcalloc(nn, sizeof(*nb));
    for (size_t i = 0; i < old_n; i++) {
        struct dent *e = d->buckets[i];
        while (e) {
            struct dent *next = e->hnext;
            e->hnext = nb[e->hash & (nn - 1)];
            nb[e->hash & (nn - 1)] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = nb;
    d->mask = nn - 1;
}

/* A new entry at the LRU head (the caller sets size and job). */
static struct dent *dent_add(struct disk *d, uint64_t hash, const char *key, size_t key_len)
{
    if (d->count >= 2 * (d->mask + 1))
        dent_grow(d);
    struct dent *e = xcalloc(1, sizeof(*e));
    e->hash = hash;
    e->key = xstrndup(key, key_len);
    e->key_len = key_len;
    struct dent **b = &d->buckets[hash & d->mask];
    e->hnext = *b;
    *b = e;
    e->prev = &d->lru;
    e->next = d->lru.next;
    d->lru.next->prev = e;
    d->lru.next = e;
    d->count++;
    return e;
}

static void job_cancel(struct disk *d, struct job *j, struct job **freelist);

/* Takes e out of the index (its file, if any, stops counting) and cancels
 * its pending write (a job still queued goes on *freelist). The caller frees
 * e and the jobs after the unlock, and arranges for the file to go. */
static void dent_unlink(struct cache_store *cs, struct dent *e, struct job **freelist)
{
    struct disk *d = cs->disk;
    struct dent **pp = &d->buckets[e->hash & d->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    e->prev->next = e->next;
    e->next->prev = e->prev;
    d->count--;
    if (e->size) {
        atomic_fetch_sub(&cs->st.disk_bytes, e->size);
        atomic_fetch_sub(&cs->st.disk_objects, 1);
    }
    if (e->job) {
        BUG_ON(!freelist);
        job_cancel(d, e->job, freelist);
    }
    e->job = NULL;
}

static void dent_free(struct dent *e)
{
    free(e->key);
    free(e);
}

/* Queues a job (d->mu held). */
static void queue_job(struct disk *d, struct job *j)
{
    j->next = NULL;
    j->prev = d->qtail;
    if (d->qtail)
        d->qtail->next = j;
    else
        d->qhead = j;
    d->qtail = j;
    j->queued = true;
    if (j->type == JOB_WRITE)
        d->qwrites++;
    pthread_cond_signal(&d->cv);
}

/* Takes j out of the queue (d->mu held). */
static void unqueue_job(struct disk *d, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        d->qhead = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        d->qtail = j->prev;
    j->prev = j->next = NULL;
    j->queued = false;
    if (j->type == JOB_WRITE)
        d->qwrites--;
}

/* Cancels a write (d->mu held). A queued one leaves the queue for *freelist
 * (freed by the caller after the unlock: it holds an object reference); a
 * running one is only flagged, and the writer frees it. */
static void job_cancel(struct disk *d, struct job *j, struct job **freelist)
{
    atomic_store(&j->cancelled, true);
    if (j->queued) {
        unqueue_job(d, j);
        j->next = *freelist;
        *freelist = j;
    }
}

static struct job *delete_job(uint64_t *hashes, size_t n)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->type = JOB_DELETE;
    j->hashes = hashes;
    j->n_hashes = n;
    return j;
}

static void job_free(struct job *j)
{
    if (j->obj)
        cache_obj_put(j->obj);
    free(j->hashes);
    free(j);
}

static void free_jobs(struct job *list)
{
    while (list) {
        struct job *next = list->next;
        job_free(list);
        list = next;
    }
}

/* ------------------------------------------------------------------------ */
/* Disk tier: the writer thread. */

static void unlink_name(struct cache_store *cs, uint64_t hash)
{
    char name[17];
    hex_name(hash, name);
    if (unlinkat(cs->disk->dirfd, name, 0) < 0 && errno != ENOENT)
        disk_error(cs, DERR_DELETE, "cannot delete %s/%s: %s", cs->disk->path, name,
                   strerror(errno));
}

/* Collects least recently used files while the tier is over its limit
 * (d->mu held). Entries with a write in progress are left alone: their
 * object was just inserted. Returns a malloc'd array of names to unlink. */
static uint64_t *disk_evict_collect(struct cache_store *cs, size_t *n_out)
{
    struct disk *d = cs->disk;
    uint64_t *out = NULL;
    size_t n = 0, cap = 0;
    struct dent *e = d->lru.prev;
    while (atomic_load(&cs->st.disk_bytes) > d->limit && e != &d->lru) {
        struct dent *prev = e->prev;
        if (e->size && !e->job) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                out = xrealloc(out, cap * sizeof(*out));
            }
            out[n++] = e->hash;
            dent_unlink(cs, e, NULL); /* no job: nothing to cancel */
            dent_free(e);
            atomic_fetch_add(&cs->st.evictions, 1);
        }
        e = prev;
    }
    *n_out = n;
    return out;
}

static void run_write(struct cache_store *cs, struct job *j)
{
    struct disk *d = cs->disk;
    struct cache_obj *o = j->obj;
    char name[17], tmp[64];
    hex_name(j->hash, name);
    snprintf(tmp, sizeof(tmp), TMP_PREFIX "%s-%" PRIu64, name, d->tmp_seq++);
    bool written = false;
    uint64_t fsize = file_size_of(o);

    if (!atomic_load(&j->cancelled)) {
        struct disk_hdr h;
        memset(&h, 0, sizeof(h));
        memcpy(h.magic, DISK_MAGIC, 8);
        h.version = CACHE_META_VERSION;
        h.hdr_size = sizeof(h);
        h.meta = o->meta;
        h.key_len = o->key_len;
        h.head_len = o->head_len;
        h.body_len = o->body_len;
        struct iovec iov[4] = {
            {&h, sizeof(h)},
            {o->key, o->key_len},
            {o->head, o->head_len},
            {o->body, o->body_len},
        };
        int fd = openat(d->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        int err = 0;
        if (fd < 0) {
            err = errno;
        } else {
            if (writev_full(fd, iov, 4) < 0)
                err = errno;
            if (close(fd) < 0 && !err)
                err = errno;
            /* Checked again just before the rename: a removal that came
             * while the bytes were being written is the common race. */
            if (!err && atomic_load(&j->cancelled)) {
                unlinkat(d->dirfd, tmp, 0);
            } else if (!err && renameat(d->dirfd, tmp, d->dirfd, name) < 0) {
                err = errno;
            } else if (!err) {
                written = true;
            }
            if (err)
                unlinkat(d->dirfd, tmp, 0);
        }
        if (err) {
            disk_error(cs, DERR_WRITE, "cannot write %s/%s: %s (objects stay in memory only)",
                       d->path, tmp, strerror(err));
        } else if (written) {
            disk_ok(cs, DERR_WRITE);
        }
    }

    /* Publish. A write cancelled after its rename leaves a file that the
     * canceller's delete job (or the replacing write) deals with next. */
    uint64_t *gone = NULL;
    size_t n_gone = 0;
    uint64_t stale = 0;
    bool drop_stale = false;
    pthread_mutex_lock(&d->mu);
    struct dent *e = dent_find(d, j->hash);
    /* Not cancelled means the entry still points to this job: every path
     * that detaches a job from its entry cancels it first. */
    if (!atomic_load(&j->cancelled) && e && e->job == j) {
        e->job = NULL;
        if (written) {
            if (e->size) {
                atomic_fetch_sub(&cs->st.disk_bytes, e->size);
            } else {
                atomic_fetch_add(&cs->st.disk_objects, 1);
            }
            e->size = fsize;
            atomic_fetch_add(&cs->st.disk_bytes, fsize);
            atomic_fetch_add(&cs->st.disk_writes, 1);
            dent_lru_front(d, e);
            gone = disk_evict_collect(cs, &n_gone);
        } else {
            /* The write failed: an older file under this name (indexed, or
             * renamed into place by a write cancelled since) must not be
             * served after the memory copy is gone. */
            drop_stale = true;
            stale = e->hash;
            dent_unlink(cs, e, NULL); /* its job was this one, detached above */
            dent_free(e);
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (drop_stale)
        unlink_name(cs, stale);
    for (size_t i = 0; i < n_gone; i++)
        unlink_name(cs, gone[i]);
    free(gone);
}

static void *writer_main(void *arg)
{
    struct cache_store *cs = arg;
    struct disk *d = cs->disk;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->qhead && !d->stop)
            pthread_cond_wait(&d->cv, &d->mu);
        struct job *j = d->qhead;
        if (!j)
            break; /* stopping and drained */
        unqueue_job(d, j);
        pthread_mutex_unlock(&d->mu);
        if (j->type == JOB_WRITE) {
            run_write(cs, j);
        } else {
            for (size_t i = 0; i < j->n_hashes; i++)
                unlink_name(cs, j->hashes[i]);
        }
        job_free(j);
        pthread_mutex_lock(&d->mu);
        if (!d->qhead)
            disk_ok(cs, DERR_QUEUE);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Queues the write of an object just inserted in memory. */
void cache_disk_queue_write(struct cache_store *cs, uint64_t hash, struct cache_obj *o)
{
    struct disk *d = cs->disk;
    /* Objects that cannot go to disk still replace what the disk has under
     * that name: an older version must not come back later. */
    bool storable = o->key_len <= DISK_KEY_MAX && file_size_of(o) <= d->max_file;
    bool dropped = false;
    struct job *j = xcalloc(1, sizeof(*j));
    j->type = JOB_WRITE;
    j->hash = hash;
    cache_obj_ref(o);
    j->obj = o;
    struct job *del = NULL, *cancelled = NULL;
    struct dent *old = NULL;
    char *old_key = NULL;

    pthread_mutex_lock(&d->mu);
    struct dent *e = dent_find(d, hash);
    if (!storable || d->qwrites >= DISK_QUEUE_MAX) {
        dropped = storable;
        if (e) {
            bool had_file = e->size || e->job;
            dent_unlink(cs, e, &cancelled);
            old = e;
            if (had_file) {
                uint64_t *h = xmalloc(sizeof(*h));
                *h = hash;
                del = delete_job(h, 1);
                queue_job(d, del);
            }
        }
    } else {
        if (!e) {
            e = dent_add(d, hash, o->key, o->key_len);
            e->marker = (o->meta.flags & CACHE_F_VARY) != 0;
        } else {
            if (e->job) /* superseded */
                job_cancel(d, e->job, &cancelled);
            if (!key_eq(e->key, e->key_len, o->key, o->key_len)) {
                /* A hash collision: the newer key takes the name. */
                old_key = e->key;
                e->key = xstrndup(o->key, o->key_len);
                e->key_len = o->key_len;
            }
            dent_lru_front(d, e);
        }
        e->job = j;
        queue_job(d, j);
        j = NULL;
    }
    pthread_mutex_unlock(&d->mu);

    free(old_key);
    if (old)
        dent_free(old);
    if (j)
        job_free(j);
    free_jobs(cancelled);
    if (dropped)
        disk_error(cs, DERR_QUEUE, "disk writer queue full (%u writes pending): writes dropped",
                   DISK_QUEUE_MAX);
}

/* ------------------------------------------------------------------------ */
/* Disk tier: reading. */

/* Reads the object stored under hash, verifying it is key's. NULL on a miss
 * (the file went away or now holds another key) or on an error. *corrupt is
 * set when the file is damaged. */
static struct cache_obj *disk_read(struct cache_store *cs, uint64_t hash, const char *key,
                                   size_t len, bool *corrupt)
{
    struct disk *d = cs->disk;
    char name[17];
    hex_name(hash, name);
    *corrupt = false;
    int fd = openat(d->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT) /* ENOENT: evicted or deleted meanwhile */
            disk_error(cs, DERR_READ, "cannot open %s/%s: %s", d->path, name, strerror(errno));
        return NULL;
    }
    struct stat st;
    struct disk_hdr h;
    struct cache_obj *o = NULL;
    if (fstat(fd, &st) < 0 || read_full(fd, &h, sizeof(h)) < 0) {
        if (errno == EIO) /* shorter than a header */
            *corrupt = true;
        else
            disk_error(cs, DERR_READ, "cannot read %s/%s: %s", d->path, name, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || hdr_check(&h, (uint64_t)st.st_size) != HDR_OK) {
        *corrupt = true;
        goto out;
    }
    if (h.key_len != len) /* another key took the name meanwhile */
        goto out;
    o = cache_obj_alloc(h.key_len, h.head_len, h.body_len);
    if (read_full(fd, o->key, h.key_len) < 0 || read_full(fd, o->head, h.head_len) < 0 ||
        read_full(fd, o->body, h.body_len) < 0) {
        if (errno == EIO)
            *corrupt = true; /* shrank under us: not written by us */
        else
            disk_error(cs, DERR_READ, "cannot read %s/%s: %s", d->path, name, strerror(errno));
        cache_obj_put(o);
        o = NULL;
        goto out;
    }
    if (!key_eq(o->key, o->key_len, key, len)) {
        cache_obj_put(o);
        o = NULL;
        goto out;
    }
    o->meta = h.meta;
    o->body_len = h.body_len;
    disk_ok(cs, DERR_READ);
out:
    close(fd);
    return o;
}

/* Drops the index entry for hash (if it is still key's finished file) and
 * queues the deletion of its file. */
static void disk_drop(struct cache_store *cs, uint64_t hash, const char *key, size_t len)
{
    struct disk *d = cs->disk;
    struct dent *e;
    pthread_mutex_lock(&d->mu);
    e = dent_find(d, hash);
    if (e && !e->job && key_eq(e->key, e->key_len, key, len)) {
        dent_unlink(cs, e, NULL); /* no job: nothing to cancel */
        uint64_t *h = xmalloc(sizeof(*h));
        *h = hash;
        queue_job(d, delete_job(h, 1));
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&d->mu);
    if (e)
        dent_free(e);
}

/* Memory miss: looks the key up in the file index and reads its file. */
struct cache_obj *cache_disk_lookup(struct cache_store *cs, uint64_t hash, const char *key,
                                    size_t len)
{
    struct disk *d = cs->disk;
    pthread_mutex_lock(&d->mu);
    struct dent *e = dent_find(d, hash);
    /* An entry with a write pending is a newer version on its way (normally
     * still in memory): the file in place is older, so it is a miss. */
    bool hit = e && e->size && !e->job && key_eq(e->key, e->key_len, key, len);
    if (hit)
        dent_lru_front(d, e);
    pthread_mutex_unlock(&d->mu);
    if (!hit)
        return NULL;

    bool corrupt;
    struct cache_obj *o = disk_read(cs, hash, key, len, &corrupt);
    if (!o) {
        if (corrupt) {
            char name[17];
            hex_name(hash, name);
            disk_error(cs, DERR_READ, "%s/%s is damaged: deleted", d->path, name);
            disk_drop(cs, hash, key, len);
        }
        return NULL;
    }
    atomic_fetch_add(&cs->st.disk_reads, 1);
    return o;
}

/* ------------------------------------------------------------------------ */
/* Disk tier: opening (start-up scan). */

struct found {
    uint64_t hash, size;
    struct timespec mtime;
    char *key;
    size_t key_len;
    bool marker;
};

static int found_cmp(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* Validates one file named by hash; on success fills f (key malloc'd).
 * Returns HDR_DAMAGED also for what is not a regular file. */
static enum hdr_state scan_file(int dirfd, const char *name, uint64_t hash, struct found *f)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return HDR_DAMAGED;
    struct stat st;
    struct disk_hdr h;
    enum hdr_state hs = HDR_DAMAGED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read_full(fd, &h, sizeof(h)) == 0)
        hs = hdr_check(&h, (uint64_t)st.st_size);
    bool ok = hs == HDR_OK;
    if (ok) {
        f->key = xmalloc(h.key_len + 1);
        ok = read_full(fd, f->key, h.key_len) == 0 && cache_key_hash(f->key, h.key_len) == hash;
        if (ok) {
            f->key[h.key_len] = '\0';
            f->key_len = h.key_len;
            f->hash = hash;
            f->marker = (h.meta.flags & CACHE_F_VARY) != 0;
            f->size = (uint64_t)st.st_size;
            f->mtime = st.st_mtim;
        } else {
            free(f->key);
            f->key = NULL;
            hs = HDR_DAMAGED;
        }
    }
    close(fd);
    return hs;
}

/* Indexes every valid object file; deletes temporary files (a write cut
 * short by a stop) and damaged object files. Files whose names are not ours
 * are left alone: the directory might be shared by mistake. Then deletes the
 * oldest files beyond the limit. */
static int disk_scan(struct cache_store *cs, char *err, size_t errlen)
{
    struct disk *d = cs->disk;
    int fd2 = dup(d->dirfd);
    DIR *dir = fd2 < 0 ? NULL : fdopendir(fd2);
    if (!dir) {
        snprintf(err, errlen, "cache_path %s: cannot read: %s", d->path, strerror(errno));
        if (fd2 >= 0)
            close(fd2);
        return -1;
    }
    struct found *fs = NULL;
    size_t n = 0, cap = 0, bad = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        const char *name = de->d_name;
        uint64_t hash;
        if (strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
            unlinkat(d->dirfd, name, 0);
            continue;
        }
        if (!parse_hex_name(name, &hash))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            fs = xrealloc(fs, cap * sizeof(*fs));
        }
        enum hdr_state hs = scan_file(d->dirfd, name, hash, &fs[n]);
        if (hs == HDR_OK) {
            n++;
        } else {
            struct stat st;
            /* Never a directory that happens to have a hex name. A file of
             * another format version is dropped quietly: not damage. */
            if (fstatat(d->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
                unlinkat(d->dirfd, name, 0) == 0 && hs == HDR_DAMAGED)
                bad++;
        }
    }
    closedir(dir);
    if (n)
        qsort(fs, n, sizeof(*fs), found_cmp);
    for (size_t i = 0; i < n; i++) { /* oldest first: each goes to the LRU head */
        struct dent *e = dent_add(d, fs[i].hash, fs[i].key, fs[i].key_len);
        e->marker = fs[i].marker;
        e->size = fs[i].size;
        atomic_fetch_add(&cs->st.disk_bytes, e->size);
        atomic_fetch_add(&cs->st.disk_objects, 1);
        free(fs[i].key);
    }
    free(fs);
    size_t n_gone;
    uint64_t *gone = disk_evict_collect(cs, &n_gone);
    for (size_t i = 0; i < n_gone; i++)
        unlink_name(cs, gone[i]);
    free(gone);
    if (bad) {
        atomic_fetch_add(&cs->st.disk_errors, bad);
        log_warn("cache: %zu damaged file%s deleted from %s", bad, bad == 1 ? "" : "s", d->path);
    }
    return 0;
}

int cache_disk_open(struct cache_store *cs, const char *path, uint64_t limit, char *err,
                    size_t errlen)
{
    struct disk *d = xcalloc(1, sizeof(*d));
    cs->disk = d;
    d->path = xstrdup(path);
    d->dirfd = -1;
    d->limit = limit;
    d->max_file = limit / 8;
    d->mask = 255;
    d->buckets = xcalloc(d->mask + 1, sizeof(*d->buckets));
    d->lru.prev = d->lru.next = &d->lru;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    for (int i = 0; i < DERR__COUNT; i++)
        atomic_init(&d->reported[i], false);

    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cache_path %s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    d->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->dirfd < 0) {
        snprintf(err, errlen, "cache_path %s: %s", path, strerror(errno));
        return -1;
    }
    /* Fail now rather than with a stream of write errors later. */
    if (faccessat(d->dirfd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
        snprintf(err, errlen, "cache_path %s: not writable: %s", path, strerror(errno));
        return -1;
    }
    /* One store per directory: a second one (another process, or a store
     * opened before the first is freed) would delete the first's temporary
     * files at its scan and keep an index that the first contradicts. The
     * lock goes with the descriptor, closed by cache_store_free. */
    if (flock(d->dirfd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "cache_path %s: %s", path,
                 errno == EWOULDBLOCK ? "in use by another cache store" : strerror(errno));
        return -1;
    }
    if (disk_scan(cs, err, errlen) < 0)
        return -1;
    int rc = pthread_create(&d->thread, NULL, writer_main, cs);
    if (rc != 0) {
        snprintf(err, errlen, "cache: cannot start the disk writer: %s", strerror(rc));
        return -1;
    }
    d->started = true;
    return 0;
}

void cache_disk_close(struct cache_store *cs)
{
    struct disk *d = cs->disk;
    if (!d)
        return;
    if (d->started) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
    }
    while (d->qhead) { /* only when the writer never started */
        struct job *j = d->qhead;
        d->qhead = j->next;
        job_free(j);
    }
    for (size_t i = 0; i <= d->mask; i++) {
        struct dent *e = d->buckets[i];
        while (e) {
            struct dent *next = e->hnext;
            dent_free(e);
            e = next;
        }
    }
    free(d->buckets);
    if (d->dirfd >= 0)
        close(d->dirfd);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->path);
    free(d);
    cs->disk = NULL;
}

/* ------------------------------------------------------------------------ */
/* Disk tier: removal and purge (the memory tier's removals call these first:
 * see cache_remove for the ordering). */

bool cache_disk_remove(struct cache_store *cs, uint64_t hash, const char *key, size_t key_len)
{
    struct disk *d = cs->disk;
    bool removed = false;
    struct dent *e;
    struct job *cancelled = NULL;
    pthread_mutex_lock(&d->mu);
    e = dent_find(d, hash);
    if (e && key_eq(e->key, e->key_len, key, key_len)) {
        dent_unlink(cs, e, &cancelled);
        uint64_t *h = xmalloc(sizeof(*h));
        *h = hash;
        queue_job(d, delete_job(h, 1));
        removed = true;
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&d->mu);
    if (e)
        dent_free(e);
    free_jobs(cancelled);
    return removed;
}

struct cache_disk_gone {
    uint64_t hash;
    struct dent *e; /* unlinked, owns the key */
};

static int gone_cmp(const void *a, const void *b)
{
    const struct cache_disk_gone *x = a, *y = b;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* Walks the whole index under its lock: a purge is rare and only pointer
 * work and key compares run there. The files are deleted by the writer
 * thread, after any write queued before. */
struct cache_disk_gone *cache_disk_purge(struct cache_store *cs, const struct purge_match *m,
                                         size_t *n_out, size_t *count_out)
{
    struct disk *d = cs->disk;
    struct cache_disk_gone *disk_gone = NULL;
    struct job *cancelled = NULL;
    size_t n_disk = 0, count = 0, cap = 0;
    pthread_mutex_lock(&d->mu);
    for (struct dent *e = d->lru.next, *next; e != &d->lru; e = next) {
        next = e->next;
        if (!purge_matches(m, e->key, e->key_len))
            continue;
        if (n_disk == cap) {
            cap = cap ? cap * 2 : 64;
            disk_gone = xrealloc(disk_gone, cap * sizeof(*disk_gone));
        }
        dent_unlink(cs, e, &cancelled);
        disk_gone[n_disk].hash = e->hash;
        disk_gone[n_disk].e = e;
        n_disk++;
        if (!e->marker)
            count++; /* markers are bookkeeping, not stored responses */
    }
    if (n_disk) {
        uint64_t *hs = xmalloc(n_disk * sizeof(*hs));
        for (size_t i = 0; i < n_disk; i++)
            hs[i] = disk_gone[i].hash;
        queue_job(d, delete_job(hs, n_disk));
    }
    pthread_mutex_unlock(&d->mu);
    free_jobs(cancelled);
    if (n_disk > 1)
        qsort(disk_gone, n_disk, sizeof(*disk_gone), gone_cmp);
    *n_out = n_disk;
    *count_out = count;
    return disk_gone;
}

bool cache_disk_purged(const struct cache_disk_gone *gone, size_t n, uint64_t hash,
                       const char *key, size_t len)
{
    struct cache_disk_gone probe = {hash, NULL};
    const struct cache_disk_gone *g = n ? bsearch(&probe, gone, n, sizeof(*gone), gone_cmp)
                                        : NULL;
    return g && key_eq(g->e->key, g->e->key_len, key, len);
}

void cache_disk_purged_free(struct cache_disk_gone *gone, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dent_free(gone[i].e);
    free(gone);
}
