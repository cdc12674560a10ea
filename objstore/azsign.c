/*
 * azsign.c - Azure Storage Shared Key signing (see azsign.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "azsign.h"
#include "sigutil.h"

/* The standard headers of the string to sign, in its order. */
static const char *const std_headers[] = {
	"content-encoding", "content-language", "content-length",
	"content-md5",	    "content-type",	"date",
	"if-modified-since", "if-match",	"if-none-match",
	"if-unmodified-since", "range",
};
#define N_STD (sizeof(std_headers) / sizeof(std_headers[0]))

int azsign_key_decode(const char *b64, unsigned char *out, size_t *len)
{
	size_t n = b64 ? strlen(b64) : 0, pad = 0, i;
	unsigned char tmp[3 * (AZSIGN_KEY_MAX + 3) / 3 + 8];
	int got;

	if (!n || n % 4 || n / 4 * 3 > sizeof(tmp) - 4)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b64[i];

		if (c == '=' && i >= n - 2) {
			pad++;
			continue;
		}
		if (pad || !(isalnum(c) || c == '+' || c == '/'))
			return -EINVAL;
	}
	got = EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)n);
	if (got < 0 || (size_t)got < pad || (size_t)got - pad == 0 ||
	    (size_t)got - pad > AZSIGN_KEY_MAX) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return -EINVAL;
	}
	*len = (size_t)got - pad;
	memcpy(out, tmp, *len);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

/* Query pairs sorted by name, then value: names lower-cased. */
static int query_cmp(const void *a, const void *b)
{
	const struct sign_pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static void add_resource(struct sb *b, const char *account,
			 const struct azsign_req *r, struct sign_pair *q)
{
	size_t i, j;

	sb_addc(b, '/');
	sb_adds(b, account);
	sb_adds(b, r->path);
	for (i = 0; i < r->n_query; i++) {
		const char *v = r->query[i].value ? r->query[i].value : "";

		q[i].name = strdup(r->query[i].name);
		q[i].value = strdup(v);
		q[i].order = i;
		if (!q[i].name || !q[i].value) {
			b->err = -ENOMEM;
			return;
		}
		for (j = 0; q[i].name[j]; j++)
			q[i].name[j] = (char)tolower(
				(unsigned char)q[i].name[j]);
	}
	qsort(q, r->n_query, sizeof(*q), query_cmp);
	for (i = 0; i < r->n_query; i++) {
		if (i && !strcmp(q[i].name, q[i - 1].name)) {
			sb_addc(b, ',');
		} else {
			sb_addc(b, '\n');
			sb_adds(b, q[i].name);
			sb_addc(b, ':');
		}
		sb_adds(b, q[i].value);
	}
}

int azsign_string_to_sign(const char *account, const struct azsign_req *r,
			  char **out)
{
	struct sb b = { 0 };
	struct sign_pair *h = NULL, *q = NULL;
	size_t i, k;
	int rc = 0;

	*out = NULL;
	if (!account || !*account || !r->method || !*r->method || !r->path ||
	    r->path[0] != '/')
		return -EINVAL;
	h = calloc(r->n_headers + 1, sizeof(*h));
	q = calloc(r->n_query + 1, sizeof(*q));
	if (!h || !q) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < r->n_headers; i++) {
		rc = sign_canon_header(r->headers[i].name,
				       r->headers[i].value, &h[i]);
		h[i].order = i;
		if (rc < 0)
			goto out;
	}
	qsort(h, r->n_headers, sizeof(*h), sign_pair_cmp);

	sb_adds(&b, r->method);
	sb_addc(&b, '\n');
	for (k = 0; k < N_STD; k++) {
		for (i = 0; i < r->n_headers; i++) {
			if (strcmp(h[i].name, std_headers[k]))
				continue;
			/* A length of 0 is signed as an empty line. */
			if (strcmp(h[i].name, "content-length") ||
			    strcmp(h[i].value, "0"))
				sb_adds(&b, h[i].value);
			break;
		}
		sb_addc(&b, '\n');
	}
	for (i = 0, k = 0; i < r->n_headers; i++) {
		if (strncmp(h[i].name, "x-ms-", 5))
			continue;
		if (k && !strcmp(h[i].name, h[i - 1].name)) {
			sb_addc(&b, ',');
		} else {
			if (k++)
				sb_addc(&b, '\n');
			sb_adds(&b, h[i].name);
			sb_addc(&b, ':');
		}
		sb_adds(&b, h[i].value);
	}
	if (k)
		sb_addc(&b, '\n');
	add_resource(&b, account, r, q);
	rc = b.err;
out:
	sign_pairs_free(h, r->n_headers);
	sign_pairs_free(q, r->n_query);
	if (rc < 0) {
		free(b.p);
		return rc;
	}
	*out = b.p;
	return 0;
}

int azsign_authorization(const char *account, const unsigned char *key,
			 size_t keylen, const struct azsign_req *r, char *out,
			 size_t outsz)
{
	unsigned char mac[32];
	char sig[64];
	char *sts = NULL;
	int rc, n;

	if (!key || !keylen)
		return -EINVAL;
	rc = azsign_string_to_sign(account, r, &sts);
	if (rc < 0)
		return rc;
	rc = sign_hmac_sha256(key, keylen, sts, strlen(sts), mac);
	free(sts);
	if (rc < 0)
		return rc;
	EVP_EncodeBlock((unsigned char *)sig, mac, sizeof(mac));
	OPENSSL_cleanse(mac, sizeof(mac));
	n = snprintf(out, outsz, "SharedKey %s:%s", account, sig);
	if (n < 0 || (size_t)n >= outsz)
		return -ENAMETOOLONG;
	return n;
}
