#!/usr/bin/env bash
# The build governor (issue 28): 8 worktrees each building a crate of ~30 dependencies from
# crates.io cold (a target dir of their own; the registry already downloaded), all at once
# through `wt-run --all -j 8`, without the governor and with it (tokens = cores). Sampled every
# 0.5 s: the 1-minute load average and the rustc processes of these builds. Prints a markdown
# section.
source "$(dirname "$0")/lib.sh"
need jq jq
# The person's toolchain and registry cache, before HOME is isolated.
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
work=$(mktemp -d "/tmp/wt-bench-governor.XXXXXX")
trap 'rm -rf "$work"' EXIT
isolate_git "$work"
export XDG_RUNTIME_DIR="$work/xdg" WT_GOVERNOR_IDLE=5s
mkdir -m 700 "$XDG_RUNTIME_DIR"
unset MAKEFLAGS CARGO_MAKEFLAGS CARGO_TARGET_DIR CARGO_BUILD_JOBS WT_GOVERNOR WT_GOVERNOR_TOKENS
cores=$(nproc)
WORKTREES=${WT_BENCH_WORKTREES:-8}
# No debuginfo: 8 cold target dirs at once stay small (a full disk fails the batch midway).
export CARGO_PROFILE_DEV_DEBUG=0
free_mb=$(df -Pm "$work" | awk 'NR == 2 {print $4}')
[ "$free_mb" -ge 1024 ] || { echo "bench: $free_mb MB free where the builds go; $WORKTREES cold target dirs need about 1 GB" >&2; exit 3; }

git init -q "$work/repo"
cd "$work/repo"
cat > Cargo.toml <<'TOML'
[package]
name = "governed"
version = "0.1.0"
edition = "2021"

[dependencies]
clap = { version = "4", default-features = false, features = ["std", "help", "usage", "error-context", "color"] }
serde_json = "1"
regex = "1"
smallvec = "1"
fnv = "1"
cfg-if = "1"
lazy_static = "1"
scopeguard = "1"
log = "0.4"
bitflags = "2"
either = "1"
once_cell = "1"
byteorder = "1"
base64 = "0.22"
hex = "0.4"
percent-encoding = "2"
unicode-width = "0.2"
itoa = "1"
ryu = "1"
memchr = "2"

[workspace]
TOML
mkdir src && echo 'pub fn f() -> usize { regex::Regex::new("a+").unwrap().find("caab").map_or(0, |m| m.len()) }' > src/lib.rs
printf 'target/\n.bench-done\n' > .gitignore
cargo generate-lockfile -q
cargo fetch -q
deps=$(($(cargo metadata --format-version 1 -q | jq '.packages | length') - 1))
git add -A && git commit -qm "a crate with $deps dependencies"
names=$(seq -f "b%g" 1 "$WORKTREES")
"$BIN/wt-create" $names >/dev/null

# batch LABEL FLAGS…: one cold batch; prints "wall first peak_load peak_rustc".
batch() {
  local label=$1; shift
  for n in $names; do rm -rf "$work/repo.wt/$n/target" "$work/repo.wt/$n/.bench-done"; done
  sleep 1
  local start; start=$(date +%s.%N)
  "$BIN/wt-run" --all -j "$WORKTREES" --quiet "$@" --shell -- 'cargo build -q && date +%s.%N > .bench-done' > "$work/$label.jsonl" 2>/dev/null &
  local pid=$! peak_load=0 peak_rustc=0 load n
  while kill -0 "$pid" 2>/dev/null; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    n=$(pgrep -x rustc -a 2>/dev/null | grep -c -- "$work/repo.wt/" || true)
    peak_load=$(python3 -c "print(max($peak_load, $load))")
    [ "$n" -gt "$peak_rustc" ] && peak_rustc=$n
    sleep 0.5
  done
  wait "$pid" || { echo "bench: a build failed ($label)" >&2; jq -c '.run.tail' "$work/$label.jsonl" >&2; exit 1; }
  local end first
  end=$(date +%s.%N)
  first=$(cat "$work"/repo.wt/b*/.bench-done | sort -n | head -1)
  python3 -c "print(f'{$end - $start:.0f} {$first - $start:.0f} $peak_load $peak_rustc')"
}

# settle: waits (at most 5 minutes) until the 1-minute load average is under 1: the load a
# batch leaves decays for minutes, and would be counted as the next batch's peak.
settle() {
  for _ in $(seq 300); do
    python3 -c "import sys; sys.exit(0 if float(open('/proc/loadavg').read().split()[0]) < 1 else 1)" && return
    sleep 1
  done
}
settle
before_free=$(cut -d' ' -f1 /proc/loadavg)
read -r free_wall free_first free_load free_rustc < <(batch free --no-governor)
settle
before_gov=$(cut -d' ' -f1 /proc/loadavg)
read -r gov_wall gov_first gov_load gov_rustc < <(batch governed)

echo "## The build governor: $WORKTREES cold cargo builds at once (issue 28)"
echo
echo "Measured $(date +%F). $(load_note)"
echo
echo "$WORKTREES worktrees each build a crate of $deps dependencies from crates.io (clap, regex,"
echo "serde_json and smaller ones; no proc-macros; no debuginfo) cold, in a target dir of their own, all at once:"
echo "\`wt-run --all -j $WORKTREES -- cargo build\`, with \`--no-governor\` and with the governor's default"
echo "$cores tokens (the cores). Sampled every 0.5 s while the batch ran: the 1-minute load average and"
echo "the rustc processes of these builds."
echo
echo "| batch | wall time (s) | first build done (s) | peak load (1 min) | load before | peak rustc |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| without the governor | $free_wall | $free_first | $free_load | $before_free | $free_rustc |"
echo "| with the governor ($cores tokens) | $gov_wall | $gov_first | $gov_load | $before_gov | $gov_rustc |"
echo
echo "Wall time with the governor: $(ratio "$gov_wall" "$free_wall")× the ungoverned batch's; the first"
echo "build done after $(ratio "$gov_first" "$free_first")× the time. Targets: load ≤ cores + 2 = $((cores + 2)),"
echo "wall time ≤ 1.1×. The machine is shared: the load before each batch is what others ran."
