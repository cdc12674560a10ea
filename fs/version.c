/*
 * version.c - committed versions: loading a manifest or a plain object, and
 * reading its bytes through the block cache.
 *
 * A read is split into pieces: skeleton bytes are copied from the manifest
 * in memory; object ranges become block-cache requests.  The FUSE reply is
 * sent by whichever completion finishes last, so a FUSE worker thread never
 * waits for the store.  Sequential reads on a handle grow a readahead window
 * that prefetches the following objects' blocks; a seek resets it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"
#include "log.h"

/* First GET of a key: enough for the header and small manifests at once. */
#define FIRST_GET 65536
/* Most pieces handled per h5m_map() call. */
#define PIECES 64
/* How far a read may start from where the previous one (and its page
 * cache fill) ended and still count as sequential.  Small: a fill stores
 * whole objects, so a program reading on reaches the daemon right where
 * the last fill ended; random hyperslab reads within a megabyte of each
 * other (a small file of small chunks) counted as sequential with 1 MiB
 * and read the whole file ahead. */
#define SEQ_SLACK (64u << 10)
/* Manifests larger than this are refused (corrupt or hostile). */
#define MANIFEST_MAX (4ULL << 30)

void fs_version_get(struct fs_version *v)
{
	__atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
}

void fs_version_put(struct fs_version *v)
{
	if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL))
		return;
	h5m_manifest_free(v->full); /* borrows from man: first */
	h5m_manifest_free(v->man);
	free(v->mkey);
	free(v->key);
	free(v);
}

int fs_version_load(struct fs_ctx *ctx, const char *key,
		    struct fs_version **out)
{
	return fs_version_load_sized(ctx, key, 0, false, out);
}

/* Empty the slot h. */
static void head_clear(struct fs_kept_head *h)
{
	free(h->key);
	free(h->buf);
	h->key = NULL;
	h->buf = NULL;
}

/* Keep the first `len` bytes `buf` of the object at `key` (answered with
 * `info`) in ctx->heads, in place of the oldest; an older head of the same
 * key goes. */
static void heads_keep(struct fs_ctx *ctx, const char *key, const void *buf,
		       size_t len, const struct ost_info *info)
{
	struct fs_kept_head *h;
	char *k = strdup(key);
	uint8_t *b = malloc(len ? len : 1);
	unsigned i;

	if (!k || !b) {
		free(k);
		free(b);
		return;
	}
	memcpy(b, buf, len);
	pthread_mutex_lock(&ctx->heads_lock);
	for (i = 0; i < FS_KEPT_HEADS; i++)
		if (ctx->heads[i].key && !strcmp(ctx->heads[i].key, key))
			head_clear(&ctx->heads[i]);
	h = &ctx->heads[ctx->heads_next];
	ctx->heads_next = (ctx->heads_next + 1) % FS_KEPT_HEADS;
	head_clear(h);
	h->key = k;
	h->buf = b;
	h->len = len;
	h->info = *info;
	h->t = fs_now();
	pthread_mutex_unlock(&ctx->heads_lock);
}

/* Take (remove) the head kept for `key` if it is younger than
 * attr_timeout: copy at most `cap` of its bytes into buf and its GET's
 * answer into *info.  Returns the bytes copied; 0 if none was kept. */
static size_t heads_take(struct fs_ctx *ctx, const char *key, void *buf,
			 size_t cap, struct ost_info *info)
{
	size_t got = 0;
	unsigned i;

	pthread_mutex_lock(&ctx->heads_lock);
	for (i = 0; i < FS_KEPT_HEADS; i++) {
		struct fs_kept_head *h = &ctx->heads[i];

		if (!h->key || strcmp(h->key, key))
			continue;
		if (fs_now() - h->t < ctx->cfg.attr_timeout) {
			got = h->len < cap ? h->len : cap;
			memcpy(buf, h->buf, got);
			*info = h->info;
		}
		head_clear(h);
		break;
	}
	pthread_mutex_unlock(&ctx->heads_lock);
	return got;
}

void fs_version_heads_free(struct fs_ctx *ctx)
{
	unsigned i;

	for (i = 0; i < FS_KEPT_HEADS; i++)
		head_clear(&ctx->heads[i]);
}

