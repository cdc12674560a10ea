/*
 * inode.c - the inode table: FUSE inode numbers <-> store keys.
 *
 * Inode numbers are handed out in order and never reused while the mount
 * lives.  An inode stays while the kernel holds lookups on it or a file
 * handle is open; the root is never freed.  Two chained hash tables (by
 * number and by key) under fs_ctx.itable_lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_int.h"
#include "log.h"

#define ITABLE_BUCKETS 65536

static uint64_t key_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

double fs_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

char *fs_child_key(const char *parent, const char *name)
{
	size_t pl = strlen(parent), nl = strlen(name);
	char *k = malloc(pl + nl + 2);

	if (!k)
		return NULL;
	if (pl) {
		memcpy(k, parent, pl);
		k[pl++] = '/';
	}
	memcpy(k + pl, name, nl + 1);
	return k;
}

static void link_key(struct fs_ctx *ctx, struct fs_inode *in)
{
	size_t b = key_hash(in->key) % ctx->n_buckets;

	in->hnext_key = ctx->by_key[b];
	ctx->by_key[b] = in;
}

static void unlink_key(struct fs_ctx *ctx, struct fs_inode *in)
{
	struct fs_inode **pp = &ctx->by_key[key_hash(in->key) % ctx->n_buckets];

	while (*pp && *pp != in)
		pp = &(*pp)->hnext_key;
	if (*pp)
		*pp = in->hnext_key;
}

static struct fs_inode *find_key_locked(struct fs_ctx *ctx, const char *key)
{
	struct fs_inode *in = ctx->by_key[key_hash(key) % ctx->n_buckets];

	for (; in; in = in->hnext_key)
		if (!strcmp(in->key, key))
			return in;
	return NULL;
}

static struct fs_inode *find_ino_locked(struct fs_ctx *ctx, uint64_t ino)
{
	struct fs_inode *in = ctx->by_ino[ino % ctx->n_buckets];

	for (; in; in = in->hnext_ino)
		if (in->ino == ino)
			return in;
	return NULL;
}

int fs_itable_init(struct fs_ctx *ctx)
{
	struct fs_inode *root;

	ctx->n_buckets = ITABLE_BUCKETS;
	ctx->by_ino = calloc(ctx->n_buckets, sizeof(*ctx->by_ino));
	ctx->by_key = calloc(ctx->n_buckets, sizeof(*ctx->by_key));
	if (!ctx->by_ino || !ctx->by_key)
		return -ENOMEM;
	pthread_mutex_init(&ctx->itable_lock, NULL);
	pthread_mutex_init(&ctx->edges_lock, NULL);
	pthread_mutex_init(&ctx->heads_lock, NULL);
	pthread_mutex_init(&ctx->absent_lock, NULL);
	pthread_cond_init(&ctx->edges_cond, NULL);
	ctx->next_ino = FUSE_ROOT_ID;
	root = fs_inode_get(ctx, "", true, 1);
	return root ? 0 : -ENOMEM;
}

static void inode_destroy(struct fs_inode *in)
{
	if (in->stage)
		fs_stage_drop(in, in->key);
	if (in->ver)
		fs_version_put(in->ver);
	if (in->doomed) /* unmounted while open: objects are left to fsck */
		fs_version_put(in->doomed);
	pthread_mutex_destroy(&in->lock);
	free(in->key);
	free(in);
}

void fs_itable_release(struct fs_ctx *ctx)
{
	size_t i;

	for (i = 0; ctx->by_ino && i < ctx->n_buckets; i++) {
		struct fs_inode *in = ctx->by_ino[i], *next;

		for (; in; in = next) {
			next = in->hnext_ino;
			inode_destroy(in);
		}
	}
	free(ctx->by_ino);
	free(ctx->by_key);
	ctx->by_ino = ctx->by_key = NULL;
	fs_version_heads_free(ctx);
	fs_absent_forget(ctx, NULL);
}

struct fs_inode *fs_inode_get(struct fs_ctx *ctx, const char *key,
			      bool is_dir, int lookup)
{
	struct fs_inode *in;

	pthread_mutex_lock(&ctx->itable_lock);
	in = find_key_locked(ctx, key);
	if (in) {
		in->nlookup += lookup;
		in->is_dir = is_dir;
		pthread_mutex_unlock(&ctx->itable_lock);
		return in;
	}
	in = calloc(1, sizeof(*in));
	if (in)
		in->key = strdup(key);
	if (!in || !in->key) {
		pthread_mutex_unlock(&ctx->itable_lock);
		free(in);
		return NULL;
	}
	pthread_mutex_init(&in->lock, NULL);
	in->ino = ctx->next_ino++;
	in->is_dir = is_dir;
	in->nlookup = lookup;
	in->hnext_ino = ctx->by_ino[in->ino % ctx->n_buckets];
	ctx->by_ino[in->ino % ctx->n_buckets] = in;
	link_key(ctx, in);
	pthread_mutex_unlock(&ctx->itable_lock);
	return in;
}

struct fs_inode *fs_inode_by_ino(struct fs_ctx *ctx, uint64_t ino)
{
	struct fs_inode *in;

	pthread_mutex_lock(&ctx->itable_lock);
	in = find_ino_locked(ctx, ino);
	pthread_mutex_unlock(&ctx->itable_lock);
	return in;
}

struct fs_inode *fs_inode_hold(struct fs_ctx *ctx, const char *key)
{
	struct fs_inode *in;

	pthread_mutex_lock(&ctx->itable_lock);
	in = find_key_locked(ctx, key);
	if (in)
		in->pins++;
	pthread_mutex_unlock(&ctx->itable_lock);
	return in;
}

struct fs_inode *fs_inode_by_key(struct fs_ctx *ctx, const char *key)
{
	struct fs_inode *in;

