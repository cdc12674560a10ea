/*
 * ost_int.h - objstore internals shared by the pool and the backends.
 *
 * Not for use outside objstore/.
 */
#ifndef CH5_OST_INT_H
#define CH5_OST_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ost.h"

/* The fault wrapper's ops table and its inner backend (borrowed), so that
 * ost_new() can name the store "fault(local)". */
extern const struct ost_ops ost_fault_ops;
const struct ost_backend *ost_fault_inner(const void *priv);

/* Allocate a backend bundle for ops/priv.  Returns NULL on ENOMEM (priv is
 * then still the caller's). */
struct ost_backend *ost_backend_alloc(const struct ost_ops *ops, void *priv);

/* Wall-clock time in ns since the epoch. */
int64_t ost_now_ns(void);

/* Read exactly body->len bytes of a PUT body into buf (which holds at least
 * that many): memcpy from body->buf, else a pread(2) loop on body->fd.
 * Returns 0, the negated errno of pread, or -EIO if the fd ends early. */
int ost_body_read(const struct ost_body *body, void *buf);

/*
 * The LIST engine shared by the backends: a backend walks its keys in
 * ascending bytewise order and offers them here; the lister applies the
 * prefix, the delimiter roll-up, the continuation token and max_keys, and
 * fills the result.  The token is the last item (key or common prefix) of
 * the previous page: a page holds the items strictly greater than it.
 *
 * Not thread-safe; one lister per LIST call.
 */
struct ost_lister {
	const char *prefix;
	size_t plen;
	const char *delim; /* NULL when there is no delimiter */
	size_t dlen;
	const char *token; /* NULL on the first page */
	size_t max;	   /* items per page, > 0 */
	struct ost_list_result *res;
	size_t cap_obj, cap_pfx; /* allocated slots in res */
	size_t n;		 /* items in res */
	const char *last;	 /* last item added (owned by res) */
	bool stopped;		 /* the page is full: res->next_token set */
};

enum ost_lister_verdict {
	OST_LIST_SKIP = 0,    /* nothing to do for this key / subtree */
	OST_LIST_OBJECT = 1,  /* add the key with ost_lister_add() */
	OST_LIST_DESCEND = 2, /* walk into the subtree */
	OST_LIST_STOP = 3,    /* the page is full; stop walking */
};

/* Start a listing into *res (zeroed by the caller).  max_keys 0 = 1000;
 * an empty delimiter is no delimiter. */
void ost_lister_init(struct ost_lister *l, const char *prefix,
		     const char *delim, const char *token, size_t max_keys,
		     struct ost_list_result *res);

/* Offer `key` (the next in ascending order).  Returns OST_LIST_SKIP,
 * OST_LIST_OBJECT (the caller fetches its info and calls ost_lister_add()),
 * OST_LIST_STOP, or -ENOMEM.  A key that rolls up into a common prefix is
 * handled here (SKIP is returned). */
int ost_lister_check(struct ost_lister *l, const char *key);

/* Add the object `key` (copied) after OST_LIST_OBJECT.  0 or -ENOMEM. */
int ost_lister_add(struct ost_lister *l, const char *key,
		   const struct ost_info *info);

/* Offer a subtree: every key in it starts with q[0..qlen) and it holds at
 * least one key.  Returns OST_LIST_SKIP (it cannot contribute, or it rolled
 * up into a common prefix that was handled here), OST_LIST_DESCEND,
 * OST_LIST_STOP or -ENOMEM. */
int ost_lister_subtree(struct ost_lister *l, const char *q, size_t qlen);

/* Add a copy of `key` with `info` to res->objects (*cap slots allocated,
 * grown by doubling) / a copy of `prefix` to res->prefixes.  0 or
 * -ENOMEM (res unchanged). */
int ost_list_add_object(struct ost_list_result *res, size_t *cap,
			const char *key, const struct ost_info *info);
int ost_list_add_prefix(struct ost_list_result *res, size_t *cap,
			const char *prefix);

/* True if s[0..slen) starts with p[0..plen). */
static inline bool ost_has_prefix(const char *s, size_t slen, const char *p,
				  size_t plen)
{
	size_t i;

	if (slen < plen)
		return false;
	for (i = 0; i < plen; i++)
		if (s[i] != p[i])
			return false;
	return true;
}

#endif
