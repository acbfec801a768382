/* cache_store.c - the shared response store (see cache_store.h): objects in
 * a sharded memory tier (per shard: a mutex, a chained hash table and an LRU
 * list), fill claims per shard, and the store's public calls, which also
 * drive the optional disk tier (cache_disk.c: one file per object, an
 * in-memory index of the files, one writer thread) through the calls of
 * cache_store_int.h.
 *
 * Locks. A shard's mutex covers its table, LRU, byte count and claims; it is
 * taken on every lookup, so what runs under it is pointer work only: no
 * allocation, no free, no I/O (objects and nodes that leave a shard are
 * chained on a local list and released after the unlock). The disk mutex
 * (cache_disk.c) covers the file index and the writer's queue; it is taken
 * on memory misses, inserts, removals and by the writer, and never held
 * across file I/O. The two are never held together: the disk tier is called
 * with no shard mutex held. */
#include "filters/cache_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "filters/cache_store_int.h"

struct cache_store *g_cache_store;

/* Small stores use fewer shards than MAX_SHARDS (at least 1 MiB each) so
 * that their LRU stays meaningful. */
#define SHARD_MIN_BYTES (1u << 20)
/* What an object costs beyond its bytes: the struct, the store's node and
 * the allocator's headers of the three blocks. */
#define OBJ_OVERHEAD (sizeof(struct cache_obj) + sizeof(struct node) + 48)
/* cache_obj_new's size_hint is a hint (typically Content-Length): never
 * allocate more than this up front. */
#define HINT_MAX ((size_t)64 << 20)

/* ------------------------------------------------------------------------ */
/* Hashing: a short wyhash-style mix, 16 bytes per step. Good enough to spread
 * keys over shards and buckets, and to name files (collisions are handled:
 * the full key is compared everywhere). */

