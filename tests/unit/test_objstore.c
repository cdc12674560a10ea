/*
 * test_objstore.c - unit tests of objstore: the pool, the mem and local
 * backends (each test that applies to both runs once per backend, always
 * through struct ost), and the fault wrapper.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ost.h"

#include "log.h"

enum kind { K_MEM, K_LOCAL };

struct tctx {
	enum kind kind;
	char root[64];	/* local: a fresh temp dir holding only store/ */
	char store[96]; /* local: the store directory */
	struct ost *st;
};

static enum kind kind_mem = K_MEM;
static enum kind kind_local = K_LOCAL;

static int rm_one(const char *path, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	char url[128];

	assert_non_null(t);
	t->kind = *(enum kind *)*state;
	if (t->kind == K_LOCAL) {
		snprintf(t->root, sizeof(t->root), "/tmp/ost-test-XXXXXX");
		assert_non_null(mkdtemp(t->root));
		snprintf(t->store, sizeof(t->store), "%s/store", t->root);
		assert_int_equal(mkdir(t->store, 0755), 0);
		snprintf(url, sizeof(url), "file://%s", t->store);
		assert_int_equal(ost_open_url(url, NULL, 4, &t->st), 0);
		assert_string_equal(ost_name(t->st), "local");
	} else {
		assert_int_equal(ost_open_url("mem://", NULL, 4, &t->st), 0);
		assert_string_equal(ost_name(t->st), "mem");
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;

	ost_free(t->st);
	if (t->kind == K_LOCAL)
		rm_rf(t->root);
	free(t);
	return 0;
}

/*
 * Helpers.
 */

static void put_str(struct ost *st, const char *key, const char *s)
{
	assert_int_equal(ost_put_buf(st, key, s, strlen(s), NULL), 0);
}

static void expect_content(struct ost *st, const char *key, const char *s)
{
	void *data = NULL;
	size_t len = 0;

	assert_int_equal(ost_get_all(st, key, 1 << 24, &data, &len, NULL), 0);
	assert_int_equal(len, strlen(s));
	assert_memory_equal(data, s, len);
	free(data);
}

/* Append s (+ suffix) and '|' to the string out of size cap. */
static void cat_item(char *out, size_t cap, const char *s, const char *suf)
{
	size_t n = strlen(out);

	snprintf(out + n, cap - n, "%s%s|", s, suf);
}

/*
 * List all pages into out as "key|prefix*|..." in item order; checks that
 * items strictly increase, pages hold at most max_keys items, and only the
 * last page lacks a token.  skip_markers drops objects ending in '/'.
 * Returns the number of pages.
 */
static int list_str(struct ost *st, const char *prefix, const char *delim,
		    size_t max_keys, bool skip_markers, char *out, size_t cap)
{
	char *token = NULL, *last = NULL;
	int pages = 0;

	out[0] = '\0';
	do {
		struct ost_list_result res;
		size_t io = 0, ip = 0;

		assert_int_equal(
		    ost_list(st, prefix, delim, token, max_keys, &res), 0);
		pages++;
		assert_true(res.n_objects + res.n_prefixes <=
			    (max_keys ? max_keys : 1000));
		if (res.next_token)
			assert_true(res.n_objects + res.n_prefixes > 0);
		while (io < res.n_objects || ip < res.n_prefixes) {
			const char *item;
			bool is_pfx;

			if (ip == res.n_prefixes ||
			    (io < res.n_objects &&
			     strcmp(res.objects[io].key, res.prefixes[ip]) <
				 0)) {
				item = res.objects[io++].key;
				is_pfx = false;
			} else {
				item = res.prefixes[ip++];
				is_pfx = true;
			}
			if (last)
				assert_true(strcmp(last, item) < 0);
			free(last);
			last = strdup(item);
			if (!is_pfx && skip_markers &&
			    item[strlen(item) - 1] == '/')
				continue;
			cat_item(out, cap, item, is_pfx ? "*" : "");
		}
		free(token);
		token = res.next_token ? strdup(res.next_token) : NULL;
		ost_list_result_release(&res);
	} while (token);
	free(last);
	return pages;
}

/*
 * Basic operations.
 */

static void test_basic(void **state)
{
	struct tctx *t = *state;
	struct ost_info info, info2;
	char buf[64], longkey[OST_KEY_MAX + 2];
	size_t got;

	assert_int_equal(ost_put_buf(t->st, "a/b/c", "hello", 5, &info), 0);
	assert_int_equal(info.size, 5);
	assert_true(info.etag[0] != '\0');

	assert_int_equal(
	    ost_get(t->st, "a/b/c", 0, buf, sizeof(buf), &got, &info2), 0);
	assert_int_equal(got, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_string_equal(info.etag, info2.etag);
	assert_int_equal(info2.size, 5);

	/* ranged GETs */
	assert_int_equal(ost_get(t->st, "a/b/c", 1, buf, 3, &got, NULL), 0);
	assert_int_equal(got, 3);
	assert_memory_equal(buf, "ell", 3);
	assert_int_equal(ost_get(t->st, "a/b/c", 3, buf, 100, &got, NULL), 0);
	assert_int_equal(got, 2);
	assert_memory_equal(buf, "lo", 2);
	assert_int_equal(ost_get(t->st, "a/b/c", 5, buf, 10, &got, NULL), 0);
	assert_int_equal(got, 0);
	assert_int_equal(ost_get(t->st, "a/b/c", 500, buf, 10, &got, NULL), 0);
	assert_int_equal(got, 0);

	assert_int_equal(ost_head(t->st, "a/b/c", &info2), 0);
	assert_int_equal(info2.size, 5);
	assert_true(info2.mtime_ns > 0);
	assert_string_equal(info.etag, info2.etag);

	/* replace: new ETag */
	assert_int_equal(ost_put_buf(t->st, "a/b/c", "world!", 6, &info2), 0);
	assert_string_not_equal(info.etag, info2.etag);
	expect_content(t->st, "a/b/c", "world!");

	/* missing keys */
	assert_int_equal(ost_head(t->st, "nope", &info), -ENOENT);
	assert_int_equal(ost_get(t->st, "nope", 0, buf, 1, &got, NULL),
			 -ENOENT);
	assert_int_equal(ost_get(t->st, "a/b", 0, buf, 1, &got, NULL), -ENOENT);
	assert_int_equal(ost_delete(t->st, "nope"), 0);
	assert_int_equal(ost_delete(t->st, "a/b/c"), 0);
	assert_int_equal(ost_head(t->st, "a/b/c", &info), -ENOENT);

	/* empty object */
	assert_int_equal(ost_put_buf(t->st, "empty", NULL, 0, NULL), 0);
	assert_int_equal(ost_head(t->st, "empty", &info), 0);
	assert_int_equal(info.size, 0);
	assert_int_equal(ost_get(t->st, "empty", 0, buf, 10, &got, NULL), 0);
	assert_int_equal(got, 0);

	/* invalid keys */
	assert_int_equal(ost_put_buf(t->st, "", "x", 1, NULL), -EINVAL);
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	assert_int_equal(ost_put_buf(t->st, longkey, "x", 1, NULL), -EINVAL);
	assert_int_equal(ost_head(t->st, longkey, &info), -EINVAL);
}

static void test_copy(void **state)
{
	struct tctx *t = *state;
	struct ost_info a, b;

	put_str(t->st, "src", "copy me");
	assert_int_equal(ost_copy(t->st, "src", "d/dst"), 0);
	expect_content(t->st, "d/dst", "copy me");
	assert_int_equal(ost_head(t->st, "src", &a), 0);
	assert_int_equal(ost_head(t->st, "d/dst", &b), 0);
	assert_string_not_equal(a.etag, b.etag);
	assert_int_equal(b.size, 7);

	/* onto an existing object */
	put_str(t->st, "other", "old");
	assert_int_equal(ost_copy(t->st, "src", "other"), 0);
	expect_content(t->st, "other", "copy me");
	/* onto itself */
	assert_int_equal(ost_copy(t->st, "src", "src"), 0);
	expect_content(t->st, "src", "copy me");

	assert_int_equal(ost_copy(t->st, "missing", "x"), -ENOENT);
	assert_int_equal(ost_head(t->st, "x", &a), -ENOENT);
}

static void test_get_all(void **state)
{
	struct tctx *t = *state;
	size_t big = 300 * 1024 + 7, len, i;
	char *src = malloc(big);
	void *data;
	struct ost_info info;

	assert_non_null(src);
	for (i = 0; i < big; i++)
		src[i] = (char)(i * 7 + i / 1000);
	assert_int_equal(ost_put_buf(t->st, "big", src, big, NULL), 0);
	assert_int_equal(ost_get_all(t->st, "big", big, &data, &len, &info), 0);
	assert_int_equal(len, big);
	assert_int_equal(info.size, big);
	assert_memory_equal(data, src, big);
	free(data);
	assert_int_equal(ost_get_all(t->st, "big", big - 1, &data, &len, NULL),
			 -EFBIG);

	assert_int_equal(ost_put_buf(t->st, "small", src, 100, NULL), 0);
	assert_int_equal(ost_get_all(t->st, "small", 99, &data, &len, NULL),
			 -EFBIG);
	assert_int_equal(ost_get_all(t->st, "small", 100, &data, &len, NULL),
			 0);
	assert_int_equal(len, 100);
	free(data);

	assert_int_equal(ost_put_buf(t->st, "zero", NULL, 0, NULL), 0);
	assert_int_equal(ost_get_all(t->st, "zero", 0, &data, &len, NULL), 0);
	assert_int_equal(len, 0);
	assert_non_null(data);
	free(data);
	assert_int_equal(ost_get_all(t->st, "none", 10, &data, &len, NULL),
			 -ENOENT);
	free(src);
}

/*
 * LIST.
 */

static void test_list(void **state)
{
	struct tctx *t = *state;
	bool local = t->kind == K_LOCAL;
	struct ost_list_result res;
	char key[32], *token;
	size_t out_cap = 64 * 1024;
	char *out = malloc(out_cap);
	int i, n;
	size_t j;

	assert_non_null(out);
	for (i = 0; i < 2500; i++) {
		snprintf(key, sizeof(key), "k/%05d", i);
		put_str(t->st, key, key);
	}
	put_str(t->st, "j", "j");
	put_str(t->st, "k0", "k0");
	put_str(t->st, "l/x/y", "l");

	/* 2500 keys (plus local's "k/" marker) in pages of 1000 */
	assert_int_equal(ost_list(t->st, "k/", NULL, NULL, 1000, &res), 0);
	assert_int_equal(res.n_objects, 1000);
	assert_int_equal(res.n_prefixes, 0);
	assert_non_null(res.next_token);
	j = 0;
	if (local)
		assert_string_equal(res.objects[j++].key, "k/");
	for (i = 0; j < res.n_objects; i++, j++) {
		snprintf(key, sizeof(key), "k/%05d", i);
		assert_string_equal(res.objects[j].key, key);
		assert_int_equal(res.objects[j].info.size, 7);
		assert_true(res.objects[j].info.etag[0] != '\0');
	}
	token = strdup(res.next_token);
	ost_list_result_release(&res);
	assert_int_equal(ost_list(t->st, "k/", "", token, 1000, &res), 0);
	assert_int_equal(res.n_objects, 1000);
	snprintf(key, sizeof(key), "k/%05d", i);
	assert_string_equal(res.objects[0].key, key);
	free(token);
	token = strdup(res.next_token);
	ost_list_result_release(&res);
	assert_int_equal(ost_list(t->st, "k/", NULL, token, 1000, &res), 0);
	assert_int_equal(res.n_objects, local ? 501 : 500);
	assert_null(res.next_token);
	assert_string_equal(res.objects[res.n_objects - 1].key, "k/02499");
	free(token);
	ost_list_result_release(&res);

	/* default page size is 1000 */
	assert_int_equal(list_str(t->st, "k/", NULL, 0, true, out, out_cap), 3);

	/* start_after: a first page lists what sorts after it (not local's
	 * "k/" marker); a page after a token ignores it */
	assert_int_equal(ost_list_after(t->st, "k/", "/", NULL, "k/", 1000,
					&res),
			 0);
	assert_int_equal(res.n_objects, 1000);
	assert_string_equal(res.objects[0].key, "k/00000");
	assert_string_equal(res.objects[999].key, "k/00999");
	ost_list_result_release(&res);
	assert_int_equal(ost_list_after(t->st, "k/", NULL, NULL, "k/02497", 0,
					&res),
			 0);
	assert_int_equal(res.n_objects, 2);
	assert_string_equal(res.objects[0].key, "k/02498");
	assert_null(res.next_token);
	ost_list_result_release(&res);
	assert_int_equal(ost_list_after(t->st, "k/", NULL, NULL, "k/00499",
					1000, &res),
			 0);
	assert_string_equal(res.objects[0].key, "k/00500");
	assert_string_equal(res.objects[999].key, "k/01499");
	token = strdup(res.next_token);
	ost_list_result_release(&res);
	assert_int_equal(ost_list_after(t->st, "k/", NULL, token, "k/02000",
					1000, &res),
			 0);
	assert_string_equal(res.objects[0].key, "k/01500");
	free(token);
	ost_list_result_release(&res);

	/* delimiter roll-up */
	list_str(t->st, "", "/", 0, false, out, out_cap);
	assert_string_equal(out, "j|k/*|k0|l/*|");
	n = list_str(t->st, "", "/", 1, false, out, out_cap);
	assert_string_equal(out, "j|k/*|k0|l/*|");
	assert_int_equal(n, 4);
	n = list_str(t->st, "", "/", 2, false, out, out_cap);
	assert_string_equal(out, "j|k/*|k0|l/*|");
	assert_int_equal(n, 2);
	list_str(t->st, "l/", "/", 0, true, out, out_cap);
	assert_string_equal(out, "l/x/*|");
	list_str(t->st, "l", "/", 0, true, out, out_cap);
	assert_string_equal(out, "l/*|");
	list_str(t->st, "l/x/", "/", 0, true, out, out_cap);
	assert_string_equal(out, "l/x/y|");
	list_str(t->st, "k/0249", "/", 0, true, out, out_cap);
	assert_string_equal(out, "k/02490|k/02491|k/02492|k/02493|k/02494|"
				 "k/02495|k/02496|k/02497|k/02498|k/02499|");
	list_str(t->st, "zz", "/", 0, true, out, out_cap);
	assert_string_equal(out, "");
	list_str(t->st, "", NULL, 0, true, out, out_cap);
	assert_int_equal(strlen(out), 2500 * 8 + strlen("j|k0|l/x/y|"));

	/* a delimiter other than "/" */
	put_str(t->st, "x-1-a", "");
	put_str(t->st, "x-1-b", "");
	put_str(t->st, "x-2", "");
	list_str(t->st, "x-", "-", 0, true, out, out_cap);
	assert_string_equal(out, "x-1-*|x-2|");
	list_str(t->st, "x", "-1-", 0, true, out, out_cap);
	assert_string_equal(out, "x-1-*|x-2|");
	free(out);
}

static void test_odd_keys(void **state)
{
	static const char *const keys[] = {
	    "a b",
	    "x/../y",
	    "%41",
	    "%",
	    ".",
	    "..",
	    "x/./z",
	    "a//b",
	    "/lead",
	    "é/日本語.h5",
	    "tab\there",
	    "q?&=*+:;\\",
	    ".cloudh5/tmp/evil",
	    ".cloudh5/c/run/x.h5/g1/d/0.0",
	    ".cloudh5x",
	};
	struct tctx *t = *state;
	bool local = t->kind == K_LOCAL;
	char comp[300], key[320], path[512];
	const char *sorted[sizeof(keys) / sizeof(keys[0]) + 1];
	char expect[2048] = "", out[4096];
	struct ost_info info;
	size_t i, j, n = sizeof(keys) / sizeof(keys[0]);

	for (i = 0; i < n; i++)
		put_str(t->st, keys[i], keys[i]);
	for (i = 0; i < n; i++)
		expect_content(t->st, keys[i], keys[i]);

	/* LIST gives back exactly the original keys, sorted bytewise */
	for (i = 0; i < n; i++)
		sorted[i] = keys[i];
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0;
		     j--) {
			const char *tmp = sorted[j];

			sorted[j] = sorted[j - 1];
			sorted[j - 1] = tmp;
		}
	for (i = 0; i < n; i++)
		cat_item(expect, sizeof(expect), sorted[i], "");
	list_str(t->st, "", NULL, 3, true, out, sizeof(out));
	assert_string_equal(out, expect);

	/* a 255-byte component is fine; 256 cannot be a file name */
	memset(comp, 'n', 255);
	comp[255] = '\0';
	snprintf(key, sizeof(key), "long/%s", comp);
	put_str(t->st, key, "long");
	expect_content(t->st, key, "long");
	snprintf(key, sizeof(key), "long/%s", comp);
	key[5] = '%'; /* needs an escape: 256 bytes on disk */
	assert_int_equal(ost_put_buf(t->st, key, "x", 1, NULL),
			 local ? -ENAMETOOLONG : 0);
	snprintf(key, sizeof(key), "long/%sn", comp);
	assert_int_equal(ost_put_buf(t->st, key, "x", 1, NULL),
			 local ? -ENAMETOOLONG : 0);

	/* directory markers */
	assert_int_equal(ost_put_buf(t->st, "dir/", NULL, 0, &info), 0);
	assert_int_equal(info.size, 0);
	assert_int_equal(ost_put_buf(t->st, "//", NULL, 0, NULL), 0);
	assert_int_equal(ost_head(t->st, "dir/", &info), 0);
	assert_int_equal(info.size, 0);
	assert_int_equal(ost_head(t->st, "//", &info), 0);
	list_str(t->st, "", "/", 0, false, out, sizeof(out));
	assert_non_null(strstr(out, "|dir/*|"));
	assert_true(strncmp(out, "%|%41|.|..|.cloudh5/*|.cloudh5x|/*|", 35) ==
		    0);
	list_str(t->st, "dir/", "/", 0, false, out, sizeof(out));
	assert_string_equal(out, "dir/|");
	list_str(t->st, "dir", NULL, 0, false, out, sizeof(out));
	assert_string_equal(out, "dir/|");
	assert_int_equal(ost_delete(t->st, "dir/"), 0);
	assert_int_equal(ost_head(t->st, "dir/", &info), -ENOENT);
	list_str(t->st, "dir", NULL, 0, false, out, sizeof(out));
	assert_string_equal(out, "");
	assert_int_equal(ost_put_buf(t->st, "dir2/", "x", 1, NULL),
			 local ? -EINVAL : 0);

	if (!local)
		return;
	/* nothing escaped the store directory */
	snprintf(path, sizeof(path), "%s/y", t->store);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/x/%%../y", t->store);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/.cloudh5/%%tmp/evil", t->store);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/.cloudh5/tmp/evil", t->store);
	assert_int_equal(access(path, F_OK), -1);
	{
		char cmd[256];
		FILE *p;
		int count;

		snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", t->root);
		p = popen(cmd, "r");
		assert_non_null(p);
		assert_int_equal(fscanf(p, "%d", &count), 1);
		pclose(p);
		assert_int_equal(count, 1); /* just store/ */
	}
}

