/*
 * ost.c - the store handle: a backend plus its async request pool, the
 * synchronous helpers built on it, URL parsing, and the LIST engine that the
 * backends share.
 *
 * The pool is a fixed set of worker threads serving one FIFO queue (a mutex
 * and a condition variable).  A worker pops a request, runs the backend's
 * blocking operation, updates the counters and calls req->done.  The
 * synchronous helpers go through the same queue, so the counters and the
 * thread limit apply to every request alike.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ost.h"
#include "ost_int.h"
#include "azure.h"
#include "s3.h"

#include <openssl/crypto.h>

#include "log.h"

#define OST_DEFAULT_THREADS 8
#define OST_DEFAULT_MAX_KEYS 1000
#define OST_GET_ALL_FIRST (64 * 1024) /* first guess of ost_get_all, bytes */
#define OST_GET_RESTARTS 4 /* re-reads when an object changes mid-read */

struct ost {
	struct ost_backend *be; /* owned */
	char *name;		/* owned, e.g. "fault(local)" */
	unsigned nthreads;
	pthread_t *threads; /* nthreads of them */
	/* Workers start at the first request (guarded by lock). */
	bool started;
	unsigned nstarted;  /* workers running */

	pthread_mutex_t lock;
	pthread_cond_t work; /* signalled when head or stopping changes */
	struct ost_req *head, *tail; /* guarded by lock: the FIFO queue */
	bool stopping;		     /* guarded by lock: ost_free() began */

	/* Counters: atomics, no lock. */
	atomic_uint_least64_t requests[OST_NOPS];
	atomic_uint_least64_t errors;
	atomic_uint_least64_t bytes_in;
	atomic_uint_least64_t bytes_out;
	atomic_uint_least64_t in_flight;
};

/*
 * Small shared helpers.
 */

struct ost_backend *ost_backend_alloc(const struct ost_ops *ops, void *priv)
{
	struct ost_backend *be = calloc(1, sizeof(*be));

	if (be) {
		be->ops = ops;
		be->priv = priv;
	}
	return be;
}

void ost_backend_free(struct ost_backend *be)
{
	if (!be)
		return;
	if (be->ops && be->ops->free)
		be->ops->free(be->priv);
	free(be);
}

