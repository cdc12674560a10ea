/*
 * test_spool.c - stage records: write/read round trip (any key bytes,
 * ranges, empty ETags), records of older versions (a bare key), corrupt
 * records, and the spool scan.
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

#include "spool.h"

static char dir[] = "/tmp/ch5-spool-test-XXXXXX";

static void path_of(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_round_trip(void **state)
{
	uint64_t ranges[] = { 0, 10, 4096, 1 << 20, 5000000000ULL,
			      5000000001ULL };
	struct fs_spool_rec rec, back;
	char stage[512];

	(void)state;
	path_of(stage, sizeof(stage), "a.stage");
	put_file(stage, "");
	memset(&rec, 0, sizeof(rec));
	rec.state = FS_SPOOL_COMMITTING;
	/* A key may hold newlines, spaces and "key " itself. */
	snprintf(rec.key, sizeof(rec.key), "dir/odd name\nkey x.h5");
	snprintf(rec.expect, sizeof(rec.expect), "\"abc-1\"");
	rec.base[0] = '\0';
	rec.ranges_known = true;
	rec.written = ranges;
	rec.n_written = 3;
	assert_int_equal(fs_spool_write(stage, &rec), 0);
	assert_int_equal(fs_spool_read(stage, &back), 0);
	assert_int_equal(back.state, FS_SPOOL_COMMITTING);
	assert_string_equal(back.key, rec.key);
	assert_string_equal(back.expect, rec.expect);
	assert_string_equal(back.base, "");
	assert_true(back.ranges_known);
	assert_int_equal(back.n_written, 3);
	assert_memory_equal(back.written, ranges, sizeof(ranges));
	fs_spool_rec_release(&back);

	/* Rewritten: the new record replaces the old one whole. */
	rec.state = FS_SPOOL_CLEAN;
	rec.ranges_known = false;
	snprintf(rec.base, sizeof(rec.base), "etag-2");
	assert_int_equal(fs_spool_write(stage, &rec), 0);
	assert_int_equal(fs_spool_read(stage, &back), 0);
	assert_int_equal(back.state, FS_SPOOL_CLEAN);
	assert_string_equal(back.base, "etag-2");
	assert_false(back.ranges_known);
	fs_spool_rec_release(&back);
	fs_spool_remove(stage);
	assert_int_equal(access(stage, F_OK), -1);
}

static void test_old_and_missing(void **state)
{
	struct fs_spool_rec back;
	char stage[512], key[520];

	(void)state;
	path_of(stage, sizeof(stage), "b.stage");
	put_file(stage, "x");
	/* No record: unknown key, no ranges, not to be committed. */
	assert_int_equal(fs_spool_read(stage, &back), 0);
	assert_string_equal(back.key, "?");
	assert_int_equal(back.state, FS_SPOOL_WRITING);
	assert_false(back.ranges_known);
	fs_spool_rec_release(&back);
	/* An older daemon's record is the bare key. */
	snprintf(key, sizeof(key), "%s" FS_STAGE_KEY_SUFFIX, stage);
	put_file(key, "run/x.h5");
	assert_int_equal(fs_spool_read(stage, &back), 0);
	assert_string_equal(back.key, "run/x.h5");
	assert_int_equal(back.state, FS_SPOOL_WRITING);
	fs_spool_rec_release(&back);
	fs_spool_remove(stage);
}

static void test_corrupt(void **state)
{
	static const char *const bad[] = {
		"cloudh5-stage 1\nstate bogus\nkey a",
		"cloudh5-stage 1\nstate clean\nwritten 2\n0 5\nkey a",
		"cloudh5-stage 1\nstate clean\nwritten 2\n9 5\n10 20\nkey a",
		"cloudh5-stage 1\nstate clean\nwritten 2\n0 5\n3 9\nkey a",
		"cloudh5-stage 1\nstate clean\nwritten 99999999999\nkey a",
		"cloudh5-stage 1\nstate clean",
	};
	struct fs_spool_rec back;
	char stage[512], key[520];
	size_t i;

	(void)state;
	path_of(stage, sizeof(stage), "c.stage");
	put_file(stage, "");
	snprintf(key, sizeof(key), "%s" FS_STAGE_KEY_SUFFIX, stage);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_file(key, bad[i]);
		assert_int_equal(fs_spool_read(stage, &back), -EBADMSG);
		assert_string_equal(back.key, "?");
		assert_null(back.written);
		fs_spool_rec_release(&back);
	}
	fs_spool_remove(stage);
}

struct seen {
	int n;
	char key[OST_KEY_MAX + 1];
	uint64_t size;
};

static void on_stage(void *arg, const char *path, uint64_t size,
		     const struct fs_spool_rec *rec)
{
	struct seen *s = arg;

	(void)path;
	s->n++;
	s->size = size;
	snprintf(s->key, sizeof(s->key), "%s", rec->key);
}

static void test_scan(void **state)
{
	struct fs_spool_rec rec;
	struct seen s = { 0 };
	char stage[512], other[512];

	(void)state;
	path_of(stage, sizeof(stage), "d.stage");
	path_of(other, sizeof(other), "not-a-stage.tmp");
	put_file(stage, "12345");
	put_file(other, "x");
	memset(&rec, 0, sizeof(rec));
	rec.state = FS_SPOOL_WRITING;
	snprintf(rec.key, sizeof(rec.key), "k.h5");
	assert_int_equal(fs_spool_write(stage, &rec), 0);
	assert_int_equal(fs_spool_scan(dir, on_stage, &s), 1);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.key, "k.h5");
	assert_int_equal(s.size, 5);
	fs_spool_remove(stage);
	unlink(other);
	assert_true(fs_spool_scan("/nonexistent-ch5", on_stage, &s) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_old_and_missing),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_scan),
	};
	int rc;

	if (!mkdtemp(dir))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return rc;
}
