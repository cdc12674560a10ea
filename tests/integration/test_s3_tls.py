#!/usr/bin/python3
"""TLS and addressing against a real S3 server: its own throw-away Ceph RGW
(tests/servers/ceph-rgw-up.sh) serving plain HTTP and HTTPS (a certificate
of a CA made here with openssl, for 127.0.0.1, localhost, s3.localhost
and *.s3.localhost) with rgw_dns_name s3.localhost, so BUCKET.s3.localhost is
virtual-hosted (libcurl resolves every *.localhost name to 127.0.0.1
itself).

Cases: an untrusted, mismatched or unloadable certificate fails the mount
with a message that names the TLS problem; the CA given by -o ca_bundle,
AWS_CA_BUNDLE or ca_bundle in the config file (in that precedence) makes
https work end to end; -o insecure mounts the untrusted server with a
warning; virtual-hosted and path-style addressing on one server (http and
https) see each other's files; AWS_USE_TLS picks the scheme of a
scheme-less endpoint and a contradicting scheme is refused.

The server is started before the first case and stopped after the last,
also when a case fails or the run is interrupted (SIGTERM).

usage: test_s3_tls.py --mount-bin build/fs/mount.cloudh5
           [--state-dir DIR] [--ports HTTP,HTTPS,MON2,MON1] [-k NAME]...
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

import h5py  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DNS_NAME = "s3.localhost"
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Server:
    """The RGW of this run: ports, CA files, credentials, its access log."""

    def __init__(self, state, ports):
        self.state = os.path.abspath(state)
        self.http, self.https, self.mon2, self.mon1 = ports
        self.pki = self.state + "-pki"
        self.ca = os.path.join(self.pki, "ca.pem")
        self.other_ca = os.path.join(self.pki, "other-ca.pem")
        self.cert = os.path.join(self.pki, "server.pem")
        self.key = os.path.join(self.pki, "server.key")
        self.conf = None
        self.started = False

    def make_pki(self):
        """A CA, a server certificate it signs (SAN 127.0.0.1, localhost,
        s3.localhost, *.s3.localhost), an unrelated CA, and a file that
        is not PEM."""
        shutil.rmtree(self.pki, ignore_errors=True)
        os.makedirs(self.pki)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]

        def ossl(*args):
            r = subprocess.run(["openssl"] + list(args), cwd=self.pki,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            T.check(r.returncode == 0, "openssl %s: %s" % (
                args[0], r.stdout.decode(errors="replace")))
        for name, cn in (("ca", "cloudh5 test CA"),
                         ("other-ca", "cloudh5 unrelated CA")):
            ossl("req", "-x509", *ec, "-keyout", name + ".key", "-out",
                 name + ".pem", "-days", "2", "-subj", "/CN=" + cn,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        with open(os.path.join(self.pki, "ext.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:%s,"
                    "DNS:*.%s\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n" % (DNS_NAME, DNS_NAME))
        ossl("req", "-new", *ec, "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=" + DNS_NAME)
        ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
             "-days", "2", "-extfile", "ext.cnf")
        with open(os.path.join(self.pki, "not-pem.pem"), "w") as f:
            f.write("this is not a certificate\n")

    def up(self):
        self.make_pki()
        self.started = True
        out = T.rgw_up(self.state, self.http, self.mon2, self.mon1,
                       CEPH_RGW_DNS_NAME=DNS_NAME,
                       CEPH_RGW_SSL_PORT=self.https,
                       CEPH_RGW_SSL_CERT=self.cert,
                       CEPH_RGW_SSL_KEY=self.key,
                       CEPH_RGW_MEMSTORE_BYTES=512 << 20)
        self.conf = T._s3_conf()
        self.bucket = self.conf["S3_BUCKET"]
        self.secret = self.conf["AWS_SECRET_ACCESS_KEY"]
        self.log = os.path.join(self.state, "log", "ceph-client.rgw.a.log")
        return out

    def down(self):
        if self.started:
            T.rgw_down(self.state)
            self.started = False

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def access_lines(self, since, want=None, timeout=10):
        """The RGW access-log lines ("beast: ... "METHOD PATH HTTP/1.1"
        STATUS") written after byte offset `since`; with `want`, once one
        matches that regular expression or after `timeout` seconds (RGW
        writes its log asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
            lines = [ln for ln in text.splitlines() if " beast: " in ln]
            if want is None or any(re.search(want, ln) for ln in lines) \
                    or time.monotonic() > deadline:
                return lines
            time.sleep(0.2)


SRV = None


class Store(T.S3Store):
    """A fresh prefix of the server's bucket (looked at with botocore over
    plain HTTP, path-style); the daemons get the keys, and exactly the
    other AWS_* settings a case gives (no endpoint, no ~/.aws)."""

    def __init__(self, name):
        super().__init__(name)
        self.extra = {}

    def env(self):
        env = super().env()
        for k in ("AWS_ENDPOINT_URL", "SSL_CERT_FILE", "SSL_CERT_DIR",
                  "CURL_CA_BUNDLE"):
            env.pop(k, None)
        env.update(self.extra)
        return env

    def describe_env(self):
        return "".join("%s=%s " % kv for kv in sorted(self.extra.items()))


class Case:
    """One case's directory (mount point, spool dirs, logs, local twin)
    and store; kept (and named) when the case fails, else removed."""

    def __init__(self, binary, name):
        self.binary = binary
        self.root = tempfile.mkdtemp(prefix="ch5-tls-%s-" % name,
                                     dir=os.environ.get("CH5_TMPDIR"))
        self.mnt = os.path.join(self.root, "mnt")
        os.makedirs(self.mnt)
        self.store = Store("ch5-tls-" + name)
        self.mounts = []
        self.n = 0

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        for m in self.mounts:
            if m.proc is not None:
                m._kill()
        if T._is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt])
        if et is None and not os.environ.get("CH5_KEEP"):
            self.store.destroy()
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print("  case kept: %s (store %s)" % (self.root, self.store.url))
        return False

    def mount(self, opts, **env):
        """Mounts the store with -o OPTS and the AWS_* settings env (a
        T.Mount, started: the mount is up)."""
        self.store.extra = env
        m = T.Mount(self.binary, self.store, self.mnt, self.root, opts)
        m.n = self.n  # start() counts on: spool and log names stay unique
        self.n += 1
        self.mounts.append(m)
        return m.start()

    def failed_mount(self, opts, want, foreground=True, **env):
        """mount.cloudh5 with -o OPTS and env must fail: exit non-zero
        within 30 s, print every regular expression of `want`, never the
        secret, and leave nothing mounted.  Returns the output."""
        self.store.extra = env
        self.n += 1
        spool = os.path.join(self.root, "spool%d" % self.n)
        cmd = [self.binary, self.store.url, self.mnt, "-o",
               ",".join(o for o in ("spool_dir=" + spool, opts) if o)]
        if foreground:
            cmd.insert(3, "-f")
        desc = "%s%s" % (self.store.describe_env(), " ".join(cmd))
        t = time.monotonic()
        p = subprocess.Popen(cmd, env=self.store.env(),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        try:
            # Wait for the exit; a mount that appears instead is a failure
            # (ended at once, not after a timeout).
            while p.poll() is None:
                why = ("mounted" if T._is_mounted(self.mnt) else
                       "still running after 30 s"
                       if time.monotonic() - t > 30 else None)
                if why:
                    p.kill()
                    p.wait()
                    subprocess.run(["fusermount3", "-uz", self.mnt])
                    out = p.stdout.read().decode(errors="replace")
                    raise T.Fail("%s: %s, expected a failed mount; "
                                 "output:\n%s" % (desc, why, out))
                time.sleep(0.05)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        dt = time.monotonic() - t
        out = p.stdout.read().decode(errors="replace")
        p.stdout.close()
        if T._is_mounted(self.mnt):  # without -f: the daemon detached
            subprocess.run(["fusermount3", "-u", self.mnt])
            raise T.Fail("%s: mounted, expected a failure" % desc)
        T.check(p.returncode != 0, "%s: exit status 0, expected a failed "
                "mount; output:\n%s" % (desc, out))
        for w in want:
            T.check(re.search(w, out), "%s: no %r in the output:\n%s"
                    % (desc, w, out))
        T.check(SRV.secret not in out, "%s: the secret was printed" % desc)
        T.check(dt < 10, "%s: took %.1f s to fail (retried?)" % (desc, dt))
        return out


def write_h5(path, seed):
    """A chunked, compressed dataset plus an attribute."""
    r = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=r.integers(0, 1 << 30, (256, 512)),
                         chunks=(64, 128), compression="gzip")
        f.attrs["seed"] = seed


