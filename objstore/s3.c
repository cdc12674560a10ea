/*
 * s3.c - the S3 backend (see s3.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <expat.h>
#include <openssl/evp.h>

#include "http.h"
#include "rest.h"
#include "ost_int.h"
#include "s3.h"
#include "sigv4.h"
#include "log.h"

#define EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define URL_MAX (3 * OST_KEY_MAX + 4096)
#define MAX_HEADERS 16

struct s3 {
	char *scheme;	/* "http" or "https" */
	char *hostport; /* "127.0.0.1:7480" */
	char *region, *bucket, *prefix;
	char *access_key, *secret_key, *session_token;
	bool virtual_host, signed_payloads;
	unsigned retries;
	atomic_uint_least64_t resent; /* requests sent again (stats) */
	uint64_t multipart_threshold, part_size;
	struct ost_http *http;
};

/* One request to send (and re-send on a retry). */
struct s3_req {
	const char *method;
	const char *key;		/* store key (prefix added), NULL =
					   the bucket */
	struct sigv4_kv query[8];
	size_t n_query;
	struct sigv4_kv hdr[8];		/* extra signed headers */
	size_t n_hdr;
	const void *body;		/* body: memory... */
	int body_fd;			/* ...or fd */
	uint64_t body_off, body_len;
	const char *payload_hash;	/* NULL: computed or UNSIGNED */
	struct ost_http_xfer x;		/* response sinks and answer */
};

/* --- small helpers ------------------------------------------------ */

struct s3_error {
	char code[64];
	char message[256];
};

static void on_error_xml(void *arg, const char *parent, const char *name,
			 const char *text)
{
	struct s3_error *e = arg;

	if (strcmp(parent, "Error"))
		return;
	if (!strcmp(name, "Code"))
		snprintf(e->code, sizeof(e->code), "%s", text);
	else if (!strcmp(name, "Message"))
		snprintf(e->message, sizeof(e->message), "%s", text);
}

/* --- requests ------------------------------------------------------ */

static void amz_now(char *out)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, SIGV4_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

/* The decoded path that is signed, and the URL that is sent. */
static int build_url(struct s3 *s, const struct s3_req *r, char *path,
		     size_t psz, char *url, size_t usz)
{
	char enc[3 * OST_KEY_MAX + 256];
	size_t ul, i;
	int n;

	if (s->virtual_host)
		n = snprintf(path, psz, "/%s%s", r->key ? s->prefix : "",
			     r->key ? r->key : "");
	else
		n = snprintf(path, psz, "/%s/%s%s", s->bucket,
			     r->key ? s->prefix : "", r->key ? r->key : "");
	if (n < 0 || (size_t)n >= psz)
		return -ENAMETOOLONG;
	if (sigv4_uri_encode(path, n, true, enc, sizeof(enc)) < 0)
		return -ENAMETOOLONG;
	if (s->virtual_host)
		n = snprintf(url, usz, "%s://%s.%s%s", s->scheme, s->bucket,
			     s->hostport, enc);
	else
		n = snprintf(url, usz, "%s://%s%s", s->scheme, s->hostport,
			     enc);
	if (n < 0 || (size_t)n >= usz)
		return -ENAMETOOLONG;
	ul = n;
	for (i = 0; i < r->n_query; i++) {
		int rc = rest_url_query(url, &ul, usz, i == 0,
					r->query[i].name, r->query[i].value);

		if (rc < 0)
			return rc;
	}
	url[ul] = '\0';
	return 0;
}

/* Digest `md_type` of r's body in lower-case hex (out: 2 *
 * EVP_MAX_MD_SIZE + 1 bytes): SHA-256 for signed payloads, MD5 to compare
 * with a single PUT's ETag. */
