#!/usr/bin/python3
"""Local-backend benchmark of cloudh5 (a benchmark, not a test).

Measures, on a file:// store on this machine's disk:

  1. write of a 1 GiB chunked dataset with h5py: through the mount (until
     close() returns, i.e. committed to the store) versus the local disk;
  2. cold read of that dataset with h5py: through a fresh mount versus the
     local disk, the page cache dropped before every run;
  3. open + first read of files with 10^4, 10^5 and 10^6 chunks through a
     fresh mount, and the daemon's RSS after it.

Every timing is the median of --runs runs (default 3); the report is a
Markdown table with the ratio against the local disk measured in the same
run.  Usage:

  bench/local_bench.py --build build [--runs 3] [--work /var/tmp/ch5bench]
                       [--size-mib 1024] [--chunks 10000,100000,1000000]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np


def drop_caches():
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


class Mount:
    def __init__(self, binary, store, mnt, spool, opts=""):
        self.args = [binary, "file://" + store, mnt, "-f", "-o",
                     "spool_dir=" + spool + ("," + opts if opts else "")]
        self.mnt = mnt
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.ismount(self.mnt):
                return self
            time.sleep(0.05)
        raise RuntimeError("mount did not come up")

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def __exit__(self, *exc):
        subprocess.run(["fusermount3", "-u", self.mnt])
        self.proc.wait(timeout=120)


def write_big(path, n_rows, chunk_rows):
    """A float32 (n_rows, 4096) dataset in chunks of (chunk_rows, 4096)."""
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        d = f.create_dataset("data", (n_rows, 4096), dtype="f4",
                             chunks=(chunk_rows, 4096))
        block = np.arange(chunk_rows * 4096, dtype="f4").reshape(
            chunk_rows, 4096)
        for r in range(0, n_rows, chunk_rows):
            d[r:r + chunk_rows] = block + r
    return time.perf_counter() - t0


def read_big(path):
    t0 = time.perf_counter()
    total = 0
    with h5py.File(path, "r") as f:
        d = f["data"]
        step = d.chunks[0] * 16
        for r in range(0, d.shape[0], step):
            total += d[r:r + step].size
    return time.perf_counter() - t0, total


def make_many_chunks(path, n):
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("x", data=np.arange(n, dtype="i4") % 127,
                         chunks=(1,))


def open_first_read(path):
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        v = f["x"][0]
    return time.perf_counter() - t0, v


def fmt(x):
    return "%.3f" % x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default="/var/tmp/ch5bench")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--chunks", default="10000,100000,1000000")
    a = ap.parse_args()
    binary = os.path.abspath(os.path.join(a.build, "fs", "mount.cloudh5"))
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    store, mnt, spool, local = (os.path.join(a.work, x)
                                for x in ("store", "mnt", "spool", "local"))
    for d in (store, mnt, spool, local):
        os.makedirs(d)
    can_drop = drop_caches()
    n_rows = a.size_mib * 1024 * 1024 // (4096 * 4)
    chunk_rows = 256  # 4 MiB chunks
    size = n_rows * 4096 * 4
    out = []
    out.append("## cloudh5 local-backend benchmark\n")
    out.append("%s, %d cores, medians of %d runs; dataset %d MiB, "
               "float32 chunks of 4 MiB; page cache %s before cold reads.\n"
               % (time.strftime("%Y-%m-%d"), os.cpu_count(), a.runs,
                  size >> 20, "dropped" if can_drop else
                  "NOT dropped (no permission)"))

    w_local, w_mnt, r_local, r_mnt = [], [], [], []
    for i in range(a.runs):
        p = os.path.join(local, "big.h5")
        w_local.append(write_big(p, n_rows, chunk_rows))
        with Mount(binary, store, mnt, spool):
            w_mnt.append(write_big(os.path.join(mnt, "big.h5"), n_rows,
                                   chunk_rows))
        drop_caches()
        r_local.append(read_big(p)[0])
        with Mount(binary, store, mnt, spool):
            drop_caches()
            r_mnt.append(read_big(os.path.join(mnt, "big.h5"))[0])
    mw, lw = statistics.median(w_mnt), statistics.median(w_local)
    mr, lr = statistics.median(r_mnt), statistics.median(r_local)
    out.append("| %d MiB chunked dataset | local disk | cloudh5 mount | "
               "mount / disk speed |" % (size >> 20))
    out.append("|---|---|---|---|")
    out.append("| write (h5py, until close returns) | %s s (%.0f MB/s) | "
               "%s s (%.0f MB/s) | %.2f |" % (fmt(lw), size / lw / 1e6,
                                             fmt(mw), size / mw / 1e6,
                                             lw / mw))
    out.append("| cold read (h5py) | %s s (%.0f MB/s) | %s s (%.0f MB/s) "
               "| %.2f |" % (fmt(lr), size / lr / 1e6, fmt(mr),
                             size / mr / 1e6, lr / mr))
    out.append("")
    shutil.rmtree(os.path.join(local, "big.h5"), ignore_errors=True)

    out.append("| chunks in file | manifest bytes | open + first read, "
               "mount (s) | same, local disk (s) | daemon RSS after (MiB) |")
    out.append("|---|---|---|---|---|")
    for n in (int(x) for x in a.chunks.split(",")):
        p = os.path.join(local, "many%d.h5" % n)
        make_many_chunks(p, n)
        with Mount(binary, store, mnt, spool):
            shutil.copyfile(p, os.path.join(mnt, "many%d.h5" % n))
        man = os.path.getsize(os.path.join(store, "many%d.h5" % n))
        t_m, t_l, rss = [], [], []
        for i in range(a.runs):
            drop_caches()
            t_l.append(open_first_read(p)[0])
            with Mount(binary, store, mnt, spool) as m:
                drop_caches()
                t_m.append(open_first_read(
                    os.path.join(mnt, "many%d.h5" % n))[0])
                rss.append(m.rss_kib())
        out.append("| %d | %d | %s | %s | %.1f |" % (
            n, man, fmt(statistics.median(t_m)),
            fmt(statistics.median(t_l)), statistics.median(rss) / 1024))
    print("\n".join(out))
    shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
