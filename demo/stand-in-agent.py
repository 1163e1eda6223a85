#!/usr/bin/env python3
"""A stand-in for a coding agent, for `make demo` and wt-watch's tests: in a terminal it asks
for bracketed paste, shows a prompt when idle, reads what is pasted, shows a spinner while it
"works" (so its screen is never quiet then), and applies the fix it is told about
(`FILE: expected VALUE` in the failure), then commits it.

usage: stand-in-agent.py [LOG [MODE]]
  LOG   where to note each message, and anything typed while it was busy
  MODE  fix-code (default); edit-test: make the test pass by rewriting tests/check.sh;
        quit: exit 3 on the first message; slow-start: fix-code after a slow start;
        quiet-busy: fix-code, but it reports its turn through a hook (working, then idle) and
        works silently for a while after each fix, as an agent thinking does;
        fix-no-commit: fix-code without the commit, until it is told to commit
"""
import json, os, re, select, socket, subprocess, sys, time, tty

log = open(sys.argv[1], "a", buffering=1) if len(sys.argv) > 1 else None
mode = sys.argv[2] if len(sys.argv) > 2 else "fix-code"
hooks = mode == "quiet-busy"
if mode in ("slow-start", "quiet-busy"):
    if mode == "slow-start":  # real agents take their time to start
        time.sleep(1.5)
    mode = "fix-code"
fd = sys.stdin.fileno()
tty.setraw(fd)


def note(text):
    if log:
        log.write(text + "\n")


def out(s):
    os.write(1, s.replace("\n", "\r\n").encode())


def notify(state):
    """What an agent's hook does (`wt-run pane notify`), straight on the pane's socket."""
    if not hooks or not os.environ.get("WT_SOCKET"):
        return
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ["WT_SOCKET"])
    req = {"id": 1, "method": "pane.notify", "params": {"pane": os.environ.get("WT_PANE"), "state": state}}
    s.sendall(json.dumps(req).encode() + b"\n")
    s.makefile().readline()
    s.close()


def silent(seconds):
    """Busy with nothing on the screen (thinking): the screen is quiet, the hook says working."""
    end = time.time() + seconds
    while time.time() < end:
        if select.select([fd], [], [], 0.05)[0]:
            note("TYPED-WHILE-BUSY %r" % os.read(fd, 4096))


def work(seconds):
    end, i = time.time() + seconds, 0
    while time.time() < end:
        if select.select([fd], [], [], 0.05)[0]:
            note("TYPED-WHILE-BUSY %r" % os.read(fd, 4096))
        out("\r  working %s" % "|/-\\"[i % 4])
        i += 1
    out("\r\n")


out("\x1b[?2004h")  # bracketed paste on, as real agents ask for it
out("agent> ")
buf = b""
while True:
    data = os.read(fd, 65536)
    if not data:
        break
    buf += data
    end = buf.find(b"\x1b[201~")
    if end < 0 or not buf[end + 6:].startswith(b"\r"):
        continue
    msg = buf[buf.find(b"\x1b[200~") + 6:end].decode()
    buf = buf[end + 7:]
    note("MESSAGE " + msg.replace("\n", "\\n"))
    notify("working")
    if mode == "quit":
        sys.exit(3)
    out("\n--- pasted into the agent ---\n" + msg + "\n-----------------------------\n")
    work(0.4)
    m = re.search(r"(\w+\.txt): expected (\w+)", msg)
    name = os.environ.get("WT_NAME", "?")
    if mode == "fix-no-commit" and "Commit your changes" in msg:
        subprocess.run(["git", "commit", "-qam", "commit the fixes in %s, as told" % name], check=False)
        out("committed\n")
    elif mode in ("fix-code", "fix-no-commit") and m:
        with open(m.group(1), "w") as f:
            f.write(m.group(2) + "\n")
        if mode == "fix-code":
            subprocess.run(["git", "commit", "-qam", "fix %s in %s" % (m.group(1), name)], check=False)
        out("fixed %s\n" % m.group(1))
        if hooks:
            silent(2.5)
    elif mode == "edit-test":
        with open("tests/check.sh", "w") as f:
            f.write("exit 0\n")
        out("changed the test\n")
    work(0.6)
    notify("idle")
    out("agent> ")
