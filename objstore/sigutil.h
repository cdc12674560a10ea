/*
 * sigutil.h - pieces shared by the request signers (sigv4.c, azsign.c):
 * a growing string, header canonicalization and HMAC-SHA256.
 *
 * Not for use outside objstore/.  Thread-safety: every function touches
 * only its arguments.
 */
#ifndef CH5_SIGUTIL_H
#define CH5_SIGUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* A growing NUL-terminated string (p is NULL until something is added);
 * an allocation failure sticks in `err` (-ENOMEM) and later adds do
 * nothing.  The owner frees p. */
struct sb {
	char *p;
	size_t len, cap;
	int err;
};

/* Append n bytes of s / the string s / the byte c. */
void sb_add(struct sb *b, const char *s, size_t n);
void sb_adds(struct sb *b, const char *s);
void sb_addc(struct sb *b, char c);

/* A canonical header (or query parameter): both malloc'd. */
struct sign_pair {
	char *name, *value;
	size_t order; /* position given, for a stable sort */
};

/* qsort comparator: by name (bytewise), then by position given. */
int sign_pair_cmp(const void *a, const void *b);

/* Free n pairs and the array.  NULL is a no-op. */
void sign_pairs_free(struct sign_pair *p, size_t n);

/* The canonical form of header `name`: `value` into *out, the name
 * lower-cased, the value trimmed and every inner run of white space
 * (including the line breaks of a folded value) made one space.
 * Returns 0, -EINVAL (an empty name, or a byte in it that is not an HTTP
 * token character, RFC 9110) or -ENOMEM; out's strings are set or NULL
 * either way (free with sign_pairs_free). */
int sign_canon_header(const char *name, const char *value,
		      struct sign_pair *out);

/* out = HMAC-SHA256(key, data), 32 bytes.  0 or -EIO. */
int sign_hmac_sha256(const void *key, size_t klen, const void *data,
		     size_t dlen, unsigned char *out);

#endif
