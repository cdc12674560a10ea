#!/usr/bin/python3
"""A small Azure Blob Storage REST client in pure standard-library Python.

Written from Microsoft's Azure Storage REST API documentation ("Authorize
with Shared Key", "Create a service SAS", "Create an account SAS", and the
Blob operations Create Container, Put Blob, Get Blob, Get Blob Properties,
Delete Blob, List Blobs, Copy Blob), not from cloudh5's C code, so that it
can serve two purposes:

 * the independent reference of the Shared Key string to sign and
   signature that tests/unit/test_azsign_ref.py holds objstore/azsign
   against: string_to_sign() and shared_key_signature() are pure functions;
 * the integration tests' view into an Azure store (ch5test.AzStore), and
   the tool tests/servers/azurite-up.sh creates its container with.

Services version (x-ms-version) 2021-08-06, which Azurite 3.37 accepts.

Command line (credentials from --env FILE, the KEY=VALUE file azurite-up.sh
writes, else from $AZURE_STORAGE_CONNECTION_STRING):
  azblob.py [--env FILE] mkcontainer NAME
  azblob.py [--env FILE] ls CONTAINER [PREFIX]
  azblob.py [--env FILE] probe CONTAINER
      PUT, GET, list and DELETE a blob, then check that the server refuses
      a wrong key (403 AuthenticationFailed; Azurite: AuthorizationFailure)
      and a write with a read-only SAS (403): proof that signatures are
      verified.
"""

import base64
import datetime
import email.utils
import hashlib
import hmac
import http.client
import os
import re
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

API_VERSION = "2021-08-06"

# The standard headers of the string to sign, in its order ("Authorize with
# Shared Key", Blob service, version 2009-09-19 and later).
_STD_HEADERS = ("content-encoding", "content-language", "content-length",
                "content-md5", "content-type", "date", "if-modified-since",
                "if-match", "if-none-match", "if-unmodified-since", "range")


# ------------------------------------------------------------ Shared Key

def _canonical_header_value(value):
    """CanonicalizedHeaders step 4 and 5: every run of linear white space
    (CRLF, spaces, tabs) becomes one space, except inside a quoted string,
    and the white space around the colon (leading and trailing) goes."""
    out = []
    quoted = False
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == '"':
            quoted = not quoted
            out.append(c)
            i += 1
        elif c in " \t\r\n" and not quoted:
            while i < n and value[i] in " \t\r\n":
                i += 1
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out).strip(" \t\r\n")


def canonicalized_headers(headers):
    """The CanonicalizedHeaders string: the x-ms-* headers, names
    lower-cased, sorted by name, each "name:value\\n". `headers` is a list
    of (name, value) pairs or a dict."""
    items = headers.items() if isinstance(headers, dict) else headers
    ms = {}
    for name, value in items:
        lname = name.strip().lower()
        if lname.startswith("x-ms-"):
            if lname in ms:
                raise ValueError("header %s given twice" % lname)
            ms[lname] = _canonical_header_value(value)
    return "".join("%s:%s\n" % (k, ms[k]) for k in sorted(ms))


def canonicalized_resource(account, path, query_pairs):
    """The CanonicalizedResource string (version 2009-09-19 and later):
    "/" ACCOUNT, the encoded URI path as sent, then for each query parameter
    (names lower-cased, sorted) "\\n" name ":" its decoded values, sorted
    and joined with ','. `query_pairs` are decoded (name, value) pairs."""
    params = {}
    for name, value in query_pairs:
        params.setdefault(name.lower(), []).append(value)
    out = "/" + account + path
    for name in sorted(params):
        out += "\n%s:%s" % (name, ",".join(sorted(params[name])))
    return out


def string_to_sign(account, method, path, query_pairs, headers):
    """The Shared Key string to sign of a Blob service request.

    method: "GET"...; path: the URI path as sent, percent-encoded,
    starting with '/' ("/devstoreaccount1/c/a%20b" with Azurite's
    path-style URLs); query_pairs: decoded (name, value) pairs; headers:
    (name, value) pairs or a dict of every header sent (names in any case).
    Content-Length 0 is signed as an empty line (version 2015-02-21 and
    later)."""
    items = headers.items() if isinstance(headers, dict) else headers
    std = {}
    for name, value in items:
        lname = name.strip().lower()
        if lname in _STD_HEADERS:
            std[lname] = value
    if std.get("content-length") == "0":
        std["content-length"] = ""
    lines = [method.upper()] + [std.get(h, "") for h in _STD_HEADERS]
    return ("\n".join(lines) + "\n" + canonicalized_headers(headers)
            + canonicalized_resource(account, path, query_pairs))


