/*
 * test_split.c - hdf5map split on real HDF5 files: files generated here
 * with the libhdf5 C API and the third-party corpus ($CH5_CORPUS).
 *
 * For every file: split from memory, plan, encode/decode, and check that
 *   - the file rebuilt through h5m_map equals the original byte for byte;
 *   - each chunked dataset has as many chunk spans as H5Dget_num_chunks;
 *   - each chunk span's bytes are H5Dread_chunk's bytes, and each
 *     contiguous span's bytes are the dataset's raw data.
 * Inputs that are not HDF5 must give -EINVAL (or rebuild exactly).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>

#include "h5m.h"
#include "log.h"

static char tmpdir[] = "/tmp/ch5_test_split.XXXXXX";

/* Sanitizer builds (slow unwinding on every malloc) do less. */
#ifdef __SANITIZE_ADDRESS__
#define MANY_CHUNKS 20000
#define DAMAGE_ROUNDS 100
#else
#define MANY_CHUNKS 100000
#define DAMAGE_ROUNDS 300
#endif

/* LeakSanitizer (CLOUDH5_SANITIZE builds): libhdf5 1.10.8 itself leaks a
 * few blocks when H5Dcreate2 makes some chunked datasets (here, in the file
 * generators) and when H5Oopen_by_addr fails on a damaged dataset header
 * (test_damaged).  Nothing of ours is allocated under these frames; files
 * and objects that split might leave open are checked by ids_open(). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:H5D__layout_oh_read\n"
	       "leak:H5D__layout_oh_create\n";
}

/* Open HDF5 files and objects in them, process-wide.  (libhdf5 1.10 has
 * no public count of dataspace, datatype or property list ids.) */
static int64_t ids_open(void)
{
	return (int64_t)H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
}

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	/* libhdf5 has no frame pointers: slow unwinding, so that the
	 * suppressions above see its frames */
	return "fast_unwind_on_malloc=0";
}

/* ---- helpers ------------------------------------------------------------ */

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

struct mem {
	uint8_t *p;
	size_t len;
	unsigned reads;
};

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct mem *m = ctx;

	m->reads++;
	if (off > m->len || len > m->len - off)
		return -EIO;
	memcpy(buf, m->p + off, len);
	return 0;
}

static int fail_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	(void)ctx;
	(void)off;
	(void)buf;
	(void)len;
	return -ENETDOWN;
}

static struct mem load(const char *path)
{
	struct mem m = { 0 };
	struct stat st;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	m.len = (size_t)st.st_size;
	m.p = malloc(m.len ? m.len : 1);
	assert_non_null(m.p);
	for (size_t done = 0; done < m.len;) {
		ssize_t n = pread(fd, m.p + done, m.len - done, (off_t)done);

		assert_true(n > 0);
		done += (size_t)n;
	}
	close(fd);
	return m;
}

static void path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmpdir, name);
}

/* Rebuild the whole file through a (decoded) manifest. */
static void check_rebuild(const struct h5m_manifest *m, const struct mem *f)
{
	struct h5m_piece pcs[7];
	uint64_t off = 0;

	assert_int_equal(h5m_file_size(m), f->len);
	while (off < f->len) {
		size_t n = h5m_map(m, off, f->len - off, pcs, 7);

		assert_true(n > 0);
		for (size_t i = 0; i < n; i++) {
			const struct h5m_piece *p = &pcs[i];
			uint64_t eo, el;

			assert_int_equal(p->file_off, off);
			if (p->skel) {
				assert_memory_equal(p->skel, f->p + off,
						    (size_t)p->len);
			} else {
				h5m_extent(m, p->extent, &eo, &el);
				assert_int_equal(eo + p->obj_off, off);
				assert_true(p->obj_off + p->len <= el);
			}
			off += p->len;
		}
	}
}

/* Verify each span against libhdf5's own answers (file opened normally). */
struct verify {
	const struct h5m_split *sp;
	const struct mem *f;
	size_t chunk_spans;
	size_t contig_spans;
	hsize_t base; /* user block size */
};

