/*
 * prefetch.c - whole-file prefetch.
 *
 * When a program reads chunk data of a small file (at most
 * cfg.prefetch_whole bytes) through a read-only handle, every object block
 * of the file is brought into the block cache in the background: first the
 * rest of the dataset being read (in file order from the read), then the
 * rest of the file, then what lies before the read.  A sequential reader
 * so gets the whole pool at once instead of a readahead window that grows
 * read by read, and a random reader's later chunks are local.  Metadata
 * reads (h5dump -H, h5ls) start nothing: they touch no chunk data.
 *
 * It stops when the file's last handle is closed (the blocks in flight
 * still land): a program that read what it wanted and left does not
 * leave the store busy with the rest; a later read begins it again,
 * skipping what is cached.  One file at a time per mount: a file whose
 * first data read comes while another is being prefetched gets the
 * readahead only.  At most
 * cfg.threads blocks are asked for at once, so a program's own reads wait
 * behind at most one request per pool connection, and the memory held by
 * blocks in flight is bounded; what arrives is under the cache's budget
 * like any block.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"
#include "log.h"

struct fs_whole {
	struct fs_ctx *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* signalled when inflight or pumping drop */
	/* All below guarded by lock. */
	struct fs_version *v;	/* the file being prefetched (referenced),
				   NULL when idle */
	uint64_t ranges[3][2];	/* file byte ranges, in the order taken */
	unsigned nranges, cur;	/* ranges[cur] is being walked */
	uint64_t pos;		/* next file offset to look at in it */
	unsigned inflight;	/* blocks asked for and not yet in */
	unsigned max;		/* at most this many in flight */
	bool pumping;		/* a thread is in pump_locked() */
	bool again;		/* a block came in while it was */
	bool stopping;		/* shutdown: ask for nothing more */
	bool cancel;		/* v's last handle closed: likewise */
	uint64_t started, fetched; /* files begun, blocks asked for (stats) */
};

int fs_whole_init(struct fs_ctx *ctx)
{
	struct fs_whole *w;

	if (!ctx->cfg.prefetch_whole)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->ctx = ctx;
	w->max = ctx->cfg.threads ? ctx->cfg.threads : 1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	ctx->whole = w;
	return 0;
}

/* The next block to ask for: its object's key, size and block number.
 * Moves the cursor past it.  false when the ranges are done.  w->lock
 * held. */
static bool next_block(struct fs_whole *w, char *key, size_t keysz,
		       uint64_t *obj_size, uint64_t *blk)
{
	uint32_t bs = fs_cache_block_size(w->ctx->cache);

	while (w->cur < w->nranges) {
		uint64_t end = w->ranges[w->cur][1], in_blk;
		struct h5m_piece pc;

		if (w->pos >= end ||
		    fs_version_map(w->v, w->pos, end - w->pos, &pc, 1) == 0) {
			if (++w->cur < w->nranges)
				w->pos = w->ranges[w->cur][0];
			continue;
		}
		if (pc.skel ||
		    fs_version_object(w->v, &pc, key, keysz, obj_size) < 0) {
			w->pos = pc.file_off + pc.len;
			continue;
		}
		*blk = pc.obj_off / bs;
		/* the piece's bytes in this block; the next step starts at
		 * the object's next block (or the next piece) */
		in_blk = (*blk + 1) * (uint64_t)bs - pc.obj_off;
		w->pos = pc.file_off + (in_blk < pc.len ? in_blk : pc.len);
		return true;
	}
	return false;
}

static void pump_locked(struct fs_whole *w);

static void block_in(void *arg, int rc, const uint8_t *data, size_t len)
{
	struct fs_whole *w = arg;

	(void)data;
	(void)len;
	if (rc < 0)
		ch5_debug("whole-file prefetch: a block failed (%s)",
			  strerror(-rc));
	/* one hold of the lock from here on: fs_whole_free() waits for
	 * inflight and pumping, and would otherwise free w in between */
	pthread_mutex_lock(&w->lock);
	w->inflight--;
	pump_locked(w);
}

