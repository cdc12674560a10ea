"""Shared helpers for the cloudh5 integration tests.

Each test script mounts a file:// store with the real daemon (mount.cloudh5
-f in the background), does things through the mount with h5py, cp, h5dump
and plain file I/O, and checks three things: the bytes read back (after a
remount) equal the bytes written, h5dump says the same about both copies, and
the store holds exactly the objects the bucket layout promises (one per
stored chunk, nothing left behind).

The store is a local directory (file://) by default. With CH5_STORE=s3
and CH5_S3_ENV=FILE (the env file tests/servers/ceph-rgw-up.sh writes:
S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID, ...) every Workspace gets a
fresh key prefix of that bucket instead (s3://BUCKET/ch5-NAME-XXXX), the
daemons mount that URL with the AWS_* variables in their environment, and
everything that looks into or changes the store goes through the Store
object (LocalStore, S3Store) with Debian's python3-botocore. Likewise
CH5_STORE=az with CH5_AZ_ENV=FILE (the env file of
tests/servers/azurite-up.sh: AZURE_STORAGE_CONNECTION_STRING, AZ_CONTAINER,
...): a fresh blob name prefix of that container (az://CONTAINER/ch5-...),
AZURE_STORAGE_CONNECTION_STRING in the daemons' environment, and AzStore
(azblob.py, standard library only) as the view into the store. S3 and Azure
are the remote stores (REMOTE). A case that cannot run on them calls
skip_unless_local() and is reported as SKIP.

Only the standard library, numpy, h5py and (for S3) botocore, all Debian
packages, are used; run with /usr/bin/python3.

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
import uuid

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import azblob  # noqa: E402  (tests/integration/azblob.py)

FAKE = os.environ.get("CH5_FAKE_MOUNT") == "1"
# Which store the workspaces use: "local" (file://DIR), "s3" or "az".
STORE = os.environ.get("CH5_STORE") or "local"
S3 = STORE == "s3" and not FAKE
AZ = STORE == "az" and not FAKE
# A store reached over the network (S3 or Azure): not a directory here.
REMOTE = S3 or AZ
STORES = ("local", "s3", "az")
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


class Skip(Exception):
    """Raised by a test that cannot run with this store; the runner prints
    SKIP with the reason and counts it apart from passes."""


def skip_unless_local(why):
    """Skips the calling test on S3 and Azure (see Skip), with `why` as the
    reason."""
    if REMOTE:
        raise Skip("local store only: " + why)


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
    """mount.cloudh5 STORE-URL MNT -f -o spool_dir=...,OPTS, run in the
    background (store: a Store, or a directory for a file:// store). Every
    start uses a fresh spool directory, so a remount can only see what was
    committed to the store.

    stop() unmounts, waits for the daemon to exit, and fails if it did not
    exit with status 0 or printed a sanitizer report.

    wrap: argv put before the daemon's (a program that execs the rest,
    e.g. ["nsenter", "--net=/run/netns/NS"] to run the daemon in another
    network namespace while its mount stays in ours)."""

    def __init__(self, binary, store, mnt, workdir, opts=None, wrap=None):
        self.binary = binary
        self.store = as_store(store)
        self.mnt = mnt
        self.workdir = workdir
        self.opts = opts
        self.wrap = list(wrap or [])
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
        cmd = self.wrap + [self.binary, self.store.url, self.mnt, "-f",
                           "-o", opts]
        with open(self.log, "wb") as logf:
            logf.write(("$ " + self.store.describe_env()
                        + " ".join(cmd) + "\n").encode())
            logf.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf,
                                         env=self.store.env())
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
                self._dump_stacks()
                self._kill()
                raise Fail("mount did not appear within 20 s (log %s, "
                           "with the daemon's thread stacks)" % self.log)
            time.sleep(0.05)
        return self

    def _dump_stacks(self):
        """Appends every thread's stack of the daemon (gdb) to its log:
        where a daemon that does not answer is waiting."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            r = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch",
                                "-ex", "thread apply all bt"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            text = r.stdout.decode(errors="replace")
        except (OSError, subprocess.TimeoutExpired) as e:
            text = "no stacks: %s\n" % e
        with open(self.log, "a") as f:
            f.write("--- thread stacks (gdb) ---\n")
            f.write("\n".join(ln for ln in text.splitlines()
                               if ln.startswith(("#", "Thread"))) + "\n")

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
        self.local = os.path.join(self.root, "local")
        self.mntdir = os.path.join(self.root, "mnt")
        os.makedirs(self.local)
        # The store: store/ here, or a fresh prefix of the S3 bucket or
        # Azure container named after this directory.
        self.store = new_store(os.path.join(self.root, "store"))
        if FAKE:
            self.mntdir = self.store.root
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
                self.store.destroy()
                shutil.rmtree(self.root, ignore_errors=True)
            else:
                print("  workspace kept: %s%s" % (
                    self.root, "" if self.store.kind == "local"
                    else " (store %s)" % self.store.url))
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


