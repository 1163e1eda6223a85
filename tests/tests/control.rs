//! The control plane under `--confine`: a confined pane's socket is a capability (its own state
//! and screen, never spawn, type, resize or kill), the supervisor's full socket and the tmux
//! server are out of a confined command's reach. Every escape is tried for real, from inside
//! a confined pane or batch run, and the harm is checked not to have happened.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde_json::Value;
use wt_tests::panes::Panes;
use wt_tests::s;

/// Run inside a confined pane: tries every method on `$WT_SOCKET`, and connecting to the
/// supervisor's full socket by its path and through the supervisor's `/proc/PID/root`; writes
/// what came back, as JSON, to `probe.json` in its worktree.
const PROBE: &str = r#"
import base64, json, os, socket, sys
full, sup_pid, marker, victim = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
out = {}
def call(method, params=None):
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ["WT_SOCKET"])
    s.sendall((json.dumps({"id": 1, "method": method, "params": params or {}}) + "\n").encode())
    line = s.makefile().readline()
    s.close()
    return json.loads(line)
out["spawn"] = call("pane.spawn", {"name": "escaped", "cmd": ["touch", marker], "cwd": "/"})
out["write"] = call("pane.write", {"pane": victim, "data_b64": base64.b64encode(b"echo injected-write\r").decode()})
out["send"] = call("pane.send", {"pane": victim, "text": "echo injected-send", "enter": True})
out["send_own"] = call("pane.send", {"text": "echo typed-into-itself", "enter": True})
out["key"] = call("pane.send_key", {"pane": victim, "key": "ctrl-c"})
out["resize"] = call("pane.resize", {"rows": 10, "cols": 20})
out["resize_other"] = call("pane.resize", {"pane": victim, "rows": 10, "cols": 20})
out["kill"] = call("pane.kill", {"pane": victim})
out["attach"] = call("pane.attach", {"pane": victim})
out["stop"] = call("server.stop")
out["wait_other"] = call("pane.wait", {"pane": victim, "quiet_ms": 1, "timeout_ms": 1000})
out["screen_other"] = call("pane.read_screen", {"pane": victim})
out["screen"] = call("pane.read_screen", {})
out["notify"] = call("pane.notify", {"state": "waiting", "message": "need\x1b[2J input"})
out["list"] = call("pane.list")
for key, path in [("full", full), ("proc_root", "/proc/%s/root%s" % (sup_pid, full))]:
    try:
        socket.socket(socket.AF_UNIX).connect(path)
        out[key] = "connected"
    except OSError as e:
        out[key] = e.strerror
json.dump(out, open("probe.json", "w"))
print("probe-done")
"#;

/// A confined pane `name` (with `extra` flags) running bash, beside an unconfined `victim`.
fn confined_pane_beside_a_victim(p: &Panes, name: &str, extra: &[&str]) -> Value {
    p.spawn("victim", &["bash", "--norc", "--noprofile", "-i"]);
    p.json(&["pane", "send", "victim", "echo victim-ready", "--enter"]);
    p.wait_match("victim", "(?m)^victim-ready");
    p.json(&["pane", "wait", "victim", "--quiet", "300ms", "--timeout", "10s"]);
    p.t.run("wt-create", &[name], "").expect_code(0);
    let mut args = vec!["-w", name, "--pane", "--confine"];
    args.extend_from_slice(extra);
    args.extend(["--", "bash", "--norc", "--noprofile", "-i"]);
    let run = p.wt_run(&args);
    let rec = run.expect_code(0).records().remove(0);
    assert_eq!(rec["run"]["pane"]["confined"]["enforced"], "full", "{rec}");
    rec
}

