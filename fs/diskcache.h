/*
 * diskcache.h - the disk tier of the block cache: blocks of objects kept as
 * files in a directory, lz4-compressed where that pays, under a byte budget,
 * evicted with S3-FIFO (a small probationary FIFO, a main FIFO with
 * reinsertion of blocks read again, and a ghost FIFO of recently evicted
 * names), so a one-off scan does not push out what is read repeatedly.
 *
 * A block is named by (object key, version, block number), as in the
 * memory tier (cache.h).  Chunk objects are immutable and plain objects are
 * named with their ETag, so a block on disk is valid for as long as it is
 * there: the directory survives a remount and is shared by every file of
 * the mount.  Each file holds a header naming its block and a CRC-32 of its
 * bytes; a file that does not match is a miss and is removed.
 *
 * A write that fails (the disk is full, the directory is gone) is logged
 * once and turns the disk tier off for writes: the memory tier goes on
 * alone.  Reads of what is there go on.
 *
 * Thread-safety: every function may be called from any thread.  File I/O
 * happens outside the index lock.
 */
#ifndef CH5_FS_DISKCACHE_H
#define CH5_FS_DISKCACHE_H

#include <stddef.h>
#include <stdint.h>

struct fs_dcache;

/* Open (creating it, mode 0700) the cache directory `dir` with a budget of
 * `budget` bytes of files (at least 1 MiB).  The blocks an earlier mount
 * left are indexed (oldest first into the main FIFO) and, if they exceed the
 * budget, the oldest are removed.  Returns 0, -EINVAL, -ENOMEM or -errno of
 * mkdir/opendir (logged). */
int fs_dcache_open(const char *dir, uint64_t budget, struct fs_dcache **out);

/* Close the index (the files stay).  NULL is a no-op. */
void fs_dcache_close(struct fs_dcache *d);

/* Read block `blk` of `key` at version `ver` ("" for immutable objects)
 * into buf, which must hold `len` bytes, the block's size.  Returns 0 on a
 * hit of exactly len bytes, -ENOENT on a miss (also for a damaged file,
 * which is removed), -ENOMEM. */
int fs_dcache_get(struct fs_dcache *d, const char *key, const char *ver,
		  uint64_t blk, void *buf, size_t len);

/* Store `len` bytes of block `blk` (copied; compressed with lz4 unless
 * that saves less than an eighth).  Evicts to stay within the budget.
 * Errors are not returned: a failed write is logged once and turns writes
 * off. */
void fs_dcache_put(struct fs_dcache *d, const char *key, const char *ver,
		   uint64_t blk, const void *buf, size_t len);

struct fs_dcache_stats {
	uint64_t hits, misses;
	uint64_t bytes;	       /* bytes of files now */
	uint64_t files;	       /* blocks on disk now */
	uint64_t evictions;
	uint64_t writes;       /* blocks written */
	uint64_t bytes_saved;  /* raw minus stored bytes of those writes */
	uint64_t write_errors; /* 0, or 1 once writes were turned off */
};

void fs_dcache_stats_get(struct fs_dcache *d, struct fs_dcache_stats *out);

#endif
