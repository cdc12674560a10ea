#!/usr/bin/python3
"""How many store requests cold reads cost, from the daemon's own counters
(the root's user.cloudh5.stats attribute; every request kind counted):

  metadata_200   a file of 200 datasets (each in its own group, with an
                 attribute, chunks of 2 KiB between the metadata blocks):
                 a cold `h5dump -H` and a cold `h5ls -r` each cost at most 3
                 requests, and no chunk is fetched (the metadata, and the
                 chunk bytes that share a page with it, are in the
                 manifest);
  one_chunk      reading one chunk of a cold file (chunks of 256 KiB, the
                 file written chunk by chunk so chunks lie next to each
                 other and to metadata) costs at most 4 requests: the
                 manifest's first bytes (lookup), the manifest's head, the
                 chunk, and the manifest's edge section (the page fill
                 where chunks meet, read on the first read of data);
                 reading it again, then `h5dump -H`, cost at most one
                 request each (the manifest's revalidation at open; none
                 within attr_timeout of the last one).
  edge_section   a file of 300 gzip chunks: a cold `h5dump -H` reads the
                 manifest's head only (2 requests, under a quarter of the
                 bytes one row's read fetches); random rows then cost one
                 GET per chunk, and one for the edge section, with no
                 ranged GET for a neighbour's bytes; also after a rename
                 and after an r+ edit, which itself costs a few requests
                 (its page fill reads the edge section, not each page).
  dir_lookup     a cold lookup of a directory named without an extension
                 costs one round trip: it is asked for as a file and as a
                 directory at once.
  open_after_lookup  opening a file right after its lookup asked the
                 store whether it changed costs no second request.
  lookup_head    a cold lookup asks for the first 12 KiB of a manifest,
                 and the open after it starts from them: a small file's
                 cold `h5dump -H` costs 1 request; a larger head costs 2,
                 with no byte fetched twice; past attr_timeout a file
                 rewritten elsewhere is read anew.
  create_new     `cp` of a new HDF5 file: its name, looked up absent
                 once, stays absent for the kernel (negative_timeout), so
                 the create costs no second lookup; the commit asks
                 whether the name is still free (a HEAD) while it uploads
                 the chunks, not before: with every request delayed, the
                 cp of a file of 8 chunks takes 2 delays (was 6).  With negative_timeout=0 each
                 stat asks the store; past negative_timeout a file
                 another mount made is seen.
  read_one_dataset  a cold read of one dataset in file order reads ahead
                 within it, not into the next dataset's chunks.
  whole_file     a file of at most prefetch_whole of the block cache is
                 fetched whole in the background once a read-only handle
                 reads its chunk data: after a cold read of one row, all
                 of the file costs no GET; its last close stops it; not
                 after `h5dump -H`, nor for an r+ handle, a file over the
                 limit or prefetch_whole=0.
  random_reads_bytes  random hyperslab reads of a file without edge page
                 fill fetch at most 1.5x the bytes of the chunks touched,
                 and nothing more once the kernel drops the pages.
  listing_after_commit  files written through the mount are in their
                 directory's index: the first cold `ls -l` of them costs
                 a few requests.
  listing_plain  `ls -l` of plain objects writes nothing into the store.
  listing_one_page  a directory made through the mount has a marker
                 object (the directory's prefix as a key) that its listing
                 does not show; the listing starts after it, so a
                 directory of 1,000 files is one LIST page, not two.
  listing_400    a directory of 400 files after a remount: readdir gives
                 every name, `ls -l` every size, for at most one request
                 per file plus the listing; once the directory index is
                 stored, a few requests in all.

one_chunk, edge_section, open_after_lookup, read_one_dataset and
random_reads_bytes mount with prefetch_whole=0: they count what reads
fetch chunk by chunk, which whole-file prefetch replaces for files as
small as theirs.

Each output is compared with the same program on a local copy, so fewer
requests can never come from reading less.  "Cold" is a fresh mount: empty
block cache, no manifest loaded, no kernel page cache for the file.

usage: test_requests.py --mount-bin build/fs/mount.cloudh5 [-k NAME]...
"""

import contextlib
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

import h5py  # noqa: E402

TESTS = []
KINDS = ("get", "put", "head", "list", "delete", "copy")
# The tests of what one read fetches turn whole-file prefetch off: their
# files are under its limit, and whole_file tests it.
CHUNKWISE = "prefetch_whole=0"


def test(fn):
    TESTS.append(fn)
    return fn


def requests(a, b):
    """Requests of every kind between two stats snapshots, and by kind."""
    by = {k: b["requests." + k] - a["requests." + k] for k in KINDS}
    return sum(by.values()), {k: n for k, n in by.items() if n}


def cold_run(ws, argv):
    """Remount, run argv, return (stdout, request count, by kind)."""
    ws.remount()
    s0 = T.mount_stats(ws)
    out = subprocess.run(argv, check=True, capture_output=True,
                         timeout=300).stdout
    n, by = requests(s0, T.mount_stats(ws))
    return out, n, by


def cold_header_dump(ws, P):
    """A cold `h5dump -H` of P (after a remount): checks that its output
    is the local copy's and returns (requests, by kind, bytes in)."""
    argv = ["h5dump", "-H"]
    want = subprocess.run(argv + [ws.l(P)], check=True,
                          capture_output=True).stdout
    ws.remount()
    s0 = T.mount_stats(ws)
    got = subprocess.run(argv + [ws.m(P)], check=True,
                         capture_output=True, timeout=300).stdout
    s1 = T.mount_stats(ws)
    n, by = requests(s0, s1)
    T.check(got.replace(ws.m(P).encode(), b"F") ==
            want.replace(ws.l(P).encode(), b"F"),
            "h5dump -H of %s through the mount differs from the local copy"
            % P)
    return n, by, s1["bytes.in"] - s0["bytes.in"]