int64_t ost_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int ost_body_read(const struct ost_body *body, void *buf)
{
	uint64_t done = 0;

	if (body->len == 0)
		return 0;
	if (body->buf) {
		memcpy(buf, body->buf, body->len);
		return 0;
	}
	while (done < body->len) {
		ssize_t n =
		    pread(body->fd, (char *)buf + done, body->len - done,
			  (off_t)(body->fd_off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			ch5_err("objstore: PUT body fd ended after %llu of "
				"%llu bytes",
				(unsigned long long)done,
				(unsigned long long)body->len);
			return -EIO;
		}
		done += (uint64_t)n;
	}
	return 0;
}

void ost_list_result_release(struct ost_list_result *res)
{
	size_t i;

	if (!res)
		return;
	for (i = 0; i < res->n_objects; i++)
		free(res->objects[i].key);
	free(res->objects);
	for (i = 0; i < res->n_prefixes; i++)
		free(res->prefixes[i]);
	free(res->prefixes);
	free(res->next_token);
	memset(res, 0, sizeof(*res));
}

/*
 * The LIST engine.
 */

void ost_lister_init(struct ost_lister *l, const char *prefix,
		     const char *delim, const char *token, size_t max_keys,
		     struct ost_list_result *res)
{
	memset(l, 0, sizeof(*l));
	l->prefix = prefix ? prefix : "";
	l->plen = strlen(l->prefix);
	if (delim && *delim) {
		l->delim = delim;
		l->dlen = strlen(delim);
	}
	l->token = (token && *token) ? token : NULL;
	l->max = max_keys ? max_keys : OST_DEFAULT_MAX_KEYS;
	l->res = res;
}

/* Bytewise compare of a[0..alen) with the string b. */
static int lister_cmp(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Length of the common prefix s[0..slen) rolls up into, or 0 if none: up to
 * and including the first delimiter after the listing prefix. */
static size_t lister_rollup(const struct ost_lister *l, const char *s,
			    size_t slen)
{
	const char *p;

	if (!l->delim || slen < l->plen + l->dlen)
		return 0;
	p = memmem(s + l->plen, slen - l->plen, l->delim, l->dlen);
	return p ? (size_t)(p - s) + l->dlen : 0;
}

/* May item[0..ilen) (a key or common prefix) join the page?  OBJECT if yes,
 * SKIP if the previous page or this one has it already, STOP (and the token
 * set) if the page is full. */
static int lister_item(struct ost_lister *l, const char *item, size_t ilen)
{
	if (l->stopped)
		return OST_LIST_STOP;
	if (l->token && lister_cmp(item, ilen, l->token) <= 0)
		return OST_LIST_SKIP;
	if (l->last && lister_cmp(item, ilen, l->last) == 0)
		return OST_LIST_SKIP;
	if (l->n >= l->max) {
		l->res->next_token = strdup(l->last);
		if (!l->res->next_token)
			return -ENOMEM;
		l->stopped = true;
		return OST_LIST_STOP;
	}
	return OST_LIST_OBJECT;
}

/* Make room for element n of *arr (elem bytes each, *cap allocated). */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t nc;
	void *a;

	if (n < *cap)
		return 0;
	nc = *cap ? 2 * *cap : 16;
	a = realloc(*arr, nc * elem);
	if (!a)
		return -ENOMEM;
	*arr = a;
	*cap = nc;
	return 0;
}

static int lister_add_prefix(struct ost_lister *l, const char *s, size_t len)
{
	struct ost_list_result *res = l->res;
	char *p;

	if (grow((void **)&res->prefixes, &l->cap_pfx, res->n_prefixes,
		 sizeof(*res->prefixes)) < 0)
		return -ENOMEM;
	p = strndup(s, len);
	if (!p)
		return -ENOMEM;
	res->prefixes[res->n_prefixes++] = p;
	l->n++;
	l->last = p;
	return 0;
}

int ost_lister_check(struct ost_lister *l, const char *key)
{
	size_t klen = strlen(key);
	size_t cp;
	int v;

	if (l->stopped)
		return OST_LIST_STOP;
	if (!ost_has_prefix(key, klen, l->prefix, l->plen))
		return OST_LIST_SKIP;
	cp = lister_rollup(l, key, klen);
	if (!cp)
		return lister_item(l, key, klen);
	v = lister_item(l, key, cp);
	if (v != OST_LIST_OBJECT)
		return v;
	v = lister_add_prefix(l, key, cp);
	return v < 0 ? v : OST_LIST_SKIP;
}

int ost_list_add_object(struct ost_list_result *res, size_t *cap,
			const char *key, const struct ost_info *info)
{
	struct ost_list_entry *e;

	if (grow((void **)&res->objects, cap, res->n_objects,
		 sizeof(*res->objects)) < 0)
		return -ENOMEM;
	e = &res->objects[res->n_objects];
	e->key = strdup(key);
	if (!e->key)
		return -ENOMEM;
	e->info = *info;
	res->n_objects++;
	return 0;
}

int ost_list_add_prefix(struct ost_list_result *res, size_t *cap,
			const char *prefix)
{
	if (grow((void **)&res->prefixes, cap, res->n_prefixes,
		 sizeof(*res->prefixes)) < 0)
		return -ENOMEM;
	res->prefixes[res->n_prefixes] = strdup(prefix);
	if (!res->prefixes[res->n_prefixes])
		return -ENOMEM;
	res->n_prefixes++;
	return 0;
}

int ost_lister_add(struct ost_lister *l, const char *key,
		   const struct ost_info *info)
{
	int rc = ost_list_add_object(l->res, &l->cap_obj, key, info);

	if (rc < 0)
		return rc;
	l->n++;
	l->last = l->res->objects[l->res->n_objects - 1].key;
	return 0;
}

int ost_lister_subtree(struct ost_lister *l, const char *q, size_t qlen)
{
	size_t m = qlen < l->plen ? qlen : l->plen;
	size_t cp;
	int v;

	if (l->stopped)
		return OST_LIST_STOP;
	/* Outside the prefix: neither starts with the other. */
	if (memcmp(q, l->prefix, m) != 0)
		return OST_LIST_SKIP;
	/* Every key below rolls up into the same common prefix (the first
	 * delimiter after the listing prefix lies inside q). */
	cp = qlen >= l->plen ? lister_rollup(l, q, qlen) : 0;
	if (cp) {
		v = lister_item(l, q, cp);
		if (v != OST_LIST_OBJECT)
			return v;
		v = lister_add_prefix(l, q, cp);
		return v < 0 ? v : OST_LIST_SKIP;
	}
	/* Wholly before the token: q < token and q is not a prefix of it. */
	if (l->token && !ost_has_prefix(l->token, strlen(l->token), q, qlen) &&
	    lister_cmp(q, qlen, l->token) < 0)
		return OST_LIST_SKIP;
	return OST_LIST_DESCEND;
}

/*
 * The pool.
 */

static bool ost_key_ok(const char *key)
{
	return key && *key && strnlen(key, OST_KEY_MAX + 1) <= OST_KEY_MAX;
}

/* Run one request's backend operation; sets req->rc and the (out) fields. */
static void ost_run(struct ost *st, struct ost_req *req)
{
	const struct ost_ops *ops = st->be->ops;
	void *priv = st->be->priv;
	int rc;

	req->got = 0;
	memset(&req->info, 0, sizeof(req->info));
	memset(&req->list, 0, sizeof(req->list));
	switch (req->op) {
	case OST_GET:
		if (!ost_key_ok(req->key) || (!req->buf && req->len)) {
			rc = -EINVAL;
			break;
		}
		rc = ops->get(priv, req->key, req->off, req->buf, req->len,
			      &req->got, &req->info);
		if (rc == 0 && req->got > req->len) {
			ch5_err("objstore: %s GET returned %zu > %zu bytes",
				ops->name, req->got, req->len);
			rc = -EIO;
		}
		if (rc)
			req->got = 0;
		break;
	case OST_PUT:
		if (!ost_key_ok(req->key)) {
			rc = -EINVAL;
			break;
		}
		rc =
		    ops->put(priv, req->key, &req->body, req->cond, &req->info);
		break;
	case OST_HEAD:
		rc = ost_key_ok(req->key)
			 ? ops->head(priv, req->key, &req->info)
			 : -EINVAL;
		break;
	case OST_LIST:
		if (req->prefix &&
		    strnlen(req->prefix, OST_KEY_MAX + 1) > OST_KEY_MAX) {
			rc = -EINVAL;
			break;
		}
		rc = ops->list(priv, req->prefix ? req->prefix : "",
			       req->delimiter ? req->delimiter : "", req->token,
			       req->token ? NULL : req->start_after,
			       req->max_keys, &req->list);
		if (rc)
			ost_list_result_release(&req->list);
		break;
	case OST_DELETE:
		if (req->n_keys) {
			size_t i;

			rc = ops->del_many && req->n_keys <= OST_DELETE_BATCH
				     ? 0
				     : -EINVAL;
			for (i = 0; !rc && i < req->n_keys; i++)
				if (!ost_key_ok(req->keys[i]))
					rc = -EINVAL;
			if (!rc)
				rc = ops->del_many(priv, req->keys,
						   req->n_keys, req->key_rcs);
			break;
		}
		rc = ost_key_ok(req->key) ? ops->del(priv, req->key) : -EINVAL;
		break;
	case OST_COPY:
		rc = ost_key_ok(req->key) && ost_key_ok(req->dst_key)
			 ? ops->copy(priv, req->key, req->dst_key)
			 : -EINVAL;
		break;
	default:
		rc = -EINVAL;
		break;
	}
	req->rc = rc;
}

/* Count a completed request.  Called before req->done (which may free
 * it), so a synchronous caller sees its own request in the counters. */
static void ost_count(struct ost *st, const struct ost_req *req)
{
	if ((unsigned)req->op < OST_NOPS)
		atomic_fetch_add(&st->requests[req->op], 1);
	if (req->rc < 0 && req->rc != -ENOENT)
		atomic_fetch_add(&st->errors, 1);
	if (req->rc == 0 && req->op == OST_GET)
		atomic_fetch_add(&st->bytes_in, req->got);
	if (req->rc == 0 && req->op == OST_PUT)
		atomic_fetch_add(&st->bytes_out, req->body.len);
	atomic_fetch_sub(&st->in_flight, 1);
}

static void *ost_worker(void *arg)
{
	struct ost *st = arg;
	struct ost_req *req;

	for (;;) {
		pthread_mutex_lock(&st->lock);
		while (!st->head && !st->stopping)
			pthread_cond_wait(&st->work, &st->lock);
		req = st->head;
		if (!req) { /* stopping and drained */
			pthread_mutex_unlock(&st->lock);
			return NULL;
		}
		st->head = req->next;
		if (!st->head)
			st->tail = NULL;
		pthread_mutex_unlock(&st->lock);

		req->next = NULL;
		ost_run(st, req);
		ost_count(st, req);
		req->done(req);
	}
}

int ost_new(struct ost_backend *be, unsigned nthreads, struct ost **out)
{
	struct ost *st = NULL;
	const struct ost_backend *b;
	char name[128] = "";
	size_t depth = 0, i;
	int rc;

	if (!be || !be->ops || !out) {
		rc = -EINVAL;
		goto out;
	}
	/* "fault(local)": peel the fault wrappers for the name. */
	for (b = be; b->ops == &ost_fault_ops; b = ost_fault_inner(b->priv))
		depth++;
	for (i = 0; i < depth; i++)
		strncat(name, "fault(", sizeof(name) - strlen(name) - 1);
	strncat(name, b->ops->name ? b->ops->name : "?",
		sizeof(name) - strlen(name) - 1);
	for (i = 0; i < depth; i++)
		strncat(name, ")", sizeof(name) - strlen(name) - 1);

	st = calloc(1, sizeof(*st));
	if (!st) {
		rc = -ENOMEM;
		goto out;
	}
	st->name = strdup(name);
	st->nthreads = nthreads ? nthreads : OST_DEFAULT_THREADS;
	st->threads = calloc(st->nthreads, sizeof(*st->threads));
	if (!st->name || !st->threads) {
		free(st->name);
		free(st->threads);
		free(st);
		st = NULL;
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->work, NULL);
	for (i = 0; i < OST_NOPS; i++)
		atomic_init(&st->requests[i], 0);
	atomic_init(&st->errors, 0);
	atomic_init(&st->bytes_in, 0);
	atomic_init(&st->bytes_out, 0);
	atomic_init(&st->in_flight, 0);
	st->be = be;
	be = NULL;
	*out = st;
	rc = 0;
out:
	ost_backend_free(be); /* ownership passed in, also on failure */
	return rc;
}

void ost_free(struct ost *st)
{
	unsigned i;

	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->stopping = true;
	pthread_cond_broadcast(&st->work);
	pthread_mutex_unlock(&st->lock);
	/* Workers drain the queue before they exit. */
	for (i = 0; i < st->nstarted; i++)
		pthread_join(st->threads[i], NULL);
	pthread_cond_destroy(&st->work);
	pthread_mutex_destroy(&st->lock);
	ost_backend_free(st->be);
	free(st->threads);
	free(st->name);
	free(st);
}

/* Start the pool's workers (st->lock held).  If none starts, the next
 * request tries again. */
static int start_workers_locked(struct ost *st)
{
	unsigned i;
	int rc;

	st->nstarted = 0;
	for (i = 0; i < st->nthreads; i++) {
		rc = -pthread_create(&st->threads[i], NULL, ost_worker, st);
		if (rc) {
			ch5_err("objstore: cannot start pool thread: %s",
				strerror(-rc));
			break;
		}
		st->nstarted = i + 1;
	}
	st->started = st->nstarted > 0; /* fewer workers still work */
	return st->started ? 0 : rc;
}

int ost_submit(struct ost *st, struct ost_req *req)
{
	if (!st || !req || !req->done)
		return -EINVAL;
	req->next = NULL;
	pthread_mutex_lock(&st->lock);
	if (st->stopping) {
		pthread_mutex_unlock(&st->lock);
		return -ESHUTDOWN;
	}
	if (!st->started) {
		int rc = start_workers_locked(st);

		if (rc < 0) {
			pthread_mutex_unlock(&st->lock);
			return rc;
		}
	}
	atomic_fetch_add(&st->in_flight, 1);
	if (st->tail)
		st->tail->next = req;
	else
		st->head = req;
	st->tail = req;
	pthread_cond_signal(&st->work);
	pthread_mutex_unlock(&st->lock);
	return 0;
}

void ost_stats_get(struct ost *st, struct ost_stats *out)
{
	size_t i;

	for (i = 0; i < OST_NOPS; i++)
		out->requests[i] = atomic_load(&st->requests[i]);
	out->errors = atomic_load(&st->errors);
	out->bytes_in = atomic_load(&st->bytes_in);
	out->bytes_out = atomic_load(&st->bytes_out);
	out->in_flight = atomic_load(&st->in_flight);
	out->retries = st->be->ops->retries
			       ? st->be->ops->retries(st->be->priv)
			       : 0;
}

bool ost_read_only(const struct ost *st)
{
	return st->be->ops->read_only && st->be->ops->read_only(st->be->priv);
}

const char *ost_name(const struct ost *st)
{
	return st->name;
}

/*
 * Synchronous helpers: submit, then wait on a per-call condition variable.
 */

struct ost_waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done; /* guarded by lock */
};

