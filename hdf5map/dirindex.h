/*
 * dirindex.h - the directory index: what a listing needs to know of each
 * file in one directory (its size and mtime as the manifest header tells
 * them) without reading every manifest's header.
 *
 * A LIST tells each object's key, ETag and stored size, but a file's size is
 * in its manifest's header: without the index, `ls -l` of 1,000 files costs
 * 1,000 GETs.  The index maps each name to the ETag its header was read
 * from and what the header said; an entry counts only while the LIST still
 * shows that ETag for that name, so a stale index costs GETs, never a wrong
 * size.  It is a cache kept in the store, rewritten by the mount that had
 * to read headers a listing could not take from it (fs/ops.c).
 *
 * Stored at h5m_dirindex_key(directory key).  Format, little-endian:
 *
 *   0   8  magic "\211CH5DIX\n"
 *   8   u32 format version (H5M_DIRINDEX_VERSION)
 *   12  u32 number of entries
 *   16  entries, names strictly increasing (bytewise):
 *         u16 name length (1..H5M_DIRINDEX_NAME_MAX), u8 ETag length
 *         (0..H5M_DIRINDEX_ETAG_MAX), u8 flags (bit 0: a manifest; others
 *         0), u64 file size (bytes), i64 mtime (ns since the epoch), the
 *         name, the ETag (no NUL)
 *   end u32 CRC-32 (zlib) of every byte before it
 *
 * Thread-safety: each function touches only its arguments; a decoded index
 * may be read by many threads at once.
 */
#ifndef CH5_DIRINDEX_H
#define CH5_DIRINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define H5M_DIRINDEX_MAGIC "\x89" "CH5DIX\n"
#define H5M_DIRINDEX_VERSION 1
#define H5M_DIRINDEX_PREFIX ".cloudh5/i/"
#define H5M_DIRINDEX_NAME_MAX 1024 /* bytes; a longer name is left out */
#define H5M_DIRINDEX_ETAG_MAX 79   /* bytes */
#define H5M_DIRINDEX_MAX (64u << 20) /* largest index read, bytes */

/* One file of a directory. */
struct h5m_dirent {
	const char *name;   /* name within the directory; borrowed from the
			       caller (encode) or from the index (decode) */
	char etag[H5M_DIRINDEX_ETAG_MAX + 1]; /* the object's ETag when its
						 header was read */
	uint64_t size;	    /* file bytes */
	int64_t mtime_ns;   /* ns since the epoch */
	bool manifest;	    /* a manifest (else a plain object) */
};

/* A decoded index: `n` entries sorted by name. */
struct h5m_dirindex {
	struct h5m_dirent *ents;
	size_t n;
	char *names; /* the names' bytes, NUL-terminated (owned) */
};

/* The key of the index of directory `dirkey` ("" for the root, else the
 * directory's key without a trailing '/'): H5M_DIRINDEX_PREFIX "D" and the
 * key with '%' and '/' written as %25 and %2F, one path component, so it
 * never is the prefix of another key.  Returns a malloc'd string (caller
 * frees), or NULL when out of memory or the component would exceed 255
 * bytes (a file-system name; such a directory has no index). */
char *h5m_dirindex_key(const char *dirkey);

/* Encode entries `ents` [0, n) into a malloc'd buffer (*out, caller frees)
 * of *len bytes.  Entries need not be sorted (they are encoded sorted;
 * `ents` is reordered); a name longer than H5M_DIRINDEX_NAME_MAX, empty, or
 * seen twice is left out (the first of a duplicate stays).
 * Returns 0, -ENOMEM, or -EFBIG if the index would exceed
 * H5M_DIRINDEX_MAX. */
int h5m_dirindex_encode(struct h5m_dirent *ents, size_t n, void **out,
			size_t *len);

/* Decode `len` bytes at `buf` into *ix (zeroed first; release with
 * h5m_dirindex_free).  Returns 0; -EBADMSG for a wrong magic, a bad
 * checksum, truncation, unsorted names or any field out of range;
 * -EPROTONOSUPPORT for a newer format version; -ENOMEM. */
int h5m_dirindex_decode(const void *buf, size_t len, struct h5m_dirindex *ix);

/* The entry for `name`, or NULL (binary search). */
const struct h5m_dirent *h5m_dirindex_find(const struct h5m_dirindex *ix,
					   const char *name);

/* Free what *ix owns and zero it.  Safe on a zeroed index. */
void h5m_dirindex_free(struct h5m_dirindex *ix);

#endif
