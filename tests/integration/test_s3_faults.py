#!/usr/bin/python3
"""Fault tests through a real S3 server (Ceph RGW): the daemon keeps working
and loses no data when the server goes away and comes back in the middle of
a read or of a commit, and across a link with latency, packet loss and a
rate limit.

The script starts its own RGW (tests/servers/ceph-rgw-up.sh: ceph-mon,
ceph-osd on memstore, radosgw) in --state-dir on its own ports, never the
shared fixture's, and stops only its radosgw (SIGTERM, or SIGKILL for a
crash) and starts it again (tests/servers/ceph-rgw-gw.sh start).  For the
link it makes two network namespaces (tests/servers/wan-netns.sh: a router
namespace with tbf, an iptables statistic drop rule and nfqdelay, and a
client namespace the daemon runs in through nsenter --net, so its mount
stays in ours); radosgw also listens on the host end of that link.
The router also serves to lose the answer to a commit point (the
manifest PUT): the server applies it, the daemon never hears so, sends it
again, and its own condition refuses the retry.
Everything (daemons, radosgw, nfqdelay, namespaces) is removed at the end,
also after a failure; a run killed outright is cleaned up by the next one.

The retry budget these tests are built around (objstore/s3.c): a request
that gets no answer (connection refused or reset, timeout) or a 5xx is
sent again 4 times, after 100-200, 200-400, 400-800 and 800-1600 ms
(full jitter): its last attempt goes out 1.5 to 3.0 s after the first one
failed.  An outage well under 1.5 s is covered; one over 3 s fails the
operation with EIO.

usage: test_s3_faults.py --mount-bin build/fs/mount.cloudh5
           --state-dir DIR [--port 7482] [--mon-ports 3302,6791]
           [--nfqdelay-src ../shared/bench-peers/netem/nfqdelay.c]
           [-k NAME]...
Root is needed (namespaces, iptables).  Knobs: CH5_WAN_DELAY_MS (10),
CH5_WAN_LOSS (0.02), CH5_WAN_RATE_MBIT (100) for the link test;
CH5_TIMELINE=1 prints each read of the other mount's reader in the commit
tests (start, end, outcome; seconds after the server was back).
"""

import errno
import glob
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ch5test as T  # noqa: E402

import h5py  # noqa: E402

SERVERS = os.path.normpath(os.path.join(HERE, "..", "servers"))
WAN_NAME = "ch5wan"
WAN_NET = "169.254.233"
WAN_SERVER = WAN_NET + ".1"          # the host end: radosgw listens here
WAN_CLIENT_NS = WAN_NAME + "-cl"
WAN_ROUTER_NS = WAN_NAME + "-rt"
MiB = 1 << 20

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ------------------------------------------------------------ the server

