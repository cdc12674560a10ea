/*
 * conf.c - pieces shared by the settings resolvers (see conf.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"

const char *conf_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

void conf_trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
		     s[n - 1] == '\n'))
		s[--n] = '\0';
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	memmove(s, s + i, n - i + 1);
}

int conf_passwd(const char *path, const char *what, const char *form,
		const char *scope, char *user, size_t usz, char *secret,
		size_t ssz)
{
	struct stat sb;
	char line[1024];
	bool found = false;
	FILE *f;

	if (stat(path, &sb) < 0) {
		ch5_err("objstore: %s: passwd_file %s: %s", what, path,
			strerror(errno));
		return -errno;
	}
	if (sb.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH)) {
		ch5_err("objstore: %s: passwd_file %s is readable or writable "
			"by group or others; it holds a secret: chmod 600 it",
			what, path);
		return -EACCES;
	}
	f = fopen(path, "r");
	if (!f) {
		ch5_err("objstore: %s: passwd_file %s: %s", what, path,
			strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *a, *b, *c;

		conf_trim(line);
		if (!line[0] || line[0] == '#')
			continue;
		a = line;
		b = strchr(a, ':');
		if (!b)
			continue;
		*b++ = '\0';
		c = strchr(b, ':');
		if (c) { /* scope:user:secret */
			*c++ = '\0';
			if (strcmp(a, scope))
				continue;
			snprintf(user, usz, "%s", b);
			snprintf(secret, ssz, "%s", c);
			found = true;
			break;
		}
		if (!found) {
			snprintf(user, usz, "%s", a);
			snprintf(secret, ssz, "%s", b);
			found = true;
		}
	}
	fclose(f);
	memset(line, 0, sizeof(line));
	if (!found) {
		ch5_err("objstore: %s: passwd_file %s has no %s line for %s",
			what, path, form, scope);
		return -EINVAL;
	}
	return 0;
}

int conf_ca_bundle(const char *what, const char *path, const char *from,
		   char *out, size_t size)
{
	char abs[PATH_MAX];
	struct stat sb;
	int rc;

	if (!realpath(path, abs) || stat(abs, &sb) < 0) {
		rc = -errno;
		goto bad;
	}
	if (!S_ISREG(sb.st_mode)) {
		ch5_err("objstore: %s: ca_bundle %s (%s) is not a file of PEM "
			"CA certificates",
			what, path, from);
		return -EINVAL;
	}
	if (access(abs, R_OK) < 0) {
		rc = -errno;
		goto bad;
	}
	if (strlen(abs) >= size) {
		ch5_err("objstore: %s: ca_bundle %s (%s): the path is too long",
			what, path, from);
		return -EINVAL;
	}
	memcpy(out, abs, strlen(abs) + 1);
	return 0;
bad:
	ch5_err("objstore: %s: ca_bundle %s (%s): %s", what, path, from,
		strerror(-rc));
	return rc;
}
