/*
 * ost.h - objstore: one interface over object stores.
 *
 * A backend (local directory, in-memory, S3, Azure; or a fault-injecting
 * wrapper around any of them) is a `const struct ost_ops` table plus an
 * instance, bundled in `struct ost_backend`.  Backend operations are blocking
 * and run on the worker threads of the async request pool that `struct ost`
 * owns; callers never call them directly.  Callers either
 *
 *   - submit a `struct ost_req` with ost_submit() and get a completion
 *     callback on a pool thread (the FUSE read path does this, so no FUSE
 *     worker waits for another request's I/O), or
 *   - call the synchronous helpers (ost_get(), ost_put(), ...), which submit
 *     and wait.
 *
 * objstore knows nothing of HDF5 or FUSE.  Keys are byte strings without NUL,
 * at most OST_KEY_MAX bytes, '/'-separated by convention (as in S3).
 *
 * Errors: every function returns 0 or a negative errno.  Backends map their
 * own failures (HTTP status, errno of the local filesystem) to these, once:
 *   -ENOENT     no such key
 *   -EEXIST     PUT with OST_PUT_IF_NONE_MATCH and the key exists
 *   -ESTALE     PUT with if_match and the current ETag differs
 *   -EACCES     permission denied by the store
 *   -EINVAL     a key or argument the backend cannot represent
 *   -ENOSPC     the store is full
 *   -ETIMEDOUT  the store did not answer in time
 *   -EIO        anything else (the backend logs the details)
 */
#ifndef CH5_OST_H
#define CH5_OST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OST_KEY_MAX 1024
#define OST_ETAG_MAX 80

struct ost;
struct ost_backend;

/* What HEAD, PUT and LIST tell about one object. */
struct ost_info {
	uint64_t size;		 /* bytes */
	int64_t mtime_ns;	 /* last modification, ns since the epoch */
	char etag[OST_ETAG_MAX]; /* opaque, NUL-terminated, may be "" */
};

/* The bytes of a PUT: from memory when buf is non-NULL, else `len` bytes read
 * with pread(2) from `fd` starting at `fd_off`.  Both borrowed until the PUT
 * completes. */
struct ost_body {
	const void *buf;
	int fd;
	uint64_t fd_off;
	uint64_t len;
};

/* PUT conditions (S3 If-None-Match / If-Match semantics). */
#define OST_PUT_IF_NONE_MATCH 0x1 /* fail with -EEXIST if the key exists */

struct ost_put_cond {
	unsigned flags;		     /* OST_PUT_* */
	char if_match[OST_ETAG_MAX]; /* "" = unconditional; else -ESTALE if the
					current ETag differs (or -ENOENT) */
};

/* One object of a LIST answer. */
struct ost_list_entry {
	char *key; /* owned by the result */
	struct ost_info info;
};

/* A LIST answer: objects and common prefixes, both sorted by key (bytewise),
 * as S3's ListObjectsV2 returns them. */
struct ost_list_result {
	struct ost_list_entry *objects;
	size_t n_objects;
	char **prefixes; /* each ends with the delimiter */
	size_t n_prefixes;
	char *next_token; /* NULL when the listing is complete; else pass it
			     back as `token` to continue */
};

/* Free what a LIST answer owns and zero it.  Safe on a zeroed result. */
void ost_list_result_release(struct ost_list_result *res);

/*
 * Backend operations.  Each is blocking and is called on a pool worker
 * thread, possibly on several threads at once for one instance, so an
 * implementation must be thread-safe.  `priv` is ost_backend.priv.
 */
struct ost_ops {
	const char *name;

	/* Ranged GET: read up to `len` bytes of `key` from byte `off` into
	 * `buf`; *got is set to the bytes read, which is less than `len` only
	 * at the end of the object (0 when off >= size).  If `info` is
	 * non-NULL it receives the object's info.  (The fault wrapper's
	 * short_read breaks the "only at the end" rule on purpose; ost_get()
	 * copes, raw OST_GET requests see it.) */
	int (*get)(void *priv, const char *key, uint64_t off, void *buf,
		   size_t len, size_t *got, struct ost_info *info);

	/* PUT the whole object atomically: a reader sees the old object or
	 * the new one, never a part.  `cond` may be NULL.  On success `info`
	 * (may be NULL) receives the new object's info. */
	int (*put)(void *priv, const char *key, const struct ost_body *body,
		   const struct ost_put_cond *cond, struct ost_info *info);

	/* HEAD: the object's info, or -ENOENT. */
	int (*head)(void *priv, const char *key, struct ost_info *info);

