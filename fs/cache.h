/*
 * cache.h - the block cache: a byte-budgeted memory cache of object blocks.
 *
 * Chunk objects are immutable, so a block, named by (object key, version,
 * block number), is valid for as long as it is cached.  A block is `block_size` bytes of its
 * object (the last block of an object may be shorter).  Misses become
 * asynchronous ranged GETs on the store's pool; concurrent misses on one
 * block share one GET.  The callback of a request runs either in the caller's
 * thread (hit) or on a pool thread (miss), never while a cache lock is held.
 *
 * Eviction: least recently used blocks that nobody is reading are dropped
 * while the cached bytes exceed the budget.  Blocks being fetched or read
 * count against the budget but cannot be evicted, so the budget can be
 * exceeded by what is in flight (bounded by the readahead window).
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef CH5_FS_CACHE_H
#define CH5_FS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ost;
struct fs_cache;

/* Called once per fs_cache_get(): rc is 0 and data/len the block's bytes
 * (borrowed for the duration of the call), or rc is a negative errno (a
 * store error, or -EIO if the object is shorter than the caller said). */
typedef void (*fs_cache_cb)(void *arg, int rc, const uint8_t *data,
			    size_t len);

/* Create a cache over `st` (borrowed; must outlive the cache) holding at
 * most about `budget` bytes in blocks of `block_size` bytes.  Returns 0 or
 * -ENOMEM / -EINVAL (block_size 0). */
int fs_cache_new(struct ost *st, uint64_t budget, uint32_t block_size,
		 struct fs_cache **out);

/* Wait for in-flight fetches and free every block.  NULL is a no-op. */
void fs_cache_free(struct fs_cache *c);

uint32_t fs_cache_block_size(const struct fs_cache *c);

struct fs_dcache;

/* Put the disk tier `d` (borrowed; it must outlive the cache; NULL for
 * none) under the cache: a miss reads the block from disk before it asks
 * the store, and a block fetched from the store is written there after its
 * readers were served.  Call before the first fs_cache_get(). */
void fs_cache_set_disk(struct fs_cache *c, struct fs_dcache *d);

/* Ask for block `blk` of object `key` (copied), whose total size is
 * `obj_size` bytes.  `ver` (copied; NULL = "") names the object's version
 * for objects that can be overwritten in place (plain objects: their ETag),
 * so a block of an older version is never served for a newer one.  `cb` may be NULL: then this is a prefetch that only
 * warms the cache.  Returns 0 (cb will be, or has been, called) or a
 * negative errno without calling cb (-EINVAL if blk is past the object). */
int fs_cache_get(struct fs_cache *c, const char *key, const char *ver,
		 uint64_t obj_size, uint64_t blk, fs_cache_cb cb, void *arg);

/* Like fs_cache_get(), for a prefetch that must know when its block is
 * in: a block that is cached or being fetched returns 1 at once (cb is
 * not called); otherwise its fetch starts (from the disk tier, or a GET)
 * and 0 is returned, cb being called when it ends, maybe before this
 * returns (a disk tier hit, or a pool that refuses the GET).  `cb` must
 * not be NULL.  Negative errno without calling cb, as fs_cache_get(). */
int fs_cache_fetch_new(struct fs_cache *c, const char *key, const char *ver,
		       uint64_t obj_size, uint64_t blk, fs_cache_cb cb,
		       void *arg);

/* Ask for bytes [off, off+len) of object `key` (same arguments as
 * fs_cache_get()), a range inside one block: for the few bytes of a
 * neighbouring chunk that share a page with the chunk being read.  If the
 * block is cached or being fetched, the bytes come from it; otherwise a
 * ranged GET of just these bytes is sent; its answer is kept apart from
 * the blocks (the last 2,048 such answers, 8 MiB at most), so the same
 * range asked again, say after the kernel dropped the page, costs no GET.
 * `cb` gets exactly `len` bytes (or an error) and must not be NULL.
 * Returns 0 (cb will be, or has been, called) or a negative errno without
 * calling cb (-EINVAL if the range is empty, leaves the object or spans
 * two blocks). */
int fs_cache_get_range(struct fs_cache *c, const char *key, const char *ver,
		       uint64_t obj_size, uint64_t off, size_t len,
		       fs_cache_cb cb, void *arg);

/* Is block `blk` of `key` (version `ver`, NULL = "") cached or being
 * fetched?  A hint: it may be evicted right after. */
bool fs_cache_has(struct fs_cache *c, const char *key, const char *ver,
		  uint64_t blk);

/* Counters. */
struct fs_cache_stats {
	uint64_t hits;	   /* requests answered from memory */
	uint64_t misses;   /* requests that started a GET */
	uint64_t joins;	   /* requests that joined a GET in flight */
	uint64_t evictions;
	uint64_t bytes;	   /* bytes cached now (incl. in flight) */
	uint64_t blocks;   /* blocks cached now */
	uint64_t fetching; /* GETs whose completion has not finished */
	uint64_t partial;  /* ranged GETs of fs_cache_get_range() */
	uint64_t partial_hits; /* fs_cache_get_range() answered from an
				  earlier ranged GET's bytes */
};

void fs_cache_stats_get(struct fs_cache *c, struct fs_cache_stats *out);

#endif
