/*
 * fs_int.h - internals of the FUSE layer shared by the fs/ sources.
 *
 * The mount context (struct fs_ctx) is reached from each FUSE request through
 * fuse_req_userdata().  Inodes are named by their store key (the path below
 * the mount root, no leading '/'; "" is the root).  An inode's content comes
 * from one of:
 *   - its stage: a sparse spool file holding the bytes written to a file
 *     being written (created, or opened for writing) over its base version,
 *     committed at flush/fsync/release;
 *   - its committed version in the store: a manifest (HDF5 files, read
 *     through hdf5map's synthesize) or a plain object.
 */
#ifndef CH5_FS_INT_H
#define CH5_FS_INT_H

#define FUSE_USE_VERSION 34

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ost.h"
#include "h5m.h"
#include "cache.h"

struct fs_ctx;
struct fs_pagefill;
struct fs_inode;
struct dir_handle;

/* Mount options (parsed by main.c with one fuse_opt table). */
struct fs_config {
	char *source;	     /* file:///dir, mem:// */
	char *spool_dir;     /* where stages live */
	char *fault;	     /* fault-injection spec, or NULL */
	uint64_t cache_size; /* block cache budget, bytes */
	const char *cache_dir; /* disk tier directory, or NULL (borrowed) */
	uint64_t cache_disk_size; /* its budget, bytes */
	uint64_t cache_block;  /* block cache unit, bytes */
	uint64_t block_size;   /* contiguous/raw object size, bytes */
	uint64_t readahead;    /* max readahead window, bytes */
	unsigned threads;      /* store pool workers */
	double attr_timeout;   /* seconds the kernel and we cache attributes */
	double negative_timeout; /* seconds the kernel caches a name's absence */
	uid_t uid;
	gid_t gid;
	mode_t umask;
	int debug;
	bool direct_io;	       /* readers bypass the kernel page cache */
	unsigned max_read;     /* largest kernel read request, bytes; 0 =
				  the kernel's */
	uint64_t prefetch_whole; /* files up to this many bytes are
				    prefetched whole at their first data
				    read; 0: none */
};

/* A committed version as seen by readers; shared by open handles and
 * refcounted (fs_version_put). Immutable once published. */
struct edge_wait;

struct fs_version {
	unsigned refs; /* atomic */
	struct h5m_manifest *man; /* NULL for a plain object */
	/* The manifest with its edge section merged (format 3), once that
	 * is read (atomic; NULL before): fs_version_map() uses it. */
	struct h5m_manifest *full;
	int edges; /* atomic: 0, 1 while the edge section's GET is out, 2
		      after it (set under ctx->edges_lock) */
	struct edge_wait *waiting; /* edge pieces waiting for it; guarded by
				      ctx->edges_lock */
	char *mkey; /* the manifest's key, if it has an edge section */
	char *key;		  /* plain object: its key */
	uint64_t size;		  /* file bytes */
	int64_t mtime_ns;
	char etag[OST_ETAG_MAX];
	int whole; /* atomic: its whole-file prefetch began (prefetch.c) */
};

/* A stage: a file being written, in the spool.  The spool file has the
 * file's size; it holds the bytes written since the stage began (and any
 * copied in from the base); every other byte is the base's. */
struct fs_stage {
	int fd;	     /* the spool file, flock'ed while this daemon owns it */
	char *path;  /* spool file name */
	bool dirty;  /* written since the last commit */
	bool failed; /* the last commit failed: kept for retry */
	/* The committed version the stage began from (NULL: the spool file
	 * holds every byte, e.g. a new or emptied file), and the byte ranges
	 * the spool file holds: sorted, merged [start, end) pairs.  Outside
	 * them bytes are read from base, and base's objects for extents
	 * there are kept by the next commit. */
	struct fs_version *base;
	uint64_t *written;
	size_t n_written, cap_written;
	/* The commit replaces only this ETag ("" = only creates): if another
	 * writer committed meanwhile, the commit fails with -ESTALE. */
	char expect[OST_ETAG_MAX];
	/* While a manifest PUT is in flight: hex of its first bytes, kept in
	 * the record so a later mount can tell that it landed. */
	char landing[2 * 64 + 1];
};

/* Make room for one more written range, so that the next
 * fs_stage_mark() of a single write cannot fail (in->lock held).  Call it
 * before writing to the spool file.  0 or -ENOMEM. */
int fs_stage_reserve(struct fs_stage *sg);

