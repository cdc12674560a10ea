/*
 * test_manifest.c - hdf5map plan, manifest encode/decode and synthesize,
 * from synthetic splits and byte arrays (no libhdf5 files needed).
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include <cmocka.h>

#include "h5m.h"
#include "h5m_int.h"
#include "log.h"

/* ---- helpers ------------------------------------------------------------ */

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

/* Deterministic xorshift so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

/* A file whose byte at off is a function of off: no buffer needed. */
static uint8_t synth_byte(uint64_t off)
{
	uint64_t x = off * 0x9E3779B97F4A7C15ull;

	return (uint8_t)(x >> 56 ^ x >> 29);
}

static int synth_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	uint64_t size = *(const uint64_t *)ctx;
	uint8_t *p = buf;

	if (off > size || len > size - off)
		return -EIO;
	for (size_t i = 0; i < len; i++)
		p[i] = synth_byte(off + i);
	return 0;
}

struct mem {
	const uint8_t *p;
	size_t len;
};

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	const struct mem *m = ctx;

	if (off > m->len || len > m->len - off)
		return -EIO;
	memcpy(buf, m->p + off, len);
	return 0;
}

/* A split built by hand. */
struct fake_split {
	struct h5m_split sp;
	char *names[4];
	struct h5m_span spans[64];
	uint64_t coords[256];
};

static void fs_init(struct fake_split *f)
{
	memset(f, 0, sizeof(*f));
	f->sp.datasets = f->names;
	f->sp.spans = f->spans;
	f->sp.coords = f->coords;
}

static void fs_ds(struct fake_split *f, const char *name)
{
	f->names[f->sp.n_datasets++] = (char *)name;
}

static void fs_span(struct fake_split *f, uint32_t ds, uint32_t kind,
		    uint64_t off, uint64_t len, int rank, const uint64_t *c)
{
	struct h5m_span *s = &f->spans[f->sp.n_spans++];

	s->off = off;
	s->len = len;
	s->dataset = ds;
	s->kind = kind;
	s->rank = (uint32_t)rank;
	s->coord_idx = f->sp.n_coords;
	for (int i = 0; i < rank; i++)
		f->coords[f->sp.n_coords++] = c[i];
}

static struct h5m_layout layout(uint64_t block, uint64_t raw_min)
{
	struct h5m_layout l = { .file_key = "run42/out.h5",
				.tag = "g3-9f2c01aa",
				.generation = 3,
				.block_size = block,
				.raw_min = raw_min,
				.fill_page = H5M_NO_FILL };
	return l;
}

static void assert_same_manifest(const struct h5m_manifest *a,
				 const struct h5m_manifest *b)
{
	char ka[8192], kb[8192];

	assert_int_equal(h5m_file_size(a), h5m_file_size(b));
	assert_int_equal(h5m_generation(a), h5m_generation(b));
	assert_int_equal(h5m_skeleton_size(a), h5m_skeleton_size(b));
	assert_int_equal(h5m_extent_count(a), h5m_extent_count(b));
	for (size_t i = 0; i < h5m_extent_count(a); i++) {
		uint64_t oa, la, ob, lb;

		h5m_extent(a, i, &oa, &la);
		h5m_extent(b, i, &ob, &lb);
		assert_int_equal(oa, ob);
		assert_int_equal(la, lb);
		assert_true(h5m_extent_key(a, i, ka, sizeof(ka)) > 0);
		assert_true(h5m_extent_key(b, i, kb, sizeof(kb)) > 0);
		assert_string_equal(ka, kb);
	}
	assert_memory_equal(a->skel, b->skel, (size_t)a->skel_len);
	assert_int_equal(a->fill_page, b->fill_page);
	assert_int_equal(h5m_fill_size(a), h5m_fill_size(b));
	assert_int_equal(a->n_fill, b->n_fill);
	for (size_t i = 0; i < a->n_fill; i++) {
		assert_int_equal(a->fr[i].off, b->fr[i].off);
		assert_int_equal(a->fr[i].len, b->fr[i].len);
	}
	assert_memory_equal(a->fill, b->fill, (size_t)a->fill_len);
}

/* The page fill's promise: every page of m->fill_page bytes that holds a
 * skeleton byte (or, with `edges`, is not inside one extent) is served from
 * memory only. */
static void check_fill_pages(const struct h5m_manifest *m, bool edges)
{
	uint64_t size = h5m_file_size(m), P = m->fill_page;
	struct h5m_piece pcs[64];

	if (!P)
		return;
	for (uint64_t a = 0; a < size; a += P) {
		size_t n = h5m_map(m, a, P, pcs, 64), i;
		bool skel = false, obj = false, one = true;
		uint64_t covered = 0;

		for (i = 0; i < n; i++) {
			size_t e = h5m_extent_find(m, pcs[i].file_off);
			uint64_t eo = 0, el = 0;

			if (e < h5m_extent_count(m))
				h5m_extent(m, e, &eo, &el);
			if (e == h5m_extent_count(m) || eo > pcs[i].file_off)
				skel = true;
			else if (pcs[i].extent != pcs[0].extent)
				one = false;
			if (!pcs[i].skel)
				obj = true;
			covered += pcs[i].len;
		}
		if (covered < (size - a < P ? size - a : P))
			continue; /* more pieces than pcs holds */
		assert_false(skel && obj);
		if (edges)
			assert_false(obj && !one);
	}
}

static struct h5m_manifest *roundtrip(const struct h5m_manifest *m,
				      size_t *enc_len)
{
	struct h5m_manifest *d = NULL;
	void *buf;
	size_t len;

	assert_int_equal(h5m_manifest_encode(m, &buf, &len), 0);
	assert_true(h5m_is_manifest(buf, len));
	assert_int_equal(h5m_manifest_decode(buf, len, &d), 0);
	assert_same_manifest(m, d);
	if (enc_len)
		*enc_len = len;
	free(buf);
	return d;
}

