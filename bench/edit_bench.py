#!/usr/bin/python3
"""r+ edit benchmark of cloudh5 against a whole-object filesystem (a
benchmark, not a test).

An r+ edit of one chunk of a big HDF5 file (one float64 dataset of
--size-gib GiB in 1 MiB chunks), done with h5py, in two configurations
measured in the same run:

  cloudh5   the file stored as chunk objects plus a manifest (written once
            onto a cloudh5 mount of a file:// store); each run on a fresh
            mount (cold block cache).  Wall time: open(r+) -> edit ->
            close(); close() returns once the commit is in the store.
            Bytes moved: the mount's own counters (the root's extended
            attribute user.cloudh5.stats: bytes.in = GET bytes, bytes.out =
            PUT bytes), the change around the edit.

  rclone    the same file as ONE plain object in a local directory used as
            an rclone remote, mounted with `rclone mount --vfs-cache-mode
            writes --vfs-write-back 0s --vfs-fast-fingerprint` (a
            whole-object-rewrite filesystem
            in the style of s3fs-fuse), a fresh mount and --cache-dir per
            run (cold).  Wall time: open(r+) -> edit -> close() -> until
            the edited object is complete in the remote directory (rclone
            uploads after close, asynchronously; the object counts as
            visible when it has its full size and rclone has set its
            modification time back to the edit's, which it does after the
            last byte is written).  Bytes moved: per run, in a second,
            untimed edit of the same kind with rclone running under
            `strace -f --seccomp-bpf`, the bytes of every read/write
            syscall rclone made on the remote object (reads before the
            upload began = the download; reads after it are counted apart
            and expected to be 0), on its cache directory and on
            /dev/fuse.  The timed run also records
            /proc/PID/io rchar/wchar of the rclone process (all its I/O:
            remote + cache directory + FUSE) as a cross-check.

The page cache is dropped before every edit (if permitted).  The plain
floor of any whole-object rewrite is also reported: it must read the whole
object and write it back, 2 x the file size.

Every figure is the median of --runs runs; the report is Markdown, with
ratios rclone / cloudh5.  Needs rclone (apt-get install rclone), strace,
fusermount3 and root or /dev/fuse access.  Usage:

  bench/edit_bench.py [--mount-bin build/fs/mount.cloudh5] [--runs 3]
                      [--size-gib 1] [--work /var/tmp/ch5editbench]
                      [--out FILE] [--keep]
"""
import argparse
import collections
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from local_bench import drop_caches  # noqa: E402

MiB = 1 << 20
COLS = 8192
CHUNK = (128, 1024)            # float64: 1 MiB
EDIT = (slice(200, 210), slice(3000, 3010))   # inside chunk (1, 2)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print("[edit_bench %s] %s" % (time.strftime("%H:%M:%S"), msg),
          file=sys.stderr, flush=True)


def wait_mount(mnt, proc, what, timeout=30):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if os.path.ismount(mnt):
            return
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %d before mounting"
                               % (what, proc.returncode))
        time.sleep(0.02)
    raise RuntimeError("%s did not mount %s in %d s" % (what, mnt, timeout))


def unmount(mnt, proc, what, timeout=120):
    if os.path.ismount(mnt):
        r = subprocess.run(["fusermount3", "-u", mnt],
                           stderr=subprocess.PIPE, text=True)
        if r.returncode:
            log("fusermount3 -u %s: %s" % (mnt, r.stderr.strip()))
    if proc is None:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log("%s (pid %d) still running after unmount: SIGTERM"
            % (what, proc.pid))
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", "-z", mnt])


class Cloudh5:
    """A mount.cloudh5 daemon in the foreground on a file:// store."""

    def __init__(self, binary, store, mnt, spool, errlog):
        self.args = [binary, "file://" + store, mnt, "-f", "-o",
                     "spool_dir=" + spool]
        self.mnt, self.errlog, self.proc = mnt, errlog, None

    def __enter__(self):
        err = open(self.errlog, "a")
        self.proc = subprocess.Popen(self.args, stderr=err,
                                     stdout=subprocess.DEVNULL)
        err.close()
        wait_mount(self.mnt, self.proc, "mount.cloudh5")
        return self

    def stats(self):
        text = os.getxattr(self.mnt, "user.cloudh5.stats").decode()
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if v.strip().isdigit():
                out[k] = int(v)
        return out

    def __exit__(self, *exc):
        unmount(self.mnt, self.proc, "mount.cloudh5")
        if self.proc.returncode not in (0, None):
            log("mount.cloudh5 exited with %d (stderr in %s)"
                % (self.proc.returncode, self.errlog))


