/*
 * spool.h - the files a spool directory holds.
 *
 * A file being written is staged as "<name>.stage" in the spool directory.
 * A stage that holds bytes the store lacks (its commit failed or was
 * refused, or its mount ended) is kept, with "<name>.stage.key" beside it
 * holding the key of the file it belongs to.  The daemon writes these; the
 * daemon at mount and `cloudh5 fsck --spool` read them back.
 */
#ifndef CH5_FS_SPOOL_H
#define CH5_FS_SPOOL_H

#include <stdint.h>

#define FS_STAGE_SUFFIX ".stage"
#define FS_STAGE_KEY_SUFFIX ".key"

/* Called once per stage found: its path, size in bytes, and the key from
 * its .key file ("?" when there is none).  All borrowed for the call. */
typedef void (*fs_spool_fn)(void *arg, const char *path, uint64_t size,
			    const char *key);

/* Call fn for every stage in `dir`.  Returns the number found, or a
 * negative errno if the directory cannot be read.  Thread-safe. */
int fs_spool_scan(const char *dir, fs_spool_fn fn, void *arg);

/* Write `key` into the .key file of the stage at `stage_path`.  0 or
 * -errno. */
int fs_spool_write_key(const char *stage_path, const char *key);

#endif
