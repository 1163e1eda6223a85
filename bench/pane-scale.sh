#!/usr/bin/env bash
# wt-run panes at scale (issue 29), side by side with a tmux server and `script` in one run:
# the supervisor's threads, memory and wakeups with 8/32/128 idle panes; its memory after
# drains; and the time to drain three shapes of output (200-character lines, one long
# printable run, `seq`). Prints a markdown section.
source "$(dirname "$0")/lib.sh"
bench_work pane-scale
need tmux tmux
need script bsdutils
export XDG_RUNTIME_DIR="$work/xdg" WT_PANE_IDLE=600s TMUX_TMPDIR="$work/tmux"
mkdir -m 700 "$XDG_RUNTIME_DIR" "$TMUX_TMPDIR"
unset TMUX
tm() { tmux -L bench "$@"; }
trap '"$BIN/wt-run" -C "$work/repo" pane stop >/dev/null 2>&1; tm kill-server >/dev/null 2>&1; rm -rf "$work"' EXIT
make_repo "$work/repo" 3
cd "$work/repo"
"$BIN/wt-create" p >/dev/null

# status PID FIELD: a /proc/PID/status figure (kB for memory).
status() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
# wakeups PID SECONDS: context switches of all of PID's threads per second, over SECONDS.
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'; }
wakeups() {
  local a b
  a=$(switches "$1"); sleep "$2"; b=$(switches "$1")
  python3 -c "print('%.1f' % (($b - $a) / $2))"
}
mib() { python3 -c "print('%.1f' % ($1 / 1024))"; }
sup_pid() {
  python3 -c "import json,socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'{\"id\":1,\"method\":\"server.ping\"}\n'); print(json.loads(s.makefile().readline())['result']['pid'])" "$1"
}
# spawn_panes SOCKET FROM TO CMD: panes idle-FROM..idle-TO running CMD, over one connection.
spawn_panes() {
  python3 - "$@" "$work/repo" <<'PY'
import json, socket, sys
sock, a, b, cmd, cwd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_UNIX); s.connect(sock); f = s.makefile("rwb")
for i in range(a, b + 1):
    f.write(json.dumps({"id": i, "method": "pane.spawn", "params": {"name": "idle-%d" % i, "cmd": ["sh", "-c", cmd], "cwd": cwd}}).encode() + b"\n"); f.flush()
    r = json.loads(f.readline()); assert r["ok"], r
PY
}

# Idle panes: each a shell waiting on `sleep`, nothing printed.
socket=$("$BIN/wt-run" -w p --pane=idle-0 -- sh -c 'exec sleep 100000' | jq -r .run.pane.socket)
sup=$(sup_pid "$socket")
tm new-session -d -s bench -x 120 -y 40 'exec sleep 100000'
tmux_pid=$(tm display -p '#{pid}')
idle_rows=""
have=1
for n in 8 32 128; do
  spawn_panes "$socket" "$have" "$((n - 1))" 'exec sleep 100000'
  for ((i = have; i < n; i++)); do tm new-window -d 'exec sleep 100000'; done
  have=$n
  sleep 3
  w_wt=$(wakeups "$sup" 10) w_tm=$(wakeups "$tmux_pid" 10)
  idle_rows+="| $n | $(mib "$(status "$sup" VmRSS)") MiB | $(status "$sup" Threads) | $w_wt | $(mib "$(status "$tmux_pid" VmRSS)") MiB | $(status "$tmux_pid" Threads) | $w_tm |"$'\n'
done
# Clients that block, on the 128 idle panes: 100 in `pane wait` for text no pane prints and 20
# attach streams, held open while the supervisor is measured.
python3 - "$socket" "$work/clients.ready" <<'PY' &
import json, socket, sys, time
held = []
for i in range(120):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    if i < 100:
        req = {"id": i, "method": "pane.wait", "params": {"pane": "idle-%d" % (i % 127 + 1), "match": "never printed", "timeout_ms": 3600000}}
    else:
        req = {"id": i, "method": "pane.attach", "params": {"pane": "idle-%d" % (i - 99)}}
    s.sendall(json.dumps(req).encode() + b"\n")
    held.append(s)
for s in held[100:]:
    assert b'"attached":true' in s.recv(65536)
open(sys.argv[2], "w").close()
time.sleep(3600)
PY
clients=$!
while [ ! -e "$work/clients.ready" ]; do kill -0 "$clients" || { echo "bench: the blocking clients failed" >&2; exit 1; }; sleep 0.1; done
sleep 3
w_cl=$(wakeups "$sup" 10)
client_row="| 128 idle panes, 100 clients in \`pane wait\`, 20 attached | $(mib "$(status "$sup" VmRSS)") MiB | $(status "$sup" Threads) | $w_cl |"
kill "$clients"
"$BIN/wt-run" pane stop >/dev/null
tm kill-server

