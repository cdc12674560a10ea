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
		uint8_t *dst;

		if (e->off > pos) {
			rc = h5m_manifest_add_skel(n, e->off - pos, &dst);
			if (rc < 0)
				goto out;
			/* e->skel counts the skeleton bytes before e->off,
			 * the gap included. */
			memcpy(dst, m->skel + e->skel - (e->off - pos),
			       e->off - pos);
		}
		rc = h5m_manifest_add_extent(n, e->off, e->len, map[e->prefix],
					     sfx, strlen(sfx));
		if (rc < 0)
			goto out;
		pos = e->off + e->len;
	}
	if (m->file_size > pos) {
		uint8_t *dst;

		rc = h5m_manifest_add_skel(n, m->file_size - pos, &dst);
		if (rc < 0)
			goto out;
		memcpy(dst, m->skel + m->skel_len - (m->file_size - pos),
		       m->file_size - pos);
	}
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