/* local: what a directory tree cannot represent, and directory markers. */
static void test_local_dirs(void **state)
{
	struct tctx *t = *state;
	struct ost_put_cond cond = {.flags = OST_PUT_IF_NONE_MATCH};
	struct ost_body body = {.buf = "x", .fd = -1, .len = 1};
	struct ost_info info;
	char out[1024], path[512], buf[4];
	size_t got;

	put_str(t->st, "f", "file");
	assert_int_equal(ost_put_buf(t->st, "f/g", "x", 1, NULL), -ENOTDIR);
	assert_int_equal(ost_put_buf(t->st, "f/", NULL, 0, NULL), -ENOTDIR);
	assert_int_equal(ost_get(t->st, "f/g", 0, buf, 1, &got, NULL), -ENOENT);
	assert_int_equal(ost_head(t->st, "f/", &info), -ENOENT);
	put_str(t->st, "g/h", "x");
	assert_int_equal(ost_put_buf(t->st, "g", "x", 1, NULL), -EISDIR);
	assert_int_equal(ost_put(t->st, "g", &body, &cond, NULL), -EEXIST);
	assert_int_equal(ost_head(t->st, "g", &info), -ENOENT);
	assert_int_equal(ost_delete(t->st, "g"), 0);
	expect_content(t->st, "g/h", "x");

	/* implicit directories are markers; DELETE keeps parents... */
	assert_int_equal(ost_head(t->st, "g/", &info), 0);
	assert_int_equal(
	    ost_put(t->st, "g/", &(struct ost_body){.fd = -1}, &cond, NULL),
	    -EEXIST);
	assert_int_equal(ost_delete(t->st, "g/"), 0); /* not empty: kept */
	assert_int_equal(ost_head(t->st, "g/", &info), 0);
	put_str(t->st, "u/v/w", "w");
	list_str(t->st, "u", NULL, 0, false, out, sizeof(out));
	assert_string_equal(out, "u/|u/v/|u/v/w|");
	assert_int_equal(ost_delete(t->st, "u/v/w"), 0);
	list_str(t->st, "u", NULL, 0, false, out, sizeof(out));
	assert_string_equal(out, "u/|u/v/|");
	list_str(t->st, "u/", "/", 0, false, out, sizeof(out));
	assert_string_equal(out, "u/|u/v/*|");

	/* ...except below .cloudh5/, where empty parents go away */
	put_str(t->st, ".cloudh5/c/a/b/x", "x");
	list_str(t->st, "", "/", 0, false, out, sizeof(out));
	assert_string_equal(out, ".cloudh5/*|f|g/*|u/*|");
	assert_int_equal(ost_delete(t->st, ".cloudh5/c/a/b/x"), 0);
	snprintf(path, sizeof(path), "%s/.cloudh5/c", t->store);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/.cloudh5/tmp", t->store);
	assert_int_equal(access(path, F_OK), 0);
	list_str(t->st, "", "/", 0, false, out, sizeof(out));
	assert_string_equal(out, "f|g/*|u/*|");
	list_str(t->st, "", NULL, 0, false, out, sizeof(out));
	assert_string_equal(out, "f|g/|g/h|u/|u/v/|");
	assert_int_equal(ost_head(t->st, ".cloudh5/", &info), -ENOENT);
	assert_int_equal(ost_delete(t->st, ".cloudh5/"), 0);
	assert_int_equal(access(path, F_OK), 0);

	/* files dropped into the directory by other tools are objects;
	 * symlinks are not */
	snprintf(path, sizeof(path), "%s/u/v/plain.h5", t->store);
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fputs("abc", f);
		fclose(f);
	}
	expect_content(t->st, "u/v/plain.h5", "abc");
	snprintf(path, sizeof(path), "%s/u/v/link", t->store);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_int_equal(ost_head(t->st, "u/v/link", &info), -ENOENT);
	assert_int_equal(ost_get(t->st, "u/v/link", 0, buf, 1, &got, NULL),
			 -ENOENT);
	list_str(t->st, "u/v/", NULL, 0, false, out, sizeof(out));
	assert_string_equal(out, "u/v/|u/v/plain.h5|");

	/* copy a marker */
	assert_int_equal(ost_copy(t->st, "u/", "u2/"), 0);
	assert_int_equal(ost_head(t->st, "u2/", &info), 0);
}