/* Record that [off, off+len) of the spool file now holds the file's bytes
 * (in->lock held).  0, or -ENOMEM if a new range was needed and
 * fs_stage_reserve() was not called (nothing changed then). */
int fs_stage_mark(struct fs_stage *sg, uint64_t off, uint64_t len);

/* Make `base` (may be NULL) the stage's base with no range written: the
 * spool file's bytes are all to be read from it, or (NULL) the spool file
 * holds every byte.  Takes a reference on base (in->lock held). */
void fs_stage_rebase(struct fs_stage *sg, struct fs_version *base);

/* Replace the base by `base`, a version with the same bytes (e.g. the
 * same file after a rename moved its objects); written ranges stay. */
void fs_stage_set_base(struct fs_stage *sg, struct fs_version *base);

/* Mark the stage dirty before its first write since the last commit and
 * note that in its record (in->lock held). */
void fs_stage_set_dirty(struct fs_ctx *ctx, struct fs_inode *in);

/* Read [off, off+len) of the file a stage holds, clipped to its size:
 * written ranges from the spool file, the rest from the base through the
 * block cache (synchronously).  Returns bytes read or -errno (in->lock
 * held). */
ssize_t fs_stage_pread(struct fs_ctx *ctx, struct fs_stage *sg, void *buf,
		       size_t len, uint64_t off);

struct fs_inode {
	uint64_t ino;
	char *key;	    /* guarded by fs_ctx.itable_lock (rename) */
	bool is_dir;
	uint64_t nlookup;   /* guarded by fs_ctx.itable_lock */
	unsigned opens;	    /* guarded by fs_ctx.itable_lock */
	unsigned pins;	    /* guarded by fs_ctx.itable_lock: page cache
			       stores in progress (pagefill.c) */
	bool unlinked;	    /* guarded by lock */
	struct fs_version *doomed; /* guarded by lock: unlinked while open,
				      its objects go at the last release */
	pthread_mutex_t lock; /* guards the fields below */
	struct fs_stage *stage;
	struct fs_version *ver; /* last version loaded, or NULL */
	double ver_checked;	/* when the store last told that ver is the
				   current version (monotonic s; 0: never) */
	double attr_time;	/* when attr was filled (monotonic s) */
	double fetched;		/* when the store told attr (monotonic s):
				   attr_time, or earlier for a listing's */
	bool have_attr;
	struct stat attr;	/* size/mtime valid when have_attr */
	uint64_t object_size;	/* manifest bytes at the last stat (0: not
				   a manifest, or not known) */
	bool mode_set;		/* chmod'd: keep attr.st_mode */
	struct fs_inode *hnext_ino, *hnext_key; /* table chains */
};

/* The per-open-file state. */
struct fs_handle {
	struct fs_inode *inode;
	struct fs_version *ver; /* for read-only handles without a stage */
	bool writable;
	pthread_mutex_t lock;	/* guards readahead state */
	uint64_t next_off;	/* where a sequential read would start */
	uint64_t fill_off;	/* the page cache fill last started... */
	uint64_t fill_end;	/* ...covers [fill_off, fill_end) */
	uint64_t ra_window;	/* current readahead window, bytes */
	uint64_t ra_until;	/* prefetch issued up to here */
	uint64_t seq_start;	/* where the current sequential run began */
	struct fs_handle *prev, *next; /* fs_ctx.handles, under itable_lock */
};

/* Unlink a handle from the mount's list and free it. */
void fs_handle_free(struct fs_ctx *ctx, struct fs_handle *fh);

/* At shutdown: free the file and directory handles the kernel never
 * released (files were committed at their flush) and delete the objects of
 * files unlinked while open.  Single-threaded; the store must be open. */
void fs_release_all(struct fs_ctx *ctx);

/* How many manifest heads a mount keeps from its lookups (at most
 * FS_LOOKUP_GET bytes each). */
#define FS_KEPT_HEADS 32
/* How many names the store was last found to lack a mount remembers. */
#define FS_KEPT_ABSENT 32

