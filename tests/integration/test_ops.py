#!/usr/bin/python3
"""File system operations through the mount: cp, h5py modes w/a/r+,
rename, unlink, directories, concurrent readers, 100,000 chunks, truncate,
stat, ls, objects put in the store by another tool.

Every operation is done twice, on the mount and on a local-disk twin, and
after a remount the two must be byte-identical; the store must then hold
exactly what the bucket layout promises, with nothing left behind.

usage: test_ops.py --mount-bin build/fs/mount.cloudh5
         [-k NAME]... [-x NAME]...

-k runs only the tests whose name contains NAME, -x skips them.
"""

import errno
import hashlib
import os
import random
import shutil
import stat
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

import h5py  # noqa: E402

R = None
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def both(ws, fn, *rels):
    """fn(*paths) on the local twin, then on the mount."""
    fn(*[ws.l(r) for r in rels])
    fn(*[ws.m(r) for r in rels])


def same(ws, rel, dump=None, layout=True, local=None):
    """After a remount: rel on the mount equals the local twin (local rel,
    default the same rel); h5dump (args `dump`, None = full dump) agrees;
    the store layout holds."""
    loc = ws.l(local or rel)
    T.assert_same_bytes(loc, ws.m(rel))
    if T.is_hdf5(loc):
        T.assert_h5dump_equal(loc, ws.m(rel), args=dump or [])
        if layout:
            return T.assert_store_layout(ws.store, rel, loc, ws.block_size)
    elif layout:
        T.assert_plain_object(ws.store, rel, loc)
    return ""


def sample_h5(p, seed=0, n=3):
    r = np.random.default_rng(seed)
    with h5py.File(p, "w") as f:
        f.create_dataset("gz", data=r.random((300, 400)).astype("f4"),
                         chunks=(50, 100), compression="gzip", shuffle=True)
        for i in range(n):
            f.create_dataset("g%d/raw" % i, data=r.integers(
                0, 1000, (64, 64), dtype="i4"), chunks=(16, 32))
        f.create_dataset("contig", data=np.arange(20000, dtype="f8"))
        f.attrs["seed"] = seed


# ---------------------------------------------------------------- cp

@test
def cp_roundtrip(binary):
    with T.Workspace(binary, name="cp") as ws:
        ws.start()
        src = ws.l("src.h5")
        sample_h5(src, seed=1)
        subprocess.run(["cp", src, ws.m("copied.h5")], check=True)
        subprocess.run(["cp", ws.m("copied.h5"), ws.l("back1.h5")],
                       check=True)
        T.assert_same_bytes(src, ws.l("back1.h5"))
        ws.remount()
        T.assert_same_bytes(src, ws.m("copied.h5"))
        subprocess.run(["cp", ws.m("copied.h5"), ws.l("back2.h5")],
                       check=True)
        T.assert_same_bytes(src, ws.l("back2.h5"))
        T.assert_h5dump_equal(src, ws.m("copied.h5"))
        return T.assert_store_layout(ws.store, "copied.h5", src)


@test
def cp_overwrite(binary):
    """cp over an existing .h5 with a different .h5: only the new file's
    objects remain."""
    with T.Workspace(binary, name="cpo") as ws:
        ws.start()
        sample_h5(ws.l("a.h5"), seed=2, n=5)
        sample_h5(ws.l("b.h5"), seed=3, n=1)
        subprocess.run(["cp", ws.l("a.h5"), ws.m("x.h5")], check=True)
        subprocess.run(["cp", ws.l("b.h5"), ws.m("x.h5")], check=True)
        ws.remount()
        T.assert_same_bytes(ws.l("b.h5"), ws.m("x.h5"))
        return T.assert_store_layout(ws.store, "x.h5", ws.l("b.h5"))


# ---------------------------------------------------------------- h5py modes