class Server:
    """This script's own RGW and emulated link, from the command line."""

    def __init__(self, args):
        self.dir = os.path.abspath(args.get("state-dir") or
                                   "/tmp/ch5-s3-faults-rgw")
        self.port = int(args.get("port", "7482"))
        mons = args.get("mon-ports", "3302,6791").replace(";", ",")
        self.mon2, self.mon1 = mons.split(",")
        self.nfq_src = os.path.abspath(
            args.get("nfqdelay-src") or os.path.join(
                HERE, "..", "..", "..", "shared", "bench-peers", "netem",
                "nfqdelay.c"))
        self.nfq_bin = os.path.join(os.path.dirname(self.dir), "nfqdelay")
        self.wan_state = self.dir + "-wan"
        self.rgw_started = False
        self.wan_started = False
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.wan_endpoint = "http://%s:%d" % (WAN_SERVER, self.port)

    def wan_env(self, delay_ms=0, loss=0, rate_mbit=0):
        env = dict(os.environ)
        env.update(CH5_WAN_NAME=WAN_NAME, CH5_WAN_NET=WAN_NET,
                   CH5_WAN_STATE=self.wan_state,
                   CH5_WAN_NFQDELAY=self.nfq_bin,
                   CH5_WAN_DELAY_MS=str(delay_ms), CH5_WAN_LOSS=str(loss),
                   CH5_WAN_RATE_MBIT=str(rate_mbit))
        return env

    def wan(self, cmd, **shape):
        r = subprocess.run([os.path.join(SERVERS, "wan-netns.sh"), cmd],
                           env=self.wan_env(**shape), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode(errors="replace")
        T.check(r.returncode == 0, "wan-netns.sh %s failed (%d):\n%s"
                % (cmd, r.returncode, out))
        return out

    def build_nfqdelay(self):
        T.check(os.path.isfile(self.nfq_src), "no %s (nfqdelay's source, "
                "from the shared bench-peers folder; --nfqdelay-src)"
                % self.nfq_src)
        if (os.path.exists(self.nfq_bin) and os.path.getmtime(self.nfq_bin)
                >= os.path.getmtime(self.nfq_src)):
            return
        os.makedirs(os.path.dirname(self.nfq_bin), exist_ok=True)
        r = subprocess.run(["gcc", "-O2", "-Wall", "-o", self.nfq_bin,
                            self.nfq_src, "-lnetfilter_queue",
                            "-lnfnetlink"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        T.check(r.returncode == 0, "cannot build nfqdelay (Debian package "
                "libnetfilter-queue-dev):\n%s"
                % r.stdout.decode(errors="replace"))

    def up(self):
        T.check(os.geteuid() == 0, "needs root (network namespaces, "
                "iptables)")
        self.build_nfqdelay()
        # The link first: radosgw binds the host end's address.
        self.wan_started = True
        self.wan("up")
        t = time.monotonic()
        env = dict(os.environ)
        env.update(CEPH_RGW_NO_INSTALL="1", CEPH_RGW_REPLACE="1",
                   CEPH_RGW_PORT=str(self.port), CEPH_MON_PORT_V2=self.mon2,
                   CEPH_MON_PORT_V1=self.mon1,
                   CEPH_RGW_MEMSTORE_BYTES=str(1 << 30),
                   CEPH_RGW_EXTRA_ADDRS=WAN_SERVER)
        self.rgw_started = True
        r = subprocess.run([os.path.join(SERVERS, "ceph-rgw-up.sh"),
                            self.dir], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=240)
        out = r.stdout.decode(errors="replace")
        T.check(r.returncode == 0, "ceph-rgw-up.sh failed (%d):\n%s"
                % (r.returncode, out[-3000:]))
        dt = time.monotonic() - t
        # From here the workspaces are prefixes of this server's bucket.
        os.environ["CH5_S3_ENV"] = os.path.join(self.dir, "env")
        T.STORE = "s3"
        T.S3 = True
        return "RGW on :%d (and %s) up in %.1f s, state %s" % (
            self.port, WAN_SERVER, dt, self.dir)

    def down(self):
        T.cleanup_all()
        if self.rgw_started:
            subprocess.run([os.path.join(SERVERS, "ceph-rgw-down.sh"),
                            self.dir, "--keep"])
            self.rgw_started = False
        if self.wan_started:
            subprocess.run([os.path.join(SERVERS, "wan-netns.sh"), "down"],
                           env=self.wan_env())
            self.wan_started = False

    def gw(self, *cmd):
        """ceph-rgw-gw.sh stop|start: seconds the step took."""
        r = subprocess.run([os.path.join(SERVERS, "ceph-rgw-gw.sh"),
                            self.dir] + list(cmd), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        if r.returncode != 0:
            tail = ""
            for log in ("radosgw.out", "ceph-client.rgw.a.log"):
                try:
                    with open(os.path.join(self.dir, "log", log), "rb") as f:
                        lines = f.read().decode(errors="replace")
                    tail += "\n--- %s:\n%s" % (
                        log, "\n".join(lines.splitlines()[-15:]))
                except OSError:
                    pass
            raise T.Fail("ceph-rgw-gw.sh %s failed: %s%s"
                         % (" ".join(cmd),
                            r.stderr.decode(errors="replace"), tail))
        return float(r.stdout.decode().split()[-1])

    def stop_gw(self, sig=signal.SIGTERM):
        """Signals radosgw at once (not through ceph-rgw-gw.sh, whose
        start-up alone lets a commit upload dozens of objects) and waits
        for it to be gone.  Only the PID of its pids file, and only while
        that is radosgw (as ceph-rgw-gw.sh does)."""
        with open(os.path.join(self.dir, "pids")) as f:
            pid = next(int(ln.split()[1]) for ln in f
                       if ln.split()[:1] == ["radosgw"])

        def alive():
            try:
                return os.path.basename(os.readlink(
                    "/proc/%d/exe" % pid)) == "radosgw"
            except OSError:
                return False

        def gone():
            # Not `not alive()`: exe goes with the memory, before the
            # process closes its files; the new radosgw needs the port.
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        return False
            except OSError:
                pass
            return not self.listening()
        T.check(alive(), "radosgw (%d) is not running" % pid)
        os.kill(pid, sig)
        wait_for(gone, 60, "radosgw to exit", step=0.02)

    def listening(self):
        """True while a socket listens on the S3 port (any address)."""
        with open("/proc/net/tcp") as f:
            for ln in f.readlines()[1:]:
                local, st = ln.split()[1], ln.split()[3]
                if st == "0A" and int(local.split(":")[1], 16) == self.port:
                    return True
        return False

    def restart_gw(self):
        """Stops radosgw (SIGTERM), starts it again at once and waits for
        its answer.  Returns (t_stop, t_ready, outage seconds) on the
        monotonic clock: the outage runs from the signal to the first
        answer."""
        t_stop = time.monotonic()
        self.stop_gw()
        self.gw("start")
        t_ready = time.monotonic()
        return t_stop, t_ready, t_ready - t_stop


# The shortest time the retries of a request cover (objstore/s3.c: 4
# retries, after 100-200, 200-400, 400-800 and 800-1600 ms).  An outage
# shorter than this never fails a request; a longer one may (over 3 s it
# must).
RETRY_COVERS = 1.5


SERVER = [None]


# ------------------------------------------------------------ helpers

def make_h5(path, seed, mib, chunk_kib):
    """A file of one uint8 dataset of `mib` MiB in chunks of `chunk_kib`
    KiB (rows of 1 KiB), random (incompressible) bytes."""
    rows = mib * 1024
    data = np.random.default_rng(seed).integers(0, 256, (rows, 1024),
                                               dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, chunks=(chunk_kib, 1024))
        f.attrs["seed"] = seed


def read(p):
    with open(p, "rb") as f:
        return f.read()


def copy_file(src, dst, piece=MiB):
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while True:
            b = fi.read(piece)
            if not b:
                break
            fo.write(b)


def stats(mnt):
    """The mount's counters (cloudh5 stats), as {name: int}."""
    out = {}
    for ln in os.getxattr(mnt, "user.cloudh5.stats").decode().splitlines():
        k, _, v = ln.partition(" ")
        if v.isdigit():
            out[k] = int(v)
    return out


def wait_for(pred, timeout, what, step=0.01):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise T.Fail("%s: not within %.0f s" % (what, timeout))
        time.sleep(step)


def log_of(mount):
    with open(mount.log, "rb") as f:
        return f.read().decode(errors="replace")


def count_retries(mount):
    """Requests the daemon sent again (its -o debug log)."""
    return log_of(mount).count(", retrying")


def spool_of(mount):
    return os.path.join(mount.workdir, "spool%d" % mount.n)


def stages(spool):
    """{stage path: (bytes, record text)} of a spool directory."""
    out = {}
    for p in glob.glob(os.path.join(spool, "*.stage")):
        try:
            out[p] = (read(p), read(p + ".key").decode(errors="replace"))
        except FileNotFoundError:
            pass
    return out


def fsck(binary, store, *args):
    tool = os.path.join(os.path.dirname(binary), "cloudh5")
    r = subprocess.run([tool, "fsck", store.url] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120, env=store.env())
    return r.returncode, r.stdout.decode(errors="replace")


def fsck_clean_up(binary, ws, P):
    """After a commit that failed part-way and a later one that landed:
    fsck finds nothing missing and only orphans of tags other than the
    current one (the failed attempts' uploads); --repair --grace 0 removes
    them, and the store then holds exactly the file's layout."""
    rc, out = fsck(binary, ws.store)
    T.check(not [ln for ln in out.splitlines() if ln.startswith(
        ("missing ", "damaged ", "bad-manifest "))],
        "fsck finds missing objects or a damaged manifest:\n" + out)
    orphans = [ln.split()[1] for ln in out.splitlines()
               if ln.startswith("orphan ")]
    live = T.chunk_objects(ws.store, P)["tags"] - {
        o.split("/")[3] for o in orphans}
    T.check(len(live) == 1, "%s: objects of %d live tags %s" % (
        P, len(live), sorted(live)))
    rc, out2 = fsck(binary, ws.store, "--repair", "--grace", "0")
    T.check(rc == 0, "fsck --repair --grace 0: exit %d\n%s" % (rc, out2))
    return len(orphans)


class PacedReader(threading.Thread):
    """Reads `path` front to back in `piece`-byte os.pread()s, `pause`
    seconds apart, checking each piece against `want` at once.  Records
    the first wrong offset, the error that ended it, and timings."""

    def __init__(self, path, want, piece=256 << 10, pause=0.005):
        super().__init__(daemon=True)
        self.path, self.want, self.piece, self.pause = (path, want, piece,
                                                        pause)
        self.done = 0
        self.wrong = None
        self.err = None
        self.t0 = self.t_end = None

    def run(self):
        self.t0 = time.monotonic()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            while self.done < len(self.want):
                b = os.pread(fd, self.piece, self.done)
                if not b:
                    break
                if b != self.want[self.done:self.done + len(b)]:
                    self.wrong = self.done
                    break
                self.done += len(b)
                time.sleep(self.pause)
        except OSError as e:
            self.err = e
        finally:
            self.t_end = time.monotonic()
            os.close(fd)


class LoopReader(threading.Thread):
    """Opens, reads whole and closes `path` again and again (on a mount
    of its own) until stopped, and classifies each read: the name of the
    version (from `versions`, {name: bytes}) it equals, "errno N", or
    "other" (bytes of no version: a mix)."""

    def __init__(self, path, versions):
        super().__init__(daemon=True)
        self.path, self.versions = path, versions
        self.halt = threading.Event()
        self.reads = []   # (t_start, t_end, outcome)

    def run(self):
        while not self.halt.is_set():
            t0 = time.monotonic()
            try:
                data = read(self.path)
                outcome = next((n for n, v in self.versions.items()
                                if v == data), "other")
            except OSError as e:
                outcome = "errno %d" % e.errno
            self.reads.append((t0, time.monotonic(), outcome))
            time.sleep(0.05)

    def wait_reads(self, outcome, n=2, timeout=30):
        """Returns once n reads since now had `outcome`."""
        k = len(self.reads)
        wait_for(lambda: sum(o == outcome for _, _, o in self.reads[k:])
                 >= n or not self.is_alive(), timeout,
                 "%d reads of %s" % (n, outcome), step=0.05)

    def stop(self):
        self.halt.set()
        self.join(120)
        T.check(not self.is_alive(), "the reader is stuck in a read")

    def timeline(self, t_ready):
        return "\n".join("%7.2f %7.2f %s" % (t0 - t_ready, t1 - t_ready, o)
                         for t0, t1, o in self.reads)

    def check(self, first, last, t_ready, mount):
        """Every read is a whole version or an error; the versions appear
        in order (first ... last, never back); no read that began after
        t_ready (the server answering again) failed; the last read is
        `last`.  Returns a summary."""
        outs = [o for _, _, o in self.reads]
        T.check(outs, "the reader never finished a read")
        other = [i for i, o in enumerate(outs) if o == "other"]
        if other:
            raise T.Fail("read %d of %d returned bytes of neither version "
                         "(a mix)%s" % (other[0] + 1, len(outs),
                                        "; its daemon switched versions"
                                        if "read the new version" in
                                        log_of(mount) else ""))
        seen_last = [i for i, o in enumerate(outs) if o == last]
        T.check(seen_last, "the reader never saw %s: %s" % (last, outs))
        back = [i for i, o in enumerate(outs)
                if o == first and i > seen_last[0]]
        T.check(not back, "the reader saw %s again after %s (read %d); "
                "reads (start, end, outcome; s after the server was "
                "back):\n%s" % (first, last, back[0] + 1 if back else 0,
                                 self.timeline(t_ready)))
        late = [(t0 - t_ready, o) for t0, _, o in self.reads
                if t0 > t_ready and o.startswith("errno")]
        T.check(not late, "reads that began after the server was back "
                "failed: %s" % late[:5])
        T.check(outs[-1] == last, "the last read was %s" % outs[-1])
        n = {o: outs.count(o) for o in set(outs)}
        if os.environ.get("CH5_TIMELINE"):
            print(self.timeline(t_ready))
        return "reader: %s" % ", ".join("%d %s" % (v, k) for k, v in
                                        sorted(n.items()))


# ------------------------------------------------------------ tests

READ_MIB = 64


def read_setup(ws):
    """big.h5 (64 chunk objects of 1 MiB) in the store, on a fresh mount
    (-o debug: it logs each request it sends again)."""
    make_h5(ws.l("big.h5"), 7, READ_MIB, 1024)
    ws.start()
    copy_file(ws.l("big.h5"), ws.m("big.h5"))
    ws.remount()   # cold: nothing cached, in the daemon or the kernel
    return read(ws.l("big.h5"))


def start_paced_read(ws, want, after_bytes):
    """A paced reader of big.h5, and once the daemon has fetched
    `after_bytes` for it (the read is under way), returns."""
    m = ws.mount.mnt
    base = stats(m)["bytes.in"]
    rd = PacedReader(ws.m("big.h5"), want)
    rd.start()
    wait_for(lambda: stats(m)["bytes.in"] - base >= after_bytes, 30,
             "the read to fetch %d bytes" % after_bytes)
    T.check(rd.is_alive() and rd.done < len(want), "the read ended before "
            "the server was stopped (%d of %d bytes read)"
            % (rd.done, len(want)))
    return rd


@test
def read_survives_server_restart(binary):
    """A cold read of a 64 MiB file (64 chunk objects) is under way when
    radosgw is stopped (SIGTERM) and started again; the read goes on
    after the outage and returns every byte right: the requests the
    outage hit were sent again (the daemon says so)."""
    srv = SERVER[0]
    with T.Workspace(binary, opts="debug", name="s3f-rd") as ws:
        want = read_setup(ws)
        r0 = count_retries(ws.mount)
        rd = start_paced_read(ws, want, 8 * MiB)
        at_stop = rd.done
        t_stop, t_ready, outage = srv.restart_gw()
        rd.join(120)
        T.check(not rd.is_alive(), "the read hangs after the restart")
        T.check(rd.wrong is None, "the read returned wrong bytes at "
                "offset %s" % rd.wrong)
        # Also the daemon's readahead, which the reader may never wait
        # for, lost no request to the outage.
        errs = stats(ws.mount.mnt)["requests.errors"]
        if (rd.err is not None or errs) and outage >= RETRY_COVERS:
            # Too slow a restart (a loaded machine) for the retries to
            # cover for sure: failed requests and EIO are right too.
            T.check(rd.err is None or rd.err.errno == errno.EIO,
                    "the read failed with %r" % rd.err)
            T.check(rd.err is not None or rd.done == len(want), "the read "
                    "ended at %d of %d bytes" % (rd.done, len(want)))
            T.check(read(ws.m("big.h5")) == want, "a new read after the "
                    "restart is wrong")
            ws.stop()
            return ("NOTE: outage %.2f s, longer than the %.1f s the "
                    "retries surely cover: %d requests failed, the read "
                    "%s; a new read works"
                    % (outage, RETRY_COVERS, errs,
                       "failed with EIO at byte %d (all right)" % rd.done
                       if rd.err else "completed right"))
        T.check(rd.err is None, "the read failed after a %.2f s outage: "
                "%r" % (outage, rd.err))
        T.check(rd.done == len(want), "the read ended at %d of %d bytes"
                % (rd.done, len(want)))
        T.check(errs == 0, "%d requests failed for good after a %.2f s "
                "outage" % (errs, outage))
        retried = count_retries(ws.mount) - r0
        T.check(retried > 0, "no request was sent again: the outage hit "
                "nothing (read %d bytes by then)" % at_stop)
        ws.stop()
        return ("%d MiB read, %.1f MiB of it before the stop; outage "
                "%.2f s; %d requests retried; read took %.1f s"
                % (READ_MIB, at_stop / MiB, outage, retried,
                   rd.t_end - rd.t0))


@test
def read_fails_cleanly_when_outage_outlasts_retries(binary):
    """The same read, radosgw killed (SIGKILL) and kept down 8 s, longer
    than the retries last: the read fails with EIO within seconds (it
    does not hang) and every byte it returned before is right; after the
    restart the same descriptor and a new open read every byte, without
    remounting."""
    srv = SERVER[0]
    with T.Workspace(binary, opts="debug", name="s3f-rdx") as ws:
        want = read_setup(ws)
        rd = start_paced_read(ws, want, 8 * MiB)
        t_stop = time.monotonic()
        srv.stop_gw(signal.SIGKILL)
        rd.join(60)
        T.check(not rd.is_alive(), "the read still hangs 60 s into the "
                "outage")
        t_err = rd.t_end - t_stop
        down = time.monotonic() - t_stop
        if down < 8:
            time.sleep(8 - down)
        srv.gw("start")
        T.check(rd.wrong is None, "the read returned wrong bytes at "
                "offset %s" % rd.wrong)
        T.check(isinstance(rd.err, OSError) and rd.err.errno == errno.EIO,
                "the read ended with %r after %d of %d bytes, not EIO"
                % (rd.err, rd.done, len(want)))
        T.check(t_err < 20, "EIO took %.1f s" % t_err)
        # The same descriptor reads on where it failed.
        with open(ws.m("big.h5"), "rb") as f:
            f.seek(rd.done)
            T.check(f.read() == want[rd.done:], "the rest of the file "
                    "read after the restart is wrong")
        T.check(read(ws.m("big.h5")) == want, "a new read after the "
                "restart is wrong")
        ws.stop()
        return ("EIO %.1f s after the kill, at byte %d of %d (all right); "
                "reads work again after the restart"
                % (t_err, rd.done, len(want)))


COMMIT_MIB = 48
COMMIT_CHUNK_KIB = 256    # 192 chunk objects


class CommitCase:
    """Mount A (writer, -o debug) and mount B (a reader) of one store
    holding x.h5 at version v1; v2 (192 chunk objects) is ready on local
    disk; B's cache holds v1."""

    def __init__(self, binary, ws):
        self.binary, self.ws = binary, ws
        make_h5(ws.l("v1.h5"), 1, COMMIT_MIB, COMMIT_CHUNK_KIB)
        make_h5(ws.l("v2.h5"), 2, COMMIT_MIB, COMMIT_CHUNK_KIB)
        self.v1, self.v2 = read(ws.l("v1.h5")), read(ws.l("v2.h5"))
        ws.mount.opts = "debug"
        ws.start()
        copy_file(ws.l("v1.h5"), ws.m("x.h5"))
        self.manifest1 = ws.store.get("x.h5")
        bdir = os.path.join(ws.root, "b")
        os.makedirs(os.path.join(bdir, "mnt"))
        self.b = T.Mount(binary, ws.store, os.path.join(bdir, "mnt"), bdir)
        self.b.start()
        T.check(read(self.b.path("x.h5")) == self.v1, "B reads v1 wrong")
        self.reader = LoopReader(self.b.path("x.h5"),
                                 {"v1": self.v1, "v2": self.v2})
        self.writer = None

    def start_writer(self):
        """Writes v2 over x.h5 on A in a thread; its close() commits."""
        self.put0 = stats(self.ws.mount.mnt)["requests.put"]
        self.failed0 = stats(self.ws.mount.mnt)["commits.failed"]
        self.retries0 = count_retries(self.ws.mount)
        self.wres = {}

        def write():
            t = time.monotonic()
            try:
                f = open(self.ws.m("x.h5"), "wb")
            except OSError as e:
                self.wres["open"] = e
                return
            try:
                f.write(self.v2)
            except OSError as e:
                self.wres["write"] = e
            try:
                f.close()
                self.wres["close"] = None
            except OSError as e:
                self.wres["close"] = e
            self.wres["secs"] = time.monotonic() - t
        self.writer = threading.Thread(target=write, daemon=True)
        self.writer.start()

    def wait_upload(self, n=16):
        """Returns once n chunk objects of the commit are in the store
        (the upload is under way)."""
        m = self.ws.mount.mnt
        wait_for(lambda: stats(m)["requests.put"] - self.put0 >= n, 60,
                 "%d chunk uploads" % n)
        T.check(self.writer.is_alive(), "the commit ended before the "
                "server was stopped")

    def join_writer(self, timeout=60):
        self.writer.join(timeout)
        T.check(not self.writer.is_alive(), "close() still hangs %d s "
                "after the server came back" % timeout)
        T.check("open" not in self.wres and "write" not in self.wres,
                "writing failed before the commit: %s" % self.wres)
        return self.wres["close"]

    def check_v2(self):
        """v2 is committed: a new mount reads it byte for byte, and B
        reads it; the store holds exactly its layout (after fsck
        removed the failed attempts' orphans)."""
        n_orph = fsck_clean_up(self.binary, self.ws, "x.h5")
        T.assert_store_layout(self.ws.store, "x.h5", self.ws.l("v2.h5"))
        T.check(read(self.b.path("x.h5")) == self.v2, "B does not read v2")
        c = T.Mount(self.binary, self.ws.store,
                    os.path.join(self.ws.root, "c", "mnt"),
                    os.path.join(self.ws.root, "c"))
        os.makedirs(c.mnt)
        c.start()
        try:
            T.assert_same_bytes(self.ws.l("v2.h5"), c.path("x.h5"))
        finally:
            c.stop()
        return n_orph

    def check_stage_kept(self, spool):
        st = stages(spool)
        T.check(len(st) == 1, "%d stages in %s" % (len(st), spool))
        (data, rec), = st.values()
        T.check(data == self.v2, "the kept stage does not hold v2")
        T.check("\nstate committing\n" in rec and rec.endswith("\nkey x.h5"),
                "the stage record: %r" % rec)

    def check_v1_intact(self):
        T.check(self.ws.store.get("x.h5") == self.manifest1, "the "
                "manifest changed although no commit landed")
        T.check(read(self.b.path("x.h5")) == self.v1, "B does not read "
                "v1 after the failed commit")


@test
def commit_survives_server_restart(binary):
    """A close() whose commit uploads 192 chunk objects: radosgw is
    stopped (SIGTERM) and started again once 16 are up.  The requests it
    cut are sent again and close() succeeds; should the outage outlast
    the retries, close() fails with EIO and a reopen-and-close commits.
    Either way the store ends with v2 exactly (plus orphans fsck
    removes), and a reader on another mount saw only v1 then v2."""
    srv = SERVER[0]
    with T.Workspace(binary, name="s3f-cm") as ws:
        cc = CommitCase(binary, ws)
        try:
            cc.reader.start()
            cc.start_writer()
            cc.wait_upload()
            t_stop, t_ready, outage = srv.restart_gw()
            err = cc.join_writer()
            how = "close() succeeded"
            if err is not None:
                # Only an outage the retries may not cover can fail it.
                T.check(outage >= RETRY_COVERS, "close() failed after a "
                        "%.2f s outage: %r" % (outage, err))
                T.check(err.errno == errno.EIO, "close(): %r" % err)
                cc.check_stage_kept(spool_of(ws.mount))
                with open(ws.m("x.h5"), "r+b"):
                    pass
                how = "close() EIO, reopen+close committed"
            retried = count_retries(ws.mount) - cc.retries0
            T.check(retried > 0, "no request was sent again: the outage "
                    "hit nothing")
            cc.reader.wait_reads("v2")
        finally:
            cc.reader.stop()
        summary = cc.reader.check("v1", "v2", t_ready, cc.b)
        n_orph = cc.check_v2()
        cc.b.stop()
        ws.stop()
        return ("outage %.2f s, %d requests retried, %s in %.1f s; %d "
                "orphans; %s" % (outage, retried, how, cc.wres["secs"],
                                 n_orph, summary))


EIO_WITHIN = 15   # s from the kill to close()'s EIO (see below)


def commit_into_outage(cc, srv):
    """Kills radosgw 16 uploads into v2's commit and keeps it down: close()
    fails with EIO, the RELEASE's new try fails too, the stage keeps v2.
    Returns (t_stop, seconds from the kill to EIO); radosgw is still down.

    EIO must come within EIO_WITHIN s: the kill (up to 2 s for radosgw to
    exit), the retries of the uploads in flight (3 s at most) and of
    those queued behind them in the pool (3 s more).  A commit that went
    on sending its remaining uploads, each waiting out its retries, took
    22 s here for 176 objects, and grows with the file."""
    ws = cc.ws
    cc.reader.start()
    cc.start_writer()
    cc.wait_upload()
    t_stop = time.monotonic()
    srv.stop_gw(signal.SIGKILL)
    err = cc.join_writer()
    t_eio = time.monotonic() - t_stop
    T.check(err is not None and err.errno == errno.EIO,
            "close() with the server down: %r" % err)
    T.check(t_eio < EIO_WITHIN, "close() took %.1f s to fail with the "
            "server down" % t_eio)
    # The kernel's RELEASE after close() commits again; it fails too.
    wait_for(lambda: stats(ws.mount.mnt)["commits.failed"]
             - cc.failed0 >= 2, 30, "the RELEASE's commit to fail")
    cc.check_stage_kept(spool_of(ws.mount))
    return t_stop, t_eio


@test
def commit_after_long_outage_by_reopen(binary):
    """radosgw killed (SIGKILL) 16 uploads into a 192-object commit and
    kept down past the retries: close() fails with EIO within seconds,
    the stage keeps v2, the store keeps v1 (same manifest; another mount
    reads v1); after the restart, opening and closing the file again
    commits v2."""
    srv = SERVER[0]
    with T.Workspace(binary, name="s3f-cmx") as ws:
        cc = CommitCase(binary, ws)
        try:
            t_stop, t_eio = commit_into_outage(cc, srv)
            srv.gw("start")
            t_ready = time.monotonic()
            cc.check_v1_intact()
            with open(ws.m("x.h5"), "r+b"):
                pass      # the flush of this close commits the stage
            wait_for(lambda: not stages(spool_of(ws.mount)), 10,
                     "the stage to leave the spool")
            cc.reader.wait_reads("v2")
        finally:
            cc.reader.stop()
        summary = cc.reader.check("v1", "v2", t_ready, cc.b)
        n_orph = cc.check_v2()
        cc.b.stop()
        ws.stop()
        return ("close() EIO %.1f s after the kill; outage %.1f s; v1 "
                "intact; reopen+close committed; %d orphans; %s"
                % (t_eio, t_ready - t_stop, n_orph, summary))


@test
def commit_after_long_outage_by_next_mount(binary):
    """The same outage, then A is unmounted while radosgw is still down
    (the stage stays in its spool); after the restart `cloudh5 fsck
    --spool` lists it, and a mount on that spool commits it."""
    srv = SERVER[0]
    with T.Workspace(binary, name="s3f-cmr") as ws:
        cc = CommitCase(binary, ws)
        try:
            t_stop, t_eio = commit_into_outage(cc, srv)
            spool = spool_of(ws.mount)
            t = time.monotonic()
            ws.stop()
            t_umount = time.monotonic() - t
            cc.check_stage_kept(spool)
            srv.gw("start")
            t_ready = time.monotonic()
            cc.check_v1_intact()
            rc, out = fsck(binary, ws.store, "--spool", spool)
            T.check(rc == 1 and "for x.h5 (committing)" in out,
                    "fsck --spool does not list the kept stage (exit %d):"
                    "\n%s" % (rc, out))
            ws.mount.opts = "spool_dir=" + spool
            ws.start()
            T.check("committed x.h5" in log_of(ws.mount), "the mount did "
                    "not commit the kept stage:\n"
                    + log_of(ws.mount)[-1500:])
            T.check(not stages(spool), "the stage is still in the spool")
            cc.reader.wait_reads("v2")
        finally:
            cc.reader.stop()
        summary = cc.reader.check("v1", "v2", t_ready, cc.b)
        n_orph = cc.check_v2()
        cc.b.stop()
        ws.stop()
        return ("close() EIO %.1f s after the kill; unmount with the "
                "server down %.1f s; outage %.1f s; next mount committed "
                "the kept stage; %d orphans; %s"
                % (t_eio, t_umount, t_ready - t_stop, n_orph, summary))


def curl_connect_ms(n=5):
    """Median TCP connect time (one round trip) from the client
    namespace to radosgw."""
    srv = SERVER[0]
    ts = []
    for _ in range(n):
        r = subprocess.run(["nsenter", "--net=/run/netns/" + WAN_CLIENT_NS,
                            "curl", "-s", "-o", "/dev/null", "--max-time",
                            "10", "-w", "%{time_connect}",
                            srv.wan_endpoint + "/"], stdout=subprocess.PIPE)
        if r.returncode == 0:
            ts.append(float(r.stdout) * 1000)
    T.check(ts, "radosgw cannot be reached from %s" % WAN_CLIENT_NS)
    return statistics.median(ts)


def router_counters():
    """(packets dropped, packets delayed) by the router's rules."""
    def count(*args):
        r = subprocess.run(["ip", "netns", "exec", WAN_ROUTER_NS,
                            "iptables", "-v", "-x", "-n", "-L"] + list(args),
                           stdout=subprocess.PIPE)
        return sum(int(ln.split()[0]) for ln in
                   r.stdout.decode().splitlines()[2:] if ln.strip())
    return count("FORWARD"), count("PREROUTING", "-t", "mangle")


def timed(fn, *a):
    t = time.monotonic()
    fn(*a)
    return time.monotonic() - t


@test
def wan_latency_loss_rate(binary):
    """The daemon in its own network namespace, behind a router that
    delays every packet (nfqdelay), drops 2% at random each way
    (iptables statistic) and limits the rate (tbf): h5py writes, a cp of
    a 32 MiB file of 32 chunks, an r+ edit and a plain file all commit,
    and after a remount (cold) every file reads back byte for byte and
    is stored as one object per chunk."""
    srv = SERVER[0]
    delay = float(os.environ.get("CH5_WAN_DELAY_MS", "10"))
    loss = float(os.environ.get("CH5_WAN_LOSS", "0.02"))
    rate = int(os.environ.get("CH5_WAN_RATE_MBIT", "100"))
    srv.wan("shape", delay_ms=delay, loss=loss, rate_mbit=rate)
    try:
        rtt = curl_connect_ms()
        with T.Workspace(binary, opts="debug,endpoint=" + srv.wan_endpoint,
                         name="s3f-wan") as ws:
            ws.mount.wrap = ["nsenter", "--net=/run/netns/" + WAN_CLIENT_NS]
            make_h5(ws.l("big.h5"), 11, 32, 1024)
            blob = os.urandom(8 * MiB)
            with open(ws.l("plain.bin"), "wb") as f:
                f.write(blob)
            t = {}
            ws.start()

            def small(p):
                # 512 chunks of 4 KiB: many small objects, so round trips
                with h5py.File(p, "w") as f:
                    f.create_dataset("s", data=np.arange(512 * 1024,
                                                         dtype=np.int32)
                                     .reshape(512, 1024), chunks=(1, 1024))
                    f.create_dataset("g", data=np.random.default_rng(3)
                                     .random((256, 256)), chunks=(32, 32),
                                     compression="gzip")

            def edit(p):
                with h5py.File(p, "r+") as f:
                    f["d"][5000:5010, 10:20] = 7
            t["write big.h5 (32 MiB, 32 chunks)"] = timed(
                copy_file, ws.l("big.h5"), ws.m("big.h5"))
            small(ws.l("small.h5"))
            t["h5py write small.h5 (576 chunks)"] = timed(
                small, ws.m("small.h5"))
            t["write plain.bin (8 MiB)"] = timed(
                copy_file, ws.l("plain.bin"), ws.m("plain.bin"))
            edit(ws.l("big.h5"))
            t["h5py r+ edit of big.h5"] = timed(edit, ws.m("big.h5"))
            ws.remount()
            for n in ("big.h5", "small.h5", "plain.bin"):
                t["cold read " + n] = timed(T.assert_same_bytes, ws.l(n),
                                            ws.m(n))
            T.assert_h5dump_equal(ws.l("small.h5"), ws.m("small.h5"))
            stat = stats(ws.mount.mnt)
            retried = count_retries(ws.mount)
            T.check(stat["requests.errors"] == 0, "%d store requests "
                    "failed" % stat["requests.errors"])
            ws.stop()
            # Checked from the host side (no loss here).
            T.assert_store_layout(ws.store, "big.h5", ws.l("big.h5"))
            T.assert_store_layout(ws.store, "small.h5", ws.l("small.h5"))
            T.assert_plain_object(ws.store, "plain.bin", ws.l("plain.bin"))
            dropped, delayed = router_counters()
            T.check(dropped > 0 or loss == 0, "no packet was dropped")
            T.check(delayed > 0 or delay == 0, "no packet was delayed")
            print("  link: %.0f ms one way, loss %g each way, %d Mbit/s; "
                  "TCP connect %.1f ms; %d packets dropped, %d delayed"
                  % (delay, loss, rate, rtt, dropped, delayed))
            for k, v in t.items():
                print("  %-36s %6.2f s" % (k, v))
            return ("connect %.1f ms, %d packets dropped of %d; cold read "
                    "32 MiB %.2f s (%.1f MB/s); %d requests sent again"
                    % (rtt, dropped, delayed, t["cold read big.h5"],
                       32 * MiB / 1e6 / t["cold read big.h5"], retried))
    finally:
        srv.wan("shape")


def router_iptables(*args):
    r = subprocess.run(["ip", "netns", "exec", WAN_ROUTER_NS, "iptables"]
                       + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    T.check(r.returncode == 0, "iptables %s: %s"
            % (" ".join(args), r.stdout.decode(errors="replace")))
    return r.stdout.decode()


@test
def commit_point_answer_lost(binary):
    """The manifest PUT (the commit point) lands on the server but its
    answer never reaches the daemon: the router marks the connection
    that carries it and drops the data the server sends back on it (its
    ACKs pass, so the request body arrives whole); once the
    new manifest is in the store, the connection is cut at the client.
    The conditional PUT goes out again (the daemon's retry, or libcurl's
    own resend on a fresh connection), and the server refuses it (412:
    the ETag it was conditioned on is gone, replaced by this very
    commit).  close() must still succeed (the commit did land), and the
    superseded objects must go."""
    srv = SERVER[0]
    with T.Workspace(binary, opts="debug,endpoint=" + srv.wan_endpoint,
                     name="s3f-lost") as ws:
        ws.mount.wrap = ["nsenter", "--net=/run/netns/" + WAN_CLIENT_NS]
        make_h5(ws.l("v1.h5"), 1, 2, 64)
        make_h5(ws.l("v2.h5"), 2, 2, 64)
        ws.start()
        copy_file(ws.l("v1.h5"), ws.m("x.h5"))
        etag1 = ws.store._head("x.h5")["ETag"]
        line = "PUT /%s/%sx.h5 HTTP/1.1" % (ws.store.bucket, ws.store.prefix)
        mark = ["FORWARD", "-i", WAN_ROUTER_NS + "-b", "-p", "tcp", "-m",
                "string", "--algo", "bm", "--string", line, "-j",
                "CONNMARK", "--set-mark", "0x7"]
        # Only the server's packets that carry data (its answer) are
        # dropped: its bare ACKs (at most 80 bytes: IP, TCP and options)
        # pass, so the request body still flows.  Dropping those too made
        # the PUT stall, and never land, whenever the body outgrew the
        # connection's send window (now and then: a fresh connection).
        drop = ["FORWARD", "-i", WAN_ROUTER_NS + "-a", "-m", "connmark",
                "--mark", "0x7", "-m", "length", "--length", "81:65535",
                "-j", "DROP"]
        router_iptables("-A", *mark)
        router_iptables("-A", *drop)
        res = {}

        def write():
            try:
                copy_file(ws.l("v2.h5"), ws.m("x.h5"))
                res["rc"] = None
            except OSError as e:
                res["rc"] = e
        w = threading.Thread(target=write, daemon=True)
        try:
            w.start()
            # The manifest PUT reached the server and replaced v1 there.
            wait_for(lambda: ws.store._head("x.h5")["ETag"] != etag1, 60,
                     "the new manifest to land", step=0.05)
            T.check(w.is_alive(), "close() returned although the commit "
                    "point's answer was dropped")
            router_iptables("-D", *mark)
            # Cut the connection that waits for the lost answer (else
            # libcurl gives up after 30 s without progress).
            subprocess.run(["nsenter", "--net=/run/netns/" + WAN_CLIENT_NS,
                            "ss", "-K", "dst", WAN_SERVER],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            w.join(90)
        finally:
            for rule in (mark, drop):
                subprocess.run(["ip", "netns", "exec", WAN_ROUTER_NS,
                                "iptables", "-D"] + rule,
                               stderr=subprocess.DEVNULL)
        T.check(not w.is_alive(), "close() hangs")
        T.check(res["rc"] is None, "close() failed although the commit "
                "landed: %r" % res["rc"])
        log = log_of(ws.mount)
        resent = ("the daemon's retry" if any(
            "s3 PUT x.h5: " in ln and ln.endswith(", retrying")
            for ln in log.splitlines()) else "libcurl's resend")
        T.check("an earlier send of it had landed"
                in log, "the daemon did not meet the refused "
                "retry (was the connection cut?)")
        ws.remount()
        T.assert_same_bytes(ws.l("v2.h5"), ws.m("x.h5"))
        ws.stop()
        rc, out = fsck(binary, ws.store)
        T.check(rc == 0, "fsck after the commit (exit %d): the superseded "
                "objects were left behind?\n%s" % (rc, out))
        return ("the PUT went out again (%s), 412: the daemon found its "
                "own manifest, close() succeeded" % resent)


def main():
    if T.FAKE:
        print("test_s3_faults: CH5_FAKE_MOUNT=1 cannot fake a server; "
              "exiting 77")
        sys.exit(T.SKIP)
    R = T.Runner("test_s3_faults")
    srv = SERVER[0] = Server(R.args)
    try:
        up = R.step("server_up", srv.up)
        for fn in TESTS:
            if not R.wanted(fn.__name__):
                continue
            if up is None:
                R.fail(fn.__name__, "not run: the server did not come up")
                continue
            R.run(fn.__name__, fn, R.binary)
    finally:
        srv.down()
    R.finish()


if __name__ == "__main__":
    main()