@contextlib.contextmanager
def other_mount(binary, ws):
    """A second mount of ws's store (its own spool, under ws.root/b),
    stopped on leaving."""
    bdir = os.path.join(ws.root, "b")
    os.makedirs(os.path.join(bdir, "mnt"), exist_ok=True)
    mb = T.Mount(binary, ws.store, os.path.join(bdir, "mnt"), bdir)
    mb.start()
    try:
        yield mb
    finally:
        mb.stop()


def make_many(path):
    with h5py.File(path, "w") as f:
        for i in range(200):
            g = f.create_group("g%03d" % i)
            g.attrs["index"] = i
            g.create_dataset("d", data=np.arange(4096, dtype="f4") + i,
                             chunks=(512,))


@test
def metadata_200(binary):
    P = "many.h5"
    # attr_timeout=60: the attributes the lookup fetched stay valid for
    # the whole run.  With the default (5 s) a run slowed past that
    # (the sanitizer build on a loaded machine: 20 s) asks the store
    # again whether the file changed, one more request each time; what
    # is counted here is what reading the metadata costs.
    with T.Workspace(binary, name="req200", opts="attr_timeout=60") as ws:
        ws.start()
        make_many(ws.l(P))
        make_many(ws.m(P))
        notes = []
        for argv in (["h5dump", "-H"], ["h5ls", "-r"]):
            want = subprocess.run(argv + [ws.l(P)], check=True,
                                  capture_output=True).stdout
            got, n, by = cold_run(ws, argv + [ws.m(P)])
            name = " ".join(argv)
            T.check(got.replace(ws.m(P).encode(), b"F") ==
                    want.replace(ws.l(P).encode(), b"F"),
                    "%s through the mount differs from the local copy"
                    % name)
            T.check(n <= 3, "cold %s of a 200-dataset file cost %d "
                    "requests (%s), bound 3" % (name, n, by))
            notes.append("%s: %d (%s)" % (name, n, by))
        ws.stop()
        return "; ".join(notes)


def make_chunked(path):
    """Chunks of 256 KiB written one by one, metadata of a second dataset
    and attributes between them."""
    rng = np.random.default_rng(11)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", (64, 32768), dtype="f8", chunks=(1, 32768))
        e = f.create_dataset("e", (64, 1000), dtype="i4", chunks=(8, 1000))
        for r in range(64):
            d[r] = rng.random(32768)
            if r % 8 == 0:
                e[r:r + 8] = rng.integers(0, 1 << 30, (8, 1000))
                d.attrs["row%d" % r] = r


def read_row_argv(path, row):
    """A python3 command that prints row `row` of dataset d of `path` as
    .npy bytes."""
    code = ("import sys, h5py, numpy as np\n"
            "f = h5py.File(sys.argv[1], 'r')\n"
            "np.save(sys.stdout.buffer, f['d'][int(sys.argv[2])])\n")
    return ["/usr/bin/python3", "-c", code, path, str(row)]


@test
def one_chunk(binary):
    P = "chunks.h5"
    with T.Workspace(binary, name="req1", opts=CHUNKWISE) as ws:
        ws.start()
        make_chunked(ws.l(P))
        make_chunked(ws.m(P))
        with h5py.File(ws.l(P), "r") as f:
            want = f["d"][37]
        argv = read_row_argv(ws.m(P), 37)
        got, n, by = cold_run(ws, argv)
        with open(os.path.join(ws.root, "got.npy"), "wb") as o:
            o.write(got)
        T.check(np.array_equal(np.load(os.path.join(ws.root, "got.npy")),
                               want), "d[37] read back wrong")
        T.check(n <= 4, "cold read of d[37] cost %d requests (%s), bound 4"
                % (n, by))
        # Warm: the same read again, and the file's other dataset's
        # metadata, cost nothing (page cache, block cache, manifest).
        s0 = T.mount_stats(ws)
        subprocess.run(argv, check=True, capture_output=True, timeout=300)
        subprocess.run(["h5dump", "-H", ws.m(P)], check=True,
                       capture_output=True, timeout=300)
        n2, by2 = requests(s0, T.mount_stats(ws))
        T.check(n2 <= 2, "warm re-read of d[37] and h5dump -H cost %d "
                "requests (%s), bound 2 (the manifest's revalidation at "
                "each open past attr_timeout)" % (n2, by2))
        ws.stop()
        return "cold d[37]: %d (%s); warm again + h5dump -H: %d" % (
            n, by, n2)


