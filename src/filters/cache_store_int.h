/* cache_store_int.h - private to the response store, shared by its two
 * halves: the memory tier (cache_store.c) and the disk tier (cache_disk.c).
 * It owns the store's struct with the memory-tier types it embeds, the key
 * hash and comparisons both tiers use, and the disk tier's entry points that
 * the memory tier calls. Users of the store include cache_store.h only. */
#ifndef PORTICO_FILTERS_CACHE_STORE_INT_H
#define PORTICO_FILTERS_CACHE_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "filters/cache_store.h"

/* At most 8 shards: the largest object accepted (an eighth of the limit)
 * must fit in one shard, whose share is limit / shards. */
#define MAX_SHARDS 8

/* ------------------------------------------------------------------------ */
/* Types. */

struct node {
    struct node *hnext;       /* hash chain; after unlinking: the dead list */
    struct node *prev, *next; /* LRU ring through the shard's sentinel, newest first */
    uint64_t hash;
    size_t charge;            /* o->charge when linked (what the shard counted) */
    struct cache_obj *obj;    /* the store's reference */
};

struct claim; /* cache_store.c */

struct shard {
    pthread_mutex_t mu;
    struct node **buckets;
    size_t mask, count;
    struct node lru; /* sentinel: lru.next newest, lru.prev oldest */
    uint64_t bytes, limit;
    struct claim *claims;
    char pad[64]; /* keeps neighbouring shards' mutexes off one cache line */
};

struct disk; /* the disk tier's state: cache_disk.c */

struct cache_store {
    struct cache_stats st;
    unsigned n_shards;
    uint64_t max_obj;
    /* Bumped by every removal and purge: a disk read started before one must
     * not bring its object back into memory after it. */
    atomic_ulong rm_gen;
    struct disk *disk;
    struct shard shards[MAX_SHARDS];
};

/* ------------------------------------------------------------------------ */
/* Shared helpers (cache_store.c). */

/* The key's hash: picks the shard and bucket, and names the key's file.
 * Collisions are handled: the full key is compared everywhere. */
uint64_t cache_key_hash(const void *key, size_t len);
/* An object (refs 1) with room for the key and head (filled by the caller)
 * and a body buffer of body_cap bytes (body_len 0). */
struct cache_obj *cache_obj_alloc(size_t key_len, size_t head_len, size_t body_cap);

static inline bool key_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* What cache_purge removes, in both tiers. */
struct purge_match {
    const char *key;
    size_t len;
    bool exact;
};

static inline bool purge_matches(const struct purge_match *m, const char *k, size_t klen)
{
    if (klen < m->len || (m->len && memcmp(k, m->key, m->len) != 0))
        return false;
    if (!m->exact)
        return true;
    return klen == m->len || k[m->len] == '\n';
}

/* ------------------------------------------------------------------------ */
/* The disk tier (cache_disk.c). The calls that take cs, except
 * cache_disk_open and cache_disk_close, need cs->disk set and may come from
 * any thread; none may be made with a shard mutex held (the disk mutex is
 * taken inside). */

/* Opens the tier on path (created when missing, locked, scanned: files of
 * an earlier run are indexed, damaged and temporary ones deleted, the oldest
 * beyond limit evicted) and starts the writer thread. Sets cs->disk first:
 * on failure (-1, message in err) the caller still frees it with
 * cache_disk_close. Start-up only. */
int cache_disk_open(struct cache_store *cs, const char *path, uint64_t limit, char *err,
                    size_t errlen);
/* Stops the writer after it has run the queued jobs, frees the tier and sets
 * cs->disk to NULL. Nothing when there is no tier. No other call may run. */
void cache_disk_close(struct cache_store *cs);
/* Queues the write of o (just inserted in memory under hash; the job takes
 * its own reference). An object that cannot go to disk (too large, or the
 * queue is full: counted as a disk error) drops the older file under that
 * name instead. */
void cache_disk_queue_write(struct cache_store *cs, uint64_t hash, struct cache_obj *o);
/* Memory miss: looks the key up in the file index and reads its file. A new
 * object (refs 1, not in memory) or NULL; a damaged file is deleted. The
 * caller reads cs->rm_gen before this call (see cache_remove). */
struct cache_obj *cache_disk_lookup(struct cache_store *cs, uint64_t hash, const char *key,
                                    size_t len);
/* Takes key out of the index (cancelling its pending write) and queues the
 * deletion of its file. True when the index had it. */
bool cache_disk_remove(struct cache_store *cs, uint64_t hash, const char *key, size_t key_len);

/* Purged index entries, sorted by hash; they own their keys until freed. */
struct cache_disk_gone;
/* Takes every indexed key that m matches out of the index (cancelling their
 * pending writes) and queues the deletion of their files. Returns the
 * entries (NULL when none), with their number in *n_out and the number that
 * are stored responses, not Vary markers, in *count_out. */
struct cache_disk_gone *cache_disk_purge(struct cache_store *cs, const struct purge_match *m,
                                         size_t *n_out, size_t *count_out);
/* True when key (of hash) is among the n entries cache_disk_purge returned. */
bool cache_disk_purged(const struct cache_disk_gone *gone, size_t n, uint64_t hash,
                       const char *key, size_t len);
void cache_disk_purged_free(struct cache_disk_gone *gone, size_t n);

#endif
