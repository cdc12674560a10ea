/*
 * plan.c - from a split (or nothing) to a manifest: name and cut objects,
 * read the skeleton.
 *
 * Every chunk span is one object; a contiguous span is cut into block_size
 * objects (".../b<n>"); a run of bytes in no span that is at least raw_min
 * long is cut into block_size raw objects (".../@raw/<file offset>"); all
 * other bytes are the skeleton, read through the callback.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5m_int.h"
#include "log.h"

#define H5M_DEFAULT_BLOCK (8u << 20)
#define H5M_DEFAULT_RAW_MIN (1u << 20)
#define H5M_SKEL_READ_MAX (64u << 20) /* largest single callback read */
#define H5M_FILL_MIN_BUDGET (4u << 20) /* page fill allowed even for a
					  small skeleton, bytes */

struct h5m_plan_ctx {
	struct h5m_manifest *m;
	const struct h5m_layout *lay;
	uint64_t block;
	uint64_t raw_min;
	h5m_read_fn read;
	void *ctx;
	uint32_t *ds_prefix; /* per dataset: prefix id + 1, 0 = not yet */
	uint32_t raw_prefix; /* prefix id + 1, 0 = not yet */
};

/* Append `s` escaped for a key: bytes < 0x21, 0x7f, '%' and a leading '@'
 * of each path component become %XX; so do the components "." and "..",
 * which a directory-backed store could not hold as names. */
static int put_escaped_path(char *dst, size_t cap, size_t *at, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t start = 1;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int esc = c < 0x21 || c == 0x7f || c == '%';

		if (c == '/') {
			start = 1;
		} else {
			if (start && c == '@')
				esc = 1;
			if (start && c == '.' &&
			    (s[1] == '\0' || s[1] == '/' ||
			     (s[1] == '.' && (s[2] == '\0' || s[2] == '/'))))
				esc = 1;
			start = 0;
		}
		if (*at + (esc ? 3 : 1) >= cap)
			return -ENAMETOOLONG;
		if (esc) {
			dst[(*at)++] = '%';
			dst[(*at)++] = hex[c >> 4];
			dst[(*at)++] = hex[c & 15];
		} else {
			dst[(*at)++] = (char)c;
		}
	}
	return 0;
}

static int put_str(char *dst, size_t cap, size_t *at, const char *s)
{
	size_t l = strlen(s);

	if (*at + l >= cap)
		return -ENAMETOOLONG;
	memcpy(dst + *at, s, l);
	*at += l;
	return 0;
}

/* Key prefix: H5M_DATA_PREFIX file_key "/" tag "/" rest "/", where rest is
 * the escaped dataset path (its leading '/' dropped) or "@raw". */
static int make_prefix(struct h5m_plan_ctx *pc, const char *dset,
		       uint32_t *id)
{
	char key[H5M_PREFIX_MAX + 1];
	size_t at = 0;
	int rc;

	rc = put_str(key, sizeof(key), &at, H5M_DATA_PREFIX);
	if (!rc)
		rc = put_str(key, sizeof(key), &at, pc->lay->file_key);
	if (!rc)
		rc = put_str(key, sizeof(key), &at, "/");
	if (!rc)
		rc = put_str(key, sizeof(key), &at, pc->lay->tag);
	if (!rc)
		rc = put_str(key, sizeof(key), &at, "/");
	if (!rc && dset) {
		while (*dset == '/')
			dset++;
		rc = put_escaped_path(key, sizeof(key), &at, dset);
	} else if (!rc) {
		rc = put_str(key, sizeof(key), &at, "@raw");
	}
	if (!rc)
		rc = put_str(key, sizeof(key), &at, "/");
	if (!rc)
		rc = h5m_manifest_add_prefix(pc->m, key, at, id);
	return rc;
}

