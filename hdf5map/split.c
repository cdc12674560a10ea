/*
 * split.c - ask libhdf5 where the raw data of every dataset lives.
 *
 * The file is opened read-only through the driver of vfd.c.  H5Ovisit
 * walks every object; per dataset:
 *   contiguous  H5Dget_offset + H5Dget_storage_size (not external storage);
 *   chunked     every stored chunk, see below;
 *   compact, virtual, external: nothing (their bytes stay in the skeleton).
 *
 * Finding chunks fast.  libhdf5 1.10.8 answers H5Dget_chunk_info(index i)
 * and H5Dget_chunk_info_by_coord() by iterating the chunk index from the
 * start each time, so enumerating n chunks is O(n^2).  Measured on this
 * machine, 100,000 one-element chunks:
 *   H5Dget_chunk_info, first 10,000 indices:  0.9 s (v1 B-tree),
 *       2.6 s (fixed array), 4.0 s (extensible array)
 *       => about 90 s .. 400 s for all 100,000, hours for 1,000,000;
 *   H5Dget_chunk_info_by_coord, all 100,000:  65 s (v1 B-tree), 268 s
 *       (fixed array);
 *   H5Dget_chunk_storage_size + H5Dread_chunk, all 100,000: 0.2 s
 *       (every index type: both use the index's O(1)/O(log n) lookup).
 * So split walks every chunk position of the dataspace extent, asks
 * H5Dget_chunk_storage_size whether a chunk is stored there, and if so calls
 * H5Dread_chunk with the driver in capture mode: the driver records the
 * absolute address and size of the raw read instead of doing it, so no chunk
 * data is transferred.  The number found must equal H5Dget_num_chunks;
 * otherwise, or when the extent has far more chunk positions than stored
 * chunks (a sparse dataset), split falls back to H5Dget_chunk_info by index.
 *
 * Addresses.  The driver sees absolute file offsets.  In libhdf5 1.10
 * H5Dget_offset is absolute too (H5D__get_offset adds the file's base
 * address), but H5Dget_chunk_info and H5Dget_chunk_info_by_coord return
 * addresses relative to the base address (where the superblock is, after
 * any user block).  The base is the user block size, checked once per file
 * against a captured chunk address; test_split checks both kinds of span
 * against H5Dread_chunk / H5Dread on files with 512 and 4096-byte user
 * blocks and on the corpus.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "h5m_int.h"
#include "log.h"

/* Walk chunk positions when there are at most this many per stored chunk
 * (plus a constant): an empty position costs one index lookup (~1 us). */
#define H5M_WALK_RATIO 8
#define H5M_WALK_SLACK (4u << 20)
#define H5M_SPAN_RELATIVE 0x100u /* kind flag until the base is added */

struct h5m_split_st {
	struct h5m_split *sp;
	size_t cap_spans;
	size_t cap_coords;
	size_t cap_ds;
	uint64_t file_size;
	uint64_t base;
	int base_checked;
	struct h5m_vfd_capture *cap;
	int *err;  /* the read callback's first error */
	int rc;	   /* fatal error that stopped the visit */
	void *buf; /* H5Dread_chunk target; never written in capture mode */
	size_t buf_cap;
};


void h5m_split_free(struct h5m_split *sp)
{
	if (!sp)
		return;
	for (size_t i = 0; i < sp->n_datasets; i++)
		free(sp->datasets[i]);
	free(sp->datasets);
	free(sp->spans);
	free(sp->coords);
	free(sp);
}

/* The index of dataset `name` ("/" + the visit name), added on first use. */
struct h5m_ds_ref {
	const char *name;
	int64_t idx; /* -1 until the first span */
};

static int ds_index(struct h5m_split_st *st, struct h5m_ds_ref *ds,
		    uint32_t *idx)
{
	struct h5m_split *sp = st->sp;
	size_t l;
	char *s;
	int rc;

	if (ds->idx >= 0) {
		*idx = (uint32_t)ds->idx;
		return 0;
	}
	if (sp->n_datasets >= UINT32_MAX)
		return -ENOMEM;
	rc = h5m_grow((void **)&sp->datasets, &st->cap_ds,
		      sp->n_datasets + 1, sizeof(*sp->datasets));
	if (rc)
		return rc;
	l = strlen(ds->name);
	s = malloc(l + 2);
	if (!s)
		return -ENOMEM;
	s[0] = '/';
	memcpy(s + 1, ds->name, l + 1);
	sp->datasets[sp->n_datasets] = s;
	ds->idx = (int64_t)sp->n_datasets;
	*idx = (uint32_t)sp->n_datasets++;
	return 0;
}

