#!/usr/bin/python3
"""Incremental commits: a commit keeps the objects of chunks whose bytes
were not written since the version the file was opened from, and uploads
only new or changed ones.  Each edit is done on the mount and on a
local-disk twin; after a remount the two must be byte-identical and the
store must hold exactly the objects of the new version.

usage: test_incremental.py --mount-bin build/fs/mount.cloudh5 [-k NAME]...
"""

import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

import h5py  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def objects_by_tag(ws, P):
    """{tag: [key, ...]} of the objects under the file's data prefix."""
    prefix = ".cloudh5/c/%s/" % P
    out = collections.defaultdict(list)
    for k in T.store_keys(ws.store, prefix):
        out[k[len(prefix):].split("/")[0]].append(k)
    return out


def both(ws, fn, P):
    fn(ws.l(P))
    fn(ws.m(P))


def edit_case(binary, name, create, edit, expect_new):
    """create the file, remount, edit it in r+ mode, remount; then at most
    `expect_new` objects may carry the new commit's tag and every other
    object must be one of the first version's."""
    P = name + ".h5"
    with T.Workspace(binary, name=name) as ws:
        ws.start()
        both(ws, create, P)
        ws.remount()
        before = objects_by_tag(ws, P)
        T.check(len(before) == 1, "first version has tags %s" % list(before))
        (tag1, keys1), = before.items()
        both(ws, edit, P)
        ws.remount()
        T.assert_same_bytes(ws.l(P), ws.m(P))
        T.assert_h5dump_equal(ws.l(P), ws.m(P))
        after = objects_by_tag(ws, P)
        new = {t: k for t, k in after.items() if t != tag1}
        T.check(len(new) == 1, "expected one new commit tag, got %s"
                % list(new))
        n_new = sum(len(k) for k in new.values())
        kept = set(after.get(tag1, []))
        T.check(kept <= set(keys1), "objects of the first version changed")
        T.check(1 <= n_new <= expect_new, "the edit uploaded %d objects, "
                "expected 1..%d (of %d)" % (n_new, expect_new,
                                            len(keys1)))
        T.assert_store_layout(ws.store, P, ws.l(P), ws.block_size)
        ws.stop()
        return "%d of %d objects uploaded, %d kept" % (n_new, len(keys1),
                                                       len(kept))


def grid(seed, shape=(512, 512)):
    return np.random.default_rng(seed).random(shape)


def create_plain_chunks(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("d", data=grid(1), chunks=(64, 64))


@test
def r_plus_one_chunk(binary):
    def edit(p):
        with h5py.File(p, "r+") as f:
            f["d"][70:80, 70:80] = -1.0
    return edit_case(binary, "one", create_plain_chunks, edit, 1)


@test
def r_plus_growing_gzip_chunk(binary):
    """A compressible chunk rewritten with noise grows and moves."""
    def create(p):
        with h5py.File(p, "w") as f:
            f.create_dataset("z", data=np.zeros((512, 512)), chunks=(64, 64),
                             compression="gzip")
            f.create_dataset("d", data=grid(2), chunks=(64, 64),
                             compression="gzip")

    def edit(p):
        with h5py.File(p, "r+") as f:
            f["z"][0:64, 0:64] = grid(3, (64, 64))
    return edit_case(binary, "grow", create, edit, 1)


@test
def r_plus_add_dataset(binary):
    """Appending a dataset uploads its chunks only."""
    def edit(p):
        with h5py.File(p, "r+") as f:
            f.create_dataset("new", data=grid(4, (128, 128)),
                             chunks=(64, 64))
    return edit_case(binary, "add", create_plain_chunks, edit, 4)


@test
def sparse_stage_semantics(binary):
    """A file opened for writing is staged sparse over its committed
    version: reads through the writer's handle see the writes over the old
    bytes, a shrink then grow reads zeros past the cut, a rename of the
    open file keeps both, and nothing is downloaded before it is read."""
    with T.Workspace(binary, name="sparse") as ws:
        ws.start()
        old = os.urandom(3 << 20)
        with open(ws.m("f.bin"), "wb") as f:
            f.write(old)
        ws.remount()
        s0 = os.getxattr(ws.m(""), "user.cloudh5.stats").decode()
        got0 = int(s0.split("bytes.in ")[1].split()[0])
        want = bytearray(old)
        with open(ws.m("f.bin"), "r+b") as f:
            f.seek(1 << 20)
            f.write(b"x" * 10)
            want[1 << 20:(1 << 20) + 10] = b"x" * 10
            s1 = os.getxattr(ws.m(""), "user.cloudh5.stats").decode()
            got1 = int(s1.split("bytes.in ")[1].split()[0])
            # The lookup asks for the object's first 12 KiB (a manifest
            # or not?), or the open its first 64 KiB; nothing else of the
            # 3 MiB may move.
            T.check(got1 - got0 <= (64 << 10) + 4096, "opening and "
                    "writing 10 bytes downloaded %d bytes" % (got1 - got0))
            f.seek(0)
            T.check(f.read() == bytes(want), "the writer reads back wrong "
                    "bytes before its commit")
            f.truncate(100)
            f.truncate(2 << 20)
            want = bytearray(want[:100]) + bytes((2 << 20) - 100)
            f.seek(0)
            T.check(f.read() == bytes(want), "shrink then grow: old bytes "
                    "came back past the cut")
            os.rename(ws.m("f.bin"), ws.m("g.bin"))
            f.seek(50)
            f.write(b"y" * 5)
            want[50:55] = b"y" * 5
            f.seek(0)
            T.check(f.read() == bytes(want), "read after rename is wrong")
        T.check(not os.path.exists(ws.m("f.bin")), "old name still there")
        ws.remount()
        with open(ws.m("g.bin"), "rb") as f:
            T.check(f.read() == bytes(want), "committed bytes are wrong")
        with open(ws.l("g.bin"), "wb") as f:
            f.write(bytes(want))
        T.assert_plain_object(ws.store, "g.bin", ws.l("g.bin"))
        ws.stop()
        return "opened r+ and wrote 10 bytes: %d bytes read" % (got1 - got0)


if __name__ == "__main__":
    T.run_tests("test_incremental", TESTS)