@test
def h5py_modes(binary):
    with T.Workspace(binary, name="modes") as ws:
        ws.start()
        P = "modes.h5"

        def step_w(p):
            with h5py.File(p, "w") as f:
                f.create_dataset("a", data=np.arange(10000, dtype="i4")
                                 .reshape(100, 100), chunks=(10, 10),
                                 compression="gzip")
                f.create_dataset("b", data=np.arange(5000.0))

        def step_a(p):
            with h5py.File(p, "a") as f:
                f.create_dataset("c", data=np.ones((40, 40)), chunks=(8, 8))
                f.attrs["added_in_a"] = 1

        def step_rplus(p):
            with h5py.File(p, "r+") as f:
                f["a"][0:10, 0:10] = -1          # exactly one chunk
                f.create_dataset("d", data=np.arange(7), chunks=(7,))

        def step_w_again(p):
            with h5py.File(p, "w") as f:
                f.create_dataset("z", data=np.arange(30), chunks=(10,))

        before = None
        for label, fn in (("w", step_w), ("a", step_a), ("r+", step_rplus),
                          ("w again", step_w_again)):
            both(ws, fn, P)
            ws.stop()
            keys = set(T.store_keys(ws.store, ".cloudh5/c/" + P + "/"))
            if label == "r+" and before is not None and not T.FAKE:
                # Informational: how many chunk objects were rewritten.
                print("     r+ rewrote %d of %d chunk objects"
                      % (len(keys - before), len(keys)))
            before = keys
            ws.start()
            try:
                info = same(ws, P)
            except AssertionError as e:
                raise T.Fail("after step %r: %s" % (label, e))
        if not T.FAKE:
            with h5py.File(ws.m(P), "r") as f:
                T.check(sorted(f.keys()) == ["z"], "w did not truncate: %s"
                        % sorted(f.keys()))
        return info


@test
def h5py_modify_without_remount(binary):
    """Readers on the same mount see each committed version in turn."""
    with T.Workspace(binary, name="modes2") as ws:
        ws.start()
        P = ws.m("v.h5")
        for i in range(4):
            with h5py.File(P, "a") as f:
                if "x" not in f:
                    f.create_dataset("x", shape=(1000,), dtype="i4",
                                     chunks=(100,), maxshape=(None,))
                f["x"][i * 100:(i + 1) * 100] = i + 1
            with h5py.File(P, "r") as f:
                got = f["x"][...]
            want = np.zeros(1000, "i4")
            for k in range(i + 1):
                want[k * 100:(k + 1) * 100] = k + 1
            T.check((got == want).all(), "version %d reads wrong data" % i)
        return "4 versions"


# ---------------------------------------------------------------- rename

@test
def rename(binary):
    with T.Workspace(binary, name="ren") as ws:
        ws.start()
        for base in (ws.l(), ws.m()):
            os.makedirs(os.path.join(base, "sub/deeper"))
        both(ws, lambda p: sample_h5(p, 4), "r1.h5")
        both(ws, lambda p: sample_h5(p, 5), "r2.h5")
        both(ws, lambda p: sample_h5(p, 6), "victim.h5")
        both(ws, lambda p: open(p, "wb").write(b"plain\n" * 1000), "p1.bin")
        ws.remount()    # rename committed files (see rename_just_written)
        both(ws, os.rename, "r1.h5", "r1_renamed.h5")
        both(ws, os.rename, "r2.h5", "sub/deeper/r2.h5")
        both(ws, os.rename, "r1_renamed.h5", "victim.h5")   # replaces
        both(ws, os.rename, "p1.bin", "sub/p1.txt")
        for rel in ("victim.h5", "sub/deeper/r2.h5", "sub/p1.txt"):
            T.assert_same_bytes(ws.l(rel), ws.m(rel))
        T.check(sorted(os.listdir(ws.m())) == ["sub", "victim.h5"],
                "root after renames: %s" % sorted(os.listdir(ws.m())))
        ws.stop()
        for gone in ("r1.h5", "r1_renamed.h5", "r2.h5", "p1.bin"):
            T.assert_no_objects(ws.store, gone)
        ws.start()
        out = []
        for rel in ("victim.h5", "sub/deeper/r2.h5", "sub/p1.txt"):
            out.append(same(ws, rel))
        return out[0]


