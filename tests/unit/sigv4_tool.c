/*
 * sigv4_tool.c - sign requests read from stdin with objstore/sigv4, for
 * tests that compare against an independent implementation (botocore).
 *
 * One request per line, fields separated by single spaces; strings are
 * hex-encoded bytes ("-" = empty), counts are decimal:
 *   METHOD PATH REGION SERVICE ACCESS SECRET AMZDATE PAYLOADHASH
 *   NQ [NAME VALUE]... NH [NAME VALUE]...
 * For each, one line out: the Authorization header value, or "ERR <errno>".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"
#include "hexfields.h"

#define MAXF HEXFIELDS_MAX

int main(void)
{
	char *line = NULL;
	size_t cap = 0;

	while (getline(&line, &cap, stdin) > 0) {
		char *f[MAXF], *save = NULL, *t;
		struct sigv4_kv q[MAXF], h[MAXF];
		struct sigv4_cred c;
		struct sigv4_req r;
		char out[8192];
		size_t nf = 0, i, k, nq, nh;
		int rc;

		for (t = strtok_r(line, " \n", &save); t && nf < MAXF;
		     t = strtok_r(NULL, " \n", &save))
			f[nf++] = t;
		if (nf < 10)
			return 2;
		memset(&r, 0, sizeof(r));
		r.method = unhex(f[0]);
		r.path = unhex(f[1]);
		c.region = unhex(f[2]);
		c.service = unhex(f[3]);
		c.access_key = unhex(f[4]);
		c.secret_key = unhex(f[5]);
		k = 8;
		nq = strtoul(f[k++], NULL, 10);
		for (i = 0; i < nq && k + 1 < nf; i++, k += 2) {
			q[i].name = unhex(f[k]);
			q[i].value = unhex(f[k + 1]);
		}
		nh = k < nf ? strtoul(f[k++], NULL, 10) : 0;
		for (i = 0; i < nh && k + 1 < nf; i++, k += 2) {
			h[i].name = unhex(f[k]);
			h[i].value = unhex(f[k + 1]);
		}
		r.query = q;
		r.n_query = nq;
		r.headers = h;
		r.n_headers = nh;
		r.payload_hash = unhex(f[7]);
		{
			char *date = unhex(f[6]);

			rc = sigv4_authorization(&c, date, &r, out,
						 sizeof(out));
		}
		if (rc < 0)
			printf("ERR %d\n", -rc);
		else
			printf("%s\n", out);
		fflush(stdout);
		hexfields_free();
	}
	free(line);
	return 0;
}
