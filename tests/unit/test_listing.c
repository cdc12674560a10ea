/*
 * test_listing.c - fs/listing.c: commits' notes reach their directory's
 * index (merged over what it held, the newest note of a name winning), a
 * large index is not stored again before its pace allows, and every note is
 * stored at shutdown.  On the in-memory store.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dirindex.h"
#include "fs_int.h"

static struct ost *mem_store(void)
{
	struct ost_backend *be = NULL;
	struct ost *st = NULL;

	assert_int_equal(ost_mem_new(&be), 0);
	assert_int_equal(ost_new(be, 4, &st), 0);
	return st;
}

/* Store an index of `n` entries "f<i>" (ETag "e<i>", size i) for `dir`. */
static void seed(struct ost *st, const char *dir, size_t n)
{
	struct h5m_dirent *e = calloc(n, sizeof(*e));
	char (*names)[16] = calloc(n, sizeof(*names));
	char *key = h5m_dirindex_key(dir);
	void *buf;
	size_t len, i;

	assert_non_null(e);
	assert_non_null(names);
	for (i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "f%zu", i % 10000000);
		e[i].name = names[i];
		snprintf(e[i].etag, sizeof(e[i].etag), "e%zu", i % 10000000);
		e[i].size = i;
		e[i].manifest = true;
	}
	assert_int_equal(h5m_dirindex_encode(e, n, &buf, &len), 0);
	assert_int_equal(ost_put_buf(st, key, buf, len, NULL), 0);
	free(buf);
	free(key);
	free(names);
	free(e);
}

/* The stored index of `dir` (zeroed if there is none). */
static void load(struct ost *st, const char *dir, struct h5m_dirindex *ix)
{
	char *key = h5m_dirindex_key(dir);
	void *buf = NULL;
	size_t len = 0;

	memset(ix, 0, sizeof(*ix));
	if (ost_get_all(st, key, H5M_DIRINDEX_MAX, &buf, &len, NULL) == 0)
		assert_int_equal(h5m_dirindex_decode(buf, len, ix), 0);
	free(buf);
	free(key);
}

static void test_merge(void **state)
{
	struct fs_ctx ctx;
	struct h5m_dirindex ix;
	const struct h5m_dirent *e;

	(void)state;
	memset(&ctx, 0, sizeof(ctx));
	ctx.st = mem_store();
	seed(ctx.st, "d", 2); /* f0, f1 */
	assert_int_equal(fs_listing_init(&ctx), 0);
	fs_listing_note(&ctx, "d/f1", "new1", 77, 5, true);
	fs_listing_note(&ctx, "d/c", "c-old", 1, 1, false);
	fs_listing_note(&ctx, "d/c", "c-new", 2, 2, true);
	fs_listing_note(&ctx, "x.h5", "x", 9, 9, true);
	fs_listing_note(&ctx, "d/e", "", 3, 3, true); /* no ETag: ignored */
	fs_listing_shutdown(&ctx);
	assert_null(ctx.listing);

	load(ctx.st, "d", &ix);
	assert_int_equal(ix.n, 3);
	e = h5m_dirindex_find(&ix, "f0");
	assert_non_null(e);
	assert_string_equal(e->etag, "e0");
	e = h5m_dirindex_find(&ix, "f1");
	assert_non_null(e);
	assert_string_equal(e->etag, "new1");
	assert_int_equal(e->size, 77);
	e = h5m_dirindex_find(&ix, "c");
	assert_non_null(e);
	assert_string_equal(e->etag, "c-new");
	assert_int_equal(e->size, 2);
	assert_true(e->manifest);
	assert_null(h5m_dirindex_find(&ix, "e"));
	h5m_dirindex_free(&ix);
	load(ctx.st, "", &ix);
	assert_int_equal(ix.n, 1);
	assert_string_equal(ix.ents[0].name, "x.h5");
	h5m_dirindex_free(&ix);
	ost_free(ctx.st);
}

/* Wait (at most 10 s) until the index of `dir` has `name`. */
static void wait_for(struct ost *st, const char *dir, const char *name)
{
	struct h5m_dirindex ix;
	int i;

	for (i = 0; i < 200; i++) {
		bool found;

		load(st, dir, &ix);
		found = h5m_dirindex_find(&ix, name) != NULL;
		h5m_dirindex_free(&ix);
		if (found)
			return;
		usleep(50 * 1000);
	}
	fail_msg("%s/%s never reached the index", dir, name);
}

static void test_pace(void **state)
{
	struct fs_ctx ctx;
	struct h5m_dirindex ix;

	(void)state;
	memset(&ctx, 0, sizeof(ctx));
	ctx.st = mem_store();
	/* about 1.3 MB: once stored, not again for about 5 s */
	seed(ctx.st, "big", 40000);
	assert_int_equal(fs_listing_init(&ctx), 0);
	fs_listing_note(&ctx, "big/one", "1", 1, 1, true);
	wait_for(ctx.st, "big", "one");
	load(ctx.st, "big", &ix);
	assert_int_equal(ix.n, 40001);
	h5m_dirindex_free(&ix);
	/* the next note of "big" waits for its pace; one of another
	 * directory, noted with it, does not */
	fs_listing_note(&ctx, "big/two", "2", 2, 2, true);
	fs_listing_note(&ctx, "small/s", "s", 3, 3, true);
	wait_for(ctx.st, "small", "s");
	load(ctx.st, "big", &ix);
	assert_null(h5m_dirindex_find(&ix, "two"));
	h5m_dirindex_free(&ix);
	/* at shutdown every note is stored */
	fs_listing_shutdown(&ctx);
	load(ctx.st, "big", &ix);
	assert_int_equal(ix.n, 40002);
	assert_non_null(h5m_dirindex_find(&ix, "two"));
	h5m_dirindex_free(&ix);
	ost_free(ctx.st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_pace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
