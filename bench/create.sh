#!/usr/bin/env bash
# wt-create vs a loop of `git worktree add`: 8 worktrees on a repository of 3,000 files.
# Prints a markdown section for bench/results.md.
source "$(dirname "$0")/lib.sh"
bench_work create
make_repo "$work/repo" 3000
cd "$work/repo"

# Between runs: no worktrees, no wt branches, no ledger, and nothing left to write back. The
# worktrees of the last run are moved into a trash dir that is deleted only after every timed
# run: deleting thousands of files right before a timed run (ext4 with `discard`) charges the
# kernel's deferred work to whatever runs next, which swung a loop of 8 `git worktree add`
# between 7 and 40 s. Then the disk settles (sync, a pause) before the timing starts.
# (`prune` is fine here: it is the benchmark's own throwaway repository.)
mkdir -p "$work/trash"
reset='[ ! -e "../$(basename "$PWD").wt" ] || mv "../$(basename "$PWD").wt" "'"$work"'/trash/$(date +%s%N)"; git worktree prune && git for-each-ref --format="delete %(refname)" refs/heads/wt/ | git update-ref --stdin && rm -rf .git/wt && sync && sleep 0.5'
loop='for i in 1 2 3 4 5 6 7 8; do git worktree add -q -b wt/g-$i ../repo.wt/g-$i HEAD; done'
one_by_one="for i in 1 2 3 4 5 6 7 8; do $BIN/wt-create w-\$i >/dev/null; done"
python3 "$BENCH_DIR/interleave.py" "${ROUNDS:-7}" "bash -c '$reset'" \
  git-loop "bash -c '$loop'" \
  wt-create-n8 "$BIN/wt-create -n 8 --prefix b" \
  wt-create-loop "bash -c '$one_by_one'" > "$work/t.json"

ms() { python3 -c "import json; print('%.1f' % json.load(open('$work/t.json'))['$1']['median_ms'])"; }
git_ms=$(ms git-loop) n8_ms=$(ms wt-create-n8) loop_ms=$(ms wt-create-loop)

# The fixed cost of one call, apart from checkout: the same on a 3-file repository.
make_repo "$work/tiny" 3
cd "$work/tiny"
tiny_reset="$reset"
python3 "$BENCH_DIR/interleave.py" "${ROUNDS_TINY:-61}" "bash -c '$tiny_reset'" \
  git-one "git worktree add -q -b wt/x ../tiny.wt/x HEAD" \
  wt-one "$BIN/wt-create x" > "$work/tiny.json"
# Many agents starting at once: 64 concurrent `wt-create NAME` against 64 concurrent
# `git worktree add` on an 800-file repository. Plain git fails in a share of such rounds on its
# own races; the median counts only rounds where neither failed, and the failures are reported.
make_repo "$work/conc" 800
cd "$work/conc"
python3 "$BENCH_DIR/concurrent.py" "${ROUNDS_CONC:-5}" "${CONC:-64}" "$reset" \
  git-add "git worktree add -q -b wt/g-{i} ../conc.wt/g-{i} HEAD" \
  wt-create "$BIN/wt-create c-{i}" > "$work/conc.json"
conc() { jq -r ".[\"$1\"].$2 | if type == \"number\" and . != floor then (. * 10 | round / 10) else . end" "$work/conc.json"; }
conc_git=$(conc git-add median_ms) conc_wt=$(conc wt-create median_ms)
conc_ratio=n/a
[ "$conc_git" = null ] || [ "$conc_wt" = null ] || conc_ratio=$(ratio "$conc_wt" "$conc_git")
tiny() { python3 -c "import json; print('%.1f' % json.load(open('$work/tiny.json'))['$1']['${2:-median}_ms'])"; }
# One call on the cargo repository itself, when a copy is at hand (CARGO_REPO: a clone or a
# bare mirror of rust-lang/cargo; the benchmark clones it locally, so no network is needed).
cargo_note="One call on the cargo repository: not measured (set CARGO_REPO to a clone of rust-lang/cargo)."
if [ -n "${CARGO_REPO:-}" ]; then
  git clone -q "$CARGO_REPO" "$work/cargo"
  cd "$work/cargo"
  python3 "$BENCH_DIR/interleave.py" "${ROUNDS_CARGO:-15}" "bash -c '$reset'" \
    git-one "git worktree add -q -b wt/x ../cargo.wt/x HEAD" \
    wt-one "$BIN/wt-create x" > "$work/cargo.json"
  cargo_ms() { python3 -c "import json; print('%.1f' % json.load(open('$work/cargo.json'))['$1']['median_ms'])"; }
  cargo_note="One call on the cargo repository ($(git ls-files | wc -l) files at $(git rev-parse --short HEAD), median of ${ROUNDS_CARGO:-15}
shuffled rounds): \`git worktree add\` $(cargo_ms git-one) ms, \`wt-create\` $(cargo_ms wt-one) ms, ratio
$(ratio "$(cargo_ms wt-one)" "$(cargo_ms git-one)") (target ≤ 1.05)."
fi
cat <<MD
## wt-create: 8 worktrees on a 3,000-file repository, one on a 3-file one, 64 at once (issues 2, 16)

Measured $(date -u +%Y-%m-%d). $(load_note)

Targets: \`-n 8\` at most 0.6× the loop; one call per worktree within 1.05× of \`git worktree add\`
(the checkout dominates). Medians of ${ROUNDS:-7}
interleaved rounds (each round runs every command once, in a shuffled order; removals of the
previous round's worktrees are kept out of the timed window).

| command | median (ms) | ratio to git loop |
|---|---:|---:|
| \`git worktree add\` × 8, one after another | $git_ms | 1.000 |
| \`wt-create -n 8\` (checkouts run in parallel, \`-j\` = cores) | $n8_ms | $(ratio "$n8_ms" "$git_ms") |
| \`wt-create NAME\` × 8, one process each | $loop_ms | $(ratio "$loop_ms" "$git_ms") |

Fixed cost of one call apart from the checkout (3-file repository, median of ${ROUNDS_TINY:-61}
shuffled rounds, the middle half of the rounds in brackets): \`git worktree add\` $(tiny git-one) ms
($(tiny git-one p25)–$(tiny git-one p75)), \`wt-create\` $(tiny wt-one) ms ($(tiny wt-one p25)–$(tiny wt-one p75)),
ratio $(ratio "$(tiny wt-one)" "$(tiny git-one)") (target ≤ 1.5). wt-create runs three git processes
(\`git branch\`, \`git worktree add --no-checkout\`, \`git reset --hard\`), as many as \`git worktree
add -b\` is with the two it starts (\`git branch\`, \`git reset --hard\`); what it adds is its own
process: its start, the lock and the crash marker. The ledger write is synced while git checks the files out and put in place by a
rename after. This is the first worktree of a repository (its \`.git/wt\` is made each round).

$cargo_note

${CONC:-64} processes started at once, 800-file repository, ${ROUNDS_CONC:-5} shuffled rounds (median over the
$(conc git-add clean_rounds) rounds in which neither failed): \`git worktree add\` $(conc git-add median_ms) ms with
$(conc git-add failures) failed processes in $(conc git-add failed_rounds) rounds; \`wt-create NAME\` $(conc wt-create median_ms) ms
with $(conc wt-create failures) failures; ratio $conc_ratio (target ≤ 1.2).

MD
