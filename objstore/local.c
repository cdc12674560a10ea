/*
 * local.c - a directory as an object store (file:///DIR).
 *
 * Keys to paths.  Key "a/b/c" is the file DIR/a/b/c.  Each '/'-separated
 * component is stored verbatim unless it is "", ".", "..", starts with '%',
 * or is "tmp" right below a top-level ".cloudh5" (the temp directory is
 * reserved); such a component gets one '%' in front ("" -> "%", ".." ->
 * "%..", "%41" -> "%%41").  Names that do not start with '%' are never
 * escaped, so the mapping is reversible and LIST returns the original keys;
 * no key resolves outside DIR.  A stored component longer than NAME_MAX (255
 * bytes, escape included) is -ENAMETOOLONG.  Symbolic links and special
 * files inside DIR are not objects (GET says -ENOENT, LIST skips them); a
 * symlinked directory on the way to a key is followed, so DIR must be
 * trusted.
 *
 * Directories.  A key ending in '/' ("dir/") is a directory marker: PUT with
 * 0 bytes creates the directory DIR/dir (mkdir -p; other sizes: -EINVAL);
 * HEAD and GET find it (size 0) whenever the directory exists, also when it
 * was created implicitly by a PUT of "dir/x"; DELETE removes it only if it is
 * empty and otherwise succeeds leaving it.  LIST shows every directory as the
 * object "dir/" (size 0) before the keys below it, and with delimiter "/" as
 * the common prefix "dir/", so an empty directory is visible like an S3
 * marker.  PUT creates missing parent directories.  DELETE of a key leaves
 * its (now maybe empty) parents alone, except below ".cloudh5/", where empty
 * parents are removed up to ".cloudh5/" itself (the per-chunk trees there
 * would otherwise pile up as empty markers).  ".cloudh5/" itself is not an
 * object, and DIR/.cloudh5/tmp never shows in LIST.
 *
 * A key cannot be an object and a prefix of other keys at once: PUT "a/b"
 * when "a" is an object fails with -ENOTDIR, PUT "a" when "a/" is a
 * directory with -EISDIR (and with -EEXIST under OST_PUT_IF_NONE_MATCH).
 * On reads such a key simply does not exist (-ENOENT).
 *
 * Writes.  A PUT writes a temp file DIR/.cloudh5/tmp/<pid>.<tid>.<seq>.<rand>
 * and rename(2)s it into place, so readers see the old object or the new
 * one.  No fsync: a PUT is atomic against readers and process crashes, not
 * against power loss.  A failed PUT removes its temp file; a crash may leave
 * one behind in .cloudh5/tmp (never listed; remove when no writer runs).
 * OST_PUT_IF_NONE_MATCH uses renameat2(RENAME_NOREPLACE) (link(2) where the
 * filesystem lacks it), race-free also between processes.  if_match compares
 * the ETag and renames under the instance's mutex and an flock(2) on
 * .cloudh5/tmp/lock: atomic against every conditional writer of the store
 * (an unconditional PUT still replaces whatever is there, as in S3).
 *
 * ETag: hex "<inode>-<mtime ns>-<size>".  Each PUT sets the new file's mtime
 * to the wall clock in ns, strictly increasing within one instance, so every
 * replace changes the ETag even when an inode number is reused (between
 * processes a collision needs the same inode, size and ns timestamp).  A
 * directory's ETag changes whenever its entries do.
 *
 * Thread-safety: every op may run on several threads at once; one mutex per
 * instance serializes the namespace changes (mkdir, rename, unlink, rmdir).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ost.h"
#include "ost_int.h"

#include "log.h"

#define LC_INTERNAL ".cloudh5"
#define LC_TMP ".cloudh5/tmp"
#define LC_PATH_MAX (2 * OST_KEY_MAX + 8) /* escapes add <= 1 per byte */
#define LC_COPY_BUF (256 * 1024)
#define LC_RETRIES 4 /* renames that lost a parent directory to a rmdir */

