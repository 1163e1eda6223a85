"""A stand-in agent that works (until it gets a line), then shows a permission-style dialog (which only a screen rule
can recognise) and waits for the answer, then clears it and works on until a last line ends it."""
import sys, time
sys.stdout.write("Editing src/lib.rs\r\n")
sys.stdout.flush()
sys.stdin.readline()
sys.stdout.write("\r\n  Allow this tool to run `cargo test`?\r\n  > 1. Yes\r\n    2. No\r\n")
sys.stdout.flush()
sys.stdin.readline()
sys.stdout.write("\x1b[2J\x1b[H")
for i in range(3):
    sys.stdout.write("working %d\r\n" % i)
    sys.stdout.flush()
    time.sleep(0.1)
sys.stdin.readline()