static inline uint64_t mix64(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

uint64_t cache_key_hash(const void *key, size_t len)
{
    static const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
                          k2 = 0x8ebc6af09c88c6e3ull;
    const unsigned char *p = key;
    size_t n = len;
    uint64_t seed = k0 ^ mix64((uint64_t)len ^ k1, k2);
    while (n > 16) {
        seed = mix64(rd64(p) ^ k1, rd64(p + 8) ^ seed);
        p += 16;
        n -= 16;
    }
    uint64_t a = 0, b = 0;
    if (n >= 8) { /* 8..16 bytes: two overlapping words */
        a = rd64(p);
        b = rd64(p + n - 8);
    } else if (n >= 4) {
        a = rd32(p);
        b = rd32(p + n - 4);
    } else if (n > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
    }
    return mix64(k1 ^ (uint64_t)len, mix64(a ^ k1, b ^ seed));
}

/* ------------------------------------------------------------------------ */
/* Types (those cache_disk.c shares are in cache_store_int.h). */

struct claim {
    struct claim *next;
    uint64_t hash, at_ms;
    size_t key_len;
    char key[];
};

/* ------------------------------------------------------------------------ */
/* Objects. */

static size_t obj_charge(const struct cache_obj *o)
{
    return OBJ_OVERHEAD + o->key_len + o->head_len + 2 + o->body_cap;
}

/* An object with room for the key and head (filled by the caller) and a body
 * buffer of body_cap bytes. */
struct cache_obj *cache_obj_alloc(size_t key_len, size_t head_len, size_t body_cap)
{
    struct cache_obj *o = xmalloc(sizeof(*o) + key_len + 1 + head_len + 1);
    memset(o, 0, sizeof(*o));
    atomic_init(&o->refs, 1);
    o->meta.version = CACHE_META_VERSION;
    o->key = (char *)(o + 1);
    o->key_len = key_len;
    o->key[key_len] = '\0';
    o->head = o->key + key_len + 1;
    o->head_len = head_len;
    o->head[head_len] = '\0';
    if (body_cap) {
        o->body = xmalloc(body_cap);
        o->body_cap = body_cap;
    }
    o->charge = obj_charge(o);
    return o;
}

struct cache_obj *cache_obj_new(const char *key, size_t key_len, const struct cache_meta *meta,
                                const char *head, size_t head_len, size_t size_hint)
{
    struct cache_obj *o = cache_obj_alloc(key_len, head_len, MIN(size_hint, HINT_MAX));
    if (meta)
        o->meta = *meta;
    o->meta.version = CACHE_META_VERSION;
    if (key_len)
        memcpy(o->key, key, key_len);
    if (head_len)
        memcpy(o->head, head, head_len);
    return o;
}

int cache_obj_append(struct cache_obj *o, const void *data, size_t len, size_t max)
{
    if (len > max || o->body_len > max - len)
        return -1;
    if (!len)
        return 0;
    size_t need = o->body_len + len;
    if (need > o->body_cap) {
        /* Doubling, but never past max: the charge counts the capacity. */
        size_t cap = o->body_cap > max / 2 ? max : MAX(o->body_cap * 2, (size_t)4096);
        cap = MIN(MAX(cap, need), max);
        o->body = xrealloc(o->body, cap);
        o->body_cap = cap;
        o->charge = obj_charge(o);
    }
    memcpy(o->body + o->body_len, data, len);
    o->body_len = need;
    return 0;
}

void cache_obj_ref(struct cache_obj *o)
{
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
}

void cache_obj_put(struct cache_obj *o)
{
    if (!o)
        return;
    /* acq_rel: the last holder must see every other holder's accesses done. */
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(o->body);
    free(o);
}

/* ------------------------------------------------------------------------ */
/* Memory tier: shard internals (all with sh->mu held). */

static inline struct shard *shard_of(struct cache_store *cs, uint64_t hash)
{
    /* High bits pick the shard, low bits the bucket: independent choices. */
    return &cs->shards[(hash >> 56) & (cs->n_shards - 1)];
}

static struct node *shard_find(struct shard *sh, uint64_t hash, const char *key, size_t len)
{
    for (struct node *n = sh->buckets[hash & sh->mask]; n; n = n->hnext)
        if (n->hash == hash && key_eq(n->obj->key, n->obj->key_len, key, len))
            return n;
    return NULL;
}

static inline void lru_unlink(struct node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
}

static inline void lru_push_front(struct shard *sh, struct node *n)
{
    n->prev = &sh->lru;
    n->next = sh->lru.next;
    sh->lru.next->prev = n;
    sh->lru.next = n;
}

static void shard_add(struct cache_store *cs, struct shard *sh, struct node *n)
{
    struct node **b = &sh->buckets[n->hash & sh->mask];
    n->hnext = *b;
    *b = n;
    lru_push_front(sh, n);
    sh->count++;
    sh->bytes += n->charge;
    atomic_fetch_add(&cs->st.mem_objects, 1);
    atomic_fetch_add(&cs->st.mem_bytes, n->charge);
}

/* Unlinks n and chains it on *dead (released by release_dead after the
 * unlock). */
static void shard_del(struct cache_store *cs, struct shard *sh, struct node *n, struct node **dead)
{
    struct node **pp = &sh->buckets[n->hash & sh->mask];
    while (*pp != n)
        pp = &(*pp)->hnext;
    *pp = n->hnext;
    lru_unlink(n);
    sh->count--;
    sh->bytes -= n->charge;
    atomic_fetch_sub(&cs->st.mem_objects, 1);
    atomic_fetch_sub(&cs->st.mem_bytes, n->charge);
    n->hnext = *dead;
    *dead = n;
}

/* Evicts from the LRU tail until the shard fits its share, sparing keep (the
 * object just linked). Returns the number evicted. */
static size_t shard_evict(struct cache_store *cs, struct shard *sh, struct node *keep,
                          struct node **dead)
{
    size_t n = 0;
    while (sh->bytes > sh->limit && sh->lru.prev != &sh->lru && sh->lru.prev != keep) {
        shard_del(cs, sh, sh->lru.prev, dead);
        n++;
    }
    return n;
}

static size_t release_dead(struct node *dead)
{
    size_t n = 0;
    while (dead) {
        struct node *next = dead->hnext;
        cache_obj_put(dead->obj);
        free(dead);
        dead = next;
        n++;
    }
    return n;
}

/* Quadruples the bucket array when chains average more than two nodes. The
 * new array is allocated outside the lock; the rehash itself runs under it
 * (pointer moves only, and rare: each growth quadruples). */
static void shard_grow(struct shard *sh)
{
    pthread_mutex_lock(&sh->mu);
    size_t old_n = sh->mask + 1;
    bool need = sh->count > 2 * old_n;
    pthread_mutex_unlock(&sh->mu);
    if (!need)
        return;
    size_t nn = old_n * 4;
    struct node **nb = xcalloc(nn, sizeof(*nb));
    pthread_mutex_lock(&sh->mu);
    if (sh->mask + 1 != old_n) { /* another thread grew it meanwhile */
        pthread_mutex_unlock(&sh->mu);
        free(nb);
        return;
    }
    for (size_t i = 0; i < old_n; i++) {
        struct node *n = sh->buckets[i];
        while (n) {
            struct node *next = n->hnext;
            n->hnext = nb[n->hash & (nn - 1)];
            nb[n->hash & (nn - 1)] = n;
            n = next;
        }
    }
    struct node **old = sh->buckets;
    sh->buckets = nb;
    sh->mask = nn - 1;
    pthread_mutex_unlock(&sh->mu);
    free(old);
}

/* ------------------------------------------------------------------------ */
/* Memory tier: filling from the disk tier. */

/* Memory miss: the key's object read from the disk tier, brought into
 * memory. */
static struct cache_obj *promote_from_disk(struct cache_store *cs, uint64_t hash, const char *key,
                                           size_t len)
{
    /* Read before the index check; see cache_remove for the ordering. */
    unsigned long gen = atomic_load(&cs->rm_gen);
    struct cache_obj *o = cache_disk_lookup(cs, hash, key, len);
    if (!o)
        return NULL;
    if (o->charge > cs->max_obj)
        return o; /* served, but too large for the memory tier (smaller limit since) */

    /* Into memory, unless a removal happened since the index check or the
     * key was inserted meanwhile (then the memory copy is newer). */
    struct shard *sh = shard_of(cs, hash);
    struct node *n = xmalloc(sizeof(*n));
    n->hash = hash;
    n->charge = o->charge;
    n->obj = o;
    struct node *dead = NULL;
    size_t evicted = 0;
    struct cache_obj *ret = o;
    pthread_mutex_lock(&sh->mu);
    struct node *cur = shard_find(sh, hash, key, len);
    if (cur) {
        ret = cur->obj;
        cache_obj_ref(ret);
        lru_unlink(cur);
        lru_push_front(sh, cur);
    } else if (atomic_load(&cs->rm_gen) == gen) {
        cache_obj_ref(o); /* the store's reference */
        shard_add(cs, sh, n);
        evicted = shard_evict(cs, sh, n, &dead);
        n = NULL;
    }
    bool grow = sh->count > 2 * (sh->mask + 1);
    pthread_mutex_unlock(&sh->mu);
    free(n);
    if (ret != o)
        cache_obj_put(o);
    if (evicted)
        atomic_fetch_add(&cs->st.evictions, evicted);
    release_dead(dead);
    if (grow)
        shard_grow(sh);
    return ret;
}


/* ------------------------------------------------------------------------ */
/* The store. */

struct cache_store *cache_store_new(uint64_t mem_bytes, const char *disk_path,
                                    uint64_t disk_bytes, char *err, size_t errlen)
{
    if (mem_bytes == 0) {
        snprintf(err, errlen, "cache_size must be more than 0");
        return NULL;
    }
    if (disk_path && !*disk_path) {
        snprintf(err, errlen, "cache_path is empty");
        return NULL;
    }
    struct cache_store *cs = xcalloc(1, sizeof(*cs));
    unsigned ns = 1;
    while (ns < MAX_SHARDS && mem_bytes / (ns * 2) >= SHARD_MIN_BYTES)
        ns *= 2;
    cs->n_shards = ns;
    cs->max_obj = mem_bytes / 8;
    atomic_init(&cs->rm_gen, 0);
    for (unsigned i = 0; i < ns; i++) {
        struct shard *sh = &cs->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->limit = mem_bytes / ns;
        /* Sized for ~16 KiB objects; grows when objects are smaller. */
        size_t nb = 16;
        while (nb < 65536 && nb * 16384 < sh->limit)
            nb *= 2;
        sh->buckets = xcalloc(nb, sizeof(*sh->buckets));
        sh->mask = nb - 1;
        sh->lru.prev = sh->lru.next = &sh->lru;
    }
    if (disk_path && cache_disk_open(cs, disk_path, disk_bytes, err, errlen) < 0) {
        cache_store_free(cs);
        return NULL;
    }
    return cs;
}

void cache_store_free(struct cache_store *cs)
{
    if (!cs)
        return;
    cache_disk_close(cs); /* first: the writer finishes the queued writes */
    for (unsigned i = 0; i < cs->n_shards; i++) {
        struct shard *sh = &cs->shards[i];
        struct node *n = sh->lru.next;
        while (n != &sh->lru) {
            struct node *next = n->next;
            cache_obj_put(n->obj);
            free(n);
            n = next;
        }
        struct claim *c = sh->claims;
        while (c) {
            struct claim *next = c->next;
            free(c);
            c = next;
        }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->mu);
    }
    free(cs);
}