struct lc {
	int rootfd; /* DIR, O_RDONLY|O_DIRECTORY; all paths are relative */
	char *dir;  /* for messages */
	pthread_mutex_t lock;	       /* serializes namespace changes */
	int64_t last_mtime_ns;	       /* guarded by lock */
	atomic_uint_least64_t tmp_seq; /* temp file names */
	int lockfd; /* LC_TMP "/lock": flock(2)ed around if_match PUTs, so
		       they are atomic between processes too; -1 if none */
};

/* A key's place below DIR. */
struct lc_path {
	char rel[LC_PATH_MAX]; /* relative path of the file or directory */
	size_t parent_len;     /* rel[0..parent_len) is its parent (0: DIR) */
	bool marker;	       /* key ends with '/': a directory */
	bool internal;	       /* below ".cloudh5/": prune empty parents */
};

/* Does component s[0..n) need the '%' escape at this depth?  under_internal:
 * the top-level component is ".cloudh5". */
static bool lc_need_escape(const char *s, size_t n, unsigned depth,
			   bool under_internal)
{
	if (n == 0 || s[0] == '%')
		return true;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return true;
	return depth == 1 && under_internal && n == 3 && !memcmp(s, "tmp", 3);
}

static int lc_key_path(const char *key, struct lc_path *p)
{
	size_t klen = strlen(key), o = 0, last_start = 0;
	const char *s = key, *end;
	bool under_internal = false;
	unsigned depth = 0;

	if (klen == 0 || klen > OST_KEY_MAX)
		return -EINVAL;
	p->marker = key[klen - 1] == '/';
	end = key + klen - (p->marker ? 1 : 0);
	for (;;) {
		const char *slash = memchr(s, '/', (size_t)(end - s));
		size_t n = (size_t)((slash ? slash : end) - s);
		bool esc = lc_need_escape(s, n, depth, under_internal);

		if (n + esc > NAME_MAX)
			return -ENAMETOOLONG;
		if (depth)
			p->rel[o++] = '/';
		last_start = o;
		if (esc)
			p->rel[o++] = '%';
		memcpy(p->rel + o, s, n);
		o += n;
		if (depth == 0)
			under_internal = n == sizeof(LC_INTERNAL) - 1 &&
					 !memcmp(s, LC_INTERNAL, n);
		depth++;
		if (!slash)
			break;
		s = slash + 1;
	}
	p->rel[o] = '\0';
	p->parent_len = last_start ? last_start - 1 : 0;
	p->internal = under_internal && depth >= 2;
	return 0;
}

/* The marker ".cloudh5/" names our own directory, not an object. */
static bool lc_is_internal_root(const struct lc_path *p)
{
	return p->marker && strcmp(p->rel, LC_INTERNAL) == 0;
}

/* Map errno e of a filesystem call to the objstore's errors. */
static int lc_err(const struct lc *lc, const char *what, const char *key, int e)
{
	switch (e) {
	case ENOENT:
	case EACCES:
	case ENOSPC:
	case EEXIST:
	case ENOTDIR:
	case EISDIR:
	case ENAMETOOLONG:
	case ENOMEM:
	case EROFS:
	case EBADF:
	case EINVAL:
		return -e;
	case EPERM:
		return -EACCES;
	case EDQUOT:
		return -ENOSPC;
	default:
		ch5_err("objstore: local %s: %s %s: %s", lc->dir, what,
			key ? key : "", strerror(e));
		return -EIO;
	}
}