/* Rebuild [0, size) through h5m_map with at most `max` pieces per call,
 * objects read from the original at (extent offset + obj_off), and check
 * every piece's invariants. */
static void rebuild_check(const struct h5m_manifest *m, h5m_read_fn read,
			  void *ctx, uint64_t off, uint64_t len, size_t max)
{
	uint64_t size = h5m_file_size(m);
	uint64_t end = off >= size ? off : (len > size - off ? size : off + len);
	struct h5m_piece pcs[16];
	uint8_t want[4096], got[4096];

	assert_true(max <= 16);
	while (off < end) {
		size_t n = h5m_map(m, off, end - off, pcs, max);

		assert_true(n >= 1 && n <= max);
		for (size_t i = 0; i < n; i++) {
			struct h5m_piece *p = &pcs[i];
			uint64_t eo, el;

			assert_int_equal(p->file_off, off);
			assert_true(p->len > 0 && p->len <= end - off);
			if (p->skel) {
				size_t e = h5m_extent_find(m, off);

				/* a skeleton piece is in no extent; a fill
				 * piece is inside the extent it names */
				if (e < h5m_extent_count(m)) {
					h5m_extent(m, e, &eo, &el);
					if (eo <= off) {
						assert_int_equal(p->extent, e);
						assert_true(off + p->len <=
							    eo + el);
					} else {
						assert_true(eo >=
							    off + p->len);
					}
				}
			} else {
				h5m_extent(m, p->extent, &eo, &el);
				assert_int_equal(eo + p->obj_off, off);
				assert_true(p->obj_off + p->len <= el);
			}
			for (uint64_t done = 0; done < p->len;) {
				size_t k = p->len - done > sizeof(want)
						   ? sizeof(want)
						   : (size_t)(p->len - done);

				assert_int_equal(read(ctx, off + done, want, k),
						 0);
				if (p->skel)
					memcpy(got, p->skel + done, k);
				else
					assert_int_equal(read(ctx, off + done,
							      got, k),
							 0);
				assert_memory_equal(want, got, k);
				done += k;
			}
			off += p->len;
		}
	}
}

/* ---- tests -------------------------------------------------------------- */

static void test_empty_and_single(void **state)
{
	struct h5m_layout lay = layout(0, 0);
	struct h5m_manifest *m, *d;
	struct fake_split f;
	uint64_t size = 0;
	struct h5m_piece pc;
	char key[256];

	(void)state;
	/* empty file, raw: zero extents */
	assert_int_equal(h5m_plan(NULL, 0, &lay, synth_read, &size, &m), 0);
	assert_int_equal(h5m_extent_count(m), 0);
	assert_int_equal(h5m_skeleton_size(m), 0);
	d = roundtrip(m, NULL);
	assert_int_equal(h5m_map(d, 0, 10, &pc, 1), 0);
	h5m_manifest_free(d);
	h5m_manifest_free(m);

	/* an HDF5 split with no spans: all skeleton */
	fs_init(&f);
	size = 3000;
	assert_int_equal(h5m_plan(&f.sp, size, &lay, synth_read, &size, &m),
			 0);
	assert_int_equal(h5m_extent_count(m), 0);
	assert_int_equal(h5m_skeleton_size(m), 3000);
	d = roundtrip(m, NULL);
	rebuild_check(d, synth_read, &size, 0, size, 3);
	h5m_manifest_free(d);
	h5m_manifest_free(m);

	/* one chunk, whole file */
	fs_init(&f);
	fs_ds(&f, "/x");
	fs_span(&f, 0, H5M_SPAN_CHUNK, 0, 3000, 1, (uint64_t[]){ 0 });
	assert_int_equal(h5m_plan(&f.sp, size, &lay, synth_read, &size, &m),
			 0);
	assert_int_equal(h5m_extent_count(m), 1);
	assert_int_equal(h5m_skeleton_size(m), 0);
	assert_int_equal(h5m_extent_key(m, 0, key, sizeof(key)),
			 strlen(".cloudh5/c/run42/out.h5/g3-9f2c01aa/x/0"));
	assert_string_equal(key, ".cloudh5/c/run42/out.h5/g3-9f2c01aa/x/0");
	assert_int_equal(h5m_extent_key(m, 0, key, 10), -ENAMETOOLONG);
	d = roundtrip(m, NULL);
	rebuild_check(d, synth_read, &size, 0, size, 1);
	h5m_manifest_free(d);
	h5m_manifest_free(m);
}

/* Random splits of random files: plan, round trip, rebuild. */
static void test_random_roundtrip(void **state)
{
	(void)state;
	for (int iter = 0; iter < 200; iter++) {
		struct h5m_layout lay = layout(1 + rnd() % 700, 1 + rnd() % 400);
		static const char *names[] = { "/a", "/grp/b c", "/%x/@y",
					       "/deep/er/z" };
		struct h5m_manifest *m, *d;
		struct fake_split f;
		uint64_t pos = rnd() % 50, size;

		fs_init(&f);
		for (int i = 0; i < 4; i++)
			fs_ds(&f, names[i]);
		while (f.sp.n_spans < 60 && rnd() % 64) {
			uint64_t c[3] = { rnd() % 1000, rnd() % 7, rnd() % 3 };
			uint64_t len = 1 + rnd() % 900;

			fs_span(&f, (uint32_t)(rnd() % 4),
				rnd() % 4 ? H5M_SPAN_CHUNK : H5M_SPAN_CONTIG,
				pos, len, 1 + (int)(rnd() % 3), c);
			pos += len + (rnd() % 3 ? 0 : rnd() % 1000);
		}
		size = pos + rnd() % 100;
		/* no fill, or pages of odd sizes, so that many runs of fill
		 * cross extents and gaps */
		lay.fill_page = rnd() % 3 ? 1 + (uint32_t)(rnd() % 300)
					  : H5M_NO_FILL;
		assert_int_equal(h5m_plan(&f.sp, size, &lay, synth_read, &size,
					  &m),
				 0);
		d = roundtrip(m, NULL);
		check_fill_pages(d, true); /* small: all within budget */
		rebuild_check(d, synth_read, &size, 0, size,
			      1 + (size_t)(rnd() % 16));
		for (int k = 0; k < 20; k++) {
			uint64_t off = rnd() % (size + 10);

			rebuild_check(d, synth_read, &size, off, rnd() % 3000,
				      1 + (size_t)(rnd() % 16));
		}
		h5m_manifest_free(d);
		h5m_manifest_free(m);
	}
}

