#!/usr/bin/env bash
# How the ledger and --list costs grow with the number of worktrees: at 10, 100 and 500
# worktrees (each holding a lease), one new lease against `git rev-parse`, and `wt-create
# --list` against `git worktree list --porcelain`, side by side at each size. Prints a section.
source "$(dirname "$0")/lib.sh"
# The same worktree list (path and HEAD of each) read with libgit2 and with wt's own reader
# (bench/git2probe): the figure behind reading git's files directly (docs/performance.md).
# Built before bench_work isolates HOME (rustup's settings are there).
cargo build --release --quiet --manifest-path "$BENCH_DIR/git2probe/Cargo.toml" --target-dir "$ROOT/target/git2probe"
PROBE="$ROOT/target/git2probe/release/git2probe"
bench_work scale
range=20000-39999
rows=""
probe_rows=""
for n in ${SCALE_SIZES:-10 100 500}; do
  make_repo "$work/r$n" 3
  cd "$work/r$n"
  "$BIN/wt-create" -n "$n" --prefix s >/dev/null
  seq -f 's-%g' 1 $((n - 1)) | "$BIN/wt-env" --range $range >/dev/null
  by_git2=$("$PROBE" git2 . | sort) by_files=$("$PROBE" files . | sort)
  if [ "$(echo "$by_files" | wc -l)" -ne "$((n + 1))" ] || [ "$by_git2" != "$by_files" ]; then
    echo "git2probe: libgit2 and the files disagree, or miss worktrees" >&2; exit 1
  fi
  # Between timed runs: the lease released, the one new worktree of each tool removed.
  prepare="$BIN/wt-env --release s-$n >/dev/null; $BIN/wt-create --remove --force x >/dev/null 2>&1;"
  prepare+=" git worktree remove --force ../r$n.wt/g 2>/dev/null; git branch -D -q wt/g 2>/dev/null; sync"
  python3 "$BENCH_DIR/interleave.py" "${ROUNDS_SCALE:-30}" "bash -c '$prepare'" \
    wt-env "$BIN/wt-env -w s-$n --range $range" \
    git-rev-parse "git rev-parse --git-common-dir" \
    wt-list "$BIN/wt-create --list" \
    git-list "git worktree list --porcelain" \
    wt-create "$BIN/wt-create x" \
    git-add "git worktree add -q -b wt/g ../r$n.wt/g HEAD" > "$work/t$n.json"
  get() { python3 -c "import json; print('%.1f' % json.load(open('$work/t$n.json'))['$1']['median_ms'])"; }
  lease=$(get wt-env) rp=$(get git-rev-parse) list=$(get wt-list) glist=$(get git-list)
  create=$(get wt-create) add=$(get git-add)
  python3 "$BENCH_DIR/interleave.py" "${ROUNDS_SCALE:-30}" "true" \
    files "$PROBE files ." libgit2 "$PROBE git2 ." git-list "git worktree list --porcelain" > "$work/p$n.json"
  pget() { python3 -c "import json; print('%.1f' % json.load(open('$work/p$n.json'))['$1']['median_ms'])"; }
  probe_rows+="| $n | $(pget files) | $(pget libgit2) | $(pget git-list) |"$'\n'

  rows+="| $n | $lease | $rp | $list | $glist | $(ratio "$list" "$glist") | $create | $add | $(ratio "$create" "$add") |"$'\n'
  cd "$work"
  rm -rf "$work/r$n" "$work/r$n.wt"
done
cat <<MD
## The ledger, --list and one create at 10, 100 and 500 worktrees (issue 16)

Measured $(date -u +%Y-%m-%d). $(load_note)

Targets: one lease (\`wt-env -w NAME\`, every other worktree holding one) at most 6 ms at 500
leases; \`wt-create --list\` within 1.2× of \`git worktree list --porcelain\` at 500 worktrees;
one \`wt-create NAME\` (fixed cost: a 3-file repository) within 1.5× of \`git worktree add\`.
3-file repository; medians of ${ROUNDS_SCALE:-30} shuffled rounds at each size; before each
timed run the lease is released, the worktree each tool made is removed, and the disk settled
with \`sync\`.

| worktrees | one lease (ms) | \`git rev-parse\` (ms) | \`wt-create --list\` (ms) | \`git worktree list\` (ms) | list ratio | \`wt-create NAME\` (ms) | \`git worktree add\` (ms) | create ratio |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows}
Reading the list of worktrees (each one's path and HEAD commit) three ways, medians of
${ROUNDS_SCALE:-30} shuffled rounds, each a whole process (\`bench/git2probe\`; both of its modes
print the same list, checked before timing):

| worktrees | wt's reader (ms) | libgit2 (ms) | \`git worktree list\` (ms) |
|---:|---:|---:|---:|
${probe_rows}
MD