def mount_stats(ws):
    """The mount's counters (its root's user.cloudh5.stats attribute, as
    `cloudh5 stats` prints them): a dict of name -> int (or str)."""
    out = {}
    text = os.getxattr(ws.m(""), "user.cloudh5.stats").decode()
    for line in text.splitlines():
        k, v = line.split(" ", 1)
        out[k] = int(v) if v.isdigit() else v
    return out


def wait_idle(ws, timeout=30):
    """Waits until the mount has no store request in flight (a read that
    failed may leave readahead or page-fill requests still retrying) and
    returns its counters."""
    deadline = time.monotonic() + timeout
    while True:
        st = mount_stats(ws)
        if st["requests.in_flight"] == 0 or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


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

class LocalStore:
    """A file:// store: the directory `root`. Keys map to files as the
    local backend maps them (see _local_path)."""

    kind = "local"

    def __init__(self, root):
        self.root = root
        self.url = "file://" + root

    def env(self):
        """The environment for a daemon or cloudh5 run on this store (None:
        inherit)."""
        return None

    def describe_env(self):
        return ""

    def path(self, key):
        """The file that holds object `key`."""
        return os.path.join(self.root, _local_path(key))

    def keys(self, prefix=""):
        """Keys (paths relative to the store dir, '/'-separated) of the
        regular files under store/prefix."""
        store = self.root
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

    def exists(self, key):
        return os.path.isfile(self.path(key))

    def get(self, key):
        with open(self.path(key), "rb") as f:
            return f.read()

    def head(self, key, n):
        """The first n bytes of the object."""
        with open(self.path(key), "rb") as f:
            return f.read(n)

    def size(self, key):
        return os.path.getsize(self.path(key))

    def put(self, key, data):
        """Writes an object as another tool would (parents created)."""
        p = self.path(key)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)

    def delete(self, key):
        os.unlink(self.path(key))

    def assert_object_equals(self, key, expected):
        """The object's bytes are those of the local file `expected`."""
        assert_same_bytes(expected, self.path(key))

    def copy_to(self, dst):
        """Makes dst (a LocalStore whose directory may exist) a copy of this
        store."""
        shutil.rmtree(dst.root, ignore_errors=True)
        shutil.copytree(self.root, dst.root, symlinks=True)

    def destroy(self):
        shutil.rmtree(self.root, ignore_errors=True)


def _local_path(key):
    """The file name of key in a file:// store: a component that is "",
    ".", "..", starts with '%', or is "tmp" right below ".cloudh5" gets one
    more leading '%' (ost.h)."""
    comps = key.split("/")
    out = []
    for i, c in enumerate(comps):
        if i == len(comps) - 1 and c == "" and i > 0:
            out.append("")          # "dir/": the directory itself
            continue
        if c in ("", ".", "..") or c.startswith("%") or (
                i == 1 and comps[0] == META and c == "tmp"):
            c = "%" + c
        out.append(c)
    return "/".join(out)


_S3_CLIENT = {}


SERVERS = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "servers"))


