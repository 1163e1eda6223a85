#!/usr/bin/env bash
# The merge queue when many agents finish at once (issue 22): 8 green branches verified by a
# suite of SUITE_SECS seconds (default 20), landed batched (verified together, one run) and one
# by one (`--batch 1`, eight runs), and the batch again with one broken branch among the eight
# (split in halves until it is alone). Target: batched ≤ 2.5× the suite's own time. Prints a
# section.
source "$(dirname "$0")/lib.sh"
need jq jq
work=$(mktemp -d /tmp/wt-bench-batch.XXXXXX)
trap 'rm -rf "$work"' EXIT
isolate_git "$work"
secs=${SUITE_SECS:-20}
# A repository whose "suite" takes $secs seconds and fails when a branch wrote "broken".
setup() {
  rm -rf "$work/repo" "$work/repo.wt"
  make_repo "$work/repo" 300 >/dev/null
  cd "$work/repo"
  "$BIN/wt-create" -n 8 --prefix b >/dev/null
  for i in $(seq 1 8); do
    wt="$work/repo.wt/b-$i"
    if [ "$i" = "${1:-0}" ]; then echo broken > "$wt/b$i.txt"; else echo ok > "$wt/b$i.txt"; fi
    git -C "$wt" add -A && git -C "$wt" commit -qm "work of b-$i"
  done
  "$BIN/wt-create" --list > "$work/records.jsonl"
}
suite="sleep $secs; ! grep -qs broken b*.txt"
# seconds MERGE-ARGS…: wall time of one queue over the eight records.
seconds() {
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN/wt-merge" --json --verify "$suite" "$@" < "$work/records.jsonl" > "$work/out.jsonl" || true
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.1f}')"
}
count() { jq -r "select(.merge.status == \"$1\") | .name" "$work/out.jsonl" | wc -l; }
setup; batched=$(seconds); batched_merged=$(count merged)
setup; single=$(seconds --batch 1); single_merged=$(count merged)
setup 5; broken=$(seconds); broken_merged=$(count merged); broken_failed=$(jq -r 'select(.merge.status == "verify-failed") | .name' "$work/out.jsonl")
cat <<MD
## wt-merge: eight branches ready at once (issue 22)

Measured $(date -u +%Y-%m-%d). $(load_note)

Target: eight green branches verified by a ${secs} s suite land in at most 2.5× the suite's
time when batched (they are merged one on top of the other and verified once), against about
8× one by one. With one broken branch among the eight, the batch is split in halves until the
broken one is alone; every commit the target moves to was verified.

| queue | wall time (s) | × the suite | merged |
|---|---:|---:|---:|
| batched (default) | $batched | $(ratio "$batched" "$secs") | $batched_merged of 8 |
| one by one (\`--batch 1\`) | $single | $(ratio "$single" "$secs") | $single_merged of 8 |
| batched, b-5 broken | $broken | $(ratio "$broken" "$secs") | $broken_merged of 8 (verify-failed: $broken_failed) |

MD
