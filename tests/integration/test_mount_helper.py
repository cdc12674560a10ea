#!/usr/bin/python3
"""mount.cloudh5 as mount(8)'s helper: installed by `cmake --install` into a
temporary prefix plus the helper link mount(8) looks for
(/sbin/mount.cloudh5), then used the ways an administrator does:
`mount -t cloudh5`, an fstab line (`mount -T FSTAB DIR`, `mount -a -T
FSTAB`), `umount`; bad options and bad credentials fail with a message
and a non-zero exit; the installed man pages render without warnings;
SIGTERM to the daemon during a commit loses nothing.

On S3 (CH5_STORE=s3) the store is given as an administrator writes it in
fstab: the bucket URL with endpoint=, region= and passwd_file= options,
and no AWS_* variable in the environment.  On Azure (CH5_STORE=az) alike:
az://CONTAINER/PREFIX with endpoint= and passwd_file= (ACCOUNT:KEY), and
no AZURE_* variable.

/sbin/mount.cloudh5 is global: the test puts back whatever was there
(CTest runs the local, S3 and Azure variants one at a time:
RESOURCE_LOCK).

usage: test_mount_helper.py --mount-bin BUILD/fs/mount.cloudh5
                            --build-dir BUILD [-k NAME]...
"""

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

TESTS = []
HELPER = "/sbin/mount.cloudh5"
STATE = {}  # prefix: the temporary install; saved: what HELPER was


def test(fn):
    TESTS.append(fn)
    return fn


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, **kw)


def text(r):
    return r.stdout.decode(errors="replace").strip()


def clean_env():
    """The environment mount(8) gets: ours without any AWS_* or AZURE_*
    setting (nor STORAGE_PLATFORM, BUCKET_NAME) and without ~/.aws files,
    so only the mount options name the store."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "AZURE_"))
           and k not in ("STORAGE_PLATFORM", "BUCKET_NAME")}
    env.update(AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return env


def source_and_opts(ws, secret=None):
    """(SOURCE, [options]) naming ws's store the way fstab does."""
    store = ws.store
    opts = ["spool_dir=" + os.path.join(ws.root, "spool")]
    kind = getattr(store, "kind", "local")
    if kind == "az":
        c = store.conf
        pw = os.path.join(ws.root, "passwd")
        with open(pw, "w") as f:
            f.write("%s:%s\n" % (c["AZURE_STORAGE_ACCOUNT"],
                                secret or c["AZURE_STORAGE_KEY"]))
        os.chmod(pw, 0o600)
        opts += ["endpoint=" + c["AZURE_BLOB_ENDPOINT"], "passwd_file=" + pw]
        return store.url, opts
    if kind != "s3":
        return "file://" + store.root, opts
    c = store.conf
    pw = os.path.join(ws.root, "passwd")
    with open(pw, "w") as f:
        f.write("%s:%s\n" % (c["AWS_ACCESS_KEY_ID"],
                            secret or c["AWS_SECRET_ACCESS_KEY"]))
    os.chmod(pw, 0o600)
    opts += ["endpoint=" + c["S3_ENDPOINT"], "region=" + c["S3_REGION"],
             "passwd_file=" + pw]
    return store.url, opts


def mount_t(src, mnt, opts):
    """mount -t cloudh5 SRC MNT -o OPTS (a list), as an administrator
    types it, with no AWS_* in the environment."""
    return run(["mount", "-t", "cloudh5", src, mnt, "-o", ",".join(opts)],
               env=clean_env())


def daemon_pids(mnt):
    out = run(["pgrep", "-f", "mount.cloudh5 .*%s( |$)" % mnt]).stdout
    return [int(p) for p in out.split()]


def wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def mounted_as(mnt):
    """(source, fstype) of mnt in /proc/self/mounts, or None."""
    with open("/proc/self/mounts") as f:
        for line in f:
            src, where, fstype = line.split()[:3]
            if where == mnt:
                return src, fstype
    return None


