#!/usr/bin/env python3
"""Runs hyperfine in rounds, each command once per round in a freshly shuffled order, and prints
the median, mean, minimum and quartiles of each command as JSON. On a noisy machine this keeps slow drift
(write-back, other tenants) from favouring whichever command would be measured first, and the
shuffle keeps any command from always following the same predecessor (whose after-effects, such
as the file system's deferred work, it would otherwise always pay).

PREPARE runs before every timed command, outside the timing. The seed is fixed (BENCH_SEED,
default 1) so a run can be repeated, and printed in the JSON.

usage: interleave.py ROUNDS PREPARE NAME CMD [NAME CMD ...]"""
import json, os, random, statistics, subprocess, sys, tempfile

rounds, prepare, pairs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
cmds = list(zip(pairs[0::2], pairs[1::2]))
seed = int(os.environ.get("BENCH_SEED", "1"))
rng = random.Random(seed)
times = {name: [] for name, _ in cmds}
for r in range(rounds):
    order = cmds[:]
    rng.shuffle(order)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["hyperfine", "-N", "--style", "none", "--runs", "1", "--prepare", prepare, "--export-json", out.name]
        for name, cmd in order:
            args += ["-n", name, cmd]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        for res in json.load(open(out.name))["results"]:
            times[res["command"]].append(res["mean"] * 1000)
def quartiles(t):
    q = statistics.quantiles(t, n=4) if len(t) > 1 else [t[0]] * 3
    return {"p25_ms": q[0], "p75_ms": q[2]}
summary = {n: {"median_ms": statistics.median(t), "mean_ms": statistics.mean(t), "min_ms": min(t), "runs": len(t), **quartiles(t)} for n, t in times.items()}
summary["_seed"] = seed
print(json.dumps(summary))