/* Is [off, off+len) chunk k of dset for some k, by H5Dget_chunk_info? */
static int chunk_listed(hid_t dset, hsize_t nch, hsize_t base, uint64_t off,
			uint64_t len)
{
	hid_t space = H5Dget_space(dset);
	int found = 0;

	for (hsize_t k = 0; !found && k < nch; k++) {
		hsize_t coff[32], size = 0;
		haddr_t addr = HADDR_UNDEF;
		unsigned mask;

		if (H5Dget_chunk_info(dset, space, k, coff, &mask, &addr,
				      &size) >= 0)
			found = addr + base == off && size == len;
	}
	H5Sclose(space);
	return found;
}

/* Does a datatype read into memory as anything but its file bytes? */
static int has_pointers(hid_t type)
{
	int r = 0;

	switch (H5Tget_class(type)) {
	case H5T_VLEN:
	case H5T_REFERENCE:
		return 1;
	case H5T_STRING:
		return H5Tis_variable_str(type) != 0;
	case H5T_COMPOUND:
		for (int i = 0; !r && i < H5Tget_nmembers(type); i++) {
			hid_t m = H5Tget_member_type(type, (unsigned)i);

			r = m < 0 || has_pointers(m);
			H5Tclose(m);
		}
		return r;
	case H5T_ARRAY: {
		hid_t b = H5Tget_super(type);

		r = b < 0 || has_pointers(b);
		H5Tclose(b);
		return r;
	}
	default:
		return 0;
	}
}

static herr_t verify_cb(hid_t obj, const char *name, const H5O_info_t *info,
			void *op_data)
{
	struct verify *v = op_data;
	const struct h5m_split *sp = v->sp;
	char full[4096];
	hid_t dset, dcpl, type;
	int64_t idx = -1;
	size_t n_chunk = 0, n_contig = 0;

	if (info->type != H5O_TYPE_DATASET)
		return 0;
	snprintf(full, sizeof(full), "/%s", name);
	for (size_t i = 0; i < sp->n_datasets; i++)
		if (!strcmp(sp->datasets[i], full))
			idx = (int64_t)i;
	dset = H5Oopen_by_addr(obj, info->addr);
	if (dset < 0)
		return 0;
	dcpl = H5Dget_create_plist(dset);
	type = H5Dget_type(dset);
	if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
		hsize_t nch = 0, cdims[32];
		hid_t space = H5Dget_space(dset);
		int rank = H5Pget_chunk(dcpl, 32, cdims);

		assert_true(H5Dget_num_chunks(dset, space, &nch) >= 0);
		H5Sclose(space);
		for (size_t i = 0; idx >= 0 && i < sp->n_spans; i++) {
			const struct h5m_span *s = &sp->spans[i];
			hsize_t off[32], sz = 0;
			uint32_t filters;
			uint8_t *buf;

			if (s->dataset != (uint32_t)idx)
				continue;
			assert_int_equal(s->kind, H5M_SPAN_CHUNK);
			assert_int_equal(s->rank, rank);
			for (int r = 0; r < rank; r++)
				off[r] = sp->coords[s->coord_idx + r] * cdims[r];
			if (H5Dget_chunk_storage_size(dset, off, &sz) < 0) {
				/* libhdf5 lists chunks it cannot look up by
				 * coordinates (1.10.8, extensible array of
				 * hdf5/h5fc_ext3_isf.h5): match the span to
				 * its H5Dget_chunk_info entry instead */
				assert_true(chunk_listed(dset, nch, v->base,
							 s->off, s->len));
				n_chunk++;
				continue;
			}
			assert_int_equal(sz, s->len);
			buf = malloc(sz);
			assert_true(H5Dread_chunk(dset, H5P_DEFAULT, off,
						  &filters, buf) >= 0);
			assert_memory_equal(buf, v->f->p + s->off, sz);
			free(buf);
			n_chunk++;
		}
		if (n_chunk != nch)
			print_message("%s: %zu chunk spans, %" PRIu64
				      " chunks\n",
				      full, n_chunk, (uint64_t)nch);
		assert_int_equal(n_chunk, nch);
		v->chunk_spans += n_chunk;
	} else if (H5Pget_layout(dcpl) == H5D_CONTIGUOUS) {
		hsize_t size = H5Dget_storage_size(dset);
		int plain = !has_pointers(type) &&
			    H5Pget_external_count(dcpl) == 0;

		for (size_t i = 0; idx >= 0 && i < sp->n_spans; i++) {
			const struct h5m_span *s = &sp->spans[i];

			if (s->dataset != (uint32_t)idx)
				continue;
			assert_int_equal(s->kind, H5M_SPAN_CONTIG);
			assert_int_equal(s->len, size);
			if (plain) {
				uint8_t *buf = malloc(size);

				assert_true(H5Dread(dset, type, H5S_ALL,
						    H5S_ALL, H5P_DEFAULT,
						    buf) >= 0);
				if (memcmp(buf, v->f->p + s->off, size))
					print_message("%s: contiguous data "
						      "differs (%" PRIu64
						      " B at %" PRIu64 ")\n",
						      full, (uint64_t)size,
						      s->off);
				assert_memory_equal(buf, v->f->p + s->off,
						    size);
				free(buf);
			}
			n_contig++;
		}
		assert_true(n_contig <= 1);
		if (H5Pget_external_count(dcpl) == 0 &&
		    H5Dget_offset(dset) != HADDR_UNDEF && size)
			assert_int_equal(n_contig, 1);
		v->contig_spans += n_contig;
	}
	H5Tclose(type);
	H5Pclose(dcpl);
	H5Dclose(dset);
	return 0;
}

