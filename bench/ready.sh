#!/usr/bin/env bash
# Time to ready agents: from no worktree to N worktrees (default 8) each READY, that is with its
# dependencies installed, an env (ports in an env file) and an agent pane started, on a real npm
# project (express, jest, supertest, eslint: 428 packages in the committed package-lock.json) and
# on a real Python project (Flask's sdist from PyPI, editable, with its test dependencies in a
# venv). Prints a markdown section for bench/results.md.
#
# Contenders, side by side in shuffled rounds (ROUNDS_READY, default 1: each round installs
# several thousand packages, so it is run once and the load it met is recorded beside it):
#   person     a script as a person writes it: per worktree `git worktree add`, `npm ci` (or
#              `python -m venv` + `pip install`), an env file, a tmux session with the agent;
#              one worktree after another, and 2 at a time (`xargs -P 2`)
#   store      the same with pnpm and its store (`pnpm install --frozen-lockfile`), or uv and its
#              cache (`uv venv` + `uv pip install`), both warm
#   wt cold    `wt-create -n N --share DIR | wt-env --dotenv | wt-run --pane -- AGENT`, with wt's
#              share store empty (the first worktree's share hashes the main worktree's directory)
#   wt pool    the same pipeline claiming from `wt-create --pool N` filled beforehand (run only
#              when `wt-create --help` mentions --pool; said so otherwise)
# Every contender starts from the same state: the main worktree with its dependencies installed
# (as a person's checkout has them), the package managers' caches warm, no worktree. The agent is
# a stand-in (`sleep`), started in a tmux session for the scripts and in a wt pane for wt: ready
# means started. After each timed run, and before the next, every worktree is checked to be ready
# (its test runner resolves, from its own directory; an env file; a live agent), outside the
# timing; the bench fails if one is not.
source "$(dirname "$0")/lib.sh"
need npm npm
need tmux tmux
N=${READY_N:-8}
ROUNDS=${ROUNDS_READY:-1}
bench_work ready
export XDG_RUNTIME_DIR="$work/xdg" WT_PORT_REGISTRY="$work/ports" WT_PANE_IDLE=600s
export npm_config_cache="$work/npm-cache" npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
export PIP_CACHE_DIR="$work/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1 UV_CACHE_DIR="$work/uv-cache"
unset VIRTUAL_ENV PYTHONPATH
mkdir -m 700 "$XDG_RUNTIME_DIR"
mkdir -p "$WT_PORT_REGISTRY" "$work/trash"
# The agent: a sleep with a duration nothing else on the machine uses, so its processes can be
# counted.
AGENT="sleep 1000.$$"
TMUX_SOCKET="wt-bench-ready-$$"
stop_agents() {
  for repo in "$work/npm" "$work/py"; do [ ! -d "$repo" ] || "$BIN/wt-run" -C "$repo" pane stop >/dev/null 2>&1 || true; done
  tmux -L "$TMUX_SOCKET" kill-server 2>/dev/null || true
}
trap 'stop_agents; rm -rf "$work"' EXIT
has_pnpm=false has_uv=false has_pool=false
command -v pnpm >/dev/null && has_pnpm=true
command -v uv >/dev/null && has_uv=true
"$BIN/wt-create" --help | grep -q -- '--pool' && has_pool=true

