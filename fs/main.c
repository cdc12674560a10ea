/*
 * main.c - mount.cloudh5: option parsing, mount, session loop.
 *
 *   mount.cloudh5 SOURCE MOUNTPOINT [-f] [-d] [-o opt[,opt...]]
 *
 * Our options are parsed with one fuse_opt table into struct fs_config;
 * everything else is handed to libfuse (allow_other, ro, ...).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "diskcache.h"
#include "fs_int.h"
#include "spool.h"
#include "azure.h"
#include "s3.h"
#include "log.h"

extern const struct fuse_lowlevel_ops fs_ops;

/* Raw option strings, converted after parsing. */
struct raw_opts {
	char *cache_size, *cache_block, *block_size, *readahead;
	char *cache_dir, *cache_disk_size;
	char *uid, *gid, *umask, *attr_timeout, *negative_timeout;
	char *prefetch_whole;
	char *spool_dir, *fault;
	/* S3 */
	char *endpoint, *region, *addressing, *passwd_file, *profile;
	char *ca_bundle, *multipart_threshold, *part_size;
	/* Azure (endpoint, passwd_file and the sizes are shared) */
	char *account, *sas;
	unsigned retries;
	uint64_t mp_threshold, mp_part; /* converted from the two above */
	int signed_payloads, insecure, direct_io;
	unsigned threads;
	unsigned max_read; /* of the max_read= option libfuse also gets */
	int foreground, debug, help, version, verbose;
	int has_fsname, has_subtype; /* given by the user: ours not added */
	char *source, *mountpoint;
};

