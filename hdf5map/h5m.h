/*
 * h5m.h - hdf5map: the map between an HDF5 file's bytes and objects.
 *
 *   split       HDF5 bytes (through a read callback) -> the byte extents of
 *               every stored chunk and every contiguous dataset, found by
 *               libhdf5 itself (H5Ovisit, H5Dget_chunk_info, H5Dget_offset).
 *   plan        extents + a file key -> a manifest: the sorted table of
 *               objects (one per chunk, contiguous data cut into blocks, big
 *               runs of other bytes cut into raw blocks) and the skeleton,
 *               i.e. every byte not in an object, verbatim.
 *   manifest    encode/decode: versioned, checksummed, lz4 where it helps.
 *   page fill   the object bytes that share a page (H5M_FILL_PAGE bytes,
 *               aligned) with skeleton bytes, kept in the manifest as well,
 *               so every page that holds metadata can be served whole from
 *               memory: a reader that reads whole pages (the kernel page
 *               cache) reads metadata without fetching a chunk.
 *   synthesize  file offset range -> pieces (skeleton bytes or a range of
 *               one object), so the file is rebuilt byte for byte.
 *
 * hdf5map does no I/O of its own: it reads through the caller's callback and
 * returns descriptions.
 *
 * Object keys (documented in man/cloudh5.7), below the store's root:
 *   H5M_DATA_PREFIX <file key> "/" <tag> "/" <dataset path> "/" <c0>.<c1>...
 *        one chunk; ci = chunk index along dimension i (offset / chunk dim)
 *   H5M_DATA_PREFIX <file key> "/" <tag> "/" <dataset path> "/b" <n>
 *        block n of a contiguous dataset
 *   H5M_DATA_PREFIX <file key> "/" <tag> "/@raw/" <file offset, decimal>
 *        a run of bytes that belongs to no dataset (or a whole non-HDF5 file
 *        whose first bytes look like a manifest)
 * where <tag> names the commit ("g<generation>-<hex>") and dataset path
 * components are escaped: bytes < 0x21, 0x7f, '%' and a leading '@' become
 * %XX.  The manifest itself is stored at <file key>.
 *
 * Thread-safety: h5m_split() serializes its libhdf5 calls on a library-wide
 * lock (libhdf5 is not thread-safe); every other function touches only its
 * arguments, and a decoded manifest may be read by many threads at once.
 *
 * Errors are 0 or a negative errno; libhdf5 errors become -EIO (or -EINVAL
 * for "not an HDF5 file") plus a debug log line.
 */
#ifndef CH5_H5M_H
#define CH5_H5M_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define H5M_DATA_PREFIX ".cloudh5/c/"
#define H5M_MAGIC "\x89" "CH5MAN\n" /* 8 bytes, first bytes of a manifest */
#define H5M_MAGIC_LEN 8
#define H5M_HEADER_SIZE 64 /* fixed header; enough to read the file size */
#define H5M_FORMAT_VERSION 3 /* newest read: 2 adds the page fill, 3 the
				edge section; 1 and 2 are still read, and 2
				is written when there is no edge section */
#define H5M_FILL_PAGE 4096   /* page size the fill is planned for */
#define H5M_NO_FILL UINT32_MAX
#define H5M_KEY_MAX 20480 /* longest object key (bytes, NUL excluded) */

/* Read `len` bytes at file offset `off` into `buf`.  Return 0, or a negative
 * errno (a read past the end of the file is -EIO). */
typedef int (*h5m_read_fn)(void *ctx, uint64_t off, void *buf, size_t len);

/* What split found. */
enum h5m_span_kind {
	H5M_SPAN_CHUNK,	 /* one stored chunk (after filters) */
	H5M_SPAN_CONTIG, /* the raw data of a contiguous dataset */
};

struct h5m_span {
	uint64_t off; /* absolute byte offset in the file (userblock
			 included) */
	uint64_t len; /* bytes; never 0 */
	uint32_t dataset;   /* index into h5m_split.datasets */
	uint32_t kind;	    /* enum h5m_span_kind */
	uint32_t rank;	    /* chunks: number of coordinates */
	uint64_t coord_idx; /* chunks: first of `rank` chunk indices in
			       h5m_split.coords */
};

struct h5m_split {
	char **datasets; /* HDF5 paths ("/grp/temp"), one per dataset with
			    raw data */
	size_t n_datasets;
	struct h5m_span *spans; /* sorted by off, non-overlapping, inside the
				   file */
	size_t n_spans;
	uint64_t *coords;
	size_t n_coords;
};

