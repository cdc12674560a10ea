/*
 * pagefill.c - what a read fetches goes into the kernel page cache.
 *
 * The mount asks the kernel for no readahead (max_readahead 0), so a page
 * cache miss reaches the daemon as a read of the pages the program asked
 * for and nothing around them is fetched on speculation: a page of metadata
 * is answered from the manifest (skeleton and page fill) and costs no
 * request, which is what keeps a cold `h5dump -H` at one manifest GET.
 *
 * What the kernel's readahead did for large reads is done here instead,
 * knowing where objects begin and end: a read that touches an object
 * fetches the whole object (at most FS_FILL_OBJ_MAX bytes of it), and the
 * pages it covers are stored in the page cache (FUSE_NOTIFY_STORE) as soon
 * as its blocks arrive; so are the pages of the readahead window.  The
 * program then reads the rest of the chunk from the page cache.
 *
 * Stores run on one thread of their own: storing a page waits for the
 * kernel's lock on it, and a pending read holds that lock until a pool
 * thread or a FUSE worker answers it, so a store must never run on either.
 * A store is for one version of a file: it is dropped if the inode has a
 * newer version (or a stage) by then, under `lock`, which a reader's open
 * of a new version passes through (fs_pagefill_barrier) before the kernel
 * drops the old pages.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_int.h"
#include "log.h"

/* Most bytes stored per job (and per notify): small enough that the first
 * pages of a fill land while its last blocks are still coming. */
#define JOB_MAX (1u << 20)
#define PIECES 64
#define SPARE_BUFS 8 /* JOB_MAX buffers kept for reuse */

struct fill_job {
	struct fill_job *next;
	struct fs_ctx *ctx;
	struct fs_inode *in; /* pinned */
	struct fs_version *v; /* referenced */
	uint64_t a, b;	      /* page-aligned file range */
	uint8_t *buf;	      /* bytes of [a, b) */
	uint8_t *bad;	      /* per page: 1 = do not store */
	bool inval;	      /* drop the inode's cached pages instead */
	int pending;	      /* atomic: block requests + 1 while issuing */
};

struct fill_part {
	struct fill_job *job;
	uint64_t file_off; /* where the part's bytes go */
	size_t skip;	   /* offset in the block */
	size_t len;
};

struct fs_pagefill {
	pthread_t thread;
	pthread_mutex_t qlock; /* guards the queue and `stop` */
	pthread_cond_t qcond;
	struct fill_job *head, *tail;
	unsigned queued;
	bool stop;
	bool running; /* the store thread has not exited */
	pthread_mutex_t lock; /* held while a job checks and stores */
	/* Spare JOB_MAX buffers (under qlock): a fresh one costs a page
	 * fault and a zeroed page per 4 KiB, more than the copy itself. */
	uint8_t *spare[SPARE_BUFS];
	unsigned n_spare;
	uint64_t page;
	uint64_t stored; /* atomic: bytes stored */
};

static uint8_t *buf_get(struct fs_pagefill *pf, uint64_t len)
{
	uint8_t *b = NULL;

	if (len == JOB_MAX) {
		pthread_mutex_lock(&pf->qlock);
		if (pf->n_spare)
			b = pf->spare[--pf->n_spare];
		pthread_mutex_unlock(&pf->qlock);
	}
	return b ? b : malloc(len);
}

static void buf_put(struct fs_pagefill *pf, uint8_t *b, uint64_t len)
{
	if (b && len == JOB_MAX) {
		pthread_mutex_lock(&pf->qlock);
		if (pf->n_spare < SPARE_BUFS) {
			pf->spare[pf->n_spare++] = b;
			b = NULL;
		}
		pthread_mutex_unlock(&pf->qlock);
	}
	free(b);
}

static void job_free(struct fill_job *j)
{
	fs_inode_pin(j->ctx, j->in, -1);
	if (j->v)
		fs_version_put(j->v);
	buf_put(j->ctx->pagefill, j->buf, j->b - j->a);
	free(j->bad);
	free(j);
}

/* The pages of j that [off, off+len) touches: indexes [*p0, *p1). */
static void job_pages(const struct fill_job *j, uint64_t off, uint64_t len,
		      uint64_t *p0, uint64_t *p1)
{
	uint64_t P = j->ctx->pagefill->page, end = off + len;

	if (off < j->a)
		off = j->a;
	if (end > j->b)
		end = j->b;
	*p0 = (off - j->a) / P;
	*p1 = off < end ? (end - j->a + P - 1) / P : *p0;
}

/* Mark the pages that [off, off+len) touches as not to be stored. */
static void job_mark_bad(struct fill_job *j, uint64_t off, uint64_t len)
{
	uint64_t p, p1;

	for (job_pages(j, off, len, &p, &p1); p < p1; p++)
		j->bad[p] = 1;
}