def round_trip(case, name, seed, write_opts, read_opts=None, **env):
    """h5py writes NAME through a mount with write_opts; after a remount
    with read_opts (default: the same), h5dump of it equals h5dump of the
    same file written on local disk, the bytes are the same, and the store
    holds one object per chunk.  Returns the local twin's path."""
    local = os.path.join(case.root, "local-" + name)
    write_h5(local, seed)
    m = case.mount(write_opts, **env)
    try:
        write_h5(m.path(name), seed)
        rc, out, err = T.h5dump(m.path(name), ["-a", "/seed"])
        T.check(rc == 0 and str(seed) in out, "h5dump on the writing mount "
                "(%s): %d %s" % (write_opts, rc, err[-500:]))
    finally:
        m.stop()
    m = case.mount(read_opts or write_opts, **env)
    try:
        T.assert_h5dump_equal(local, m.path(name))
        T.assert_same_bytes(local, m.path(name))
    finally:
        m.stop()
    T.assert_store_layout(case.store, name, local)
    return local


def log_has_no_secret(case):
    for m in case.mounts:
        with open(m.log, "rb") as f:
            T.check(SRV.secret.encode() not in f.read(),
                    "the secret is in the daemon log %s" % m.log)


def https(host="127.0.0.1"):
    return "https://%s:%d" % (host, SRV.https)


