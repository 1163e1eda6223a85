"""A stand-in agent that only prints its prompt and goes quiet, as an agent whose turn is done."""
import sys, time
sys.stdout.write("Ready for your next instruction.\r\n> ")
sys.stdout.flush()
time.sleep(600)