@test
def rename_just_written(binary):
    """Rename right after the last close, in the same mount session."""
    with T.Workspace(binary, name="renj") as ws:
        ws.start()
        both(ws, lambda p: sample_h5(p, 17), "j1.h5")
        both(ws, lambda p: open(p, "wb").write(b"plain\n" * 99), "j2.bin")
        both(ws, os.rename, "j1.h5", "j1b.h5")
        both(ws, os.rename, "j2.bin", "j2b.bin")
        T.assert_same_bytes(ws.l("j1b.h5"), ws.m("j1b.h5"))
        T.assert_same_bytes(ws.l("j2b.bin"), ws.m("j2b.bin"))
        ws.stop()
        T.assert_no_objects(ws.store, "j1.h5")
        T.assert_no_objects(ws.store, "j2.bin")
        ws.start()
        same(ws, "j2b.bin")
        return same(ws, "j1b.h5")


@test
def rename_then_reuse_name(binary):
    """Rename a.h5 -> b.h5, then create and delete a new a.h5: b.h5 must
    be untouched (whatever the old name's keys still hold)."""
    with T.Workspace(binary, name="reuse") as ws:
        ws.start()
        both(ws, lambda p: sample_h5(p, 18), "a.h5")
        ws.remount()
        both(ws, os.rename, "a.h5", "b.h5")
        both(ws, lambda p: sample_h5(p, 19), "a.h5")
        ws.remount()
        T.assert_same_bytes(ws.l("a.h5"), ws.m("a.h5"))
        T.assert_same_bytes(ws.l("b.h5"), ws.m("b.h5"))
        both(ws, os.unlink, "a.h5")
        ws.remount()
        T.check(not os.path.exists(ws.m("a.h5")), "a.h5 came back")
        return same(ws, "b.h5")


@test
def rename_dir(binary):
    with T.Workspace(binary, name="rendir") as ws:
        ws.start()
        for base in (ws.l(), ws.m()):
            os.makedirs(os.path.join(base, "d1/inner"))
        both(ws, lambda p: sample_h5(p, 7), "d1/inner/f.h5")
        both(ws, lambda p: open(p, "wb").write(b"x" * 777), "d1/note.txt")
        ws.remount()
        both(ws, os.rename, "d1", "d2")
        T.assert_same_bytes(ws.l("d2/inner/f.h5"), ws.m("d2/inner/f.h5"))
        ws.stop()
        T.assert_no_objects(ws.store, "d1/inner/f.h5")
        T.assert_no_objects(ws.store, "d1/note.txt")
        ws.start()
        T.check(not os.path.exists(ws.m("d1")), "d1 still exists")
        same(ws, "d2/note.txt")
        return same(ws, "d2/inner/f.h5")


# ---------------------------------------------------------------- unlink

@test
def unlink_leaves_nothing(binary):
    with T.Workspace(binary, name="unl") as ws:
        ws.start()
        os.makedirs(ws.m("d/e"))
        sample_h5(ws.m("a.h5"), 8)
        sample_h5(ws.m("d/e/b.h5"), 9)
        with open(ws.m("d/plain.bin"), "wb") as f:
            f.write(os.urandom(100000))
        with h5py.File(ws.m("d/e/b.h5"), "r+") as f:   # a second version
            f["gz"][0:50, 0:100] = 0
        ws.remount()
        T.check(os.path.getsize(ws.m("d/e/b.h5")) > 0, "b.h5 empty")
        for rel in ("a.h5", "d/e/b.h5", "d/plain.bin"):
            os.unlink(ws.m(rel))
            T.check(not os.path.exists(ws.m(rel)), "%s still exists" % rel)
        os.rmdir(ws.m("d/e"))
        os.rmdir(ws.m("d"))
        T.check(os.listdir(ws.m()) == [], "mount not empty: %s"
                % os.listdir(ws.m()))
        ws.stop()
        if not T.FAKE:
            left = [k for k in T.store_keys(ws.store)
                    if not k.startswith(".cloudh5/")
                    or k.startswith(".cloudh5/c/")]
            T.check(not left, "objects left after unlinking everything: %s"
                    % left[:10])
        ws.start()
        T.check(os.listdir(ws.m()) == [], "files came back after remount: "
                "%s" % os.listdir(ws.m()))
        return "store empty"


