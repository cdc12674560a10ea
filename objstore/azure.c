/*
 * azure.c - the Azure Blob Storage backend (see azure.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "azsign.h"
#include "azure.h"
#include "http.h"
#include "ost_int.h"
#include "rest.h"
#include "sigv4.h"
#include "log.h"

#define AZ_VERSION "2021-08-06"
#define URL_MAX (3 * OST_KEY_MAX + 8192)
#define MAX_HEADERS 12
#define MAX_BLOCKS 50000 /* most blocks in one blob */

struct az {
	char *scheme;	 /* "http" or "https" */
	char *hostport;	 /* "127.0.0.1:10000" */
	char *base_path; /* path of the endpoint: "" or "/devstoreaccount1" */
	char *account, *container, *prefix;
	unsigned char key[AZSIGN_KEY_MAX];
	size_t keylen;	/* 0: no key, the SAS authorizes */
	char *sas;	/* without '?', or NULL */
	bool read_only; /* the SAS grants neither write nor create */
	unsigned retries;
	atomic_uint_least64_t resent; /* requests sent again (stats) */
	uint64_t block_threshold, block_size;
	struct ost_http *http;
};

/* One request to send (and re-send on a retry). */
struct az_req {
	const char *method;
	const char *key; /* store key (prefix added), NULL = the container */
	struct azsign_kv query[8]; /* decoded */
	size_t n_query;
	struct azsign_kv hdr[6]; /* extra headers, signed */
	size_t n_hdr;
	const void *body; /* body: memory... */
	int body_fd;	  /* ...or fd */
	uint64_t body_off, body_len;
	struct ost_http_xfer x; /* response sinks and answer */
};

struct az_error {
	char code[64];
	char message[256];
};

static void on_error_xml(void *arg, const char *parent, const char *name,
			 const char *text)
{
	struct az_error *e = arg;

	if (strcmp(parent, "Error"))
		return;
	if (!strcmp(name, "Code"))
		snprintf(e->code, sizeof(e->code), "%s", text);
	else if (!strcmp(name, "Message"))
		/* The first line: the rest is RequestId and Time. */
		snprintf(e->message, sizeof(e->message), "%.*s",
			 (int)strcspn(text, "\r\n"), text);
}

/* --- requests ------------------------------------------------------ */