/* Split the HDF5 file of `file_size` bytes readable through `read`/`ctx`.
 * Opens it read-only with libhdf5 through an in-process virtual file driver
 * that calls `read`, so no temporary copy is made.  Spans that overlap,
 * leave the file, or are empty are dropped (their bytes stay in the
 * skeleton), so any answer still rebuilds the file exactly.  Returns 0 and a
 * heap result (free with h5m_split_free()), -EINVAL if libhdf5 cannot open
 * it as HDF5 (not HDF5, truncated...), the callback's error, or -ENOMEM. */
int h5m_split(h5m_read_fn read, void *ctx, uint64_t file_size,
	      struct h5m_split **out);

void h5m_split_free(struct h5m_split *sp);

/* How plan names and cuts objects. */
struct h5m_layout {
	const char *file_key; /* the file's key, e.g. "run42/output.h5" */
	const char *tag;      /* commit tag, e.g. "g3-9f2c01aa" */
	uint64_t generation;  /* stored in the manifest */
	uint64_t block_size;  /* contiguous data and raw runs are cut into
				 objects of at most this many bytes (0 =
				 8 MiB) */
	uint64_t raw_min;     /* a run of non-dataset bytes at least this
				 long becomes raw objects instead of
				 skeleton (0 = 1 MiB) */
	uint32_t fill_page;   /* plan the page fill for pages of this many
				 bytes (0 = H5M_FILL_PAGE; H5M_NO_FILL:
				 none) */
};

struct h5m_manifest;

/* Build the manifest of a file of `file_size` bytes.  `sp` is the split of
 * an HDF5 file, or NULL for a file stored as raw objects only (a non-HDF5
 * file that must not be stored as one plain object because its first bytes
 * are H5M_MAGIC).  Skeleton bytes are read through `read`/`ctx`.  Returns 0
 * and a heap manifest (h5m_manifest_free()), or -errno. */
int h5m_plan(const struct h5m_split *sp, uint64_t file_size,
	     const struct h5m_layout *lay, h5m_read_fn read, void *ctx,
	     struct h5m_manifest **out);

void h5m_manifest_free(struct h5m_manifest *m);

/* Serialize.  *buf is malloc'd (caller frees), *len its size.  Layout:
 * a 64-byte little-endian header (magic, format version, flags, generation,
 * file size, counts, body sizes, CRC-32 of body and of header) then the body
 * (extent table with front-coded keys, the skeleton, the page fill), lz4
 * (frame) only when that makes it smaller.  Header and body are the head.
 *
 * Format 3: when the page fill of pages that neither hold metadata nor
 * touch a page that does (where two chunks meet, far from metadata) comes
 * to H5M_EDGE_SPLIT_MIN bytes or more, it is left out of the body and
 * follows the head as the edge section (its own lz4 frame, or raw), which
 * the body's last fields describe (sizes, flags, CRC-32).  A reader of
 * metadata needs the head only; h5m_manifest_with_edges() adds the edge
 * section later.  Otherwise format 2, which has no edge section. */
#define H5M_EDGE_SPLIT_MIN (64u << 10) /* bytes of edge fill */
int h5m_manifest_encode(const struct h5m_manifest *m, void **buf,
			size_t *len);

/* Parse and verify.  `buf` (borrowed) holds the whole object, or only its
 * head (H5M_HEADER_SIZE + the body size of the header, see
 * h5m_header_peek()'s manifest_size): then an edge section that follows
 * it is left pending (h5m_edges_pending()) and the fill lacks its pages.
 * Returns -EBADMSG for anything corrupt (bad magic, checksum, counts,
 * truncation, a length that is neither), -EPROTONOSUPPORT for a newer
 * format version, -ENOMEM. */
int h5m_manifest_decode(const void *buf, size_t len,
			struct h5m_manifest **out);

/* Is m's edge section still to be read (decoded from the head only)?  If
 * so, *off and *len (bytes) tell where it lies in the manifest object.
 * Thread-safe on a manifest nobody modifies. */
bool h5m_edges_pending(const struct h5m_manifest *m, uint64_t *off,
		       uint64_t *len);

/* A manifest like m with its pending edge section (the `len` bytes at
 * h5m_edges_pending()'s *off, borrowed) merged into the page fill.  *out
 * shares m's extent table and skeleton: free it (h5m_manifest_free())
 * before m, and do not modify either.  m is not changed, so readers may go
 * on using it meanwhile.  Returns 0; -EINVAL if nothing is pending;
 * -EBADMSG if the bytes are not that section (size, CRC, content);
 * -ENOMEM. */
int h5m_manifest_with_edges(const struct h5m_manifest *m, const void *buf,
			    size_t len, struct h5m_manifest **out);

/* True if the first bytes of an object (at least H5M_MAGIC_LEN of them) are
 * a manifest's magic. */
int h5m_is_manifest(const void *buf, size_t len);

