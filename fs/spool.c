/*
 * spool.c - stage records: writing, reading, and finding kept stages.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"
#include "log.h"

#define REC_MAGIC "cloudh5-stage 1\n"

static const char *const state_names[] = { "clean", "writing", "committing" };

const char *fs_spool_state_name(enum fs_spool_state s)
{
	return (unsigned)s < 3 ? state_names[s] : "?";
}

static void rec_path(char *out, size_t size, const char *stage_path)
{
	snprintf(out, size, "%s" FS_STAGE_KEY_SUFFIX, stage_path);
}

int fs_spool_write(const char *stage_path, const struct fs_spool_rec *rec)
{
	char path[PATH_MAX + 8], tmp[PATH_MAX + 16];
	FILE *f;
	size_t i;
	int rc = 0;

	rec_path(path, sizeof(path), stage_path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fputs(REC_MAGIC, f);
	fprintf(f, "state %s\nexpect %s\nbase %s\n",
		fs_spool_state_name(rec->state),
		rec->expect[0] ? rec->expect : "-",
		rec->base[0] ? rec->base : "-");
	if (rec->ranges_known) {
		fprintf(f, "written %zu\n", rec->n_written);
		for (i = 0; i < rec->n_written; i++)
			fprintf(f, "%" PRIu64 " %" PRIu64 "\n",
				rec->written[2 * i], rec->written[2 * i + 1]);
	}
	if (rec->manifest[0])
		fprintf(f, "manifest %s\n", rec->manifest);
	fprintf(f, "key %s", rec->key);
	if (fflush(f) != 0 || ferror(f))
		rc = -errno ? -errno : -EIO;
	if (fclose(f) != 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/* Copy the value of a "name value" line into dst ("-" = empty). */
static int take(const char *line, const char *name, char *dst, size_t size)
{
	size_t nl = strlen(name), vl;

	if (strncmp(line, name, nl) || line[nl] != ' ')
		return 0;
	line += nl + 1;
	vl = strcspn(line, "\n");
	if (vl >= size)
		return -EBADMSG;
	if (vl == 1 && line[0] == '-')
		vl = 0;
	memcpy(dst, line, vl);
	dst[vl] = '\0';
	return 1;
}

static int parse(char *buf, size_t len, struct fs_spool_rec *rec)
{
	char *p = buf + strlen(REC_MAGIC), *end = buf + len;
	char state[16] = "";
	size_t i;

	while (p < end) {
		char *nl = memchr(p, '\n', end - p);
		int r;

		if (!strncmp(p, "key ", 4)) {
			size_t kl = end - p - 4;

			if (kl > OST_KEY_MAX)
				return -EBADMSG;
			memcpy(rec->key, p + 4, kl);
			rec->key[kl] = '\0';
			break;
		}
		if (!nl)
			return -EBADMSG;
		*nl = '\0';
		if ((r = take(p, "state", state, sizeof(state))) ||
		    (r = take(p, "expect", rec->expect, sizeof(rec->expect))) ||
		    (r = take(p, "base", rec->base, sizeof(rec->base))) ||
		    (r = take(p, "manifest", rec->manifest,
			      sizeof(rec->manifest)))) {
			if (r < 0)
				return r;
		} else if (!strncmp(p, "written ", 8)) {
			char *q;
			unsigned long long n = strtoull(p + 8, &q, 10);

			if (*q || n > (size_t)(end - p) / 4)
				return -EBADMSG;
			rec->written = calloc(n ? 2 * n : 1, sizeof(uint64_t));
			if (!rec->written)
				return -ENOMEM;
			rec->n_written = n;
			p = nl + 1;
			for (i = 0; i < n; i++) {
				unsigned long long a, b;

				nl = memchr(p, '\n', end - p);
				if (!nl)
					return -EBADMSG;
				*nl = '\0';
				if (sscanf(p, "%llu %llu", &a, &b) != 2 ||
				    b < a ||
				    (i && a < rec->written[2 * i - 1]))
					return -EBADMSG;
				rec->written[2 * i] = a;
				rec->written[2 * i + 1] = b;
				p = nl + 1;
			}
			rec->ranges_known = true;
			continue;
		}
		p = nl + 1;
	}
	for (i = 0; i < 3; i++)
		if (!strcmp(state, state_names[i]))
			break;
	if (i == 3)
		return -EBADMSG;
	rec->state = i;
	return 0;
}

int fs_spool_read(const char *stage_path, struct fs_spool_rec *rec)
{
	char path[PATH_MAX + 8];
	char *buf = NULL;
	size_t len = 0, cap = 0;
	FILE *f;
	int rc = 0;

	memset(rec, 0, sizeof(*rec));
	rec->state = FS_SPOOL_WRITING;
	rec->key[0] = '?';
	rec_path(path, sizeof(path), stage_path);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	for (;;) {
		size_t n;

		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = 2 * cap + 8192);

			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		if (!n)
			break;
		len += n;
	}
	buf[len] = '\0';
	if (len >= strlen(REC_MAGIC) && !memcmp(buf, REC_MAGIC,
						 strlen(REC_MAGIC))) {
		rc = parse(buf, len, rec);
	} else if (len <= OST_KEY_MAX) {
		memcpy(rec->key, buf, len + 1); /* an older record: the key */
	} else {
		rc = -EBADMSG;
	}
out:
	if (rc < 0) {
		fs_spool_rec_release(rec);
		rec->key[0] = '?';
		rec->key[1] = '\0';
	}
	fclose(f);
	free(buf);
	return rc;
}

void fs_spool_rec_release(struct fs_spool_rec *rec)
{
	free(rec->written);
	rec->written = NULL;
	rec->n_written = 0;
	rec->ranges_known = false;
}

void fs_spool_remove(const char *stage_path)
{
	char path[PATH_MAX + 8];

	rec_path(path, sizeof(path), stage_path);
	unlink(stage_path);
	unlink(path);
}

int fs_spool_scan(const char *dir, fs_spool_fn fn, void *arg)
{
	const size_t sl = strlen(FS_STAGE_SUFFIX);
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		size_t nl = strlen(de->d_name);
		char path[PATH_MAX];
		struct fs_spool_rec rec;
		struct stat sb;

		if (nl < sl || strcmp(de->d_name + nl - sl, FS_STAGE_SUFFIX))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &sb) < 0)
			continue;
		if (fs_spool_read(path, &rec) < 0)
			ch5_warn("the record of %s is unreadable", path);
		fn(arg, path, sb.st_size, &rec);
		fs_spool_rec_release(&rec);
		n++;
	}
	closedir(d);
	return n;
}
