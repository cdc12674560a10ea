/*
 * test_sigv4.c - objstore/sigv4 against the official AWS SigV4 test suite
 * (../shared/sigv4/aws4_testsuite, or $CH5_SIGV4_SUITE: canonical request,
 * string to sign and Authorization of every case) and against the worked
 * S3 examples of the AWS documentation ("Signature Calculations for the
 * Authorization Header: Transferring Payload in a Single Chunk").
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sigv4.h"

#define SUITE_DATE "20150830T123600Z"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int unhexc(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
				      : -1;
}

/* Percent-decode in place (the suite's .req query strings are sent as
 * they are; the signer takes decoded names and values). */
static void pct_decode(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s == '%' && unhexc(s[1]) >= 0 && unhexc(s[2]) >= 0) {
			*o++ = (char)(unhexc(s[1]) * 16 + unhexc(s[2]));
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

struct parsed {
	char *text; /* owns the strings below */
	struct sigv4_req r;
	struct sigv4_kv q[32], h[32];
	char hash[SIGV4_SHA256_HEX_LEN + 1];
};

/* Parse a suite .req: request line, headers (a line starting with a space
 * continues the previous value), blank line, body. */
static void parse_req(const char *path, struct parsed *p)
{
	char *line, *next, *sp, *qs, *body = NULL;
	size_t nh = 0;

	memset(p, 0, sizeof(*p));
	p->text = slurp(path);
	assert_non_null(p->text);
	line = p->text;
	next = strchr(line, '\n');
	if (next)
		*next++ = '\0';
	sp = strchr(line, ' ');
	assert_non_null(sp);
	*sp = '\0';
	p->r.method = line;
	line = sp + 1;
	sp = strrchr(line, ' '); /* " HTTP/1.1" */
	assert_non_null(sp);
	*sp = '\0';
	qs = strchr(line, '?');
	if (qs) {
		char *tok, *save = NULL;

		*qs++ = '\0';
		for (tok = strtok_r(qs, "&", &save); tok;
		     tok = strtok_r(NULL, "&", &save)) {
			char *eq = strchr(tok, '=');

			if (eq)
				*eq++ = '\0';
			pct_decode(tok);
			p->q[p->r.n_query].name = tok;
			p->q[p->r.n_query].value = eq ? eq : "";
			p->r.n_query++;
		}
	}
	p->r.path = line;
	while (next && *next) {
		line = next;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!*line) {
			body = next;
			break;
		}
		if (line[0] == ' ' && nh) {
			/* Folded: the signer collapses the whitespace. */
			line[-1] = '\n';
			continue;
		}
		sp = strchr(line, ':');
		assert_non_null(sp);
		*sp = '\0';
		p->h[nh].name = line;
		p->h[nh].value = sp + 1;
		nh++;
	}
	p->r.query = p->q;
	p->r.headers = p->h;
	p->r.n_headers = nh;
	sigv4_sha256_hex(body ? body : "", body ? strlen(body) : 0, p->hash);
	p->r.payload_hash = p->hash;
	p->r.normalize_path = true; /* service "service", not S3 */
}