@test
def edge_section(binary):
    P = "gz.h5"
    with T.Workspace(binary, name="reqedge",
                     opts="attr_timeout=60," + CHUNKWISE) as ws:
        ws.start()
        rng = np.random.default_rng(7)
        data = (rng.random((300, 16384)) * 1000).astype("f4")
        for path in (ws.l(P), ws.m(P)):
            with h5py.File(path, "w") as f:
                f.create_dataset("d", data=data, chunks=(1, 16384),
                                 compression="gzip", shuffle=True)
        n, by, head_bytes = cold_header_dump(ws, P)
        T.check(n <= 2, "cold h5dump -H cost %d requests (%s), bound 2"
                % (n, by))
        # One row (one chunk): the edge section comes with it.
        row = ("import sys, h5py, numpy as np\n"
               "f = h5py.File(sys.argv[1], 'r')\n"
               "rows = [int(r) for r in sys.argv[2:]]\n"
               "np.save(sys.stdout.buffer, np.stack([f['d'][r] "
               "for r in rows]))\n")
        s0 = T.mount_stats(ws)
        subprocess.run(["/usr/bin/python3", "-c", row, ws.m(P), "150"],
                       check=True, capture_output=True, timeout=300)
        s1 = T.mount_stats(ws)
        row_bytes = s1["bytes.in"] - s0["bytes.in"]
        T.check(head_bytes * 4 < row_bytes,
                "h5dump -H read %d bytes, one row then %d: the edge "
                "section is not left out of the head" % (head_bytes,
                                                         row_bytes))
        rows = [int(r) for r in rng.choice(300, 40, replace=False)]
        got, n2, by2 = cold_run(ws, ["/usr/bin/python3", "-c", row, ws.m(P)]
                                + [str(r) for r in rows])
        with open(os.path.join(ws.root, "got.npy"), "wb") as o:
            o.write(got)
        T.check(np.array_equal(np.load(os.path.join(ws.root, "got.npy")),
                               data[rows]), "rows read back wrong")
        T.check(by2.get("get", 0) <= 40 + 3,
                "40 random rows cost %d GETs (%s); want one per chunk plus "
                "the manifest's head, its edge section and the lookup"
                % (by2.get("get", 0), by2))
        # A rename keeps the edge section (read to write the new manifest).
        os.rename(ws.m(P), ws.m("gz2.h5"))
        got, n3, by3 = cold_run(ws, ["/usr/bin/python3", "-c", row,
                                     ws.m("gz2.h5")] + [str(r) for r in rows])
        with open(os.path.join(ws.root, "got.npy"), "wb") as o:
            o.write(got)
        T.check(np.array_equal(np.load(os.path.join(ws.root, "got.npy")),
                               data[rows]), "rows read back wrong after "
                "the rename")
        T.check(by3.get("get", 0) <= 40 + 3,
                "after a rename 40 random rows cost %d GETs (%s): the edge "
                "section was lost" % (by3.get("get", 0), by3))
        # An r+ edit of one row, cold: the commit's page fill reads the
        # pages where chunks meet from the edge section, not one ranged GET
        # each (299 pages).
        edit = ("import sys, h5py, numpy as np\n"
                "with h5py.File(sys.argv[1], 'r+') as f:\n"
                "    f['d'][10] = -f['d'][10]\n")
        _, n4, by4 = cold_run(ws, ["/usr/bin/python3", "-c", edit,
                                   ws.m("gz2.h5")])
        data[10] = -data[10]
        T.check(n4 <= 16, "a cold r+ edit of one row cost %d requests (%s), "
                "bound 16" % (n4, by4))
        got, n5, by5 = cold_run(ws, ["/usr/bin/python3", "-c", row,
                                     ws.m("gz2.h5")] + [str(r) for r in rows]
                                + ["10"])
        with open(os.path.join(ws.root, "got.npy"), "wb") as o:
            o.write(got)
        T.check(np.array_equal(np.load(os.path.join(ws.root, "got.npy")),
                               data[rows + [10]]),
                "rows read back wrong after the r+ edit")
        T.check(by5.get("get", 0) <= 41 + 3,
                "after an r+ edit 41 random rows cost %d GETs (%s): the edge "
                "section was lost" % (by5.get("get", 0), by5))
        ws.stop()
        return ("cold h5dump -H: %d (%s), %d bytes (one row after: %d); "
                "40 random rows: %d (%s); after a rename: %d; r+ edit of a "
                "row: %d (%s), then 41 rows: %d"
                % (n, by, head_bytes, row_bytes, n2, by2, n3, n4, by4, n5))


@test
def dir_lookup(binary):
    """A cold lookup of a directory whose name has no extension asks the
    store for the name as a file and as a directory at once: with every
    request delayed 400 ms, `stat` of it takes one delay, where a name with
    a dot (asked as a file first, then as a directory) takes two; a file
    costs one request, the directory two either way."""
    delay = 0.4
    with T.Workspace(binary, name="reqdir") as ws:
        ws.start()
        for d in ("sub", "sub.d"):
            os.mkdir(ws.m(d))
            with open(ws.m(d + "/x.txt"), "w") as o:
                o.write("x")
        with open(ws.m("x.h5"), "w") as o:
            o.write("not hdf5")
        ws.mount.stop()
        ws.mount.opts = "fault=delay_ms=%d" % int(delay * 1000)
        ws.mount.start()
        notes = []
        for name, want_n, most, least in (("sub", 2, 1.6, 0.9),
                                          ("sub.d", 2, 3.0, 1.9),
                                          ("x.h5", 1, 1.6, 0.9)):
            s0 = T.mount_stats(ws)
            t0 = time.monotonic()
            os.stat(ws.m(name))
            t = time.monotonic() - t0
            n, by = requests(s0, T.mount_stats(ws))
            T.check(n == want_n, "cold stat of %s cost %d requests (%s), "
                    "want %d" % (name, n, by, want_n))
            T.check(least * delay <= t <= most * delay,
                    "cold stat of %s took %.2f s with %.1f s per request; "
                    "want %.1f-%.1f delays" % (name, t, delay, least, most))
            notes.append("%s: %.2f s, %d requests" % (name, t, n))
        ws.stop()
        return "; ".join(notes)