static void ost_sync_done(struct ost_req *req)
{
	struct ost_waiter *w = req->arg;

	/* Signal under the lock: the waiter destroys w as soon as it sees
	 * done, which it cannot before this unlock. */
	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Run req (fields set by the caller) to completion; returns req->rc or the
 * submit error. */
static int ost_run_sync(struct ost *st, struct ost_req *req)
{
	struct ost_waiter w;
	int rc;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	w.done = false;
	req->done = ost_sync_done;
	req->arg = &w;
	rc = ost_submit(st, req);
	if (rc == 0) {
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
		rc = req->rc;
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return rc;
}

/* Two reads of one object: same version?  An empty ETag cannot tell. */
static bool ost_same_version(const struct ost_info *a, const struct ost_info *b)
{
	if (!a->etag[0] || !b->etag[0])
		return a->size == b->size;
	return strcmp(a->etag, b->etag) == 0 && a->size == b->size;
}

int ost_get(struct ost *st, const char *key, uint64_t off, void *buf,
	    size_t len, size_t *got, struct ost_info *info)
{
	struct ost_info first;
	struct ost_req req;
	size_t total = 0;
	int restarts = 0;
	bool have = false;
	int rc;

	do {
		memset(&req, 0, sizeof(req));
		req.op = OST_GET;
		req.key = key;
		req.off = off + total;
		req.buf = (char *)buf + total;
		req.len = len - total;
		rc = ost_run_sync(st, &req);
		if (rc)
			goto out;
		if (!have) {
			first = req.info;
			have = true;
		} else if (!ost_same_version(&first, &req.info)) {
			/* Replaced between two short reads: start over so
			 * the caller never gets a mix of versions. */
			if (++restarts > OST_GET_RESTARTS) {
				ch5_warn("objstore: %s keeps changing during "
					 "GET",
					 key);
				rc = -EIO;
				goto out;
			}
			total = 0;
			have = false;
			continue;
		}
		total += req.got;
		/* A short answer is the end of the object, or a backend that
		 * returns less (a short read): the size tells which. */
		if (req.got == 0 || off + total >= first.size)
			break;
	} while (total < len);
	rc = 0;
out:
	if (got)
		*got = rc ? 0 : total;
	if (info && rc == 0)
		*info = first;
	return rc;
}

int ost_get_all(struct ost *st, const char *key, size_t max, void **data,
		size_t *len, struct ost_info *info)
{
	struct ost_info inf, inf2;
	size_t want, got, got2;
	char *buf = NULL, *nb;
	int restarts = 0;
	int rc;

again:
	/* One byte more than we expect, to notice growth. */
	want = max < OST_GET_ALL_FIRST ? max : OST_GET_ALL_FIRST;
	nb = realloc(buf, want + 1);
	if (!nb) {
		rc = -ENOMEM;
		goto out;
	}
	buf = nb;
	rc = ost_get(st, key, 0, buf, want + 1, &got, &inf);
	if (rc)
		goto out;
	if (got > max || inf.size > max || inf.size >= SIZE_MAX) {
		rc = -EFBIG;
		goto out;
	}
	if (got < inf.size) {
		nb = realloc(buf, (size_t)inf.size + 1);
		if (!nb) {
			rc = -ENOMEM;
			goto out;
		}
		buf = nb;
		rc = ost_get(st, key, got, buf + got,
			     (size_t)inf.size + 1 - got, &got2, &inf2);
		if (rc == -ENOENT ||
		    (rc == 0 && !ost_same_version(&inf, &inf2))) {
			if (++restarts > OST_GET_RESTARTS) {
				ch5_warn("objstore: %s keeps changing during "
					 "GET",
					 key);
				rc = -EIO;
				goto out;
			}
			goto again;
		}
		if (rc)
			goto out;
		got += got2;
	}
	if (got != inf.size) {
		ch5_err("objstore: %s: read %zu bytes of %llu", key, got,
			(unsigned long long)inf.size);
		rc = -EIO;
		goto out;
	}
	*data = buf;
	*len = got;
	if (info)
		*info = inf;
	buf = NULL;
out:
	free(buf);
	return rc;
}

int ost_put(struct ost *st, const char *key, const struct ost_body *body,
	    const struct ost_put_cond *cond, struct ost_info *info)
{
	struct ost_req req;
	int rc;

	if (!body)
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.op = OST_PUT;
	req.key = key;
	req.body = *body;
	req.cond = cond;
	rc = ost_run_sync(st, &req);
	if (rc == 0 && info)
		*info = req.info;
	return rc;
}

int ost_put_buf(struct ost *st, const char *key, const void *buf, size_t len,
		struct ost_info *info)
{
	struct ost_body body = {
	    .buf = buf ? buf : "", .fd = -1, .fd_off = 0, .len = len};

	if (!buf && len)
		return -EINVAL;
	return ost_put(st, key, &body, NULL, info);
}

int ost_head(struct ost *st, const char *key, struct ost_info *info)
{
	struct ost_req req;
	int rc;

	memset(&req, 0, sizeof(req));
	req.op = OST_HEAD;
	req.key = key;
	rc = ost_run_sync(st, &req);
	if (rc == 0 && info)
		*info = req.info;
	return rc;
}

int ost_list(struct ost *st, const char *prefix, const char *delimiter,
	     const char *token, size_t max_keys, struct ost_list_result *res)
{
	return ost_list_after(st, prefix, delimiter, token, NULL, max_keys,
			      res);
}

int ost_list_after(struct ost *st, const char *prefix, const char *delimiter,
		   const char *token, const char *start_after,
		   size_t max_keys, struct ost_list_result *res)
{
	struct ost_req req;
	int rc;

	memset(&req, 0, sizeof(req));
	req.op = OST_LIST;
	req.prefix = prefix;
	req.delimiter = delimiter;
	req.token = token;
	req.start_after = start_after;
	req.max_keys = max_keys;
	rc = ost_run_sync(st, &req);
	if (rc == 0)
		*res = req.list;
	else
		memset(res, 0, sizeof(*res));
	return rc;
}

int ost_delete(struct ost *st, const char *key)
{
	struct ost_req req;

	memset(&req, 0, sizeof(req));
	req.op = OST_DELETE;
	req.key = key;
	return ost_run_sync(st, &req);
}

void ost_batch_init(struct ost_batch *b, unsigned max)
{
	memset(b, 0, sizeof(*b));
	b->max = max ? max : 1;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
}

void ost_batch_submit(struct ost *st, struct ost_batch *b,
		      struct ost_req *req)
{
	int rc;

	pthread_mutex_lock(&b->lock);
	while (b->inflight >= b->max)
		pthread_cond_wait(&b->cond, &b->lock);
	b->inflight++;
	pthread_mutex_unlock(&b->lock);
	rc = ost_submit(st, req);
	if (rc < 0) {
		req->rc = rc;
		req->done(req);
	}
}

void ost_batch_finish(struct ost_batch *b, int rc)
{
	pthread_mutex_lock(&b->lock);
	if (rc < 0 && !b->rc)
		b->rc = rc;
	b->inflight--;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

void ost_batch_done(struct ost_req *req)
{
	ost_batch_finish(req->arg, 0);
}

bool ost_batch_failed(struct ost_batch *b)
{
	bool failed;

	pthread_mutex_lock(&b->lock);
	failed = b->rc < 0;
	pthread_mutex_unlock(&b->lock);
	return failed;
}

int ost_batch_wait(struct ost_batch *b)
{
	int rc;

	pthread_mutex_lock(&b->lock);
	while (b->inflight)
		pthread_cond_wait(&b->cond, &b->lock);
	rc = b->rc;
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	return rc;
}

/* One ost_delete_keys() call: its batch and the keys that failed. */
struct del_batch {
	struct ost_batch b;
	long failed; /* atomic */
};

static void del_done(struct ost_req *req)
{
	struct del_batch *d = req->arg;
	long failed = 0;
	size_t i;

	if (req->n_keys) {
		for (i = 0; i < req->n_keys; i++) {
			int rc = req->rc ? req->rc : req->key_rcs[i];

			if (rc < 0 && rc != -ENOENT) {
				ch5_err("objstore: delete of %s failed: %s",
					req->keys[i], strerror(-rc));
				failed++;
			}
		}
	} else if (req->rc < 0 && req->rc != -ENOENT) {
		ch5_err("objstore: delete of %s failed: %s", req->key,
			strerror(-req->rc));
		failed = 1;
	}
	__atomic_add_fetch(&d->failed, failed, __ATOMIC_RELAXED);
	ost_batch_finish(&d->b, 0);
}

long ost_delete_keys(struct ost *st, char *const *keys, size_t n)
{
	bool batch = st->be->ops->del_many != NULL;
	size_t nreq = batch ? (n + OST_DELETE_BATCH - 1) / OST_DELETE_BATCH
			    : n, i;
	struct ost_req *reqs;
	int *rcs = NULL;
	struct del_batch d = { .failed = 0 };

	if (!n)
		return 0;
	reqs = calloc(nreq, sizeof(*reqs));
	if (batch)
		rcs = calloc(n, sizeof(*rcs));
	if (!reqs || (batch && !rcs)) {
		free(reqs);
		free(rcs);
		return -ENOMEM;
	}
	ost_batch_init(&d.b, 32);
	for (i = 0; i < nreq; i++) {
		struct ost_req *r = &reqs[i];

		r->op = OST_DELETE;
		if (batch) {
			r->keys = (const char *const *)keys +
				  i * OST_DELETE_BATCH;
			r->n_keys = n - i * OST_DELETE_BATCH < OST_DELETE_BATCH
					    ? n - i * OST_DELETE_BATCH
					    : OST_DELETE_BATCH;
			r->key_rcs = rcs + i * OST_DELETE_BATCH;
		} else {
			r->key = keys[i];
		}
		r->done = del_done;
		r->arg = &d;
		ost_batch_submit(st, &d.b, r);
	}
	ost_batch_wait(&d.b);
	free(reqs);
	free(rcs);
	return __atomic_load_n(&d.failed, __ATOMIC_RELAXED);
}

int ost_copy(struct ost *st, const char *src, const char *dst)
{
	struct ost_req req;

	memset(&req, 0, sizeof(req));
	req.op = OST_COPY;
	req.key = src;
	req.dst_key = dst;
	return ost_run_sync(st, &req);
}

/*
 * URLs.
 */

int ost_open_url(const char *url, const char *fault_spec, unsigned nthreads,
		 struct ost **out)
{
	return ost_open_source(url, NULL, NULL, fault_spec, nthreads, out);
}

int ost_open_source(const char *url, const struct ost_s3_opts *s3,
		    const struct ost_az_opts *az, const char *fault_spec,
		    unsigned nthreads, struct ost **out)
{
	struct ost_backend *be = NULL, *wrapped;
	struct ost_fault_cfg cfg;
	int rc;

	if (!url || !out)
		return -EINVAL;
	if (fault_spec && *fault_spec) {
		rc = ost_fault_parse(fault_spec, &cfg);
		if (rc)
			return rc;
	}
	if (strncmp(url, "file://", 7) == 0) {
		if (url[7] != '/') {
			ch5_err("objstore: %s: file:// needs an absolute path "
				"(file:///dir)",
				url);
			return -EINVAL;
		}
		rc = ost_local_new(url + 7, &be);
	} else if (url[0] == '/') {
		rc = ost_local_new(url, &be);
	} else if (strcmp(url, "mem://") == 0) {
		rc = ost_mem_new(&be);
	} else if (ost_az_source(url)) {
		struct ost_az_resolved *r = calloc(1, sizeof(*r));

		rc = r ? ost_az_resolve(url, az, r) : -ENOMEM;
		if (rc == 0)
			rc = ost_az_new(&r->cfg, &be);
		if (r)
			OPENSSL_cleanse(r, sizeof(*r));
		free(r);
	} else if (ost_s3_source(url)) {
		struct ost_s3_resolved *r = calloc(1, sizeof(*r));

		rc = r ? ost_s3_resolve(url, s3, r) : -ENOMEM;
		if (rc == 0)
			rc = ost_s3_new(&r->cfg, &be);
		if (r)
			OPENSSL_cleanse(r, sizeof(*r));
		free(r);
	} else {
		ch5_err("objstore: %s: unsupported store URL (file:///dir, "
			"/dir, BUCKET[:/PREFIX], s3://BUCKET[/PREFIX], "
			"az://CONTAINER[/PREFIX] or mem://)",
			url);
		return -EINVAL;
	}
	if (rc)
		return rc;
	if (fault_spec && *fault_spec) {
		rc = ost_fault_new(be, &cfg, &wrapped);
		if (rc)
			return rc; /* be was freed by ost_fault_new */
		be = wrapped;
	}
	return ost_new(be, nthreads, out);
}
