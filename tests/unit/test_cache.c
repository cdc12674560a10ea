/*
 * test_cache.c - the block cache over the in-memory store: hits, misses,
 * coalesced misses, eviction under a byte budget, errors.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache.h"
#include "ost.h"

#define BS 4096

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending;
	int rc;
	uint8_t buf[BS];
	size_t len;
};

static void waiter_init(struct waiter *w, int pending)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->pending = pending;
}

static void got_block(void *arg, int rc, const uint8_t *data, size_t len)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->lock);
	if (rc)
		w->rc = rc;
	else {
		memcpy(w->buf, data, len);
		w->len = len;
	}
	w->pending--;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void waiter_wait(struct waiter *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->pending)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

/* Object "obj" of 10 blocks + 100 bytes; byte i is (i * 7) & 0xff. */
static struct ost *make_store(const char *fault)
{
	struct ost_backend *be = NULL;
	struct ost *st = NULL;
	size_t n = 10 * BS + 100, i;
	uint8_t *data = malloc(n);

	for (i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7);
	assert_int_equal(ost_mem_new(&be), 0);
	if (fault) {
		struct ost_fault_cfg cfg;
		struct ost_backend *fb = NULL;

		assert_int_equal(ost_fault_parse(fault, &cfg), 0);
		assert_int_equal(ost_fault_new(be, &cfg, &fb), 0);
		be = fb;
	}
	assert_int_equal(ost_new(be, 4, &st), 0);
	assert_int_equal(ost_put_buf(st, "obj", data, n, NULL), 0);
	free(data);
	return st;
}

/* The completion drops its pin on a block just after the callback ran, so
 * the budget holds once the cache is quiet: wait for that (at most 5 s). */
static void settle(struct ost *st, struct fs_cache *c, uint64_t budget)
{
	struct fs_cache_stats s;
	struct ost_stats os;
	int i;

	for (i = 0; i < 5000; i++) {
		fs_cache_stats_get(c, &s);
		ost_stats_get(st, &os);
		if (s.fetching == 0 && s.bytes <= budget && os.in_flight == 0)
			return;
		usleep(1000);
	}
}

static void fetch(struct fs_cache *c, uint64_t blk, struct waiter *w)
{
	waiter_init(w, 1);
	assert_int_equal(fs_cache_get(c, "obj", NULL, 10 * BS + 100, blk, got_block,
				      w),
			 0);
	waiter_wait(w);
}

static void test_hit_miss_content(void **state)
{
	struct ost *st = make_store(NULL);
	struct fs_cache *c;
	struct fs_cache_stats s;
	struct waiter w;
	size_t i;

	(void)state;
	assert_int_equal(fs_cache_new(st, 1 << 20, BS, &c), 0);
	fetch(c, 3, &w);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.len, BS);
	for (i = 0; i < BS; i++)
		assert_int_equal(w.buf[i], (uint8_t)((3 * BS + i) * 7));
	fetch(c, 3, &w);
	fetch(c, 10, &w); /* the short last block */
	assert_int_equal(w.len, 100);
	assert_int_equal(w.buf[99], (uint8_t)((10 * BS + 99) * 7));
	fs_cache_stats_get(c, &s);
	assert_int_equal(s.misses, 2);
	assert_int_equal(s.hits, 1);
	assert_int_equal(fs_cache_get(c, "obj", NULL, 10 * BS + 100, 11, got_block,
				      &w),
			 -EINVAL);
	fs_cache_free(c);
	ost_free(st);
}

static void test_eviction_budget(void **state)
{
	struct ost *st = make_store(NULL);
	struct fs_cache *c;
	struct fs_cache_stats s;
	struct ost_stats os;
	struct waiter w;
	uint64_t blk;

	(void)state;
	/* Room for 3 blocks. */
	assert_int_equal(fs_cache_new(st, 3 * BS, BS, &c), 0);
	for (blk = 0; blk < 10; blk++) {
		fetch(c, blk, &w);
		settle(st, c, 3 * BS);
		fs_cache_stats_get(c, &s);
		assert_true(s.bytes <= 3 * BS);
	}
	fs_cache_stats_get(c, &s);
	assert_int_equal(s.blocks, 3);
	assert_int_equal(s.evictions, 7);
	/* The most recent three are cached, the oldest is not. */
	settle(st, c, 3 * BS);
	ost_stats_get(st, &os);
	uint64_t gets = os.requests[OST_GET];
	fetch(c, 9, &w);
	fetch(c, 8, &w);
	fetch(c, 7, &w);
	settle(st, c, 3 * BS);
	ost_stats_get(st, &os);
	assert_int_equal(os.requests[OST_GET], gets);
	fetch(c, 0, &w);
	settle(st, c, 3 * BS);
	ost_stats_get(st, &os);
	assert_int_equal(os.requests[OST_GET], gets + 1);
	/* LRU: 0 is in, 9 (the least recently used) is out. */
	fetch(c, 8, &w);
	settle(st, c, 3 * BS);
	ost_stats_get(st, &os);
	assert_int_equal(os.requests[OST_GET], gets + 1);
	fetch(c, 9, &w);
	settle(st, c, 3 * BS);
	ost_stats_get(st, &os);
	assert_int_equal(os.requests[OST_GET], gets + 2);
	fs_cache_free(c);
	ost_free(st);
}

