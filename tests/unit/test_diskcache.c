/*
 * test_diskcache.c - unit tests of the block cache's disk tier
 * (fs/diskcache.c): round trips of compressible and incompressible blocks
 * (lz4 only where it pays), versions kept apart, the index rebuilt by a
 * new open (a remount), the byte budget, S3-FIFO's resistance to a one-off
 * scan (a block read repeatedly survives a scan of many times the budget),
 * damaged files (a miss, and the file is removed), and a write that fails
 * (logged once, writes off, reads go on).
 */
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

#include "diskcache.h"

#define BLK 65536

struct tctx {
	char dir[64];
	uint8_t *a, *b;
};

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	size_t i;

	assert_non_null(t);
	snprintf(t->dir, sizeof(t->dir), "/tmp/ch5-dcache-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	t->a = malloc(BLK);
	t->b = malloc(BLK);
	assert_non_null(t->a);
	assert_non_null(t->b);
	for (i = 0; i < BLK; i++)
		t->a[i] = (uint8_t)(i / 256); /* compresses well */
	srand(7);
	for (i = 0; i < BLK; i++)
		t->b[i] = (uint8_t)rand(); /* does not */
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	assert_int_equal(system(cmd), 0);
	free(t->a);
	free(t->b);
	free(t);
	return 0;
}

/* A block of BLK pseudo-random bytes (xorshift seeded by n): one that
 * lz4 cannot shrink, so each takes its full size on disk. */