#define OPT(t, p) { t, offsetof(struct raw_opts, p), 1 }
static const struct fuse_opt opt_table[] = {
	OPT("cache_size=%s", cache_size),
	OPT("cache_dir=%s", cache_dir),
	OPT("cache_disk_size=%s", cache_disk_size),
	OPT("cache_block=%s", cache_block),
	OPT("block_size=%s", block_size),
	OPT("readahead=%s", readahead),
	OPT("prefetch_whole=%s", prefetch_whole),
	OPT("threads=%u", threads),
	OPT("uid=%s", uid),
	OPT("gid=%s", gid),
	OPT("umask=%s", umask),
	OPT("attr_timeout=%s", attr_timeout),
	OPT("negative_timeout=%s", negative_timeout),
	OPT("endpoint=%s", endpoint),
	OPT("region=%s", region),
	OPT("addressing=%s", addressing),
	OPT("passwd_file=%s", passwd_file),
	OPT("profile=%s", profile),
	OPT("signed_payloads", signed_payloads),
	OPT("insecure", insecure),
	OPT("ca_bundle=%s", ca_bundle),
	OPT("multipart_threshold=%s", multipart_threshold),
	OPT("part_size=%s", part_size),
	OPT("retries=%u", retries),
	OPT("account=%s", account),
	OPT("sas=%s", sas),
	OPT("direct_io", direct_io),
	FUSE_OPT_KEY("spool_dir=", 2),
	FUSE_OPT_KEY("fault=", 3),
	OPT("-f", foreground),
	OPT("-v", verbose),
	/* mount(8)'s flags to its helpers: -s (sloppy) and -n (no mtab)
	 * change nothing here. */
	FUSE_OPT_KEY("-s", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("-n", FUSE_OPT_KEY_DISCARD),
	OPT("-h", help),
	OPT("--help", help),
	OPT("-V", version),
	OPT("--version", version),
	FUSE_OPT_KEY("-d", 1),
	FUSE_OPT_KEY("debug", 1),
	FUSE_OPT_END
};

static const char usage[] =
	"usage: mount.cloudh5 SOURCE MOUNTPOINT [-f] [-d] [-o opt[,opt...]]\n"
	"\n"
	"SOURCE: file:///DIR (a local directory used as an object store),\n"
	"        BUCKET, BUCKET:/PREFIX or s3://BUCKET/PREFIX (S3),\n"
	"        az://CONTAINER/PREFIX (Azure Blob; or CONTAINER[:/PREFIX]\n"
	"        with STORAGE_PLATFORM=Azure)\n"
	"\n"
	"options:\n"
	"  -f                   stay in the foreground\n"
	"  -d, -o debug         request-level logs (implies -f)\n"
	"  -o cache_size=N      block cache budget in bytes (K/M/G; 256M)\n"
	"  -o cache_dir=DIR     keep fetched blocks on disk too (lz4), across\n"
	"                       mounts\n"
	"  -o cache_disk_size=N  byte budget of cache_dir (4G)\n"
	"  -o cache_block=N     block cache unit in bytes (1M)\n"
	"  -o block_size=N      object size for contiguous data (8M)\n"
	"  -o readahead=N       largest readahead window in bytes (32M)\n"
	"  -o prefetch_whole=F  a file of at most F times cache_size is\n"
	"                       fetched whole at its first data read (0.5;\n"
	"                       0: never)\n"
	"  -o spool_dir=DIR     where files being written are staged\n"
	"                       (/var/tmp/cloudh5-spool)\n"
	"  -o threads=N         store requests in flight (16)\n"
	"  -o attr_timeout=S    seconds attributes, and which version of a\n"
	"                       file is current, are trusted (5)\n"
	"  -o negative_timeout=S  seconds a name found absent stays absent\n"
	"                       for the kernel (attr_timeout)\n"
	"  -o uid=N,gid=N,umask=M  owner and permissions shown\n"
	"  -o direct_io         readers bypass the kernel page cache: only the\n"
	"                       bytes asked for are fetched (no mmap)\n"
	"  -o max_read=N        largest kernel read request in bytes,\n"
	"                       4096..1048576 (the kernel's: 128K to 1M)\n"
	"  -o fault=SPEC        inject store faults (testing)\n"
	"S3 (else from AWS_* variables, then ~/.aws/credentials and config):\n"
	"  -o endpoint=URL      http[s]://host[:port] of an S3-compatible store\n"
	"  -o region=R          signing region (us-east-1)\n"
	"  -o addressing=path|virtual  bucket in the path or the host name\n"
	"  -o passwd_file=F     ACCESS:SECRET or BUCKET:ACCESS:SECRET (mode 600)\n"
	"  -o profile=P         profile of ~/.aws/credentials (default)\n"
	"  -o signed_payloads   sign PUT bodies (else UNSIGNED-PAYLOAD)\n"
	"  -o ca_bundle=FILE    PEM CA certificates to trust for https\n"
	"                       (instead of the system's; AWS_CA_BUNDLE)\n"
	"  -o insecure          do not verify TLS certificates\n"
	"  -o multipart_threshold=N  larger objects go up as multipart\n"
	"                       uploads (64M)\n"
	"  -o part_size=N       multipart part size, at least 5M (16M)\n"
	"  -o retries=N         resends of a request after a transient\n"
	"                       failure, 1..30 (4)\n"
	"Azure (else from AZURE_STORAGE_CONNECTION_STRING, then\n"
	"AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN):\n"
	"  -o account=NAME      storage account\n"
	"  -o endpoint=URL      blob service URL (https://NAME.blob.core.\n"
	"                       windows.net)\n"
	"  -o passwd_file=F     ACCOUNT:KEY or CONTAINER:ACCOUNT:KEY (mode 600)\n"
	"  -o sas=TOKEN         a SAS token instead of the account key\n"
	"  -o multipart_threshold=N, part_size=N  larger blobs go up as\n"
	"                       blocks of part_size (64M, 16M)\n"
	"  -o ca_bundle=FILE, insecure, retries=N  as for S3\n"
	"  plus the FUSE options, e.g. allow_other, ro\n";

/* Options of fstab(5) and mount(8) that are for mount(8), systemd or the
 * reader of the fstab, not for the file system: accepted and dropped, as
 * mount.fuse3 does.  Also dropped: any x-... (x-systemd.automount,
 * x-gvfs-show), any _... (_netdev) and comment=. */
static bool fstab_only(const char *opt)
{
	static const char *const names[] = {
		"defaults", "auto", "noauto", "nofail", "user", "nouser",
		"users", "owner", "group", "_netdev", NULL,
	};
	size_t i;

	if (!strncmp(opt, "x-", 2) || opt[0] == '_' ||
	    !strncmp(opt, "comment=", 8))
		return true;
	for (i = 0; names[i]; i++)
		if (!strcmp(opt, names[i]))
			return true;
	return false;
}

/* The value of max_read= (kept for libfuse, which passes it to the kernel
 * as a mount option, so a plain number): 4096..1048576 bytes, the range
 * of a kernel FUSE read.  Returns 1 (keep the option) or -1. */
static int parse_max_read(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < 4096 || v > (1u << 20)) {
		fprintf(stderr, "mount.cloudh5: max_read must be a number of "
				"bytes from 4096 to 1048576: '%s'\n", s);
		return -1;
	}
	*out = (unsigned)v;
	return 1;
}

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct raw_opts *raw = data;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_OPT:
		if (fstab_only(arg))
			return 0;
		if (!strncmp(arg, "fsname=", 7))
			raw->has_fsname = 1;
		if (!strncmp(arg, "subtype=", 8))
			raw->has_subtype = 1;
		if (!strncmp(arg, "max_read=", 9))
			return parse_max_read(arg + 9, &raw->max_read);
		return 1;
	case 1: /* -d / debug: ours and libfuse's */
		raw->debug = 1;
		return 1;
	case 2: /* spool_dir=: the last one given wins */
	case 3: /* fault= */
	{
		char **dst = key == 2 ? &raw->spool_dir : &raw->fault;

		free(*dst);
		*dst = strdup(strchr(arg, '=') + 1);
		return *dst ? 0 : -1;
	}
	case FUSE_OPT_KEY_NONOPT:
		if (!raw->source) {
			raw->source = strdup(arg);
			return 0;
		}
		if (!raw->mountpoint) {
			raw->mountpoint = strdup(arg);
			return 0;
		}
		fprintf(stderr, "mount.cloudh5: unexpected argument '%s'\n",
			arg);
		return -1;
	default:
		return 1;
	}
}

