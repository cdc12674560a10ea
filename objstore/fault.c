/*
 * fault.c - a backend wrapper that injects faults, for tests.
 *
 * Every call whose op is in op_mask (all ops when 0) is counted with one
 * atomic counter, 1-based.  For a counted call n:
 *   - delay_ms: sleep that long first;
 *   - stop_nth: if n == stop_nth, block forever (a crash test kills the
 *     process there; ost_free() would wait for it too);
 *   - fail_nth: if fail_nth <= n < fail_nth + max(fail_count, 1), fail with
 *     -fail_errno (EIO when 0) without calling the inner backend.
 * short_read applies to every GET, counted or not: the inner GET is asked
 * for at most short_read bytes, so callers see a short answer before the end
 * of the object (ost_get() loops over it; a raw OST_GET request does not).
 *
 * Thread-safety: the configuration is read-only after creation; the counter
 * is atomic.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ost.h"
#include "ost_int.h"

#include "log.h"

struct fault {
	struct ost_backend *inner; /* owned */
	struct ost_fault_cfg cfg;  /* read-only */
	atomic_uint calls;	   /* counted calls so far */
};

const struct ost_backend *ost_fault_inner(const void *priv)
{
	const struct fault *f = priv;

	return f->inner;
}

/* Before an inner call: 0 to go on, or the injected error. */
static int fault_before(struct fault *f, enum ost_op op)
{
	const struct ost_fault_cfg *c = &f->cfg;
	unsigned n, count;

	if (c->op_mask && !(c->op_mask & (1u << op)))
		return 0;
	if (c->delay_ms) {
		struct timespec ts = {.tv_sec = c->delay_ms / 1000,
				      .tv_nsec =
					  (long)(c->delay_ms % 1000) * 1000000};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	n = atomic_fetch_add(&f->calls, 1) + 1;
	if (c->stop_nth && n == c->stop_nth) {
		ch5_warn("objstore: fault: call %u stops here (stop_nth)", n);
		for (;;)
			pause();
	}
	count = c->fail_count ? c->fail_count : 1;
	if (c->fail_nth && n >= c->fail_nth && n - c->fail_nth < count) {
		ch5_debug("objstore: fault: call %u fails with errno %d", n,
			  c->fail_errno ? c->fail_errno : EIO);
		return -(c->fail_errno ? c->fail_errno : EIO);
	}
	return 0;
}

static int fault_get(void *priv, const char *key, uint64_t off, void *buf,
		     size_t len, size_t *got, struct ost_info *info)
{
	struct fault *f = priv;
	int rc = fault_before(f, OST_GET);

	if (rc) {
		*got = 0;
		return rc;
	}
	if (f->cfg.short_read && len > f->cfg.short_read)
		len = f->cfg.short_read;
	return f->inner->ops->get(f->inner->priv, key, off, buf, len, got,
				  info);
}

static int fault_put(void *priv, const char *key, const struct ost_body *body,
		     const struct ost_put_cond *cond, struct ost_info *info)
{
	struct fault *f = priv;
	int rc = fault_before(f, OST_PUT);

	return rc ? rc
		  : f->inner->ops->put(f->inner->priv, key, body, cond, info);
}

static int fault_head(void *priv, const char *key, struct ost_info *info)
{
	struct fault *f = priv;
	int rc = fault_before(f, OST_HEAD);

	return rc ? rc : f->inner->ops->head(f->inner->priv, key, info);
}

static int fault_list(void *priv, const char *prefix, const char *delimiter,
		      const char *token, const char *start_after,
		      size_t max_keys, struct ost_list_result *res)
{
	struct fault *f = priv;
	int rc = fault_before(f, OST_LIST);

	return rc ? rc
		  : f->inner->ops->list(f->inner->priv, prefix, delimiter,
					token, start_after, max_keys, res);
}

static int fault_del(void *priv, const char *key)
{
	struct fault *f = priv;
	int rc = fault_before(f, OST_DELETE);

	return rc ? rc : f->inner->ops->del(f->inner->priv, key);
}

static int fault_copy(void *priv, const char *src, const char *dst)
{
	struct fault *f = priv;
	int rc = fault_before(f, OST_COPY);

	return rc ? rc : f->inner->ops->copy(f->inner->priv, src, dst);
}

static bool fault_read_only(void *priv)
{
	struct fault *f = priv;

	return f->inner->ops->read_only &&
	       f->inner->ops->read_only(f->inner->priv);
}

static uint64_t fault_retries(void *priv)
{
	struct fault *f = priv;

	return f->inner->ops->retries ? f->inner->ops->retries(f->inner->priv)
				      : 0;
}

static void fault_free(void *priv)
{
	struct fault *f = priv;

	if (!f)
		return;
	ost_backend_free(f->inner);
	free(f);
}

const struct ost_ops ost_fault_ops = {
    .name = "fault",
    .get = fault_get,
    .put = fault_put,
    .head = fault_head,
    .list = fault_list,
    .del = fault_del,
    .copy = fault_copy,
    .retries = fault_retries,
    .read_only = fault_read_only,
    .free = fault_free,
};

int ost_fault_new(struct ost_backend *inner, const struct ost_fault_cfg *cfg,
		  struct ost_backend **out)
{
	struct fault *f;
	struct ost_backend *be;

	if (!inner || !cfg || !out) {
		ost_backend_free(inner);
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		ost_backend_free(inner);
		return -ENOMEM;
	}
	f->inner = inner;
	f->cfg = *cfg;
	atomic_init(&f->calls, 0);
	be = ost_backend_alloc(&ost_fault_ops, f);
	if (!be) {
		fault_free(f);
		return -ENOMEM;
	}
	*out = be;
	return 0;
}

/*
 * Parsing "fail_nth=5,fail_count=2,fail_errno=5,ops=put+del,delay_ms=10,
 * short_read=100,stop_nth=3".
 */

/* Parse the decimal s[0..len) into *v, at most max. */
static int fault_num(const char *s, size_t len, unsigned long max,
		     unsigned long *v)
{
	char buf[32];
	char *end;

	if (len == 0 || len >= sizeof(buf) || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*v = strtoul(buf, &end, 10);
	if (errno || *end || *v > max)
		return -EINVAL;
	return 0;
}

static int fault_ops_mask(const char *s, size_t len, unsigned *mask)
{
	static const struct {
		const char *name;
		unsigned bits;
	} names[] = {
	    {"get", 1u << OST_GET},    {"put", 1u << OST_PUT},
	    {"head", 1u << OST_HEAD},  {"list", 1u << OST_LIST},
	    {"del", 1u << OST_DELETE}, {"delete", 1u << OST_DELETE},
	    {"copy", 1u << OST_COPY},  {"all", (1u << OST_NOPS) - 1},
	};
	const char *end = s + len;

	*mask = 0;
	while (s < end) {
		const char *plus = memchr(s, '+', (size_t)(end - s));
		size_t n = (size_t)((plus ? plus : end) - s);
		size_t i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].name) == n &&
			    memcmp(names[i].name, s, n) == 0)
				break;
		if (i == sizeof(names) / sizeof(names[0])) {
			ch5_err("objstore: fault spec: unknown op '%.*s' "
				"(get, put, head, list, del, copy, all)",
				(int)n, s);
			return -EINVAL;
		}
		*mask |= names[i].bits;
		s += n + (plus ? 1 : 0);
	}
	if (!*mask) {
		ch5_err("objstore: fault spec: empty ops list");
		return -EINVAL;
	}
	return 0;
}