/*
 * Conditional PUT.
 */

struct race {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done; /* guarded by lock */
	int ok, eexist, estale, other;
};

static void race_done(struct ost_req *req)
{
	struct race *r = req->arg;

	pthread_mutex_lock(&r->lock);
	if (req->rc == 0)
		r->ok++;
	else if (req->rc == -EEXIST)
		r->eexist++;
	else if (req->rc == -ESTALE)
		r->estale++;
	else
		r->other++;
	r->done++;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void race_wait(struct race *r, int n)
{
	pthread_mutex_lock(&r->lock);
	while (r->done < n)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
}

static void test_cond_put(void **state)
{
	struct tctx *t = *state;
	struct ost_put_cond none = {.flags = OST_PUT_IF_NONE_MATCH};
	struct ost_put_cond match = {0};
	struct ost_body b1 = {.buf = "one", .fd = -1, .len = 3};
	struct ost_body b2 = {.buf = "two", .fd = -1, .len = 3};
	struct ost_info i1, i2;
	struct ost_req reqs[16];
	struct race r = {.lock = PTHREAD_MUTEX_INITIALIZER,
			 .cond = PTHREAD_COND_INITIALIZER};
	int k;

	assert_int_equal(ost_put(t->st, "c", &b1, &none, &i1), 0);
	assert_int_equal(ost_put(t->st, "c", &b2, &none, NULL), -EEXIST);
	expect_content(t->st, "c", "one");

	snprintf(match.if_match, sizeof(match.if_match), "%s", i1.etag);
	assert_int_equal(ost_put(t->st, "c", &b2, &match, &i2), 0);
	assert_string_not_equal(i1.etag, i2.etag);
	expect_content(t->st, "c", "two");
	assert_int_equal(ost_put(t->st, "c", &b1, &match, NULL), -ESTALE);
	expect_content(t->st, "c", "two");
	assert_int_equal(ost_put(t->st, "nope", &b1, &match, NULL), -ENOENT);
	assert_int_equal(ost_head(t->st, "nope", &i1), -ENOENT);
	match.flags = OST_PUT_IF_NONE_MATCH;
	assert_int_equal(ost_put(t->st, "c", &b1, &match, NULL), -EINVAL);

	/* 16 racing create-if-absent: exactly one wins */
	memset(reqs, 0, sizeof(reqs));
	for (k = 0; k < 16; k++) {
		reqs[k].op = OST_PUT;
		reqs[k].key = "race";
		reqs[k].body = b1;
		reqs[k].cond = &none;
		reqs[k].done = race_done;
		reqs[k].arg = &r;
		assert_int_equal(ost_submit(t->st, &reqs[k]), 0);
	}
	race_wait(&r, 16);
	assert_int_equal(r.ok, 1);
	assert_int_equal(r.eexist, 15);

	/* 16 racing compare-and-swap on one ETag: exactly one wins */
	assert_int_equal(ost_head(t->st, "race", &i1), 0);
	memset(&match, 0, sizeof(match));
	snprintf(match.if_match, sizeof(match.if_match), "%s", i1.etag);
	memset(reqs, 0, sizeof(reqs));
	r.done = r.ok = r.eexist = r.estale = r.other = 0;
	for (k = 0; k < 16; k++) {
		reqs[k].op = OST_PUT;
		reqs[k].key = "race";
		reqs[k].body = b2;
		reqs[k].cond = &match;
		reqs[k].done = race_done;
		reqs[k].arg = &r;
		assert_int_equal(ost_submit(t->st, &reqs[k]), 0);
	}
	race_wait(&r, 16);
	assert_int_equal(r.ok, 1);
	assert_int_equal(r.estale, 15);
	expect_content(t->st, "race", "two");
}

/*
 * Async requests and counters.
 */

#define N_ASYNC 200

struct async_req {
	struct ost_req req;
	char key[32];
	char data[64];
	char buf[64];
};

static void test_async(void **state)
{
	struct tctx *t = *state;
	struct async_req *a = calloc(N_ASYNC, sizeof(*a));
	struct race r = {.lock = PTHREAD_MUTEX_INITIALIZER,
			 .cond = PTHREAD_COND_INITIALIZER};
	struct ost_stats s0, s;
	uint64_t bytes = 0;
	int i;

	assert_non_null(a);
	ost_stats_get(t->st, &s0);
	for (i = 0; i < N_ASYNC; i++) {
		snprintf(a[i].key, sizeof(a[i].key), "async/%03d", i);
		snprintf(a[i].data, sizeof(a[i].data), "payload %d %s", i,
			 i % 2 ? "odd" : "even");
		a[i].req.op = OST_PUT;
		a[i].req.key = a[i].key;
		a[i].req.body.buf = a[i].data;
		a[i].req.body.len = strlen(a[i].data);
		a[i].req.done = race_done;
		a[i].req.arg = &r;
		bytes += a[i].req.body.len;
	}
	for (i = 0; i < N_ASYNC; i++)
		assert_int_equal(ost_submit(t->st, &a[i].req), 0);
	race_wait(&r, N_ASYNC);
	assert_int_equal(r.ok, N_ASYNC);

	ost_stats_get(t->st, &s);
	assert_int_equal(s.requests[OST_PUT] - s0.requests[OST_PUT], N_ASYNC);
	assert_int_equal(s.bytes_out - s0.bytes_out, bytes);
	assert_int_equal(s.in_flight, 0);

	r.done = r.ok = 0;
	for (i = 0; i < N_ASYNC; i++) {
		memset(&a[i].req, 0, sizeof(a[i].req));
		a[i].req.op = OST_GET;
		a[i].req.key = a[i].key;
		a[i].req.buf = a[i].buf;
		a[i].req.len = sizeof(a[i].buf);
		a[i].req.done = race_done;
		a[i].req.arg = &r;
		assert_int_equal(ost_submit(t->st, &a[i].req), 0);
	}
	race_wait(&r, N_ASYNC);
	assert_int_equal(r.ok, N_ASYNC);
	for (i = 0; i < N_ASYNC; i++) {
		assert_int_equal(a[i].req.got, strlen(a[i].data));
		assert_memory_equal(a[i].buf, a[i].data, a[i].req.got);
		assert_int_equal(a[i].req.info.size, strlen(a[i].data));
	}
	ost_stats_get(t->st, &s);
	assert_int_equal(s.requests[OST_GET] - s0.requests[OST_GET], N_ASYNC);
	assert_int_equal(s.bytes_in - s0.bytes_in, bytes);
	assert_int_equal(s.in_flight, 0);
	assert_int_equal(s.errors, s0.errors);
	free(a);
}

static void test_stats(void **state)
{
	struct tctx *t = *state;
	struct ost_put_cond none = {.flags = OST_PUT_IF_NONE_MATCH};
	struct ost_body body = {.buf = "0123456789", .fd = -1, .len = 10};
	struct ost_list_result res;
	struct ost_stats s;
	struct ost_info info;
	char buf[16];
	size_t got;
	int i;

	assert_int_equal(ost_put(t->st, "s", &body, NULL, NULL), 0);
	assert_int_equal(ost_get(t->st, "s", 0, buf, sizeof(buf), &got, NULL),
			 0);
	assert_int_equal(ost_head(t->st, "missing", &info), -ENOENT);
	assert_int_equal(ost_list(t->st, "", NULL, NULL, 0, &res), 0);
	ost_list_result_release(&res);
	assert_int_equal(ost_delete(t->st, "s2"), 0);
	assert_int_equal(ost_copy(t->st, "missing", "s3"), -ENOENT);
	assert_int_equal(ost_put(t->st, "s", &body, &none, NULL), -EEXIST);

	ost_stats_get(t->st, &s);
	assert_int_equal(s.requests[OST_PUT], 2);
	assert_int_equal(s.requests[OST_GET], 1);
	assert_int_equal(s.requests[OST_HEAD], 1);
	assert_int_equal(s.requests[OST_LIST], 1);
	assert_int_equal(s.requests[OST_DELETE], 1);
	assert_int_equal(s.requests[OST_COPY], 1);
	assert_int_equal(s.errors, 1); /* -EEXIST; -ENOENT is no error */
	assert_int_equal(s.bytes_in, 10);
	assert_int_equal(s.bytes_out, 10);
	assert_int_equal(s.in_flight, 0);
	for (i = 0; i < OST_NOPS; i++)
		assert_true(s.requests[i] < 3);
}

/*
 * PUT bodies from a file descriptor; failed PUTs.
 */

static int make_tmpfile(size_t len, char **content)
{
	char path[] = "/tmp/ost-body-XXXXXX";
	char *c = malloc(len);
	int fd = mkstemp(path);
	size_t i;

	assert_non_null(c);
	assert_true(fd >= 0);
	unlink(path);
	for (i = 0; i < len; i++)
		c[i] = (char)(i ^ (i >> 8));
	assert_int_equal(write(fd, c, len), (ssize_t)len);
	*content = c;
	return fd;
}

static void test_put_fd(void **state)
{
	struct tctx *t = *state;
	size_t flen = 1 << 20, len;
	char *content;
	int fd = make_tmpfile(flen, &content);
	struct ost_body body = {.fd = fd, .fd_off = 1000, .len = 500000};
	struct ost_info info;
	void *data;

	assert_int_equal(ost_put(t->st, "fromfd", &body, NULL, &info), 0);
	assert_int_equal(info.size, 500000);
	assert_int_equal(ost_get_all(t->st, "fromfd", flen, &data, &len, NULL),
			 0);
	assert_int_equal(len, 500000);
	assert_memory_equal(data, content + 1000, len);
	free(data);

	/* the fd ends before len bytes: nothing is stored */
	body.fd_off = flen - 10;
	body.len = 20;
	assert_int_equal(ost_put(t->st, "short", &body, NULL, NULL), -EIO);
	assert_int_equal(ost_head(t->st, "short", &info), -ENOENT);
	close(fd);
	free(content);
}

static void test_put_fail_keeps_old(void **state)
{
	struct tctx *t = *state;
	struct ost_body bad = { .buf = NULL, .fd = -1, .len = 10 };
	char out[256], path[512];
	int dirfd = open("/", O_RDONLY | O_DIRECTORY);

	put_str(t->st, "obj", "old");
	/* no descriptor at all; a descriptor that cannot be read */
	assert_int_equal(ost_put(t->st, "obj", &bad, NULL, NULL), -EBADF);
	assert_int_equal(ost_put(t->st, "new/obj", &bad, NULL, NULL), -EBADF);
	assert_true(dirfd >= 0);
	bad.fd = dirfd;
	assert_true(ost_put(t->st, "obj", &bad, NULL, NULL) < 0);
	close(dirfd);
	expect_content(t->st, "obj", "old");
	list_str(t->st, "", NULL, 0, false, out, sizeof(out));
	assert_string_equal(out, "obj|");
	if (t->kind == K_LOCAL) {
		char cmd[600];
		FILE *p;
		int count;

		snprintf(path, sizeof(path), "%s/.cloudh5/tmp", t->store);
		/* Only the permanent flock file may be there. */
		snprintf(cmd, sizeof(cmd), "ls -A %s | grep -vx lock | wc -l",
			 path);
		p = popen(cmd, "r");
		assert_non_null(p);
		assert_int_equal(fscanf(p, "%d", &count), 1);
		pclose(p);
		assert_int_equal(count, 0);
	}
}

/* A reader never sees a mix of two versions of an object. */
#define ATOM_SIZE (64 * 1024)
#define ATOM_PUTS 300

struct atom {
	struct ost *st;
	atomic_bool stop;
	int puts;
};

static void *atom_writer(void *arg)
{
	struct atom *a = arg;
	char *buf = malloc(ATOM_SIZE);
	int i;

	for (i = 0; i < ATOM_PUTS; i++) {
		memset(buf, i % 2 ? 'B' : 'A', ATOM_SIZE);
		if (ost_put_buf(a->st, "atom", buf, ATOM_SIZE, NULL) == 0)
			a->puts++;
	}
	atomic_store(&a->stop, true);
	free(buf);
	return NULL;
}

static void test_atomic_put(void **state)
{
	struct tctx *t = *state;
	struct atom a = {.st = t->st};
	char *buf = malloc(ATOM_SIZE);
	char *first = malloc(ATOM_SIZE);
	pthread_t th;
	int reads = 0, seen_a = 0, seen_b = 0;
	size_t got, i;

	memset(first, 'A', ATOM_SIZE);
	assert_int_equal(ost_put_buf(t->st, "atom", first, ATOM_SIZE, NULL), 0);
	atomic_init(&a.stop, false);
	assert_int_equal(pthread_create(&th, NULL, atom_writer, &a), 0);
	while (!atomic_load(&a.stop)) {
		assert_int_equal(
		    ost_get(t->st, "atom", 0, buf, ATOM_SIZE, &got, NULL), 0);
		assert_int_equal(got, ATOM_SIZE);
		for (i = 1; i < ATOM_SIZE; i++)
			if (buf[i] != buf[0])
				break;
		assert_int_equal(i, ATOM_SIZE);
		if (buf[0] == 'A')
			seen_a++;
		else if (buf[0] == 'B')
			seen_b++;
		else
			fail();
		reads++;
	}
	pthread_join(th, NULL);
	assert_int_equal(a.puts, ATOM_PUTS);
	assert_true(reads > 0);
	(void)seen_a;
	(void)seen_b;
	free(buf);
	free(first);
}

/*
 * The fault wrapper.
 */

static void test_fault_parse(void **state)
{
	struct ost_fault_cfg c;

	(void)state;
	assert_int_equal(
	    ost_fault_parse("fail_nth=5,fail_count=2,fail_errno=5,ops=put+del,"
			    "delay_ms=10,short_read=100,stop_nth=3",
			    &c),
	    0);
	assert_int_equal(c.fail_nth, 5);
	assert_int_equal(c.fail_count, 2);
	assert_int_equal(c.fail_errno, 5);
	assert_int_equal(c.op_mask, (1u << OST_PUT) | (1u << OST_DELETE));
	assert_int_equal(c.delay_ms, 10);
	assert_int_equal(c.short_read, 100);
	assert_int_equal(c.stop_nth, 3);

	assert_int_equal(ost_fault_parse("", &c), 0);
	assert_int_equal(c.fail_nth, 0);
	assert_int_equal(c.op_mask, 0);
	assert_int_equal(ost_fault_parse("ops=all,", &c), 0);
	assert_int_equal(c.op_mask, (1u << OST_NOPS) - 1);

	c.fail_nth = 77;
	assert_int_equal(ost_fault_parse("fail_nth=1,bogus=2", &c), -EINVAL);
	assert_int_equal(c.fail_nth, 77); /* untouched on error */
	assert_int_equal(ost_fault_parse("fail_nth=x", &c), -EINVAL);
	assert_int_equal(ost_fault_parse("fail_nth=-1", &c), -EINVAL);
	assert_int_equal(ost_fault_parse("fail_nth=", &c), -EINVAL);
	assert_int_equal(ost_fault_parse("fail_nth", &c), -EINVAL);
	assert_int_equal(ost_fault_parse("fail_errno=99999", &c), -EINVAL);
	assert_int_equal(ost_fault_parse("fail_nth=99999999999", &c), -EINVAL);
	assert_int_equal(ost_fault_parse("ops=put+frob", &c), -EINVAL);
	assert_int_equal(ost_fault_parse("ops=", &c), -EINVAL);
}

static void test_fault_fail_nth(void **state)
{
	struct ost *st;
	struct ost_stats s;
	char buf[8];
	size_t got;

	(void)state;
	assert_int_equal(ost_open_url("mem://",
				      "fail_nth=3,fail_count=2,fail_errno=5,"
				      "ops=put",
				      2, &st),
			 0);
	assert_string_equal(ost_name(st), "fault(mem)");
	put_str(st, "p1", "1");
	assert_int_equal(ost_get(st, "p1", 0, buf, 8, &got, NULL), 0);
	put_str(st, "p2", "2");
	assert_int_equal(ost_put_buf(st, "p3", "3", 1, NULL), -EIO);
	assert_int_equal(ost_get(st, "p1", 0, buf, 8, &got, NULL), 0);
	assert_int_equal(ost_put_buf(st, "p4", "4", 1, NULL), -EIO);
	put_str(st, "p5", "5");
	assert_int_equal(ost_head(st, "p3", NULL), -ENOENT);
	expect_content(st, "p5", "5");
	ost_stats_get(st, &s);
	assert_int_equal(s.errors, 2);
	assert_int_equal(s.requests[OST_PUT], 5);
	ost_free(st);

	assert_int_equal(ost_open_url("mem://",
				      "fail_nth=1,fail_errno=28,"
				      "ops=get",
				      0, &st),
			 0);
	put_str(st, "k", "v");
	assert_int_equal(ost_get(st, "k", 0, buf, 8, &got, NULL), -ENOSPC);
	assert_int_equal(ost_get(st, "k", 0, buf, 8, &got, NULL), 0);
	ost_free(st);
}

static void batch_done(struct ost_req *req)
{
	ost_batch_finish(req->arg, req->rc);
}

/* ost_batch_failed() tells a submitter that the batch already failed (the
 * commit's upload loop then stops sending). */
static void test_batch_failed(void **state)
{
	struct ost *st;
	struct ost_batch b;
	struct ost_req r[2];
	int i;

	(void)state;
	assert_int_equal(ost_open_url("mem://", "fail_nth=2,fail_errno=5,ops=put",
				      2, &st),
			 0);
	memset(r, 0, sizeof(r));
	ost_batch_init(&b, 4);
	for (i = 0; i < 2; i++) {
		r[i].op = OST_PUT;
		r[i].key = i ? "b" : "a";
		r[i].body.buf = "x";
		r[i].body.len = 1;
		r[i].done = batch_done;
		r[i].arg = &b;
		ost_batch_submit(st, &b, &r[i]);
		/* The first PUT succeeds: not failed once it is done. */
		if (i == 0) {
			pthread_mutex_lock(&b.lock);
			while (b.inflight)
				pthread_cond_wait(&b.cond, &b.lock);
			pthread_mutex_unlock(&b.lock);
			assert_false(ost_batch_failed(&b));
		}
	}
	for (i = 0; i < 10000 && !ost_batch_failed(&b); i++)
		usleep(1000);
	assert_true(ost_batch_failed(&b));
	assert_int_equal(ost_batch_wait(&b), -EIO);
	ost_free(st);
}

static void test_fault_short_read(void **state)
{
	struct tctx *t = *state;
	struct ost_backend *be;
	struct ost_fault_cfg cfg = {.short_read = 7};
	struct race r = {.lock = PTHREAD_MUTEX_INITIALIZER,
			 .cond = PTHREAD_COND_INITIALIZER};
	struct ost_req req = {0};
	struct ost *st;
	char src[100], buf[100], url[128];
	size_t got, len;
	void *data;
	int i;

	for (i = 0; i < 100; i++)
		src[i] = (char)('a' + i % 26);
	if (t->kind == K_LOCAL) {
		assert_int_equal(ost_local_new(t->store, &be), 0);
	} else {
		assert_int_equal(ost_mem_new(&be), 0);
	}
	assert_int_equal(ost_fault_new(be, &cfg, &be), 0);
	assert_int_equal(ost_new(be, 3, &st), 0);
	snprintf(url, sizeof(url), "fault(%s)",
		 t->kind == K_LOCAL ? "local" : "mem");
	assert_string_equal(ost_name(st), url);

	assert_int_equal(ost_put_buf(st, "sr", src, 100, NULL), 0);
	assert_int_equal(ost_get(st, "sr", 0, buf, 100, &got, NULL), 0);
	assert_int_equal(got, 100);
	assert_memory_equal(buf, src, 100);
	assert_int_equal(ost_get(st, "sr", 95, buf, 10, &got, NULL), 0);
	assert_int_equal(got, 5);
	assert_memory_equal(buf, src + 95, 5);
	assert_int_equal(ost_get_all(st, "sr", 100, &data, &len, NULL), 0);
	assert_int_equal(len, 100);
	assert_memory_equal(data, src, 100);
	free(data);

	/* a raw GET request returns what the backend returned */
	req.op = OST_GET;
	req.key = "sr";
	req.buf = buf;
	req.len = 100;
	req.done = race_done;
	req.arg = &r;
	assert_int_equal(ost_submit(st, &req), 0);
	race_wait(&r, 1);
	assert_int_equal(req.rc, 0);
	assert_int_equal(req.got, 7);
	assert_int_equal(req.info.size, 100);
	ost_free(st);
}

/* ost_free() completes what is queued; submits after it began fail. */
#define N_DRAIN 10

struct drain {
	struct ost *st;
	atomic_int done;
	atomic_int follow_ok;
	int follow_rc[N_DRAIN];
	struct ost_req follow[N_DRAIN];
};

static void drain_follow_done(struct ost_req *req)
{
	struct drain *d = req->arg;

	atomic_fetch_add(&d->done, 1);
}

static void drain_done(struct ost_req *req)
{
	struct drain *d = req->arg;
	int i = req->key[1] - '0'; /* the key holds the request's index */
	struct ost_req *f;

	atomic_fetch_add(&d->done, 1);
	f = &d->follow[i];
	memset(f, 0, sizeof(*f));
	f->op = OST_HEAD;
	f->key = "k";
	f->done = drain_follow_done;
	f->arg = d;
	d->follow_rc[i] = ost_submit(d->st, f);
	if (d->follow_rc[i] == 0)
		atomic_fetch_add(&d->follow_ok, 1);
}

static void test_drain(void **state)
{
	static const char *const keys[N_DRAIN] = {"k0", "k1", "k2", "k3", "k4",
						  "k5", "k6", "k7", "k8", "k9"};
	struct ost_req reqs[N_DRAIN];
	struct drain *d = calloc(1, sizeof(*d));
	int i;

	(void)state;
	assert_non_null(d);
	assert_int_equal(ost_open_url("mem://", "delay_ms=20", 1, &d->st), 0);
	atomic_init(&d->done, 0);
	atomic_init(&d->follow_ok, 0);
	memset(reqs, 0, sizeof(reqs));
	for (i = 0; i < N_DRAIN; i++) {
		reqs[i].op = OST_HEAD;
		reqs[i].key = keys[i];
		reqs[i].done = drain_done;
		reqs[i].arg = d;
		assert_int_equal(ost_submit(d->st, &reqs[i]), 0);
	}
	ost_free(d->st);
	assert_int_equal(atomic_load(&d->done),
			 N_DRAIN + atomic_load(&d->follow_ok));
	for (i = 0; i < N_DRAIN; i++)
		assert_int_equal(reqs[i].rc, -ENOENT);
	assert_int_equal(d->follow_rc[N_DRAIN - 1], -ESHUTDOWN);
	free(d);
}

static void test_open_url(void **state)
{
	char root[] = "/tmp/ost-url-XXXXXX", url[128];
	struct ost *st;

	(void)state;
	assert_non_null(mkdtemp(root));
	snprintf(url, sizeof(url), "file://%s", root);
	assert_int_equal(ost_open_url(url, NULL, 1, &st), 0);
	assert_string_equal(ost_name(st), "local");
	put_str(st, "a", "b");
	ost_free(st);
	assert_int_equal(ost_open_url(root, "", 1, &st), 0);
	assert_string_equal(ost_name(st), "local");
	expect_content(st, "a", "b");
	ost_free(st);
	assert_int_equal(ost_open_url("file://relative/dir", NULL, 1, &st),
			 -EINVAL);
	/* No credentials anywhere (the developer's own AWS_* settings and
	 * ~/.aws files are set aside): an S3 store cannot open. */
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_PROFILE");
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
	setenv("AWS_CONFIG_FILE", "/dev/null", 1);
	assert_int_equal(ost_open_url("s3://bucket", NULL, 1, &st), -EINVAL);
	assert_int_equal(ost_open_url("mem://x", NULL, 1, &st), -EINVAL);
	assert_int_equal(ost_open_url("relative", NULL, 1, &st), -EINVAL);
	assert_int_equal(
	    ost_open_url("file:///nonexistent/cloudh5/xyz", NULL, 1, &st),
	    -ENOENT);
	assert_int_equal(ost_open_url("mem://", "nonsense=1", 1, &st), -EINVAL);
	assert_int_equal(ost_open_url("mem://", "ops=get", 1, &st), 0);
	assert_string_equal(ost_name(st), "fault(mem)");
	ost_free(st);
	ost_free(NULL);
	rm_rf(root);
}

#define BOTH(fn)                                                               \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown,          \
						 &kind_mem),                   \
	    cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown,      \
						     &kind_local)
#define LOCAL(fn)                                                              \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown,          \
						 &kind_local)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    BOTH(test_basic),
	    BOTH(test_copy),
	    BOTH(test_get_all),
	    BOTH(test_list),
	    BOTH(test_odd_keys),
	    LOCAL(test_local_dirs),
	    BOTH(test_cond_put),
	    BOTH(test_async),
	    BOTH(test_stats),
	    BOTH(test_put_fd),
	    BOTH(test_put_fail_keeps_old),
	    BOTH(test_atomic_put),
	    cmocka_unit_test(test_fault_parse),
	    cmocka_unit_test(test_fault_fail_nth),
	    cmocka_unit_test(test_batch_failed),
	    BOTH(test_fault_short_read),
	    cmocka_unit_test(test_drain),
	    cmocka_unit_test(test_open_url),
	};

	ch5_log_set_level(LOG_CRIT); /* expected errors stay quiet */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