struct fs_ctx {
	struct fs_config cfg;
	/* Called once, on the thread serving FUSE INIT, when the kernel has
	 * handed over the mount (the session is usable); NULL for none. */
	void (*on_init)(struct fs_ctx *ctx);
	int ready_fd; /* for on_init: the daemon's pipe to the mount
			 command, or -1 */
	struct ost *st;
	struct fs_cache *cache;
	struct fs_dcache *dcache; /* the cache's disk tier, or NULL */
	struct fuse_session *se;
	pthread_mutex_t itable_lock; /* guards the inode table */
	/* Guards every version's edge section state changes (edges -> 2)
	 * and `waiting` lists; edges_cond is signalled at each -> 2. */
	pthread_mutex_t edges_lock;
	pthread_cond_t edges_cond;
	struct fs_inode **by_ino;
	struct fs_inode **by_key;
	size_t n_buckets;
	uint64_t next_ino; /* guarded by itable_lock */
	struct fs_handle *handles; /* open files, guarded by itable_lock; the
				      kernel may unmount before it sends the
				      last RELEASEs */
	struct dir_handle *dirs;   /* open directories, likewise */
	/* Manifest heads the lookups' GETs brought whole or in part (of a
	 * plain object, its first 64 bytes), for the load that may follow
	 * (fs_version_lookup); a ring of FS_KEPT_HEADS, guarded by
	 * heads_lock. */
	pthread_mutex_t heads_lock;
	struct fs_kept_head {
		char *key;	 /* NULL: a free slot */
		uint8_t *buf;	 /* the head's first `len` bytes */
		size_t len;
		struct ost_info info; /* of the GET that brought them */
		double t;	 /* fs_now() when it did */
	} heads[FS_KEPT_HEADS];
	unsigned heads_next; /* the slot the next head takes */
	/* Names a lookup found neither a file nor a directory, and when
	 * (fs_now()): a ring of FS_KEPT_ABSENT, guarded by absent_lock. */
	pthread_mutex_t absent_lock;
	struct fs_absent {
		char *key; /* NULL: a free slot */
		double t;
	} absent[FS_KEPT_ABSENT];
	unsigned absent_next; /* the slot the next name takes */
	struct fs_pagefill *pagefill; /* page cache stores (pagefill.c) */
	struct fs_listing *listing;   /* directory index updates (listing.c) */
	struct fs_whole *whole;	      /* whole-file prefetch (prefetch.c), or
					 NULL when off */
	uint64_t reads;	   /* atomic: FUSE reads answered from versions */
	uint64_t commits;  /* atomic: successful commits */
	uint64_t commit_failures; /* atomic */
};

/* prefetch.c --------------------------------------------------------- */

struct fs_whole;

/* Set up whole-file prefetch for files of at most cfg.prefetch_whole
 * bytes (nothing if that is 0).  Before the session starts.  0 or
 * -ENOMEM (the mount works without it). */
int fs_whole_init(struct fs_ctx *ctx);

/* A read of [off, end) (file bytes) of v, through a read-only handle,
 * touched chunk data: if v is a split HDF5 file of at most
 * cfg.prefetch_whole bytes, not prefetched before, and no other file is
 * being prefetched, start bringing every block of its objects into the
 * block cache, in the background: [off, end of the dataset being read),
 * then the rest of the file after it, then [0, off).  Takes its own
 * reference on v.  Never blocks on the store; thread-safe. */
void fs_whole_start(struct fs_ctx *ctx, struct fs_version *v, uint64_t off,
		    uint64_t end);

/* The last handle of the file whose version is v was closed: if v is
 * being prefetched, ask for no more of it (blocks in flight still land)
 * and let a later read begin it again.  Thread-safe. */
void fs_whole_cancel(struct fs_ctx *ctx, struct fs_version *v);

/* Counters: files whose prefetch began, blocks it asked the store or the
 * disk tier for.  Thread-safe. */
void fs_whole_stats(struct fs_ctx *ctx, uint64_t *files, uint64_t *blocks);

/* At shutdown, before fs_cache_free(): ask for nothing more, wait for the
 * blocks in flight, drop the version and free.  No fs_whole_start() may
 * run or follow.  NULL ctx->whole is a no-op. */
void fs_whole_free(struct fs_ctx *ctx);

/* inode.c ------------------------------------------------------------ */

int fs_itable_init(struct fs_ctx *ctx);
void fs_itable_release(struct fs_ctx *ctx);

/* The inode for `key`, created if needed, with nlookup incremented by
 * `lookup` (0 or 1).  Returns NULL on ENOMEM. */
struct fs_inode *fs_inode_get(struct fs_ctx *ctx, const char *key,
			      bool is_dir, int lookup);