struct result {
	size_t spans;
	size_t extents;
	uint64_t skeleton;
	size_t manifest;
};

/* Split, plan, round-trip and verify one file. Returns h5m_split's rc. */
static int check_file(const char *path, int verify_hdf5, struct result *res)
{
	struct h5m_layout lay = { .file_key = "t/f.h5",
				  .tag = "g1-00",
				  .generation = 1,
				  .block_size = 4096,
				  .raw_min = 2048 };
	struct mem f = load(path);
	struct h5m_manifest *m, *d;
	struct h5m_split *sp = NULL;
	int64_t ids = ids_open();
	void *buf;
	size_t len;
	int rc;

	rc = h5m_split(mem_read, &f, f.len, &sp);
	assert_int_equal(ids_open(), ids); /* nothing left open */
	if (rc) {
		assert_int_equal(rc, -EINVAL);
		assert_null(sp);
		/* stored as raw objects instead */
		assert_int_equal(h5m_plan(NULL, f.len, &lay, mem_read, &f, &m),
				 0);
	} else {
		for (size_t i = 1; i < sp->n_spans; i++)
			assert_true(sp->spans[i - 1].off +
					    sp->spans[i - 1].len <=
				    sp->spans[i].off);
		assert_int_equal(h5m_plan(sp, f.len, &lay, mem_read, &f, &m),
				 0);
	}
	assert_int_equal(h5m_manifest_encode(m, &buf, &len), 0);
	assert_int_equal(h5m_manifest_decode(buf, len, &d), 0);
	check_rebuild(d, &f);
	if (res) {
		res->spans = sp ? sp->n_spans : 0;
		res->extents = h5m_extent_count(d);
		res->skeleton = h5m_skeleton_size(d);
		res->manifest = len;
	}
	free(buf);
	h5m_manifest_free(d);
	h5m_manifest_free(m);

	if (sp && verify_hdf5) {
		struct verify v = { sp, &f, 0, 0, 0 };
		hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
		hid_t fcpl;

		assert_true(fid >= 0);
		fcpl = H5Fget_create_plist(fid);
		assert_true(H5Pget_userblock(fcpl, &v.base) >= 0);
		H5Pclose(fcpl);
		assert_true(H5Ovisit2(fid, H5_INDEX_NAME, H5_ITER_NATIVE,
				      verify_cb, &v, H5O_INFO_BASIC) >= 0);
		assert_int_equal(v.chunk_spans + v.contig_spans, sp->n_spans);
		H5Fclose(fid);
	}
	h5m_split_free(sp);
	free(f.p);
	return rc;
}

/* ---- file generators ---------------------------------------------------- */

