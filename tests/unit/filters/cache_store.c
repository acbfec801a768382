/* Unit tests for filters/cache_store.c and cache_disk.c: the memory tier (lookup, replace,
 * references, LRU, byte accounting, limits, purge), fill claims, the disk
 * tier (persistence across stores, damaged files, limit, purge) and a
 * multi-threaded run whose stats must add up. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "filters/cache_store.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

static uint8_t pattern(uint64_t seed, size_t i)
{
    return (uint8_t)((seed * 2654435761u + i * 131u + (i >> 8)) % 251u);
}

/* An object whose body is derived from seed, so any reader can verify it:
 * meta.date holds the seed and meta.lifetime the body length. */
static struct cache_obj *mk(const char *key, uint64_t seed, size_t len)
{
    struct cache_meta m = {0};
    m.status = 200;
    m.date = (int64_t)seed;
    m.lifetime = (int64_t)len;
    m.request_time = 1000;
    m.response_time = 1001;
    m.swr = 7;
    m.flags = CACHE_F_NO_CACHE;
    char head[64];
    int hl = snprintf(head, sizeof(head), "X-Seed: %llu\r\n", (unsigned long long)seed);
    struct cache_obj *o = cache_obj_new(key, strlen(key), &m, head, (size_t)hl, len);
    uint8_t buf[4096];
    size_t off = 0;
    while (off < len) {
        size_t n = MIN(sizeof(buf), len - off);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(seed, off + i);
        cr_assert_eq(cache_obj_append(o, buf, n, len), 0);
        off += n;
    }
    return o;
}

/* Returns the seed after checking that o is an intact object for key. */
static uint64_t check_obj(const struct cache_obj *o, const char *key)
{
    cr_assert_not_null(o);
    cr_assert_eq(o->key_len, strlen(key));
    cr_assert_eq(memcmp(o->key, key, o->key_len), 0, "key %s", key);
    uint64_t seed = (uint64_t)o->meta.date;
    cr_assert_eq(o->body_len, (size_t)o->meta.lifetime, "%s: body length", key);
    char head[64];
    int hl = snprintf(head, sizeof(head), "X-Seed: %llu\r\n", (unsigned long long)seed);
    cr_assert_eq(o->head_len, (size_t)hl);
    cr_assert_eq(memcmp(o->head, head, (size_t)hl), 0);
    for (size_t i = 0; i < o->body_len; i++)
        if (o->body[i] != pattern(seed, i))
            cr_assert_fail("%s: body byte %zu differs", key, i);
    return seed;
}

static unsigned long st(unsigned long v)
{
    return v;
}
#define STAT(cs, f) st(atomic_load(&cache_store_stats(cs)->f))

static struct cache_store *mem_store(uint64_t bytes)
{
    char err[256] = "";
    struct cache_store *cs = cache_store_new(bytes, NULL, 0, err, sizeof(err));
    cr_assert_not_null(cs, "%s", err);
    return cs;
}

static struct cache_store *disk_store(uint64_t mem, const char *dir, uint64_t disk)
{
    char err[256] = "";
    struct cache_store *cs = cache_store_new(mem, dir, disk, err, sizeof(err));
    cr_assert_not_null(cs, "%s", err);
    return cs;
}

static bool present(struct cache_store *cs, const char *key)
{
    struct cache_obj *o = cache_lookup(cs, key, strlen(key));
    if (o) {
        check_obj(o, key);
        cache_obj_put(o);
    }
    return o != NULL;
}

static void insert(struct cache_store *cs, const char *key, uint64_t seed, size_t len)
{
    struct cache_obj *o = mk(key, seed, len);
    cr_assert_eq(cache_insert(cs, o), 0, "insert %s", key);
    cache_obj_put(o);
}

/* Temporary directories. */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/portico-cache-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Also the .fini of every test that makes one: runs after a failed
 * assertion too, so no directory is left behind. */
static void rm_tmpdir(void)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

static bool is_hex_name(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == 16;
}

/* Counts the object files (16 hex digits) in dir; copies the last name seen. */
static size_t count_objects(const char *dir, char *last, size_t last_len)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (is_hex_name(de->d_name)) {
            n++;
            if (last && last_len > 16)
                memcpy(last, de->d_name, 17); /* 16 digits and the NUL */
        }
    }
    closedir(d);
    return n;
}

static bool exists_in(const char *dir, const char *name)
{
    char p[256];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return lstat(p, &sb) == 0;
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static size_t read_file(const char *dir, const char *name, uint8_t *buf, size_t cap)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0);
    ssize_t n = read(fd, buf, cap);
    cr_assert_gt(n, 0);
    close(fd);
    return (size_t)n;
}

/* Waits (bounded) until the writer has completed n writes in total. */
static void wait_writes(struct cache_store *cs, unsigned long n)
{
    for (int i = 0; i < 5000 && STAT(cs, disk_writes) < n; i++)
        usleep(2000);
    cr_assert_eq(STAT(cs, disk_writes), n, "disk writes");
}

/* ------------------------------------------------------------------------ */
/* Memory tier. */

