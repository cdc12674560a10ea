/*
 * test_s3conf.c - unit tests of ost_s3_resolve() (objstore/s3conf.c):
 * where each S3 setting comes from (mount option, then environment, then
 * ~/.aws/credentials and ~/.aws/config), the CA bundle (-o ca_bundle,
 * AWS_CA_BUNDLE, ca_bundle in the config file), and how AWS_USE_TLS and
 * the endpoint's scheme go together.  No request is made.
 *
 * Every test starts from an environment without AWS_* settings, with
 * AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE pointing into a fresh
 * temporary directory (so a developer's ~/.aws never leaks in), and with
 * that directory as the working directory.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "s3.h"

static const char *const aws_vars[] = {
	"AWS_ACCESS_KEY_ID",	   "AWS_SECRET_ACCESS_KEY",
	"AWS_SESSION_TOKEN",	   "AWS_REGION",
	"AWS_DEFAULT_REGION",	   "AWS_ENDPOINT_URL_S3",
	"AWS_ENDPOINT_URL",	   "AWS_USE_TLS",
	"AWS_S3_ADDRESSING_STYLE", "AWS_SIGNED_PAYLOADS",
	"AWS_PROFILE",		   "AWS_CA_BUNDLE",
	"BUCKET_NAME",
};

struct tctx {
	char dir[PATH_MAX];  /* the temporary directory (absolute, real) */
	char old_cwd[PATH_MAX];
	char config[PATH_MAX + 16]; /* dir/config: AWS_CONFIG_FILE */
	char creds[PATH_MAX + 16];  /* dir/credentials */
	struct ost_s3_resolved r;
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	size_t i;
	char tmpl[] = "/tmp/ch5-s3conf-XXXXXX";

	assert_non_null(t);
	assert_non_null(mkdtemp(tmpl));
	assert_non_null(realpath(tmpl, t->dir));
	assert_non_null(getcwd(t->old_cwd, sizeof(t->old_cwd)));
	assert_int_equal(chdir(t->dir), 0);
	snprintf(t->config, sizeof(t->config), "%s/config", t->dir);
	snprintf(t->creds, sizeof(t->creds), "%s/credentials", t->dir);
	write_file(t->config, "");
	write_file(t->creds, "");
	for (i = 0; i < sizeof(aws_vars) / sizeof(aws_vars[0]); i++)
		unsetenv(aws_vars[i]);
	setenv("AWS_CONFIG_FILE", t->config, 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", t->creds, 1);
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret-test", 1);
	/* Three CA bundles (their content is not looked at here). */
	write_file("a.pem", "-----BEGIN CERTIFICATE-----\n");
	write_file("b.pem", "-----BEGIN CERTIFICATE-----\n");
	write_file("c.pem", "-----BEGIN CERTIFICATE-----\n");
	assert_int_equal(mkdir("adir", 0700), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;
	const char *files[] = { "config", "credentials", "a.pem", "b.pem",
				"c.pem" };
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir("adir");
	assert_int_equal(chdir(t->old_cwd), 0);
	rmdir(t->dir);
	free(t);
	return 0;
}

/* ost_s3_resolve() of source "bkt" with options o. */
static int resolve(struct tctx *t, const struct ost_s3_opts *o)
{
	return ost_s3_resolve("bkt", o, &t->r);
}

static const struct ost_s3_opts no_opts = { .signed_payloads = -1 };

/* The absolute path of name in the test directory. */
static const char *in_dir(struct tctx *t, const char *name)
{
	static char buf[PATH_MAX + 16];

	snprintf(buf, sizeof(buf), "%s/%s", t->dir, name);
	return buf;
}

/* --- the CA bundle --------------------------------------------------- */

static void test_ca_bundle_none(void **state)
{
	struct tctx *t = *state;

	assert_int_equal(resolve(t, NULL), 0);
	assert_null(t->r.cfg.ca_bundle);
	assert_false(t->r.cfg.insecure);
}

/* -o ca_bundle beats AWS_CA_BUNDLE, which beats the config file's
 * ca_bundle; each is made an absolute path. */
static void test_ca_bundle_precedence(void **state)
{
	struct tctx *t = *state;
	struct ost_s3_opts o = no_opts;

	write_file(t->config, "[default]\nregion = eu-west-1\n"
			      "ca_bundle = c.pem\n");
	assert_int_equal(resolve(t, NULL), 0);
	assert_string_equal(t->r.cfg.ca_bundle, in_dir(t, "c.pem"));

	setenv("AWS_CA_BUNDLE", "b.pem", 1);
	assert_int_equal(resolve(t, NULL), 0);
	assert_string_equal(t->r.cfg.ca_bundle, in_dir(t, "b.pem"));

	o.ca_bundle = "./a.pem";
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.ca_bundle, in_dir(t, "a.pem"));
	assert_string_equal(t->r.cfg.region, "eu-west-1");

	/* An empty AWS_CA_BUNDLE is no setting. */
	setenv("AWS_CA_BUNDLE", "", 1);
	assert_int_equal(resolve(t, NULL), 0);
	assert_string_equal(t->r.cfg.ca_bundle, in_dir(t, "c.pem"));
}