/* Are all the pages that [off, off+len) touches marked not to be stored? */
static bool job_all_bad(const struct fill_job *j, uint64_t off, uint64_t len)
{
	uint64_t p, p1;

	for (job_pages(j, off, len, &p, &p1); p < p1; p++)
		if (!j->bad[p])
			return false;
	return true;
}

static void job_queue(struct fill_job *j)
{
	struct fs_pagefill *pf = j->ctx->pagefill;

	pthread_mutex_lock(&pf->qlock);
	if (pf->stop && !pf->running) {
		/* unmounted: a fetch finished after the store thread */
		pthread_mutex_unlock(&pf->qlock);
		job_free(j);
		return;
	}
	j->next = NULL;
	if (pf->tail)
		pf->tail->next = j;
	else
		pf->head = j;
	pf->tail = j;
	pf->queued++;
	pthread_cond_signal(&pf->qcond);
	pthread_mutex_unlock(&pf->qlock);
}

static void job_put(struct fill_job *j)
{
	if (__atomic_sub_fetch(&j->pending, 1, __ATOMIC_ACQ_REL) == 0)
		job_queue(j);
}

static void part_arrived(void *arg, int rc, const uint8_t *data, size_t len)
{
	struct fill_part *p = arg;
	struct fill_job *j = p->job;

	if (rc == 0 && p->skip + p->len <= len)
		memcpy(j->buf + (p->file_off - j->a), data + p->skip, p->len);
	else
		job_mark_bad(j, p->file_off, p->len);
	free(p);
	job_put(j);
}

/* Store the good pages of j, in runs. */
static void job_store(struct fs_pagefill *pf, struct fill_job *j)
{
	uint64_t P = pf->page, n = (j->b - j->a) / P, p = 0;

	while (p < n) {
		uint64_t q;
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);
		int rc;

		if (j->bad[p]) {
			p++;
			continue;
		}
		for (q = p; q < n && !j->bad[q]; q++)
			;
		bv.buf[0].mem = j->buf + p * P;
		bv.buf[0].size = (q - p) * P;
		rc = fuse_lowlevel_notify_store(j->ctx->se, j->in->ino,
						j->a + p * P, &bv, 0);
		if (rc == 0)
			__atomic_add_fetch(&pf->stored, (q - p) * P,
					   __ATOMIC_RELAXED);
		else if (rc != -ENOENT)
			ch5_debug("page cache store of inode %llu [%llu, +%llu): "
				  "%s",
				  (unsigned long long)j->in->ino,
				  (unsigned long long)(j->a + p * P),
				  (unsigned long long)((q - p) * P),
				  strerror(-rc));
		p = q;
	}
}

static void *store_thread(void *arg)
{
	struct fs_pagefill *pf = arg;

	for (;;) {
		struct fill_job *j;
		bool current;

		pthread_mutex_lock(&pf->qlock);
		while (!pf->head && !pf->stop)
			pthread_cond_wait(&pf->qcond, &pf->qlock);
		j = pf->head;
		if (j) {
			pf->head = j->next;
			if (!pf->head)
				pf->tail = NULL;
			pf->queued--;
			pthread_mutex_unlock(&pf->qlock);
		}
		if (!j) {
			pf->running = false; /* stopped and drained */
			pthread_mutex_unlock(&pf->qlock);
			return NULL;
		}
		pthread_mutex_lock(&pf->lock);
		if (j->inval) {
			fuse_lowlevel_notify_inval_inode(j->ctx->se,
							 j->in->ino, 0, 0);
		} else {
			pthread_mutex_lock(&j->in->lock);
			current = j->in->ver == j->v && !j->in->stage;
			pthread_mutex_unlock(&j->in->lock);
			if (current)
				job_store(pf, j);
		}
		pthread_mutex_unlock(&pf->lock);
		job_free(j);
	}
}

int fs_pagefill_init(struct fs_ctx *ctx)
{
	struct fs_pagefill *pf = calloc(1, sizeof(*pf));
	long page = sysconf(_SC_PAGESIZE);
	int rc;

	if (!pf)
		return -ENOMEM;
	pf->page = page > 0 ? (uint64_t)page : 4096;
	pthread_mutex_init(&pf->qlock, NULL);
	pthread_cond_init(&pf->qcond, NULL);
	pthread_mutex_init(&pf->lock, NULL);
	pf->running = true;
	rc = pthread_create(&pf->thread, NULL, store_thread, pf);
	if (rc) {
		free(pf);
		return -rc;
	}
	ctx->pagefill = pf;
	return 0;
}

void fs_pagefill_shutdown(struct fs_ctx *ctx)
{
	struct fs_pagefill *pf = ctx->pagefill;

	if (!pf || pf->stop)
		return;
	pthread_mutex_lock(&pf->qlock);
	pf->stop = true;
	pthread_cond_signal(&pf->qcond);
	pthread_mutex_unlock(&pf->qlock);
	pthread_join(pf->thread, NULL);
}

