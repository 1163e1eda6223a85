#!/usr/bin/env bash
# wt-create --share vs `cp -al`: a 10,000-file ignored directory placed into a worktree.
# Prints a markdown section for bench/results.md.
source "$(dirname "$0")/lib.sh"
bench_work share
git init -q -b main "$work/repo"
cd "$work/repo"
echo "deps/" > .gitignore
git add .gitignore && git commit -qm "ignore deps"
# 10,000 files of varied size in 800 directories, like a node_modules.
python3 - <<'PY'
import os, random
random.seed(7)
for i in range(10000):
    d = os.path.join("deps", "pkg%03d" % (i % 400), "lib" if i % 2 else "dist")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d.js" % i), "w") as f:
        f.write(("// line %d of a module\n" % i) * random.randint(5, 100))
PY
# The store learns the files once (the first share hashes them); what is timed is every
# share after that, which is what each new worktree costs.
"$BIN/wt-create" w --share deps >/dev/null

# 1. Into an existing worktree (`wt-create --share deps w` shares again), against `cp -al`.
reset_tree='rm -rf ../repo.wt/w/deps && sync'
python3 "$BENCH_DIR/interleave.py" "${ROUNDS:-9}" "bash -c '$reset_tree'" \
  cp-al "cp -al deps ../repo.wt/w/deps" \
  wt-share "$BIN/wt-create w --share deps" > "$work/reshare.json"

# 2. A new worktree with its dependencies: `wt-create --share` against `wt-create` + `cp -al`.
reset_new='rm -rf ../repo.wt/n && git worktree prune && git branch -qD wt/n 2>/dev/null; rm -f .git/wt/share/n.json; python3 -c "import json;p=\".git/wt/ledger.json\";d=json.load(open(p));d[\"worktrees\"].pop(\"n\",None);json.dump(d,open(p,\"w\"))"; sync'
python3 "$BENCH_DIR/interleave.py" "${ROUNDS:-9}" "bash -c '$reset_new'" \
  create-cp "bash -c '$BIN/wt-create n >/dev/null && cp -al deps ../repo.wt/n/deps'" \
  create-share "$BIN/wt-create n --share deps" > "$work/new.json"

ms() { python3 -c "import json; print('%.1f' % json.load(open('$1'))['$2']['median_ms'])"; }
cp_ms=$(ms "$work/reshare.json" cp-al) share_ms=$(ms "$work/reshare.json" wt-share)
ccp_ms=$(ms "$work/new.json" create-cp) cshare_ms=$(ms "$work/new.json" create-share)

# Disk: 8 worktrees sharing the directory, each inode counted once, against 8 full copies.
for i in 1 2 3 4 5 6 7 8; do "$BIN/wt-create" "d-$i" --share deps >/dev/null; done
disk=$(python3 "$BENCH_DIR/disk.py" "$work/repo/deps" "$work"/repo.wt/d-{1..8}/deps)
IFS='|' read -r extra_mib full_mib pct <<<"$disk"

# The same on the test's real dependency tree (npm registry needed; said so when unreachable).
npm_disk="not measured: \`npm install\` failed (is the npm registry reachable?)"
git init -q -b main "$work/npm" && cd "$work/npm"
echo "node_modules/" > .gitignore
echo '{"name": "app", "version": "1.0.0", "private": true}' > package.json
if npm install -q --no-audit --no-fund --save-exact esbuild@0.25.0 lodash@4.17.21 chalk@4.1.2 >/dev/null 2>&1; then
  git add -A && git commit -qm deps
  "$BIN/wt-create" -n 8 --share node_modules >/dev/null
  IFS='|' read -r n_extra n_full n_pct <<<"$(python3 "$BENCH_DIR/disk.py" "$work/npm/node_modules" "$work"/npm.wt/agent-{1..8}/node_modules)"
  npm_disk="$n_extra MiB against $n_full MiB for 8 full copies ($n_pct%)"
fi
cd "$work/repo"
cat <<MD
## wt-create --share: a 10,000-file directory into a worktree (issue 14)

Measured $(date -u +%Y-%m-%d).

Target: sharing takes no longer than \`cp -al\` of the directory (ratio ≤ 1.00). Medians of
${ROUNDS:-9} interleaved rounds; the directory (10,000 files, 800 directories, ~$(du -sm deps | cut -f1) MB)
is in the store already, as it is for every worktree after the first.

| command | median (ms) | ratio |
|---|---:|---:|
| \`cp -al deps\` into an existing worktree | $cp_ms | 1.000 |
| \`wt-create w --share deps\` (the same, into the existing worktree \`w\`) | $share_ms | $(ratio "$share_ms" "$cp_ms") |
| \`wt-create n\` then \`cp -al deps\` into it | $ccp_ms | 1.000 |
| \`wt-create n --share deps\` (a new worktree with the directory shared) | $cshare_ms | $(ratio "$cshare_ms" "$ccp_ms") |

Disk, 8 worktrees sharing the directory (each inode counted once, beyond the main worktree's
own files): $extra_mib MiB, against $full_mib MiB for 8 full copies ($pct%): the directories
themselves. On the real \`npm install\` (esbuild, lodash, chalk) of the test
\`npm_tree_shared_into_eight_worktrees_costs_little_and_runs_everywhere\`, which requires at
most 15%: $npm_disk.

MD