def umount(mnt):
    """umount(8) and wait for the daemon to exit."""
    pids = daemon_pids(mnt)
    r = run(["umount", mnt])
    T.check(r.returncode == 0, "umount %s: %s" % (mnt, text(r)))
    T.check(wait_gone(pids, 30), "the daemon did not exit within 30 s of "
            "umount")


def write_and_read(mnt, name, value):
    """h5py writes a chunked dataset through the mount; h5dump reads one
    value back."""
    path = os.path.join(mnt, name)
    code = ("import h5py, numpy as np\n"
            "with h5py.File(%r, 'w') as f:\n"
            "    f.create_dataset('d', data=np.full((128, 128), %r),"
            " chunks=(32, 32))\n" % (path, float(value)))
    r = run([sys.executable, "-c", code])
    T.check(r.returncode == 0, "h5py write: %s" % text(r)[-600:])
    r = run(["h5dump", "-d", "/d", "-s", "127,127", "-c", "1,1", path])
    T.check(r.returncode == 0 and (b"%g" % value) in r.stdout,
            "h5dump read back: %s" % text(r)[-600:])


def install():
    """cmake --install into a fresh prefix; the install also makes the
    helper link in /sbin.  Whatever /sbin/mount.cloudh5 was is saved."""
    if "prefix" in STATE:
        return STATE["prefix"]
    build = T.ARGS.get("build-dir")
    T.check(build and os.path.isdir(build), "--build-dir BUILD is needed")
    if os.path.lexists(HELPER):
        saved = tempfile.mkdtemp(prefix="ch5-helper-saved-")
        shutil.move(HELPER, saved)
        STATE["saved"] = os.path.join(saved, "mount.cloudh5")
    prefix = tempfile.mkdtemp(prefix="ch5-prefix-")
    STATE["prefix"] = prefix
    r = run(["cmake", "--install", build, "--prefix", prefix])
    T.check(r.returncode == 0, "cmake --install: %s" % text(r)[-800:])
    return prefix


def uninstall():
    if os.path.islink(HELPER) and "prefix" in STATE and \
            os.readlink(HELPER).startswith(STATE["prefix"]):
        os.unlink(HELPER)
    if "saved" in STATE:
        shutil.move(STATE.pop("saved"), HELPER)
    if "prefix" in STATE:
        shutil.rmtree(STATE.pop("prefix"), ignore_errors=True)


@test
def install_layout(binary):
    prefix = install()
    want = ["sbin/mount.cloudh5", "bin/cloudh5",
            "share/man/man8/mount.cloudh5.8", "share/man/man7/cloudh5.7",
            "share/man/man1/cloudh5.1"]
    for rel in want:
        T.check(os.path.isfile(os.path.join(prefix, rel)),
                "%s was not installed" % rel)
    T.check(os.path.islink(HELPER), "no helper link %s" % HELPER)
    T.check(os.readlink(HELPER) == os.path.join(prefix, "sbin",
                                                "mount.cloudh5"),
            "%s points at %s" % (HELPER, os.readlink(HELPER)))
    r = run([HELPER, "--version"])
    T.check(r.returncode == 0 and b"mount.cloudh5" in r.stdout,
            "the linked helper does not run: %s" % text(r))
    return "%s, and %s -> it" % (", ".join(want), HELPER)