	/* LIST keys starting with `prefix` ("" for all).  With a non-empty
	 * `delimiter`, keys that contain it after the prefix are rolled up
	 * into common prefixes.  At most `max_keys` objects + prefixes per
	 * answer (0 means the backend's default, 1000).  `token` is NULL or
	 * a next_token from a previous answer.  `start_after` (NULL: none)
	 * is a key: a first page (token NULL) lists only what sorts after it
	 * (S3 ListObjectsV2 start-after); later pages ignore it.  *res must
	 * be zeroed. */
	int (*list)(void *priv, const char *prefix, const char *delimiter,
		    const char *token, const char *start_after,
		    size_t max_keys, struct ost_list_result *res);

	/* DELETE; deleting a missing key succeeds (as in S3). */
	int (*del)(void *priv, const char *key);

	/* Optional: DELETE up to OST_DELETE_BATCH keys in one request (S3
	 * DeleteObjects); rcs[i] receives key i's result.  Returns 0, or the
	 * error of the whole request (rcs then undefined).  NULL: the pool
	 * deletes keys one by one. */
	int (*del_many)(void *priv, const char *const *keys, size_t n,
			int *rcs);

	/* Server-side copy of `src` to `dst` (atomic for readers of dst). */
	int (*copy)(void *priv, const char *src, const char *dst);

	/* Optional: how many requests this instance has sent again after a
	 * transient failure (connection error, 5xx, 429, SlowDown), since it
	 * was created.  Thread-safe.  NULL: it never retries. */
	uint64_t (*retries)(void *priv);

	/* Optional: true when the store is known to refuse every write with
	 * these credentials (an Azure SAS without write permission), so the
	 * file system can refuse writes before staging anything.  NULL:
	 * false. */
	bool (*read_only)(void *priv);

	/* Free the instance. */
	void (*free)(void *priv);
};

struct ost_backend {
	const struct ost_ops *ops;
	void *priv;
};

/* Free a backend that was never handed to ost_new().  NULL is a no-op. */
void ost_backend_free(struct ost_backend *be);

/*
 * Backends.  Each *_new returns 0 and a heap backend in *out, or a negative
 * errno (and *out untouched).
 */

/* A directory as an object store: key "a/b/c" is the file DIR/a/b/c.  Writes
 * go to a temporary file under DIR/.cloudh5/tmp/ and are rename(2)d into
 * place, so they are atomic.  Keys whose components cannot be file names
 * ("", ".", "..") are escaped; no key ever resolves outside DIR.  The
 * directory must exist (-ENOENT otherwise).
 *
 * Where it differs from S3 (details in local.c):
 *   - a component is escaped by one leading '%' when it is "", ".", "..",
 *     starts with '%', or is "tmp" right below ".cloudh5"; escaped it may
 *     be at most 255 bytes, else -ENAMETOOLONG;
 *   - "dir/" is the directory DIR/dir: PUT with 0 bytes is mkdir -p (other
 *     sizes -EINVAL), HEAD/GET find it whenever the directory exists, DELETE
 *     removes it only when empty (and succeeds either way), LIST shows every
 *     directory as the object "dir/" (size 0) and, with delimiter "/", as
 *     the common prefix "dir/";
 *   - a key cannot be an object and a prefix at once: PUT "a/b" when "a" is
 *     an object -> -ENOTDIR; PUT "a" when "a/" exists -> -EISDIR (-EEXIST
 *     under OST_PUT_IF_NONE_MATCH);
 *   - DELETE leaves empty parent directories (they stay visible as "dir/")
 *     except below ".cloudh5/", where they are removed;
 *   - ETag is "<inode>-<mtime ns>-<size>" in hex; if_match is atomic
 *     among all processes using the store (an flock on .cloudh5/tmp/lock),
 *     IF_NONE_MATCH is race-free always;
 *   - no fsync: atomic against readers and crashes, not power loss. */
int ost_local_new(const char *dir, struct ost_backend **out);

/* An in-memory store for unit tests; ETags are a change counter. */
int ost_mem_new(struct ost_backend **out);

/* Fault injection settings; zero means off. */
struct ost_fault_cfg {
	unsigned fail_nth;  /* fail the Nth call (1-based) counted over the
			       ops in op_mask... */
	unsigned fail_count; /* ...and so many calls in all from the Nth on:
				calls N .. N+fail_count-1 fail (0 = 1) */
	int fail_errno;	    /* positive errno to fail with (default EIO) */
	unsigned op_mask;   /* bit (1 << enum ost_op); 0 = all ops */
	unsigned delay_ms;  /* sleep before every call in op_mask */
	size_t short_read;  /* every GET returns at most this many bytes
			       (the caller must loop), whatever op_mask */
	unsigned stop_nth;  /* at the Nth counted call, block forever (for
			       crash tests that kill -9 the daemon there) */
};

