#!/usr/bin/env bash
# wt-env: one lease on a repository already holding 100 leases, and 64 leases at once.
# Prints a markdown section for bench/results.md.
source "$(dirname "$0")/lib.sh"
bench_work env
make_repo "$work/repo" 3
cd "$work/repo"
range=25000-29999
"$BIN/wt-create" -n 101 --prefix c >/dev/null
for i in $(seq 1 100); do echo "c-$i"; done | "$BIN/wt-env" --range $range >/dev/null

python3 "$BENCH_DIR/interleave.py" "${ROUNDS_ENV:-80}" "bash -c '$BIN/wt-env --release c-101 >/dev/null && sync'" \
  wt-env "$BIN/wt-env -w c-101 --range $range" \
  git-rev-parse "git rev-parse --git-common-dir" > "$work/one.json"

all=$(seq -s ' ' -f 'c-%g' 1 64)
spawn64="for i in \$(seq 1 64); do $BIN/wt-env -w c-\$i --range $range >/dev/null & done; wait"
floor64="for i in \$(seq 1 64); do $BIN/wt-env --version >/dev/null & done; wait"
python3 "$BENCH_DIR/interleave.py" "${ROUNDS_64:-10}" "bash -c '$BIN/wt-env --release $all >/dev/null'" \
  wt-env-64 "bash -c '$spawn64'" \
  spawn-64 "bash -c '$floor64'" > "$work/many.json"

get() { python3 -c "import json; print('%.1f' % json.load(open('$1'))['$2']['median_ms'])"; }
one=$(get "$work/one.json" wt-env) git_one=$(get "$work/one.json" git-rev-parse)
many=$(get "$work/many.json" wt-env-64) floor=$(get "$work/many.json" spawn-64)
cat <<MD
## wt-env: leases (issue 3)

Measured $(date -u +%Y-%m-%d).

Targets: one lease on a repository holding 100 leases in under 5 ms of wall time; 64
concurrent leases in under 2 s. Medians of interleaved rounds; before each timed lease the previous
one is released and the file system settled with \`sync\` (a warm, quiet repository).

| what | median (ms) | reference | reference (ms) | ratio |
|---|---:|---|---:|---:|
| \`wt-env -w c-101\`: a new lease beside 100 others (probe, lock, ledger write) | $one | \`git rev-parse --git-common-dir\` | $git_one | $(ratio "$one" "$git_one") |
| 64 \`wt-env\` processes at once, 64 new leases | $many | 64 \`wt-env --version\` at once | $floor | $(ratio "$many" "$floor") |

MD
