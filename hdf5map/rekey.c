/*
 * rekey.c - a manifest's objects under a new file key (for rename).
 *
 * Object keys encode the file's key (H5M_DATA_PREFIX <file key> "/" ...), so
 * renaming a file moves its objects: the caller copies each object to its
 * new key, writes the re-keyed manifest at the new file key, then deletes
 * the old manifest and objects.  Keys that do not start with the old file's
 * data prefix are kept as they are.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "h5m_int.h"

/* Append to n the skeleton bytes of m from file offset `pos` up to `end`
 * (the start of extent e, or the file end when e is NULL). */
static int copy_skel(struct h5m_manifest *n, const struct h5m_manifest *m,
		     const struct h5m_ext *e, uint64_t pos, uint64_t end)
{
	uint8_t *dst;
	int rc;

	if (end <= pos)
		return 0;
	rc = h5m_manifest_add_skel(n, end - pos, &dst);
	if (rc < 0)
		return rc;
	/* e->skel counts the skeleton bytes before e->off, the gap
	 * included; after the last extent the rest of the skeleton is the
	 * tail. */
	memcpy(dst,
	       e ? m->skel + e->skel - (end - pos)
		 : m->skel + m->skel_len - (end - pos),
	       end - pos);
	return 0;
}

/* "<H5M_DATA_PREFIX><key>/" in a malloc'd buffer. */
static char *data_prefix(const char *key, size_t *len)
{
	size_t pl = strlen(H5M_DATA_PREFIX), kl = strlen(key);
	char *s = malloc(pl + kl + 2);

	if (!s)
		return NULL;
	memcpy(s, H5M_DATA_PREFIX, pl);
	memcpy(s + pl, key, kl);
	s[pl + kl] = '/';
	s[pl + kl + 1] = '\0';
	*len = pl + kl + 1;
	return s;
}

int h5m_manifest_rekey(const struct h5m_manifest *m, const char *from,
		       const char *to, struct h5m_manifest **out)
{
	struct h5m_manifest *n = NULL;
	size_t fl = 0, tl = 0, i;
	char *fp = data_prefix(from, &fl), *tp = data_prefix(to, &tl);
	char *buf = NULL;
	uint32_t *map = NULL;
	uint64_t pos = 0;
	int rc = -ENOMEM;

	if (!fp || !tp)
		goto out;
	n = h5m_manifest_new(m->generation, m->file_size);
	map = calloc(m->n_pfx ? m->n_pfx : 1, sizeof(*map));
	buf = malloc(H5M_PREFIX_MAX + tl + 1);
	if (!n || !map || !buf)
		goto out;
	for (i = 0; i < m->n_pfx; i++) {
		const char *p = m->arena + m->pfx[i];
		size_t pl = strlen(p);

		if (pl >= fl && !memcmp(p, fp, fl)) {
			if (tl + pl - fl > H5M_PREFIX_MAX) {
				rc = -ENAMETOOLONG;
				goto out;
			}
			memcpy(buf, tp, tl);
			memcpy(buf + tl, p + fl, pl - fl);
			pl = tl + pl - fl;
			p = buf;
		}
		rc = h5m_manifest_add_prefix(n, p, pl, &map[i]);
		if (rc < 0)
			goto out;
	}
	for (i = 0; i < m->n_ext; i++) {
		const struct h5m_ext *e = &m->ext[i];
		const char *sfx = m->arena + e->suffix;

		rc = copy_skel(n, m, e, pos, e->off);
		if (rc < 0)
			goto out;
		rc = h5m_manifest_add_extent(n, e->off, e->len, map[e->prefix],
					     sfx, strlen(sfx));
		if (rc < 0)
			goto out;
		pos = e->off + e->len;
	}
	rc = copy_skel(n, m, NULL, pos, m->file_size);
	if (rc < 0)
		goto out;
	rc = h5m_manifest_copy_fill(n, m);
	if (rc < 0)
		goto out;
	rc = h5m_manifest_check(n);
out:
	free(fp);
	free(tp);
	free(buf);
	free(map);
	if (rc < 0) {
		h5m_manifest_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

int h5m_manifest_reuse(const struct h5m_manifest *m,
		       const struct h5m_manifest *old,
		       int (*clean)(void *ctx, uint64_t off, uint64_t len),
		       void *ctx, struct h5m_manifest **out, uint8_t **reused)
{
	struct h5m_manifest *n = NULL;
	uint8_t *flags = calloc(m->n_ext ? m->n_ext : 1, 1);
	uint32_t *map = calloc(m->n_pfx ? m->n_pfx : 1, sizeof(*map));
	uint32_t *omap = NULL;
	uint64_t pos = 0;
	size_t i;
	int rc = -ENOMEM;

	n = h5m_manifest_new(m->generation, m->file_size);
	if (old)
		omap = malloc((old->n_pfx ? old->n_pfx : 1) * sizeof(*omap));
	if (!n || !flags || !map || (old && !omap))
		goto out;
	for (i = 0; i < m->n_pfx; i++) {
		const char *p = m->arena + m->pfx[i];

		rc = h5m_manifest_add_prefix(n, p, strlen(p), &map[i]);
		if (rc < 0)
			goto out;
	}
	/* Old prefixes are interned on first use only. */
	for (i = 0; old && i < old->n_pfx; i++)
		omap[i] = UINT32_MAX;
	for (i = 0; i < m->n_ext; i++) {
		const struct h5m_ext *e = &m->ext[i];
		const char *sfx = m->arena + e->suffix;
		uint32_t pfx = map[e->prefix];

		rc = copy_skel(n, m, e, pos, e->off);
		if (rc < 0)
			goto out;
		if (old) {
			size_t j = h5m_extent_find(old, e->off);
			const struct h5m_ext *oe =
				j < old->n_ext ? &old->ext[j] : NULL;

			/* Same bytes at the same place, and none of them
			 * written since: the old object is this object. */
			if (oe && oe->off == e->off && oe->len == e->len &&
			    clean(ctx, e->off, e->len)) {
				if (omap[oe->prefix] == UINT32_MAX) {
					const char *p =
						old->arena + old->pfx[oe->prefix];

					rc = h5m_manifest_add_prefix(
						n, p, strlen(p),
						&omap[oe->prefix]);
					if (rc < 0)
						goto out;
				}
				pfx = omap[oe->prefix];
				sfx = old->arena + oe->suffix;
				flags[i] = 1;
			}
		}
		rc = h5m_manifest_add_extent(n, e->off, e->len, pfx, sfx,
					     strlen(sfx));
		if (rc < 0)
			goto out;
		pos = e->off + e->len;
	}
	rc = copy_skel(n, m, NULL, pos, m->file_size);
	if (rc < 0)
		goto out;
	rc = h5m_manifest_copy_fill(n, m);
	if (rc < 0)
		goto out;
	rc = h5m_manifest_check(n);
out:
	free(map);
	free(omap);
	if (rc < 0) {
		h5m_manifest_free(n);
		free(flags);
		return rc;
	}
	*out = n;
	*reused = flags;
	return 0;
}
