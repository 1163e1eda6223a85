#!/usr/bin/env bash
# Runs the benchmarks and writes bench/results.md. Each bench/NAME.sh (but this and lib.sh)
# prints its own markdown section into bench/sections/NAME.md; results.md is all sections
# together, so `bench/run.sh NAME` re-measures one without losing the others. Every figure is
# measured side by side with its reference tool in one run: this machine is too noisy for
# absolute times to mean much.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
cargo build --release --workspace --quiet
mkdir -p "$BENCH_DIR/sections"
for script in "$BENCH_DIR"/*.sh; do
  name=$(basename "$script" .sh)
  case "$name" in run|lib) continue ;; esac
  if [ -n "${1:-}" ] && [ "$name" != "$1" ]; then continue; fi
  echo "bench: $name" >&2
  bash "$script" > "$BENCH_DIR/sections/$name.md.tmp"
  mv "$BENCH_DIR/sections/$name.md.tmp" "$BENCH_DIR/sections/$name.md"
done
{
  echo "# Benchmark results"
  echo
  echo "Written by \`make bench\` ($(nproc) cores, $(git --version)). Each figure is a ratio"
  echo "measured side by side with its reference tool in the same run (hyperfine, interleaved"
  echo "rounds); each section says when it was measured."
  echo
  cat "$BENCH_DIR"/sections/*.md
} > "$BENCH_DIR/results.md"
cat "$BENCH_DIR/results.md"