def _hmac_b64(key_b64, text):
    key = base64.b64decode(key_b64, validate=True)
    return base64.b64encode(hmac.new(key, text.encode("utf-8"),
                                     hashlib.sha256).digest()).decode()


def shared_key_signature(account, key_b64, method, path, query_pairs,
                         headers):
    """Base64(HMAC-SHA256(Base64Decode(key), UTF-8(string to sign)))."""
    return _hmac_b64(key_b64, string_to_sign(account, method, path,
                                             query_pairs, headers))


def authorization(account, key_b64, method, path, query_pairs, headers):
    """The Authorization header value "SharedKey ACCOUNT:SIGNATURE"."""
    return "SharedKey %s:%s" % (account, shared_key_signature(
        account, key_b64, method, path, query_pairs, headers))


# ------------------------------------------------------------------- SAS

def sas_time(t):
    """A SAS time (ISO 8601 UTC, whole seconds) from a datetime, a Unix
    time or a number of seconds from now (negative: in the past)."""
    if isinstance(t, datetime.datetime):
        dt = t.astimezone(datetime.timezone.utc)
    elif isinstance(t, (int, float)) and t < 10 ** 8:
        dt = datetime.datetime.now(datetime.timezone.utc) + \
            datetime.timedelta(seconds=t)
    else:
        dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _token(fields):
    return "&".join("%s=%s" % (k, urllib.parse.quote(v, safe=""))
                    for k, v in fields if v)


def service_sas(account, key_b64, container, blob=None, permissions="rl",
                expiry=3600, start=None, protocol="", ip="", identifier="",
                version=API_VERSION):
    """A service SAS token (no leading '?') for the container (sr=c) or,
    with `blob`, the blob (sr=b), signed with the account key ("Create a
    service SAS", version 2020-12-06 and later). permissions: e.g. "rl"
    (read, list) in the documented order racwdxltmeop; expiry and start:
    see sas_time."""
    sr = "b" if blob is not None else "c"
    resource = "/blob/%s/%s" % (account, container)
    if blob is not None:
        resource += "/" + blob
    st = sas_time(start) if start is not None else ""
    se = sas_time(expiry)
    sts = "\n".join([
        permissions, st, se, resource, identifier, ip, protocol, version,
        sr,
        "",     # signedSnapshotTime
        "",     # signedEncryptionScope
        "", "", "", "", ""])    # rscc, rscd, rsce, rscl, rsct
    sig = _hmac_b64(key_b64, sts)
    return _token([("sv", version), ("sr", sr), ("sp", permissions),
                   ("st", st), ("se", se), ("sip", ip), ("spr", protocol),
                   ("si", identifier), ("sig", sig)])


def account_sas(account, key_b64, permissions="rl", services="b",
                resource_types="sco", expiry=3600, start=None, protocol="",
                ip="", version=API_VERSION):
    """An account SAS token (no leading '?') ("Create an account SAS",
    version 2020-12-06 and later: the string to sign ends with the
    encryption scope and a newline). permissions: e.g. "rl"; services:
    "b" (blob); resource_types: any of s(ervice) c(ontainer) o(bject)."""
    st = sas_time(start) if start is not None else ""
    se = sas_time(expiry)
    sts = "\n".join([account, permissions, services, resource_types, st, se,
                     ip, protocol, version, ""]) + "\n"
    sig = _hmac_b64(key_b64, sts)
    return _token([("sv", version), ("ss", services),
                   ("srt", resource_types), ("sp", permissions),
                   ("st", st), ("se", se), ("sip", ip), ("spr", protocol),
                   ("sig", sig)])


# ------------------------------------------------------------ settings

DEV_ACCOUNT = "devstoreaccount1"
# Azurite's development account key, published by Microsoft.
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
           "K1SZFPTOtr/KBHBeksoGMGw==")


def parse_connection_string(s):
    """{name: value} of "Name=Value;..." (names as written; a value keeps
    its '=' characters)."""
    out = {}
    for part in s.split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError("connection string part %r is not Name=Value"
                             % part[:40])
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def read_env_file(path):
    """The KEY=VALUE lines of an env file (quotes around values dropped)."""
    conf = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                conf[k.strip()] = v.strip().strip("'\"")
    return conf


class AzError(Exception):
    """An HTTP error answer: status, the x-ms-error-code (or the XML
    <Code>) and the message."""

    def __init__(self, method, path, status, code, message):
        self.status = status
        self.code = code
        self.message = message
        super().__init__("%s %s: %d %s: %s" % (method, path, status, code,
                                              message))


