/* cache_store.h - the shared response store behind the HTTP cache: objects
 * (a response head and its body) by key, in memory with a byte limit and LRU
 * eviction, sharded by key hash so workers rarely meet on a lock; an optional
 * disk tier whose objects survive restarts; fill claims so that concurrent
 * misses for one key make a single origin request. It knows nothing of HTTP
 * semantics: freshness is computed by its users from cache_meta. */
#ifndef PORTICO_FILTERS_CACHE_STORE_H
#define PORTICO_FILTERS_CACHE_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Everything about a stored response except its bytes. Plain data: the
 * disk tier writes it as it is (CACHE_META_VERSION guards the layout). */
#define CACHE_META_VERSION 1
#define CACHE_F_VARY 1u           /* a Vary marker: head holds the lowercase field names, ",\n"-free, comma separated */
#define CACHE_F_MUST_REVALIDATE 2u /* must-revalidate / proxy-revalidate / s-maxage: never served stale */
#define CACHE_F_NO_CACHE 4u       /* no-cache: revalidate before every use */
#define CACHE_F_ENCODED 8u        /* body is content-coded by portico (compressed variant) */
struct cache_meta {
    uint32_t version;
    uint32_t flags;          /* CACHE_F_* */
    int32_t status;
    int32_t pad;
    int64_t request_time;    /* wall seconds: request sent to the origin */
    int64_t response_time;   /* wall seconds: response head received */
    int64_t date;            /* the response's Date (or response_time) */
    int64_t initial_age;     /* corrected_initial_age (RFC 9111 4.2.3) */
    int64_t lifetime;        /* freshness lifetime, seconds */
    int64_t swr;             /* stale-while-revalidate seconds (0 = none) */
    int64_t sie;             /* stale-if-error seconds (0 = none) */
};

/* One stored response. Immutable once inserted (a revalidated response is
 * inserted as a new object); shared by reference count. */
struct cache_obj {
    atomic_uint refs;
    struct cache_meta meta;
    char *key;
    size_t key_len;
    char *head;        /* header lines "Name: value\r\n" as served, without framing fields */
    size_t head_len;
    uint8_t *body;
    size_t body_len;
    size_t body_cap;
    size_t charge;     /* bytes counted against the memory limit */
    void *priv;        /* the store's bookkeeping */
};

/* Counters, read with atomic_load from any thread. inserts: successful
 * cache_insert calls; evictions: objects dropped for space, from memory (LRU)
 * or from disk (least recently written or read files, also at start-up);
 * purged: objects removed by cache_remove / cache_purge (one in both tiers
 * counts once); disk_reads: objects read back from files; disk_writes: files
 * written; disk_errors: failed file operations, writes dropped because the
 * writer's queue was full, and damaged files found (the first of each kind
 * is logged). mem_bytes / mem_objects: the charges and the number of objects
 * in memory; disk_bytes / disk_objects: the sizes and number of indexed
 * files. */
struct cache_stats {
    atomic_ulong inserts, evictions, purged, disk_reads, disk_writes, disk_errors;
    atomic_ulong mem_bytes, mem_objects, disk_bytes, disk_objects;
};

struct cache_store;

/* Opens the store: mem_bytes of memory; disk_path (NULL = no disk tier)
 * holding up to disk_bytes, created when missing and indexed now (objects
 * written by an earlier run come back). NULL with a message in err. A
 * directory serves one store at a time (it is locked until cache_store_free):
 * free the old store before opening a new one on the same path. Objects
 * larger than an eighth of disk_bytes stay in memory only. Every other
 * function may be called from any thread, concurrently. */
struct cache_store *cache_store_new(uint64_t mem_bytes, const char *disk_path,
                                    uint64_t disk_bytes, char *err, size_t errlen);
/* Stops the disk writer (pending writes are finished) and frees everything.
 * No other call may be running; references held by readers stay valid. */
void cache_store_free(struct cache_store *cs);
const struct cache_stats *cache_store_stats(const struct cache_store *cs);

/* A new, unpublished object (refs = 1) with copies of key, meta (NULL = all
 * zero; version is set to CACHE_META_VERSION) and head; the body starts empty
 * with room for size_hint bytes (capped at 64 MiB: a hint, not a promise). */
struct cache_obj *cache_obj_new(const char *key, size_t key_len, const struct cache_meta *meta,
                                const char *head, size_t head_len, size_t size_hint);
/* Appends body bytes to an unpublished object; -1 (nothing appended) when the
 * body would exceed max bytes. The capacity never grows past max, and the
 * charge follows the capacity. */
int cache_obj_append(struct cache_obj *o, const void *data, size_t len, size_t max);
void cache_obj_ref(struct cache_obj *o);
void cache_obj_put(struct cache_obj *o);

/* The object stored under key (a new reference), or NULL. Looks in memory,
 * then on disk (a disk hit is brought back into memory). Marks it recently
 * used. Expired objects are returned too: freshness is the caller's call. */
struct cache_obj *cache_lookup(struct cache_store *cs, const char *key, size_t key_len);
/* Publishes o under its key (the store takes its own reference), replacing
 * any object with that key, evicting least recently used objects to fit, and
 * queueing a disk write when there is a disk tier. An object larger than an
 * eighth of the memory limit is refused (returns -1). Eviction is per shard
 * of the key space: the least recently used object of the key's shard goes.
 * When the caller holds the only reference, the body's unused capacity is
 * released first (body may move), so the charge is what the object holds. */
int cache_insert(struct cache_store *cs, struct cache_obj *o);
/* Removes key (memory and disk). Returns true when something was removed. */
bool cache_remove(struct cache_store *cs, const char *key, size_t key_len);
/* Removes every object whose key starts with prefix (len 0 = all), and also,
 * with exact = true, only key itself plus its variants (keys that start with
 * key followed by '\n'). Returns the number of responses removed
 * (Vary markers, flagged CACHE_F_VARY, are removed but not counted). */
size_t cache_purge(struct cache_store *cs, const char *key, size_t len, bool exact);

/* Fill claims (request collapsing). Returns true when the caller now holds
 * the claim for key: it must end it with cache_fill_release (after inserting
 * or giving up). Returns false when another holder claimed it less than
 * lock_ms ago (a claim older than that is taken over). Claims carry no
 * owner: a release ends the key's claim whoever holds it, and a claim call
 * also drops the shard's claims older than its lock_ms, so an abandoned
 * claim does not stay. now_ms is any monotonic millisecond clock. */
bool cache_fill_claim(struct cache_store *cs, const char *key, size_t key_len, uint64_t now_ms,
                      uint64_t lock_ms);
void cache_fill_release(struct cache_store *cs, const char *key, size_t key_len);
/* True while a claim younger than lock_ms exists for key. */
bool cache_fill_busy(struct cache_store *cs, const char *key, size_t key_len, uint64_t now_ms,
                     uint64_t lock_ms);

/* The process-wide store used by the proxy (NULL when caching is unused). */
extern struct cache_store *g_cache_store;

#endif
