#!/usr/bin/env python3
"""procmon.py - memory and CPU of process trees, sampled every 100 ms.

  procmon.py OUT.json GROUP=PID[,PID...][~TEXT] [GROUP=PID...]

For each group: the peak of the summed VmRSS (and of the summed Pss, which
does not count pages shared between forked processes twice) over every
process of the trees rooted at the PIDs, and the CPU seconds (user + system)
those processes used while watched. With ~TEXT, only the processes of those
trees whose command line holds TEXT (e.g. pg=PID~walsender: PostgreSQL's
walsenders, also those that connect while watched). Stops on SIGTERM/SIGINT,
or when every root of the first group is gone; then writes OUT.json.
"""
import json
import os
import signal
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
# PROCMON_FROM_NOW=1: the tool's processes were running before: count their CPU from now
FROM_NOW = os.environ.get("PROCMON_FROM_NOW") == "1"
stop = False


def on_signal(*_):
    global stop
    stop = True


def read_stat(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read().decode(errors="replace")
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()
    # fields after the command: state ppid ... utime(14) stime(15) starttime(22)
    return int(rest[1]), int(rest[11]) + int(rest[12]), rest[19]


def rss_kb(pid, field):
    path = f"/proc/{pid}/smaps_rollup" if field == "Pss:" else f"/proc/{pid}/status"
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline_has(pid, text):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return text.encode() in f.read()
    except OSError:
        return False


def main():
    out = sys.argv[1]
    groups = []
    match = {}  # group -> the text its processes' command lines must hold
    for arg in sys.argv[2:]:
        name, pids = arg.split("=", 1)
        if "~" in pids:
            pids, match[name] = pids.split("~", 1)
        groups.append((name, [int(p) for p in pids.split(",") if p]))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    res = {g: {"peak_rss_kb": 0, "peak_pss_kb": 0, "cpu_s": 0.0, "max_procs": 0}
           for g, _ in groups}
    # (pid, starttime) -> (group, cpu ticks at first sight, last cpu ticks)
    seen = {}
    t0 = time.time()
    while not stop:
        stats = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = read_stat(int(d))
                if st:
                    stats[int(d)] = st
        children = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        alive_first = False
        for gi, (g, roots) in enumerate(groups):
            tree, todo = [], [r for r in roots if r in stats]
            if gi == 0 and todo:
                alive_first = True
            while todo:
                p = todo.pop()
                tree.append(p)
                todo.extend(children.get(p, []))
            if g in match:
                # once matched, always counted: a process title may change
                tree = [p for p in tree
                        if (g, p, stats[p][2]) in seen or cmdline_has(p, match[g])]
            rss = sum(rss_kb(p, "VmRSS:") for p in tree)
            pss = sum(rss_kb(p, "Pss:") for p in tree) if g == groups[0][0] else 0
            r = res[g]
            r["peak_rss_kb"] = max(r["peak_rss_kb"], rss)
            r["peak_pss_kb"] = max(r["peak_pss_kb"], pss)
            r["max_procs"] = max(r["max_procs"], len(tree))
            for p in tree:
                key = (g, p, stats[p][2])  # a process may be in several groups
                cpu = stats[p][1]
                if key not in seen:
                    # the tool's processes (group 0, started just before us) and
                    # any process born while watched count from zero
                    born = (gi == 0 and not FROM_NOW) or time.time() - t0 > 0.2
                    seen[key] = [g, 0 if born else cpu, cpu]
                seen[key][2] = cpu
        if not alive_first:
            break
        time.sleep(0.1)
    for g, first, last in seen.values():
        res[g]["cpu_s"] += (last - first) / TICK
    res["_seconds"] = time.time() - t0
    with open(out + ".tmp", "w") as f:
        json.dump(res, f)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