Test(cache_store, insert_lookup_replace)
{
    struct cache_store *cs = mem_store(4 * MIB);
    cr_assert_null(cache_lookup(cs, "GET a", 5));
    struct cache_obj *o = mk("GET a", 1, 100);
    cr_assert_eq(cache_insert(cs, o), 0);
    struct cache_obj *l = cache_lookup(cs, "GET a", 5);
    cr_assert_eq(l, o, "the stored object itself");
    cr_assert_eq(atomic_load(&o->refs), 3, "caller, store, lookup");
    cache_obj_put(l);
    cr_assert_null(cache_lookup(cs, "GET ", 4), "no prefix match");
    cr_assert_null(cache_lookup(cs, "GET ab", 6));
    cr_assert_eq(STAT(cs, mem_objects), 1);
    cr_assert_eq(STAT(cs, mem_bytes), o->charge);
    cr_assert_geq(o->charge, 100 + 5 + o->head_len);

    struct cache_obj *o2 = mk("GET a", 2, 300);
    cr_assert_eq(cache_insert(cs, o2), 0);
    cr_assert_eq(atomic_load(&o->refs), 1, "the store dropped the replaced object");
    l = cache_lookup(cs, "GET a", 5);
    cr_assert_eq(l, o2);
    cr_assert_eq(check_obj(l, "GET a"), 2);
    cr_assert_eq(l->meta.version, CACHE_META_VERSION);
    cr_assert_eq(l->meta.swr, 7);
    cache_obj_put(l);
    cr_assert_eq(STAT(cs, mem_objects), 1);
    cr_assert_eq(STAT(cs, mem_bytes), o2->charge);
    cr_assert_eq(STAT(cs, inserts), 2);
    cr_assert_eq(STAT(cs, evictions), 0);

    /* An empty body and an empty key are objects too. */
    struct cache_obj *e = cache_obj_new("", 0, NULL, NULL, 0, 0);
    cr_assert_eq(cache_insert(cs, e), 0);
    l = cache_lookup(cs, "", 0);
    cr_assert_eq(l, e);
    cr_assert_eq(l->body_len, 0);
    cache_obj_put(l);
    cache_obj_put(e);
    cache_obj_put(o);
    cache_obj_put(o2);
    cache_store_free(cs);
}

Test(cache_store, refcount_survives_removal)
{
    struct cache_store *cs = mem_store(4 * MIB);
    insert(cs, "k", 9, 5000);
    struct cache_obj *held = cache_lookup(cs, "k", 1);
    cr_assert_not_null(held);
    cr_assert(cache_remove(cs, "k", 1));
    cr_assert_not(cache_remove(cs, "k", 1), "already gone");
    cr_assert_null(cache_lookup(cs, "k", 1));
    cr_assert_eq(atomic_load(&held->refs), 1, "only the reader's reference is left");
    check_obj(held, "k"); /* still readable (ASan would catch a free) */
    cr_assert_eq(STAT(cs, mem_objects), 0);
    cr_assert_eq(STAT(cs, mem_bytes), 0);
    cr_assert_eq(STAT(cs, purged), 1);
    /* Readers also survive the store itself. */
    insert(cs, "k2", 3, 10);
    struct cache_obj *h2 = cache_lookup(cs, "k2", 2);
    cache_store_free(cs);
    check_obj(h2, "k2");
    cache_obj_put(h2);
    cache_obj_put(held);
}

Test(cache_store, lru_eviction_and_bytes)
{
    /* 256 KiB: one shard, so the LRU order is global. */
    struct cache_store *cs = mem_store(256 * KIB);
    /* Keys and seeds of one width: every object has the same charge. */
    struct cache_obj *probe = mk("k00", 10, 20000);
    size_t charge = probe->charge;
    cache_obj_put(probe);
    size_t fit = (256 * KIB) / charge;
    cr_assert_geq(fit, 4);
    char key[16];
    for (size_t i = 0; i < fit; i++) {
        snprintf(key, sizeof(key), "k%02zu", i);
        insert(cs, key, 10 + i, 20000);
    }
    cr_assert_eq(STAT(cs, mem_objects), fit);
    cr_assert_eq(STAT(cs, mem_bytes), fit * charge);
    cr_assert_eq(STAT(cs, evictions), 0);
    /* Touch k00: k01 becomes the least recently used. */
    cr_assert(present(cs, "k00"));
    snprintf(key, sizeof(key), "k%02zu", fit);
    insert(cs, key, 10 + fit, 20000);
    cr_assert_eq(STAT(cs, evictions), 1);
    cr_assert(present(cs, "k00"));
    cr_assert_not(present(cs, "k01"), "the LRU object was evicted");
    cr_assert(present(cs, "k02"));
    cr_assert(present(cs, key));
    cr_assert_eq(STAT(cs, mem_objects), fit);
    cr_assert_eq(STAT(cs, mem_bytes), fit * charge);
    cr_assert_leq(STAT(cs, mem_bytes), 256 * KIB);
    /* Next in line: k03 (k02 and k00 were just used). */
    insert(cs, "kxx", 99, 20000);
    cr_assert_eq(STAT(cs, evictions), 2);
    cr_assert_eq(STAT(cs, mem_bytes), fit * charge);
    cr_assert_not(present(cs, "k03"));
    cr_assert(present(cs, "k02"));

    cr_assert_eq(cache_purge(cs, NULL, 0, false), fit);
    cr_assert_eq(STAT(cs, mem_bytes), 0);
    cr_assert_eq(STAT(cs, mem_objects), 0);
    cr_assert_eq(STAT(cs, purged), fit);
    cache_store_free(cs);
}

