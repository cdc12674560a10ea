#!/usr/bin/python3
"""What an r+ edit of a big file moves: a 1 GiB dataset of 1 MiB chunks is
committed, then edited with h5py in r+ mode three ways, each on a fresh
mount, and the mount's own counters (`cloudh5 stats`, the root's
user.cloudh5.stats attribute) must show that only about one chunk moved:

  one_chunk   part of one chunk rewritten (h5py reads it, changes it and
              writes it back): written <= 2 x chunk + manifest, read <=
              manifest + metadata + 2 chunks;
  grow        a gzip chunk of zeros rewritten with noise grows, so libhdf5
              moves it to the end of the file: same bounds;
  append      a dataset of 2 chunks added: written <= the new chunks +
              2 x chunk + manifest, read <= manifest + metadata + 2 chunks.

"metadata" is the bytes of the file that are not chunk data (the
manifest's skeleton; counted as objects only for runs of 1 MiB or more).
After each edit and a remount, the file reads back as expected.

usage: test_edit_bytes.py --mount-bin build/fs/mount.cloudh5 [-k NAME]...
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

import h5py  # noqa: E402

TESTS = []
MiB = 1 << 20
ROWS, COLS = 16384, 8192          # float64: 1 GiB
CHUNK = (128, 1024)               # 1 MiB
CHUNK_BYTES = CHUNK[0] * CHUNK[1] * 8


def test(fn):
    TESTS.append(fn)
    return fn


def rows(r0, r1):
    """The dataset's rows [r0, r1): a formula, so nothing big is kept."""
    return (np.arange(r0, r1, dtype=np.float64)[:, None] * COLS
            + np.arange(COLS, dtype=np.float64)[None, :])


def delta(a, b):
    return {k: b[k] - a[k] for k in b if isinstance(b[k], int)}


def manifest_size(ws, P):
    return ws.store.size(P)


def create(ws, P):
    with h5py.File(ws.m(P), "w") as f:
        d = f.create_dataset("d", (ROWS, COLS), dtype="f8", chunks=CHUNK)
        for r in range(0, ROWS, 1024):
            d[r:r + 1024, :] = rows(r, r + 1024)
        f.create_dataset("z", (1024, 1024), dtype="f8", chunks=CHUNK,
                         compression="gzip", fillvalue=0.0)
        f["z"][...] = 0.0


def edit_and_measure(ws, P, edit):
    """Remount (cold cache), run edit(path) in r+ mode, return the byte
    counters' change, the manifest size before and its skeleton bound."""
    ws.remount()
    m0 = manifest_size(ws, P)
    s0 = T.mount_stats(ws)
    t0 = time.monotonic()
    with h5py.File(ws.m(P), "r+") as f:
        edit(f)
    took = time.monotonic() - t0
    d = delta(s0, T.mount_stats(ws))
    T.check(d["commits"] == 1, "expected one commit, counters say %d"
            % d["commits"])
    return d, m0, manifest_size(ws, P), took


def check_bounds(d, m_old, m_new, extra_written=0):
    wmax = 2 * CHUNK_BYTES + m_new + extra_written
    # The open reads the old manifest (the 64-byte header first); the
    # metadata is in it (skeleton).
    rmax = m_old + 64 + 2 * CHUNK_BYTES
    T.check(d["bytes.out"] <= wmax, "the edit wrote %d bytes, bound %d"
            % (d["bytes.out"], wmax))
    T.check(d["bytes.in"] <= rmax, "the edit read %d bytes, bound %d"
            % (d["bytes.in"], rmax))
    return "read %.2f MiB, wrote %.2f MiB (manifest %d B)" % (
        d["bytes.in"] / MiB, d["bytes.out"] / MiB, m_new)


@test
def one_chunk_grow_append(binary):
    P = "big.h5"
    with T.Workspace(binary, name="edbytes") as ws:
        ws.start()
        create(ws, P)
        size = os.path.getsize(ws.m(P))
        T.check(size >= 1 << 30, "file is only %d bytes" % size)
        notes = []

        def one(f):
            f["d"][200:210, 3000:3010] = -1.0
        d, m0, m1, took = edit_and_measure(ws, P, one)
        notes.append("one chunk: " + check_bounds(d, m0, m1)
                     + ", %.2f s" % took)

        noise = np.random.default_rng(7).random(CHUNK)

        def grow(f):
            f["z"][0:CHUNK[0], 0:CHUNK[1]] = noise
        d, m0, m1, took = edit_and_measure(ws, P, grow)
        notes.append("grow: " + check_bounds(d, m0, m1) + ", %.2f s" % took)

        new = np.random.default_rng(8).random((2 * CHUNK[0], CHUNK[1]))

        def append(f):
            f.create_dataset("new", data=new, chunks=CHUNK)
        d, m0, m1, took = edit_and_measure(ws, P, append)
        notes.append("append: " + check_bounds(d, m0, m1, new.nbytes)
                     + ", %.2f s" % took)

        ws.remount()
        with h5py.File(ws.m(P), "r") as f:
            d = f["d"]
            for r in range(0, ROWS, 2048):
                want = rows(r, r + 2048)
                if r == 0:
                    want[200:210, 3000:3010] = -1.0
                T.check(np.array_equal(d[r:r + 2048, :], want),
                        "rows %d.. of d read back wrong" % r)
            z = f["z"][...]
            want = np.zeros((1024, 1024))
            want[0:CHUNK[0], 0:CHUNK[1]] = noise
            T.check(np.array_equal(z, want), "z read back wrong")
            T.check(np.array_equal(f["new"][...], new),
                    "the appended dataset read back wrong")
        ws.stop()
        return "; ".join(notes)


if __name__ == "__main__":
    T.run_tests("test_edit_bytes", TESTS)
