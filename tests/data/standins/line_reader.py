"""A plain line-reading program (a Python input() loop, bracketed paste never turned on): it
prints each line it reads, escaped, and appends it to the file given as its argument. A line
that says `assertion failed: FILE: expected N` (wt-watch's feedback from the tests of
tests/tests/watch.rs) it obeys: it writes N into FILE, as an agent would fix the code; told to commit (`Commit your
changes`), it commits."""
import re, subprocess, sys

log = open(sys.argv[1], "a") if len(sys.argv) > 1 else None
while True:
    try:
        line = input("> ")
    except EOFError:
        break
    print("line: " + repr(line).replace("\\x1b", "ESC"), flush=True)
    if log:
        log.write(repr(line) + "\n")
        log.flush()
    fix = re.search(r"assertion failed: (\S+): expected (\d+)", line)
    if fix:
        with open(fix.group(1), "w") as f:
            f.write(fix.group(2) + "\n")
    if "Commit your changes" in line:
        subprocess.run(["git", "commit", "-qam", "the fixes, as told"], check=False)