/* ca_bundle of a named profile of the config file; the credentials file
 * of another profile does not count. */
static void test_ca_bundle_profile(void **state)
{
	struct tctx *t = *state;
	struct ost_s3_opts o = no_opts;

	write_file(t->config, "[default]\nca_bundle = a.pem\n\n"
			      "[profile lab]\nregion = lab-1\n"
			      "ca_bundle = b.pem\ns3 =\n"
			      "  addressing_style = virtual\n");
	o.profile = "lab";
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.ca_bundle, in_dir(t, "b.pem"));
	assert_string_equal(t->r.cfg.region, "lab-1");
	assert_true(t->r.cfg.virtual_host);

	o.profile = NULL;
	setenv("AWS_PROFILE", "lab", 1);
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.ca_bundle, in_dir(t, "b.pem"));
	unsetenv("AWS_PROFILE");
	assert_int_equal(resolve(t, NULL), 0);
	assert_string_equal(t->r.cfg.ca_bundle, in_dir(t, "a.pem"));
}

static void test_ca_bundle_bad(void **state)
{
	struct tctx *t = *state;
	struct ost_s3_opts o = no_opts;

	o.ca_bundle = "missing.pem";
	assert_int_equal(resolve(t, &o), -ENOENT);
	o.ca_bundle = "adir";
	assert_int_equal(resolve(t, &o), -EINVAL);
	o.ca_bundle = NULL;
	setenv("AWS_CA_BUNDLE", "/nonexistent/ca.pem", 1);
	assert_int_equal(resolve(t, &o), -ENOENT);
	unsetenv("AWS_CA_BUNDLE");
	write_file(t->config, "[default]\nca_bundle = gone.pem\n");
	assert_int_equal(resolve(t, &o), -ENOENT);
	/* A good option hides a bad lower setting. */
	o.ca_bundle = "a.pem";
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.ca_bundle, in_dir(t, "a.pem"));
}

static void test_insecure(void **state)
{
	struct tctx *t = *state;
	struct ost_s3_opts o = no_opts;

	o.insecure = true;
	o.endpoint = "https://127.0.0.1:7484";
	assert_int_equal(resolve(t, &o), 0);
	assert_true(t->r.cfg.insecure);
	assert_string_equal(t->r.cfg.endpoint, "https://127.0.0.1:7484");
}

/* --- AWS_USE_TLS and the endpoint's scheme --------------------------- */

static void test_use_tls_scheme_less(void **state)
{
	struct tctx *t = *state;
	struct ost_s3_opts o = no_opts;

	/* Without AWS_USE_TLS a HOST[:PORT] endpoint is https. */
	o.endpoint = "s3.example.org:7484";
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.endpoint, "https://s3.example.org:7484");
	setenv("AWS_USE_TLS", "true", 1);
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.endpoint, "https://s3.example.org:7484");
	setenv("AWS_USE_TLS", "false", 1);
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.endpoint, "http://s3.example.org:7484");
	setenv("AWS_USE_TLS", "0", 1);
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.endpoint, "http://s3.example.org:7484");
	/* The same from the environment. */
	o.endpoint = NULL;
	setenv("AWS_ENDPOINT_URL", "10.0.0.1:80", 1);
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.endpoint, "http://10.0.0.1:80");
	/* A path-style default off AWS. */
	assert_false(t->r.cfg.virtual_host);
}

