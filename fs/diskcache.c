/*
 * diskcache.c - the disk tier of the block cache (see diskcache.h).
 *
 * Layout: DIR/xx/<32 hex digits>, the digits the first 16 bytes of the
 * SHA-256 of (key, NUL, version, NUL, block number), xx their first two;
 * files are written in DIR/tmp and renamed into place.  A file is a header
 * (magic, raw and stored lengths, CRC-32 of the stored bytes, flags, block
 * number, key and version lengths), the key, the version, then the bytes.
 *
 * S3-FIFO (Yang et al., SOSP 2023): new blocks enter the small FIFO S (a
 * tenth of the budget); a block leaving S that was read while there moves
 * to the main FIFO M, else it is dropped and its name kept in the ghost
 * FIFO G; a new block whose name is in G goes straight to M; a block
 * leaving M that was read since it last moved goes round M again (its
 * count decremented), else it is dropped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lz4.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "diskcache.h"
#include "log.h"

#define MAGIC "CH5DC01\n"
#define HDR_LEN 40
#define FLAG_LZ4 1u
#define FREQ_MAX 3
/* Blocks longer than twice this are first tried on a sample this long. */
#define PROBE_LEN 8192

enum { Q_SMALL, Q_MAIN, Q_GHOST };

struct dentry {
	uint8_t id[16];
	uint64_t size; /* bytes of its file (0 for a ghost) */
	uint8_t freq;
	uint8_t queue;
	int64_t mtime; /* for the start-up order only */
	struct dentry *prev, *next; /* its FIFO: head = newest */
	struct dentry *hnext;
};

struct fifo {
	struct dentry *head, *tail;
	uint64_t bytes, count;
};

struct fs_dcache {
	char *dir;
	uint64_t budget;
	pthread_mutex_t lock;
	struct dentry **buckets; /* guarded by lock */
	size_t n_buckets;
	struct fifo q[3];
	struct fs_dcache_stats stats;
	bool writes_off;
	unsigned long tmp_seq;
};

/* --- names ----------------------------------------------------------- */

static void block_id(const char *key, const char *ver, uint64_t blk,
		     uint8_t id[16])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE], b[8];
	unsigned mdl = 0;
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(blk >> (8 * i));
	if (!c) {
		memset(id, 0, 16);
		return;
	}
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, key, strlen(key) + 1);
	EVP_DigestUpdate(c, ver, strlen(ver) + 1);
	EVP_DigestUpdate(c, b, sizeof(b));
	EVP_DigestFinal_ex(c, md, &mdl);
	EVP_MD_CTX_free(c);
	memcpy(id, md, 16);
}