static int body_digest(const struct s3_req *r, const EVP_MD *md_type,
		       char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdl, i;
	int rc = rest_body_digest(r->body, r->body_fd, r->body_off,
				  r->body_len, md_type, md, &mdl);

	for (i = 0; i < mdl; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[2 * mdl] = '\0';
	return rc;
}

static bool retryable(int rc, long status, const char *code)
{
	if (rest_transport_retryable(rc))
		return true;
	if (rc < 0)
		return false;
	return status >= 500 || status == 429 || !strcmp(code, "SlowDown");
}

/* Send r (signed afresh on every attempt) until it gets an answer that
 * is not worth retrying.  Returns 0 with r->x.status set, or the
 * transport error of the last attempt.  *err receives the S3 error code
 * and message of an error answer. */
static int s3_send(struct s3 *s, struct s3_req *r, struct s3_error *err)
{
	char path[OST_KEY_MAX + 512], url[URL_MAX], date[SIGV4_AMZ_DATE_LEN + 1];
	char sha[SIGV4_SHA256_HEX_LEN + 1], authz[2048];
	char lines[MAX_HEADERS][OST_KEY_MAX * 3 + 128];
	const char *hl[MAX_HEADERS + 1];
	struct sigv4_kv h[MAX_HEADERS];
	struct sigv4_cred cred = { s->access_key, s->secret_key, s->region,
				   "s3" };
	char host[512];
	unsigned attempt;
	size_t nh, i;
	int rc;

	memset(err, 0, sizeof(*err));
	rc = build_url(s, r, path, sizeof(path), url, sizeof(url));
	if (rc < 0)
		return rc;
	if (s->virtual_host)
		snprintf(host, sizeof(host), "%s.%s", s->bucket, s->hostport);
	else
		snprintf(host, sizeof(host), "%s", s->hostport);
	if (r->payload_hash) {
		snprintf(sha, sizeof(sha), "%s", r->payload_hash);
	} else if (!r->body_len && !r->body) {
		snprintf(sha, sizeof(sha), "%s", EMPTY_SHA256);
	} else if (s->signed_payloads || r->body) {
		rc = body_digest(r, EVP_sha256(), sha);
		if (rc < 0)
			return rc;
	} else {
		snprintf(sha, sizeof(sha), "%s", SIGV4_UNSIGNED_PAYLOAD);
	}
	for (attempt = 0;; attempt++) {
		struct sigv4_req sr;

		amz_now(date);
		nh = 0;
		h[nh++] = (struct sigv4_kv){ "host", host };
		h[nh++] = (struct sigv4_kv){ "x-amz-content-sha256", sha };
		h[nh++] = (struct sigv4_kv){ "x-amz-date", date };
		if (s->session_token)
			h[nh++] = (struct sigv4_kv){ "x-amz-security-token",
						     s->session_token };
		for (i = 0; i < r->n_hdr && nh < MAX_HEADERS - 1; i++)
			h[nh++] = r->hdr[i];
		memset(&sr, 0, sizeof(sr));
		sr.method = r->method;
		sr.path = path;
		sr.query = r->query;
		sr.n_query = r->n_query;
		sr.headers = h;
		sr.n_headers = nh;
		sr.payload_hash = sha;
		rc = sigv4_authorization(&cred, date, &sr, authz,
					 sizeof(authz));
		if (rc < 0)
			return rc;
		for (i = 0; i < nh; i++) {
			snprintf(lines[i], sizeof(lines[i]), "%s: %s",
				 h[i].name, h[i].value);
			hl[i] = lines[i];
		}
		snprintf(lines[nh], sizeof(lines[nh]), "Authorization: %s",
			 authz);
		hl[nh] = lines[nh];
		hl[nh + 1] = NULL;
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
		rc = ost_http_run(s->http, &r->x);
		memset(err, 0, sizeof(*err));
		if (rc == 0 && r->x.status >= 300 && r->x.text_len)
			rest_xml_parse(r->x.text, r->x.text_len, on_error_xml, err);
		if (!retryable(rc, r->x.status, err->code) ||
		    attempt >= s->retries)
			break;
		ch5_debug("objstore: s3 %s %s: %s, retrying", r->method,
			  r->key ? r->key : "(bucket)",
			  rc < 0 ? strerror(-rc)
				 : err->code[0] ? err->code : "server error");
		atomic_fetch_add(&s->resent, 1);
		rest_backoff(attempt + 1);
	}
	OPENSSL_cleanse(authz, sizeof(authz));
	return rc;
}

/* The one place an S3 answer becomes an errno.  `cond` is the PUT's
 * condition (NULL otherwise): a failed precondition means -EEXIST for
 * If-None-Match, -ESTALE for If-Match. */
static int s3_errno(struct s3 *s, const struct s3_req *r, int rc,
		    const struct s3_error *e, const struct ost_put_cond *cond)
{
	long st = r->x.status;

	if (rc < 0) {
		ch5_err("objstore: s3 %s %s: no answer from %s://%s: %s%s",
			r->method, r->key ? r->key : "(bucket)", s->scheme,
			s->hostport, r->x.error[0] ? r->x.error : strerror(-rc),
			ost_http_hint(&r->x));
		return rest_transport_errno(rc);
	}
	if (st >= 200 && st < 300)
		return 0;
	if (st == 404 && (!e->code[0] || !strcmp(e->code, "NoSuchKey")))
		return -ENOENT;
	if (st == 412 || st == 409) {
		if (cond && (cond->flags & OST_PUT_IF_NONE_MATCH))
			return -EEXIST;
		if (cond && cond->if_match[0])
			return -ESTALE;
	}
	ch5_err("objstore: s3 %s %s: HTTP %ld %s%s%s", r->method,
		r->key ? r->key : "(bucket)", st, e->code,
		e->message[0] ? ": " : "", e->message);
	/* Credentials the store does not take, whatever the status. */
	if (!strcmp(e->code, "InvalidAccessKeyId") ||
	    !strcmp(e->code, "SignatureDoesNotMatch") ||
	    !strcmp(e->code, "InvalidToken") ||
	    !strcmp(e->code, "ExpiredToken") ||
	    !strcmp(e->code, "AccessDenied"))
		return -EACCES;
	return rest_status_errno(st);
}

/* --- operations ---------------------------------------------------- */

static int s3_head(void *priv, const char *key, struct ost_info *info)
{
	struct s3 *s = priv;
	struct s3_req r = { .method = "HEAD", .key = key, .body_fd = -1 };
	struct s3_error e;
	int rc = s3_send(s, &r, &e);

	rc = s3_errno(s, &r, rc, &e, NULL);
	if (rc == 0 && info)
		rest_fill_info(&r.x, info, r.x.content_length > 0
					      ? (uint64_t)r.x.content_length
					      : 0);
	free(r.x.text);
	return rc;
}

static int s3_get(void *priv, const char *key, uint64_t off, void *buf,
		  size_t len, size_t *got, struct ost_info *info)
{
	struct s3 *s = priv;
	struct s3_req r = { .method = "GET", .key = key, .body_fd = -1 };
	struct s3_error e;
	char range[64];
	int rc;

	*got = 0;
	if (!len)
		return info ? s3_head(priv, key, info) : 0;
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off,
		 off + len - 1);
	r.hdr[r.n_hdr++] = (struct sigv4_kv){ "range", range };
	r.x.buf = buf;
	r.x.buf_cap = len;
	r.x.skip_if_full = off;
	r.x.text_max = 64 << 10; /* error pages only */
	rc = s3_send(s, &r, &e);
	if (rc == 0 && r.x.status == 416) {
		/* At or past the end: nothing to read. */
		free(r.x.text);
		return info ? s3_head(priv, key, info) : 0;
	}
	rc = s3_errno(s, &r, rc, &e, NULL);
	if (rc == 0) {
		*got = r.x.got;
		if (info)
			rest_fill_info(&r.x, info, rest_object_size(&r.x));
	}
	free(r.x.text);
	return rc;
}