static void test_million(void **state)
{
	const size_t n = 1000000;
	struct h5m_layout lay = layout(0, 0);
	struct h5m_split sp = { 0 };
	struct h5m_manifest *m, *d;
	char *name = "/experiment/run/temperature";
	uint64_t pos = 0, size;
	double t0, t_plan, t_enc, t_dec;
	long rss0, rss1;
	void *buf;
	size_t len;

	(void)state;
	sp.datasets = &name;
	sp.n_datasets = 1;
	sp.spans = calloc(n, sizeof(*sp.spans));
	sp.coords = calloc(2 * n, sizeof(*sp.coords));
	assert_non_null(sp.spans);
	assert_non_null(sp.coords);
	pos = 4096; /* superblock and friends */
	for (size_t i = 0; i < n; i++) {
		struct h5m_span *s = &sp.spans[i];

		s->off = pos;
		s->len = 2000 + rnd() % 6000; /* compressed chunks */
		s->kind = H5M_SPAN_CHUNK;
		s->rank = 2;
		s->coord_idx = 2 * i;
		sp.coords[2 * i] = i / 1000;
		sp.coords[2 * i + 1] = i % 1000;
		pos += s->len;
		if (i % 64 == 63)
			pos += rnd() % 64; /* a little skeleton */
	}
	sp.n_spans = n;
	sp.n_coords = 2 * n;
	size = pos + 1000;

	t0 = now();
	assert_int_equal(h5m_plan(&sp, size, &lay, synth_read, &size, &m), 0);
	t_plan = now() - t0;
	assert_int_equal(h5m_extent_count(m), n);
	t0 = now();
	assert_int_equal(h5m_manifest_encode(m, &buf, &len), 0);
	t_enc = now() - t0;
	rss0 = rss_kb();
	t0 = now();
	assert_int_equal(h5m_manifest_decode(buf, len, &d), 0);
	t_dec = now() - t0;
	rss1 = rss_kb();
	print_message("1M chunks: file %.1f GB, skeleton %.2f MB, manifest "
		      "%.2f MB; plan %.2fs encode %.2fs decode %.2fs; "
		      "decoded RSS +%.1f MB\n",
		      (double)size / 1e9, (double)h5m_skeleton_size(m) / 1e6,
		      (double)len / 1e6, t_plan, t_enc, t_dec,
		      (double)(rss1 - rss0) / 1024.0);
	assert_same_manifest(m, d);
	/* lookups at every 997th extent's boundaries */
	for (size_t i = 0; i < n; i += 997) {
		uint64_t off, l;

		h5m_extent(d, i, &off, &l);
		assert_int_equal(h5m_extent_find(d, off), i);
		assert_int_equal(h5m_extent_find(d, off + l - 1), i);
		assert_int_equal(h5m_extent_find(d, off + l), i + 1);
	}
	rebuild_check(d, synth_read, &size, 0, 3000000, 16);
	rebuild_check(d, synth_read, &size, size - 3000000, 3000000, 16);
	free(buf);
	h5m_manifest_free(d);
	h5m_manifest_free(m);
	free(sp.spans);
	free(sp.coords);
}

static uint32_t crc(const void *p, size_t len)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)len);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_crcs(uint8_t *b, size_t len)
{
	put64(b + 48, len - H5M_HEADER_SIZE);
	put32(b + 56, crc(b + H5M_HEADER_SIZE, len - H5M_HEADER_SIZE));
	put32(b + 60, crc(b, 60));
}

/* A small manifest; zeros = 1 makes its skeleton compressible (lz4). */
static void small_manifest(int zeros, uint8_t **buf, size_t *len,
			   struct h5m_manifest **m)
{
	static uint8_t file[6000];
	static struct mem mem = { file, sizeof(file) };
	/* random skeleton bytes, all inline: lz4 cannot shrink it */
	struct h5m_layout lay = layout(700, zeros ? 300 : 100000);
	struct fake_split f;
	void *b;

	for (size_t i = 0; i < sizeof(file); i++)
		file[i] = zeros ? (uint8_t)(i % 7 == 0) : synth_byte(i);
	fs_init(&f);
	fs_ds(&f, "/d1");
	fs_ds(&f, "/g/d2");
	fs_span(&f, 0, H5M_SPAN_CHUNK, 100, 200, 2, (uint64_t[]){ 0, 1 });
	fs_span(&f, 0, H5M_SPAN_CHUNK, 300, 200, 2, (uint64_t[]){ 0, 2 });
	fs_span(&f, 1, H5M_SPAN_CONTIG, 600, 1500, 0, NULL);
	fs_span(&f, 0, H5M_SPAN_CHUNK, 2200, 100, 2, (uint64_t[]){ 1, 0 });
	assert_int_equal(h5m_plan(&f.sp, sizeof(file), &lay, mem_read, &mem,
				  m),
			 0);
	assert_int_equal(h5m_manifest_encode(*m, &b, len), 0);
	*buf = b;
}

