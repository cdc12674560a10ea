/*
 * mem.c - an in-memory object store for unit tests.
 *
 * Objects live in one array sorted by key (bytewise), so LIST is a binary
 * search plus a scan.  Semantics follow S3: a key is any byte string, "dir/"
 * is an ordinary object (a directory marker if the caller wants one), and a
 * key can be an object and a prefix of others at once.  ETags are a
 * per-instance change counter, so every PUT or COPY yields a new one.
 *
 * Thread-safety: one mutex guards the array; a GET copies under it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ost.h"
#include "ost_int.h"

#include "log.h"

struct mem_obj {
	char *key;	     /* owned */
	unsigned char *data; /* owned; NULL when size is 0 */
	size_t size;
	int64_t mtime_ns;
	uint64_t version; /* the ETag */
};

struct mem_store {
	pthread_mutex_t lock;
	struct mem_obj *objs; /* guarded by lock: sorted by key */
	size_t n, cap;	      /* guarded by lock */
	uint64_t version;     /* guarded by lock: last version handed out */
};

/* Index of the first object whose key is >= key. */
static size_t mem_lower_bound(const struct mem_store *m, const char *key)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(m->objs[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct mem_obj *mem_find(struct mem_store *m, const char *key)
{
	size_t i = mem_lower_bound(m, key);

	if (i < m->n && strcmp(m->objs[i].key, key) == 0)
		return &m->objs[i];
	return NULL;
}

static void mem_info(const struct mem_obj *o, struct ost_info *info)
{
	if (!info)
		return;
	info->size = o->size;
	info->mtime_ns = o->mtime_ns;
	snprintf(info->etag, sizeof(info->etag), "m%016" PRIx64, o->version);
}

static int mem_get(void *priv, const char *key, uint64_t off, void *buf,
		   size_t len, size_t *got, struct ost_info *info)
{
	struct mem_store *m = priv;
	struct mem_obj *o;
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	o = mem_find(m, key);
	if (!o) {
		rc = -ENOENT;
		goto out;
	}
	if (off < o->size) {
		n = o->size - (size_t)off;
		if (n > len)
			n = len;
		memcpy(buf, o->data + off, n);
	}
	mem_info(o, info);
out:
	pthread_mutex_unlock(&m->lock);
	*got = n;
	return rc;
}

static int mem_head(void *priv, const char *key, struct ost_info *info)
{
	struct mem_store *m = priv;
	struct mem_obj *o;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	o = mem_find(m, key);
	if (o)
		mem_info(o, info);
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* Store data (ownership passes in, also on failure) as key, under the
 * condition.  Caller holds no lock. */
static int mem_store_obj(struct mem_store *m, const char *key,
			 unsigned char *data, size_t size,
			 const struct ost_put_cond *cond, struct ost_info *info)
{
	struct mem_obj *o;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	i = mem_lower_bound(m, key);
	o = (i < m->n && strcmp(m->objs[i].key, key) == 0) ? &m->objs[i] : NULL;
	if (cond && (cond->flags & OST_PUT_IF_NONE_MATCH) && o) {
		rc = -EEXIST;
		goto out;
	}
	if (cond && cond->if_match[0]) {
		struct ost_info cur;

		if (!o) {
			rc = -ENOENT;
			goto out;
		}
		mem_info(o, &cur);
		if (strcmp(cur.etag, cond->if_match) != 0) {
			rc = -ESTALE;
			goto out;
		}
	}
	if (!o) {
		char *k = strdup(key);

		if (!k) {
			rc = -ENOMEM;
			goto out;
		}
		if (m->n == m->cap) {
			size_t cap = m->cap ? 2 * m->cap : 64;
			struct mem_obj *v = realloc(m->objs, cap * sizeof(*v));

			if (!v) {
				free(k);
				rc = -ENOMEM;
				goto out;
			}
			m->objs = v;
			m->cap = cap;
		}
		memmove(&m->objs[i + 1], &m->objs[i],
			(m->n - i) * sizeof(*m->objs));
		m->n++;
		o = &m->objs[i];
		memset(o, 0, sizeof(*o));
		o->key = k;
	}
	free(o->data);
	o->data = data;
	data = NULL;
	o->size = size;
	o->mtime_ns = ost_now_ns();
	o->version = ++m->version;
	mem_info(o, info);
out:
	pthread_mutex_unlock(&m->lock);
	free(data);
	return rc;
}

static int mem_put(void *priv, const char *key, const struct ost_body *body,
		   const struct ost_put_cond *cond, struct ost_info *info)
{
	struct mem_store *m = priv;
	unsigned char *data = NULL;
	int rc;

	if (cond && (cond->flags & OST_PUT_IF_NONE_MATCH) && cond->if_match[0])
		return -EINVAL;
	if (body->len > SIZE_MAX - 1)
		return -EFBIG;
	if (body->len) {
		data = malloc((size_t)body->len);
		if (!data)
			return -ENOMEM;
		/* Read the body before taking the lock: a failed read leaves
		 * the old object as it was. */
		rc = ost_body_read(body, data);
		if (rc) {
			free(data);
			return rc;
		}
	}
	return mem_store_obj(m, key, data, (size_t)body->len, cond, info);
}

static int mem_copy(void *priv, const char *src, const char *dst)
{
	struct mem_store *m = priv;
	unsigned char *data = NULL;
	struct mem_obj *o;
	size_t size;

	pthread_mutex_lock(&m->lock);
	o = mem_find(m, src);
	if (!o) {
		pthread_mutex_unlock(&m->lock);
		return -ENOENT;
	}
	size = o->size;
	if (size) {
		data = malloc(size);
		if (!data) {
			pthread_mutex_unlock(&m->lock);
			return -ENOMEM;
		}
		memcpy(data, o->data, size);
	}
	pthread_mutex_unlock(&m->lock);
	return mem_store_obj(m, dst, data, size, NULL, NULL);
}

static int mem_del(void *priv, const char *key)
{
	struct mem_store *m = priv;
	size_t i;

	pthread_mutex_lock(&m->lock);
	i = mem_lower_bound(m, key);
	if (i < m->n && strcmp(m->objs[i].key, key) == 0) {
		free(m->objs[i].key);
		free(m->objs[i].data);
		memmove(&m->objs[i], &m->objs[i + 1],
			(m->n - i - 1) * sizeof(*m->objs));
		m->n--;
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int mem_list(void *priv, const char *prefix, const char *delimiter,
		    const char *token, const char *start_after, size_t max_keys,
		    struct ost_list_result *res)
{
	struct mem_store *m = priv;
	struct ost_lister l;
	const char *start;
	size_t i;
	int rc = 0, v;

	/* a token is the last item given: start_after works alike */
	ost_lister_init(&l, prefix, delimiter, token ? token : start_after,
			max_keys, res);
	/* Keys below the token cannot be on this page, nor roll up into a
	 * common prefix above it (a common prefix is <= its keys). */
	start = (l.token && strcmp(l.token, l.prefix) > 0) ? l.token : l.prefix;
	pthread_mutex_lock(&m->lock);
	for (i = mem_lower_bound(m, start); i < m->n; i++) {
		const struct mem_obj *o = &m->objs[i];
		struct ost_info info;

		if (strncmp(o->key, l.prefix, l.plen) != 0)
			break;
		v = ost_lister_check(&l, o->key);
		if (v < 0) {
			rc = v;
			break;
		}
		if (v == OST_LIST_STOP)
			break;
		if (v != OST_LIST_OBJECT)
			continue;
		mem_info(o, &info);
		rc = ost_lister_add(&l, o->key, &info);
		if (rc)
			break;
	}
	pthread_mutex_unlock(&m->lock);
	if (rc)
		ost_list_result_release(res);
	return rc;
}

static void mem_free(void *priv)
{
	struct mem_store *m = priv;
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->n; i++) {
		free(m->objs[i].key);
		free(m->objs[i].data);
	}
	free(m->objs);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct ost_ops mem_ops = {
    .name = "mem",
    .get = mem_get,
    .put = mem_put,
    .head = mem_head,
    .list = mem_list,
    .del = mem_del,
    .copy = mem_copy,
    .free = mem_free,
};

int ost_mem_new(struct ost_backend **out)
{
	struct mem_store *m = calloc(1, sizeof(*m));
	struct ost_backend *be;

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	be = ost_backend_alloc(&mem_ops, m);
	if (!be) {
		mem_free(m);
		return -ENOMEM;
	}
	*out = be;
	return 0;
}