const struct cache_stats *cache_store_stats(const struct cache_store *cs)
{
    return &cs->st;
}

struct cache_obj *cache_lookup(struct cache_store *cs, const char *key, size_t key_len)
{
    uint64_t hash = cache_key_hash(key, key_len);
    struct shard *sh = shard_of(cs, hash);
    struct cache_obj *o = NULL;
    pthread_mutex_lock(&sh->mu);
    struct node *n = shard_find(sh, hash, key, key_len);
    if (n) {
        lru_unlink(n);
        lru_push_front(sh, n);
        o = n->obj;
        cache_obj_ref(o);
    }
    pthread_mutex_unlock(&sh->mu);
    if (o || !cs->disk)
        return o;
    return promote_from_disk(cs, hash, key, key_len);
}

int cache_insert(struct cache_store *cs, struct cache_obj *o)
{
    /* A body built from a size hint (or by doubling) may hold much more room
     * than bytes, and the charge counts the room: give it back while the
     * object is still the caller's alone (refs 1: nobody else can be reading
     * body), before the lock. */
    if (o->body_cap > o->body_len + o->body_len / 16 + 256 &&
        atomic_load(&o->refs) == 1) {
        if (o->body_len) {
            o->body = xrealloc(o->body, o->body_len);
        } else {
            free(o->body);
            o->body = NULL;
        }
        o->body_cap = o->body_len;
        o->charge = obj_charge(o);
    }
    if (o->charge > cs->max_obj)
        return -1;
    uint64_t hash = cache_key_hash(o->key, o->key_len);
    struct shard *sh = shard_of(cs, hash);
    struct node *n = xmalloc(sizeof(*n));
    n->hash = hash;
    n->charge = o->charge;
    n->obj = o;
    cache_obj_ref(o);
    struct node *dead = NULL;
    pthread_mutex_lock(&sh->mu);
    struct node *old = shard_find(sh, hash, o->key, o->key_len);
    if (old)
        shard_del(cs, sh, old, &dead);
    shard_add(cs, sh, n);
    size_t evicted = shard_evict(cs, sh, n, &dead);
    bool grow = sh->count > 2 * (sh->mask + 1);
    pthread_mutex_unlock(&sh->mu);
    atomic_fetch_add(&cs->st.inserts, 1);
    if (evicted)
        atomic_fetch_add(&cs->st.evictions, evicted);
    release_dead(dead);
    if (grow)
        shard_grow(sh);
    if (cs->disk)
        cache_disk_queue_write(cs, hash, o);
    return 0;
}