/* The inode numbered `ino` (FUSE_ROOT_ID is the root), or NULL. */
struct fs_inode *fs_inode_by_ino(struct fs_ctx *ctx, uint64_t ino);

/* Existing inode for `key`, or NULL. */
struct fs_inode *fs_inode_by_key(struct fs_ctx *ctx, const char *key);

/* Drop `n` lookups; frees the inode when it is unused. */
void fs_inode_forget(struct fs_ctx *ctx, struct fs_inode *in, uint64_t n);

/* The inode of `key` if there is one, held (pinned) so it cannot be freed
 * until fs_inode_pin(ctx, in, -1); NULL if none.  Thread-safe. */
struct fs_inode *fs_inode_hold(struct fs_ctx *ctx, const char *key);

/* Count an open (+1) or a release (-1) of `in`. */
void fs_inode_open_count(struct fs_ctx *ctx, struct fs_inode *in, int delta);

/* Keep `in` allocated (+1) while work that is not a kernel reference needs
 * it, or let it go (-1; frees it when nothing else holds it).  Unlike an
 * open, a pin changes no file semantics (last close, unlink while open). */
void fs_inode_pin(struct fs_ctx *ctx, struct fs_inode *in, int delta);

/* Rename every inode whose key is `from` or starts with `from` + "/". */
int fs_inode_rename(struct fs_ctx *ctx, const char *from, const char *to);

/* Negative lookups (FUSE lookup answered ENOENT).  The kernel caches them
 * for negative_timeout, but looks up again for an exclusive create (cp's
 * open(O_CREAT | O_EXCL) after its stat), so the mount keeps the last
 * FS_KEPT_ABSENT absent names itself, for the same time.  An exclusive
 * create stays exclusive: its commit is refused if the name was taken in
 * the store meanwhile.  All thread-safe; keeping is best effort.
 *
 * fs_absent_note: `key` (borrowed) was found absent now.
 * fs_absent_known: whether `key` was found absent less than
 *   negative_timeout seconds ago.
 * fs_absent_forget: a name was made or renamed here: forget what was
 *   kept of `key`, or of every name when `key` is NULL. */
void fs_absent_note(struct fs_ctx *ctx, const char *key);
bool fs_absent_known(struct fs_ctx *ctx, const char *key);
void fs_absent_forget(struct fs_ctx *ctx, const char *key);

/* Key of child `name` of directory key `parent` (malloc'd). */
char *fs_child_key(const char *parent, const char *name);

/* Copy of in->key taken under the table lock (malloc'd). */
char *fs_inode_key(struct fs_ctx *ctx, struct fs_inode *in);

/* Inodes below directory `dir_key` that have a stage but may not be in the
 * store yet: their names (malloc'd array of malloc'd strings). */
int fs_staged_children(struct fs_ctx *ctx, const char *dir_key,
		       char ***names, size_t *n);

/* version.c ---------------------------------------------------------- */

/* Load the committed version at `key`: a manifest or a plain object.
 * Returns 0, -ENOENT, -EBADMSG (corrupt manifest) or a store error. */
int fs_version_load(struct fs_ctx *ctx, const char *key,
		    struct fs_version **out);

/* The same, told that the manifest's head was `hint` bytes at its last
 * stat (fs_vstat.object_size; 0 = unknown): a head of that size is read
 * with one GET instead of two.  Of a manifest with an edge section
 * (format 3) only the head is read; see fs_version_edges().  With `kept`,
 * the load starts from the bytes a fs_version_lookup() of `key` kept less
 * than attr_timeout ago (and takes them), as it would from its own GET:
 * the version is then as current as that lookup's answer (a plain object
 * needs no GET at all). */
int fs_version_load_sized(struct fs_ctx *ctx, const char *key, uint64_t hint,
			  bool kept, struct fs_version **out);

/* Start reading v's edge section (the page fill of the pages where chunks
 * meet, far from metadata), if it has one and it is not read or being
 * read: one async GET; until it lands a read of such a page fetches the
 * neighbour's bytes (fs_cache_get_range()).  Called on the first read of
 * data, so reading only metadata never costs it.  Never blocks; any
 * thread. */
void fs_version_edges(struct fs_ctx *ctx, struct fs_version *v);

/* Bytes [off, off+len) of object `key` (of obj_size bytes), which are
 * file bytes [file_off, file_off+len) of v: an edge piece
 * (fs_piece_is_edge()).  While v's edge section is on its way they wait
 * for it; else they come from it, or as fs_cache_get_range() gets them.
 * Same callback, arguments and returns as fs_cache_get_range(). */
