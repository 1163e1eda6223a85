"""A stand-in agent that asks for attention the way terminals are asked: it works, then sends
an OSC 777 notification; after the answer it works until told to go on, then an OSC 9 notification;
after that answer it works on until a last line ends it. (Each step waits for a line, so the
test sees every state before the next begins.)"""
import sys

def say(text):
    sys.stdout.write(text)
    sys.stdout.flush()

say("thinking about the change...\r\n")
sys.stdin.readline()
say("\x1b]777;notify;Codex;Approve running cargo test?\x1b\\")
sys.stdin.readline()
say("running cargo test...\r\n")
sys.stdin.readline()
say("\x1b]9;Need a decision on the parser\x07")
sys.stdin.readline()
say("thanks, working on\r\n")
sys.stdin.readline()