def rgw_up(state, port, mon2, mon1, **env):
    """Start a Ceph RGW of a test's own (tests/servers/ceph-rgw-up.sh) in
    the state directory `state`: S3 on 127.0.0.1:port, ceph-mon on mon2
    (msgr2) and mon1 (msgr1); `env` adds CEPH_RGW_* settings.  What a run
    left in `state` is stopped first.  Then CH5_S3_ENV names its env file.
    Returns the script's last line; raises Fail with its output."""
    e = dict(os.environ, CEPH_RGW_NO_INSTALL="1", CEPH_RGW_REPLACE="1",
             CEPH_RGW_PORT=str(port), CEPH_MON_PORT_V2=str(mon2),
             CEPH_MON_PORT_V1=str(mon1))
    e.update({k: str(v) for k, v in env.items()})
    r = subprocess.run([os.path.join(SERVERS, "ceph-rgw-up.sh"), state],
                       env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=240)
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0, "ceph-rgw-up.sh failed (%d):\n%s"
          % (r.returncode, out[-3000:]))
    os.environ["CH5_S3_ENV"] = os.path.join(state, "env")
    return out.strip().splitlines()[-1]


def run_with_server(R, srv, tests):
    """The main() of a script with a server of its own: srv.up() as the
    step rgw_up, then each of `tests` (functions taking the daemon
    binary), srv.down() at the end, also on failure; exits."""
    try:
        if R.step("rgw_up", srv.up) is None:
            R.finish()
        for fn in tests:
            R.run(fn.__name__, fn, R.binary)
    finally:
        cleanup_all()
        srv.down()
    R.finish()


def rgw_down(state):
    """Stop the RGW rgw_up() started in `state` (its logs are kept)."""
    subprocess.run([os.path.join(SERVERS, "ceph-rgw-down.sh"), state,
                    "--keep"], timeout=120)