static void test_corruption(void **state)
{
	(void)state;
	for (int zeros = 0; zeros < 2; zeros++) {
		struct h5m_manifest *m, *d;
		struct h5m_header h;
		uint8_t *buf;
		size_t len;

		small_manifest(zeros, &buf, &len, &m);
		/* the zeros variant must exercise the lz4 path */
		assert_int_equal(buf[12] & 1, zeros);
		assert_int_equal(h5m_header_peek(buf, len, &h), 0);
		assert_int_equal(h.manifest_size, len);
		assert_int_equal(h.file_size, 6000);
		assert_int_equal(h.n_extents, h5m_extent_count(m));
		assert_int_equal(h.generation, 3);
		assert_int_equal(h.version, 2); /* no edge section */

		/* every header byte, two kinds of flip */
		for (size_t i = 0; i < H5M_HEADER_SIZE; i++) {
			for (int k = 0; k < 2; k++) {
				uint8_t x = k ? 0xff : 0x01;

				buf[i] ^= x;
				assert_int_equal(h5m_manifest_decode(buf, len,
								     &d),
						 -EBADMSG);
				assert_null(d);
				assert_int_equal(h5m_header_peek(buf, len, &h),
						 -EBADMSG);
				buf[i] ^= x;
			}
		}
		/* random body bytes */
		for (int k = 0; k < 2000; k++) {
			size_t i = H5M_HEADER_SIZE +
				   rnd() % (len - H5M_HEADER_SIZE);
			uint8_t x = (uint8_t)(1 + rnd() % 255);

			buf[i] ^= x;
			assert_int_equal(h5m_manifest_decode(buf, len, &d),
					 -EBADMSG);
			buf[i] ^= x;
		}
		/* every truncation, and one byte too many */
		for (size_t l = 0; l < len; l++)
			assert_int_equal(h5m_manifest_decode(buf, l, &d),
					 -EBADMSG);
		{
			uint8_t *longer = malloc(len + 1);

			memcpy(longer, buf, len);
			longer[len] = 0;
			assert_int_equal(h5m_manifest_decode(longer, len + 1,
							     &d),
					 -EBADMSG);
			free(longer);
		}
		/* still intact */
		assert_int_equal(h5m_manifest_decode(buf, len, &d), 0);
		assert_same_manifest(m, d);
		h5m_manifest_free(d);
		h5m_manifest_free(m);
		free(buf);
	}
}

/* Corrupt bodies with valid checksums: the parser itself must reject or
 * accept them without crashing, and what it accepts must be consistent. */
static void test_fuzz_valid_crc(void **state)
{
	struct h5m_manifest *m, *d;
	uint8_t *buf, *b2;
	size_t len;

	(void)state;
	small_manifest(0, &buf, &len, &m);
	assert_int_equal(buf[12] & 1, 0); /* plain body: mutate the parse */
	b2 = malloc(len + 64);
	for (int k = 0; k < 200000; k++) {
		size_t l = len, nflip = 1 + rnd() % 4;

		memcpy(b2, buf, len);
		for (size_t j = 0; j < nflip; j++) {
			size_t i = H5M_HEADER_SIZE +
				   rnd() % (len - H5M_HEADER_SIZE);

			b2[i] = (uint8_t)rnd();
		}
		if (k % 7 == 0) /* also lie about counts and sizes */
			put64(b2 + 32, rnd() % 64);
		if (k % 11 == 0)
			put64(b2 + 24, rnd() % 10000);
		if (k % 13 == 0)
			l = H5M_HEADER_SIZE + rnd() % (len - H5M_HEADER_SIZE);
		put64(b2 + 40, l - H5M_HEADER_SIZE);
		fix_crcs(b2, l);
		d = NULL;
		if (h5m_manifest_decode(b2, l, &d) == 0) {
			struct h5m_piece pcs[8];

			assert_int_equal(h5m_manifest_check(d), 0);
			h5m_map(d, 0, UINT64_MAX, pcs, 8);
			h5m_manifest_free(d);
		} else {
			assert_null(d);
		}
	}
	/* lz4 bodies: random frames with valid checksums */
	for (int k = 0; k < 20000; k++) {
		size_t l = H5M_HEADER_SIZE + 1 + rnd() % 60;

		memcpy(b2, buf, H5M_HEADER_SIZE);
		for (size_t i = H5M_HEADER_SIZE; i < l; i++)
			b2[i] = (uint8_t)rnd();
		if (k % 2) { /* a real lz4 frame magic */
			put32(b2 + H5M_HEADER_SIZE, 0x184D2204);
		}
		put32(b2 + 12, 1);
		put64(b2 + 40, rnd() % 100000);
		put64(b2 + 32, 0);
		fix_crcs(b2, l);
		if (h5m_manifest_decode(b2, l, &d) == 0)
			h5m_manifest_free(d);
	}
	/* absurd counts must not allocate */
	memcpy(b2, buf, len);
	put64(b2 + 32, UINT64_MAX / 2);
	fix_crcs(b2, len);
	assert_int_equal(h5m_manifest_decode(b2, len, &d), -EBADMSG);
	memcpy(b2, buf, len);
	put32(b2 + 12, 1);
	put64(b2 + 40, UINT64_MAX - 5);
	fix_crcs(b2, len);
	assert_int_equal(h5m_manifest_decode(b2, len, &d), -EBADMSG);
	free(b2);
	free(buf);
	h5m_manifest_free(m);
}