# The two projects, each a repository whose main worktree has its dependencies installed.
git init -q -b main "$work/npm"
cp "$BENCH_DIR/ready/npm/package.json" "$BENCH_DIR/ready/npm/package-lock.json" "$work/npm/"
(
  cd "$work/npm"
  printf 'node_modules/\n.env\n.env.wt\n' > .gitignore
  mkdir -p src test
  printf 'const express = require("express");\nconst app = express();\napp.get("/", (_, res) => res.send("ok"));\nmodule.exports = app;\n' > src/app.js
  printf 'const request = require("supertest");\nconst app = require("../src/app");\ntest("root", () => request(app).get("/").expect(200));\n' > test/app.test.js
  npm ci -q >/dev/null
  if $has_pnpm; then
    # pnpm reads the same lock file (`pnpm import`); its store is warmed by one install in a
    # scratch copy, so every timed install links from the store and asks the registry nothing.
    pnpm import >/dev/null 2>&1
    mkdir "$work/pnpm-warm" && cp package.json pnpm-lock.yaml "$work/pnpm-warm/"
    (cd "$work/pnpm-warm" && pnpm install -s --frozen-lockfile --store-dir "$work/pnpm-store" >/dev/null)
    rm -rf "$work/pnpm-warm"
  fi
  git add -A && git commit -qm "npm app"
)
npm_packages=$(jq '[.packages | keys[] | select(. != "")] | length' "$work/npm/package-lock.json")
npm_files=$(find "$work/npm/node_modules" -type f | wc -l)
npm_mb=$(du -sm "$work/npm/node_modules" | cut -f1)

git init -q -b main "$work/py"
(
  cd "$work/py"
  pip download -q --no-deps --no-binary :all: flask==3.0.3 -d "$work/sdist"
  tar -xzf "$work/sdist"/flask-3.0.3.tar.gz --strip-components=1
  cp "$BENCH_DIR/ready/python/requirements.txt" requirements-test.txt
  printf '.venv/\n.env\n.env.wt\n__pycache__/\n*.egg-info/\n' > .gitignore
  python3 -m venv .venv
  .venv/bin/pip install -q -r requirements-test.txt -e . >/dev/null
  if $has_uv; then
    uv venv -q "$work/uv-warm" && VIRTUAL_ENV="$work/uv-warm" uv pip install -q -r requirements-test.txt -e . >/dev/null
    rm -rf "$work/uv-warm"
  fi
  git add -A && git commit -qm "flask sdist with its test requirements"
)
py_packages=$(grep -c '==' "$BENCH_DIR/ready/python/requirements.txt")
py_files=$(find "$work/py/.venv" -type f | wc -l)
py_mb=$(du -sm "$work/py/.venv" | cut -f1)

# One worktree made ready as a person's script does it: PROJECT (npm, py), TOOL (npm, pnpm,
# pip, uv), I.
cat > "$work/one.sh" <<SH
set -euo pipefail
project=\$1 tool=\$2 i=\$3
dir="$work/\$project.wt/g-\$i"
cd "$work/\$project"
git worktree add -q -b "wt/g-\$i" "\$dir" HEAD
cd "\$dir"
case \$tool in
  npm) npm ci -q >/dev/null ;;
  pnpm) pnpm install -s --frozen-lockfile --prefer-offline --store-dir "$work/pnpm-store" >/dev/null ;;
  pip) python3 -m venv .venv && .venv/bin/pip install -q -r requirements-test.txt -e . >/dev/null ;;
  uv) uv venv -q .venv && VIRTUAL_ENV="\$dir/.venv" uv pip install -q -r requirements-test.txt -e . >/dev/null ;;
esac
printf 'PORT=%d\n' \$((20000 + 10 * i)) > .env
tmux -L "$TMUX_SOCKET" new-session -d -s "\$project-g-\$i" -c "\$dir" "$AGENT"
SH
seq_cmd() { echo "bash -c 'for i in \$(seq 1 $N); do bash $work/one.sh $1 $2 \$i; done'"; }
par_cmd() { echo "bash -c 'seq 1 $N | xargs -P 2 -I{} bash $work/one.sh $1 $2 {}'"; }
wt_cmd() { echo "bash -o pipefail -c '$BIN/wt-create -C $work/$1 -n $N --share $2 | $BIN/wt-env -C $work/$1 --dotenv | $BIN/wt-run -C $work/$1 --pane -- $AGENT >/dev/null'"; }

