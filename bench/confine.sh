#!/usr/bin/env bash
# wt-run --confine: what the sandbox costs a run (helper re-exec, mount namespace, private git
# store and its publish check, Landlock, capability drop), against the same run unconfined.
# Prints a markdown section for bench/results.md.
source "$(dirname "$0")/lib.sh"
bench_work confine
make_repo "$work/repo" 3
cd "$work/repo"
"$BIN/wt-create" c-1 >/dev/null
"$BIN/wt-run" -w c-1 --confine -- true >/dev/null  # the private store exists from now on

python3 "$BENCH_DIR/interleave.py" "${ROUNDS_CONFINE:-60}" "true" \
  confined "$BIN/wt-run -w c-1 --confine -- true" \
  plain "$BIN/wt-run -w c-1 -- true" > "$work/true.json"
# A run that commits: publishing imports one commit's objects and moves the branch.
python3 "$BENCH_DIR/interleave.py" "${ROUNDS_COMMIT:-20}" "true" \
  confined "$BIN/wt-run -w c-1 --confine -- git commit -q --allow-empty -m c" \
  plain "$BIN/wt-run -w c-1 -- git commit -q --allow-empty -m c" > "$work/commit.json"

# Publishing against its reference: the same one-file commit pushed with `git push` to a local
# bare repository (pack-objects, index-pack, ref update: the work publishing does too). wt's
# figure is the record's `published.ms`; git's is the push's wall time.
git init -q --bare "$work/bare.git"
git clone -q "$work/repo" "$work/ref"
git -C "$work/ref" push -q "$work/bare.git" HEAD:refs/heads/main
python3 - "${ROUNDS_PUBLISH:-30}" "$BIN/wt-run" "$work" > "$work/publish.json" <<'PY'
import json, statistics, subprocess, sys, time
rounds, wt_run, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
wt, push = [], []
for i in range(rounds):
    script = f"echo {i} >> src/m00/s0/f0.txt && git commit -qam c{i}"
    out = subprocess.run([wt_run, "-w", "c-1", "--confine", "--json", "--", "sh", "-c", script],
                         cwd=f"{work}/repo", capture_output=True, text=True, check=True).stdout
    wt.append(json.loads(out.splitlines()[0])["run"]["confined"]["published"]["ms"])
    ref = f"{work}/ref"
    subprocess.run(["sh", "-c", script], cwd=ref, check=True)
    start = time.perf_counter()
    subprocess.run(["git", "push", "-q", f"{work}/bare.git", "HEAD:refs/heads/main"], cwd=ref, check=True)
    push.append((time.perf_counter() - start) * 1000)
print(json.dumps({"wt": statistics.median(wt), "push": statistics.median(push), "rounds": rounds}))
PY
pub() { python3 -c "import json; print('%.1f' % json.load(open('$work/publish.json'))['$1'])"; }
pw=$(pub wt) pp=$(pub push)
pratio=$(python3 -c "print('%.2f' % ($pw / $pp))")

get() { python3 -c "import json; print('%.1f' % json.load(open('$1'))['$2']['${3:-median_ms}'])"; }
load=$(cut -d' ' -f1 /proc/loadavg)
ct=$(get "$work/true.json" confined) pt=$(get "$work/true.json" plain)
ctmin=$(get "$work/true.json" confined min_ms) ptmin=$(get "$work/true.json" plain min_ms)
cc=$(get "$work/commit.json" confined) pc=$(get "$work/commit.json" plain)
diff() { python3 -c "print('%+.1f ms' % ($1 - $2))"; }
cat <<MD
## wt-run --confine: the cost of the sandbox (issues 9 and 23)

Measured $(date -u +%Y-%m-%d), Linux $(uname -r), as $(id -un), load average $load on $(nproc) cores.

Target: a confined \`-- true\` costs at most 10 ms more than an unconfined one. Medians of
interleaved rounds. The confined run re-executes wt-run as the helper, forks the pid namespace's first process, enters a mount
namespace (read-only \`/\`, writable binds, private store, tmpfs for /tmp and /dev/shm, a
devpts instance), applies Landlock, drops capabilities, and after the run checks whether
there is anything to publish. Under load, each process the confined run adds (the helper's
exec) waits for a core: the difference grows with the load average, which the header gives.

| what | confined (ms) | unconfined (ms) | difference |
|---|---:|---:|---:|
| \`wt-run -w c-1 -- true\` | $ct | $pt | $(diff "$ct" "$pt") |
| the same, fastest round (the machine at its quietest) | $ctmin | $ptmin | $(diff "$ctmin" "$ptmin") |
| \`wt-run -w c-1 -- git commit --allow-empty\` (confined: publish imports and moves the branch) | $cc | $pc | $(diff "$cc" "$pc") |

Target: publishing a confined run's commit costs at most 1.5× \`git push\` of the same commit
to a local bare repository (issue 23). Medians of ${ROUNDS_PUBLISH:-30} rounds, one changed file each: wt's
figure is the record's \`run.confined.published.ms\` (copy out of the private store through
\`beneath\`, \`pack-objects\`, \`index-pack --strict --fsck-objects\`, compare-and-swap of the
branch, the admin dir check); git's is the wall time of the push.

| publish one commit | wt (ms) | \`git push\` (ms) | ratio |
|---|---:|---:|---:|
| a one-file commit | $pw | $pp | $pratio× |

MD