/* RFC 1123 date in GMT, independent of the locale. */
static void http_now(char *out, size_t size)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed",
					 "Thu", "Fri", "Sat" };
	static const char mons[12][4] = { "Jan", "Feb", "Mar", "Apr",
					  "May", "Jun", "Jul", "Aug",
					  "Sep", "Oct", "Nov", "Dec" };
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d GMT",
		 days[tm.tm_wday], tm.tm_mday, mons[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The encoded path of a blob (or of the container when key is NULL), as
 * sent and as signed. */
static int blob_path(const struct az *a, const char *key, char *out,
		     size_t size)
{
	char raw[OST_KEY_MAX * 2 + 128];
	int n, e;
	int rl = snprintf(raw, sizeof(raw), "%s%s", key ? a->prefix : "",
			  key ? key : "");

	if (rl < 0 || (size_t)rl >= sizeof(raw))
		return -ENAMETOOLONG;
	n = snprintf(out, size, "%s/%s%s", a->base_path, a->container,
		     key ? "/" : "");
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	e = sigv4_uri_encode(raw, rl, true, out + n, size - n);
	return e < 0 ? e : 0;
}

/* The URL of r: scheme, host, path, query, then the SAS when it is the
 * credential. */
static int build_url(const struct az *a, const struct az_req *r,
		     const char *path, char *url, size_t usz)
{
	size_t ul, i;
	int n;

	n = snprintf(url, usz, "%s://%s%s", a->scheme, a->hostport, path);
	if (n < 0 || (size_t)n >= usz)
		return -ENAMETOOLONG;
	ul = n;
	for (i = 0; i < r->n_query; i++) {
		int rc = rest_url_query(url, &ul, usz, i == 0,
					r->query[i].name, r->query[i].value);

		if (rc < 0)
			return rc;
	}
	if (!a->keylen && a->sas) {
		n = snprintf(url + ul, usz - ul, "%c%s", r->n_query ? '&' : '?',
			     a->sas);
		if (n < 0 || (size_t)n >= usz - ul)
			return -ENAMETOOLONG;
		ul += n;
	}
	url[ul] = '\0';
	return 0;
}

static bool retryable(int rc, long status)
{
	if (rest_transport_retryable(rc))
		return true;
	return rc == 0 && (status >= 500 || status == 429);
}

/* Send r (authorized afresh on every attempt) until it gets an answer
 * that is not worth retrying.  Returns 0 with r->x.status set, or the
 * transport error of the last attempt.  *err receives the Azure error
 * code and message of an error answer. */
static int az_send(struct az *a, struct az_req *r, struct az_error *err)
{
	char path[3 * OST_KEY_MAX + 256], url[URL_MAX], date[40], clen[24];
	char authz[256];
	char lines[MAX_HEADERS][512];
	const char *hl[MAX_HEADERS + 1];
	struct azsign_kv h[MAX_HEADERS];
	unsigned attempt;
	size_t nh, i, nl;
	int rc;

	memset(err, 0, sizeof(*err));
	rc = blob_path(a, r->key, path, sizeof(path));
	if (rc == 0)
		rc = build_url(a, r, path, url, sizeof(url));
	if (rc < 0)
		return rc;
	snprintf(clen, sizeof(clen), "%" PRIu64, r->body_len);
	r->x.capture[0] = "x-ms-error-code";
	for (attempt = 0;; attempt++) {
		struct azsign_req sr = { 0 };

		http_now(date, sizeof(date));
		nh = 0;
		h[nh++] = (struct azsign_kv){ "x-ms-date", date };
		h[nh++] = (struct azsign_kv){ "x-ms-version", AZ_VERSION };
		for (i = 0; i < r->n_hdr && nh < MAX_HEADERS - 2; i++)
			h[nh++] = r->hdr[i];
		nl = 0;
		for (i = 0; i < nh; i++) {
			snprintf(lines[nl], sizeof(lines[nl]), "%s: %s",
				 h[i].name, h[i].value);
			hl[nl] = lines[nl];
			nl++;
		}
		if (a->keylen) {
			/* libcurl sends the Content-Length of a body. */
			if (r->body_len)
				h[nh++] = (struct azsign_kv){ "Content-Length",
							      clen };
			sr.method = r->method;
			sr.path = path;
			sr.query = r->query;
			sr.n_query = r->n_query;
			sr.headers = h;
			sr.n_headers = nh;
			rc = azsign_authorization(a->account, a->key, a->keylen,
						  &sr, authz, sizeof(authz));
			if (rc < 0)
				return rc;
			snprintf(lines[nl], sizeof(lines[nl]),
				 "Authorization: %s", authz);
			hl[nl] = lines[nl];
			nl++;
		}
		hl[nl] = NULL;
		free(r->x.text);
		r->x.text = NULL;
		r->x.text_len = 0;
		r->x.method = r->method;
		r->x.url = url;
		r->x.headers = hl;
		r->x.body = r->body;
		r->x.body_fd = r->body_fd;
		r->x.body_off = r->body_off;
		r->x.body_len = r->body_len;
		rc = ost_http_run(a->http, &r->x);
		memset(err, 0, sizeof(*err));
		if (rc == 0 && r->x.status >= 300) {
			if (r->x.text_len)
				rest_xml_parse(r->x.text, r->x.text_len,
					       on_error_xml, err);
			if (!err->code[0])
				snprintf(err->code, sizeof(err->code), "%.63s",
					 r->x.captured[0]);
		}
		if (!retryable(rc, r->x.status) || attempt >= a->retries)
			break;
		ch5_debug("objstore: azure %s %s: %s, retrying", r->method,
			  r->key ? r->key : "(container)",
			  rc < 0 ? strerror(-rc)
				 : err->code[0] ? err->code : "server error");
		atomic_fetch_add(&a->resent, 1);
		rest_backoff(attempt + 1);
	}
	OPENSSL_cleanse(authz, sizeof(authz));
	OPENSSL_cleanse(url, sizeof(url)); /* may hold the SAS */
	return rc;
}

/* The one place an Azure answer becomes an errno.  `cond` is the PUT's
 * condition (NULL otherwise): a failed precondition means -EEXIST for
 * If-None-Match, -ESTALE for If-Match. */
static int az_errno(struct az *a, const struct az_req *r, int rc,
		    const struct az_error *e, const struct ost_put_cond *cond)
{
	long st = r->x.status;

	if (rc < 0) {
		ch5_err("objstore: azure %s %s: no answer from %s://%s: %s%s",
			r->method, r->key ? r->key : "(container)", a->scheme,
			a->hostport,
			r->x.error[0] ? r->x.error : strerror(-rc),
			ost_http_hint(&r->x));
		return rest_transport_errno(rc);
	}
	if (st >= 200 && st < 300)
		return 0;
	if (st == 404 && (!e->code[0] || !strcmp(e->code, "BlobNotFound")))
		return -ENOENT;
	if ((st == 412 || st == 409) && cond) {
		if (cond->flags & OST_PUT_IF_NONE_MATCH)
			return -EEXIST;
		if (cond->if_match[0])
			return -ESTALE;
	}
	ch5_err("objstore: azure %s %s: HTTP %ld %s%s%s", r->method,
		r->key ? r->key : "(container)", st, e->code,
		e->message[0] ? ": " : "", e->message);
	return rest_status_errno(st);
}

/* --- operations ---------------------------------------------------- */

/* Get Blob Properties; `capture` (may be NULL) names one more header to
 * keep in r->x.captured[1]. */
static int az_props(struct az *a, struct az_req *r, const char *key,
		    const char *capture, struct ost_info *info)
{
	struct az_error e;
	int rc;

	memset(r, 0, sizeof(*r));
	r->method = "HEAD";
	r->key = key;
	r->body_fd = -1;
	r->x.capture[1] = capture;
	rc = az_errno(a, r, az_send(a, r, &e), &e, NULL);
	if (rc == 0 && info)
		rest_fill_info(&r->x, info, r->x.content_length > 0
					       ? (uint64_t)r->x.content_length
					       : 0);
	free(r->x.text);
	r->x.text = NULL;
	return rc;
}

static int az_head(void *priv, const char *key, struct ost_info *info)
{
	struct az_req r;

	return az_props(priv, &r, key, NULL, info);
}

static int az_get(void *priv, const char *key, uint64_t off, void *buf,
		  size_t len, size_t *got, struct ost_info *info)
{
	struct az *a = priv;
	struct az_req r = { .method = "GET", .key = key, .body_fd = -1 };
	struct az_error e;
	char range[64];
	int rc;

	*got = 0;
	if (!len)
		return info ? az_head(priv, key, info) : 0;
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off,
		 off + len - 1);
	r.hdr[r.n_hdr++] = (struct azsign_kv){ "x-ms-range", range };
	r.x.buf = buf;
	r.x.buf_cap = len;
	r.x.skip_if_full = off;
	r.x.text_max = 64 << 10; /* error pages only */
	rc = az_send(a, &r, &e);
	if (rc == 0 && r.x.status == 416) {
		/* At or past the end (or an empty blob): nothing to read. */
		free(r.x.text);
		return info ? az_head(priv, key, info) : 0;
	}
	rc = az_errno(a, &r, rc, &e, NULL);
	if (rc == 0) {
		*got = r.x.got;
		if (info)
			rest_fill_info(&r.x, info, rest_object_size(&r.x));
	}
	free(r.x.text);
	return rc;
}

