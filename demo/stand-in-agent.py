#!/usr/bin/env python3
"""A stand-in for a coding agent, for `make demo`: it shows a prompt, reads what is pasted
into its terminal, shows a spinner while it "works", and applies the fix it is told about
(`FILE: expected VALUE` in the failure), then commits it."""
import os, re, select, subprocess, sys, time, tty

fd = sys.stdin.fileno()
tty.setraw(fd)


def out(s):
    os.write(1, s.replace("\n", "\r\n").encode())


def work(seconds):
    end, i = time.time() + seconds, 0
    while time.time() < end:
        select.select([], [], [], 0.1)
        out("\r  working %s" % "|/-\\"[i % 4])
        i += 1
    out("\r")


out("\x1b[?2004h")  # bracketed paste on, as real agents ask for it
out("stand-in agent> ")
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
    out("\n--- pasted into the agent ---\n" + msg + "\n-----------------------------\n")
    work(1.0)
    m = re.search(r"(\w+\.txt): expected (\w+)", msg)
    if m:
        with open(m.group(1), "w") as f:
            f.write(m.group(2) + "\n")
        subprocess.run(["git", "commit", "-qam", "fix " + m.group(1)], check=False)
        out("fixed %s\n" % m.group(1))
    out("stand-in agent> ")
