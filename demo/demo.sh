#!/usr/bin/env bash
# `make demo`: every wt tool that works today, on a throwaway repository.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# What the demo runs (jq above all): missing, it stops here with what to install, rather than
# printing a `command not found` for every step.
bash "$ROOT/tests/prereqs.sh" demo || exit 1
export PATH="${CARGO_TARGET_DIR:-$ROOT/target}/debug:$PATH"
work=$(mktemp -d /tmp/wt-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export HOME="$work/home" GIT_CONFIG_GLOBAL="$work/gitconfig" GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME"
printf '[user]\n\tname = Demo\n\temail = demo@example.com\n[init]\n\tdefaultBranch = main\n' > "$GIT_CONFIG_GLOBAL"

# Runs one shown command; a non-zero exit is part of what the demo shows, not the end of it.
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; eval "$@" || echo "(exit $?)"; }

git init -q "$work/app" && cd "$work/app"
printf 'print("hello")\n' > app.py
printf '.env\n' > .gitignore
printf '.env\n' > .worktreeinclude
git add -A && git commit -qm "first commit"
printf 'SECRET=from-main\n' > .env
echo "A throwaway repository at $work/app, with a gitignored .env named in .worktreeinclude."

step 'wt-create -n 3                                   # three worktrees, one record each'
step 'wt-create agent-2 | jq -c "{name, created}"      # again: adopted, not made twice'
step 'git worktree list                                # git sees them as its own'
step 'cat ../app.wt/agent-1/.env                       # .worktreeinclude files were copied'
step 'wt-create --list | jq -r .path                   # records compose with any tool'
step 'script -qec "wt-create --list" /dev/null          # on a terminal: a table'
step 'wt-create -- "../escape" 2>&1 || true            # bad input: one line, nothing made'
step 'wt-create --list | wt-env --ports web,api --dotenv --brief CLAUDE.local.md | jq -c "{name, index, port: .env.vars.PORT, api: .env.ports.api}"'
step 'cat ../app.wt/agent-2/.env.wt | head -6                  # the env file, ignored by git'
step 'git -C ../app.wt/agent-2 status --short && echo "(git status is clean)"'
step 'eval "$(wt-env --export agent-1)"; echo "agent-1 serves on port $PORT"'
step 'wt-env --range 20000-20005 agent-1 2>&1 || true   # bad input: the ledger is untouched'
step 'wt-create --list | wt-env | wt-run -j 3 -- sh -c "echo \$WT_NAME on port \$PORT" | jq -c "{name, exit: .run.exit, out: .run.tail}"'
step 'wt-run -w agent-1 --timeout 200ms -- sleep 5 | jq -c "{name, timed_out: .run.timed_out, signal: .run.signal}"'
export XDG_RUNTIME_DIR="$work/run" WT_PANE_IDLE=5s
mkdir -m 700 "$XDG_RUNTIME_DIR"
step 'wt-run -w agent-2 --pane -- bash --norc --noprofile -i | jq -c ".run.pane | {name, pid}"   # an interactive program in a pane'
step 'wt-run pane send agent-2 "echo hello from \$WT_PANE: \$((6*7))" --enter >/dev/null; wt-run pane wait agent-2 --match "hello from agent-2: 42" | jq -r ".screen.text"'
step 'wt-run pane key agent-2 ctrl-d >/dev/null; wt-run pane wait agent-2 --exit | jq -c .exit'
printf 'printf "working...\\r\\n"; sleep 0.3; printf "\\033]9;Approve git push?\\007"; read answer\n' > "$work/asks.sh"
step 'wt-run -w agent-3 --pane --agent-hooks --on-state "waiting=echo \$WT_PANE: \$WT_MESSAGE >> $work/told" -- sh $work/asks.sh | jq -c .run.pane.name   # an agent that asks through a terminal notification'
step 'wt-run pane wait agent-3 --state waiting,idle | jq -c "{state, source, message}"; sleep 0.5; cat $work/told   # --on-state told us'
step 'echo "{\"hook_event_name\":\"UserPromptSubmit\"}" | WT_PANE=agent-3 wt-run pane notify --from-hook claude; wt-run pane ls --json | jq -c "select(.name == \"agent-3\") | {state, source}"   # its hook says: working'
step 'jq -c ".hooks | keys" ../app.wt/agent-3/.claude/settings.local.json   # what --agent-hooks registered for Claude Code'
step 'wt-run pane kill agent-3 >/dev/null'
step 'wt-run -w agent-1 --confine --shell -- "echo x > ../agent-2/intrusion.txt || echo refused" | jq -r ".run.tail[]" 2>&1 | sed "s/^/  /"'
step 'wt-run -w agent-1 --confine --shell -- "git commit -q --allow-empty -m confined && git update-ref refs/heads/main HEAD 2>&1 | tail -1" | jq -c "{tail: .run.tail, published: .run.confined.published.branch, enforced: .run.confined.enforced, git: .run.confined.git, scopes: .run.confined.scopes}"   # its own branch only'
step 'wt-run -w agent-1 --confine -- wt-run -w agent-1 --pane -- true | jq -r ".run.tail[]"   # nor start a pane, which would run unconfined'
step 'echo "gitdir: /" > ../app.wt/agent-1/.git; wt-run -w agent-1 --confine -- true >/dev/null; cat ../app.wt/agent-1/.git   # an agent rewrote its .git: wt puts it back'
step 'echo "{\"name\": \"x\", \"path\": \"/\"}" | wt-env --dotenv 2>/dev/null | jq -c .error   # a record is untrusted input'
step 'cd ../app.wt/agent-1 && echo "print(1)" > one.py && git add one.py && git commit -qm "agent-1: one.py" && cd - >/dev/null'
step 'cd ../app.wt/agent-3 && echo "print(3)" > app.py && git commit -qam "agent-3: rewrite app.py" && cd - >/dev/null'
step 'echo "print(\"main\")" > app.py && git commit -qam "main: edit app.py"   # now agent-3 collides with main'
step 'wt-create --list | wt-merge --check | jq -c "{name, merge: .merge.status, conflicts: .merge.conflicts}"'
step 'wt-create --list | wt-merge --verify "python3 app.py" | jq -c "{name, merge: .merge.status}"'
step 'wt-status --inbox --json | jq -c "{name, reason: .attention.reason, detail: .attention.detail, next: .attention.next}"   # who needs you, and why'
step 'git log --oneline -3; ls'
step 'wt-status --json | jq -c "{name, checkout: .status.state, ahead: .status.ahead, merge: .overview.merge.state}"   # every worktree at a glance'
step 'wt-merge --undo agent-1 | jq -c .merge.status; ls'
printf 'node_modules/\n' >> .gitignore && git commit -qam "ignore node_modules"
mkdir -p node_modules/greet && echo 'module.exports = "hello";' > node_modules/greet/index.js
step 'wt-create deps --share node_modules | jq -c ".share.dirs[0] | {dir, status, method, files}"   # dependencies without installing'
step 'stat -c "%h names: %n" node_modules/greet/index.js ../app.wt/deps/node_modules/greet/index.js'
step 'wt-create --share-status 2>&1 >/dev/null                # the disk they really use'
step 'echo "change" >> ../app.wt/agent-3/app.py; wt-create --remove agent-3 2>&1 || true'
step 'wt-create --list | wt-create --remove --force | jq -c "{name, removed}"'
step 'git worktree list; git branch'

echo
echo "The self-healing loop: a failing test, a stand-in agent in a pane, wt-watch in between."
printf 'for p in a.txt:42 b.txt:7; do f=${p%%%%:*} w=${p#*:}; g=$(cat $f); [ "$g" = "$w" ] || { echo "assertion failed: $f: expected $w, got $g"; exit 1; }; done\n' > check.sh
echo 0 > a.txt && echo 0 > b.txt && git add -A && git commit -qm "a failing test"
step 'wt-create fixer | jq -c "{name}"'
step "wt-run -w fixer --pane -- python3 $ROOT/demo/stand-in-agent.py | jq -c \".run.pane | {name}\"   # the agent"
step 'wt-watch -w fixer --until-green --feed pane --guard check.sh --debounce 100 --quiet-ms 500 -- sh check.sh | jq -c "{name, watch: {status: .watch.status, rounds: .watch.rounds, exit: .watch.run.exit}}"'
step 'wt-run pane screen fixer --lines 40 | jq -r .text | grep -v "^$"            # what the agent saw'
step 'git -C ../app.wt/fixer log --oneline -3'
echo
wt-run pane stop >/dev/null 2>&1 || true
