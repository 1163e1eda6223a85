#!/usr/bin/env bash
# wt-run: the cost of one run over running the command directly, and 8 CPU-bound runs with
# -j 2 against `xargs -P 2`. Prints a markdown section for bench/results.md.
source "$(dirname "$0")/lib.sh"
bench_work run
make_repo "$work/repo" 3
cd "$work/repo"
"$BIN/wt-create" -n 8 --prefix r >/dev/null

python3 "$BENCH_DIR/interleave.py" "${ROUNDS_RUN:-60}" "true" \
  wt-run "$BIN/wt-run -w r-1 -- true" \
  direct "true" > "$work/one.json"

# A CPU-bound command of about 0.3 s: sums in awk.
echo 'awk "BEGIN { for (i = 0; i < 10000000; i++) s += i; print s }"' > "$work/burn.sh"
"$BIN/wt-create" --list > "$work/records.jsonl"
python3 "$BENCH_DIR/interleave.py" "${ROUNDS_CPU:-9}" "true" \
  wt-run-j2 "bash -c '$BIN/wt-run -j 2 -- sh $work/burn.sh < $work/records.jsonl > /dev/null'" \
  xargs-P2 "bash -c 'seq 8 | xargs -P 2 -I{} sh $work/burn.sh > /dev/null'" > "$work/cpu.json"

get() { python3 -c "import json; print('%.1f' % json.load(open('$1'))['$2']['median_ms'])"; }
one=$(get "$work/one.json" wt-run) direct=$(get "$work/one.json" direct)
j2=$(get "$work/cpu.json" wt-run-j2) xa=$(get "$work/cpu.json" xargs-P2)
cat <<MD
## wt-run: overhead and parallel runs (issue 4)

Measured $(date -u +%Y-%m-%d).

Targets: \`wt-run -w X -- true\` costs under 5 ms more than \`true\`; 8 CPU-bound runs with \`-j 2\`
take no longer than \`xargs -P 2\` (ratio ≤ 1.0, within noise). Medians of interleaved rounds.

| what | median (ms) | reference | reference (ms) | difference / ratio |
|---|---:|---|---:|---:|
| \`wt-run -w r-1 -- true\` (discovery, ledger, log file, process group) | $one | \`true\` | $direct | +$(python3 -c "print('%.1f' % ($one - $direct))") ms |
| 8 × a 0.3 s awk loop, \`wt-run -j 2\` | $j2 | \`xargs -P 2\` | $xa | $(ratio "$j2" "$xa") |

MD