static int suite_case(const char *dir, const char *name, int *skipped)
{
	static const struct sigv4_cred cred = {
		"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		"us-east-1", "service"
	};
	char path[4096], *want, *creq, *sts;
	char authz[2048];
	struct parsed p;
	struct sigv4_kv extra[33];
	const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;

	snprintf(path, sizeof(path), "%s/%s/%s.req", dir, name, base);
	if (access(path, R_OK) != 0) {
		(*skipped)++;
		return 0;
	}
	parse_req(path, &p);
	/* The session-token case signs a header its .req lacks: take it
	 * from the signed request. */
	if (!strcmp(base, "get-vanilla-with-session-token")) {
		char *sreq, *t;

		snprintf(path, sizeof(path), "%s/%s/%s.sreq", dir, name, base);
		sreq = slurp(path);
		assert_non_null(sreq);
		t = strstr(sreq, "X-Amz-Security-Token:");
		assert_non_null(t);
		t += strlen("X-Amz-Security-Token:");
		t[strcspn(t, "\n")] = '\0';
		memcpy(extra, p.h, p.r.n_headers * sizeof(*extra));
		extra[p.r.n_headers].name = "X-Amz-Security-Token";
		extra[p.r.n_headers].value = t;
		p.r.headers = extra;
		p.r.n_headers++;
		/* sreq stays allocated until the end of the case */
		snprintf(path, sizeof(path), "%s/%s/%s.creq", dir, name, base);
		want = slurp(path);
		assert_int_equal(sigv4_canonical_request(&p.r, &creq, NULL),
				 0);
		assert_string_equal(creq, want);
		free(want);
		free(creq);
		free(sreq);
		free(p.text);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s/%s.creq", dir, name, base);
	want = slurp(path);
	assert_non_null(want);
	assert_int_equal(sigv4_canonical_request(&p.r, &creq, NULL), 0);
	if (strcmp(creq, want))
		fail_msg("%s: canonical request\n--- want\n%s\n--- got\n%s",
			 name, want, creq);
	free(want);
	snprintf(path, sizeof(path), "%s/%s/%s.sts", dir, name, base);
	want = slurp(path);
	assert_int_equal(sigv4_string_to_sign(SUITE_DATE, "us-east-1",
					      "service", creq, &sts),
			 0);
	assert_string_equal(sts, want);
	free(want);
	snprintf(path, sizeof(path), "%s/%s/%s.authz", dir, name, base);
	want = slurp(path);
	assert_true(sigv4_authorization(&cred, SUITE_DATE, &p.r, authz,
					sizeof(authz)) > 0);
	assert_string_equal(authz, want);
	free(want);
	free(sts);
	free(creq);
	free(p.text);
	return 1;
}

static void test_aws_suite(void **state)
{
	const char *dir = getenv("CH5_SIGV4_SUITE");
	const char *groups[] = { "", "normalize-path", "post-sts-token" };
	int n = 0, skipped = 0;
	size_t g;

	(void)state;
	if (!dir || access(dir, R_OK) != 0) {
		print_message("AWS SigV4 suite not found (CH5_SIGV4_SUITE=%s); "
			      "skipped\n", dir ? dir : "");
		skip();
	}
	for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		char gdir[1024];
		struct dirent *de;
		DIR *d;

		snprintf(gdir, sizeof(gdir), "%s/%s", dir, groups[g]);
		d = opendir(gdir);
		assert_non_null(d);
		while ((de = readdir(d))) {
			char name[512];
			struct stat sb;

			if (de->d_name[0] == '.' ||
			    (!g && (!strcmp(de->d_name, "normalize-path") ||
				    !strcmp(de->d_name, "post-sts-token"))))
				continue;
			snprintf(name, sizeof(name), "%s%s%s", groups[g],
				 g ? "/" : "", de->d_name);
			snprintf(gdir + strlen(gdir), 0, "%s", "");
			{
				char full[1600];

				snprintf(full, sizeof(full), "%s/%s", dir,
					 name);
				if (stat(full, &sb) != 0 ||
				    !S_ISDIR(sb.st_mode))
					continue;
			}
			n += suite_case(dir, name, &skipped);
		}
		closedir(d);
	}
	print_message("AWS SigV4 suite: %d cases signed, %d without a .req\n",
		      n, skipped);
	assert_true(n >= 25);
}

/* The S3 examples of the AWS documentation, signed with AWS's example
 * credentials on 20130524T000000Z in us-east-1 (path-style here is the
 * virtual-hosted request's path; the bucket is in the Host). */
static const struct sigv4_cred s3_cred = {
	"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	"us-east-1", "s3"
};
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_DATE "20130524T000000Z"

static void check_s3(const struct sigv4_req *r, const char *signature)
{
	char authz[1024];

	assert_true(sigv4_authorization(&s3_cred, S3_DATE, r, authz,
					sizeof(authz)) > 0);
	assert_non_null(strstr(authz, "Credential=AKIAIOSFODNN7EXAMPLE/"
				      "20130524/us-east-1/s3/aws4_request"));
	assert_string_equal(strstr(authz, "Signature=") + 10, signature);
}

