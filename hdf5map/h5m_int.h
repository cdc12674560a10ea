/*
 * h5m_int.h - internals of hdf5map shared by its .c files.
 *
 * The in-memory manifest is built to hold 1,000,000 extents in about 40 MB:
 * one 32-byte struct h5m_ext per extent plus the key suffixes ("12.7",
 * "b3", "1048576") NUL-terminated in one arena.  Key prefixes (everything up
 * to and including the last '/', e.g. ".cloudh5/c/run/x.h5/g1-ab/temp/") are
 * stored once each in a prefix table in the same arena.
 */
#ifndef CH5_H5M_INT_H
#define CH5_H5M_INT_H

#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>

#include "h5m.h"

#define H5M_PREFIX_MAX 16384 /* longest key prefix, bytes */
#define H5M_SUFFIX_MAX 4096  /* longest key suffix, bytes */
_Static_assert(H5M_PREFIX_MAX + H5M_SUFFIX_MAX <= H5M_KEY_MAX,
	       "H5M_KEY_MAX bounds every key");

/* One object of the file: bytes [off, off+len) live in object
 * prefix[prefix] + arena[suffix]. */
struct h5m_ext {
	uint64_t off;
	uint64_t len;
	uint64_t skel;	 /* skeleton bytes that precede `off` in the file */
	uint32_t prefix; /* index into h5m_manifest.pfx */
	uint32_t suffix; /* offset of the NUL-terminated suffix in arena */
};
_Static_assert(sizeof(struct h5m_ext) == 32, "h5m_ext is 32 bytes");

struct h5m_manifest {
	uint64_t generation;
	uint64_t file_size;
	struct h5m_ext *ext; /* sorted by off, non-overlapping */
	size_t n_ext;
	size_t cap_ext;
	uint32_t *pfx; /* arena offsets of the NUL-terminated prefixes */
	size_t n_pfx;
	size_t cap_pfx;
	char *arena;
	size_t arena_len;
	size_t arena_cap;
	uint8_t *skel; /* the skeleton: every byte in no extent, in order */
	uint64_t skel_len;
	size_t skel_cap;
	/* Page fill (format 2): object bytes that share a page of
	 * fill_page bytes with skeleton bytes, kept here too. */
	uint32_t fill_page;   /* 0: no fill */
	struct h5m_fill *fr;  /* sorted by off, disjoint, in extents only */
	size_t n_fill;
	size_t cap_fill;
	uint8_t *fill;	      /* the fill bytes, in file order */
	uint64_t fill_len;
	size_t fill_cap;
	/* Edge section (format 3): the fill of pages far from any metadata,
	 * stored after the head and not yet decoded; edge_len 0: none
	 * pending (absent, or already merged into the fill above). */
	uint64_t edge_off;   /* where it starts in the object, bytes */
	uint64_t edge_len;   /* stored bytes */
	uint64_t edge_raw;   /* bytes once inflated */
	uint32_t edge_flags; /* H5M_FLAG_LZ4 or 0 */
	uint32_t edge_crc;   /* CRC-32 of the stored bytes */
	/* ext, pfx, arena and skel belong to another manifest (made by
	 * h5m_manifest_with_edges()): freeing this one leaves them */
	bool borrowed;
};

/* One run of fill: file bytes [off, off+len) are fill[at, at+len). */
struct h5m_fill {
	uint64_t off;
	uint64_t len;
	uint64_t at;
};

/* Builder used by plan (and the tests).  All return 0 or -ENOMEM/-EINVAL;
 * after an error the manifest is still valid and must be freed. */
struct h5m_manifest *h5m_manifest_new(uint64_t generation,
				      uint64_t file_size);
/* Intern a key prefix of `len` bytes; *id receives its index. */
int h5m_manifest_add_prefix(struct h5m_manifest *m, const char *s,
			    size_t len, uint32_t *id);
/* Append an extent; it must start at or after the end of the last one. The
 * skeleton bytes in between must already have been appended. */
int h5m_manifest_add_extent(struct h5m_manifest *m, uint64_t off,
			    uint64_t len, uint32_t prefix,
			    const char *suffix, size_t suffix_len);
/* Reserve `len` more skeleton bytes; *dst receives where to write them. */
int h5m_manifest_add_skel(struct h5m_manifest *m, uint64_t len,
			  uint8_t **dst);
/* Make room for `need` elements of `elem` bytes in the array *p of
 * capacity *cap (elements), doubling.  0 or -ENOMEM (then *p is kept). */
int h5m_grow(void **p, size_t *cap, size_t need, size_t elem);

/* Append `len` fill bytes at file offset `off` (at or after the end of the
 * last fill run; extends it when adjacent); *dst receives where to write
 * them.  Where they may lie is checked by h5m_manifest_check(). */
int h5m_manifest_add_fill(struct h5m_manifest *m, uint64_t off, uint64_t len,
			  uint8_t **dst);

/* Give `n` (same extents and file size) a copy of m's fill.  0 or -ENOMEM. */
int h5m_manifest_copy_fill(struct h5m_manifest *n,
			   const struct h5m_manifest *m);

/* Compute m's fill for pages of `page` bytes, reading the object bytes
 * through `read`/`ctx`, at most `budget` bytes of it (runs past the budget
 * are left out: only speed depends on them).  m's extents and skeleton must
 * be complete.  0, -ENOMEM, or the callback's error. */
int h5m_fill_plan(struct h5m_manifest *m, uint32_t page, uint64_t budget,
		  h5m_read_fn read, void *ctx);

/* Check that extents and skeleton account for exactly file_size bytes and
 * that the fill lies inside extents, sorted and disjoint. */
int h5m_manifest_check(const struct h5m_manifest *m);

/* The library-wide libhdf5 lock (libhdf5 serial is not thread-safe). Every
 * libhdf5 call of the process must hold it. */
void h5m_hdf5_lock(void);
void h5m_hdf5_unlock(void);

/* Raw-data read capture: while `on`, the driver does not read raw data
 * (H5FD_MEM_DRAW) at all; it records the absolute address and size of each
 * such read and leaves the buffer untouched.  split uses it to learn where
 * H5Dread_chunk() would read a chunk from, at O(log n) per chunk. */
struct h5m_vfd_capture {
	int on;
	unsigned n; /* raw reads seen since `on` was set */
	uint64_t addr;
	uint64_t size;
};

/* The read-only virtual file driver over an h5m_read_fn. */
struct h5m_vfd_info {
	h5m_read_fn read;
	void *ctx;
	uint64_t size; /* EOF */
	int *err;      /* receives the first callback error; may be NULL */
	struct h5m_vfd_capture *cap; /* may be NULL */
};

/* Driver id (registered once, with HDF5 error printing turned off), or a
 * negative hid_t.  Call with the lock held. */
hid_t h5m_vfd_id(void);
/* Set the driver with `info` on `fapl`; 0 or -EIO.  Lock held. */
int h5m_vfd_set_fapl(hid_t fapl, const struct h5m_vfd_info *info);

#endif
