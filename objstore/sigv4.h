/*
 * sigv4.h - AWS Signature Version 4 request signing.
 *
 * Follows the AWS SigV4 specification ("Create a signed AWS API request",
 * AWS General Reference / IAM User Guide): canonical request, string to
 * sign with a credential scope of date/region/service/aws4_request, a
 * signing key derived by HMAC-SHA256 from "AWS4" + secret, and the
 * Authorization header
 *   AWS4-HMAC-SHA256 Credential=AK/scope, SignedHeaders=a;b, Signature=hex
 * HMAC-SHA256 and SHA-256 come from OpenSSL.
 *
 * Paths, query names and values are given decoded (the bytes of the object
 * key); the signer URI-encodes them with the same rules it uses for the
 * canonical request, so callers build the wire URL with sigv4_uri_encode()
 * and the two always agree.  S3 rules by default: the path is encoded once
 * and not normalized ('//' and '.' in keys are kept); other services set
 * normalize_path (RFC 3986 dot segments removed, '//' collapsed).
 *
 * Thread-safety: every function touches only its arguments.  Errors are
 * negative errno values.  Secrets are never logged.
 */
#ifndef CH5_SIGV4_H
#define CH5_SIGV4_H

#include <stdbool.h>
#include <stddef.h>

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_SHA256_HEX_LEN 64
#define SIGV4_AMZ_DATE_LEN 16 /* "20150830T123600Z" */

/* A name and a value (query parameter or header).  Borrowed. */
struct sigv4_kv {
	const char *name;
	const char *value; /* may be "" (a query "?acl" has value "") */
};

struct sigv4_cred {
	const char *access_key;
	const char *secret_key;
	const char *region;  /* "us-east-1" */
	const char *service; /* "s3" */
};

struct sigv4_req {
	const char *method; /* "GET", "PUT"... */
	const char *path;   /* decoded, starts with '/': "/bucket/a b.h5" */
	const struct sigv4_kv *query; /* decoded names and values */
	size_t n_query;
	/* Headers to sign, names in any case, values as sent; must include
	 * "host" and "x-amz-date" (and "x-amz-security-token" with session
	 * credentials, "x-amz-content-sha256" for S3).  A name given more
	 * than once is signed as its values joined by ',' in order. */
	const struct sigv4_kv *headers;
	size_t n_headers;
	const char *payload_hash; /* lowercase hex SHA-256 of the body, or
				     SIGV4_UNSIGNED_PAYLOAD */
	bool normalize_path;	  /* not S3: normalize (see above) */
};

/* URI-encode `len` bytes of `s` per SigV4: unreserved characters
 * (A-Z a-z 0-9 - . _ ~) stay, every other byte becomes %XY (upper-case
 * hex); '/' stays when keep_slash.  Writes a NUL-terminated string into
 * out (outsz bytes).  Returns its length, or -ENAMETOOLONG. */
int sigv4_uri_encode(const char *s, size_t len, bool keep_slash, char *out,
		     size_t outsz);

/* Lowercase hex SHA-256 of `len` bytes (out: 65 bytes, NUL-terminated). */
void sigv4_sha256_hex(const void *data, size_t len, char *out);

/* The canonical request of `r` (malloc'd string, caller frees) and, in
 * *signed_headers if non-NULL, its SignedHeaders list (malloc'd).
 * Returns 0, -EINVAL (a header name with a character that is not a token
 * character, no method or path) or -ENOMEM. */
int sigv4_canonical_request(const struct sigv4_req *r, char **out,
			    char **signed_headers);

/* The string to sign for canonical request `creq` at `amz_date`
 * (YYYYMMDDTHHMMSSZ) in `region`/`service` (malloc'd).  0, -EINVAL or
 * -ENOMEM. */
int sigv4_string_to_sign(const char *amz_date, const char *region,
			 const char *service, const char *creq, char **out);

/* The Authorization header value for `r` signed with `c` at `amz_date`,
 * written NUL-terminated into out (outsz bytes).  Returns its length,
 * -EINVAL, -ENOMEM, or -ENAMETOOLONG if outsz is too small (512 bytes
 * plus the signed header names is always enough). */
int sigv4_authorization(const struct sigv4_cred *c, const char *amz_date,
			const struct sigv4_req *r, char *out, size_t outsz);

#endif