Test(cache_store, sharded_limit_holds)
{
    /* 16 MiB: eight shards of 2 MiB; the largest object (2 MiB) still fits. */
    struct cache_store *cs = mem_store(16 * MIB);
    char key[32];
    unsigned long ok = 0;
    for (int i = 0; i < 600; i++) {
        snprintf(key, sizeof(key), "obj/%d", i);
        insert(cs, key, (uint64_t)i, 50000);
        ok++;
        cr_assert_leq(STAT(cs, mem_bytes), 16 * MIB);
    }
    cr_assert_gt(STAT(cs, evictions), 0);
    cr_assert_eq(STAT(cs, inserts), ok);
    cr_assert_eq(STAT(cs, mem_objects) + STAT(cs, evictions), ok);
    struct cache_obj *big = mk("big", 5, 2 * MIB - 4096);
    cr_assert_leq(big->charge, 2 * MIB);
    cr_assert_eq(cache_insert(cs, big), 0);
    cache_obj_put(big);
    cr_assert(present(cs, "big"));
    cr_assert_leq(STAT(cs, mem_bytes), 16 * MIB);
    cache_store_free(cs);
}

Test(cache_store, too_large_refused)
{
    struct cache_store *cs = mem_store(256 * KIB);
    struct cache_obj *o = mk("big", 1, 40000); /* > 256 KiB / 8 */
    cr_assert_eq(cache_insert(cs, o), -1);
    cr_assert_eq(atomic_load(&o->refs), 1, "the store took no reference");
    cr_assert_null(cache_lookup(cs, "big", 3));
    cr_assert_eq(STAT(cs, inserts), 0);
    cr_assert_eq(STAT(cs, mem_bytes), 0);
    cache_obj_put(o);
    /* Just under an eighth is accepted. */
    o = mk("ok", 1, 30000);
    cr_assert_leq(o->charge, 32 * KIB);
    cr_assert_eq(cache_insert(cs, o), 0);
    cache_obj_put(o);
    cr_assert(present(cs, "ok"));
    cache_store_free(cs);
}

Test(cache_store, append_respects_max)
{
    struct cache_obj *o = cache_obj_new("k", 1, NULL, "A: b\r\n", 6, 0);
    cr_assert_eq(o->head_len, 6);
    cr_assert_eq(memcmp(o->head, "A: b\r\n", 6), 0);
    size_t c0 = o->charge;
    cr_assert_eq(cache_obj_append(o, "0123456789", 10, 15), 0);
    cr_assert_eq(o->body_len, 10);
    cr_assert_leq(o->body_cap, 15, "never more room than max");
    cr_assert_gt(o->charge, c0, "the charge follows the capacity");
    cr_assert_eq(cache_obj_append(o, "0123456789", 10, 15), -1);
    cr_assert_eq(o->body_len, 10, "nothing appended");
    cr_assert_eq(cache_obj_append(o, "abcde", 5, 15), 0, "exactly max is fine");
    cr_assert_eq(o->body_len, 15);
    cr_assert_eq(memcmp(o->body, "0123456789abcde", 15), 0);
    cr_assert_eq(cache_obj_append(o, "x", 1, 15), -1);
    cr_assert_eq(cache_obj_append(o, "", 0, 15), 0);
    cr_assert_eq(cache_obj_append(o, "x", 1, SIZE_MAX), 0, "no overflow");
    cache_obj_put(o);

    /* size_hint sizes the body once. */
    o = cache_obj_new("k", 1, NULL, NULL, 0, 1000);
    cr_assert_eq(o->body_cap, 1000);
    char buf[1000] = {0};
    cr_assert_eq(cache_obj_append(o, buf, 1000, 1000), 0);
    cr_assert_eq(o->body_cap, 1000);
    cache_obj_put(o);
}

Test(cache_store, insert_releases_unused_room)
{
    struct cache_store *cs = mem_store(4 * MIB);
    struct cache_obj *o = cache_obj_new("k", 1, NULL, NULL, 0, 16384);
    cr_assert_eq(cache_obj_append(o, "hello", 5, 100), 0);
    size_t before = o->charge;
    cr_assert_eq(cache_insert(cs, o), 0);
    cr_assert_eq(o->body_cap, 5);
    cr_assert_eq(o->charge, before - 16379);
    cr_assert_eq(STAT(cs, mem_bytes), o->charge);
    cr_assert_eq(memcmp(o->body, "hello", 5), 0);
    cache_obj_put(o);
    /* Refused while large, accepted once trimmed: the limit is on the bytes. */
    struct cache_store *small = mem_store(256 * KIB);
    o = cache_obj_new("k", 1, NULL, NULL, 0, 40000);
    cr_assert_eq(cache_insert(small, o), 0);
    cr_assert_eq(o->body_cap, 0);
    /* Shared objects are left as they are. */
    struct cache_obj *s = cache_obj_new("s", 1, NULL, NULL, 0, 8000);
    cache_obj_ref(s);
    cr_assert_eq(cache_insert(cs, s), 0);
    cr_assert_eq(s->body_cap, 8000);
    cache_obj_put(s);
    cache_obj_put(s);
    cache_obj_put(o);
    cache_store_free(small);
    cache_store_free(cs);
}