class Rclone:
    """`rclone mount REMOTE_DIR MNT --vfs-cache-mode writes` in the
    foreground, optionally under strace."""

    def __init__(self, remote, mnt, cache_dir, logfile, trace=None):
        self.args = ["rclone", "mount", remote, mnt,
                     "--vfs-cache-mode", "writes",
                     "--vfs-write-back", "0s",
                     # no md5 of the whole remote object in the cache
                     # fingerprint at open (what the local backend would
                     # otherwise do; S3 gets it from the listing for free)
                     "--vfs-fast-fingerprint",
                     "--cache-dir", cache_dir,
                     "--config", "/dev/null",
                     "-v", "--log-file", logfile]
        if trace:
            self.args = ["strace", "-f", "--seccomp-bpf", "-qq", "-y",
                         "-s", "0", "-e", "signal=none", "-e",
                         "trace=read,write,pread64,pwrite64,readv,writev,"
                         "preadv,pwritev,preadv2,pwritev2,copy_file_range,"
                         "sendfile,splice",
                         "-o", trace] + self.args
        self.mnt, self.logfile, self.traced = mnt, logfile, bool(trace)
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_mount(self.mnt, self.proc, "rclone mount")
        self.pid = self.proc.pid   # (traced: strace's; io() not used)
        return self

    def io(self):
        out = {}
        with open("/proc/%d/io" % self.pid) as f:
            for line in f:
                k, v = line.split(":")
                out[k] = int(v)
        return out

    def uploads_logged(self):
        with open(self.logfile, errors="replace") as f:
            return len(re.findall(r": Copied \(", f.read()))

    def __exit__(self, *exc):
        unmount(self.mnt, self.proc, "rclone mount")


def write_big(path, n_rows):
    """float64 (n_rows, COLS) in CHUNK chunks; values are row * COLS + col
    (distinct, so a misplaced byte shows)."""
    with h5py.File(path, "w") as f:
        d = f.create_dataset("data", (n_rows, COLS), dtype="f8",
                             chunks=CHUNK)
        step = 1024
        for r in range(0, n_rows, step):
            r1 = min(r + step, n_rows)
            d[r:r1] = (np.arange(r, r1, dtype="f8")[:, None] * COLS
                       + np.arange(COLS, dtype="f8")[None, :])


def edit(path, value):
    """The r+ edit; returns (wall clock before open, seconds to open,
    seconds to close() returning)."""
    wall0 = time.time_ns()
    t0 = time.perf_counter()
    f = h5py.File(path, "r+")
    t_open = time.perf_counter() - t0
    f["data"][EDIT] = value
    f.close()
    return wall0, t_open, time.perf_counter() - t0, t0


def check_edit(path, value):
    with h5py.File(path, "r") as f:
        got = f["data"][EDIT]
        ok = bool(np.all(got == value))
        # a neighbour outside the edit, same chunk
        r, c = EDIT[0].stop, EDIT[1].start
        ok = ok and float(f["data"][r, c]) == float(r * COLS + c)
    return ok


def rclone_edit(rc, mnt, remote_file, size, value, timeout=600):
    """The edit through the rclone mount; returns a dict of timings."""
    n_up = rc.uploads_logged()
    wall0, t_open, t_close, t0 = edit(os.path.join(mnt, "big.h5"), value)
    wall_close = time.time_ns()
    # Visible in the store: full size and the modification time rclone
    # sets after the last byte (the edit's, i.e. between open and the end
    # of close; while it uploads, the mtime is the time of each write).
    t_vis = None
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        st = os.stat(remote_file)
        if st.st_size == size and wall0 <= st.st_mtime_ns <= wall_close:
            t_vis = time.perf_counter() - t0
            break
        time.sleep(0.002)
    if t_vis is None:
        raise RuntimeError("rclone: edited object not in the remote after "
                           "%d s" % timeout)
    while rc.uploads_logged() == n_up and time.monotonic() < t_end:
        time.sleep(0.005)
    t_done = time.perf_counter() - t0
    return {"open": t_open, "close": t_close, "visible": t_vis,
            "done": t_done}


