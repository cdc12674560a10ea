"""Shared helpers for the cloudh5 integration tests.

Each test script mounts a file:// store with the real daemon (mount.cloudh5
-f in the background), does things through the mount with h5py, cp, h5dump
and plain file I/O, and checks three things: the bytes read back (after a
remount) equal the bytes written, h5dump says the same about both copies, and
the store holds exactly the objects the bucket layout promises (one per
stored chunk, nothing left behind).

Only the standard library, numpy and h5py (Debian packages) are used; run
with /usr/bin/python3.

Fake mode (CH5_FAKE_MOUNT=1) replaces the daemon by a plain directory so the
test logic itself can be exercised without a daemon. It skips every store
assertion, so a run in fake mode never reports success: the runner exits 77
(skipped) instead. CTest sets CH5_FAKE_MOUNT=0 explicitly.
"""

import collections
import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

FAKE = os.environ.get("CH5_FAKE_MOUNT") == "1"
MAGIC = b"\x89CH5MAN\n"
HDF5_SIG = b"\x89HDF\r\n\x1a\n"
META = ".cloudh5"
SKIP = 77

PLUGIN_DIR = "/usr/lib/x86_64-linux-gnu/hdf5/serial/plugins"
if "HDF5_PLUGIN_PATH" not in os.environ and os.path.isdir(PLUGIN_DIR):
    os.environ["HDF5_PLUGIN_PATH"] = PLUGIN_DIR

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ERROR: ThreadSanitizer",
                   "WARNING: ThreadSanitizer")

# Every Mount still mounted, so an interrupted run can clean up.
_LIVE = []
# Daemon logs of the test currently running, dumped when it fails.
_LOGS = []
# Failures so far (a workspace that saw one is kept for inspection).
_NFAIL = [0]