Test(cache_store, purge_exact_and_variants)
{
    struct cache_store *cs = mem_store(4 * MIB);
    const char *keys[] = {"key", "key\ngzip", "key\nbr", "key2", "ke", "kkey"};
    for (size_t i = 0; i < 6; i++)
        insert(cs, keys[i], i, 100);
    cr_assert_eq(cache_purge(cs, "key", 3, true), 3);
    cr_assert_not(present(cs, "key"));
    cr_assert_not(present(cs, "key\ngzip"));
    cr_assert_not(present(cs, "key\nbr"));
    cr_assert(present(cs, "key2"));
    cr_assert(present(cs, "ke"));
    cr_assert(present(cs, "kkey"));
    cr_assert_eq(cache_purge(cs, "key", 3, true), 0);
    /* Variants without the base object go too. */
    insert(cs, "key\nzstd", 1, 10);
    cr_assert_eq(cache_purge(cs, "key", 3, true), 1);
    cr_assert_eq(STAT(cs, mem_objects), 3);
    cr_assert_eq(STAT(cs, purged), 4);
    cache_store_free(cs);
}

Test(cache_store, purge_prefix)
{
    struct cache_store *cs = mem_store(4 * MIB);
    const char *keys[] = {"https://a/1", "https://a/2", "https://a/2\ngzip", "https://b/1",
                          "https://a"};
    for (size_t i = 0; i < 5; i++)
        insert(cs, keys[i], i, 100);
    cr_assert_eq(cache_purge(cs, "https://a/", 10, false), 3);
    cr_assert_not(present(cs, "https://a/1"));
    cr_assert_not(present(cs, "https://a/2\ngzip"));
    cr_assert(present(cs, "https://b/1"));
    cr_assert(present(cs, "https://a"));
    cr_assert_eq(STAT(cs, mem_objects), 2);
    cache_store_free(cs);
}

Test(cache_store, purge_all)
{
    struct cache_store *cs = mem_store(16 * MIB);
    char key[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        insert(cs, key, (uint64_t)i, (size_t)i * 10);
    }
    cr_assert_eq(STAT(cs, mem_objects), 300);
    cr_assert_eq(cache_purge(cs, "", 0, false), 300);
    cr_assert_eq(STAT(cs, mem_objects), 0);
    cr_assert_eq(STAT(cs, mem_bytes), 0);
    cr_assert_not(present(cs, "k1"));
    cr_assert_eq(cache_purge(cs, NULL, 0, false), 0);
    insert(cs, "again", 1, 10);
    cr_assert(present(cs, "again"));
    cache_store_free(cs);
}

Test(cache_store, fill_claims)
{
    struct cache_store *cs = mem_store(4 * MIB);
    cr_assert_not(cache_fill_busy(cs, "k", 1, 1000, 500));
    cr_assert(cache_fill_claim(cs, "k", 1, 1000, 500));
    cr_assert(cache_fill_busy(cs, "k", 1, 1100, 500));
    cr_assert_not(cache_fill_claim(cs, "k", 1, 1100, 500), "held by another");
    cr_assert_not(cache_fill_busy(cs, "k2", 2, 1100, 500));
    cr_assert_not(cache_fill_busy(cs, "", 0, 1100, 500));
    cr_assert(cache_fill_claim(cs, "k2", 2, 1100, 500), "another key is independent");
    cache_fill_release(cs, "k", 1);
    cr_assert_not(cache_fill_busy(cs, "k", 1, 1100, 500));
    cr_assert(cache_fill_busy(cs, "k2", 2, 1100, 500), "release is per key");
    cr_assert(cache_fill_claim(cs, "k", 1, 1200, 500));
    /* A clock a little behind the claim's still counts as busy. */
    cr_assert(cache_fill_busy(cs, "k", 1, 1199, 500));
    cr_assert_not(cache_fill_claim(cs, "k", 1, 1699, 500));
    /* lock_ms after the claim: stale, taken over, and busy again from there. */
    cr_assert_not(cache_fill_busy(cs, "k", 1, 1700, 500));
    cr_assert(cache_fill_claim(cs, "k", 1, 1700, 500));
    cr_assert(cache_fill_busy(cs, "k", 1, 1701, 500));
    cr_assert_not(cache_fill_claim(cs, "k", 1, 2100, 500));
    cache_fill_release(cs, "k", 1);
    cache_fill_release(cs, "k", 1); /* harmless */
    cache_fill_release(cs, "nothing", 7);
    cr_assert_not(cache_fill_busy(cs, "k", 1, 2100, 500));
    /* Many abandoned claims: swept by later claims, freed with the store
     * (the ASan run checks nothing leaks). */
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "abandoned%d", i);
        cr_assert(cache_fill_claim(cs, key, strlen(key), 3000, 500));
    }
    cr_assert(cache_fill_claim(cs, "late", 4, 9000, 500));
    cr_assert_not(cache_fill_busy(cs, "abandoned1", 10, 9000, 500));
    cr_assert(cache_fill_claim(cs, "abandoned1", 10, 9000, 500));
    cache_store_free(cs);
}