/* Header fields without decoding the body; `buf` holds at least
 * H5M_HEADER_SIZE bytes.  Returns -EBADMSG if the header is corrupt. */
struct h5m_header {
	uint32_t version;
	uint64_t generation;
	uint64_t file_size;
	uint64_t n_extents;
	uint64_t manifest_size; /* bytes of the head (header included): the
				   whole object up to format 2; in format 3
				   an edge section may follow */
};
int h5m_header_peek(const void *buf, size_t len, struct h5m_header *out);

uint64_t h5m_file_size(const struct h5m_manifest *m);
uint64_t h5m_generation(const struct h5m_manifest *m);
uint64_t h5m_skeleton_size(const struct h5m_manifest *m);
uint64_t h5m_fill_size(const struct h5m_manifest *m); /* page fill bytes */
size_t h5m_extent_count(const struct h5m_manifest *m);

/* Extent i (0 <= i < count): file offset and length in bytes; the object is
 * exactly `len` bytes long. */
void h5m_extent(const struct h5m_manifest *m, size_t i, uint64_t *off,
		uint64_t *len);

/* Write extent i's object key into buf (NUL-terminated).  Returns the key
 * length, or -ENAMETOOLONG if it does not fit in `size`. */
int h5m_extent_key(const struct h5m_manifest *m, size_t i, char *buf,
		   size_t size);

/* Index of the first extent whose end is > off (count if none). */
size_t h5m_extent_find(const struct h5m_manifest *m, uint64_t off);

/* Where the data of the dataset that extent i belongs to stops being read
 * in file order: the end offset (bytes) of the last extent of the run of
 * extents i, i+1, ... that name the same dataset (skeleton bytes between
 * them, such as B-tree nodes, do not end the run; another dataset's extent
 * does).  Extents of one dataset whose keys carry different commit tags
 * (an incremental commit kept the older objects) count as one dataset; the
 * runs of non-dataset bytes (@raw) count as one.  Scans no further than the
 * extent that reaches `limit` (a file offset), so the cost is bounded by
 * the extents before `limit`; returns at most the end of that extent.
 * i must be < h5m_extent_count(m).  Thread-safe on a decoded manifest. */
uint64_t h5m_dataset_run_end(const struct h5m_manifest *m, size_t i,
			     uint64_t limit);

/* One piece of a byte range. */
struct h5m_piece {
	uint64_t file_off;   /* where the piece starts in the file */
	uint64_t len;	     /* bytes */
	const uint8_t *skel; /* non-NULL: the bytes, borrowed from the
				manifest (skeleton, or page fill of an
				object); NULL: from an object */
	size_t extent;	     /* object pieces and fill pieces: extent
				index */
	uint64_t obj_off;    /* object pieces: offset inside the object */
};

/* Synthesize: describe [off, off+len) clipped to the file size as at most
 * `max` pieces in file order (bytes the manifest holds are memory pieces,
 * whether skeleton or page fill).  Returns the number written; if the range
 * needs more, the caller continues at the end of the last piece. */
size_t h5m_map(const struct h5m_manifest *m, uint64_t off, uint64_t len,
	       struct h5m_piece *pieces, size_t max);

/* A copy of `m` whose object keys under the data prefix of file key
 * `from` (H5M_DATA_PREFIX from "/") are under that of `to` instead; other
 * keys stay.  For rename: the caller copies each object to its new key.
 * Returns 0 and a heap manifest, -ENAMETOOLONG, or -ENOMEM. */
int h5m_manifest_rekey(const struct h5m_manifest *m, const char *from,
		       const char *to, struct h5m_manifest **out);

/* Incremental commit: a copy of `m` (just planned, keys under a new
 * commit tag) in which every extent that `old` has at the same offset with
 * the same length, and whose bytes clean(ctx, off, len) says were not
 * written since `old` was committed, names old's object instead: its bytes
 * are the same, so it is not uploaded again.  (*reused)[i] is 1 for those
 * extents (malloc'd, m's extent count; caller frees).  `old` may be NULL
 * (nothing reused).  Returns 0, or -ENOMEM (nothing allocated then). */
int h5m_manifest_reuse(const struct h5m_manifest *m,
		       const struct h5m_manifest *old,
		       int (*clean)(void *ctx, uint64_t off, uint64_t len),
		       void *ctx, struct h5m_manifest **out, uint8_t **reused);

/* Keys that `old` references and `new` does not (what a commit of `new`
 * supersedes).  *keys is a malloc'd array of malloc'd strings (free with
 * h5m_keys_free()).  Either manifest may be NULL (no keys). */
int h5m_superseded(const struct h5m_manifest *old,
		   const struct h5m_manifest *new, char ***keys, size_t *n);

void h5m_keys_free(char **keys, size_t n);

#endif
