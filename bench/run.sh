#!/usr/bin/env bash
# Runs every benchmark and writes bench/results.md. Each bench/*.sh (but this and lib.sh)
# prints its own markdown section; they are measured side by side with their reference tool in
# one run, since this machine is too noisy for absolute times to mean much.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
cargo build --release --workspace --quiet
out="$BENCH_DIR/results.md"
tmp=$(mktemp)
{
  echo "# Benchmark results"
  echo
  echo "Written by \`make bench\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(git --version)."
  echo "Each figure is a ratio measured side by side with its reference tool in the same run (hyperfine)."
  echo
  for script in "$BENCH_DIR"/*.sh; do
    case "$(basename "$script")" in run.sh|lib.sh) continue ;; esac
    if [ -n "${1:-}" ] && [ "$(basename "$script" .sh)" != "$1" ]; then continue; fi
    echo "bench: $(basename "$script")" >&2
    bash "$script"
  done
} > "$tmp"
mv "$tmp" "$out"
cat "$out"