Test(cache_store, bad_arguments, .fini = rm_tmpdir)
{
    char err[256] = "";
    cr_assert_null(cache_store_new(0, NULL, 0, err, sizeof(err)));
    cr_assert_neq(err[0], '\0');
    make_tmpdir();
    char file[128];
    snprintf(file, sizeof(file), "%s/plainfile", tmpdir);
    write_file(tmpdir, "plainfile", "x", 1);
    err[0] = '\0';
    cr_assert_null(cache_store_new(MIB, file, MIB, err, sizeof(err)), "not a directory");
    cr_assert(strstr(err, "plainfile"), "%s", err);
    snprintf(file, sizeof(file), "%s/no/such/parent", tmpdir);
    err[0] = '\0';
    cr_assert_null(cache_store_new(MIB, file, MIB, err, sizeof(err)));
    cr_assert(strstr(err, "cannot create"), "%s", err);
    rm_tmpdir();
}

/* ------------------------------------------------------------------------ */
/* Disk tier. */

Test(cache_store, disk_roundtrip, .fini = rm_tmpdir)
{
    make_tmpdir();
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/cache", tmpdir); /* created by the store */
    struct cache_store *cs = disk_store(4 * MIB, dir, 64 * MIB);
    struct cache_obj *o = mk("GET https://h/x", 77, 100000);
    o->meta.flags = CACHE_F_VARY | CACHE_F_ENCODED;
    o->meta.sie = 123;
    o->meta.initial_age = 5;
    cr_assert_eq(cache_insert(cs, o), 0);
    insert(cs, "GET https://h/empty", 1, 0);
    wait_writes(cs, 2);
    cr_assert_eq(STAT(cs, disk_objects), 2);
    cr_assert_gt(STAT(cs, disk_bytes), 100000);
    unsigned long bytes = STAT(cs, disk_bytes);
    cache_store_free(cs);
    cr_assert_eq(count_objects(dir, NULL, 0), 2);

    cs = disk_store(4 * MIB, dir, 64 * MIB);
    cr_assert_eq(STAT(cs, disk_objects), 2);
    cr_assert_eq(STAT(cs, disk_bytes), bytes);
    cr_assert_eq(STAT(cs, mem_objects), 0);
    struct cache_obj *l = cache_lookup(cs, "GET https://h/x", 15);
    cr_assert_not_null(l);
    cr_assert_neq(l, o);
    cr_assert_eq(memcmp(&l->meta, &o->meta, sizeof(o->meta)), 0, "identical meta");
    cr_assert_eq(l->head_len, o->head_len);
    cr_assert_eq(memcmp(l->head, o->head, o->head_len), 0);
    cr_assert_eq(l->body_len, o->body_len);
    cr_assert_eq(memcmp(l->body, o->body, o->body_len), 0);
    cr_assert_eq(STAT(cs, disk_reads), 1);
    cr_assert_eq(STAT(cs, mem_objects), 1, "brought back into memory");
    cr_assert_eq(STAT(cs, disk_writes), 0, "and not written again");
    struct cache_obj *l2 = cache_lookup(cs, "GET https://h/x", 15);
    cr_assert_eq(l2, l, "second lookup from memory");
    cr_assert_eq(STAT(cs, disk_reads), 1);
    cache_obj_put(l2);
    cache_obj_put(l);
    cr_assert(present(cs, "GET https://h/empty"));
    cr_assert_not(present(cs, "GET https://h/y"));
    cr_assert_eq(STAT(cs, disk_errors), 0);
    cache_obj_put(o);
    cache_store_free(cs);
    rm_tmpdir();
}

Test(cache_store, disk_replace_and_remove, .fini = rm_tmpdir)
{
    make_tmpdir();
    struct cache_store *cs = disk_store(4 * MIB, tmpdir, 64 * MIB);
    char err[256] = "";
    cr_assert_null(cache_store_new(MIB, tmpdir, MIB, err, sizeof(err)), "one store per directory");
    cr_assert(strstr(err, "in use"), "%s", err);
    insert(cs, "k", 1, 1000);
    wait_writes(cs, 1);
    insert(cs, "k", 2, 2000); /* replaces the file */
    wait_writes(cs, 2);
    cr_assert_eq(STAT(cs, disk_objects), 1);
    insert(cs, "gone", 3, 10);
    cr_assert(cache_remove(cs, "gone", 4)); /* whether or not its write ran yet */
    cache_store_free(cs);

    cs = disk_store(4 * MIB, tmpdir, 64 * MIB);
    cr_assert_eq(STAT(cs, disk_objects), 1);
    struct cache_obj *l = cache_lookup(cs, "k", 1);
    cr_assert_eq(check_obj(l, "k"), 2, "the newer version");
    cache_obj_put(l);
    cr_assert_not(present(cs, "gone"));
    /* Removing a disk-only object. */
    cr_assert(cache_remove(cs, "k", 1));
    cr_assert_eq(STAT(cs, disk_objects), 0);
    cr_assert_eq(STAT(cs, disk_bytes), 0);
    cr_assert_not(present(cs, "k"));
    cache_store_free(cs);
    cr_assert_eq(count_objects(tmpdir, NULL, 0), 0);
    rm_tmpdir();
}