struct upload_id {
	char id[512];
	char etag[128];
	int64_t mtime_ns;
};

static void on_multipart_xml(void *arg, const char *parent, const char *name,
			     const char *text)
{
	struct upload_id *u = arg;

	if (!strcmp(name, "UploadId"))
		snprintf(u->id, sizeof(u->id), "%s", text);
	else if (!strcmp(name, "ETag") && (!strcmp(parent,
						    "CompleteMultipartUploadResult") ||
					   !strcmp(parent, "CopyObjectResult")))
		snprintf(u->etag, sizeof(u->etag), "%s", text);
	else if (!strcmp(name, "LastModified") &&
		 !strcmp(parent, "CopyObjectResult"))
		u->mtime_ns = rest_iso_date_ns(text);
}

static int put_multipart(struct s3 *s, const char *key,
			 const struct ost_body *body, struct ost_info *info)
{
	struct upload_id u = { 0 };
	struct s3_req r = { .method = "POST", .key = key, .body_fd = -1 };
	struct s3_error e;
	uint64_t nparts = (body->len + s->part_size - 1) / s->part_size, i;
	char (*etags)[128] = calloc(nparts, sizeof(*etags));
	char *xml = NULL;
	size_t xl = 0, xcap = 0;
	int rc;

	if (!etags)
		return -ENOMEM;
	r.query[r.n_query++] = (struct sigv4_kv){ "uploads", "" };
	rc = s3_errno(s, &r, s3_send(s, &r, &e), &e, NULL);
	if (rc == 0 &&
	    (rest_xml_parse(r.x.text, r.x.text_len, on_multipart_xml, &u) < 0 ||
	     !u.id[0]))
		rc = -EIO;
	free(r.x.text);
	if (rc < 0)
		goto out_free;
	for (i = 0; i < nparts && rc == 0; i++) {
		struct s3_req p = { .method = "PUT", .key = key };
		char num[24];
		uint64_t off = i * s->part_size;

		snprintf(num, sizeof(num), "%" PRIu64, i + 1);
		p.query[p.n_query++] = (struct sigv4_kv){ "partNumber", num };
		p.query[p.n_query++] = (struct sigv4_kv){ "uploadId", u.id };
		p.body = body->buf ? (const char *)body->buf + off : NULL;
		p.body_fd = body->fd;
		p.body_off = body->fd_off + off;
		p.body_len = body->len - off < s->part_size ? body->len - off
							    : s->part_size;
		rc = s3_errno(s, &p, s3_send(s, &p, &e), &e, NULL);
		snprintf(etags[i], sizeof(etags[i]), "%s", p.x.etag);
		free(p.x.text);
	}
	if (rc == 0) {
		/* CompleteMultipartUpload. */
		for (i = 0; i <= nparts; i++) {
			char part[256];
			int n = i < nparts
					? snprintf(part, sizeof(part),
						   "<Part><PartNumber>%" PRIu64
						   "</PartNumber><ETag>\"%s\""
						   "</ETag></Part>",
						   i + 1, etags[i])
					: snprintf(part, sizeof(part),
						   "</CompleteMultipartUpload>");

			if (xl + n + 64 > xcap) {
				char *nx = realloc(xml, xcap = 2 * xcap + 4096);

				if (!nx) {
					rc = -ENOMEM;
					break;
				}
				xml = nx;
				if (!xl)
					xl = snprintf(xml, xcap,
						      "<CompleteMultipartUpload>");
			}
			memcpy(xml + xl, part, n + 1);
			xl += n;
		}
	}
	if (rc == 0) {
		struct s3_req c = { .method = "POST", .key = key,
				    .body_fd = -1 };

		c.query[c.n_query++] = (struct sigv4_kv){ "uploadId", u.id };
		c.body = xml;
		c.body_len = xl;
		rc = s3_errno(s, &c, s3_send(s, &c, &e), &e, NULL);
		/* An error can come inside a 200 answer. */
		if (rc == 0 && c.x.text &&
		    rest_xml_parse(c.x.text, c.x.text_len, on_error_xml, &e) == 0 &&
		    e.code[0]) {
			ch5_err("objstore: s3 complete multipart %s: %s", key,
				e.code);
			rc = -EIO;
		}
		if (rc == 0)
			rest_xml_parse(c.x.text, c.x.text_len, on_multipart_xml,
				  &u);
		free(c.x.text);
	}
	if (rc < 0) {
		struct s3_req a = { .method = "DELETE", .key = key,
				    .body_fd = -1 };

		a.query[a.n_query++] = (struct sigv4_kv){ "uploadId", u.id };
		if (s3_errno(s, &a, s3_send(s, &a, &e), &e, NULL) < 0)
			ch5_warn("objstore: s3: cannot abort the multipart "
				 "upload of %s", key);
		free(a.x.text);
	} else if (info) {
		memset(info, 0, sizeof(*info));
		info->size = body->len;
		info->mtime_ns = ost_now_ns();
		rest_strip_quotes(u.etag);
		snprintf(info->etag, sizeof(info->etag), "%.79s", u.etag);
	}
out_free:
	free(xml);
	free(etags);
	return rc;
}