static int add_span(struct h5m_split_st *st, struct h5m_ds_ref *ds,
		    uint32_t kind, uint64_t off, uint64_t len, int rank,
		    const hsize_t *coords)
{
	struct h5m_split *sp = st->sp;
	struct h5m_span *s;
	uint32_t idx;
	int rc;

	rc = ds_index(st, ds, &idx);
	if (!rc)
		rc = h5m_grow((void **)&sp->spans, &st->cap_spans,
			      sp->n_spans + 1, sizeof(*sp->spans));
	if (!rc && rank > 0)
		rc = h5m_grow((void **)&sp->coords, &st->cap_coords,
			      sp->n_coords + (size_t)rank,
			      sizeof(*sp->coords));
	if (rc)
		return rc;
	s = &sp->spans[sp->n_spans++];
	s->off = off;
	s->len = len;
	s->dataset = idx;
	s->kind = kind;
	s->rank = rank > 0 ? (uint32_t)rank : 0;
	s->coord_idx = sp->n_coords;
	for (int i = 0; i < rank; i++)
		sp->coords[sp->n_coords++] = coords[i];
	return 0;
}

/* Chunk geometry of a dataset. */
struct h5m_chunk_geo {
	int rank;
	hsize_t cdims[H5S_MAX_RANK];
	hsize_t dims[H5S_MAX_RANK];
	hsize_t grid[H5S_MAX_RANK]; /* chunk positions per dimension */
	uint64_t positions;	    /* product of grid, saturated */
};

/* Once per split: does a captured (absolute) address equal libhdf5's
 * relative one plus the user block size?  If not, trust the capture. */
static void check_base(struct h5m_split_st *st, hid_t dset,
		       const hsize_t *off, uint64_t abs_addr)
{
	haddr_t rel = HADDR_UNDEF;
	hsize_t size = 0;
	unsigned mask = 0;

	st->base_checked = 1;
	if (H5Dget_chunk_info_by_coord(dset, off, &mask, &rel, &size) < 0 ||
	    rel == HADDR_UNDEF || rel > abs_addr)
		return;
	if (rel + st->base != abs_addr) {
		ch5_warn("h5m: base address %" PRIu64 " (user block) does not "
			 "match the chunk reads; using %" PRIu64,
			 st->base, (uint64_t)(abs_addr - rel));
		st->base = abs_addr - rel;
	}
}

/* Walk every chunk position; 0, -EAGAIN (use the fallback), or fatal. */
static int chunks_by_walk(struct h5m_split_st *st, hid_t dset,
			  struct h5m_ds_ref *ds, const struct h5m_chunk_geo *g,
			  hsize_t nchunks)
{
	hsize_t pos[H5S_MAX_RANK] = { 0 }, off[H5S_MAX_RANK];
	uint64_t found = 0, p;
	int i, rc;

	for (p = 0; p < g->positions; p++) {
		hsize_t sz = 0;
		uint32_t filters = 0;
		herr_t hr;

		for (i = 0; i < g->rank; i++)
			off[i] = pos[i] * g->cdims[i];
		/* 1.10.8 fails (rather than answering 0) where no chunk is
		 * stored; the count check below catches any other failure */
		if (H5Dget_chunk_storage_size(dset, off, &sz) < 0) {
			if (*st->err)
				return *st->err;
			sz = 0;
		}
		if (sz) {
			found++;
			if (sz > st->file_size)
				goto next; /* cannot be in the file: skip */
			rc = h5m_grow(&st->buf, &st->buf_cap, (size_t)sz, 1);
			if (rc)
				return rc;
			st->cap->n = 0;
			st->cap->on = 1;
			hr = H5Dread_chunk(dset, H5P_DEFAULT, off, &filters,
					   st->buf);
			st->cap->on = 0;
			if (*st->err)
				return *st->err;
			if (hr < 0 || st->cap->n != 1 || st->cap->size != sz)
				return -EAGAIN;
			if (!st->base_checked)
				check_base(st, dset, off, st->cap->addr);
			rc = add_span(st, ds, H5M_SPAN_CHUNK, st->cap->addr, sz,
				      g->rank, pos);
			if (rc)
				return rc;
		}
next:
		/* odometer, last dimension fastest */
		for (i = g->rank - 1; i >= 0; i--) {
			if (++pos[i] < g->grid[i])
				break;
			pos[i] = 0;
		}
	}
	return found == nchunks ? 0 : -EAGAIN;
}

