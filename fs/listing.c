/*
 * listing.c - keeping the directory index (hdf5map/dirindex.h) current for
 * files this mount commits.
 *
 * A commit notes its file's new ETag and size here (fs_listing_note); a
 * thread gathers the notes for LISTING_DEBOUNCE seconds, then per
 * directory reads the stored index, puts the noted entries over it and
 * stores it again: writing 1,000 files costs a few index PUTs, not 1,000,
 * and a cold `ls -l` of them anywhere reads their sizes from the index.
 * A directory's index is stored again no sooner than its size divided by
 * LISTING_RATE after the last store, so a huge directory written file by
 * file costs bounded upload (a 6 MB index of 100,000 files: every 24 s).
 * Two mounts updating one index at once may lose each other's entries;
 * that costs a later listing header GETs, never a wrong size (an entry
 * counts only while the LIST shows its ETag).  At unmount every note is
 * stored before the store closes.
 *
 * Thread-safety: fs_listing_note() may be called from any thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dirindex.h"
#include "fs_int.h"
#include "log.h"

#define LISTING_DEBOUNCE 0.5 /* seconds notes gather before a store */
#define LISTING_RATE (256.0 * 1024) /* bytes/s of index stores, at most, per
				       directory */

struct note {
	char *dir;  /* directory key ("" for the root) */
	struct h5m_dirent e; /* e.name points into the same allocation */
	bool held;  /* store_notes: its directory's turn has not come */
	struct note *next;
};

/* When a directory's index may be stored again (the thread's own). */
struct dir_pace {
	char *dir;
	double next_ok; /* fs_now() */
	struct dir_pace *next;
};

struct fs_listing {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct note *notes; /* guarded by lock; newest first */
	bool stop;	    /* guarded by lock */
	pthread_t thread;
	struct dir_pace *paces; /* the thread's only */
};

void fs_listing_note(struct fs_ctx *ctx, const char *key, const char *etag,
		     uint64_t size, int64_t mtime_ns, bool manifest)
{
	struct fs_listing *l = ctx->listing;
	const char *slash = strrchr(key, '/');
	size_t dl = slash ? (size_t)(slash - key) : 0;
	const char *name = slash ? slash + 1 : key;
	struct note *n;

	if (!l || !etag[0] || !*name || strlen(etag) > H5M_DIRINDEX_ETAG_MAX)
		return;
	n = calloc(1, sizeof(*n) + strlen(key) + 2);
	if (!n)
		return; /* an index is only a cache */
	n->dir = (char *)(n + 1);
	memcpy(n->dir, key, dl);
	n->dir[dl] = '\0';
	memcpy(n->dir + dl + 1, name, strlen(name) + 1);
	n->e.name = n->dir + dl + 1;
	snprintf(n->e.etag, sizeof(n->e.etag), "%s", etag);
	n->e.size = size;
	n->e.mtime_ns = mtime_ns;
	n->e.manifest = manifest;
	pthread_mutex_lock(&l->lock);
	n->next = l->notes;
	l->notes = n;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

struct ranked {
	struct note *n;
	size_t rank; /* 0: the newest note */
};

/* By directory, then name, then newest first. */
static int ranked_cmp(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	int c = strcmp(x->n->dir, y->n->dir);

	if (!c)
		c = strcmp(x->n->e.name, y->n->e.name);
	if (!c)
		c = x->rank < y->rank ? -1 : x->rank > y->rank;
	return c;
}

/* Is `name` among notes v[0, n) (sorted by name)? */
static bool noted(struct note **v, size_t n, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid]->e.name, name);

		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* The pacing state of directory `dir` (created), or NULL (no memory). */
static struct dir_pace *pace_of(struct fs_listing *l, const char *dir)
{
	struct dir_pace *p;

	for (p = l->paces; p; p = p->next)
		if (!strcmp(p->dir, dir))
			return p;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->dir = strdup(dir))) {
		free(p);
		return NULL;
	}
	p->next = l->paces;
	l->paces = p;
	return p;
}

size_t fs_listing_store(struct fs_ctx *ctx, const char *dir,
			struct h5m_dirent *ents, size_t n)
{
	char *key = h5m_dirindex_key(dir);
	void *buf = NULL;
	size_t len = 0;
	int rc = key ? h5m_dirindex_encode(ents, n, &buf, &len) : -ENAMETOOLONG;

	if (rc == 0)
		rc = ost_put_buf(ctx->st, key, buf, len, NULL);
	if (rc < 0)
		ch5_info("directory '%s': its index was not stored (%s)", dir,
			 strerror(-rc));
	else
		ch5_debug("directory '%s': stored its index, %zu files", dir,
			  n);
	free(buf);
	free(key);
	return rc < 0 ? 0 : len;
}

/* Store the index of directory `dir` with notes v[0, n) (one per name,
 * sorted by name) over what it held.  Returns the bytes stored (0 when
 * nothing was). */
