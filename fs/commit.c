/*
 * commit.c - write staging and commits.
 *
 * A file opened for writing is staged in the spool directory: a sparse
 * file that holds the bytes written, over the committed version it began
 * from (its base), whose other bytes stay in the store and are read through
 * the block cache when asked for.  A commit turns the stage into objects:
 *
 *   1. split the staged bytes with libhdf5 (hdf5map); a file libhdf5 cannot
 *      open is not HDF5 and is stored as one plain object at its key;
 *   2. plan the objects (one per chunk, blocks of contiguous data and of big
 *      non-dataset runs) under a fresh commit tag, and upload them in
 *      parallel through the store's pool;
 *   3. PUT the manifest at the file's key: the commit point;
 *   4. delete the objects of the previous version that the new one does not
 *      reference.
 *
 * A crash before 3 leaves the old version intact plus orphans (found by
 * fsck); a crash after 3 leaves the new version plus superseded objects.
 * A failed commit keeps the stage for a later retry; its record (spool.h)
 * lets the next mount commit it (fs_stage_recover).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include "fs_int.h"
#include "spool.h"
#include "log.h"

/* Most object PUTs or DELETEs in flight for one commit. */
#define COMMIT_PARALLEL 32
/* Copy unit when filling a stage from the store. */
#define FILL_UNIT (4u << 20)

/* The ETag of the object at in's key now, or "" if there is none. */
int fs_current_etag(struct fs_ctx *ctx, struct fs_inode *in, char *etag)
{
	struct fs_vstat vs;
	char *key = fs_inode_key(ctx, in);
	int rc;

	if (!key)
		return -ENOMEM;
	rc = fs_version_stat(ctx, key, &vs);
	free(key);
	etag[0] = '\0';
	if (rc == -ENOENT)
		return 0;
	if (rc == 0 || rc == -EBADMSG)
		snprintf(etag, OST_ETAG_MAX, "%s", vs.etag);
	return rc == -EBADMSG ? 0 : rc;
}

/* Index of the first written range that ends after `pos` (n_written if
 * none). */
