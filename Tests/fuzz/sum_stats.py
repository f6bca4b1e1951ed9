#!/usr/bin/env python3
"""Sums the per-entry-point counts that fuzz_losskit.c appends to $LK_FUZZ_STATS (one line per
process; a fork-mode run has one per job), and those of the processes that ended without
writing it (a libFuzzer timeout, a kill, or still running: STATS_FILE.PID, their last
checkpoint), and prints a table: calls made, calls that returned LK_OK, calls skipped (sizes too
large to allocate, or known crashes with LK_FUZZ_SKIP_KNOWN).
Usage: python3 Tests/fuzz/sum_stats.py STATS_FILE"""
import glob
import re
import sys


def main():
    totals = {}
    lines = 0
    paths = [sys.argv[1]] + sorted(p for p in glob.glob(glob.escape(sys.argv[1]) + ".*")
                                   if p.rsplit(".", 1)[1].isdigit())
    for path in paths:
        try:
            f = open(path)
        except FileNotFoundError:  # a checkpoint its process just replaced by its exit line
            continue
        with f:
            for line in f:
                if not line.startswith("losskit-fuzz stats:"):
                    continue
                lines += 1
                for name, calls, ok, skipped in re.findall(r" (\S+)=(\d+)/(\d+)/(\d+)", line):
                    t = totals.setdefault(name, [0, 0, 0])
                    t[0] += int(calls)
                    t[1] += int(ok)
                    t[2] += int(skipped)
    print(f"{'entry point':34} {'calls':>12} {'LK_OK':>12} {'skipped':>10}   ({lines} processes)")
    for name, (calls, ok, skipped) in totals.items():
        print(f"{name:34} {calls:12d} {ok:12d} {skipped:10d}")
    s = [sum(t[i] for t in totals.values()) for i in range(3)]
    print(f"{'total':34} {s[0]:12d} {s[1]:12d} {s[2]:10d}")


if __name__ == "__main__":
    main()
