/*
 * rest.h - pieces shared by the REST backends (s3.c, azure.c): dates,
 * percent-decoding, a flat XML walk, retry backoff and body digests.
 *
 * Not for use outside objstore/.  Thread-safety: every function touches
 * only its arguments.
 */
#ifndef CH5_REST_H
#define CH5_REST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "http.h"
#include "ost.h"

/* An RFC 1123 date ("Sun, 06 Nov 1994 08:49:37 GMT") in ns since the
 * epoch; 0 when it does not parse. */
int64_t rest_http_date_ns(const char *s);

/* An ISO 8601 UTC date ("2024-01-02T03:04:05.678Z") in ns since the
 * epoch; 0 when it does not parse. */
int64_t rest_iso_date_ns(const char *s);

/* Percent-decode s ('+' is a space: S3's encoding-type=url) into dst of
 * `size` bytes, NUL-terminated, cut short if it does not fit. */
void rest_url_decode(const char *s, char *dst, size_t size);

/* Called at each closing tag with the enclosing element's name (or ""),
 * the element's name and its text ("" for elements with children; texts
 * longer than about 3 KiB are cut). */
typedef void (*rest_xml_fn)(void *arg, const char *parent, const char *name,
			    const char *text);

/* Walk the XML document doc[0..len).  0, -EPROTO (not well-formed) or
 * -ENOMEM. */
int rest_xml_parse(const char *doc, size_t len, rest_xml_fn fn, void *arg);

/* True for an ost_http_run() failure worth sending again (no answer:
 * timeout, refused, reset, unreachable). */
bool rest_transport_retryable(int rc);

/* Sleep before attempt n (1, 2...): 100 ms doubling, capped at 5 s, with
 * full jitter. */
void rest_backoff(unsigned n);

/* Remove one pair of surrounding double quotes from s, in place. */
void rest_strip_quotes(char *s);

/* The digest `md` of a body: len bytes from buf, or (buf NULL) read with
 * pread(2) from fd at off.  out receives the digest (EVP_MAX_MD_SIZE
 * bytes) and *outlen its length.  0, -errno of pread, -EIO (the fd ended
 * early) or -ENOMEM. */
int rest_body_digest(const void *buf, int fd, uint64_t off, uint64_t len,
		     const EVP_MD *md, unsigned char *out, unsigned *outlen);

/* The errno of an HTTP error status the backend has no more specific
 * meaning for: 400, 411, 413 -EINVAL; 401, 403 -EACCES; 404 -ENOENT;
 * 408, 504 -ETIMEDOUT; 507 -ENOSPC; others -EIO. */
int rest_status_errno(long status);

/* The errno a backend reports for a request that got no answer (rc from
 * ost_http_run): a refused, reset or unreachable connection and a TLS
 * failure are -EIO, others (-ETIMEDOUT, -ENOMEM...) themselves. */
int rest_transport_errno(int rc);

/* Object info from an answer's Last-Modified and ETag, with `size`. */
void rest_fill_info(const struct ost_http_xfer *x, struct ost_info *info,
		    uint64_t size);

/* The object's whole size from a GET answer: Content-Range's total of a
 * 206, else Content-Length. */
uint64_t rest_object_size(const struct ost_http_xfer *x);

/* Append "?name=value" (first) or "&name=value" to url (ul bytes used of
 * usz), both URI-encoded (sigv4_uri_encode).  0 or -ENAMETOOLONG. */
int rest_url_query(char *url, size_t *ul, size_t usz, bool first,
		   const char *name, const char *value);

#endif
