#!/usr/bin/python3
"""Crash-consistent commits: the daemon is killed (SIGKILL) at each step of
a commit, stopped there by the fault-injecting backend (-o fault=...:
stop_nth=K blocks the K-th call of a kind forever):

  put1      the 1st PUT: no object of the new version has landed;
  putmid    a PUT in the middle: some chunk objects landed;
  putlast   the last PUT, the manifest's: every chunk object landed, the
            manifest (the commit point) did not;
  del1      the 1st DELETE: the manifest landed, no superseded object was
            deleted yet;
  dellast   the last DELETE: all but one superseded object deleted.

A backend with batch deletes (S3: DeleteObjects, up to 1000 keys a
request, OST_DELETE_BATCH in ost.h) deletes a commit's superseded objects
in fewer requests than objects: there a DELETE is a batch, del1 stops
before any superseded object is deleted and dellast before the last batch's
(with 64 superseded chunks, one batch: dellast is del1).

Two edits are crashed: a full rewrite of a chunked file (h5py 'w') and an
r+ edit of three of its chunks (an incremental commit).  Most runs use one
store worker (-o threads=1), so the K-th PUT or DELETE blocks the queue and
exactly K-1 of them landed: the state the store is left in is known and
checked exactly.  The par_* runs use the default pool, where the other
uploads go on around the blocked one.

After each kill:
  (a) a mount with a fresh spool reads the file back byte for byte as the
      old version (killed before the manifest) or as the new one (after);
      `cloudh5 fsck` reports exactly the objects the crash left behind as
      orphans (exit 1) or nothing (exit 0); `--repair --grace 0` deletes
      them, after which fsck exits 0, the store holds exactly the objects
      of the committed version, and the file still reads back;
  (b) (*_oldspool) a mount on the killed daemon's spool commits the kept
      stage ("committed x.h5"): the file reads back as the new version and,
      after fsck --repair --grace 0, the store holds exactly its objects.
      After del1 the stage's commit had landed already: that mount must
      leave the new version in place (whether it recommits, keeps or drops
      the stage is reported in the note, not checked).

The expected old and new files are written by the same h5py code on local
disk.  Which objects a committed version consists of comes from a clean
commit of the same edit (calibration, also the source of the numbers of
PUTs and DELETEs of a commit), with the random commit tag abstracted.

usage: test_crash.py --mount-bin build/fs/mount.cloudh5 [-k NAME]...
"""

import atexit
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ch5test as T  # noqa: E402

import h5py  # noqa: E402

P = "x.h5"
DATA = ".cloudh5/c/"
STOP_WAIT = 20  # seconds a stop point may take to be reached
DELETE_BATCH = 1000  # keys per batch DELETE, where the backend has them

# ------------------------------------------------------------ the files


def write_v1(p):
    """The committed version every crash starts from: 8x8 chunks."""
    with h5py.File(p, "w") as f:
        f.create_dataset("d", data=np.random.default_rng(1).random(
            (512, 512)), chunks=(64, 64))
        f.attrs["version"] = 1


def rewrite(p):
    """Full rewrite ('w'): every chunk has new bytes."""
    with h5py.File(p, "w") as f:
        f.create_dataset("d", data=np.random.default_rng(2).random(
            (512, 512)), chunks=(64, 64))
        f.attrs["version"] = 2


def rplus(p):
    """r+ edit of three chunks: (0,0), (1,4) and (7,7)."""
    with h5py.File(p, "r+") as f:
        d = f["d"]
        d[0:10, 0:10] = -1.0
        d[100:110, 300:310] = -2.0
        d[500:512, 500:512] = -3.0


EDITS = {"rewrite": rewrite, "rplus": rplus}


def run_edit(name, path):
    """Entry point of the writer child."""
    EDITS[name](path)


# ------------------------------------------------------------ helpers

def cloudh5_tool(binary):
    return os.path.join(os.path.dirname(binary), "cloudh5")


def fsck(binary, store, *args):
    r = subprocess.run([cloudh5_tool(binary), "fsck", store.url]
                       + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120,
                       env=store.env())
    return r.returncode, r.stdout.decode(errors="replace")