/* Parse "fail_nth=5,fail_count=2,fail_errno=5,ops=put+del,delay_ms=10,
 * short_read=100,stop_nth=3" into *cfg (fields separated by ',' or ':',
 * the latter for mount options, where ',' separates options) (ops: get put head list del copy
 * all, joined by '+').  Returns 0, or -EINVAL after logging the bad field;
 * *cfg is untouched then. */
int ost_fault_parse(const char *spec, struct ost_fault_cfg *cfg);

/* Wrap `inner` (ownership passes to the wrapper, also on failure) with
 * injected faults. */
int ost_fault_new(struct ost_backend *inner, const struct ost_fault_cfg *cfg,
		  struct ost_backend **out);

/*
 * The store handle: a backend plus its async request pool.
 */

/* Create a store over `be` (ownership passes in, also on failure) with
 * `nthreads` pool workers (0 = 8), started at the first request.  Threads
 * do not survive fork(2): a process that forks must do so before its
 * first request (mount.cloudh5 forks before it opens the store).
 * Returns 0 or -errno. */
int ost_new(struct ost_backend *be, unsigned nthreads, struct ost **out);

/* Open a store from a URL: "file:///abs/dir" or "mem://", or an S3 bucket
 * (see ost_open_source).  `fault_spec` is NULL or an ost_fault_parse()
 * string that wraps the backend.  Returns 0, -EINVAL for a URL it does not
 * understand (and logs why), or the backend's error. */
int ost_open_url(const char *url, const char *fault_spec, unsigned nthreads,
		 struct ost **out);

struct ost_s3_opts;
struct ost_az_opts;

/* Like ost_open_url(), with the S3 mount options `s3` (may be NULL) for a
 * source naming an S3 bucket: s3://BUCKET[/PREFIX], BUCKET[:/PREFIX]
 * (settings resolved by ost_s3_resolve() in s3.h), and the Azure mount
 * options `az` (may be NULL) for an Azure container: az://CONTAINER[/PREFIX]
 * or, with STORAGE_PLATFORM=Azure, CONTAINER[:/PREFIX] (ost_az_resolve()
 * in azure.h).  No request is made. */
int ost_open_source(const char *source, const struct ost_s3_opts *s3,
		    const struct ost_az_opts *az, const char *fault_spec,
		    unsigned nthreads, struct ost **out);

/* Wait for every submitted request to complete, stop the pool and free the
 * store.  NULL is a no-op.  Queued requests still run; a completion that
 * submits a follow-up meanwhile gets -ESHUTDOWN.  Must not be called from a
 * completion callback. */
void ost_free(struct ost *st);

enum ost_op {
	OST_GET = 0,
	OST_PUT,
	OST_HEAD,
	OST_LIST,
	OST_DELETE,
	OST_COPY,
	OST_NOPS
};

/* An asynchronous request.  The caller owns it and everything it points to
 * until `done` runs; fields marked (out) are set before `done` runs. */
struct ost_req {
	enum ost_op op;
	const char *key; /* GET/PUT/HEAD/DELETE; COPY source */
	/* GET */
	uint64_t off;
	size_t len;
	void *buf;
	size_t got; /* (out) bytes read */
	/* PUT */
	struct ost_body body;
	const struct ost_put_cond *cond; /* may be NULL */
	/* LIST */
	const char *prefix;
	const char *delimiter;
	const char *token;
	const char *start_after; /* first page: only what sorts after it */
	size_t max_keys;
	struct ost_list_result list; /* (out) caller releases */
	/* COPY */
	const char *dst_key;
	/* DELETE of many keys at once (when n_keys > 0; key unused): rc is
	 * the request's, key_rcs[i] (out) each key's */
	const char *const *keys;
	size_t n_keys;
	int *key_rcs;
	/* GET/PUT/HEAD */
	struct ost_info info; /* (out) */
	int rc;		      /* (out) 0 or -errno */
	/* Completion: called once on a pool thread.  It may free the request
	 * and may submit new requests, but must not block on the pool. */
	void (*done)(struct ost_req *req);
	void *arg; /* for the caller */
	struct ost_req *next; /* internal: pool queue link */
};

/* Queue `req` for a pool worker.  Never blocks on I/O.  Returns 0, or
 * -ESHUTDOWN after ost_free() began, or -EINVAL when req->done is NULL (then
 * `done` is not called).  Bad keys or arguments complete with req->rc =
 * -EINVAL.  OST_GET returns what the backend returned: it may be short of
 * `len` before the end of the object (see short_read), so async readers
 * compare got with info.size. */
int ost_submit(struct ost *st, struct ost_req *req);