static void fill(uint8_t *buf, uint64_t n)
{
	uint64_t x = n * 0x9E3779B97F4A7C15ULL + 1;
	size_t i;

	for (i = 0; i < BLK; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
}

static void test_round_trip(void **state)
{
	struct tctx *t = *state;
	struct fs_dcache *d;
	struct fs_dcache_stats s;
	uint8_t *out = malloc(BLK);

	assert_int_equal(fs_dcache_open(t->dir, 64 << 20, &d), 0);
	assert_int_equal(fs_dcache_get(d, "k", "", 0, out, BLK), -ENOENT);
	fs_dcache_put(d, "k", "", 0, t->a, BLK);
	fs_dcache_stats_get(d, &s);
	assert_true(s.bytes_saved > BLK / 2); /* lz4 */
	assert_true(s.bytes < BLK / 2);
	fs_dcache_put(d, "k", "", 1, t->b, BLK);
	fs_dcache_stats_get(d, &s);
	assert_true(s.bytes > BLK); /* stored raw */
	assert_int_equal(s.files, 2);
	assert_int_equal(fs_dcache_get(d, "k", "", 0, out, BLK), 0);
	assert_memory_equal(out, t->a, BLK);
	assert_int_equal(fs_dcache_get(d, "k", "", 1, out, BLK), 0);
	assert_memory_equal(out, t->b, BLK);
	/* Another version, another block number, another length: misses. */
	assert_int_equal(fs_dcache_get(d, "k", "etag2", 0, out, BLK), -ENOENT);
	assert_int_equal(fs_dcache_get(d, "k", "", 2, out, BLK), -ENOENT);
	fs_dcache_stats_get(d, &s);
	assert_int_equal(s.hits, 2);
	fs_dcache_close(d);

	/* A remount: the index is rebuilt from the files. */
	assert_int_equal(fs_dcache_open(t->dir, 64 << 20, &d), 0);
	fs_dcache_stats_get(d, &s);
	assert_int_equal(s.files, 2);
	assert_int_equal(fs_dcache_get(d, "k", "", 1, out, BLK), 0);
	assert_memory_equal(out, t->b, BLK);
	/* A block asked for with another length is not this one: a miss,
	 * and the file, which cannot serve, is removed. */
	assert_int_equal(fs_dcache_get(d, "k", "", 0, out, BLK - 1), -ENOENT);
	fs_dcache_stats_get(d, &s);
	assert_int_equal(s.files, 1);
	fs_dcache_close(d);
	free(out);
}

/* lz4 is tried on a sample from a block's middle first: a block with
 * random bytes there and zeros around them is stored raw, though lz4 could
 * shrink the whole by half; zeros there and random bytes around them, it
 * compresses. */
static void test_sample(void **state)
{
	struct tctx *t = *state;
	struct fs_dcache *d;
	struct fs_dcache_stats s;
	uint8_t *mixed = calloc(1, BLK), *out = malloc(BLK);

	assert_non_null(mixed);
	assert_non_null(out);
	assert_int_equal(fs_dcache_open(t->dir, 64 << 20, &d), 0);
	memcpy(mixed + BLK / 2 - BLK / 8, t->b, BLK / 4);
	fs_dcache_put(d, "k", "", 0, mixed, BLK);
	fs_dcache_stats_get(d, &s);
	assert_int_equal(s.bytes_saved, 0);
	assert_true(s.bytes > BLK);
	memcpy(mixed, t->b, BLK);
	memset(mixed + BLK / 2 - BLK / 4, 0, BLK / 2);
	fs_dcache_put(d, "k", "", 1, mixed, BLK);
	fs_dcache_stats_get(d, &s);
	assert_true(s.bytes_saved > BLK / 3);
	assert_int_equal(fs_dcache_get(d, "k", "", 1, out, BLK), 0);
	assert_memory_equal(out, mixed, BLK);
	memcpy(mixed + BLK / 2 - BLK / 8, t->b, BLK / 4);
	memset(mixed, 0, BLK / 2 - BLK / 8);
	memset(mixed + BLK / 2 + BLK / 8, 0, BLK / 2 - BLK / 8);
	assert_int_equal(fs_dcache_get(d, "k", "", 0, out, BLK), 0);
	assert_memory_equal(out, mixed, BLK);
	fs_dcache_close(d);
	free(mixed);
	free(out);
}

static void test_budget_and_scan(void **state)
{
	struct tctx *t = *state;
	struct fs_dcache *d;
	struct fs_dcache_stats s;
	uint8_t *buf = malloc(BLK), *out = malloc(BLK);
	uint64_t n, hot;
	int round;

	/* Room for about 20 raw blocks. */
	assert_int_equal(fs_dcache_open(t->dir, 20 * (BLK + 64) + 1000, &d),
			 0);
	/* A hot set of 4 blocks, each read again soon after it came. */
	for (hot = 0; hot < 4; hot++) {
		fill(buf, 1000 + hot);
		fs_dcache_put(d, "hot", "", hot, buf, BLK);
		assert_int_equal(fs_dcache_get(d, "hot", "", hot, out, BLK),
				 0);
	}
	/* A one-off scan of 200 blocks (10 times the budget), the hot set
	 * read now and then. */
	for (n = 0; n < 200; n++) {
		fill(buf, n);
		fs_dcache_put(d, "scan", "", n, buf, BLK);
		fs_dcache_stats_get(d, &s);
		assert_true(s.bytes <= 20 * (BLK + 64) + 1000);
		if (n % 25 == 24)
			for (hot = 0; hot < 4; hot++)
				assert_int_equal(fs_dcache_get(d, "hot", "",
							       hot, out, BLK),
						 0);
	}
	for (hot = 0; hot < 4; hot++) {
		fill(buf, 1000 + hot);
		assert_int_equal(fs_dcache_get(d, "hot", "", hot, out, BLK), 0);
		assert_memory_equal(out, buf, BLK);
	}
	/* Most of the scan is gone; what is left reads back right. */
	fs_dcache_stats_get(d, &s);
	assert_true(s.evictions >= 180);
	for (round = 0, n = 0; n < 200; n++) {
		if (fs_dcache_get(d, "scan", "", n, out, BLK) == 0) {
			fill(buf, n);
			assert_memory_equal(out, buf, BLK);
			round++;
		}
	}
	assert_true(round <= 16);
	fs_dcache_close(d);
	free(buf);
	free(out);
}

static void test_damaged_file(void **state)
{
	struct tctx *t = *state;
	struct fs_dcache *d;
	struct fs_dcache_stats s;
	uint8_t *out = malloc(BLK);
	char cmd[256];
	FILE *p;
	char path[512] = "";

	assert_int_equal(fs_dcache_open(t->dir, 64 << 20, &d), 0);
	fs_dcache_put(d, "k", "", 0, t->b, BLK);
	/* Flip a byte in the middle of the stored block. */
	snprintf(cmd, sizeof(cmd),
		 "find '%s' -mindepth 2 -type f -path '%s/[0-9a-f][0-9a-f]/*'",
		 t->dir, t->dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(path, sizeof(path), p));
	pclose(p);
	path[strcspn(path, "\n")] = '\0';
	{
		FILE *f = fopen(path, "r+b");
		int c;

		assert_non_null(f);
		assert_int_equal(fseek(f, 1000, SEEK_SET), 0);
		c = fgetc(f);
		assert_int_equal(fseek(f, 1000, SEEK_SET), 0);
		fputc(c ^ 0xff, f);
		fclose(f);
	}
	assert_int_equal(fs_dcache_get(d, "k", "", 0, out, BLK), -ENOENT);
	assert_int_equal(access(path, F_OK), -1); /* removed */
	fs_dcache_stats_get(d, &s);
	assert_int_equal(s.files, 0);
	assert_int_equal(s.bytes, 0);
	/* Written again, it reads again. */
	fs_dcache_put(d, "k", "", 0, t->b, BLK);
	assert_int_equal(fs_dcache_get(d, "k", "", 0, out, BLK), 0);
	assert_memory_equal(out, t->b, BLK);
	fs_dcache_close(d);
	free(out);
}

static void test_write_failure(void **state)
{
	struct tctx *t = *state;
	struct fs_dcache *d;
	struct fs_dcache_stats s;
	uint8_t *out = malloc(BLK);
	char tmp[128];
	FILE *f;

	assert_int_equal(fs_dcache_open(t->dir, 64 << 20, &d), 0);
	fs_dcache_put(d, "k", "", 0, t->a, BLK);
	/* Where the writes go is no directory any more. */
	snprintf(tmp, sizeof(tmp), "%s/tmp", t->dir);
	assert_int_equal(rmdir(tmp), 0);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fclose(f);
	fs_dcache_put(d, "k", "", 1, t->b, BLK);
	fs_dcache_put(d, "k", "", 2, t->b, BLK);
	fs_dcache_stats_get(d, &s);
	assert_int_equal(s.write_errors, 1);
	assert_int_equal(s.writes, 1);
	assert_int_equal(fs_dcache_get(d, "k", "", 1, out, BLK), -ENOENT);
	/* What was there still reads. */
	assert_int_equal(fs_dcache_get(d, "k", "", 0, out, BLK), 0);
	assert_memory_equal(out, t->a, BLK);
	fs_dcache_close(d);
	assert_int_equal(unlink(tmp), 0);
	free(out);
}

static void test_bad_arguments(void **state)
{
	struct tctx *t = *state;
	struct fs_dcache *d = NULL;
	char file[128];
	FILE *f;

	assert_int_equal(fs_dcache_open(t->dir, 1000, &d), -EINVAL);
	assert_int_equal(fs_dcache_open("", 64 << 20, &d), -EINVAL);
	snprintf(file, sizeof(file), "%s/plain", t->dir);
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(file, sizeof(file), "%s/plain/sub", t->dir);
	assert_int_equal(fs_dcache_open(file, 64 << 20, &d), -ENOTDIR);
	assert_null(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sample, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_and_scan, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_damaged_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_write_failure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