int fs_version_get_edge(struct fs_ctx *ctx, struct fs_version *v,
			const char *key, uint64_t obj_size, uint64_t file_off,
			uint64_t off, size_t len, fs_cache_cb cb, void *arg);

/* v's manifest with its edge section merged, read now (synchronously) if
 * it is not yet, or once the GET a read sent for it lands; v->man if it
 * has none or it cannot be read (the edge bytes then come from the chunk
 * objects, as for any page).  For a commit, whose page fill reads the
 * base's bytes of those pages.  Not on a pool thread.  The result lives
 * as long as v. */
const struct h5m_manifest *fs_version_manifest(struct fs_ctx *ctx,
					       struct fs_version *v);
/* What one small GET of the first bytes at `key` tells. */
struct fs_vstat {
	uint64_t size;	  /* file bytes (from the manifest header, or the
			     plain object's size) */
	int64_t mtime_ns;
	char etag[OST_ETAG_MAX];
	bool manifest;
	uint64_t object_size; /* bytes of the stored object; of a manifest,
				 its head (all of it up to format 2) */
};

/* Size, mtime and ETag of the file at `key` without loading a manifest
 * body.  Returns 0, -ENOENT, -EBADMSG or a store error. */
int fs_version_stat(struct fs_ctx *ctx, const char *key,
		    struct fs_vstat *out);

/* A lookup's fs_version_stat(): it asks for the first FS_LOOKUP_GET bytes
 * (as many as the first round trip of a new or idle TCP connection
 * carries: 10 segments less the answer's headers), not just the header,
 * and keeps a manifest's head, whole or in part, in ctx->heads (of a
 * plain object, its first 64 bytes and its ETag).  A
 * fs_version_load_sized() of the same key with `kept`, within
 * attr_timeout, starts from those bytes: an open after a lookup then
 * costs no GET (a head that fits, a plain object) or one for the rest, a
 * round trip less than the head read anew from byte 0 in slow start.
 * Same returns as fs_version_stat(); keeping is best effort (ENOMEM skips
 * it).  Any thread but a pool worker. */
#define FS_LOOKUP_GET 12288
int fs_version_lookup(struct fs_ctx *ctx, const char *key,
		      struct fs_vstat *out);

/* Free the heads fs_version_lookup() kept.  At unmount, single-threaded. */
void fs_version_heads_free(struct fs_ctx *ctx);

/* What the first `got` bytes `buf` of the object at `key` (answered with
 * `info`) tell, as fs_version_stat(): for callers that fetched them
 * themselves (several at once).  Returns 0, or -EBADMSG for a corrupt
 * manifest header (logged).  Touches only its arguments. */
int fs_vstat_parse(const char *key, const void *buf, size_t got,
		   const struct ost_info *info, struct fs_vstat *out);

void fs_version_get(struct fs_version *v);
void fs_version_put(struct fs_version *v);

/* Pieces of [off, off+len) of v (h5m_map(); a plain object is one piece),
 * at most `max`; returns how many. */
size_t fs_version_map(const struct fs_version *v, uint64_t off, uint64_t len,
		      struct h5m_piece *pcs, size_t max);

/* The object behind object piece `pc` of v: its key (NUL-terminated in
 * key[keysz]) and size in bytes.  0 or -ENAMETOOLONG. */
int fs_version_object(const struct fs_version *v, const struct h5m_piece *pc,
		      char *key, size_t keysz, uint64_t *obj_size);

/* Where a program reading v in file order up to `end` (a file offset)
 * stops being in the dataset it reads: at most `want`, and not past the
 * data of the dataset the read's last bytes (or, if those are metadata,
 * the next object's) belong to; `end` if only metadata follows.  A
 * program reading one dataset in file order would otherwise be
 * prefetched the next dataset's chunks at the end of it, which it may
 * never read.  Thread-safe. */
uint64_t fs_version_dataset_end(const struct fs_version *v, uint64_t end,
				uint64_t want);

/* Cache version of v's objects (fs_cache_get's `ver`): NULL for chunk
 * objects, which are immutable (their keys change with every commit); the
 * ETag for a plain object, which is rewritten at its key. */
const char *fs_version_tag(const struct fs_version *v);

/* Read [off, off+len) of version `v` synchronously into buf through the
 * cache; returns bytes read (short only at EOF) or -errno. */
