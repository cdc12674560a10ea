/*
 * test_azconf.c - unit tests of ost_az_resolve() and ost_az_source()
 * (objstore/azconf.c): sources (az://, a bare name with
 * STORAGE_PLATFORM=Azure, BUCKET_NAME), connection strings (every field,
 * UseDevelopmentStorage, EndpointSuffix, DefaultEndpointsProtocol, '=' in
 * values), the precedence of mount options over the connection string over
 * the AZURE_STORAGE_* variables, the credential taken whole from one
 * source, passwd_file modes, and the errors.  Also ost_az_new()'s key
 * check.  No request is made.
 *
 * Every test starts from an environment without AZURE_STORAGE_*,
 * STORAGE_PLATFORM and BUCKET_NAME, in a fresh temporary directory.
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

#include "azure.h"
#include "s3.h"

#define KEY1 "a2V5LW9uZS1rZXktb25lLWtleS1vbmU="
#define KEY2 "a2V5LXR3by1rZXktdHdvLWtleS10d28="
#define DEVKEY                                                               \
	"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZF" \
	"PTOtr/KBHBeksoGMGw=="

static const char *const az_vars[] = {
	"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT",
	"AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "STORAGE_PLATFORM",
	"BUCKET_NAME",
};

struct tctx {
	char dir[PATH_MAX];
	char old_cwd[PATH_MAX];
	struct ost_az_resolved r;
};

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	char tmpl[] = "/tmp/ch5-azconf-XXXXXX";
	size_t i;

	assert_non_null(t);
	assert_non_null(mkdtemp(tmpl));
	assert_non_null(realpath(tmpl, t->dir));
	assert_non_null(getcwd(t->old_cwd, sizeof(t->old_cwd)));
	assert_int_equal(chdir(t->dir), 0);
	for (i = 0; i < sizeof(az_vars) / sizeof(az_vars[0]); i++)
		unsetenv(az_vars[i]);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;
	char cmd[PATH_MAX + 16];

	assert_int_equal(chdir(t->old_cwd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	assert_int_equal(system(cmd), 0);
	free(t);
	return 0;
}

static void test_sources(void **state)
{
	struct tctx *t = *state;

	assert_true(ost_az_source("az://c"));
	assert_true(ost_az_source("az://c/p/q"));
	assert_false(ost_az_source("mybucket"));
	assert_true(ost_s3_source("mybucket"));
	setenv("STORAGE_PLATFORM", "Azure", 1);
	assert_true(ost_az_source("mybucket"));
	assert_false(ost_s3_source("mybucket"));
	assert_false(ost_az_source("s3://b"));
	assert_true(ost_s3_source("s3://b"));
	assert_false(ost_az_source("file:///x"));
	assert_false(ost_az_source("/x"));

	setenv("AZURE_STORAGE_ACCOUNT", "acct", 1);
	setenv("AZURE_STORAGE_KEY", KEY1, 1);
	assert_int_equal(ost_az_resolve("az://cont/a/b", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.container, "cont");
	assert_string_equal(t->r.cfg.prefix, "a/b");
	assert_int_equal(ost_az_resolve("cont:/x/y", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.container, "cont");
	assert_string_equal(t->r.cfg.prefix, "x/y");
	assert_int_equal(ost_az_resolve("cont", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.prefix, "");
	/* ArrayMorph's BUCKET_NAME fills an empty container. */
	setenv("BUCKET_NAME", "fromenv", 1);
	assert_int_equal(ost_az_resolve("az://", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.container, "fromenv");
	unsetenv("BUCKET_NAME");
	assert_int_equal(ost_az_resolve("az://", NULL, &t->r), -EINVAL);
	assert_int_equal(ost_az_resolve("az://c/p:q", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.prefix, "p:q");
}

static void test_connection_string(void **state)
{
	struct tctx *t = *state;

	setenv("AZURE_STORAGE_CONNECTION_STRING",
	       "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
	       "AccountKey=" DEVKEY ";"
	       "BlobEndpoint=http://127.0.0.1:10010/devstoreaccount1;",
	       1);
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.account, "devstoreaccount1");
	assert_string_equal(t->r.cfg.key, DEVKEY); /* '=' kept */
	assert_null(t->r.cfg.sas);
	assert_string_equal(t->r.cfg.endpoint,
			    "http://127.0.0.1:10010/devstoreaccount1");

	/* No BlobEndpoint: built from the protocol, account and suffix. */
	setenv("AZURE_STORAGE_CONNECTION_STRING",
	       "accountname=acct;ACCOUNTKEY=" KEY1
	       ";EndpointSuffix=core.chinacloudapi.cn",
	       1);
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.endpoint,
			    "https://acct.blob.core.chinacloudapi.cn");
	setenv("AZURE_STORAGE_CONNECTION_STRING",
	       "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=" KEY1,
	       1);
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.endpoint,
			    "http://acct.blob.core.windows.net");

	/* A SAS, with '&' and '=' in it; no key. */
	setenv("AZURE_STORAGE_CONNECTION_STRING",
	       "BlobEndpoint=https://acct.blob.core.windows.net/;"
	       "SharedAccessSignature=sv=2021-08-06&ss=b&srt=co&sp=rl&se=2030-"
	       "01-01T00:00:00Z&sig=abc%2Bdef%3D;AccountName=acct",
	       1);
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), 0);
	assert_null(t->r.cfg.key);
	assert_string_equal(t->r.cfg.sas,
			    "sv=2021-08-06&ss=b&srt=co&sp=rl&se=2030-01-01T00:"
			    "00:00Z&sig=abc%2Bdef%3D");

	/* The emulator's shortcut. */
	setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true",
	       1);
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.account, "devstoreaccount1");
	assert_string_equal(t->r.cfg.key, DEVKEY);
	assert_string_equal(t->r.cfg.endpoint,
			    "http://127.0.0.1:10000/devstoreaccount1");

	/* Bad: not Name=Value; a protocol that is not http(s). */
	setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=a;junk", 1);
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), -EINVAL);
	setenv("AZURE_STORAGE_CONNECTION_STRING",
	       "DefaultEndpointsProtocol=ftp;AccountName=a;AccountKey=" KEY1,
	       1);
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), -EINVAL);
}

