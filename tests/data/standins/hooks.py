"""A stand-in agent that reports only through its hooks, as Claude Code or Codex does: for each
recorded payload (one JSON object a line), it runs the hook commands that the agent's settings
file in its worktree registers for that event (matchers too), the payload on stdin. A payload
with a "type" is Codex's legacy notify: the notify program gets it as its last argument.
Prints nothing, so only the hooks can say what it is doing.

usage: hooks.py claude|codex PAYLOADS WT_RUN"""
import json, os, re, subprocess, sys

agent, payloads, wt_run = sys.argv[1], sys.argv[2], sys.argv[3]
settings = {"claude": ".claude/settings.local.json", "codex": ".codex/hooks.json"}[agent]
hooks = json.load(open(settings))["hooks"]

def matches(matcher, tool):
    return matcher in (None, "", "*") or tool is None or re.fullmatch(matcher, tool) is not None

for line in open(payloads):
    payload = json.loads(line)
    if "type" in payload:
        subprocess.run([wt_run, "pane", "notify", "--from-hook", "codex", json.dumps(payload)], check=True)
        continue
    for group in hooks.get(payload["hook_event_name"], []):
        if not matches(group.get("matcher"), payload.get("tool_name")):
            continue
        for hook in group["hooks"]:
            done = subprocess.run(["sh", "-c", hook["command"]], input=line.encode(), capture_output=True)
            if done.returncode != 0 or done.stdout:
                sys.stderr.write("hook %r: exit %d, stdout %r\n" % (hook["command"], done.returncode, done.stdout))
                sys.exit(1)
