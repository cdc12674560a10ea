/*
 * manifest.c - the manifest: in-memory form, encode/decode, synthesize.
 *
 * Encoded form (all integers little-endian), format version 2 (version 1 is
 * the same without the page fill section, and is still decoded):
 *
 *   header, 64 bytes; every later version keeps the magic at 0, the
 *   version at 8 and the header CRC at 60, so an old reader can tell
 *   "newer" (-EPROTONOSUPPORT) from "corrupt" (-EBADMSG):
 *      0  magic             8 bytes, H5M_MAGIC
 *      8  u32 version       H5M_FORMAT_VERSION
 *     12  u32 flags         bit 0: body is one LZ4 frame; others must be 0
 *     16  u64 generation
 *     24  u64 file_size     bytes of the HDF5 file the manifest describes
 *     32  u64 n_extents
 *     40  u64 body_raw_len  body bytes after decompression
 *     48  u64 body_stored_len  body bytes as stored after the header
 *     56  u32 crc32 of the stored body (zlib crc32)
 *     60  u32 crc32 of header bytes [0, 60)
 *
 *   body (raw), LEB128 varints unless noted:
 *     skeleton_len
 *     n_prefixes, then per prefix: len, bytes   (key prefixes, no NUL)
 *     per extent: gap (from the end of the previous extent, or from 0),
 *                 len (>= 1), prefix id, shared (bytes in common with the
 *                 previous extent's key suffix), add, `add` bytes
 *                 (front-coded key suffixes)
 *     skeleton_len bytes of skeleton
 *     page fill (version 2): fill_page (page size, bytes; 0 = none),
 *                 n_fill, per run: gap (from the end of the previous run,
 *                 or from 0), len (>= 1); then the runs' bytes in order
 *   The body must end exactly there; extents plus skeleton make up exactly
 *   file_size bytes; fill runs are sorted, disjoint, and inside extents.
 *
 * A 1,000,000-chunk manifest encodes to a few MB (see test_manifest).
 */
#include <errno.h>
#include <lz4frame.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bytes.h"
#include "h5m_int.h"
#include "log.h"

#define H5M_FLAG_LZ4 1u
#define H5M_EXT_MIN_BYTES 5 /* smallest encoded extent: 5 varints */

/* ---- in-memory manifest ------------------------------------------------ */

struct h5m_manifest *h5m_manifest_new(uint64_t generation, uint64_t file_size)
{
	struct h5m_manifest *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->generation = generation;
	m->file_size = file_size;
	return m;
}

void h5m_manifest_free(struct h5m_manifest *m)
{
	if (!m)
		return;
	if (!m->borrowed) {
		free(m->ext);
		free(m->pfx);
		free(m->arena);
		free(m->skel);
	}
	free(m->fr);
	free(m->fill);
	free(m);
}