static size_t range_at(const struct fs_stage *sg, uint64_t pos)
{
	size_t lo = 0, hi = sg->n_written;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (sg->written[2 * mid + 1] <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Write the stage's record beside it (in->lock held).  `key` may be NULL
 * (then it is looked up).  Failures are logged: the record only helps a
 * later mount, the stage itself is intact. */
static void stage_record(struct fs_ctx *ctx, struct fs_inode *in,
			 const char *key, enum fs_spool_state state)
{
	struct fs_stage *sg = in->stage;
	struct fs_spool_rec rec;
	char *k = NULL;
	int rc;

	memset(&rec, 0, sizeof(rec));
	if (!key)
		key = k = ctx ? fs_inode_key(ctx, in) : NULL;
	snprintf(rec.key, sizeof(rec.key), "%s", key ? key : "?");
	free(k);
	rec.state = state;
	memcpy(rec.expect, sg->expect, sizeof(rec.expect));
	memcpy(rec.manifest, sg->landing, sizeof(rec.manifest));
	if (sg->base)
		memcpy(rec.base, sg->base->etag, sizeof(rec.base));
	rec.ranges_known = true;
	rec.written = sg->base ? sg->written : NULL;
	rec.n_written = sg->base ? sg->n_written : 0;
	rc = fs_spool_write(sg->path, &rec);
	if (rc < 0)
		ch5_warn("cannot write the record of %s: %s", sg->path,
			 strerror(-rc));
}

int fs_stage_create(struct fs_ctx *ctx, struct fs_inode *in,
		    struct fs_version *base, const char *expect)
{
	struct fs_stage *sg;
	uint8_t rnd[8];
	char name[64];
	int rc = 0;

	sg = calloc(1, sizeof(*sg));
	if (!sg)
		return -ENOMEM;
	if (expect) {
		snprintf(sg->expect, sizeof(sg->expect), "%s", expect);
	} else {
		rc = fs_current_etag(ctx, in, sg->expect);
		if (rc < 0) {
			free(sg);
			return rc;
		}
	}
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	snprintf(name, sizeof(name),
		 "%" PRIu64 "-%02x%02x%02x%02x%02x%02x%02x%02x" FS_STAGE_SUFFIX,
		 in->ino,
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
		 rnd[7]);
	sg->path = fs_child_key(ctx->cfg.spool_dir, name);
	if (!sg->path) {
		free(sg);
		return -ENOMEM;
	}
	/* fs_child_key joins with '/', which is what a path wants too. */
	sg->fd = open(sg->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (sg->fd < 0) {
		rc = -errno;
		ch5_err("cannot create a stage in %s: %s", ctx->cfg.spool_dir,
			strerror(errno));
		free(sg->path);
		free(sg);
		return rc;
	}
	/* Held while this daemon owns the stage: a mount starting beside us
	 * (same spool) leaves it alone.  A new file: nobody else holds it. */
	(void)flock(sg->fd, LOCK_EX | LOCK_NB);
	/* Sparse: the base's bytes stay in the store until read. */
	if (base && ftruncate(sg->fd, base->size) < 0) {
		rc = -errno;
		close(sg->fd);
		unlink(sg->path);
		free(sg->path);
		free(sg);
		return rc;
	}
	in->stage = sg;
	fs_stage_rebase(sg, base);
	stage_record(ctx, in, NULL, FS_SPOOL_CLEAN);
	return 0;
}

void fs_stage_drop(struct fs_inode *in, const char *key)
{
	struct fs_stage *sg = in->stage;

	if (!sg)
		return;
	if ((sg->dirty || sg->failed) && !in->unlinked) {
		/* Bytes the store does not have: never delete them. */
		stage_record(NULL, in, key,
			     sg->failed ? FS_SPOOL_COMMITTING
					: FS_SPOOL_WRITING);
		ch5_err("%s: uncommitted data kept in %s", key ? key : "?",
			sg->path);
		close(sg->fd);
	} else {
		close(sg->fd);
		fs_spool_remove(sg->path);
	}
	__atomic_store_n(&in->stage, NULL, __ATOMIC_RELEASE);
	in->have_attr = false;
	if (sg->base)
		fs_version_put(sg->base);
	free(sg->written);
	free(sg->path);
	free(sg);
}

void fs_stage_rebase(struct fs_stage *sg, struct fs_version *base)
{
	if (base)
		fs_version_get(base);
	if (sg->base)
		fs_version_put(sg->base);
	sg->base = base;
	sg->n_written = 0;
}

void fs_stage_set_base(struct fs_stage *sg, struct fs_version *base)
{
	fs_version_get(base);
	if (sg->base)
		fs_version_put(sg->base);
	sg->base = base;
}

int fs_stage_reserve(struct fs_stage *sg)
{
	size_t nc;
	uint64_t *nw;

	if (sg->n_written < sg->cap_written)
		return 0;
	nc = sg->cap_written ? sg->cap_written * 2 : 16;
	nw = realloc(sg->written, nc * 2 * sizeof(*nw));
	if (!nw)
		return -ENOMEM;
	sg->written = nw;
	sg->cap_written = nc;
	return 0;
}

int fs_stage_mark(struct fs_stage *sg, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, *w;
	size_t i, j;

	if (!len || !sg->base)
		return 0;
	w = sg->written;
	/* Fast path: appending to or extending the last range (sequential
	 * writes). */
	if (sg->n_written && off >= w[2 * sg->n_written - 2]) {
		uint64_t *last = &w[2 * sg->n_written - 2];

		if (off <= last[1]) {
			if (end > last[1])
				last[1] = end;
			return 0;
		}
	}
	/* i: first range that ends at or after off; j: first range that
	 * starts after end.  Ranges i..j-1 touch [off, end): merge them. */
	for (i = 0; i < sg->n_written && w[2 * i + 1] < off; i++)
		;
	for (j = i; j < sg->n_written && w[2 * j] <= end; j++)
		;
	if (i < j) {
		if (w[2 * i] < off)
			off = w[2 * i];
		if (w[2 * j - 1] > end)
			end = w[2 * j - 1];
		memmove(&w[2 * i + 2], &w[2 * j],
			(sg->n_written - j) * 2 * sizeof(*w));
		sg->n_written -= j - i - 1;
	} else {
		if (fs_stage_reserve(sg) < 0)
			return -ENOMEM;
		w = sg->written;
		memmove(&w[2 * i + 2], &w[2 * i],
			(sg->n_written - i) * 2 * sizeof(*w));
		sg->n_written++;
	}
	w[2 * i] = off;
	w[2 * i + 1] = end;
	return 0;
}

void fs_stage_set_dirty(struct fs_ctx *ctx, struct fs_inode *in)
{
	if (in->stage->dirty)
		return;
	in->stage->dirty = true;
	stage_record(ctx, in, NULL, FS_SPOOL_WRITING);
}

/* pread exactly len bytes of fd (a short read inside the file's size is a
 * hole that reads as zeros). */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			memset(buf, 0, len);
			return 0;
		}
		buf = (char *)buf + n;
		off += n;
		len -= n;
	}
	return 0;
}

ssize_t fs_stage_pread(struct fs_ctx *ctx, struct fs_stage *sg, void *buf,
		       size_t len, uint64_t off)
{
	struct stat st;
	size_t done = 0;

	if (fstat(sg->fd, &st) < 0)
		return -errno;
	if (off >= (uint64_t)st.st_size)
		return 0;
	if (len > (uint64_t)st.st_size - off)
		len = st.st_size - off;
	while (done < len) {
		uint64_t pos = off + done, run = len - done;
		size_t i = sg->base ? range_at(sg, pos) : 0;
		bool staged = !sg->base ||
			      (i < sg->n_written && sg->written[2 * i] <= pos);
		int rc;

		if (sg->base && staged && sg->written[2 * i + 1] - pos < run)
			run = sg->written[2 * i + 1] - pos;
		else if (!staged && i < sg->n_written &&
			 sg->written[2 * i] - pos < run)
			run = sg->written[2 * i] - pos;
		if (staged) {
			rc = pread_full(sg->fd, (char *)buf + done, run, pos);
		} else if (pos >= sg->base->size) {
			memset((char *)buf + done, 0, run); /* not reached */
			rc = 0;
		} else {
			uint64_t want = run < sg->base->size - pos
						? run
						: sg->base->size - pos;
			ssize_t n = fs_version_pread(ctx, sg->base,
						     (char *)buf + done, want,
						     pos);

			rc = n < 0 ? (int)n : (uint64_t)n < want ? -EIO : 0;
			if (!rc && want < run)
				memset((char *)buf + done + want, 0,
				       run - want);
		}
		if (rc < 0)
			return rc;
		done += run;
	}
	return len;
}