int fs_version_load_sized(struct fs_ctx *ctx, const char *key, uint64_t hint,
			  bool kept, struct fs_version **out)
{
	/* a hint is the head of a manifest: what a load reads */
	size_t first = hint >= H5M_HEADER_SIZE && hint <= MANIFEST_MAX
			       ? (size_t)hint
			       : FIRST_GET;
	struct fs_version *v;
	struct ost_info info;
	struct h5m_header hdr;
	uint8_t *buf = NULL;
	size_t got = 0;
	int rc;

	buf = malloc(first);
	v = calloc(1, sizeof(*v));
	if (!buf || !v) {
		rc = -ENOMEM;
		goto out;
	}
	v->refs = 1;
	/* what the lookup brought, else a GET */
	got = kept ? heads_take(ctx, key, buf, first, &info) : 0;
	if (!got) {
		rc = ost_get(ctx->st, key, 0, buf, first, &got, &info);
		if (rc < 0)
			goto out;
	}
	v->mtime_ns = info.mtime_ns;
	memcpy(v->etag, info.etag, sizeof(v->etag));
	if (!h5m_is_manifest(buf, got)) {
		v->key = strdup(key);
		v->size = info.size;
		rc = v->key ? 0 : -ENOMEM;
		goto out;
	}
	rc = h5m_header_peek(buf, got, &hdr);
	if (rc < 0)
		goto corrupt;
	/* the head is the whole object, or (format 3) an edge section
	 * follows it */
	if (hdr.manifest_size > info.size || hdr.manifest_size > MANIFEST_MAX ||
	    (hdr.version < 3 && hdr.manifest_size != info.size))
		goto corrupt;
	/* of an edge section the first GET brought only part: not used */
	if (got > hdr.manifest_size && got < info.size)
		got = hdr.manifest_size;
	if (hdr.manifest_size > got) {
		uint8_t *nb = realloc(buf, hdr.manifest_size);
		size_t more = 0;

		if (!nb) {
			rc = -ENOMEM;
			goto out;
		}
		buf = nb;
		rc = ost_get(ctx->st, key, got, buf + got,
			     hdr.manifest_size - got, &more, &info);
		if (rc < 0)
			goto out;
		/* The object changed between the two GETs: a new commit
		 * landed.  Ask the caller to come again. */
		if (strcmp(info.etag, v->etag) ||
		    got + more != hdr.manifest_size) {
			rc = -EAGAIN;
			goto out;
		}
		got += more;
	}
	rc = h5m_manifest_decode(buf, got, &v->man);
	if (rc < 0)
		goto corrupt;
	v->size = h5m_file_size(v->man);
	{
		uint64_t eoff, elen;

		if (h5m_edges_pending(v->man, &eoff, &elen)) {
			if (eoff + elen != info.size || elen > MANIFEST_MAX) {
				rc = -EBADMSG;
				goto corrupt;
			}
			v->mkey = strdup(key);
			if (!v->mkey) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	goto out;
corrupt:
	ch5_err("%s: the manifest is corrupt (%s); not reading it", key,
		strerror(-rc == EPROTONOSUPPORT ? EPROTONOSUPPORT : EBADMSG));
	if (rc != -EPROTONOSUPPORT)
		rc = -EBADMSG;
out:
	free(buf);
	if (rc < 0) {
		if (v)
			fs_version_put(v);
		return rc;
	}
	*out = v;
	return 0;
}

int fs_vstat_parse(const char *key, const void *buf, size_t got,
		   const struct ost_info *info, struct fs_vstat *out)
{
	struct h5m_header hdr;

	memset(out, 0, sizeof(*out));
	out->object_size = info->size;
	out->mtime_ns = info->mtime_ns;
	memcpy(out->etag, info->etag, sizeof(out->etag));
	out->size = info->size;
	if (!h5m_is_manifest(buf, got))
		return 0;
	if (h5m_header_peek(buf, got, &hdr) < 0) {
		ch5_err("%s: the manifest header is corrupt", key);
		return -EBADMSG;
	}
	out->manifest = true;
	out->size = hdr.file_size;
	out->object_size = hdr.manifest_size; /* the head, all a load reads */
	return 0;
}

int fs_version_lookup(struct fs_ctx *ctx, const char *key,
		      struct fs_vstat *out)
{
	uint8_t *buf = malloc(FS_LOOKUP_GET);
	struct ost_info info;
	size_t got = 0, keep;
	int rc;

	if (!buf)
		return fs_version_stat(ctx, key, out);
	rc = ost_get(ctx->st, key, 0, buf, FS_LOOKUP_GET, &got, &info);
	if (rc == 0)
		rc = fs_vstat_parse(key, buf, got, &info, out);
	if (rc == 0) {
		/* a manifest: its head, as far as it came; a plain object:
		 * enough to tell it is not a manifest (its version is its
		 * ETag) */
		keep = out->manifest ? out->object_size : H5M_HEADER_SIZE;
		heads_keep(ctx, key, buf, got < keep ? got : keep, &info);
	}
	free(buf);
	return rc;
}

int fs_version_stat(struct fs_ctx *ctx, const char *key,
		    struct fs_vstat *out)
{
	uint8_t buf[H5M_HEADER_SIZE];
	struct ost_info info;
	size_t got = 0;
	int rc;

	rc = ost_get(ctx->st, key, 0, buf, sizeof(buf), &got, &info);
	if (rc < 0)
		return rc;
	return fs_vstat_parse(key, buf, got, &info, out);
}

/* ---- edge sections ------------------------------------------------------ */

/* Merge the edge section bytes buf[0..len) into v (unless someone did). */
static void edges_publish(struct fs_version *v, const uint8_t *buf,
			  size_t len)
{
	struct h5m_manifest *full = NULL, *none = NULL;
	int rc = h5m_manifest_with_edges(v->man, buf, len, &full);

	if (rc < 0) {
		ch5_err("%s: the manifest's edge section is unreadable (%s); "
			"reading those pages from the chunks",
			v->mkey, strerror(-rc));
		return;
	}
	if (!__atomic_compare_exchange_n(&v->full, &none, full, false,
					 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		h5m_manifest_free(full);
}

/* A read's edge piece waiting for the edge section on its way. */
struct edge_wait {
	struct edge_wait *next;
	uint64_t file_off; /* where the bytes are in the file */
	uint64_t obj_size; /* the object's: for the fallback */
	uint64_t off;	   /* where they are in the object */
	size_t len;
	fs_cache_cb cb;
	void *arg;
	char key[]; /* the object's */
};

/* Answer an edge piece: from v's merged fill if it holds the bytes, else
 * by the cache (a block being fetched, or a ranged GET). */
static int edge_serve(struct fs_ctx *ctx, struct fs_version *v,
		      const char *key, uint64_t obj_size, uint64_t file_off,
		      uint64_t off, size_t len, fs_cache_cb cb, void *arg)
{
	const struct h5m_manifest *m =
		__atomic_load_n(&v->full, __ATOMIC_ACQUIRE);
	struct h5m_piece pc;

	if (m && h5m_map(m, file_off, len, &pc, 1) == 1 && pc.skel &&
	    pc.len == len) {
		cb(arg, 0, pc.skel, len);
		return 0;
	}
	return fs_cache_get_range(ctx->cache, key, fs_version_tag(v),
				  obj_size, off, len, cb, arg);
}

/* The edge section landed (or will not): answer the pieces waiting. */
static void edges_done(struct fs_ctx *ctx, struct fs_version *v)
{
	struct edge_wait *w, *next;

	pthread_mutex_lock(&ctx->edges_lock);
	w = v->waiting;
	v->waiting = NULL;
	__atomic_store_n(&v->edges, 2, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&ctx->edges_cond);
	pthread_mutex_unlock(&ctx->edges_lock);
	for (; w; w = next) {
		int rc;

		next = w->next;
		rc = edge_serve(ctx, v, w->key, w->obj_size, w->file_off,
				w->off, w->len, w->cb, w->arg);
		if (rc < 0)
			w->cb(w->arg, rc, NULL, 0);
		free(w);
	}
}

int fs_version_get_edge(struct fs_ctx *ctx, struct fs_version *v,
			const char *key, uint64_t obj_size, uint64_t file_off,
			uint64_t off, size_t len, fs_cache_cb cb, void *arg)
{
	if (__atomic_load_n(&v->edges, __ATOMIC_ACQUIRE) == 1) {
		size_t kl = strlen(key) + 1;
		struct edge_wait *w = malloc(sizeof(*w) + kl);

		if (!w)
			return -ENOMEM;
		w->file_off = file_off;
		w->obj_size = obj_size;
		w->off = off;
		w->len = len;
		w->cb = cb;
		w->arg = arg;
		memcpy(w->key, key, kl);
		pthread_mutex_lock(&ctx->edges_lock);
		if (v->edges == 1) {
			w->next = v->waiting;
			v->waiting = w;
			w = NULL;
		}
		pthread_mutex_unlock(&ctx->edges_lock);
		if (!w)
			return 0;
		free(w); /* landed meanwhile */
	}
	return edge_serve(ctx, v, key, obj_size, file_off, off, len, cb,
			  arg);
}

struct edges_get {
	struct ost_req req;
	struct fs_ctx *ctx;
	struct fs_version *v; /* referenced */
};

static void edges_arrived(struct ost_req *req)
{
	struct edges_get *g = req->arg;
	struct fs_version *v = g->v;

	/* Another commit replaced the manifest since v was read: the
	 * bytes are not v's (v's chunks are read for those pages). */
	if (req->rc == 0 && req->got == req->len &&
	    !strcmp(req->info.etag, v->etag))
		edges_publish(v, req->buf, req->len);
	else
		ch5_debug("%s: edge section not read (%d)", v->mkey, req->rc);
	edges_done(g->ctx, v);
	free(req->buf);
	free(g);
	fs_version_put(v);
}

void fs_version_edges(struct fs_ctx *ctx, struct fs_version *v)
{
	uint64_t off, len;
	struct edges_get *g;
	int zero = 0;

	if (!v->man || !v->mkey || __atomic_load_n(&v->edges, __ATOMIC_ACQUIRE) ||
	    !h5m_edges_pending(v->man, &off, &len) ||
	    !__atomic_compare_exchange_n(&v->edges, &zero, 1, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return;
	g = calloc(1, sizeof(*g));
	if (g)
		g->req.buf = malloc(len ? (size_t)len : 1);
	if (!g || !g->req.buf) {
		free(g);
		edges_done(ctx, v); /* pages from the chunks */
		return;
	}
	fs_version_get(v);
	g->ctx = ctx;
	g->v = v;
	g->req.op = OST_GET;
	g->req.key = v->mkey;
	g->req.off = off;
	g->req.len = (size_t)len;
	g->req.done = edges_arrived;
	g->req.arg = g;
	if (ost_submit(ctx->st, &g->req) < 0) {
		free(g->req.buf);
		free(g);
		edges_done(ctx, v);
		fs_version_put(v);
	}
}

const struct h5m_manifest *fs_version_manifest(struct fs_ctx *ctx,
					       struct fs_version *v)
{
	const struct h5m_manifest *m;
	struct ost_info info;
	uint64_t off, len;
	uint8_t *buf;
	size_t got = 0;
	int zero = 0;
	bool mine;

	m = __atomic_load_n(&v->full, __ATOMIC_ACQUIRE);
	if (m || !v->man || !v->mkey || !h5m_edges_pending(v->man, &off, &len))
		return m ? m : v->man;
	/* The GET of a read's is out: wait for it rather than send another */
	mine = __atomic_compare_exchange_n(&v->edges, &zero, 1, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	if (!mine) {
		pthread_mutex_lock(&ctx->edges_lock);
		while (v->edges == 1)
			pthread_cond_wait(&ctx->edges_cond, &ctx->edges_lock);
		pthread_mutex_unlock(&ctx->edges_lock);
		m = __atomic_load_n(&v->full, __ATOMIC_ACQUIRE);
		if (m)
			return m;
	}
	buf = malloc(len ? (size_t)len : 1);
	if (buf && ost_get(ctx->st, v->mkey, off, buf, (size_t)len, &got,
			   &info) == 0 &&
	    got == len && !strcmp(info.etag, v->etag))
		edges_publish(v, buf, (size_t)len);
	free(buf);
	if (mine)
		edges_done(ctx, v);
	m = __atomic_load_n(&v->full, __ATOMIC_ACQUIRE);
	return m ? m : v->man;
}

/* A read in progress: many block requests filling one buffer. */
struct read_ctx {
	char *buf;
	size_t size;	  /* bytes the reply will carry */
	int pending;	  /* atomic: block requests + 1 while issuing */
	int rc;		  /* atomic: first error */
	fuse_req_t req;	  /* async: reply to this... */
	pthread_mutex_t lock; /* ...sync: signal this */
	pthread_cond_t cond;
	bool done;
	/* async: what a retry on a newer version needs (see reread) */
	struct fs_ctx *ctx;
	struct fs_handle *fh; /* NULL: no retry */
	uint64_t off;
};

static void version_read(struct fs_ctx *ctx, fuse_req_t req,
			 struct fs_version *v, struct fs_handle *fh,
			 size_t size, uint64_t off, bool may_retry);

/* A read found an object of its version gone: another writer committed
 * a new version and deleted what it superseded.  Load the current version
 * and answer the read from it (once).  Runs on its own thread: a pool
 * worker must not wait for the pool. */
static void *reread(void *arg)
{
	struct read_ctx *rd = arg;
	struct fs_ctx *ctx = rd->ctx;
	struct fs_handle *fh = rd->fh;
	struct fs_inode *in = fh->inode;
	struct fs_version *nv = NULL, *old = NULL;
	bool gone = false;
	char *key = fs_inode_key(ctx, in);
	int rc = key ? fs_version_load(ctx, key, &nv) : -ENOMEM;

	if (rc < 0) {
		ch5_err("%s: an object of the version being read is gone and "
			"the file cannot be read again (%s)",
			key ? key : "?", strerror(-rc));
		fuse_reply_err(rd->req, rc == -ENOENT ? ESTALE : -rc);
	} else {
		ch5_warn("%s: read the new version %s: the one this handle "
			 "had was replaced", key, nv->etag);
		pthread_mutex_lock(&in->lock);
		if (fh->ver) {
			old = fh->ver;
			fh->ver = nv;
			fs_version_get(nv);
		}
		/* The inode's version is gone too: page cache stores of it
		 * stop, and the pages it left go. */
		if (old && in->ver == old && !in->stage) {
			in->ver = nv;
			in->ver_checked = fs_now();
			fs_version_get(nv);
			fs_version_put(old);
			gone = true;
		}
		pthread_mutex_unlock(&in->lock);
		if (gone)
			fs_pagefill_invalidate(ctx, in);
		if (old)
			fs_version_put(old);
		version_read(ctx, rd->req, nv, fh, rd->size, rd->off, false);
		fs_version_put(nv);
	}
	free(key);
	free(rd->buf);
	free(rd);
	return NULL;
}

struct read_part {
	struct read_ctx *rd;
	char *dst;
	size_t skip; /* offset in the block */
	size_t len;
};

static void read_finish(struct read_ctx *rd)
{
	if (rd->req) {
		pthread_t t;
		pthread_attr_t at;

		if (rd->rc == -ENOENT && rd->fh) {
			pthread_attr_init(&at);
			pthread_attr_setdetachstate(&at,
						    PTHREAD_CREATE_DETACHED);
			if (pthread_create(&t, &at, reread, rd) == 0) {
				pthread_attr_destroy(&at);
				return;
			}
			pthread_attr_destroy(&at);
		}
		if (rd->rc)
			fuse_reply_err(rd->req, -rd->rc);
		else
			fuse_reply_buf(rd->req, rd->buf, rd->size);
		free(rd->buf);
		free(rd);
		return;
	}
	pthread_mutex_lock(&rd->lock);
	rd->done = true;
	pthread_cond_signal(&rd->cond);
	pthread_mutex_unlock(&rd->lock);
}

static void read_part_put(struct read_ctx *rd)
{
	if (__atomic_sub_fetch(&rd->pending, 1, __ATOMIC_ACQ_REL) == 0)
		read_finish(rd);
}

static void read_fail(struct read_ctx *rd, int rc)
{
	int zero = 0;

	__atomic_compare_exchange_n(&rd->rc, &zero, rc, false,
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static void block_arrived(void *arg, int rc, const uint8_t *data, size_t len)
{
	struct read_part *p = arg;
	struct read_ctx *rd = p->rd;

	if (rc == 0 && p->skip + p->len > len)
		rc = -EIO;
	if (rc)
		read_fail(rd, rc);
	else
		memcpy(p->dst, data + p->skip, p->len);
	free(p);
	read_part_put(rd);
}

int fs_version_object(const struct fs_version *v, const struct h5m_piece *pc,
		      char *key, size_t keysz, uint64_t *obj_size)
{
	uint64_t eoff;
	int n;

	if (!v->man) {
		n = snprintf(key, keysz, "%s", v->key);
		*obj_size = v->size;
		return n < (int)keysz ? 0 : -ENAMETOOLONG;
	}
	n = h5m_extent_key(v->man, pc->extent, key, keysz);
	if (n < 0)
		return n;
	h5m_extent(v->man, pc->extent, &eoff, obj_size);
	return 0;
}

const char *fs_version_tag(const struct fs_version *v)
{
	return v->man ? NULL : v->etag;
}

size_t fs_version_map(const struct fs_version *v, uint64_t off, uint64_t len,
		      struct h5m_piece *pcs, size_t max)
{
	if (v->man) {
		const struct h5m_manifest *m =
			__atomic_load_n(&v->full, __ATOMIC_ACQUIRE);

		return h5m_map(m ? m : v->man, off, len, pcs, max);
	}
	if (off >= v->size || !len || !max)
		return 0;
	memset(pcs, 0, sizeof(*pcs));
	pcs->file_off = off;
	pcs->len = v->size - off < len ? v->size - off : len;
	pcs->obj_off = off;
	return 1;
}

/* Issue the block requests that fill rd->buf from [off, off+rd->size). */
static void read_issue(struct fs_ctx *ctx, struct fs_version *v,
		       struct read_ctx *rd, uint64_t off)
{
	struct h5m_piece pcs[PIECES];
	uint32_t bs = fs_cache_block_size(ctx->cache);
	uint64_t pos = off, end = off + rd->size;
	char key[OST_KEY_MAX + 1];

	while (pos < end && !__atomic_load_n(&rd->rc, __ATOMIC_ACQUIRE)) {
		size_t n = fs_version_map(v, pos, end - pos, pcs, PIECES), i;

		if (n == 0) {
			read_fail(rd, -EIO);
			break;
		}
		for (i = 0; i < n; i++) {
			const struct h5m_piece *pc = &pcs[i];
			char *dst = rd->buf + (pc->file_off - off);
			uint64_t obj_size, o, pend;
			int rc;

			if (pc->skel) {
				memcpy(dst, pc->skel, pc->len);
				continue;
			}
			rc = fs_version_object(v, pc, key, sizeof(key), &obj_size);
			if (rc < 0) {
				read_fail(rd, rc);
				break;
			}
			pend = pc->obj_off + pc->len;
			for (o = pc->obj_off; o < pend;) {
				uint64_t blk = o / bs;
				uint64_t bend = (blk + 1) * bs;
				struct read_part *p = malloc(sizeof(*p));

				if (bend > pend)
					bend = pend;
				if (!p) {
					read_fail(rd, -ENOMEM);
					break;
				}
				p->rd = rd;
				p->dst = dst + (o - pc->obj_off);
				p->skip = o - blk * bs;
				p->len = bend - o;
				__atomic_add_fetch(&rd->pending, 1,
						   __ATOMIC_ACQ_REL);
				if (fs_piece_is_edge(pc, obj_size)) {
					p->skip = 0;
					rc = fs_version_get_edge(
						ctx, v, key, obj_size,
						pc->file_off +
							(o - pc->obj_off),
						o, p->len, block_arrived, p);
				} else {
					rc = fs_cache_get(ctx->cache, key,
							  fs_version_tag(v),
							  obj_size, blk,
							  block_arrived, p);
				}
				if (rc < 0) {
					free(p);
					read_fail(rd, rc);
					read_part_put(rd);
					break;
				}
				o = bend;
			}
		}
		pos = pcs[n - 1].file_off + pcs[n - 1].len;
	}
}

/* Warm the cache with the objects' blocks of [off, end). */
static void prefetch(struct fs_ctx *ctx, struct fs_version *v, uint64_t off,
		     uint64_t end)
{
	struct h5m_piece pcs[PIECES];
	uint32_t bs = fs_cache_block_size(ctx->cache);
	char key[OST_KEY_MAX + 1];

	while (off < end) {
		size_t n = fs_version_map(v, off, end - off, pcs, PIECES), i;

		if (n == 0)
			return;
		for (i = 0; i < n; i++) {
			uint64_t obj_size, blk, last;

			if (pcs[i].skel ||
			    fs_version_object(v, &pcs[i], key, sizeof(key),
					 &obj_size) < 0)
				continue;
			last = (pcs[i].obj_off + pcs[i].len - 1) / bs;
			for (blk = pcs[i].obj_off / bs; blk <= last; blk++)
				fs_cache_get(ctx->cache, key, fs_version_tag(v),
					     obj_size, blk, NULL, NULL);
		}
		off = pcs[n - 1].file_off + pcs[n - 1].len;
	}
}

uint64_t fs_version_dataset_end(const struct fs_version *v, uint64_t end,
				uint64_t want)
{
	size_t i;

	if (!v->man || end == 0)
		return want;
	i = h5m_extent_find(v->man, end - 1);
	if (i >= h5m_extent_count(v->man))
		return end; /* only metadata follows */
	end = h5m_dataset_run_end(v->man, i, want);
	return end < want ? end : want;
}

/* Has a sequential run [start, end) of v gone on long enough to read
 * ahead: through at least RA_TRIGGER_OBJECTS objects of an HDF5 file?  A
 * hyperslab read touches a few neighbouring chunks, which lie in file order
 * too; reading ahead after those fetched chunks nobody asked for (3.7x the
 * bytes of the chunks touched by 100 random 64x64 reads).  A plain object
 * reads ahead at once. */
#define RA_TRIGGER_OBJECTS 3
static bool run_long_enough(const struct fs_version *v, uint64_t start,
			    uint64_t end)
{
	if (!v->man)
		return true;
	/* not counting the object before's last bytes on the first page nor
	 * the next object's first bytes on the last page */
	if (end > start + 2 * FS_EDGE_MAX) {
		start += FS_EDGE_MAX;
		end -= FS_EDGE_MAX;
	}
	return h5m_extent_find(v->man, end - 1) >=
	       h5m_extent_find(v->man, start) + RA_TRIGGER_OBJECTS - 1;
}

/* Grow or reset the readahead window of fh after a read of [off, end) of
 * version v and return the range to prefetch in *ra_off and *ra_end (empty
 * if none), clipped to the dataset being read (fs_version_dataset_end). */
static void readahead_plan(struct fs_ctx *ctx, struct fs_handle *fh,
			   const struct fs_version *v, uint64_t off,
			   uint64_t end, uint64_t *ra_off, uint64_t *ra_end)
{
	uint64_t max = ctx->cfg.readahead;

	*ra_off = *ra_end = 0;
	if (max == 0)
		return;
	pthread_mutex_lock(&fh->lock);
	/* Several reads may be in flight at once and arrive out of order: a
	 * read that starts within SEQ_SLACK of where the last one ended
	 * still counts as sequential; so does one at most SEQ_SLACK past
	 * what was prefetched (reads the page cache answered never reach
	 * us). */
	if (off + SEQ_SLACK >= fh->next_off &&
	    off <= (fh->ra_until > fh->next_off ? fh->ra_until
						 : fh->next_off) +
			   SEQ_SLACK &&
	    fh->next_off) {
		uint64_t w = fh->ra_window ? fh->ra_window * 2
					   : 2 * (uint64_t)ctx->cfg.cache_block;

		if (fh->ra_window || run_long_enough(v, fh->seq_start, end))
			fh->ra_window = w > max ? max : w;
	} else {
		fh->ra_window = 0;
		fh->ra_until = 0;
		fh->seq_start = off;
	}
	if (end > fh->next_off || !fh->ra_window)
		fh->next_off = end;
	if (fh->ra_window) {
		uint64_t from = fh->ra_until > end ? fh->ra_until : end;

		uint64_t stop =
			fs_version_dataset_end(v, end, end + fh->ra_window);

		if (stop > from) {
			*ra_off = from;
			*ra_end = stop;
			fh->ra_until = stop;
		}
	}
	pthread_mutex_unlock(&fh->lock);
}

/* Does [off, off+len) of v hold object bytes that are not also in the
 * manifest (page fill)? */
static bool touches_data(const struct fs_version *v, uint64_t off,
			 uint64_t len)
{
	struct h5m_piece pcs[PIECES];
	uint64_t end = off + len;

	while (off < end) {
		size_t n = fs_version_map(v, off, end - off, pcs, PIECES), i;

		if (n == 0)
			return false;
		for (i = 0; i < n; i++)
			if (!pcs[i].skel)
				return true;
		off = pcs[n - 1].file_off + pcs[n - 1].len;
	}
	return false;
}

void fs_version_read(struct fs_ctx *ctx, fuse_req_t req,
		     struct fs_version *v, struct fs_handle *fh, size_t size,
		     uint64_t off)
{
	version_read(ctx, req, v, fh, size, off, true);
}

static void version_read(struct fs_ctx *ctx, fuse_req_t req,
			 struct fs_version *v, struct fs_handle *fh,
			 size_t size, uint64_t off, bool may_retry)
{
	struct read_ctx *rd;
	uint64_t ra_off, ra_end, fend;
	/* the kernel caches what this handle reads (not -o direct_io, not
	 * a writer) */
	bool fill = fh && !fh->writable && !ctx->cfg.direct_io, data;
	bool inside = false, in_window = false;

	if (off >= v->size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > v->size - off)
		size = v->size - off;
	fend = off + size;
	rd = calloc(1, sizeof(*rd));
	if (rd)
		rd->buf = malloc(size ? size : 1);
	if (!rd || !rd->buf) {
		free(rd);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rd->size = size;
	rd->req = req;
	rd->pending = 1;
	rd->ctx = ctx;
	rd->off = off;
	/* Only a read-only handle's own version may be replaced under it; a
	 * writer's version is its stage's business. */
	rd->fh = may_retry && fh && fh->ver ? fh : NULL;
	/* Only reads of data fetch more than asked and move the readahead
	 * window: libhdf5 reads the metadata of a file (in memory) front to
	 * back, and taking that for a sequential read would prefetch every
	 * chunk between the metadata blocks.  A read through the page cache
	 * fetches the objects it touches whole, into the page cache. */
	ra_off = ra_end = 0;
	data = fh && touches_data(v, off, size);
	if (fill) {
		/* The program got to a page before the store that is
		 * bringing it in: inside the last fill it neither fills again
		 * nor moves the readahead stream; inside the readahead window
		 * it moves the stream on, but the window's stores have it. */
		pthread_mutex_lock(&fh->lock);
		inside = off >= fh->fill_off && off + size <= fh->fill_end;
		in_window = !inside && fh->ra_until && off >= fh->fill_off &&
			    off + size <= fh->ra_until;
		pthread_mutex_unlock(&fh->lock);
	}
	if (data)
		fs_version_edges(ctx, v);
	if (data && fill && !inside && !in_window) {
		fend = fs_pagefill(ctx, fh->inode, v, off, off + size, off,
				   off + size, true);
		pthread_mutex_lock(&fh->lock);
		fh->fill_off = off;
		fh->fill_end = fend;
		pthread_mutex_unlock(&fh->lock);
	}
	/* After the fill: the blocks it asks for are then in the cache's
	 * table, and the read's edge pieces join them instead of sending a
	 * ranged GET of their own (fs_cache_get_range). */
	read_issue(ctx, v, rd, off);
	if ((data && !inside) || in_window)
		readahead_plan(ctx, fh, v, off, fend, &ra_off, &ra_end);
	/* The first page of a window is left out of the page cache: the
	 * program's read of it reaches us and moves the stream on while the
	 * rest of the window is read from memory (the kernel's readahead
	 * mark, done here).  Before the reply: after it, the handle may be
	 * released. */
	if (ra_end > ra_off) {
		if (fill)
			fs_pagefill(ctx, fh->inode, v, ra_off, ra_end, ra_off,
				    ra_off + 1, false);
		else
			prefetch(ctx, v, ra_off, ra_end);
	}
	/* a read-only handle's data read: the whole file, if it is small */
	if (data && !fh->writable && fh->ver)
		fs_whole_start(ctx, v, off, fend);
	read_part_put(rd); /* may reply and free rd */
}

ssize_t fs_version_pread(struct fs_ctx *ctx, struct fs_version *v, void *buf,
			 size_t len, uint64_t off)
{
	struct read_ctx rd;

	if (off >= v->size)
		return 0;
	if (len > v->size - off)
		len = v->size - off;
	memset(&rd, 0, sizeof(rd));
	rd.buf = buf;
	rd.size = len;
	rd.pending = 1;
	pthread_mutex_init(&rd.lock, NULL);
	pthread_cond_init(&rd.cond, NULL);
	read_issue(ctx, v, &rd, off);
	read_part_put(&rd);
	pthread_mutex_lock(&rd.lock);
	while (!rd.done)
		pthread_cond_wait(&rd.cond, &rd.lock);
	pthread_mutex_unlock(&rd.lock);
	pthread_mutex_destroy(&rd.lock);
	pthread_cond_destroy(&rd.cond);
	return rd.rc ? rd.rc : (ssize_t)len;
}
