#!/usr/bin/python3
"""The S3 protocol against a real signature-checking server (its own Ceph
RGW), with a fault-injecting proxy (faultproxy.py) between the daemon and
the server where a case needs one:

  - transient errors (500, 503, 429, 503 SlowDown) are retried and the
    read succeeds; requests.retries counts them;
  - 403 AccessDenied is not retried (one request), nor a 404 (every request
    for a missing name is sent once);
  - a retry budget used up gives EIO, and the log names the S3 error code
    and message but never the secret key or a signature;
  - an object above multipart_threshold goes up as a multipart upload (its
    ETag ends in -PARTS); a failed part aborts the upload (no upload left
    in ListMultipartUploads), close() fails and the data stays staged (also
    when the retry at the last release fails), and the next close commits
    it;
  - temporary credentials (STS AssumeRole: access key, secret and session
    token) mount, write and read, from the environment and from
    ~/.aws/credentials; a wrong token fails the mount with a message.

usage: test_s3_protocol.py --mount-bin BUILD/fs/mount.cloudh5
        [--state-dir DIR] [--ports S3,MON2,MON1] [-k NAME]...
"""

import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

TESTS = []
SRV = None
STS_KEY = "cloudh5stskey123"  # rgw sts key: 16 characters


def test(fn):
    TESTS.append(fn)
    return fn


class Server:
    """This run's RGW (STS on) and a proxy in front of it."""

    def __init__(self, state, ports):
        self.state = os.path.abspath(state)
        self.port, self.mon2, self.mon1 = ports
        self.started = False
        self.proxy = None

    def up(self):
        self.started = True
        out = T.rgw_up(self.state, self.port, self.mon2, self.mon1,
                       CEPH_RGW_STS_KEY=STS_KEY,
                       CEPH_RGW_MEMSTORE_BYTES=768 << 20)
        self.conf = T._s3_conf()
        self.secret = self.conf["AWS_SECRET_ACCESS_KEY"]
        self.proxy = FaultProxy("127.0.0.1", self.port).start()
        return out

    def down(self):
        if self.proxy:
            self.proxy.stop()
        if self.started:
            T.rgw_down(self.state)
            self.started = False


def proxied(ws_opts=""):
    """Mount options sending the daemon through the proxy."""
    o = "endpoint=" + SRV.proxy.endpoint
    return o + ("," + ws_opts if ws_opts else "")


def write_h5(path, shape, chunks, seed=1):
    import h5py
    data = np.random.default_rng(seed).random(shape)
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, chunks=chunks)
    return data


def read_d(path):
    """Reads dataset d through the mount in a child process (a hung or
    failing read cannot take the test with it).  Returns (ok, output)."""
    code = ("import h5py, numpy as np, sys\n"
            "with h5py.File(%r, 'r') as f:\n"
            "    a = f['d'][...]\n"
            "np.save(sys.stdout.buffer, a)\n" % path)
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    return r.returncode == 0, r


def loaded(r):
    import io
    return np.load(io.BytesIO(r.stdout))


def log_of(ws):
    with open(ws.mount.log, errors="replace") as f:
        return f.read()


def check_log_clean(text, *secrets):
    for s in (SRV.secret,) + secrets:
        T.check(s not in text, "the log holds a secret")
    T.check("Signature=" not in text and "Credential=" not in text,
            "the log holds an Authorization header")


@test
def transient_errors_are_retried(binary):
    with T.Workspace(binary, name="retry", opts=proxied()) as ws:
        ws.start()
        data = write_h5(ws.m("x.h5"), (512, 512), (128, 128))
        ws.stop()
        rows = []
        for status, code in ((500, "InternalError"), (503,
                              "ServiceUnavailable"), (429, "TooManyRequests"),
                             (503, "SlowDown")):
            SRV.proxy.clear()
            ws.start()
            SRV.proxy.reset_log()
            SRV.proxy.fail("GET", "/c/x.h5/", status, code, times=2)
            ok, r = read_d(ws.m("x.h5"))
            T.check(ok, "read with %d %s failed: %s" % (
                status, code, r.stderr.decode(errors="replace")[-500:]))
            T.check(np.array_equal(loaded(r), data), "wrong bytes after "
                    "%d %s" % (status, code))
            injected = [e for e in SRV.proxy.requests("GET", "/c/x.h5/")
                        if e[3]]
            T.check(len(injected) == 2, "%d injected answers, want 2"
                    % len(injected))
            st = T.mount_stats(ws)
            T.check(st["requests.retries"] == 2 and
                    st["requests.errors"] == 0,
                    "after 2 x %d %s: retries %d, errors %d (want 2, 0)"
                    % (status, code, st["requests.retries"],
                       st["requests.errors"]))
            # Each injected answer's key was asked for again and served.
            for e in injected:
                again = [x for x in SRV.proxy.requests("GET", e[1])
                         if not x[3] and x[2] in (200, 206)]
                T.check(again, "%s was not sent again after %d" % (e[1],
                                                                   status))
            ws.stop()
            rows.append("%d %s" % (status, code))
        check_log_clean(log_of(ws))
        return "2 of each retried, read exact: " + ", ".join(rows)