Test(cache_store, disk_skips_damaged_and_foreign_files, .fini = rm_tmpdir)
{
    make_tmpdir();
    struct cache_store *cs = disk_store(4 * MIB, tmpdir, 64 * MIB);
    insert(cs, "good", 5, 3000);
    wait_writes(cs, 1);
    cache_store_free(cs);
    char good[32];
    cr_assert_eq(count_objects(tmpdir, good, sizeof(good)), 1);
    static uint8_t buf[8192];
    size_t n = read_file(tmpdir, good, buf, sizeof(buf));

    write_file(tmpdir, "0123456789abcdef", "garbage", 7);
    write_file(tmpdir, "fedcba9876543210", buf, n - 1); /* truncated */
    write_file(tmpdir, "aaaaaaaaaaaaaaaa", buf, n);     /* valid, but not its name */
    buf[0] ^= 0xff;
    write_file(tmpdir, "bbbbbbbbbbbbbbbb", buf, n); /* bad magic */
    buf[0] ^= 0xff;
    buf[8] ^= 0x40; /* the format version, right after the 8-byte magic */
    write_file(tmpdir, "dddddddddddddddd", buf, n);
    buf[8] ^= 0x40;
    write_file(tmpdir, ".tmp-0123456789abcdef-3", buf, n);
    write_file(tmpdir, "README", "mine", 4);
    write_file(tmpdir, "0123456789ABCDEF", "upper case: not ours", 20);
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/cccccccccccccccc", tmpdir);
    cr_assert_eq(mkdir(sub, 0700), 0);

    cs = disk_store(4 * MIB, tmpdir, 64 * MIB);
    cr_assert_eq(STAT(cs, disk_objects), 1);
    cr_assert_eq(STAT(cs, disk_bytes), n);
    cr_assert_eq(STAT(cs, disk_errors), 4, "four damaged object files (another version: no error)");
    cr_assert_not(exists_in(tmpdir, "dddddddddddddddd"));
    cr_assert_not(exists_in(tmpdir, "0123456789abcdef"));
    cr_assert_not(exists_in(tmpdir, "fedcba9876543210"));
    cr_assert_not(exists_in(tmpdir, "aaaaaaaaaaaaaaaa"));
    cr_assert_not(exists_in(tmpdir, "bbbbbbbbbbbbbbbb"));
    cr_assert_not(exists_in(tmpdir, ".tmp-0123456789abcdef-3"));
    cr_assert(exists_in(tmpdir, "README"), "foreign files are left alone");
    cr_assert(exists_in(tmpdir, "0123456789ABCDEF"));
    cr_assert(exists_in(tmpdir, "cccccccccccccccc"));
    cr_assert(exists_in(tmpdir, good));
    cr_assert(present(cs, "good"));
    cache_store_free(cs);

    /* Damaged after indexing: a miss, counted, and the file goes. */
    cs = disk_store(4 * MIB, tmpdir, 64 * MIB);
    buf[0] ^= 0xff;
    write_file(tmpdir, good, buf, n);
    cr_assert_not(present(cs, "good"));
    cr_assert_eq(STAT(cs, disk_errors), 1);
    cr_assert_eq(STAT(cs, disk_objects), 0);
    cr_assert_eq(STAT(cs, disk_reads), 0);
    cache_store_free(cs);
    cr_assert_not(exists_in(tmpdir, good));
    rm_tmpdir();
}

Test(cache_store, disk_limit, .fini = rm_tmpdir)
{
    make_tmpdir();
    /* The file size of one object, as the store counts it. */
    struct cache_store *cs = disk_store(4 * MIB, tmpdir, 16 * KIB);
    insert(cs, "k00", 10, 900); /* seeds of two digits: one file size */
    wait_writes(cs, 1);
    unsigned long fsize = STAT(cs, disk_bytes);
    cr_assert_gt(fsize, 900);
    char key[16];
    for (int i = 1; i < 40; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        insert(cs, key, 10 + (uint64_t)i, 900);
    }
    wait_writes(cs, 40);
    unsigned long objs = STAT(cs, disk_objects);
    cr_assert_leq(STAT(cs, disk_bytes), 16 * KIB);
    cr_assert_eq(objs, (16 * KIB) / fsize, "as many as fit");
    cr_assert_eq(STAT(cs, disk_bytes), objs * fsize);
    cr_assert_eq(STAT(cs, evictions), 40 - objs, "disk evictions (memory held everything)");
    cr_assert_eq(STAT(cs, mem_objects), 40);
    /* Objects larger than an eighth of the disk limit stay in memory. */
    insert(cs, "huge", 1, 4 * KIB);
    cache_store_free(cs);
    cr_assert_eq(count_objects(tmpdir, NULL, 0), objs);

    cs = disk_store(4 * MIB, tmpdir, 16 * KIB);
    cr_assert_eq(STAT(cs, disk_objects), objs);
    cr_assert(present(cs, "k39"), "the newest survived");
    cr_assert_not(present(cs, "k00"), "the oldest did not");
    cr_assert_not(present(cs, "huge"));
    cache_store_free(cs);
    rm_tmpdir();
}

