#!/usr/bin/python3
"""The block cache's disk tier (-o cache_dir=DIR,cache_disk_size=N) through
real mounts:

  - a cold read fills the directory; after a remount (an empty memory
    cache) the same read fetches no chunk from the store, every block comes
    from disk, and the bytes are exact; a third mount with a budget
    smaller than what is there trims it to the budget at once;
  - on a disk that is full (a 2 MiB tmpfs) reads still work and are exact:
    the first failed write is logged once and the memory cache goes on;
  - a bad cache_dir fails the mount with a message.

usage: test_diskcache.py --mount-bin BUILD/fs/mount.cloudh5 [-k NAME]...
"""

import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def write(path):
    import h5py
    rng = np.random.default_rng(5)
    a = np.arange(1024 * 1024, dtype="f8").reshape(1024, 1024)  # lz4 helps
    r = rng.random((512, 1024))                                 # it does not
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=a, chunks=(128, 1024))
        f.create_dataset("r", data=r, chunks=(128, 1024))
    return a, r


def read_all(path):
    import h5py
    with h5py.File(path, "r") as f:
        return f["a"][...], f["r"][...]


def settled_stats(ws):
    """The mount's counters once every block fetched from the store is on
    disk: a block is written after its readers were served, so a read can
    return before the last write."""
    import time
    deadline = time.monotonic() + 10
    while True:
        st = T.mount_stats(ws)
        fetched = st["cache.misses"] - st["disk.hits"]
        if st["disk.writes"] >= fetched or st["disk.write_errors"] or \
                time.monotonic() > deadline:
            return st
        time.sleep(0.05)


@test
def remount_reads_from_disk(binary):
    with T.Workspace(binary, name="dcache") as ws:
        cache = os.path.join(ws.root, "cache")
        ws.start()
        a, r = write(ws.m("x.h5"))
        ws.stop()
        opts = "cache_dir=%s,cache_disk_size=64M" % cache
        ws.mount.opts = opts
        ws.start()
        got = read_all(ws.m("x.h5"))
        cold = settled_stats(ws)
        ws.stop()
        T.check(np.array_equal(got[0], a) and np.array_equal(got[1], r),
                "cold read through the disk tier is wrong")
        T.check(cold["disk.writes"] == 12 and cold["disk.hits"] == 0,
                "cold: disk writes %d hits %d" % (cold["disk.writes"],
                                                   cold["disk.hits"]))
        T.check(cold["disk.bytes_saved"] > 2 << 20, "lz4 saved only %d "
                "bytes of the arange dataset" % cold["disk.bytes_saved"])
        ws.start()
        got = read_all(ws.m("x.h5"))
        warm = T.mount_stats(ws)
        ws.stop()
        T.check(np.array_equal(got[0], a) and np.array_equal(got[1], r),
                "read from disk after a remount is wrong")
        T.check(warm["disk.hits"] == cold["disk.writes"],
                "after a remount: %d disk hits, want %d (every block)"
                % (warm["disk.hits"], cold["disk.writes"]))
        T.check(warm["requests.get"] <= 2, "after a remount: %d GETs (want"
                " the manifest only, at most 2)" % warm["requests.get"])
        T.check(warm["bytes.in"] < cold["bytes.in"] / 20, "after a "
                "remount: %d bytes in, cold %d" % (warm["bytes.in"],
                                                   cold["bytes.in"]))
        # A smaller budget: trimmed to it at the next mount.
        ws.mount.opts = "cache_dir=%s,cache_disk_size=2M" % cache
        ws.start()
        small = T.mount_stats(ws)
        ws.stop()
        T.check(small["disk.bytes"] <= 2 << 20, "budget 2M, %d bytes kept"
                % small["disk.bytes"])
        return "cold: %d blocks written (%d bytes saved by lz4), %d GETs; " \
            "remount: %d disk hits, %d GETs, %d bytes in; 2M budget keeps " \
            "%d bytes" % (cold["disk.writes"], cold["disk.bytes_saved"],
                          cold["requests.get"], warm["disk.hits"],
                          warm["requests.get"], warm["bytes.in"],
                          small["disk.bytes"])


@test
def full_disk_falls_back_to_memory(binary):
    with T.Workspace(binary, name="dcfull") as ws:
        cache = os.path.join(ws.root, "tiny")
        os.makedirs(cache)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m",
                            "tmpfs", cache], stderr=subprocess.PIPE)
        if r.returncode:
            T.skip_unless_local("cannot mount a tmpfs: %s" % r.stderr)
        try:
            ws.start()
            a, rr = write(ws.m("x.h5"))
            ws.stop()
            ws.mount.opts = "cache_dir=%s,cache_disk_size=1G" % cache
            ws.start()
            got = read_all(ws.m("x.h5"))
            st = settled_stats(ws)
            log = open(ws.mount.log, errors="replace").read()
            ws.stop()
        finally:
            subprocess.run(["umount", cache])
        T.check(np.array_equal(got[0], a) and np.array_equal(got[1], rr),
                "reads with a full disk tier are wrong")
        T.check(st["disk.write_errors"] == 1, "disk.write_errors %d"
                % st["disk.write_errors"])
        n = log.count("cannot write a block")
        T.check(n == 1, "the full disk was logged %d times, want once" % n)
        return "exact; %d blocks written before it filled, logged once" \
            % st["disk.writes"]


@test
def bad_cache_dir_fails_the_mount(binary):
    with T.Workspace(binary, name="dcbad") as ws:
        plain = os.path.join(ws.root, "plain")
        open(plain, "w").close()
        rows = []
        for opts, want in (("cache_dir=%s/sub" % plain, "Not a directory"),
                           ("cache_dir=relative/dir", "absolute path"),
                           ("cache_dir=/tmp/x,cache_disk_size=10K",
                            "at least 1M")):
            ws.mount.opts = opts
            try:
                ws.start()
            except T.Fail:
                pass
            else:
                ws.stop()
                raise T.Fail("cache %s mounted" % opts)
            log = open(ws.mount.log, errors="replace").read()
            T.check(want in log, "%s: no %r in:\n%s" % (opts, want, log))
            rows.append(want)
        return "refused: " + ", ".join(rows)


if __name__ == "__main__":
    T.run_tests("test_diskcache", TESTS)