@test
def client_errors_are_not_retried(binary):
    with T.Workspace(binary, name="noretry", opts=proxied()) as ws:
        ws.start()
        data = write_h5(ws.m("y.h5"), (256, 128), (256, 128))  # one chunk
        ws.remount()
        SRV.proxy.clear()
        SRV.proxy.reset_log()
        # The manifest of y.h5: the first request for it (the lookup's)
        # is refused with 403.
        manifest = "/%s/%sy.h5" % (ws.store.bucket, ws.store.prefix)
        SRV.proxy.fail("GET", manifest, 403, "AccessDenied", times=1)
        ok, r = read_d(ws.m("y.h5"))
        sent = [e for e in SRV.proxy.requests(None, manifest)
                if e[1].split("?")[0] == manifest]
        T.check(len(sent) == 1 and sent[0][2] == 403,
                "403 AccessDenied: requests for the manifest %s, want the "
                "one refused (no retry)" % sent)
        T.check(not ok and b"Permission denied" in r.stderr,
                "the open did not fail with EACCES: %s"
                % r.stderr.decode(errors="replace")[-300:])
        st = T.mount_stats(ws)
        T.check(st["requests.retries"] == 0, "requests.retries %d after a "
                "403" % st["requests.retries"])
        ok, r = read_d(ws.m("y.h5"))
        T.check(ok and np.array_equal(loaded(r), data),
                "the next read (no fault) failed")
        # A name that does not exist: every request the lookup makes is a
        # 404 from the server, each sent once.
        SRV.proxy.reset_log()
        T.check(not os.path.exists(ws.m("missing.h5")), "missing.h5 exists")
        asked = [(m, t) for m, t, s, _ in SRV.proxy.requests(None,
                                                             "missing.h5")]
        T.check(asked, "the lookup of missing.h5 made no request")
        T.check(len(asked) == len(set(asked)), "a request for missing.h5 "
                "was sent twice: %s" % asked)
        log = log_of(ws)
        T.check(re.search(r"HTTP 403 AccessDenied: injected by the test "
                          "proxy", log), "the log does not name the S3 "
                "error code and message:\n" + log[-1500:])
        check_log_clean(log)
        return "403: 1 request, EACCES; missing name: %d requests, each " \
            "once" % len(asked)


@test
def retry_budget_exhausted_gives_eio(binary):
    with T.Workspace(binary, name="budget", opts=proxied("retries=3")) as ws:
        ws.start()
        write_h5(ws.m("z.h5"), (256, 128), (256, 128))
        ws.remount()
        SRV.proxy.clear()
        SRV.proxy.reset_log()
        SRV.proxy.fail("GET", "/c/z.h5/", 503, "SlowDown", times=1000,
                       message="Please reduce your request rate.")
        t = time.monotonic()
        code = ("import os, errno\n"
                "fd = os.open(%r, os.O_RDONLY)\n"
                "try:\n"
                "    os.pread(fd, 4096, 128 * 1024)\n"
                "    print('read')\n"
                "except OSError as e:\n"
                "    print(errno.errorcode[e.errno])\n" % ws.m("z.h5"))
        r = subprocess.run([sys.executable, "-c", code],
                           stdout=subprocess.PIPE, timeout=120)
        dt = time.monotonic() - t
        got = r.stdout.decode().strip()
        T.check(got == "EIO", "a read past the retry budget gave %r, want "
                "EIO" % got)
        T.wait_idle(ws)  # every attempt of every request over
        per_key = {}
        for m, tgt, s, inj in SRV.proxy.requests("GET", "/c/z.h5/"):
            per_key[tgt.split("?")[0]] = per_key.get(tgt.split("?")[0], 0) + 1
        T.check(per_key and all(n % 4 == 0 for n in per_key.values()),
                "GETs per key %s: want 4 each (1 + retries=3) per attempt"
                % per_key)
        SRV.proxy.clear()
        log = log_of(ws)
        T.check("SlowDown: Please reduce your request rate." in log,
                "the log does not name SlowDown and its message:\n"
                + log[-1500:])
        check_log_clean(log)
        return "EIO after %.1f s; GETs per key %s" % (
            dt, sorted(set(per_key.values())))