# Between runs (untimed): every worktree made by the last run is checked to be ready, then its
# agents stopped, the worktrees moved aside (deleted only at the end: deleting thousands of files
# right before a timed run charges the file system's deferred work to it), branches, wt's state
# (ledger, share store, pool) and port claims removed, and the disk settled.
cat > "$work/reset.sh" <<SH
set -euo pipefail
project=\$1
cd "$work/\$project"
if [ -d "../\$project.wt" ]; then
  made=0
  for dir in ../\$project.wt/*/; do
    made=\$((made + 1))
    ( cd "\$dir"
      [ -e .env ] || [ -e .env.wt ] || { echo "bench: \$dir has no env file" >&2; exit 1; }
      if [ \$project = npm ]; then
        node -e 'const p = require.resolve("jest"); if (!require("fs").realpathSync(p).startsWith(process.cwd()) && !p.startsWith(process.cwd())) { console.error("jest resolves to " + p); process.exit(1) }'
        node_modules/.bin/jest --version >/dev/null
      else
        .venv/bin/python -c 'import flask, pytest, os, sys; f = os.path.realpath(flask.__file__); sys.exit(0 if f.startswith(os.getcwd()) else "flask imports from " + f)'
      fi ) || { echo "bench: \$dir is not ready" >&2; exit 1; }
  done
  agents=\$(pgrep -cxf "$AGENT" || true)
  [ "\$made" -eq $N ] && [ "\$agents" -eq $N ] || { echo "bench: \$made worktrees and \$agents agents, expected $N of each" >&2; exit 1; }
fi
"$BIN/wt-run" pane stop >/dev/null 2>&1 || true
tmux -L "$TMUX_SOCKET" kill-server 2>/dev/null || true
for _ in \$(seq 1 50); do pgrep -xf "$AGENT" >/dev/null || break; sleep 0.1; done
! pgrep -xf "$AGENT" >/dev/null || { echo "bench: agents left running" >&2; exit 1; }
if $has_pool; then "$BIN/wt-create" --pool 0 >/dev/null 2>&1 || true; fi
[ ! -e "../\$project.wt" ] || mv "../\$project.wt" "$work/trash/\$(date +%s%N)"
git worktree prune
git for-each-ref --format="delete %(refname)" refs/heads/wt/ | git update-ref --stdin
rm -rf .git/wt "$WT_PORT_REGISTRY"/*
sync && sleep 1
SH

# The pool's prepare: a clean state, then a full pool of N (waited for, untimed).
cat > "$work/fill-pool.sh" <<SH
set -euo pipefail
bash "$work/reset.sh" \$1
cd "$work/\$1"
"$BIN/wt-create" --pool $N --share \$2 >/dev/null
for _ in \$(seq 1 1200); do
  [ "\$(git worktree list --porcelain | grep -c '^worktree ')" -gt $N ] && break
  sleep 0.5
done
sync && sleep 1
SH

measure() { # PROJECT DIR TOOL STORE_TOOL
  local args=(person-seq "$(seq_cmd "$1" "$3")" person-par2 "$(par_cmd "$1" "$3")")
  if { [ "$4" = pnpm ] && $has_pnpm; } || { [ "$4" = uv ] && $has_uv; }; then args+=(store "$(seq_cmd "$1" "$4")"); fi
  args+=(wt-cold "$(wt_cmd "$1" "$2")")
  python3 "$BENCH_DIR/interleave.py" "$ROUNDS" "bash $work/reset.sh $1" "${args[@]}" > "$work/$1.json"
  if $has_pool; then
    python3 "$BENCH_DIR/interleave.py" "$ROUNDS" "bash $work/fill-pool.sh $1 $2" wt-pool "$(wt_cmd "$1" "$2")" > "$work/$1-pool.json"
  fi
  bash "$work/reset.sh" "$1"
}
load_npm=$(load_note)
measure npm node_modules npm pnpm
load_py=$(load_note)
measure py .venv pip uv

s() { python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print('%.2f' % (d[sys.argv[2]]['median_ms'] / 1000) if sys.argv[2] in d else '—')" "$work/$1.json" "$2"; }
r() { jq -r --arg c "$2" --arg ref "${3:-person-seq}" 'if .[$c] then "\(.[$c].median_ms / .[$ref].median_ms * 1000 | round / 1000)" else "—" end' "$work/$1.json"; }
pool_row() { # PROJECT
  if $has_pool; then
    local pool_ms ref_ms
    pool_ms=$(jq '.["wt-pool"].median_ms' "$work/$1-pool.json") ref_ms=$(jq '.["person-seq"].median_ms' "$work/$1.json")
    echo "| wt from the pool: \`wt-create --pool $N\` filled beforehand, then the same pipeline | $(python3 -c "print('%.2f' % ($pool_ms / 1000))") | $(ratio "$pool_ms" "$ref_ms") |"
  else
    echo "| wt from the pool | not measured: this build's \`wt-create\` has no \`--pool\` | — |"
  fi
}
store_note() { if $1; then echo ""; else echo " ($2 is not installed: not measured)"; fi; }
cat <<MD
## Time to ready agents: $N worktrees with dependencies, env and agent pane (issue 27)

Measured $(date -u +%Y-%m-%d), ${ROUNDS} round(s) (each installs thousands of packages; the
ratios are side by side in one run, the absolute seconds swing with the load). Targets, against
the script a person writes (\`git worktree add\` + \`npm ci\` per worktree, one after another):
wt from the pool ≤ 0.05×, wt cold ≤ 0.3×.

READY: the worktree exists on its branch, its dependencies resolve from inside it, an env file
gives it its ports, and an agent (a stand-in \`sleep\`) runs in a terminal of its own (a tmux
session for the scripts, a wt pane for wt). Every contender starts from the main worktree with
its dependencies installed and the package managers' caches warm, no worktree; each run's
worktrees are checked to be ready afterwards (untimed). wt cold starts with wt's share store
empty.

**npm**: express, jest, supertest, eslint: $npm_packages packages in \`package-lock.json\`,
$npm_files files, $npm_mb MB in \`node_modules\`. $load_npm

| contender | seconds | ratio to \`git worktree add\` + \`npm ci\` |
|---|---:|---:|
| \`git worktree add\` + \`npm ci\` + env file + tmux session, per worktree, one after another | $(s npm person-seq) | 1.000 |
| the same, 2 worktrees at a time (\`xargs -P 2\`) | $(s npm person-par2) | $(r npm person-par2) |
| \`git worktree add\` + \`pnpm install --frozen-lockfile\` from a warm store (hard links), one after another$(store_note $has_pnpm pnpm) | $(s npm store) | $(r npm store) |
| wt cold: \`wt-create -n $N --share node_modules \| wt-env --dotenv \| wt-run --pane -- AGENT\` | $(s npm wt-cold) | $(r npm wt-cold) |
$(pool_row npm)

**Python**: Flask 3.0.3's sdist from PyPI, installed editable with its test requirements
($py_packages pinned packages: pytest, Werkzeug, Jinja2, …) into \`.venv\`: $py_files files, $py_mb MB. $load_py

| contender | seconds | ratio to \`git worktree add\` + \`venv\` + \`pip install\` |
|---|---:|---:|
| \`git worktree add\` + \`python -m venv\` + \`pip install -r requirements-test.txt -e .\` + env file + tmux session, per worktree, one after another | $(s py person-seq) | 1.000 |
| the same, 2 worktrees at a time (\`xargs -P 2\`) | $(s py person-par2) | $(r py person-par2) |
| \`git worktree add\` + \`uv venv\` + \`uv pip install\` from a warm cache, one after another$(store_note $has_uv uv) | $(s py store) | $(r py store) |
| wt cold: \`wt-create -n $N --share .venv \| wt-env --dotenv \| wt-run --pane -- AGENT\` | $(s py wt-cold) | $(r py wt-cold) |
$(pool_row py)

MD