static void test_version(void **state)
{
	struct h5m_manifest *m, *d;
	struct h5m_header h;
	uint8_t *buf;
	size_t len;

	(void)state;
	small_manifest(0, &buf, &len, &m);
	put32(buf + 8, H5M_FORMAT_VERSION + 1);
	put32(buf + 60, crc(buf, 60));
	assert_int_equal(h5m_manifest_decode(buf, len, &d), -EPROTONOSUPPORT);
	assert_int_equal(h5m_header_peek(buf, len, &h), -EPROTONOSUPPORT);
	put32(buf + 8, 0);
	put32(buf + 60, crc(buf, 60));
	assert_int_equal(h5m_manifest_decode(buf, len, &d), -EBADMSG);
	/* format 3 is format 2 plus the edge section's fields: a format 2
	 * body read as 3 ends too soon */
	put32(buf + 8, 3);
	put32(buf + 60, crc(buf, 60));
	assert_int_equal(h5m_manifest_decode(buf, len, &d), -EBADMSG);
	put32(buf + 8, 2);
	assert_int_equal(buf[12], 0);
	put32(buf + 12, 2); /* unknown flag */
	put32(buf + 60, crc(buf, 60));
	assert_int_equal(h5m_manifest_decode(buf, len, &d), -EBADMSG);
	put32(buf + 12, 0);
	put32(buf + 60, crc(buf, 60));
	assert_int_equal(h5m_manifest_decode(buf, len, &d), 0);
	h5m_manifest_free(d);
	assert_false(h5m_is_manifest(buf, H5M_MAGIC_LEN - 1));
	assert_false(h5m_is_manifest("\x89HDF\r\n\x1a\n", 8));
	assert_true(h5m_is_manifest(H5M_MAGIC, 8));
	assert_int_equal(h5m_header_peek(buf, H5M_HEADER_SIZE - 1, &h),
			 -EBADMSG);
	assert_int_equal(h5m_header_peek(buf, H5M_HEADER_SIZE, &h), 0);

	/* Format 1 is format 2 without the page fill section (here "no
	 * fill": two zero varints at the end): still read. */
	assert_int_equal(buf[len - 2], 0);
	assert_int_equal(buf[len - 1], 0);
	put32(buf + 8, 1);
	put64(buf + 40, len - 2 - H5M_HEADER_SIZE);
	put64(buf + 48, len - 2 - H5M_HEADER_SIZE);
	fix_crcs(buf, len - 2);
	assert_int_equal(h5m_manifest_decode(buf, len - 2, &d), 0);
	assert_same_manifest(m, d);
	h5m_manifest_free(d);
	/* ...but a format 1 body that goes on is corrupt */
	put64(buf + 40, len - 1 - H5M_HEADER_SIZE);
	put64(buf + 48, len - 1 - H5M_HEADER_SIZE);
	fix_crcs(buf, len - 1);
	assert_int_equal(h5m_manifest_decode(buf, len - 1, &d), -EBADMSG);
	free(buf);
	h5m_manifest_free(m);
}

/* The page fill of a small file: pages that hold skeleton bytes, and pages
 * where extents start or end, come whole from memory; a budget leaves out
 * the extents' pages first, then the runs past it. */
static void test_fill(void **state)
{
	uint8_t *buf;
	size_t len;
	struct h5m_manifest *m, *d;
	uint64_t size = 6000;

	(void)state;
	small_manifest(0, &buf, &len, &m); /* planned without fill */
	free(buf);
	assert_int_equal(h5m_fill_size(m), 0);
	/* Extents [100,300) [300,500) [600,1300) [1300,2000) [2000,2100)
	 * [2200,2300); pages of 256.  Skeleton and edge pages merge into
	 * [0,768) [1280,1536) [1792,6000): fill is [100,500) [600,768)
	 * [1280,1536) [1792,2100) [2200,2300). */
	assert_int_equal(h5m_fill_plan(m, 256, 1 << 20, synth_read, &size), 0);
	assert_int_equal(h5m_fill_size(m), 400 + 168 + 256 + 308 + 100);
	assert_int_equal(m->n_fill, 5); /* [100,500) is one run over 2 */
	d = roundtrip(m, NULL);
	check_fill_pages(d, true);
	rebuild_check(d, synth_read, &size, 0, size, 16);
	h5m_manifest_free(d);
	h5m_manifest_free(m);

	/* budget 1000: the edges do not fit, the skeleton's pages do:
	 * [0,768) [2048,6000) -> [100,500) [600,768) [2048,2100)
	 * [2200,2300) */
	small_manifest(0, &buf, &len, &m);
	free(buf);
	assert_int_equal(h5m_fill_plan(m, 256, 1000, synth_read, &size), 0);
	assert_int_equal(h5m_fill_size(m), 400 + 168 + 52 + 100);
	check_fill_pages(m, false);
	h5m_manifest_free(m);

	/* budget 500: the first run (400) fits, the second would not */
	small_manifest(0, &buf, &len, &m);
	free(buf);
	assert_int_equal(h5m_fill_plan(m, 256, 500, synth_read, &size), 0);
	assert_int_equal(h5m_fill_size(m), 400);
	assert_int_equal(h5m_manifest_check(m), 0);
	h5m_manifest_free(m);
}

/* A file whose chunks meet on pages far from its metadata: that page fill
 * goes into the edge section, after the head; the head alone serves every
 * page of metadata, and the section merged later gives back the manifest
 * as planned. */