/* A conditional PUT was refused (412/409).  If it was sent more than once
 * (our retries after no answer or a 5xx, or libcurl's own resend when a
 * kept-alive connection turns out dead), an earlier copy may have landed
 * and the condition refused the later one because of it.  True (and *info
 * from a HEAD) if the object is this body (its ETag, a single PUT's MD5,
 * matches): then it was this PUT that landed. */
static bool put_landed(struct s3 *s, const struct s3_req *r,
		       struct ost_info *info)
{
	char md5[2 * EVP_MAX_MD_SIZE + 1];
	struct ost_info cur;

	if (body_digest(r, EVP_md5(), md5) < 0 ||
	    s3_head(s, r->key, &cur) < 0 || strcasecmp(cur.etag, md5))
		return false;
	ch5_info("objstore: s3 PUT %s: refused by its condition, but the "
		 "object is this body: an earlier send of it had landed",
		 r->key);
	if (info)
		*info = cur;
	return true;
}

static int s3_put(void *priv, const char *key, const struct ost_body *body,
		  const struct ost_put_cond *cond, struct ost_info *info)
{
	struct s3 *s = priv;
	struct s3_req r = { .method = "PUT", .key = key };
	struct s3_error e;
	bool conditional = cond && ((cond->flags & OST_PUT_IF_NONE_MATCH) ||
				    cond->if_match[0]);
	int rc;

	if (body->len > s->multipart_threshold && !conditional)
		return put_multipart(s, key, body, info);
	r.body = body->buf;
	r.body_fd = body->fd;
	r.body_off = body->fd_off;
	r.body_len = body->len;
	if (cond && (cond->flags & OST_PUT_IF_NONE_MATCH))
		r.hdr[r.n_hdr++] = (struct sigv4_kv){ "if-none-match", "*" };
	else if (cond && cond->if_match[0])
		r.hdr[r.n_hdr++] = (struct sigv4_kv){ "if-match",
						      cond->if_match };
	r.x.text_max = 64 << 10;
	rc = s3_send(s, &r, &e);
	if (rc == 0 && conditional &&
	    (r.x.status == 412 || r.x.status == 409) &&
	    put_landed(s, &r, info)) {
		free(r.x.text);
		return 0;
	}
	rc = s3_errno(s, &r, rc, &e, cond);
	if (rc == 0 && info) {
		memset(info, 0, sizeof(*info));
		info->size = body->len;
		info->mtime_ns = ost_now_ns();
		snprintf(info->etag, sizeof(info->etag), "%s", r.x.etag);
	}
	free(r.x.text);
	return rc;
}

