#!/usr/bin/env bash
# wt-merge --check of 16 branches against the target and each other (16 + 120 merges), against
# the one `git merge-tree --stdin` it is built on, given the same pairs, and against the same
# merges done by `git merge-tree --write-tree` in a shell loop. Prints a section.
source "$(dirname "$0")/lib.sh"
bench_work merge
make_repo "$work/repo" 3000
cd "$work/repo"
"$BIN/wt-create" -n 16 --prefix m >/dev/null
for i in $(seq 1 16); do
  wt="$work/repo.wt/m-$i"
  # Each branch edits its own file and one shared file (so some pairs conflict).
  echo "change $i" >> "$wt/$(git -C "$wt" ls-files "*/f$i.txt" | head -n 1)"
  [ $((i % 4)) = 0 ] && echo "shared edit $i" >> "$wt/src/m00/s0/f0.txt"
  git -C "$wt" commit -qam "work $i"
done
"$BIN/wt-create" --list > "$work/records.jsonl"
branches=$(seq -s ' ' -f 'wt/m-%g' 1 16)
cat > "$work/loop.sh" <<SH
b=($branches)
for x in "\${b[@]}"; do git merge-tree --write-tree main "\$x" >/dev/null || true; done
for ((i = 0; i < \${#b[@]}; i++)); do for ((j = i + 1; j < \${#b[@]}; j++)); do
  git merge-tree --write-tree "\${b[i]}" "\${b[j]}" >/dev/null || true
done; done
SH
# The same 136 pairs, in the order wt-merge asks for them, for the bare merge-tree.
b=($branches)
{ for x in "${b[@]}"; do echo "main $x"; done
  for ((i = 0; i < ${#b[@]}; i++)); do for ((j = i + 1; j < ${#b[@]}; j++)); do echo "${b[i]} ${b[j]}"; done; done
} > "$work/pairs.txt"
[ "$(wc -l < "$work/pairs.txt")" = 136 ]
python3 "$BENCH_DIR/interleave.py" "${ROUNDS_MERGE:-15}" "true" \
  wt-merge-check "bash -c '$BIN/wt-merge --check < $work/records.jsonl > /dev/null || true'" \
  merge-tree-stdin "bash -c 'git merge-tree --stdin -z --name-only --no-messages < $work/pairs.txt > /dev/null'" \
  merge-tree-loop "bash $work/loop.sh" > "$work/t.json"
get() { python3 -c "import json; print('%.1f' % json.load(open('$work/t.json'))['$1']['median_ms'])"; }
ours=$(get wt-merge-check) stdin=$(get merge-tree-stdin) loop=$(get merge-tree-loop)
cat <<MD
## wt-merge --check: 16 branches, 136 merges (issue 6)

Measured $(date -u +%Y-%m-%d). $(load_note)

Target: \`wt-merge --check\` of 16 branches against each other and the target within 1.2× of the
one \`git merge-tree --stdin\` it runs, given the same 136 pairs (the rest is discovery, reading
the records and every branch's commit, read from the ref files). 3,000-file repository; medians
of ${ROUNDS_MERGE:-15} shuffled rounds.

| command | median (ms) | ratio to merge-tree --stdin |
|---|---:|---:|
| \`git merge-tree --stdin\`, the 136 pairs | $stdin | 1.000 |
| \`wt-merge --check\` | $ours | $(ratio "$ours" "$stdin") |
| \`git merge-tree --write-tree\` × 136 in a shell loop | $loop | $(ratio "$loop" "$stdin") |

MD
