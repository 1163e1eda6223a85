#!/usr/bin/env python3
"""Starts N copies of each command at once (as N agents would), in rounds, each command once
per round in a shuffled order, and prints per command the median wall time of the rounds in
which *every* command had no failure, how many rounds that was, and the failures seen.

PREPARE (a shell command) runs before every timed batch, outside the timing. In a command,
{i} is replaced by 1..N.

usage: concurrent.py ROUNDS N PREPARE NAME CMD [NAME CMD ...]"""
import json, os, random, statistics, subprocess, sys, time

rounds, n, prepare, pairs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
cmds = list(zip(pairs[0::2], pairs[1::2]))
rng = random.Random(int(os.environ.get("BENCH_SEED", "1")))
runs = []  # one dict per round: name -> (ms, failures)
for _ in range(rounds):
    order = cmds[:]
    rng.shuffle(order)
    got = {}
    for name, cmd in order:
        subprocess.run(["bash", "-c", prepare], check=True)
        start = time.perf_counter()
        procs = [subprocess.Popen(["bash", "-c", cmd.replace("{i}", str(i))], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for i in range(1, n + 1)]
        failures = sum(1 for p in procs if p.wait() != 0)
        got[name] = ((time.perf_counter() - start) * 1000, failures)
    runs.append(got)
clean = [r for r in runs if all(f == 0 for _, f in r.values())]
out = {}
for name, _ in cmds:
    ms = [r[name][0] for r in clean]
    out[name] = {
        "median_ms": statistics.median(ms) if ms else None,
        "clean_rounds": len(clean),
        "rounds": len(runs),
        "failures": sum(r[name][1] for r in runs),
        "failed_rounds": sum(1 for r in runs if r[name][1]),
    }
print(json.dumps(out))