struct list_state {
	struct s3 *s;
	struct ost_list_result *res;
	size_t cap_obj, cap_pfx;
	bool url_encoded, truncated;
	char next[4096];
	struct ost_list_entry cur; /* the <Contents> being read */
	char cur_key[OST_KEY_MAX + 1];
	int rc;
};

/* Strip the store's prefix from a listed key (decoding it first). */
static const char *list_key(struct list_state *l, const char *text,
			    char *buf, size_t size)
{
	size_t pl = strlen(l->s->prefix);

	if (l->url_encoded)
		rest_url_decode(text, buf, size);
	else
		snprintf(buf, size, "%s", text);
	return strncmp(buf, l->s->prefix, pl) ? NULL : buf + pl;
}

static void on_list_xml(void *arg, const char *parent, const char *name,
			const char *text)
{
	struct list_state *l = arg;
	struct ost_list_result *res = l->res;
	char buf[OST_KEY_MAX * 3 + 64];
	const char *k;

	if (l->rc)
		return;
	if (!strcmp(name, "EncodingType")) {
		l->url_encoded = !strcasecmp(text, "url");
	} else if (!strcmp(name, "IsTruncated")) {
		l->truncated = !strcmp(text, "true");
	} else if (!strcmp(name, "NextContinuationToken")) {
		snprintf(l->next, sizeof(l->next), "%s", text);
	} else if (!strcmp(parent, "Contents")) {
		if (!strcmp(name, "Key")) {
			k = list_key(l, text, buf, sizeof(buf));
			snprintf(l->cur_key, sizeof(l->cur_key), "%s",
				 k ? k : "");
		} else if (!strcmp(name, "Size")) {
			l->cur.info.size = strtoull(text, NULL, 10);
		} else if (!strcmp(name, "LastModified")) {
			l->cur.info.mtime_ns = rest_iso_date_ns(text);
		} else if (!strcmp(name, "ETag")) {
			snprintf(l->cur.info.etag, sizeof(l->cur.info.etag),
				 "%s", text);
			rest_strip_quotes(l->cur.info.etag);
		}
	} else if (!strcmp(name, "Contents")) {
		if (l->cur_key[0])
			l->rc = ost_list_add_object(res, &l->cap_obj,
						     l->cur_key, &l->cur.info);
		memset(&l->cur, 0, sizeof(l->cur));
		l->cur_key[0] = '\0';
	} else if (!strcmp(parent, "CommonPrefixes") &&
		   !strcmp(name, "Prefix")) {
		k = list_key(l, text, buf, sizeof(buf));
		if (k && *k)
			l->rc = ost_list_add_prefix(res, &l->cap_pfx, k);
	}
}

