"""A program that turns bracketed paste on (DEC mode 2004), as agents' prompts do, and reads in
raw mode until a paste has ended and Enter came: it prints the bytes it got, escaped, so the
markers show on the screen."""
import os, sys, termios, tty

sys.stdout.write("\x1b[?2004hpaste here> ")
sys.stdout.flush()
old = termios.tcgetattr(0)
tty.setraw(0)
got = b""
while not (b"\x1b[201~" in got and got.endswith(b"\r")):
    got += os.read(0, 4096)
termios.tcsetattr(0, termios.TCSADRAIN, old)
sys.stdout.write("\r\ngot: " + repr(got).replace("\\x1b", "ESC") + "\r\nend of paste\r\n")
sys.stdout.flush()
sys.stdin.readline()
