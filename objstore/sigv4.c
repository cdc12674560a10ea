/*
 * sigv4.c - AWS Signature Version 4 (see sigv4.h for the contract).
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "sigutil.h"
#include "sigv4.h"

static bool unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void sb_encode(struct sb *b, const char *s, size_t len,
		      bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (unreserved(c) || (keep_slash && c == '/')) {
			sb_addc(b, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			sb_add(b, e, 3);
		}
	}
}

int sigv4_uri_encode(const char *s, size_t len, bool keep_slash, char *out,
		     size_t outsz)
{
	struct sb b = { 0 };
	int rc;

	sb_encode(&b, s, len, keep_slash);
	if (b.err)
		return b.err;
	if (!b.p) {
		if (!outsz)
			return -ENAMETOOLONG;
		out[0] = '\0';
		return 0;
	}
	if (b.len + 1 > outsz) {
		rc = -ENAMETOOLONG;
	} else {
		memcpy(out, b.p, b.len + 1);
		rc = (int)b.len;
	}
	free(b.p);
	return rc;
}

static void hex_of(const unsigned char *d, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *data, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	hex_of(md, mdlen, out);
}

/* The path with RFC 3986 dot segments removed and empty segments
 * dropped; a trailing '/' stays. */
static void sb_normalized_path(struct sb *b, const char *path)
{
	const char **seg;
	size_t n = 0, cap = 1, i;
	const char *p;
	size_t plen = strlen(path);
	bool trailing = plen > 1 && path[plen - 1] == '/';
	char *copy = strdup(path), *tok, *save = NULL;

	for (p = path; *p; p++)
		cap += *p == '/';
	seg = calloc(cap, sizeof(*seg));
	if (!copy || !seg) {
		b->err = -ENOMEM;
		free(copy);
		free(seg);
		return;
	}
	for (tok = strtok_r(copy, "/", &save); tok;
	     tok = strtok_r(NULL, "/", &save)) {
		if (!strcmp(tok, "."))
			continue;
		if (!strcmp(tok, "..")) {
			if (n)
				n--;
			continue;
		}
		seg[n++] = tok;
	}
	for (i = 0; i < n; i++) {
		sb_addc(b, '/');
		sb_encode(b, seg[i], strlen(seg[i]), false);
	}
	if (!n || trailing)
		sb_addc(b, '/');
	free(copy);
	free(seg);
}

