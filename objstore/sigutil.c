/*
 * sigutil.c - pieces shared by the request signers (see sigutil.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigutil.h"

void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		char *np;

		while (nc < b->len + n + 1)
			nc *= 2;
		np = realloc(b->p, nc);
		if (!np) {
			b->err = -ENOMEM;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void sb_adds(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

void sb_addc(struct sb *b, char c)
{
	sb_add(b, &c, 1);
}

int sign_pair_cmp(const void *a, const void *b)
{
	const struct sign_pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

void sign_pairs_free(struct sign_pair *p, size_t n)
{
	size_t i;

	for (i = 0; p && i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

/* HTTP token characters (RFC 9110), the only ones a header name has. */
static bool token_char(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

int sign_canon_header(const char *name, const char *value,
		      struct sign_pair *out)
{
	size_t nl = strlen(name), i, o = 0;
	const char *v = value ? value : "";
	bool space = false;

	out->name = malloc(nl + 1);
	out->value = malloc(strlen(v) + 1);
	if (!out->name || !out->value)
		return -ENOMEM;
	if (!nl)
		return -EINVAL;
	for (i = 0; i < nl; i++) {
		if (!token_char((unsigned char)name[i]))
			return -EINVAL;
		out->name[i] = (char)tolower((unsigned char)name[i]);
	}
	out->name[nl] = '\0';
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
			space = o > 0;
			continue;
		}
		if (space)
			out->value[o++] = ' ';
		space = false;
		out->value[o++] = *v;
	}
	out->value[o] = '\0';
	return 0;
}

int sign_hmac_sha256(const void *key, size_t klen, const void *data,
		     size_t dlen, unsigned char *out)
{
	unsigned int olen = 0;

	if (!HMAC(EVP_sha256(), key, (int)klen, data, dlen, out, &olen) ||
	    olen != 32)
		return -EIO;
	return 0;
}