/* Copy the base's bytes of the unwritten parts of [off, off+len) into the
 * stage file, so that the stage fd alone holds that range (an upload reads
 * it from there).  0 or -errno (the stage is still consistent then). */
static int stage_materialize(struct fs_ctx *ctx, struct fs_stage *sg,
			     uint64_t off, uint64_t len)
{
	uint64_t pos = off, end = off + len;
	char *buf = NULL;
	int rc = 0;

	if (!sg->base)
		return 0;
	if (end > sg->base->size)
		end = sg->base->size;
	while (pos < end) {
		size_t i = range_at(sg, pos);
		uint64_t stop = end;
		ssize_t n;

		if (i < sg->n_written && sg->written[2 * i] <= pos) {
			pos = sg->written[2 * i + 1];
			continue;
		}
		if (i < sg->n_written && sg->written[2 * i] < stop)
			stop = sg->written[2 * i];
		if (stop - pos > FILL_UNIT)
			stop = pos + FILL_UNIT;
		if (!buf && !(buf = malloc(FILL_UNIT))) {
			rc = -ENOMEM;
			break;
		}
		n = fs_version_pread(ctx, sg->base, buf, stop - pos, pos);
		if (n >= 0 && (uint64_t)n < stop - pos)
			n = -EIO;
		if (n < 0) {
			rc = n;
			break;
		}
		if (pwrite(sg->fd, buf, n, pos) != n) {
			rc = errno ? -errno : -ENOSPC;
			break;
		}
		/* Same bytes as the base: a failed mark is harmless, the
		 * range is simply read from the base again. */
		if (fs_stage_mark(sg, pos, n) < 0) {
			rc = -ENOMEM;
			break;
		}
		pos += n;
	}
	free(buf);
	return rc;
}

/* Like stage_materialize(), for bytes no live dataset extent covers
 * (metadata, or the dead space of chunks libhdf5 moved): where the base's
 * object for them is gone (-ENOENT), they are left as zeros.  Metadata is
 * never in a gone object: the base's own metadata is in its skeleton. */
static int materialize_dead_ok(struct fs_ctx *ctx, struct fs_stage *sg,
			       uint64_t off, uint64_t len)
{
	struct h5m_piece pcs[64];
	uint64_t pos = off, end = off + len;
	int rc = stage_materialize(ctx, sg, off, len);

	if (rc != -ENOENT || !sg->base->man)
		return rc;
	/* Piece by piece of the base: skip the gone objects. */
	while (pos < end) {
		size_t n = h5m_map(sg->base->man, pos, end - pos, pcs, 64), i;

		if (!n)
			break; /* past the base's end: nothing to copy */
		for (i = 0; i < n; i++) {
			rc = stage_materialize(ctx, sg, pcs[i].file_off,
					       pcs[i].len);
			if (rc == -ENOENT)
				rc = fs_stage_mark(sg, pcs[i].file_off,
						   pcs[i].len);
			if (rc < 0)
				return rc;
		}
		pos = pcs[n - 1].file_off + pcs[n - 1].len;
	}
	return 0;
}

/* Make the spool file hold every byte of the file, so that a stage whose
 * commit was refused stands alone whatever the winner deletes later:
 * bytes of the extents split found (`sp`, may be NULL: all bytes count)
 * must be read; other bytes may be dead.  0 or -errno. */
static int stage_settle(struct fs_ctx *ctx, struct fs_stage *sg,
			const struct h5m_split *sp, uint64_t size)
{
	uint64_t pos = 0;
	size_t i;
	int rc;

	if (!sp)
		return stage_materialize(ctx, sg, 0, size);
	for (i = 0; i < sp->n_spans; i++) {
		const struct h5m_span *s = &sp->spans[i];

		rc = materialize_dead_ok(ctx, sg, pos, s->off - pos);
		if (rc == 0)
			rc = stage_materialize(ctx, sg, s->off, s->len);
		if (rc < 0)
			return rc;
		pos = s->off + s->len;
	}
	return materialize_dead_ok(ctx, sg, pos, size - pos);
}

/* The staged-over-base view of a stage, for hdf5map's read callback. */
struct stage_view {
	struct fs_ctx *ctx;
	struct fs_stage *sg;
};

static int read_view(void *arg, uint64_t off, void *buf, size_t len)
{
	struct stage_view *v = arg;
	ssize_t n = fs_stage_pread(v->ctx, v->sg, buf, len, off);

	return n < 0 ? (int)n : (size_t)n < len ? -EIO : 0;
}

