#!/usr/bin/python3
"""mount.cloudh5 without -f: the daemon detaches (fork) and still serves
every request.  The store is used by the mount-time probe and recovery and
then by the mounted file system; a thread or lock lost across the fork
hangs here, so every step has a deadline.

usage: test_daemon.py --mount-bin build/fs/mount.cloudh5 [-k NAME]...
"""

import base64
import os
import re
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, **kw)


def run_on_mount(cmd, mnt, timeout=60):
    """Run cmd against the mount.  If it does not finish in time, the
    daemon is hung: kill it and detach the mount (which releases the
    process waiting in the kernel), then fail."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in daemon_pids(mnt):
            os.kill(pid, 9)
        run(["fusermount3", "-uz", mnt])
        p.kill()
        p.communicate()
        raise T.Fail("%s hung for %d s on the daemonized mount"
                     % (cmd[0], timeout))
    return subprocess.CompletedProcess(cmd, p.returncode, out)


def daemon_pids(mnt):
    out = run(["pgrep", "-f", "mount.cloudh5 .* %s " % mnt]).stdout
    return [int(p) for p in out.split()]


def mount_daemon(binary, ws, opts=""):
    """Mount ws's store on ws's mount point in daemon mode (no -f), with
    more options `opts` (",a=b,..."); the mount command must succeed.
    Returns the mount point."""
    r = try_mount_daemon(binary, ws, opts)
    T.check(r.returncode == 0, "mount.cloudh5 (daemon) exited %d: %s"
            % (r.returncode, r.stdout.decode(errors="replace")))
    return ws.mntdir


def try_mount_daemon(binary, ws, opts):
    """The daemon-mode mount command of ws's store with `opts`: its
    CompletedProcess."""
    mnt, spool = ws.mntdir, os.path.join(ws.root, "spool")
    os.makedirs(mnt, exist_ok=True)
    store = ws.store
    url = getattr(store, "url", None) or "file://" + store
    return run([binary, url, mnt, "-o", "spool_dir=" + spool + opts],
               env=(store.env() if hasattr(store, "env") else None))


def unmount_daemon(mnt):
    """fusermount3 -u mnt and wait (30 s at most) for its daemon to go."""
    pids = daemon_pids(mnt)
    run(["fusermount3", "-u", mnt])
    deadline = time.monotonic() + 30
    while any(os.path.exists("/proc/%d" % p) for p in pids) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    T.check(not any(os.path.exists("/proc/%d" % p) for p in pids),
            "the daemon did not exit after fusermount3 -u")


@test
def daemonized_mount_serves(binary):
    with T.Workspace(binary, name="daemon") as ws:
        mnt = mount_daemon(binary, ws)
        try:
            code = ("import h5py, numpy as np\n"
                    "with h5py.File(%r, 'w') as f:\n"
                    "    f.create_dataset('d', data=np.arange(65536.0)"
                    ".reshape(256, 256), chunks=(64, 64))\n"
                    "with h5py.File(%r, 'r') as f:\n"
                    "    assert f['d'][255, 255] == 65535.0\n"
                    % (os.path.join(mnt, "x.h5"), os.path.join(mnt, "x.h5")))
            r = run_on_mount([sys.executable, "-c", code], mnt)
            T.check(r.returncode == 0, "h5py through the daemon failed: %s"
                    % r.stdout.decode(errors="replace")[-800:])
            r = run_on_mount(["h5dump", "-d", "/d", "-s", "255,255", "-c",
                              "1,1", os.path.join(mnt, "x.h5")], mnt)
            T.check(r.returncode == 0 and b"65535" in r.stdout,
                    "h5dump through the daemon: %s"
                    % r.stdout.decode(errors="replace")[-800:])
            T.check(any(k.startswith(".cloudh5/c/x.h5/")
                        for k in T.store_keys(ws.store, ".cloudh5/c/")),
                    "no chunk objects in the store")
        finally:
            unmount_daemon(mnt)
        return "daemonized mount wrote, read and unmounted"


@test
def max_read_option(binary):
    """-o max_read=N reaches the kernel (it shows in /proc/mounts) and the
    mount works.  libfuse refuses the FUSE INIT unless the file system
    repeats the value; that failure came after the mount command had
    exited 0, so the command said yes to a mount that was gone.  A value
    out of range, or with a unit, fails the command with a message."""
    with T.Workspace(binary, name="maxread") as ws:
        mnt = mount_daemon(binary, ws, ",max_read=65536")
        try:
            with open("/proc/mounts") as f:
                line = [ln for ln in f if " %s " % mnt in ln]
            T.check(line and "max_read=65536" in line[0],
                    "max_read=65536 not in /proc/mounts: %s" % line)
            code = ("import h5py, numpy as np\n"
                    "a = np.arange(1 << 20, dtype='f8').reshape(1024, 1024)\n"
                    "with h5py.File(%r, 'w') as f:\n"
                    "    f.create_dataset('d', data=a, chunks=(256, 256))\n"
                    "with h5py.File(%r, 'r') as f:\n"
                    "    assert (f['d'][...] == a).all()\n"
                    % ((os.path.join(mnt, "x.h5"),) * 2))
            r = run_on_mount([sys.executable, "-c", code], mnt)
            T.check(r.returncode == 0, "h5py with max_read=65536: %s"
                    % r.stdout.decode(errors="replace")[-800:])
        finally:
            unmount_daemon(mnt)
        for bad in ("100", "64K", "2000000"):
            r = try_mount_daemon(binary, ws, ",max_read=" + bad)
            T.check(r.returncode != 0, "max_read=%s: exit 0" % bad)
            T.check(b"max_read must be" in r.stdout,
                    "max_read=%s: no clear message: %s"
                    % (bad, r.stdout.decode(errors="replace")))
            T.check(not T._is_mounted(mnt), "max_read=%s mounted" % bad)
        return "max_read=65536 in /proc/mounts, h5py round trip; " \
               "100, 64K, 2000000 refused"


@test
def time_options(binary):
    """attr_timeout= and negative_timeout= take a number of seconds >= 0,
    prefetch_whole= a fraction from 0 to 1; anything else fails the mount
    command with a message naming the option, and nothing is mounted."""
    with T.Workspace(binary, name="timeopt") as ws:
        mnt = ws.mntdir
        bad = ("negative_timeout=abc", "negative_timeout=-1",
               "negative_timeout=", "attr_timeout=5s",
               "prefetch_whole=1.5", "prefetch_whole=half")
        for opt in bad:
            r = try_mount_daemon(binary, ws, "," + opt)
            name = opt.split("=")[0]
            T.check(r.returncode != 0, "%s: exit 0" % opt)
            T.check(("bad value for %s" % name).encode() in r.stdout,
                    "%s: no clear message: %s"
                    % (opt, r.stdout.decode(errors="replace")))
            T.check(not T._is_mounted(mnt), "%s mounted" % opt)
        mnt = mount_daemon(binary, ws, ",negative_timeout=0.5,"
                           "prefetch_whole=0.25")
        unmount_daemon(mnt)
        return ("%s refused; negative_timeout=0.5,prefetch_whole=0.25 "
                "mounts" % ", ".join(bad))


def exited(pid):
    """True once pid is gone or a zombie (its new parent, init, reaps it
    when it will)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@test