static void test_s3_doc_examples(void **state)
{
	(void)state;
	{ /* GET Object with a Range */
		const struct sigv4_kv h[] = {
			{ "Host", "examplebucket.s3.amazonaws.com" },
			{ "Range", "bytes=0-9" },
			{ "x-amz-content-sha256", EMPTY_SHA },
			{ "x-amz-date", S3_DATE },
		};
		const struct sigv4_req r = { "GET", "/test.txt", NULL, 0, h, 4,
					     EMPTY_SHA, false };

		check_s3(&r, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba4"
			     "8dd91039c6036bdb41");
	}
	{ /* PUT Object: the key has a '$', the body is signed */
		const char *body = "Welcome to Amazon S3.";
		char sha[SIGV4_SHA256_HEX_LEN + 1];
		const struct sigv4_kv h[] = {
			{ "Date", "Fri, 24 May 2013 00:00:00 GMT" },
			{ "Host", "examplebucket.s3.amazonaws.com" },
			{ "x-amz-content-sha256", NULL },
			{ "x-amz-date", S3_DATE },
			{ "x-amz-storage-class", "REDUCED_REDUNDANCY" },
		};
		struct sigv4_kv hh[5];
		struct sigv4_req r = { "PUT", "/test$file.text", NULL, 0, hh,
				       5, sha, false };

		sigv4_sha256_hex(body, strlen(body), sha);
		memcpy(hh, h, sizeof(h));
		hh[2].value = sha;
		check_s3(&r, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a"
			     "1b5971af0ece108bd");
	}
	{ /* GET Bucket lifecycle: a query parameter without a value */
		const struct sigv4_kv q[] = { { "lifecycle", "" } };
		const struct sigv4_kv h[] = {
			{ "Host", "examplebucket.s3.amazonaws.com" },
			{ "x-amz-content-sha256", EMPTY_SHA },
			{ "x-amz-date", S3_DATE },
		};
		const struct sigv4_req r = { "GET", "/", q, 1, h, 3, EMPTY_SHA,
					     false };

		check_s3(&r, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91a"
			     "c7a200a0136783543");
	}
	{ /* GET Bucket (list objects), parameters given out of order */
		const struct sigv4_kv q[] = { { "prefix", "J" },
					      { "max-keys", "2" } };
		const struct sigv4_kv h[] = {
			{ "Host", "examplebucket.s3.amazonaws.com" },
			{ "x-amz-content-sha256", EMPTY_SHA },
			{ "x-amz-date", S3_DATE },
		};
		const struct sigv4_req r = { "GET", "/", q, 2, h, 3, EMPTY_SHA,
					     false };

		check_s3(&r, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db66"
			     "70ed5711ef69dc6f7");
	}
}

static void test_encoding_and_errors(void **state)
{
	char out[64], *creq = NULL;
	const struct sigv4_kv bad[] = { { "Bad Header", "x" } };
	const struct sigv4_req r = { "GET", "/k", NULL, 0, bad, 1, EMPTY_SHA,
				     false };
	const struct sigv4_kv h[] = { { "host", "h" } };
	const struct sigv4_req s3 = { "GET", "/b/a b//c+d=e&f~g/./..", NULL,
				      0, h, 1, EMPTY_SHA, false };

	(void)state;
	assert_int_equal(sigv4_uri_encode("a b/c+~", 7, true, out,
					  sizeof(out)),
			 11);
	assert_string_equal(out, "a%20b/c%2B~");
	assert_int_equal(sigv4_uri_encode("a/b", 3, false, out, sizeof(out)),
			 5);
	assert_string_equal(out, "a%2Fb");
	assert_int_equal(sigv4_uri_encode("\xc3\xa9", 2, true, out, 4),
			 -ENAMETOOLONG);
	assert_int_equal(sigv4_canonical_request(&r, &creq, NULL), -EINVAL);
	assert_null(creq);
	/* S3: the key is encoded once and never normalized. */
	assert_int_equal(sigv4_canonical_request(&s3, &creq, NULL), 0);
	assert_non_null(strstr(creq, "\n/b/a%20b//c%2Bd%3De%26f~g/./..\n"));
	free(creq);
	assert_int_equal(sigv4_string_to_sign("2013-05-24", "r", "s", "x",
					      &creq),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aws_suite),
		cmocka_unit_test(test_s3_doc_examples),
		cmocka_unit_test(test_encoding_and_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
