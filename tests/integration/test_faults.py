#!/usr/bin/python3
"""Failed commits lose nothing: the store fails (the fault-injecting backend,
-o fault=...), close() reports the error, the staged bytes stay in the
spool directory, the last committed version stays readable, and a later
flush commits the kept stage.

usage: test_faults.py --mount-bin build/fs/mount.cloudh5 [-k NAME]...
"""

import errno
import glob
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

import h5py  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def write_h5(p, seed):
    r = np.random.default_rng(seed)
    with h5py.File(p, "w") as f:
        f.create_dataset("d", data=r.integers(0, 1 << 30, (256, 256)),
                         chunks=(64, 64), compression="gzip")
        f.attrs["seed"] = seed


def stages(ws):
    """Contents of the staged files of the running daemon's spool dir."""
    out = []
    for p in glob.glob(os.path.join(ws.mount.workdir, "spool%d" % ws.mount.n,
                                    "*.stage")):
        try:
            with open(p, "rb") as f:
                out.append(f.read())
        except FileNotFoundError:  # dropped by a RELEASE meanwhile
            pass
    return out


def read(p):
    with open(p, "rb") as f:
        return f.read()


def start_with(ws, fault):
    ws.mount.opts = fault and "fault=" + fault
    ws.start()


@test
def plain_commit_fails_then_retries(binary):
    """Every PUT fails once: close() says EIO, the stage keeps the new
    bytes, the store keeps the old ones; reopening and closing (a flush)
    commits the kept stage."""
    with T.Workspace(binary, name="fplain") as ws:
        v1, v2 = os.urandom(300000), os.urandom(200000)
        start_with(ws, None)
        with open(ws.m("f.bin"), "wb") as f:
            f.write(v1)
        ws.stop()
        # The 1st PUT from now on fails (fault counts PUTs only).
        start_with(ws, "ops=put:fail_nth=1:fail_errno=%d" % errno.EIO)
        f = open(ws.m("f.bin"), "wb")
        # A second descriptor keeps the file open past close(): the last
        # RELEASE commits again (and, the fault spent, succeeds), which
        # would race with the checks of the failed commit's state below.
        hold = os.open(ws.m("f.bin"), os.O_RDONLY)
        f.write(v2)
        try:
            f.close()
            raise T.Fail("close() succeeded although the commit failed")
        except OSError as e:
            T.check(e.errno == errno.EIO, "close() errno %s" % e.errno)
        T.check(ws.store.get("f.bin") == v1,
                "the committed object changed after a failed commit")
        T.check(v2 in stages(ws), "the staged bytes are not in the spool")
        T.check(read(ws.m("f.bin")) == v2,
                "the mount does not show the staged bytes")
        os.close(hold)
        # Retry: any flush of the file commits the kept stage.
        with open(ws.m("f.bin"), "r+b"):
            pass
        T.check(ws.store.get("f.bin") == v2,
                "the retried commit did not store the new bytes")
        # The stage goes at the last RELEASE, which the kernel sends after
        # close() has returned: give it a few seconds.
        deadline = time.monotonic() + 10
        while stages(ws) and time.monotonic() < deadline:
            time.sleep(0.05)
        T.check(stages(ws) == [], "the stage is still in the spool 10 s "
                "after a successful commit")
        ws.remount()
        T.check(read(ws.m("f.bin")) == v2, "wrong bytes after remount")
        ws.stop()
        return "close() -> EIO, stage kept, retry committed"