def _print_ceph_health():
    """After a failure on S3: what the test server's Ceph cluster says of
    itself (a full OSD pauses writes: PUTs hang until they time out)."""
    try:
        conf = _s3_conf().get("CEPH_CONF")
        if not conf:
            return
        r = subprocess.run(["ceph", "-c", conf, "--connect-timeout", "10",
                            "health", "detail"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        print("     --- ceph health detail ---")
        for ln in r.stdout.decode(errors="replace").splitlines()[:20]:
            print("     | " + ln)
    except (Fail, OSError, subprocess.TimeoutExpired) as e:
        print("     (no ceph health: %s)" % e)


def _s3_conf():
    """The settings of the S3 server from CH5_S3_ENV (KEY=VALUE lines)."""
    path = os.environ.get("CH5_S3_ENV")
    if not path:
        raise Fail("CH5_STORE=s3 but CH5_S3_ENV (the env file of "
                   "tests/servers/ceph-rgw-up.sh) is not set")
    try:
        conf = azblob.read_env_file(path)
    except OSError as e:
        raise Fail("CH5_S3_ENV=%s: %s (is the S3 server up?)" % (path, e))
    for k in ("S3_ENDPOINT", "S3_BUCKET", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY"):
        if not conf.get(k):
            raise Fail("%s does not set %s" % (path, k))
    conf.setdefault("S3_REGION", conf.get("AWS_DEFAULT_REGION")
                    or "us-east-1")
    return conf


def _s3_client(conf):
    key = (conf["S3_ENDPOINT"], conf["AWS_ACCESS_KEY_ID"])
    if key not in _S3_CLIENT:
        import botocore.session
        from botocore.config import Config
        sess = botocore.session.Session()
        _S3_CLIENT[key] = sess.create_client(
            "s3", endpoint_url=conf["S3_ENDPOINT"],
            region_name=conf["S3_REGION"],
            aws_access_key_id=conf["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=conf["AWS_SECRET_ACCESS_KEY"],
            config=Config(signature_version="s3v4",
                          s3={"addressing_style": "path"},
                          retries={"max_attempts": 5, "mode": "standard"},
                          max_pool_connections=16))
    return _S3_CLIENT[key]


class _RemoteStore:
    """What S3Store and AzStore share: everything built on get() and
    keys()."""

    def assert_object_equals(self, key, expected):
        data = self.get(key)
        with open(expected, "rb") as f:
            want = f.read()
        if data != want:
            n = min(len(data), len(want))
            i = next((k for k in range(n) if data[k] != want[k]), n)
            raise Fail("object %s of %s: %d bytes, %s has %d; first "
                       "difference at offset %d: expected %s got %s"
                       % (key, self.url, len(data), expected, len(want), i,
                          want[i:i + 16].hex(), data[i:i + 16].hex()))

    def _copy_all(self, one):
        """Runs one(key) for every key of this store, 16 at a time."""
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(one, self.keys()))


class S3Store(_RemoteStore):
    """A key prefix of the S3 bucket of CH5_S3_ENV: the store
    s3://BUCKET/PREFIX. Keys are verbatim below "PREFIX/" (no escaping)."""

    kind = "s3"

    def __init__(self, name):
        self.conf = _s3_conf()
        self.bucket = self.conf["S3_BUCKET"]
        # Unique: the workspace's directory name plus random digits.
        self.name = "%s-%s" % (name, uuid.uuid4().hex[:8])
        self.prefix = self.name + "/"
        self.url = "s3://%s/%s" % (self.bucket, self.name)
        self.root = None
        self.client = _s3_client(self.conf)
        left = self.keys()
        if left:
            raise Fail("the fresh store %s is not empty: %s"
                       % (self.url, left[:5]))

    def env(self):
        """The daemon's environment: ours without any AWS_* setting (and
        without ~/.aws files), plus the server's endpoint, region and
        keys."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_")}
        env.update(AWS_ENDPOINT_URL=self.conf["S3_ENDPOINT"],
                   AWS_REGION=self.conf["S3_REGION"],
                   AWS_DEFAULT_REGION=self.conf["S3_REGION"],
                   AWS_ACCESS_KEY_ID=self.conf["AWS_ACCESS_KEY_ID"],
                   AWS_SECRET_ACCESS_KEY=self.conf["AWS_SECRET_ACCESS_KEY"],
                   AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        return env

    def describe_env(self):
        return "AWS_ENDPOINT_URL=%s AWS_REGION=%s AWS_ACCESS_KEY_ID=%s " % (
            self.conf["S3_ENDPOINT"], self.conf["S3_REGION"],
            self.conf["AWS_ACCESS_KEY_ID"])

    def keys(self, prefix=""):
        """Keys of the objects below PREFIX/prefix, without PREFIX/
        (directory markers "dir/" included: on S3 they are objects)."""
        out = []
        pl = len(self.prefix)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix)
        for page in pages:
            for o in page.get("Contents", ()):
                out.append(o["Key"][pl:])
        return sorted(out)

    def _head(self, key):
        from botocore.exceptions import ClientError
        try:
            return self.client.head_object(Bucket=self.bucket,
                                           Key=self.prefix + key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in (
                    "404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, key):
        return self._head(key) is not None

    def get(self, key):
        r = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        return r["Body"].read()

    def head(self, key, n):
        from botocore.exceptions import ClientError
        if n <= 0:
            return b""
        try:
            r = self.client.get_object(Bucket=self.bucket,
                                       Key=self.prefix + key,
                                       Range="bytes=0-%d" % (n - 1))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""          # an empty object
            raise
        return r["Body"].read()

    def size(self, key):
        h = self._head(key)
        if h is None:
            raise Fail("no object %r in %s" % (key, self.url))
        return h["ContentLength"]

    def put(self, key, data):
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key,
                               Body=data)

    def delete(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def copy_to(self, dst):
        """Makes the S3Store dst a copy of this store (server-side
        copies)."""
        dst.destroy()

        def one(k):
            self.client.copy_object(
                Bucket=dst.bucket, Key=dst.prefix + k,
                CopySource={"Bucket": self.bucket, "Key": self.prefix + k})
        self._copy_all(one)

    def destroy(self):
        """Deletes every object of the store."""
        try:
            keys = self.keys()
            for i in range(0, len(keys), 1000):
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Quiet": True, "Objects": [
                        {"Key": self.prefix + k} for k in keys[i:i + 1000]]})
        except Exception as e:  # the server may be gone: not a test failure
            print("  could not empty %s: %r" % (self.url, e))


def _az_conf():
    """The settings of the Azure blob service from CH5_AZ_ENV (the
    KEY=VALUE lines of tests/servers/azurite-up.sh)."""
    path = os.environ.get("CH5_AZ_ENV")
    if not path:
        raise Fail("CH5_STORE=az but CH5_AZ_ENV (the env file of "
                   "tests/servers/azurite-up.sh) is not set")
    try:
        conf = azblob.read_env_file(path)
    except OSError as e:
        raise Fail("CH5_AZ_ENV=%s: %s (is Azurite up?)" % (path, e))
    for k in ("AZURE_STORAGE_CONNECTION_STRING", "AZ_CONTAINER"):
        if not conf.get(k):
            raise Fail("%s does not set %s" % (path, k))
    try:
        c = azblob.parse_connection_string(
            conf["AZURE_STORAGE_CONNECTION_STRING"])
    except ValueError as e:
        raise Fail("%s: AZURE_STORAGE_CONNECTION_STRING: %s" % (path, e))
    conf.setdefault("AZURE_STORAGE_ACCOUNT", c.get("AccountName", ""))
    conf.setdefault("AZURE_BLOB_ENDPOINT", c.get("BlobEndpoint", ""))
    conf.setdefault("AZURE_STORAGE_KEY", c.get("AccountKey", ""))
    return conf


_AZ_CLIENT = {}


def _az_client(conf):
    s = conf["AZURE_STORAGE_CONNECTION_STRING"]
    if s not in _AZ_CLIENT:
        _AZ_CLIENT[s] = azblob.Client.from_connection_string(s)
    return _AZ_CLIENT[s]


class AzStore(_RemoteStore):
    """A blob name prefix of the Azure container of CH5_AZ_ENV: the store
    az://CONTAINER/PREFIX. Keys are blob names verbatim below "PREFIX/" (no
    escaping). Requests go through azblob.py (Shared Key)."""

    kind = "az"

    def __init__(self, name):
        self.conf = _az_conf()
        self.container = self.conf["AZ_CONTAINER"]
        # Unique: the workspace's directory name plus random digits.
        self.name = "%s-%s" % (name, uuid.uuid4().hex[:8])
        self.prefix = self.name + "/"
        self.url = "az://%s/%s" % (self.container, self.name)
        self.root = None
        self.client = _az_client(self.conf)
        left = self.keys()
        if left:
            raise Fail("the fresh store %s is not empty: %s"
                       % (self.url, left[:5]))

    def env(self):
        """The daemon's environment: ours without any AZURE_*, AWS_*,
        STORAGE_PLATFORM or BUCKET_NAME setting (each could name another
        store or credential), plus the connection string."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AZURE_", "AWS_"))
               and k not in ("STORAGE_PLATFORM", "BUCKET_NAME")}
        env["AZURE_STORAGE_CONNECTION_STRING"] = \
            self.conf["AZURE_STORAGE_CONNECTION_STRING"]
        return env

    def describe_env(self):
        """The daemon's environment for its log: the connection string
        with its AccountKey and SAS left out."""
        shown = re.sub(r"((?:AccountKey|SharedAccessSignature)=)[^;]*",
                       r"\1(hidden)",
                       self.conf["AZURE_STORAGE_CONNECTION_STRING"],
                       flags=re.I)
        return "AZURE_STORAGE_CONNECTION_STRING='%s' " % shown

    def keys(self, prefix=""):
        """Keys of the blobs below PREFIX/prefix, without PREFIX/."""
        pl = len(self.prefix)
        names, _ = self.client.list_blobs(self.container,
                                          self.prefix + prefix)
        return sorted(n[pl:] for n in names)

    def _props(self, key):
        return self.client.get_blob_properties(self.container,
                                               self.prefix + key)

    def exists(self, key):
        return self._props(key) is not None

    def get(self, key):
        return self.client.get_blob(self.container, self.prefix + key)

    def head(self, key, n):
        if n <= 0:
            return b""
        try:
            return self.client.get_blob(self.container, self.prefix + key,
                                        0, n - 1)
        except azblob.AzError as e:
            if e.status == 416:
                return b""          # an empty blob
            raise

    def size(self, key):
        p = self._props(key)
        if p is None:
            raise Fail("no object %r in %s" % (key, self.url))
        return int(p["content-length"])

    def put(self, key, data):
        self.client.put_blob(self.container, self.prefix + key, data)

    def delete(self, key):
        self.client.delete_blob(self.container, self.prefix + key)

    def copy_to(self, dst):
        """Makes the AzStore dst a copy of this store (server-side Copy
        Blob)."""
        dst.destroy()

        def one(k):
            self.client.copy_blob(dst.container, dst.prefix + k,
                                  self.container, self.prefix + k)
        self._copy_all(one)

    def destroy(self):
        """Deletes every blob of the store."""
        import concurrent.futures
        try:
            keys = self.keys()

            def one(k):
                self.client.delete_blob(self.container, self.prefix + k,
                                        missing_ok=True)
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(one, keys))
        except Exception as e:  # the server may be gone: not a test failure
            print("  could not empty %s: %r" % (self.url, e))