ssize_t fs_version_pread(struct fs_ctx *ctx, struct fs_version *v, void *buf,
			 size_t len, uint64_t off);

/* Answer a FUSE read request from `v` asynchronously (reply sent from the
 * cache completions) and start readahead on handle `fh` (may be NULL). */
void fs_version_read(struct fs_ctx *ctx, fuse_req_t req,
		     struct fs_version *v, struct fs_handle *fh, size_t size,
		     uint64_t off);

/* ops.c -------------------------------------------------------------- */

/* The root's extended attribute that holds the mount's counters. */
/* ---- listing.c: the directory index kept current for commits ---- */

/* Start the thread that stores directory index updates.  Returns 0 or
 * -errno (then commits just note nothing).  Call once the store is open. */
int fs_listing_init(struct fs_ctx *ctx);

/* Note that the file at store key `key` now is the object with ETag `etag`
 * (copied; ignored when empty or longer than H5M_DIRINDEX_ETAG_MAX): a
 * file of `size` bytes, mtime `mtime_ns` (ns since the epoch), a manifest
 * or (`manifest` false) a plain object.  Its directory's index gets the
 * entry within about half a second.  Never blocks on the store; a failure
 * (out of memory) is ignored, as the index is only a cache.  Any thread. */
void fs_listing_note(struct fs_ctx *ctx, const char *key, const char *etag,
		     uint64_t size, int64_t mtime_ns, bool manifest);

struct h5m_dirent;

/* Store entries `ents` [0, n) (reordered: see h5m_dirindex_encode) as the
 * whole index of directory `dir` ("" for the root, else its key without
 * the trailing '/').  Returns the bytes stored, or 0 when nothing was (the
 * error is logged: an index is only a cache).  Blocks on the store; any
 * thread but a pool worker. */
size_t fs_listing_store(struct fs_ctx *ctx, const char *dir,
			struct h5m_dirent *ents, size_t n);

/* Store every note made so far, stop the thread and free its state.  Call
 * after the last commit (fs_release_all) and before the store is freed.
 * Safe when fs_listing_init() failed or was not called. */
void fs_listing_shutdown(struct fs_ctx *ctx);

/* ---- pagefill.c: what reads fetch goes into the kernel page cache ---- */

/* Start the store thread.  Returns 0 or -errno.  Call before the session
 * runs. */
int fs_pagefill_init(struct fs_ctx *ctx);

/* Stop the store thread once it has done what is queued; jobs whose
 * blocks arrive later are dropped.  Call after the session loop ends. */
void fs_pagefill_shutdown(struct fs_ctx *ctx);

/* Free what fs_pagefill_init() made (stops the thread if still running).
 * Call after fs_cache_free(): until then completions may still come. */
void fs_pagefill_free(struct fs_ctx *ctx);

/* Store the pages of [off, end) of version v of inode `in` in the kernel
 * page cache once the blocks they need arrive, without waiting for them.
 * With `whole`, the range first grows to the whole objects it touches (at
 * most FS_FILL_OBJ_MAX bytes of each).  Pages in [skip_off, skip_end) are
 * not stored (the pages a pending read is answering: the kernel holds
 * them).  Only whole pages made entirely of bytes that are in the
 * manifest or being fetched here are stored; the rest stay for the kernel
 * to ask for.  Returns the larger of `end` and the end (file offset) of
 * the range whose pages are being stored.  Thread-safe; `in` is pinned
 * and `v` referenced until the stores are done. */
uint64_t fs_pagefill(struct fs_ctx *ctx, struct fs_inode *in,
		     struct fs_version *v, uint64_t off, uint64_t end,
		     uint64_t skip_off, uint64_t skip_end, bool whole);

/* Wait until no store is running, so that a store that starts later sees
 * what the caller changed first (a new version of an inode).  Do not call
 * with an inode lock held. */
void fs_pagefill_barrier(struct fs_ctx *ctx);

/* Drop every page the kernel caches for `in`, soon (on the store thread:
 * a pending read may hold a page lock until it is answered).  For a
 * version that went away under its readers.  Not with in->lock held. */
void fs_pagefill_invalidate(struct fs_ctx *ctx, struct fs_inode *in);

/* Bytes stored in the page cache so far. */
uint64_t fs_pagefill_stored(struct fs_ctx *ctx);