def parse_trace(path, remote_file, cache_dir):
    """Bytes of rclone's read/write syscalls by target: the remote object
    (reads split at the first write to it), its cache dir, /dev/fuse."""
    acc = collections.Counter()
    pend = {}
    started_upload = False
    call_re = re.compile(r"^(\d+)\s+(\w+)\((\d+)<([^>]*)>")
    res_re = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>")
    ret_re = re.compile(r"= (\d+)$")
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = call_re.match(line)
            if m:
                tid, call, _, target = m.groups()
                if line.endswith("<unfinished ...>"):
                    pend[tid] = (call, target)
                    continue
            else:
                m = res_re.match(line)
                if not m or m.group(1) not in pend:
                    continue
                call, target = pend.pop(m.group(1))
            r = ret_re.search(line)
            if not r:
                continue
            n = int(r.group(1))
            rw = "write" if ("write" in call or call in
                             ("sendfile", "splice", "copy_file_range")) \
                else "read"
            if target.startswith(cache_dir):
                where = "cache"
            elif target == remote_file or target.startswith(
                    os.path.dirname(remote_file) + "/"):
                where = "remote"
            elif target == "/dev/fuse":
                where = "fuse"
            else:
                where = "other"
            if where == "remote" and rw == "write" and n > 0:
                started_upload = True
            if where == "remote" and rw == "read":
                where = "remote-after-upload" if started_upload \
                    else "remote-before-upload"
            acc[where + " " + rw] += n
    return acc


def mib(n):
    return "%.2f MiB" % (n / MiB)


def secs(x):
    return "%.3f s" % x


def ratio(a, b):
    return "%.0f" % (a / b) if b and a / b >= 10 else (
        "%.1f" % (a / b) if b else "n/a")


def med(xs):
    return statistics.median(xs)