Test(cache_store, disk_limit_at_open_keeps_newest, .fini = rm_tmpdir)
{
    make_tmpdir();
    struct cache_store *cs = disk_store(4 * MIB, tmpdir, MIB);
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "old%02d", i);
        insert(cs, key, (uint64_t)i, 500);
    }
    wait_writes(cs, 10);
    unsigned long fsize = STAT(cs, disk_bytes) / 10;
    usleep(50000); /* distinct mtimes for the newer files */
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "new%02d", i);
        insert(cs, key, (uint64_t)i, 500);
    }
    wait_writes(cs, 13);
    cache_store_free(cs);

    cs = disk_store(4 * MIB, tmpdir, 3 * fsize + fsize / 2);
    cr_assert_eq(STAT(cs, disk_objects), 3);
    cr_assert_eq(STAT(cs, evictions), 10);
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "new%02d", i);
        cr_assert(present(cs, key), "%s", key);
    }
    cr_assert_not(present(cs, "old09"));
    cache_store_free(cs);
    cr_assert_eq(count_objects(tmpdir, NULL, 0), 3);
    rm_tmpdir();
}

Test(cache_store, disk_purge_deletes_files, .fini = rm_tmpdir)
{
    make_tmpdir();
    struct cache_store *cs = disk_store(4 * MIB, tmpdir, 64 * MIB);
    const char *keys[] = {"a/1", "a/2", "b/1", "x", "x\nv1", "x2", "y"};
    for (size_t i = 0; i < 7; i++)
        insert(cs, keys[i], i, 300);
    wait_writes(cs, 7);
    cr_assert_eq(cache_purge(cs, "a/", 2, false), 2, "objects in both tiers count once");
    cr_assert_eq(cache_purge(cs, "x", 1, true), 2);
    cr_assert(cache_remove(cs, "b/1", 3));
    cr_assert_eq(STAT(cs, disk_objects), 2);
    cr_assert_eq(STAT(cs, mem_objects), 2);
    cr_assert_not(present(cs, "a/1"));
    cr_assert_not(present(cs, "x\nv1"));
    cache_store_free(cs);
    cr_assert_eq(count_objects(tmpdir, NULL, 0), 2);

    cs = disk_store(4 * MIB, tmpdir, 64 * MIB);
    cr_assert_not(present(cs, "a/1"));
    cr_assert_not(present(cs, "a/2"));
    cr_assert_not(present(cs, "b/1"));
    cr_assert_not(present(cs, "x"));
    cr_assert_not(present(cs, "x\nv1"));
    cr_assert(present(cs, "x2"));
    /* A disk-only object (not looked up since the restart) is purged too. */
    cr_assert_eq(cache_purge(cs, "y", 1, true), 1);
    cr_assert_not(present(cs, "y"));
    cr_assert_eq(cache_purge(cs, NULL, 0, false), 1);
    cr_assert_eq(STAT(cs, disk_objects), 0);
    cr_assert_eq(STAT(cs, disk_bytes), 0);
    cr_assert_eq(STAT(cs, mem_objects), 0);
    cache_store_free(cs);
    cr_assert_eq(count_objects(tmpdir, NULL, 0), 0);
    rm_tmpdir();
}

Test(cache_store, disk_every_insert_written_or_dropped, .timeout = 60, .fini = rm_tmpdir)
{
    /* Distinct keys faster than the writer: each insert ends as a file or as
     * a dropped write (counted in disk_errors) once the queue is full. */
    make_tmpdir();
    struct cache_store *cs = disk_store(64 * MIB, tmpdir, 256 * MIB);
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "many/%d", i);
        insert(cs, key, (uint64_t)i, 200);
    }
    for (int i = 0; i < 5000 && STAT(cs, disk_writes) + STAT(cs, disk_errors) < 3000; i++)
        usleep(2000);
    unsigned long written = STAT(cs, disk_writes);
    cr_assert_eq(written + STAT(cs, disk_errors), 3000);
    cr_assert_eq(STAT(cs, disk_objects), written);
    cache_store_free(cs);
    cr_assert_eq(count_objects(tmpdir, NULL, 0), written);
    cs = disk_store(MIB, tmpdir, 256 * MIB);
    cr_assert_eq(STAT(cs, disk_objects), written);
    unsigned long found = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "many/%d", i);
        found += present(cs, key);
    }
    cr_assert_eq(found, written);
    cache_store_free(cs);
}

/* ------------------------------------------------------------------------ */
/* Threads. */

struct mt_arg {
    struct cache_store *cs;
    unsigned seed;
    int ops, keys;
    size_t max_body;
    unsigned long inserts, hits;
};

