"""A stand-in for Claude Code at its permission dialogs: it draws a numbered menu the way Claude
Code does and reads one key in raw mode (a digit chooses at once; escape declines), says what
it got, then waits for a line before the next dialog. The last dialog asks for a line of text
instead ("tell Claude what to do differently")."""
import os, sys, termios, tty

def say(text):
    sys.stdout.write(text)
    sys.stdout.flush()

def dialog(command):
    say("\x1b[2J\x1b[H")
    say("╭──────────────────────────────────────────────────────────╮\r\n")
    say("│ Bash command                                             │\r\n")
    say("│   %-54s │\r\n" % command)
    say("│ Do you want to proceed?                                  │\r\n")
    say("│ ❯ 1. Yes                                                 │\r\n")
    say("│   2. Yes, and don't ask again for %-22s │\r\n" % command.split()[0])
    say("│   3. No, and tell Claude what to do differently (esc)    │\r\n")
    say("╰──────────────────────────────────────────────────────────╯\r\n")

def one_key():
    old = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        return os.read(0, 16)
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, old)

for command in ["cargo test", "rm -rf build"]:
    dialog(command)
    key = one_key()
    say("\x1b[2J\x1b[H")
    say("chose %s for %s\r\n" % (key.decode(errors="replace").replace("\x1b", "ESC"), command))
    sys.stdin.readline()
say("\x1b[2J\x1b[H")
say("Do you want to make this edit to config.toml? Tell Claude what to do instead:\r\n> ")
say("instead: %s\r\n" % sys.stdin.readline().strip())
sys.stdin.readline()