@test
def unlink_open_file(binary):
    """POSIX: a file unlinked while open stays readable through the open
    descriptor."""
    with T.Workspace(binary, name="unlo") as ws:
        ws.start()
        sample_h5(ws.l("o.h5"), 10)
        shutil.copyfile(ws.l("o.h5"), ws.m("o.h5"))
        ws.remount()
        with open(ws.m("o.h5"), "rb") as f:
            os.unlink(ws.m("o.h5"))
            T.check(not os.path.exists(ws.m("o.h5")), "still visible")
            data = f.read()
        with open(ws.l("o.h5"), "rb") as f:
            T.check(data == f.read(), "open descriptor read wrong bytes "
                    "after unlink (%d bytes)" % len(data))
        ws.stop()
        T.assert_no_objects(ws.store, "o.h5")


# ---------------------------------------------------------------- dirs

@test
def directories(binary):
    with T.Workspace(binary, name="dirs") as ws:
        ws.start()
        os.makedirs(ws.m("a/b/c"))
        os.mkdir(ws.m("a/b2"))
        os.mkdir(ws.m("empty"))
        sample_h5(ws.m("a/b/c/deep.h5"), 11)
        with open(ws.m("a/top.txt"), "w") as f:
            f.write("top\n")
        T.check(sorted(os.listdir(ws.m("a"))) == ["b", "b2", "top.txt"],
                "readdir a: %s" % sorted(os.listdir(ws.m("a"))))
        T.check(os.listdir(ws.m("a/b")) == ["c"], "readdir a/b")
        T.check(os.listdir(ws.m("a/b/c")) == ["deep.h5"], "readdir a/b/c")
        T.check(stat.S_ISDIR(os.stat(ws.m("a/b")).st_mode), "a/b not a dir")
        T.check(stat.S_ISREG(os.stat(ws.m("a/top.txt")).st_mode),
                "top.txt not a regular file")
        try:
            os.rmdir(ws.m("a/b"))
            raise T.Fail("rmdir of a non-empty directory succeeded")
        except OSError as e:
            T.check(e.errno in (errno.ENOTEMPTY, errno.EEXIST),
                    "rmdir non-empty: %s" % e)
        try:
            os.mkdir(ws.m("a"))
            raise T.Fail("mkdir of an existing directory succeeded")
        except FileExistsError:
            pass
        os.rmdir(ws.m("a/b2"))
        T.check(sorted(os.listdir(ws.m("a"))) == ["b", "top.txt"],
                "after rmdir: %s" % sorted(os.listdir(ws.m("a"))))
        T.check(".cloudh5" not in os.listdir(ws.m()) or T.FAKE,
                ".cloudh5 visible at the root")
        ws.remount()
        T.check(sorted(os.listdir(ws.m("a"))) == ["b", "top.txt"],
                "after remount a: %s" % sorted(os.listdir(ws.m("a"))))
        T.check(os.listdir(ws.m("a/b/c")) == ["deep.h5"],
                "after remount a/b/c: %s" % os.listdir(ws.m("a/b/c")))
        sample_h5(ws.l("deep.h5"), 11)
        T.assert_same_bytes(ws.l("deep.h5"), ws.m("a/b/c/deep.h5"))
        root = sorted(os.listdir(ws.m()))
        T.check(".cloudh5" not in root or T.FAKE, ".cloudh5 visible")
        if not T.FAKE:
            T.check(not os.path.exists(ws.m(".cloudh5")),
                    "stat of /.cloudh5 succeeds on the mount")
        return "root %s" % root


