/*
 * spool.h - the files a spool directory holds.
 *
 * A file being written is staged as "<name>.stage" in the spool directory:
 * a sparse file of the file's size that holds the bytes written since the
 * stage began; the other bytes are those of the committed version the stage
 * began from (its base).  Beside it, "<name>.stage.key" is the stage's
 * record: the file's key, the ETag the commit must replace, the base's ETag,
 * the byte ranges written, and how far the file got.  The daemon writes the
 * record when the stage is created, when it is first written, when a commit
 * starts and ends, and when it keeps a stage; the daemon at mount (to
 * recommit) and `cloudh5 fsck --spool` (to list) read it back.
 *
 * Record format (text, one field per line, the key last so that it may hold
 * any byte):
 *   cloudh5-stage 1
 *   state clean|writing|committing
 *   expect <ETag>|-        the commit replaces only this version (- = none)
 *   base <ETag>|-          where unwritten bytes come from (- = the stage
 *                          holds every byte)
 *   written <n>            then n lines "<start> <end>" (bytes, [start, end))
 *   manifest <hex>         (optional) the first bytes of the manifest the
 *                          commit is writing: if the store holds them, the
 *                          commit landed (a crash right after it)
 *   key <key to the end of the file>
 * A record that is only a key (written by older versions) reads as state
 * writing, ranges unknown.
 */
#ifndef CH5_FS_SPOOL_H
#define CH5_FS_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ost.h"

#define FS_STAGE_SUFFIX ".stage"
#define FS_STAGE_KEY_SUFFIX ".key"
#define FS_SPOOL_MANIFEST_HEAD 64 /* bytes of a manifest a record keeps */

enum fs_spool_state {
	FS_SPOOL_CLEAN,	    /* the store holds every byte of the stage */
	FS_SPOOL_WRITING,   /* written since; no commit was asked for yet */
	FS_SPOOL_COMMITTING /* a commit was asked for and has not landed */
};

/* A stage's record. */
struct fs_spool_rec {
	enum fs_spool_state state;
	char key[OST_KEY_MAX + 1]; /* "?" when unknown */
	char expect[OST_ETAG_MAX]; /* "" = create only */
	char base[OST_ETAG_MAX];   /* "" = no base: the stage is whole */
	bool ranges_known;	   /* written[] is valid */
	uint64_t *written;	   /* sorted [start, end) pairs; borrowed by
				      fs_spool_write(), malloc'd by
				      fs_spool_read() (fs_spool_rec_release) */
	size_t n_written;	   /* pairs */
	char manifest[2 * FS_SPOOL_MANIFEST_HEAD + 1]; /* hex, "" = none */
};

/* Called once per stage found: its path, size in bytes, and its record
 * (all borrowed for the call). */
typedef void (*fs_spool_fn)(void *arg, const char *path, uint64_t size,
			    const struct fs_spool_rec *rec);

/* Call fn for every stage in `dir`.  Returns the number found, or a
 * negative errno if the directory cannot be read.  Thread-safe. */
int fs_spool_scan(const char *dir, fs_spool_fn fn, void *arg);

/* Write the record of the stage at `stage_path` (atomically: a temporary
 * file renamed over the old record).  0 or -errno (the old record is then
 * intact).  Thread-safe for distinct stages. */
int fs_spool_write(const char *stage_path, const struct fs_spool_rec *rec);

/* Read the record of the stage at `stage_path` into *rec (which the caller
 * releases with fs_spool_rec_release()).  A missing record gives key "?",
 * state writing, ranges unknown.  0, -ENOMEM or -EBADMSG (corrupt). */
int fs_spool_read(const char *stage_path, struct fs_spool_rec *rec);

void fs_spool_rec_release(struct fs_spool_rec *rec);

/* Remove the stage at `stage_path` and its record.  Errors are ignored. */
void fs_spool_remove(const char *stage_path);

/* "clean", "writing" or "committing". */
const char *fs_spool_state_name(enum fs_spool_state s);

#endif
