#!/usr/bin/env bash
# wt-watch idle against watchexec over one real cargo repository (a crate from crates.io, made a
# git repository): both watch the same worktree side by side for IDLE_S seconds (60) with
# nothing changing, after wt-watch's first round; the CPU time each used (utime + stime from
# /proc/PID/stat, children excluded) is compared. wt-watch runs on a terminal (a pty from
# python's pty module), as a person runs it, so its status line is on; a second wt-watch writes to a pipe.
# Prints a markdown section.
source "$(dirname "$0")/lib.sh"
need watchexec "cargo install watchexec-cli"
need curl curl
CRATE=${CRATE:-regex}
VERSION=${VERSION:-1.13.2}
IDLE_S=${IDLE_S:-60}
work=$(mktemp -d /tmp/wt-bench-watch-idle.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
isolate_git "$work"

curl -sSfL -o "$work/crate.tar.gz" "https://static.crates.io/crates/$CRATE/$CRATE-$VERSION.crate"
tar xzf "$work/crate.tar.gz" -C "$work"
mv "$work/$CRATE-$VERSION" "$work/repo"
cd "$work/repo"
printf 'target/\n' >> .gitignore
git init -q . && git add -A && git commit -qm "$CRATE $VERSION from crates.io"
"$BIN/wt-create" idle >/dev/null
tree="$work/repo.wt/idle"
# A build's output, as a watched cargo repository has it: ignored, so no watcher runs for it.
mkdir -p "$tree/target/debug/deps" && for i in $(seq 1 500); do echo "$i" > "$tree/target/debug/deps/f$i.rlib"; done
files=$(git -C "$tree" ls-files | wc -l)

# The test command only notes that it ran: what is measured is the watching.
probe() { printf 'echo run >> %s' "$1"; }
# On a terminal: a pty whose other end is read (and thrown away) as a terminal emulator would.
python3 - "$work/tty.pid" "$BIN/wt-watch" -w idle --feed none --shell -- "$(probe "$work/runs.tty")" <<'PY' &
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
open(sys.argv[1], "w").write(str(pid))
try:
    while os.read(fd, 4096):
        pass
except OSError:
    pass
PY
pids+=($!)
"$BIN/wt-watch" -w idle --feed none --shell -- "$(probe "$work/runs.pipe")" > "$work/pipe.jsonl" 2>/dev/null &
pipe_pid=$!
pids+=($pipe_pid)
watchexec --postpone -w "$tree" --shell=sh -- "$(probe "$work/runs.wx")" >/dev/null 2>&1 &
wx_pid=$!
pids+=($wx_pid)
deadline=$((SECONDS + 120))
until [ -s "$work/runs.tty" ] && [ -s "$work/pipe.jsonl" ] || [ $SECONDS -gt $deadline ]; do sleep 0.2; done
tty_pid=$(cat "$work/tty.pid" 2>/dev/null || true)
[ -n "$tty_pid" ] && [ -s "$work/runs.tty" ] || { echo "bench: the wt-watch on a terminal did not start" >&2; exit 1; }
pids+=("$tty_pid")
sleep 3
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Per thread: nanoseconds on a CPU and context switches (voluntary + not), "tid ns switches".
threads() {
  for t in /proc/"$1"/task/*; do
    echo "${t##*/} $(cut -d' ' -f1 "$t/schedstat") $(awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s}' "$t/status")"
  done 2>/dev/null
}
# The difference over the threads alive at both samples (a thread that ended meanwhile is only
# in the tick count): "ns switches".
delta() { python3 - "$1" "$2" <<'PY'
import sys
a = {l.split()[0]: l.split()[1:] for l in open(sys.argv[1]) if l.strip()}
b = {l.split()[0]: l.split()[1:] for l in open(sys.argv[2]) if l.strip()}
common = a.keys() & b.keys()
print(sum(int(b[t][0]) - int(a[t][0]) for t in common), sum(int(b[t][1]) - int(a[t][1]) for t in common))
PY
}
tck=$(getconf CLK_TCK)
t0=$(cpu "$tty_pid") p0=$(cpu "$pipe_pid") x0=$(cpu "$wx_pid")
threads "$tty_pid" > "$work/t0"; threads "$pipe_pid" > "$work/p0"; threads "$wx_pid" > "$work/x0"
sleep "$IDLE_S"
t1=$(cpu "$tty_pid") p1=$(cpu "$pipe_pid") x1=$(cpu "$wx_pid")
threads "$tty_pid" > "$work/t1"; threads "$pipe_pid" > "$work/p1"; threads "$wx_pid" > "$work/x1"
read -r tns tsw < <(delta "$work/t0" "$work/t1")
read -r pns psw < <(delta "$work/p0" "$work/p1")
read -r xns xsw < <(delta "$work/x0" "$work/x1")
ms() { python3 -c "print(f'{($2 - $1) * 1000 / $tck:.0f}')"; }
us() { python3 -c "print(f'{$1 / 1000:.0f}')"; }
runs() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }

cat <<MD
## wt-watch idle over a cargo repository, beside watchexec (issue 26)

Measured $(date -u +%Y-%m-%d), $(watchexec --version | head -1), on $CRATE $VERSION from crates.io
($files files in git, 500 more in an ignored \`target/\`).

Target: an idle wt-watch uses no more CPU than watchexec over the same repository in ${IDLE_S} s.
Both watched the same worktree side by side, nothing changing, after wt-watch's first round;
CPU is utime + stime of the watcher itself (its test runs excluded), in clock ticks of
$((1000 / tck)) ms, and, finer, the time on a CPU and the context switches (wake-ups) of its
threads that lived through the whole window (from /proc/PID/task/*/schedstat and status).
One wt-watch ran on a terminal (its status line on), one into a pipe. (Before issue 26, the one
on a terminal woke once a second to redraw the timer of its \`green; watching\` line: 21 wake-ups
and 10 ms in 20 s, where the others had none; a line at rest now has no timer.)

| over ${IDLE_S} s idle | wt-watch on a terminal | wt-watch into a pipe | watchexec |
|---|---:|---:|---:|
| CPU (clock ticks) | $(ms "$t0" "$t1") ms | $(ms "$p0" "$p1") ms | $(ms "$x0" "$x1") ms |
| CPU (threads' time on a CPU) | $(us "$tns") µs | $(us "$pns") µs | $(us "$xns") µs |
| wake-ups | $tsw | $psw | $xsw |
| test runs while idle | $(($(runs "$work/runs.tty") - 1)) | $(($(runs "$work/runs.pipe") - 1)) | $(runs "$work/runs.wx") |

$(load_note)

MD
