/*
 * cache.c - byte-budgeted LRU cache of immutable object blocks with
 * coalesced asynchronous misses.
 *
 * One mutex guards the hash table, the LRU list and every entry's state.
 * An entry is LOADING (a GET in flight, waiters queued) or READY.  Callbacks
 * run without the lock, holding a reference so the entry is not evicted.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache.h"
#include "diskcache.h"
#include "ost.h"
#include "log.h"

struct cache_waiter {
	fs_cache_cb cb;
	void *arg;
	struct cache_waiter *next;
};

struct cache_entry {
	char *key;
	char *ver; /* "" for immutable objects */
	uint64_t blk;
	uint64_t hash;
	uint8_t *data;
	size_t len;	 /* expected (LOADING) or actual (READY) bytes */
	bool ready;	 /* guarded by fs_cache.lock */
	bool from_disk;	 /* read from the disk tier, not the store */
	unsigned refs;	 /* readers in callbacks + the GET in flight */
	struct cache_waiter *waiters; /* LOADING only */
	struct cache_entry *hnext;    /* hash chain */
	struct cache_entry *lru_prev, *lru_next; /* READY only */
	struct ost_req req;
	struct fs_cache *cache;
};

/* Full-size block buffers come from slabs of huge-page-backed memory and
 * go back to a free list, never to the system: a cold read fills the
 * cache with fresh memory, and on a virtual machine one page fault per
 * 4 KiB measured as a third of the daemon's time.  Smaller blocks (the
 * ends of objects, small chunks) use malloc so they do not each hold a
 * whole block of memory. */
#define SLAB_BYTES (32u << 20)
#define HUGE_PAGE (2u << 20)

struct free_buf {
	struct free_buf *next;
};

/* The few bytes of a neighbouring object that one ranged GET of
 * fs_cache_get_range() brought: kept (at most EDGE_SLOTS of them, each at
 * most EDGE_LEN_MAX bytes, 8 MiB in all) so that reading the same page
 * again, after the kernel dropped it from its page cache, costs no second
 * GET.  Objects are immutable (or versioned by `ver`), so these never go
 * stale. */
#define EDGE_SLOTS 2048
#define EDGE_BUCKETS 4096
#define EDGE_LEN_MAX 4096 /* bytes; longer ranges are not kept */

struct edge {
	struct edge *hnext;
	uint64_t hash;
	char *key, *ver;
	uint64_t off;
	size_t len;
	uint8_t data[];
};

struct fs_cache {
	struct ost *st;
	struct fs_dcache *disk; /* or NULL */
	uint64_t budget;
	uint32_t block_size;
	pthread_mutex_t lock;
	pthread_cond_t idle; /* signalled when fetching drops to 0 */
	struct cache_entry **buckets; /* guarded by lock */
	size_t n_buckets;
	struct cache_entry *lru_head, *lru_tail; /* head = most recent */
	struct fs_cache_stats stats;		 /* guarded by lock */
	struct free_buf *free_bufs;		 /* guarded by lock */
	void **slabs;				 /* guarded by lock */
	size_t n_slabs;
	size_t slab_size;
	/* The answers of fs_cache_get_range()'s ranged GETs, guarded by
	 * lock: a hash table and a ring in arrival order (the oldest goes). */
	struct edge *edges[EDGE_BUCKETS];
	struct edge *edge_ring[EDGE_SLOTS];
	size_t edge_next; /* ring slot the next one takes */
};