/* Base64 MD5 of a body (out: at least 25 bytes). */
static int body_md5_b64(const void *buf, int fd, uint64_t off, uint64_t len,
			char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdl;
	int rc = rest_body_digest(buf, fd, off, len, EVP_md5(), md, &mdl);

	if (rc == 0)
		EVP_EncodeBlock((unsigned char *)out, md, (int)mdl);
	return rc;
}

/* A conditional PUT was refused (412/409).  If it was sent more than once
 * (our retries after no answer or a 5xx, or libcurl's own resend on a
 * kept-alive connection that turned out dead), an earlier copy may have
 * landed and the condition refused the later one because of it.  True
 * (and *info) if the blob is this body: its Content-MD5, which the PUT
 * set, is the body's. */
static bool put_landed(struct az *a, const char *key, const char *md5,
		       struct ost_info *info)
{
	struct az_req r;
	struct ost_info cur;

	if (az_props(a, &r, key, "content-md5", &cur) < 0 ||
	    strcmp(r.x.captured[1], md5))
		return false;
	ch5_info("objstore: azure PUT %s: refused by its condition, but the "
		 "blob is this body: an earlier send of it had landed",
		 key);
	if (info)
		*info = cur;
	return true;
}

static void add_cond(struct az_req *r, const struct ost_put_cond *cond)
{
	if (cond && (cond->flags & OST_PUT_IF_NONE_MATCH))
		r->hdr[r->n_hdr++] = (struct azsign_kv){ "If-None-Match",
							 "*" };
	else if (cond && cond->if_match[0])
		r->hdr[r->n_hdr++] = (struct azsign_kv){ "If-Match",
							 cond->if_match };
}

