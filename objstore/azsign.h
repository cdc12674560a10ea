/*
 * azsign.h - Azure Storage Shared Key request signing.
 *
 * Follows "Authorize with Shared Key" of the Azure Storage REST API
 * (services version 2015-02-21 and later, Blob service):
 *
 *   StringToSign = VERB "\n" Content-Encoding "\n" Content-Language "\n"
 *                  Content-Length "\n" Content-MD5 "\n" Content-Type "\n"
 *                  Date "\n" If-Modified-Since "\n" If-Match "\n"
 *                  If-None-Match "\n" If-Unmodified-Since "\n" Range "\n"
 *                  CanonicalizedHeaders CanonicalizedResource
 *
 * where Content-Length is empty when it is 0; CanonicalizedHeaders are the
 * x-ms-* headers, names lower-cased, sorted, values unfolded (runs of
 * white space made one space, leading and trailing space dropped), each
 * "name:value\n"; CanonicalizedResource is "/" ACCOUNT followed by the
 * request's encoded URI path, then for each query parameter, sorted by
 * lower-cased name, "\n" name ":" values (decoded, sorted, joined by ',').
 * The signature is Base64(HMAC-SHA256(Base64Decode(key), StringToSign)),
 * sent as "Authorization: SharedKey ACCOUNT:SIGNATURE".  HMAC-SHA256 and
 * Base64 come from OpenSSL.
 *
 * Thread-safety: every function touches only its arguments.  Errors are
 * negative errno values.  Keys are never logged.
 */
#ifndef CH5_AZSIGN_H
#define CH5_AZSIGN_H

#include <stddef.h>

#define AZSIGN_KEY_MAX 128 /* bytes of a decoded account key (64 on Azure) */

/* A name and a value (query parameter or header).  Borrowed. */
struct azsign_kv {
	const char *name;
	const char *value;
};

struct azsign_req {
	const char *method; /* "GET", "PUT", "HEAD", "DELETE" */
	const char *path;   /* the URI path as sent (percent-encoded),
			       starting with '/': "/acct/container/a%20b" */
	const struct azsign_kv *query; /* decoded names and values */
	size_t n_query;
	/* Every header sent, names in any case: the standard ones of the
	 * string to sign (Content-Length, Range, If-Match...) and the x-ms-*
	 * ones; others are ignored.  A standard header missing here is an
	 * empty line. */
	const struct azsign_kv *headers;
	size_t n_headers;
};

/* Decode the Base64 account key `b64` into out (AZSIGN_KEY_MAX bytes);
 * *len receives its length.  Returns 0, or -EINVAL when it is not Base64
 * or decodes to nothing or to more than AZSIGN_KEY_MAX bytes. */
int azsign_key_decode(const char *b64, unsigned char *out, size_t *len);

/* The string to sign of `r` for `account` (malloc'd, caller frees).
 * Returns 0, -EINVAL (no method, a path not starting with '/', a header
 * name that is not a token) or -ENOMEM. */
int azsign_string_to_sign(const char *account, const struct azsign_req *r,
			  char **out);

/* The Authorization header value "SharedKey ACCOUNT:SIGNATURE" for `r`
 * signed with the decoded key (keylen bytes), written NUL-terminated into
 * out (outsz bytes).  Returns its length, -EINVAL, -ENOMEM, or
 * -ENAMETOOLONG if outsz is too small (64 bytes plus the account name is
 * always enough). */
int azsign_authorization(const char *account, const unsigned char *key,
			 size_t keylen, const struct azsign_req *r, char *out,
			 size_t outsz);

#endif
