#!/usr/bin/env bash
# wt-watch: from a file write to the test command starting, against watchexec at the same
# debounce, side by side on two worktrees of one 3,000-file repository (writes alternate
# between them); then the idle CPU of one wt-watch over 32 worktrees of 3,000 files for 60 s,
# with watchexec over the same 32 beside it. Prints a markdown section.
source "$(dirname "$0")/lib.sh"
need watchexec "cargo install watchexec-cli"
work=$(mktemp -d /tmp/wt-bench-watch.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
isolate_git "$work"
DEBOUNCE=${DEBOUNCE_MS:-300}
CHANGES=${CHANGES:-25}
WORKTREES=${WORKTREES:-32}
IDLE_S=${IDLE_S:-60}

make_repo "$work/repo" 3000
cd "$work/repo"
"$BIN/wt-create" lat-wt lat-wx >/dev/null
# The "test": write when it started, nothing else, so what is measured is the watcher.
probe() { printf 'date +%%s%%N >> %s' "$1"; }
"$BIN/wt-watch" -w lat-wt --feed none --debounce "$DEBOUNCE" --shell -- "$(probe "$work/starts.wt")" >/dev/null 2>&1 &
pids+=($!)
watchexec --debounce "${DEBOUNCE}ms" -w "$work/repo.wt/lat-wx" --shell=sh -- "$(probe "$work/starts.wx")" >/dev/null 2>&1 &
pids+=($!)

python3 - "$work" "$CHANGES" > "$work/latency.json" <<'PY'
import json, os, statistics, sys, time
work, n = sys.argv[1], int(sys.argv[2])
def starts(tool):
    try:
        return [int(l) for l in open(f"{work}/starts.{tool}")]
    except FileNotFoundError:
        return []
def settle(tool):  # wait for the run at start, then for quiet
    deadline = time.time() + 60
    while not starts(tool) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
lat = {"wt": [], "wx": []}
for tool in lat:
    settle(tool)
for i in range(n):
    for tool in (("wt", "wx") if i % 2 == 0 else ("wx", "wt")):
        before = len(starts(tool))
        path = f"{work}/repo.wt/lat-{tool}/src/m{i % 40:02d}/s0/f{i % 40}.txt"
        t0 = time.time_ns()
        with open(path, "a") as f:
            f.write(f"change {i}\n")
        deadline = time.time() + 30
        while len(starts(tool)) <= before and time.time() < deadline:
            time.sleep(0.001)
        got = starts(tool)
        if len(got) > before:
            lat[tool].append((got[before] - t0) / 1e6)
        time.sleep(0.8)  # well past the debounce: the next change is a new one
print(json.dumps({t: {"median": statistics.median(v), "p90": sorted(v)[int(len(v) * 0.9)], "n": len(v)} for t, v in lat.items()}))
PY
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
pids=()

# Idle: 32 worktrees, one wt-watch over all of them, one watchexec over the same directories.
"$BIN/wt-create" --remove --force lat-wt lat-wx >/dev/null
names=$(seq -f "idle-%g" 1 "$WORKTREES")
"$BIN/wt-create" -j "$(nproc)" $names >/dev/null
"$BIN/wt-watch" --all --feed none -- true > "$work/idle.jsonl" 2>/dev/null &
wt_pid=$!
pids+=($wt_pid)
wx_args=()
for n in $names; do wx_args+=(-w "$work/repo.wt/$n"); done
watchexec --postpone "${wx_args[@]}" -- true >/dev/null 2>&1 &
wx_pid=$!
pids+=($wx_pid)
# Until every worktree has had its first round (wt-watch's watches are all set by then).
deadline=$((SECONDS + 300))
while [ "$(wc -l < "$work/idle.jsonl")" -lt "$WORKTREES" ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
sleep 5
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
wt0=$(cpu $wt_pid) wx0=$(cpu $wx_pid)
sleep "$IDLE_S"
wt1=$(cpu $wt_pid) wx1=$(cpu $wx_pid)
pct() { python3 -c "print(f'{($2 - $1) / $tck / $IDLE_S * 100:.3f}')"; }
files=$(find "$work/repo.wt" -type f -not -path '*/.git*' | wc -l)

l() { python3 -c "import json; print('%.1f' % json.load(open('$work/latency.json'))['$1']['$2'])"; }
cat <<MD
## wt-watch: change-to-test latency and idle cost (issue 13)

Measured $(date -u +%Y-%m-%d), $(watchexec --version | head -1).

Targets: from a file write to the test command starting, no later than watchexec at the same
debounce (${DEBOUNCE} ms), median of at least 20 changes on a 3,000-file tree; one wt-watch over
$WORKTREES worktrees of 3,000 files each idles under 1% of a core over 60 s. The two watchers ran
side by side, each on its own worktree of the same repository, the writes alternating between
them; the "test" only records when it started.

| what | wt-watch | watchexec | ratio |
|---|---:|---:|---:|
| write → test starts, median of $(python3 -c "import json; print(json.load(open('$work/latency.json'))['wt']['n'])") changes | $(l wt median) ms | $(l wx median) ms | $(ratio "$(l wt median)" "$(l wx median)") |
| write → test starts, p90 | $(l wt p90) ms | $(l wx p90) ms | |
| idle CPU over ${IDLE_S} s, $WORKTREES worktrees ($files files) | $(pct "$wt0" "$wt1") % of a core | $(pct "$wx0" "$wx1") % | |

MD