static void test_edge_section(void **state)
{
	struct h5m_layout lay = layout(1 << 20, 1 << 20);
	struct h5m_manifest *m, *full, *head, *merged, *none;
	struct fake_split f;
	struct h5m_header h;
	uint64_t size, off, elen, chunk = 100000, start = 8192;
	uint8_t *buf;
	size_t len, hlen;

	(void)state;
	/* skeleton [0, 8192), 60 chunks of 100000 bytes (not page
	 * multiples), skeleton after them */
	fs_init(&f);
	fs_ds(&f, "/d");
	for (uint64_t i = 0; i < 60; i++)
		fs_span(&f, 0, H5M_SPAN_CHUNK, start + i * chunk, chunk, 1,
			(uint64_t[]){ i });
	size = start + 60 * chunk + 5000;
	lay.fill_page = 0; /* H5M_FILL_PAGE */
	assert_int_equal(h5m_plan(&f.sp, size, &lay, synth_read, &size, &m),
			 0);
	/* 59 meeting pages, 2 near the skeleton */
	assert_true(h5m_fill_size(m) >= 59 * 4096);
	assert_int_equal(h5m_manifest_encode(m, (void **)&buf, &len), 0);
	assert_int_equal(h5m_header_peek(buf, len, &h), 0);
	assert_int_equal(h.version, 3);
	hlen = (size_t)h.manifest_size;
	assert_true(hlen < len / 4);

	/* the whole object: as planned */
	assert_int_equal(h5m_manifest_decode(buf, len, &full), 0);
	assert_same_manifest(m, full);
	assert_false(h5m_edges_pending(full, &off, &elen));
	rebuild_check(full, synth_read, &size, 0, size, 16);
	check_fill_pages(full, true);

	/* the head: pages of metadata whole from memory, the rest from the
	 * objects; the section is where it says */
	assert_int_equal(h5m_manifest_decode(buf, hlen, &head), 0);
	assert_true(h5m_edges_pending(head, &off, &elen));
	assert_int_equal(off, hlen);
	assert_int_equal(elen, len - hlen);
	assert_true(h5m_fill_size(head) > 0);
	assert_true(h5m_fill_size(head) <= 4 * 4096);
	check_fill_pages(head, false);
	rebuild_check(head, synth_read, &size, 0, size, 16);

	/* merged later: the same as planned, the head unchanged */
	assert_int_equal(h5m_manifest_with_edges(head, buf + off, elen,
						 &merged),
			 0);
	assert_same_manifest(m, merged);
	check_fill_pages(merged, true);
	rebuild_check(merged, synth_read, &size, 0, size, 16);
	assert_true(h5m_edges_pending(head, &off, &elen));
	assert_int_equal(h5m_manifest_with_edges(merged, buf + off, elen,
						 &none),
			 -EINVAL);
	assert_null(none);
	h5m_manifest_free(merged);

	/* damage: lengths, and flipped bytes across the section */
	assert_int_equal(h5m_manifest_with_edges(head, buf + off, elen - 1,
						 &merged),
			 -EBADMSG);
	assert_int_equal(h5m_manifest_decode(buf, len - 1, &merged),
			 -EBADMSG);
	assert_int_equal(h5m_manifest_decode(buf, hlen + 1, &merged),
			 -EBADMSG);
	assert_int_equal(h5m_manifest_decode(buf, hlen - 1, &merged),
			 -EBADMSG);
	for (size_t i = (size_t)off; i < len; i += 251) {
		buf[i] ^= 0x10;
		assert_int_equal(h5m_manifest_with_edges(head, buf + off, elen,
							 &merged),
				 -EBADMSG);
		assert_int_equal(h5m_manifest_decode(buf, len, &merged),
				 -EBADMSG);
		buf[i] ^= 0x10;
	}
	h5m_manifest_free(head);
	h5m_manifest_free(full);
	free(buf);

	/* little edge fill: no section, format 2 */
	fs_init(&f);
	fs_ds(&f, "/d");
	for (uint64_t i = 0; i < 4; i++)
		fs_span(&f, 0, H5M_SPAN_CHUNK, start + i * chunk, chunk, 1,
			(uint64_t[]){ i });
	size = start + 4 * chunk + 5000;
	h5m_manifest_free(m);
	assert_int_equal(h5m_plan(&f.sp, size, &lay, synth_read, &size, &m),
			 0);
	assert_int_equal(h5m_manifest_encode(m, (void **)&buf, &len), 0);
	assert_int_equal(h5m_header_peek(buf, len, &h), 0);
	assert_int_equal(h.version, 2);
	assert_int_equal(h.manifest_size, len);
	free(buf);
	h5m_manifest_free(m);
}

