#!/usr/bin/env bash
# wt-create --gc over 100 worktrees, each with a checkout of 300 files, a target/ of 200 files
# and a node_modules of 200 (70,000 files in all), beside `du -s` over the same worktrees as
# the reference. Target: --gc ≤ 2 s. Prints a markdown section for bench/results.md.
source "$(dirname "$0")/lib.sh"
bench_work gc
make_repo "$work/repo" 300
cd "$work/repo"
printf 'target/\nnode_modules/\n' > .gitignore
git add .gitignore && git commit -qm "ignore build dirs"
"$BIN/wt-create" -n 100 --prefix w >/dev/null
python3 - "$work/repo.wt" <<'PY'
import os, random, sys
random.seed(7)
root = sys.argv[1]
for wt in sorted(os.listdir(root)):
    for kind, n in (("target/debug/deps", 200), ("node_modules/pkg%d", 200)):
        for i in range(n):
            d = os.path.join(root, wt, kind % (i % 20) if "%" in kind else kind)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "f%d" % i), "wb") as f:
                f.write(os.urandom(random.randint(512, 16384)))
PY
files=$(find "$work/repo.wt" -path '*/.git' -prune -o -type f -print | wc -l)
size=$(du -sh "$work/repo.wt" | cut -f1)
sync
# Three timed commands, none changing anything (no --yes): the whole walk with the budget
# holding (the accounting alone), the walk with every worktree over budget (each one's
# build dirs confirmed with git and its work checked: git status, unmerged commits), and du.
python3 "$BENCH_DIR/interleave.py" "${ROUNDS:-9}" "sync" \
  gc-holds "$BIN/wt-create --gc --max-size 1T --json" \
  gc-over "$BIN/wt-create --gc --max-size 1K --json" \
  du "du -s $work/repo.wt" > "$work/gc.json"
ms() { python3 -c "import json; print('%.0f' % json.load(open('$1'))['$2']['median_ms'])"; }
holds=$(ms "$work/gc.json" gc-holds) over=$(ms "$work/gc.json" gc-over) du_ms=$(ms "$work/gc.json" du)
# The counts agree: wt's total against du's.
wt_total=$("$BIN/wt-status" --disk --all --json 2>/dev/null | python3 -c "import json,sys; print(sum(json.loads(l)['disk']['bytes'] for l in sys.stdin))")
du_total=$(du -s -B1 "$work/repo.wt"/w-* | awk '{s+=$1} END {print s}')
cat <<MD
## wt-create --gc over 100 worktrees (issue 27)

Measured $(date -u +%Y-%m-%d). $(load_note)

100 worktrees of a 300-file repository, each with a \`target/\` of 200 files and a
\`node_modules\` of 200 (0.5–16 KiB each): $files files, $size. Medians of ${ROUNDS:-9} shuffled
rounds, nothing removed (no \`--yes\`), the disk settled with \`sync\` before each.

| command | median (ms) |
|---|---:|
| \`wt-create --gc\`, budget holds (the accounting: every worktree walked, build dirs confirmed with git) | $holds |
| \`wt-create --gc\`, every worktree over budget (and each one's work checked: \`git status\`, unmerged commits) | $over |
| \`du -s\` of the same worktrees | $du_ms |

Target: \`--gc\` over 100 worktrees ≤ 2 s. The counts agree: wt's total of the 100 worktrees
$wt_total bytes, \`du -s -B1\` of each summed $du_total bytes.

Side by side, the accounting costs $(ratio "$holds" "$du_ms")× \`du -s\` (one \`lstat\` per file as
\`du\`, and one \`git ls-files\` per worktree to confirm its build dirs, on every core). With every
worktree over budget, each one's \`git status\` and unmerged-commit check come on top
($(ratio "$over" "$du_ms")× \`du -s\`): the first \`--gc\` on a machine far over its budget; a \`--gc\`
that finds the budget holding (every later one, and the one after each create) pays the
accounting alone. The absolute times swing with the machine's load (above); the ratios were
measured in the same interleaved rounds.
MD
