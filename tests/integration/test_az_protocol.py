#!/usr/bin/python3
"""The Azure backend against Azurite (which verifies Shared Key and SAS
signatures), beyond the common suite that integration_az.* runs:

  - a wrong account key, a key that is not Base64, a missing container
    and a missing credential fail the mount with a clear message and exit
    status 1, and the key never shows;
  - every place a setting can come from mounts and round-trips an HDF5
    file: AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY with -o endpoint=, a
    passwd_file (one that others may read is refused), ArrayMorph's
    STORAGE_PLATFORM=Azure with a bare name and with BUCKET_NAME, a
    connection string holding a SAS, -o sas=;
  - a read-only SAS (sp=rl) mounts and reads; creating, writing,
    truncating, renaming and deleting get EACCES, nothing is staged and the
    store is unchanged;
  - through a fault-injecting proxy (faultproxy.py): 500 and 503
    ServerBusy are retried, 403 is not, a retry budget used up gives EIO
    with the Azure error code and message in the log and no key or
    signature;
  - a blob above multipart_threshold goes up as Put Block x N + one Put
    Block List and reads back exact.

Run by CTest as integration_az.protocol with CH5_STORE=az and CH5_AZ_ENV
(the env file of tests/servers/azurite-up.sh).

usage: test_az_protocol.py --mount-bin BUILD/fs/mount.cloudh5 [-k NAME]...
"""

import errno
import io
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import azblob  # noqa: E402
import ch5test as T  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

TESTS = []
PROXY = None


def test(fn):
    TESTS.append(fn)
    return fn


class View:
    """The store of a workspace as the daemon is to see it: another source
    string and another environment (only the settings given here: every
    AZURE_*, AWS_*, STORAGE_PLATFORM and BUCKET_NAME of ours is dropped)."""

    def __init__(self, store, url=None, **env):
        self.store = store
        self.url = url or store.url
        self.extra = env

    def env(self):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("AZURE_", "AWS_"))
             and k not in ("STORAGE_PLATFORM", "BUCKET_NAME")}
        e.update(self.extra)
        return e

    def describe_env(self):
        return " ".join("%s=%s" % (k, "(hidden)" if re.search(
            "KEY|SAS|CONNECTION", k) else v) for k, v in self.extra.items()) \
            + " "


def conf():
    return T._az_conf()


def key():
    return conf()["AZURE_STORAGE_KEY"]


def endpoint():
    return conf()["AZURE_BLOB_ENDPOINT"]


def account():
    return conf()["AZURE_STORAGE_ACCOUNT"]


def mount_view(ws, view, opts=None, n=[0]):
    """A started Mount of `view` on a fresh mount point of ws."""
    n[0] += 1
    work = os.path.join(ws.root, "view%d" % n[0])
    os.makedirs(work)
    m = T.Mount(ws.mount.binary, view, os.path.join(work, "mnt"), work, opts)
    return m.start()


def write_h5(path, seed=1, shape=(256, 256), chunks=(64, 64)):
    import h5py
    data = np.random.default_rng(seed).random(shape)
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, chunks=chunks)
    return data


def read_d(path):
    """Dataset d of `path`, read in a child process: (ok, array or
    stderr)."""
    code = ("import h5py, numpy as np, sys\n"
            "with h5py.File(%r, 'r') as f:\n"
            "    a = f['d'][...]\n"
            "np.save(sys.stdout.buffer, a)\n" % path)
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    if r.returncode:
        return False, r.stderr.decode(errors="replace")
    return True, np.load(io.BytesIO(r.stdout))


def log_of(m):
    """What the daemon wrote to its log (not the command line the test
    wrote above it, which may hold a SAS given as an option)."""
    with open(m.log, errors="replace") as f:
        return f.read().split("\n", 1)[-1]


def check_log_clean(text, *secrets):
    for s in (key(),) + secrets:
        T.check(s not in text, "the log holds a secret")
    T.check(not re.search(r"SharedKey [^ :]+:\S", text) and
            "sig=" not in text, "the log holds a signature")


def mount_fails(binary, ws, url, env, opts=None):
    """Runs mount.cloudh5 the way mount(8) does (daemon mode) with `env`
    only; returns (exit status, its output)."""
    mnt = os.path.join(ws.root, "fail")
    os.makedirs(mnt, exist_ok=True)
    cmd = [binary, url, mnt]
    if opts:
        cmd += ["-o", opts]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=View(ws.store, **env).env(), timeout=60)
    if T._is_mounted(mnt):
        subprocess.run(["fusermount3", "-u", mnt])
    return r.returncode, r.stdout.decode(errors="replace")