int ost_fault_parse(const char *spec, struct ost_fault_cfg *cfg)
{
	struct ost_fault_cfg c;
	const char *s = spec, *end;

	if (!spec || !cfg)
		return -EINVAL;
	memset(&c, 0, sizeof(c));
	end = s + strlen(s);
	while (s < end) {
		/* Fields are separated by ',' or ':' (on a mount line, ','
		 * already separates mount options). */
		const char *comma = s + strcspn(s, ",:");
		const char *item_end = comma < end ? comma : end;
		const char *eq = memchr(s, '=', (size_t)(item_end - s));
		const char *val;
		size_t nlen, vlen;
		unsigned long v = 0;
		int rc;

		if (item_end == s) { /* tolerate ",," and a trailing comma */
			s++;
			continue;
		}
		if (!eq) {
			ch5_err("objstore: fault spec: '%.*s' is not "
				"field=value",
				(int)(item_end - s), s);
			return -EINVAL;
		}
		nlen = (size_t)(eq - s);
		val = eq + 1;
		vlen = (size_t)(item_end - val);
#define FIELD(n) (nlen == sizeof(n) - 1 && memcmp(s, n, nlen) == 0)
		if (FIELD("ops")) {
			rc = fault_ops_mask(val, vlen, &c.op_mask);
			if (rc)
				return rc;
		} else if (FIELD("fail_nth") || FIELD("fail_count") ||
			   FIELD("fail_errno") || FIELD("delay_ms") ||
			   FIELD("short_read") || FIELD("stop_nth")) {
			unsigned long max = UINT_MAX;

			if (FIELD("fail_errno"))
				max = 4095; /* MAX_ERRNO */
			else if (FIELD("short_read"))
				max = SIZE_MAX;
			if (fault_num(val, vlen, max, &v)) {
				ch5_err("objstore: fault spec: bad value "
					"'%.*s' for %.*s",
					(int)vlen, val, (int)nlen, s);
				return -EINVAL;
			}
			if (FIELD("fail_nth"))
				c.fail_nth = (unsigned)v;
			else if (FIELD("fail_count"))
				c.fail_count = (unsigned)v;
			else if (FIELD("fail_errno"))
				c.fail_errno = (int)v;
			else if (FIELD("delay_ms"))
				c.delay_ms = (unsigned)v;
			else if (FIELD("short_read"))
				c.short_read = (size_t)v;
			else
				c.stop_nth = (unsigned)v;
		} else {
			ch5_err("objstore: fault spec: unknown field '%.*s' "
				"(fail_nth, fail_count, fail_errno, ops, "
				"delay_ms, short_read, stop_nth)",
				(int)nlen, s);
			return -EINVAL;
		}
#undef FIELD
		s = item_end + (comma ? 1 : 0);
	}
	*cfg = c;
	return 0;
}