/* h5m_manifest_reuse() callback: were none of [off, off+len) written? */
static int stage_clean(void *ctx, uint64_t off, uint64_t len)
{
	const struct fs_stage *sg = ctx;
	size_t i = range_at(sg, off);

	return i == sg->n_written || sg->written[2 * i] >= off + len;
}

/* Completion of a commit's or a rename's upload or copy. */
static void batch_done(struct ost_req *req)
{
	if (req->rc < 0)
		ch5_err("%s %s failed: %s",
			req->op == OST_PUT ? "upload of" : "copy of", req->key,
			strerror(-req->rc));
	ost_batch_finish(req->arg, req->rc);
}

/* Submit req in batch b with batch_done as its completion. */
static void batch_submit(struct ost *st, struct ost_batch *b,
			 struct ost_req *req)
{
	req->done = batch_done;
	req->arg = b;
	ost_batch_submit(st, b, req);
}

/* Delete `keys` (batched where the store can).  Failures are logged and
 * left to fsck. */
static void delete_keys(struct ost *st, char **keys, size_t n)
{
	long failed = ost_delete_keys(st, keys, n);

	if (failed)
		ch5_warn("%ld superseded objects were not deleted; "
			 "`cloudh5 fsck` will find them",
			 failed < 0 ? (long)n : failed);
}

/* Upload every object of manifest m from the stage fd, but those marked
 * in `skip` (may be NULL). */
static int upload_objects(struct fs_ctx *ctx, const struct h5m_manifest *m,
			  int fd, const uint8_t *skip)
{
	size_t n = h5m_extent_count(m), i;
	struct ost_req *reqs;
	char **keys;
	struct ost_batch b;
	int rc = 0;

	if (!n)
		return 0;
	reqs = calloc(n, sizeof(*reqs));
	keys = calloc(n, sizeof(*keys));
	if (!reqs || !keys) {
		rc = -ENOMEM;
		goto out;
	}
	ost_batch_init(&b, COMMIT_PARALLEL);
	for (i = 0; i < n; i++) {
		char key[OST_KEY_MAX + 1];
		uint64_t off, len;
		int kl = h5m_extent_key(m, i, key, sizeof(key));

		if (kl < 0 || !(keys[i] = strdup(key))) {
			pthread_mutex_lock(&b.lock);
			b.rc = kl < 0 ? kl : -ENOMEM;
			pthread_mutex_unlock(&b.lock);
			break;
		}
		if (skip && skip[i])
			continue;
		/* One failed upload fails the commit: send no more (with the
		 * store down, each would wait out its retries in turn). */
		if (ost_batch_failed(&b))
			break;
		h5m_extent(m, i, &off, &len);
		reqs[i].op = OST_PUT;
		reqs[i].key = keys[i];
		reqs[i].body.fd = fd;
		reqs[i].body.fd_off = off;
		reqs[i].body.len = len;
		batch_submit(ctx->st, &b, &reqs[i]);
	}
	rc = ost_batch_wait(&b);
out:
	if (keys)
		for (i = 0; i < n; i++)
			free(keys[i]);
	free(keys);
	free(reqs);
	return rc;
}

/* The condition of a stage's commit PUT: replace only the version the
 * stage began from, or create only. */
static void stage_cond(const struct fs_stage *sg, struct ost_put_cond *cond)
{
	memset(cond, 0, sizeof(*cond));
	if (sg->expect[0])
		memcpy(cond->if_match, sg->expect, sizeof(cond->if_match));
	else
		cond->flags = OST_PUT_IF_NONE_MATCH;
}

/* Commit tag: generation and 32 random bits. */
static void make_tag(char *tag, size_t size, uint64_t gen)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)(fs_now() * 1e6);
	snprintf(tag, size, "g%" PRIu64 "-%08x", gen, r);
}

/* A new file's key asked after while its stage is split and its objects
 * uploaded.  Such a commit only has to be refused if something appeared
 * under the name since the open; the manifest's conditional PUT would
 * refuse it too, where the store honours If-None-Match.  Asking before the
 * manifest PUT rather than before the uploads saves the commit a round
 * trip; a refusal then leaves the uploaded objects as orphans (fsck). */
struct key_probe {
	struct ost_batch b;
	struct ost_req req;
};

/* Send a HEAD of `key` (which must outlive the probe). */
static void probe_start(struct fs_ctx *ctx, const char *key,
			struct key_probe *p)
{
	memset(&p->req, 0, sizeof(p->req));
	ost_batch_init(&p->b, 1);
	p->req.op = OST_HEAD;
	p->req.key = key;
	p->req.done = ost_batch_done; /* the answer is in req->rc */
	p->req.arg = &p->b;
	ost_batch_submit(ctx->st, &p->b, &p->req);
}

/* Wait for the probe: 0 if nothing is at the key, -ESTALE if something
 * is, or the HEAD's error. */
static int probe_result(struct key_probe *p)
{
	(void)ost_batch_wait(&p->b);
	if (p->req.rc == -ENOENT)
		return 0;
	return p->req.rc == 0 ? -ESTALE : p->req.rc;
}