static void test_coalesce(void **state)
{
	struct ost *st = make_store("delay_ms=50");
	struct fs_cache *c;
	struct fs_cache_stats s;
	struct ost_stats os;
	struct waiter w;
	int i;

	(void)state;
	assert_int_equal(fs_cache_new(st, 1 << 20, BS, &c), 0);
	waiter_init(&w, 20);
	for (i = 0; i < 20; i++)
		assert_int_equal(fs_cache_get(c, "obj", NULL, 10 * BS + 100, 5,
					      got_block, &w),
				 0);
	waiter_wait(&w);
	assert_int_equal(w.rc, 0);
	settle(st, c, 1 << 20);
	ost_stats_get(st, &os);
	assert_int_equal(os.requests[OST_GET], 1);
	fs_cache_stats_get(c, &s);
	assert_int_equal(s.misses, 1);
	assert_int_equal(s.joins, 19);
	fs_cache_free(c);
	ost_free(st);
}

static void test_errors(void **state)
{
	/* The 2nd call (the first GET) fails; the retry succeeds. */
	struct ost *st = make_store("fail_nth=2,fail_errno=5");
	struct fs_cache *c;
	struct fs_cache_stats s;
	struct waiter w;

	(void)state;
	assert_int_equal(fs_cache_new(st, 1 << 20, BS, &c), 0);
	fetch(c, 1, &w);
	assert_int_equal(w.rc, -EIO);
	fs_cache_stats_get(c, &s);
	assert_int_equal(s.blocks, 0);
	assert_int_equal(s.bytes, 0);
	fetch(c, 1, &w);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.buf[0], (uint8_t)(BS * 7));
	/* An object shorter than the caller says is an error, not junk. */
	waiter_init(&w, 1);
	assert_int_equal(fs_cache_get(c, "obj", NULL, 20 * BS, 10, got_block, &w),
			 0);
	waiter_wait(&w);
	assert_int_equal(w.rc, -EIO);
	waiter_init(&w, 1);
	assert_int_equal(fs_cache_get(c, "missing", NULL, BS, 0, got_block, &w), 0);
	waiter_wait(&w);
	assert_int_equal(w.rc, -ENOENT);
	fs_cache_free(c);
	ost_free(st);
}

static void test_short_reads(void **state)
{
	/* Every GET answers at most 1000 bytes: the cache asks for the rest
	 * and still delivers whole, correct blocks. */
	struct ost *st = make_store("short_read=1000");
	struct fs_cache *c;
	struct waiter w;
	size_t i;

	(void)state;
	assert_int_equal(fs_cache_new(st, 1 << 20, BS, &c), 0);
	fetch(c, 2, &w);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.len, BS);
	for (i = 0; i < BS; i++)
		assert_int_equal(w.buf[i], (uint8_t)((2 * BS + i) * 7));
	fs_cache_free(c);
	ost_free(st);
}

static void test_versions(void **state)
{
	/* A plain object rewritten in place: a block cached for the old
	 * version (ETag) is not served for the new one. */
	struct ost *st = make_store(NULL);
	struct fs_cache *c;
	struct waiter w;

	(void)state;
	assert_int_equal(fs_cache_new(st, 1 << 20, BS, &c), 0);
	waiter_init(&w, 1);
	assert_int_equal(fs_cache_get(c, "obj", "v1", 10 * BS + 100, 0,
				      got_block, &w), 0);
	waiter_wait(&w);
	assert_int_equal(w.buf[1], 7);
	assert_int_equal(ost_put_buf(st, "obj", "new content", 11, NULL), 0);
	waiter_init(&w, 1);
	assert_int_equal(fs_cache_get(c, "obj", "v2", 11, 0, got_block, &w),
			 0);
	waiter_wait(&w);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.len, 11);
	assert_memory_equal(w.buf, "new content", 11);
	fs_cache_free(c);
	ost_free(st);
}

/* Range [off, off + len) of "obj" through fs_cache_get_range(); checks
 * the bytes. */
static void fetch_range(struct fs_cache *c, uint64_t off, size_t len)
{
	struct waiter w;
	size_t i;

	waiter_init(&w, 1);
	assert_int_equal(fs_cache_get_range(c, "obj", NULL, 10 * BS + 100, off,
					    len, got_block, &w),
			 0);
	waiter_wait(&w);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.len, len);
	for (i = 0; i < len; i++)
		assert_int_equal(w.buf[i], (uint8_t)((off + i) * 7));
}

/* Ranged GETs' answers are kept: the same range again costs no GET, a
 * different one does; past 2,048 kept answers the oldest go first. */
static void test_ranges_kept(void **state)
{
	struct ost *st = make_store(NULL);
	struct fs_cache *c;
	struct fs_cache_stats s;
	uint64_t i;

	(void)state;
	assert_int_equal(fs_cache_new(st, 1 << 20, BS, &c), 0);
	fetch_range(c, 5, 100);
	fetch_range(c, 5, 100);
	fetch_range(c, 5, 99);
	fs_cache_stats_get(c, &s);
	assert_int_equal(s.partial, 2);
	assert_int_equal(s.partial_hits, 1);
	/* 2,100 ranges of one byte: the first 52 are evicted */
	for (i = 0; i < 2100; i++)
		fetch_range(c, 1000 + i, 1);
	fs_cache_stats_get(c, &s);
	assert_int_equal(s.partial, 2 + 2100);
	fetch_range(c, 1000 + 2099, 1); /* kept */
	fetch_range(c, 1000 + 60, 1);	/* kept */
	fs_cache_stats_get(c, &s);
	assert_int_equal(s.partial, 2 + 2100);
	fetch_range(c, 1000, 1); /* evicted: fetched again */
	fetch_range(c, 5, 100);	 /* evicted long ago */
	fs_cache_stats_get(c, &s);
	assert_int_equal(s.partial, 2 + 2100 + 2);
	fs_cache_free(c);
	ost_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss_content),
		cmocka_unit_test(test_eviction_budget),
		cmocka_unit_test(test_coalesce),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_short_reads),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_ranges_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
