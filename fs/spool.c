/*
 * spool.c - finding kept stages and the keys written beside them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"
#include "ost.h"
#include "log.h"

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
		char path[PATH_MAX], kpath[PATH_MAX + 8];
		char key[OST_KEY_MAX + 1] = "?";
		struct stat sb;
		FILE *kf;

		if (nl < sl || strcmp(de->d_name + nl - sl, FS_STAGE_SUFFIX))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		snprintf(kpath, sizeof(kpath), "%s" FS_STAGE_KEY_SUFFIX, path);
		if (stat(path, &sb) < 0)
			continue;
		kf = fopen(kpath, "r");
		if (kf) {
			size_t kn = fread(key, 1, sizeof(key) - 1, kf);

			key[kn] = '\0';
			fclose(kf);
		}
		fn(arg, path, sb.st_size, key);
		n++;
	}
	closedir(d);
	return n;
}

int fs_spool_write_key(const char *stage_path, const char *key)
{
	char kpath[PATH_MAX + 8];
	int fd, rc = 0;

	snprintf(kpath, sizeof(kpath), "%s" FS_STAGE_KEY_SUFFIX, stage_path);
	fd = open(kpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, key, strlen(key)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}
