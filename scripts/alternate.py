#!/usr/bin/env python3
"""Times commands against each other in rounds: each round runs every command once, in the
opposite order every other round, after a round to warm up. A shared machine drifts within
minutes; hyperfine runs one command's runs after another's, so the drift falls on one of them,
here on all alike. Prints each command's median wall time and CPU time (user + system), and
writes them as JSON (hyperfine's shape: results[i].median, .min, .max, in seconds) with --json.

    scripts/alternate.py [--runs N] [--json FILE] COMMAND...
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--json")
    ap.add_argument("commands", nargs="+")
    args = ap.parse_args()
    walls = {c: [] for c in args.commands}
    cpus = {c: [] for c in args.commands}
    for r in range(args.runs + 1):
        order = args.commands if r % 2 == 0 else args.commands[::-1]
        for c in order:
            start = time.perf_counter()
            p = subprocess.Popen(
                shlex.split(c), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            _, status, usage = os.wait4(p.pid, 0)
            wall = time.perf_counter() - start
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"failed: {c}")
            if r > 0:
                walls[c].append(wall)
                cpus[c].append(usage.ru_utime + usage.ru_stime)
    results = []
    for c in args.commands:
        med, cpu = statistics.median(walls[c]), statistics.median(cpus[c])
        print(f"{med * 1000:8.1f} ms (min {min(walls[c]) * 1000:.1f}, cpu {cpu * 1000:.1f})  {c}")
        results.append({"command": c, "median": med, "min": min(walls[c]),
                        "max": max(walls[c]), "cpu": cpu, "times": walls[c]})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results}, f, indent=1)


if __name__ == "__main__":
    main()