/* A number >= 0 (seconds, a fraction) of option `name` from s into *out,
 * untouched when s is NULL.  Returns -EINVAL on junk. */
static int parse_decimal(const char *name, const char *s, double *out)
{
	char *end;
	double v;

	if (!s)
		return 0;
	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !(v >= 0)) {
		fprintf(stderr, "mount.cloudh5: bad value for %s: '%s'\n",
			name, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* "64M" -> bytes.  Returns -EINVAL on junk or overflow. */
static int parse_size(const char *name, const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (!s)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno)
		goto bad;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (*end || (v << shift) >> shift != v)
		goto bad;
	*out = v << shift;
	return 0;
bad:
	fprintf(stderr, "mount.cloudh5: bad value for %s: '%s' "
			"(expected bytes, e.g. 64M)\n", name, s);
	return -EINVAL;
}

static int parse_uint(const char *name, const char *s, int base,
		      unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s)
		return 0;
	errno = 0;
	v = strtoul(s, &end, base);
	if (end == s || *end || errno || v > max) {
		fprintf(stderr, "mount.cloudh5: bad value for %s: '%s'\n",
			name, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int convert_opts(struct raw_opts *raw, struct fs_config *cfg)
{
	unsigned long uid = getuid(), gid = getgid(), um = 022;
	double whole = 0.5;
	int rc = 0;

	cfg->cache_size = 256ULL << 20;
	cfg->cache_block = 1ULL << 20;
	cfg->block_size = 8ULL << 20;
	cfg->readahead = 32ULL << 20;
	cfg->attr_timeout = 5.0;
	rc |= parse_size("cache_size", raw->cache_size, &cfg->cache_size);
	cfg->cache_disk_size = 4ULL << 30;
	rc |= parse_size("cache_disk_size", raw->cache_disk_size,
			 &cfg->cache_disk_size);
	if (raw->cache_dir && raw->cache_dir[0] != '/') {
		fprintf(stderr, "mount.cloudh5: cache_dir must be an absolute "
				"path (the daemon changes to /): '%s'\n",
			raw->cache_dir);
		rc = -EINVAL;
	}
	if (raw->cache_dir && cfg->cache_disk_size < (1u << 20)) {
		fprintf(stderr, "mount.cloudh5: cache_disk_size must be at "
				"least 1M\n");
		rc = -EINVAL;
	}
	cfg->cache_dir = raw->cache_dir;
	rc |= parse_size("cache_block", raw->cache_block, &cfg->cache_block);
	rc |= parse_size("block_size", raw->block_size, &cfg->block_size);
	rc |= parse_size("readahead", raw->readahead, &cfg->readahead);
	rc |= parse_decimal("prefetch_whole", raw->prefetch_whole, &whole);
	if (whole > 1) {
		fprintf(stderr, "mount.cloudh5: bad value for prefetch_whole: "
				"'%s' (a fraction of cache_size, 0..1)\n",
			raw->prefetch_whole);
		rc = -EINVAL;
	}
	rc |= parse_uint("uid", raw->uid, 10, UINT_MAX, &uid);
	rc |= parse_uint("gid", raw->gid, 10, UINT_MAX, &gid);
	rc |= parse_uint("umask", raw->umask, 8, 0777, &um);
	rc |= parse_decimal("attr_timeout", raw->attr_timeout,
			    &cfg->attr_timeout);
	cfg->negative_timeout = cfg->attr_timeout;
	rc |= parse_decimal("negative_timeout", raw->negative_timeout,
			    &cfg->negative_timeout);
	rc |= parse_size("multipart_threshold", raw->multipart_threshold,
			 &raw->mp_threshold);
	rc |= parse_size("part_size", raw->part_size, &raw->mp_part);
	if (rc)
		return -EINVAL;
	cfg->prefetch_whole = (uint64_t)(whole * (double)cfg->cache_size);
	if ((raw->part_size && raw->mp_part < (5u << 20)) ||
	    (raw->multipart_threshold && raw->mp_threshold < (5u << 20))) {
		fprintf(stderr, "mount.cloudh5: part_size and "
				"multipart_threshold must be at least 5M "
				"(S3's smallest part)\n");
		return -EINVAL;
	}
	if (raw->retries > 30) {
		fprintf(stderr, "mount.cloudh5: retries must be 1..30\n");
		return -EINVAL;
	}
	if (cfg->cache_block < 4096 || cfg->cache_block > (256u << 20) ||
	    cfg->block_size < 4096) {
		fprintf(stderr, "mount.cloudh5: cache_block must be 4K..256M "
				"and block_size at least 4K\n");
		return -EINVAL;
	}
	cfg->uid = uid;
	cfg->gid = gid;
	cfg->umask = um;
	cfg->threads = raw->threads ? raw->threads : 16;
	cfg->debug = raw->debug;
	cfg->direct_io = raw->direct_io;
	cfg->max_read = raw->max_read;
	cfg->fault = raw->fault;
	raw->fault = NULL;
	cfg->spool_dir = raw->spool_dir ? raw->spool_dir
					: strdup("/var/tmp/cloudh5-spool");
	raw->spool_dir = NULL;
	return cfg->spool_dir ? 0 : -ENOMEM;
}

static int make_spool(const char *dir)
{
	char *p = strdup(dir), *s;

	if (!p)
		return -ENOMEM;
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0700);
		*s = '/';
	}
	free(p);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "mount.cloudh5: cannot create spool_dir %s: "
				"%s\n", dir, strerror(errno));
		return -errno;
	}
	if (access(dir, W_OK) < 0) {
		fprintf(stderr, "mount.cloudh5: spool_dir %s is not "
				"writable: %s\n", dir, strerror(errno));
		return -EACCES;
	}
	return 0;
}