/* Copy [off, off+len) of the file into the skeleton. */
static int add_skel(struct h5m_plan_ctx *pc, uint64_t off, uint64_t len)
{
	uint8_t *dst;
	int rc;

	if (!len)
		return 0;
	rc = h5m_manifest_add_skel(pc->m, len, &dst);
	if (rc)
		return rc;
	while (len) {
		size_t n = len > H5M_SKEL_READ_MAX ? H5M_SKEL_READ_MAX
						   : (size_t)len;

		rc = pc->read(pc->ctx, off, dst, n);
		if (rc)
			return rc < 0 ? rc : -EIO;
		dst += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Cut [off, off+len) into objects of at most `block` bytes named by
 * `prefix` and, per piece, "b<n>" (contiguous) or "<file offset>" (raw). */
static int add_blocks(struct h5m_plan_ctx *pc, uint64_t off, uint64_t len,
		      uint32_t prefix, int raw)
{
	uint64_t n = 0;
	char sfx[32];
	int rc, l;

	while (len) {
		uint64_t piece = len < pc->block ? len : pc->block;

		if (raw)
			l = snprintf(sfx, sizeof(sfx), "%" PRIu64, off);
		else
			l = snprintf(sfx, sizeof(sfx), "b%" PRIu64, n);
		rc = h5m_manifest_add_extent(pc->m, off, piece, prefix, sfx,
					     (size_t)l);
		if (rc)
			return rc;
		off += piece;
		len -= piece;
		n++;
	}
	return 0;
}

/* A run of bytes in no span: raw objects if long enough, else skeleton. */
static int add_gap(struct h5m_plan_ctx *pc, uint64_t off, uint64_t len)
{
	int rc;

	if (len < pc->raw_min)
		return add_skel(pc, off, len);
	if (!pc->raw_prefix) {
		uint32_t id;

		rc = make_prefix(pc, NULL, &id);
		if (rc)
			return rc;
		pc->raw_prefix = id + 1;
	}
	return add_blocks(pc, off, len, pc->raw_prefix - 1, 1);
}

static int add_chunk(struct h5m_plan_ctx *pc, const struct h5m_split *sp,
		     const struct h5m_span *s, uint32_t prefix)
{
	char sfx[H5M_SUFFIX_MAX];
	size_t at = 0;
	uint32_t r;

	if (s->rank == 0)
		return h5m_manifest_add_extent(pc->m, s->off, s->len, prefix,
					       "0", 1);
	for (r = 0; r < s->rank; r++) {
		int l = snprintf(sfx + at, sizeof(sfx) - at, "%s%" PRIu64,
				 r ? "." : "", sp->coords[s->coord_idx + r]);

		if (l < 0 || (size_t)l >= sizeof(sfx) - at)
			return -ENAMETOOLONG;
		at += (size_t)l;
	}
	return h5m_manifest_add_extent(pc->m, s->off, s->len, prefix, sfx, at);
}

/* Is span s usable after a span ending at `pos`? (split guarantees it;
 * plan is public, so check again rather than build a bad manifest.) */
static int span_ok(const struct h5m_split *sp, const struct h5m_span *s,
		   uint64_t pos, uint64_t file_size)
{
	if (s->len == 0 || s->off < pos || s->off > file_size ||
	    s->len > file_size - s->off || s->dataset >= sp->n_datasets)
		return 0;
	if (s->kind == H5M_SPAN_CHUNK)
		return s->coord_idx <= sp->n_coords &&
		       s->rank <= sp->n_coords - s->coord_idx;
	return s->kind == H5M_SPAN_CONTIG;
}

int h5m_plan(const struct h5m_split *sp, uint64_t file_size,
	     const struct h5m_layout *lay, h5m_read_fn read, void *ctx,
	     struct h5m_manifest **out)
{
	struct h5m_plan_ctx pc = { 0 };
	uint64_t pos = 0;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (!lay || !lay->file_key || !lay->tag || !read)
		return -EINVAL;
	pc.lay = lay;
	pc.block = lay->block_size ? lay->block_size : H5M_DEFAULT_BLOCK;
	pc.raw_min = lay->raw_min ? lay->raw_min : H5M_DEFAULT_RAW_MIN;
	pc.read = read;
	pc.ctx = ctx;
	pc.m = h5m_manifest_new(lay->generation, file_size);
	if (!pc.m)
		return -ENOMEM;

	if (!sp) {
		uint32_t id;

		rc = make_prefix(&pc, NULL, &id);
		if (!rc)
			rc = add_blocks(&pc, 0, file_size, id, 1);
		goto out;
	}
	if (sp->n_datasets) {
		pc.ds_prefix = calloc(sp->n_datasets, sizeof(*pc.ds_prefix));
		if (!pc.ds_prefix) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < sp->n_spans; i++) {
		const struct h5m_span *s = &sp->spans[i];

		if (!span_ok(sp, s, pos, file_size)) {
			ch5_debug("h5m: plan: dropping span %zu [%" PRIu64
				  ", +%" PRIu64 ")",
				  i, s->off, s->len);
			continue;
		}
		if (!pc.ds_prefix[s->dataset]) {
			uint32_t id;

			rc = make_prefix(&pc, sp->datasets[s->dataset], &id);
			if (rc)
				goto out;
			pc.ds_prefix[s->dataset] = id + 1;
		}
		rc = add_gap(&pc, pos, s->off - pos);
		if (rc)
			goto out;
		if (s->kind == H5M_SPAN_CHUNK)
			rc = add_chunk(&pc, sp, s, pc.ds_prefix[s->dataset] - 1);
		else
			rc = add_blocks(&pc, s->off, s->len,
					pc.ds_prefix[s->dataset] - 1, 0);
		if (rc)
			goto out;
		pos = s->off + s->len;
	}
	rc = add_gap(&pc, pos, file_size - pos);
	/* The page fill: about as big as the skeleton in files of small
	 * chunks; bounded for files whose metadata is interleaved with
	 * chunks everywhere. */
	if (!rc && lay->fill_page != H5M_NO_FILL)
		rc = h5m_fill_plan(pc.m,
				   lay->fill_page ? lay->fill_page
						  : H5M_FILL_PAGE,
				   pc.m->skel_len * 2 > H5M_FILL_MIN_BUDGET
					   ? pc.m->skel_len * 2
					   : H5M_FILL_MIN_BUDGET,
				   read, ctx);
out:
	free(pc.ds_prefix);
	if (!rc)
		rc = h5m_manifest_check(pc.m);
	if (rc) {
		ch5_debug("h5m: plan failed: %d", rc);
		h5m_manifest_free(pc.m);
		return rc;
	}
	*out = pc.m;
	return 0;
}
