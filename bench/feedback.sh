#!/usr/bin/env bash
# wt-watch: from a red round's start to its failure in the agent's pane, against the suite's
# own run time, side by side. The suite is a real one: more-itertools' sdist from PyPI with
# its tests, run by pytest from PyPI, with one bug seeded (`quantify` counts one too many);
# the agent is the stand-in agent (demo/stand-in-agent.py) in a wt-run pane, which notes each
# message it is given. Each trial starts wt-watch on the worktree (it runs once at start) and
# takes the time from the round's start (a `pytest` wrapper notes it, then execs pytest) to
# the message in the agent's log; the suite alone is timed between trials. Prints a markdown
# section.
source "$(dirname "$0")/lib.sh"
TRIALS=${TRIALS:-3}
SDIST=${SDIST:-more-itertools==11.2.1}
work=$(mktemp -d /tmp/wt-bench-feedback.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$BIN/wt-run" pane stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
isolate_git "$work"
export XDG_RUNTIME_DIR="$work/xdg" TMUX_TMPDIR="$work/xdg"
mkdir -m 700 -p "$XDG_RUNTIME_DIR"

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check pytest
(cd "$work" && "$work/venv/bin/pip" download -q --disable-pip-version-check --no-binary :all: --no-deps "$SDIST")
mkdir "$work/repo"
tar xzf "$work"/*.tar.gz -C "$work/repo" --strip-components=1
cd "$work/repo"
sed -i 's/    return sum(map(pred, iterable))$/    return sum(map(pred, iterable)) + 1/' more_itertools/recipes.py
grep -q 'sum(map(pred, iterable)) + 1' more_itertools/recipes.py || { echo "bench: the bug was not seeded" >&2; exit 1; }
printf '__pycache__/\n*.egg-info/\n' > .gitignore
git init -q && git add -A && git commit -qm "more-itertools with a bug"
"$BIN/wt-create" fb >/dev/null
tree="$work/repo.wt/fb"

# `pytest`, as wt-watch sees it (narrowed with --lf), noting when each run starts.
mkdir "$work/bin"
cat > "$work/bin/pytest" <<SH
#!/bin/sh
date +%s%N >> "$work/starts"
exec "$work/venv/bin/python" -m pytest "\$@"
SH
chmod +x "$work/bin/pytest"
"$BIN/wt-run" -w fb --pane -- python3 "$ROOT/demo/stand-in-agent.py" "$work/agent.log" >/dev/null
"$BIN/wt-run" pane wait fb --match 'agent>' --timeout 20s >/dev/null

suite_s() {
  local t0 t1
  t0=$(date +%s%N)
  (cd "$tree" && "$work/venv/bin/python" -m pytest -q -p no:cacheprovider >/dev/null 2>&1) || true
  t1=$(date +%s%N)
  python3 -c "print(($t1 - $t0) / 1e9)"
}

fed=() suite=() runs=() round=()
for i in $(seq 1 "$TRIALS"); do
  suite+=("$(suite_s)")
  rm -f "$work/starts"
  before=$(grep -c '^MESSAGE ' "$work/agent.log" 2>/dev/null || true)
  "$BIN/wt-watch" -w fb --feed pane --debounce 100 --quiet-ms 300 -- "$work/bin/pytest" -q >"$work/trial$i.jsonl" 2>/dev/null &
  pid=$!
  pids+=($pid)
  got=$(python3 - "$work/agent.log" "${before:-0}" <<'PY'
import sys, time
log, before = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 600
while time.time() < deadline:
    try:
        n = sum(line.startswith("MESSAGE ") for line in open(log))
    except FileNotFoundError:
        n = 0
    if n > before:
        print(time.time_ns())
        break
    time.sleep(0.002)
PY
)
  start=$(head -1 "$work/starts")
  fed+=("$(python3 -c "print(($got - $start) / 1e9)")")
  # The red round's own run, as its record says: the suite under the same load.
  round+=("$(head -1 "$work/trial$i.jsonl" | python3 -c 'import json, sys; print(json.load(sys.stdin)["watch"]["run"]["duration_ms"] / 1000)')")
  # The narrow re-run goes on while the agent reads: wait for it, so the next trial is alone.
  sleep 2
  deadline=$((SECONDS + 300))
  while [ "$(wc -l < "$work/starts")" -lt 2 ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  runs+=("$(wc -l < "$work/starts")")
  sleep 2 # the agent's screen settles
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
fm=$(median "${fed[@]}") sm=$(median "${suite[@]}")
over=()
for i in "${!fed[@]}"; do over+=("$(python3 -c "print(${fed[$i]} - ${round[$i]})")"); done
om=$(median "${over[@]}") rm_=$(median "${round[@]}")
pytest_v=$("$work/venv/bin/python" -m pytest --version 2>&1 | head -1)
cat <<MD
## wt-watch: red → the agent's pane after one run (issue 26)

Measured $(date +%F), $SDIST from PyPI (its own tests, $pytest_v), wt from
\`$(basename "$(dirname "$BIN")")/$(basename "$BIN")\`. $(load_note)

Target: a red round's failure reaches the agent's pane within one suite run + 0.5 s (before,
every red round ran twice before it was fed: 2–3 runs). The failing test alone runs again
(\`--lf\`) after the feed, while the agent reads. Median of $TRIALS trials, each a fresh
wt-watch whose first round is red. Side by side: that round's own run (its record's
\`duration_ms\`: the suite under the same load, as the machine is shared), and the suite
alone (same command, no cache) timed between trials.

| what | round start → message in the pane | the round's own suite run | pane − run | the suite alone |
|---|---:|---:|---:|---:|
| median | $(printf '%.2f' "$fm") s | $(printf '%.2f' "$rm_") s | $(printf '%+.2f' "$om") s | $(printf '%.2f' "$sm") s |
| each trial | $(printf '%.2f ' "${fed[@]}")s | $(printf '%.2f ' "${round[@]}")s | $(printf '%+.2f ' "${over[@]}")s | $(printf '%.2f ' "${suite[@]}")s |

Runs of the suite per trial, the narrow re-run included: ${runs[*]} (the second is \`pytest -q --lf --lfnf=none\`, after the feed).
MD