static void put_info(const struct az_req *r, uint64_t size,
		     struct ost_info *info)
{
	if (!info)
		return;
	memset(info, 0, sizeof(*info));
	info->size = size;
	info->mtime_ns = rest_http_date_ns(r->x.last_modified);
	if (!info->mtime_ns)
		info->mtime_ns = ost_now_ns();
	snprintf(info->etag, sizeof(info->etag), "%s", r->x.etag);
}

/* Put Block for each block_size part of the body, then Put Block List
 * with the condition. */
static int put_blocks(struct az *a, const char *key,
		      const struct ost_body *body,
		      const struct ost_put_cond *cond, struct ost_info *info)
{
	uint64_t nblocks = (body->len + a->block_size - 1) / a->block_size, i;
	struct az_req r;
	struct az_error e;
	char *xml = NULL;
	size_t xl = 0, cap;
	int rc = 0;

	if (nblocks > MAX_BLOCKS) {
		ch5_err("objstore: azure PUT %s: %" PRIu64 " bytes need more "
			"than %d blocks of %" PRIu64 " bytes",
			key, body->len, MAX_BLOCKS, a->block_size);
		return -EFBIG;
	}
	cap = 128 + nblocks * 40;
	xml = malloc(cap);
	if (!xml)
		return -ENOMEM;
	xl = snprintf(xml, cap, "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
				"<BlockList>");
	for (i = 0; i < nblocks && rc == 0; i++) {
		char raw[16], id[32];
		uint64_t off = i * a->block_size;

		/* Every ID of a blob has the same length. */
		snprintf(raw, sizeof(raw), "blk%08" PRIu64, i);
		EVP_EncodeBlock((unsigned char *)id, (unsigned char *)raw, 11);
		memset(&r, 0, sizeof(r));
		r.method = "PUT";
		r.key = key;
		r.query[r.n_query++] = (struct azsign_kv){ "comp", "block" };
		r.query[r.n_query++] = (struct azsign_kv){ "blockid", id };
		r.body = body->buf ? (const char *)body->buf + off : NULL;
		r.body_fd = body->fd;
		r.body_off = body->fd_off + off;
		r.body_len = body->len - off < a->block_size ? body->len - off
							     : a->block_size;
		r.x.text_max = 64 << 10;
		rc = az_errno(a, &r, az_send(a, &r, &e), &e, NULL);
		free(r.x.text);
		xl += snprintf(xml + xl, cap - xl, "<Latest>%s</Latest>", id);
	}
	if (rc == 0) {
		xl += snprintf(xml + xl, cap - xl, "</BlockList>");
		memset(&r, 0, sizeof(r));
		r.method = "PUT";
		r.key = key;
		r.body_fd = -1;
		r.query[r.n_query++] = (struct azsign_kv){ "comp",
							   "blocklist" };
		r.hdr[r.n_hdr++] = (struct azsign_kv){ "Content-Type",
						       "application/xml" };
		add_cond(&r, cond);
		r.body = xml;
		r.body_len = xl;
		r.x.text_max = 64 << 10;
		rc = az_errno(a, &r, az_send(a, &r, &e), &e, cond);
		if (rc == 0)
			put_info(&r, body->len, info);
		free(r.x.text);
	}
	free(xml);
	return rc;
}