static void fill(void *buf, size_t n, int compressible)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < n; i++)
		p[i] = compressible ? (uint8_t)(i / 64) : (uint8_t)rnd();
}

/* A chunked dataset of `rank` dims; writes the whole extent or, if
 * `partial`, one hyperslab so some chunks are never written. */
static void mk_chunked(hid_t loc, const char *name, int rank,
		       const hsize_t *dims, const hsize_t *maxdims,
		       const hsize_t *cdims, int gzip, int shuffle,
		       int partial)
{
	hid_t space = H5Screate_simple(rank, dims, maxdims);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	hid_t d;
	size_t n = 1;

	for (int i = 0; i < rank; i++)
		n *= dims[i];
	assert_true(H5Pset_chunk(dcpl, rank, cdims) >= 0);
	if (shuffle)
		H5Pset_shuffle(dcpl);
	if (gzip)
		H5Pset_deflate(dcpl, 6);
	d = H5Dcreate2(loc, name, H5T_NATIVE_INT32, space, H5P_DEFAULT, dcpl,
		       H5P_DEFAULT);
	assert_true(d >= 0);
	if (n) {
		int32_t *buf = malloc(n * sizeof(*buf));

		fill(buf, n * sizeof(*buf), gzip);
		if (partial) {
			hsize_t start[32] = { 0 }, count[32];
			hid_t ms;

			for (int i = 0; i < rank; i++)
				count[i] = dims[i] / 2 + 1 < dims[i]
						   ? dims[i] / 2 + 1
						   : dims[i];
			ms = H5Screate_simple(rank, count, NULL);
			H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL,
					    count, NULL);
			assert_true(H5Dwrite(d, H5T_NATIVE_INT32, ms, space,
					     H5P_DEFAULT, buf) >= 0);
			H5Sclose(ms);
		} else {
			assert_true(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL,
					     H5S_ALL, H5P_DEFAULT, buf) >= 0);
		}
		free(buf);
	}
	H5Dclose(d);
	H5Pclose(dcpl);
	H5Sclose(space);
}

static void mk_contig(hid_t loc, const char *name, hsize_t n, int write)
{
	hid_t space = H5Screate_simple(1, &n, NULL);
	hid_t d = H5Dcreate2(loc, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT,
			     H5P_DEFAULT, H5P_DEFAULT);

	assert_true(d >= 0);
	if (write) {
		double *buf = malloc(n * sizeof(*buf));

		for (hsize_t i = 0; i < n; i++)
			buf[i] = (double)i * 0.5;
		assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
				     H5P_DEFAULT, buf) >= 0);
		free(buf);
	}
	H5Dclose(d);
	H5Sclose(space);
}

static void mk_compact(hid_t loc, const char *name)
{
	hsize_t n = 16;
	hid_t space = H5Screate_simple(1, &n, NULL);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	int32_t buf[16];
	hid_t d;

	for (int i = 0; i < 16; i++)
		buf[i] = i * i;
	H5Pset_layout(dcpl, H5D_COMPACT);
	d = H5Dcreate2(loc, name, H5T_NATIVE_INT32, space, H5P_DEFAULT, dcpl,
		       H5P_DEFAULT);
	assert_true(d >= 0);
	H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	H5Dclose(d);
	H5Pclose(dcpl);
	H5Sclose(space);
}

/* A file with a bit of everything.  latest: libver bounds latest (fixed /
 * extensible array, v2 B-tree, single-chunk and implicit indexes). */
