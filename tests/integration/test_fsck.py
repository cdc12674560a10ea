#!/usr/bin/python3
"""cloudh5 fsck: a commit that fails midway leaves orphans and a kept
stage; fsck reports both, --repair within the grace period deletes
nothing, --repair past it deletes exactly the orphans, after which the
store holds exactly the committed version's objects, which still read
back byte for byte.  A missing object is reported and never "repaired".

usage: test_fsck.py --mount-bin build/fs/mount.cloudh5
"""

import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch5test as T  # noqa: E402

import h5py  # noqa: E402


def write_h5(p, seed):
    r = np.random.default_rng(seed)
    with h5py.File(p, "w") as f:
        f.create_dataset("d", data=r.random((256, 256)), chunks=(64, 64))


def fsck(binary, ws, *args):
    tool = os.path.join(os.path.dirname(binary), "cloudh5")
    r = subprocess.run([tool, "fsck", ws.store.url] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=ws.store.env())
    return r.returncode, r.stdout.decode(errors="replace")


def lines(out, word):
    return [ln for ln in out.splitlines() if ln.startswith(word + " ")]


def data_keys(ws):
    return set(T.store_keys(ws.store, ".cloudh5/c/"))


def orphans_and_repair(binary):
    with T.Workspace(binary, name="fsck") as ws:
        ws.start()
        write_h5(ws.l("x.h5"), 1)
        write_h5(ws.m("x.h5"), 1)
        ws.stop()
        committed = data_keys(ws)
        rc, out = fsck(binary, ws)
        T.check(rc == 0, "fsck of a clean store: %d\n%s" % (rc, out))

        # PUTs 4.. fail: three objects of the new version land, no more.
        ws.mount.opts = "fault=ops=put:fail_nth=4:fail_count=1000"
        ws.start()
        code = ("import sys; sys.path.insert(0, %r); import test_fsck as t; "
                "t.write_h5(%r, 2)" % (os.path.dirname(
                    os.path.abspath(__file__)), ws.m("x.h5")))
        r = subprocess.run([sys.executable, "-c", code],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        T.check(r.returncode != 0, "the failing commit reported success")
        ws.stop()
        spool = os.path.join(ws.mount.workdir, "spool%d" % ws.mount.n)
        leftovers = data_keys(ws) - committed
        T.check(len(leftovers) == 3, "expected 3 orphans, store has %s"
                % sorted(leftovers))

        rc, out = fsck(binary, ws, "--spool", spool)
        T.check(rc == 1, "fsck exit %d with orphans\n%s" % (rc, out))
        found = {ln.split()[1] for ln in lines(out, "orphan")}
        T.check(found == leftovers, "fsck orphans %s, expected %s"
                % (sorted(found), sorted(leftovers)))
        staged = lines(out, "staged")
        T.check(len(staged) == 1 and staged[0].endswith(" x.h5 (committing)"),
                "fsck did not list the kept stage of x.h5:\n%s" % out)

        rc, out = fsck(binary, ws, "--repair")
        T.check(data_keys(ws) == committed | leftovers,
                "--repair deleted objects younger than the grace period")
        rc, out = fsck(binary, ws, "--repair", "--grace", "0")
        T.check(rc == 0, "fsck --repair exit %d\n%s" % (rc, out))
        T.check(data_keys(ws) == committed, "after --repair the store "
                "holds %s, expected the committed objects"
                % sorted(data_keys(ws) ^ committed))
        stage_path = staged[0].split()[1].rstrip(":")
        T.check(os.path.exists(stage_path), "--repair touched the staged "
                "file %s" % stage_path)
        ws.mount.opts = None
        ws.start()
        T.assert_same_bytes(ws.l("x.h5"), ws.m("x.h5"))
        ws.stop()

        # A missing object is damage to report, not an orphan to delete.
        victim = sorted(committed)[0]
        ws.store.delete(victim)
        rc, out = fsck(binary, ws, "--repair", "--grace", "0")
        T.check(rc == 1 and any(victim in ln for ln in lines(out, "missing")),
                "fsck did not report the missing object:\n%s" % out)
        T.check(ws.store.exists("x.h5"),
                "--repair removed a manifest")
        return "%d orphans found and repaired" % len(leftovers)


if __name__ == "__main__":
    T.run_tests("test_fsck", [orphans_and_repair])