static int az_put(void *priv, const char *key, const struct ost_body *body,
		  const struct ost_put_cond *cond, struct ost_info *info)
{
	struct az *a = priv;
	struct az_req r = { .method = "PUT", .key = key };
	struct az_error e;
	bool conditional = cond && ((cond->flags & OST_PUT_IF_NONE_MATCH) ||
				    cond->if_match[0]);
	char md5[32] = "";
	int rc;

	if (body->len > a->block_threshold)
		return put_blocks(a, key, body, cond, info);
	r.body = body->buf;
	r.body_fd = body->fd;
	r.body_off = body->fd_off;
	r.body_len = body->len;
	r.hdr[r.n_hdr++] = (struct azsign_kv){ "x-ms-blob-type", "BlockBlob" };
	if (conditional) {
		/* Checked by the service and kept as the blob's Content-MD5:
		 * put_landed() compares it. */
		rc = body_md5_b64(body->buf, body->fd, body->fd_off, body->len,
				  md5);
		if (rc < 0)
			return rc;
		r.hdr[r.n_hdr++] = (struct azsign_kv){ "Content-MD5", md5 };
	}
	add_cond(&r, cond);
	r.x.text_max = 64 << 10;
	rc = az_send(a, &r, &e);
	if (rc == 0 && conditional &&
	    (r.x.status == 412 || r.x.status == 409) &&
	    put_landed(a, key, md5, info)) {
		free(r.x.text);
		return 0;
	}
	rc = az_errno(a, &r, rc, &e, cond);
	if (rc == 0)
		put_info(&r, body->len, info);
	free(r.x.text);
	return rc;
}

struct list_state {
	struct az *a;
	struct ost_list_result *res;
	size_t cap_obj, cap_pfx;
	char next[4096];
	struct ost_list_entry cur; /* the <Blob> being read */
	char cur_key[OST_KEY_MAX + 1];
	int rc;
};

/* Strip the store's prefix from a listed name; NULL if it lacks it. */
static const char *list_key(const struct list_state *l, const char *name)
{
	size_t pl = strlen(l->a->prefix);

	return strncmp(name, l->a->prefix, pl) ? NULL : name + pl;
}

static void on_list_xml(void *arg, const char *parent, const char *name,
			const char *text)
{
	struct list_state *l = arg;
	struct ost_list_result *res = l->res;
	const char *k;

	if (l->rc)
		return;
	if (!strcmp(name, "NextMarker") && !strcmp(parent,
						    "EnumerationResults")) {
		snprintf(l->next, sizeof(l->next), "%s", text);
	} else if (!strcmp(parent, "Blob") && !strcmp(name, "Name")) {
		k = list_key(l, text);
		snprintf(l->cur_key, sizeof(l->cur_key), "%s", k ? k : "");
	} else if (!strcmp(parent, "Properties")) {
		if (!strcmp(name, "Content-Length"))
			l->cur.info.size = strtoull(text, NULL, 10);
		else if (!strcmp(name, "Last-Modified"))
			l->cur.info.mtime_ns = rest_http_date_ns(text);
		else if (!strcmp(name, "Etag"))
			snprintf(l->cur.info.etag, sizeof(l->cur.info.etag),
				 "%s", text);
	} else if (!strcmp(name, "Blob")) {
		rest_strip_quotes(l->cur.info.etag);
		if (l->cur_key[0])
			l->rc = ost_list_add_object(res, &l->cap_obj,
						     l->cur_key, &l->cur.info);
		memset(&l->cur, 0, sizeof(l->cur));
		l->cur_key[0] = '\0';
	} else if (!strcmp(parent, "BlobPrefix") && !strcmp(name, "Name")) {
		k = list_key(l, text);
		if (k && *k)
			l->rc = ost_list_add_prefix(res, &l->cap_pfx, k);
	}
}

/* One List Blobs request: `marker` NULL or the service's NextMarker;
 * `ask` items at most.  *res (zeroed) gets the page, res->next_token the
 * service's NextMarker. */
static int list_page(struct az *a, const char *full, const char *delimiter,
		     const char *marker, size_t ask,
		     struct ost_list_result *res)
{
	struct az_req r = { .method = "GET", .key = NULL, .body_fd = -1 };
	struct list_state l = { .a = a, .res = res };
	struct az_error e;
	char maxk[24];
	int rc;

