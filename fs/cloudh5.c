/*
 * cloudh5.c - the admin tool.
 *
 *   cloudh5 fsck SOURCE [--repair] [--grace SECONDS] [--spool DIR]...
 *   cloudh5 stats MOUNTPOINT
 *
 * fsck reads every key of the store once (LIST), every manifest once, and
 * reports:
 *   - orphans: objects under the data prefix that no manifest references
 *     (uploaded by a commit that never landed, or superseded but not
 *     deleted);
 *   - manifests that reference objects the store does not have;
 *   - manifests that do not decode (corrupt, or a newer format);
 *   - staged files kept in the given spool directories (uncommitted data of
 *     failed commits or of a daemon that was killed).
 * --repair deletes orphans whose last modification is older than the grace
 * period (default 3600 s: a commit in flight uploads its objects before
 * its manifest), and nothing else: never a manifest, never an object a
 * manifest references, never a staged file.
 *
 * Exit status: 0 nothing to report (after repairs), 1 something remains
 * to report, 2 the check could not be done.
 *
 * stats prints the counters of a mounted cloudh5 (requests by kind, bytes
 * in and out, cache hits and misses, commits), which the daemon serves as
 * the extended attribute user.cloudh5.stats of the mount's root.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#include "h5m.h"
#include "ost.h"
#include "spool.h"
#include "log.h"

/* Manifests larger than this are reported, not read. */
#define MANIFEST_MAX (4ULL << 30)

struct keyset {
	char **keys;
	int64_t *mtime_ns; /* data objects only */
	size_t n, cap;
};

static int keyset_add(struct keyset *s, const char *key, int64_t mtime)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 1024;
		char **nk = realloc(s->keys, nc * sizeof(*nk));
		int64_t *nm;

		if (!nk)
			return -ENOMEM;
		s->keys = nk;
		nm = realloc(s->mtime_ns, nc * sizeof(*nm));
		if (!nm)
			return -ENOMEM;
		s->mtime_ns = nm;
		s->cap = nc;
	}
	s->keys[s->n] = strdup(key);
	if (!s->keys[s->n])
		return -ENOMEM;
	s->mtime_ns[s->n++] = mtime;
	return 0;
}

static void keyset_release(struct keyset *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->keys[i]);
	free(s->keys);
	free(s->mtime_ns);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool keyset_has(const struct keyset *s, const char *key)
{
	return s->n && bsearch(&key, s->keys, s->n, sizeof(*s->keys),
			       cmp_str) != NULL;
}

struct fsck {
	struct ost *st;
	struct keyset data;  /* keys under H5M_DATA_PREFIX, sorted */
	struct keyset files; /* other keys that are not directory markers */
	struct keyset refs;  /* keys manifests reference */
	unsigned problems;
};

/* One LIST of the whole store into data and files. */
static int list_all(struct fsck *f)
{
	char *token = NULL;
	size_t pl = strlen(H5M_DATA_PREFIX), i;
	int rc;

	do {
		struct ost_list_result res = { 0 };

		rc = ost_list(f->st, "", NULL, token, 1000, &res);
		free(token);
		token = NULL;
		for (i = 0; rc == 0 && i < res.n_objects; i++) {
			const char *k = res.objects[i].key;
			size_t kl = strlen(k);

			if (!strncmp(k, H5M_DATA_PREFIX, pl)) {
				if (k[kl - 1] != '/')
					rc = keyset_add(&f->data, k,
							res.objects[i]
								.info.mtime_ns);
			} else if (strncmp(k, ".cloudh5/", 9) &&
				   k[kl - 1] != '/') {
				rc = keyset_add(&f->files, k, 0);
			}
		}
		if (rc == 0 && res.next_token) {
			token = strdup(res.next_token);
			if (!token)
				rc = -ENOMEM;
		}
		ost_list_result_release(&res);
	} while (rc == 0 && token);
	/* No sort needed: LIST answers in bytewise key order, page after
	 * page (ost.h), which is strcmp() order, so bsearch works and the
	 * mtimes stay lined up with their keys. */
	return rc;
}