static void test_boundaries(void **state)
{
	struct h5m_layout lay = layout(100, 1000);
	struct h5m_manifest *m;
	struct fake_split f;
	struct h5m_piece pc[8];
	uint64_t size = 500;
	size_t n;

	(void)state;
	fs_init(&f);
	fs_ds(&f, "/d");
	/* skeleton [0,100) chunk [100,200) chunk [200,300) skel [300,350)
	 * contig [350,450) (one block of 100) skel [450,500) */
	fs_span(&f, 0, H5M_SPAN_CHUNK, 100, 100, 1, (uint64_t[]){ 0 });
	fs_span(&f, 0, H5M_SPAN_CHUNK, 200, 100, 1, (uint64_t[]){ 1 });
	fs_span(&f, 0, H5M_SPAN_CONTIG, 350, 100, 0, NULL);
	assert_int_equal(h5m_plan(&f.sp, size, &lay, synth_read, &size, &m),
			 0);
	assert_int_equal(h5m_extent_count(m), 3);
	assert_int_equal(h5m_skeleton_size(m), 200);

	assert_int_equal(h5m_extent_find(m, 0), 0);
	assert_int_equal(h5m_extent_find(m, 99), 0);
	assert_int_equal(h5m_extent_find(m, 100), 0);
	assert_int_equal(h5m_extent_find(m, 199), 0);
	assert_int_equal(h5m_extent_find(m, 200), 1);
	assert_int_equal(h5m_extent_find(m, 299), 1);
	assert_int_equal(h5m_extent_find(m, 300), 2);
	assert_int_equal(h5m_extent_find(m, 349), 2);
	assert_int_equal(h5m_extent_find(m, 449), 2);
	assert_int_equal(h5m_extent_find(m, 450), 3);
	assert_int_equal(h5m_extent_find(m, 499), 3);
	assert_int_equal(h5m_extent_find(m, 500), 3);
	assert_int_equal(h5m_extent_find(m, UINT64_MAX), 3);

	/* skeleton + object + skeleton */
	n = h5m_map(m, 290, 70, pc, 8);
	assert_int_equal(n, 3);
	assert_null(pc[0].skel);
	assert_int_equal(pc[0].extent, 1);
	assert_int_equal(pc[0].obj_off, 90);
	assert_int_equal(pc[0].len, 10);
	assert_non_null(pc[1].skel);
	assert_int_equal(pc[1].file_off, 300);
	assert_int_equal(pc[1].len, 50);
	assert_int_equal(pc[1].skel, m->skel + 100);
	assert_null(pc[2].skel);
	assert_int_equal(pc[2].extent, 2);
	assert_int_equal(pc[2].obj_off, 0);
	assert_int_equal(pc[2].len, 10);
	n = h5m_map(m, 99, 102, pc, 8);
	assert_int_equal(n, 3);
	assert_int_equal(pc[0].len, 1);
	assert_non_null(pc[0].skel);
	assert_int_equal(pc[1].len, 100);
	assert_int_equal(pc[2].len, 1);
	assert_int_equal(pc[2].extent, 1);
	/* max pieces: continuation */
	n = h5m_map(m, 0, 500, pc, 2);
	assert_int_equal(n, 2);
	assert_int_equal(pc[1].file_off + pc[1].len, 200);
	n = h5m_map(m, 200, 300, pc, 8);
	assert_int_equal(n, 4);
	assert_int_equal(pc[3].file_off, 450);
	assert_int_equal(pc[3].len, 50);
	assert_int_equal(pc[3].skel, m->skel + 150);
	/* clipping and the end */
	n = h5m_map(m, 480, 1000, pc, 8);
	assert_int_equal(n, 1);
	assert_int_equal(pc[0].len, 20);
	assert_int_equal(h5m_map(m, 500, 10, pc, 8), 0);
	assert_int_equal(h5m_map(m, 1000, 10, pc, 8), 0);
	assert_int_equal(h5m_map(m, 10, 0, pc, 8), 0);
	assert_int_equal(h5m_map(m, 10, 10, pc, 0), 0);
	assert_int_equal(h5m_map(m, 499, UINT64_MAX, pc, 8), 1);

	/* every range of the file, in full */
	for (uint64_t off = 0; off <= size; off += 7)
		for (uint64_t len = 1; off + len <= size + 3; len += 13)
			rebuild_check(m, synth_read, &size, off, len, 1 + len % 4);
	h5m_manifest_free(m);
}

static void test_plan_cutting(void **state)
{
	static const char *want[] = {
		"@raw/0",   "@raw/400", "%20a%25/%40b@/%2E/%2E./x.y/b0",
		"%20a%25/%40b@/%2E/%2E./x.y/b1",
		"%20a%25/%40b@/%2E/%2E./x.y/b2", "c/1.2.3", "@raw/3600",
		"@raw/4000", "@raw/4400",
	};
	struct h5m_layout lay = layout(400, 500);
	struct h5m_manifest *m, *d;
	struct fake_split f;
	uint64_t size = 4600;
	char key[512];
	const char *pre = ".cloudh5/c/run42/out.h5/g3-9f2c01aa/";

	(void)state;
	fs_init(&f);
	fs_ds(&f, "/ a%/@b@/./../x.y");
	fs_ds(&f, "/c");
	/* gap [0,800) >= raw_min: raw 0, 400; contig [800,1900): b0 b1 b2;
	 * gap [1900,2000) < raw_min: skeleton; chunk [2000,3600);
	 * tail [3600,4600) >= raw_min: raw 3600, 4000, 4400 */
	fs_span(&f, 0, H5M_SPAN_CONTIG, 800, 1100, 0, NULL);
	fs_span(&f, 1, H5M_SPAN_CHUNK, 2000, 1600, 3,
		(uint64_t[]){ 1, 2, 3 });
	assert_int_equal(h5m_plan(&f.sp, size, &lay, synth_read, &size, &m),
			 0);
	assert_int_equal(h5m_extent_count(m), 9);
	for (size_t i = 0; i < 9; i++) {
		char full[512];

		snprintf(full, sizeof(full), "%s%s", pre, want[i]);
		assert_true(h5m_extent_key(m, i, key, sizeof(key)) > 0);
		assert_string_equal(key, full);
	}
	assert_int_equal(h5m_skeleton_size(m), 100);
	d = roundtrip(m, NULL);
	rebuild_check(d, synth_read, &size, 0, size, 16);
	h5m_manifest_free(d);
	h5m_manifest_free(m);

	/* a plan refuses nothing: a bad span is dropped, bytes kept */
	fs_init(&f);
	fs_ds(&f, "/d");
	fs_span(&f, 0, H5M_SPAN_CHUNK, 100, 100, 1, (uint64_t[]){ 0 });
	fs_span(&f, 0, H5M_SPAN_CHUNK, 150, 100, 1, (uint64_t[]){ 1 });
	fs_span(&f, 0, H5M_SPAN_CHUNK, 300, 0, 1, (uint64_t[]){ 2 });
	fs_span(&f, 0, H5M_SPAN_CHUNK, 4500, 200, 1, (uint64_t[]){ 3 });
	fs_span(&f, 7, H5M_SPAN_CHUNK, 4000, 10, 1, (uint64_t[]){ 3 });
	assert_int_equal(h5m_plan(&f.sp, size, &lay, synth_read, &size, &m),
			 0);
	rebuild_check(m, synth_read, &size, 0, size, 16);
	h5m_manifest_free(m);

	/* not HDF5: raw blocks only */
	assert_int_equal(h5m_plan(NULL, size, &lay, synth_read, &size, &m), 0);
	assert_int_equal(h5m_extent_count(m), 12);
	assert_int_equal(h5m_skeleton_size(m), 0);
	assert_true(h5m_extent_key(m, 11, key, sizeof(key)) > 0);
	assert_string_equal(key,
			    ".cloudh5/c/run42/out.h5/g3-9f2c01aa/@raw/4400");
	rebuild_check(m, synth_read, &size, 0, size, 5);
	h5m_manifest_free(m);
}