# The three shapes of output, checked before anything is timed: a drain that printed fewer
# bytes, or bytes a terminal skips, would measure nothing.
printf '%s\n' "python3 -c \"import sys; l = ('x' * 199 + '\\\\n').encode(); w = sys.stdout.buffer.write; [w(l * 1000) for _ in range(500)]\"" > "$work/lines.sh"
printf '%s\n' "head -c 100000000 /dev/zero | tr '\\000' a" > "$work/run.sh"
printf '%s\n' "seq 1 10000000" > "$work/seq.sh"
check_drain "$work/lines.sh" 100000000
check_drain "$work/run.sh" 100000000
check_drain "$work/seq.sh" 78888897
socket=$("$BIN/wt-run" -w p --pane=warm -- true | jq -r .run.pane.socket)
tm new-session -d -s bench -x 120 -y 40 'exec sleep 100000'
tmux_pid=$(tm display -p '#{pid}')
n=0
for what in lines run seq; do
  python3 "$BENCH_DIR/interleave.py" "${ROUNDS_DRAIN:-5}" "true" \
    pane "bash -c 'n=\$RANDOM\$RANDOM; $BIN/wt-run -w p --pane=d-$what-\$n -- sh $work/$what.sh >/dev/null && $BIN/wt-run pane wait d-$what-\$n --exit --timeout 300s >/dev/null'" \
    tmux "bash -c 'n=\$RANDOM\$RANDOM; tmux -L bench new-window -d \"sh $work/$what.sh; tmux -L bench wait-for -S d\$n\" && tmux -L bench wait-for d\$n'" \
    script "bash -c 'script -qec \"sh $work/$what.sh\" /dev/null >/dev/null'" > "$work/drain-$what.json"
done
# The pane really showed the output: its last screen holds the end of it.
"$BIN/wt-run" -w p --pane=drain-check -- sh "$work/seq.sh" >/dev/null
"$BIN/wt-run" pane wait drain-check --exit --timeout 300s >/dev/null
"$BIN/wt-run" pane screen drain-check | jq -r .text | tail -1 | grep -qx 10000000 ||
  { echo "bench: the pane's screen does not end with the drain's last line" >&2; exit 1; }
sup=$(sup_pid "$socket")
# Memory after drains: 8 panes (and 8 tmux windows) each drained of 100 MB of lines, kept.
for i in 1 2 3 4 5 6 7 8; do
  "$BIN/wt-run" -w p --pane=kept-$i -- sh "$work/lines.sh" >/dev/null
  tm new-window -d "sh $work/lines.sh; tmux -L bench wait-for -S k$i; exec sleep 100000"
done
for i in 1 2 3 4 5 6 7 8; do
  "$BIN/wt-run" pane wait kept-$i --exit --timeout 300s >/dev/null
  tm wait-for k$i
done
# Each pane's screen read once, as a person looking at it would.
for i in 1 2 3 4 5 6 7 8; do "$BIN/wt-run" pane screen kept-$i --lines 1000 >/dev/null; done
drained_wt=$(status "$sup" VmRSS) drained_tm=$(status "$tmux_pid" VmRSS) hwm=$(status "$sup" VmHWM)
# 8 panes that printed more than their scrollback and go on printing (a dot every 200 ms: never
# quiet, so their emulators stay awake with a full scrollback), each read once with all of it.
for i in 1 2 3 4 5 6 7 8; do
  "$BIN/wt-run" -w p --pane=awake-$i -- sh -c 'seq 1 3000; while :; do sleep 0.2; printf .; done' >/dev/null
done
for i in 1 2 3 4 5 6 7 8; do
  "$BIN/wt-run" pane wait awake-$i --match '^3000\n\.' --timeout 60s >/dev/null
  "$BIN/wt-run" pane screen awake-$i --lines 5000 >/dev/null
done
awake_wt=$(status "$sup" VmRSS)

d() { python3 -c "import json; print('%.0f' % json.load(open('$work/drain-$1.json'))['$2']['median_ms'])"; }
drain_row() {
  local p t s
  p=$(d "$1" pane) t=$(d "$1" tmux) s=$(d "$1" script)
  echo "| $2 | $p ms | $t ms | $s ms | $(ratio "$p" "$s")× | $(ratio "$t" "$s")× |"
}
cat <<MD
## wt-run panes at scale: idle cost, memory and drain against tmux and \`script\` (issue 29)

Measured $(date -u +%Y-%m-%d). $(load_note)

Targets: 128 idle panes in at most 8 threads, at most 2× a tmux server's memory, at most 1
wakeup a second; a drain of 100 MB of 200-character lines or of one long printable run in at
most 1.3× the time of \`script -q\`. Idle panes run \`sleep\` in \`sh\` and print nothing (tmux:
one window each, 120×40); wakeups are the context switches of all the process's threads over
10 s. Every drain is checked to print what it claims before it is timed.

| idle panes | wt supervisor RSS | threads | wakeups/s | tmux server RSS | threads | wakeups/s |
|---:|---:|---:|---:|---:|---:|---:|
${idle_rows%$'\n'}

Clients that block hold no thread: connections are state machines on the supervisor's event
loop (a wait is looked at when its pane changes, a stream written as its client reads).

| blocking clients | wt supervisor RSS | threads | wakeups/s |
|---|---:|---:|---:|
$client_row

| drain (spawn to exit, median of ${ROUNDS_DRAIN:-5}) | wt pane | tmux window | \`script -q\` | wt / script | tmux / script |
|---|---:|---:|---:|---:|---:|
$(drain_row lines "100 MB of 200-character lines")
$(drain_row run "100 MB, one printable run")
$(drain_row seq "\`seq 1 10000000\` (79 MB of short lines)")

Memory after 8 panes each drained of 100 MB of lines (and every drain above), screens read:
wt supervisor $(mib "$drained_wt") MiB (peak $(mib "$hwm") MiB), tmux server $(mib "$drained_tm") MiB.
Then 8 more panes that printed 3,000 lines and go on printing (awake, each scrollback full of
1,000 rows kept as text): wt supervisor $(mib "$awake_wt") MiB, $(python3 -c "print('%.0f' % (($awake_wt - $drained_wt) / 8))") KiB a pane.

MD