/* A buffer for `len` bytes of block; lock held. */
static uint8_t *buf_alloc(struct fs_cache *c, size_t len)
{
	size_t per, i;
	uint8_t *slab, *base;
	void **ns;

	if (len <= c->block_size / 2)
		return malloc(len ? len : 1);
	if (!c->free_bufs) {
		/* 2 MiB-aligned so the kernel can back it with huge pages. */
		base = mmap(NULL, c->slab_size + HUGE_PAGE,
			    PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (base == MAP_FAILED)
			return NULL;
		ns = realloc(c->slabs, (c->n_slabs + 1) * sizeof(*ns));
		if (!ns) {
			munmap(base, c->slab_size + HUGE_PAGE);
			return NULL;
		}
		c->slabs = ns;
		c->slabs[c->n_slabs++] = base;
		slab = (uint8_t *)(((uintptr_t)base + HUGE_PAGE - 1) &
				   ~(uintptr_t)(HUGE_PAGE - 1));
		madvise(slab, c->slab_size, MADV_HUGEPAGE);
		per = c->slab_size / c->block_size;
		for (i = 0; i < per; i++) {
			struct free_buf *fb =
				(struct free_buf *)(slab + i * c->block_size);

			fb->next = c->free_bufs;
			c->free_bufs = fb;
		}
	}
	slab = (uint8_t *)c->free_bufs;
	c->free_bufs = c->free_bufs->next;
	return slab;
}

/* Give back a buffer from buf_alloc(); lock held. */
static void buf_free(struct fs_cache *c, uint8_t *buf, size_t len)
{
	struct free_buf *fb = (struct free_buf *)buf;

	if (len <= c->block_size / 2) {
		free(buf);
		return;
	}
	fb->next = c->free_bufs;
	c->free_bufs = fb;
}

static uint64_t entry_hash(const char *key, const char *ver, uint64_t blk)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (; *ver; ver++)
		h = (h ^ (unsigned char)*ver) * 1099511628211ULL;
	return (h ^ blk) * 1099511628211ULL;
}

static struct cache_entry *table_find(struct fs_cache *c, const char *key,
				      const char *ver, uint64_t blk,
				      uint64_t h)
{
	struct cache_entry *e = c->buckets[h % c->n_buckets];

	for (; e; e = e->hnext)
		if (e->hash == h && e->blk == blk && !strcmp(e->key, key) &&
		    !strcmp(e->ver, ver))
			return e;
	return NULL;
}

static void table_remove(struct fs_cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = &c->buckets[e->hash % c->n_buckets];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
}

static void lru_unlink(struct fs_cache *c, struct cache_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct fs_cache *c, struct cache_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = e;
	c->lru_head = e;
	if (!c->lru_tail)
		c->lru_tail = e;
}

/* Free an entry; its data buffer goes back with buf_free() (lock held, or
 * the cache is being freed). */
static void entry_destroy(struct cache_entry *e)
{
	if (e->data)
		buf_free(e->cache, e->data, e->len);
	free(e->key);
	free(e->ver);
	free(e);
}

/* Drop unreferenced READY blocks from the cold end until within budget.
 * Called with the lock held. */
static void evict_locked(struct fs_cache *c)
{
	struct cache_entry *e = c->lru_tail;

	while (c->stats.bytes > c->budget && e) {
		struct cache_entry *prev = e->lru_prev;

		if (e->refs == 0) {
			lru_unlink(c, e);
			table_remove(c, e);
			c->stats.bytes -= e->len;
			c->stats.blocks--;
			c->stats.evictions++;
			entry_destroy(e);
		}
		e = prev;
	}
}

/* Release one reference; called with the lock held. */
static void entry_put_locked(struct fs_cache *c, struct cache_entry *e)
{
	e->refs--;
	if (e->refs == 0 && c->stats.bytes > c->budget)
		evict_locked(c);
}

/* The completion of a block's or a range's GET, whose result is *rc: an
 * answer short of its end before the end of the object is sent again for
 * the rest (true: the request goes on, its completion runs again); an
 * empty short answer becomes -EIO in *rc (logged); a resend the pool
 * refuses leaves its error there. */
static bool resent_if_short(struct fs_cache *c, struct ost_req *req, int *rc)
{
	if (*rc == 0 && req->got < req->len && req->got > 0) {
		req->off += req->got;
		req->buf = (uint8_t *)req->buf + req->got;
		req->len -= req->got;
		req->got = 0;
		*rc = ost_submit(c->st, req);
		return *rc == 0;
	}
	if (*rc == 0 && req->got != req->len) {
		ch5_err("object %s is %zu bytes short at offset %llu", req->key,
			req->len - req->got, (unsigned long long)req->off);
		*rc = -EIO;
	}
	return false;
}

/* A GET of the cache's has completed (its callbacks are done): once none
 * is left, fs_cache_free() may go on.  c->lock held. */
static void fetch_finished_locked(struct fs_cache *c)
{
	if (--c->stats.fetching == 0)
		pthread_cond_broadcast(&c->idle);
}