@test
def open_after_lookup(binary):
    """A file read once, then again after its attributes expired
    (attr_timeout=2): the kernel's lookup fetches the manifest's header,
    which tells the loaded version is still current, and the open that
    follows at once trusts it, so the re-read costs one request, not one
    for the lookup and one more for the open.  The open still asks the
    store once the lookup's answer is older than attr_timeout: a file
    rewritten from another mount is seen."""
    P = "chunks.h5"
    with T.Workspace(binary, name="reqopen",
                     opts="attr_timeout=2," + CHUNKWISE) as ws:
        ws.start()
        make_chunked(ws.m(P))
        with h5py.File(ws.m(P), "r") as f:
            want = f["d"][37]
        argv = read_row_argv(ws.m(P), 37)
        got, n, by = cold_run(ws, argv)
        T.check(n <= 4, "cold read of d[37] cost %d requests (%s)" % (n, by))
        notes = []
        for rnd in range(2):
            time.sleep(2.5)
            s0 = T.mount_stats(ws)
            got = subprocess.run(argv, check=True, capture_output=True,
                                 timeout=300).stdout
            n, by = requests(s0, T.mount_stats(ws))
            with open(os.path.join(ws.root, "got.npy"), "wb") as o:
                o.write(got)
            T.check(np.array_equal(np.load(os.path.join(ws.root,
                                                        "got.npy")), want),
                    "d[37] read back wrong")
            T.check(n == 1, "re-read after attr_timeout cost %d requests "
                    "(%s); want 1, the lookup's revalidation" % (n, by))
            notes.append("re-read %d: %d (%s)" % (rnd, n, by))
        # Another mount rewrites d[37]; past attr_timeout, this one sees it.
        with other_mount(binary, ws) as mb, h5py.File(mb.path(P), "r+") as f:
            f["d"][37] = -want
        time.sleep(2.5)
        got = subprocess.run(argv, check=True, capture_output=True,
                             timeout=300).stdout
        with open(os.path.join(ws.root, "got.npy"), "wb") as o:
            o.write(got)
        T.check(np.array_equal(np.load(os.path.join(ws.root, "got.npy")),
                               -want),
                "the rewrite from another mount is not seen after "
                "attr_timeout")
        ws.stop()
        return "; ".join(notes)


@test
def lookup_head(binary):
    """The lookup's GET asks for the first FS_LOOKUP_GET (12 KiB) bytes, as
    many as the first round trip of a connection carries, and keeps a
    manifest's head for the open that follows: the open of a file whose
    head fits costs nothing more, that of a bigger head one GET for the
    rest (a round trip less than reading the head again from byte 0).  A
    file looked up, rewritten by another mount and opened after
    attr_timeout is read as it is now, not from the head its lookup
    kept."""
    small, big = "small.h5", "many.h5"
    with T.Workspace(binary, name="reqlkp", opts="attr_timeout=2") as ws:
        ws.start()
        for path in (ws.l(small), ws.m(small)):
            with h5py.File(path, "w") as f:
                f.create_dataset("d", data=np.arange(1000.0), chunks=(100,))
                f.attrs["v"] = 1
        make_many(ws.l(big))
        make_many(ws.m(big))
        notes = []
        for P, want_n in ((small, 1), (big, 2)):
            n, by, nbytes = cold_header_dump(ws, P)
            # the head: the 64-byte header and the body its u64 at 48
            # (body_stored_len) tells; an edge section may follow
            size = 64 + int.from_bytes(ws.store.head(P, 64)[48:56],
                                       "little")
            T.check(n == want_n, "cold h5dump -H of %s (manifest head of "
                    "%d bytes) cost %d requests (%s), want %d"
                    % (P, size, n, by, want_n))
            # the head and nothing else, no byte of it twice
            T.check(nbytes == size, "cold h5dump -H of %s fetched %d bytes "
                    "for a %d-byte manifest head" % (P, nbytes, size))
            notes.append("%s (%d B): %d requests, %d B" % (P, size, n,
                                                          nbytes))
        # Looked up (its head kept), rewritten by another mount, opened
        # after attr_timeout: the new version is read.
        ws.remount()
        os.stat(ws.m(small))
        with other_mount(binary, ws) as mb, \
                h5py.File(mb.path(small), "r+") as f:
            f.attrs["v"] = 2
        time.sleep(2.5)
        with h5py.File(ws.m(small), "r") as f:
            v = int(f.attrs["v"])
        T.check(v == 2, "the rewrite from another mount is not seen after "
                "attr_timeout: v = %d" % v)
        ws.stop()
        return "; ".join(notes) + "; rewrite seen"


@test
def create_new(binary):
    P = "new.h5"
    delay = 0.4
    with T.Workspace(binary, name="reqnew") as ws:
        ws.start()
        with h5py.File(ws.l(P), "w") as f:  # 8 chunks: one round of PUTs
            f.create_dataset("d", data=np.arange(8000.0).reshape(8, 1000),
                             chunks=(1, 1000))
        ws.mount.stop()
        ws.mount.opts = "fault=delay_ms=%d" % int(delay * 1000)
        ws.mount.start()
        notes = []
        # Absent: asked once (as a file, then as a directory), then known.
        for rnd, want_n in ((0, 2), (1, 0)):
            s0 = T.mount_stats(ws)
            T.check(not os.path.exists(ws.m(P)), "%s exists" % P)
            n, by = requests(s0, T.mount_stats(ws))
            T.check(n == want_n, "stat %d of the absent %s cost %d "
                    "requests (%s), want %d" % (rnd, P, n, by, want_n))
        s0 = T.mount_stats(ws)
        t0 = time.monotonic()
        subprocess.run(["cp", ws.l(P), ws.m(P)], check=True, timeout=300)
        t = time.monotonic() - t0
        n, by = requests(s0, T.mount_stats(ws))
        with h5py.File(ws.l(P), "r") as f:
            want = f["d"][:]
        ws.remount()
        with h5py.File(ws.m(P), "r") as f:
            T.check(np.array_equal(f["d"][:], want), "%s read back wrong" % P)
        # The chunks' PUTs with the HEAD beside them, then the manifest's
        # PUT: 2 delays.  Before, 2 more for the create's lookup and 2 for
        # GETs ahead of the uploads: 6.
        T.check(t <= 3.5 * delay, "cp of a new file took %.2f s with %.1f s "
                "per request (%s): want at most 3.5 delays" % (t, delay, by))
        T.check(by.get("put") == 9, "cp of a new file of 8 chunks sent %s "
                "PUTs, want 9" % by.get("put"))
        T.check(by.get("head") == 1, "the commit of a new file sent %s "
                "HEADs, want 1 (is its name still free)" % by.get("head"))
        notes.append("absent stat: 2 then 0 requests; cp: %.2f s = %.1f "
                     "delays, %s" % (t, t / delay, by))
        ws.mount.stop()
        ws.mount.opts = "negative_timeout=0"
        ws.mount.start()
        for rnd in range(2):
            s0 = T.mount_stats(ws)
            T.check(not os.path.exists(ws.m("gone.h5")), "gone.h5 exists")
            n, by = requests(s0, T.mount_stats(ws))
            T.check(n == 2, "with negative_timeout=0, stat %d of an absent "
                    "name cost %d requests (%s), want 2" % (rnd, n, by))
        ws.mount.stop()
        ws.mount.opts = "negative_timeout=1"
        ws.mount.start()
        T.check(not os.path.exists(ws.m("later.h5")), "later.h5 exists")
        with other_mount(binary, ws) as mb:
            subprocess.run(["cp", ws.l(P), mb.path("later.h5")], check=True,
                           timeout=300)
        time.sleep(1.2)
        T.check(os.path.exists(ws.m("later.h5")), "a file another mount "
                "made is not seen after negative_timeout")
        ws.stop()
        notes.append("negative_timeout=0: 2 requests each stat; "
                     "negative_timeout=1: seen after 1.2 s")
        return "; ".join(notes)