@test
def h5_commit_fails_midway(binary):
    """Chunk uploads fail after some succeeded: h5py's close raises, the old
    version reads back byte for byte after a remount, the stage holds the
    new file, and the next mount on that spool commits it."""
    with T.Workspace(binary, name="fh5") as ws:
        start_with(ws, None)
        write_h5(ws.l("old.h5"), 1)
        write_h5(ws.l("new.h5"), 2)
        write_h5(ws.m("x.h5"), 1)
        ws.stop()
        # PUTs 4.. fail: three chunk objects land, then the commit fails.
        start_with(ws, "ops=put:fail_nth=4:fail_count=1000")
        # In a child: libhdf5 1.10 may crash the process (not just raise)
        # when close() of its file fails, and that must not end the test.
        r = subprocess.run([sys.executable, "-c",
                            "import sys; sys.path.insert(0, %r); "
                            "import test_faults as t; t.write_h5(%r, 2)"
                            % (os.path.dirname(os.path.abspath(__file__)),
                               ws.m("x.h5"))],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        T.check(r.returncode != 0, "h5py closed the file without an error "
                "although its commit failed")
        T.check(read(ws.l("new.h5")) in stages(ws),
                "the new file is not kept in the spool")
        ws.stop()
        # Unmounting (which frees the inode) must not delete it either.
        T.check(read(ws.l("new.h5")) in stages(ws),
                "the uncommitted file was deleted from the spool at unmount")
        old_spool = os.path.join(ws.mount.workdir, "spool%d" % ws.mount.n)
        keys = glob.glob(os.path.join(old_spool, "*.stage.key"))
        recs = [read(k).decode("utf-8", "replace") for k in keys]
        T.check(len(recs) == 1 and recs[0].endswith("\nkey x.h5")
                and "\nstate committing\n" in recs[0],
                "the kept stage's record does not name its file and its "
                "pending commit: %s" % recs)
        # Until a mount commits it, the store still holds the old version.
        start_with(ws, None)
        T.assert_same_bytes(ws.l("old.h5"), ws.m("x.h5"))
        ws.stop()
        # The next mount on that spool commits the kept stage: its commit
        # was asked for (close) and the version it replaces is unchanged.
        ws.mount.opts = "spool_dir=" + old_spool
        ws.start()
        with open(ws.mount.log) as f:
            log = f.read()
        T.check("committed x.h5" in log, "the mount did not commit the "
                "kept stage:\n" + log[-1000:])
        T.check(glob.glob(os.path.join(old_spool, "*.stage*")) == [],
                "the stage is still in the spool after its commit")
        T.assert_same_bytes(ws.l("new.h5"), ws.m("x.h5"))
        T.assert_h5dump_equal(ws.l("new.h5"), ws.m("x.h5"))
        ws.stop()
        return "old version intact, next mount committed the kept stage"


@test
def reads_survive_short_and_slow_gets(binary):
    """GETs that return at most 1000 bytes each and take 2 ms still read
    back every byte."""
    with T.Workspace(binary, name="fshort") as ws:
        start_with(ws, None)
        write_h5(ws.l("a.h5"), 3)
        write_h5(ws.m("a.h5"), 3)
        blob = os.urandom(100000)
        with open(ws.m("b.bin"), "wb") as f:
            f.write(blob)
        ws.stop()
        start_with(ws, "ops=get:short_read=1000:delay_ms=2")
        T.assert_same_bytes(ws.l("a.h5"), ws.m("a.h5"))
        T.check(read(ws.m("b.bin")) == blob, "plain object read wrong")
        ws.stop()
        return "ok"


@test
def read_errors_reach_the_reader(binary):
    """A store that fails every GET makes read() fail with the error; it
    never returns made-up bytes."""
    with T.Workspace(binary, name="fget") as ws:
        start_with(ws, None)
        write_h5(ws.m("a.h5"), 4)
        ws.stop()
        start_with(ws, "ops=get:fail_nth=1:fail_count=1000000:"
                       "fail_errno=%d" % errno.EIO)
        try:
            read(ws.m("a.h5"))
            raise T.Fail("read() succeeded with a failing store")
        except OSError as e:
            T.check(e.errno == errno.EIO, "read errno %s" % e.errno)
        ws.stop()
        return "EIO"


@test
def reader_follows_a_replaced_version(binary):
    """A reader on mount B holds version 1 open; mount A replaces the file
    (its commit deletes version 1's objects); B's next read of bytes it
    never fetched finds its object gone, loads the new manifest and
    answers from version 2 instead of failing; its page cache of version 1
    is dropped, so reading again gives version 2 throughout."""
    def write_plain(p, seed):
        with h5py.File(p, "w") as f:
            f.create_dataset("d", data=np.random.default_rng(seed).random(
                (1024, 1024)), chunks=(128, 128))

    with T.Workspace(binary, name="frd") as ws:
        start_with(ws, None)
        write_plain(ws.l("v2.h5"), 2)
        write_plain(ws.m("x.h5"), 1)
        bdir = os.path.join(ws.root, "b")
        os.makedirs(os.path.join(bdir, "mnt"))
        mb = T.Mount(binary, ws.store, os.path.join(bdir, "mnt"), bdir)
        mb.start()
        try:
            write_plain(ws.l("v1.h5"), 1)  # its data bytes are x.h5's
            v1 = read(ws.l("v1.h5"))
            fd = os.open(mb.path("x.h5"), os.O_RDONLY)
            try:
                os.pread(fd, 4096, 0)
                write_plain(ws.m("x.h5"), 2)  # A commits version 2
                off = 6 << 20
                first = os.pread(fd, 65536, off)
                again = os.pread(fd, 65536, off)
            finally:
                os.close(fd)
            want = read(ws.l("v2.h5"))[off:off + 65536]
            # The read that finds the version gone is answered from the
            # new one; pages it had already been given from the old
            # manifest (its copy of the bytes around metadata and chunk
            # edges) stay the old version's, page by page.
            for p in range(0, 65536, 4096):
                T.check(first[p:p + 4096] in (want[p:p + 4096],
                                              v1[off + p:off + p + 4096]),
                        "page %d of the first read is neither version" % p)
            T.check(first[-4096:] == want[-4096:], "the reader did not "
                    "go on with version 2's bytes")
            # The old version's pages are dropped from the page cache:
            # read again, all of it is version 2.
            T.check(again == want, "the second read is not version 2")
            with open(mb.log) as f:
                log = f.read()
            T.check("read the new version" in log, "B did not say it "
                    "switched versions:\n" + log[-1000:])
        finally:
            mb.stop()
        ws.stop()
        return "old version's objects gone -> read from the new version"


def close_loses(f, who):
    """f's close() must fail with ESTALE: another writer committed first."""
    try:
        f.close()
    except OSError as e:
        T.check(e.errno == errno.ESTALE, "losing close() of the %s file: "
                "errno %s" % (who, e.errno))
        return
    raise T.Fail("both %s close() succeeded" % who)


@test
def two_writers_one_wins(binary):
    """Two mounts of one store, two writers of one file: the first close
    commits, the second fails with ESTALE and keeps its bytes staged; the
    same for two creators of one new file, and for two h5py r+ editors."""
    with T.Workspace(binary, name="fconf") as ws:
        start_with(ws, None)
        v0 = os.urandom(50000)
        with open(ws.m("f.bin"), "wb") as f:
            f.write(v0)
        write_h5(ws.m("x.h5"), 5)
        bdir = os.path.join(ws.root, "b")
        os.makedirs(os.path.join(bdir, "mnt"))
        mb = T.Mount(binary, ws.store, os.path.join(bdir, "mnt"), bdir)
        mb.start()
        try:
            a_path, b_path = ws.m("f.bin"), mb.path("f.bin")
            fa, fb = open(a_path, "r+b"), open(b_path, "r+b")
            fa.write(b"A" * 1000)
            fb.write(b"B" * 1000)
            fa.close()
            close_loses(fb, "writers'")
            T.check(ws.store.get("f.bin") ==
                    b"A" * 1000 + v0[1000:], "the store lost the winner")
            b_stages = [read(p) for p in glob.glob(
                os.path.join(bdir, "spool%d" % mb.n, "*.stage"))]
            T.check(b"B" * 1000 + v0[1000:] in b_stages,
                    "the loser's bytes are not kept in its spool")

            # Two creators of one new file.
            na, nb = open(ws.m("n.bin"), "wb"), open(mb.path("n.bin"), "wb")
            na.write(b"first")
            nb.write(b"second")
            na.close()
            close_loses(nb, "creators'")
            T.check(ws.store.get("n.bin") == b"first",
                    "the first creator's file was replaced")
            # Two creators of one new HDF5 file: the second's chunks go
            # up while its commit asks whether the name is still free;
            # its manifest does not.
            for who, seed in (("a", 7), ("b", 8)):
                write_h5(os.path.join(ws.root, who + ".h5"), seed)
            na = open(ws.m("n.h5"), "wb")
            nb = open(mb.path("n.h5"), "wb")
            for f, who in ((na, "a"), (nb, "b")):
                f.write(read(os.path.join(ws.root, who + ".h5")))
            na.close()
            close_loses(nb, "HDF5 creators'")
            with h5py.File(ws.m("n.h5"), "r") as f:
                T.check(int(f.attrs["seed"]) == 7, "the first HDF5 "
                        "creator's file was replaced")

            # Two h5py editors, both open before either commits (each in a
            # child: a failed close may crash libhdf5 1.10).
            def edit(path, val):
                code = ("import sys, h5py; f = h5py.File(%r, 'r+'); "
                        "print('ready', flush=True); sys.stdin.readline(); "
                        "f['d'][0:64, 0:64] = %d; f.close()" % (path, val))
                p = subprocess.Popen([sys.executable, "-c", code],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
                T.check(p.stdout.readline().strip() == b"ready",
                        "h5py could not open %s r+" % path)
                return p
            pa = edit(ws.m("x.h5"), 1)
            pb = edit(mb.path("x.h5"), 2)
            pa.communicate(b"go\n")
            T.check(pa.returncode == 0, "the first h5py editor failed")
            pb.communicate(b"go\n")
            T.check(pb.returncode != 0, "the second h5py editor's commit "
                    "replaced the first one's")
        finally:
            mb.stop()
        ws.stop()
        # The losers' files stay in B's spool, listed by fsck; each is a
        # whole file on its own (the h5py loser's opens with h5py).
        b_spool = os.path.join(bdir, "spool%d" % mb.n)
        tool = os.path.join(os.path.dirname(binary), "cloudh5")
        r = subprocess.run([tool, "fsck", ws.store.url, "--spool",
                            b_spool], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=ws.store.env())
        out = r.stdout.decode(errors="replace")
        listed = sorted(ln.split(" for ")[1] for ln in out.splitlines()
                        if ln.startswith("staged "))
        T.check(listed == ["f.bin (committing)", "n.bin (committing)",
                           "n.h5 (committing)", "x.h5 (committing)"],
                "fsck lists the losers' stages as %s:\n%s" % (listed, out))
        for k in glob.glob(os.path.join(b_spool, "*.stage.key")):
            if read(k).endswith(b"\nkey x.h5"):
                with h5py.File(k[:-len(".key")], "r") as f:
                    T.check(int(f["d"][0, 0]) == 2, "the kept stage of the "
                            "losing h5py editor holds %d" % f["d"][0, 0])
                break
        else:
            raise T.Fail("no kept stage of x.h5 in %s" % b_spool)
        start_with(ws, None)
        with h5py.File(ws.m("x.h5"), "r") as f:
            T.check(int(f["d"][0, 0]) == 1, "x.h5 holds %d, expected the "
                    "first editor's 1" % f["d"][0, 0])
        ws.stop()
        return "one winner, ESTALE for the other, nothing lost"


if __name__ == "__main__":
    T.run_tests("test_faults", TESTS)