	pthread_mutex_lock(&ctx->itable_lock);
	in = find_key_locked(ctx, key);
	pthread_mutex_unlock(&ctx->itable_lock);
	return in;
}

char *fs_inode_key(struct fs_ctx *ctx, struct fs_inode *in)
{
	char *k;

	pthread_mutex_lock(&ctx->itable_lock);
	k = strdup(in->key);
	pthread_mutex_unlock(&ctx->itable_lock);
	return k;
}

/* Free `in` if nothing holds it; itable_lock held. */
static void maybe_free_locked(struct fs_ctx *ctx, struct fs_inode *in)
{
	struct fs_inode **pp;

	if (in->nlookup || in->opens || in->pins || in->ino == FUSE_ROOT_ID)
		return;
	pp = &ctx->by_ino[in->ino % ctx->n_buckets];
	while (*pp != in)
		pp = &(*pp)->hnext_ino;
	*pp = in->hnext_ino;
	unlink_key(ctx, in);
	inode_destroy(in);
}

void fs_inode_forget(struct fs_ctx *ctx, struct fs_inode *in, uint64_t n)
{
	pthread_mutex_lock(&ctx->itable_lock);
	in->nlookup = n > in->nlookup ? 0 : in->nlookup - n;
	maybe_free_locked(ctx, in);
	pthread_mutex_unlock(&ctx->itable_lock);
}

void fs_inode_open_count(struct fs_ctx *ctx, struct fs_inode *in, int delta)
{
	pthread_mutex_lock(&ctx->itable_lock);
	in->opens += delta;
	if (delta < 0)
		maybe_free_locked(ctx, in);
	pthread_mutex_unlock(&ctx->itable_lock);
}

void fs_inode_pin(struct fs_ctx *ctx, struct fs_inode *in, int delta)
{
	pthread_mutex_lock(&ctx->itable_lock);
	in->pins += delta;
	if (delta < 0)
		maybe_free_locked(ctx, in);
	pthread_mutex_unlock(&ctx->itable_lock);
}

int fs_inode_rename(struct fs_ctx *ctx, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), i;
	int rc = 0;

	pthread_mutex_lock(&ctx->itable_lock);
	for (i = 0; i < ctx->n_buckets; i++) {
		struct fs_inode *in;

		for (in = ctx->by_ino[i]; in; in = in->hnext_ino) {
			size_t kl = strlen(in->key);
			char *nk;

			if (strncmp(in->key, from, fl) ||
			    (in->key[fl] != '\0' && in->key[fl] != '/'))
				continue;
			nk = malloc(kl - fl + tl + 1);
			if (!nk) {
				rc = -ENOMEM;
				continue;
			}
			memcpy(nk, to, tl);
			memcpy(nk + tl, in->key + fl, kl - fl + 1);
			unlink_key(ctx, in);
			free(in->key);
			in->key = nk;
			link_key(ctx, in);
		}
	}
	pthread_mutex_unlock(&ctx->itable_lock);
	return rc;
}

void fs_absent_note(struct fs_ctx *ctx, const char *key)
{
	char *k = strdup(key);
	struct fs_absent *a;

	if (!k)
		return;
	pthread_mutex_lock(&ctx->absent_lock);
	a = &ctx->absent[ctx->absent_next++ % FS_KEPT_ABSENT];
	free(a->key);
	a->key = k;
	a->t = fs_now();
	pthread_mutex_unlock(&ctx->absent_lock);
}

bool fs_absent_known(struct fs_ctx *ctx, const char *key)
{
	double since = fs_now() - ctx->cfg.negative_timeout;
	bool known = false;
	size_t i;

	pthread_mutex_lock(&ctx->absent_lock);
	for (i = 0; i < FS_KEPT_ABSENT && !known; i++)
		known = ctx->absent[i].key && ctx->absent[i].t > since &&
			!strcmp(ctx->absent[i].key, key);
	pthread_mutex_unlock(&ctx->absent_lock);
	return known;
}

void fs_absent_forget(struct fs_ctx *ctx, const char *key)
{
	size_t i;

	pthread_mutex_lock(&ctx->absent_lock);
	for (i = 0; i < FS_KEPT_ABSENT; i++) {
		struct fs_absent *a = &ctx->absent[i];

		if (a->key && (!key || !strcmp(a->key, key))) {
			free(a->key);
			a->key = NULL;
		}
	}
	pthread_mutex_unlock(&ctx->absent_lock);
}

int fs_staged_children(struct fs_ctx *ctx, const char *dir_key,
		       char ***names, size_t *n)
{
	size_t dl = strlen(dir_key), i, cap = 0;
	char **v = NULL;

	*n = 0;
	pthread_mutex_lock(&ctx->itable_lock);
	for (i = 0; i < ctx->n_buckets; i++) {
		struct fs_inode *in;

		for (in = ctx->by_ino[i]; in; in = in->hnext_ino) {
			const char *rest;

			/* A stage pointer is read without in->lock: only
			 * whether it is set matters, and a stale answer just
			 * makes a name appear or vanish one listing late. */
			if (!__atomic_load_n(&in->stage, __ATOMIC_ACQUIRE) ||
			    in->unlinked)
				continue;
			if (dl && (strncmp(in->key, dir_key, dl) ||
				   in->key[dl] != '/'))
				continue;
			rest = dl ? in->key + dl + 1 : in->key;
			if (!*rest || strchr(rest, '/'))
				continue;
			if (*n == cap) {
				char **nv;

				cap = cap ? cap * 2 : 16;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv)
					break;
				v = nv;
			}
			v[*n] = strdup(rest);
			if (v[*n])
				(*n)++;
		}
	}
	pthread_mutex_unlock(&ctx->itable_lock);
	*names = v;
	return 0;
}