@test
def read_one_dataset(binary):
    """A cold read of all of dataset a (64 chunks of 256 KiB) in a file
    whose dataset b (64 more) follows it: the readahead window grows
    while a is read in file order, but stops at a's last chunk, so no
    chunk of b is fetched (at most 3 requests besides a's 64 chunks)."""
    P = "two.h5"
    with T.Workspace(binary, name="reqra", opts=CHUNKWISE) as ws:
        ws.start()
        rng = np.random.default_rng(5)
        data = rng.random((64, 32768))
        with h5py.File(ws.m(P), "w") as f:
            f.create_dataset("a", data=data, chunks=(1, 32768))
            f.create_dataset("b", data=data[::-1], chunks=(1, 32768))
        code = ("import sys, h5py, numpy as np\n"
                "f = h5py.File(sys.argv[1], 'r')\n"
                "np.save(sys.stdout.buffer, f['a'][...])\n")
        got, n, by = cold_run(ws, ["/usr/bin/python3", "-c", code, ws.m(P)])
        with open(os.path.join(ws.root, "got.npy"), "wb") as o:
            o.write(got)
        T.check(np.array_equal(np.load(os.path.join(ws.root, "got.npy")),
                               data), "a read back wrong")
        T.check(by.get("get", 0) <= 64 + 3, "cold read of a cost %d GETs "
                "(%s): chunks of b were read ahead" % (by.get("get", 0), by))
        ws.stop()
        return "cold read of a: %d requests (%s)" % (n, by)


