#!/usr/bin/env python3
"""Runs hyperfine in rounds, each command once per round in a rotating order, and prints the
median and mean of each command as JSON. On a noisy machine this keeps slow drift (write-back,
other tenants) from favouring whichever command hyperfine would measure first.

usage: interleave.py ROUNDS PREPARE NAME CMD [NAME CMD ...]"""
import json, statistics, subprocess, sys, tempfile

rounds, prepare, pairs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
cmds = list(zip(pairs[0::2], pairs[1::2]))
times = {name: [] for name, _ in cmds}
for r in range(rounds):
    order = cmds[r % len(cmds):] + cmds[:r % len(cmds)]
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["hyperfine", "-N", "--style", "none", "--runs", "1", "--prepare", prepare, "--export-json", out.name]
        for name, cmd in order:
            args += ["-n", name, cmd]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        for res in json.load(open(out.name))["results"]:
            times[res["command"]].append(res["mean"] * 1000)
print(json.dumps({n: {"median_ms": statistics.median(t), "mean_ms": statistics.mean(t), "runs": len(t)} for n, t in times.items()}))