/* Store the stage as an HDF5 manifest plus objects (sp may be NULL: raw).
 * `probe` (may be NULL) is waited for before the manifest PUT. */
static int commit_manifest(struct fs_ctx *ctx, struct fs_inode *in,
			   const char *key, struct fs_stage *sg, uint64_t size,
			   const struct h5m_split *sp,
			   const struct fs_version *old,
			   struct key_probe *probe,
			   struct h5m_manifest **out, struct ost_info *info)
{
	struct h5m_layout lay = { 0 };
	struct h5m_manifest *m = NULL, *m2 = NULL;
	uint8_t *reused = NULL;
	size_t n_reused = 0, i;
	struct stage_view view = { ctx, sg };
	char tag[48];
	void *enc = NULL;
	size_t enc_len = 0;
	int rc;

	lay.generation = old && old->man ? h5m_generation(old->man) + 1 : 1;
	make_tag(tag, sizeof(tag), lay.generation);
	lay.file_key = key;
	lay.tag = tag;
	lay.block_size = ctx->cfg.block_size;
	/* The plan's page fill reads the base's bytes of every page where
	 * chunks meet: from its edge section in memory (one GET now), not
	 * by a ranged GET per page. */
	if (sg->base && sg->base->man)
		(void)fs_version_manifest(ctx, sg->base);
	rc = h5m_plan(sp, size, &lay, read_view, &view, &m);
	if (rc < 0)
		goto out;
	/* Keep the objects of extents not written since the stage's base,
	 * if the store still holds that base (same ETag). */
	if (sg->base && sg->base->man && old && old->man &&
	    !strcmp(sg->base->etag, old->etag)) {
		rc = h5m_manifest_reuse(m, old->man, stage_clean, sg, &m2,
					&reused);
		if (rc < 0)
			goto out;
		h5m_manifest_free(m);
		m = m2;
		for (i = 0; i < h5m_extent_count(m); i++)
			n_reused += reused[i];
	}
	/* Objects to upload are read from the stage file: bring in the
	 * base's bytes of those the writes covered only in part (or that moved
	 * to a new extent without being written). */
	for (i = 0; i < h5m_extent_count(m); i++) {
		uint64_t off, len;

		if (reused && reused[i])
			continue;
		h5m_extent(m, i, &off, &len);
		rc = stage_materialize(ctx, sg, off, len);
		if (rc < 0)
			goto out;
	}
	rc = upload_objects(ctx, m, sg->fd, reused);
	if (rc < 0)
		goto out;
	rc = h5m_manifest_encode(m, &enc, &enc_len);
	if (rc < 0)
		goto out;
	{
		struct ost_body body = { .buf = enc, .len = enc_len };
		struct ost_put_cond cond;
		static const char hex[] = "0123456789abcdef";
		size_t hl = enc_len < FS_SPOOL_MANIFEST_HEAD
				    ? enc_len
				    : FS_SPOOL_MANIFEST_HEAD;

		/* If we die after this PUT lands, the next mount must see
		 * that it did (and not commit the stage again). */
		for (i = 0; i < hl; i++) {
			sg->landing[2 * i] = hex[((uint8_t *)enc)[i] >> 4];
			sg->landing[2 * i + 1] = hex[((uint8_t *)enc)[i] & 15];
		}
		sg->landing[2 * hl] = '\0';
		stage_record(ctx, in, key, FS_SPOOL_COMMITTING);
		stage_cond(sg, &cond);
		rc = probe ? probe_result(probe) : 0;
		if (rc == 0)
			rc = ost_put(ctx->st, key, &body, &cond, info);
		sg->landing[0] = '\0';
	}
	if (rc < 0)
		goto out;
	ch5_info("%s: committed %s: %zu objects (%zu kept), manifest %zu "
		 "bytes",
		 key, tag, h5m_extent_count(m), n_reused, enc_len);
out:
	free(reused);
	free(enc);
	if (rc < 0) {
		/* Objects already uploaded are orphans now; fsck removes
		 * them.  The old version is untouched. */
		h5m_manifest_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

/* The version a commit of `sg` over the store's `vs` (src: the stat's
 * result, 0 or -EBADMSG) replaces, in *old (NULL: none readable; caller
 * puts it): usually the stage's base, whose manifest is then not fetched
 * again.  Returns 0 or the load's -errno. */
static int replaced_version(struct fs_ctx *ctx, const char *key,
			    struct fs_stage *sg, int src,
			    const struct fs_vstat *vs, struct fs_version **old)
{
	int rc;

	if (sg->base && sg->base->man && src == 0 &&
	    !strcmp(vs->etag, sg->base->etag)) {
		*old = sg->base;
		fs_version_get(*old);
		return 0;
	}
	rc = fs_version_load(ctx, key, old);
	if (rc == -ENOENT || rc == -EBADMSG) {
		*old = NULL; /* a corrupt manifest is simply replaced */
		return 0;
	}
	return rc;
}

int fs_commit(struct fs_ctx *ctx, struct fs_inode *in)
{
	struct fs_stage *sg = in->stage;
	struct fs_version *old = NULL, *nv = NULL;
	struct h5m_split *sp = NULL;
	struct h5m_manifest *m = NULL;
	struct ost_info info = { 0 };
	char **gone = NULL;
	size_t n_gone = 0;
	uint8_t magic[H5M_MAGIC_LEN];
	struct stage_view view = { ctx, sg };
	struct fs_vstat vs;
	struct stat st;
	struct key_probe probe;
	bool fresh = false; /* a new file: probe sent */
	char *key;
	int rc, src = -ENOENT;

	if (!sg)
		return 0;
	key = fs_inode_key(ctx, in);
	if (!key)
		return -ENOMEM;
	/* From here a later mount recommits this stage if we die. */
	stage_record(ctx, in, key, FS_SPOOL_COMMITTING);
	if (fstat(sg->fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!sg->expect[0] && !sg->base) {
		/* A new file replaces nothing: whether its name is still
		 * free is asked meanwhile (key_probe). */
		fresh = true;
		probe_start(ctx, key, &probe);
	} else {
		/* One small GET says what the store holds now.  Libhdf5
		 * reads only metadata, so split before refusing: a refused
		 * stage is made whole with the split's help (stage_settle). */
		src = fs_version_stat(ctx, key, &vs);
		if (src < 0 && src != -ENOENT && src != -EBADMSG) {
			rc = src;
			goto out;
		}
	}
	rc = h5m_split(read_view, &view, st.st_size, &sp);
	if (rc < 0 && rc != -EINVAL)
		goto out;
	if (!fresh) {
		int lrc;

		/* The conditional PUT would refuse this commit: say so
		 * before uploading anything. */
		if (sg->expect[0]
			    ? src == -ENOENT || strcmp(vs.etag, sg->expect)
			    : src != -ENOENT) {
			rc = -ESTALE;
			goto refused;
		}
		lrc = replaced_version(ctx, key, sg, src, &vs, &old);
		if (lrc < 0) {
			rc = lrc;
			goto out;
		}
	}

	if (rc == -EINVAL) {
		/* Not HDF5: one plain object, unless its first bytes would
		 * read as a manifest; then raw objects under a manifest. */
		bool looks_like_manifest =
			st.st_size >= H5M_MAGIC_LEN &&
			read_view(&view, 0, magic, sizeof(magic)) == 0 &&
			h5m_is_manifest(magic, sizeof(magic));

		if (looks_like_manifest) {
			rc = commit_manifest(ctx, in, key, sg, st.st_size, NULL,
					     old, fresh ? &probe : NULL, &m,
					     &info);
		} else {
			struct ost_body body = { .fd = sg->fd,
						 .len = st.st_size };
			struct ost_put_cond cond;

			/* One object: every byte comes from the stage. */
			rc = stage_materialize(ctx, sg, 0, st.st_size);
			if (rc == 0) {
				fs_stage_rebase(sg, NULL); /* whole now */
				stage_record(ctx, in, key,
					     FS_SPOOL_COMMITTING);
			}
			stage_cond(sg, &cond);
			if (rc == 0 && fresh)
				rc = probe_result(&probe);
			if (rc == 0)
				rc = ost_put(ctx->st, key, &body, &cond,
					     &info);
		}
	} else if (rc == 0) {
		rc = commit_manifest(ctx, in, key, sg, st.st_size, sp, old,
				     fresh ? &probe : NULL, &m, &info);
	}
refused:
	if (rc == -ESTALE || rc == -EEXIST ||
	    (rc == -ENOENT && sg->expect[0])) {
		ch5_err("%s: another writer committed or removed this file "
			"since it was opened here; this commit is refused",
			key);
		rc = -ESTALE;
	}
	if (rc < 0)
		goto out;

	/* Committed.  What the old version had and the new one lacks goes. */
	if (old && old->man &&
	    h5m_superseded(old->man, m, &gone, &n_gone) == 0) {
		delete_keys(ctx->st, gone, n_gone);
		h5m_keys_free(gone, n_gone);
	}
	nv = calloc(1, sizeof(*nv));
	if (nv) {
		nv->refs = 1;
		nv->man = m;
		m = NULL;
		nv->key = nv->man ? NULL : strdup(key);
		nv->size = st.st_size;
		nv->mtime_ns = info.mtime_ns;
		memcpy(nv->etag, info.etag, sizeof(nv->etag));
		if (in->ver)
			fs_version_put(in->ver);
		in->ver = nv;
		in->ver_checked = info.etag[0] ? fs_now() : 0;
		fs_listing_note(ctx, key, nv->etag, nv->size, nv->mtime_ns,
				nv->man != NULL);
	}
	/* The committed version has exactly the stage's bytes: it is the
	 * base from now on (a plain object was staged whole).  Without it
	 * (out of memory) the old base and written ranges still describe the
	 * stage: the objects of its unwritten extents were kept. */
	if (nv)
		fs_stage_rebase(sg, nv->man ? nv : NULL);
	if (info.etag[0])
		memcpy(sg->expect, info.etag, sizeof(sg->expect));
	else
		fs_current_etag(ctx, in, sg->expect);
	sg->dirty = false;
	sg->failed = false;
	stage_record(ctx, in, key, FS_SPOOL_CLEAN);
	/* Size and mtime are the committed version's now. */
	in->have_attr = false;
	__atomic_add_fetch(&ctx->commits, 1, __ATOMIC_RELAXED);
out:
	if (rc == -ESTALE && sg->base) {
		/* This stage will never land over its base, whose objects the
		 * other writer may delete any time: make it a whole file now
		 * (a plain file was made whole before its PUT). */
		int src = stage_settle(ctx, sg, sp, st.st_size);

		if (src == 0)
			fs_stage_rebase(sg, NULL);
		else
			ch5_warn("%s: parts of the version this stage began "
				 "from are gone (%s); %s holds the bytes "
				 "written here, its record lists them",
				 key, strerror(-src), sg->path);
	}
	if (rc == -ESTALE)
		stage_record(ctx, in, key, FS_SPOOL_COMMITTING);
	if (rc < 0) {
		sg->failed = true;
		__atomic_add_fetch(&ctx->commit_failures, 1, __ATOMIC_RELAXED);
		ch5_err("%s: commit failed (%s); the staged data is kept in %s",
			key, strerror(-rc), sg->path);
	}
	if (fresh) /* not waited for where the commit failed before */
		(void)ost_batch_wait(&probe.b);
	h5m_manifest_free(m);
	h5m_split_free(sp);
	if (old)
		fs_version_put(old);
	free(key);
	return rc;
}

/* Copy each object of `m` to its key in `m2` (same extent order), in
 * parallel. */
static int copy_objects(struct fs_ctx *ctx, const struct h5m_manifest *m,
			const struct h5m_manifest *m2)
{
	size_t n = h5m_extent_count(m), i;
	struct ost_req *reqs = calloc(n ? n : 1, sizeof(*reqs));
	char **keys = calloc(2 * n + 1, sizeof(*keys));
	struct ost_batch b;
	int rc;

	if (!reqs || !keys) {
		free(reqs);
		free(keys);
		return -ENOMEM;
	}
	ost_batch_init(&b, COMMIT_PARALLEL);
	for (i = 0; i < n; i++) {
		char k1[OST_KEY_MAX + 1], k2[OST_KEY_MAX + 1];
		int r1 = h5m_extent_key(m, i, k1, sizeof(k1));
		int r2 = h5m_extent_key(m2, i, k2, sizeof(k2));

		if (r1 < 0 || r2 < 0 || !(keys[2 * i] = strdup(k1)) ||
		    !(keys[2 * i + 1] = strdup(k2))) {
			pthread_mutex_lock(&b.lock);
			b.rc = r1 < 0 ? r1 : r2 < 0 ? r2 : -ENOMEM;
			pthread_mutex_unlock(&b.lock);
			break;
		}
		if (!strcmp(k1, k2))
			continue;
		if (ost_batch_failed(&b))
			break;
		reqs[i].op = OST_COPY;
		reqs[i].key = keys[2 * i];
		reqs[i].dst_key = keys[2 * i + 1];
		batch_submit(ctx->st, &b, &reqs[i]);
	}
	rc = ost_batch_wait(&b);
	for (i = 0; i < 2 * n; i++)
		free(keys[i]);
	free(keys);
	free(reqs);
	return rc;
}

int fs_move_file(struct fs_ctx *ctx, const char *from, const char *to)
{
	struct fs_version *v = NULL;
	struct h5m_manifest *m2 = NULL;
	char **gone = NULL;
	void *enc = NULL;
	size_t enc_len = 0, n_gone = 0;
	int rc;

	rc = fs_version_load(ctx, from, &v);
	if (rc < 0)
		return rc;
	if (!v->man) {
		rc = ost_copy(ctx->st, from, to);
		if (rc == 0)
			rc = ost_delete(ctx->st, from);
		goto out;
	}
	/* Objects first, then the manifest that names them: a crash leaves
	 * the old file whole (plus copies fsck removes) or both names. */
	/* with its edge section, which the new manifest keeps */
	rc = h5m_manifest_rekey(fs_version_manifest(ctx, v), from, to, &m2);
	if (rc == 0)
		rc = copy_objects(ctx, v->man, m2);
	if (rc == 0)
		rc = h5m_manifest_encode(m2, &enc, &enc_len);
	if (rc == 0)
		rc = ost_put_buf(ctx->st, to, enc, enc_len, NULL);
	if (rc == 0)
		rc = ost_delete(ctx->st, from);
	if (rc == 0 && h5m_superseded(v->man, m2, &gone, &n_gone) == 0) {
		delete_keys(ctx->st, gone, n_gone);
		h5m_keys_free(gone, n_gone);
	}
out:
	if (rc < 0)
		ch5_err("rename of %s to %s failed: %s", from, to,
			strerror(-rc));
	free(enc);
	h5m_manifest_free(m2);
	fs_version_put(v);
	return rc;
}

void fs_delete_objects(struct fs_ctx *ctx, struct fs_version *v)
{
	char **gone = NULL;
	size_t n = 0;

	if (v && v->man && h5m_superseded(v->man, NULL, &gone, &n) == 0) {
		delete_keys(ctx->st, gone, n);
		h5m_keys_free(gone, n);
	}
}

int fs_remove_file(struct fs_ctx *ctx, const char *key,
		   struct fs_version **keep)
{
	struct fs_version *v = NULL;
	int rc;

	rc = fs_version_load(ctx, key, &v);
	if (rc < 0 && rc != -EBADMSG && rc != -EPROTONOSUPPORT)
		return rc;
	rc = ost_delete(ctx->st, key);
	if (rc == 0 && keep && v && v->man) {
		*keep = v; /* the caller deletes the objects later */
		return 0;
	}
	if (rc == 0)
		fs_delete_objects(ctx, v);
	if (v)
		fs_version_put(v);
	return rc;
}

/* Did the commit a stage record describes land before its daemon died?
 * Its manifest's first bytes are in the store, or (a whole plain file)
 * the store's object has the stage's bytes. */
static bool commit_landed(struct fs_ctx *ctx, int fd,
			  const struct fs_spool_rec *rec)
{
	uint8_t head[FS_SPOOL_MANIFEST_HEAD], *a = NULL, *b = NULL;
	size_t got = 0, i, hl = strlen(rec->manifest) / 2;
	struct ost_info info;
	struct stat st;
	uint64_t off;
	bool same = false;

	if (rec->manifest[0]) {
		if (hl > sizeof(head) ||
		    ost_get(ctx->st, rec->key, 0, head, hl, &got, NULL) < 0 ||
		    got != hl)
			return false;
		for (i = 0; i < hl; i++) {
			unsigned v;

			if (sscanf(rec->manifest + 2 * i, "%2x", &v) != 1 ||
			    v != head[i])
				return false;
		}
		return true;
	}
	if (rec->base[0] || fstat(fd, &st) < 0 ||
	    ost_head(ctx->st, rec->key, &info) < 0 ||
	    info.size != (uint64_t)st.st_size)
		return false;
	a = malloc(FILL_UNIT);
	b = malloc(FILL_UNIT);
	for (off = 0, same = a && b; same && off < info.size; off += got) {
		size_t want = info.size - off < FILL_UNIT ? info.size - off
							  : FILL_UNIT;

		same = ost_get(ctx->st, rec->key, off, a, want, &got, NULL) ==
			       0 &&
		       got == want && pread_full(fd, b, want, off) == 0 &&
		       !memcmp(a, b, want);
	}
	free(a);
	free(b);
	return same;
}

int fs_stage_recover(struct fs_ctx *ctx, const char *path,
		     const struct fs_spool_rec *rec)
{
	struct fs_inode *in = NULL;
	struct fs_version *base = NULL;
	struct fs_stage *sg;
	int fd, rc;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return 2; /* a live daemon's stage */
	}
	if (rec->state == FS_SPOOL_CLEAN) {
		fs_spool_remove(path); /* the store holds all of it */
		close(fd);
		return 0;
	}
	if (rec->state != FS_SPOOL_COMMITTING || !strcmp(rec->key, "?") ||
	    (rec->base[0] && !rec->ranges_known)) {
		close(fd);
		return 1; /* never asked to be committed, or incomplete */
	}
	if (commit_landed(ctx, fd, rec)) {
		/* Died after the commit point: nothing left to do. */
		ch5_info("%s: the commit of %s had landed", rec->key, path);
		fs_spool_remove(path);
		close(fd);
		return 0;
	}
	if (rec->base[0]) {
		rc = fs_version_load(ctx, rec->key, &base);
		if (rc < 0 || strcmp(base->etag, rec->base)) {
			ch5_err("%s: the version %s began from is gone; it is "
				"kept", rec->key, path);
			if (base)
				fs_version_put(base);
			close(fd);
			return 1;
		}
	}
	sg = calloc(1, sizeof(*sg));
	in = fs_inode_get(ctx, rec->key, false, 0);
	if (!sg || !in || !(sg->path = strdup(path))) {
		if (sg)
			free(sg);
		if (base)
			fs_version_put(base);
		close(fd);
		return -ENOMEM;
	}
	sg->fd = fd;
	sg->dirty = true;
	memcpy(sg->expect, rec->expect, sizeof(sg->expect));
	sg->base = base; /* the reference is the stage's now */
	rc = 0;
	if (base && rec->n_written) {
		sg->written = malloc(rec->n_written * 2 * sizeof(uint64_t));
		if (sg->written) {
			memcpy(sg->written, rec->written,
			       rec->n_written * 2 * sizeof(uint64_t));
			sg->n_written = sg->cap_written = rec->n_written;
		} else {
			rc = -ENOMEM;
		}
	}
	pthread_mutex_lock(&in->lock);
	in->stage = sg;
	if (rc == 0)
		rc = fs_commit(ctx, in);
	if (rc == 0)
		ch5_info("%s: committed the data %s kept", rec->key, path);
	else
		sg->failed = true;
	fs_stage_drop(in, rec->key);
	pthread_mutex_unlock(&in->lock);
	fs_inode_forget(ctx, in, 0);
	return rc == 0 ? 0 : 1;
}
