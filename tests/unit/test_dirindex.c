/*
 * test_dirindex.c - the directory index (hdf5map/dirindex.h): its key,
 * encode/decode round trips, lookups, and the refusal of damaged bytes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "bytes.h"
#include "dirindex.h"

static void set(struct h5m_dirent *e, const char *name, const char *etag,
		uint64_t size, int64_t mtime_ns, bool manifest)
{
	memset(e, 0, sizeof(*e));
	e->name = name;
	snprintf(e->etag, sizeof(e->etag), "%s", etag);
	e->size = size;
	e->mtime_ns = mtime_ns;
	e->manifest = manifest;
}

/* Recompute the trailing CRC after a deliberate edit. */
static void reseal(uint8_t *b, size_t len)
{
	ch5_put_le32(b + len - 4, (uint32_t)crc32(0L, b, (uInt)(len - 4)));
}

static void test_key(void **state)
{
	char *k;

	(void)state;
	k = h5m_dirindex_key("");
	assert_string_equal(k, ".cloudh5/i/D");
	free(k);
	k = h5m_dirindex_key("run/2024%x");
	assert_string_equal(k, ".cloudh5/i/Drun%2F2024%25x");
	free(k);
	{
		char deep[300];

		memset(deep, 'a', sizeof(deep) - 1);
		deep[sizeof(deep) - 1] = '\0';
		assert_null(h5m_dirindex_key(deep));
	}
}

static void test_roundtrip(void **state)
{
	struct h5m_dirent in[6];
	struct h5m_dirindex ix;
	const struct h5m_dirent *e;
	char longname[H5M_DIRINDEX_NAME_MAX + 2];
	void *buf;
	size_t len;

	(void)state;
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	/* unsorted, one duplicate, one empty and one too long name */
	set(&in[0], "b.h5", "etag-b", 1ull << 40, -5, true);
	set(&in[1], "a.txt", "", 7, 1700000000123456789LL, false);
	set(&in[2], "b.h5", "etag-dup", 1, 1, true);
	set(&in[3], "", "x", 1, 1, false);
	set(&in[4], longname, "x", 1, 1, false);
	set(&in[5], "\xc3\xa9t\xc3\xa9 2.nc", "0x8DC0FFEE", 12345, 99, true);
	assert_int_equal(h5m_dirindex_encode(in, 6, &buf, &len), 0);
	assert_int_equal(h5m_dirindex_decode(buf, len, &ix), 0);
	assert_int_equal(ix.n, 3);
	assert_string_equal(ix.ents[0].name, "a.txt");
	assert_string_equal(ix.ents[1].name, "b.h5");
	e = h5m_dirindex_find(&ix, "b.h5");
	assert_non_null(e);
	assert_true(e->manifest);
	assert_int_equal(e->size, 1ull << 40);
	assert_int_equal(e->mtime_ns, -5);
	/* of the duplicate, the entry sorted first stays (either one is a
	 * header this listing read) */
	assert_true(!strcmp(e->etag, "etag-b") || !strcmp(e->etag, "etag-dup"));
	e = h5m_dirindex_find(&ix, "a.txt");
	assert_non_null(e);
	assert_false(e->manifest);
	assert_string_equal(e->etag, "");
	assert_int_equal(e->mtime_ns, 1700000000123456789LL);
	e = h5m_dirindex_find(&ix, "\xc3\xa9t\xc3\xa9 2.nc");
	assert_non_null(e);
	assert_string_equal(e->etag, "0x8DC0FFEE");
	assert_int_equal(e->size, 12345);
	assert_null(h5m_dirindex_find(&ix, "c.h5"));
	assert_null(h5m_dirindex_find(&ix, longname));
	h5m_dirindex_free(&ix);
	free(buf);

	/* empty */
	assert_int_equal(h5m_dirindex_encode(NULL, 0, &buf, &len), 0);
	assert_int_equal(h5m_dirindex_decode(buf, len, &ix), 0);
	assert_int_equal(ix.n, 0);
	assert_null(h5m_dirindex_find(&ix, "a"));
	h5m_dirindex_free(&ix);
	free(buf);
}

static void test_damage(void **state)
{
	struct h5m_dirent in[3];
	struct h5m_dirindex ix;
	uint8_t *b;
	void *buf;
	size_t len, i;

	(void)state;
	set(&in[0], "a", "e1", 1, 1, true);
	set(&in[1], "b", "e2", 2, 2, true);
	set(&in[2], "c", "e3", 3, 3, false);
	assert_int_equal(h5m_dirindex_encode(in, 3, &buf, &len), 0);
	b = buf;
	/* every flipped byte and every truncation is refused */
	for (i = 0; i < len; i++) {
		b[i] ^= 0x40;
		assert_int_equal(h5m_dirindex_decode(b, len, &ix), -EBADMSG);
		assert_null(ix.ents);
		b[i] ^= 0x40;
	}
	for (i = 0; i < len; i++)
		assert_int_equal(h5m_dirindex_decode(b, i, &ix), -EBADMSG);
	/* damage that keeps the checksum right: names out of order, a count
	 * past the entries, unknown flags, a newer format */
	b[16 + 20] = 'z'; /* first name "a" -> "z": after "b" */
	reseal(b, len);
	assert_int_equal(h5m_dirindex_decode(b, len, &ix), -EBADMSG);
	b[16 + 20] = 'a';
	ch5_put_le32(b + 12, 4);
	reseal(b, len);
	assert_int_equal(h5m_dirindex_decode(b, len, &ix), -EBADMSG);
	ch5_put_le32(b + 12, 3);
	b[16 + 3] = 2;
	reseal(b, len);
	assert_int_equal(h5m_dirindex_decode(b, len, &ix), -EBADMSG);
	b[16 + 3] = 1;
	ch5_put_le32(b + 8, H5M_DIRINDEX_VERSION + 1);
	reseal(b, len);
	assert_int_equal(h5m_dirindex_decode(b, len, &ix), -EPROTONOSUPPORT);
	ch5_put_le32(b + 8, H5M_DIRINDEX_VERSION);
	reseal(b, len);
	assert_int_equal(h5m_dirindex_decode(b, len, &ix), 0);
	assert_int_equal(ix.n, 3);
	h5m_dirindex_free(&ix);
	free(buf);
}

static void test_many(void **state)
{
	enum { N = 100000 };
	struct h5m_dirent *in = calloc(N, sizeof(*in));
	char (*names)[32] = calloc(N, sizeof(*names));
	struct h5m_dirindex ix;
	void *buf;
	size_t len, i;

	(void)state;
	assert_non_null(in);
	assert_non_null(names);
	for (i = 0; i < N; i++) {
		char etag[48];

		snprintf(names[i], sizeof(names[i]), "f%07zu.h5", N - 1 - i);
		snprintf(etag, sizeof(etag), "%032zx", i);
		set(&in[i], names[i], etag, i * 3, (int64_t)i, i % 2);
	}
	assert_int_equal(h5m_dirindex_encode(in, N, &buf, &len), 0);
	assert_int_equal(h5m_dirindex_decode(buf, len, &ix), 0);
	assert_int_equal(ix.n, N);
	for (i = 0; i < N; i += 997) {
		const struct h5m_dirent *e = h5m_dirindex_find(&ix, names[i]);

		assert_non_null(e);
		assert_int_equal(e->size, i * 3);
		assert_int_equal(e->manifest, i % 2);
	}
	h5m_dirindex_free(&ix);
	free(buf);
	free(in);
	free(names);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