static void mk_mixed(const char *path, hsize_t userblock, int latest)
{
	hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	hid_t f, g, g2, g3;

	if (userblock)
		H5Pset_userblock(fcpl, userblock);
	if (latest)
		H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST,
				     H5F_LIBVER_LATEST);
	f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
	assert_true(f >= 0);
	g = H5Gcreate2(f, "grp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	g2 = H5Gcreate2(g, "sub dir", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	g3 = H5Gcreate2(g2, "%deep@", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);

	/* 1-D, partial edge chunk, plain and filtered */
	mk_chunked(f, "c1", 1, (hsize_t[]){ 1000 }, NULL, (hsize_t[]){ 64 }, 0,
		   0, 0);
	mk_chunked(f, "c1z", 1, (hsize_t[]){ 1000 }, NULL, (hsize_t[]){ 64 },
		   1, 1, 0);
	/* 2-D gzip, never-written chunks */
	mk_chunked(g, "c2", 2, (hsize_t[]){ 100, 77 }, NULL,
		   (hsize_t[]){ 16, 10 }, 1, 0, 1);
	/* 3-D shuffle + gzip, edges in every dimension */
	mk_chunked(g2, "c3", 3, (hsize_t[]){ 20, 30, 40 }, NULL,
		   (hsize_t[]){ 7, 8, 9 }, 1, 1, 0);
	/* resizable: one and two unlimited dimensions */
	mk_chunked(g3, "r1", 1, (hsize_t[]){ 500 },
		   (hsize_t[]){ H5S_UNLIMITED }, (hsize_t[]){ 50 }, 0, 0, 0);
	mk_chunked(g3, "r2", 2, (hsize_t[]){ 40, 30 },
		   (hsize_t[]){ H5S_UNLIMITED, H5S_UNLIMITED },
		   (hsize_t[]){ 8, 8 }, 1, 0, 1);
	/* single chunk */
	mk_chunked(f, "single", 2, (hsize_t[]){ 10, 10 }, NULL,
		   (hsize_t[]){ 10, 10 }, 1, 0, 0);
	/* empty, chunked */
	mk_chunked(f, "empty", 1, (hsize_t[]){ 0 },
		   (hsize_t[]){ H5S_UNLIMITED }, (hsize_t[]){ 16 }, 0, 0, 0);
	mk_contig(f, "contig", 5000, 1);
	mk_contig(g, "contig_unwritten", 100, 0);
	mk_contig(g2, "contig_empty", 0, 1);
	mk_compact(f, "compact");

	/* extend a resizable dataset after writing */
	{
		hid_t d = H5Dopen2(g3, "r1", H5P_DEFAULT);
		hsize_t nd = 777, start = 500, cnt = 277;
		hid_t fs, ms;
		int32_t buf[277];

		fill(buf, sizeof(buf), 0);
		assert_true(H5Dset_extent(d, &nd) >= 0);
		fs = H5Dget_space(d);
		ms = H5Screate_simple(1, &cnt, NULL);
		H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt,
				    NULL);
		assert_true(H5Dwrite(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT,
				     buf) >= 0);
		H5Sclose(ms);
		H5Sclose(fs);
		H5Dclose(d);
	}
	/* an early-allocated, unfiltered dataset (implicit index in
	 * latest) */
	{
		hsize_t dims[2] = { 33, 20 }, cd[2] = { 8, 8 };
		hid_t space = H5Screate_simple(2, dims, NULL);
		hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
		hid_t d;

		H5Pset_chunk(dcpl, 2, cd);
		H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
		d = H5Dcreate2(f, "early", H5T_NATIVE_INT16, space,
			       H5P_DEFAULT, dcpl, H5P_DEFAULT);
		assert_true(d >= 0);
		H5Dclose(d);
		H5Pclose(dcpl);
		H5Sclose(space);
	}
	/* scalar and null dataspaces */
	{
		hid_t s = H5Screate(H5S_SCALAR), n = H5Screate(H5S_NULL);
		hid_t d = H5Dcreate2(f, "scalar", H5T_NATIVE_INT, s,
				     H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
		int v = 42;

		H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
		H5Dclose(d);
		d = H5Dcreate2(f, "null", H5T_NATIVE_INT, n, H5P_DEFAULT,
			       H5P_DEFAULT, H5P_DEFAULT);
		H5Dclose(d);
		H5Sclose(s);
		H5Sclose(n);
	}
	H5Gclose(g3);
	H5Gclose(g2);
	H5Gclose(g);
	H5Fclose(f);
	H5Pclose(fapl);
	H5Pclose(fcpl);
}

/* A 1-D dataset of n one-element chunks; kind 0: v1 B-tree, 1: fixed
 * array, 2: extensible array, 3: v2 B-tree. */