static void test_use_tls_with_scheme(void **state)
{
	struct tctx *t = *state;
	struct ost_s3_opts o = no_opts;

	o.endpoint = "http://127.0.0.1:7483";
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.endpoint, "http://127.0.0.1:7483");
	setenv("AWS_USE_TLS", "false", 1);
	assert_int_equal(resolve(t, &o), 0);
	/* A scheme that contradicts a set AWS_USE_TLS is refused, wherever
	 * the endpoint came from. */
	setenv("AWS_USE_TLS", "true", 1);
	assert_int_equal(resolve(t, &o), -EINVAL);
	o.endpoint = "https://127.0.0.1:7484";
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.endpoint, "https://127.0.0.1:7484");
	setenv("AWS_USE_TLS", "no", 1);
	assert_int_equal(resolve(t, &o), -EINVAL);
	o.endpoint = NULL;
	setenv("AWS_ENDPOINT_URL_S3", "https://127.0.0.1:7484", 1);
	assert_int_equal(resolve(t, &o), -EINVAL);
	setenv("AWS_USE_TLS", "yes", 1);
	assert_int_equal(resolve(t, &o), 0);
	assert_string_equal(t->r.cfg.endpoint, "https://127.0.0.1:7484");
}

static void test_use_tls_bad_value(void **state)
{
	struct tctx *t = *state;
	struct ost_s3_opts o = no_opts;

	o.endpoint = "127.0.0.1:7483";
	setenv("AWS_USE_TLS", "maybe", 1);
	assert_int_equal(resolve(t, &o), -EINVAL);
}

/* No endpoint at all: AWS (https, virtual-hosted), which AWS_USE_TLS does
 * not change. */
static void test_use_tls_aws(void **state)
{
	struct tctx *t = *state;

	assert_int_equal(resolve(t, NULL), 0);
	assert_null(t->r.cfg.endpoint);
	assert_true(t->r.cfg.virtual_host);
	setenv("AWS_USE_TLS", "false", 1);
	assert_int_equal(resolve(t, NULL), 0);
	assert_null(t->r.cfg.endpoint);
}

/* --- other settings -------------------------------------------------- */

static void test_addressing(void **state)
{
	struct tctx *t = *state;
	struct ost_s3_opts o = no_opts;

	o.endpoint = "http://s3.localhost:7483";
	assert_int_equal(resolve(t, &o), 0);
	assert_false(t->r.cfg.virtual_host);
	o.addressing = "virtual";
	assert_int_equal(resolve(t, &o), 0);
	assert_true(t->r.cfg.virtual_host);
	o.addressing = NULL;
	setenv("AWS_S3_ADDRESSING_STYLE", "virtual", 1);
	assert_int_equal(resolve(t, &o), 0);
	assert_true(t->r.cfg.virtual_host);
	o.addressing = "path"; /* the option beats the environment */
	assert_int_equal(resolve(t, &o), 0);
	assert_false(t->r.cfg.virtual_host);
	o.addressing = "sideways";
	assert_int_equal(resolve(t, &o), -EINVAL);
}

static void test_sources(void **state)
{
	struct tctx *t = *state;

	assert_int_equal(ost_s3_resolve("s3://b1/p/q", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.bucket, "b1");
	assert_string_equal(t->r.cfg.prefix, "p/q");
	assert_int_equal(ost_s3_resolve("b2:/x", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.bucket, "b2");
	assert_string_equal(t->r.cfg.prefix, "x");
	assert_int_equal(ost_s3_resolve("s3://", NULL, &t->r), -EINVAL);
	setenv("BUCKET_NAME", "b3", 1);
	assert_int_equal(ost_s3_resolve("s3://", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.bucket, "b3");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ca_bundle_none, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ca_bundle_precedence,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_bundle_profile, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ca_bundle_bad, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_insecure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_use_tls_scheme_less,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_use_tls_with_scheme,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_use_tls_bad_value, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_use_tls_aws, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_addressing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sources, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