@test
def bad_credentials_fail_the_mount(binary):
    with T.Workspace(binary, name="badkey") as ws:
        wrong = "A" * 8 + key()[8:]
        cs = ("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;"
              "BlobEndpoint=%s;" % (account(), wrong, endpoint()))
        rows = []
        for what, url, env, want in (
                ("wrong key", ws.store.url,
                 {"AZURE_STORAGE_CONNECTION_STRING": cs},
                 r"HTTP 403 \w+(.|\n)*access denied: the store refused the "
                 r"credentials|access denied: the store refused the "
                 r"credentials(.|\n)*HTTP 403 \w+"),
                ("key not Base64", ws.store.url,
                 {"AZURE_STORAGE_ACCOUNT": account(),
                  "AZURE_STORAGE_KEY": "not-base64!"},
                 r"the account key is not Base64"),
                ("no credential", ws.store.url,
                 {"AZURE_STORAGE_ACCOUNT": account()},
                 r"no credentials \(a key or a SAS\)"),
                ("missing container", "az://no-such-container/p",
                 {"AZURE_STORAGE_CONNECTION_STRING":
                  conf()["AZURE_STORAGE_CONNECTION_STRING"]},
                 r"no such bucket, container or directory")):
            rc, out = mount_fails(binary, ws, url, env,
                                  "endpoint=" + endpoint()
                                  if "ACCOUNT" in str(env) else None)
            T.check(rc == 1, "%s: mount exited %d, want 1:\n%s"
                    % (what, rc, out))
            T.check(re.search(want, out), "%s: the message does not say "
                    "%r:\n%s" % (what, want, out))
            T.check(wrong not in out and key() not in out,
                    "%s: the output holds the key" % what)
            rows.append(what)
        return "exit 1 with a message: " + ", ".join(rows)


@test
def settings_sources(binary):
    with T.Workspace(binary, name="sources") as ws:
        ws.start()
        data = write_h5(ws.m("x.h5"))
        ws.stop()
        st = ws.store
        pw = os.path.join(ws.root, "az.passwd")
        with open(pw, "w") as f:
            f.write("%s:%s\n" % (account(), key()))
        os.chmod(pw, 0o600)
        sas_rw = azblob.account_sas(account(), key(), permissions="racwdl",
                                    resource_types="sco")
        cs_sas = "BlobEndpoint=%s;SharedAccessSignature=%s;AccountName=%s" \
            % (endpoint(), sas_rw, account())
        ep = "endpoint=" + endpoint()
        cases = (
            ("AZURE_STORAGE_ACCOUNT/KEY + -o endpoint", View(
                st, AZURE_STORAGE_ACCOUNT=account(),
                AZURE_STORAGE_KEY=key()), ep),
            ("passwd_file", View(st), ep + ",passwd_file=" + pw),
            ("STORAGE_PLATFORM=Azure, bare CONTAINER:/PREFIX", View(
                st, "%s:/%s" % (st.container, st.name),
                STORAGE_PLATFORM="Azure", AZURE_STORAGE_CONNECTION_STRING=conf()[
                    "AZURE_STORAGE_CONNECTION_STRING"]), None),
            ("BUCKET_NAME + az:///PREFIX", View(
                st, "az:///%s" % st.name, BUCKET_NAME=st.container,
                AZURE_STORAGE_CONNECTION_STRING=conf()[
                    "AZURE_STORAGE_CONNECTION_STRING"]), None),
            ("connection string with a SAS", View(
                st, AZURE_STORAGE_CONNECTION_STRING=cs_sas), None),
            ("-o sas= + -o account=", View(st),
             ep + ",account=%s,sas=%s" % (account(), sas_rw)),
        )
        rows = []
        for i, (what, view, opts) in enumerate(cases):
            m = mount_view(ws, view, opts)
            ok, got = read_d(os.path.join(m.mnt, "x.h5"))
            T.check(ok and np.array_equal(got, data), "%s: x.h5 reads "
                    "wrong: %s" % (what, got if not ok else ""))
            # And writes: a file of its own, read back on the first mount.
            mine = write_h5(os.path.join(m.mnt, "w%d.h5" % i), seed=10 + i)
            text = log_of(m)
            m.stop()
            check_log_clean(text, sas_rw.split("sig=")[-1])
            ws.start()
            ok, got = read_d(ws.m("w%d.h5" % i))
            ws.stop()
            T.check(ok and np.array_equal(got, mine), "%s: what it wrote "
                    "reads back wrong" % what)
            rows.append(what)
        # A passwd_file others may read is refused.
        os.chmod(pw, 0o644)
        rc, out = mount_fails(binary, ws, st.url, {}, ep + ",passwd_file="
                              + pw)
        T.check(rc == 1 and "chmod 600" in out,
                "a 644 passwd_file: exit %d:\n%s" % (rc, out))
        return "round trips: " + "; ".join(rows) + "; 644 passwd_file refused"


