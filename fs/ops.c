/*
 * ops.c - the FUSE low-level operations.
 *
 * Every handler has the same shape: find the inode, do the work through the
 * helpers of inode.c, version.c and commit.c, and turn a negative errno into
 * fuse_reply_err() at the end.  Directories are key prefixes: a directory
 * exists when some key starts with "dir/" (mkdir writes the empty marker
 * object "dir/", as s3fs-fuse does).  ".cloudh5" at the root is the data
 * area of the object layout and is hidden.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dirindex.h"
#include "diskcache.h"
#include "fs_int.h"
#include "log.h"

#define HIDDEN_ROOT ".cloudh5"
/* d_ino of a plain readdir entry whose inode is not known yet (the value
 * libfuse's high-level API uses); the kernel's lookup gives the real one. */
#define UNKNOWN_INO 0xffffffffu

static struct fs_ctx *req_ctx(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fs_handle *fi_handle(struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

static bool hidden_name(const struct fs_inode *parent, const char *name)
{
	return parent->ino == FUSE_ROOT_ID && !strcmp(name, HIDDEN_ROOT);
}

/* The key of entry `name` of directory inode `parent`, malloc'd in *key.
 * The hidden data area at the root gives `hidden_err` (lookups say it
 * does not exist, changes say they are not permitted).  Returns 0, -ESTALE
 * for an unknown parent, hidden_err, or -ENOMEM. */
static int child_of(struct fs_ctx *ctx, fuse_ino_t parent, const char *name,
		    int hidden_err, char **key)
{
	struct fs_inode *p = fs_inode_by_ino(ctx, parent);
	char *pkey;

	*key = NULL;
	if (!p)
		return -ESTALE;
	if (hidden_name(p, name))
		return hidden_err;
	pkey = fs_inode_key(ctx, p);
	*key = pkey ? fs_child_key(pkey, name) : NULL;
	free(pkey);
	return *key ? 0 : -ENOMEM;
}

static void fill_dir_attr(struct fs_ctx *ctx, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | (0777 & ~ctx->cfg.umask);
	st->st_nlink = 2;
	st->st_size = 4096;
	st->st_blksize = 4096;
	st->st_uid = ctx->cfg.uid;
	st->st_gid = ctx->cfg.gid;
}

static void fill_file_attr(struct fs_ctx *ctx, struct fs_inode *in,
			   uint64_t size, int64_t mtime_ns)
{
	struct stat *st = &in->attr;
	mode_t mode = in->mode_set ? st->st_mode : 0;

	memset(st, 0, sizeof(*st));
	st->st_mode = in->mode_set ? mode : S_IFREG | (0666 & ~ctx->cfg.umask);
	st->st_nlink = 1;
	st->st_size = size;
	st->st_blocks = (size + 511) / 512;
	st->st_blksize = 1 << 20;
	st->st_uid = ctx->cfg.uid;
	st->st_gid = ctx->cfg.gid;
	st->st_mtim.tv_sec = mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = mtime_ns % 1000000000;
	st->st_atim = st->st_ctim = st->st_mtim;
	in->have_attr = true;
	in->attr_time = in->fetched = fs_now();
}

/* Does any key start with `key` + "/"?  (A directory.)  Asked with a LIST
 * of one key, sent by dir_probe_start() and answered by dir_probe_wait(),
 * so a lookup can send it alongside its GET of the name as a file: a
 * directory then costs one round trip, not two. */
struct dir_probe {
	struct ost_req req;
	char *prefix;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;    /* the LIST completed (under lock) */
	bool dropped; /* nobody waits: the completion frees (under lock) */
};

static void dir_probe_free(struct dir_probe *p)
{
	ost_list_result_release(&p->req.list);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->prefix);
	free(p);
}

static void dir_probe_done(struct ost_req *req)
{
	struct dir_probe *p = req->arg;
	bool dropped;

	pthread_mutex_lock(&p->lock);
	p->done = true;
	dropped = p->dropped;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (dropped)
		dir_probe_free(p);
}

/* Send the probe for `key` into *out.  Returns 0, -ENOMEM, or the pool's
 * refusal (then *out is NULL). */
static int dir_probe_start(struct fs_ctx *ctx, const char *key,
			   struct dir_probe **out)
{
	struct dir_probe *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->prefix = fs_child_key(key, "");
	if (!p->prefix) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->req.op = OST_LIST;
	p->req.prefix = p->prefix;
	p->req.delimiter = "/";
	p->req.max_keys = 1;
	p->req.done = dir_probe_done;
	p->req.arg = p;
	rc = ost_submit(ctx->st, &p->req);
	if (rc < 0) {
		dir_probe_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* The probe's answer: 1 (a directory), 0, or a store error; p is freed. */
static int dir_probe_wait(struct dir_probe *p)
{
	int rc;

	pthread_mutex_lock(&p->lock);
	while (!p->done)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	rc = p->req.rc;
	if (rc == 0)
		rc = p->req.list.n_objects || p->req.list.n_prefixes;
	dir_probe_free(p);
	return rc;
}

/* The answer is not needed (NULL: no-op). */
static void dir_probe_drop(struct dir_probe *p)
{
	bool done;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	done = p->done;
	p->dropped = true;
	pthread_mutex_unlock(&p->lock);
	if (done)
		dir_probe_free(p);
}

static int dir_exists(struct fs_ctx *ctx, const char *key)
{
	struct dir_probe *p;
	int rc;

	if (!*key)
		return 1;
	rc = dir_probe_start(ctx, key, &p);
	return rc < 0 ? rc : dir_probe_wait(p);
}

/* Bring in->attr up to date (in->lock held).  Files: from the stage, or
 * from the committed version's header (one small GET, at most every
 * attr_timeout seconds).  With `need_version`, in->ver must also be the
 * current committed version: unless the store told so less than
 * attr_timeout seconds ago (say, at the lookup just before an open), the
 * header is re-read and the full manifest fetched again only when its
 * ETag changed (revalidation).  Returns 0, or -ENOENT when the key is
 * gone. */
static int refresh_locked(struct fs_ctx *ctx, struct fs_inode *in,
			  bool need_version)
{
	struct fs_version *v = NULL;
	struct fs_vstat vs;
	struct stat st;
	char *key;
	int rc, tries;

	if (in->is_dir) {
		fill_dir_attr(ctx, &in->attr);
		return 0;
	}
	if (in->stage) {
		if (fstat(in->stage->fd, &st) < 0)
			return -errno;
		fill_file_attr(ctx, in, st.st_size,
			       st.st_mtim.tv_sec * 1000000000LL +
				       st.st_mtim.tv_nsec);
		return 0;
	}
	if (in->unlinked)
		return -ENOENT;
	if (!need_version && in->have_attr &&
	    fs_now() - in->attr_time < ctx->cfg.attr_timeout)
		return 0;
	if (need_version && in->ver &&
	    fs_now() - in->ver_checked < ctx->cfg.attr_timeout) {
		if (!in->have_attr)
			fill_file_attr(ctx, in, in->ver->size,
				       in->ver->mtime_ns);
		return 0;
	}
	key = fs_inode_key(ctx, in);
	if (!key)
		return -ENOMEM;
	/* The header tells the attributes, and whether a cached version is
	 * still current; with no cached version to revalidate, a load reads
	 * the same bytes anyway, so skip it.  A file not loaded yet is asked
	 * for the first bytes of its head too, kept for the open that
	 * usually follows (fs_version_lookup). */
	if (!need_version || in->ver) {
		rc = in->ver ? fs_version_stat(ctx, key, &vs)
			     : fs_version_lookup(ctx, key, &vs);
		if (rc < 0)
			goto out;
		if (in->ver && !strcmp(in->ver->etag, vs.etag)) {
			fill_file_attr(ctx, in, in->ver->size,
				       in->ver->mtime_ns);
			in->ver_checked = in->attr_time;
			goto out;
		}
		in->object_size = vs.manifest ? vs.object_size : 0;
		if (!need_version) {
			fill_file_attr(ctx, in, vs.size, vs.mtime_ns);
			goto out;
		}
	}
	/* -EAGAIN: a commit landed between two GETs of the manifest. */
	for (tries = 0; tries < 3; tries++) {
		rc = fs_version_load_sized(ctx, key,
					   tries ? 0 : in->object_size,
					   tries == 0, &v);
		if (rc != -EAGAIN)
			break;
	}
	if (rc < 0)
		goto out;
	if (in->ver)
		fs_version_put(in->ver);
	in->ver = v;
	fill_file_attr(ctx, in, v->size, v->mtime_ns);
	in->ver_checked = in->attr_time;
out:
	free(key);
	return rc;
}

/* How long the headers a listing fetched stand for its files' attributes,
 * seconds: the listing is a snapshot of the directory as it was then (its
 * names are), and answering its readdirplus pages may take longer than
 * attr_timeout on a slow link; looked up one by one instead, 1,000 files
 * took 24 s. */
#define DIR_HINT_MAX_AGE 30.0

/* Take a file's attributes from `vs`, a header a listing fetched at `t`
 * (fs_now()), as fresh from now on, unless it is older than
 * DIR_HINT_MAX_AGE, the inode has attributes fetched later, or its file is
 * staged or unlinked.  in->lock held. */
static void seed_attr_locked(struct fs_ctx *ctx, struct fs_inode *in,
			     const struct fs_vstat *vs, double t)
{
	if (in->stage || in->unlinked || in->is_dir ||
	    fs_now() - t >= DIR_HINT_MAX_AGE ||
	    (in->have_attr && in->fetched >= t))
		return;
	in->object_size = vs->manifest ? vs->object_size : 0;
	fill_file_attr(ctx, in, vs->size, vs->mtime_ns);
	in->fetched = t;
	/* The listing saw which version is current then. */
	if (in->ver)
		in->ver_checked = strcmp(in->ver->etag, vs->etag) ? 0 : t;
}

/* What a directory listing already told of one of its entries. */
struct resolve_hint {
	bool is_dir;		/* a common prefix of the LIST, not a file */
	const struct fs_vstat *vs; /* a file's header, fetched at `t` (NULL:
				      not fetched) */
	double t;		/* fs_now() of that fetch */
};

/* Resolve `key` to a file or directory inode and count `lookup` (0 or 1)
 * kernel lookups on it.  `hint` (may be NULL) saves the store requests a
 * listing already answered: a directory is not looked for as a file first,
 * and a file's header the listing fetched is taken for its attributes
 * (seed_attr_locked: not over a stage's, nor over ones fetched later). */
static int resolve_hinted(struct fs_ctx *ctx, const char *key,
			  struct fuse_entry_param *e, int lookup,
			  const struct resolve_hint *hint)
{
	struct fs_inode *in = fs_inode_by_key(ctx, key);
	struct dir_probe *probe = NULL;
	int rc;

	memset(e, 0, sizeof(*e));
	if (hint && hint->is_dir) {
		in = fs_inode_get(ctx, key, true, 0);
		if (!in)
			return -ENOMEM;
		fill_dir_attr(ctx, &e->attr);
		goto found;
	}
	if (!in || !in->is_dir) {
		const char *base = strrchr(key, '/');

		/* A name nothing is known of and that has no extension (HDF5
		 * and netCDF files have one; directories seldom do) is also
		 * looked for as a directory at once. */
		if (!in && !hint && *key && !strchr(base ? base + 1 : key, '.'))
			(void)dir_probe_start(ctx, key, &probe);
		in = fs_inode_get(ctx, key, false, 0);
		if (!in) {
			dir_probe_drop(probe);
			return -ENOMEM;
		}
		pthread_mutex_lock(&in->lock);
		if (hint && hint->vs)
			seed_attr_locked(ctx, in, hint->vs, hint->t);
		rc = refresh_locked(ctx, in, false);
		if (rc == 0)
			e->attr = in->attr;
		pthread_mutex_unlock(&in->lock);
		if (rc != -ENOENT) /* a file, or an error */
			dir_probe_drop(probe);
		if (rc == 0)
			goto found;
		if (rc != -ENOENT)
			return rc;
	}
	rc = probe ? dir_probe_wait(probe) : dir_exists(ctx, key);
	if (rc < 0)
		return rc;
	if (!rc)
		return -ENOENT;
	in = fs_inode_get(ctx, key, true, 0);
	if (!in)
		return -ENOMEM;
	fill_dir_attr(ctx, &e->attr);
found:
	if (hint) /* a listing saw it: no longer absent */
		fs_absent_forget(ctx, key);
	if (lookup)
		fs_inode_get(ctx, key, in->is_dir, lookup);
	e->ino = in->ino;
	e->attr.st_ino = in->ino;
	e->attr_timeout = ctx->cfg.attr_timeout;
	e->entry_timeout = ctx->cfg.attr_timeout;
	return 0;
}

static int resolve(struct fs_ctx *ctx, const char *key,
		   struct fuse_entry_param *e, int lookup)
{
	return resolve_hinted(ctx, key, e, lookup, NULL);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs_ctx *ctx = userdata;

	/* libfuse refuses the session unless this equals the max_read=
	 * mount option (it does not fill it in itself). */
	if (ctx->cfg.max_read)
		conn->max_read = ctx->cfg.max_read;
	/* Large kernel requests: fewer, bigger writes.  No kernel
	 * readahead: it would read the pages around every small metadata
	 * read, and in an HDF5 file those hold chunks, fetched for nothing.
	 * What a read fetches is stored in the page cache instead
	 * (pagefill.c), a whole chunk at a time. */
	conn->max_write = 1 << 20;
	conn->max_readahead = 0;
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want &= ~FUSE_CAP_EXPORT_SUPPORT;
	if (ctx->on_init)
		ctx->on_init(ctx);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fuse_entry_param e;
	char *key;
	int rc;

	rc = child_of(ctx, parent, name, -ENOENT, &key);
	if (rc == 0 && fs_absent_known(ctx, key)) {
		rc = -ENOENT;
	} else if (rc == 0) {
		rc = resolve(ctx, key, &e, 1);
		if (rc == -ENOENT)
			fs_absent_note(ctx, key);
	}
	free(key);
	if (rc == -ENOENT && ctx->cfg.negative_timeout > 0) {
		/* Inode 0: the kernel keeps the name as absent for that long
		 * (but for an exclusive create: fs_absent_known). */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = ctx->cfg.negative_timeout;
		fuse_reply_entry(req, &e);
	} else if (rc < 0) {
		fuse_reply_err(req, -rc);
	} else {
		fuse_reply_entry(req, &e);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_inode *in = fs_inode_by_ino(ctx, ino);

	if (in)
		fs_inode_forget(ctx, in, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct fs_ctx *ctx = req_ctx(req);
	size_t i;

	for (i = 0; i < count; i++) {
		struct fs_inode *in = fs_inode_by_ino(ctx, forgets[i].ino);

		if (in)
			fs_inode_forget(ctx, in, forgets[i].nlookup);
	}
	fuse_reply_none(req);
}

/* Reply to GETATTR/SETATTR: the error if rc < 0, else *st for inode ino. */
static void reply_attr(fuse_req_t req, struct fs_ctx *ctx, fuse_ino_t ino,
		       int rc, struct stat *st)
{
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	st->st_ino = ino;
	fuse_reply_attr(req, st, ctx->cfg.attr_timeout);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_inode *in = fs_inode_by_ino(ctx, ino);
	struct stat st;
	int rc;

	(void)fi;
	if (!in) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	pthread_mutex_lock(&in->lock);
	rc = refresh_locked(ctx, in, false);
	st = in->attr;
	pthread_mutex_unlock(&in->lock);
	reply_attr(req, ctx, ino, rc, &st);
}

/* Make sure `in` has a stage holding its current content (in->lock held).
 * `empty`: the caller is about to truncate to 0, skip the download.
 * `created`: the file is being created, so its commit must not replace
 * an object someone else put there meanwhile. */
static int ensure_stage_locked(struct fs_ctx *ctx, struct fs_inode *in,
			       bool empty, bool created)
{
	int rc;

	if (in->stage)
		return 0;
	if (created)
		return fs_stage_create(ctx, in, NULL, "");
	if (empty)
		return fs_stage_create(ctx, in, NULL, NULL);
	rc = refresh_locked(ctx, in, true);
	if (rc < 0)
		return rc;
	return fs_stage_create(ctx, in, in->ver, in->ver->etag);
}

/* Truncate (or extend) the stage of `in` to `size` bytes (in->lock
 * held).  Bytes past the old end read as zeros, and so do bytes cut off
 * and then extended again: the cut range is marked written, so it is never
 * read from the base again. */
static int stage_truncate(struct fs_ctx *ctx, struct fs_inode *in,
			  uint64_t size)
{
	struct fs_stage *sg = in->stage;
	struct stat st;

	if (fstat(sg->fd, &st) < 0 || fs_stage_reserve(sg) < 0 ||
	    ftruncate(sg->fd, size) < 0)
		return errno ? -errno : -ENOMEM;
	fs_stage_set_dirty(ctx, in);
	if (size == 0)
		fs_stage_rebase(sg, NULL); /* nothing of the old file is left */
	else if (size > (uint64_t)st.st_size)
		fs_stage_mark(sg, st.st_size, size - st.st_size);
	else if (size < (uint64_t)st.st_size)
		fs_stage_mark(sg, size, st.st_size - size);
	return 0;
}

/* After a rename moved the committed file under `in`'s open stage to
 * `to` (in->lock held): the stage's base is the file at its new key. */
static int restage_renamed(struct fs_ctx *ctx, struct fs_inode *in,
			   const char *to)
{
	struct fs_stage *sg = in->stage;
	struct fs_version *v = NULL;
	int rc;

	if (!sg->base)
		return fs_current_etag(ctx, in, sg->expect);
	rc = fs_version_load(ctx, to, &v);
	if (rc < 0) {
		ch5_err("%s: the renamed file cannot be read back (%s)", to,
			strerror(-rc));
		return rc;
	}
	fs_stage_set_base(sg, v);
	memcpy(sg->expect, v->etag, sizeof(sg->expect));
	fs_version_put(v);
	return 0;
}

/* Writes to a store whose credentials cannot write (ost_read_only: an
 * Azure SAS without write permission) fail at once with EACCES, before
 * anything is staged.  True when the request was answered. */
static bool refused_write(fuse_req_t req, struct fs_ctx *ctx)
{
	if (!ost_read_only(ctx->st))
		return false;
	fuse_reply_err(req, EACCES);
	return true;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_inode *in = fs_inode_by_ino(ctx, ino);
	struct stat st;
	int rc = 0;

	if (!in) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && refused_write(req, ctx))
		return;
	pthread_mutex_lock(&in->lock);
	if ((to_set & FUSE_SET_ATTR_SIZE) && in->is_dir) {
		rc = -EISDIR;
		goto out;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		rc = ensure_stage_locked(ctx, in, attr->st_size == 0, false);
		if (rc < 0)
			goto out;
		rc = stage_truncate(ctx, in, attr->st_size);
		if (rc < 0)
			goto out;
		/* truncate(2) on a closed file: commit now, nobody will
		 * flush it. */
		if (!fi && in->opens == 0) {
			rc = fs_commit(ctx, in);
			if (rc < 0)
				goto out;
			fs_stage_drop(in, NULL);
		}
	}
	rc = refresh_locked(ctx, in, false);
	if (rc < 0)
		goto out;
	/* Ownership, mode and times are not stored in the object store:
	 * they are kept in memory for the life of the inode. */
	if (to_set & FUSE_SET_ATTR_MODE) {
		in->attr.st_mode = (in->attr.st_mode & S_IFMT) |
				   (attr->st_mode & 07777);
		in->mode_set = !in->is_dir;
	}
	if (to_set & FUSE_SET_ATTR_UID)
		in->attr.st_uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		in->attr.st_gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_MTIME)
		in->attr.st_mtim = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_ATIME)
		in->attr.st_atim = attr->st_atim;
out:
	st = in->attr;
	pthread_mutex_unlock(&in->lock);
	reply_attr(req, ctx, ino, rc, &st);
}

static struct fs_handle *handle_new(struct fs_ctx *ctx, struct fs_inode *in,
				    bool writable)
{
	struct fs_handle *fh = calloc(1, sizeof(*fh));

	if (!fh)
		return NULL;
	fh->inode = in;
	fh->writable = writable;
	pthread_mutex_init(&fh->lock, NULL);
	pthread_mutex_lock(&ctx->itable_lock);
	fh->next = ctx->handles;
	if (fh->next)
		fh->next->prev = fh;
	ctx->handles = fh;
	pthread_mutex_unlock(&ctx->itable_lock);
	return fh;
}

void fs_handle_free(struct fs_ctx *ctx, struct fs_handle *fh)
{
	pthread_mutex_lock(&ctx->itable_lock);
	if (fh->prev)
		fh->prev->next = fh->next;
	else
		ctx->handles = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	pthread_mutex_unlock(&ctx->itable_lock);
	if (fh->ver)
		fs_version_put(fh->ver);
	pthread_mutex_destroy(&fh->lock);
	free(fh);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_inode *in = fs_inode_by_ino(ctx, ino);
	bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	bool trunc = fi->flags & O_TRUNC;
	struct fs_handle *fh = NULL;
	char old_etag[OST_ETAG_MAX] = "";
	int rc = 0;

	if (!in) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (in->is_dir) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (writable && refused_write(req, ctx))
		return;
	fh = handle_new(ctx, in, writable);
	if (!fh) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&in->lock);
	if (writable || trunc) {
		rc = ensure_stage_locked(ctx, in, trunc, false);
		if (rc < 0)
			goto out;
		if (trunc) {
			rc = stage_truncate(ctx, in, 0);
			if (rc < 0)
				goto out;
		}
	} else if (!in->stage) {
		/* Revalidate: a new version gets a fresh page cache. */
		if (in->ver)
			memcpy(old_etag, in->ver->etag, sizeof(old_etag));
		rc = refresh_locked(ctx, in, true);
		if (rc < 0)
			goto out;
		fh->ver = in->ver;
		fs_version_get(fh->ver);
		fi->keep_cache = old_etag[0] && !strcmp(old_etag, fh->ver->etag);
	}
	/* Writers never use the kernel page cache: it reads whole pages
	 * around each small metadata read, and in an HDF5 file those pages
	 * may hold chunk data too (past the manifest's page fill), so an r+
	 * edit would fetch chunks it never touches.  Readers may choose the
	 * same (-o direct_io); by default they keep the page cache, which
	 * answers libhdf5's many small reads inside a chunk from memory. */
	fi->direct_io = writable || ctx->cfg.direct_io;
out:
	pthread_mutex_unlock(&in->lock);
	/* The kernel drops the old version's pages once this open is
	 * answered; a page cache store of that version still running must
	 * end first (a later one sees the new version and stores nothing). */
	if (rc == 0 && fh->ver && !fi->keep_cache)
		fs_pagefill_barrier(ctx);
	if (rc < 0) {
		fs_handle_free(ctx, fh);
		fuse_reply_err(req, -rc);
		return;
	}
	fs_inode_open_count(ctx, in, 1);
	fi->fh = (uintptr_t)fh;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* The opener was interrupted: undo. */
		fs_inode_open_count(ctx, in, -1);
		fs_handle_free(ctx, fh);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_inode *in = NULL;
	struct fuse_entry_param e;
	struct fs_handle *fh = NULL;
	char *key;
	int rc;

	if (refused_write(req, ctx))
		return;
	rc = child_of(ctx, parent, name, -EPERM, &key);
	if (rc < 0)
		goto out;
	in = fs_inode_get(ctx, key, false, 0);
	if (in)
		fh = handle_new(ctx, in, true);
	if (!fh) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&in->lock);
	in->unlinked = false;
	rc = ensure_stage_locked(ctx, in, true, true);
	if (rc == 0)
		rc = stage_truncate(ctx, in, 0);
	if (rc == 0) {
		if (mode & 07777) {
			in->attr.st_mode = S_IFREG | (mode & 07777 &
						      ~ctx->cfg.umask);
			in->mode_set = true;
		}
		rc = refresh_locked(ctx, in, true);
	}
	memset(&e, 0, sizeof(e));
	e.attr = in->attr;
	pthread_mutex_unlock(&in->lock);
	if (rc < 0)
		goto out;
	fs_inode_get(ctx, key, false, 1);
	fs_inode_open_count(ctx, in, 1);
	fs_absent_forget(ctx, key);
	e.ino = in->ino;
	e.attr.st_ino = in->ino;
	e.attr_timeout = e.entry_timeout = ctx->cfg.attr_timeout;
	fi->direct_io = 1; /* as for any writer (op_open) */
	fi->fh = (uintptr_t)fh;
	fh = NULL;
out:
	free(key);
	if (fh)
		fs_handle_free(ctx, fh);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_create(req, &e, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_handle *fh = fi_handle(fi);
	struct fs_inode *in = fh->inode;
	struct fs_version *v;

	(void)ino;
	pthread_mutex_lock(&in->lock);
	if (in->stage) {
		char *buf = malloc(size ? size : 1);
		ssize_t n = buf ? fs_stage_pread(ctx, in->stage, buf, size,
						 off)
				: -ENOMEM;

		pthread_mutex_unlock(&in->lock);
		if (n < 0)
			fuse_reply_err(req, (int)-n);
		else
			fuse_reply_buf(req, buf, n);
		free(buf);
		return;
	}
	/* A handle opened for writing whose stage was committed and
	 * dropped reads the version the commit produced. */
	v = fh->ver ? fh->ver : in->ver;
	if (!v) {
		pthread_mutex_unlock(&in->lock);
		fuse_reply_err(req, EIO);
		return;
	}
	fs_version_get(v);
	pthread_mutex_unlock(&in->lock);
	__atomic_add_fetch(&ctx->reads, 1, __ATOMIC_RELAXED);
	fs_version_read(ctx, req, v, fh, size, off);
	fs_version_put(v);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_inode *in = fi_handle(fi)->inode;
	ssize_t n = 0;
	int rc = 0;

	(void)ino;
	pthread_mutex_lock(&in->lock);
	rc = ensure_stage_locked(ctx, in, false, false);
	/* Room for the range first: once written, the spool file's bytes
	 * must be marked, or reads would return the base's instead. */
	if (rc == 0)
		rc = fs_stage_reserve(in->stage);
	if (rc == 0) {
		fs_stage_set_dirty(ctx, in);
		n = pwrite(in->stage->fd, buf, size, off);
		if (n < 0)
			rc = -errno;
		if (n > 0)
			fs_stage_mark(in->stage, off, n);
	}
	pthread_mutex_unlock(&in->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, n);
}

/* Commit if the stage has unsaved writes (in->lock held). */
static int commit_if_dirty_locked(struct fs_ctx *ctx, struct fs_inode *in)
{
	if (!in->stage || !in->stage->dirty || in->unlinked)
		return 0;
	return fs_commit(ctx, in);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_inode *in = fi_handle(fi)->inode;
	int rc;

	(void)ino;
	pthread_mutex_lock(&in->lock);
	rc = commit_if_dirty_locked(ctx, in);
	pthread_mutex_unlock(&in->lock);
	fuse_reply_err(req, -rc);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)datasync;
	op_flush(req, ino, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_handle *fh = fi_handle(fi);
	struct fs_inode *in = fh->inode;
	struct fs_version *doomed = NULL;
	bool last;

	(void)ino;
	pthread_mutex_lock(&in->lock);
	last = in->opens == 1;
	if (in->opens == 1 && in->stage) {
		/* Last close: commit what is left, then drop the stage unless
		 * the commit failed (then it stays in the spool). */
		if (commit_if_dirty_locked(ctx, in) == 0 &&
		    (!in->stage->dirty || in->unlinked))
			fs_stage_drop(in, NULL);
	}
	if (in->opens == 1) {
		doomed = in->doomed;
		in->doomed = NULL;
	}
	pthread_mutex_unlock(&in->lock);
	/* the file's last handle: its whole-file prefetch stops */
	if (last && fh->ver)
		fs_whole_cancel(ctx, fh->ver);
	if (doomed) {
		fs_delete_objects(ctx, doomed);
		fs_version_put(doomed);
	}
	fs_handle_free(ctx, fh);
	fs_inode_open_count(ctx, in, -1);
	fuse_reply_err(req, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_inode *in;
	char *key, dead[64];
	struct fs_version *doomed = NULL;
	bool staged = false;
	int rc;

	if (refused_write(req, ctx))
		return;
	rc = child_of(ctx, parent, name, -EPERM, &key);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	in = fs_inode_by_key(ctx, key);
	if (in) {
		if (in->is_dir) {
			free(key);
			fuse_reply_err(req, EISDIR);
			return;
		}
		pthread_mutex_lock(&in->lock);
		in->unlinked = true;
		staged = in->stage != NULL;
		in->have_attr = false;
		pthread_mutex_unlock(&in->lock);
		/* Open handles keep the inode under a name no lookup can
		 * produce, so a new file of this name gets a new inode. */
		snprintf(dead, sizeof(dead), "\x01unlinked/%llu",
			 (unsigned long long)in->ino);
		fs_inode_rename(ctx, key, dead);
	}
	rc = fs_remove_file(ctx, key, in && in->opens ? &doomed : NULL);
	if (rc == -ENOENT && staged)
		rc = 0;
	if (doomed) {
		pthread_mutex_lock(&in->lock);
		in->doomed = doomed;
		pthread_mutex_unlock(&in->lock);
	}
	free(key);
	fuse_reply_err(req, -rc);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fuse_entry_param e;
	struct ost_info info;
	char *key, *marker = NULL;
	int rc;

	(void)mode;
	if (refused_write(req, ctx))
		return;
	rc = child_of(ctx, parent, name, -EPERM, &key);
	if (rc < 0)
		goto out;
	marker = fs_child_key(key, "");
	if (!marker) {
		rc = -ENOMEM;
		goto out;
	}
	rc = ost_head(ctx->st, key, &info);
	if (rc == 0) {
		rc = -EEXIST;
		goto out;
	}
	rc = ost_put_buf(ctx->st, marker, "", 0, NULL);
	if (rc < 0)
		goto out;
	fs_absent_forget(ctx, key);
	rc = resolve(ctx, key, &e, 1);
out:
	free(key);
	free(marker);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct ost_list_result res = { 0 };
	char *key, *prefix = NULL, **staged = NULL;
	size_t n_staged = 0, i;
	int rc;

	if (refused_write(req, ctx))
		return;
	rc = child_of(ctx, parent, name, -EPERM, &key);
	if (rc < 0)
		goto out;
	prefix = fs_child_key(key, "");
	if (!prefix) {
		rc = -ENOMEM;
		goto out;
	}
	rc = ost_list(ctx->st, prefix, NULL, NULL, 2, &res);
	if (rc < 0)
		goto out;
	if (res.n_objects == 0) {
		rc = -ENOENT;
		goto out;
	}
	fs_staged_children(ctx, key, &staged, &n_staged);
	if (res.n_objects > 1 || strcmp(res.objects[0].key, prefix) ||
	    n_staged) {
		rc = -ENOTEMPTY;
		goto out;
	}
	rc = ost_delete(ctx->st, prefix);
out:
	for (i = 0; i < n_staged; i++)
		free(staged[i]);
	free(staged);
	ost_list_result_release(&res);
	free(key);
	free(prefix);
	fuse_reply_err(req, -rc);
}

/* Move every file below directory `from` to the same name below `to`
 * (with its objects, fs_move_file()), recreate the directory markers
 * there, then remove the old markers, deepest first. */
static int rename_tree(struct fs_ctx *ctx, const char *from, const char *to)
{
	char *fp = fs_child_key(from, ""), *token = NULL, **markers = NULL;
	size_t fl = fp ? strlen(fp) : 0, n_markers = 0, i;
	int rc = 0;

	if (!fp)
		return -ENOMEM;
	do {
		struct ost_list_result res = { 0 };

		rc = ost_list(ctx->st, fp, NULL, token, 1000, &res);
		free(token);
		token = NULL;
		for (i = 0; rc == 0 && i < res.n_objects; i++) {
			const char *k = res.objects[i].key;
			size_t kl = strlen(k);
			char *nk = fs_child_key(to, k + fl);

			if (!nk) {
				rc = -ENOMEM;
				break;
			}
			if (kl && k[kl - 1] == '/') {
				char **nm = realloc(markers, (n_markers + 1) *
								     sizeof(*nm));

				rc = nm ? ost_put_buf(ctx->st, nk, "", 0, NULL)
					: -ENOMEM;
				if (nm) {
					markers = nm;
					markers[n_markers] = strdup(k);
					if (markers[n_markers])
						n_markers++;
				}
			} else {
				rc = fs_move_file(ctx, k, nk);
			}
			free(nk);
		}
		if (rc == 0 && res.next_token)
			token = strdup(res.next_token);
		ost_list_result_release(&res);
	} while (rc == 0 && token);
	/* The listing is sorted, so later markers are deeper. */
	for (i = n_markers; i-- > 0;) {
		if (rc == 0)
			ost_delete(ctx->st, markers[i]);
		free(markers[i]);
	}
	free(markers);
	if (rc == 0)
		ost_delete(ctx->st, fp);
	free(fp);
	return rc;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_inode *in, *dst_in;
	struct fuse_entry_param src_e, dst_e;
	struct fs_version *dst_ver = NULL;
	char *from = NULL, *to = NULL, dead[64];
	bool dst_exists;
	int rc;

	if (refused_write(req, ctx))
		return;
	if (flags & RENAME_EXCHANGE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = child_of(ctx, parent, name, -EPERM, &from);
	if (rc == 0)
		rc = child_of(ctx, newparent, newname, -EPERM, &to);
	if (rc < 0)
		goto out;
	/* The kernel holds lookups on both ends, so the inodes stay. */
	rc = resolve(ctx, from, &src_e, 0);
	if (rc < 0)
		goto out;
	in = fs_inode_by_ino(ctx, src_e.ino);
	rc = resolve(ctx, to, &dst_e, 0);
	dst_exists = rc == 0;
	if (rc < 0 && rc != -ENOENT)
		goto out;
	dst_in = dst_exists ? fs_inode_by_ino(ctx, dst_e.ino) : NULL;
	if (dst_exists && (flags & RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto out;
	}
	if (in->is_dir) {
		if (dst_exists && !dst_in->is_dir) {
			rc = -ENOTDIR;
			goto out;
		}
		if (dst_exists) {
			/* Only an empty directory may be replaced. */
			struct ost_list_result res = { 0 };
			char *dp = fs_child_key(to, "");

			rc = dp ? ost_list(ctx->st, dp, NULL, NULL, 2, &res)
				: -ENOMEM;
			if (rc == 0 &&
			    (res.n_objects > 1 ||
			     (res.n_objects == 1 &&
			      strcmp(res.objects[0].key, dp))))
				rc = -ENOTEMPTY;
			ost_list_result_release(&res);
			free(dp);
			if (rc < 0)
				goto out;
		}
		rc = rename_tree(ctx, from, to);
		if (rc == 0)
			rc = fs_inode_rename(ctx, from, to);
		goto out;
	}
	if (dst_exists && dst_in->is_dir) {
		rc = -EISDIR;
		goto out;
	}
	pthread_mutex_lock(&in->lock);
	/* Pending writes land first, so the store holds what is moved. */
	rc = commit_if_dirty_locked(ctx, in);
	pthread_mutex_unlock(&in->lock);
	if (rc < 0)
		goto out;
	if (dst_exists) {
		rc = fs_version_load(ctx, to, &dst_ver);
		if (rc < 0 && rc != -ENOENT && rc != -EBADMSG)
			goto out;
	}
	rc = fs_move_file(ctx, from, to);
	if (rc == -ENOENT) /* staged only, never committed */
		rc = 0;
	if (rc < 0)
		goto out;
	/* The replaced file's objects go after its manifest was replaced. */
	fs_delete_objects(ctx, dst_ver);
	if (dst_in) {
		snprintf(dead, sizeof(dead), "\x01unlinked/%llu",
			 (unsigned long long)dst_in->ino);
		pthread_mutex_lock(&dst_in->lock);
		dst_in->unlinked = true;
		pthread_mutex_unlock(&dst_in->lock);
		fs_inode_rename(ctx, to, dead);
	}
	rc = fs_inode_rename(ctx, from, to);
	/* An open stage commits to the new name now: over the object the
	 * rename put there, whose objects hold the base's unwritten bytes. */
	pthread_mutex_lock(&in->lock);
	if (rc == 0 && in->stage)
		rc = restage_renamed(ctx, in, to);
	pthread_mutex_unlock(&in->lock);
out:
	/* Names under `to` may exist now (and moved ones are looked up
	 * again): nothing kept as absent stands. */
	if (to)
		fs_absent_forget(ctx, NULL);
	if (dst_ver)
		fs_version_put(dst_ver);
	free(from);
	free(to);
	fuse_reply_err(req, -rc);
}

/* An open directory: a snapshot of its entries taken at opendir. */
struct dir_entry {
	char *name;
	bool is_dir;
	bool listed;	   /* an object of the LIST: etag and size are set */
	bool have;	   /* vs and t are set (the directory index, or
			      dir_prefetch) */
	bool fetched;	   /* vs came from a header GET of this listing */
	double t;	   /* fs_now() when vs was fetched */
	char etag[OST_ETAG_MAX]; /* the LIST's */
	uint64_t size;		 /* the LIST's: stored bytes */
	struct fs_vstat vs;
};

struct dir_handle {
	char *key;
	struct dir_entry *ents;
	size_t n;
	size_t ahead; /* entries [0, ahead) had their headers asked for */
	struct dir_handle *prev, *next; /* fs_ctx.dirs, under itable_lock */
};

static int ent_cmp(const void *a, const void *b)
{
	const struct dir_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	/* Files before directories of the same name: lookup prefers the
	 * file, so the listing must too. */
	return c ? c : (int)x->is_dir - (int)y->is_dir;
}

/* Append entry `name` [0, len) to d; `info`: its LIST answer (NULL for a
 * directory or a staged file). */
static int dir_add(struct dir_handle *d, size_t *cap, const char *name,
		   size_t len, bool is_dir, const struct ost_info *info)
{
	if (!len)
		return 0;
	if (d->n == *cap) {
		struct dir_entry *ne;

		*cap = *cap ? *cap * 2 : 64;
		ne = realloc(d->ents, *cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		d->ents = ne;
	}
	memset(&d->ents[d->n], 0, sizeof(d->ents[d->n]));
	d->ents[d->n].name = strndup(name, len);
	if (!d->ents[d->n].name)
		return -ENOMEM;
	if (info) {
		d->ents[d->n].listed = true;
		memcpy(d->ents[d->n].etag, info->etag, OST_ETAG_MAX);
		d->ents[d->n].size = info->size;
	}
	d->ents[d->n++].is_dir = is_dir;
	return 0;
}

static void dir_link(struct fs_ctx *ctx, struct dir_handle *d)
{
	pthread_mutex_lock(&ctx->itable_lock);
	d->next = ctx->dirs;
	if (d->next)
		d->next->prev = d;
	ctx->dirs = d;
	pthread_mutex_unlock(&ctx->itable_lock);
}

static void dir_unlink(struct fs_ctx *ctx, struct dir_handle *d)
{
	pthread_mutex_lock(&ctx->itable_lock);
	if (d->prev)
		d->prev->next = d->next;
	else
		ctx->dirs = d->next;
	if (d->next)
		d->next->prev = d->prev;
	pthread_mutex_unlock(&ctx->itable_lock);
}

static void dir_free(struct dir_handle *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->ents[i].name);
	free(d->ents);
	free(d->key);
	free(d);
}

/* The directory index (dirindex.h): fetched while the LIST runs, it gives
 * the attributes of each file whose ETag the LIST shows unchanged, so
 * `ls -l` needs no header GET for it; a listing that had to fetch headers
 * stores the index anew when the directory is released. */
#define DIR_INDEX_FIRST (256 << 10) /* bytes the first GET asks for */

struct dir_index_get {
	struct ost_req r; /* first: the completion gets &r */
	struct ost_batch b;
	char *key;
	uint8_t *buf;
};

/* Start the GET of directory `dirkey`'s index.  Returns what
 * dir_index_apply() takes, or NULL (no index for this directory, or out
 * of memory). */
static struct dir_index_get *dir_index_start(struct fs_ctx *ctx,
					     const char *dirkey)
{
	struct dir_index_get *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->key = h5m_dirindex_key(dirkey);
	g->buf = malloc(DIR_INDEX_FIRST);
	if (!g->key || !g->buf) {
		free(g->key);
		free(g->buf);
		free(g);
		return NULL;
	}
	ost_batch_init(&g->b, 1);
	g->r.op = OST_GET;
	g->r.key = g->key;
	g->r.buf = g->buf;
	g->r.len = DIR_INDEX_FIRST;
	g->r.done = ost_batch_done;
	g->r.arg = &g->b;
	ost_batch_submit(ctx->st, &g->b, &g->r);
	return g;
}

/* Wait for the GET `g` started, and with `use`, give each listed file of
 * `d` whose ETag the index has its attributes from it.  Frees g.  A
 * missing or unreadable index only means header GETs. */
static void dir_index_apply(struct fs_ctx *ctx, struct dir_handle *d,
			    struct dir_index_get *g, bool use)
{
	struct h5m_dirindex ix;
	const uint8_t *buf = g->buf;
	void *all = NULL;
	size_t len = 0, i;
	double t;
	int rc;

	ost_batch_wait(&g->b);
	rc = g->r.rc;
	len = g->r.got;
	if (use && rc == 0 && g->r.info.size > g->r.got) {
		rc = ost_get_all(ctx->st, g->key, H5M_DIRINDEX_MAX, &all, &len,
				 NULL);
		buf = all;
	}
	if (use && rc == 0)
		rc = h5m_dirindex_decode(buf, len, &ix);
	if (use && rc == 0) {
		t = fs_now();
		for (i = 0; i < d->n; i++) {
			struct dir_entry *de = &d->ents[i];
			const struct h5m_dirent *e;

			if (!de->listed || de->is_dir || !de->etag[0])
				continue;
			e = h5m_dirindex_find(&ix, de->name);
			if (!e || strcmp(e->etag, de->etag))
				continue;
			memset(&de->vs, 0, sizeof(de->vs));
			de->vs.size = e->size;
			de->vs.mtime_ns = e->mtime_ns;
			de->vs.manifest = e->manifest;
			de->vs.object_size = de->size;
			memcpy(de->vs.etag, de->etag, sizeof(de->vs.etag));
			de->t = t;
			de->have = true;
		}
		h5m_dirindex_free(&ix);
	} else if (use && rc != -ENOENT) {
		ch5_debug("%s: the directory index is not used (%s)", g->key,
			  strerror(-rc));
	}
	free(all);
	free(g->buf);
	free(g->key);
	free(g);
}

/* At releasedir: if the listing fetched headers (the index missed them),
 * store an index of every file whose attributes it knows.  Only where a
 * manifest was seen (a listing of plain objects, say a bucket filled by
 * other tools, writes nothing into it), not on a read-only store; a
 * failure is logged and costs only header GETs. */
static void dir_index_store(struct fs_ctx *ctx, struct dir_handle *d)
{
	struct h5m_dirent *ents;
	size_t i, n = 0;
	bool fetched = false, manifests = false;

	for (i = 0; i < d->n; i++) {
		fetched |= d->ents[i].fetched;
		manifests |= d->ents[i].have && d->ents[i].vs.manifest;
	}
	if (!fetched || !manifests || ost_read_only(ctx->st))
		return;
	ents = calloc(d->n, sizeof(*ents));
	if (!ents)
		return;
	for (i = 0; i < d->n; i++) {
		const struct dir_entry *de = &d->ents[i];
		struct h5m_dirent *e = &ents[n];

		if (!de->have || !de->listed || de->is_dir)
			continue;
		e->name = de->name;
		snprintf(e->etag, sizeof(e->etag), "%s", de->vs.etag);
		e->size = de->vs.size;
		e->mtime_ns = de->vs.mtime_ns;
		e->manifest = de->vs.manifest;
		n++;
	}
	fs_listing_store(ctx, d->key, ents, n);
	free(ents);
}

static int dir_load(struct fs_ctx *ctx, struct dir_handle *d)
{
	char *prefix = *d->key ? fs_child_key(d->key, "") : strdup("");
	size_t pl = prefix ? strlen(prefix) : 0, cap = 0, i, j;
	char *token = NULL, **staged = NULL;
	size_t n_staged = 0;
	struct dir_index_get *g;
	int rc = 0;

	if (!prefix)
		return -ENOMEM;
	g = dir_index_start(ctx, d->key);
	do {
		struct ost_list_result res = { 0 };

		/* not the directory's own marker (the prefix as a key) */
		rc = ost_list_after(ctx->st, prefix, "/", token,
				    pl ? prefix : NULL, 1000, &res);
		free(token);
		token = NULL;
		for (i = 0; rc == 0 && i < res.n_objects; i++) {
			const char *nm = res.objects[i].key + pl;

			rc = dir_add(d, &cap, nm, strlen(nm), false,
				     &res.objects[i].info);
		}
		for (i = 0; rc == 0 && i < res.n_prefixes; i++) {
			const char *nm = res.prefixes[i] + pl;

			if (!pl && !strcmp(nm, HIDDEN_ROOT "/"))
				continue;
			rc = dir_add(d, &cap, nm, strlen(nm) - 1, true, NULL);
		}
		if (rc == 0 && res.next_token)
			token = strdup(res.next_token);
		ost_list_result_release(&res);
	} while (rc == 0 && token);
	free(prefix);
	fs_staged_children(ctx, d->key, &staged, &n_staged);
	for (i = 0; i < n_staged; i++) {
		if (rc == 0)
			rc = dir_add(d, &cap, staged[i], strlen(staged[i]),
				     false, NULL);
		free(staged[i]);
	}
	free(staged);
	if (rc < 0) {
		if (g)
			dir_index_apply(ctx, d, g, false);
		return rc;
	}
	if (d->n)
		qsort(d->ents, d->n, sizeof(*d->ents), ent_cmp);
	for (i = j = 0; i < d->n; i++) {
		if (j && !strcmp(d->ents[j - 1].name, d->ents[i].name)) {
			free(d->ents[i].name);
			continue;
		}
		d->ents[j++] = d->ents[i];
	}
	d->n = j;
	if (g)
		dir_index_apply(ctx, d, g, true);
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct fs_inode *in = fs_inode_by_ino(ctx, ino);
	struct dir_handle *d;
	int rc;

	if (!in) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (d)
		d->key = fs_inode_key(ctx, in);
	if (!d || !d->key) {
		free(d);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = dir_load(ctx, d);
	if (rc < 0) {
		dir_free(d);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	fi->cache_readdir = 0;
	dir_link(ctx, d);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		dir_unlink(ctx, d);
		dir_free(d);
	}
}

/* readdirplus answers a page of entries with their attributes, and `ls -l`
 * or a file manager asks for them all: the headers of the next DIR_AHEAD
 * files are fetched at once, DIR_PARALLEL in flight, instead of one lookup
 * GET after another. */
#define DIR_AHEAD 256
#define DIR_PARALLEL 32

struct dir_head {
	struct ost_req r; /* first: the completion gets &r */
	struct dir_entry *de;
	char *key;
	uint8_t buf[H5M_HEADER_SIZE];
};

static void dir_head_done(struct ost_req *req)
{
	struct dir_head *h = (struct dir_head *)req;
	struct ost_batch *b = req->arg;

	/* A short answer from an object that has more, or any failure: the
	 * entry is looked up the usual way. */
	if (req->rc == 0 &&
	    (req->got == sizeof(h->buf) || req->got == req->info.size) &&
	    fs_vstat_parse(h->key, h->buf, req->got, &req->info,
			   &h->de->vs) == 0) {
		h->de->t = fs_now();
		h->de->have = true;
		h->de->fetched = true;
	}
	free(h->key);
	free(h);
	ost_batch_finish(b, 0);
}

/* Is the inode of `key` known with attributes still fresh (or staged)? */
static bool attr_fresh(struct fs_ctx *ctx, const char *key)
{
	struct fs_inode *in = fs_inode_hold(ctx, key);
	bool fresh;

	if (!in)
		return false;
	pthread_mutex_lock(&in->lock);
	/* fresh for a while yet: the listing's pages take time */
	fresh = in->stage || (in->have_attr && fs_now() - in->attr_time <
						       ctx->cfg.attr_timeout / 2);
	pthread_mutex_unlock(&in->lock);
	fs_inode_pin(ctx, in, -1);
	return fresh;
}

/* Fetch the headers of the files among entries [from, from + DIR_AHEAD)
 * not asked for yet, unless the next DIR_AHEAD / 2 already were. */
static void dir_prefetch(struct fs_ctx *ctx, struct dir_handle *d,
			 size_t from)
{
	struct ost_batch b;
	size_t i, end = from + DIR_AHEAD, start = from > d->ahead ? from
								  : d->ahead;

	if (end > d->n)
		end = d->n;
	/* a page of readdirplus holds ~170 entries: top up to DIR_AHEAD
	 * ahead when a page could reach past what was asked for */
	if (start >= end || start > from + DIR_AHEAD / 2)
		return;
	ost_batch_init(&b, DIR_PARALLEL);
	for (i = start; i < end; i++) {
		struct dir_entry *de = &d->ents[i];
		struct dir_head *h;
		char *key;

		if (de->is_dir || de->have)
			continue;
		key = fs_child_key(d->key, de->name);
		if (!key)
			break;
		if (attr_fresh(ctx, key)) {
			free(key);
			continue;
		}
		h = calloc(1, sizeof(*h));
		if (!h) {
			free(key);
			break;
		}
		h->de = de;
		h->key = key;
		h->r.op = OST_GET;
		h->r.key = key;
		h->r.buf = h->buf;
		h->r.len = sizeof(h->buf);
		h->r.done = dir_head_done;
		h->r.arg = &b;
		ost_batch_submit(ctx->st, &b, &h->r);
	}
	ost_batch_wait(&b);
	/* Inodes the kernel already has: their dentries are revalidated by
	 * lookups, not by this listing, so they take the headers now. */
	for (i = start; i < end; i++) {
		struct dir_entry *de = &d->ents[i];
		struct fs_inode *in;
		char *key;

		if (!de->have || !(key = fs_child_key(d->key, de->name)))
			continue;
		in = fs_inode_hold(ctx, key);
		free(key);
		if (!in)
			continue;
		pthread_mutex_lock(&in->lock);
		seed_attr_locked(ctx, in, &de->vs, de->t);
		pthread_mutex_unlock(&in->lock);
		fs_inode_pin(ctx, in, -1);
	}
	if (end > d->ahead)
		d->ahead = end;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi, bool plus)
{
	struct fs_ctx *ctx = req_ctx(req);
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size), *p = buf;
	size_t rem = size;
	off_t i;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (plus)
		dir_prefetch(ctx, d, off > 2 ? (size_t)off - 2 : 0);
	/* Offsets: 1 after ".", 2 after "..", 3 + i after entry i. */
	for (i = off; i < (off_t)d->n + 2; i++) {
		struct fuse_entry_param e;
		const char *name;
		size_t len;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			fill_dir_attr(ctx, &e.attr);
			e.attr.st_ino = i == 0 ? ino : FUSE_ROOT_ID;
		} else {
			const struct dir_entry *de = &d->ents[i - 2];
			char *key = fs_child_key(d->key, de->name);

			name = de->name;
			e.attr.st_mode = de->is_dir ? S_IFDIR : S_IFREG;
			if (plus) {
				struct resolve_hint hint = {
					.is_dir = de->is_dir,
					.vs = de->have ? &de->vs : NULL,
					.t = de->t,
				};
				int rc = key ? resolve_hinted(ctx, key, &e, 1,
							      &hint)
					     : -ENOMEM;

				free(key);
				if (rc == -ENOENT)
					continue; /* gone since opendir */
				if (rc < 0) {
					free(buf);
					fuse_reply_err(req, -rc);
					return;
				}
			} else {
				/* Never 0: readdir(3) skips entries whose
				 * d_ino is 0 (glibc takes them for deleted
				 * ones), so `ls` after the kernel's first
				 * readdirplus page showed only that page. */
				struct fs_inode *in =
					key ? fs_inode_hold(ctx, key) : NULL;

				e.attr.st_ino = in ? in->ino : UNKNOWN_INO;
				if (in)
					fs_inode_pin(ctx, in, -1);
				free(key);
			}
		}
		len = plus ? fuse_add_direntry_plus(req, p, rem, name, &e,
						    i + 1)
			   : fuse_add_direntry(req, p, rem, name, &e.attr,
					       i + 1);
		if (len > rem) {
			/* Did not fit: undo the lookup counted for it. */
			if (plus && i >= 2 && e.ino)
				fs_inode_forget(ctx,
						fs_inode_by_ino(ctx, e.ino), 1);
			break;
		}
		p += len;
		rem -= len;
	}
	fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;

	struct fs_ctx *ctx = req_ctx(req);

	(void)ino;
	dir_unlink(ctx, d);
	fuse_reply_err(req, 0);
	dir_index_store(ctx, d);
	dir_free(d);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	/* An object store has no fixed size: report 1 PiB free, as
	 * s3fs-fuse does, so tools that check free space proceed. */
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = sv.f_bfree = sv.f_bavail = (1ULL << 50) / 4096;
	sv.f_files = sv.f_ffree = sv.f_favail = 1ULL << 32;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

int fs_stats_format(struct fs_ctx *ctx, char *buf, size_t size)
{
	static const char *const ops[OST_NOPS] = {
		"get", "put", "head", "list", "delete", "copy"
	};
	struct ost_stats os;
	struct fs_cache_stats cs;
	uint64_t wfiles, wblocks;
	size_t len = 0;
	int i, n;

	ost_stats_get(ctx->st, &os);
	fs_cache_stats_get(ctx->cache, &cs);
#define EMIT(...)                                                          \
	do {                                                               \
		n = snprintf(buf + len, size - len, __VA_ARGS__);          \
		if (n < 0 || (size_t)n >= size - len)                      \
			return -ERANGE;                                    \
		len += n;                                                  \
	} while (0)
	EMIT("store %s\n", ost_name(ctx->st));
	for (i = 0; i < OST_NOPS; i++)
		EMIT("requests.%s %" PRIu64 "\n", ops[i], os.requests[i]);
	EMIT("requests.errors %" PRIu64 "\nrequests.in_flight %" PRIu64 "\n"
	     "requests.retries %" PRIu64 "\n"
	     "bytes.in %" PRIu64 "\nbytes.out %" PRIu64 "\n",
	     os.errors, os.in_flight, os.retries, os.bytes_in, os.bytes_out);
	EMIT("cache.hits %" PRIu64 "\ncache.misses %" PRIu64
	     "\ncache.joins %" PRIu64 "\ncache.evictions %" PRIu64
	     "\ncache.bytes %" PRIu64 "\ncache.blocks %" PRIu64
	     "\ncache.fetching %" PRIu64 "\ncache.partial_gets %" PRIu64
	     "\ncache.partial_hits %" PRIu64 "\n",
	     cs.hits, cs.misses, cs.joins, cs.evictions, cs.bytes, cs.blocks,
	     cs.fetching, cs.partial, cs.partial_hits);
	if (ctx->dcache) {
		struct fs_dcache_stats ds;

		fs_dcache_stats_get(ctx->dcache, &ds);
		EMIT("disk.hits %" PRIu64 "\ndisk.misses %" PRIu64
		     "\ndisk.bytes %" PRIu64 "\ndisk.blocks %" PRIu64
		     "\ndisk.evictions %" PRIu64 "\ndisk.writes %" PRIu64
		     "\ndisk.bytes_saved %" PRIu64
		     "\ndisk.write_errors %" PRIu64 "\n",
		     ds.hits, ds.misses, ds.bytes, ds.files, ds.evictions,
		     ds.writes, ds.bytes_saved, ds.write_errors);
	}
	EMIT("reads %" PRIu64 "\npagecache.stored %" PRIu64 "\n",
	     __atomic_load_n(&ctx->reads, __ATOMIC_RELAXED),
	     fs_pagefill_stored(ctx));
	fs_whole_stats(ctx, &wfiles, &wblocks);
	EMIT("whole.files %" PRIu64 "\nwhole.blocks %" PRIu64 "\n", wfiles,
	     wblocks);
	EMIT("commits %" PRIu64 "\ncommits.failed %" PRIu64 "\n",
	     __atomic_load_n(&ctx->commits, __ATOMIC_RELAXED),
	     __atomic_load_n(&ctx->commit_failures, __ATOMIC_RELAXED));
#undef EMIT
	return (int)len;
}

/* The mount's counters are the root's extended attribute FS_STATS_XATTR
 * (read by `cloudh5 stats MOUNTPOINT`); nothing else has xattrs. */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	char buf[4096];
	int n;

	if (ino != FUSE_ROOT_ID || strcmp(name, FS_STATS_XATTR)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	n = fs_stats_format(req_ctx(req), buf, sizeof(buf));
	if (n < 0)
		fuse_reply_err(req, -n);
	else if (size == 0)
		fuse_reply_xattr(req, n);
	else if (size < (size_t)n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, n);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char names[] = FS_STATS_XATTR; /* with its NUL */

	if (ino != FUSE_ROOT_ID)
		fuse_reply_xattr(req, 0);
	else if (size == 0)
		fuse_reply_xattr(req, sizeof(names));
	else if (size < sizeof(names))
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, sizeof(names));
}

void fs_release_all(struct fs_ctx *ctx)
{
	size_t i;

	while (ctx->handles)
		fs_handle_free(ctx, ctx->handles);
	/* Files unlinked while open whose last RELEASE never came: their
	 * manifest is gone, so their objects go now. */
	for (i = 0; ctx->by_ino && i < ctx->n_buckets; i++) {
		struct fs_inode *in;

		for (in = ctx->by_ino[i]; in; in = in->hnext_ino) {
			if (!in->doomed)
				continue;
			fs_delete_objects(ctx, in->doomed);
			fs_version_put(in->doomed);
			in->doomed = NULL;
		}
	}
	while (ctx->dirs) {
		struct dir_handle *d = ctx->dirs;

		dir_unlink(ctx, d);
		dir_free(d);
	}
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.release = op_release,
	.unlink = op_unlink,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
};