	snprintf(maxk, sizeof(maxk), "%zu", ask);
	r.query[r.n_query++] = (struct azsign_kv){ "restype", "container" };
	r.query[r.n_query++] = (struct azsign_kv){ "comp", "list" };
	if (full[0])
		r.query[r.n_query++] = (struct azsign_kv){ "prefix", full };
	r.query[r.n_query++] = (struct azsign_kv){ "maxresults", maxk };
	if (delimiter && *delimiter)
		r.query[r.n_query++] = (struct azsign_kv){ "delimiter",
							   delimiter };
	if (marker)
		r.query[r.n_query++] = (struct azsign_kv){ "marker", marker };
	rc = az_errno(a, &r, az_send(a, &r, &e), &e, NULL);
	if (rc == 0) {
		rc = rest_xml_parse(r.x.text, r.x.text_len, on_list_xml, &l);
		if (rc == 0)
			rc = l.rc;
		if (rc == 0 && l.next[0]) {
			res->next_token = strdup(l.next);
			if (!res->next_token)
				rc = -ENOMEM;
		}
		if (rc == -EPROTO)
			ch5_err("objstore: azure: a List Blobs answer did not "
				"parse");
		if (rc < 0)
			ost_list_result_release(res);
	}
	free(r.x.text);
	return rc == -EPROTO ? -EIO : rc;
}

/* A continuation token of ours (not the service's NextMarker): the page
 * was cut short of what the service sent, and goes on after this name. */
#define CUT_TOKEN "ch5-after:"

/*
 * List Blobs pages hold at least LIST_MIN items: with a delimiter, Azurite
 * (3.x) answers a small maxresults in time quadratic in the blobs under
 * the prefix (maxresults=1 over 3,000 blobs below one common prefix took
 * 29 s, 100 took 0.14 s).  A page the caller wants smaller is cut, and its
 * token, CUT_TOKEN + the last name given, makes the next call list from the
 * start again skipping what was given (the callers that ask for a few
 * items only look, they do not page on).
 */
#define LIST_MIN 1000

static int az_list(void *priv, const char *prefix, const char *delimiter,
		   const char *token, const char *start_after, size_t max_keys,
		   struct ost_list_result *res)
{
	struct az *a = priv;
	char full[OST_KEY_MAX + 512], *marker = NULL;
	const char *after = token ? NULL : start_after; /* List Blobs has no
							   start-after: the
							   first page skips */
	size_t want = max_keys && max_keys < 5000 ? max_keys : 5000;
	size_t cap_o = 0, cap_p = 0, n = 0;
	int rc = 0;

	snprintf(full, sizeof(full), "%s%s", a->prefix, prefix ? prefix : "");
	if (token && !strncmp(token, CUT_TOKEN, strlen(CUT_TOKEN)))
		after = token + strlen(CUT_TOKEN);
	else if (token && !(marker = strdup(token)))
		return -ENOMEM;
	for (;;) {
		struct ost_list_result page = { 0 };
		size_t io = 0, ip = 0;
		bool cut = false;

		rc = list_page(a, full, delimiter, marker,
			       want > LIST_MIN ? want : LIST_MIN, &page);
		if (rc < 0)
			break;
		/* Objects and prefixes in name order, after `after`. */
		while (rc == 0 && (io < page.n_objects || ip < page.n_prefixes)) {
			bool obj = ip >= page.n_prefixes ||
				   (io < page.n_objects &&
				    strcmp(page.objects[io].key,
					   page.prefixes[ip]) < 0);
			const char *name = obj ? page.objects[io].key
					       : page.prefixes[ip];

			if (after && strcmp(name, after) <= 0) {
				io += obj;
				ip += !obj;
				continue;
			}
			if (n == want) {
				cut = true;
				break;
			}
			rc = obj ? ost_list_add_object(res, &cap_o, name,
						       &page.objects[io].info)
				 : ost_list_add_prefix(res, &cap_p, name);
			n++;
			io += obj;
			ip += !obj;
		}
		if (rc == 0 && cut) {
			/* The last item given: objects and prefixes were
			 * added in name order. */
			const char *last =
				res->n_objects && (!res->n_prefixes ||
						  strcmp(res->objects[res->n_objects - 1].key,
							 res->prefixes[res->n_prefixes - 1]) > 0)
				       ? res->objects[res->n_objects - 1].key
				       : res->prefixes[res->n_prefixes - 1];
			size_t tl = strlen(CUT_TOKEN) + strlen(last) + 1;

			res->next_token = malloc(tl);
			if (res->next_token)
				snprintf(res->next_token, tl, "%s%s", CUT_TOKEN,
					 last);
			else
				rc = -ENOMEM;
		} else if (rc == 0 && page.next_token && n == want) {
			res->next_token = page.next_token;
			page.next_token = NULL;
		} else if (rc == 0 && page.next_token) {
			/* Room left: the service's next page. */
			free(marker);
			marker = page.next_token;
			page.next_token = NULL;
			ost_list_result_release(&page);
			continue;
		}
		ost_list_result_release(&page);
		break;
	}
	free(marker);
	if (rc < 0)
		ost_list_result_release(res);
	return rc;
}

