//! Typing into a pane as a terminal would: answering an agent's dialog from one place
//! (`pane answer`), bracketed paste only for a program that turned it on, what the verbs say
//! on a terminal and in a pipe, a quiet program's state, and waiting for a state without a time
//! limit. Real PTYs, real tmux, stand-in programs that read what they are sent.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wt_tests::panes::Panes;
use wt_tests::{s, Run};

fn data(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(rel).display().to_string()
}

/// Starts `cmd` in a pane NAME of a new worktree NAME, on `backend`, with `extra` flags.
fn spawn_on(p: &Panes, name: &str, backend: &str, extra: &[&str], cmd: &[&str]) {
    p.t.run("wt-create", &[name], "").expect_code(0);
    let mut args = vec!["-w", name, "--pane", "--backend", backend];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(cmd);
    p.wt_run(&args).expect_code(0);
}

/// `wt-run ARGS` on a terminal (`script` gives it one): what a person sees.
fn on_terminal(p: &Panes, args: &str) -> Run {
    let line = format!("'{}' {args}", wt_tests::bin("wt-run").display());
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]).current_dir(&p.t.repo);
    p.env(&mut script);
    Run::of(&mut script, "")
}

fn wait_state(p: &Panes, name: &str, state: &str) -> Value {
    p.json(&["pane", "wait", name, "--state", state, "--timeout", "30s"])
}

fn answer_the_claude_dialogs(backend: &str) {
    let p = Panes::new();
    let dialog = data("standins/claude_dialog.py");
    spawn_on(&p, "dlg", backend, &["--agent", "claude"], &["python3", &dialog]);
    let waiting = wait_state(&p, "dlg", "waiting");
    assert_eq!(s(&waiting, "source"), "screen", "Claude Code's dialog, by its screen rule: {waiting}");
    // yes: the menu's "1. Yes", by its number.
    let answered = p.json(&["pane", "answer", "dlg", "yes"]);
    assert_eq!((s(&answered, "answer"), s(&answered, "item")), ("yes", "Yes"), "{answered}");
    assert_eq!(answered["keys"], serde_json::json!(["1"]));
    p.wait_match("dlg", "chose 1 for cargo test");
    // Not waiting now: refused, in one line that names the state and what to do; nothing typed.
    p.json(&["pane", "wait", "dlg", "--state", "working,idle", "--timeout", "30s"]);
    let refused = p.wt_run(&["pane", "answer", "dlg", "no"]);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert_eq!(refused.stderr.lines().count(), 1, "{refused}");
    assert!(
        refused.stderr.contains("not waiting for an answer") && refused.stderr.contains("--state waiting"),
        "{refused}"
    );
    assert!(s(&p.json(&["pane", "screen", "dlg"]), "text").contains("chose 1 for cargo test"), "nothing was typed");
    // no: the menu's "3. No, and tell Claude…", whatever number it has.
    p.json(&["pane", "send", "dlg", "", "--enter"]);
    wait_state(&p, "dlg", "waiting");
    let answered = p.json(&["pane", "answer", "dlg", "no"]);
    assert_eq!(answered["keys"], serde_json::json!(["3"]), "{answered}");
    p.wait_match("dlg", "chose 3 for rm -rf build");
    // TEXT: typed, then Enter.
    p.json(&["pane", "send", "dlg", "", "--enter"]);
    wait_state(&p, "dlg", "waiting");
    p.json(&["pane", "answer", "dlg", "use the staging database"]);
    p.wait_match("dlg", "instead: use the staging database");
    // An exited pane has nothing to answer.
    p.json(&["pane", "send", "dlg", "", "--enter"]);
    p.json(&["pane", "wait", "dlg", "--exit", "--timeout", "30s"]);
    wait_state(&p, "dlg", "exited");
    let refused = p.wt_run(&["pane", "answer", "dlg", "yes"]);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains("has exited"), "{refused}");
}

#[test]
fn pane_answer_presses_the_keys_of_claude_codes_dialog_and_refuses_when_not_waiting() {
    answer_the_claude_dialogs("native");
}