def environment(binary):
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f
                        if ln.startswith("model name")), "?")
    except OSError:
        cpu = "?"
    rv = subprocess.run(["rclone", "version"], capture_output=True,
                        text=True).stdout.split("\n")[0]
    gv = subprocess.run(["git", "-C", REPO, "describe", "--always",
                         "--dirty"], capture_output=True,
                        text=True).stdout.strip()
    dist = "?"
    try:
        with open("/etc/os-release") as f:
            dist = dict(ln.rstrip("\n").split("=", 1) for ln in f
                        if "=" in ln).get("PRETTY_NAME", "?").strip('"')
    except OSError:
        pass
    return ("%s; %d cores (%s); %s; kernel %s; cloudh5 %s (%s); %s; "
            "h5py %s, libhdf5 %s; /usr/bin/python3 %s."
            % (time.strftime("%Y-%m-%d %H:%M %Z"), os.cpu_count(), cpu,
               dist, platform.release(), gv or "?", binary, rv,
               h5py.version.version, h5py.version.hdf5_version,
               platform.python_version()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mount-bin",
                    default=os.path.join(REPO, "build", "fs",
                                         "mount.cloudh5"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--work", default="/var/tmp/ch5editbench")
    ap.add_argument("--out", help="write the Markdown report here "
                    "(default: stdout)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory")
    a = ap.parse_args()
    binary = os.path.abspath(a.mount_bin)
    if not os.access(binary, os.X_OK):
        sys.exit("no mount.cloudh5 at %s (build it, or --mount-bin)"
                 % binary)
    for tool in ("rclone", "strace", "fusermount3"):
        if not shutil.which(tool):
            sys.exit("%s is required (Debian: apt-get install %s)"
                     % (tool, {"fusermount3": "fuse3"}.get(tool, tool)))
    rows_per_gib = (1 << 30) // (COLS * 8)
    n_rows = int(round(a.size_gib * rows_per_gib / CHUNK[0])) * CHUNK[0]
    if n_rows < 256:
        sys.exit("--size-gib too small (need >= 2 chunk rows)")

    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    dirs = {k: os.path.join(work, k) for k in
            ("store", "spool", "mnt-ch5", "plain", "mnt-rclone", "logs")}
    for d in dirs.values():
        os.makedirs(d)
    ch5_err = os.path.join(dirs["logs"], "mount.cloudh5.stderr")
    remote_file = os.path.join(dirs["plain"], "big.h5")
    t_start = time.monotonic()
    env = environment(binary)
    active = []   # mounts to clean up if we fail

    def ch5():
        m = Cloudh5(binary, dirs["store"], dirs["mnt-ch5"], dirs["spool"],
                    ch5_err)
        active.append(m)
        return m

    res = collections.defaultdict(list)
    try:
        can_drop = drop_caches()
        log("writing the %d x %d float64 dataset onto the cloudh5 mount"
            % (n_rows, COLS))
        with ch5() as m:
            t0 = time.perf_counter()
            write_big(os.path.join(dirs["mnt-ch5"], "big.h5"), n_rows)
            t_write = time.perf_counter() - t0
            size = os.path.getsize(os.path.join(dirs["mnt-ch5"], "big.h5"))
        with ch5() as m:
            log("copying it (read through a fresh mount) to the plain "
                "directory")
            shutil.copyfile(os.path.join(dirs["mnt-ch5"], "big.h5"),
                            remote_file)
        assert os.path.getsize(remote_file) == size
        n_objects = sum(len(fs) for _, _, fs in
                        os.walk(os.path.join(dirs["store"], ".cloudh5")))
        manifest0 = os.path.getsize(os.path.join(dirs["store"], "big.h5"))
        log("file: %d bytes; store: manifest %d B + %d chunk objects; "
            "written in %.1f s" % (size, manifest0, n_objects, t_write))

        for i in range(a.runs):
            # --- cloudh5 ---------------------------------------------
            v = -1.0 - 3 * i
            with ch5() as m:
                drop_caches()
                s0 = m.stats()
                _, t_open, t_close, _ = edit(
                    os.path.join(dirs["mnt-ch5"], "big.h5"), v)
                s1 = m.stats()
            d = {k: s1[k] - s0.get(k, 0) for k in s1}
            if d.get("commits") != 1 or d.get("commits.failed"):
                log("cloudh5 run %d: commits %s, failed %s (expected 1, 0)"
                    % (i, d.get("commits"), d.get("commits.failed")))
            with ch5() as m:
                ok = check_edit(os.path.join(dirs["mnt-ch5"], "big.h5"), v)
            res["ch5.ok"].append(ok)
            res["ch5.open"].append(t_open)
            res["ch5.close"].append(t_close)
            for k in ("bytes.in", "bytes.out", "requests.get",
                      "requests.put", "requests.head", "requests.delete",
                      "requests.list", "requests.copy"):
                res["ch5." + k].append(d.get(k, 0))
            log("cloudh5 run %d: %.3f s, in %d B, out %d B, ok %s"
                % (i, t_close, d["bytes.in"], d["bytes.out"], ok))

            # --- rclone, timed ---------------------------------------
            v = -2.0 - 3 * i
            cache = os.path.join(work, "rcache-t%d" % i)
            rc = Rclone(dirs["plain"], dirs["mnt-rclone"], cache,
                        os.path.join(dirs["logs"], "rclone-t%d.log" % i))
            active.append(rc)
            with rc:
                drop_caches()
                io0 = rc.io()
                t = rclone_edit(rc, dirs["mnt-rclone"], remote_file, size, v)
                io1 = rc.io()
            shutil.rmtree(cache, ignore_errors=True)
            ok = os.path.getsize(remote_file) == size and \
                check_edit(remote_file, v)
            res["rc.ok"].append(ok)
            for k in t:
                res["rc." + k].append(t[k])
            for k in ("rchar", "wchar", "read_bytes", "write_bytes"):
                res["rc.io." + k].append(io1[k] - io0[k])
            log("rclone run %d: visible %.3f s (close %.3f, done %.3f), "
                "rchar %d, wchar %d, ok %s" % (
                    i, t["visible"], t["close"], t["done"],
                    io1["rchar"] - io0["rchar"],
                    io1["wchar"] - io0["wchar"], ok))

            # --- rclone under strace, for the bytes ------------------
            v = -3.0 - 3 * i
            cache = os.path.join(work, "rcache-s%d" % i)
            trace = os.path.join(dirs["logs"], "rclone-s%d.strace" % i)
            rc = Rclone(dirs["plain"], dirs["mnt-rclone"], cache,
                        os.path.join(dirs["logs"], "rclone-s%d.log" % i),
                        trace=trace)
            active.append(rc)
            with rc:
                drop_caches()
                t = rclone_edit(rc, dirs["mnt-rclone"], remote_file, size, v)
            shutil.rmtree(cache, ignore_errors=True)
            acc = parse_trace(trace, remote_file, cache)
            ok = check_edit(remote_file, v)
            res["rcs.ok"].append(ok)
            res["rcs.visible"].append(t["visible"])
            for k in ("remote-before-upload read", "remote-after-upload read",
                      "remote write", "cache read", "cache write",
                      "fuse read", "fuse write"):
                res["rcs." + k].append(acc.get(k, 0))
            log("rclone traced run %d: visible %.3f s, %s, ok %s"
                % (i, t["visible"], dict(acc), ok))
            os.remove(trace)
    finally:
        for m in reversed(active):
            try:
                m.__exit__(None, None, None)
            except Exception as e:  # noqa: BLE001 - best-effort cleanup
                log("cleanup: %s" % e)
    elapsed = time.monotonic() - t_start

    # ---- report ---------------------------------------------------------
    R = {k: med(v) for k, v in res.items() if not k.endswith(".ok")}
    ch5_in, ch5_out = R["ch5.bytes.in"], R["ch5.bytes.out"]
    ch5_moved = med([x + y for x, y in zip(res["ch5.bytes.in"],
                                           res["ch5.bytes.out"])])
    rc_down = R["rcs.remote-before-upload read"]
    rc_verify = R["rcs.remote-after-upload read"]
    rc_up = R["rcs.remote write"]
    rc_moved = med([x + y for x, y in zip(
        res["rcs.remote-before-upload read"], res["rcs.remote write"])])
    rc_moved_all = med([x + y + z for x, y, z in zip(
        res["rcs.remote-before-upload read"],
        res["rcs.remote-after-upload read"], res["rcs.remote write"])])
    floor = 2 * size
    all_ok = all(all(v) for k, v in res.items() if k.endswith(".ok"))

    out = []
    out.append("## r+ edit of one chunk: cloudh5 vs whole-object rewrite\n")
    out.append("`bench/edit_bench.py --runs %d --size-gib %g` (a benchmark, "
               "not a test): medians of %d runs, page cache %s before every "
               "edit, each edit on a fresh mount (rclone: fresh --cache-dir)."
               "\n" % (a.runs, a.size_gib, a.runs,
                       "dropped" if can_drop else
                       "NOT dropped (no permission)"))
    out.append("Environment: %s\n" % env)
    out.append("Link: local backends on this machine's disk (cloudh5 "
               "`file://` store; rclone's remote is a local directory); no "
               "network, no latency or bandwidth emulation.\n")
    out.append("File: one float64 dataset %d x %d in %d x %d chunks "
               "(%d MiB each), %s (%d bytes); in the cloudh5 store: a "
               "%d-byte manifest + %d chunk objects; in the rclone remote: "
               "one %d-byte object. Edit: `h5py.File(p, \"r+\")`, "
               "`d[200:210, 3000:3010] = v` (one chunk), `close()`.\n"
               % (n_rows, COLS, CHUNK[0], CHUNK[1],
                  CHUNK[0] * CHUNK[1] * 8 // MiB, mib(size), size,
                  manifest0, n_objects, size))
    out.append("| r+ one-chunk edit of a %s file | cloudh5 (chunk objects) "
               "| rclone mount, whole object (`--vfs-cache-mode writes`) "
               "| rclone / cloudh5 |" % mib(size).replace(".00", ""))
    out.append("|---|---|---|---|")
    out.append("| open(r+) returns | %s | %s | %s |" % (
        secs(R["ch5.open"]), secs(R["rc.open"]),
        ratio(R["rc.open"], R["ch5.open"])))
    out.append("| close() returns | %s | %s | %s |" % (
        secs(R["ch5.close"]), secs(R["rc.close"]),
        ratio(R["rc.close"], R["ch5.close"])))
    out.append("| **edit visible in the store** (wall time from open) "
               "| **%s** | **%s** | **%s** |" % (
                   secs(R["ch5.close"]), secs(R["rc.visible"]),
                   ratio(R["rc.visible"], R["ch5.close"])))
    out.append("| bytes read from the store | %s | %s | %s |" % (
        mib(ch5_in), mib(rc_down), ratio(rc_down, ch5_in)))
    out.append("| bytes written to the store | %s | %s | %s |" % (
        mib(ch5_out), mib(rc_up), ratio(rc_up, ch5_out)))
    out.append("| **bytes moved** (read + written) | **%s** | **%s** | "
               "**%s** |" % (mib(ch5_moved), mib(rc_moved),
                             ratio(rc_moved, ch5_moved)))
    out.append("| floor of any whole-object rewrite: 2 x file size | | %s "
               "| %s |" % (mib(floor), ratio(floor, ch5_moved)))
    out.append("| store requests | %d GET, %d PUT, %d DELETE, %d HEAD | "
               "one object, downloaded whole, uploaded whole | |" % (
                   R["ch5.requests.get"], R["ch5.requests.put"],
                   R["ch5.requests.delete"], R["ch5.requests.head"]))
    out.append("")
    out.append("How the bytes were measured. cloudh5: the mount's counters "
               "(`user.cloudh5.stats`: bytes.in = GET bytes, bytes.out = PUT "
               "bytes), change around the edit. rclone: in a second, "
               "untimed edit per run with rclone under `strace -f "
               "--seccomp-bpf`, the bytes of its read/write syscalls on the "
               "remote object: reads (the download, before the upload "
               "began) %s, writes (the upload) %s, reads after the upload "
               "began %s (all moved: %s, %s x cloudh5). Its cache "
               "directory: %s read, %s written; /dev/fuse: %s read, %s "
               "written. Cross-check, timed runs, /proc/PID/io of rclone "
               "(all its I/O: remote + cache + FUSE; rchar = download + "
               "the upload's read of the cache copy + FUSE, wchar = cache "
               "copy + upload + FUSE): rchar %s, wchar %s; "
               "read_bytes %s, write_bytes %s (block-layer, page cache "
               "dropped before the edit). Traced runs: edit visible after "
               "%s (timing not used)."
               % (mib(rc_down), mib(rc_up), mib(rc_verify),
                  mib(rc_moved_all), ratio(rc_moved_all, ch5_moved),
                  mib(R["rcs.cache read"]), mib(R["rcs.cache write"]),
                  mib(R["rcs.fuse read"]), mib(R["rcs.fuse write"]),
                  mib(R["rc.io.rchar"]), mib(R["rc.io.wchar"]),
                  mib(R["rc.io.read_bytes"]), mib(R["rc.io.write_bytes"]),
                  secs(R["rcs.visible"])))
    out.append("")
    out.append("rclone runs with `--vfs-fast-fingerprint`: without it, "
               "opening the file also reads the whole remote object once "
               "to md5 it for the cache fingerprint (the local backend has "
               "no stored hash; an S3 remote gets it from the listing), "
               "one more file size read per edit.")
    out.append("")
    out.append("rclone timings: close() returned after %s, the upload "
               "complete in the remote (full size, mtime set back) after "
               "%s, rclone logged the copy done "
               "after %s. Per-run wall times (s): cloudh5 %s; rclone %s."
               % (secs(R["rc.close"]), secs(R["rc.visible"]),
                  secs(R["rc.done"]),
                  ", ".join("%.3f" % x for x in res["ch5.close"]),
                  ", ".join("%.3f" % x for x in res["rc.visible"])))
    out.append("")
    out.append("Every edit read back correctly (through a fresh cloudh5 "
               "mount; from the remote object with h5py): %s. Benchmark "
               "run time %.0f s (%d-MiB file written onto the mount in "
               "%.1f s)." % ("yes" if all_ok else "NO", elapsed,
                             size // MiB, t_write))
    report = "\n".join(out) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(report)
        log("report written to %s" % a.out)
    else:
        sys.stdout.write(report)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