#define FS_FILL_OBJ_MAX (4u << 20) /* bytes of one object a read fetches */
/* A piece of an object no longer than this, in a read that is not asking
 * for that object (the bytes of a neighbouring chunk on the first or last
 * page of a chunk's pages), is fetched as that range alone when its block
 * is not cached: fetching the whole neighbour tripled the bytes of random
 * hyperslab reads in files whose chunk edges are not in the page fill. */
#define FS_EDGE_MAX 4096u

/* Is object piece pc (of an object of `size` bytes) such an edge: at most
 * FS_EDGE_MAX bytes at the very start or end of its object? */
static inline bool fs_piece_is_edge(const struct h5m_piece *pc,
				    uint64_t size)
{
	return pc->len <= FS_EDGE_MAX && pc->len < size &&
	       (pc->obj_off == 0 || pc->obj_off + pc->len == size);
}

#define FS_STATS_XATTR "user.cloudh5.stats"

/* Write the mount's counters into buf as text, one "name value" per line:
 * store requests by kind, errors, in flight, bytes in (GET) and out (PUT),
 * block cache hits/misses/joins/evictions/bytes/blocks/fetches, commits and
 * failed commits.  Returns the length (no NUL written past it), or -ERANGE
 * if `size` bytes are too few.  Thread-safe (counters are atomics). */
int fs_stats_format(struct fs_ctx *ctx, char *buf, size_t size);

/* commit.c ----------------------------------------------------------- */

/* Create a stage for `in` (in->lock held) holding the bytes of `base`
 * (NULL: empty), none of them copied: the spool file is sparse until
 * written.  `expect` is the ETag the store's object must still have when
 * the stage is committed ("" = there must be none; NULL = whatever is there
 * now, asked with one small GET). */
int fs_stage_create(struct fs_ctx *ctx, struct fs_inode *in,
		    struct fs_version *base, const char *expect);

struct fs_spool_rec;

/* At mount, before serving: deal with the stage at `path` that an earlier
 * daemon left, as its record `rec` says.  A clean stage is removed; one
 * whose commit was asked for is committed now (its base, if any, must still
 * be the current version); others are left.  Returns 0 (committed or
 * removed), 1 (kept: the caller reports it), 2 (another live daemon owns
 * it), or -errno. */
int fs_stage_recover(struct fs_ctx *ctx, const char *path,
		     const struct fs_spool_rec *rec);

/* Write into etag (OST_ETAG_MAX bytes) the ETag of the object at in's key
 * now, or "" if there is none.  0 or a store error. */
int fs_current_etag(struct fs_ctx *ctx, struct fs_inode *in, char *etag);

/* Close the stage of `in` (in->lock held, or the inode is being freed).
 * The spool file is removed unless it holds bytes the store lacks (dirty,
 * or its commit failed) and the file was not unlinked: then it stays, with
 * `key` (may be NULL) written beside it in "<stage>.key", and an error is
 * logged. */
void fs_stage_drop(struct fs_inode *in, const char *key);

/* Commit the stage of `in` to the store at its key (in->lock held): split,
 * upload objects, write the manifest (the commit point) conditionally on
 * the stage's expected ETag, delete superseded objects.  On failure the
 * stage is kept (failed=true) and -errno is returned: -ESTALE when another
 * writer committed (or removed) the file since the stage began. */
int fs_commit(struct fs_ctx *ctx, struct fs_inode *in);

/* Delete the file at `key`: its manifest (or plain object), then the
 * objects the manifest referenced.  If `keep` is non-NULL and the file is
 * a manifest, its objects are not deleted: the loaded version is returned
 * in *keep, for fs_delete_objects() once open handles are gone (POSIX
 * lets a process read a file it has open after the unlink). */
int fs_remove_file(struct fs_ctx *ctx, const char *key,
		   struct fs_version **keep);

/* Rename the committed file `from` to `to`: plain objects are copied and
 * deleted; a manifest's objects are copied to keys under the new name (the
 * layout puts the file's key in every object key), the re-keyed manifest is
 * written at `to`, then the old manifest and objects are deleted.  Returns
 * 0, -ENOENT, or a store error (the old file is then intact). */
int fs_move_file(struct fs_ctx *ctx, const char *from, const char *to);

/* Delete the objects manifest version `v` references (v may be NULL or
 * plain: nothing to do).  Failures are logged and left to fsck. */
void fs_delete_objects(struct fs_ctx *ctx, struct fs_version *v);

/* Monotonic clock in seconds. */
double fs_now(void);

#endif