void fs_pagefill_free(struct fs_ctx *ctx)
{
	struct fs_pagefill *pf = ctx->pagefill;

	if (!pf)
		return;
	fs_pagefill_shutdown(ctx);
	ctx->pagefill = NULL;
	while (pf->n_spare)
		free(pf->spare[--pf->n_spare]);
	pthread_mutex_destroy(&pf->qlock);
	pthread_cond_destroy(&pf->qcond);
	pthread_mutex_destroy(&pf->lock);
	free(pf);
}

void fs_pagefill_barrier(struct fs_ctx *ctx)
{
	struct fs_pagefill *pf = ctx->pagefill;

	if (!pf)
		return;
	pthread_mutex_lock(&pf->lock);
	pthread_mutex_unlock(&pf->lock);
}

void fs_pagefill_invalidate(struct fs_ctx *ctx, struct fs_inode *in)
{
	struct fill_job *j;

	if (!ctx->pagefill)
		return;
	j = calloc(1, sizeof(*j));
	if (!j) {
		ch5_warn("out of memory: pages of inode %llu stay cached",
			 (unsigned long long)in->ino);
		return;
	}
	j->ctx = ctx;
	j->in = in;
	fs_inode_pin(ctx, in, 1);
	j->inval = true;
	job_queue(j);
}

uint64_t fs_pagefill_stored(struct fs_ctx *ctx)
{
	return ctx->pagefill
		       ? __atomic_load_n(&ctx->pagefill->stored,
					 __ATOMIC_RELAXED)
		       : 0;
}

/* Grow [*lo, *hi) to the objects it touches: each whole, or at most
 * FS_FILL_OBJ_MAX bytes of it from the first block touched. */
static void grow_to_objects(struct fs_ctx *ctx, struct fs_version *v,
			    uint64_t *lo, uint64_t *hi)
{
	struct h5m_piece pcs[PIECES];
	char key[OST_KEY_MAX + 1];
	uint32_t bs = fs_cache_block_size(ctx->cache);
	uint64_t off = *lo, end = *hi, first = UINT64_MAX, last = 0;
	size_t n_obj = 0;	 /* object pieces seen */
	bool prev_cached = false; /* the last one's block is cached/coming */

	while (off < end) {
		size_t n = fs_version_map(v, off, end - off, pcs, PIECES), i;

		if (n == 0)
			break;
		for (i = 0; i < n; i++) {
			const struct h5m_piece *pc = &pcs[i];
			uint64_t size, o0, o1;

			if (pc->skel || fs_version_object(v, pc, key,
							  sizeof(key),
							  &size) < 0)
				continue;
			/* A neighbour's edge bytes on the first or last page
			 * of a chunk's pages are no reason to fetch the
			 * neighbour (fs_cache_get_range() gets them): the
			 * tail of the object before, where the range enters;
			 * the head of the object after, where the range
			 * leaves an object being read (cached or coming). */
			if (fs_piece_is_edge(pc, size) &&
			    ((pc->obj_off > 0 && pc->file_off == *lo &&
			      n_obj == 0) ||
			     (pc->obj_off == 0 &&
			      pc->file_off + pc->len == *hi &&
			      prev_cached))) {
				n_obj++;
				prev_cached = false;
				continue;
			}
			n_obj++;
			prev_cached = fs_cache_has(ctx->cache, key,
						   fs_version_tag(v),
						   (pc->obj_off + pc->len - 1) /
							   bs);
			o0 = 0;
			o1 = size;
			if (size > FS_FILL_OBJ_MAX) {
				o0 = pc->obj_off - pc->obj_off % bs;
				o1 = o0 + FS_FILL_OBJ_MAX;
				if (o1 < pc->obj_off + pc->len)
					o1 = pc->obj_off + pc->len;
				if (o1 > size)
					o1 = size;
			}
			if (pc->file_off - pc->obj_off + o0 < first)
				first = pc->file_off - pc->obj_off + o0;
			if (pc->file_off - pc->obj_off + o1 > last)
				last = pc->file_off - pc->obj_off + o1;
		}
		off = pcs[n - 1].file_off + pcs[n - 1].len;
	}
	if (first < *lo)
		*lo = first;
	if (last > *hi)
		*hi = last;
}

/* Fill j->buf from the pieces of [j->a, j->b): manifest bytes at once,
 * object bytes inside [lo, hi) through the cache, other object bytes
 * marked bad. */