static void *mt_main(void *p)
{
    struct mt_arg *a = p;
    char key[32];
    for (int i = 0; i < a->ops; i++) {
        unsigned r = (unsigned)rand_r(&a->seed);
        int k = (int)(r % (unsigned)a->keys);
        snprintf(key, sizeof(key), "GET /obj/%d%s", k, (r >> 20) % 4 == 0 ? "\ngzip" : "");
        size_t kl = strlen(key);
        unsigned op = (r >> 8) % 100;
        if (op < 60) {
            struct cache_obj *o = cache_lookup(a->cs, key, kl);
            if (o) {
                check_obj(o, key);
                a->hits++;
                cache_obj_put(o);
            }
        } else if (op < 92) {
            size_t len = (size_t)rand_r(&a->seed) % a->max_body;
            struct cache_obj *o = mk(key, (uint64_t)rand_r(&a->seed), len);
            if (cache_insert(a->cs, o) == 0)
                a->inserts++;
            cache_obj_put(o);
        } else if (op < 95) {
            cache_remove(a->cs, key, kl);
        } else if (op < 99) {
            if (cache_fill_claim(a->cs, key, kl, (uint64_t)i, 50))
                cache_fill_release(a->cs, key, kl);
        } else if ((r >> 24) % 50 != 0) {
            snprintf(key, sizeof(key), "GET /obj/%d", k);
            cache_purge(a->cs, key, strlen(key), true);
        } else { /* rare: each takes out a tenth of the keys */
            snprintf(key, sizeof(key), "GET /obj/%d", k % 10);
            cache_purge(a->cs, key, strlen(key), false);
        }
    }
    return NULL;
}

static unsigned long run_threads(struct cache_store *cs, int ops, int keys, size_t max_body)
{
    pthread_t t[4];
    struct mt_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct mt_arg){cs, 1234u + (unsigned)i * 7919u, ops, keys, max_body, 0, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, mt_main, &a[i]), 0);
    }
    unsigned long inserts = 0, hits = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        inserts += a[i].inserts;
        hits += a[i].hits;
    }
    cr_assert_gt(hits, 0);
    return inserts;
}

/* Counts the objects that a lookup finds, checking each one. */
static unsigned long count_present(struct cache_store *cs, int keys)
{
    char key[32];
    unsigned long n = 0;
    for (int k = 0; k < keys; k++) {
        snprintf(key, sizeof(key), "GET /obj/%d", k);
        n += present(cs, key);
        snprintf(key, sizeof(key), "GET /obj/%d\ngzip", k);
        n += present(cs, key);
    }
    return n;
}

Test(cache_store, threads_memory, .timeout = 120)
{
    /* 8 MiB: eight shards; 1000 keys of up to 48 KiB do not fit, so
     * evictions run alongside everything else. */
    struct cache_store *cs = mem_store(8 * MIB);
    unsigned long inserts = run_threads(cs, 20000, 500, 48 * KIB);
    cr_assert_eq(STAT(cs, inserts), inserts);
    cr_assert_gt(STAT(cs, evictions), 0);
    cr_assert_leq(STAT(cs, mem_bytes), 8 * MIB);
    unsigned long objs = STAT(cs, mem_objects);
    cr_assert_eq(count_present(cs, 500), objs, "mem_objects is what lookups find");
    cr_assert_eq(cache_purge(cs, NULL, 0, false), objs);
    cr_assert_eq(STAT(cs, mem_objects), 0);
    cr_assert_eq(STAT(cs, mem_bytes), 0);
    cache_store_free(cs);
}

Test(cache_store, threads_disk, .timeout = 120, .fini = rm_tmpdir)
{
    make_tmpdir();
    /* A small memory tier so that lookups go to disk often. */
    struct cache_store *cs = disk_store(256 * KIB, tmpdir, 2 * MIB);
    unsigned long inserts = run_threads(cs, 3000, 100, 6 * KIB);
    cr_assert_eq(STAT(cs, inserts), inserts);
    cr_assert_gt(STAT(cs, disk_reads), 0);
    cr_assert_leq(STAT(cs, mem_bytes), 256 * KIB);
    /* Replaced or removed writes leave the queue, so 200 keys never fill
     * it: nothing dropped. */
    cr_assert_eq(STAT(cs, disk_errors), 0);
    cache_store_free(cs);

    cs = disk_store(256 * KIB, tmpdir, 2 * MIB);
    unsigned long files = count_objects(tmpdir, NULL, 0);
    cr_assert_eq(STAT(cs, disk_objects), files, "the index is the directory");
    cr_assert_leq(STAT(cs, disk_bytes), 2 * MIB);
    cr_assert_eq(STAT(cs, disk_errors), 0);
    /* Every indexed file reads back intact. */
    cr_assert_eq(count_present(cs, 100), files);
    cr_assert_eq(STAT(cs, disk_reads), files);
    cr_assert_eq(cache_purge(cs, NULL, 0, false), files);
    cache_store_free(cs);
    cr_assert_eq(count_objects(tmpdir, NULL, 0), 0);
    rm_tmpdir();
}
