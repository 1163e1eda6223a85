#!/usr/bin/env bash
# Who needs me (issue 25): `wt-status --inbox` over 10 repositories of 10 worktrees each, half of
# them with a red last run, against what a person would otherwise run to learn the same: `git
# status` in every worktree (two at a time, as `xargs -P2`); and completing a worktree name
# (`wt-status a<TAB>`, as bash's completion script asks it) against what git's own bash completion runs to
# complete a branch name (`git for-each-ref refs/heads/`). Prints a markdown section.
source "$(dirname "$0")/lib.sh"
bench_work attention
export WT_REPO_REGISTRY="$work/repos" WT_PORT_REGISTRY="$work/ports" XDG_RUNTIME_DIR="$work/xdg"
mkdir -m 700 "$XDG_RUNTIME_DIR"
for r in $(seq 1 10); do
  make_repo "$work/r$r" 300 >/dev/null
  (cd "$work/r$r" && "$BIN/wt-create" -n 10 >/dev/null &&
    "$BIN/wt-create" --list | jq -c 'select(.name | test("[13579]$"))' | "$BIN/wt-run" -q -- false >/dev/null || true)
done
cd "$work/r1"
entries=$("$BIN/wt-status" --inbox --json | wc -l)
[ "$entries" = 50 ] || { echo "bench: the inbox has $entries entries, not 50" >&2; exit 1; }
for r in $(seq 1 10); do git -C "$work/r$r" worktree list --porcelain | sed -n 's/^worktree //p'; done > "$work/paths"
hyperfine --warmup 2 --runs 20 --export-json "$work/inbox.json" \
  -n inbox "$BIN/wt-status --inbox --json" \
  -n git-status "xargs -P2 -I{} git -C {} status --porcelain < $work/paths" >/dev/null
hyperfine -N --warmup 3 --runs 50 --export-json "$work/complete.json" \
  -n complete "env WT_COMPLETE=bash _CLAP_IFS=, _CLAP_COMPLETE_INDEX=1 _CLAP_COMPLETE_COMP_TYPE=9 _CLAP_COMPLETE_SPACE=true $BIN/wt-status -- wt-status a" \
  -n git-branches "git for-each-ref --format=%(refname:short) refs/heads/" >/dev/null
inbox=$(mean_ms "$work/inbox.json" inbox); status=$(mean_ms "$work/inbox.json" git-status)
complete=$(mean_ms "$work/complete.json" complete); branches=$(mean_ms "$work/complete.json" git-branches)
cat <<MD
## wt-status --inbox and completion (issue 25)

Measured $(date -u +%Y-%m-%d). 10 repositories of 300 files, 10 worktrees each, 50 of them with a
red last run (\`wt-run -- false\`): the inbox lists those 50 entries.

| what | wt | reference | ratio |
|---|---|---|---|
| who needs me, across 10 repositories (100 worktrees) | \`wt-status --inbox\` $(printf %.1f "$inbox") ms | \`git status\` in each worktree, \`xargs -P2\`: $(printf %.1f "$status") ms | $(ratio "$inbox" "$status") |
| complete a worktree name (10 worktrees, 11 branches) | \`WT_COMPLETE=bash wt-status\` $(printf %.1f "$complete") ms | \`git for-each-ref refs/heads/\` (git's branch completion): $(printf %.1f "$branches") ms | $(ratio "$complete" "$branches") |

The inbox reads each repository's ledger, kept outcomes and pane supervisor (none here); it runs
no git process, so it costs a fraction of one \`git status\` per worktree.
$(load_note)

MD