/* Removal ordering against promote_from_disk, which reads rm_gen, checks the
 * index and reads the file (cache_disk_lookup), then inserts under the shard
 * lock only if rm_gen is unchanged: the index entry goes first
 * (cache_disk_remove), then rm_gen is bumped, then the memory copy goes. A
 * lookup that saw the entry either inserts before the memory removal (which
 * then removes it) or sees the new rm_gen. */
bool cache_remove(struct cache_store *cs, const char *key, size_t key_len)
{
    uint64_t hash = cache_key_hash(key, key_len);
    bool removed = false;
    if (cs->disk)
        removed = cache_disk_remove(cs, hash, key, key_len);
    atomic_fetch_add(&cs->rm_gen, 1);
    struct shard *sh = shard_of(cs, hash);
    struct node *dead = NULL;
    pthread_mutex_lock(&sh->mu);
    struct node *n = shard_find(sh, hash, key, key_len);
    if (n)
        shard_del(cs, sh, n, &dead);
    pthread_mutex_unlock(&sh->mu);
    if (release_dead(dead))
        removed = true;
    if (removed)
        atomic_fetch_add(&cs->st.purged, 1);
    return removed;
}

/* Purge walks every entry of every shard (and of the file index) under its
 * lock: a purge is rare and only pointer work and key compares run there.
 * Files are deleted by the writer thread, after any write queued before. */
