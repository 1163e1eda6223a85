#!/usr/bin/env bash
# wt-status at 10, 100 and 500 worktrees against the loop a person would write for the same
# question: `git worktree list --porcelain | ... | xargs -P2 -I{} git -C {} status --porcelain`,
# side by side in one run, with nothing changed since the last look and with an edited file in
# every tenth worktree. Prints a markdown section.
source "$(dirname "$0")/lib.sh"
need strace strace
bench_work status-scale
FILES=${STATUS_FILES:-300}
loop="git worktree list --porcelain | sed -n 's/^worktree //p' | xargs -P2 -I{} git -C {} status --porcelain >/dev/null"
rows=""
for n in ${SCALE_SIZES:-10 100 500}; do
  make_repo "$work/r$n" "$FILES"
  cd "$work/r$n"
  "$BIN/wt-create" -n "$n" --prefix s >/dev/null
  # The same answer both ways, checked before anything is timed: every worktree clean.
  clean=$("$BIN/wt-status" --all --json | jq -r 'select(.status.state == "clean") | .name' | wc -l)
  [ "$clean" -eq "$n" ] || { echo "bench: wt-status shows $clean of $n worktrees clean" >&2; exit 1; }
  [ -z "$(bash -c "$loop" 2>&1)" ] || { echo "bench: the git status loop printed output" >&2; exit 1; }
  # What a board left open has done by now: the files still for 2 s, and looks until every
  # worktree is proved (the first notes each clean, the next four list a quarter each).
  settle() { sleep 2.5; for _ in 1 2 3 4 5 6; do "$BIN/wt-status" --all --json >/dev/null; done; }
  settle
  python3 "$BENCH_DIR/interleave.py" "${ROUNDS_STATUS:-10}" "true" \
    wt-status "$BIN/wt-status --all --json" \
    loop "bash -c \"$loop\"" > "$work/clean$n.json"
  # The first look, or one after every worktree changed: nothing noted, so each worktree is
  # asked (git status), and noted as clean once.
  # The notes are moved aside, not deleted: deleting 500 files just before makes ext4's inode
  # allocator pass over the inodes just freed when the look makes its notes (a cost no real
  # first look meets; a look after every worktree changed makes no new files: their notes are
  # emptied where they are).
  aside="[ ! -d $work/r$n/.git/wt/status ] || mv $work/r$n/.git/wt/status \$(mktemp -u -p $work aside.XXXXXX)"
  python3 "$BENCH_DIR/interleave.py" "${ROUNDS_STATUS:-10}" "bash -c '$aside'" \
    wt-status "$BIN/wt-status --all --json" \
    loop "bash -c \"$loop\"" > "$work/first$n.json"
  # The look after it: of the worktrees clean twice in a row, a quarter are listed (git
  # ls-files, in place of their git status) to be proved from then on, the rest asked again
  # (the looks after it list the rest, a quarter each: this one is the dearest of them).
  python3 "$BENCH_DIR/interleave.py" "${ROUNDS_STATUS:-10}" "bash -c '$aside; $BIN/wt-status --all >/dev/null'" \
    wt-status "$BIN/wt-status --all --json" \
    loop "bash -c \"$loop\"" > "$work/second$n.json"
  # An edit in every tenth worktree (what agents at work leave) of a board settled again: the
  # same, still answered alike.
  settle
  for i in $(seq 1 10 "$n"); do echo "edited" >> "$work/r$n.wt/s-$i/src/m00/s0/f0.txt"; done
  dirty=$("$BIN/wt-status" --all --json | jq -r 'select(.status.state == "dirty") | .name' | wc -l)
  [ "$dirty" -eq $(( (n + 9) / 10 )) ] || { echo "bench: wt-status shows $dirty dirty worktrees" >&2; exit 1; }
  python3 "$BENCH_DIR/interleave.py" "${ROUNDS_STATUS:-10}" "true" \
    wt-status "$BIN/wt-status --all --json" \
    loop "bash -c \"$loop\"" > "$work/dirty$n.json"
  get() { python3 -c "import json; print('%.0f' % json.load(open('$work/$1$n.json'))['$2']['median_ms'])"; }
  c_wt=$(get clean wt-status) c_loop=$(get clean loop) d_wt=$(get dirty wt-status) d_loop=$(get dirty loop)
  f_wt=$(get first wt-status) f_loop=$(get first loop) s_wt=$(get second wt-status) s_loop=$(get second loop)
  procs=$(strace -f -e trace=execve -o "$work/trace$n" "$BIN/wt-status" --all --json >/dev/null 2>&1 &&
    grep -v ENOENT "$work/trace$n" | grep -c 'execve("[^"]*/git"' || echo "?")
  rows+="| $n | $c_wt | $c_loop | $(ratio "$c_wt" "$c_loop") | $d_wt | $d_loop | $(ratio "$d_wt" "$d_loop") | $f_wt | $f_loop | $(ratio "$f_wt" "$f_loop") | $s_wt | $s_loop | $(ratio "$s_wt" "$s_loop") | $procs |"$'\n'
  cd "$work"
  rm -rf "$work/r$n" "$work/r$n.wt"
done
cat <<MD
## wt-status at 10, 100 and 500 worktrees (issue 29)

Measured $(date -u +%Y-%m-%d). $(load_note)

Target: \`wt-status --all\` within 1.2× of \`git worktree list --porcelain | sed … | xargs -P2 -I{}
git -C {} status --porcelain\` at 500 worktrees (wt-status says more: each branch's ahead and
behind, leases, panes, last run, merge). $FILES-file repository; medians of
${ROUNDS_STATUS:-10} shuffled rounds; "nothing changed": every worktree clean and untouched
since the last look; "edits": one file edited in every tenth worktree (the others unchanged);
"first look": every worktree clean, none noted yet (wt's notes moved aside before each run); "second look": the look after that one, which
lists a quarter of the worktrees found clean at the look before (one \`git ls-files -t\` in
place of its \`git status\`) to prove them from then on and asks the rest again (the next three
looks list the rest, each cheaper than this one, as ever more worktrees are proved). The last
column counts the git processes one \`wt-status --all\` starts with the edits (strace).

| worktrees | nothing changed: wt-status (ms) | loop (ms) | ratio | edits: wt-status (ms) | loop (ms) | ratio | first look: wt-status (ms) | loop (ms) | ratio | second look: wt-status (ms) | loop (ms) | ratio | git processes |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows}
MD