def http(host="127.0.0.1"):
    return "http://%s:%d" % (host, SRV.http)


CERT_HINT = r"if a private CA signed it, give that CA with -o ca_bundle"


@test
def tls_untrusted_fails_mount(binary):
    """(a) Verification is on by default: a certificate no trusted CA
    signed, a host name the certificate does not name, an unrelated CA,
    a CA bundle that is missing or not PEM, or https to a plain-HTTP port:
    each fails the mount at once (no retries), exit non-zero, with a
    message naming the TLS problem."""
    with Case(binary, "untrusted") as c:
        c.failed_mount("endpoint=" + https(), [
            r"SSL certificate problem: unable to get local issuer",
            CERT_HINT, r"-o insecure skips the check",
            r"s3://%s/\S+: the store cannot be reached" % SRV.bucket])
        # The same without -f: the daemon reports before it detaches.
        c.failed_mount("endpoint=" + https(DNS_NAME), [
            r"SSL certificate problem", CERT_HINT], foreground=False)
        c.failed_mount("endpoint=%s,ca_bundle=%s" % (https(), SRV.other_ca),
                       [r"SSL certificate problem", CERT_HINT])
        # Host name checked too: other.localhost is 127.0.0.1 as well.
        c.failed_mount("endpoint=%s,ca_bundle=%s"
                       % (https("other.localhost"), SRV.ca),
                       [r"no alternative certificate subject name matches "
                        r"target host name 'other.localhost'", CERT_HINT])
        c.failed_mount("endpoint=%s,ca_bundle=%s"
                       % (https(), os.path.join(SRV.pki, "not-pem.pem")),
                       [r"error setting certificate file",
                        r"the CA bundle could not be loaded"])
        c.failed_mount("endpoint=%s,ca_bundle=%s"
                       % (https(), os.path.join(SRV.pki, "no.pem")),
                       [r"ca_bundle \S+no.pem \(-o ca_bundle\): No such "
                        r"file or directory"])
        c.failed_mount("endpoint=https://127.0.0.1:%d" % SRV.http,
                       [r"wrong version number",
                        r"the TLS handshake failed: if the server speaks "
                        r"plain HTTP, use an http:// endpoint"])
        return "7 refused at mount time"


@test
def tls_ca_bundle_option_end_to_end(binary):
    """(b) With -o ca_bundle=CA the https mount works end to end: h5py
    writes, h5dump reads after a remount, one object per chunk, and no
    'insecure' warning."""
    with Case(binary, "cabundle") as c:
        opts = "endpoint=%s,ca_bundle=%s" % (https(), SRV.ca)
        round_trip(c, "x.h5", 1, opts)
        for m in c.mounts:
            with open(m.log) as f:
                T.check("insecure" not in f.read(),
                        "a verified mount warned about insecure (%s)"
                        % m.log)
        log_has_no_secret(c)
        return "h5py write + h5dump read over verified https"