class Fail(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


# ---------------------------------------------------------------- mounting

def _is_mounted(path):
    """True if path is a mount point. Reads /proc/self/mountinfo rather than
    stat()ing the path, which could hang on a wedged FUSE daemon."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                        mp)
            if mp == path:
                return True
    return False


class Mount:
    """mount.cloudh5 file://STORE MNT -f -o spool_dir=...,OPTS, run in the
    background. Every start uses a fresh spool directory, so a remount can
    only see what was committed to the store.

    stop() unmounts, waits for the daemon to exit, and fails if it did not
    exit with status 0 or printed a sanitizer report."""

    def __init__(self, binary, store, mnt, workdir, opts=None):
        self.binary = binary
        self.store = store
        self.mnt = mnt
        self.workdir = workdir
        self.opts = opts
        self.proc = None
        self.log = None
        self.n = 0

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        if FAKE:
            # The mount point is the store; nothing to start.
            return self
        check(not _is_mounted(self.mnt), "%s is already mounted" % self.mnt)
        self.n += 1
        spool = os.path.join(self.workdir, "spool%d" % self.n)
        os.makedirs(spool)
        self.log = os.path.join(self.workdir, "daemon%d.log" % self.n)
        opts = "spool_dir=" + spool
        if self.opts:
            opts += "," + self.opts
        cmd = [self.binary, "file://" + self.store, self.mnt, "-f", "-o",
               opts]
        with open(self.log, "wb") as logf:
            logf.write(("$ " + " ".join(cmd) + "\n").encode())
            logf.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf)
        _LOGS.append(self.log)
        _LIVE.append(self)
        deadline = time.monotonic() + 20
        while not _is_mounted(self.mnt):
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                _LIVE.remove(self)
                raise Fail("mount.cloudh5 exited with status %d before the "
                           "mount appeared (log %s)" % (rc, self.log))
            if time.monotonic() > deadline:
                self._kill()
                raise Fail("mount did not appear within 20 s (log %s)"
                           % self.log)
            time.sleep(0.05)
        return self

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        subprocess.run(["fusermount3", "-uz", self.mnt],
                       stderr=subprocess.DEVNULL)
        if self in _LIVE:
            _LIVE.remove(self)
        self.proc = None

    def stop(self):
        """Unmount and wait for the daemon. Raises Fail on an unclean
        exit, after cleaning up."""
        if FAKE or self.proc is None:
            return
        problems = []
        ok = False
        for _ in range(40):
            r = subprocess.run(["fusermount3", "-u", self.mnt],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            if r.returncode == 0 or not _is_mounted(self.mnt):
                ok = True
                break
            time.sleep(0.25)
        if not ok:
            problems.append("fusermount3 -u failed: %s"
                            % r.stdout.decode(errors="replace").strip())
            subprocess.run(["fusermount3", "-uz", self.mnt])
        try:
            rc = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            problems.append("daemon still running 120 s after unmount; "
                            "sent SIGTERM")
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        if rc != 0:
            problems.append("daemon exited with status %d" % rc)
        self.proc = None
        if self in _LIVE:
            _LIVE.remove(self)
        with open(self.log, "rb") as f:
            text = f.read().decode(errors="replace")
        for mark in SANITIZER_MARKS:
            if mark in text:
                problems.append("daemon log contains %r" % mark)
        if problems:
            raise Fail("; ".join(problems) + " (log %s)" % self.log)

    def remount(self):
        self.stop()
        return self.start()

    def path(self, rel=""):
        return os.path.join(self.mnt, rel)


class Workspace:
    """A temporary directory holding store/, local/ (the local-disk twin),
    mnt/ and the daemons' spool dirs and logs. Use as a context manager:
    the mount is always stopped and the directory removed on exit (kept,
    with its path printed, when the body failed)."""

    def __init__(self, binary, opts=None, name="ws"):
        base = os.environ.get("CH5_TMPDIR") or None
        self.root = tempfile.mkdtemp(prefix="ch5-%s-" % name, dir=base)
        self.store = os.path.join(self.root, "store")
        self.local = os.path.join(self.root, "local")
        self.mntdir = os.path.join(self.root, "mnt")
        os.makedirs(self.store)
        os.makedirs(self.local)
        if FAKE:
            self.mntdir = self.store
        self.mount = Mount(binary, self.store, self.mntdir, self.root, opts)
        self.block_size = _block_size_opt(opts)
        self.nfail = _NFAIL[0]

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        failed = et is not None
        try:
            self.mount.stop()
        except Fail:
            failed = True
            if et is None:
                raise
            traceback.print_exc()
        finally:
            if self.mount.proc is not None:
                self.mount._kill()
            if _is_mounted(self.mntdir) and not FAKE:
                # Never rm -rf through a live mount.
                print("  %s is still mounted; workspace kept" % self.mntdir)
            elif (not failed and _NFAIL[0] == self.nfail
                  and not os.environ.get("CH5_KEEP")):
                shutil.rmtree(self.root, ignore_errors=True)
            else:
                print("  workspace kept: %s" % self.root)
        return False

    def start(self):
        return self.mount.start()

    def stop(self):
        self.mount.stop()

    def remount(self):
        return self.mount.remount()

    def m(self, rel=""):
        """Path of rel on the mount."""
        return os.path.join(self.mntdir, rel)

    def l(self, rel=""):
        """Path of rel on the local-disk twin."""
        return os.path.join(self.local, rel)


def _block_size_opt(opts):
    if not opts:
        return None
    for o in opts.split(","):
        if o.startswith("block_size="):
            return parse_size(o.split("=", 1)[1])
    return None


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s and s[-1].upper() in mult:
        return int(s[:-1]) * mult[s[-1].upper()]
    return int(s)


def watchdog_fire(name, seconds):
    """A test ran past its time: kill the daemons so that system calls
    stuck on their mounts fail (ENOTCONN) instead of hanging until CTest
    kills everything and leaves the mounts behind."""
    print("WATCHDOG: %s still running after %d s; killing mount.cloudh5 "
          "(pids %s)" % (name, seconds, [m.proc.pid for m in _LIVE
                                         if m.proc is not None]))
    sys.stdout.flush()
    for m in list(_LIVE):
        if m.proc is not None and m.proc.poll() is None:
            m.proc.kill()


def cleanup_all():
    for m in list(_LIVE):
        try:
            m._kill()
        except Exception:
            pass


# ---------------------------------------------------------------- compare

def assert_same_bytes(expected, actual):
    """Byte-for-byte comparison of two files, naming the first difference."""
    se, sa = os.stat(expected).st_size, os.stat(actual).st_size
    check(se == sa, "size differs: %s has %d bytes, %s has %d (st_size)"
          % (expected, se, actual, sa))
    off = 0
    with open(expected, "rb") as fe, open(actual, "rb") as fa:
        while True:
            be = fe.read(1 << 20)
            ba = fa.read(1 << 20)
            if be != ba:
                n = min(len(be), len(ba))
                i = next((k for k in range(n) if be[k] != ba[k]), n)
                raise Fail("bytes differ at offset %d (0x%x) between %s and "
                           "%s: expected %s got %s (read lengths %d/%d)"
                           % (off + i, off + i, expected, actual,
                              be[i:i + 16].hex(), ba[i:i + 16].hex(),
                              len(be), len(ba)))
            if not be:
                break
            off += len(be)
    return se


_HDR = re.compile(r'^HDF5 "[^"\n]*" \{$', re.M)


def _h5dump_start(path, args):
    d, b = os.path.split(os.path.abspath(path))
    p = subprocess.Popen(["h5dump"] + list(args) + [b], cwd=d,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    return p, d


def _h5dump_finish(started, timeout=300):
    p, d = started
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise Fail("h5dump timed out after %d s in %s" % (timeout, d))
    out = out.decode(errors="replace")
    err = err.decode(errors="replace")
    out = _HDR.sub('HDF5 "FILE" {', out, count=1)
    out = out.replace(d, "DIR")
    err = err.replace(d, "DIR")
    return p.returncode, out, err


def h5dump(path, args=(), timeout=300):
    """Runs h5dump ARGS BASENAME from the file's own folder (external links
    and external raw data resolve against it). Returns (rc, stdout, stderr)
    with the file name line normalized."""
    return _h5dump_finish(_h5dump_start(path, args), timeout)


def _diff(a, b, na, nb, limit=40):
    """A unified diff of the region around the first difference (the
    outputs can be tens of MB, too big for difflib as a whole)."""
    la, lb = a.splitlines(), b.splitlines()
    i = 0
    while i < len(la) and i < len(lb) and la[i] == lb[i]:
        i += 1
    lo = max(0, i - 3)
    lines = list(difflib.unified_diff(la[lo:i + limit], lb[lo:i + limit],
                                      na, nb, lineterm="", n=2))
    return ("first difference at line %d (of %d / %d)\n" % (
        i + 1, len(la), len(lb)) + "\n".join(lines[:limit]))


def assert_h5dump_equal(expected, actual, args=(), expect_ok=True):
    """h5dump on both files must give the same status, stdout and stderr.
    With expect_ok, the status must also be 0."""
    # Both at once: some corpus files dump to 50 MB of text.
    pe = _h5dump_start(expected, args)
    pa = _h5dump_start(actual, args)
    re_, oe, ee = _h5dump_finish(pe)
    ra, oa, ea = _h5dump_finish(pa)
    check(re_ == ra, "h5dump %s exit status differs: local %d, mount %d\n"
          "local stderr: %s\nmount stderr: %s"
          % (" ".join(args), re_, ra, ee[-800:], ea[-800:]))
    check(oe == oa, "h5dump %s output differs:\n%s"
          % (" ".join(args), _diff(oe, oa, "local", "mount")))
    check(ee == ea, "h5dump %s stderr differs:\n%s"
          % (" ".join(args), _diff(ee, ea, "local", "mount")))
    if expect_ok:
        check(re_ == 0, "h5dump %s failed on the local copy too (%d): %s"
              % (" ".join(args), re_, ee[-800:]))
    check(len(oe) > 0 or re_ != 0, "h5dump printed nothing")
    return re_


# ---------------------------------------------------------------- store

def store_keys(store, prefix=""):
    """Keys (paths relative to the store dir, '/'-separated) of the regular
    files under store/prefix."""
    top = os.path.join(store, prefix) if prefix else store
    keys = []
    if not os.path.isdir(top):
        return keys
    for d, _, files in os.walk(top):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), store)
            keys.append("/".join(_local_unescape(c)
                                 for c in rel.split("/")))
    return sorted(keys)


def _local_unescape(comp):
    """The file:// backend stores a key component that is "", ".", ".."
    or starts with '%' (and "tmp" below .cloudh5) with one more leading '%'
    (see ost.h); undo that to get the key back from a file name."""
    return comp[1:] if comp.startswith("%") else comp


def _unescape(comp):
    return re.sub(rb"%([0-9A-Fa-f]{2})",
                  lambda m: bytes([int(m.group(1), 16)]),
                  comp.encode("utf-8", "surrogateescape")).decode(
                      "utf-8", "surrogateescape")


_CHUNK = re.compile(r"^\d+(\.\d+)*$")
_BLOCK = re.compile(r"^b\d+$")


def chunk_objects(store, P):
    """Parses the keys under .cloudh5/c/<P>/ into
    {'tags': set, 'chunks': {dset: Counter(idx tuple)},
     'blocks': {dset: [names]}, 'raw': [keys], 'other': [keys]}."""
    prefix = "%s/c/%s/" % (META, P)
    res = {"tags": set(), "chunks": collections.defaultdict(
        collections.Counter), "blocks": collections.defaultdict(list),
        "raw": [], "other": [], "n": 0}
    for k in store_keys(store, prefix):
        res["n"] += 1
        rest = k[len(prefix):].split("/")
        if len(rest) >= 3 and rest[1] == "@raw":
            res["tags"].add(rest[0])
            res["raw"].append(k)
            continue
        if len(rest) < 3:
            res["other"].append(k)
            continue
        res["tags"].add(rest[0])
        dset = "/" + "/".join(_unescape(c) for c in rest[1:-1])
        leaf = rest[-1]
        if _CHUNK.match(leaf):
            res["chunks"][dset][tuple(int(x) for x in leaf.split("."))] += 1
        elif _BLOCK.match(leaf):
            res["blocks"][dset].append(leaf)
        else:
            res["other"].append(k)
    return res


def objects_of(store, P):
    """Every key that belongs to the file at mount path P."""
    keys = store_keys(store, "%s/c/%s/" % (META, P))
    if os.path.isfile(os.path.join(store, P)):
        keys.append(P)
    return keys


def assert_no_objects(store, P):
    if FAKE:
        return
    left = objects_of(store, P)
    check(not left, "objects of %s left in the store: %s%s"
          % (P, left[:5], " ... (%d)" % len(left) if len(left) > 5 else ""))


def assert_plain_object(store, P, expected):
    """The file at P is exactly one plain object with the bytes of the
    local file `expected`, and nothing under .cloudh5/c/P/.

    One exception: a file that itself starts with the manifest magic may
    instead be wrapped in a manifest whose only pieces are @raw objects
    (stored verbatim it would be taken for a manifest on the next mount).
    The byte comparison through the mount is what proves it intact."""
    if FAKE:
        return "fake mode: store not checked"
    key = os.path.join(store, P)
    check(os.path.isfile(key), "no plain object at key %r" % P)
    extra = store_keys(store, "%s/c/%s/" % (META, P))
    with open(key, "rb") as f:
        head = f.read(8)
    with open(expected, "rb") as f:
        ehead = f.read(8)
    if ehead == MAGIC and extra:
        got = chunk_objects(store, P)
        check(not got["chunks"] and not got["blocks"] and not got["other"],
              "magic-prefixed plain file %s has non-@raw objects: %s"
              % (P, extra[:5]))
        check(len(got["tags"]) == 1, "objects of %s under several tags: %s"
              % (P, sorted(got["tags"])))
        return "wrapped in a manifest + %d @raw objects" % len(got["raw"])
    check(not extra, "non-HDF5 file %s has chunk objects: %s"
          % (P, extra[:5]))
    if ehead != MAGIC:
        check(head != MAGIC, "plain file %s was stored as a manifest" % P)
    try:
        assert_same_bytes(expected, key)
    except Fail as e:
        raise Fail("plain object %s does not hold the file's bytes: %s"
                   % (P, e))
    return "plain object"


def expected_storage(h5path):
    """What the bucket layout says the store must hold for this HDF5 file:
    {obj_addr: {'name', 'layout', 'chunks': set(idx)|None, 'size',
    'allocated'}} for every dataset."""
    import h5py
    from h5py import h5d, h5o
    out = {}
    with h5py.File(h5path, "r") as f:
        names = []
        f.visititems(lambda n, o: names.append(n)
                     if isinstance(o, h5py.Dataset) else None)
        for n in names:
            ds = f[n]
            addr = h5o.get_info(ds.id).addr
            if addr in out:
                continue
            dcpl = ds.id.get_create_plist()
            layout = dcpl.get_layout()
            e = {"name": "/" + n, "layout": layout, "chunks": None,
                 "size": ds.id.get_storage_size(), "allocated": False,
                 "external": dcpl.get_external_count() > 0}
            if layout == h5d.CHUNKED:
                e["chunks"] = _chunk_set(ds)
            elif layout == h5d.CONTIGUOUS:
                e["allocated"] = (ds.id.get_offset() is not None
                                  and not e["external"])
            out[addr] = e
    return out


def _chunk_set(ds):
    n = ds.id.get_num_chunks()
    cs = ds.chunks
    shape = ds.shape
    total = 1
    for d, c in zip(shape, cs):
        total *= -(-d // c)
    if n == total and n > 2000:
        # Every chunk is allocated: no need for n O(n) index look-ups.
        import itertools
        return set(itertools.product(*[range(-(-d // c))
                                       for d, c in zip(shape, cs)]))
    got = set()
    for i in range(n):
        info = ds.id.get_chunk_info(i)
        if info.size > 0:
            got.add(tuple(o // c for o, c in zip(info.chunk_offset, cs)))
    check(len(got) == n, "%s: %d chunks but %d distinct offsets"
          % (ds.name, n, len(got)))
    return got


def _sample(it, k=5):
    it = sorted(it)
    return "%s%s" % (it[:k], " ... (%d)" % len(it) if len(it) > k else "")


def assert_store_layout(store, P, h5path, block_size=None):
    """The file at mount path P (an HDF5 file whose bytes equal the local
    file h5path) is stored as a manifest at key P plus exactly one object
    per stored chunk of each chunked dataset, block objects for allocated
    contiguous datasets, and nothing else but @raw runs. Returns a short
    summary string."""
    if FAKE:
        return "fake mode: store not checked"
    import h5py
    from h5py import h5d, h5o
    key = os.path.join(store, P)
    check(os.path.isfile(key), "no manifest object at key %r" % P)
    with open(key, "rb") as f:
        head = f.read(8)
    check(head == MAGIC, "object %r does not start with the manifest magic "
          "(starts %s): HDF5 file stored as a plain object?" % (P, head.hex()))
    exp = expected_storage(h5path)
    got = chunk_objects(store, P)
    check(not got["other"], "unexpected keys under %s/c/%s/: %s"
          % (META, P, _sample(got["other"])))
    # Map the dataset paths used in keys to objects.
    by_addr = {}
    with h5py.File(h5path, "r") as f:
        for dset in set(got["chunks"]) | set(got["blocks"]):
            try:
                obj = f[dset]
            except KeyError:
                raise Fail("store has objects for %r, which is not a "
                           "dataset of %s" % (dset, P))
            check(isinstance(obj, h5py.Dataset),
                  "store has chunk objects for %r, not a dataset" % dset)
            addr = h5o.get_info(obj.id).addr
            check(addr not in by_addr, "dataset objects stored under two "
                  "paths: %r and %r" % (by_addr.get(addr), dset))
            by_addr[addr] = dset
    nchunks = nblocks = 0
    for addr, e in exp.items():
        dset = by_addr.get(addr)
        chunks = got["chunks"].get(dset, collections.Counter()) \
            if dset else collections.Counter()
        blocks = got["blocks"].get(dset, []) if dset else []
        if e["layout"] == h5d.CHUNKED:
            want = e["chunks"]
            dup = [k for k, v in chunks.items() if v > 1]
            missing = want - set(chunks)
            extra = set(chunks) - want
            check(not dup and not missing and not extra,
                  "dataset %s: %d stored chunks, store has %d chunk objects "
                  "(missing %s, extra %s, duplicated %s)"
                  % (e["name"], len(want), sum(chunks.values()),
                     _sample(missing), _sample(extra), _sample(dup)))
            check(not blocks, "chunked dataset %s has block objects %s"
                  % (e["name"], blocks[:5]))
            nchunks += len(want)
        elif e["layout"] == h5d.CONTIGUOUS and e["allocated"] and e["size"]:
            check(not chunks, "contiguous dataset %s has chunk objects"
                  % e["name"])
            check(len(blocks) == len(set(blocks)), "duplicate blocks")
            if block_size:
                n = -(-e["size"] // block_size)
                check(len(blocks) == n,
                      "contiguous dataset %s (%d bytes, block_size %d): "
                      "expected %d block objects, store has %d %s"
                      % (e["name"], e["size"], block_size, n, len(blocks),
                         sorted(blocks)[:8]))
            else:
                check(len(blocks) >= 1, "contiguous dataset %s (%d bytes) "
                      "has no block objects under %s/c/%s/"
                      % (e["name"], e["size"], META, P))
            nblocks += len(blocks)
        else:
            check(not chunks and not blocks,
                  "dataset %s (layout %d, allocated %s) should have no "
                  "objects, has %d chunks %d blocks"
                  % (e["name"], e["layout"], e["allocated"],
                     sum(chunks.values()), len(blocks)))
    return "%d chunk objects, %d block objects, %d raw, tags %s" % (
        nchunks, nblocks, len(got["raw"]), sorted(got["tags"])[:3])


def is_hdf5(path):
    """True if libhdf5 can open the file (a signature alone is not enough:
    a truncated .h5 has one but is not a valid file)."""
    import h5py
    try:
        with h5py.File(path, "r"):
            return True
    except Exception:
        return False


# ---------------------------------------------------------------- runner

class Runner:
    """Runs named test callables, prints PASS/FAIL per test with the reason
    and the tail of the daemon logs of a failed test, then a summary."""

    def __init__(self, title):
        self.title = title
        self.passed = []
        self.failed = []
        self.skipped = []
        self.t0 = time.monotonic()
        self.only = []
        self.exclude = []
        args = sys.argv[1:]
        self.args = {}
        i = 0
        while i < len(args):
            a = args[i]
            if a == "-k":
                self.only.append(args[i + 1])
                i += 2
            elif a == "-x":
                self.exclude.append(args[i + 1])
                i += 2
            elif a.startswith("--") and "=" in a:
                k, v = a[2:].split("=", 1)
                self.args[k] = v
                i += 1
            elif a.startswith("--"):
                self.args[a[2:]] = args[i + 1]
                i += 2
            else:
                raise SystemExit("unknown argument %r" % a)
        signal.signal(signal.SIGTERM, self._sigterm)
        if FAKE:
            print("*" * 72)
            print("* CH5_FAKE_MOUNT=1: the mount is a plain directory and the "
                  "store is\n* not checked. This run cannot pass; it ends "
                  "with status 77.")
            print("*" * 72)
        self.binary = self.args.get("mount-bin")
        if not FAKE:
            if not self.binary or not os.access(self.binary, os.X_OK):
                print("FATAL: --mount-bin %r is not an executable" %
                      self.binary)
                sys.exit(1)
            self.binary = os.path.abspath(self.binary)

    def _sigterm(self, *_):
        cleanup_all()
        sys.exit(143)

    def wanted(self, name):
        if any(k in name for k in self.exclude):
            return False
        return not self.only or any(k in name for k in self.only)

    def run(self, name, fn, *a, **kw):
        """Runs fn(*a, **kw) as test `name` (skipped unless wanted()).
        Returns its result, or None when it failed or was skipped."""
        if not self.wanted(name):
            return None
        return self.step(name, fn, *a, **kw)

    def step(self, name, fn, *a, **kw):
        """Like run(), but never filtered out by -k/-x: for the steps
        other tests depend on (unmount, mount again, copy)."""
        del _LOGS[:]
        t = time.monotonic()
        limit = int(os.environ.get("CH5_TEST_TIMEOUT", "420"))
        dog = threading.Timer(limit, watchdog_fire, (name, limit))
        dog.daemon = True
        dog.start()
        try:
            r = fn(*a, **kw)
        except Exception as e:
            dog.cancel()
            dt = time.monotonic() - t
            self.failed.append(name)
            _NFAIL[0] += 1
            print("FAIL %s (%.1fs)" % (name, dt))
            if isinstance(e, Fail):
                print("     " + str(e).replace("\n", "\n     "))
            else:
                traceback.print_exc(file=sys.stdout)
            self.dump_logs()
            sys.stdout.flush()
            return None
        dog.cancel()
        dt = time.monotonic() - t
        self.passed.append(name)
        print("PASS %s (%.1fs)%s" % (name, dt, " - " + r
                                    if isinstance(r, str) else ""))
        sys.stdout.flush()
        return r

    def fail(self, name, msg):
        self.failed.append(name)
        _NFAIL[0] += 1
        print("FAIL %s\n     %s" % (name, msg.replace("\n", "\n     ")))
        sys.stdout.flush()

    def ok(self, name, msg=""):
        self.passed.append(name)
        print("PASS %s%s" % (name, " - " + msg if msg else ""))
        sys.stdout.flush()

    def dump_logs(self, lines=60):
        for log in _LOGS:
            try:
                with open(log, "rb") as f:
                    text = f.read().decode(errors="replace").splitlines()
            except OSError:
                continue
            print("     --- daemon log %s (last %d lines) ---"
                  % (log, min(lines, len(text))))
            for ln in text[-lines:]:
                print("     | " + ln)

    def finish(self):
        cleanup_all()
        dt = time.monotonic() - self.t0
        print("%s: %d passed, %d failed (%.1fs)"
              % (self.title, len(self.passed), len(self.failed), dt))
        if self.failed:
            print("failed: " + " ".join(self.failed))
            sys.exit(1)
        if FAKE:
            print("FAKE MODE: not a real result; exiting 77")
            sys.exit(SKIP)
        if not self.passed:
            print("no test ran")
            sys.exit(1)
        sys.exit(0)


def run_tests(title, tests):
    """The main() of a test script: runs each function of `tests` as a
    test named after it, with the daemon binary as argument, prints the
    summary and exits; always cleans up the mounts."""
    try:
        R = Runner(title)
        for fn in tests:
            R.run(fn.__name__, fn, R.binary)
        R.finish()
    finally:
        cleanup_all()