static void mk_many(const char *path, hsize_t n, int kind, hsize_t userblock)
{
	hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	hsize_t dims[2] = { n, 1 }, maxd[2] = { n, 1 }, cd[2] = { 1, 1 };
	int rank = kind == 3 ? 2 : 1;
	hid_t f, space, dcpl, d;
	int32_t *buf;

	if (userblock)
		H5Pset_userblock(fcpl, userblock);
	if (kind)
		H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST,
				     H5F_LIBVER_LATEST);
	if (kind == 2)
		maxd[0] = H5S_UNLIMITED;
	if (kind == 3)
		maxd[0] = maxd[1] = H5S_UNLIMITED;
	f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
	space = H5Screate_simple(rank, dims, maxd);
	dcpl = H5Pcreate(H5P_DATASET_CREATE);
	H5Pset_chunk(dcpl, rank, cd);
	d = H5Dcreate2(f, "d", H5T_NATIVE_INT32, space, H5P_DEFAULT, dcpl,
		       H5P_DEFAULT);
	assert_true(d >= 0);
	buf = malloc(n * sizeof(*buf));
	for (hsize_t i = 0; i < n; i++)
		buf[i] = (int32_t)i;
	assert_true(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL,
			     H5P_DEFAULT, buf) >= 0);
	free(buf);
	H5Dclose(d);
	H5Pclose(dcpl);
	H5Sclose(space);
	H5Fclose(f);
	H5Pclose(fapl);
	H5Pclose(fcpl);
}

/* A sparse dataset: huge extent, few chunks (split's by-index route). */
static void mk_sparse(const char *path, hsize_t userblock)
{
	hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
	hsize_t dims = (hsize_t)1 << 40, maxd = H5S_UNLIMITED, cd = 1000;
	hid_t f, space, dcpl, d;
	int32_t buf[10];

	if (userblock)
		H5Pset_userblock(fcpl, userblock);
	f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
	space = H5Screate_simple(1, &dims, &maxd);
	dcpl = H5Pcreate(H5P_DATASET_CREATE);
	H5Pset_chunk(dcpl, 1, &cd);
	H5Pset_deflate(dcpl, 1);
	d = H5Dcreate2(f, "sparse", H5T_NATIVE_INT32, space, H5P_DEFAULT, dcpl,
		       H5P_DEFAULT);
	assert_true(d >= 0);
	for (int k = 0; k < 20; k++) {
		hsize_t start = (hsize_t)k * 54321987654ull, cnt = 10;
		hid_t ms = H5Screate_simple(1, &cnt, NULL);

		for (int i = 0; i < 10; i++)
			buf[i] = k * 100 + i;
		H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &cnt,
				    NULL);
		assert_true(H5Dwrite(d, H5T_NATIVE_INT32, ms, space,
				     H5P_DEFAULT, buf) >= 0);
		H5Sclose(ms);
	}
	H5Dclose(d);
	H5Pclose(dcpl);
	H5Sclose(space);
	H5Fclose(f);
	H5Pclose(fcpl);
}

static void write_bytes(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	if (len)
		assert_int_equal(fwrite(p, 1, len, f), len);
	fclose(f);
}

/* ---- tests -------------------------------------------------------------- */

static void test_generated(void **state)
{
	static const hsize_t ub[] = { 0, 512, 4096 };
	char path[512];
	struct result r;

	(void)state;
	for (int latest = 0; latest < 2; latest++) {
		for (size_t u = 0; u < 3; u++) {
			char name[64];

			snprintf(name, sizeof(name), "mixed_l%d_u%u.h5", latest,
				 (unsigned)ub[u]);
			path_in(path, sizeof(path), name);
			mk_mixed(path, ub[u], latest);
			assert_int_equal(check_file(path, 1, &r), 0);
			print_message("%s: %zu spans, %zu objects, skeleton "
				      "%" PRIu64 " B, manifest %zu B\n",
				      name, r.spans, r.extents, r.skeleton,
				      r.manifest);
			assert_true(r.spans > 100);
		}
	}
	for (size_t u = 0; u < 2; u++) {
		path_in(path, sizeof(path), "sparse.h5");
		mk_sparse(path, ub[u * 2]);
		assert_int_equal(check_file(path, 1, &r), 0);
		assert_int_equal(r.spans, 20);
	}
}