/* One LIST of the store's root before mounting, so that bad credentials,
 * a missing bucket or an unreachable endpoint fail the mount with a clear
 * message on the terminal instead of failing every file operation. */
static int probe_store(struct fs_ctx *ctx)
{
	struct ost_list_result res = { 0 };
	int rc = ost_list(ctx->st, "", "/", NULL, 1, &res);

	ost_list_result_release(&res);
	if (rc == 0)
		return 0;
	fprintf(stderr, "mount.cloudh5: %s: %s\n", ctx->cfg.source,
		rc == -EACCES ? "access denied: the store refused the "
				"credentials (wrong key, secret or SAS, or no "
				"permission on the bucket or container)"
		: rc == -ENOENT ? "no such bucket, container or directory"
		: rc == -EINVAL ? "the store refused the request as invalid "
				  "(its error is above; RGW says so of a "
				  "bad session token)"
		: rc == -ETIMEDOUT ? "the store did not answer in time"
		: rc == -EIO ? "the store cannot be reached or failed (see "
			       "the message above)"
			     : strerror(-rc));
	return rc;
}

struct recovery {
	struct fs_ctx *ctx;
	unsigned committed, kept;
};

static void recover_stage(void *arg, const char *path, uint64_t size,
			  const struct fs_spool_rec *rec)
{
	struct recovery *r = arg;
	int rc = fs_stage_recover(r->ctx, path, rec);

	if (rc == 0 && rec->state != FS_SPOOL_CLEAN) {
		fprintf(stderr,
			"mount.cloudh5: committed %s, kept in %s by an earlier "
			"mount\n",
			rec->key, path);
		r->committed++;
	} else if (rc == 1 || rc < 0) {
		fprintf(stderr,
			"mount.cloudh5: %s holds %llu bytes of uncommitted "
			"data for %s (%s; %s); it is kept\n",
			path, (unsigned long long)size, rec->key,
			fs_spool_state_name(rec->state),
			rec->state == FS_SPOOL_COMMITTING
				? "its commit cannot land: another version "
				  "replaced the one it began from"
				: "its writer never closed it");
		r->kept++;
	}
}