static int s3_list(void *priv, const char *prefix, const char *delimiter,
		   const char *token, const char *start_after, size_t max_keys,
		   struct ost_list_result *res)
{
	struct s3 *s = priv;
	struct s3_req r = { .method = "GET", .key = NULL, .body_fd = -1 };
	struct list_state l = { .s = s, .res = res };
	struct s3_error e;
	char full[OST_KEY_MAX + 512], maxk[24], after[OST_KEY_MAX + 512];
	int rc;

	snprintf(full, sizeof(full), "%s%s", s->prefix, prefix ? prefix : "");
	snprintf(maxk, sizeof(maxk), "%zu", max_keys ? max_keys : 1000);
	r.query[r.n_query++] = (struct sigv4_kv){ "list-type", "2" };
	r.query[r.n_query++] = (struct sigv4_kv){ "prefix", full };
	r.query[r.n_query++] = (struct sigv4_kv){ "max-keys", maxk };
	r.query[r.n_query++] = (struct sigv4_kv){ "encoding-type", "url" };
	if (delimiter && *delimiter)
		r.query[r.n_query++] = (struct sigv4_kv){ "delimiter",
							  delimiter };
	if (token) {
		r.query[r.n_query++] = (struct sigv4_kv){ "continuation-token",
							  token };
	} else if (start_after) {
		snprintf(after, sizeof(after), "%s%s", s->prefix, start_after);
		r.query[r.n_query++] = (struct sigv4_kv){ "start-after",
							  after };
	}
	rc = s3_errno(s, &r, s3_send(s, &r, &e), &e, NULL);
	if (rc == 0) {
		rc = rest_xml_parse(r.x.text, r.x.text_len, on_list_xml, &l);
		if (rc == 0)
			rc = l.rc;
		if (rc == 0 && l.truncated) {
			res->next_token = strdup(l.next);
			if (!res->next_token || !l.next[0])
				rc = l.next[0] ? -ENOMEM : -EPROTO;
		}
		if (rc == -EPROTO)
			ch5_err("objstore: s3: a LIST answer did not parse");
		if (rc < 0)
			ost_list_result_release(res);
	}
	free(r.x.text);
	return rc == -EPROTO ? -EIO : rc;
}

static int s3_del(void *priv, const char *key)
{
	struct s3 *s = priv;
	struct s3_req r = { .method = "DELETE", .key = key, .body_fd = -1 };
	struct s3_error e;
	int rc = s3_errno(s, &r, s3_send(s, &r, &e), &e, NULL);

	free(r.x.text);
	return rc == -ENOENT ? 0 : rc;
}

/* Append `key` to *x XML-escaped; false if it has bytes XML 1.0 cannot
 * carry (control characters). */
static bool xml_key(char **x, size_t *len, size_t *cap, const char *prefix,
		    const char *key)
{
	const char *parts[2] = { prefix, key };
	size_t p;

	for (p = 0; p < 2; p++) {
		const unsigned char *c = (const unsigned char *)parts[p];

		for (; *c; c++) {
			char e[8];
			const char *out = e;
			size_t n;

			if (*c < 0x20 && *c != '\t' && *c != '\n' && *c != '\r')
				return false;
			switch (*c) {
			case '&': out = "&amp;"; break;
			case '<': out = "&lt;"; break;
			case '>': out = "&gt;"; break;
			case '"': out = "&quot;"; break;
			case '\'': out = "&apos;"; break;
			case '\r': out = "&#13;"; break;
			case '\n': out = "&#10;"; break;
			case '\t': out = "&#9;"; break;
			default: e[0] = (char)*c; e[1] = '\0';
			}
			n = strlen(out);
			if (*len + n + 64 > *cap) {
				char *nx = realloc(*x, *cap = 2 * *cap + 4096);

				if (!nx)
					return false;
				*x = nx;
			}
			memcpy(*x + *len, out, n);
			*len += n;
		}
	}
	return true;
}

static void xml_add(char **x, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		char *nx = realloc(*x, *cap = 2 * *cap + n + 4096);

		if (!nx)
			return;
		*x = nx;
	}
	memcpy(*x + *len, s, n);
	*len += n;
	(*x)[*len] = '\0';
}

struct del_result {
	const char *const *keys;
	size_t n;
	int *rcs;
	const char *prefix;
	char key[OST_KEY_MAX * 3 + 64];
	char code[64];
};