static size_t store_dir(struct fs_ctx *ctx, const char *dir, struct note **v,
			size_t n)
{
	struct h5m_dirindex ix = { 0 };
	struct h5m_dirent *ents = NULL;
	char *key = h5m_dirindex_key(dir);
	void *buf = NULL;
	size_t len = 0, i, k = 0;
	int rc;

	if (!key)
		return 0;
	rc = ost_get_all(ctx->st, key, H5M_DIRINDEX_MAX, &buf, &len, NULL);
	free(key);
	if (rc == 0 && h5m_dirindex_decode(buf, len, &ix) < 0)
		memset(&ix, 0, sizeof(ix)); /* unreadable: start anew */
	free(buf);
	len = 0;
	if (rc < 0 && rc != -ENOENT) {
		/* the store is failing: keep what is there */
		ch5_info("directory '%s': its index was not read (%s)", dir,
			 strerror(-rc));
		return 0;
	}
	ents = calloc(ix.n + n, sizeof(*ents));
	if (ents) {
		for (i = 0; i < ix.n; i++)
			if (!noted(v, n, ix.ents[i].name))
				ents[k++] = ix.ents[i];
		for (i = 0; i < n; i++)
			ents[k++] = v[i]->e;
		len = fs_listing_store(ctx, dir, ents, k);
	}
	free(ents);
	h5m_dirindex_free(&ix);
	return len;
}

/* Store the notes of list `head` (newest first) whose directory's pace
 * allows it now (all of them with `all`), and free them.  Returns the
 * notes held back, newest first, and lowers *wake to the fs_now() when
 * the first of them may go. */
static struct note *store_notes(struct fs_ctx *ctx, struct note *head,
				bool all, double *wake)
{
	struct fs_listing *l = ctx->listing;
	struct note **kept, *n, *next, *back = NULL, **tail = &back;
	struct ranked *r;
	size_t cnt = 0, i, j, k;
	double now = fs_now();

	for (n = head; n; n = n->next)
		cnt++;
	r = calloc(cnt ? cnt : 1, sizeof(*r));
	kept = calloc(cnt ? cnt : 1, sizeof(*kept));
	if (r && kept) {
		for (i = 0, n = head; n; n = n->next, i++) {
			r[i].n = n;
			r[i].rank = i;
		}
		qsort(r, cnt, sizeof(*r), ranked_cmp);
		for (i = 0; i < cnt; i = j) {
			struct dir_pace *p = pace_of(l, r[i].n->dir);
			bool hold = !all && p && p->next_ok > now;
			size_t len;

			/* directory r[i].n->dir: notes [i, j); the newest of
			 * each name comes first */
			for (j = i, k = 0; j < cnt &&
					   !strcmp(r[j].n->dir, r[i].n->dir);
			     j++) {
				r[j].n->held = hold;
				if (!k || strcmp(kept[k - 1]->e.name,
						 r[j].n->e.name))
					kept[k++] = r[j].n;
			}
			if (hold) {
				if (p->next_ok < *wake)
					*wake = p->next_ok;
				continue;
			}
			len = store_dir(ctx, r[i].n->dir, kept, k);
			if (p)
				p->next_ok = fs_now() +
					     (double)len / LISTING_RATE;
		}
	}
	free(r);
	free(kept);
	for (n = head; n; n = next) {
		next = n->next;
		if (n->held) {
			n->next = NULL;
			*tail = n;
			tail = &n->next;
		} else {
			free(n);
		}
	}
	return back;
}

/* Wait until notes have gathered LISTING_DEBOUNCE seconds, store those
 * whose directory's pace allows, wait for the others' turn; at a stop,
 * store everything and end. */
static void *listing_thread(void *arg)
{
	struct fs_ctx *ctx = arg;
	struct fs_listing *l = ctx->listing;
	struct note *batch, *back, **t;
	double wake = 0;
	bool stop;

	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (!l->notes && !l->stop)
			pthread_cond_wait(&l->cond, &l->lock);
		if (!l->notes)
			break; /* stopped, nothing left */
		if (wake < fs_now() + LISTING_DEBOUNCE)
			wake = fs_now() + LISTING_DEBOUNCE;
		while (!l->stop && fs_now() < wake) {
			struct timespec ts;
			double left = wake - fs_now();

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)left;
			ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&l->cond, &l->lock, &ts);
		}
		batch = l->notes;
		l->notes = NULL;
		stop = l->stop;
		pthread_mutex_unlock(&l->lock);
		wake = 1e300;
		back = store_notes(ctx, batch, stop, &wake);
		pthread_mutex_lock(&l->lock);
		/* held notes are older than any noted meanwhile: behind them */
		for (t = &l->notes; *t; t = &(*t)->next)
			;
		*t = back;
		if (!back)
			wake = 0;
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int fs_listing_init(struct fs_ctx *ctx)
{
	struct fs_listing *l = calloc(1, sizeof(*l));
	int rc;

	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	ctx->listing = l;
	rc = pthread_create(&l->thread, NULL, listing_thread, ctx);
	if (rc) {
		ctx->listing = NULL;
		pthread_cond_destroy(&l->cond);
		pthread_mutex_destroy(&l->lock);
		free(l);
		return -rc;
	}
	return 0;
}

void fs_listing_shutdown(struct fs_ctx *ctx)
{
	struct fs_listing *l = ctx->listing;
	struct dir_pace *p, *pn;

	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	ctx->listing = NULL;
	for (p = l->paces; p; p = pn) {
		pn = p->next;
		free(p->dir);
		free(p);
	}
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