/* Deal with the stages an earlier mount left in the spool (a failed or
 * refused commit, or a daemon that was stopped): those whose commit was
 * asked for are committed now if they still can be; the rest are named on
 * stderr and kept, never removed. */
static void recover_kept_stages(struct fs_ctx *ctx)
{
	struct recovery r = { ctx, 0, 0 };

	fs_spool_scan(ctx->cfg.spool_dir, recover_stage, &r);
	if (r.kept)
		fprintf(stderr, "mount.cloudh5: `cloudh5 fsck SOURCE --spool "
				"%s` lists them\n",
			ctx->cfg.spool_dir);
}

/* Name the mount as other network file systems do: /proc/mounts, df and
 * findmnt show "SOURCE on DIR type fuse.cloudh5".  Commas in the source
 * are escaped for libfuse's option parser.  A user's own fsname= or
 * subtype= wins.  Returns 0 or -ENOMEM. */
static int add_mount_names(struct fuse_args *args, const struct raw_opts *raw)
{
	char *opt, *d;
	const char *p;
	int rc = 0;

	if (!raw->has_subtype && fuse_opt_add_arg(args, "-osubtype=cloudh5"))
		return -ENOMEM;
	if (raw->has_fsname)
		return 0;
	opt = malloc(2 * strlen(raw->source) + sizeof("-ofsname="));
	if (!opt)
		return -ENOMEM;
	memcpy(opt, "-ofsname=", 9);
	d = opt + 9;
	for (p = raw->source; *p; p++) {
		if (*p == ',' || *p == '\\')
			*d++ = '\\';
		*d++ = *p;
	}
	*d = '\0';
	if (fuse_opt_add_arg(args, opt))
		rc = -ENOMEM;
	free(opt);
	return rc;
}