static void on_delete_xml(void *arg, const char *parent, const char *name,
			  const char *text)
{
	struct del_result *d = arg;
	size_t pl = strlen(d->prefix), i;

	if (!strcmp(parent, "Error") && !strcmp(name, "Key"))
		snprintf(d->key, sizeof(d->key), "%s", text);
	else if (!strcmp(parent, "Error") && !strcmp(name, "Code"))
		snprintf(d->code, sizeof(d->code), "%s", text);
	else if (!strcmp(name, "Error") &&
		 !strncmp(d->key, d->prefix, pl)) {
		for (i = 0; i < d->n; i++)
			if (!strcmp(d->keys[i], d->key + pl) && !d->rcs[i]) {
				ch5_err("objstore: s3 batch delete of %s: %s",
					d->keys[i], d->code);
				d->rcs[i] = !strcmp(d->code, "AccessDenied")
						    ? -EACCES
						    : -EIO;
				break;
			}
		d->key[0] = d->code[0] = '\0';
	}
}

/* DeleteObjects: POST ?delete with the keys in XML, Quiet: only errors
 * come back. */
static int s3_del_many(void *priv, const char *const *keys, size_t n,
		       int *rcs)
{
	struct s3 *s = priv;
	struct s3_req r = { .method = "POST", .key = NULL, .body_fd = -1 };
	struct del_result d = { keys, n, rcs, NULL, "", "" };
	struct s3_error e;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdl = 0;
	char md5[64];
	char *x = NULL;
	size_t len = 0, cap = 0, i, sent = 0;
	int rc;

	d.prefix = s->prefix;
	xml_add(&x, &len, &cap, "<Delete><Quiet>true</Quiet>");
	for (i = 0; i < n; i++) {
		size_t mark = len;

		rcs[i] = 0;
		xml_add(&x, &len, &cap, "<Object><Key>");
		if (!x || !xml_key(&x, &len, &cap, s->prefix, keys[i])) {
			/* Not expressible in XML: on its own. */
			len = mark;
			rcs[i] = s3_del(priv, keys[i]);
			continue;
		}
		xml_add(&x, &len, &cap, "</Key></Object>");
		sent++;
	}
	xml_add(&x, &len, &cap, "</Delete>");
	if (!x) {
		return -ENOMEM;
	}
	if (!sent) {
		free(x);
		return 0;
	}
	/* S3 wants the body's Content-MD5 on DeleteObjects. */
	EVP_Digest(x, len, md, &mdl, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)md5, md, (int)mdl);
	r.query[r.n_query++] = (struct sigv4_kv){ "delete", "" };
	r.hdr[r.n_hdr++] = (struct sigv4_kv){ "content-md5", md5 };
	r.hdr[r.n_hdr++] = (struct sigv4_kv){ "content-type",
					      "application/xml" };
	r.body = x;
	r.body_len = len;
	rc = s3_errno(s, &r, s3_send(s, &r, &e), &e, NULL);
	if (rc == 0 && r.x.text &&
	    rest_xml_parse(r.x.text, r.x.text_len, on_delete_xml, &d) < 0) {
		ch5_err("objstore: s3: a batch delete answer did not parse");
		rc = -EIO;
	}
	free(r.x.text);
	free(x);
	return rc;
}

static int s3_copy(void *priv, const char *src, const char *dst)
{
	struct s3 *s = priv;
	struct s3_req r = { .method = "PUT", .key = dst, .body_fd = -1 };
	struct upload_id u = { 0 };
	struct s3_error e = { 0 };
	char path[OST_KEY_MAX + 512], enc[3 * OST_KEY_MAX + 1024];
	int rc;

	snprintf(path, sizeof(path), "/%s/%s%s", s->bucket, s->prefix, src);
	if (sigv4_uri_encode(path, strlen(path), true, enc, sizeof(enc)) < 0)
		return -ENAMETOOLONG;
	r.hdr[r.n_hdr++] = (struct sigv4_kv){ "x-amz-copy-source", enc };
	rc = s3_errno(s, &r, s3_send(s, &r, &e), &e, NULL);
	if (rc == 0 && r.x.text) {
		/* An error can come inside a 200 answer. */
		memset(&e, 0, sizeof(e));
		rest_xml_parse(r.x.text, r.x.text_len, on_error_xml, &e);
		rest_xml_parse(r.x.text, r.x.text_len, on_multipart_xml, &u);
		if (e.code[0]) {
			ch5_err("objstore: s3 copy %s: %s %s", dst, e.code,
				e.message);
			rc = -EIO;
		}
	}
	free(r.x.text);
	return rc;
}