#[test]
fn pane_answer_works_for_a_tmux_pane_too() {
    answer_the_claude_dialogs("tmux");
}

#[test]
fn an_answer_the_agent_has_not_is_refused_saying_where_to_add_it() {
    let p = Panes::new();
    spawn_on(&p, "plain", "native", &[], &["python3", &data("standins/line_reader.py")]);
    p.json(&["pane", "notify", "plain", "--state", "waiting", "--message", "continue?"]);
    let refused = p.wt_run(&["pane", "answer", "plain", "yes"]);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains("[agents.default.answers]"), "{refused}");
    // Text needs no table: a line typed, then Enter.
    let answered = p.json(&["pane", "answer", "plain", "carry on"]);
    assert_eq!((s(&answered, "text"), s(&answered, "question")), ("carry on", "continue?"), "{answered}");
    p.wait_match("plain", "line: 'carry on'");
}

fn paste_on_and_off(backend: &str) {
    let p = Panes::new();
    // A program that turned bracketed paste on gets one paste, between the markers.
    spawn_on(&p, "bracketed", backend, &[], &["python3", &data("standins/paste_reader.py")]);
    p.wait_match("bracketed", "paste here>");
    p.json(&["pane", "send", "bracketed", "first\nsecond", "--enter"]);
    let got = p.wait_match("bracketed", "end of paste");
    let text = s(&got["screen"], "text").to_string();
    assert!(text.contains("ESC[200~first") && text.contains("second") && text.contains("ESC[201~"), "{text}");
    // A plain input() loop gets the lines, and no marker.
    spawn_on(&p, "plain", backend, &[], &["python3", &data("standins/line_reader.py")]);
    p.wait_match("plain", ">");
    p.json(&["pane", "send", "plain", "first\nsecond", "--enter"]);
    let got = p.wait_match("plain", "line: 'second'");
    let text = s(&got["screen"], "text").to_string();
    assert!(text.contains("line: 'first'") && !text.contains("ESC") && !text.contains("200~"), "{text}");
}

#[test]
fn several_lines_are_a_bracketed_paste_only_for_a_program_that_turned_it_on() {
    paste_on_and_off("native");
}

#[test]
fn several_lines_into_a_tmux_pane_are_bracketed_only_for_a_program_that_turned_it_on() {
    paste_on_and_off("tmux");
}

#[test]
fn a_quiet_program_is_running_not_starting_for_ever() {
    let p = Panes::new();
    let server = "import time; print('listening on http://localhost:3000', flush=True); time.sleep(600)";
    for backend in ["native", "tmux"] {
        let name = format!("dev-{backend}");
        spawn_on(&p, &name, backend, &[], &["python3", "-c", server]);
        let state = wait_state(&p, &name, "running");
        assert_eq!((s(&state, "state"), s(&state, "source")), ("running", "output"), "{state}");
        // It stays running: a program has no turn to finish, so it is never idle.
        let quiet = p.wt_run(&["pane", "wait", &name, "--state", "idle,working", "--timeout", "3s"]);
        assert_eq!(quiet.code, Some(1), "{quiet}");
        assert!(quiet.stderr.contains("the pane is running"), "{quiet}");
    }
    // A program that prints nothing at all is running too, once its quiet time has passed.
    spawn_on(&p, "silent", "native", &[], &["sleep", "600"]);
    assert_eq!(s(&wait_state(&p, "silent", "running"), "state"), "running");
    let listed = on_terminal(&p, "pane ls");
    let row = listed.stdout.lines().find(|l| l.starts_with("dev-native")).unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("running"), "{listed}");
}

