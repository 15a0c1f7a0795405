#!/usr/bin/env python3
"""indices.py - the table of bench/run's indices scenario.

  indices.py RESULTS.tsv

Reads the "indices" lines of results.tsv (size = the number of indices N,
tool = the build: old = one slot per schema entry, new = one slot per
database) and prints, per build and N, the median (min-max over the runs)
of: the slots of the database and the walsenders seen (which design ran),
the row changes committed in the window, the CPU of the walsenders and of
the producer in ms per 1,000 changes, commit -> visible (realtime GET) p50
and p99 on bench_ix01; then per build the ratio of the medians at the
largest N to the smallest. Target: about 1 for the new build.
"""
import collections
import math
import statistics
import sys

BUILDS = {"old": "old (slot per entry)", "new": "new (slot per database)"}
COLUMNS = [  # metric, heading, format
    ("slots", "slots", "{:.0f}"),
    ("walsenders", "walsenders", "{:.0f}"),
    ("changes", "changes", "{:,.0f}"),
    ("walsender_ms_per_1k", "walsender CPU [ms/1000 changes]", "{:.1f}"),
    ("producer_ms_per_1k", "producer CPU [ms/1000 changes]", "{:.1f}"),
    ("get_p50_ms", "p50 [ms]", "{:,.0f}"),
    ("get_p99_ms", "p99 [ms]", "{:,.0f}"),
]
RATIOS = [("walsender_ms_per_1k", "walsender CPU/change"),
          ("producer_ms_per_1k", "producer CPU/change"), ("get_p99_ms", "p99")]


def fmt(f, v):
    return "never" if v == math.inf else f.format(v)


def summary(vals, f):
    if not vals:
        return "-"
    m = statistics.median(vals)
    if len(vals) == 1 or min(vals) == max(vals):
        return fmt(f, m)
    return f"{fmt(f, m)} ({fmt(f, min(vals))}–{fmt(f, max(vals))})"


def main():
    # (build, N) -> metric -> [values over the runs]
    data = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in open(sys.argv[1]):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 6 or parts[0] != "indices" or parts[5] in ("", "nan"):
            continue
        _, n, build, _, metric, value = parts
        data[(build, int(n))][metric].append(float(value))
    if not data:
        return
    builds = [b for b in BUILDS if any(k[0] == b for k in data)]
    ns = sorted({k[1] for k in data})
    runs = max(len(m.get("changes", [])) for m in data.values())
    print("\n#### indices: N indices on one database, the same write stream\n")
    print(f"Median (min–max) of {runs} run(s); CPU per 1,000 row changes committed; "
          "latency commit → realtime GET on bench_ix01.\n")
    print("| build | N | " + " | ".join(c[1] for c in COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    for b in builds:
        for n in ns:
            m = data.get((b, n))
            if m is None:
                continue
            cells = [summary(m.get(c[0], []), c[2]) for c in COLUMNS]
            late = [v for v in m.get("caught_up", []) if v == 0]
            note = f" ({len(late)} run(s) not caught up)" if late else ""
            print(f"| {BUILDS[b]}{note} | {n} | " + " | ".join(cells) + " |")
    if len(ns) < 2:
        return
    lo, hi = ns[0], ns[-1]
    print(f"\n| build | " + " | ".join(f"{r[1]} N={hi} / N={lo}" for r in RATIOS) + " |")
    print("|---|" + "---:|" * len(RATIOS))
    for b in builds:
        cells = []
        for metric, _ in RATIOS:
            a = data.get((b, lo), {}).get(metric, [])
            z = data.get((b, hi), {}).get(metric, [])
            if a and z and 0 < statistics.median(a) < math.inf:
                cells.append(fmt("{:.2f}", statistics.median(z) / statistics.median(a)))
            else:
                cells.append("-")
        print(f"| {BUILDS[b]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