def errno_of(fn):
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


@test
def read_only_sas(binary):
    with T.Workspace(binary, name="rosas") as ws:
        ws.start()
        data = write_h5(ws.m("x.h5"))
        os.mkdir(ws.m("dir"))
        with open(ws.m("dir/plain.txt"), "wb") as f:
            f.write(b"hello\n")
        ws.stop()
        before = ws.store.keys()
        st = ws.store
        sas = azblob.service_sas(account(), key(), st.container,
                                 permissions="rl")
        m = mount_view(ws, View(st, AZURE_STORAGE_ACCOUNT=account(),
                                AZURE_STORAGE_SAS_TOKEN=sas),
                       "endpoint=" + endpoint())
        p = lambda rel: os.path.join(m.mnt, rel)  # noqa: E731
        ok, got = read_d(p("x.h5"))
        T.check(ok and np.array_equal(got, data), "x.h5 reads wrong with "
                "a read-only SAS")
        r = subprocess.run(["h5dump", "-H", p("x.h5")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        T.check(r.returncode == 0, "h5dump -H failed:\n%s"
                % r.stdout.decode(errors="replace"))
        T.check(sorted(os.listdir(m.mnt)) == ["dir", "x.h5"],
                "listing %s" % os.listdir(m.mnt))
        ops = {
            "open r+": lambda: os.close(os.open(p("x.h5"), os.O_RDWR)),
            "create": lambda: os.close(os.open(p("new.h5"),
                                               os.O_WRONLY | os.O_CREAT)),
            "truncate": lambda: os.truncate(p("x.h5"), 0),
            "unlink": lambda: os.unlink(p("dir/plain.txt")),
            "rename": lambda: os.rename(p("x.h5"), p("y.h5")),
            "mkdir": lambda: os.mkdir(p("d2")),
            "rmdir": lambda: os.rmdir(p("dir")),
        }
        got_errno = {k: errno_of(f) for k, f in ops.items()}
        bad = {k: errno.errorcode.get(v, v) for k, v in got_errno.items()
               if v != errno.EACCES}
        T.check(not bad, "with a read-only SAS these did not get EACCES: "
                "%s" % bad)
        code = ("import h5py\n"
                "try:\n"
                "    h5py.File(%r, 'r+')\n"
                "except OSError as e:\n"
                "    print(e)\n" % p("x.h5"))
        r = subprocess.run([sys.executable, "-c", code],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        T.check(b"ermission denied" in r.stdout, "h5py r+: %s"
                % r.stdout.decode(errors="replace"))
        spool = os.path.join(m.workdir, "spool%d" % m.n)
        text = log_of(m)
        m.stop()
        T.check(not [n for n in os.listdir(spool) if n.endswith(".stage")],
                "something was staged: %s" % os.listdir(spool))
        T.check(ws.store.keys() == before, "the store changed")
        T.check("grants no write permission (sp=rl)" in text,
                "the log does not say the SAS is read-only")
        check_log_clean(text, sas.split("sig=")[-1])
        # A SAS signed with another key is refused at mount time.
        forged = azblob.service_sas(account(), "A" * 8 + key()[8:],
                                    st.container, permissions="rl")
        rc, out = mount_fails(binary, ws, st.url,
                              {"AZURE_STORAGE_ACCOUNT": account(),
                               "AZURE_STORAGE_SAS_TOKEN": forged},
                              "endpoint=" + endpoint())
        T.check(rc == 1 and "access denied" in out, "a SAS signed with a "
                "wrong key: exit %d:\n%s" % (rc, out))
        return "reads exact, h5dump ok; EACCES for %s; nothing staged, " \
            "store unchanged; a forged SAS fails the mount" \
            % ", ".join(sorted(ops))


def proxied(extra=""):
    ep = endpoint()
    path = ep.split("://", 1)[1]
    path = path[path.index("/"):] if "/" in path else ""
    return "endpoint=%s%s%s" % (PROXY.endpoint, path,
                                "," + extra if extra else "")


@test
def transient_errors_are_retried(binary):
    with T.Workspace(binary, name="retry", opts=proxied()) as ws:
        ws.start()
        data = write_h5(ws.m("x.h5"), shape=(512, 512), chunks=(128, 128))
        ws.stop()
        rows = []
        for status, code in ((500, "InternalError"), (503, "ServerBusy")):
            PROXY.clear()
            ws.start()
            PROXY.reset_log()
            PROXY.fail("GET", "/c/x.h5/", status, code, times=2)
            ok, got = read_d(ws.m("x.h5"))
            T.check(ok and np.array_equal(got, data), "read with %d %s: %s"
                    % (status, code, got if not ok else "wrong bytes"))
            injected = [e for e in PROXY.requests("GET", "/c/x.h5/") if e[3]]
            T.check(len(injected) == 2, "%d injected answers, want 2"
                    % len(injected))
            st = T.mount_stats(ws)
            T.check(st["requests.retries"] == 2 and
                    st["requests.errors"] == 0,
                    "after 2 x %d %s: retries %d, errors %d (want 2, 0)"
                    % (status, code, st["requests.retries"],
                       st["requests.errors"]))
            ws.stop()
            rows.append("%d %s" % (status, code))
        # 403 is not retried: the manifest's GET refused once -> EACCES.
        ws.start()
        PROXY.clear()
        PROXY.reset_log()
        manifest = "/%s/%sx.h5" % (ws.store.container, ws.store.prefix)
        PROXY.fail("GET", manifest, 403, "AuthorizationFailure", times=1)
        ok, err = read_d(ws.m("x.h5"))
        sent = [e for e in PROXY.requests(None, manifest)
                if e[1].split("?")[0].endswith(manifest)]
        T.check(not ok and "Permission denied" in err,
                "a 403 on the manifest did not give EACCES: %s" % err[-300:])
        T.check(len(sent) == 1, "requests for the manifest after a 403: %s"
                % sent)
        T.check(T.mount_stats(ws)["requests.retries"] == 0, "a 403 was "
                "retried")
        text403 = log_of(ws.mount)
        ws.stop()
        T.check("HTTP 403 AuthorizationFailure" in text403, "the log does "
                "not name the 403's code")
        check_log_clean(text403)
        # A retry budget used up: EIO, and the log names code and message.
        ws.mount.opts = proxied("retries=3")
        ws.start()
        PROXY.clear()
        PROXY.fail("GET", "/c/x.h5/", 503, "ServerBusy", times=1000,
                   message="The server is busy.")
        PROXY.reset_log()
        code = ("import os, errno\n"
                "fd = os.open(%r, os.O_RDONLY)\n"
                "try:\n"
                "    os.pread(fd, 4096, 1024 * 1024 + 64 * 1024)\n"
                "    print('read')\n"
                "except OSError as e:\n"
                "    print(errno.errorcode[e.errno])\n" % ws.m("x.h5"))
        r = subprocess.run([sys.executable, "-c", code],
                           stdout=subprocess.PIPE, timeout=120)
        T.check(r.stdout.decode().strip() == "EIO", "past the retry budget:"
                " %r, want EIO" % r.stdout)
        T.wait_idle(ws)  # every attempt of every request over
        per_key = {}
        for _, tgt, _, _ in PROXY.requests("GET", "/c/x.h5/"):
            per_key[tgt.split("?")[0]] = per_key.get(tgt.split("?")[0], 0) + 1
        T.check(per_key and all(n % 4 == 0 for n in per_key.values()),
                "GETs per key %s: want 4 (1 + retries=3) per attempt"
                % per_key)
        PROXY.clear()
        text = log_of(ws.mount)
        ws.stop()
        T.check("ServerBusy: The server is busy." in text, "the log does "
                "not name ServerBusy and its message")
        check_log_clean(text)
        return "2 x each retried (%s), 403 once -> EACCES, budget -> EIO " \
            "with 4 GETs per key" % ", ".join(rows)


@test
def block_upload(binary):
    opts = proxied("multipart_threshold=5M,part_size=5M,block_size=12M")
    with T.Workspace(binary, name="blocks", opts=opts) as ws:
        ws.start()
        PROXY.clear()
        PROXY.reset_log()
        import h5py
        data = np.random.default_rng(3).random((1536, 1024))  # 12 MiB
        with h5py.File(ws.m("m.h5"), "w") as f:
            f.create_dataset("d", data=data)  # contiguous: one 12M object
        blocks = PROXY.count("PUT", "comp=block&")
        lists = PROXY.count("PUT", "comp=blocklist")
        T.check((blocks, lists) == (3, 1), "Put Block / Put Block List "
                "requests %s, want (3, 1)" % ((blocks, lists),))
        big = max(ws.store.keys(".cloudh5/"), key=ws.store.size)
        T.check(ws.store.size(big) == 12 << 20, "largest blob %s: %d bytes"
                % (big, ws.store.size(big)))
        ws.remount()
        ok, got = read_d(ws.m("m.h5"))
        T.check(ok and np.array_equal(got, data), "the block blob reads "
                "back wrong")
        return "12 MiB blob: 3 Put Block + 1 Put Block List, exact"


def list_tool(ws, url, prefix, delim, max_keys):
    """(items, page sizes) of ost_list_tool paging through store `url`."""
    tool = os.path.join(os.path.dirname(os.path.dirname(ws.mount.binary)),
                        "tests", "ost_list_tool")
    r = subprocess.run([tool, url, prefix, delim, str(max_keys)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=ws.store.env(), timeout=120)
    out = r.stdout.decode(errors="replace")
    T.check(r.returncode == 0, "ost_list_tool failed:\n" + out[-1000:])
    items = [ln for ln in out.splitlines() if not ln.startswith("page ")]
    pages = [int(ln.split()[1]) for ln in out.splitlines()
             if ln.startswith("page ")]
    return items, pages


@test
def list_pages(binary):
    """Many blobs below one common prefix: the mount's probe and lookups
    (LIST with a delimiter and one item) are quick (Azurite takes time
    quadratic in the blobs for a small maxresults, so pages are asked for
    1,000 items and cut), and every page size pages through the exact
    listing, also after a cut.  In a container of its own, deleted whole
    at the end (Azurite deletes blobs one by one slowly)."""
    import concurrent.futures
    import time
    import uuid
    with T.Workspace(binary, name="pages") as ws:
        st = ws.store
        cont = "pages-" + uuid.uuid4().hex[:12]
        st.client.create_container(cont)
        try:
            names = ["big/d/c/%03d/%d" % (i // 10, i % 10)
                     for i in range(2500)]
            names += ["big/f%02d.h5" % i for i in range(12)] + ["top.txt"]

            def put(n):
                st.client.put_blob(cont, "ws/" + n, b"x")
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(put, names))
            url = "az://%s/ws" % cont
            t = time.monotonic()
            m = mount_view(ws, View(st, url, **{
                "AZURE_STORAGE_CONNECTION_STRING":
                    conf()["AZURE_STORAGE_CONNECTION_STRING"]}))
            listing = sorted(os.listdir(os.path.join(m.mnt, "big")))
            T.check(os.path.isdir(os.path.join(m.mnt, "big", "d")),
                    "big/d is not a directory")
            m.stop()
            dt = time.monotonic() - t
            T.check(listing == ["d"] + ["f%02d.h5" % i for i in range(12)],
                    "ls big: %s" % listing)
            T.check(dt < 10, "mount, ls and lookup took %.1f s" % dt)
            rows = []
            for prefix, delim, want in (
                    ("big/", "/", ["p big/d/"] +
                     ["o big/f%02d.h5" % i for i in range(12)]),
                    ("", "/", ["p big/", "o top.txt"]),
                    ("big/d/c/01", "", ["o " + n for n in sorted(names)
                                        if n.startswith("big/d/c/01")])):
                for max_keys in (1, 5, 1000, 0):
                    items, pages = list_tool(ws, url, prefix, delim,
                                             max_keys)
                    T.check(items == want, "LIST %r %r max %d: %s, want %s"
                            % (prefix, delim, max_keys, items[:8],
                               want[:8]))
                    T.check(all(n <= (max_keys or 1000) for n in pages),
                            "LIST %r max %d: pages %s" % (prefix, max_keys,
                                                          pages))
                rows.append("%s%s: %d items" % (prefix or "(root)",
                                                " /" if delim else "",
                                                len(want)))
            items, pages = list_tool(ws, url, "big/d/", "", 700)
            T.check(len(items) == 2500 and pages == [700, 700, 700, 400],
                    "2,500 blobs in pages of 700: %d items, pages %s"
                    % (len(items), pages))
        finally:
            st.client.delete_container(cont)
        return "mount + ls + lookup over 2,500 blobs %.1f s; pages of 1, " \
            "5, 1000, default exact for %s; 2,500 in pages of 700" \
            % (dt, ", ".join(rows))


class Server:
    """The proxy in front of the fixture's Azurite."""

    def up(self):
        global PROXY
        ep = endpoint().split("://", 1)[1]
        host, _, rest = ep.partition(":")
        port = int(rest.split("/", 1)[0])
        PROXY = FaultProxy(host, port).start()
        return "proxy on %s" % PROXY.endpoint

    def down(self):
        if PROXY:
            PROXY.stop()


def main():
    R = T.Runner("test_az_protocol")
    T.check(T.STORE == "az", "run with CH5_STORE=az and CH5_AZ_ENV")
    T.run_with_server(R, Server(), TESTS)


if __name__ == "__main__":
    main()