/* Read the manifest at `key` (if it is one) and note what it references;
 * report missing objects. */
static int check_file(struct fsck *f, const char *key)
{
	uint8_t head[H5M_HEADER_SIZE];
	struct h5m_manifest *m = NULL;
	char okey[H5M_KEY_MAX + 1];
	void *buf = NULL;
	size_t got = 0, len = 0, i, missing = 0;
	int rc;

	rc = ost_get(f->st, key, 0, head, sizeof(head), &got, NULL);
	if (rc == -ENOENT)
		return 0; /* removed since the LIST */
	if (rc < 0)
		return rc;
	if (!h5m_is_manifest(head, got))
		return 0; /* a plain object */
	rc = ost_get_all(f->st, key, MANIFEST_MAX, &buf, &len, NULL);
	if (rc == 0)
		rc = h5m_manifest_decode(buf, len, &m);
	free(buf);
	if (rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EFBIG) {
		printf("bad-manifest %s (%s): its objects are kept\n", key,
		       rc == -EPROTONOSUPPORT ? "newer format" : "corrupt");
		f->problems++;
		/* Keep whatever sits under its data prefix: we cannot tell
		 * what it references. */
		snprintf(okey, sizeof(okey), "%s%s/", H5M_DATA_PREFIX, key);
		for (i = 0; i < f->data.n; i++)
			if (!strncmp(f->data.keys[i], okey, strlen(okey)))
				keyset_add(&f->refs, f->data.keys[i], 0);
		return 0;
	}
	if (rc < 0)
		return rc;
	for (i = 0; i < h5m_extent_count(m); i++) {
		if (h5m_extent_key(m, i, okey, sizeof(okey)) < 0)
			continue;
		rc = keyset_add(&f->refs, okey, 0);
		if (rc < 0)
			break;
		if (!keyset_has(&f->data, okey)) {
			if (missing++ < 5)
				printf("missing %s (referenced by %s)\n", okey,
				       key);
		}
	}
	if (missing) {
		printf("damaged %s: %zu of %zu objects missing\n", key, missing,
		       h5m_extent_count(m));
		f->problems++;
	}
	h5m_manifest_free(m);
	return rc < 0 ? rc : 0;
}

static void report_stage(void *arg, const char *path, uint64_t size,
			 const struct fs_spool_rec *rec)
{
	struct fsck *f = arg;

	if (rec->state == FS_SPOOL_CLEAN)
		return; /* a live daemon's stage the store already has */
	printf("staged %s: %llu bytes of uncommitted data for %s (%s)\n",
	       path, (unsigned long long)size, rec->key,
	       fs_spool_state_name(rec->state));
	f->problems++;
}

/* Report staged files in a spool directory. */
static void check_spool(struct fsck *f, const char *dir)
{
	int rc = fs_spool_scan(dir, report_stage, f);

	if (rc < 0) {
		fprintf(stderr, "cloudh5: cannot read spool %s: %s\n", dir,
			strerror(-rc));
		f->problems++;
	}
}

static const char usage[] =
	"usage: cloudh5 fsck SOURCE [--repair] [--grace SECONDS] "
	"[--spool DIR]...\n"
	"       cloudh5 stats MOUNTPOINT\n"
	"\n"
	"Checks the store at SOURCE (file:///DIR): orphaned objects, manifests\n"
	"that reference missing objects, and (with --spool) staged files of\n"
	"commits that did not land.  --repair deletes orphans older than the\n"
	"grace period (3600 s) and nothing else.\n"
	"\n"
	"stats prints the request, byte, cache and commit counters of a mount.\n";

