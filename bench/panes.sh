#!/usr/bin/env bash
# wt-run panes: a screen read round trip over the socket, and draining 100 MB of output
# through a pane against `script -q` through a PTY. Prints a markdown section.
source "$(dirname "$0")/lib.sh"
bench_work panes
export XDG_RUNTIME_DIR="$work/xdg" WT_PANE_IDLE=120s
mkdir -m 700 "$XDG_RUNTIME_DIR"
trap '"$BIN/wt-run" -C "$work/repo" pane stop >/dev/null 2>&1; rm -rf "$work"' EXIT
make_repo "$work/repo" 3
cd "$work/repo"
"$BIN/wt-create" p >/dev/null
socket=$("$BIN/wt-run" -w p --pane=shell -- bash --norc --noprofile -i | jq -r .run.pane.socket)
"$BIN/wt-run" pane wait shell --quiet 300ms >/dev/null

# Round trips on one connection, as an agent or script driving a pane would make them.
python3 - "$socket" > "$work/rtt.json" <<'PY'
import json, socket, statistics, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
def times(method, n=2000):
    out = []
    for i in range(n):
        t = time.perf_counter()
        f.write(json.dumps({"id": i, "method": method, "params": {"pane": "shell"}}).encode() + b"\n"); f.flush()
        assert json.loads(f.readline())["ok"]
        out.append((time.perf_counter() - t) * 1000)
    out.sort()
    return {"median": statistics.median(out), "p99": out[int(len(out) * 0.99)]}
print(json.dumps({"screen": times("pane.read_screen"), "ping": times("server.ping")}))
PY

# What the panes drain, as scripts (no quoting layers to get wrong): 100 MB of printable bytes,
# and the lines of `seq`. Checked before anything is timed: a drain that printed NUL bytes
# (which a terminal emulator skips) or fewer bytes would measure nothing.
printf '%s\n' "head -c 100000000 /dev/zero | tr '\\000' a" > "$work/bytes.sh"
printf '%s\n' "seq 1 10000000" > "$work/lines.sh"
check_drain "$work/bytes.sh" 100000000
check_drain "$work/lines.sh" 78888897
for what in bytes lines; do
  python3 "$BENCH_DIR/interleave.py" "${ROUNDS_DRAIN:-5}" "true" \
    pane "bash -c '$BIN/wt-run -w p --pane=drain-$what -- sh $work/$what.sh >/dev/null && $BIN/wt-run pane wait drain-$what --exit --timeout 300s >/dev/null'" \
    script "bash -c 'script -qec \"sh $work/$what.sh\" /dev/null >/dev/null'" > "$work/drain-$what.json"
done
# The pane really showed the output: its last screen holds the end of it.
"$BIN/wt-run" -w p --pane=drain-check -- sh "$work/lines.sh" >/dev/null
"$BIN/wt-run" pane wait drain-check --exit --timeout 300s >/dev/null
"$BIN/wt-run" pane screen drain-check | jq -r .text | grep -qx 10000000 ||
  { echo "bench: the pane's screen does not end with the drain's last line" >&2; exit 1; }
sup=$(python3 -c "import json,socket; s=socket.socket(socket.AF_UNIX); s.connect('$socket'); s.sendall(b'{\"id\":1,\"method\":\"server.ping\"}\n'); print(json.loads(s.makefile().readline())['result']['pid'])")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$sup/status")

r() { python3 -c "import json; print('%.2f' % json.load(open('$work/rtt.json'))$1)"; }
d() { python3 -c "import json; print('%.0f' % json.load(open('$work/drain-$1.json'))['$2']['median_ms'])"; }
pane_ms=$(d bytes pane) script_ms=$(d bytes script) pane_lines=$(d lines pane) script_lines=$(d lines script)
cat <<MD
## wt-run panes: control-plane latency and output drain (issue 5)

Measured $(date -u +%Y-%m-%d). $(load_note)

Targets: a screen read round trip under 2 ms; a pane drains 100 MB of printable output in at most
1.3× the time \`script -q\` takes through a PTY, with the supervisor's memory bounded by the
scrollback limit. Both drains are checked to print what they claim before they are timed.

| what | median | p99 | reference | ratio |
|---|---:|---:|---|---:|
| \`pane.read_screen\` round trip (120×40 screen, one connection) | $(r "['screen']['median']") ms | $(r "['screen']['p99']") ms | \`server.ping\`: $(r "['ping']['median']") ms | |
| 100 MB of printable bytes through a pane, spawn to exit | $pane_ms ms | | \`script -q\`: $script_ms ms | $(ratio "$pane_ms" "$script_ms")× script's time |
| \`seq 1 10000000\` (79 MB of lines) through a pane | $pane_lines ms | | \`script -q\`: $script_lines ms | $(ratio "$pane_lines" "$script_lines")× script's time |

Supervisor peak memory after ${ROUNDS_DRAIN:-5} drains of each kind: $((hwm / 1024)) MiB (VmHWM).

MD
