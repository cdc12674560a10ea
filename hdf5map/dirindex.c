/*
 * dirindex.c - encode, decode and name the directory index (dirindex.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bytes.h"
#include "dirindex.h"

#define HDR 16	   /* magic, version, count */
#define ENT_HDR 20 /* name length, ETag length, flags, size, mtime */
#define COMPONENT_MAX 255

char *h5m_dirindex_key(const char *dirkey)
{
	size_t pl = strlen(H5M_DIRINDEX_PREFIX), n = 1, i;
	char *out, *p;

	for (i = 0; dirkey[i]; i++)
		n += (dirkey[i] == '%' || dirkey[i] == '/') ? 3 : 1;
	if (n > COMPONENT_MAX)
		return NULL;
	out = malloc(pl + n + 1);
	if (!out)
		return NULL;
	memcpy(out, H5M_DIRINDEX_PREFIX, pl);
	p = out + pl;
	*p++ = 'D';
	for (i = 0; dirkey[i]; i++) {
		if (dirkey[i] == '%' || dirkey[i] == '/')
			p += sprintf(p, "%%%02X", (unsigned char)dirkey[i]);
		else
			*p++ = dirkey[i];
	}
	*p = '\0';
	return out;
}

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct h5m_dirent *)a)->name,
		      ((const struct h5m_dirent *)b)->name);
}

/* Will entry `e` be encoded (after sorting, `prev` the last one kept)? */
static bool ent_kept(const struct h5m_dirent *e, const struct h5m_dirent *prev)
{
	size_t nl = strlen(e->name);

	return nl && nl <= H5M_DIRINDEX_NAME_MAX &&
	       strlen(e->etag) <= H5M_DIRINDEX_ETAG_MAX &&
	       !(prev && !strcmp(prev->name, e->name));
}

int h5m_dirindex_encode(struct h5m_dirent *ents, size_t n, void **out,
			size_t *len)
{
	const struct h5m_dirent *prev = NULL;
	size_t total = HDR + 4, i, kept = 0;
	uint8_t *buf, *p;

	if (n)
		qsort(ents, n, sizeof(*ents), ent_cmp);
	for (i = 0; i < n; i++) {
		if (!ent_kept(&ents[i], prev))
			continue;
		total += ENT_HDR + strlen(ents[i].name) + strlen(ents[i].etag);
		if (total > H5M_DIRINDEX_MAX)
			return -EFBIG;
		prev = &ents[i];
		kept++;
	}
	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, H5M_DIRINDEX_MAGIC, 8);
	ch5_put_le32(buf + 8, H5M_DIRINDEX_VERSION);
	ch5_put_le32(buf + 12, (uint32_t)kept);
	p = buf + HDR;
	prev = NULL;
	for (i = 0; i < n; i++) {
		const struct h5m_dirent *e = &ents[i];
		size_t nl = strlen(e->name), el = strlen(e->etag);

		if (!ent_kept(e, prev))
			continue;
		prev = e;
		p[0] = (uint8_t)nl;
		p[1] = (uint8_t)(nl >> 8);
		p[2] = (uint8_t)el;
		p[3] = e->manifest ? 1 : 0;
		ch5_put_le64(p + 4, e->size);
		ch5_put_le64(p + 12, (uint64_t)e->mtime_ns);
		memcpy(p + ENT_HDR, e->name, nl);
		memcpy(p + ENT_HDR + nl, e->etag, el);
		p += ENT_HDR + nl + el;
	}
	ch5_put_le32(p, (uint32_t)crc32(0L, buf, (uInt)(p - buf)));
	*out = buf;
	*len = total;
	return 0;
}

int h5m_dirindex_decode(const void *buf, size_t len, struct h5m_dirindex *ix)
{
	const uint8_t *b = buf, *p, *end;
	size_t n, i, names = 0;
	char *np;

	memset(ix, 0, sizeof(*ix));
	if (len < HDR + 4 || len > H5M_DIRINDEX_MAX ||
	    memcmp(b, H5M_DIRINDEX_MAGIC, 8))
		return -EBADMSG;
	if (ch5_get_le32(b + len - 4) != (uint32_t)crc32(0L, b, (uInt)(len - 4)))
		return -EBADMSG;
	if (ch5_get_le32(b + 8) > H5M_DIRINDEX_VERSION)
		return -EPROTONOSUPPORT;
	if (ch5_get_le32(b + 8) == 0)
		return -EBADMSG;
	n = ch5_get_le32(b + 12);
	end = b + len - 4;
	/* First pass: bounds, and the bytes the names need. */
	for (i = 0, p = b + HDR; i < n; i++) {
		size_t nl, el;

		if ((size_t)(end - p) < ENT_HDR)
			return -EBADMSG;
		nl = p[0] | (size_t)p[1] << 8;
		el = p[2];
		if (!nl || nl > H5M_DIRINDEX_NAME_MAX ||
		    el > H5M_DIRINDEX_ETAG_MAX || (p[3] & ~1u) ||
		    (size_t)(end - p) - ENT_HDR < nl + el ||
		    memchr(p + ENT_HDR, '\0', nl))
			return -EBADMSG;
		names += nl + 1;
		p += ENT_HDR + nl + el;
	}
	if (p != end)
		return -EBADMSG;
	ix->ents = calloc(n ? n : 1, sizeof(*ix->ents));
	ix->names = malloc(names ? names : 1);
	if (!ix->ents || !ix->names) {
		h5m_dirindex_free(ix);
		return -ENOMEM;
	}
	np = ix->names;
	for (i = 0, p = b + HDR; i < n; i++) {
		struct h5m_dirent *e = &ix->ents[i];
		size_t nl = p[0] | (size_t)p[1] << 8, el = p[2];

		memcpy(np, p + ENT_HDR, nl);
		np[nl] = '\0';
		e->name = np;
		np += nl + 1;
		memcpy(e->etag, p + ENT_HDR + nl, el);
		e->etag[el] = '\0';
		e->manifest = p[3] & 1;
		e->size = ch5_get_le64(p + 4);
		e->mtime_ns = (int64_t)ch5_get_le64(p + 12);
		if (i && strcmp(ix->ents[i - 1].name, e->name) >= 0) {
			h5m_dirindex_free(ix);
			return -EBADMSG;
		}
		p += ENT_HDR + nl + el;
	}
	ix->n = n;
	return 0;
}

const struct h5m_dirent *h5m_dirindex_find(const struct h5m_dirindex *ix,
					   const char *name)
{
	struct h5m_dirent key = { .name = name };

	if (!ix->n)
		return NULL;
	return bsearch(&key, ix->ents, ix->n, sizeof(*ix->ents), ent_cmp);
}

void h5m_dirindex_free(struct h5m_dirindex *ix)
{
	free(ix->ents);
	free(ix->names);
	memset(ix, 0, sizeof(*ix));
}