static int query_cmp(const void *a, const void *b)
{
	const struct sign_pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

int sigv4_canonical_request(const struct sigv4_req *r, char **out,
			    char **signed_headers)
{
	struct sb b = { 0 }, sh = { 0 };
	struct sign_pair *q = NULL, *h = NULL;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (signed_headers)
		*signed_headers = NULL;
	if (!r->method || !r->path || r->path[0] != '/' || !r->payload_hash)
		return -EINVAL;
	q = calloc(r->n_query + 1, sizeof(*q));
	h = calloc(r->n_headers + 1, sizeof(*h));
	if (!q || !h) {
		rc = -ENOMEM;
		goto out;
	}
	sb_adds(&b, r->method);
	sb_addc(&b, '\n');
	if (r->normalize_path)
		sb_normalized_path(&b, r->path);
	else
		sb_encode(&b, r->path, strlen(r->path), true);
	sb_addc(&b, '\n');

	for (i = 0; i < r->n_query; i++) {
		struct sb n = { 0 }, v = { 0 };

		sb_encode(&n, r->query[i].name, strlen(r->query[i].name),
			  false);
		sb_encode(&v, r->query[i].value ? r->query[i].value : "",
			  r->query[i].value ? strlen(r->query[i].value) : 0,
			  false);
		sb_add(&n, "", 0);
		sb_add(&v, "", 0);
		q[i].name = n.p;
		q[i].value = v.p;
		if (n.err || v.err || !n.p || !v.p) {
			rc = -ENOMEM;
			goto out;
		}
	}
	qsort(q, r->n_query, sizeof(*q), query_cmp);
	for (i = 0; i < r->n_query; i++) {
		if (i)
			sb_addc(&b, '&');
		sb_adds(&b, q[i].name);
		sb_addc(&b, '=');
		sb_adds(&b, q[i].value);
	}
	sb_addc(&b, '\n');

	for (i = 0; i < r->n_headers; i++) {
		rc = sign_canon_header(r->headers[i].name, r->headers[i].value,
				       &h[i]);
		h[i].order = i;
		if (rc < 0)
			goto out;
	}
	qsort(h, r->n_headers, sizeof(*h), sign_pair_cmp);
	for (i = 0; i < r->n_headers; i++) {
		bool repeat = i && !strcmp(h[i].name, h[i - 1].name);

		if (repeat) {
			sb_addc(&b, ',');
		} else {
			if (i) {
				sb_addc(&b, '\n');
				sb_addc(&sh, ';');
			}
			sb_adds(&b, h[i].name);
			sb_addc(&b, ':');
			sb_adds(&sh, h[i].name);
		}
		sb_adds(&b, h[i].value);
	}
	sb_adds(&b, "\n\n");
	sb_add(&sh, "", 0);
	sb_adds(&b, sh.p ? sh.p : "");
	sb_addc(&b, '\n');
	sb_adds(&b, r->payload_hash);
	rc = b.err ? b.err : sh.err;
out:
	sign_pairs_free(q, r->n_query);
	sign_pairs_free(h, r->n_headers);
	if (rc < 0) {
		free(b.p);
		free(sh.p);
		return rc;
	}
	*out = b.p;
	if (signed_headers)
		*signed_headers = sh.p;
	else
		free(sh.p);
	return 0;
}

static bool valid_amz_date(const char *d)
{
	size_t i;

	if (!d || strlen(d) != SIGV4_AMZ_DATE_LEN || d[8] != 'T' ||
	    d[15] != 'Z')
		return false;
	for (i = 0; i < 15; i++)
		if (i != 8 && !isdigit((unsigned char)d[i]))
			return false;
	return true;
}

int sigv4_string_to_sign(const char *amz_date, const char *region,
			 const char *service, const char *creq, char **out)
{
	char hash[SIGV4_SHA256_HEX_LEN + 1];
	struct sb b = { 0 };

	*out = NULL;
	if (!valid_amz_date(amz_date) || !region || !service || !creq)
		return -EINVAL;
	sigv4_sha256_hex(creq, strlen(creq), hash);
	sb_adds(&b, "AWS4-HMAC-SHA256\n");
	sb_adds(&b, amz_date);
	sb_addc(&b, '\n');
	sb_add(&b, amz_date, 8);
	sb_addc(&b, '/');
	sb_adds(&b, region);
	sb_addc(&b, '/');
	sb_adds(&b, service);
	sb_adds(&b, "/aws4_request\n");
	sb_adds(&b, hash);
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	return 0;
}

int sigv4_authorization(const struct sigv4_cred *c, const char *amz_date,
			const struct sigv4_req *r, char *out, size_t outsz)
{
	unsigned char k[32], k2[32];
	char sig[65];
	char *creq = NULL, *sh = NULL, *sts = NULL, *secret = NULL;
	size_t sl;
	int rc, n;

	if (!c || !c->access_key || !c->secret_key || !c->region ||
	    !c->service)
		return -EINVAL;
	rc = sigv4_canonical_request(r, &creq, &sh);
	if (rc == 0)
		rc = sigv4_string_to_sign(amz_date, c->region, c->service,
					  creq, &sts);
	if (rc < 0)
		goto out;
	sl = strlen(c->secret_key) + 4;
	secret = malloc(sl + 1);
	if (!secret) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(secret, "AWS4", 4);
	memcpy(secret + 4, c->secret_key, sl - 4 + 1);
	/* kDate, kRegion, kService, kSigning, then the signature. */
	rc = sign_hmac_sha256(secret, sl, amz_date, 8, k);
	if (!rc)
		rc = sign_hmac_sha256(k, 32, c->region, strlen(c->region), k2);
	if (!rc)
		rc = sign_hmac_sha256(k2, 32, c->service, strlen(c->service), k);
	if (!rc)
		rc = sign_hmac_sha256(k, 32, "aws4_request", 12, k2);
	if (!rc)
		rc = sign_hmac_sha256(k2, 32, sts, strlen(sts), k);
	if (rc < 0)
		goto out;
	hex_of(k, 32, sig);
	n = snprintf(out, outsz,
		     "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
		     "SignedHeaders=%s, Signature=%s",
		     c->access_key, amz_date, c->region, c->service, sh, sig);
	rc = n < 0 ? -EINVAL : (size_t)n >= outsz ? -ENAMETOOLONG : n;
out:
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(k2, sizeof(k2));
	if (secret) {
		OPENSSL_cleanse(secret, sl);
		free(secret);
	}
	free(creq);
	free(sh);
	free(sts);
	return rc;
}
