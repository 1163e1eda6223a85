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

get() { python3 -c "import json; print('%.1f' % json.load(open('$1'))['$2']['${3:-median_ms}'])"; }
load=$(cut -d' ' -f1 /proc/loadavg)
ct=$(get "$work/true.json" confined) pt=$(get "$work/true.json" plain)
ctmin=$(get "$work/true.json" confined min_ms) ptmin=$(get "$work/true.json" plain min_ms)
cc=$(get "$work/commit.json" confined) pc=$(get "$work/commit.json" plain)
diff() { python3 -c "print('%+.1f ms' % ($1 - $2))"; }
cat <<MD
## wt-run --confine: the cost of the sandbox (issue 9)

Measured $(date -u +%Y-%m-%d), Linux $(uname -r), as $(id -un), load average $load on $(nproc) cores.

Target: a confined \`-- true\` costs at most 10 ms more than an unconfined one. Medians of
interleaved rounds. The confined run re-executes wt-run as the helper, enters a mount
namespace (read-only \`/\`, writable binds, private store, tmpfs for /tmp and /dev/shm, a
devpts instance), applies Landlock, drops capabilities, and after the run checks whether
there is anything to publish. Under load, each process the confined run adds (the helper's
exec) waits for a core: the difference grows with the load average, which the header gives.

| what | confined (ms) | unconfined (ms) | difference |
|---|---:|---:|---:|
| \`wt-run -w c-1 -- true\` | $ct | $pt | $(diff "$ct" "$pt") |
| the same, fastest round (the machine at its quietest) | $ctmin | $ptmin | $(diff "$ctmin" "$ptmin") |
| \`wt-run -w c-1 -- git commit --allow-empty\` (confined: publish imports and moves the branch) | $cc | $pc | $(diff "$cc" "$pc") |

MD