static void fetch_done(struct ost_req *req)
{
	struct cache_entry *e = req->arg;
	struct fs_cache *c = e->cache;
	struct cache_waiter *w, *next;
	int rc = req->rc;

	if (resent_if_short(c, req, &rc))
		return;
	pthread_mutex_lock(&c->lock);
	w = e->waiters;
	e->waiters = NULL;
	if (rc == 0) {
		e->ready = true;
		lru_push_front(c, e);
	} else {
		/* A failed block leaves the table at once, so the next read
		 * retries; waiters already queued get the error. */
		table_remove(c, e);
		c->stats.bytes -= e->len;
		c->stats.blocks--;
	}
	pthread_mutex_unlock(&c->lock);

	for (; w; w = next) {
		next = w->next;
		w->cb(w->arg, rc, rc ? NULL : e->data, rc ? 0 : e->len);
		free(w);
	}
	/* The entry is READY and referenced: its bytes stay put. */
	if (rc == 0 && c->disk && !e->from_disk)
		fs_dcache_put(c->disk, e->key, e->ver, e->blk, e->data, e->len);

	pthread_mutex_lock(&c->lock);
	if (rc == 0) {
		entry_put_locked(c, e);
	} else {
		e->refs--;
		if (e->refs == 0)
			entry_destroy(e);
	}
	/* Only now is this completion done with the cache: fs_cache_free()
	 * waits for fetching to reach 0. */
	fetch_finished_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* fs_cache_get(), or with `only_new` fs_cache_fetch_new(): then a block
 * cached or being fetched returns 1 at once, cb not called. */
static int cache_get(struct fs_cache *c, const char *key, const char *ver,
		     uint64_t obj_size, uint64_t blk, fs_cache_cb cb,
		     void *arg, bool only_new)
{
	uint64_t h;
	uint64_t off = blk * c->block_size;
	struct cache_entry *e;
	struct cache_waiter *w = NULL;
	int rc;

	if (!ver)
		ver = "";
	h = entry_hash(key, ver, blk);
	if (off >= obj_size)
		return -EINVAL;
	if (cb) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		w->cb = cb;
		w->arg = arg;
	}

	pthread_mutex_lock(&c->lock);
	e = table_find(c, key, ver, blk, h);
	if (e && only_new) {
		pthread_mutex_unlock(&c->lock);
		free(w);
		return 1;
	}
	if (e && e->ready) {
		c->stats.hits++;
		if (!cb) {
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		e->refs++;
		lru_unlink(c, e);
		lru_push_front(c, e);
		pthread_mutex_unlock(&c->lock);
		free(w);
		cb(arg, 0, e->data, e->len);
		pthread_mutex_lock(&c->lock);
		entry_put_locked(c, e);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	if (e) {
		c->stats.joins++;
		if (w) {
			w->next = e->waiters;
			e->waiters = w;
		}
		pthread_mutex_unlock(&c->lock);
		return 0;
	}

	e = calloc(1, sizeof(*e));
	if (e) {
		e->cache = c;
		e->key = strdup(key);
		e->ver = strdup(ver);
		e->len = obj_size - off < c->block_size ? obj_size - off
							: c->block_size;
		e->data = buf_alloc(c, e->len);
	}
	if (!e || !e->key || !e->ver || !e->data) {
		if (e)
			entry_destroy(e);
		pthread_mutex_unlock(&c->lock);
		free(w);
		return -ENOMEM;
	}
	e->blk = blk;
	e->hash = h;
	e->cache = c;
	e->refs = 1; /* the GET */
	e->waiters = w;
	e->hnext = c->buckets[h % c->n_buckets];
	c->buckets[h % c->n_buckets] = e;
	c->stats.misses++;
	c->stats.bytes += e->len;
	c->stats.blocks++;
	c->stats.fetching++;
	evict_locked(c);

	e->req.op = OST_GET;
	e->req.key = e->key;
	e->req.off = off;
	e->req.len = e->len;
	e->req.buf = e->data;
	e->req.done = fetch_done;
	e->req.arg = e;
	pthread_mutex_unlock(&c->lock);

	if (c->disk && fs_dcache_get(c->disk, e->key, e->ver, blk, e->data,
				     e->len) == 0) {
		e->from_disk = true;
		e->req.rc = 0;
		e->req.got = e->len;
		fetch_done(&e->req);
		return 0;
	}
	rc = ost_submit(c->st, &e->req);
	if (rc < 0) {
		e->req.rc = rc;
		fetch_done(&e->req);
	}
	return 0;
}

int fs_cache_get(struct fs_cache *c, const char *key, const char *ver,
		 uint64_t obj_size, uint64_t blk, fs_cache_cb cb, void *arg)
{
	return cache_get(c, key, ver, obj_size, blk, cb, arg, false);
}

int fs_cache_fetch_new(struct fs_cache *c, const char *key, const char *ver,
		       uint64_t obj_size, uint64_t blk, fs_cache_cb cb,
		       void *arg)
{
	return cache_get(c, key, ver, obj_size, blk, cb, arg, true);
}

/* fs_cache_get_range(): a piece of a cached or fetching block. */
struct range_waiter {
	fs_cache_cb cb;
	void *arg;
	size_t skip, len;
};

static void range_from_block(void *arg, int rc, const uint8_t *data,
			     size_t len)
{
	struct range_waiter *r = arg;

	if (rc == 0 && r->skip + r->len > len)
		rc = -EIO;
	r->cb(r->arg, rc, rc ? NULL : data + r->skip, rc ? 0 : r->len);
	free(r);
}

/* fs_cache_get_range(): a GET of the range itself, not cached. */
struct range_get {
	struct ost_req req; /* first: the completion gets &req */
	struct fs_cache *cache;
	fs_cache_cb cb;
	void *arg;
	char *key, *ver;
	size_t len; /* bytes asked for, all in buf on success */
	uint8_t buf[];
};

static struct edge *edge_find_locked(struct fs_cache *c, const char *key,
				     const char *ver, uint64_t off, size_t len,
				     uint64_t h)
{
	struct edge *e = c->edges[h % EDGE_BUCKETS];

	for (; e; e = e->hnext)
		if (e->hash == h && e->off == off && e->len == len &&
		    !strcmp(e->key, key) && !strcmp(e->ver, ver))
			return e;
	return NULL;
}

static void edge_free(struct edge *e)
{
	free(e->key);
	free(e->ver);
	free(e);
}

/* Keep the answer of range_get `g` (lock held; out of memory: not kept). */
static void edge_put_locked(struct fs_cache *c, const struct range_get *g)
{
	uint64_t h = entry_hash(g->key, g->ver, g->req.off);
	struct edge *e, *old, **pp;

	if (g->len > EDGE_LEN_MAX ||
	    edge_find_locked(c, g->key, g->ver, g->req.off, g->len, h))
		return;
	e = malloc(sizeof(*e) + g->len);
	if (!e)
		return;
	e->key = strdup(g->key);
	e->ver = strdup(g->ver);
	if (!e->key || !e->ver) {
		edge_free(e);
		return;
	}
	e->hash = h;
	e->off = g->req.off;
	e->len = g->len;
	memcpy(e->data, g->buf, g->len);
	old = c->edge_ring[c->edge_next];
	if (old) {
		for (pp = &c->edges[old->hash % EDGE_BUCKETS]; *pp != old;
		     pp = &(*pp)->hnext)
			;
		*pp = old->hnext;
		edge_free(old);
	}
	c->edge_ring[c->edge_next] = e;
	c->edge_next = (c->edge_next + 1) % EDGE_SLOTS;
	e->hnext = c->edges[h % EDGE_BUCKETS];
	c->edges[h % EDGE_BUCKETS] = e;
}

static void range_done(struct ost_req *req)
{
	struct range_get *g = (struct range_get *)req;
	struct fs_cache *c = g->cache;
	int rc = req->rc;

	if (resent_if_short(c, req, &rc))
		return;
	if (rc == 0) {
		pthread_mutex_lock(&c->lock);
		edge_put_locked(c, g);
		pthread_mutex_unlock(&c->lock);
	}
	g->cb(g->arg, rc, rc ? NULL : g->buf, rc ? 0 : g->len);
	free(g->key);
	free(g->ver);
	free(g);
	pthread_mutex_lock(&c->lock);
	fetch_finished_locked(c);
	pthread_mutex_unlock(&c->lock);
}

bool fs_cache_has(struct fs_cache *c, const char *key, const char *ver,
		  uint64_t blk)
{
	bool has;

	if (!ver)
		ver = "";
	pthread_mutex_lock(&c->lock);
	has = table_find(c, key, ver, blk, entry_hash(key, ver, blk)) != NULL;
	pthread_mutex_unlock(&c->lock);
	return has;
}

int fs_cache_get_range(struct fs_cache *c, const char *key, const char *ver,
		       uint64_t obj_size, uint64_t off, size_t len,
		       fs_cache_cb cb, void *arg)
{
	uint64_t blk = off / c->block_size;
	struct range_waiter *w;
	struct range_get *g;
	struct edge *e;
	int rc;

	if (!ver)
		ver = "";
	if (!len || off + len > obj_size ||
	    off + len > (blk + 1) * c->block_size)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (table_find(c, key, ver, blk, entry_hash(key, ver, blk))) {
		/* cached or on its way: take the piece from the block (if it
		 * is evicted in between, the block is fetched again) */
		pthread_mutex_unlock(&c->lock);
		w = malloc(sizeof(*w));
		if (!w)
			return -ENOMEM;
		w->cb = cb;
		w->arg = arg;
		w->skip = off - blk * c->block_size;
		w->len = len;
		rc = fs_cache_get(c, key, ver, obj_size, blk, range_from_block,
				  w);
		if (rc < 0)
			free(w);
		return rc;
	}
	e = edge_find_locked(c, key, ver, off, len,
			     entry_hash(key, ver, off));
	if (e) {
		/* fetched before: answer from a copy (it may go once the
		 * lock is dropped) */
		uint8_t *copy = malloc(len);

		if (copy)
			memcpy(copy, e->data, len);
		c->stats.partial_hits += copy != NULL;
		pthread_mutex_unlock(&c->lock);
		if (!copy)
			return -ENOMEM;
		cb(arg, 0, copy, len);
		free(copy);
		return 0;
	}
	c->stats.partial++;
	c->stats.fetching++;
	pthread_mutex_unlock(&c->lock);
	g = calloc(1, sizeof(*g) + len);
	if (g) {
		g->key = strdup(key);
		g->ver = strdup(ver);
	}
	if (!g || !g->key || !g->ver) {
		if (g) {
			free(g->key);
			free(g->ver);
		}
		free(g);
		rc = -ENOMEM;
		goto undo;
	}
	g->cache = c;
	g->len = len;
	g->cb = cb;
	g->arg = arg;
	g->req.op = OST_GET;
	g->req.key = g->key;
	g->req.off = off;
	g->req.len = len;
	g->req.buf = g->buf;
	g->req.done = range_done;
	rc = ost_submit(c->st, &g->req);
	if (rc == 0)
		return 0;
	free(g->key);
	free(g->ver);
	free(g);
undo:
	pthread_mutex_lock(&c->lock);
	fetch_finished_locked(c);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int fs_cache_new(struct ost *st, uint64_t budget, uint32_t block_size,
		 struct fs_cache **out)
{
	struct fs_cache *c;

	if (block_size == 0)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->st = st;
	c->budget = budget;
	c->block_size = block_size;
	c->slab_size = block_size > SLAB_BYTES ? block_size : SLAB_BYTES;
	/* Enough buckets for the budget in blocks, at least 1024. */
	c->n_buckets = budget / block_size * 2;
	if (c->n_buckets < 1024)
		c->n_buckets = 1024;
	c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	*out = c;
	return 0;
}

void fs_cache_free(struct fs_cache *c)
{
	size_t i;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	while (c->stats.fetching)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < c->n_buckets; i++) {
		struct cache_entry *e = c->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			entry_destroy(e);
		}
	}
	free(c->buckets);
	for (i = 0; i < EDGE_SLOTS; i++)
		if (c->edge_ring[i])
			edge_free(c->edge_ring[i]);
	for (i = 0; i < c->n_slabs; i++)
		munmap(c->slabs[i], c->slab_size + HUGE_PAGE);
	free(c->slabs);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->idle);
	free(c);
}

void fs_cache_set_disk(struct fs_cache *c, struct fs_dcache *d)
{
	c->disk = d;
}

uint32_t fs_cache_block_size(const struct fs_cache *c)
{
	return c->block_size;
}

void fs_cache_stats_get(struct fs_cache *c, struct fs_cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	pthread_mutex_unlock(&c->lock);
}
