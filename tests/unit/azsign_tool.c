/*
 * azsign_tool.c - sign requests read from stdin with objstore/azsign, for
 * tests that compare against an independent implementation
 * (tests/integration/azblob.py, written from Microsoft's documentation).
 *
 * One request per line, fields separated by single spaces; strings are
 * hex-encoded bytes ("-" = empty), counts are decimal:
 *   METHOD PATH ACCOUNT KEY NQ [NAME VALUE]... NH [NAME VALUE]...
 * (KEY: the Base64 account key; PATH: the URI path as sent, percent-
 * encoded; query names and values decoded.)  For each, one line out: the
 * Authorization header value, or "ERR <errno>".  With --sts, the string to
 * sign instead, hex-encoded (it spans lines), or "ERR <errno>".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "azsign.h"
#include "hexfields.h"

#define MAXF HEXFIELDS_MAX

/* One request: its answer line on stdout. */
static void sign_one(char **f, size_t nf, int sts)
{
	struct azsign_kv q[MAXF], h[MAXF];
	struct azsign_req r;
	unsigned char key[AZSIGN_KEY_MAX];
	size_t keylen = 0, i, k, nq, nh;
	const char *account;
	char out[1024];
	int rc;

	memset(&r, 0, sizeof(r));
	r.method = unhex(f[0]);
	r.path = unhex(f[1]);
	account = unhex(f[2]);
	k = 4;
	nq = strtoul(f[k++], NULL, 10);
	for (i = 0; i < nq && i < MAXF && k + 1 < nf; i++, k += 2) {
		q[i].name = unhex(f[k]);
		q[i].value = unhex(f[k + 1]);
	}
	nq = i;
	nh = k < nf ? strtoul(f[k++], NULL, 10) : 0;
	for (i = 0; i < nh && i < MAXF && k + 1 < nf; i++, k += 2) {
		h[i].name = unhex(f[k]);
		h[i].value = unhex(f[k + 1]);
	}
	nh = i;
	r.query = q;
	r.n_query = nq;
	r.headers = h;
	r.n_headers = nh;

	if (sts) {
		char *s = NULL;

		rc = azsign_string_to_sign(account, &r, &s);
		if (rc < 0) {
			printf("ERR %d\n", -rc);
			return;
		}
		if (!*s)
			putchar('-');
		for (i = 0; s[i]; i++)
			printf("%02x", (unsigned char)s[i]);
		putchar('\n');
		free(s);
		return;
	}
	rc = azsign_key_decode(unhex(f[3]), key, &keylen);
	if (rc == 0)
		rc = azsign_authorization(account, key, keylen, &r, out,
					  sizeof(out));
	if (rc < 0)
		printf("ERR %d\n", -rc);
	else
		printf("%s\n", out);
}

int main(int argc, char **argv)
{
	int sts = argc > 1 && !strcmp(argv[1], "--sts");
	char *line = NULL;
	size_t cap = 0;

	while (getline(&line, &cap, stdin) > 0) {
		char *f[2 * MAXF + 8], *save = NULL, *t;
		size_t nf = 0;

		for (t = strtok_r(line, " \n", &save);
		     t && nf < sizeof(f) / sizeof(f[0]);
		     t = strtok_r(NULL, " \n", &save))
			f[nf++] = t;
		if (nf < 6)
			return 2;
		sign_one(f, nf, sts);
		fflush(stdout);
		hexfields_free();
	}
	free(line);
	return 0;
}