static struct h5m_manifest *keyed(const char *const *sfx, size_t n)
{
	struct h5m_manifest *m = h5m_manifest_new(1, 100);
	uint32_t p;
	uint8_t *dst;

	assert_int_equal(h5m_manifest_add_prefix(m, "k/", 2, &p), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(h5m_manifest_add_extent(m, i * 10, 10, p,
							 sfx[i],
							 strlen(sfx[i])),
				 0);
	assert_int_equal(h5m_manifest_add_skel(m, 100 - n * 10, &dst), 0);
	memset(dst, 0, 100 - n * 10);
	assert_int_equal(h5m_manifest_check(m), 0);
	return m;
}

static void test_superseded(void **state)
{
	static const char *o[] = { "a", "b", "c", "b", "z" };
	static const char *n[] = { "c", "d", "b" };
	struct h5m_manifest *old = keyed(o, 5), *new = keyed(n, 3);
	char **keys;
	size_t nk;

	(void)state;
	assert_int_equal(h5m_superseded(old, new, &keys, &nk), 0);
	assert_int_equal(nk, 2);
	assert_string_equal(keys[0], "k/a");
	assert_string_equal(keys[1], "k/z");
	h5m_keys_free(keys, nk);
	assert_int_equal(h5m_superseded(new, old, &keys, &nk), 0);
	assert_int_equal(nk, 1);
	assert_string_equal(keys[0], "k/d");
	h5m_keys_free(keys, nk);
	assert_int_equal(h5m_superseded(old, NULL, &keys, &nk), 0);
	assert_int_equal(nk, 4);
	h5m_keys_free(keys, nk);
	assert_int_equal(h5m_superseded(NULL, old, &keys, &nk), 0);
	assert_int_equal(nk, 0);
	h5m_keys_free(keys, nk);
	assert_int_equal(h5m_superseded(old, old, &keys, &nk), 0);
	assert_int_equal(nk, 0);
	h5m_keys_free(keys, nk);
	/* the smallest extents: same suffix, no gaps (5 body bytes each) */
	{
		static const char *same[] = { "a", "a", "a", "a", "a",
					      "a", "a", "a", "a", "a" };
		struct h5m_manifest *s = keyed(same, 10), *d;

		d = roundtrip(s, NULL);
		h5m_manifest_free(d);
		h5m_manifest_free(s);
	}
	/* builder refuses out-of-order and overlapping extents */
	assert_int_equal(h5m_manifest_add_extent(new, 0, 5, 0, "x", 1),
			 -EINVAL);
	h5m_manifest_free(old);
	h5m_manifest_free(new);
}

/* rekey.c (rename): same bytes, keys under the new file key. */
static void test_rekey(void **state)
{
	struct h5m_layout lay = layout(400, 500);
	struct h5m_manifest *m, *r;
	struct fake_split f;
	uint64_t size = 4600;
	char a[512], b[512];

	(void)state;
	fs_init(&f);
	fs_ds(&f, "/g/d");
	fs_span(&f, 0, H5M_SPAN_CONTIG, 800, 1100, 0, NULL);
	fs_span(&f, 0, H5M_SPAN_CHUNK, 2000, 100, 1, (uint64_t[]){ 4 });
	assert_int_equal(h5m_plan(&f.sp, size, &lay, synth_read, &size, &m),
			 0);
	assert_int_equal(h5m_manifest_rekey(m, "run42/out.h5", "x/y z.h5", &r),
			 0);
	assert_int_equal(h5m_extent_count(r), h5m_extent_count(m));
	assert_int_equal(h5m_skeleton_size(r), h5m_skeleton_size(m));
	for (size_t i = 0; i < h5m_extent_count(m); i++) {
		const char *old_pre = ".cloudh5/c/run42/out.h5/";

		assert_true(h5m_extent_key(m, i, a, sizeof(a)) > 0);
		assert_true(h5m_extent_key(r, i, b, sizeof(b)) > 0);
		assert_memory_equal(a, old_pre, strlen(old_pre));
		assert_memory_equal(b, ".cloudh5/c/x/y z.h5/", 20);
		assert_string_equal(a + strlen(old_pre), b + 20);
	}
	rebuild_check(r, synth_read, &size, 0, size, 16);
	h5m_manifest_free(r);
	h5m_manifest_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_single),
		cmocka_unit_test(test_random_roundtrip),
		cmocka_unit_test(test_fill),
		cmocka_unit_test(test_edge_section),
		cmocka_unit_test(test_boundaries),
		cmocka_unit_test(test_plan_cutting),
		cmocka_unit_test(test_superseded),
		cmocka_unit_test(test_rekey),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_corruption),
		cmocka_unit_test(test_fuzz_valid_crc),
		cmocka_unit_test(test_million),
	};

	if (getenv("CH5_DEBUG"))
		ch5_log_set_level(LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
