/*
 * conf.h - pieces shared by the backends' settings resolvers (s3conf.c,
 * azconf.c): environment lookups, password files, CA bundles.
 *
 * Not for use outside objstore/.  Not thread-safe (getenv); called once at
 * mount time.
 */
#ifndef CH5_CONF_H
#define CH5_CONF_H

#include <stddef.h>

/* The value of environment variable `name`, or NULL when unset or
 * empty. */
const char *conf_env(const char *name);

/* Remove leading blanks and trailing blanks and line ends, in place. */
void conf_trim(char *s);

/* Read an s3fs-style password file: "USER:SECRET" or "SCOPE:USER:SECRET"
 * lines ('#' comments); a line naming `scope` wins over one without.
 * `what` names the backend in messages ("s3"), `form` the line's form
 * ("ACCESS:SECRET").  The file must not be readable or writable by group
 * or others.  user and secret (usz/ssz bytes) receive the two fields.
 * Returns 0, -EACCES (mode), -EINVAL (no usable line) or -errno of
 * stat/open, after logging why (never the secret). */
int conf_passwd(const char *path, const char *what, const char *form,
		const char *scope, char *user, size_t usz, char *secret,
		size_t ssz);

/* The CA bundle `path` (named by `from` in messages: "-o ca_bundle") as
 * an absolute path in out (size bytes): it must be a readable regular
 * file.  0, -EINVAL or -errno, after logging why. */
int conf_ca_bundle(const char *what, const char *path, const char *from,
		   char *out, size_t size);

#endif
