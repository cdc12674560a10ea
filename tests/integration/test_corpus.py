#!/usr/bin/python3
"""The third-party corpus (../shared/corpus, see its README and INDEX.tsv)
through the mount.

Every file listed in INDEX.tsv is copied onto the mount keeping the folder
structure (external links, virtual datasets and external raw data point at
siblings). After a remount each file must be byte-identical to the original
(and match the sha256 in the index), h5dump run from the file's own folder
must give the same exit status, output and errors as on the original
(h5dump legitimately fails on the files whose filter is unavailable; the
comparison still holds), and the store must hold a manifest plus one object
per stored chunk (plain files: one plain object).

The corpus is used in place and never copied into the project. When it is
missing the script says so loudly and exits 77 (CTest: skipped).

usage: test_corpus.py --mount-bin build/fs/mount.cloudh5 --corpus DIR [-k X]
"""

import csv
import hashlib
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402


def read_index(corpus):
    with open(os.path.join(corpus, "INDEX.tsv"), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main():
    R = T.Runner("test_corpus")
    corpus = R.args.get("corpus") or os.environ.get("CH5_CORPUS")
    if not corpus or not os.path.isfile(os.path.join(corpus, "INDEX.tsv")):
        bar = "!" * 72
        print(bar)
        print("!!! CORPUS NOT FOUND at %r" % corpus)
        print("!!! The third-party HDF5 corpus test did NOT run. Put the "
              "corpus at\n!!! ../shared/corpus (next to the source tree) "
              "or pass --corpus DIR.")
        print(bar)
        sys.exit(T.SKIP)
    corpus = os.path.abspath(corpus)
    rows = read_index(corpus)
    T.check(len(rows) >= 100, "INDEX.tsv lists only %d files" % len(rows))
    # Copy everything (the filter -k only selects what is checked: linked
    # siblings must be there).
    with T.Workspace(R.binary, name="corpus") as ws:
        ws.start()

        def copy_all():
            for row in rows:
                rel = row["file"]
                dst = ws.m(rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(os.path.join(corpus, rel), dst)
            return "%d files" % len(rows)
        if R.step("copy onto the mount", copy_all) is None:
            R.finish()
        R.step("unmount", ws.stop)
        R.step("mount again", ws.start)
        for row in rows:
            rel = row["file"]
            if not R.wanted(rel):
                continue

            def verify(row=row, rel=rel):
                orig = os.path.join(corpus, rel)
                T.check(sha256(orig) == row["sha256"],
                        "corpus file %s does not match INDEX.tsv" % rel)
                T.assert_same_bytes(orig, ws.m(rel))
                T.check(sha256(ws.m(rel)) == row["sha256"],
                        "sha256 of %s on the mount differs" % rel)
                if row["h5dump_ok"] == "n/a":
                    return T.assert_plain_object(ws.store, rel, orig)
                rc = T.assert_h5dump_equal(orig, ws.m(rel), expect_ok=False)
                want_ok = row["h5dump_full_data"] == "ok"
                T.check((rc == 0) == want_ok,
                        "h5dump exit status %d, INDEX.tsv says %s"
                        % (rc, row["h5dump_full_data"]))
                T.assert_h5dump_equal(orig, ws.m(rel), args=["-H", "-p"])
                info = T.assert_store_layout(ws.store, rel, orig)
                return "h5dump rc %d; %s" % (rc, info)
            R.run(rel, verify)
        if not T.FAKE and not R.only:
            def listing():
                want = sorted({r["file"].split("/")[0] for r in rows})
                got = sorted(os.listdir(ws.m()))
                T.check(got == want, "root of the mount: %s, expected %s"
                        % (got, want))
            R.run("readdir", listing)
    R.finish()


if __name__ == "__main__":
    try:
        main()
    finally:
        T.cleanup_all()