#[test]
fn pane_wait_for_a_state_has_no_time_limit_unless_given_one() {
    let p = Panes::new();
    spawn_on(&p, "slow", "native", &[], &["sleep", "600"]);
    let mut c = p.cmd();
    c.args(["pane", "wait", "slow", "--state", "waiting"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let waiter = c.spawn().unwrap();
    // Longer than the 30s the verb used to give up after.
    std::thread::sleep(Duration::from_secs(33));
    p.json(&["pane", "notify", "slow", "--state", "waiting", "--message", "at last"]);
    let run = Run::from_output(waiter.wait_with_output().unwrap());
    run.expect_code(0);
    let got: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!((s(&got, "state"), s(&got, "message")), ("waiting", "at last"), "{run}");
    // --help says so.
    let help = p.wt_run(&["pane", "wait", "--help"]);
    assert!(help.stdout.contains("--timeout") && help.stdout.contains("no limit"), "{help}");
}

#[test]
fn send_key_kill_and_stop_say_a_short_line_on_a_terminal_and_a_record_in_a_pipe() {
    let p = Panes::new();
    spawn_on(&p, "a", "native", &[], &["python3", &data("standins/line_reader.py")]);
    spawn_on(&p, "b", "native", &[], &["sleep", "600"]);
    p.wait_match("a", ">");
    let sent = on_terminal(&p, "pane send a hello --enter");
    sent.expect_code(0);
    assert_eq!(sent.stdout.trim(), "typed 5 bytes into a, then enter", "{sent}");
    p.wait_match("a", "line: 'hello'");
    let key = on_terminal(&p, "pane key a ctrl-u");
    assert_eq!(key.stdout.trim(), "pressed ctrl-u in a", "{key}");
    // --json: the record, even on a terminal.
    let key = on_terminal(&p, "pane key a ctrl-u --json");
    let record: Value = serde_json::from_str(key.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {key}"));
    assert_eq!(s(&record, "sent"), "ctrl-u", "{key}");
    // In a pipe: records.
    let sent = p.json(&["pane", "send", "a", "again"]);
    assert_eq!((s(&sent, "pane"), sent["sent"].as_u64()), ("a", Some(5)), "{sent}");
    assert_eq!(s(&p.json(&["pane", "key", "a", "enter"]), "sent"), "enter");
    // kill A B: both, each said.
    let killed = on_terminal(&p, "pane kill a b");
    killed.expect_code(0);
    let lines: Vec<&str> = killed.stdout.lines().map(str::trim).collect();
    assert_eq!(lines, ["ended a (killed by SIGTERM)", "ended b (killed by SIGTERM)"], "{killed}");
    let listed = p.wt_run(&["pane", "ls"]);
    let alive: Vec<Value> =
        listed.stdout.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["alive"].clone()).collect();
    assert_eq!(alive, [false, false], "{listed}");
    // Again, in a pipe: one record each; they had ended, so they are dropped; an unknown name
    // is said and the others are still killed.
    let run = p.wt_run(&["pane", "kill", "a", "nope", "b"]);
    assert_eq!(run.code, Some(1), "{run}");
    let recs = run.records();
    assert_eq!(
        recs.iter().map(|r| (s(r, "name"), r["dropped"].clone())).collect::<Vec<_>>(),
        [("a", true.into()), ("b", true.into())]
    );
    assert!(run.stderr.contains("nope") && run.stderr.lines().count() == 1, "{run}");
    // stop: returns once the supervisor's process is gone.
    assert_eq!(p.wt_run(&["pane", "ls"]).stdout.trim(), "", "no pane left to list");
    spawn_on(&p, "c", "native", &[], &["sleep", "600"]);
    let mut socket = std::os::unix::net::UnixStream::connect(p.socket()).unwrap();
    let ping = wt_tests::panes::raw_call(&mut socket, b"{\"id\":1,\"method\":\"server.ping\"}\n");
    drop(socket);
    let supervisor = ping["result"]["pid"].as_u64().unwrap();
    let stopped = on_terminal(&p, "pane stop");
    stopped.expect_code(0);
    assert_eq!(
        stopped.stdout.trim(),
        format!("stopped the pane supervisor (pid {supervisor}) and its panes"),
        "{stopped}"
    );
    let stat = std::fs::read_to_string(format!("/proc/{supervisor}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    assert!(matches!(state, None | Some("Z")), "the supervisor has exited when stop returns: {stat}");
    spawn_on(&p, "d", "native", &[], &["sleep", "600"]);
    let stopped = p.json(&["pane", "stop"]);
    assert_eq!(stopped["stopped"], true, "{stopped}");
    assert!(stopped["pid"].is_u64(), "{stopped}");
}