static void s3_free(void *priv)
{
	struct s3 *s = priv;

	if (!s)
		return;
	ost_http_free(s->http);
	free(s->scheme);
	free(s->hostport);
	free(s->region);
	free(s->bucket);
	free(s->prefix);
	free(s->access_key);
	if (s->secret_key) {
		OPENSSL_cleanse(s->secret_key, strlen(s->secret_key));
		free(s->secret_key);
	}
	free(s->session_token);
	free(s);
}

static uint64_t s3_retries(void *priv)
{
	struct s3 *s = priv;

	return atomic_load(&s->resent);
}

static const struct ost_ops s3_ops = {
	.name = "s3",
	.get = s3_get,
	.put = s3_put,
	.head = s3_head,
	.list = s3_list,
	.del = s3_del,
	.del_many = s3_del_many,
	.copy = s3_copy,
	.retries = s3_retries,
	.free = s3_free,
};

int ost_s3_new(const struct ost_s3_config *cfg, struct ost_backend **out)
{
	struct ost_http_opts ho = { 0 };
	struct s3 *s;
	const char *ep, *hp;
	char defep[128];
	size_t pl;
	int rc;

	if (!cfg->bucket || !*cfg->bucket || !cfg->access_key ||
	    !cfg->secret_key) {
		ch5_err("objstore: s3: %s", !cfg->bucket || !*cfg->bucket
						    ? "no bucket given"
						    : "no credentials (access "
						      "key and secret)");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->region = strdup(cfg->region && *cfg->region ? cfg->region
						       : "us-east-1");
	if (cfg->endpoint && *cfg->endpoint) {
		ep = cfg->endpoint;
	} else {
		snprintf(defep, sizeof(defep), "https://s3.%s.amazonaws.com",
			 s->region ? s->region : "us-east-1");
		ep = defep;
	}
	hp = strstr(ep, "://");
	if (!hp || !hp[3] ||
	    (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))) {
		ch5_err("objstore: s3: bad endpoint '%s' (want http://HOST[:PORT]"
			" or https://...)",
			ep);
		s3_free(s);
		return -EINVAL;
	}
	s->scheme = strndup(ep, hp - ep);
	s->hostport = strndup(hp + 3, strcspn(hp + 3, "/"));
	pl = cfg->prefix ? strlen(cfg->prefix) : 0;
	s->prefix = malloc(pl + 2);
	if (s->prefix) {
		memcpy(s->prefix, cfg->prefix ? cfg->prefix : "", pl);
		while (pl && s->prefix[0] == '/') {
			memmove(s->prefix, s->prefix + 1, pl);
			pl--;
		}
		if (pl && s->prefix[pl - 1] != '/')
			s->prefix[pl++] = '/';
		s->prefix[pl] = '\0';
	}
	s->bucket = strdup(cfg->bucket);
	s->access_key = strdup(cfg->access_key);
	s->secret_key = strdup(cfg->secret_key);
	s->session_token = cfg->session_token && *cfg->session_token
				   ? strdup(cfg->session_token)
				   : NULL;
	s->virtual_host = cfg->virtual_host;
	s->signed_payloads = cfg->signed_payloads;
	s->retries = cfg->retries ? cfg->retries : 4;
	s->multipart_threshold = cfg->multipart_threshold
					 ? cfg->multipart_threshold
					 : 64ULL << 20;
	s->part_size = cfg->part_size ? cfg->part_size : 16ULL << 20;
	if (s->part_size < (5u << 20))
		s->part_size = 5u << 20; /* S3's smallest part */
	if (!s->region || !s->scheme || !s->hostport || !s->prefix ||
	    !s->bucket || !s->access_key || !s->secret_key ||
	    (cfg->session_token && *cfg->session_token &&
	     !s->session_token)) {
		s3_free(s);
		return -ENOMEM;
	}
	if (cfg->insecure && !strcmp(s->scheme, "https"))
		ch5_warn("objstore: s3: TLS certificates are not verified "
			 "(insecure)");
	ho.max_connections = cfg->max_connections ? cfg->max_connections
						  : 16;
	ho.insecure = cfg->insecure;
	ho.ca_file = cfg->ca_bundle;
	rc = ost_http_new(&ho, &s->http);
	if (rc < 0) {
		s3_free(s);
		return rc;
	}
	*out = ost_backend_alloc(&s3_ops, s);
	if (!*out) {
		s3_free(s);
		return -ENOMEM;
	}
	return 0;
}