static void test_many_chunks(void **state)
{
	static const char *kinds[] = { "v1 B-tree", "fixed array",
				       "extensible array", "v2 B-tree" };
	const hsize_t n = MANY_CHUNKS;
	char path[512];

	(void)state;
	for (int kind = 0; kind < 4; kind++) {
		struct h5m_split *sp;
		struct mem f;
		double t;

		path_in(path, sizeof(path), "many.h5");
		mk_many(path, n, kind, kind == 1 ? 512 : 0);
		f = load(path);
		t = now();
		assert_int_equal(h5m_split(mem_read, &f, f.len, &sp), 0);
		t = now() - t;
		print_message("split of %" PRIu64 " chunks (%s): %.2f s, "
			      "%u callback reads\n",
			      (uint64_t)n, kinds[kind], t, f.reads);
		assert_int_equal(sp->n_spans, n);
		assert_true(t < 30);
		h5m_split_free(sp);
		free(f.p);
		if (kind == 1)
			assert_int_equal(check_file(path, 1, NULL), 0);
	}
}

static void test_not_hdf5(void **state)
{
	struct h5m_split *sp = (struct h5m_split *)1;
	char path[512], src[512];
	uint8_t junk[70000];
	struct mem f;

	(void)state;
	/* empty and random */
	assert_int_equal(h5m_split(mem_read, &(struct mem){ junk, 0, 0 }, 0,
				   &sp),
			 -EINVAL);
	assert_null(sp);
	for (size_t len = 1; len < sizeof(junk); len = len * 3 + 1) {
		fill(junk, len, 0);
		path_in(path, sizeof(path), "junk");
		write_bytes(path, junk, len);
		assert_int_equal(check_file(path, 0, NULL), -EINVAL);
	}
	/* "HDF5 signature, then junk" at the superblock search offsets */
	fill(junk, sizeof(junk), 0);
	memcpy(junk + 512, "\x89HDF\r\n\x1a\n", 8);
	memcpy(junk + 2048, "\x89HDF\r\n\x1a\n\x02", 9);
	path_in(path, sizeof(path), "sigjunk");
	write_bytes(path, junk, sizeof(junk));
	check_file(path, 0, NULL);

	/* truncated HDF5 at many lengths */
	path_in(src, sizeof(src), "trunc_src.h5");
	mk_mixed(src, 512, 0);
	f = load(src);
	for (size_t len = 0; len < f.len; len = len * 2 + 7) {
		int rc;

		path_in(path, sizeof(path), "trunc.h5");
		write_bytes(path, f.p, len);
		rc = check_file(path, 0, NULL);
		assert_true(rc == 0 || rc == -EINVAL);
	}
	path_in(path, sizeof(path), "trunc.h5");
	write_bytes(path, f.p, f.len - 1);
	check_file(path, 0, NULL);

	/* the callback's own error comes back */
	assert_int_equal(h5m_split(fail_read, NULL, f.len, &sp), -ENETDOWN);
	free(f.p);
}

/* Chunk addresses pointing outside the file, and random damage: never a
 * crash, and whatever split answers still rebuilds the file exactly. */
