#!/usr/bin/env bash
# What making wt-merge's verification worktree costs (issue 22): the worktree made like an
# agent's (wt-create with a shared directory placed from the store, then wt-env's lease and env
# file), as wt-merge reports it (`verify.env.provision_ms`), against a plain `wt-create NAME
# --share deps` of the same repository, side by side in shuffled rounds. Prints a section.
source "$(dirname "$0")/lib.sh"
bench_work verify
make_repo "$work/repo" 3000
cd "$work/repo"
# A dependency directory of 2,000 small files, ignored by git, with its lock file committed.
python3 - <<'PY'
import os
for i in range(2000):
    d = os.path.join("deps", "pkg%03d" % (i % 200))
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "f%d.js" % i), "w").write("module.exports = %d;\n" % i)
PY
printf 'deps/\n' > .gitignore && echo '{}' > package-lock.json
git add -A && git commit -qm deps
"$BIN/wt-create" agent --share deps > /dev/null
echo change >> "$work/repo.wt/agent/src/m00/s0/f0.txt"
git -C "$work/repo.wt/agent" commit -qam "agent's work"
python3 - "$BIN" "${ROUNDS_VERIFY:-15}" > "$work/t.json" <<'PY'
import json, random, statistics, subprocess, sys, time
bin, rounds = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
def plain():
    t = time.monotonic()
    subprocess.run([f"{bin}/wt-create", "p", "--share", "deps"], check=True, stdout=subprocess.DEVNULL)
    took = (time.monotonic() - t) * 1000
    subprocess.run([f"{bin}/wt-create", "--remove", "--force", "p"], check=True, stdout=subprocess.DEVNULL)
    return took
def verify():
    out = subprocess.run([f"{bin}/wt-merge", "agent", "--verify", "true", "--json"], check=True, capture_output=True, text=True)
    rec = json.loads(out.stdout)
    subprocess.run([f"{bin}/wt-merge", "--undo", "agent"], check=True, stdout=subprocess.DEVNULL)
    return rec["merge"]["verify"]["env"]["provision_ms"]
times = {"plain": [], "provision": []}
for _ in range(rounds):
    order = [("plain", plain), ("provision", verify)]
    rng.shuffle(order)
    for name, f in order:
        times[name].append(f())
print(json.dumps({n: statistics.median(t) for n, t in times.items()}))
PY
get() { python3 -c "import json; print('%.1f' % json.load(open('$work/t.json'))['$1'])"; }
plain=$(get plain) provision=$(get provision)
cat <<MD
## wt-merge: making the verification worktree (issue 22)

Measured $(date -u +%Y-%m-%d). $(load_note)

Target: making the verification worktree like an agent's (wt-create with the shared directory
placed from the store, wt-env's lease and env file) costs at most 1.2× a plain \`wt-create NAME
--share deps\` of the same repository (3,000 tracked files, a shared directory of 2,000 files).
Medians of ${ROUNDS_VERIFY:-15} shuffled rounds; the provisioning time is the one wt-merge
reports (\`verify.env.provision_ms\`, from its journal write to wt-env's record).

| what | median (ms) | ratio to wt-create |
|---|---:|---:|
| \`wt-create p --share deps\` | $plain | 1.000 |
| the verification worktree (wt-create + wt-env) | $provision | $(ratio "$provision" "$plain") |

MD