/*
 * Daemon mode.  The fork comes first, before the store is opened: no
 * thread (request pool, HTTP loop, and under a sanitizer its allocator's
 * locks) exists yet, so none can be lost holding a lock the child needs.
 * The parent stays on the terminal and waits: the child writes one byte
 * to the pipe once the mount is live (the parent exits 0), or exits
 * without writing (the parent exits with the child's status).  Until then
 * the child's stderr is still the terminal, so every mount-time error is
 * printed there.
 *
 * Returns the write end of the pipe in the child (>= 0); never returns in
 * the parent; -errno if the fork could not be made.
 */
static int daemon_begin(void)
{
	int fds[2], status;
	pid_t pid;
	char c;
	ssize_t n;

	if (pipe(fds) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(fds[0]);
		close(fds[1]);
		return -e;
	}
	if (pid == 0) {
		close(fds[0]);
		if (setsid() < 0)
			fprintf(stderr, "mount.cloudh5: setsid: %s\n",
				strerror(errno));
		return fds[1];
	}
	close(fds[1]);
	do
		n = read(fds[0], &c, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		_exit(0);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
	fprintf(stderr, "mount.cloudh5: the daemon died (signal %d) before "
			"the mount was ready\n",
		WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	_exit(1);
}

/* The mount is live: detach from the terminal (stdin, stdout and stderr
 * to /dev/null, cwd to /) and let the waiting parent exit 0.  fd is what
 * daemon_begin() returned; it is closed here. */
static void daemon_ready(int fd)
{
	int null;

	ch5_log_to_syslog("mount.cloudh5");
	null = open("/dev/null", O_RDWR);

	if (chdir("/") < 0)
		ch5_warn("chdir /: %s", strerror(errno));
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	if (write(fd, "0", 1) != 1)
		ch5_warn("cannot tell the mount command we are ready: %s",
			 strerror(errno));
	close(fd);
}

/* fs_ctx.on_init: the kernel's FUSE INIT is being answered, so the mount
 * works; only now is the mount command told so (a session that fails its
 * INIT, e.g. on options the kernel refuses, fails the command too). */
static void mount_ready(struct fs_ctx *ctx)
{
	if (ctx->ready_fd >= 0) {
		daemon_ready(ctx->ready_fd);
		ctx->ready_fd = -1;
	}
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct raw_opts raw;
	struct fs_ctx ctx;
	struct fuse_loop_config *lcfg = NULL;
	char *abs_mnt = NULL;
	int rc = 1, ready_fd = -1;

	memset(&raw, 0, sizeof(raw));
	memset(&ctx, 0, sizeof(ctx));
	ctx.ready_fd = -1;
	ctx.on_init = mount_ready;
	/* Cache blocks and read buffers are 128 KiB..1 MiB and short-lived:
	 * from mmap(2) (glibc's default above 128 KiB) every one of them
	 * page-faults on first touch, which measured as a third of the
	 * daemon's time on a cold read.  Keep them on the heap, reused. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	if (fuse_opt_parse(&args, &raw, opt_table, opt_proc) < 0)
		goto out;
	if (raw.help) {
		fputs(usage, stdout);
		rc = 0;
		goto out;
	}
	if (raw.version) {
		printf("mount.cloudh5 %s (libfuse %s)\n", "0.1.0",
		       fuse_pkgversion());
		rc = 0;
		goto out;
	}
	if (!raw.source || !raw.mountpoint) {
		fputs(usage, stderr);
		goto out;
	}
	if (convert_opts(&raw, &ctx.cfg) < 0)
		goto out;
	ctx.cfg.source = raw.source;
	if (raw.debug) {
		ch5_log_set_level(LOG_DEBUG);
		raw.foreground = 1;
	}
	if (raw.verbose && ch5_log_level() < LOG_INFO)
		ch5_log_set_level(LOG_INFO);
	if (make_spool(ctx.cfg.spool_dir) < 0)
		goto out;
	/* The session first: libfuse checks the options it is left with, so
	 * an unknown one fails here, before any request to the store. */
	if (add_mount_names(&args, &raw) < 0)
		goto out;
	ctx.se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &ctx);
	if (!ctx.se) {
		/* libfuse printed which (e.g. "unknown option(s): `-o foo'") */
		fprintf(stderr, "mount.cloudh5: bad mount options; "
				"mount.cloudh5 --help or mount.cloudh5(8) "
				"lists them\n");
		goto out;
	}
	abs_mnt = realpath(raw.mountpoint, NULL);
	if (!abs_mnt) {
		fprintf(stderr, "mount.cloudh5: bad mount point %s: %s\n",
			raw.mountpoint, strerror(errno));
		goto out;
	}
	if (!raw.foreground) {
		ready_fd = daemon_begin();
		if (ready_fd < 0) {
			fprintf(stderr, "mount.cloudh5: cannot fork the daemon: "
					"%s\n", strerror(-ready_fd));
			goto out;
		}
	}
	{
		struct ost_s3_opts s3 = {
			.endpoint = raw.endpoint,
			.region = raw.region,
			.addressing = raw.addressing,
			.passwd_file = raw.passwd_file,
			.profile = raw.profile,
			.signed_payloads = raw.signed_payloads ? 1 : -1,
			.insecure = raw.insecure,
			.ca_bundle = raw.ca_bundle,
			.multipart_threshold = raw.mp_threshold,
			.part_size = raw.mp_part,
			.retries = raw.retries,
		};

		struct ost_az_opts az = {
			.account = raw.account,
			.endpoint = raw.endpoint,
			.passwd_file = raw.passwd_file,
			.sas = raw.sas,
			.insecure = raw.insecure,
			.ca_bundle = raw.ca_bundle,
			.block_threshold = raw.mp_threshold,
			.block_size = raw.mp_part,
			.retries = raw.retries,
		};

		if (ost_open_source(ctx.cfg.source, &s3, &az, ctx.cfg.fault,
				    ctx.cfg.threads, &ctx.st) < 0)
			ctx.st = NULL;
	}
	if (!ctx.st) {
		fprintf(stderr, "mount.cloudh5: cannot open the store %s\n",
			ctx.cfg.source);
		goto out;
	}
	if (probe_store(&ctx) < 0)
		goto out;
	if (fs_cache_new(ctx.st, ctx.cfg.cache_size, ctx.cfg.cache_block,
			 &ctx.cache) < 0 ||
	    fs_itable_init(&ctx) < 0) {
		fprintf(stderr, "mount.cloudh5: out of memory\n");
		goto out;
	}
	if (ctx.cfg.cache_dir) {
		int drc = fs_dcache_open(ctx.cfg.cache_dir,
					 ctx.cfg.cache_disk_size, &ctx.dcache);

		if (drc < 0) {
			fprintf(stderr, "mount.cloudh5: cache_dir %s: %s\n",
				ctx.cfg.cache_dir, strerror(-drc));
			goto out;
		}
		fs_cache_set_disk(ctx.cache, ctx.dcache);
	}
	if (fs_whole_init(&ctx) < 0)
		ch5_warn("out of memory: no whole-file prefetch");
	if (fs_listing_init(&ctx) < 0)
		ch5_warn("directory indexes are not updated by commits: "
			 "listings read headers instead");
	recover_kept_stages(&ctx);
	if (fuse_set_signal_handlers(ctx.se) < 0)
		goto out;
	if (fuse_session_mount(ctx.se, abs_mnt) < 0)
		goto out_handlers;
	/* op_init tells the mount command, through mount_ready() */
	ctx.ready_fd = ready_fd;
	ready_fd = -1;
	if (fs_pagefill_init(&ctx) < 0)
		ch5_warn("no page cache fill: reads still work, slower");
	ch5_info("mounted %s on %s", ctx.cfg.source, abs_mnt);
	lcfg = fuse_loop_cfg_create();
	if (!lcfg)
		goto out_unmount;
	fuse_loop_cfg_set_max_threads(lcfg, 32);
	fuse_loop_cfg_set_idle_threads(lcfg, 8);
	/* A stop by SIGTERM, SIGINT or SIGHUP is a clean exit: the loop
	 * returns the signal's number. So is -ECONNABORTED: the kernel
	 * (fs/fuse/dev.c, fuse_dev_do_read) answers a read of /dev/fuse
	 * with it when the connection is torn down, by an unmount or an
	 * abort, between taking a request off the queue and handing it
	 * over, where an idle reader gets -ENODEV, which libfuse already
	 * counts as the end of the session. The request it was handing
	 * over is ended by the kernel. Nothing is lost: files were
	 * committed at their flush, and a stage not yet committed stays
	 * in the spool directory for the next mount, as on any exit. */
	rc = fuse_session_loop_mt(ctx.se, lcfg);
	if (rc == -ECONNABORTED)
		ch5_info("the kernel ended the FUSE connection (unmount or "
			 "abort): exiting");
	rc = rc == 0 || rc == -ECONNABORTED || rc == SIGTERM ||
	     rc == SIGINT || rc == SIGHUP ? 0 : 1;
	if (ctx.ready_fd >= 0) {
		/* No INIT got through: the mount command fails too. */
		fprintf(stderr, "mount.cloudh5: the kernel did not complete "
				"the mount of %s\n", abs_mnt);
		rc = 1;
	}
	fuse_loop_cfg_destroy(lcfg);
	fs_pagefill_shutdown(&ctx);
out_unmount:
	fuse_session_unmount(ctx.se);
out_handlers:
	fuse_remove_signal_handlers(ctx.se);
out:
	fs_pagefill_shutdown(&ctx);
	if (ctx.se)
		fuse_session_destroy(ctx.se);
	fs_release_all(&ctx);
	fs_listing_shutdown(&ctx);
	fs_whole_free(&ctx);
	fs_cache_free(ctx.cache);
	fs_dcache_close(ctx.dcache);
	fs_pagefill_free(&ctx);
	fs_itable_release(&ctx);
	ost_free(ctx.st);
	fuse_opt_free_args(&args);
	free(ctx.cfg.spool_dir);
	free(ctx.cfg.fault);
	free(raw.cache_size);
	free(raw.cache_dir);
	free(raw.cache_disk_size);
	free(raw.cache_block);
	free(raw.block_size);
	free(raw.readahead);
	free(raw.prefetch_whole);
	free(raw.uid);
	free(raw.gid);
	free(raw.umask);
	free(raw.attr_timeout);
	free(raw.negative_timeout);
	free(raw.spool_dir);
	free(raw.fault);
	free(raw.endpoint);
	free(raw.region);
	free(raw.addressing);
	free(raw.passwd_file);
	free(raw.profile);
	free(raw.ca_bundle);
	free(raw.multipart_threshold);
	free(raw.part_size);
	free(raw.account);
	if (raw.sas) {
		explicit_bzero(raw.sas, strlen(raw.sas));
		free(raw.sas);
	}
	free(raw.source);
	free(raw.mountpoint);
	free(abs_mnt);
	return rc;
}