def big_object(store, name):
    """(key, size) of the largest object of file `name`."""
    best = None
    for k in store.keys(".cloudh5/"):
        if ("/%s/" % name) in k:
            n = store.size(k)
            if best is None or n > best[1]:
                best = (k, n)
    return best


@test
def multipart_upload(binary):
    opts = proxied("multipart_threshold=5M,part_size=5M,block_size=12M")
    with T.Workspace(binary, name="multipart", opts=opts) as ws:
        ws.start()
        SRV.proxy.clear()
        SRV.proxy.reset_log()
        import h5py
        data = np.random.default_rng(3).random((1536, 1024))  # 12 MiB
        with h5py.File(ws.m("m.h5"), "w") as f:
            f.create_dataset("d", data=data)  # contiguous: one 12M object
        key, size = big_object(ws.store, "m.h5")
        T.check(size == 12 << 20, "largest object %s has %d bytes" % (key,
                                                                      size))
        etag = ws.store._head(key)["ETag"].strip('"')
        T.check(etag.endswith("-3"), "ETag %s of the 12 MiB object: want "
                "a multipart ETag of 3 parts" % etag)
        starts = SRV.proxy.count("POST", "?uploads")
        parts = SRV.proxy.count("PUT", "partNumber=")
        done = len([e for e in SRV.proxy.requests("POST", "uploadId=")])
        T.check((starts, parts, done) == (1, 3, 1),
                "create/part/complete requests %s, want (1, 3, 1)"
                % ((starts, parts, done),))
        ws.remount()
        ok, r = read_d(ws.m("m.h5"))
        T.check(ok and np.array_equal(loaded(r), data),
                "the multipart object reads back wrong")
        return "12 MiB object: ETag %s, 1 create + 3 parts + 1 complete" \
            % etag


@test
def multipart_failure_aborts(binary):
    opts = proxied("multipart_threshold=5M,part_size=5M,block_size=12M")
    with T.Workspace(binary, name="mpabort", opts=opts) as ws:
        local = ws.l("a.h5")
        import h5py
        data = np.random.default_rng(4).random((1536, 1024))
        with h5py.File(local, "w") as f:
            f.create_dataset("d", data=data)
        ws.start()
        SRV.proxy.clear()
        SRV.proxy.reset_log()
        # Part 2 refused at the commit of cp's close() (flush), and at the
        # commit the last close (release) tries again after cp exited.
        SRV.proxy.fail("PUT", "partNumber=2", 403, "AccessDenied", times=2)
        r = subprocess.run(["cp", local, ws.m("a.h5")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120)
        T.check(r.returncode != 0, "cp succeeded although a part failed")
        t_end = time.monotonic() + 30
        while (len(SRV.proxy.requests("DELETE", "uploadId=")) < 2 and
               time.monotonic() < t_end):
            time.sleep(0.05)
        aborts = SRV.proxy.requests("DELETE", "uploadId=")
        T.check(len(aborts) == 2 and all(a[2] == 204 for a in aborts),
                "abort requests %s, want two answered 204 (the close's "
                "commit, the release's)" % aborts)
        c = ws.store.client
        ups = c.list_multipart_uploads(Bucket=ws.store.bucket,
                                       Prefix=ws.store.prefix)
        T.check(not ups.get("Uploads"), "uploads left after the abort: %s"
                % ups.get("Uploads"))
        spool = os.path.join(ws.root, "spool%d" % ws.mount.n)
        kept = [n for n in os.listdir(spool) if n.endswith(".stage")]
        T.check(kept, "nothing kept in the spool after the failed commit")
        # The next close commits the kept stage (the fault is spent).
        fd = os.open(ws.m("a.h5"), os.O_WRONLY)
        os.close(fd)
        ws.remount()
        T.assert_same_bytes(local, ws.m("a.h5"))
        key, size = big_object(ws.store, "a.h5")
        etag = ws.store._head(key)["ETag"].strip('"')
        T.check(etag.endswith("-3"), "the committed object's ETag %s" % etag)
        return "part 2 refused twice: cp failed, 2 aborts, no upload left, " \
            "stage kept; reopen+close committed it"


def sts_credentials():
    """Temporary credentials from RGW's STS: a role the test user may
    assume (IAM CreateRole + PutRolePolicy), then STS AssumeRole."""
    import botocore.session
    c = SRV.conf
    sess = botocore.session.Session()
    kw = dict(endpoint_url=c["S3_ENDPOINT"], region_name=c["S3_REGION"],
              aws_access_key_id=c["AWS_ACCESS_KEY_ID"],
              aws_secret_access_key=c["AWS_SECRET_ACCESS_KEY"])
    iam = sess.create_client("iam", **kw)
    sts = sess.create_client("sts", **kw)
    user = subprocess.run(
        ["radosgw-admin", "-c", os.path.join(SRV.state, "ceph.conf"),
         "user", "info", "--access-key", c["AWS_ACCESS_KEY_ID"]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    import json
    uid = json.loads(user.stdout)["user_id"]
    name = "ch5-role-%d" % os.getpid()

    def compact(o):  # RGW's form decoding does not take '+' for a space
        return json.dumps(o, separators=(",", ":"))
    trust = compact({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/%s"
                                                 % uid]},
        "Action": ["sts:AssumeRole"]}]})
    role = iam.create_role(RoleName=name, Path="/",
                           AssumeRolePolicyDocument=trust)
    iam.put_role_policy(RoleName=name, PolicyName="s3all",
                        PolicyDocument=compact({
                            "Version": "2012-10-17", "Statement": [{
                                "Effect": "Allow", "Action": ["s3:*"],
                                "Resource": ["arn:aws:s3:::*"]}]}))
    got = sts.assume_role(RoleArn=role["Role"]["Arn"],
                          RoleSessionName="ch5", DurationSeconds=3600)
    return got["Credentials"]