/* Ask for blocks until max are in flight or the file is done; the thread
 * that finds it done with nothing in flight drops the version.  A block
 * that comes in while another thread pumps (or during this one's own
 * fs_cache_fetch_new(), from the disk tier) only says so: the pumping
 * thread goes round again, so the stack never grows with the file.
 * Called with w->lock held; returns with it released, and touches w no
 * more after that. */
static void pump_locked(struct fs_whole *w)
{
	char key[OST_KEY_MAX + 1];
	struct fs_version *done = NULL;

	if (w->pumping || !w->v) {
		w->again = true;
		pthread_mutex_unlock(&w->lock);
		return;
	}
	w->pumping = true;
	do {
		uint64_t obj_size, blk;

		w->again = false;
		while (!w->stopping && !w->cancel && w->inflight < w->max &&
		       next_block(w, key, sizeof(key), &obj_size, &blk)) {
			const char *tag = fs_version_tag(w->v);
			int rc;

			w->inflight++;
			pthread_mutex_unlock(&w->lock);
			rc = fs_cache_fetch_new(w->ctx->cache, key, tag,
						obj_size, blk, block_in, w);
			pthread_mutex_lock(&w->lock);
			if (rc != 0)
				w->inflight--; /* cached, on its way, or
						  refused: no callback */
			else
				w->fetched++;
		}
	} while (w->again);
	w->pumping = false;
	if (w->inflight == 0 &&
	    (w->stopping || w->cancel || w->cur >= w->nranges)) {
		done = w->v;
		w->v = NULL;
		/* cut short: a later read may begin it again */
		if (w->cancel)
			__atomic_store_n(&done->whole, 0, __ATOMIC_RELEASE);
		w->cancel = false;
	}
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (done)
		fs_version_put(done);
}

void fs_whole_start(struct fs_ctx *ctx, struct fs_version *v, uint64_t off,
		    uint64_t end)
{
	struct fs_whole *w = ctx->whole;
	uint64_t run_end;

	if (!w || !v->man || v->size > ctx->cfg.prefetch_whole ||
	    __atomic_load_n(&v->whole, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&w->lock);
	if (w->v || w->stopping ||
	    __atomic_exchange_n(&v->whole, 1, __ATOMIC_ACQ_REL)) {
		pthread_mutex_unlock(&w->lock);
		return;
	}
	/* the dataset the read is in, from the read on, comes first */
	run_end = fs_version_dataset_end(v, end, v->size);
	if (run_end < end)
		run_end = end;
	fs_version_get(v);
	w->v = v;
	w->nranges = 0;
	w->ranges[w->nranges][0] = off;
	w->ranges[w->nranges++][1] = run_end;
	w->ranges[w->nranges][0] = run_end;
	w->ranges[w->nranges++][1] = v->size;
	w->ranges[w->nranges][0] = 0;
	w->ranges[w->nranges++][1] = off;
	w->cur = 0;
	w->pos = off;
	w->started++;
	ch5_debug("whole-file prefetch of %llu bytes begins at %llu",
		  (unsigned long long)v->size, (unsigned long long)off);
	pump_locked(w);
}

void fs_whole_cancel(struct fs_ctx *ctx, struct fs_version *v)
{
	struct fs_whole *w = ctx->whole;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->v != v) {
		pthread_mutex_unlock(&w->lock);
		return;
	}
	w->cancel = true;
	pump_locked(w); /* finishes now if nothing is in flight */
}

void fs_whole_stats(struct fs_ctx *ctx, uint64_t *files, uint64_t *blocks)
{
	struct fs_whole *w = ctx->whole;

	*files = *blocks = 0;
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	*files = w->started;
	*blocks = w->fetched;
	pthread_mutex_unlock(&w->lock);
}

void fs_whole_free(struct fs_ctx *ctx)
{
	struct fs_whole *w = ctx->whole;
	struct fs_version *v;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	while (w->inflight || w->pumping)
		pthread_cond_wait(&w->cond, &w->lock);
	v = w->v;
	w->v = NULL;
	pthread_mutex_unlock(&w->lock);
	fs_version_put(v);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
	ctx->whole = NULL;
}