def new_store(path):
    """A fresh, empty store: the directory `path` (created), or with
    CH5_STORE=s3 a new prefix of the bucket named after the directory that
    would hold `path` (a workspace: s3://BUCKET/ch5-NAME-XXXXXXXX-XXXXXXXX,
    its directory's name plus random digits), with CH5_STORE=az the same
    in the Azure container (az://CONTAINER/ch5-NAME-...)."""
    if S3:
        return S3Store(os.path.basename(os.path.dirname(
            os.path.abspath(path))))
    if AZ:
        return AzStore(os.path.basename(os.path.dirname(
            os.path.abspath(path))))
    if STORE not in STORES and not FAKE:
        raise Fail("CH5_STORE=%r: expected local, s3 or az" % STORE)
    os.makedirs(path)
    return LocalStore(path)


def as_store(store):
    """A Store for `store`, which may be a Store or a file:// store's
    directory."""
    if isinstance(store, str):
        return LocalStore(store)
    return store


def copy_store(src, dst):
    """Makes the store dst an exact copy of the store src (same kind)."""
    as_store(src).copy_to(as_store(dst))


def store_keys(store, prefix=""):
    """Keys of the objects under prefix (for a file:// store: of the
    regular files, '/'-separated, escapes undone)."""
    return as_store(store).keys(prefix)


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
    store = as_store(store)
    keys = store.keys("%s/c/%s/" % (META, P))
    if store.exists(P):
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
    store = as_store(store)
    check(store.exists(P), "no plain object at key %r" % P)
    extra = store.keys("%s/c/%s/" % (META, P))
    head = store.head(P, 8)
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
        store.assert_object_equals(P, expected)
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
    store = as_store(store)
    check(store.exists(P), "no manifest object at key %r" % P)
    head = store.head(P, 8)
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