/* The O(n^2) route: H5Dget_chunk_info by index. */
static int chunks_by_index(struct h5m_split_st *st, hid_t dset, hid_t space,
			   struct h5m_ds_ref *ds,
			   const struct h5m_chunk_geo *g, hsize_t nchunks)
{
	hsize_t off[H5S_MAX_RANK], coords[H5S_MAX_RANK];
	int rc;

	for (hsize_t k = 0; k < nchunks; k++) {
		haddr_t addr = HADDR_UNDEF;
		hsize_t size = 0;
		unsigned mask = 0;

		if (H5Dget_chunk_info(dset, space, k, off, &mask, &addr,
				      &size) < 0) {
			if (*st->err)
				return *st->err;
			ch5_debug("h5m: %s: chunk %" PRIu64 " unreadable",
				  ds->name, (uint64_t)k);
			break; /* keep what we have */
		}
		if (addr == HADDR_UNDEF || size == 0)
			continue;
		for (int i = 0; i < g->rank; i++)
			coords[i] = off[i] / g->cdims[i];
		rc = add_span(st, ds, H5M_SPAN_CHUNK | H5M_SPAN_RELATIVE, addr,
			      size, g->rank, coords);
		if (rc)
			return rc;
	}
	return 0;
}

static int do_chunked(struct h5m_split_st *st, hid_t dset, hid_t dcpl,
		      struct h5m_ds_ref *ds)
{
	struct h5m_chunk_geo g;
	size_t mark_spans = st->sp->n_spans, mark_coords = st->sp->n_coords;
	hsize_t nchunks = 0;
	hid_t space = -1;
	int rc = -EIO;

	memset(&g, 0, sizeof(g));
	g.rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, g.cdims);
	if (g.rank < 1 || g.rank > H5S_MAX_RANK)
		goto out;
	space = H5Dget_space(dset);
	if (space < 0 || H5Sget_simple_extent_ndims(space) != g.rank ||
	    H5Sget_simple_extent_dims(space, g.dims, NULL) < 0)
		goto out;
	if (H5Dget_num_chunks(dset, space, &nchunks) < 0)
		goto out;
	rc = 0;
	if (nchunks == 0)
		goto out;
	g.positions = 1;
	for (int i = 0; i < g.rank; i++) {
		if (g.cdims[i] == 0) {
			g.positions = UINT64_MAX;
			break;
		}
		g.grid[i] = g.dims[i] / g.cdims[i] + !!(g.dims[i] % g.cdims[i]);
		if (g.grid[i] && g.positions > UINT64_MAX / g.grid[i])
			g.positions = UINT64_MAX;
		else
			g.positions *= g.grid[i];
	}
	if (nchunks <= (UINT64_MAX - H5M_WALK_SLACK) / H5M_WALK_RATIO &&
	    g.positions <= nchunks * H5M_WALK_RATIO + H5M_WALK_SLACK) {
		rc = chunks_by_walk(st, dset, ds, &g, nchunks);
		if (rc != -EAGAIN)
			goto out;
		ch5_debug("h5m: %s: chunk walk incomplete, listing by index",
			  ds->name);
		st->sp->n_spans = mark_spans;
		st->sp->n_coords = mark_coords;
	}
	rc = chunks_by_index(st, dset, space, ds, &g, nchunks);
out:
	if (space >= 0)
		H5Sclose(space);
	return rc;
}

static int do_dataset(struct h5m_split_st *st, hid_t loc, const char *name,
		      haddr_t addr)
{
	struct h5m_ds_ref ds = { name, -1 };
	hid_t dset, dcpl = -1;
	int rc = -EIO;

	dset = H5Oopen_by_addr(loc, addr);
	if (dset < 0)
		goto out;
	if (H5Iget_type(dset) != H5I_DATASET)
		goto out;
	dcpl = H5Dget_create_plist(dset);
	if (dcpl < 0)
		goto out;
	switch (H5Pget_layout(dcpl)) {
	case H5D_CONTIGUOUS: {
		haddr_t off;
		hsize_t size;

		rc = 0;
		if (H5Pget_external_count(dcpl) != 0)
			break; /* raw data in other files (or unknown) */
		off = H5Dget_offset(dset);
		size = H5Dget_storage_size(dset);
		if (off == HADDR_UNDEF || size == 0)
			break;
		/* absolute: 1.10's H5D__get_offset adds the base address */
		rc = add_span(st, &ds, H5M_SPAN_CONTIG, off, size, 0, NULL);
		break;
	}
	case H5D_CHUNKED:
		rc = do_chunked(st, dset, dcpl, &ds);
		break;
	default: /* compact, virtual: no extents of their own */
		rc = 0;
		break;
	}
out:
	if (dcpl >= 0)
		H5Pclose(dcpl);
	if (dset >= 0)
		H5Oclose(dset);
	return rc;
}

static herr_t visit_cb(hid_t obj, const char *name, const H5O_info_t *info,
		       void *op_data)
{
	struct h5m_split_st *st = op_data;
	int rc;

	if (info->type != H5O_TYPE_DATASET)
		return 0;
	rc = do_dataset(st, obj, name, info->addr);
	if (*st->err)
		rc = *st->err;
	if (rc == -ENOMEM || (rc && rc == *st->err)) {
		st->rc = rc;
		return -1;
	}
	if (rc)
		ch5_debug("h5m: dataset /%s skipped: %d", name, rc);
	return 0;
}