static void test_precedence(void **state)
{
	struct tctx *t = *state;
	struct ost_az_opts o = { 0 };

	setenv("AZURE_STORAGE_CONNECTION_STRING",
	       "AccountName=csacct;AccountKey=" KEY1
	       ";BlobEndpoint=http://127.0.0.1:1/csacct",
	       1);
	setenv("AZURE_STORAGE_ACCOUNT", "envacct", 1);
	setenv("AZURE_STORAGE_KEY", KEY2, 1);
	/* The connection string before the variables. */
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.account, "csacct");
	assert_string_equal(t->r.cfg.key, KEY1);
	/* The options before both. */
	o.account = "optacct";
	o.endpoint = "https://optacct.example";
	assert_int_equal(ost_az_resolve("az://c", &o, &t->r), 0);
	assert_string_equal(t->r.cfg.account, "optacct");
	assert_string_equal(t->r.cfg.endpoint, "https://optacct.example");
	assert_string_equal(t->r.cfg.key, KEY1);
	/* -o sas= replaces the key of the connection string. */
	o.sas = "sv=x&sp=r&sig=y";
	assert_int_equal(ost_az_resolve("az://c", &o, &t->r), 0);
	assert_null(t->r.cfg.key);
	assert_string_equal(t->r.cfg.sas, "sv=x&sp=r&sig=y");
	/* Only the variables. */
	unsetenv("AZURE_STORAGE_CONNECTION_STRING");
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.account, "envacct");
	assert_string_equal(t->r.cfg.key, KEY2);
	assert_string_equal(t->r.cfg.endpoint,
			    "https://envacct.blob.core.windows.net");
	unsetenv("AZURE_STORAGE_KEY");
	setenv("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sp=rl&sig=z", 1);
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), 0);
	assert_string_equal(t->r.cfg.sas, "?sv=1&sp=rl&sig=z");
	/* No credential at all, no account at all. */
	unsetenv("AZURE_STORAGE_SAS_TOKEN");
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), -EINVAL);
	unsetenv("AZURE_STORAGE_ACCOUNT");
	setenv("AZURE_STORAGE_KEY", KEY2, 1);
	assert_int_equal(ost_az_resolve("az://c", NULL, &t->r), -EINVAL);
}

static void test_passwd_file(void **state)
{
	struct tctx *t = *state;
	struct ost_az_opts o = { .passwd_file = "pw" };

	write_file("pw", "# comment\nacct:" KEY1 "\ncont2:acct2:" KEY2 "\n",
		   0600);
	assert_int_equal(ost_az_resolve("az://c", &o, &t->r), 0);
	assert_string_equal(t->r.cfg.account, "acct");
	assert_string_equal(t->r.cfg.key, KEY1);
	assert_string_equal(t->r.cfg.endpoint,
			    "https://acct.blob.core.windows.net");
	/* A line naming the container wins. */
	assert_int_equal(ost_az_resolve("az://cont2/p", &o, &t->r), 0);
	assert_string_equal(t->r.cfg.account, "acct2");
	assert_string_equal(t->r.cfg.key, KEY2);
	/* Readable by others: refused. */
	assert_int_equal(chmod("pw", 0644), 0);
	assert_int_equal(ost_az_resolve("az://c", &o, &t->r), -EACCES);
	o.passwd_file = "missing";
	assert_int_equal(ost_az_resolve("az://c", &o, &t->r), -ENOENT);
}

static void test_new_checks_key(void **state)
{
	struct ost_az_config c = { .endpoint = "http://127.0.0.1:1/a",
				   .account = "a", .container = "c",
				   .key = "not base64!" };
	struct ost_backend *be = NULL;

	(void)state;
	assert_int_equal(ost_az_new(&c, &be), -EINVAL);
	c.key = KEY1;
	c.endpoint = "ftp://x";
	assert_int_equal(ost_az_new(&c, &be), -EINVAL);
	c.endpoint = "http://127.0.0.1:1/a";
	c.container = "";
	assert_int_equal(ost_az_new(&c, &be), -EINVAL);
	c.container = "c";
	assert_int_equal(ost_az_new(&c, &be), 0);
	assert_non_null(be);
	assert_false(be->ops->read_only && be->ops->read_only(be->priv));
	ost_backend_free(be);
	/* A SAS without write or create permission is read-only. */
	c.key = NULL;
	c.sas = "sv=2021-08-06&sp=rl&sig=x";
	assert_int_equal(ost_az_new(&c, &be), 0);
	assert_true(be->ops->read_only(be->priv));
	ost_backend_free(be);
	c.sas = "?sv=2021-08-06&sp=racwdl&sig=x";
	assert_int_equal(ost_az_new(&c, &be), 0);
	assert_false(be->ops->read_only(be->priv));
	ost_backend_free(be);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_string, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_precedence, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_passwd_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_new_checks_key, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