static void lc_info(const struct stat *sb, bool dir, struct ost_info *info)
{
	uint64_t size = dir ? 0 : (uint64_t)sb->st_size;

	if (!info)
		return;
	info->size = size;
	info->mtime_ns =
	    (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
	snprintf(info->etag, sizeof(info->etag), "%llx-%llx-%llx",
		 (unsigned long long)sb->st_ino,
		 (unsigned long long)info->mtime_ns, (unsigned long long)size);
}

/* mkdir -p of rel[0..len).  0, -ENOTDIR (a file is in the way) or -errno. */
static int lc_mkdirs(struct lc *lc, const char *rel, size_t len)
{
	char buf[LC_PATH_MAX];
	struct stat sb;
	size_t i;

	if (len == 0)
		return 0;
	memcpy(buf, rel, len);
	buf[len] = '\0';
	if (fstatat(lc->rootfd, buf, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
	for (i = 1; i <= len; i++) {
		if (i < len && buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdirat(lc->rootfd, buf, 0777) != 0 && errno != EEXIST)
			return lc_err(lc, "mkdir", buf, errno);
		if (i < len)
			buf[i] = '/';
	}
	if (fstatat(lc->rootfd, buf, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		return lc_err(lc, "stat", buf, errno);
	return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

/* After a DELETE below ".cloudh5/": remove the empty parents of rel, up to
 * but not including ".cloudh5".  Caller holds lc->lock. */
static void lc_prune(struct lc *lc, const char *rel, size_t parent_len)
{
	char buf[LC_PATH_MAX];
	size_t len = parent_len;

	memcpy(buf, rel, len);
	while (len > sizeof(LC_INTERNAL) - 1) {
		char *slash;

		buf[len] = '\0';
		if (unlinkat(lc->rootfd, buf, AT_REMOVEDIR) != 0)
			return; /* not empty, or gone: either way done */
		slash = strrchr(buf, '/');
		if (!slash)
			return;
		len = (size_t)(slash - buf);
	}
}

/*
 * GET, HEAD.
 */

static int lc_get(void *priv, const char *key, uint64_t off, void *buf,
		  size_t len, size_t *got, struct ost_info *info)
{
	struct lc *lc = priv;
	struct lc_path p;
	struct stat sb;
	size_t n = 0;
	int fd = -1;
	int rc;

	*got = 0;
	rc = lc_key_path(key, &p);
	if (rc)
		return rc;
	fd = openat(lc->rootfd, p.rel,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
			(p.marker ? O_DIRECTORY : 0));
	if (fd < 0) {
		int e = errno;

		/* ELOOP: a symlink, not an object */
		rc = (e == ENOENT || e == ENOTDIR || e == ELOOP)
			 ? -ENOENT
			 : lc_err(lc, "open", key, e);
		goto out;
	}
	if (fstat(fd, &sb) != 0) {
		rc = lc_err(lc, "fstat", key, errno);
		goto out;
	}
	if (p.marker ? (!S_ISDIR(sb.st_mode) || lc_is_internal_root(&p))
		     : !S_ISREG(sb.st_mode)) {
		rc = -ENOENT;
		goto out;
	}
	while (!p.marker && n < len) {
		ssize_t r =
		    pread(fd, (char *)buf + n, len - n, (off_t)(off + n));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = lc_err(lc, "read", key, errno);
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	lc_info(&sb, p.marker, info);
	*got = n;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

static int lc_head(void *priv, const char *key, struct ost_info *info)
{
	struct lc *lc = priv;
	struct lc_path p;
	struct stat sb;
	int rc;

	rc = lc_key_path(key, &p);
	if (rc)
		return rc;
	if (fstatat(lc->rootfd, p.rel, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
		int e = errno;

		return (e == ENOENT || e == ENOTDIR)
			   ? -ENOENT
			   : lc_err(lc, "stat", key, e);
	}
	if (p.marker ? (!S_ISDIR(sb.st_mode) || lc_is_internal_root(&p))
		     : !S_ISREG(sb.st_mode))
		return -ENOENT;
	lc_info(&sb, p.marker, info);
	return 0;
}

/*
 * PUT.
 */

static int lc_write_all(int fd, const void *buf, size_t len)
{
	const char *b = buf;

	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write the body to the temp file tfd: memory, or copy_file_range(2) from
 * the body fd with a pread loop where the kernel cannot. */
static int lc_write_body(int tfd, const struct ost_body *b)
{
	loff_t in = (loff_t)b->fd_off;
	uint64_t left = b->len;
	char *buf = NULL;
	int rc = 0;

	if (b->buf)
		return lc_write_all(tfd, b->buf, (size_t)b->len);
	while (left) {
		ssize_t n = copy_file_range(
		    b->fd, &in, tfd, NULL,
		    (size_t)(left < SSIZE_MAX ? left : SSIZE_MAX), 0);

		if (n > 0) {
			left -= (uint64_t)n;
			continue;
		}
		if (n == 0) {
			ch5_err("objstore: PUT body fd ended %llu bytes "
				"early",
				(unsigned long long)left);
			return -EIO;
		}
		if (errno == EINTR)
			continue;
		if (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
		    errno == EOPNOTSUPP)
			break; /* fall back to pread + write */
		return -errno;
	}
	if (left) {
		buf = malloc(LC_COPY_BUF);
		if (!buf)
			return -ENOMEM;
	}
	while (left) {
		size_t want = left < LC_COPY_BUF ? (size_t)left : LC_COPY_BUF;
		ssize_t n = pread(b->fd, buf, want, (off_t)in);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0) {
			ch5_err("objstore: PUT body fd ended %llu bytes "
				"early",
				(unsigned long long)left);
			rc = -EIO;
			goto out;
		}
		rc = lc_write_all(tfd, buf, (size_t)n);
		if (rc)
			goto out;
		in += n;
		left -= (uint64_t)n;
	}
out:
	free(buf);
	return rc;
}

/* Create a fresh temp file; its relative path goes to name. */
static int lc_tmp_open(struct lc *lc, char *name, size_t cap, int *fd)
{
	uint64_t seq = atomic_fetch_add(&lc->tmp_seq, 1);
	uint64_t r;
	int tries;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint64_t)ost_now_ns();
	snprintf(name, cap, LC_TMP "/%ld.%ld.%llu.%016llx", (long)getpid(),
		 (long)gettid(), (unsigned long long)seq,
		 (unsigned long long)r);
	for (tries = 0;; tries++) {
		int e, rc;

		*fd = openat(lc->rootfd, name,
			     O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (*fd >= 0)
			return 0;
		e = errno;
		if (e != ENOENT || tries)
			return lc_err(lc, "create temp file", name, e);
		/* someone removed the temp directory: recreate it */
		rc = lc_mkdirs(lc, LC_TMP, sizeof(LC_TMP) - 1);
		if (rc)
			return rc;
	}
}

/* Give the temp file a unique, increasing mtime, so the ETag changes on
 * every replace.  Caller holds lc->lock. */
static int lc_stamp(struct lc *lc, int tfd)
{
	int64_t now = ost_now_ns();
	struct timespec ts[2];

	if (now <= lc->last_mtime_ns)
		now = lc->last_mtime_ns + 1;
	lc->last_mtime_ns = now;
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = now / 1000000000;
	ts[1].tv_nsec = now % 1000000000;
	return futimens(tfd, ts) == 0 ? 0 : -errno;
}

/* rename(2) that fails with EEXIST if `to` exists.  -1 and errno set on
 * failure. */
static int lc_rename_noreplace(int dfd, const char *from, const char *to)
{
	if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
		return -1;
	/* No RENAME_NOREPLACE on this filesystem: link(2) does not replace
	 * either. */
	if (linkat(dfd, from, dfd, to, 0) != 0)
		return -1;
	unlinkat(dfd, from, 0);
	return 0;
}

/* Compare the current ETag of p with cond->if_match.  Caller holds lock. */
static int lc_check_match(struct lc *lc, const char *key,
			  const struct lc_path *p,
			  const struct ost_put_cond *cond)
{
	struct ost_info cur;
	struct stat sb;

	if (fstatat(lc->rootfd, p->rel, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
		int e = errno;

		return (e == ENOENT || e == ENOTDIR)
			   ? -ENOENT
			   : lc_err(lc, "stat", key, e);
	}
	if (p->marker ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode))
		return -ENOENT;
	lc_info(&sb, p->marker, &cur);
	return strcmp(cur.etag, cond->if_match) ? -ESTALE : 0;
}

static int lc_put_marker(struct lc *lc, const char *key,
			 const struct lc_path *p, const struct ost_body *body,
			 const struct ost_put_cond *cond, struct ost_info *info)
{
	struct stat sb;
	int rc;

	if (body->len != 0) {
		ch5_debug("objstore: local: %s: a directory marker holds no "
			  "bytes",
			  key);
		return -EINVAL;
	}
	pthread_mutex_lock(&lc->lock);
	if (cond && cond->if_match[0]) {
		rc = lc_check_match(lc, key, p, cond);
		if (rc)
			goto out;
	}
	rc = lc_mkdirs(lc, p->rel, p->parent_len);
	if (rc)
		goto out;
	if (mkdirat(lc->rootfd, p->rel, 0777) != 0) {
		int e = errno;

		if (e != EEXIST) {
			rc = lc_err(lc, "mkdir", key, e);
			goto out;
		}
		if (fstatat(lc->rootfd, p->rel, &sb, AT_SYMLINK_NOFOLLOW) ==
			0 &&
		    !S_ISDIR(sb.st_mode)) {
			rc = -ENOTDIR;
			goto out;
		}
		if (cond && (cond->flags & OST_PUT_IF_NONE_MATCH)) {
			rc = -EEXIST;
			goto out;
		}
	}
	if (fstatat(lc->rootfd, p->rel, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
		rc = lc_err(lc, "stat", key, errno);
		goto out;
	}
	lc_info(&sb, true, info);
out:
	pthread_mutex_unlock(&lc->lock);
	return rc;
}

static int lc_put_path(struct lc *lc, const char *key, const struct lc_path *p,
		       const struct ost_body *body,
		       const struct ost_put_cond *cond, struct ost_info *info)
{
	bool none_match = cond && (cond->flags & OST_PUT_IF_NONE_MATCH);
	bool if_match = cond && cond->if_match[0];
	bool locked = false, tmp_exists = false;
	char tmp[128];
	struct stat sb;
	int tfd = -1;
	int attempt, rc;

	if (none_match && if_match)
		return -EINVAL;
	if (lc_is_internal_root(p))
		return -EINVAL; /* ".cloudh5/" is ours */
	if (p->marker)
		return lc_put_marker(lc, key, p, body, cond, info);

	rc = lc_tmp_open(lc, tmp, sizeof(tmp), &tfd);
	if (rc)
		goto out;
	tmp_exists = true;
	rc = lc_write_body(tfd, body);
	if (rc == -EDQUOT)
		rc = -ENOSPC;
	if (rc)
		goto out;

	pthread_mutex_lock(&lc->lock);
	locked = true;
	rc = lc_stamp(lc, tfd);
	if (rc == 0 && fstat(tfd, &sb) != 0)
		rc = -errno;
	if (rc) {
		rc = lc_err(lc, "stamp temp file", key, -rc);
		goto out;
	}
	for (attempt = 0;; attempt++) {
		int r, e;

		rc = lc_mkdirs(lc, p->rel, p->parent_len);
		if (rc)
			goto out;
		if (if_match) {
			/* Compare and replace as one step for every process
			 * using this store. */
			if (lc->lockfd >= 0)
				flock(lc->lockfd, LOCK_EX);
			rc = lc_check_match(lc, key, p, cond);
			r = rc ? -1
			       : renameat(lc->rootfd, tmp, lc->rootfd, p->rel);
			e = errno;
			if (lc->lockfd >= 0)
				flock(lc->lockfd, LOCK_UN);
			errno = e;
			if (rc)
				goto out;
		} else if (none_match) {
			r = lc_rename_noreplace(lc->rootfd, tmp, p->rel);
		} else {
			r = renameat(lc->rootfd, tmp, lc->rootfd, p->rel);
		}
		if (r == 0)
			break;
		e = errno;
		/* Another process removed an empty parent in between. */
		if (e == ENOENT && attempt < LC_RETRIES)
			continue;
		if (e == EEXIST || e == ENOTEMPTY)
			rc = none_match ? -EEXIST : -EISDIR;
		else
			rc = lc_err(lc, "rename", key, e);
		goto out;
	}
	tmp_exists = false;
	lc_info(&sb, false, info);
	rc = 0;
out:
	if (locked)
		pthread_mutex_unlock(&lc->lock);
	if (tfd >= 0)
		close(tfd);
	if (tmp_exists)
		unlinkat(lc->rootfd, tmp, 0);
	return rc;
}

static int lc_put(void *priv, const char *key, const struct ost_body *body,
		  const struct ost_put_cond *cond, struct ost_info *info)
{
	struct lc *lc = priv;
	struct lc_path p;
	int rc;

	rc = lc_key_path(key, &p);
	if (rc)
		return rc;
	return lc_put_path(lc, key, &p, body, cond, info);
}

/*
 * DELETE, COPY.
 */

static int lc_del(void *priv, const char *key)
{
	struct lc *lc = priv;
	struct lc_path p;
	int rc = 0, e;

	rc = lc_key_path(key, &p);
	if (rc)
		return rc;
	if (lc_is_internal_root(&p))
		return 0;
	pthread_mutex_lock(&lc->lock);
	if (unlinkat(lc->rootfd, p.rel, p.marker ? AT_REMOVEDIR : 0) == 0) {
		if (p.internal)
			lc_prune(lc, p.rel, p.parent_len);
		goto out;
	}
	e = errno;
	switch (e) {
	case ENOENT:
	case ENOTDIR:
	case EISDIR:	/* "a" is a directory: no object "a" */
	case ENOTEMPTY: /* "dir/" with entries stays, as documented */
	case EEXIST:
		break;
	default:
		rc = lc_err(lc, "delete", key, e);
		break;
	}
out:
	pthread_mutex_unlock(&lc->lock);
	return rc;
}

static int lc_copy(void *priv, const char *src, const char *dst)
{
	struct lc *lc = priv;
	struct ost_body body = {.buf = NULL, .fd = -1, .fd_off = 0, .len = 0};
	struct lc_path ps, pd;
	struct stat sb;
	int fd = -1;
	int rc;

	rc = lc_key_path(src, &ps);
	if (rc)
		return rc;
	rc = lc_key_path(dst, &pd);
	if (rc)
		return rc;
	if (ps.marker) {
		rc = lc_head(lc, src, NULL);
		if (rc)
			return rc;
		body.buf = "";
		return lc_put_path(lc, dst, &pd, &body, NULL, NULL);
	}
	/* Copy from one open file: its bytes cannot change under us, since
	 * objects are only ever replaced by rename. */
	fd = openat(lc->rootfd, ps.rel,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;

		return (e == ENOENT || e == ENOTDIR || e == ELOOP)
			   ? -ENOENT
			   : lc_err(lc, "open", src, e);
	}
	if (fstat(fd, &sb) != 0) {
		rc = lc_err(lc, "fstat", src, errno);
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = -ENOENT;
		goto out;
	}
	body.fd = fd;
	body.len = (uint64_t)sb.st_size;
	rc = lc_put_path(lc, dst, &pd, &body, NULL, NULL);
out:
	close(fd);
	return rc;
}

/*
 * LIST: a depth-first walk that visits each directory's entries in the
 * order of their keys (a directory sorts as "name/"), so keys come out in
 * bytewise order; subtrees outside the prefix, before the token or rolled
 * up into one common prefix are not entered.
 */

struct lc_dent {
	char *name;	  /* on disk; owned */
	const char *comp; /* the key component: name, or name + 1 */
	size_t clen;
	bool dir;
};

struct lc_walk {
	struct lc *lc;
	struct ost_lister l;
	char key[OST_KEY_MAX + 2]; /* the key being built */
};

/* Byte i of a dentry's sort key (comp, plus '/' for a directory), or -1. */
static int lc_dent_byte(const struct lc_dent *d, size_t i)
{
	if (i < d->clen)
		return (unsigned char)d->comp[i];
	return (i == d->clen && d->dir) ? '/' : -1;
}

static int lc_dent_cmp(const void *a, const void *b)
{
	const struct lc_dent *x = a, *y = b;
	size_t i;

	for (i = 0;; i++) {
		int cx = lc_dent_byte(x, i), cy = lc_dent_byte(y, i);

		if (cx != cy)
			return cx < cy ? -1 : 1;
		if (cx < 0)
			return 0;
	}
}

static void lc_dents_free(struct lc_dent *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* Read the listable entries of directory dfd (not closed), sorted. */
static int lc_read_dir(struct lc *lc, int dfd, unsigned depth,
		       bool under_internal, struct lc_dent **out, size_t *nout)
{
	struct lc_dent *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = NULL;
	int fd, rc = 0;

	/* A new open file description: a dup() would share the directory
	 * offset with concurrent LISTs of the same directory. */
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return lc_err(lc, "opendir", NULL, errno);
	d = fdopendir(fd);
	if (!d) {
		rc = lc_err(lc, "opendir", NULL, errno);
		close(fd);
		goto out;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t len = strlen(name);
		bool esc = name[0] == '%', dir;
		const char *comp = esc ? name + 1 : name;
		struct stat sb;

		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (depth == 1 && under_internal && !strcmp(name, "tmp"))
			continue; /* our temp directory */
		/* Only names the key mapping produces. */
		if (lc_need_escape(comp, len - esc, depth, under_internal) !=
		    esc)
			continue;
		if (de->d_type == DT_REG || de->d_type == DT_DIR) {
			dir = de->d_type == DT_DIR;
		} else if (de->d_type == DT_UNKNOWN &&
			   fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			   (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode))) {
			dir = S_ISDIR(sb.st_mode);
		} else {
			continue; /* symlinks, fifos, sockets, devices */
		}
		if (n == cap) {
			size_t c = cap ? 2 * cap : 32;
			struct lc_dent *nv = realloc(v, c * sizeof(*nv));

			if (!nv) {
				rc = -ENOMEM;
				goto out;
			}
			v = nv;
			cap = c;
		}
		v[n].name = strdup(name);
		if (!v[n].name) {
			rc = -ENOMEM;
			goto out;
		}
		v[n].comp = v[n].name + esc;
		v[n].clen = len - esc;
		v[n].dir = dir;
		n++;
	}
	if (errno) {
		rc = lc_err(lc, "readdir", NULL, errno);
		goto out;
	}
	if (n)
		qsort(v, n, sizeof(*v), lc_dent_cmp);
out:
	if (d)
		closedir(d);
	if (rc) {
		lc_dents_free(v, n);
		return rc;
	}
	*out = v;
	*nout = n;
	return 0;
}

/* Walk directory dfd whose entries' keys start with w->key[0..klen).
 * Returns 0, OST_LIST_STOP or -errno. */
static int lc_walk_dir(struct lc_walk *w, int dfd, size_t klen, unsigned depth,
		       bool under_internal)
{
	struct lc_dent *v = NULL;
	struct ost_info info;
	struct stat sb;
	size_t n = 0, i;
	int rc;

	rc = lc_read_dir(w->lc, dfd, depth, under_internal, &v, &n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		const struct lc_dent *e = &v[i];
		size_t nlen = klen + e->clen + (e->dir ? 1 : 0);
		bool internal_root;
		int sfd;

		if (nlen > OST_KEY_MAX)
			continue; /* cannot be a key (and nor can below) */
		memcpy(w->key + klen, e->comp, e->clen);
		if (e->dir)
			w->key[klen + e->clen] = '/';
		w->key[nlen] = '\0';

		if (!e->dir) {
			rc = ost_lister_check(&w->l, w->key);
			if (rc < 0 || rc == OST_LIST_STOP)
				goto out;
			if (rc != OST_LIST_OBJECT)
				continue;
			if (fstatat(dfd, e->name, &sb, AT_SYMLINK_NOFOLLOW) ||
			    !S_ISREG(sb.st_mode))
				continue; /* gone meanwhile */
			lc_info(&sb, false, &info);
			rc = ost_lister_add(&w->l, w->key, &info);
			if (rc)
				goto out;
			continue;
		}

		/* ".cloudh5/" is no marker and may hold nothing listable
		 * (just tmp), so it cannot be rolled up unseen. */
		internal_root = depth == 0 && !strcmp(e->name, LC_INTERNAL);
		if (internal_root) {
			size_t m = nlen < w->l.plen ? nlen : w->l.plen;

			if (memcmp(w->key, w->l.prefix, m))
				continue;
		} else {
			rc = ost_lister_subtree(&w->l, w->key, nlen);
			if (rc < 0 || rc == OST_LIST_STOP)
				goto out;
			if (rc == OST_LIST_SKIP)
				continue;
		}
		sfd = openat(dfd, e->name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			continue; /* gone meanwhile */
		rc = 0;
		if (!internal_root) {
			/* The directory itself, as its marker "dir/". */
			rc = ost_lister_check(&w->l, w->key);
			if (rc == OST_LIST_OBJECT) {
				rc = 0;
				if (fstat(sfd, &sb) == 0) {
					lc_info(&sb, true, &info);
					rc = ost_lister_add(&w->l, w->key,
							    &info);
				}
			}
		}
		if (rc == 0 || rc == OST_LIST_SKIP)
			rc =
			    lc_walk_dir(w, sfd, nlen, depth + 1, internal_root);
		close(sfd);
		if (rc < 0 || rc == OST_LIST_STOP)
			goto out;
	}
	rc = 0;
out:
	lc_dents_free(v, n);
	return rc;
}

static int lc_list(void *priv, const char *prefix, const char *delimiter,
		   const char *token, const char *start_after, size_t max_keys,
		   struct ost_list_result *res)
{
	struct lc_walk *w;
	int rc;

	/* The key buffer is too big for a pool thread's stack frame chain
	 * only in theory; keep it on the heap anyway. */
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->lc = priv;
	/* a token is the last item given: start_after works alike */
	ost_lister_init(&w->l, prefix, delimiter, token ? token : start_after,
			max_keys, res);
	rc = lc_walk_dir(w, w->lc->rootfd, 0, 0, false);
	free(w);
	if (rc < 0) {
		ost_list_result_release(res);
		return rc;
	}
	return 0;
}

static void lc_free(void *priv)
{
	struct lc *lc = priv;

	if (!lc)
		return;
	close(lc->rootfd);
	if (lc->lockfd >= 0)
		close(lc->lockfd);
	pthread_mutex_destroy(&lc->lock);
	free(lc->dir);
	free(lc);
}

static const struct ost_ops lc_ops = {
    .name = "local",
    .get = lc_get,
    .put = lc_put,
    .head = lc_head,
    .list = lc_list,
    .del = lc_del,
    .copy = lc_copy,
    .free = lc_free,
};

int ost_local_new(const char *dir, struct ost_backend **out)
{
	struct ost_backend *be;
	struct lc *lc;
	int fd, rc;

	if (!dir || !*dir || !out)
		return -EINVAL;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		ch5_err("objstore: local store %s: %s", dir, strerror(-rc));
		return rc;
	}
	lc = calloc(1, sizeof(*lc));
	if (!lc) {
		close(fd);
		return -ENOMEM;
	}
	lc->rootfd = fd;
	pthread_mutex_init(&lc->lock, NULL);
	atomic_init(&lc->tmp_seq, 0);
	lc->dir = strdup(dir);
	if (!lc->dir) {
		lc_free(lc);
		return -ENOMEM;
	}
	/* A read-only store still serves reads; PUTs will fail then. */
	rc = lc_mkdirs(lc, LC_TMP, sizeof(LC_TMP) - 1);
	if (rc)
		ch5_warn("objstore: local store %s: cannot create %s: %s", dir,
			 LC_TMP, strerror(-rc));
	lc->lockfd = openat(lc->rootfd, LC_TMP "/lock",
			    O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	be = ost_backend_alloc(&lc_ops, lc);
	if (!be) {
		lc_free(lc);
		return -ENOMEM;
	}
	*out = be;
	return 0;
}