@test
def man_pages_render(binary):
    prefix = install()
    pages = ["man8/mount.cloudh5.8", "man7/cloudh5.7", "man1/cloudh5.1"]
    for page in pages:
        path = os.path.join(prefix, "share/man", page)
        r = subprocess.run(["man", "--warnings", "-l", path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60, env=dict(os.environ, MANPAGER="cat",
                                                PAGER="cat", MANWIDTH="80"))
        err = r.stderr.decode(errors="replace").strip()
        T.check(r.returncode == 0, "man -l %s exited %d: %s"
                % (page, r.returncode, err))
        T.check(not err, "man --warnings -l %s warned: %s" % (page, err))
        T.check(b"NAME" in r.stdout and len(r.stdout) > 2000,
                "man -l %s rendered %d bytes" % (page, len(r.stdout)))
    r = subprocess.run(["man", "-l", os.path.join(
        prefix, "share/man/man8/mount.cloudh5.8")], stdout=subprocess.PIPE,
        env=dict(os.environ, MANPAGER="cat", PAGER="cat"), timeout=60)
    page = r.stdout.decode(errors="replace")
    for opt in ("cache_size", "spool_dir", "endpoint", "passwd_file",
                "fstab", "_netdev"):
        T.check(opt in page, "mount.cloudh5(8) does not mention %s" % opt)
    return "%d pages, no warnings" % len(pages)


@test
def mount_t_cloudh5(binary):
    install()
    with T.Workspace(binary, name="mount-t") as ws:
        os.makedirs(ws.mntdir)
        src, opts = source_and_opts(ws)
        r = mount_t(src, ws.mntdir, opts)
        T.check(r.returncode == 0, "mount -t cloudh5: %s" % text(r))
        got = mounted_as(ws.mntdir)
        T.check(got == (src, "fuse.cloudh5"),
                "/proc/mounts says %s, want (%s, fuse.cloudh5)" % (got, src))
        write_and_read(ws.mntdir, "t.h5", 7.5)
        umount(ws.mntdir)
        T.check(mounted_as(ws.mntdir) is None, "still mounted after umount")
        T.check(any(k.startswith(".cloudh5/c/t.h5/")
                    for k in T.store_keys(ws.store, ".cloudh5/c/")),
                "no chunk objects in the store")
        return "mounted as %s type fuse.cloudh5, wrote, read, umount" % src


@test
def fstab_lines(binary):
    """Two fstab lines with the options mount(8), systemd and people put
    there: `mount -T FSTAB DIR` mounts one; `mount -a -T FSTAB` mounts the
    auto line and leaves the noauto one."""
    install()
    with T.Workspace(binary, name="fstab") as ws:
        a, b = os.path.join(ws.root, "a"), os.path.join(ws.root, "b")
        os.makedirs(a)
        os.makedirs(b)
        src, opts = source_and_opts(ws)
        fstab = os.path.join(ws.root, "fstab")
        with open(fstab, "w") as f:
            f.write("# cloudh5 test fstab\n")
            f.write("%s %s cloudh5 %s 0 0\n" % (src, a, ",".join(
                ["_netdev", "nofail", "allow_other", "defaults", "rw",
                 "x-systemd.mount-timeout=30", "comment=cloudh5"] + opts)))
            f.write("%s %s cloudh5 %s 0 0\n" % (src, b, ",".join(
                ["noauto", "user", "_netdev", "ro"] + opts)))
        env = clean_env()
        r = run(["mount", "-T", fstab, b], env=env)
        T.check(r.returncode == 0, "mount -T FSTAB %s: %s" % (b, text(r)))
        T.check(mounted_as(b) == (src, "fuse.cloudh5"),
                "mount -T did not mount %s: %s" % (b, mounted_as(b)))
        r = run(["touch", os.path.join(b, "x")])
        T.check(r.returncode != 0, "a ro mount took a new file")
        umount(b)
        r = run(["mount", "-a", "-T", fstab], env=env)
        T.check(r.returncode == 0, "mount -a -T FSTAB: %s" % text(r))
        T.check(mounted_as(a) == (src, "fuse.cloudh5"),
                "mount -a did not mount %s" % a)
        T.check(mounted_as(b) is None, "mount -a mounted the noauto line")
        with open("/proc/self/mounts") as f:
            line = [x for x in f if x.split()[1] == a][0]
        T.check("allow_other" in line, "allow_other not passed: %s" % line)
        write_and_read(a, "f.h5", 3.25)
        umount(a)
        return "mount -T (noauto, ro) and mount -a (auto line only)"


@test
def bad_option_fails(binary):
    install()
    with T.Workspace(binary, name="badopt") as ws:
        os.makedirs(ws.mntdir)
        src, opts = source_and_opts(ws)
        r = mount_t(src, ws.mntdir, opts + ["cache_sise=64M"])
        T.check(r.returncode != 0, "a bad option mounted")
        T.check(b"cache_sise" in r.stdout, "the message does not name the "
                "option: %s" % text(r))
        T.check(mounted_as(ws.mntdir) is None, "something got mounted")
        r = mount_t(src, ws.mntdir, opts + ["cache_size=lots"])
        T.check(r.returncode != 0 and b"cache_size" in r.stdout,
                "a bad value: exit %d, %s" % (r.returncode, text(r)))
        return text(r).splitlines()[0]


@test
def bad_credentials_fail(binary):
    """S3 and Azure: a wrong secret (account key) and a passwd_file others
    can read each fail the mount with a message; local: a missing
    directory does."""
    install()
    with T.Workspace(binary, name="badcred") as ws:
        os.makedirs(ws.mntdir)
        kind = getattr(ws.store, "kind", "local")
        if kind not in ("s3", "az"):
            src = "file://" + os.path.join(ws.root, "no-such-dir")
            opts = ["spool_dir=" + os.path.join(ws.root, "spool")]
            r = mount_t(src, ws.mntdir, opts)
            T.check(r.returncode != 0 and b"no-such-dir" in r.stdout,
                    "a missing store: exit %d, %s" % (r.returncode, text(r)))
            T.check(mounted_as(ws.mntdir) is None, "something got mounted")
            return text(r).splitlines()[0]
        # Azure: a well-formed key (Base64 of 64 bytes), not the account's.
        secret = "not-the-secret" if kind == "s3" else \
            base64.b64encode((b"not-the-secret" * 5)[:64]).decode()
        src, opts = source_and_opts(ws, secret=secret)
        r = mount_t(src, ws.mntdir, opts)
        T.check(r.returncode != 0, "a wrong secret mounted")
        T.check(b"access denied" in r.stdout, "no clear message: %s"
                % text(r))
        T.check(secret.encode() not in r.stdout, "the secret was printed")
        T.check(mounted_as(ws.mntdir) is None, "something got mounted")
        first = text(r).splitlines()[-1]
        src, opts = source_and_opts(ws)
        os.chmod(os.path.join(ws.root, "passwd"), 0o644)
        r = mount_t(src, ws.mntdir, opts)
        T.check(r.returncode != 0 and b"passwd" in r.stdout,
                "a world-readable passwd_file: exit %d, %s"
                % (r.returncode, text(r)))
        T.check(mounted_as(ws.mntdir) is None, "something got mounted")
        return first


@test
def sigterm_during_commit(binary):
    """SIGTERM to the daemon while close() commits a 64 MiB file: the
    commit in progress finishes (close() succeeds) or its stage is kept
    and the next mount commits it; either way the file reads back byte
    for byte, and the daemon exits."""
    install()
    with T.Workspace(binary, name="sigterm") as ws:
        os.makedirs(ws.mntdir)
        src, opts = source_and_opts(ws)
        local = os.path.join(ws.root, "big.h5")
        import h5py
        with h5py.File(local, "w") as f:
            f.create_dataset("d", data=np.random.default_rng(5).random(
                (1024, 8192)), chunks=(64, 512))
        r = mount_t(src, ws.mntdir, opts)
        T.check(r.returncode == 0, "mount: %s" % text(r))
        pids = daemon_pids(ws.mntdir)
        T.check(len(pids) == 1, "expected one daemon, found %s" % pids)
        cp = subprocess.Popen(["cp", local, os.path.join(ws.mntdir,
                                                         "big.h5")],
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        # Wait until the commit is under way: chunk objects going up.
        deadline = time.monotonic() + 120
        puts = 0
        while time.monotonic() < deadline and cp.poll() is None:
            puts = T.mount_stats(ws).get("requests.put", 0)
            if puts >= 4:
                break
            time.sleep(0.02)
        T.check(cp.poll() is None, "cp finished before the commit could be "
                "interrupted (%d PUTs seen)" % puts)
        os.kill(pids[0], signal.SIGTERM)
        out, _ = cp.communicate(timeout=300)
        closed_ok = cp.returncode == 0
        T.check(wait_gone(pids, 120), "the daemon did not exit within 120 s "
                "of SIGTERM")
        if T._is_mounted(ws.mntdir):
            run(["umount", ws.mntdir])
        T.check(mounted_as(ws.mntdir) is None, "still mounted")
        # The next mount on the same spool: commits a kept stage if any.
        r = mount_t(src, ws.mntdir, opts)
        T.check(r.returncode == 0, "remount: %s" % text(r))
        try:
            T.assert_same_bytes(local, os.path.join(ws.mntdir, "big.h5"))
        finally:
            umount(ws.mntdir)
        return ("SIGTERM after %d PUTs: close() %s; the file reads back "
                "whole after a remount" % (
                    puts, "succeeded" if closed_ok else
                    "failed (%s), stage committed by the next mount"
                    % out.decode(errors="replace").strip()))



@test
def sigterm_with_a_file_open(binary):
    """SIGTERM while a writer still holds a file open: the daemon exits,
    names the file it could not commit, and keeps its stage; the next
    mount on that spool names it again (never deletes it)."""
    with T.Workspace(binary, name="sigterm-open") as ws:
        ws.start()
        spool = os.path.join(ws.root, "spool%d" % ws.mount.n)
        w = subprocess.Popen(
            [sys.executable, "-c",
             "import os, sys, time\n"
             "fd = os.open(%r, os.O_WRONLY | os.O_CREAT, 0o644)\n"
             "os.write(fd, b'x' * (1 << 20))\n"
             "print('written', flush=True)\n"
             "time.sleep(60)\n" % ws.m("open.bin")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        T.check(w.stdout.readline().strip() == b"written",
                "the writer did not write")
        ws.mount.proc.send_signal(signal.SIGTERM)
        try:
            ws.mount.proc.wait(timeout=60)
        finally:
            w.kill()
            w.wait()
        ws.stop()
        with open(ws.mount.log, errors="replace") as f:
            log = f.read()
        T.check("open.bin: uncommitted data kept in" in log,
                "the daemon did not name the kept file: %s" % log[-800:])
        kept = [n for n in os.listdir(spool) if not n.endswith(".key")]
        T.check(kept, "nothing kept in the spool %s" % spool)
        # The next mount on that spool: names the stage and keeps it.
        url = getattr(ws.store, "url", None) or "file://" + ws.store.root
        log2 = os.path.join(ws.root, "next.log")
        with open(log2, "wb") as lf:
            d = subprocess.Popen([binary, url, ws.mntdir, "-f", "-o",
                                  "spool_dir=" + spool], stdout=lf,
                                 stderr=lf, env=ws.store.env())
        try:
            deadline = time.monotonic() + 30
            while not T._is_mounted(ws.mntdir) and d.poll() is None and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            T.check(T._is_mounted(ws.mntdir), "the next mount failed")
        finally:
            run(["fusermount3", "-u", ws.mntdir])
            d.wait(timeout=60)
        with open(log2, errors="replace") as f:
            log = f.read()
        T.check("uncommitted data for open.bin" in log,
                "the next mount did not name the kept stage: %s" % log)
        T.check(sorted(kept) == sorted(
            n for n in os.listdir(spool) if not n.endswith(".key")),
            "the next mount changed the spool")
        return "named in the log; %d file(s) kept in the spool" % len(kept)


if __name__ == "__main__":
    try:
        T.run_tests("test_mount_helper", TESTS)
    finally:
        uninstall()