/* Synchronous helpers: submit and wait.  Same meaning and errors as the ops
 * above.  Must not be called from a completion callback.
 *
 * ost_get() repeats the GET until `len` bytes or the end of the object, so a
 * short read never reaches the caller; if the object is replaced between
 * two of those GETs (ETag changes) it starts over, and after a few tries
 * fails with -EIO.  On error *got is 0 and buf is undefined. */
int ost_get(struct ost *st, const char *key, uint64_t off, void *buf,
	    size_t len, size_t *got, struct ost_info *info);
/* GET the whole object into a malloc'd buffer (*data, caller frees; never
 * NULL on success, also for 0 bytes) of *len bytes; `max` bounds the size
 * accepted (-EFBIG beyond).  On error *data and *len are untouched. */
int ost_get_all(struct ost *st, const char *key, size_t max, void **data,
		size_t *len, struct ost_info *info);
int ost_put(struct ost *st, const char *key, const struct ost_body *body,
	    const struct ost_put_cond *cond, struct ost_info *info);
int ost_put_buf(struct ost *st, const char *key, const void *buf, size_t len,
		struct ost_info *info);
int ost_head(struct ost *st, const char *key, struct ost_info *info);
/* ost_list() overwrites *res (zeroed on error).  The token of a page is its
 * last item (key or common prefix): the next page holds what sorts after
 * it.  prefix and delimiter may be NULL (= ""). */
int ost_list(struct ost *st, const char *prefix, const char *delimiter,
	     const char *token, size_t max_keys, struct ost_list_result *res);
/* ost_list() whose first page (token NULL) starts after the key
 * `start_after` (see ost_ops.list): a directory's listing skips its own
 * marker object (the key prefix itself), which it does not show, and a
 * directory of exactly 1,000 entries is one page, not two.  With a
 * delimiter, start_after must not fall inside a common prefix of the
 * listing (S3 would still list that prefix, the other backends not). */
int ost_list_after(struct ost *st, const char *prefix, const char *delimiter,
		   const char *token, const char *start_after,
		   size_t max_keys, struct ost_list_result *res);
int ost_delete(struct ost *st, const char *key);

/* A set of asynchronous requests with at most `max` in flight, waited for
 * together.  The caller's completion (req->done) must end with
 * ost_batch_finish() on the batch.  One thread submits and waits; the
 * completions may run on any pool thread. */
struct ost_batch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned inflight, max; /* guarded by lock */
	int rc;			/* guarded by lock: first error */
};

void ost_batch_init(struct ost_batch *b, unsigned max);

/* Submit `req` (done and arg set by the caller) once fewer than b->max are
 * in flight.  If the pool refuses it, req->rc is set and req->done runs
 * here. */
void ost_batch_submit(struct ost *st, struct ost_batch *b,
		      struct ost_req *req);

/* From a completion: record `rc` if it is the first error (0 = none) and
 * free the request's slot. */
void ost_batch_finish(struct ost_batch *b, int rc);

/* A completion (ost_req.done) for a request whose `arg` is its batch and
 * whose caller reads the answer from req->rc itself: frees the slot and
 * records no error in the batch. */
void ost_batch_done(struct ost_req *req);

/* True once a request of the batch has failed: a caller for which one
 * failure fails the whole batch stops submitting (each further request
 * would only wait out its own retries against a store that is down). */
bool ost_batch_failed(struct ost_batch *b);

/* Wait for every request, release the batch, return the first error. */
int ost_batch_wait(struct ost_batch *b);

#define OST_DELETE_BATCH 1000 /* most keys in one batch DELETE (as S3) */

/* Delete `n` keys: in batches of OST_DELETE_BATCH where the backend can
 * (S3 DeleteObjects), else one DELETE per key, up to 32 in flight.  Missing
 * keys count as deleted.  Returns the number of keys that could not be
 * deleted (each logged), or -ENOMEM. */
long ost_delete_keys(struct ost *st, char *const *keys, size_t n);
int ost_copy(struct ost *st, const char *src, const char *dst);

/* Counters, kept by the pool for every completed request.  Read with
 * ost_stats_get() (a consistent-enough snapshot; counters are atomics). */
struct ost_stats {
	uint64_t requests[OST_NOPS]; /* completed, by kind */
	uint64_t errors;	     /* completed with rc < 0 (not -ENOENT) */
	uint64_t bytes_in;	     /* GET bytes received */
	uint64_t bytes_out;	     /* PUT bytes sent */
	uint64_t in_flight;	     /* submitted, not yet completed */
	uint64_t retries;	     /* requests the backend sent again */
};

void ost_stats_get(struct ost *st, struct ost_stats *out);

/* True when the backend knows its credentials cannot write (see
 * ost_ops.read_only).  Thread-safe. */
bool ost_read_only(const struct ost *st);

/* Name of the backend ("local", "mem", "fault(local)"...). */
const char *ost_name(const struct ost *st);

#endif