static int cmp_span(const void *a, const void *b)
{
	const struct h5m_span *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return 0;
}

/* Add the base to relative spans, sort, and drop empty spans, spans that
 * leave the file and every span that overlaps another. */
static void finish_spans(struct h5m_split_st *st)
{
	struct h5m_split *sp = st->sp;
	uint64_t max_end = 0;
	size_t i, n = 0;

	for (i = 0; i < sp->n_spans; i++) {
		struct h5m_span *s = &sp->spans[i];

		if (s->kind & H5M_SPAN_RELATIVE) {
			s->kind &= ~H5M_SPAN_RELATIVE;
			if (s->off > UINT64_MAX - st->base)
				s->len = 0;
			else
				s->off += st->base;
		}
		if (s->len == 0 || s->off > st->file_size ||
		    s->len > st->file_size - s->off) {
			ch5_debug("h5m: dropping span [%" PRIu64 ", +%" PRIu64
				  ") of %s: empty or outside the file",
				  s->off, s->len, sp->datasets[s->dataset]);
			continue;
		}
		sp->spans[n++] = *s;
	}
	sp->n_spans = n;
	if (n)
		qsort(sp->spans, n, sizeof(*sp->spans), cmp_span);
	/* sorted by off: span i overlaps another iff it starts before the
	 * furthest end so far or ends after the next one starts */
	n = 0;
	for (i = 0; i < sp->n_spans; i++) {
		struct h5m_span s = sp->spans[i];
		uint64_t end = s.off + s.len;
		int bad = (i > 0 && s.off < max_end) ||
			  (i + 1 < sp->n_spans && end > sp->spans[i + 1].off);

		if (end > max_end)
			max_end = end;
		if (bad) {
			ch5_debug("h5m: dropping span [%" PRIu64 ", +%" PRIu64
				  ") of %s: overlaps another",
				  s.off, s.len, sp->datasets[s.dataset]);
			continue;
		}
		sp->spans[n++] = s;
	}
	sp->n_spans = n;
}

int h5m_split(h5m_read_fn read, void *ctx, uint64_t file_size,
	      struct h5m_split **out)
{
	struct h5m_vfd_capture cap = { 0 };
	struct h5m_vfd_info info;
	struct h5m_split_st st;
	hid_t fapl = -1, fid = -1, fcpl = -1;
	hsize_t ub = 0;
	int err = 0, rc;

	*out = NULL;
	memset(&st, 0, sizeof(st));
	st.sp = calloc(1, sizeof(*st.sp));
	if (!st.sp)
		return -ENOMEM;
	st.file_size = file_size;
	st.cap = &cap;
	st.err = &err;
	info.read = read;
	info.ctx = ctx;
	info.size = file_size;
	info.err = &err;
	info.cap = &cap;

	h5m_hdf5_lock();
	/* libhdf5 must not print its error stacks (we map errors to errno and
	 * log them ourselves).  In a thread-safe libhdf5 (Debian's) the
	 * setting is per thread, and splits run on any FUSE worker. */
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	rc = -EIO;
	if (h5m_vfd_id() < 0)
		goto out;
	fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0)
		goto out;
	rc = h5m_vfd_set_fapl(fapl, &info);
	if (rc)
		goto out;
	fid = H5Fopen("cloudh5-split", H5F_ACC_RDONLY, fapl);
	if (fid < 0) {
		rc = err ? err : -EINVAL;
		ch5_debug("h5m: split: not opened as HDF5: %d", rc);
		goto out;
	}
	fcpl = H5Fget_create_plist(fid);
	if (fcpl >= 0 && H5Pget_userblock(fcpl, &ub) >= 0)
		st.base = ub;
	if (H5Ovisit2(fid, H5_INDEX_NAME, H5_ITER_NATIVE, visit_cb, &st,
		      H5O_INFO_BASIC) < 0) {
		if (st.rc || err) {
			rc = st.rc ? st.rc : err;
			goto out;
		}
		/* a damaged group: what was found is still right */
		ch5_debug("h5m: split: object walk stopped early");
	}
	if (err) {
		rc = err;
		goto out;
	}
	finish_spans(&st);
	rc = 0;
out:
	if (fcpl >= 0)
		H5Pclose(fcpl);
	if (fid >= 0 && H5Fclose(fid) < 0)
		ch5_debug("h5m: split: H5Fclose failed");
	if (fapl >= 0)
		H5Pclose(fapl);
	h5m_hdf5_unlock();
	free(st.buf);
	if (rc) {
		h5m_split_free(st.sp);
		return rc;
	}
	*out = st.sp;
	return 0;
}