static int az_del(void *priv, const char *key)
{
	struct az *a = priv;
	struct az_req r = { .method = "DELETE", .key = key, .body_fd = -1 };
	struct az_error e;
	int rc = az_errno(a, &r, az_send(a, &r, &e), &e, NULL);

	free(r.x.text);
	return rc == -ENOENT ? 0 : rc;
}

/* Copy Blob: the service copies; a copy still pending in the answer is
 * waited for (Get Blob Properties' x-ms-copy-status). */
static int az_copy(void *priv, const char *src, const char *dst)
{
	struct az *a = priv;
	struct az_req r = { .method = "PUT", .key = dst, .body_fd = -1 };
	struct az_error e;
	char path[3 * OST_KEY_MAX + 256], srcurl[URL_MAX];
	unsigned wait_ms = 20, waited = 0;
	int rc, n;

	rc = blob_path(a, src, path, sizeof(path));
	if (rc < 0)
		return rc;
	n = snprintf(srcurl, sizeof(srcurl), "%s://%s%s%s%s", a->scheme,
		     a->hostport, path, !a->keylen && a->sas ? "?" : "",
		     !a->keylen && a->sas ? a->sas : "");
	if (n < 0 || (size_t)n >= sizeof(srcurl))
		return -ENAMETOOLONG;
	r.hdr[r.n_hdr++] = (struct azsign_kv){ "x-ms-copy-source", srcurl };
	r.x.capture[1] = "x-ms-copy-status";
	r.x.text_max = 64 << 10;
	rc = az_errno(a, &r, az_send(a, &r, &e), &e, NULL);
	OPENSSL_cleanse(srcurl, sizeof(srcurl));
	free(r.x.text);
	if (rc < 0)
		return rc;
	while (!strcmp(r.x.captured[1], "pending")) {
		if (waited > 600000) {
			ch5_err("objstore: azure copy to %s: still pending "
				"after 10 minutes",
				dst);
			return -ETIMEDOUT;
		}
		usleep(wait_ms * 1000);
		waited += wait_ms;
		wait_ms = wait_ms < 1000 ? 2 * wait_ms : 1000;
		rc = az_props(a, &r, dst, "x-ms-copy-status", NULL);
		if (rc < 0)
			return rc;
	}
	if (r.x.captured[1][0] && strcmp(r.x.captured[1], "success")) {
		ch5_err("objstore: azure copy to %s: copy status %s", dst,
			r.x.captured[1]);
		return -EIO;
	}
	return 0;
}

static void az_free(void *priv)
{
	struct az *a = priv;

	if (!a)
		return;
	ost_http_free(a->http);
	free(a->scheme);
	free(a->hostport);
	free(a->base_path);
	free(a->account);
	free(a->container);
	free(a->prefix);
	OPENSSL_cleanse(a->key, sizeof(a->key));
	if (a->sas) {
		OPENSSL_cleanse(a->sas, strlen(a->sas));
		free(a->sas);
	}
	free(a);
}

static uint64_t az_retries(void *priv)
{
	struct az *a = priv;

	return atomic_load(&a->resent);
}

static bool az_read_only(void *priv)
{
	const struct az *a = priv;

	return a->read_only;
}

/* The permissions (sp=) of a SAS token ("" when it has none). */
static void sas_permissions(const char *sas, char *out, size_t size)
{
	const char *p = sas;

	out[0] = '\0';
	while (p && *p) {
		if (!strncmp(p, "sp=", 3)) {
			size_t n = strcspn(p + 3, "&");

			snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1),
				 p + 3);
			return;
		}
		p = strchr(p, '&');
		p = p ? p + 1 : NULL;
	}
}