@test
def session_token(binary):
    cred = sts_credentials()
    ak, sk, tok = (cred["AccessKeyId"], cred["SecretAccessKey"],
                   cred["SessionToken"])
    T.check(tok and ak != SRV.conf["AWS_ACCESS_KEY_ID"],
            "STS gave no temporary credentials")
    results = []
    with T.Workspace(binary, name="sts") as ws:
        # From the environment (the daemon's environment is what
        # ws.store.env() returns: replaced for each case).
        orig_env = ws.store.env
        ws.store.env = lambda: dict(orig_env(), AWS_ACCESS_KEY_ID=ak,
                                    AWS_SECRET_ACCESS_KEY=sk,
                                    AWS_SESSION_TOKEN=tok)
        ws.start()
        data = write_h5(ws.m("s.h5"), (256, 256), (64, 64), seed=9)
        ws.stop()
        results.append("environment")
        # From ~/.aws/credentials (HOME elsewhere, no AWS_* keys).
        home = tempfile.mkdtemp(prefix="ch5-sts-home-")
        os.makedirs(os.path.join(home, ".aws"))
        with open(os.path.join(home, ".aws", "credentials"), "w") as f:
            f.write("[default]\naws_access_key_id = %s\n"
                    "aws_secret_access_key = %s\naws_session_token = %s\n"
                    % (ak, sk, tok))

        def env_file():
            e = {k: v for k, v in orig_env().items()
                 if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                              "AWS_SHARED_CREDENTIALS_FILE")}
            e["HOME"] = home
            return e
        ws.store.env = env_file
        ws.start()
        ok, r = read_d(ws.m("s.h5"))
        T.check(ok and np.array_equal(loaded(r), data),
                "read with the token from ~/.aws/credentials failed")
        ws.stop()
        results.append("~/.aws/credentials")
        check_log_clean(log_of(ws), sk, tok)
        # A wrong token: the mount itself fails, with a message.
        bad = dict(orig_env(), AWS_ACCESS_KEY_ID=ak,
                   AWS_SECRET_ACCESS_KEY=sk,
                   AWS_SESSION_TOKEN=tok[:-8] + "AAAAAAAA")
        spool = os.path.join(ws.root, "badspool")
        r = subprocess.run([binary, ws.store.url, ws.mntdir, "-f", "-o",
                            "spool_dir=" + spool], env=bad,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        out = r.stdout.decode(errors="replace")
        T.check(r.returncode != 0 and re.search(
            r"access denied|HTTP 4\d\d \w+", out),
                "a wrong session token: exit %d, %s" % (r.returncode, out))
        T.check(tok[:20] not in out and sk not in out, "a secret printed")
        T.check(not T._is_mounted(ws.mntdir), "mounted with a wrong token")
        import shutil
        shutil.rmtree(home, ignore_errors=True)
        results.append("wrong token refused")
    return ", ".join(results)


def main():
    global SRV
    R = T.Runner("test_s3_protocol")
    state = R.args.get("state-dir") or os.path.join(
        tempfile.gettempdir(), "ch5-rgw-protocol")
    ports = [int(p) for p in R.args.get("ports",
                                        "7488,3308,6797").split(",")]
    SRV = Server(state, ports)
    T.S3 = True  # every workspace is a prefix of this RGW's bucket
    T.run_with_server(R, SRV, TESTS)


if __name__ == "__main__":
    main()