static int fsck_main(int argc, char **argv)
{
	struct fsck f;
	const char *source = NULL;
	const char *spools[16];
	size_t n_spools = 0, i, j;
	bool repair = false;
	double grace = 3600;
	int64_t now_ns;
	struct timespec ts;
	unsigned orphans = 0, deleted = 0, young = 0;
	int rc, a;

	for (a = 2; a < argc; a++) {
		if (!strcmp(argv[a], "--repair")) {
			repair = true;
		} else if (!strcmp(argv[a], "--grace") && a + 1 < argc) {
			char *end;

			grace = strtod(argv[++a], &end);
			if (*end || grace < 0) {
				fprintf(stderr, "cloudh5: bad --grace '%s'\n",
					argv[a]);
				return 2;
			}
		} else if (!strcmp(argv[a], "--spool") && a + 1 < argc) {
			if (n_spools == 16) {
				fprintf(stderr, "cloudh5: too many --spool\n");
				return 2;
			}
			spools[n_spools++] = argv[++a];
		} else if (argv[a][0] != '-' && !source) {
			source = argv[a];
		} else {
			fprintf(stderr, "cloudh5: unknown argument '%s'\n%s",
				argv[a], usage);
			return 2;
		}
	}
	if (!source) {
		fputs(usage, stderr);
		return 2;
	}
	memset(&f, 0, sizeof(f));
	rc = ost_open_url(source, NULL, 8, &f.st);
	if (rc < 0) {
		fprintf(stderr, "cloudh5: cannot open the store %s: %s\n",
			source, strerror(-rc));
		return 2;
	}
	rc = list_all(&f);
	for (i = 0; rc == 0 && i < f.files.n; i++)
		rc = check_file(&f, f.files.keys[i]);
	if (rc < 0) {
		fprintf(stderr, "cloudh5: fsck of %s failed: %s\n", source,
			strerror(-rc));
		goto out;
	}
	if (f.refs.n)
		qsort(f.refs.keys, f.refs.n, sizeof(char *), cmp_str);
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ns = ts.tv_sec * 1000000000LL + ts.tv_nsec;
	for (i = 0; i < f.data.n; i++) {
		const char *k = f.data.keys[i];
		double age = (now_ns - f.data.mtime_ns[i]) / 1e9;

		if (keyset_has(&f.refs, k))
			continue;
		orphans++;
		if (repair && age >= grace) {
			int drc = ost_delete(f.st, k);

			printf("%s %s (%.0f s old)\n",
			       drc ? "not-deleted" : "deleted-orphan", k, age);
			if (drc == 0)
				deleted++;
			continue;
		}
		if (repair)
			young++;
		printf("orphan %s (%.0f s old)\n", k, age);
	}
	for (j = 0; j < n_spools; j++)
		check_spool(&f, spools[j]);
	if (orphans > deleted)
		f.problems++;
	printf("fsck %s: %zu files, %zu objects, %u orphans%s, %u problems\n",
	       source, f.files.n, f.data.n, orphans,
	       repair ? (young ? " (some younger than the grace period kept)"
			       : " (repaired)")
		      : "",
	       f.problems);
out:
	keyset_release(&f.data);
	keyset_release(&f.files);
	keyset_release(&f.refs);
	ost_free(f.st);
	if (rc < 0)
		return 2;
	return f.problems ? 1 : 0;
}

/* Print the counters of the cloudh5 mounted at argv[2]. */
static int stats_main(int argc, char **argv)
{
	char buf[4096];
	ssize_t n;

	if (argc != 3) {
		fputs(usage, stderr);
		return 2;
	}
	n = getxattr(argv[2], "user.cloudh5.stats", buf, sizeof(buf));
	if (n < 0) {
		fprintf(stderr, "cloudh5: %s: %s\n", argv[2],
			errno == ENODATA || errno == ENOTSUP
				? "not a cloudh5 mount point"
				: strerror(errno));
		return 2;
	}
	fwrite(buf, 1, n, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "fsck"))
		return fsck_main(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "stats"))
		return stats_main(argc, argv);
	if (argc >= 2 && (!strcmp(argv[1], "-h") ||
			  !strcmp(argv[1], "--help"))) {
		fputs(usage, stdout);
		return 0;
	}
	fputs(usage, stderr);
	return 2;
}