static const struct ost_ops az_ops = {
	.name = "azure",
	.get = az_get,
	.put = az_put,
	.head = az_head,
	.list = az_list,
	.del = az_del,
	.copy = az_copy,
	.retries = az_retries,
	.read_only = az_read_only,
	.free = az_free,
};

/* The store's prefix: no leading '/', a trailing '/' unless empty. */
static char *norm_prefix(const char *p)
{
	size_t pl;
	char *out;

	p = p ? p : "";
	while (*p == '/')
		p++;
	pl = strlen(p);
	out = malloc(pl + 2);
	if (!out)
		return NULL;
	memcpy(out, p, pl);
	if (pl && out[pl - 1] != '/')
		out[pl++] = '/';
	out[pl] = '\0';
	return out;
}

int ost_az_new(const struct ost_az_config *cfg, struct ost_backend **out)
{
	struct ost_http_opts ho = { 0 };
	struct az *a;
	const char *hp, *path;
	size_t bl;
	int rc;

	if (!cfg->container || !*cfg->container || !cfg->account ||
	    !*cfg->account || ((!cfg->key || !*cfg->key) &&
			       (!cfg->sas || !*cfg->sas))) {
		ch5_err("objstore: azure: %s",
			!cfg->container || !*cfg->container
				? "no container given"
			: !cfg->account || !*cfg->account
				? "no storage account given"
				: "no credentials (an account key or a SAS "
				  "token)");
		return -EINVAL;
	}
	hp = cfg->endpoint ? strstr(cfg->endpoint, "://") : NULL;
	if (!hp || !hp[3] || (strncmp(cfg->endpoint, "http://", 7) &&
			      strncmp(cfg->endpoint, "https://", 8))) {
		ch5_err("objstore: azure: bad endpoint '%s' (want "
			"http[s]://HOST[:PORT][/ACCOUNT])",
			cfg->endpoint ? cfg->endpoint : "");
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (cfg->key && *cfg->key &&
	    azsign_key_decode(cfg->key, a->key, &a->keylen) < 0) {
		ch5_err("objstore: azure: the account key is not Base64");
		az_free(a);
		return -EINVAL;
	}
	a->scheme = strndup(cfg->endpoint, hp - cfg->endpoint);
	bl = strcspn(hp + 3, "/?");
	a->hostport = strndup(hp + 3, bl);
	path = hp + 3 + bl;
	a->base_path = strndup(path, strcspn(path, "?"));
	if (a->base_path) {
		size_t n = strlen(a->base_path);

		while (n && a->base_path[n - 1] == '/')
			a->base_path[--n] = '\0';
	}
	a->account = strdup(cfg->account);
	a->container = strdup(cfg->container);
	a->prefix = norm_prefix(cfg->prefix);
	if (!a->keylen) {
		const char *s = cfg->sas;

		a->sas = strdup(*s == '?' ? s + 1 : s);
	}
	a->retries = cfg->retries ? cfg->retries : 4;
	a->block_threshold = cfg->block_threshold ? cfg->block_threshold
						  : 64ULL << 20;
	a->block_size = cfg->block_size ? cfg->block_size : 16ULL << 20;
	if (!a->scheme || !a->hostport || !a->base_path || !a->account ||
	    !a->container || !a->prefix || (!a->keylen && !a->sas)) {
		az_free(a);
		return -ENOMEM;
	}
	if (a->sas) {
		char sp[32];

		sas_permissions(a->sas, sp, sizeof(sp));
		a->read_only = sp[0] && !strchr(sp, 'w') && !strchr(sp, 'c');
		if (a->read_only)
			ch5_warn("objstore: azure: the SAS token grants no "
				 "write permission (sp=%s): writes get EACCES",
				 sp);
	}
	if (cfg->insecure && !strcmp(a->scheme, "https"))
		ch5_warn("objstore: azure: TLS certificates are not verified "
			 "(insecure)");
	ho.max_connections = cfg->max_connections ? cfg->max_connections
						  : 16;
	ho.insecure = cfg->insecure;
	ho.ca_file = cfg->ca_bundle;
	rc = ost_http_new(&ho, &a->http);
	if (rc < 0) {
		az_free(a);
		return rc;
	}
	*out = ost_backend_alloc(&az_ops, a);
	if (!*out) {
		az_free(a);
		return -ENOMEM;
	}
	return 0;
}
