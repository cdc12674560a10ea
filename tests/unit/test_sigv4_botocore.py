#!/usr/bin/python3
"""Cross-check objstore/sigv4 against botocore's S3SigV4Auth (Debian's
python3-botocore, an independent SigV4 implementation) on a few hundred
generated S3 requests: methods, odd keys (spaces, '+', '=', '&', '%', '//',
UTF-8, '~'), query strings (list-type, prefix, continuation tokens,
uploadId, empty values), extra headers (ranges, conditions, folded
whitespace, repeated names), signed and UNSIGNED-PAYLOAD bodies, session
tokens, regions.

usage: test_sigv4_botocore.py SIGV4_TOOL [N]
"""

import datetime
import hashlib
import random
import subprocess
import sys
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def hx(s):
    b = s.encode() if isinstance(s, str) else s
    return b.hex() if b else "-"


KEY_ALPHABET = (list("abcXYZ019-_.~/ +=&%?#!$'()*,;:@[]") +
                ["é", "ሴ", "日本", "\u00a0", "//", "./", "../"])


def rand_key(r):
    n = r.randint(1, 12)
    return "".join(r.choice(KEY_ALPHABET) for _ in range(n)).lstrip("/") or "k"


def rand_text(r, alphabet="abcXYZ019 -_.~/+=&%é:,"):
    return "".join(r.choice(alphabet) for _ in range(r.randint(0, 10)))


def one(r, i):
    method = r.choice(["GET", "PUT", "HEAD", "DELETE", "POST"])
    bucket = r.choice(["test-bucket", "b", "my.bucket-1"])
    key = rand_key(r)
    region = r.choice(["us-east-1", "eu-west-3", "default"])
    path = "/%s/%s" % (bucket, key)
    params = []
    for _ in range(r.choice([0, 0, 1, 2, 4])):
        name = r.choice(["list-type", "prefix", "delimiter",
                         "continuation-token", "max-keys", "uploadId",
                         "partNumber", "delete", "x-id", rand_text(r)])
        if not name:
            name = "n"
        params.append((name, rand_text(r)))
    host = "127.0.0.1:7480" if r.random() < 0.5 else "s3.amazonaws.com"
    body = b""
    if method in ("PUT", "POST"):
        body = bytes(r.getrandbits(8) for _ in range(r.randint(0, 64)))
    headers = {}
    if r.random() < 0.4:
        headers["Range"] = "bytes=%d-%d" % (r.randint(0, 99),
                                           r.randint(100, 9999))
    if r.random() < 0.3:
        headers["If-Match"] = '"%032x"' % r.getrandbits(128)
    if r.random() < 0.2:
        headers["If-None-Match"] = "*"
    if r.random() < 0.3:
        headers["Content-Type"] = "application/octet-stream"
    if r.random() < 0.3:
        headers["X-Amz-Meta-Note"] = "  a  b\t c  "
    creds = Credentials("AKID%04d" % i, "secret/%d+key=" % r.getrandbits(32),
                        "tok%08x" % r.getrandbits(32)
                        if r.random() < 0.3 else None)
    url = "http://%s%s" % (host, quote(path, safe="/~"))
    req = AWSRequest(method=method, url=url, data=body,
                     params=params or None, headers=headers)
    unsigned = r.random() < 0.3
    if unsigned:
        req.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    auth = S3SigV4Auth(creds, "s3", region)
    ts = datetime.datetime(2026, 1 + r.randint(0, 11), 1 + r.randint(0, 27),
                           r.randint(0, 23), r.randint(0, 59),
                           r.randint(0, 59))
    # botocore reads the clock (datetime.datetime.utcnow) in add_auth.
    import botocore.auth as ba
    real = ba.datetime.datetime

    class Fixed(real):
        @classmethod
        def utcnow(cls):
            return ts
    ba.datetime.datetime = Fixed
    try:
        auth.add_auth(req)
    finally:
        ba.datetime.datetime = real
    want = req.headers["Authorization"]
    signed = want.split("SignedHeaders=")[1].split(",")[0].split(";")
    amz_date = req.headers["X-Amz-Date"]
    payload = req.headers["X-Amz-Content-SHA256"]
    if not unsigned:
        assert payload == hashlib.sha256(body).hexdigest(), payload
    hdrs = []
    for name in signed:
        if name == "host":
            hdrs.append(("host", host))
            continue
        for k, v in req.headers.items():
            if k.lower() == name:
                hdrs.append((k, v))
    fields = [hx(method), hx(path), hx(region), hx("s3"),
              hx(creds.access_key), hx(creds.secret_key), hx(amz_date),
              hx(payload), str(len(params))]
    for k, v in params:
        fields += [hx(k), hx(v)]
    fields.append(str(len(hdrs)))
    for k, v in hdrs:
        fields += [hx(k), hx(v)]
    return " ".join(fields), want


def main():
    tool = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    r = random.Random(20261122)
    cases = [one(r, i) for i in range(n)]
    p = subprocess.run([tool], input="\n".join(c[0] for c in cases) + "\n",
                       stdout=subprocess.PIPE, text=True, check=True)
    got = p.stdout.splitlines()
    bad = 0
    for (line, want), g in zip(cases, got):
        if g != want:
            bad += 1
            if bad <= 5:
                print("MISMATCH\n  in:   %s\n  want: %s\n  got:  %s"
                      % (line, want, g))
    if len(got) != len(cases):
        print("tool answered %d of %d" % (len(got), len(cases)))
        return 1
    print("%d requests, %d mismatches" % (len(cases), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
