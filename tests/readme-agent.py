#!/usr/bin/env python3
"""A stand-in for a coding agent, for the README's walk-through test
(tests/tests/readme_walkthrough.rs), which runs the walk-through with AGENT set to a copy of
this script named `claude` (so that its pane gets Claude Code's profile).

Started in a pane with its task as the last argument, it does what an agent that makes a
mistake does: it writes a note of its task (its work: notes/<worktree>.md) and, with it, a bug
in src/itsdangerous/encoding.py that the project's tests catch, and commits both. Then it sits
at a prompt, in raw mode with bracketed paste on, as real agents do. A message pasted into it
(wt-watch's failure report) makes it put encoding.py back as it found it and commit the fix;
it notes each message in ~/.claude/notes-received.log, for the test to read.
"""
import os, subprocess, sys, tty

BUGGY = ("string += b\"=\" * (-len(string) % 4)", "string += b\"\"")
SOURCE = "src/itsdangerous/encoding.py"
name = os.environ.get("WT_NAME", "?")
task = sys.argv[-1] if len(sys.argv) > 1 else "(no task)"
# In ~/.claude, the one place outside its worktree the README's confined panes may write.
received = os.path.join(os.path.expanduser("~"), ".claude", "notes-received.log")
fd = sys.stdin.fileno()
tty.setraw(fd)


def out(s):
    os.write(1, s.replace("\n", "\r\n").encode())


def git(*args):
    subprocess.run(["git", *args], check=True, stdout=subprocess.DEVNULL)


out("\x1b[?2004h")  # bracketed paste on, as real agents ask for it
out("stand-in agent in %s: %s\n" % (name, task))
base = subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
os.makedirs("notes", exist_ok=True)
with open("notes/%s.md" % name, "w") as f:
    f.write("# %s\n\n%s\n" % (name, task))
with open(SOURCE) as f:
    text = f.read()
assert BUGGY[0] in text, "the stand-in's bug needs itsdangerous 2.2.0's encoding.py"
with open(SOURCE, "w") as f:
    f.write(text.replace(BUGGY[0], BUGGY[1], 1))
git("add", "notes/%s.md" % name, SOURCE)
git("commit", "-qm", "%s: %s" % (name, task))
out("committed my work (with a bug the tests will find)\n> ")

buf = b""
while True:
    data = os.read(fd, 65536)
    if not data:
        break
    buf += data
    end = buf.find(b"\x1b[201~")
    if end < 0 or not buf[end + 6:].startswith(b"\r"):
        continue
    msg = buf[buf.find(b"\x1b[200~") + 6:end].decode(errors="replace")
    buf = buf[end + 7:]
    with open(received, "a") as f:
        f.write("%s: %s\n" % (name, msg.replace("\n", "\\n")))
    out("\n--- the message ---\n%s\n-------------------\n" % msg)
    git("checkout", base, "--", SOURCE)
    git("commit", "-qm", "%s: fix the padding in encoding.py" % name, "--allow-empty")
    out("fixed it\n> ")