def untouched_daemon_exits(binary):
    """A daemonized mount unmounted before any file operation exits.
    When the fork came after the mount-time probe, the child inherited a
    pool and an allocator from a process with threads, and hung at exit
    (once in 20 runs under AddressSanitizer); now it forks first."""
    with T.Workspace(binary, name="untouched") as ws:
        mnt = mount_daemon(binary, ws)
        pids = daemon_pids(mnt)
        T.check(len(pids) == 1, "expected one daemon, found %s" % pids)
        r = run(["fusermount3", "-u", mnt])
        T.check(r.returncode == 0, "fusermount3 -u: %s"
                % r.stdout.decode(errors="replace"))
        deadline = time.monotonic() + 10
        while not exited(pids[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not exited(pids[0]):
            os.kill(pids[0], 9)
            raise T.Fail("the daemon (pid %d) was still running 10 s after "
                         "fusermount3 -u" % pids[0])
        return "exited after the unmount"


@test
def bad_store_fails_the_mount(binary):
    """A wrong secret (S3), a wrong account key (Azure) or a missing
    directory (local) fails the mount itself, with a message on the
    terminal and a non-zero exit, before anything is mounted."""
    with T.Workspace(binary, name="badstore") as ws:
        mnt, spool = ws.mntdir, os.path.join(ws.root, "spool")
        os.makedirs(mnt, exist_ok=True)
        store = ws.store
        env = store.env() if hasattr(store, "env") else None
        secret = b"not-the-secret"
        kind = getattr(store, "kind", "local")
        if kind == "s3":
            url = store.url
            env = dict(env or os.environ)
            env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
            want = b"access denied"
        elif kind == "az":
            # A well-formed key (Base64 of 64 bytes), just not the
            # account's.
            url = store.url
            secret = base64.b64encode((b"not-the-secret" * 5)[:64])
            env = dict(env)
            env["AZURE_STORAGE_CONNECTION_STRING"] = re.sub(
                r"AccountKey=[^;]*", "AccountKey=" + secret.decode(),
                env["AZURE_STORAGE_CONNECTION_STRING"])
            want = b"access denied"
        else:
            url = "file://" + os.path.join(ws.root, "no-such-dir")
            want = b"no-such-dir"
        r = run([binary, url, mnt, "-f", "-o", "spool_dir=" + spool],
                env=env, timeout=60)
        out = r.stdout
        T.check(r.returncode != 0, "the mount of a bad store exited 0")
        T.check(want in out, "no clear message (want %r): %s"
                % (want, out.decode(errors="replace")))
        T.check(secret not in out, "the secret was printed")
        T.check(not T._is_mounted(mnt), "something got mounted")
        return out.decode(errors="replace").strip().splitlines()[-1]


if __name__ == "__main__":
    T.run_tests("test_daemon", TESTS)