# The script's --NAME VALUE arguments (Runner fills it).
ARGS = {}


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
        ARGS.update(self.args)
        signal.signal(signal.SIGTERM, self._sigterm)
        if S3:
            try:
                conf = _s3_conf()
            except Fail as e:
                print("FATAL: %s" % e)
                sys.exit(1)
            print("store: S3, bucket %s at %s (CH5_STORE=s3, CH5_S3_ENV=%s)"
                  % (conf["S3_BUCKET"], conf["S3_ENDPOINT"],
                     os.environ.get("CH5_S3_ENV")))
        elif AZ:
            try:
                conf = _az_conf()
            except Fail as e:
                print("FATAL: %s" % e)
                sys.exit(1)
            print("store: Azure, container %s at %s (CH5_STORE=az, "
                  "CH5_AZ_ENV=%s)" % (conf["AZ_CONTAINER"],
                                      conf["AZURE_BLOB_ENDPOINT"],
                                      os.environ.get("CH5_AZ_ENV")))
        elif STORE not in STORES and not FAKE:
            print("FATAL: CH5_STORE=%r: expected local, s3 or az" % STORE)
            sys.exit(1)
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
        except Skip as e:
            dog.cancel()
            self.skipped.append(name)
            print("SKIP %s - %s" % (name, e))
            sys.stdout.flush()
            return None
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
        if S3:
            _print_ceph_health()

    def finish(self):
        cleanup_all()
        dt = time.monotonic() - self.t0
        print("%s%s: %d passed, %d failed%s (%.1fs)"
              % (self.title, " [S3]" if S3 else " [Azure]" if AZ else "",
                 len(self.passed),
                 len(self.failed), ", %d skipped (%s)" % (
                     len(self.skipped), " ".join(self.skipped))
                 if self.skipped else "", dt))
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
