#!/usr/bin/python3
"""One Markdown table of cold runs for the README: per scenario, the median
seconds (and MB moved) of each peer and cloudh5's ratio to the best peer,
for one or more link profiles (each a results.jsonl written by bench.py).

usage: summary.py LABEL=STATE/results.jsonl [LABEL=...] > table.md
"""
import json
import statistics as st
import sys

PEERS = ("s3fs", "rclone-full", "cloudh5")
ROWS = [
    ("h5dump_H_big", "cold `h5dump -H` big.h5 (100 MB)"),
    ("h5dump_H_many", "cold `h5dump -H` many.h5 (200 datasets)"),
    ("h5ls_r_many", "cold `h5ls -r` many.h5"),
    ("read_full", "cold read, 64 MiB chunked dataset"),
    ("read_full_gz", "cold read, same gzip'd"),
    ("random_huge", "100 random 64×64 hyperslabs, 1 GiB file"),
    ("nc_point", "netCDF4 time series at one point"),
    ("write64", "new 64 MiB file, until visible in the store"),
    ("rplus", "h5py r+ one-chunk edit, until committed"),
    ("ls_l", "cold `ls -l`, 1,000 HDF5 files"),
]


def med(v):
    v = [x for x in v if x is not None]
    return st.median(v) if v else None


def cells(runs, peer, scen):
    rs = [r for r in runs if r["peer"] == peer and r["scenario"] == scen
          and r["mode"] == "cold" and "error" not in r]
    if not rs:
        return None, None
    key = "visible_s" if scen in ("write64", "rplus") else "secs"
    secs = med([r.get(key) for r in rs])
    moved = med([(r.get("link_down") or 0) + (r.get("link_up") or 0) for r in rs])
    return secs, moved


def main():
    for arg in sys.argv[1:]:
        label, path = arg.split("=", 1)
        runs = [json.loads(l) for l in open(path) if l.strip()]
        runs = [r for r in runs if r.get("kind") != "meta"]
        print(f"**{label}** (cold runs, medians of 3; seconds, MB moved both ways in brackets)")
        print()
        print("| scenario | " + " | ".join(PEERS) + " | cloudh5 / best peer |")
        print("|---|" + "---|" * (len(PEERS) + 1))
        for scen, desc in ROWS:
            vals = {p: cells(runs, p, scen) for p in PEERS}
            if all(v[0] is None for v in vals.values()):
                continue
            txt = []
            for p in PEERS:
                s, m = vals[p]
                txt.append("–" if s is None else f"{s:.2f} s [{m / 1e6:.1f}]")
            peers = [vals[p][0] for p in PEERS if p != "cloudh5" and vals[p][0] is not None]
            c = vals["cloudh5"][0]
            ratio = f"{c / min(peers):.2f}" if c is not None and peers else "–"
            print(f"| {desc} | " + " | ".join(txt) + f" | {ratio} |")
        print()


if __name__ == "__main__":
    main()