static void id_path(const struct fs_dcache *d, const uint8_t id[16],
		    char *out, size_t size)
{
	char hex[33];
	int i;

	for (i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
	snprintf(out, size, "%s/%.2s/%s", d->dir, hex, hex);
}

static bool hex_id(const char *s, uint8_t id[16])
{
	int i;

	if (strlen(s) != 32)
		return false;
	for (i = 0; i < 16; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return false;
		id[i] = (uint8_t)v;
	}
	return true;
}

/* --- index ----------------------------------------------------------- */

static size_t bucket_of(const struct fs_dcache *d, const uint8_t id[16])
{
	uint64_t h;

	memcpy(&h, id, sizeof(h));
	return h % d->n_buckets;
}

static struct dentry *find(struct fs_dcache *d, const uint8_t id[16])
{
	struct dentry *e = d->buckets[bucket_of(d, id)];

	while (e && memcmp(e->id, id, 16))
		e = e->hnext;
	return e;
}

static void unhash(struct fs_dcache *d, struct dentry *e)
{
	struct dentry **p = &d->buckets[bucket_of(d, e->id)];

	while (*p && *p != e)
		p = &(*p)->hnext;
	if (*p)
		*p = e->hnext;
}

static void fifo_unlink(struct fs_dcache *d, struct dentry *e)
{
	struct fifo *f = &d->q[e->queue];

	if (e->prev)
		e->prev->next = e->next;
	else
		f->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		f->tail = e->prev;
	e->prev = e->next = NULL;
	f->bytes -= e->size;
	f->count--;
}

static void fifo_push(struct fs_dcache *d, struct dentry *e, int queue)
{
	struct fifo *f = &d->q[queue];

	e->queue = (uint8_t)queue;
	e->prev = NULL;
	e->next = f->head;
	if (f->head)
		f->head->prev = e;
	f->head = e;
	if (!f->tail)
		f->tail = e;
	f->bytes += e->size;
	f->count++;
}

/* Drop e's file and keep its name as a ghost (or drop it wholly). */
static void drop(struct fs_dcache *d, struct dentry *e, bool ghost)
{
	char path[4096];

	id_path(d, e->id, path, sizeof(path));
	unlink(path);
	fifo_unlink(d, e);
	d->stats.bytes -= e->size;
	d->stats.files--;
	d->stats.evictions++;
	e->size = 0;
	e->freq = 0;
	if (ghost) {
		fifo_push(d, e, Q_GHOST);
		/* As many ghosts as blocks cached, at least 1024. */
		while (d->q[Q_GHOST].count > 1024 &&
		       d->q[Q_GHOST].count >
			       d->q[Q_SMALL].count + d->q[Q_MAIN].count) {
			struct dentry *g = d->q[Q_GHOST].tail;

			fifo_unlink(d, g);
			unhash(d, g);
			free(g);
		}
	} else {
		unhash(d, e);
		free(e);
	}
}

/* S3-FIFO eviction down to the budget; lock held. */
static void evict_locked(struct fs_dcache *d)
{
	while (d->stats.bytes > d->budget) {
		struct fifo *s = &d->q[Q_SMALL], *m = &d->q[Q_MAIN];
		struct dentry *e;

		if (s->tail && (s->bytes > d->budget / 10 || !m->tail)) {
			e = s->tail;
			if (e->freq > 0) {
				fifo_unlink(d, e);
				e->freq = 0;
				fifo_push(d, e, Q_MAIN);
			} else {
				drop(d, e, true);
			}
		} else if (m->tail) {
			e = m->tail;
			if (e->freq > 0) {
				fifo_unlink(d, e);
				e->freq--;
				fifo_push(d, e, Q_MAIN);
			} else {
				drop(d, e, false);
			}
		} else {
			break;
		}
	}
}

/* --- files ----------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static bool write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= n;
	}
	return true;
}

/* Read a block file and check it is block (key, ver, blk) of len bytes;
 * decompress into buf.  0 or -ENOENT. */
static int read_block(const char *path, const char *key, const char *ver,
		      uint64_t blk, void *buf, size_t len)
{
	size_t kl = strlen(key), vl = strlen(ver);
	uint8_t hdr[HDR_LEN];
	uint8_t *stored = NULL;
	uint32_t raw, slen, crc, flags;
	uint64_t fblk = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), i, rc = -ENOENT;
	char *names = NULL;

	if (fd < 0)
		return -ENOENT;
	if (pread(fd, hdr, HDR_LEN, 0) != HDR_LEN ||
	    memcmp(hdr, MAGIC, 8))
		goto out;
	raw = get_u32(hdr + 8);
	slen = get_u32(hdr + 12);
	crc = get_u32(hdr + 16);
	flags = get_u32(hdr + 20);
	for (i = 0; i < 8; i++)
		fblk |= (uint64_t)hdr[24 + i] << (8 * i);
	if (raw != len || fblk != blk || hdr[32] + (hdr[33] << 8) != (int)kl ||
	    hdr[34] + (hdr[35] << 8) != (int)vl || slen > len + len / 8 + 64)
		goto out;
	names = malloc(kl + vl + 1);
	stored = malloc(slen ? slen : 1);
	if (!names || !stored)
		goto out;
	if (pread(fd, names, kl + vl, HDR_LEN) != (ssize_t)(kl + vl) ||
	    memcmp(names, key, kl) || memcmp(names + kl, ver, vl) ||
	    pread(fd, stored, slen, HDR_LEN + kl + vl) != (ssize_t)slen ||
	    (uint32_t)crc32(0L, stored, slen) != crc)
		goto out;
	if (flags & FLAG_LZ4) {
		if (LZ4_decompress_safe((const char *)stored, buf, (int)slen,
					(int)len) != (int)len)
			goto out;
	} else {
		if (slen != len)
			goto out;
		memcpy(buf, stored, len);
	}
	rc = 0;
out:
	free(names);
	free(stored);
	close(fd);
	return rc;
}

/* --- the interface ----------------------------------------------------- */