def _quote_name(name):
    """A container or blob name as a URL path: every byte but the
    unreserved characters and '/' percent-encoded (UTF-8)."""
    return urllib.parse.quote(name, safe="/-_.~")


class Client:
    """Requests to one account's blob service, authorized with the account
    key (Shared Key) or, without one, a SAS token. Thread-safe: each thread
    keeps its own kept-alive connection."""

    def __init__(self, endpoint, account, key=None, sas=None, timeout=60):
        u = urllib.parse.urlsplit(endpoint)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("bad blob endpoint %r" % endpoint)
        self.endpoint = endpoint.rstrip("/")
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.base = u.path.rstrip("/")   # "/devstoreaccount1" on Azurite
        self.account = account
        self.key = key
        self.sas = sas.lstrip("?") if sas else None
        if not key and not self.sas:
            raise ValueError("neither an account key nor a SAS token")
        self.timeout = timeout
        self._local = threading.local()

    @classmethod
    def from_connection_string(cls, s, **kw):
        c = {k.lower(): v for k, v in parse_connection_string(s).items()}
        if c.get("usedevelopmentstorage", "").lower() == "true":
            c.setdefault("accountname", DEV_ACCOUNT)
            c.setdefault("accountkey", DEV_KEY)
            c.setdefault("blobendpoint",
                         "http://127.0.0.1:10000/" + DEV_ACCOUNT)
        account = c.get("accountname")
        endpoint = c.get("blobendpoint")
        if not endpoint:
            if not account:
                raise ValueError("the connection string names neither "
                                 "AccountName nor BlobEndpoint")
            endpoint = "%s://%s.blob.%s" % (
                c.get("defaultendpointsprotocol", "https"), account,
                c.get("endpointsuffix", "core.windows.net"))
        if not account:
            raise ValueError("the connection string has no AccountName")
        return cls(endpoint, account, key=c.get("accountkey"),
                   sas=c.get("sharedaccesssignature"), **kw)

    @classmethod
    def from_env_file(cls, path, **kw):
        """From the env file of azurite-up.sh (its connection string, else
        AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, AZURE_BLOB_ENDPOINT)."""
        conf = read_env_file(path)
        if conf.get("AZURE_STORAGE_CONNECTION_STRING"):
            return cls.from_connection_string(
                conf["AZURE_STORAGE_CONNECTION_STRING"], **kw)
        return cls(conf["AZURE_BLOB_ENDPOINT"], conf["AZURE_STORAGE_ACCOUNT"],
                   key=conf["AZURE_STORAGE_KEY"], **kw)

    def with_credentials(self, key=None, sas=None):
        """The same endpoint with other credentials."""
        return Client(self.endpoint, self.account, key=key, sas=sas,
                      timeout=self.timeout)

    # ---------------------------------------------------------- requests

    def path(self, container, blob=None):
        """The URI path (encoded) of a container or blob."""
        p = self.base + "/" + _quote_name(container)
        if blob is not None:
            p += "/" + _quote_name(blob)
        return p

    def url(self, container, blob=None):
        return "%s://%s:%d%s" % (self.scheme, self.host, self.port,
                                 self.path(container, blob))

    def _conn(self, fresh=False):
        c = getattr(self._local, "conn", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            cls = (http.client.HTTPSConnection if self.scheme == "https"
                   else http.client.HTTPConnection)
            c = cls(self.host, self.port, timeout=self.timeout)
            self._local.conn = c
        return c

    def request(self, method, container=None, blob=None, query=(),
                headers=None, body=None, ok=(200, 201, 202, 206)):
        """Sends one request; returns (status, {lower-case header: value},
        body bytes). A status outside `ok` raises AzError. Connection
        errors and 500/503 are retried a few times."""
        path = (self.path(container, blob) if container is not None
                else (self.base or "/"))
        query = list(query)
        hdrs = {"x-ms-version": API_VERSION,
                "x-ms-date": email.utils.formatdate(usegmt=True)}
        for k, v in (headers or {}).items():
            hdrs[k] = v
        if body is not None or method in ("PUT", "POST"):
            body = body or b""
            hdrs["Content-Length"] = str(len(body))
        pairs = list(query)
        if self.key:
            hdrs["Authorization"] = authorization(
                self.account, self.key, method, path, query, hdrs)
        else:
            pairs += urllib.parse.parse_qsl(self.sas, keep_blank_values=True)
        target = path
        if pairs:
            target += "?" + urllib.parse.urlencode(
                pairs, quote_via=urllib.parse.quote, safe="")
        last = None
        for attempt in range(5):
            try:
                conn = self._conn(fresh=attempt > 0)
                conn.request(method, target, body=body, headers=hdrs)
                r = conn.getresponse()
                data = r.read()
            except (http.client.HTTPException, ConnectionError,
                    TimeoutError, OSError) as e:
                last = e
                self._conn(fresh=True)
                time.sleep(0.1 * (attempt + 1))
                continue
            rh = {k.lower(): v for k, v in r.getheaders()}
            if r.getheader("connection", "").lower() == "close":
                self._conn(fresh=True)
            if r.status in (500, 503) and attempt < 4:
                time.sleep(0.2 * (attempt + 1))
                last = AzError(method, target, r.status, "", "")
                continue
            if r.status not in ok:
                code = rh.get("x-ms-error-code", "")
                msg = ""
                m = re.search(rb"<Message>(.*?)</Message>", data, re.S)
                if m:
                    msg = m.group(1).decode(errors="replace").split("\n")[0]
                if not code:
                    m = re.search(rb"<Code>(.*?)</Code>", data)
                    code = m.group(1).decode() if m else ""
                raise AzError(method, path, r.status, code, msg)
            return r.status, rh, data
        raise ConnectionError("%s %s: no answer after 5 tries: %r"
                              % (method, path, last))

    # -------------------------------------------------------- operations

    def create_container(self, name, exist_ok=True):
        """Create Container; an existing one is fine with exist_ok."""
        ok = (201, 409) if exist_ok else (201,)
        st, _, _ = self.request("PUT", name, query=[("restype", "container")],
                                ok=ok)
        return st == 201

    def delete_container(self, name, missing_ok=True):
        ok = (202, 404) if missing_ok else (202,)
        self.request("DELETE", name, query=[("restype", "container")], ok=ok)

    def put_blob(self, container, name, data, content_type=None,
                 if_none_match=None, if_match=None, headers=None):
        """Put Blob (a block blob); returns its ETag."""
        h = {"x-ms-blob-type": "BlockBlob"}
        if content_type:
            h["Content-Type"] = content_type
        if if_none_match:
            h["If-None-Match"] = if_none_match
        if if_match:
            h["If-Match"] = if_match
        h.update(headers or {})
        _, rh, _ = self.request("PUT", container, name, headers=h,
                                body=bytes(data), ok=(201,))
        return rh.get("etag")

    def get_blob(self, container, name, start=None, end=None):
        """Get Blob: the whole blob, or bytes start..end (inclusive; end
        None: to the end) with x-ms-range."""
        h = {}
        if start is not None:
            h["x-ms-range"] = "bytes=%d-%s" % (
                start, "" if end is None else "%d" % end)
        _, _, data = self.request("GET", container, name, headers=h,
                                  ok=(200, 206))
        return data

    def get_blob_properties(self, container, name):
        """Get Blob Properties: the answer's headers (lower-case names), or
        None if there is no such blob."""
        st, rh, _ = self.request("HEAD", container, name, ok=(200, 404))
        return rh if st == 200 else None

    def delete_blob(self, container, name, missing_ok=False):
        ok = (202, 404) if missing_ok else (202,)
        st, _, _ = self.request("DELETE", container, name, ok=ok)
        return st == 202

    def list_blobs_page(self, container, prefix="", delimiter=None,
                        marker=None, maxresults=None):
        """One List Blobs answer: ([(name, properties dict)], [prefixes],
        next marker or None)."""
        q = [("restype", "container"), ("comp", "list")]
        if prefix:
            q.append(("prefix", prefix))
        if delimiter:
            q.append(("delimiter", delimiter))
        if marker:
            q.append(("marker", marker))
        if maxresults:
            q.append(("maxresults", str(maxresults)))
        _, _, data = self.request("GET", container, query=q)
        root = ET.fromstring(data)
        blobs, prefixes = [], []

        def name_of(el):
            n = el.find("Name")
            text = n.text or ""
            if n.get("Encoded") == "true":
                text = urllib.parse.unquote(text)
            return text
        for b in root.iterfind("Blobs/Blob"):
            pe = b.find("Properties")
            props = {} if pe is None else {p.tag: p.text for p in pe}
            blobs.append((name_of(b), props))
        for p in root.iterfind("Blobs/BlobPrefix"):
            prefixes.append(name_of(p))
        nm = root.findtext("NextMarker")
        return blobs, prefixes, (nm or None)

    def list_blobs(self, container, prefix="", delimiter=None,
                   maxresults=None):
        """Every page of List Blobs: (names, prefixes)."""
        names, prefixes, marker = [], [], None
        while True:
            b, p, marker = self.list_blobs_page(container, prefix, delimiter,
                                                marker, maxresults)
            names += [n for n, _ in b]
            prefixes += p
            if not marker:
                return names, prefixes

    def copy_blob(self, container, name, src_container, src_name,
                  timeout=60):
        """Copy Blob from a blob of the same account, waiting while the
        copy is pending; returns the final x-ms-copy-status."""
        _, rh, _ = self.request(
            "PUT", container, name,
            headers={"x-ms-copy-source": self.url(src_container, src_name)},
            ok=(202,))
        status = rh.get("x-ms-copy-status", "")
        deadline = time.monotonic() + timeout
        while status == "pending" and time.monotonic() < deadline:
            time.sleep(0.05)
            p = self.get_blob_properties(container, name) or {}
            status = p.get("x-ms-copy-status", "")
        if status != "success":
            raise AzError("PUT", self.path(container, name), 0, "CopyFailed",
                          "x-ms-copy-status %r" % status)
        return status


# ------------------------------------------------------------ command line

def _client_from_args(env_file):
    if env_file:
        return Client.from_env_file(env_file)
    s = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if not s:
        raise SystemExit("azblob.py: give --env FILE or set "
                         "AZURE_STORAGE_CONNECTION_STRING")
    return Client.from_connection_string(s)


# The error codes of a 403 for a bad Shared Key signature: Azure's, and
# the one Azurite 3.37 sends (with Azure's message).
AUTH_FAILED = ("AuthenticationFailed", "AuthorizationFailure")


def probe(c, container):
    """Signed requests work; a wrong key and a write with a read-only SAS
    are refused with 403. Returns a summary line; raises on a problem."""
    name = ".azblob-probe/a b+c=&%d é" % os.getpid()
    c.put_blob(container, name, b"probe")
    if c.get_blob(container, name) != b"probe":
        raise RuntimeError("probe blob read back differently")
    names, _ = c.list_blobs(container, prefix=".azblob-probe/")
    if name not in names:
        raise RuntimeError("probe blob not listed: %r" % names)
    wrong = base64.b64encode(b"\x01" * 64).decode()
    try:
        c.with_credentials(key=wrong).get_blob(container, name)
        raise RuntimeError("a request signed with a wrong key was served")
    except AzError as e:
        # Azure answers AuthenticationFailed; Azurite 3.37 the code
        # AuthorizationFailure with AuthenticationFailed's message.
        if e.status != 403 or e.code not in AUTH_FAILED:
            raise RuntimeError("wrong key: expected 403 AuthenticationFailed,"
                               " got %s" % e)
        wrong_code = e.code
    ro = c.with_credentials(sas=service_sas(c.account, c.key, container,
                                            permissions="rl", expiry=600))
    if ro.get_blob(container, name) != b"probe":
        raise RuntimeError("a read with a read-only SAS failed")
    try:
        ro.put_blob(container, name, b"x")
        raise RuntimeError("a write with a read-only SAS was served")
    except AzError as e:
        if e.status != 403:
            raise RuntimeError("read-only SAS write: expected 403, got %s"
                               % e)
        sas_code = e.code
    c.delete_blob(container, name)
    return ("signed PUT/GET/list/DELETE ok; wrong key: 403 %s; read-only "
            "SAS write: 403 %s" % (wrong_code, sas_code))


def main(argv):
    env_file = None
    args = list(argv)
    if len(args) >= 2 and args[0] == "--env":
        env_file = args[1]
        args = args[2:]
    if not args or args[0] in ("-h", "--help"):
        print("Command line" + __doc__.split("Command line")[1].rstrip())
        return 0 if args else 2
    c = _client_from_args(env_file)
    cmd = args[0]
    if cmd == "mkcontainer" and len(args) == 2:
        made = c.create_container(args[1])
        print("container %s %s" % (args[1], "created" if made
                                    else "already there"))
    elif cmd == "ls" and len(args) in (2, 3):
        names, _ = c.list_blobs(args[1], args[2] if len(args) == 3 else "")
        for n in names:
            print(n)
    elif cmd == "probe" and len(args) == 2:
        print(probe(c, args[1]))
    else:
        raise SystemExit("azblob.py: bad command %r (see --help)"
                         % " ".join(args))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (AzError, OSError, ValueError, RuntimeError) as e:
        print("azblob.py: %s" % e, file=sys.stderr)
        sys.exit(1)