/// Runs the probe in pane `name` and returns what it saw.
fn probe(p: &Panes, name: &str, marker: &Path) -> Value {
    let script = p.t.root().join("probe.py");
    std::fs::write(&script, PROBE).unwrap();
    let pid = pid_of_supervisor(p);
    let line = format!("python3 '{}' '{}' {pid} '{}' victim", script.display(), p.socket().display(), marker.display());
    p.json(&["pane", "send", name, &line, "--enter"]);
    p.wait_match(name, "(?m)^probe-done");
    let out = p.t.wt_root().join(name).join("probe.json");
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn pid_of_supervisor(p: &Panes) -> u64 {
    let mut c = std::os::unix::net::UnixStream::connect(p.socket()).unwrap();
    wt_tests::panes::raw_call(&mut c, b"{\"id\":1,\"method\":\"server.ping\"}\n")["result"]["pid"].as_u64().unwrap()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("(none)")
}

#[test]
fn a_confined_pane_reports_its_state_and_reads_its_screen_but_drives_no_pane() {
    let p = Panes::new();
    let rec = confined_pane_beside_a_victim(&p, "jail", &[]);
    let own = s(&rec["run"]["pane"]["confined"], "socket");
    assert_ne!(own, s(&rec["run"]["pane"], "socket"), "a socket of its own: {rec}");
    let victim_before = s(&p.json(&["pane", "screen", "victim"]), "text").to_string();
    let marker = p.t.root().join("spawned-marker");
    let seen = probe(&p, "jail", &marker);
    for verb in
        ["spawn", "write", "send", "send_own", "key", "resize", "resize_other", "kill", "attach", "stop", "wait_other"]
    {
        assert_eq!(code(&seen[verb]), "forbidden", "{verb}: {seen}");
    }
    assert_eq!(code(&seen["screen_other"]), "forbidden", "no --confine-read-panes: {seen}");
    // Nothing it asked for happened.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!marker.exists(), "pane.spawn ran a command");
    assert_eq!(s(&p.json(&["pane", "screen", "victim"]), "text"), victim_before, "the victim's screen changed");
    let listed = p.wt_run(&["pane", "ls"]);
    let panes: Vec<Value> = listed.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let victim = panes.iter().find(|v| v["name"] == "victim").unwrap();
    assert_eq!(victim["alive"], true, "the victim was killed");
    assert_eq!(victim["rows"], 40, "the victim was resized");
    assert!(!panes.iter().any(|v| v["name"] == "escaped"), "a pane was spawned");
    // What it may do works.
    assert!(seen["screen"]["result"]["text"].as_str().unwrap().contains("probe.py"), "its own screen: {seen}");
    assert_eq!(seen["notify"]["ok"], true, "{seen}");
    let jail = panes.iter().find(|v| v["name"] == "jail").unwrap();
    assert_eq!(jail["state"], "waiting", "{jail}");
    assert_eq!(jail["message"], "need [2J input", "control characters are stripped: {jail}");
    let entries = seen["list"]["result"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{seen}");
    for entry in entries {
        let mut keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["alive", "name", "state"], "names and states only: {entry}");
    }
    // The supervisor's own socket is out of its reach, by path and through /proc (where the
    // run's pid namespace has its own /proc, the supervisor is not even there; where the
    // kernel keeps the machine's, Landlock refuses).
    assert_eq!(seen["full"], "No such file or directory", "{seen}");
    let through_proc = seen["proc_root"].as_str().unwrap_or_default();
    assert!(["No such file or directory", "Permission denied"].contains(&through_proc), "{seen}");
    // The supervisor is still there for everyone else.
    assert!(p.wt_run(&["pane", "ls"]).expect_code(0).stdout.contains("\"name\":\"victim\""));
}

#[test]
fn confine_read_panes_lets_a_confined_pane_read_other_screens_and_nothing_more() {
    let p = Panes::new();
    confined_pane_beside_a_victim(&p, "reader", &["--confine-read-panes"]);
    let marker = p.t.root().join("spawned-marker");
    let seen = probe(&p, "reader", &marker);
    assert!(seen["screen_other"]["result"]["text"].as_str().unwrap().contains("victim-ready"), "{seen}");
    for verb in ["spawn", "write", "send", "key", "kill", "attach", "stop"] {
        assert_eq!(code(&seen[verb]), "forbidden", "{verb}: {seen}");
    }
    assert!(!marker.exists());
}

#[test]
fn wt_run_inside_a_confined_pane_does_what_is_allowed_and_says_what_is_not() {
    let p = Panes::new();
    confined_pane_beside_a_victim(&p, "agent", &[]);
    let marker = p.t.root().join("pane-marker");
    let wt_run = wt_tests::bin("wt-run");
    let script = format!(
        "W='{w}'; $W pane screen $WT_PANE > screen.json; echo screen=$?; $W pane ls > ls.json; echo ls=$?; \
         $W pane notify --state working --message 'fixing the test'; echo notify=$?; \
         $W pane send victim hello 2> send.err; echo send=$?; \
         $W -w agent --pane -- touch '{m}' 2> spawn.err; echo spawn=$?; echo inside-$((40+2))",
        w = wt_run.display(),
        m = marker.display()
    );
    p.json(&["pane", "send", "agent", "echo own-screen-$((3*3))", "--enter"]);
    p.wait_match("agent", "(?m)^own-screen-9");
    p.json(&["pane", "send", "agent", &script, "--enter"]);
    p.wait_match("agent", "(?m)^inside-42");
    let text = s(&p.json(&["pane", "screen", "agent"]), "text").to_string();
    for expected in ["screen=0", "ls=0", "notify=0", "send=1", "spawn=3"] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    let dir = p.t.wt_root().join("agent");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert!(read("screen.json").contains("own-screen-9"), "its own screen");
    assert!(read("ls.json").contains("\"name\":\"victim\""));
    let send_err = read("send.err");
    assert_eq!(send_err.lines().count(), 1, "one line: {send_err}");
    assert!(send_err.contains("may not call pane.send of pane 'victim'"), "{send_err}");
    let spawn_err = read("spawn.err");
    assert_eq!(spawn_err.lines().count(), 1, "one line: {spawn_err}");
    assert!(spawn_err.contains("out of reach inside a confined run"), "{spawn_err}");
    assert!(!marker.exists(), "a pane was started from inside a confined pane");
    let listed = p.wt_run(&["pane", "ls"]);
    let agent = listed.records().into_iter().find(|e| e["name"] == "agent").unwrap();
    assert_eq!((s(&agent, "state"), s(&agent, "source"), s(&agent, "message")), ("working", "hook", "fixing the test"));
}

#[test]
fn a_confined_batch_run_cannot_start_or_drive_panes() {
    let p = Panes::new();
    p.spawn("victim", &["sleep", "60"]);
    p.t.run("wt-create", &["batch"], "").expect_code(0);
    let marker = p.t.root().join("batch-marker");
    let script = format!(
        "'{w}' -w batch --pane -- touch '{m}'; echo spawn=$?; WT_SOCKET='{full}' '{w}' pane kill victim; echo kill=$?",
        w = wt_tests::bin("wt-run").display(),
        m = marker.display(),
        full = p.socket().display()
    );
    let run = p.wt_run(&["-w", "batch", "--confine", "--", "sh", "-c", &script]);
    let rec = run.expect_code(0).records().remove(0);
    let tail = rec["run"]["tail"].to_string();
    assert!(tail.contains("spawn=3") && tail.contains("kill=3"), "{tail}");
    assert!(tail.contains("out of reach inside a confined run"), "{tail}");
    assert!(!marker.exists(), "a confined batch run started a pane");
    let hidden = rec["run"]["confined"]["hidden"].to_string();
    assert!(hidden.contains(&p.xdg.join("wt").display().to_string()), "{rec}");
    let listed = p.json(&["pane", "ls"]);
    assert_eq!(listed["alive"], true, "the victim was killed");
    // Unconfined, the same command does start a pane: the test above can fail.
    let free = p.wt_run(&["-w", "batch", "--", "sh", "-c", &script]);
    free.expect_code(0);
    assert!(marker.exists(), "{free}");
}

#[test]
fn the_tmux_backend_under_confine_keeps_the_tmux_server_out_of_reach() {
    let p = Panes::new();
    p.t.run("wt-create", &["tj"], "").expect_code(0);
    p.t.run("wt-create", &["tf"], "").expect_code(0);
    let bash = ["--", "bash", "--norc", "--noprofile", "-i"];
    let confined = [&["-w", "tj", "--pane", "--backend", "tmux", "--confine"][..], &bash[..]].concat();
    let rec = p.wt_run(&confined).expect_code(0).records().remove(0);
    assert_eq!(rec["run"]["pane"]["confined"]["enforced"], "full", "{rec}");
    let free = [&["-w", "tf", "--pane", "--backend", "tmux"][..], &bash[..]].concat();
    p.wt_run(&free).expect_code(0);
    let server = p.xdg.join(format!("tmux-{}", nix::unistd::getuid())).join("default");
    let escape = |marker: &Path| {
        format!(
            "echo \"tmux=[$TMUX]\"; tmux new-window 'touch {m}' 2>/dev/null; echo new-window=$?; \
             tmux -S '{s}' new-window 'touch {m}' 2>/dev/null; echo by-path=$?; echo escape-$((1+1))",
            m = marker.display(),
            s = server.display()
        )
    };
    let jailed = p.t.root().join("tmux-jailed-marker");
    p.json(&["pane", "send", "tj", &escape(&jailed), "--enter"]);
    p.wait_match("tj", "(?m)^escape-2");
    let text = s(&p.json(&["pane", "screen", "tj"]), "text").to_string();
    assert!(text.contains("tmux=[]"), "TMUX is not passed on: {text}");
    assert!(!text.contains("new-window=0") && !text.contains("by-path=0"), "{text}");
    // The same escape from an unconfined tmux pane does run the command: the test can fail.
    let freed = p.t.root().join("tmux-free-marker");
    p.json(&["pane", "send", "tf", &escape(&freed), "--enter"]);
    p.wait_match("tf", "(?m)^escape-2");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !freed.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(freed.exists(), "the unconfined escape did not run");
    assert!(!jailed.exists(), "a confined pane ran a command through the tmux server");
    // The confined tmux pane still answers the verbs from outside.
    p.json(&["pane", "send", "tj", "echo still-$((2+3))", "--enter"]);
    p.wait_match("tj", "still-5");
}

/// Connects to SOCKET (argv 1) and asks it to spawn `touch MARKER` (argv 2); prints the answer.
const SPAWN_THROUGH: &str = r#"
import ctypes, json, os, socket, sys
# The socket's directory is opened here, then (when a namespace is given) the process enters
# that mount namespace and connects from the directory it holds.
d = os.open(os.path.dirname(sys.argv[1]), os.O_PATH | os.O_DIRECTORY)
if len(sys.argv) > 3:
    ns = os.open(sys.argv[3], os.O_RDONLY)
    if ctypes.CDLL(None, use_errno=True).setns(ns, 0x00020000) != 0:
        raise OSError(ctypes.get_errno(), "setns")
os.fchdir(d)
s = socket.socket(socket.AF_UNIX)
s.connect(os.path.basename(sys.argv[1]))
req = {"id": 1, "method": "pane.spawn", "params": {"name": "through", "cmd": ["touch", sys.argv[2]], "cwd": "/"}}
s.sendall((json.dumps(req) + "\n").encode())
print(s.makefile().readline())
"#;

#[test]
fn the_full_socket_refuses_a_peer_inside_a_confined_run_however_it_got_there() {
    if !nix::unistd::geteuid().is_root() {
        return; // standing in for such a peer takes entering another process's mount namespace
    }
    let p = Panes::new();
    let rec = confined_pane_beside_a_victim(&p, "jail", &[]);
    let pane_pid = rec["run"]["pane"]["pid"].to_string();
    // A process in the confined pane's mount namespace, but without its Landlock rules: it
    // reaches the full socket through a directory it opened outside, as a hole in the hiding
    // would. (The run's own /proc does not show the supervisor at all.)
    let through_proc = format!("/proc/{}/root{}", pid_of_supervisor(&p), p.socket().display());
    let marker = p.t.root().join("through-marker");
    let out = std::process::Command::new("python3")
        .args(["-c", SPAWN_THROUGH, &through_proc])
        .arg(&marker)
        .arg(format!("/proc/{pane_pid}/ns/mnt"))
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(code(&answer), "forbidden", "{answer}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!marker.exists(), "the supervisor spawned for a peer inside a confined run");
    // From the supervisor's own namespace the same request is served: the check is what refused.
    let out =
        std::process::Command::new("python3").args(["-c", SPAWN_THROUGH, &through_proc]).arg(&marker).output().unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
}

#[test]
fn a_pane_socket_connection_acts_for_nobody_once_its_pane_is_replaced() {
    let p = Panes::new();
    p.t.run("wt-create", &["again"], "").expect_code(0);
    // (`$$` inside a confined run is its pid in the run's pid namespace: each generation says
    // which it is instead.)
    let start = |generation: &str| {
        let line = format!("echo generation-{generation}; sleep 60");
        let run = p.wt_run(&["-w", "again", "--pane", "--confine", "--", "sh", "-c", &line]);
        run.expect_code(0).records().remove(0)
    };
    let first = start("one");
    let own = std::path::PathBuf::from(s(&first["run"]["pane"]["confined"], "socket"));
    p.wait_match("again", "generation-");
    let mut old = std::os::unix::net::UnixStream::connect(&own).unwrap();
    let screen = wt_tests::panes::raw_call(&mut old, b"{\"id\":1,\"method\":\"pane.read_screen\"}\n");
    let first_text = s(&screen["result"], "text").to_string();
    assert!(first_text.contains("generation-one"), "{screen}");
    p.json(&["pane", "kill", "again"]);
    let second = start("two");
    assert_eq!(s(&second["run"]["pane"]["confined"], "socket"), own.to_str().unwrap(), "the same path");
    p.wait_match("again", "generation-");
    // The old connection no longer reads anything; a new one reads the new pane.
    use std::io::{BufRead, Write};
    old.write_all(b"{\"id\":2,\"method\":\"pane.read_screen\"}\n").unwrap();
    let mut answer = String::new();
    let n = std::io::BufReader::new(&old).read_line(&mut answer).unwrap_or(0);
    assert_eq!(n, 0, "the old connection was answered: {answer}");
    let mut new = std::os::unix::net::UnixStream::connect(&own).unwrap();
    let screen = wt_tests::panes::raw_call(&mut new, b"{\"id\":1,\"method\":\"pane.read_screen\"}\n");
    assert!(s(&screen["result"], "text").contains("generation-two"), "{screen}");
}

#[test]
fn a_pane_socket_follows_its_own_pane_s_events_only() {
    let p = Panes::new();
    p.t.run("wt-create", &["quiet"], "").expect_code(0);
    let run = p.wt_run(&["-w", "quiet", "--pane", "--confine", "--", "bash", "--norc", "--noprofile", "-i"]);
    let rec = run.expect_code(0).records().remove(0);
    let mut events = std::os::unix::net::UnixStream::connect(s(&rec["run"]["pane"]["confined"], "socket")).unwrap();
    let answer = wt_tests::panes::raw_call(&mut events, b"{\"id\":1,\"method\":\"events.subscribe\"}\n");
    assert_eq!(answer["result"]["subscribed"], true, "{answer}");
    p.spawn("noisy", &["sh", "-c", "echo noise; sleep 30"]);
    p.wait_match("noisy", "noise");
    p.json(&["pane", "send", "quiet", "echo mine", "--enter"]);
    p.wait_match("quiet", "(?m)^mine");
    p.json(&["pane", "notify", "quiet", "--state", "idle", "--message", "done"]);
    events.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    let mut seen = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(events)) {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        seen.push(event.clone());
        if event["event"] == "state" && event["message"] == "done" {
            break;
        }
    }
    assert!(seen.iter().all(|e| e["pane"] == "quiet"), "another pane's events: {seen:?}");
    assert!(seen.iter().any(|e| e["event"] == "output"), "{seen:?}");
    assert_eq!(seen.last().unwrap()["message"], "done", "{seen:?}");
}

#[test]
fn a_confined_pane_holds_a_bounded_number_of_connections() {
    let p = Panes::new();
    p.t.run("wt-create", &["greedy"], "").expect_code(0);
    let run = p.wt_run(&["-w", "greedy", "--pane", "--confine", "--", "sleep", "60"]);
    let rec = run.expect_code(0).records().remove(0);
    let own = std::path::PathBuf::from(s(&rec["run"]["pane"]["confined"], "socket"));
    let ping = b"{\"id\":1,\"method\":\"server.ping\"}\n";
    let mut held: Vec<_> = (0..16).map(|_| std::os::unix::net::UnixStream::connect(&own).unwrap()).collect();
    for c in &mut held {
        assert_eq!(wt_tests::panes::raw_call(c, ping)["ok"], true);
    }
    // One over the limit is told so at once, unasked, and closed (so it is read, not written
    // to: a write could meet the closed end).
    let over = std::os::unix::net::UnixStream::connect(&own).unwrap();
    let mut refusal = String::new();
    BufReader::new(over).read_line(&mut refusal).unwrap();
    assert_eq!(code(&serde_json::from_str(&refusal).unwrap()), "too-many-connections");
    // The supervisor's own socket is not limited by it, and a closed connection frees a place.
    assert!(p.wt_run(&["pane", "ls"]).expect_code(0).stdout.contains("\"name\":\"greedy\""));
    drop(held.pop());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // Until the supervisor has seen the close, a new connection is still one too many,
        // refused and closed: then the write or the read fails, and it is tried again.
        let mut again = std::os::unix::net::UnixStream::connect(&own).unwrap();
        let mut answer = String::new();
        let answered = again.write_all(ping).is_ok()
            && BufReader::new(&again).read_line(&mut answer).is_ok()
            && serde_json::from_str::<serde_json::Value>(&answer).is_ok_and(|v| v["ok"] == true);
        if answered {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no place was freed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