@test
def tls_ca_bundle_sources(binary):
    """(b) Where the CA comes from, as the AWS CLI takes it: -o ca_bundle,
    then AWS_CA_BUNDLE, then ca_bundle of the profile in the config file
    (AWS_CONFIG_FILE / ~/.aws/config); the first one given is used even
    when a lower one is wrong, and a wrong one that is first fails."""
    with Case(binary, "casources") as c:
        ep = "endpoint=" + https(DNS_NAME)
        good, bad = SRV.ca, SRV.other_ca
        conf = os.path.join(c.root, "aws-config")

        def config(text):
            with open(conf, "w") as f:
                f.write(text)
        ok = []

        def mounts(opts, **env):
            m = c.mount(opts, **env)
            try:
                with open(m.path("probe.txt"), "w") as f:
                    f.write("probe\n")
                with open(m.path("probe.txt")) as f:
                    T.check(f.read() == "probe\n", "probe.txt read back")
                os.unlink(m.path("probe.txt"))
            finally:
                m.stop()
            ok.append(1)

        mounts(ep, AWS_CA_BUNDLE=good)
        config("[default]\nca_bundle = %s\n" % good)
        mounts(ep, AWS_CONFIG_FILE=conf)
        config("[default]\nca_bundle = %s\n\n[profile lab]\n"
               "ca_bundle = %s\n" % (bad, good))
        mounts(ep + ",profile=lab", AWS_CONFIG_FILE=conf)
        c.failed_mount(ep, [r"SSL certificate problem"],
                       AWS_CONFIG_FILE=conf)
        # option > environment
        mounts("%s,ca_bundle=%s" % (ep, good), AWS_CA_BUNDLE=bad)
        c.failed_mount("%s,ca_bundle=%s" % (ep, bad),
                       [r"SSL certificate problem"], AWS_CA_BUNDLE=good)
        # environment > config file
        config("[default]\nca_bundle = %s\n" % bad)
        mounts(ep, AWS_CA_BUNDLE=good, AWS_CONFIG_FILE=conf)
        config("[default]\nca_bundle = %s\n" % good)
        c.failed_mount(ep, [r"SSL certificate problem"], AWS_CA_BUNDLE=bad,
                       AWS_CONFIG_FILE=conf)
        c.failed_mount(ep, [r"ca_bundle \S+nothere.pem \(AWS_CA_BUNDLE\)"],
                       AWS_CA_BUNDLE=os.path.join(c.root, "nothere.pem"))
        log_has_no_secret(c)
        return "%d mounts with the CA from option/env/config, 4 refused" \
            % len(ok)


@test
def tls_insecure(binary):
    """(c) -o insecure mounts the server whose certificate is not trusted,
    logs a warning, and works end to end."""
    with Case(binary, "insecure") as c:
        opts = "endpoint=%s,insecure" % https()
        round_trip(c, "x.h5", 2, opts)
        for m in c.mounts:
            with open(m.log) as f:
                T.check("warning: objstore: s3: TLS certificates are not "
                        "verified (insecure)" in f.read(),
                        "no insecure warning in %s" % m.log)
        log_has_no_secret(c)
        return "untrusted server mounted with a warning"


def addressing(binary, name, scheme, seed):
    """Writes a file with virtual-hosted addressing and reads it with
    path-style, then the other way round, on one server; RGW's access log
    shows the bucket in the host name (path /PREFIX/...) for the one, in
    the path (/BUCKET/PREFIX/...) for the other."""
    with Case(binary, name) as c:
        ca = ",ca_bundle=" + SRV.ca if scheme == "https" else ""
        port = SRV.https if scheme == "https" else SRV.http
        virt = "endpoint=%s://%s:%d,addressing=virtual%s" % (
            scheme, DNS_NAME, port, ca)
        path = "endpoint=%s://%s:%d,addressing=path%s" % (
            scheme, DNS_NAME, port, ca)
        pfx = re.escape(c.store.name)
        bkt = re.escape(SRV.bucket)
        put_v = r'"PUT /%s/\.cloudh5/c/v\.h5/' % pfx
        put_p = r'"PUT /%s/%s/\.cloudh5/c/p\.h5/' % (bkt, pfx)

        off = SRV.log_size()
        round_trip(c, "v.h5", seed, virt, path)
        lines = SRV.access_lines(off, put_v)
        T.check(any(re.search(put_v, ln) for ln in lines),
                "no virtual-hosted PUT (%s) in the RGW log (%d new lines)"
                % (put_v, len(lines)))
        T.check(any(re.search(r'"GET /%s/%s/' % (bkt, pfx), ln)
                    for ln in lines),
                "the path-style mount's GETs are not in the RGW log")

        off = SRV.log_size()
        round_trip(c, "p.h5", seed + 1, path, virt)
        lines = SRV.access_lines(off, put_p)
        T.check(any(re.search(put_p, ln) for ln in lines),
                "no path-style PUT (%s) in the RGW log" % put_p)
        T.check(any(re.search(r'"GET /%s/' % pfx, ln) for ln in lines),
                "the virtual-hosted mount's GETs are not in the RGW log")
        # (404s are expected: lookups of files not yet written.)
        bad = [ln for ln in lines if re.search(pfx, ln) and
               re.search(r'HTTP/1\.1" (400|403|5\d\d) ', ln)]
        T.check(not bad, "RGW refused requests: %s" % bad[:3])
        log_has_no_secret(c)


