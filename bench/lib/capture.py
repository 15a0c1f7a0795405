#!/usr/bin/env python3
"""capture.py - the figures of one change-capture run.

  capture.py LATENCY.json TXNS CHANGES_PER_TXN

LATENCY.json is latency.py's output; TXNS the transactions pgbench
committed. Prints "metric value" lines:
  changes          every change committed (pgbench's and the samples')
  offered_per_s    changes / the stream's duration
  sustained_per_s  changes / (time from the stream's start until the last
                   change was visible) when the tool drained the stream; when
                   it did not within the time-out, the share of samples
                   visible by then times the changes, over the elapsed time
  drain_s          from the last commit (the marker) to its visibility (get)
  visible_pct      share of the samples visible by GET at the end
  get_pNN_ms / search_pNN_ms  commit -> visible by realtime GET / by search;
                   inf when some samples never became visible
"""
import json
import math
import sys


def pct(vals, q):
    if not vals:
        return float("nan")
    vals = sorted(vals)
    k = (len(vals) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    if vals[hi] == math.inf:
        return math.inf if k > lo or vals[lo] == math.inf else vals[lo]
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def main():
    d = json.load(open(sys.argv[1]))
    txns, per = int(sys.argv[2]), int(sys.argv[3])
    s = d["samples"]
    changes = txns * per + len(s)
    dur = d["t_stop"] - d["t_start"]
    out = {"changes": changes, "offered_per_s": changes / dur, "samples": len(s)}
    marker = s[-1]
    visible = [x for x in s if x["get"] is not None]
    out["visible_pct"] = 100.0 * len(visible) / len(s)
    if marker["get"] is not None:
        out["drain_s"] = marker["get"] - marker["commit"]
        out["sustained_per_s"] = changes / (marker["get"] - d["t_start"])
    else:
        out["drain_s"] = math.inf
        out["sustained_per_s"] = changes * len(visible) / len(s) / (d["t_end"] - d["t_start"])
    for kind in ("get", "search"):
        lat = [(x[kind] - x["commit"]) * 1000 if x[kind] is not None else math.inf for x in s]
        for q in (50, 95, 99):
            out[f"{kind}_p{q}_ms"] = pct(lat, q / 100)
    for k, v in out.items():
        print(k, v)


if __name__ == "__main__":
    main()