static void job_issue(struct fs_ctx *ctx, struct fill_job *j, uint64_t lo,
		      uint64_t hi)
{
	struct h5m_piece pcs[PIECES];
	char key[OST_KEY_MAX + 1];
	uint32_t bs = fs_cache_block_size(ctx->cache);
	uint64_t pos = j->a;

	while (pos < j->b) {
		size_t n = fs_version_map(j->v, pos, j->b - pos, pcs, PIECES);
		size_t i;

		if (n == 0) {
			job_mark_bad(j, pos, j->b - pos);
			break;
		}
		for (i = 0; i < n; i++) {
			const struct h5m_piece *pc = &pcs[i];
			uint64_t size, f0, f1, o, oend;

			if (pc->skel) {
				memcpy(j->buf + (pc->file_off - j->a),
				       pc->skel, pc->len);
				continue;
			}
			/* pages already left out: the read's own */
			if (job_all_bad(j, pc->file_off, pc->len))
				continue;
			if (fs_version_object(j->v, pc, key, sizeof(key),
					      &size) < 0) {
				job_mark_bad(j, pc->file_off, pc->len);
				continue;
			}
			f0 = pc->file_off > lo ? pc->file_off : lo;
			f1 = pc->file_off + pc->len < hi
				     ? pc->file_off + pc->len
				     : hi;
			/* A neighbour's few bytes on a page at the edge of
			 * [lo, hi) are fetched alone, so that page is stored
			 * whole too: else the program's read of a chunk's
			 * last page waits for one more round trip. */
			if (f1 <= f0 && fs_piece_is_edge(pc, size)) {
				f0 = pc->file_off;
				f1 = pc->file_off + pc->len;
			}
			if (f1 <= f0) {
				job_mark_bad(j, pc->file_off, pc->len);
				continue;
			}
			if (f0 > pc->file_off)
				job_mark_bad(j, pc->file_off,
					     f0 - pc->file_off);
			if (f1 < pc->file_off + pc->len)
				job_mark_bad(j, f1,
					     pc->file_off + pc->len - f1);
			o = pc->obj_off + (f0 - pc->file_off);
			oend = o + (f1 - f0);
			while (o < oend) {
				uint64_t blk = o / bs, bend = (blk + 1) * bs;
				struct fill_part *p = malloc(sizeof(*p));
				int rc;

				if (bend > oend)
					bend = oend;
				if (!p) {
					job_mark_bad(j, f0, f1 - f0);
					break;
				}
				p->job = j;
				p->file_off = pc->file_off + (o - pc->obj_off);
				p->skip = o - blk * bs;
				p->len = bend - o;
				__atomic_add_fetch(&j->pending, 1,
						   __ATOMIC_ACQ_REL);
				if (fs_piece_is_edge(pc, size)) {
					p->skip = 0;
					rc = fs_version_get_edge(
						ctx, j->v, key, size,
						p->file_off, o, p->len,
						part_arrived, p);
				} else {
					rc = fs_cache_get(ctx->cache, key,
							  fs_version_tag(j->v),
							  size, blk,
							  part_arrived, p);
				}
				if (rc < 0) {
					free(p);
					job_mark_bad(j, f0, f1 - f0);
					job_put(j);
					break;
				}
				o = bend;
			}
		}
		pos = pcs[n - 1].file_off + pcs[n - 1].len;
	}
}

uint64_t fs_pagefill(struct fs_ctx *ctx, struct fs_inode *in,
		     struct fs_version *v, uint64_t off, uint64_t end,
		     uint64_t skip_off, uint64_t skip_end, bool whole)
{
	struct fs_pagefill *pf = ctx->pagefill;
	uint64_t lo = off, hi = end, P, a, b, ret = end;

	if (!pf || off >= end || off >= v->size)
		return end;
	P = pf->page;
	if (hi > v->size)
		hi = v->size;
	if (whole)
		grow_to_objects(ctx, v, &lo, &hi);
	/* whole pages only: a partial last page would be stored with
	 * whatever follows the end of the file in it */
	a = lo - lo % P;
	b = hi + (hi % P ? P - hi % P : 0);
	if (b > v->size)
		b = v->size - v->size % P;
	while (a < b) {
		uint64_t jb = b - a > JOB_MAX ? a + JOB_MAX : b;
		struct fill_job *j = calloc(1, sizeof(*j));

		if (j) {
			j->buf = buf_get(pf, jb - a);
			j->bad = calloc((jb - a) / P, 1);
		}
		if (!j || !j->buf || !j->bad) {
			if (j) {
				free(j->buf);
				free(j->bad);
			}
			free(j);
			break;
		}
		j->ctx = ctx;
		j->in = in;
		fs_inode_pin(ctx, in, 1);
		j->v = v;
		fs_version_get(v);
		j->a = a;
		j->b = jb;
		j->pending = 1;
		if (skip_end > skip_off)
			job_mark_bad(j, skip_off, skip_end - skip_off);
		job_issue(ctx, j, lo, hi);
		job_put(j);
		if (jb > ret)
			ret = jb;
		a = jb;
	}
	return ret;
}
