#!/usr/bin/env python3
"""stats.py - summarise bench/run's results.tsv as markdown tables.

  stats.py RESULTS.tsv

Input lines: scenario, size, tool, run, metric, value (tab-separated).
For each scenario, size and metric: the median and min-max of each tool
(ours, pgsync) over its runs, the ratio of the medians ours/theirs, and the
median (min-max) of the per-run ratios (run i of ours against run i of
PGSync, measured side by side). "limit" rows are the machine's own rates.
The indices scenario (two builds of ours, no PGSync) is indices.py's.
"""
import collections
import statistics
import sys

UNITS = {
    "wall_s": ("s", "{:.2f}"), "docs_per_s": ("docs/s", "{:,.0f}"),
    "peak_rss_mib": ("MiB", "{:.0f}"), "peak_pss_mib": ("MiB", "{:.0f}"),
    "tool_cpu_s": ("s", "{:.1f}"), "pg_cpu_s": ("s", "{:.1f}"), "engine_cpu_s": ("s", "{:.1f}"),
    "redis_cpu_s": ("s", "{:.1f}"),
    "offered_per_s": ("changes/s", "{:,.0f}"), "sustained_per_s": ("changes/s", "{:,.0f}"),
    "drain_s": ("s", "{:.1f}"), "get_p50_ms": ("ms", "{:,.0f}"), "get_p95_ms": ("ms", "{:,.0f}"),
    "get_p99_ms": ("ms", "{:,.0f}"), "search_p50_ms": ("ms", "{:,.0f}"),
    "search_p95_ms": ("ms", "{:,.0f}"), "search_p99_ms": ("ms", "{:,.0f}"),
    "visible_pct": ("%", "{:.1f}"), "samples": ("", "{:.0f}"), "docs": ("", "{:,.0f}"),
    "done_pct": ("%", "{:.1f}"), "changes": ("", "{:,.0f}"),
    "x_bulk_rate": ("x engine _bulk", "{:.2f}"), "docquery_docs_per_s": ("docs/s", "{:,.0f}"),
    "rows_streamed": ("", "{:,.0f}"), "rows_applied": ("", "{:,.0f}"),
    "docs_written": ("", "{:,.0f}"),
    "docquery_s": ("s", "{:.2f}"), "bulk_s": ("s", "{:.2f}"), "gen_s": ("s", "{:.0f}"),
    "commit_s": ("s", "{:.2f}"), "engine_s": ("s", "{:.2f}"), "engine_writes": ("", "{:,.0f}"),
    "writes_per_doc": ("writes/doc", "{:.2f}"), "x_engine_time": ("x engine time", "{:.2f}"),
    "producer_cpu_s": ("s", "{:.1f}"), "consumer_cpu_s": ("s", "{:.1f}"),
}


def fmt(metric, v):
    if v == float("inf"):
        return "never"
    unit, f = UNITS.get(metric, ("", "{:.3g}"))
    return f.format(v)


def summary(vals, metric):
    if not vals:
        return "-"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt(metric, m)
    return f"{fmt(metric, m)} ({fmt(metric, min(vals))}–{fmt(metric, max(vals))})"


def main():
    data = collections.defaultdict(lambda: collections.defaultdict(dict))
    order = []
    for line in open(sys.argv[1]):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 6 or parts[5] in ("", "nan"):
            continue
        scen, size, tool, run, metric, value = parts
        if scen == "indices":
            continue
        key = (scen, size, metric)
        if key not in order:
            order.append(key)
        data[key][tool][int(run)] = float(value)
    scen_seen = []
    for scen, size, metric in order:
        if (scen, size) not in scen_seen:
            scen_seen.append((scen, size))
    for scen, size in scen_seen:
        print(f"\n#### {scen}, {int(size):,} books\n")
        print("| metric | pgsync-c | PGSync 7.3.0 | ours/theirs (medians) | ours/theirs per run | machine limit |")
        print("|---|---|---|---|---|---|")
        for s2, z2, metric in order:
            if (s2, z2) != (scen, size):
                continue
            d = data[(s2, z2, metric)]
            ours = list(d.get("ours", {}).values())
            theirs = list(d.get("pgsync", {}).values())
            limit = list(d.get("limit", {}).values())
            ratio = per_run = "-"
            if ours and theirs and 0 < statistics.median(theirs) < float("inf"):
                ratio = f"{statistics.median(ours) / statistics.median(theirs):.2f}"
                pr = [d["ours"][r] / d["pgsync"][r] for r in d["ours"]
                      if r in d.get("pgsync", {}) and 0 < d["pgsync"][r] < float("inf")]
                if pr:
                    per_run = (f"{statistics.median(pr):.2f} ({min(pr):.2f}–{max(pr):.2f})"
                               if len(pr) > 1 else f"{pr[0]:.2f}")
            unit = UNITS.get(metric, ("", ""))[0]
            name = f"{metric} [{unit}]" if unit else metric
            print(f"| {name} | {summary(ours, metric)} | {summary(theirs, metric)} | {ratio} | "
                  f"{per_run} | {summary(limit, metric)} |")


if __name__ == "__main__":
    main()