def settled(ws, timeout=30):
    """The mount's counters once its background fetches are over: no
    request in flight, and no block asked for since the last look."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        st = T.mount_stats(ws)
        now = (st["requests.in_flight"], st.get("whole.blocks", 0),
               st["requests.get"])
        if (now[0] == 0 and last == now) or time.monotonic() > deadline:
            return st
        last = now
        time.sleep(0.2)


@test
def whole_file(binary):
    """A file of at most prefetch_whole of the block cache (a fraction;
    0.5 of 256M by default) is fetched whole in the background once a
    read-only handle reads its chunk data: after a cold read of one row
    of a 16 MiB file of 64 chunks, with the file kept open, reading all of
    it costs no GET.  Closing the file's last handle stops it: with every
    request delayed, a program that reads one row and exits leaves most
    of the file unfetched, and the next one's read begins it again.  A
    cold `h5dump -H` (metadata only) starts nothing, nor does a read
    through an r+ handle; a file over the limit (cache_size=16M: 8 MiB)
    gets one row's chunk, as does any file with prefetch_whole=0.  With a
    disk tier that one mount's prefetch filled, the next mount's prefetch
    is answered from it."""
    P = "chunks.h5"
    notes = []

    def row_held(ws, row):
        """Read one row of d with the file kept open until the mount is
        idle; returns the counters from before and while still open."""
        code = ("import sys, h5py\n"
                "f = h5py.File(sys.argv[1], 'r')\n"
                "f['d'][int(sys.argv[2])]\n"
                "print('read', flush=True)\n"
                "sys.stdin.read()\n")
        s0 = T.mount_stats(ws)
        p = subprocess.Popen(["/usr/bin/python3", "-c", code, ws.m(P),
                              str(row)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
        try:
            T.check(p.stdout.readline() == b"read\n", "reading a row "
                    "failed")
            s1 = settled(ws)
        finally:
            p.stdin.close()
            p.wait(timeout=60)
        return s0, s1

    with T.Workspace(binary, name="reqwhole") as ws:
        ws.start()
        make_chunked(ws.l(P))
        subprocess.run(["cp", ws.l(P), ws.m(P)], check=True, timeout=300)
        with h5py.File(ws.l(P), "r") as f:
            want = f["d"][...]
        read_d = ["/usr/bin/python3", "-c",
                  "import sys, h5py, numpy as np\n"
                  "f = h5py.File(sys.argv[1], 'r')\n"
                  "np.save(sys.stdout.buffer, f['d'][...])\n", ws.m(P)]

        def check_d(what):
            out = subprocess.run(read_d, check=True, capture_output=True,
                                 timeout=300).stdout
            with open(os.path.join(ws.root, "got.npy"), "wb") as o:
                o.write(out)
            T.check(np.array_equal(np.load(os.path.join(ws.root,
                                                        "got.npy")), want),
                    "d read back wrong " + what)

        # metadata only: no prefetch
        n, by, _ = cold_header_dump(ws, P)
        st = settled(ws)
        T.check(st.get("whole.files", 0) == 0 and n <= 3,
                "a cold h5dump -H started a whole-file prefetch (%s "
                "files) or cost %d requests (%s)"
                % (st.get("whole.files"), n, by))
        # one row, file kept open: the rest of the file comes by itself
        ws.remount()
        s0, s1 = row_held(ws, 37)
        n1, by1 = requests(s0, s1)
        T.check(s1.get("whole.files", 0) == 1,
                "no whole-file prefetch after a cold read of one row "
                "(%s files)" % s1.get("whole.files"))
        T.check(by1.get("get", 0) >= 64, "the prefetch fetched %d objects "
                "of a file of 64 chunks" % by1.get("get", 0))
        s1 = settled(ws)
        check_d("after the prefetch")
        s2 = settled(ws)
        n2, by2 = requests(s1, s2)
        T.check(by2.get("get", 0) == 0, "reading all of d after the "
                "prefetch cost %d GETs (%s)" % (by2.get("get", 0), by2))
        notes.append("one row, kept open: %d requests (%s), then all of "
                     "d: %d (%s)" % (n1, by1, n2, by2))
        # an r+ handle's reads start nothing
        ws.remount()
        code = ("import sys, h5py\n"
                "with h5py.File(sys.argv[1], 'r+') as f:\n"
                "    f['d'][5]\n")
        subprocess.run(["/usr/bin/python3", "-c", code, ws.m(P)],
                       check=True, timeout=300)
        st = settled(ws)
        T.check(st.get("whole.files", 0) == 0, "a read through an r+ "
                "handle started a whole-file prefetch")
        # the last close stops it; the next read begins it again
        ws.mount.stop()
        ws.mount.opts = "fault=delay_ms=300"
        ws.mount.start()
        for rnd in range(2):
            s0 = T.mount_stats(ws)
            subprocess.run(read_row_argv(ws.m(P), 37 + rnd), check=True,
                           capture_output=True, timeout=300)
            s1 = settled(ws)
            n, by = requests(s0, s1)
            T.check(s1.get("whole.files", 0) == rnd + 1, "read %d after "
                    "a close: %s whole-file prefetches, want %d"
                    % (rnd, s1.get("whole.files"), rnd + 1))
            T.check(by.get("get", 0) < 48, "read %d of one row and exit: "
                    "%d GETs (%s); the prefetch went on after the last "
                    "close" % (rnd, by.get("get", 0), by))
            notes.append("delayed, read one row and exit %d: %d GETs"
                         % (rnd, by.get("get", 0)))
        # with a disk tier: filled by one mount's prefetch, it answers
        # the next mount's (each block there at once, in the prefetch's
        # own call) with no GET
        ws.mount.stop()
        ws.mount.opts = "cache_dir=" + os.path.join(ws.root, "dcache")
        for rnd in range(2):
            ws.mount.start()
            s0, s1 = row_held(ws, 37)
            n, by = requests(s0, s1)
            T.check(s1.get("whole.files", 0) == 1, "cache_dir, mount %d: "
                    "no whole-file prefetch" % rnd)
            T.check(rnd == 0 or by.get("get", 0) <= 3, "cache_dir, mount "
                    "%d: the prefetch cost %d GETs (%s), want the "
                    "manifest's only" % (rnd, by.get("get", 0), by))
            ws.mount.stop()
        notes.append("cache_dir, second mount: one row %d requests" % n)
        ws.mount.start()
        check_d("from the disk tier")
        ws.stop()
    for opts, why in (("cache_size=16M", "over the limit"),
                      ("prefetch_whole=0", "prefetch_whole=0")):
        with T.Workspace(binary, name="reqwhole0", opts=opts) as ws:
            ws.start()
            make_chunked(ws.m(P))
            ws.remount()
            s0, s1 = row_held(ws, 37)
            n, by = requests(s0, s1)
            T.check(s1.get("whole.files", 0) == 0 and n <= 4,
                    "%s: a cold read of one row started a whole-file "
                    "prefetch (%s files) or cost %d requests (%s), bound 4"
                    % (why, s1.get("whole.files"), n, by))
            notes.append("%s: one row %d requests" % (why, n))
            ws.stop()
    return "; ".join(notes)


@test
def random_reads_bytes(binary):
    """60 random 16x16 reads of a file of 1,280 chunks of 16 KiB, whose
    manifest has no copy of the pages where chunks meet (their 5 MB are over
    the page-fill budget): the bytes fetched stay under 1.5x the chunks the
    reads touch, plus the manifest (a chunk's first and last pages hold a
    few bytes of its neighbours; those come by ranged GETs of just them,
    not by fetching the neighbours whole, which was 3x).  The same reads
    after the kernel dropped the file's pages cost no request: those
    ranged GETs' answers are kept too."""
    P = "edges.h5"
    with T.Workspace(binary, name="reqedge",
                     opts="attr_timeout=60," + CHUNKWISE) as ws:
        ws.start()
        rng = np.random.default_rng(9)
        data = rng.random((2048, 2560), dtype=np.float32)
        with h5py.File(ws.m(P), "w") as f:
            f.create_dataset("d", data=data, chunks=(64, 64))
        ws.remount()
        s0 = T.mount_stats(ws)
        ys = rng.integers(0, 2048 - 16, 60)
        xs = rng.integers(0, 2560 - 16, 60)
        code = ("import sys, h5py, numpy as np\n"
                "f = h5py.File(sys.argv[1], 'r')\n"
                "ys = [int(v) for v in sys.argv[2].split(',')]\n"
                "xs = [int(v) for v in sys.argv[3].split(',')]\n"
                "np.save(sys.stdout.buffer, np.stack([f['d'][y:y + 16, x:x + 16]"
                " for y, x in zip(ys, xs)]))\n")
        want = np.stack([data[y:y + 16, x:x + 16] for y, x in zip(ys, xs)])

        def read_all():
            out = subprocess.run(["/usr/bin/python3", "-c", code, ws.m(P),
                                  ",".join(map(str, ys)),
                                  ",".join(map(str, xs))],
                                 check=True, capture_output=True,
                                 timeout=300).stdout
            with open(os.path.join(ws.root, "got.npy"), "wb") as o:
                o.write(out)
            got = np.load(os.path.join(ws.root, "got.npy"))
            T.check(np.array_equal(got, want), "random reads read back "
                    "wrong")
        read_all()
        s1 = T.mount_stats(ws)
        touched = {(y // 64 + j, x // 64 + i) for y, x in zip(ys, xs)
                   for j in range(2) for i in range(2)
                   if (y + 15) // 64 >= y // 64 + j and (x + 15) // 64 >= x // 64 + i}
        chunk_bytes = len(touched) * 64 * 64 * 4
        manifest = ws.store.size(P)
        moved = s1["bytes.in"] - s0["bytes.in"]
        T.check(moved <= 1.5 * chunk_bytes + manifest,
                "random reads fetched %d bytes for %d of chunks touched and "
                "a %d-byte manifest (bound 1.5x + manifest)"
                % (moved, chunk_bytes, manifest))
        # The kernel drops the file's pages; the same reads again are
        # answered from the daemon's memory: the chunks from the block
        # cache, the neighbours' edge bytes from the kept ranged GETs.
        fd = os.open(ws.m(P), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        read_all()
        s2 = T.mount_stats(ws)
        again, by = requests(s1, s2)
        T.check(s2["reads"] > s1["reads"], "the page cache was not "
                "dropped: no read reached the daemon")
        T.check(again == 0, "the same reads after the page cache was "
                "dropped cost %d requests (%s), want 0" % (again, by))
        ws.stop()
        return ("%d bytes in for %d chunk bytes touched + %d manifest; "
                "again without the page cache: %d reads, %d requests" % (
                    moved, chunk_bytes, manifest, s2["reads"] - s1["reads"],
                    again))


INDEX_KEY = ".cloudh5/i/Dd"  # the index of directory d (dirindex.h)


def ls_l(ws, d, remount=True):
    """`ls -l` of directory d ("" or "name/") on the mount, after a
    remount (cold); checks every name and size against the local copy.
    Returns (requests, by kind)."""
    if remount:
        ws.remount()
    want = sorted(os.listdir(ws.l(d)))
    s0 = T.mount_stats(ws)
    out = subprocess.run(["ls", "-l", "--time-style=+", ws.m(d)],
                         check=True, capture_output=True,
                         text=True).stdout.splitlines()[1:]
    k, by = requests(s0, T.mount_stats(ws))
    sizes = {ln.split()[-1]: int(ln.split()[4]) for ln in out}
    wrong = [nm for nm in want if os.path.isfile(ws.l(d + nm)) and
             sizes.get(nm) != os.path.getsize(ws.l(d + nm))]
    T.check(not wrong and sorted(sizes) == want,
            "`ls -l` sizes differ from the local copy: %s (%d names, want "
            "%d)" % (wrong[:3], len(sizes), len(want)))
    return k, by


@test
def listing_after_commit(binary):
    """Files written through the mount (60 HDF5, 60 text, in a directory
    and in the root): the commits note them in their directory's index,
    so the first cold `ls -l` after a remount takes every size from it,
    a few requests in all, and one file rewritten later is noted too."""
    n = 60
    with T.Workspace(binary, name="lsw", opts="attr_timeout=60") as ws:
        ws.start()
        for p in (ws.l("w"), ws.m("w")):
            os.makedirs(p, exist_ok=True)

        def write(i, rows):
            for root in (ws.l, ws.m):
                with h5py.File(root("w/f%02d.h5" % i), "w") as f:
                    f.create_dataset("x", data=np.arange(rows,
                                                         dtype=np.int64))
                with open(root("w/t%02d.txt" % i), "w") as f:
                    f.write("t" * (rows % 997))
        for i in range(n):
            write(i, 10 + 37 * i)
        for root in (ws.l, ws.m):
            with open(root("top.txt"), "w") as f:
                f.write("top" * 11)

        k, by = ls_l(ws, "w/")
        T.check(k <= 5, "the first cold `ls -l` of %d files written "
                "through the mount cost %d requests (%s), bound 5"
                % (2 * n, k, by))
        notes = ["first cold ls -l: %d (%s)" % (k, by)]
        k, by = ls_l(ws, "")
        T.check(by.get("get", 0) <= 3, "cold `ls -l` of the root cost %d "
                "requests (%s)" % (k, by))
        write(7, 5000)
        k, by = ls_l(ws, "w/")
        T.check(k <= 5, "cold `ls -l` after a rewrite cost %d requests "
                "(%s), bound 5" % (k, by))
        notes.append("after a rewrite: %d (%s)" % (k, by))
        ws.stop()
        return "; ".join(notes)


@test
def listing_plain(binary):
    """A directory of plain objects put there by another tool: `ls -l`
    shows their sizes and writes nothing into the store (no directory
    index where no manifest was seen)."""
    with T.Workspace(binary, name="lsplain") as ws:
        os.makedirs(ws.l("p"))
        for i in range(40):
            data = os.urandom(100 + 13 * i)
            with open(ws.l("p/o%02d.h5" % i), "wb") as f:
                f.write(data)
            ws.store.put("p/o%02d.h5" % i, data)
        ws.start()
        k, by = ls_l(ws, "p/", remount=False)
        ws.stop()
        left = [x for x in T.store_keys(ws.store, ".cloudh5/")
                if not x.startswith(".cloudh5/tmp/")]  # file:// locks
        T.check(not by.get("put") and not left, "a listing of plain "
                "objects wrote into the store: %s, %s" % (by, left[:3]))
        return "ls -l of 40 plain objects: %d requests (%s)" % (k, by)


@test
def listing_one_page(binary):
    n = 1000
    with T.Workspace(binary, name="ls1000") as ws:
        ws.start()
        os.mkdir(ws.m("d"))
        for i in range(n):
            ws.store.put("d/t%04d.txt" % i, b"x" * (i % 7))
        ws.remount()
        s0 = T.mount_stats(ws)
        got = sorted(os.listdir(ws.m("d")))
        k, by = requests(s0, T.mount_stats(ws))
        T.check(got == ["t%04d.txt" % i for i in range(n)], "the listing "
                "of %d files shows %d names" % (n, len(got)))
        # the lookup of d asks for a LIST of one key; the listing, one
        # page of 1,000 (two when the marker takes a place on the first)
        T.check(by.get("list") == 2, "readdir of a directory of %d files "
                "sent %s LISTs (%s), want 2: the lookup's and one page"
                % (n, by.get("list"), by))
        ws.stop()
        return "readdir of %d files: %d requests (%s)" % (n, k, by)


@test
def listing_400(binary):
    """A directory of 400 files (200 HDF5, 200 text) after a remount:
    readdir(3) gives every name (plain `ls`: after the kernel's first
    readdirplus page it asks plain readdir, whose entries must not carry
    inode 0, which glibc skips: only 202 of 1,000 names showed), `ls -l`
    gives each file's size as on a local copy, and costs at most one
    request per file plus the listing (the headers the readdirplus
    prefetch fetched are not fetched again by the lookups).  That listing
    stores the directory index; with it, the next cold `ls -l` costs a
    few requests, and a file changed since costs one header GET."""
    n = 200
    with T.Workspace(binary, name="ls400", opts="attr_timeout=60") as ws:
        ws.start()
        for p in (ws.l("d"), ws.m("d")):
            os.makedirs(p, exist_ok=True)
        for i in range(n):
            for root in (ws.l, ws.m):
                with h5py.File(root("d/f%03d.h5" % i), "w") as f:
                    f.create_dataset("x", data=np.arange(16 + i,
                                                         dtype=np.int32))
                with open(root("d/t%03d.txt" % i), "w") as f:
                    f.write("x" * i)
        want = sorted(os.listdir(ws.l("d")))
        ws.remount()
        got = sorted(os.listdir(ws.m("d")))
        T.check(got == want, "readdir after remount: %d names, want %d "
                "(first missing: %s)" % (len(got), len(want),
                                          sorted(set(want) - set(got))[:3]))
        ls = subprocess.run(["ls", ws.m("d")], check=True,
                            capture_output=True, text=True).stdout.split()
        T.check(len(ls) == 2 * n, "`ls` shows %d names, want %d"
                % (len(ls), 2 * n))
        # As if the files came from a version without the directory
        # index: the listing reads every header, and stores the index.
        ws.stop()
        T.check(ws.store.exists(INDEX_KEY), "the commits stored no "
                "directory index at %s" % INDEX_KEY)
        ws.store.delete(INDEX_KEY)
        ws.start()
        k, by = ls_l(ws, "d/", remount=False)
        # one header GET per file; the lookup of d (a GET, a LIST); the
        # listing's LIST; the index's GET and PUT
        T.check(k <= 2 * n + 5, "cold `ls -l` of %d files cost %d "
                "requests (%s), bound %d" % (2 * n, k, by, 2 * n + 5))
        notes = ["cold ls -l of %d files: %d requests (%s)" % (2 * n, k, by)]

        # That listing stored the directory's index at releasedir: the
        # next cold `ls -l` takes every size from it (the LIST shows each
        # file's ETag unchanged), a few requests in all.  Then two files
        # are replaced in the store directly: their index entries no
        # longer match, so their headers are fetched and their new sizes
        # shown.
        t_end = time.monotonic() + 20
        while not ws.store.exists(INDEX_KEY) and time.monotonic() < t_end:
            time.sleep(0.05)
        T.check(ws.store.exists(INDEX_KEY), "no directory index was "
                "stored at %s" % INDEX_KEY)


        k, by = ls_l(ws, "d/")
        T.check(k <= 5, "cold `ls -l` with the directory index cost %d "
                "requests (%s), bound 5" % (k, by))
        notes.append("with the index: %d (%s)" % (k, by))
        # Changed by another tool, behind the index's back.
        with h5py.File(ws.l("d/f007.h5"), "w") as f:
            f.create_dataset("x", data=np.arange(5000, dtype=np.int32))
        with open(ws.l("d/t009.txt"), "w") as f:
            f.write("y" * 3000)
        for nm in ("d/f007.h5", "d/t009.txt"):
            with open(ws.l(nm), "rb") as f:
                ws.store.put(nm, f.read())
        k, by = ls_l(ws, "d/")
        T.check(by.get("get", 0) <= 2 + 2 and k <= 5 + 2 + 1,
                "cold `ls -l` after 2 files changed cost %d requests (%s)"
                % (k, by))
        notes.append("2 files changed: %d (%s)" % (k, by))
        ws.stop()
        return "; ".join(notes)


if __name__ == "__main__":
    T.run_tests("test_requests", TESTS)