@test
def empty_dir_persists(binary):
    with T.Workspace(binary, name="edir") as ws:
        ws.start()
        os.makedirs(ws.m("e1/e2"))
        ws.remount()
        T.check(os.path.isdir(ws.m("e1/e2")),
                "empty directory e1/e2 gone after remount (root: %s)"
                % os.listdir(ws.m()))
        os.rmdir(ws.m("e1/e2"))
        os.rmdir(ws.m("e1"))
        ws.remount()
        T.check(os.listdir(ws.m()) == [], "rmdir'd dirs came back: %s"
                % os.listdir(ws.m()))


# ---------------------------------------------------------------- readers

@test
def concurrent_readers(binary):
    # A small cache so the readers contend for it and evict each other.
    with T.Workspace(binary, opts="cache_size=4M", name="conc") as ws:
        ws.start()

        def mk(p):
            r = np.random.default_rng(12)
            with h5py.File(p, "w") as f:
                f.create_dataset("x", data=r.random((2000, 1500))
                                 .astype("f8"), chunks=(100, 250))
                f.create_dataset("y", data=np.arange(1 << 20, dtype="i4"),
                                 chunks=(1 << 16,), compression="gzip")
        both(ws, mk, "c.h5")
        ws.remount()
        with open(ws.l("c.h5"), "rb") as f:
            want = f.read()
        size = len(want)
        errors = []

        def reader(i):
            try:
                fd = os.open(ws.m("c.h5"), os.O_RDONLY)
                try:
                    bs = 4096 * (i * 7 + 1) + (i * 131 if i % 2 else 0)
                    offs = list(range(0, size, bs))
                    if i % 3 == 1:
                        offs.reverse()
                    elif i % 3 == 2:
                        random.Random(i).shuffle(offs)
                    for off in offs:
                        got = os.pread(fd, bs, off)
                        if got != want[off:off + bs]:
                            errors.append("reader %d: wrong bytes at %d "
                                          "(len %d)" % (i, off, len(got)))
                            return
                finally:
                    os.close(fd)
            except Exception as e:
                errors.append("reader %d: %r" % (i, e))
        threads = [threading.Thread(target=reader, args=(i,))
                   for i in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        T.check(not any(t.is_alive() for t in threads),
                "readers still running after 300 s")
        T.check(not errors, "; ".join(errors[:8]))
        dt = time.monotonic() - t0
        # Now 8 processes reading through h5py at once.
        with h5py.File(ws.l("c.h5"), "r") as f:
            hx = hashlib.sha256(f["x"][...].tobytes()).hexdigest()
            hy = hashlib.sha256(f["y"][...].tobytes()).hexdigest()
        code = ("import h5py,hashlib,sys\n"
                "f=h5py.File(sys.argv[1],'r')\n"
                "print(hashlib.sha256(f['x'][...].tobytes()).hexdigest(),"
                "hashlib.sha256(f['y'][...].tobytes()).hexdigest())\n")
        procs = [subprocess.Popen([sys.executable, "-c", code, ws.m("c.h5")],
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
                 for _ in range(8)]
        for i, p in enumerate(procs):
            out, err = p.communicate(timeout=300)
            T.check(p.returncode == 0, "h5py reader %d failed: %s"
                    % (i, err.decode()[-500:]))
            T.check(out.split() == [hx.encode(), hy.encode()],
                    "h5py reader %d read different data" % i)
        return "%d bytes x 8 threads in %.1fs, 8 h5py processes ok" % (
            size, dt)


# ---------------------------------------------------------------- scale

def _chunks100k(binary, via_cp):
    with T.Workspace(binary, name="100k") as ws:
        ws.start()
        data = (np.arange(400000) % 251).astype("i1")

        def mk(p):
            with h5py.File(p, "w") as f:
                f.create_dataset("x", data=data, chunks=(4,))
        mk(ws.l("big.h5"))
        t0 = time.monotonic()
        if via_cp:
            subprocess.run(["cp", ws.l("big.h5"), ws.m("big.h5")],
                           check=True)
        else:
            mk(ws.m("big.h5"))
        tw = time.monotonic() - t0
        t0 = time.monotonic()
        ws.remount()
        tu = time.monotonic() - t0
        t0 = time.monotonic()
        T.assert_same_bytes(ws.l("big.h5"), ws.m("big.h5"))
        with h5py.File(ws.m("big.h5"), "r") as f:
            T.check(f["x"].id.get_num_chunks() == 100000, "chunk count")
            T.check((f["x"][...] == data).all(), "h5py read-back differs")
        tr = time.monotonic() - t0
        T.assert_h5dump_equal(ws.l("big.h5"), ws.m("big.h5"),
                              args=["-p", "-H"])
        info = T.assert_store_layout(ws.store, "big.h5", ws.l("big.h5"))
        return "%s; %s+close %.1fs, remount %.1fs, read %.1fs" % (
            info, "cp" if via_cp else "h5py write", tw, tu, tr)


@test
def chunks100k(binary):
    """100,000 chunks: written locally, cp'd onto the mount (large
    sequential writes), split at close, read back after a remount."""
    return _chunks100k(binary, True)


@test
def chunks100k_h5py(binary):
    """The same file written by h5py straight onto the mount: 100,000
    4-byte chunk writes through FUSE."""
    return _chunks100k(binary, False)


# ---------------------------------------------------------------- sizes

@test
def truncate_and_stat(binary):
    with T.Workspace(binary, name="trunc") as ws:
        ws.start()
        blob = os.urandom(1 << 20)

        def plain(p):
            with open(p, "wb") as f:
                f.write(blob)
            os.truncate(p, 1000)
            T.check(os.path.getsize(p) == 1000, "%s: st_size %d after "
                    "truncate to 1000" % (p, os.path.getsize(p)))
            os.truncate(p, 5000)                     # extends with zeros
            with open(p, "r+b") as f:
                f.seek(2000)
                f.write(b"middle")
            with open(p, "ab") as f:
                f.write(b"appended")
        both(ws, plain, "t.bin")
        T.check(os.stat(ws.m("t.bin")).st_size == 5008, "st_size %d"
                % os.stat(ws.m("t.bin")).st_size)
        both(ws, lambda p: sample_h5(p, 13), "half.h5")
        both(ws, lambda p: os.truncate(p, os.path.getsize(p) // 2),
             "half.h5")
        both(ws, lambda p: sample_h5(p, 14), "replaced.h5")

        def to_text(p):
            with open(p, "w") as f:                  # O_TRUNC
                f.write("not HDF5 any more\n")
        both(ws, to_text, "replaced.h5")
        both(ws, lambda p: sample_h5(p, 15), "grown.h5")
        both(ws, lambda p: os.truncate(p, os.path.getsize(p) + 4096),
             "grown.h5")
        both(ws, lambda p: open(p, "wb").close(), "empty.h5")
        rels = ("t.bin", "half.h5", "replaced.h5", "grown.h5", "empty.h5")
        for rel in rels:
            T.check(os.stat(ws.m(rel)).st_size == os.stat(ws.l(rel)).st_size,
                    "%s: st_size %d on the mount, %d local"
                    % (rel, os.stat(ws.m(rel)).st_size,
                       os.stat(ws.l(rel)).st_size))
            T.assert_same_bytes(ws.l(rel), ws.m(rel))
        ws.remount()
        out = []
        for rel in rels:
            T.check(os.stat(ws.m(rel)).st_size == os.stat(ws.l(rel)).st_size,
                    "after remount %s: st_size %d, local %d"
                    % (rel, os.stat(ws.m(rel)).st_size,
                       os.stat(ws.l(rel)).st_size))
            T.assert_same_bytes(ws.l(rel), ws.m(rel))
            if not T.FAKE:
                if T.is_hdf5(ws.l(rel)):
                    out.append(T.assert_store_layout(ws.store, rel,
                                                     ws.l(rel)))
                else:
                    T.assert_plain_object(ws.store, rel, ws.l(rel))
        r = subprocess.run(["ls", "-la", ws.m()], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        T.check(r.returncode == 0, "ls -la failed: %s" % r.stderr.decode())
        listing = r.stdout.decode()
        for rel in rels:
            T.check(rel in listing, "ls -la does not list %s:\n%s"
                    % (rel, listing))
        st = os.statvfs(ws.m())
        T.check(st.f_bsize > 0, "statvfs f_bsize 0")
        return "; ".join(out)


@test
def raw_patch_h5(binary):
    """Overwrite bytes inside an uncompressed chunk with plain write():
    still a valid HDF5 file, only that chunk changes."""
    with T.Workspace(binary, name="patch") as ws:
        ws.start()

        def mk(p):
            with h5py.File(p, "w") as f:
                f.create_dataset("x", data=np.zeros((100, 100), "i4"),
                                 chunks=(10, 100))
        both(ws, mk, "p.h5")
        ws.remount()
        with h5py.File(ws.l("p.h5"), "r") as f:
            off = f["x"].id.get_chunk_info(3).byte_offset

        def patch(p):
            with open(p, "r+b") as f:
                f.seek(off + 40)
                f.write(b"\x01\x00\x00\x00" * 10)
        both(ws, patch, "p.h5")
        ws.remount()
        with h5py.File(ws.m("p.h5"), "r") as f:
            T.check(f["x"][30, 10:20].tolist() == [1] * 10,
                    "patched values not read back")
        return same(ws, "p.h5")


@test
def preexisting_objects(binary):
    """Objects put in the store by another tool show as regular files."""
    with T.Workspace(binary, name="pre") as ws:
        sample_h5(ws.l("u.h5"), 16)
        # Written straight into the store (a file:// store: files in new
        # directories; S3: PUTs as another client makes them, no directory
        # markers).
        with open(ws.l("u.h5"), "rb") as f:
            ws.store.put("up/load/u.h5", f.read())
        ws.store.put("readme.txt", b"uploaded\n")
        ws.start()
        T.check(sorted(os.listdir(ws.m())) == ["readme.txt", "up"],
                "root: %s" % os.listdir(ws.m()))
        T.check(os.stat(ws.m("up/load/u.h5")).st_size ==
                os.path.getsize(ws.l("u.h5")), "st_size of uploaded .h5")
        T.assert_same_bytes(ws.l("u.h5"), ws.m("up/load/u.h5"))
        T.assert_h5dump_equal(ws.l("u.h5"), ws.m("up/load/u.h5"))
        with open(ws.m("readme.txt")) as f:
            T.check(f.read() == "uploaded\n", "readme.txt content")
        # Rewriting it through the mount makes it a chunked file.
        with h5py.File(ws.m("up/load/u.h5"), "r+") as f:
            f.attrs["touched"] = 1
        with h5py.File(ws.l("u.h5"), "r+") as f:
            f.attrs["touched"] = 1
        ws.remount()
        return same(ws, "up/load/u.h5", local="u.h5")


def main():
    global R
    R = T.Runner("test_ops")
    for fn in TESTS:
        R.run(fn.__name__, fn, R.binary)
    R.finish()


if __name__ == "__main__":
    try:
        main()
    finally:
        T.cleanup_all()