int h5m_grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 16;
	void *np;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elem)
			return -ENOMEM;
		ncap *= 2;
	}
	np = realloc(*p, ncap * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

/* Append s[0..len) plus a NUL to the arena; *at receives its offset. */
static int arena_put(struct h5m_manifest *m, const char *s, size_t len,
		     uint32_t *at)
{
	int rc;

	if (m->arena_len + len + 1 > UINT32_MAX)
		return -ENOMEM;
	rc = h5m_grow((void **)&m->arena, &m->arena_cap,
		      m->arena_len + len + 1, 1);
	if (rc)
		return rc;
	memcpy(m->arena + m->arena_len, s, len);
	m->arena[m->arena_len + len] = '\0';
	*at = (uint32_t)m->arena_len;
	m->arena_len += len + 1;
	return 0;
}

int h5m_manifest_add_prefix(struct h5m_manifest *m, const char *s, size_t len,
			    uint32_t *id)
{
	int rc;

	if (len > H5M_PREFIX_MAX || memchr(s, '\0', len))
		return -EINVAL;
	if (m->n_pfx >= UINT32_MAX)
		return -ENOMEM;
	rc = h5m_grow((void **)&m->pfx, &m->cap_pfx, m->n_pfx + 1,
		      sizeof(*m->pfx));
	if (rc)
		return rc;
	rc = arena_put(m, s, len, &m->pfx[m->n_pfx]);
	if (rc)
		return rc;
	*id = (uint32_t)m->n_pfx++;
	return 0;
}

static uint64_t ext_end(const struct h5m_ext *e)
{
	return e->off + e->len;
}

int h5m_manifest_add_extent(struct h5m_manifest *m, uint64_t off,
			    uint64_t len, uint32_t prefix, const char *suffix,
			    size_t suffix_len)
{
	const struct h5m_ext *last = m->n_ext ? &m->ext[m->n_ext - 1] : NULL;
	uint64_t prev_end = last ? ext_end(last) : 0;
	uint64_t covered = last ? prev_end - last->skel : 0;
	struct h5m_ext *e;
	int rc;

	if (len == 0 || off < prev_end || off > m->file_size ||
	    len > m->file_size - off || prefix >= m->n_pfx ||
	    suffix_len == 0 || suffix_len > H5M_SUFFIX_MAX ||
	    memchr(suffix, '\0', suffix_len))
		return -EINVAL;
	/* the skeleton must hold exactly the bytes before `off` */
	if (m->skel_len != off - covered)
		return -EINVAL;
	rc = h5m_grow((void **)&m->ext, &m->cap_ext, m->n_ext + 1,
		      sizeof(*m->ext));
	if (rc)
		return rc;
	e = &m->ext[m->n_ext];
	rc = arena_put(m, suffix, suffix_len, &e->suffix);
	if (rc)
		return rc;
	e->off = off;
	e->len = len;
	e->skel = m->skel_len;
	e->prefix = prefix;
	m->n_ext++;
	return 0;
}

int h5m_manifest_add_skel(struct h5m_manifest *m, uint64_t len, uint8_t **dst)
{
	int rc;

	if (len > SIZE_MAX - m->skel_len - 1)
		return -ENOMEM;
	rc = h5m_grow((void **)&m->skel, &m->skel_cap,
		      (size_t)(m->skel_len + len) + 1, 1);
	if (rc)
		return rc;
	*dst = m->skel + m->skel_len;
	m->skel_len += len;
	return 0;
}

/* Skeleton bytes before file offset `off` (0 <= off <= file_size). */
static uint64_t skel_before(const struct h5m_manifest *m, uint64_t off)
{
	size_t i = h5m_extent_find(m, off);

	if (i == m->n_ext)
		return m->skel_len - (m->file_size - off);
	if (m->ext[i].off <= off)
		return m->ext[i].skel;
	return m->ext[i].skel - (m->ext[i].off - off);
}

int h5m_manifest_check(const struct h5m_manifest *m)
{
	uint64_t covered = 0, pos = 0, at = 0;
	size_t i;

	for (i = 0; i < m->n_ext; i++) {
		const struct h5m_ext *e = &m->ext[i];

		/* bytes before e not in an extent == e->skel */
		if (e->off - covered != e->skel)
			return -EINVAL;
		covered += e->len;
	}
	if (m->file_size - covered != m->skel_len)
		return -EINVAL;
	for (i = 0; i < m->n_fill; i++) {
		const struct h5m_fill *f = &m->fr[i];

		/* sorted, disjoint, in the file, and object bytes only */
		if (f->len == 0 || f->off < pos || f->at != at ||
		    f->off > m->file_size || f->len > m->file_size - f->off ||
		    skel_before(m, f->off + f->len) != skel_before(m, f->off))
			return -EINVAL;
		pos = f->off + f->len;
		at += f->len;
	}
	if (at != m->fill_len || (m->n_fill && !m->fill_page))
		return -EINVAL;
	return 0;
}

int h5m_manifest_add_fill(struct h5m_manifest *m, uint64_t off, uint64_t len,
			  uint8_t **dst)
{
	struct h5m_fill *last = m->n_fill ? &m->fr[m->n_fill - 1] : NULL;
	int rc;

	if (len == 0 || (last && off < last->off + last->len) ||
	    len > SIZE_MAX - m->fill_len - 1)
		return -EINVAL;
	rc = h5m_grow((void **)&m->fill, &m->fill_cap,
		      (size_t)(m->fill_len + len) + 1, 1);
	if (rc)
		return rc;
	if (last && off == last->off + last->len) {
		last->len += len;
	} else {
		rc = h5m_grow((void **)&m->fr, &m->cap_fill, m->n_fill + 1,
			      sizeof(*m->fr));
		if (rc)
			return rc;
		m->fr[m->n_fill].off = off;
		m->fr[m->n_fill].len = len;
		m->fr[m->n_fill].at = m->fill_len;
		m->n_fill++;
	}
	*dst = m->fill + m->fill_len;
	m->fill_len += len;
	return 0;
}

int h5m_manifest_copy_fill(struct h5m_manifest *n,
			   const struct h5m_manifest *m)
{
	n->fill_page = m->fill_page;
	if (!m->n_fill)
		return 0;
	n->fr = malloc(m->n_fill * sizeof(*n->fr));
	n->fill = malloc((size_t)m->fill_len + 1);
	if (!n->fr || !n->fill)
		return -ENOMEM;
	memcpy(n->fr, m->fr, m->n_fill * sizeof(*n->fr));
	memcpy(n->fill, m->fill, (size_t)m->fill_len);
	n->n_fill = n->cap_fill = m->n_fill;
	n->fill_len = m->fill_len;
	n->fill_cap = (size_t)m->fill_len + 1;
	return 0;
}

/* Fill the object bytes of page run [a, b), extent by extent; with no
 * `read`, only count them into *total. */
static int fill_run(struct h5m_manifest *m, uint64_t a, uint64_t b,
		    uint64_t budget, h5m_read_fn read, void *ctx,
		    uint64_t *total)
{
	size_t i;
	int rc;

	if (!read) {
		*total += (b - a) - (skel_before(m, b) - skel_before(m, a));
		return 0;
	}
	for (i = h5m_extent_find(m, a); i < m->n_ext && m->ext[i].off < b;
	     i++) {
		const struct h5m_ext *e = &m->ext[i];
		uint64_t lo = e->off > a ? e->off : a;
		uint64_t hi = ext_end(e) < b ? ext_end(e) : b;
		uint8_t *dst;

		if (m->fill_len + (hi - lo) > budget)
			return 1;
		rc = h5m_manifest_add_fill(m, lo, hi - lo, &dst);
		if (rc)
			return rc;
		rc = read(ctx, lo, dst, (size_t)(hi - lo));
		if (rc)
			return rc < 0 ? rc : -EIO;
	}
	return 0;
}

/* The pages to fill, as merged runs in file order: every page that holds a
 * skeleton byte and, with `edges`, every page where an extent starts or
 * ends.  Each run is filled (or, without `read`, counted). */
static int fill_walk(struct h5m_manifest *m, uint64_t page, bool edges,
		     uint64_t budget, h5m_read_fn read, void *ctx,
		     uint64_t *total)
{
	uint64_t run_a = 0, run_b = 0, pos = 0;
	size_t i;
	int rc = 0;

	for (i = 0; i <= m->n_ext && rc == 0; i++) {
		/* up to three page ranges, in file order: the gap before
		 * extent i, the page where it starts, the one where it ends */
		uint64_t r[3][2], n = 0, g1;
		size_t k;

		g1 = i < m->n_ext ? m->ext[i].off : m->file_size;
		if (g1 > pos) {
			r[n][0] = pos;
			r[n++][1] = g1;
		}
		if (i < m->n_ext && edges) {
			const struct h5m_ext *e = &m->ext[i];

			if (e->off % page) {
				r[n][0] = e->off;
				r[n++][1] = e->off + 1;
			}
			if (ext_end(e) % page && ext_end(e) < m->file_size) {
				r[n][0] = ext_end(e);
				r[n++][1] = ext_end(e) + 1;
			}
		}
		if (i < m->n_ext)
			pos = ext_end(&m->ext[i]);
		for (k = 0; k < n && rc == 0; k++) {
			uint64_t pa = r[k][0] - r[k][0] % page;
			uint64_t pb = r[k][1] % page
					      ? r[k][1] + (page - r[k][1] % page)
					      : r[k][1];

			if (pb > m->file_size || pb < r[k][1])
				pb = m->file_size;
			if (run_b > run_a && pa <= run_b) {
				if (pb > run_b)
					run_b = pb;
				continue;
			}
			if (run_b > run_a)
				rc = fill_run(m, run_a, run_b, budget, read,
					      ctx, total);
			run_a = pa;
			run_b = pb;
		}
	}
	if (rc == 0 && run_b > run_a)
		rc = fill_run(m, run_a, run_b, budget, read, ctx, total);
	return rc;
}

int h5m_fill_plan(struct h5m_manifest *m, uint32_t page, uint64_t budget,
		  h5m_read_fn read, void *ctx)
{
	uint64_t with_edges = 0;
	int rc;

	if (page == 0 || m->n_fill || !read)
		return -EINVAL;
	m->fill_page = page;
	/* Pages where chunks meet too, if all of it fits: then a reader of
	 * whole pages reads one chunk without its neighbours.  Else the
	 * pages of metadata only, in file order while the budget lasts. */
	fill_walk(m, page, true, budget, NULL, NULL, &with_edges);
	rc = fill_walk(m, page, with_edges <= budget, budget, read, ctx,
		       NULL);
	return rc > 0 ? 0 : rc; /* 1: over budget, the rest left out */
}

/* ---- accessors ---------------------------------------------------------- */

uint64_t h5m_file_size(const struct h5m_manifest *m)
{
	return m->file_size;
}

uint64_t h5m_generation(const struct h5m_manifest *m)
{
	return m->generation;
}

uint64_t h5m_skeleton_size(const struct h5m_manifest *m)
{
	return m->skel_len;
}

uint64_t h5m_fill_size(const struct h5m_manifest *m)
{
	return m->fill_len;
}

size_t h5m_extent_count(const struct h5m_manifest *m)
{
	return m->n_ext;
}

void h5m_extent(const struct h5m_manifest *m, size_t i, uint64_t *off,
		uint64_t *len)
{
	*off = m->ext[i].off;
	*len = m->ext[i].len;
}

int h5m_extent_key(const struct h5m_manifest *m, size_t i, char *buf,
		   size_t size)
{
	const char *p = m->arena + m->pfx[m->ext[i].prefix];
	const char *s = m->arena + m->ext[i].suffix;
	size_t pl = strlen(p), sl = strlen(s);

	if (pl + sl + 1 > size)
		return -ENAMETOOLONG;
	memcpy(buf, p, pl);
	memcpy(buf + pl, s, sl + 1);
	return (int)(pl + sl);
}

size_t h5m_extent_find(const struct h5m_manifest *m, uint64_t off)
{
	size_t lo = 0, hi = m->n_ext;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ext_end(&m->ext[mid]) > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Is component [s, s+n) a commit tag, "g<decimal>-<hex>"? */
static bool is_tag(const char *s, size_t n)
{
	size_t i = 1;

	if (n < 4 || s[0] != 'g')
		return false;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i == 1 || i >= n - 1 || s[i] != '-')
		return false;
	for (i++; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Do key prefixes a and b name the same dataset: equal, or equal but for
 * the commit-tag component? */
static bool same_dataset(const char *a, const char *b)
{
	size_t i = 0, ca = 0, ea, eb;

	while (a[i] && a[i] == b[i]) {
		if (a[i] == '/')
			ca = i + 1; /* start of the component that differs */
		i++;
	}
	if (!a[i] && !b[i])
		return true;
	for (ea = ca; a[ea] && a[ea] != '/'; ea++)
		;
	for (eb = ca; b[eb] && b[eb] != '/'; eb++)
		;
	return is_tag(a + ca, ea - ca) && is_tag(b + ca, eb - ca) &&
	       !strcmp(a + ea, b + eb);
}

uint64_t h5m_dataset_run_end(const struct h5m_manifest *m, size_t i,
			     uint64_t limit)
{
	uint32_t pfx = m->ext[i].prefix;

	while (ext_end(&m->ext[i]) < limit && i + 1 < m->n_ext) {
		uint32_t next = m->ext[i + 1].prefix;

		if (next != pfx &&
		    !same_dataset(m->arena + m->pfx[pfx], m->arena + m->pfx[next]))
			break;
		pfx = next;
		i++;
	}
	return ext_end(&m->ext[i]);
}

/* Index of the first fill run whose end is > off (n_fill if none). */
static size_t fill_find(const struct h5m_manifest *m, uint64_t off)
{
	size_t lo = 0, hi = m->n_fill;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->fr[mid].off + m->fr[mid].len > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

size_t h5m_map(const struct h5m_manifest *m, uint64_t off, uint64_t len,
	       struct h5m_piece *pieces, size_t max)
{
	uint64_t end;
	size_t n = 0, i, j;

	if (off >= m->file_size || len == 0 || max == 0)
		return 0;
	end = len > m->file_size - off ? m->file_size : off + len;
	i = h5m_extent_find(m, off);
	j = fill_find(m, off);
	while (off < end && n < max) {
		struct h5m_piece *pc = &pieces[n++];

		if (i < m->n_ext && off >= m->ext[i].off) {
			const struct h5m_ext *e = &m->ext[i];
			uint64_t stop = ext_end(e) < end ? ext_end(e) : end;
			const struct h5m_fill *f = j < m->n_fill ? &m->fr[j]
								 : NULL;

			pc->skel = NULL;
			if (f && f->off <= off) {
				/* object bytes the manifest holds too */
				if (f->off + f->len < stop)
					stop = f->off + f->len;
				pc->skel = m->fill + f->at + (off - f->off);
			} else if (f && f->off < stop) {
				stop = f->off;
			}
			pc->file_off = off;
			pc->len = stop - off;
			pc->extent = i;
			pc->obj_off = off - e->off;
			off = stop;
			if (off == ext_end(e))
				i++;
			if (f && off == f->off + f->len)
				j++;
		} else {
			/* a gap: skeleton bytes up to the next extent */
			uint64_t gap_end = i < m->n_ext ? m->ext[i].off
							: m->file_size;
			uint64_t skel_at_end = i < m->n_ext ? m->ext[i].skel
							    : m->skel_len;
			uint64_t stop = gap_end < end ? gap_end : end;

			pc->file_off = off;
			pc->len = stop - off;
			pc->skel = m->skel + (skel_at_end - (gap_end - off));
			pc->extent = 0;
			pc->obj_off = 0;
			off = stop;
		}
	}
	return n;
}

/* ---- encode ------------------------------------------------------------- */

struct h5m_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

static int buf_put(struct h5m_buf *b, const void *src, size_t len)
{
	int rc = h5m_grow((void **)&b->p, &b->cap, b->len + len, 1);

	if (rc)
		return rc;
	if (len)
		memcpy(b->p + b->len, src, len);
	b->len += len;
	return 0;
}

static int buf_varint(struct h5m_buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	return buf_put(b, tmp, n);
}

/* zlib's crc32 takes a uInt length; feed it in pieces. */
static uint32_t crc32_buf(const uint8_t *p, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);

	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		c = crc32(c, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)c;
}

/* A page fill section: page size, run count, the runs (gap, length), then
 * their bytes (taken from bytes + run.at). */
static int encode_fill(struct h5m_buf *b, uint32_t page,
		       const struct h5m_fill *fr, size_t n,
		       const uint8_t *bytes)
{
	uint64_t prev_end = 0;
	size_t i;
	int rc;

	rc = buf_varint(b, page);
	if (!rc)
		rc = buf_varint(b, n);
	for (i = 0; !rc && i < n; i++) {
		rc = buf_varint(b, fr[i].off - prev_end);
		if (!rc)
			rc = buf_varint(b, fr[i].len);
		prev_end = fr[i].off + fr[i].len;
	}
	for (i = 0; !rc && i < n; i++)
		rc = buf_put(b, bytes + fr[i].at, (size_t)fr[i].len);
	return rc;
}

/* The body: extent table, skeleton, then the fill section of the runs
 * fr[0..n) (their bytes in m->fill). */
static int encode_body(const struct h5m_manifest *m, struct h5m_buf *b,
		       const struct h5m_fill *fr, size_t n)
{
	const char *prev = "";
	uint64_t prev_end = 0;
	size_t i, prev_len = 0;
	int rc;

	rc = h5m_grow((void **)&b->p, &b->cap,
		      m->n_ext * 8 + m->arena_len + m->skel_len +
			      m->n_fill * 8 + m->fill_len + 64,
		      1);
	if (rc)
		return rc;
	rc = buf_varint(b, m->skel_len);
	if (!rc)
		rc = buf_varint(b, m->n_pfx);
	for (i = 0; !rc && i < m->n_pfx; i++) {
		const char *p = m->arena + m->pfx[i];
		size_t pl = strlen(p);

		rc = buf_varint(b, pl);
		if (!rc)
			rc = buf_put(b, p, pl);
	}
	for (i = 0; !rc && i < m->n_ext; i++) {
		const struct h5m_ext *e = &m->ext[i];
		const char *s = m->arena + e->suffix;
		size_t sl = strlen(s), shared = 0;

		while (shared < sl && shared < prev_len && s[shared] == prev[shared])
			shared++;
		rc = buf_varint(b, e->off - prev_end);
		if (!rc)
			rc = buf_varint(b, e->len);
		if (!rc)
			rc = buf_varint(b, e->prefix);
		if (!rc)
			rc = buf_varint(b, shared);
		if (!rc)
			rc = buf_varint(b, sl - shared);
		if (!rc)
			rc = buf_put(b, s + shared, sl - shared);
		prev = s;
		prev_len = sl;
		prev_end = ext_end(e);
	}
	if (!rc)
		rc = buf_put(b, m->skel, m->skel_len);
	if (!rc)
		rc = encode_fill(b, m->fill_page, fr, n, m->fill);
	return rc;
}

/* Runs of page fill, pointing into a manifest's fill bytes. */
struct fill_list {
	struct h5m_fill *r;
	size_t n;
	size_t cap;
	uint64_t bytes;
};

static int list_add(struct fill_list *l, uint64_t off, uint64_t len,
		    uint64_t at)
{
	struct h5m_fill *last = l->n ? &l->r[l->n - 1] : NULL;
	int rc;

	l->bytes += len;
	if (last && last->off + last->len == off &&
	    last->at + last->len == at) {
		last->len += len;
		return 0;
	}
	rc = h5m_grow((void **)&l->r, &l->cap, l->n + 1, sizeof(*l->r));
	if (rc)
		return rc;
	l->r[l->n].off = off;
	l->r[l->n].len = len;
	l->r[l->n].at = at;
	l->n++;
	return 0;
}

/* Does page [p, p+page) or a page next to it hold a skeleton byte?  A
 * reader of metadata reads those: the pages of its blocks, and the next
 * one when a (speculative) read runs on past a block's end. */
static bool page_near_skel(const struct h5m_manifest *m, uint64_t page,
			   uint64_t p)
{
	uint64_t a = p >= page ? p - page : 0;
	uint64_t b = p + 2 * page;

	if (b > m->file_size || b < p)
		b = m->file_size;
	return skel_before(m, b) != skel_before(m, a);
}

/* Sort m's fill, page by page, into the head's runs and the edge
 * section's (pages far from metadata). */
static int fill_split(const struct h5m_manifest *m, struct fill_list *head,
		      struct fill_list *edge)
{
	uint64_t page = m->fill_page;
	size_t i;
	int rc = 0;

	for (i = 0; !rc && i < m->n_fill; i++) {
		const struct h5m_fill *f = &m->fr[i];
		uint64_t pos = f->off, end = f->off + f->len;

		while (!rc && pos < end) {
			uint64_t pe = pos - pos % page + page;

			if (pe > end)
				pe = end;
			rc = list_add(page_near_skel(m, page, pos - pos % page)
					      ? head
					      : edge,
				      pos, pe - pos, f->at + (pos - f->off));
			pos = pe;
		}
	}
	return rc;
}

/* lz4 (frame) of raw[0..len) if that is smaller: *stored points at the
 * bytes to store (raw itself or *z, which the caller frees). */
static void pack(const uint8_t *raw, size_t len, uint8_t **z,
		 const uint8_t **stored, size_t *stored_len, uint32_t *flags)
{
	LZ4F_preferences_t prefs;
	size_t zcap, zlen;

	*z = NULL;
	*stored = raw;
	*stored_len = len;
	*flags = 0;
	memset(&prefs, 0, sizeof(prefs));
	prefs.frameInfo.blockSizeID = LZ4F_max4MB;
	prefs.frameInfo.contentSize = len;
	zcap = LZ4F_compressFrameBound(len, &prefs);
	*z = malloc(zcap);
	if (!*z)
		return; /* no memory for compression: store the bytes as they are */
	zlen = LZ4F_compressFrame(*z, zcap, raw, len, &prefs);
	if (!LZ4F_isError(zlen) && zlen < len) {
		*stored = *z;
		*stored_len = zlen;
		*flags = H5M_FLAG_LZ4;
	}
}

int h5m_manifest_encode(const struct h5m_manifest *m, void **buf, size_t *len)
{
	struct h5m_buf body = { 0 }, eb = { 0 };
	struct fill_list head = { 0 }, edge = { 0 };
	uint8_t *out = NULL, *z = NULL, *ez = NULL;
	const uint8_t *stored, *estored = NULL;
	size_t stored_len, estored_len = 0;
	uint32_t flags, eflags = 0;
	bool split;
	int rc;

	*buf = NULL;
	*len = 0;
	rc = h5m_manifest_check(m);
	if (!rc)
		rc = fill_split(m, &head, &edge);
	if (rc)
		goto out;
	split = edge.bytes >= H5M_EDGE_SPLIT_MIN;
	if (split) {
		uint8_t crc[4];

		rc = encode_fill(&eb, m->fill_page, edge.r, edge.n, m->fill);
		if (rc)
			goto out;
		pack(eb.p, eb.len, &ez, &estored, &estored_len, &eflags);
		rc = encode_body(m, &body, head.r, head.n);
		if (!rc)
			rc = buf_varint(&body, eb.len);
		if (!rc)
			rc = buf_varint(&body, estored_len);
		if (!rc)
			rc = buf_varint(&body, eflags);
		ch5_put_le32(crc, crc32_buf(estored, estored_len));
		if (!rc)
			rc = buf_put(&body, crc, sizeof(crc));
	} else {
		rc = encode_body(m, &body, m->fr, m->n_fill);
	}
	if (rc)
		goto out;
	pack(body.p, body.len, &z, &stored, &stored_len, &flags);

	out = malloc(H5M_HEADER_SIZE + stored_len + estored_len);
	if (!out) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(out, H5M_MAGIC, H5M_MAGIC_LEN);
	ch5_put_le32(out + 8, split ? 3 : 2);
	ch5_put_le32(out + 12, flags);
	ch5_put_le64(out + 16, m->generation);
	ch5_put_le64(out + 24, m->file_size);
	ch5_put_le64(out + 32, m->n_ext);
	ch5_put_le64(out + 40, body.len);
	ch5_put_le64(out + 48, stored_len);
	ch5_put_le32(out + 56, crc32_buf(stored, stored_len));
	ch5_put_le32(out + 60, crc32_buf(out, 60));
	memcpy(out + H5M_HEADER_SIZE, stored, stored_len);
	if (estored_len)
		memcpy(out + H5M_HEADER_SIZE + stored_len, estored,
		       estored_len);
	*buf = out;
	*len = H5M_HEADER_SIZE + stored_len + estored_len;
out:
	free(z);
	free(ez);
	free(body.p);
	free(eb.p);
	free(head.r);
	free(edge.r);
	return rc;
}

/* ---- decode ------------------------------------------------------------- */

int h5m_is_manifest(const void *buf, size_t len)
{
	return len >= H5M_MAGIC_LEN && !memcmp(buf, H5M_MAGIC, H5M_MAGIC_LEN);
}

/* The parsed header, with the raw body sizes peek does not expose. */
struct h5m_hdr {
	uint32_t version;
	uint32_t flags;
	uint64_t generation;
	uint64_t file_size;
	uint64_t n_ext;
	uint64_t raw_len;
	uint64_t stored_len;
	uint32_t body_crc;
};

static int parse_header(const uint8_t *p, size_t len, struct h5m_hdr *h)
{
	if (len < H5M_HEADER_SIZE || !h5m_is_manifest(p, len))
		return -EBADMSG;
	if (ch5_get_le32(p + 60) != crc32_buf(p, 60))
		return -EBADMSG;
	h->version = ch5_get_le32(p + 8);
	if (h->version == 0)
		return -EBADMSG;
	if (h->version > H5M_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	h->flags = ch5_get_le32(p + 12);
	h->generation = ch5_get_le64(p + 16);
	h->file_size = ch5_get_le64(p + 24);
	h->n_ext = ch5_get_le64(p + 32);
	h->raw_len = ch5_get_le64(p + 40);
	h->stored_len = ch5_get_le64(p + 48);
	h->body_crc = ch5_get_le32(p + 56);
	if (h->flags & ~H5M_FLAG_LZ4)
		return -EBADMSG;
	if (h->stored_len > UINT64_MAX - H5M_HEADER_SIZE)
		return -EBADMSG;
	if (!(h->flags & H5M_FLAG_LZ4) && h->raw_len != h->stored_len)
		return -EBADMSG;
	/* LZ4 cannot expand more than 255:1; bounds the allocation below */
	if ((h->flags & H5M_FLAG_LZ4) &&
	    (h->raw_len == 0 || h->stored_len > UINT64_MAX / 256 ||
	     h->raw_len > h->stored_len * 256 + 65536))
		return -EBADMSG;
	/* each extent takes at least H5M_EXT_MIN_BYTES of body */
	if (h->n_ext > h->raw_len / H5M_EXT_MIN_BYTES)
		return -EBADMSG;
	return 0;
}

int h5m_header_peek(const void *buf, size_t len, struct h5m_header *out)
{
	struct h5m_hdr h;
	int rc = parse_header(buf, len, &h);

	if (rc)
		return rc;
	out->version = h.version;
	out->generation = h.generation;
	out->file_size = h.file_size;
	out->n_extents = h.n_ext;
	out->manifest_size = H5M_HEADER_SIZE + h.stored_len;
	return 0;
}

struct h5m_rd {
	const uint8_t *p;
	const uint8_t *end;
};

static int rd_varint(struct h5m_rd *r, uint64_t *v)
{
	uint64_t x = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t c;

		if (r->p >= r->end)
			return -EBADMSG;
		c = *r->p++;
		if (shift == 63 && (c & 0x7e))
			return -EBADMSG; /* more than 64 bits */
		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -EBADMSG;
}

static int lz4_inflate(const uint8_t *src, size_t src_len, uint8_t *dst,
		       size_t dst_len)
{
	LZ4F_dctx *dctx = NULL;
	size_t in = 0, outp = 0;
	int rc = -EBADMSG;

	if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
		return -ENOMEM;
	for (;;) {
		size_t dsz = dst_len - outp, ssz = src_len - in;
		size_t r = LZ4F_decompress(dctx, dst + outp, &dsz, src + in,
					   &ssz, NULL);

		if (LZ4F_isError(r))
			goto out;
		in += ssz;
		outp += dsz;
		if (r == 0)
			break;
		if (ssz == 0 && dsz == 0)
			goto out;
	}
	if (in == src_len && outp == dst_len)
		rc = 0;
out:
	LZ4F_freeDecompressionContext(dctx);
	return rc;
}

/* The page fill section (format 2); bounds are checked here, placement
 * by h5m_manifest_check(). */
static int decode_fill(struct h5m_manifest *m, const struct h5m_hdr *h,
		       struct h5m_rd *r)
{
	uint64_t page, n, pos = 0, total = 0, gap, len;
	size_t i;

	if (rd_varint(r, &page) || rd_varint(r, &n) || page > UINT32_MAX ||
	    n > (uint64_t)(r->end - r->p) / 2 || (n && !page))
		return -EBADMSG;
	m->fill_page = (uint32_t)page;
	if (!n)
		return 0;
	m->fr = malloc(n * sizeof(*m->fr));
	if (!m->fr)
		return -ENOMEM;
	m->cap_fill = n;
	for (i = 0; i < n; i++) {
		if (rd_varint(r, &gap) || rd_varint(r, &len) || len == 0 ||
		    gap > h->file_size - pos || len > h->file_size - pos - gap)
			return -EBADMSG;
		m->fr[i].off = pos + gap;
		m->fr[i].len = len;
		m->fr[i].at = total;
		pos = m->fr[i].off + len;
		total += len;
	}
	m->n_fill = n;
	if (total > (uint64_t)(r->end - r->p))
		return -EBADMSG;
	m->fill = malloc((size_t)total + 1);
	if (!m->fill)
		return -ENOMEM;
	memcpy(m->fill, r->p, (size_t)total);
	m->fill_len = total;
	m->fill_cap = (size_t)total + 1;
	r->p += total;
	return 0;
}

/* The last fields of a format 3 body: the edge section's sizes, flags and
 * CRC-32 (its place is set by the caller). */
static int decode_edge_info(struct h5m_manifest *m, struct h5m_rd *r)
{
	uint64_t raw, stored, flags;

	if (rd_varint(r, &raw) || rd_varint(r, &stored) ||
	    rd_varint(r, &flags) || r->end - r->p < 4)
		return -EBADMSG;
	if (stored == 0 || stored > UINT64_MAX / 256 || (flags & ~H5M_FLAG_LZ4) ||
	    (!(flags & H5M_FLAG_LZ4) && raw != stored) ||
	    ((flags & H5M_FLAG_LZ4) && (raw == 0 || raw > stored * 256 + 65536)))
		return -EBADMSG;
	m->edge_raw = raw;
	m->edge_len = stored;
	m->edge_flags = (uint32_t)flags;
	m->edge_crc = ch5_get_le32(r->p);
	r->p += 4;
	return 0;
}

static int decode_body(struct h5m_manifest *m, const struct h5m_hdr *h,
		       struct h5m_rd *r)
{
	uint64_t skel_len, n_pfx, v, pos = 0, covered = 0;
	char *sfx = NULL;
	size_t sfx_len = 0, i;
	int rc;

	rc = rd_varint(r, &skel_len);
	if (rc)
		return rc;
	if (skel_len > h->file_size || skel_len > (uint64_t)(r->end - r->p))
		return -EBADMSG;
	rc = rd_varint(r, &n_pfx);
	if (rc)
		return rc;
	if (n_pfx > (uint64_t)(r->end - r->p))
		return -EBADMSG;
	for (i = 0; i < n_pfx; i++) {
		uint32_t id;

		rc = rd_varint(r, &v);
		if (rc)
			return rc;
		if (v > H5M_PREFIX_MAX || v > (uint64_t)(r->end - r->p))
			return -EBADMSG;
		rc = h5m_manifest_add_prefix(m, (const char *)r->p, v, &id);
		if (rc)
			return rc == -EINVAL ? -EBADMSG : rc;
		r->p += v;
	}

	if (h->n_ext > (uint64_t)(r->end - r->p) / H5M_EXT_MIN_BYTES)
		return -EBADMSG;
	m->ext = malloc(h->n_ext ? h->n_ext * sizeof(*m->ext) : 1);
	sfx = malloc(H5M_SUFFIX_MAX);
	if (!m->ext || !sfx) {
		rc = -ENOMEM;
		goto out;
	}
	m->cap_ext = h->n_ext;
	/* suffixes are at least 2 bytes each with their NUL */
	rc = h5m_grow((void **)&m->arena, &m->arena_cap,
		      m->arena_len + h->n_ext * 2 + 1, 1);
	if (rc)
		goto out;
	rc = -EBADMSG;
	for (i = 0; i < h->n_ext; i++) {
		uint64_t gap, len, pfx, shared, add;
		struct h5m_ext *e = &m->ext[i];

		if (rd_varint(r, &gap) || rd_varint(r, &len) ||
		    rd_varint(r, &pfx) || rd_varint(r, &shared) ||
		    rd_varint(r, &add))
			goto out;
		if (gap > h->file_size - pos || len == 0 ||
		    len > h->file_size - pos - gap || pfx >= n_pfx ||
		    shared > sfx_len || add > H5M_SUFFIX_MAX - shared ||
		    shared + add == 0 || add > (uint64_t)(r->end - r->p) ||
		    memchr(r->p, '\0', add))
			goto out;
		memcpy(sfx + shared, r->p, add);
		r->p += add;
		sfx_len = shared + add;
		e->off = pos + gap;
		e->len = len;
		e->skel = e->off - covered;
		e->prefix = (uint32_t)pfx;
		rc = arena_put(m, sfx, sfx_len, &e->suffix);
		if (rc)
			goto out;
		rc = -EBADMSG;
		m->n_ext++;
		pos = e->off + len;
		covered += len;
	}
	if (h->file_size - covered != skel_len ||
	    (uint64_t)(r->end - r->p) < skel_len)
		goto out;
	m->skel = malloc(skel_len + 1);
	if (!m->skel) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(m->skel, r->p, skel_len);
	m->skel_len = skel_len;
	r->p += skel_len;
	if (h->version >= 2)
		rc = decode_fill(m, h, r);
	else
		rc = 0;
	if (rc == 0 && h->version >= 3)
		rc = decode_edge_info(m, r);
	if (rc == 0 && (r->p != r->end || h5m_manifest_check(m)))
		rc = -EBADMSG;
out:
	free(sfx);
	return rc;
}

int h5m_manifest_decode(const void *buf, size_t len, struct h5m_manifest **out)
{
	const uint8_t *p = buf;
	struct h5m_manifest *m = NULL;
	struct h5m_hdr h;
	uint8_t *raw = NULL;
	struct h5m_rd r;
	uint64_t head;
	int rc;

	*out = NULL;
	rc = parse_header(p, len, &h);
	if (rc)
		goto out;
	if (h.stored_len > len - H5M_HEADER_SIZE ||
	    (h.version < 3 && h.stored_len != len - H5M_HEADER_SIZE) ||
	    crc32_buf(p + H5M_HEADER_SIZE, h.stored_len) != h.body_crc) {
		rc = -EBADMSG;
		goto out;
	}
	if (h.flags & H5M_FLAG_LZ4) {
		if (h.raw_len > SIZE_MAX) {
			rc = -ENOMEM;
			goto out;
		}
		raw = malloc(h.raw_len);
		if (!raw) {
			rc = -ENOMEM;
			goto out;
		}
		rc = lz4_inflate(p + H5M_HEADER_SIZE, h.stored_len, raw,
				 h.raw_len);
		if (rc)
			goto out;
		r.p = raw;
	} else {
		r.p = p + H5M_HEADER_SIZE;
	}
	r.end = r.p + h.raw_len;
	m = h5m_manifest_new(h.generation, h.file_size);
	if (!m) {
		rc = -ENOMEM;
		goto out;
	}
	rc = decode_body(m, &h, &r);
	if (rc)
		goto out;
	head = H5M_HEADER_SIZE + h.stored_len;
	m->edge_off = m->edge_len ? head : 0;
	if (len > head) {
		/* the whole object: the edge section follows the head */
		struct h5m_manifest *full = NULL;

		rc = len - head == m->edge_len
			     ? h5m_manifest_with_edges(m, p + head,
						       len - head, &full)
			     : -EBADMSG;
		if (rc)
			goto out;
		/* take the merged fill over; full borrowed the rest */
		free(m->fr);
		free(m->fill);
		m->fr = full->fr;
		m->n_fill = full->n_fill;
		m->cap_fill = full->cap_fill;
		m->fill = full->fill;
		m->fill_len = full->fill_len;
		m->fill_cap = full->fill_cap;
		m->edge_off = m->edge_len = 0;
		full->fr = NULL;
		full->fill = NULL;
		h5m_manifest_free(full);
	}
	*out = m;
	m = NULL;
out:
	if (rc && rc != -EPROTONOSUPPORT)
		ch5_debug("h5m: manifest decode failed: %d", rc);
	h5m_manifest_free(m);
	free(raw);
	return rc;
}

bool h5m_edges_pending(const struct h5m_manifest *m, uint64_t *off,
		       uint64_t *len)
{
	if (!m->edge_len)
		return false;
	*off = m->edge_off;
	*len = m->edge_len;
	return true;
}

/* Merge the sorted fills of a and b into n's (empty) fill, runs that meet
 * joined again as they were planned (h5m_manifest_add_fill()).  -EBADMSG
 * if they overlap. */
static int fill_merge(struct h5m_manifest *n, const struct h5m_manifest *a,
		      const struct h5m_manifest *b)
{
	size_t i = 0, j = 0;
	int rc = 0;

	while (!rc && (i < a->n_fill || j < b->n_fill)) {
		const struct h5m_manifest *src;
		const struct h5m_fill *f;
		uint8_t *dst;

		if (j == b->n_fill ||
		    (i < a->n_fill && a->fr[i].off < b->fr[j].off)) {
			src = a;
			f = &a->fr[i++];
		} else {
			src = b;
			f = &b->fr[j++];
		}
		rc = h5m_manifest_add_fill(n, f->off, f->len, &dst);
		if (!rc)
			memcpy(dst, src->fill + f->at, (size_t)f->len);
	}
	return rc == -EINVAL ? -EBADMSG : rc;
}

int h5m_manifest_with_edges(const struct h5m_manifest *m, const void *buf,
			    size_t len, struct h5m_manifest **out)
{
	struct h5m_manifest *e = NULL, *n = NULL;
	struct h5m_hdr h = { 0 };
	uint8_t *raw = NULL;
	struct h5m_rd r;
	int rc;

	*out = NULL;
	if (!m->edge_len)
		return -EINVAL;
	if (len != m->edge_len || crc32_buf(buf, len) != m->edge_crc)
		return -EBADMSG;
	if (m->edge_raw >= SIZE_MAX)
		return -ENOMEM;
	if (m->edge_flags & H5M_FLAG_LZ4) {
		raw = malloc((size_t)m->edge_raw);
		if (!raw)
			return -ENOMEM;
		rc = lz4_inflate(buf, len, raw, (size_t)m->edge_raw);
		if (rc)
			goto out;
		r.p = raw;
	} else {
		r.p = buf;
	}
	r.end = r.p + m->edge_raw;
	h.file_size = m->file_size;
	e = h5m_manifest_new(m->generation, m->file_size);
	n = calloc(1, sizeof(*n));
	if (!e || !n) {
		rc = -ENOMEM;
		goto out;
	}
	rc = decode_fill(e, &h, &r);
	if (rc == 0 && (r.p != r.end || e->fill_page != m->fill_page ||
			!e->n_fill))
		rc = -EBADMSG;
	if (rc)
		goto out;
	*n = *m;
	n->borrowed = true;
	n->fr = NULL;
	n->n_fill = n->cap_fill = 0;
	n->fill = NULL;
	n->fill_len = n->fill_cap = 0;
	n->edge_off = n->edge_len = 0;
	rc = fill_merge(n, m, e);
	/* the edge runs must fall where the head left room for them */
	if (rc == 0 && h5m_manifest_check(n))
		rc = -EBADMSG;
	if (rc)
		goto out;
	*out = n;
	n = NULL;
out:
	h5m_manifest_free(n);
	h5m_manifest_free(e);
	free(raw);
	return rc;
}

/* ---- superseded keys ---------------------------------------------------- */

struct h5m_keyset {
	char *arena;
	char **keys;
	size_t n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* All keys of m, sorted, in one allocation. */
static int keyset_build(const struct h5m_manifest *m, struct h5m_keyset *ks)
{
	size_t total = 0, i, at = 0;

	memset(ks, 0, sizeof(*ks));
	if (!m || !m->n_ext)
		return 0;
	for (i = 0; i < m->n_ext; i++)
		total += strlen(m->arena + m->pfx[m->ext[i].prefix]) +
			 strlen(m->arena + m->ext[i].suffix) + 1;
	ks->arena = malloc(total);
	ks->keys = malloc(m->n_ext * sizeof(*ks->keys));
	if (!ks->arena || !ks->keys) {
		free(ks->arena);
		free(ks->keys);
		return -ENOMEM;
	}
	for (i = 0; i < m->n_ext; i++) {
		int n = h5m_extent_key(m, i, ks->arena + at, total - at);

		ks->keys[i] = ks->arena + at;
		at += (size_t)n + 1;
	}
	ks->n = m->n_ext;
	qsort(ks->keys, ks->n, sizeof(*ks->keys), cmp_str);
	return 0;
}

void h5m_keys_free(char **keys, size_t n)
{
	if (!keys)
		return;
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

int h5m_superseded(const struct h5m_manifest *old,
		   const struct h5m_manifest *new, char ***keys, size_t *n)
{
	struct h5m_keyset a, b;
	char **res = NULL;
	size_t nres = 0, i, j = 0;
	int rc;

	*keys = NULL;
	*n = 0;
	rc = keyset_build(old, &a);
	if (rc)
		return rc;
	rc = keyset_build(new, &b);
	if (rc) {
		free(a.arena);
		free(a.keys);
		return rc;
	}
	if (a.n) {
		res = malloc(a.n * sizeof(*res));
		if (!res) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < a.n; i++) {
		if (i && !strcmp(a.keys[i], a.keys[i - 1]))
			continue; /* a key shared by two extents */
		while (j < b.n && strcmp(b.keys[j], a.keys[i]) < 0)
			j++;
		if (j < b.n && !strcmp(b.keys[j], a.keys[i]))
			continue;
		res[nres] = strdup(a.keys[i]);
		if (!res[nres]) {
			rc = -ENOMEM;
			goto out;
		}
		nres++;
	}
	*keys = res;
	*n = nres;
	res = NULL;
out:
	if (res)
		h5m_keys_free(res, nres);
	free(a.arena);
	free(a.keys);
	free(b.arena);
	free(b.keys);
	return rc;
}