int fs_dcache_get(struct fs_dcache *d, const char *key, const char *ver,
		  uint64_t blk, void *buf, size_t len)
{
	char path[4096];
	uint8_t id[16];
	struct dentry *e;
	int rc;

	block_id(key, ver, blk, id);
	pthread_mutex_lock(&d->lock);
	e = find(d, id);
	if (!e || e->queue == Q_GHOST) {
		d->stats.misses++;
		pthread_mutex_unlock(&d->lock);
		return -ENOENT;
	}
	if (e->freq < FREQ_MAX)
		e->freq++;
	pthread_mutex_unlock(&d->lock);

	id_path(d, id, path, sizeof(path));
	rc = read_block(path, key, ver, blk, buf, len);
	pthread_mutex_lock(&d->lock);
	if (rc == 0) {
		d->stats.hits++;
	} else {
		d->stats.misses++;
		/* Damaged or gone: forget it (it may have been evicted
		 * meanwhile, then it is not in the index any more). */
		e = find(d, id);
		if (e && e->queue != Q_GHOST) {
			ch5_warn("disk cache: %s is damaged; removed", path);
			drop(d, e, false);
			d->stats.evictions--;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* Is block buf [0, len) worth compressing whole?  Floating-point arrays
 * and chunks already through gzip do not shrink, and lz4 spends about as
 * long finding that out as it spends compressing: a block longer than two
 * samples is judged by a sample of PROBE_LEN bytes from its middle first,
 * compressed into z (bound bytes), and is stored raw when the sample does
 * not shrink by a sixteenth (a looser test than the block's own eighth:
 * a short sample finds fewer repeats than the whole block). */
static bool compressible(const char *buf, size_t len, char *z, int bound)
{
	int n;

	if (len <= 2 * PROBE_LEN)
		return true;
	n = LZ4_compress_default(buf + len / 2 - PROBE_LEN / 2, z, PROBE_LEN,
				 bound);
	return n > 0 && n < PROBE_LEN - PROBE_LEN / 16;
}

void fs_dcache_put(struct fs_dcache *d, const char *key, const char *ver,
		   uint64_t blk, const void *buf, size_t len)
{
	size_t kl = strlen(key), vl = strlen(ver);
	char path[4096], tmp[4096];
	uint8_t hdr[HDR_LEN], id[16];
	char *z = NULL;
	const void *payload = buf;
	uint32_t slen = (uint32_t)len, flags = 0;
	struct dentry *e;
	unsigned long seq;
	uint64_t fsize;
	int fd, i, bound;

	if (kl > 65535 || vl > 65535 || len > INT32_MAX / 2)
		return;
	block_id(key, ver, blk, id);
	pthread_mutex_lock(&d->lock);
	e = find(d, id);
	if (d->writes_off || (e && e->queue != Q_GHOST)) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	seq = d->tmp_seq++;
	pthread_mutex_unlock(&d->lock);

	/* lz4 unless it saves less than an eighth. */
	bound = LZ4_compressBound((int)len);
	z = malloc(bound > 0 ? bound : 1);
	if (z && compressible(buf, len, z, bound)) {
		int n = LZ4_compress_default(buf, z, (int)len, bound);

		if (n > 0 && (size_t)n < len - len / 8) {
			payload = z;
			slen = (uint32_t)n;
			flags = FLAG_LZ4;
		}
	}
	memcpy(hdr, MAGIC, 8);
	put_u32(hdr + 8, (uint32_t)len);
	put_u32(hdr + 12, slen);
	put_u32(hdr + 16, (uint32_t)crc32(0L, payload, slen));
	put_u32(hdr + 20, flags);
	for (i = 0; i < 8; i++)
		hdr[24 + i] = (uint8_t)(blk >> (8 * i));
	hdr[32] = (uint8_t)kl;
	hdr[33] = (uint8_t)(kl >> 8);
	hdr[34] = (uint8_t)vl;
	hdr[35] = (uint8_t)(vl >> 8);
	memset(hdr + 36, 0, 4);

	id_path(d, id, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s/tmp/%d.%lu", d->dir, (int)getpid(), seq);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0 && write_all(fd, hdr, HDR_LEN) && write_all(fd, key, kl) &&
	    write_all(fd, ver, vl) && write_all(fd, payload, slen) &&
	    close(fd) == 0) {
		fd = -1;
		if (rename(tmp, path) < 0) {
			/* The first block of its subdirectory. */
			char sub[4096];

			if (errno != ENOENT)
				goto fail;
			snprintf(sub, sizeof(sub), "%.*s",
				 (int)(strrchr(path, '/') - path), path);
			if ((mkdir(sub, 0700) < 0 && errno != EEXIST) ||
			    rename(tmp, path) < 0)
				goto fail;
		}
	} else {
		goto fail;
	}
	free(z);
	fsize = HDR_LEN + kl + vl + slen;
	pthread_mutex_lock(&d->lock);
	e = find(d, id);
	if (e && e->queue != Q_GHOST) {
		/* Another thread wrote it meanwhile (same bytes). */
		pthread_mutex_unlock(&d->lock);
		return;
	}
	if (e) {
		/* Seen recently: straight into the main FIFO. */
		fifo_unlink(d, e);
		e->size = fsize;
		fifo_push(d, e, Q_MAIN);
	} else {
		e = calloc(1, sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&d->lock);
			unlink(path);
			return;
		}
		memcpy(e->id, id, 16);
		e->size = fsize;
		e->hnext = d->buckets[bucket_of(d, id)];
		d->buckets[bucket_of(d, id)] = e;
		fifo_push(d, e, Q_SMALL);
	}
	d->stats.bytes += fsize;
	d->stats.files++;
	d->stats.writes++;
	d->stats.bytes_saved += len - slen;
	evict_locked(d);
	pthread_mutex_unlock(&d->lock);
	return;
fail:
	{
		int err = errno;

		if (fd >= 0)
			close(fd);
		unlink(tmp);
		free(z);
		pthread_mutex_lock(&d->lock);
		if (!d->writes_off) {
			d->writes_off = true;
			d->stats.write_errors = 1;
			ch5_warn("disk cache %s: cannot write a block (%s): "
				 "the disk tier stops storing blocks; the "
				 "memory cache goes on",
				 d->dir, strerror(err));
		}
		pthread_mutex_unlock(&d->lock);
	}
}

static int by_mtime(const void *a, const void *b)
{
	const struct dentry *x = *(struct dentry *const *)a;
	const struct dentry *y = *(struct dentry *const *)b;

	return (x->mtime > y->mtime) - (x->mtime < y->mtime);
}

/* Index what an earlier mount left: every DIR/xx/<id> file, oldest first
 * into the main FIFO (so the oldest leave first). */
static int scan(struct fs_dcache *d)
{
	struct dentry **all = NULL;
	size_t n = 0, cap = 0, i;
	char sub[4096];
	int x;

	for (x = 0; x < 256; x++) {
		DIR *dir;
		struct dirent *de;

		snprintf(sub, sizeof(sub), "%s/%02x", d->dir, x);
		dir = opendir(sub);
		if (!dir)
			continue;
		while ((de = readdir(dir))) {
			struct stat st;
			struct dentry *e;
			uint8_t id[16];

			if (!hex_id(de->d_name, id) ||
			    fstatat(dirfd(dir), de->d_name, &st, 0) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			if (n == cap) {
				struct dentry **na = realloc(
					all, (cap = cap ? 2 * cap : 256) *
						     sizeof(*all));

				if (!na) {
					closedir(dir);
					goto nomem;
				}
				all = na;
			}
			e = calloc(1, sizeof(*e));
			if (!e) {
				closedir(dir);
				goto nomem;
			}
			memcpy(e->id, id, 16);
			e->size = st.st_size;
			e->mtime = st.st_mtim.tv_sec * 1000000000LL +
				   st.st_mtim.tv_nsec;
			all[n++] = e;
		}
		closedir(dir);
	}
	if (n)
		qsort(all, n, sizeof(*all), by_mtime);
	for (i = 0; i < n; i++) {
		struct dentry *e = all[i];

		e->hnext = d->buckets[bucket_of(d, e->id)];
		d->buckets[bucket_of(d, e->id)] = e;
		fifo_push(d, e, Q_MAIN);
		d->stats.bytes += e->size;
		d->stats.files++;
	}
	free(all);
	evict_locked(d);
	d->stats.evictions = 0;
	return 0;
nomem:
	for (i = 0; i < n; i++)
		free(all[i]);
	free(all);
	return -ENOMEM;
}

int fs_dcache_open(const char *dir, uint64_t budget, struct fs_dcache **out)
{
	struct fs_dcache *d;
	char tmp[4096];
	DIR *td;
	int rc;

	if (!dir || !*dir || budget < (1u << 20) || strlen(dir) > 3000)
		return -EINVAL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		ch5_err("disk cache %s: %s", dir, strerror(errno));
		return rc;
	}
	snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		ch5_err("disk cache %s: %s", tmp, strerror(errno));
		return rc;
	}
	/* Half-written files of an earlier mount. */
	td = opendir(tmp);
	if (td) {
		struct dirent *de;

		while ((de = readdir(td)))
			if (de->d_name[0] != '.')
				unlinkat(dirfd(td), de->d_name, 0);
		closedir(td);
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->dir = strdup(dir);
	d->budget = budget;
	d->n_buckets = 65536;
	d->buckets = calloc(d->n_buckets, sizeof(*d->buckets));
	if (!d->dir || !d->buckets) {
		free(d->dir);
		free(d->buckets);
		free(d);
		return -ENOMEM;
	}
	pthread_mutex_init(&d->lock, NULL);
	rc = scan(d);
	if (rc < 0) {
		fs_dcache_close(d);
		return rc;
	}
	*out = d;
	return 0;
}

void fs_dcache_close(struct fs_dcache *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->n_buckets; i++) {
		struct dentry *e = d->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			free(e);
		}
	}
	free(d->buckets);
	free(d->dir);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void fs_dcache_stats_get(struct fs_dcache *d, struct fs_dcache_stats *out)
{
	pthread_mutex_lock(&d->lock);
	*out = d->stats;
	pthread_mutex_unlock(&d->lock);
}