def fsck_keys(out, word):
    return {ln.split()[1] for ln in out.splitlines()
            if ln.startswith(word + " ")}


def data_keys(store):
    return set(T.store_keys(store, DATA))


def tag_of(key):
    # .cloudh5/c/x.h5/TAG/d/i.j
    return key.split("/")[3]


def normalize(keys, old_tags):
    """Keys with every tag not in old_tags written as NEW, and the set of
    such new tags."""
    out, new = set(), set()
    for k in keys:
        parts = k.split("/")
        if parts[3] not in old_tags:
            new.add(parts[3])
            parts[3] = "NEW"
        out.add("/".join(parts))
    return out, new


def read(p):
    with open(p, "rb") as f:
        return f.read()


def stats(mnt):
    text = os.getxattr(mnt, "user.cloudh5.stats").decode()
    out = {}
    for ln in text.splitlines():
        k, _, v = ln.partition(" ")
        if v.isdigit():
            out[k] = int(v)
    return out


def writer(ws, edit):
    """Runs the edit on the mount in a child: its close blocks while the
    daemon is stopped, and libhdf5 may crash when the close fails."""
    code = ("import sys; sys.path.insert(0, %r); import test_crash as t; "
            "t.run_edit(%r, %r)" % (HERE, edit, ws.m(P)))
    return subprocess.Popen([sys.executable, "-c", code],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def log_text(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def spool_of(ws):
    return os.path.join(ws.mount.workdir, "spool%d" % ws.mount.n)


def copy_store(src, ws):
    T.copy_store(src, ws.store)


# ------------------------------------------------------------ calibration

_TMPL = {}
_CAL = {}


def template(binary):
    """A store holding x.h5 = write_v1, committed by a clean mount, and the
    local twins of the old and new versions.  Made once per run."""
    if _TMPL:
        return _TMPL
    base = os.environ.get("CH5_TMPDIR") or None
    root = tempfile.mkdtemp(prefix="ch5-crash-tmpl-", dir=base)
    atexit.register(shutil.rmtree, root, True)
    local = os.path.join(root, "twins")
    os.makedirs(local)
    twins = {"old": os.path.join(local, "old.h5")}
    write_v1(twins["old"])
    for name, fn in EDITS.items():
        p = os.path.join(local, name + ".h5")
        shutil.copyfile(twins["old"], p)
        fn(p)
        twins[name] = p
    T.check(read(twins["old"]) != read(twins["rewrite"]) and
            read(twins["old"]) != read(twins["rplus"]),
            "an edit does not change the file's bytes")
    with T.Workspace(binary, name="crash-tmpl") as ws:
        ws.start()
        write_v1(ws.m(P))
        ws.remount()
        T.assert_same_bytes(twins["old"], ws.m(P))
        ws.stop()
        T.assert_store_layout(ws.store, P, twins["old"])
        # The template store outlives this workspace: a copy (a directory
        # in root, or another prefix of the bucket), gone at exit.
        store = T.new_store(os.path.join(root, "store"))
        atexit.register(store.destroy)
        T.copy_store(ws.store, store)
    keys = data_keys(store)
    tags = {tag_of(k) for k in keys}
    T.check(len(keys) == 64 and len(tags) == 1,
            "the first version is %d objects under tags %s, expected 64 "
            "under one tag" % (len(keys), sorted(tags)))
    rc, out = fsck(binary, store)
    T.check(rc == 0, "fsck of the clean store: exit %d\n%s" % (rc, out))
    _TMPL.update(root=root, store=store, twins=twins, keys=keys, tags=tags,
                 manifest=store.get(P))
    return _TMPL


def calibrate(binary, edit):
    """A clean commit of `edit` over the template: how many PUTs and
    DELETEs the daemon makes from its start to the end of the commit, and
    which objects (tag abstracted) the new version consists of."""
    if edit in _CAL:
        return _CAL[edit]
    tm = template(binary)
    with T.Workspace(binary, name="crash-cal-" + edit) as ws:
        copy_store(tm["store"], ws)
        ws.start()
        s0 = stats(ws.m())
        w = writer(ws, edit)
        out = w.communicate(timeout=300)[0].decode(errors="replace")
        T.check(w.returncode == 0, "the %s writer failed on a clean mount:"
                "\n%s" % (edit, out[-2000:]))
        # The last RELEASE is asynchronous; wait until nothing is in
        # flight and the counters stand still.
        deadline = time.monotonic() + 10
        s1 = stats(ws.m())
        while time.monotonic() < deadline:
            time.sleep(0.2)
            s2 = stats(ws.m())
            if s2 == s1 and s2.get("requests.in_flight") == 0:
                break
            s1 = s2
        ws.remount()
        T.assert_same_bytes(tm["twins"][edit], ws.m(P))
        ws.stop()
        T.assert_store_layout(ws.store, P, tm["twins"][edit])
        norm, new_tags = normalize(data_keys(ws.store), tm["tags"])
        T.check(len(new_tags) == 1, "a clean commit left objects under "
                "tags %s" % sorted(new_tags))
        rc, out = fsck(binary, ws.store)
        T.check(rc == 0, "fsck after a clean commit: exit %d\n%s"
                % (rc, out))
    cal = {
        "put0": s0["requests.put"], "del0": s0["requests.delete"],
        "puts": s1["requests.put"] - s0["requests.put"],
        "dels": s1["requests.delete"] - s0["requests.delete"],
        "commits": s1["commits"] - s0["commits"],
        "norm": norm,
        "uploaded": sum(1 for k in norm if k.split("/")[3] == "NEW"),
    }
    # Old objects the new version does not keep: what the commit deletes.
    cal["superseded"] = len(tm["keys"]) - (len(norm) - cal["uploaded"])
    # One DELETE per object, or batches (S3's DeleteObjects).
    cal["per_delete"] = 1 if cal["dels"] == cal["superseded"] \
        else DELETE_BATCH
    T.check(cal["dels"] == -(-cal["superseded"] // cal["per_delete"]),
            "the %s commit deleted %d superseded objects in %d DELETEs: "
            "neither one per object nor batches of %d"
            % (edit, cal["superseded"], cal["dels"], DELETE_BATCH))
    T.check(cal["commits"] == 1, "the %s edit made %d commits, expected 1"
            % (edit, cal["commits"]))
    # One PUT per new object, then the manifest's.
    T.check(cal["puts"] == cal["uploaded"] + 1,
            "the %s commit made %d PUTs for %d new objects"
            % (edit, cal["puts"], cal["uploaded"]))
    T.check(cal["puts"] >= 4, "the %s commit made only %d PUTs: too few "
            "for a stop in the middle" % (edit, cal["puts"]))
    T.check(cal["dels"] >= 1, "the %s commit deleted nothing" % edit)
    _CAL[edit] = cal
    return cal


# ------------------------------------------------------------ one crash

def wait_for_stop(ws, n, w):
    """Waits until the daemon logs that call n stopped."""
    line = "objstore: fault: call %d stops here (stop_nth)" % n
    deadline = time.monotonic() + STOP_WAIT
    while True:
        if line in log_text(ws.mount.log):
            return
        if ws.mount.proc.poll() is not None:
            raise T.Fail("the daemon exited (status %d) before call %d "
                         "stopped" % (ws.mount.proc.returncode, n))
        if w.poll() is not None:
            out = w.stdout.read().decode(errors="replace")
            raise T.Fail("the writer ended (status %d) before call %d "
                         "stopped: the stop point was never reached\n%s"
                         % (w.returncode, n, out[-1500:]))
        if time.monotonic() > deadline:
            raise T.Fail("call %d did not stop within %d s: the stop point "
                         "was never reached" % (n, STOP_WAIT))
        time.sleep(0.05)


def kill_daemon(ws, w):
    """SIGKILL the daemon, then the writer, then detach the mount; leaves
    the Mount ready for start()."""
    m = ws.mount
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait()
    if w.poll() is None:
        w.kill()
    w.communicate()
    m._kill()  # the daemon is gone: fusermount3 -uz, forget the process
    T.check(not T._is_mounted(ws.mntdir), "the mount point is still mounted "
            "after fusermount3 -uz")
    text = log_text(m.log)
    for mark in T.SANITIZER_MARKS:
        T.check(mark not in text, "the killed daemon's log contains %r "
                "(%s)" % (mark, m.log))


def stage_records(spool):
    out = []
    for p in glob.glob(os.path.join(spool, "*.stage.key")):
        out.append(read(p).decode("utf-8", "replace"))
    return out


def final_check(binary, ws, twin, expect_keys, expect_norm, old_tags,
                orphans, what):
    """fsck reports exactly `orphans`, --repair --grace 0 deletes them, and
    the store then holds exactly the committed version's objects: the set
    expect_keys (old version) or, tag abstracted, expect_norm (new)."""
    rc, out = fsck(binary, ws.store)
    found = fsck_keys(out, "orphan")
    T.check(found == orphans, "%s: fsck reports orphans %s, the crash left "
            "%s\n%s" % (what, T._sample(found), T._sample(orphans), out))
    T.check(not fsck_keys(out, "missing"), "%s: fsck reports missing "
            "objects\n%s" % (what, out))
    T.check(rc == (1 if orphans else 0), "%s: fsck exit %d with %d orphans"
            "\n%s" % (what, rc, len(orphans), out))
    rc, out = fsck(binary, ws.store, "--repair", "--grace", "0")
    T.check(rc == 0, "%s: fsck --repair --grace 0 exit %d\n%s"
            % (what, rc, out))
    T.check(fsck_keys(out, "deleted-orphan") == orphans, "%s: --repair "
            "deleted %s, expected %s" % (what, T._sample(
                fsck_keys(out, "deleted-orphan")), T._sample(orphans)))
    keys = data_keys(ws.store)
    if expect_keys is not None:
        T.check(keys == expect_keys, "%s: after repair the store differs "
                "from the old version's objects: extra %s, missing %s"
                % (what, T._sample(keys - expect_keys),
                   T._sample(expect_keys - keys)))
    else:
        norm, new = normalize(keys, old_tags)
        T.check(len(new) == 1 and norm == expect_norm, "%s: after repair "
                "the store is not exactly the new version's objects "
                "(new tags %s): extra %s, missing %s"
                % (what, sorted(new), T._sample(norm - expect_norm),
                   T._sample(expect_norm - norm)))
    T.assert_store_layout(ws.store, P, twin)
    rc, out = fsck(binary, ws.store)
    T.check(rc == 0 and " 0 orphans" in out, "%s: fsck after --repair: "
            "exit %d\n%s" % (what, rc, out))
    # What fsck left still reads back.
    ws.mount.opts = None
    ws.start()
    T.assert_same_bytes(twin, ws.m(P))
    ws.stop()


def crash(binary, edit, op, which, oldspool=False, parallel=False):
    """Kill the daemon at the `which` ('first', 'mid', 'last') PUT or
    DELETE (op 'put' or 'del') of the commit of `edit`, then check (a) or,
    with oldspool, (b)."""
    tm = template(binary)
    cal = calibrate(binary, edit)
    total = cal["puts"] if op == "put" else cal["dels"]
    k = {"first": 1, "mid": (total + 1) // 2, "last": total}[which]
    nth = (cal["put0"] if op == "put" else cal["del0"]) + k
    old_keys, old_tags = tm["keys"], tm["tags"]
    twin_old, twin_new = tm["twins"]["old"], tm["twins"][edit]
    with T.Workspace(binary, name="crash-%s-%s%s" % (edit, op, k)) as ws:
        copy_store(tm["store"], ws)
        ws.mount.opts = "fault=ops=%s:stop_nth=%d" % (op, nth)
        if not parallel:
            ws.mount.opts += ",threads=1"
        ws.start()
        w = writer(ws, edit)
        wait_for_stop(ws, nth, w)
        if parallel:
            time.sleep(0.3)  # let the other uploads go on meanwhile
        kill_daemon(ws, w)
        killed_spool = spool_of(ws)

        # ---- what the crash left in the store
        after = data_keys(ws.store)
        landed = after - old_keys
        manifest = ws.store.get(P)
        recs = stage_records(killed_spool)
        T.check(len(recs) == 1 and "\nstate committing\n" in recs[0] and
                recs[0].endswith("\nkey " + P), "the killed daemon's spool "
                "does not record one committing stage of %s: %s" % (P, recs))
        if op == "put":
            state = "old"
            T.check(manifest == tm["manifest"], "the manifest changed "
                    "although the daemon was killed at PUT %d of %d"
                    % (k, total))
            T.check(old_keys <= after, "objects of the old version are "
                    "gone before the commit point: %s"
                    % T._sample(old_keys - after))
            _, new_tags = normalize(landed, old_tags)
            T.check(len(new_tags) <= 1, "new objects under several tags: "
                    "%s" % sorted(new_tags))
            if parallel and k == total:
                # The manifest's PUT is sent once every upload is done.
                T.check(len(landed) == total - 1, "stopped at the "
                        "manifest's PUT (%d), %d of %d new objects landed"
                        % (k, len(landed), total - 1))
            elif parallel:
                # The blocked PUT never lands, nor the manifest.
                T.check(len(landed) <= total - 2, "%d new objects landed "
                        "with PUT %d of %d blocked" % (len(landed), k, total))
            else:
                T.check(len(landed) == k - 1, "with one store worker "
                        "stopped at PUT %d, %d new objects landed, expected "
                        "%d: %s" % (k, len(landed), k - 1,
                                    T._sample(landed)))
            orphans = set(landed)
        else:
            state = "new"
            T.check(manifest != tm["manifest"], "the manifest did not "
                    "change although the daemon was killed at DELETE %d"
                    % k)
            norm, new_tags = normalize(landed, old_tags)
            T.check(len(new_tags) == 1, "new objects under tags %s"
                    % sorted(new_tags))
            committed_tag, = new_tags
            new_keys = {x for x in after
                        if normalize([x], old_tags)[0] <= cal["norm"]}
            T.check(normalize(new_keys, old_tags)[0] == cal["norm"],
                    "the new version's objects are not all in the store "
                    "after its manifest landed: missing %s"
                    % T._sample(cal["norm"] - normalize(new_keys,
                                                        old_tags)[0]))
            orphans = after - new_keys
            gone = old_keys - after
            if not parallel:
                # DELETEs 1..k-1 landed: k-1 objects, or k-1 batches.
                want_gone = min(cal["superseded"],
                                (k - 1) * cal["per_delete"])
                want_left = cal["superseded"] - want_gone
                T.check(len(gone) == want_gone and len(orphans) == want_left,
                        "with one store worker stopped at DELETE %d of %d "
                        "(%d object(s) a DELETE), %d superseded objects "
                        "were deleted and %d left, expected %d and %d"
                        % (k, total, cal["per_delete"], len(gone),
                           len(orphans), want_gone, want_left))

        if not oldspool:
            # ---- (a) a fresh spool: the store alone decides
            ws.mount.opts = None
            ws.start()
            T.assert_same_bytes(twin_old if state == "old" else twin_new,
                                ws.m(P))
            ws.stop()
            T.check(data_keys(ws.store) == after, "a mount that only read "
                    "the file changed the store")
            rc, out = fsck(binary, ws.store, "--spool", killed_spool)
            staged = [ln for ln in out.splitlines()
                      if ln.startswith("staged ")]
            T.check(rc == 1 and len(staged) == 1 and
                    staged[0].endswith(" %s (committing)" % P),
                    "fsck --spool does not list the killed daemon's stage "
                    "(exit %d):\n%s" % (rc, out))
            final_check(binary, ws, twin_old if state == "old" else twin_new,
                        old_keys if state == "old" else None, cal["norm"],
                        old_tags, orphans, "fresh spool")
            return "%s%d/%d: reads back the %s version; %d orphans found " \
                   "and repaired" % (op.upper(), k, total, state,
                                     len(orphans))

        # ---- (b) the killed daemon's spool: its stage is committed at mount
        ws.mount.opts = "spool_dir=" + killed_spool
        ws.start()
        log = log_text(ws.mount.log)
        recommitted = "committed %s, kept in" % P in log
        kept = glob.glob(os.path.join(killed_spool, "*.stage"))
        if op == "del":
            # The commit had landed: the store already holds the new
            # version, and the stage must not replace it with anything else.
            T.assert_same_bytes(twin_new, ws.m(P))
            ws.stop()
            rc, out = fsck(binary, ws.store)
            found = fsck_keys(out, "orphan")
            T.check(orphans <= found, "fsck misses orphans the crash left: "
                    "%s\n%s" % (T._sample(orphans - found), out))
            extra = found - orphans
            bad = {x for x in extra
                   if tag_of(x) in old_tags or tag_of(x) == committed_tag}
            T.check(not bad, "fsck reports objects of the committed "
                    "versions as orphans: %s" % T._sample(bad))
            # The mount sees that the commit landed: the stage goes, and
            # no second commit uploads anything.
            T.check(not kept, "the landed commit's stage is still kept: %s"
                    % kept)
            T.check(extra == set(), "the mount tried to commit the landed "
                    "stage again: %d extra orphans" % len(extra))
            final_check(binary, ws, twin_new, None, cal["norm"], old_tags,
                        found, "old spool")
            return ("DEL%d/%d, old spool: reads back the new version; the "
                    "stage was %s; %d orphans (%d left by the crash, %d by "
                    "the mount's attempt to recommit) found and repaired"
                    % (k, total, "recommitted" if recommitted else
                       "kept" if kept else "dropped", len(found),
                       len(orphans), len(extra)))
        T.check(recommitted, "the mount on the old spool did not commit the "
                "kept stage:\n" + log[-1500:])
        T.check(glob.glob(os.path.join(killed_spool, "*.stage*")) == [],
                "the stage is still in the spool after its commit: %s"
                % os.listdir(killed_spool))
        T.assert_same_bytes(twin_new, ws.m(P))
        ws.stop()
        # The recovery's commit replaced the version the stage began from
        # and deleted what that one had and the new one lacks; what the
        # killed commit left is orphaned.
        now = data_keys(ws.store)
        norm, new_tags = normalize(now - orphans, old_tags)
        T.check(norm == cal["norm"] and len(new_tags) == 1, "after the "
                "recovery commit the store is not the new version plus the "
                "crash's leftovers: extra %s, missing %s (tags %s)"
                % (T._sample(norm - cal["norm"]),
                   T._sample(cal["norm"] - norm), sorted(new_tags)))
        final_check(binary, ws, twin_new, None, cal["norm"], old_tags,
                    orphans, "old spool")
        return "%s%d/%d: the old spool's stage committed at mount, reads " \
               "back the new version; %d orphans found and repaired" % (
                   op.upper(), k, total, len(orphans))


# ------------------------------------------------------------ the tests

TESTS = []


def case(name, *a, **kw):
    def fn(binary):
        return crash(binary, *a, **kw)
    fn.__name__ = name
    TESTS.append(fn)


for _e in EDITS:
    case(_e + "_put1", _e, "put", "first")
    case(_e + "_putmid", _e, "put", "mid")
    case(_e + "_putmid_oldspool", _e, "put", "mid", oldspool=True)
    case(_e + "_putlast", _e, "put", "last")
    case(_e + "_putlast_oldspool", _e, "put", "last", oldspool=True)
    case(_e + "_del1", _e, "del", "first")
    case(_e + "_dellast", _e, "del", "last")
    case(_e + "_par_putmid", _e, "put", "mid", parallel=True)
    case(_e + "_par_putlast", _e, "put", "last", parallel=True)
    case(_e + "_del1_oldspool", _e, "del", "first", oldspool=True)


if __name__ == "__main__":
    T.run_tests("test_crash", TESTS)