static void test_damaged(void **state)
{
	char path[512], src[512];
	struct h5m_split *sp;
	struct mem f;
	hid_t fid, d, space;
	hsize_t off;
	haddr_t addr;
	hsize_t size;
	unsigned mask;
	size_t hits = 0;

	(void)state;
	path_in(src, sizeof(src), "damage_src.h5");
	mk_mixed(src, 0, 0); /* v1 B-trees: no checksums */
	fid = H5Fopen(src, H5F_ACC_RDONLY, H5P_DEFAULT);
	d = H5Dopen2(fid, "c1", H5P_DEFAULT);
	space = H5Dget_space(d);
	f = load(src);
	/* point chunk k of /c1 far past the end (the address is stored as
	 * 8 little-endian bytes in the B-tree node) */
	for (hsize_t k = 0; k < 16; k += 3) {
		assert_true(H5Dget_chunk_info(d, space, k, &off, &mask, &addr,
					      &size) >= 0);
		for (size_t i = 0; i + 8 <= f.len; i++) {
			uint64_t v = 0;

			for (int b = 7; b >= 0; b--)
				v = v << 8 | f.p[i + (size_t)b];
			if (v == addr) {
				uint64_t bad = k % 2 ? f.len - size / 2
						     : (uint64_t)1 << 40;

				for (int b = 0; b < 8; b++)
					f.p[i + (size_t)b] =
						(uint8_t)(bad >> (8 * b));
				hits++;
			}
		}
	}
	H5Sclose(space);
	H5Dclose(d);
	H5Fclose(fid);
	assert_true(hits >= 1);
	path_in(path, sizeof(path), "outside.h5");
	write_bytes(path, f.p, f.len);
	assert_int_equal(h5m_split(mem_read, &f, f.len, &sp), 0);
	for (size_t i = 0; i < sp->n_spans; i++)
		assert_true(sp->spans[i].off + sp->spans[i].len <= f.len);
	h5m_split_free(sp);
	assert_true(check_file(path, 0, NULL) == 0);
	free(f.p);

	/* random byte damage */
	for (int iter = 0; iter < DAMAGE_ROUNDS; iter++) {
		int rc;

		f = load(src);
		for (int k = 0; k < 1 + iter % 8; k++)
			f.p[rnd() % f.len] = (uint8_t)rnd();
		path_in(path, sizeof(path), "damaged.h5");
		write_bytes(path, f.p, f.len);
		rc = check_file(path, 0, NULL);
		assert_true(rc == 0 || rc == -EINVAL);
		free(f.p);
	}
}

static void test_corpus(void **state)
{
	const char *root = getenv("CH5_CORPUS");
	char line[4096], path[8192 + 16];
	size_t files = 0, hdf5 = 0, spans = 0;
	uint64_t bytes = 0, skel = 0, man = 0;
	FILE *idx;

	(void)state;
	if (!root)
		root = "/work/shared/corpus";
	snprintf(path, sizeof(path), "%.4096s/INDEX.tsv", root);
	idx = fopen(path, "r");
	if (!idx) {
		print_message("WARNING: ****** corpus %s missing: corpus test "
			      "SKIPPED ******\n",
			      root);
		skip();
	}
	while (fgets(line, sizeof(line), idx)) {
		char *tab = strchr(line, '\t');
		struct result r;
		int rc;

		if (!tab || !strncmp(line, "file\t", 5))
			continue;
		*tab = '\0';
		snprintf(path, sizeof(path), "%.4096s/%s", root, line);
		if (getenv("CH5_VERBOSE"))
			print_message("corpus: %s\n", line);
		rc = check_file(path, 1, &r);
		if (rc)
			print_message("corpus: %s: not HDF5 (%d), stored raw\n",
				      line, rc);
		files++;
		hdf5 += rc == 0;
		spans += r.spans;
		skel += r.skeleton;
		man += r.manifest;
		{
			struct stat st;

			if (!stat(path, &st))
				bytes += (uint64_t)st.st_size;
		}
	}
	fclose(idx);
	print_message("corpus: %zu files (%zu split as HDF5), %.1f MB, %zu "
		      "spans, skeleton %.1f%%, manifests %.1f MB\n",
		      files, hdf5, (double)bytes / 1e6, spans,
		      100.0 * (double)skel / (double)(bytes ? bytes : 1),
		      (double)man / 1e6);
	assert_true(files >= 100);
}

static int setup(void **state)
{
	(void)state;
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char path[512];

	(void)state;
	if (getenv("CH5_KEEP_TMP")) {
		print_message("kept %s\n", tmpdir);
		closedir(d);
		return 0;
	}
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		path_in(path, sizeof(path), e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generated),
		cmocka_unit_test(test_not_hdf5),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_many_chunks),
	};

	if (getenv("CH5_DEBUG"))
		ch5_log_set_level(LOG_DEBUG);
	return cmocka_run_group_tests(tests, setup, teardown);
}