size_t cache_purge(struct cache_store *cs, const char *key, size_t len, bool exact)
{
    struct purge_match m = {key, len, exact};
    struct cache_disk_gone *disk_gone = NULL;
    size_t n_disk = 0, count = 0;
    if (cs->disk)
        disk_gone = cache_disk_purge(cs, &m, &n_disk, &count);
    atomic_fetch_add(&cs->rm_gen, 1);
    for (unsigned i = 0; i < cs->n_shards; i++) {
        struct shard *sh = &cs->shards[i];
        struct node *dead = NULL;
        pthread_mutex_lock(&sh->mu);
        for (struct node *n = sh->lru.next, *next; n != &sh->lru; n = next) {
            next = n->next;
            if (purge_matches(&m, n->obj->key, n->obj->key_len))
                shard_del(cs, sh, n, &dead);
        }
        pthread_mutex_unlock(&sh->mu);
        /* An object both in memory and on disk counts once. */
        for (struct node *n = dead; n; n = n->hnext) {
            if (!cache_disk_purged(disk_gone, n_disk, n->hash, n->obj->key, n->obj->key_len) &&
                !(n->obj->meta.flags & CACHE_F_VARY))
                count++;
        }
        release_dead(dead);
    }
    cache_disk_purged_free(disk_gone, n_disk);
    if (count)
        atomic_fetch_add(&cs->st.purged, count);
    return count;
}


/* ------------------------------------------------------------------------ */
/* Fill claims. */

static inline uint64_t claim_age(const struct claim *c, uint64_t now_ms)
{
    /* Callers' clocks are per-thread caches: a claim may look slightly in
     * the future. */
    return now_ms > c->at_ms ? now_ms - c->at_ms : 0;
}

/* Also sweeps the shard's claims older than lock_ms: a holder that never
 * released (a bug, or a crashed fill) leaves nothing behind for long. With
 * routes of different lock timeouts, a sweep may end a longer claim early:
 * the cost is one more origin request, never a wrong response. A holder whose
 * stale claim was taken over and who releases later ends the new claim: the
 * same cost. */
bool cache_fill_claim(struct cache_store *cs, const char *key, size_t key_len, uint64_t now_ms,
                      uint64_t lock_ms)
{
    uint64_t hash = cache_key_hash(key, key_len);
    struct shard *sh = shard_of(cs, hash);
    struct claim *c = xmalloc(sizeof(*c) + key_len);
    c->hash = hash;
    c->at_ms = now_ms;
    c->key_len = key_len;
    if (key_len)
        memcpy(c->key, key, key_len);
    struct claim *stale = NULL, *found = NULL;
    bool got = true;
    pthread_mutex_lock(&sh->mu);
    for (struct claim **pp = &sh->claims; *pp;) {
        struct claim *x = *pp;
        if (x->hash == hash && key_eq(x->key, x->key_len, key, key_len)) {
            found = x;
            pp = &x->next;
        } else if (claim_age(x, now_ms) >= lock_ms) {
            *pp = x->next;
            x->next = stale;
            stale = x;
        } else {
            pp = &x->next;
        }
    }
    if (found) {
        if (claim_age(found, now_ms) < lock_ms)
            got = false;
        else
            found->at_ms = now_ms; /* taken over */
    } else {
        c->next = sh->claims;
        sh->claims = c;
        c = NULL;
    }
    pthread_mutex_unlock(&sh->mu);
    free(c);
    while (stale) {
        struct claim *next = stale->next;
        free(stale);
        stale = next;
    }
    return got;
}

void cache_fill_release(struct cache_store *cs, const char *key, size_t key_len)
{
    uint64_t hash = cache_key_hash(key, key_len);
    struct shard *sh = shard_of(cs, hash);
    struct claim *gone = NULL;
    pthread_mutex_lock(&sh->mu);
    for (struct claim **pp = &sh->claims; *pp; pp = &(*pp)->next) {
        struct claim *x = *pp;
        if (x->hash == hash && key_eq(x->key, x->key_len, key, key_len)) {
            *pp = x->next;
            gone = x;
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    free(gone);
}

bool cache_fill_busy(struct cache_store *cs, const char *key, size_t key_len, uint64_t now_ms,
                     uint64_t lock_ms)
{
    uint64_t hash = cache_key_hash(key, key_len);
    struct shard *sh = shard_of(cs, hash);
    bool busy = false;
    pthread_mutex_lock(&sh->mu);
    for (struct claim *x = sh->claims; x; x = x->next) {
        if (x->hash == hash && key_eq(x->key, x->key_len, key, key_len)) {
            busy = claim_age(x, now_ms) < lock_ms;
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return busy;
}