@test
def virtual_addressing_http(binary):
    """Virtual-hosted addressing against RGW (rgw_dns_name s3.localhost):
    a full write/read round trip, and path-style on the same server reads
    what it wrote (and the other way round)."""
    addressing(binary, "virt-http", "http", 3)
    with Case(binary, "virt-neg") as c:
        # The bucket really goes into the host name: with an IP address
        # endpoint there is no such host.
        c.failed_mount("endpoint=%s,addressing=virtual" % http(),
                       [r"Could not resolve host: %s\.127\.0\.0\.1"
                        % re.escape(SRV.bucket)])
    return "virtual <-> path round trips over http"


@test
def virtual_addressing_https(binary):
    """The same over verified https: the certificate's *.s3.localhost
    names BUCKET.s3.localhost."""
    addressing(binary, "virt-https", "https", 5)
    return "virtual <-> path round trips over verified https"


@test
def use_tls_and_endpoint_scheme(binary):
    """AWS_USE_TLS (s3conf.c, README): a scheme-less endpoint is https
    unless AWS_USE_TLS is false; an endpoint whose scheme contradicts a
    set AWS_USE_TLS is refused before any request; a value that is not a
    truth value is refused."""
    with Case(binary, "usetls") as c:
        n = 0

        def mounts(opts, **env):
            m = c.mount(opts, **env)
            try:
                os.listdir(m.path())
            finally:
                m.stop()
            return 1
        # scheme-less: https by default (an untrusted certificate proves
        # it), https with AWS_USE_TLS=true, http with false.
        c.failed_mount("endpoint=127.0.0.1:%d" % SRV.https,
                       [r"no answer from https://127\.0\.0\.1:%d: SSL "
                        r"certificate problem" % SRV.https])
        n += mounts("endpoint=%s:%d,ca_bundle=%s"
                    % (DNS_NAME, SRV.https, SRV.ca))
        n += mounts("endpoint=%s:%d,ca_bundle=%s"
                    % (DNS_NAME, SRV.https, SRV.ca), AWS_USE_TLS="true")
        n += mounts("endpoint=127.0.0.1:%d" % SRV.http, AWS_USE_TLS="false")
        c.failed_mount("endpoint=127.0.0.1:%d" % SRV.http,
                       [r"wrong version number"], AWS_USE_TLS="true")
        # From the environment as well.
        n += mounts("ca_bundle=" + SRV.ca,
                    AWS_ENDPOINT_URL="127.0.0.1:%d" % SRV.https)
        n += mounts("", AWS_ENDPOINT_URL_S3="127.0.0.1:%d" % SRV.http,
                    AWS_USE_TLS="0")
        # A scheme that agrees is fine; one that contradicts is refused.
        n += mounts("endpoint=%s" % http(), AWS_USE_TLS="false")
        n += mounts("endpoint=%s,ca_bundle=%s" % (https(), SRV.ca),
                    AWS_USE_TLS="true")
        off = SRV.log_size()
        c.failed_mount("endpoint=" + http(),
                       [r"AWS_USE_TLS=true but the endpoint is "
                        r"http://127\.0\.0\.1:%d" % SRV.http],
                       AWS_USE_TLS="true")
        c.failed_mount("ca_bundle=" + SRV.ca,
                       [r"AWS_USE_TLS=false but the endpoint is "
                        r"https://127\.0\.0\.1:%d" % SRV.https],
                       AWS_USE_TLS="false", AWS_ENDPOINT_URL=https())
        c.failed_mount("endpoint=" + http(),
                       [r"AWS_USE_TLS=maybe is not true or false"],
                       AWS_USE_TLS="maybe")
        time.sleep(1)
        lines = [ln for ln in SRV.access_lines(off)
                 if c.store.name in ln]
        T.check(not lines, "a refused configuration sent requests: %s"
                % lines[:3])
        log_has_no_secret(c)
        return "%d mounts, 5 refused" % n


def main():
    R = T.Runner("test_s3_tls")
    state = R.args.get("state-dir") or os.path.join(
        tempfile.gettempdir(), "ch5-rgw-tls")
    ports = [int(p) for p in R.args.get("ports",
                                        "7483,7484,3303,6792").split(",")]
    if len(ports) != 4:
        print("FATAL: --ports wants HTTP,HTTPS,MON2,MON1")
        sys.exit(1)
    global SRV
    SRV = Server(state, ports)
    T.run_with_server(R, SRV, TESTS)


if __name__ == "__main__":
    main()
