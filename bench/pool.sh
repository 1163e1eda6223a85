#!/usr/bin/env bash
# The pool of warm worktrees: one claim (`wt-create NAME` with a pooled worktree ready) against
# `wt-create NAME` from scratch and `git worktree add`, on a generated 40,000-file tree and on
# the cargo repository (CARGO_REPO: a clone or a bare mirror of rust-lang/cargo). Prints a
# markdown section for bench/results.md.
source "$(dirname "$0")/lib.sh"
bench_work pool
mkdir -p "$work/trash"

# measure REPO_DIR ROUNDS: times the three in interleaved rounds, into $work/<name>.json.
# Two copies of the repository: `pooled` keeps a pool of one, `plain` has none (a create there
# must not start a refill, nor claim). Before every timed command (outside the timing): the
# worktrees of the last round are moved to a trash dir (deleting 40,000 files right before a
# timed run charges the file system's deferred work to it) and forgotten, the pool is topped up
# to one (`wt-create --pool 1` waits for the refill the last claim started), the disk settles.
measure() {
  local src=$1 rounds=$2 name
  name=$(basename "$src")
  git clone -q "$src" "$work/$name-pooled"
  git clone -q "$src" "$work/$name-plain"
  local reset
  reset=$(cat <<SH
set -e
for r in "$work/$name-pooled" "$work/$name-plain"; do
  cd "\$r"
  for w in x y g; do
    if [ -d "\$r.wt/\$w" ]; then mv "\$r.wt/\$w" "$work/trash/\$(date +%s%N)"; fi
  done
  $BIN/wt-create --remove --force x y >/dev/null 2>&1 || true
  git worktree prune; git branch -q -D wt/g 2>/dev/null || true
done
cd "$work/$name-pooled" && $BIN/wt-create --pool 1 >/dev/null
sync; sleep 0.3
SH
)
  printf '%s\n' "$reset" > "$work/reset-$name.sh"
  (cd "$work/$name-pooled" && "$BIN/wt-create" --pool 1 >/dev/null)
  python3 "$BENCH_DIR/interleave.py" "$rounds" "bash $work/reset-$name.sh" \
    claim "$BIN/wt-create -C $work/$name-pooled x" \
    scratch "$BIN/wt-create -C $work/$name-plain y" \
    git-add "git -C $work/$name-plain worktree add -q -b wt/g ../$name-plain.wt/g HEAD" \
    yardstick "git -C $work/$name-plain rev-parse HEAD" > "$work/$name.json"
  # What was timed is a claim: one more, outside the timing, must say so.
  bash "$work/reset-$name.sh"
  "$BIN/wt-create" -C "$work/$name-pooled" --json x | jq -e '.claimed == true' >/dev/null
  # The refill that claim started ends before the next repository is measured (and before
  # the work dir is deleted).
  (cd "$work/$name-pooled" && "$BIN/wt-create" --pool 1 >/dev/null)
}
ms() { python3 -c "import json; d=json.load(open('$work/$1.json'))['$2']; print('%.1f (%.1f–%.1f)' % (d['median_ms'], d['p25_ms'], d['p75_ms']))"; }
med() { python3 -c "import json; print('%.1f' % json.load(open('$work/$1.json'))['$2']['median_ms'])"; }

make_repo "$work/big" "${FILES:-40000}"
measure "$work/big" "${ROUNDS:-9}"
big_files=$(git -C "$work/big" ls-files | wc -l)
row() { echo "| $2 | $(ms "$1" claim) | $(ms "$1" scratch) | $(ms "$1" git-add) | $(ratio "$(med "$1" claim)" "$(med "$1" git-add)") | $(ms "$1" yardstick) |"; }
rows=$(row big "generated tree, $big_files files")
if [ -n "${CARGO_REPO:-}" ]; then
  git clone -q "$CARGO_REPO" "$work/cargo"
  measure "$work/cargo" "${ROUNDS_CARGO:-15}"
  cargo_files=$(git -C "$work/cargo" ls-files | wc -l)
  rows="$(row cargo "cargo ($cargo_files files at $(git -C "$work/cargo" rev-parse --short HEAD))")
$rows"
fi
make_repo "$work/small" 300
measure "$work/small" "${ROUNDS_SMALL:-15}"
rows="$(row small "generated tree, 300 files")
$rows"

cat <<MD
## wt-create --pool: claiming a warm worktree (issue 27)

Measured $(date -u +%Y-%m-%d). $(load_note)

Target: a claim at most 50 ms on the cargo repository and on a 40,000-file tree (the anchor
from the field: 314 ms for a pooled slot, 4.8 s from scratch). A claim is a rename and a
branch: under the worktree lock, the pooled worktree's directory and git's admin dir are
renamed, the two links between them rewritten, \`git branch\` makes \`wt/NAME\`, HEAD is pointed
at it, the ledger entry is written; then the refill starts in the background (its fork and exec
are in the figure, its work is not: the next round waits for it outside the timing). Medians of
interleaved rounds (the middle half in brackets), each command once per round in a shuffled
order.

| repository | claim (ms) | \`wt-create NAME\` from scratch (ms) | \`git worktree add\` (ms) | claim ÷ git | \`git rev-parse HEAD\` (ms) |
|---|---:|---:|---:|---:|---:|
$rows

The last column is a yardstick of the machine's load at the moment: one \`git rev-parse HEAD\`,
timed in the same rounds (about 2 ms on an idle machine). A claim runs two git processes
(\`git rev-parse\` of \`refs/wt/best/NAME\`, which any create runs, and \`git branch\`), syncs the
ledger while \`git branch\` runs, compares the pooled worktree's seal (the stat data of its
directories, include files and index: one \`lstat\` per directory, $(find "$work/big" -type d -not -path '*/.git*' | wc -l) on the 40,000-file
tree), and starts the refill.

What grows with the tree: the seal, with the number of directories, not of files. Reading the
whole checkout instead (\`git diff-files\` and \`git ls-files -o\`, which a claim does only when
the seal no longer matches, and each refill does in the background) cost 180 ms on the
40,000-file tree. With a \`.worktreeinclude\` (these trees have none), the claim's fingerprint
asks git for the ignored files it selects (\`git ls-files\`, which walks the main worktree), as
every create does to copy them.
MD
