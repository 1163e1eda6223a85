# Shared helpers of the benchmark scripts (sourced, not run).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN="${WT_BENCH_BIN:-$ROOT/target/release}"  # WT_BENCH_BIN: try a script on other builds

need() { command -v "$1" >/dev/null || { echo "bench: $1 is missing (apt-get install $2)" >&2; exit 3; }; }

# An isolated git environment, so the user's config cannot change what is measured.
isolate_git() {
  export HOME="$1/home" GIT_CONFIG_GLOBAL="$1/gitconfig" GIT_CONFIG_NOSYSTEM=1
  mkdir -p "$HOME"
  printf '[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n' > "$GIT_CONFIG_GLOBAL"
}

# bench_work NAME: a temp dir for one benchmark ($work), removed on exit, with git isolated in
# it and hyperfine present.
bench_work() {
  need hyperfine hyperfine
  work=$(mktemp -d "/tmp/wt-bench-$1.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  isolate_git "$work"
}

# make_repo DIR FILES: a repository of FILES files of varied size in 40 directories.
make_repo() {
  git init -q "$1"
  python3 - "$1" "$2" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
for i in range(n):
    d = os.path.join(root, "src", "m%02d" % (i % 40), "s%d" % (i % 7))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d.txt" % i), "w") as f:
        f.write(("line %d of a source file\n" % i) * random.randint(5, 200))
PY
  git -C "$1" add -A && git -C "$1" commit -qm "bench fixture"
}

# mean_ms JSON NAME: the mean of one hyperfine command, in milliseconds.
mean_ms() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .mean * 1000' "$1"; }
ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }

# How busy the machine was while a section was measured (the ratios are side by side; the
# absolute times swing with this).
load_note() {
  local io=""
  [ -r /proc/pressure/io ] && io=" I/O pressure (share of the last minute some task waited for the disk): $(awk '/^some/ {sub("avg60=", "", $3); print $3}' /proc/pressure/io)%."
  echo "Load average when measured: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores.$io"
}

# check_drain SCRIPT BYTES: the drain script prints at least BYTES bytes, all printable (or
# newlines): a drain that printed fewer, or bytes a terminal skips, would measure nothing.
check_drain() {
  local bytes printable
  bytes=$(sh "$1" | wc -c) printable=$(sh "$1" | LC_ALL=C tr -d '\n -~' | wc -c)
  [ "$bytes" -ge "$2" ] && [ "$printable" -eq 0 ] ||
    { echo "bench: $1 prints $bytes bytes, $printable not printable; expected $2 printable" >&2; exit 1; }
}
