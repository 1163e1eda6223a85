//! Panes, end to end: real PTYs, real interactive programs, the real supervisor and its socket.
//! Each test has its own socket directory (XDG_RUNTIME_DIR) and stops its supervisor.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use wt_tests::panes::{raw_call, Panes};
use wt_tests::{s, Run};

#[test]
fn bash_in_a_pane_is_read_typed_into_and_waited_for() {
    let p = Panes::new();
    let rec = p.spawn("sh1", &["bash", "--norc", "--noprofile", "-i"]);
    assert_eq!(rec["run"]["pane"]["name"], "sh1");
    assert!(s(&rec["run"]["pane"], "socket").ends_with(".sock"));
    p.json(&["pane", "send", "sh1", "echo \"pane=$WT_PANE sum=$((40+2))\"; pwd", "--enter"]);
    p.wait_match("sh1", "sum=42");
    let screen = p.json(&["pane", "screen", "sh1"]);
    let text = s(&screen, "text");
    assert!(text.contains("pane=sh1 sum=42"), "{text}");
    assert!(text.contains(&format!("{}", p.t.wt_root().join("sh1").display())), "runs in its worktree: {text}");
    // A multi-line send arrives as one paste and runs as two commands.
    p.json(&["pane", "send", "sh1", "echo first-line\necho second-line", "--enter"]);
    p.wait_match("sh1", "(?m)^second-line");
    p.json(&["pane", "key", "sh1", "ctrl-d"]);
    let done = p.json(&["pane", "wait", "sh1", "--exit", "--timeout", "10s"]);
    assert_eq!(done["exit"], json!({"code": 0}));
    let listed = p.json(&["pane", "ls"]);
    assert_eq!(listed["alive"], false);
}

#[test]
fn a_flood_of_printable_output_leaves_the_screen_a_terminal_would_show() {
    // 3 MB without a line break (the emulator skips most of it unparsed), then a colour, a
    // line break and a last line: the screen and scrollback must be what parsing it all gives.
    let p = Panes::new();
    let flood = "import sys\nw = sys.stdout.write\nfor i in range(30000): w(('%07d' % i) + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,:;!?()[]{}<>=+-*/&%$#@^~_|' + 'x' * (i % 5))\nw('\\x1b[31mred\\x1b[0m\\r\\nlast line')\nsys.stdout.flush()\n";
    p.spawn("flood", &["python3", "-c", flood]);
    let done = p.json(&["pane", "wait", "flood", "--exit", "--timeout", "60s"]);
    assert_eq!(done["exit"], json!({"code": 0}));
    let screen = p.json(&["pane", "screen", "flood"]);
    let cols = screen["cols"].as_u64().unwrap() as usize;
    let mut text = String::new();
    for i in 0..30000 {
        text += &format!("{i:07}abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,:;!?()[]{{}}<>=+-*/&%$#@^~_|");
        text += &"x".repeat(i % 5);
    }
    text += "red";
    let wrapped: Vec<String> = text.as_bytes().chunks(cols).map(|r| String::from_utf8(r.to_vec()).unwrap()).collect();
    let lines: Vec<String> =
        screen["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().trim_end().to_string()).collect();
    let shown = lines.iter().rposition(|l| !l.is_empty()).unwrap();
    assert_eq!(lines[shown], "last line");
    let expected = &wrapped[wrapped.len() - shown..];
    assert_eq!(&lines[..shown], expected, "the rows above the last line are the end of the flood, in whole rows");
    assert!(shown > 30, "the screen is full: {lines:?}");
    // The colour codes, and the line break the terminal turns into `\r\r\n`.
    let sent = text.len() + "\x1b[31m\x1b[0m\r\r\nlast line".len();
    assert_eq!(p.json(&["pane", "ls"])["bytes"].as_u64(), Some(sent as u64), "every byte counted");
}

#[test]
fn python_repl_and_a_full_screen_program() {
    let p = Panes::new();
    p.spawn("py", &["python3", "-i", "-q"]);
    p.wait_match("py", ">>> ");
    p.json(&["pane", "send", "py", "print(6 * 7)", "--enter"]);
    p.wait_match("py", "(?m)^42");
    // curses: the alternate screen, text placed by cursor addressing, a key read in raw mode.
    let prog = "import curses\ndef main(w):\n    w.addstr(5, 10, 'FULL SCREEN')\n    w.refresh()\n    k = w.getkey()\n    w.addstr(6, 10, 'got ' + k)\n    w.refresh()\n    w.getkey()\ncurses.wrapper(main)\n";
    std::fs::write(p.t.root().join("curses_app.py"), prog).unwrap();
    p.spawn("full", &["python3", p.t.root().join("curses_app.py").to_str().unwrap()]);
    let screen = p.wait_match("full", "FULL SCREEN")["screen"].clone();
    assert_eq!(screen["alternate_screen"], true);
    assert_eq!(screen["lines"][5].as_str().unwrap().trim_end(), format!("{}FULL SCREEN", " ".repeat(10)));
    p.json(&["pane", "send", "full", "x"]);
    p.wait_match("full", "got x");
    p.json(&["pane", "key", "full", "enter"]);
    let done = p.json(&["pane", "wait", "full", "--exit", "--timeout", "10s"]);
    assert_eq!(done["screen"]["alternate_screen"], false, "back on the normal screen");
}

#[test]
fn two_clients_at_once() {
    let p = Panes::new();
    p.spawn("two", &["bash", "--norc", "--noprofile", "-i"]);
    let mut waiter = p.cmd();
    waiter.args(["pane", "wait", "two", "--match", "from-the-other-client", "--timeout", "15s"]);
    let waiting = std::thread::spawn(move || Run::of(&mut waiter, ""));
    std::thread::sleep(Duration::from_millis(300));
    p.json(&["pane", "send", "two", "echo from-the-other-$((1))client | tr -d 1", "--enter"]);
    let run = waiting.join().unwrap();
    run.expect_code(0);
    assert!(run.stdout.contains("from-the-other-client"));
}

#[test]
fn bad_requests_and_vanishing_clients_do_not_disturb_the_supervisor() {
    let p = Panes::new();
    p.spawn("calm", &["bash", "--norc", "--noprofile", "-i"]);
    let socket = p.socket();
    let mut c = UnixStream::connect(&socket).unwrap();
    assert_eq!(raw_call(&mut c, b"{not json\n")["error"]["code"], "bad-request");
    assert_eq!(raw_call(&mut c, b"{\"id\":1,\"method\":\"no.such\"}\n")["error"]["code"], "unknown-method");
    let mut big = vec![b'x'; (1 << 20) + 10];
    big.push(b'\n');
    assert_eq!(raw_call(&mut c, &big)["error"]["code"], "too-large");
    assert_eq!(
        raw_call(&mut c, b"{\"id\":2,\"method\":\"server.ping\"}\n")["ok"],
        true,
        "same connection still served"
    );
    // A client that leaves mid-request, and a hundred that connect and vanish.
    let mut half = UnixStream::connect(&socket).unwrap();
    half.write_all(b"{\"id\":3,\"method\":\"pane.li").unwrap();
    drop(half);
    for _ in 0..100 {
        drop(UnixStream::connect(&socket).unwrap());
    }
    p.json(&["pane", "send", "calm", "echo still-$((6*7))", "--enter"]);
    p.wait_match("calm", "still-42");
}

#[test]
fn a_crashing_program_and_a_dead_supervisor_are_reported_clearly() {
    let p = Panes::new();
    p.spawn("crash", &["sh", "-c", "echo about-to-crash; sleep 0.2; kill -SEGV $$"]);
    let done = p.json(&["pane", "wait", "crash", "--exit", "--timeout", "10s"]);
    assert_eq!(done["exit"]["signal"], "SEGV", "spelled as batch runs spell it: {done}");
    assert!(s(&done["screen"], "text").contains("about-to-crash"));
    // The supervisor survives it, and then is killed outright.
    let pid = p.json(&["pane", "ls"])["pid"].clone();
    assert!(pid.is_u64());
    let mut c = UnixStream::connect(p.socket()).unwrap();
    let sup = raw_call(&mut c, b"{\"id\":1,\"method\":\"server.ping\"}\n")["result"]["pid"].as_i64().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(sup as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let run = p.wt_run(&["pane", "ls"]);
    run.expect_code(3);
    assert!(run.stderr.contains("no pane supervisor is running"), "{run}");
    // Its socket is stale; the next --pane starts a new supervisor anyway.
    p.spawn("after", &["sh", "-c", "echo new-supervisor; sleep 30"]);
    p.wait_match("after", "new-supervisor");
}

#[test]
fn one_supervisor_per_repository_and_only_its_user_may_connect() {
    let p = Panes::new();
    p.spawn("one", &["sleep", "30"]);
    // Global options go before the verb, as with git.
    let mut from_elsewhere = p.cmd();
    from_elsewhere.current_dir("/").args(["-C", p.t.repo.to_str().unwrap(), "pane", "ls"]);
    let listed = Run::of(&mut from_elsewhere, "");
    assert!(listed.expect_code(0).stdout.contains("\"name\":\"one\""), "{listed}");
    let second = p.wt_run(&["serve", "--idle", "2s"]);
    second.expect_code(3);
    assert!(second.stderr.contains("already running"), "{second}");
    let dir = p.xdg.join("wt");
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    if nix::unistd::geteuid().is_root() {
        // Another user cannot even reach the socket.
        let socket = p.socket();
        let probe = format!("import socket; s = socket.socket(socket.AF_UNIX); s.connect('{}')", socket.display());
        let out = Command::new("runuser").args(["-u", "nobody", "--", "python3", "-c", &probe]).output().unwrap();
        assert!(!out.status.success(), "nobody connected to the supervisor");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    }
}

#[test]
fn events_stream_spawn_output_and_exit() {
    let p = Panes::new();
    p.spawn("first", &["sleep", "30"]);
    let mut c = UnixStream::connect(p.socket()).unwrap();
    assert_eq!(raw_call(&mut c, b"{\"id\":1,\"method\":\"events.subscribe\"}\n")["result"]["subscribed"], true);
    p.spawn("ev", &["sh", "-c", "echo hello-events; sleep 0.2"]);
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut seen = Vec::new();
    let mut lines = BufReader::new(c).lines();
    while let Some(Ok(line)) = lines.next() {
        let ev: Value = serde_json::from_str(&line).unwrap();
        if ev["pane"] == "ev" {
            seen.push(ev["event"].as_str().unwrap().to_string());
        }
        if ev["event"] == "exited" && ev["pane"] == "ev" {
            assert_eq!(ev["exit"], json!({"code": 0}));
            break;
        }
    }
    assert_eq!(seen.first().map(String::as_str), Some("spawned"));
    assert!(seen.contains(&"output".to_string()), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("exited"));
}

#[test]
fn the_tmux_backend_puts_panes_in_a_session_a_person_can_attach_to() {
    let p = Panes::new();
    p.t.run("wt-create", &["tm"], "").expect_code(0);
    let run = p.wt_run(&["-w", "tm", "--pane", "--backend", "tmux", "--", "bash", "--norc", "--noprofile", "-i"]);
    let rec = &run.expect_code(0).records()[0];
    let session = s(&rec["run"]["pane"]["tmux"], "session").to_string();
    let window = s(&rec["run"]["pane"]["tmux"], "window").to_string();
    // Named after the repository (its directory is `repo`), so `tmux ls` tells which is which.
    assert!(session.starts_with("wt-repo-") && session.len() == "wt-repo-".len() + 8, "{session}");
    assert!(p.tmux(&["list-windows", "-t", &session, "-F", "#{window_name}"]).lines().any(|l| l == "tm"));
    p.json(&["pane", "send", "tm", "echo \"in tmux: $((6*7)) $WT_PANE\"", "--enter"]);
    p.wait_match("tm", "in tmux: 42 tm");
    // What a person attached to tmux would see is what the verbs read.
    assert!(p.tmux(&["capture-pane", "-p", "-t", &window]).contains("in tmux: 42 tm"));
    assert!(s(&p.json(&["pane", "screen", "tm"]), "text").contains("in tmux: 42 tm"));
    p.json(&["pane", "send", "tm", "echo tmux-one\necho tmux-two", "--enter"]);
    p.wait_match("tm", "(?m)^tmux-two");
    p.json(&["pane", "key", "tm", "ctrl-d"]);
    let done = p.json(&["pane", "wait", "tm", "--exit", "--timeout", "10s"]);
    assert_eq!(done["exit"], json!({"code": 0}));
    p.json(&["pane", "kill", "tm"]);
    // Its last window gone, the session (and this test's tmux server) ends with it.
    let out = Command::new("tmux")
        .args(["list-windows", "-a", "-F", "#{window_id}"])
        .env("TMUX_TMPDIR", &p.xdg)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).lines().any(|l| l == window), "window closed");
}

#[test]
fn attach_types_into_the_pane_shows_its_output_and_detaches_with_ctrl_bracket() {
    let p = Panes::new();
    p.spawn("att", &["bash", "--norc", "--noprofile", "-i"]);
    p.json(&["pane", "wait", "att", "--quiet", "200ms", "--timeout", "10s"]);
    // `script` gives attach a real terminal; what we write to its stdin is typed there.
    let line = format!("'{}' pane attach att", wt_tests::bin("wt-run").display());
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]).current_dir(&p.t.repo);
    p.env(&mut script);
    script
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = script.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    stdin.write_all(b"echo attached-$((1+1))\r").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    stdin.write_all(&[0x1d]).unwrap();
    let run = Run::from_output(child.wait_with_output().unwrap());
    assert!(run.stdout.contains("attached-2"), "the pane's output came back: {run}");
    assert!(run.stdout.contains("detached from att"), "{run}");
    // The pane goes on, and the keys reached it.
    let listed = p.json(&["pane", "ls"]);
    assert_eq!(listed["alive"], true);
    assert!(s(&p.json(&["pane", "screen", "att"]), "text").contains("attached-2"));
}

#[test]
fn a_pane_is_a_session_with_a_terminal_default_signals_a_log_and_a_size() {
    let p = Panes::new();
    let probe = "tty; echo sid=$(ps -o sid= -p $$ | tr -d ' ') pid=$$; grep -E '^Sig(Ign|Blk)' /proc/self/status; \
                 for i in $(seq 1 120); do echo scroll-$i; done; exec bash --norc --noprofile -i";
    let rec = p.spawn("probe", &["bash", "-c", probe]);
    let pid = rec["run"]["pane"]["pid"].as_u64().unwrap();
    p.wait_match("probe", "scroll-120");
    let screen = p.json(&["pane", "screen", "probe", "--lines", "200"]);
    let text = s(&screen, "text");
    assert!(text.contains("/dev/pts/"), "a controlling terminal: {text}");
    assert!(text.contains(&format!("sid={pid} pid={pid}")), "its own session: {text}");
    // The terminal shows the tab after the field name as spaces.
    assert!(
        text.contains("SigIgn: 0000000000000000") && text.contains("SigBlk: 0000000000000000"),
        "default signals: {text}"
    );
    assert!(text.contains("scroll-1\n"), "scrollback lines reach back: {text}");
    let visible = s(&p.json(&["pane", "screen", "probe"]), "text").to_string();
    assert!(!visible.contains("scroll-1\n"), "but the screen alone does not");
    let log = std::fs::read_to_string(s(&p.json(&["pane", "ls"]), "log")).unwrap();
    assert!(log.contains("scroll-120"), "raw output is logged");
    p.json(&["pane", "resize", "probe", "20", "60"]);
    p.json(&["pane", "send", "probe", "echo size=$(stty size)", "--enter"]);
    p.wait_match("probe", "size=20 60");
    // A client inside the pane reaches its supervisor through WT_SOCKET, from anywhere.
    let inside = format!(
        "cd / && '{}' pane ls > /tmp/wt-inside-{pid}.json; echo inside-done",
        wt_tests::bin("wt-run").display()
    );
    p.json(&["pane", "send", "probe", &inside, "--enter"]);
    p.wait_match("probe", "(?m)^inside-done");
    let listed = std::fs::read_to_string(format!("/tmp/wt-inside-{pid}.json")).unwrap();
    let _ = std::fs::remove_file(format!("/tmp/wt-inside-{pid}.json"));
    assert!(listed.contains("\"name\":\"probe\""), "{listed}");
}

#[test]
fn the_supervisor_leaves_when_its_panes_are_done_and_nobody_is_connected() {
    let p = Panes::new();
    p.t.run("wt-create", &["brief"], "").expect_code(0);
    let mut c = p.cmd();
    c.env("WT_PANE_IDLE", "1s").args(["-w", "brief", "--pane", "--", "sh", "-c", "echo short-lived"]);
    Run::of(&mut c, "").expect_code(0);
    let socket = p.socket();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!socket.exists(), "socket removed on exit");
    p.wt_run(&["pane", "ls"]).expect_code(3);
}

#[test]
fn an_agent_in_a_pane_can_be_confined_to_its_worktree() {
    let p = Panes::new();
    p.t.run("wt-create", &["other"], "").expect_code(0);
    p.t.run("wt-create", &["jail"], "").expect_code(0);
    let run = p.wt_run(&["-w", "jail", "--pane", "--confine", "--", "bash", "--norc", "--noprofile", "-i"]);
    let rec = &run.expect_code(0).records()[0];
    assert_eq!(rec["run"]["pane"]["confined"]["enforced"], "full", "{rec}");
    let other = p.t.wt_root().join("other").join("evil.txt");
    let attempt = format!(
        "echo own > mine.txt && echo own-ok; (echo x > '{}') 2>/dev/null || echo other-denied",
        other.display()
    );
    p.json(&["pane", "send", "jail", &attempt, "--enter"]);
    p.wait_match("jail", "(?m)^other-denied");
    assert!(s(&p.json(&["pane", "screen", "jail"]), "text").contains("own-ok"));
    assert!(p.t.wt_root().join("jail/mine.txt").exists());
    assert!(!other.exists());
}

#[test]
fn pane_verbs_speak_cli_words_and_answer_only_when_done() {
    let p = Panes::new();
    p.spawn("verbs", &["bash", "--norc", "--noprofile", "-i"]);
    // No mode: one line in the command line's words, exit 2.
    let run = p.wt_run(&["pane", "wait", "verbs"]);
    run.expect_code(2);
    assert!(run.stderr.contains("--exit, --match RE or --quiet DUR") && run.stderr.lines().count() == 1, "{run}");
    // --quiet takes a duration like --timeout.
    assert_eq!(p.json(&["pane", "wait", "verbs", "--quiet", "300ms", "--timeout", "10s"])["quiet_ms"], 300);
    // A timeout says what it waited for.
    let run = p.wt_run(&["pane", "wait", "verbs", "--match", "never-printed", "--timeout", "300ms"]);
    run.expect_code(1);
    assert!(run.stderr.contains("waited 300ms for the screen to match 'never-printed'"), "{run}");
    // --lines N: the last N lines, however much was printed.
    p.json(&["pane", "send", "verbs", "seq 1 5000", "--enter"]);
    p.wait_match("verbs", "(?m)^5000");
    p.json(&["pane", "wait", "verbs", "--quiet", "300ms", "--timeout", "10s"]);
    let screen = p.json(&["pane", "screen", "verbs", "--lines", "100"]);
    let lines: Vec<&str> = screen["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().trim_end()).collect();
    assert_eq!(lines.len(), 100, "{screen}");
    let expected: Vec<String> = (4902..=5000).map(|n| n.to_string()).collect();
    assert_eq!(&lines[..99], expected.as_slice(), "every one of the last lines, in order");
    // Keys beyond a fixed list: ctrl-<letter>, shift-tab, function keys, alt-<key>, as bytes.
    // The terminal in raw mode, so every byte reaches the program as sent.
    p.json(&[
        "pane",
        "send",
        "verbs",
        "stty raw -echo; head -c 12 | od -An -c; stty sane; echo od-$((1+1))-done",
        "--enter",
    ]);
    p.json(&["pane", "wait", "verbs", "--quiet", "500ms", "--timeout", "10s"]);
    for key in ["ctrl-r", "shift-tab", "f5", "alt-b", "enter"] {
        p.json(&["pane", "key", "verbs", key]);
    }
    let seen = p.wait_match("verbs", "od-2-done")["screen"]["text"].as_str().unwrap().to_string();
    let bytes = regex_lite(&seen);
    assert!(bytes, "ctrl-r, shift-tab, f5, alt-b, enter as xterm sends them: {seen}");
    let run = p.wt_run(&["pane", "key", "verbs", "hyper-x"]);
    run.expect_code(1);
    assert!(run.stderr.contains("ctrl-<letter>"), "says which keys exist: {run}");
    // kill answers once the program is dead (bash ignores SIGTERM: it takes the SIGKILL).
    let killed = p.json(&["pane", "kill", "verbs"]);
    assert_eq!(
        (killed["alive"].clone(), killed["exit"].clone()),
        (json!(false), json!({"signal": "KILL", "killed": true})),
        "{killed}"
    );
    // stop answers once the supervisor is gone: a --pane right after it gets a new one.
    let pid = p.json(&["pane", "ls"])["pid"].clone();
    assert!(pid.is_u64());
    p.json(&["pane", "stop"]);
    p.spawn("after", &["bash", "--norc", "--noprofile", "-i"]);
    p.wait_match("after", "bash");
}

#[test]
fn a_pane_that_cannot_start_says_why_in_one_line() {
    let p = Panes::new();
    p.t.run("wt-create", &["np"], "").expect_code(0);
    let run = p.wt_run(&["-w", "np", "--pane", "--", "no-such-program-xyz"]);
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(rec["error"]["code"], "not-found", "as a batch run says it: {run}");
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert!(!run.stderr.contains("/usr/bin"), "no PATH dump: {run}");
    // A pane name is one pane: with several worktrees it is refused before anything starts.
    p.t.run("wt-create", &["np2"], "").expect_code(0);
    let run = p.wt_run(&["-w", "np", "-w", "np2", "--pane=same", "--", "true"]);
    run.expect_code(2);
    assert!(run.stderr.contains("--pane=same"), "{run}");
}

#[test]
fn the_protocol_refuses_what_it_cannot_do_as_asked() {
    let p = Panes::new();
    p.spawn("strict", &["bash", "--norc", "--noprofile", "-i"]);
    let mut c = UnixStream::connect(p.socket()).unwrap();
    let call = |c: &mut UnixStream, method: &str, params: Value| {
        let mut line = serde_json::to_vec(&json!({"id": 1, "method": method, "params": params})).unwrap();
        line.push(b'\n');
        raw_call(c, &line)
    };
    let missing = p.t.root().join("no-such-dir");
    let r = call(&mut c, "pane.spawn", json!({"name": "x", "cmd": ["true"], "cwd": missing}));
    assert_eq!(r["error"]["code"], "no-such-directory", "{r}");
    let r = call(&mut c, "pane.spawn", json!({"name": "x", "cmd": ["true"], "cwd": p.t.repo, "rows": 0}));
    assert_eq!(r["error"]["code"], "bad-params", "{r}");
    let r = call(&mut c, "pane.spawn", json!({"name": "x", "cmd": ["true"], "cwd": p.t.repo, "cols": 5000}));
    assert_eq!(r["error"]["code"], "bad-params", "{r}");
    let r = call(&mut c, "pane.resize", json!({"pane": "strict", "rows": 24, "cols": 0}));
    assert_eq!(r["error"]["code"], "bad-params", "{r}");
    let r = call(&mut c, "pane.write", json!({"pane": "strict", "data_b64": "not base64!"}));
    assert_eq!(r["error"]["code"], "bad-params", "{r}");
    let r = call(&mut c, "pane.write", json!({"pane": "strict", "data_b64": "ZWNobyBvay0kKCg0MCsyKSkK"}));
    assert_eq!(r["ok"], true, "{r}");
    p.wait_match("strict", "ok-42");
    assert!(p.json(&["pane", "ls"]).is_object(), "one pane: nothing was spawned by the refused requests");
}

#[test]
fn pane_ls_on_a_terminal_is_a_table_that_says_how_to_attach() {
    let p = Panes::new();
    p.spawn("tbl", &["bash", "--norc", "--noprofile", "-i"]);
    let line = format!("'{}' pane ls", wt_tests::bin("wt-run").display());
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]).current_dir(&p.t.repo);
    p.env(&mut script);
    let run = Run::of(&mut script, "");
    run.expect_code(0);
    assert!(run.stdout.starts_with("NAME"), "a table, not JSON: {run}");
    let stateful = ["starting", "running"].iter().any(|s| run.stdout.contains(s)); // its agent's state
    assert!(stateful && run.stdout.contains("wt-run pane attach tbl"), "{run}");
    // Starting a pane on a terminal: which pane, its pid, how to attach.
    p.t.run("wt-create", &["tbl2"], "").expect_code(0);
    let line = format!("'{}' -w tbl2 --pane -- bash --norc --noprofile -i", wt_tests::bin("wt-run").display());
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]).current_dir(&p.t.repo);
    p.env(&mut script);
    let run = Run::of(&mut script, "");
    run.expect_code(0);
    let header = run.stdout.lines().next().unwrap_or_default();
    assert!(header.contains("PANE") && header.contains("PID") && header.contains("ATTACH"), "{run}");
    let row = run.stdout.lines().find(|l| l.starts_with("tbl2")).unwrap_or_else(|| panic!("{run}"));
    assert!(
        row.contains("wt-run pane attach tbl2") && row.split_whitespace().any(|w| w.parse::<u32>().is_ok()),
        "{run}"
    );
}

/// Whether `od -c` printed the bytes of ctrl-r, shift-tab, f5, alt-b and enter.
fn regex_lite(screen: &str) -> bool {
    let words: Vec<&str> = screen.split_whitespace().collect();
    let want = ["022", "033", "[", "Z", "033", "[", "1", "5", "~", "033", "b", "\\r"];
    words.windows(want.len()).any(|w| w == want)
}

/// A pane whose program ignores `signals`, running; returns its pid and its supervisor's.
fn deaf_pane(p: &Panes, name: &str, signals: &str) -> (i32, i64) {
    let script = format!("trap '' {signals}; echo {name}-ready; while :; do sleep 1; done");
    let rec = p.spawn(name, &["sh", "-c", &script]);
    p.wait_match(name, &format!("{name}-ready"));
    (rec["run"]["pane"]["pid"].as_i64().unwrap() as i32, supervisor_pid(p))
}

#[test]
fn panes_of_a_supervisor_killed_with_sigkill_are_ended_by_the_next() {
    let p = Panes::new();
    let (pane_pid, sup) = deaf_pane(&p, "deaf", "HUP");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(sup as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pane_pid), None).is_ok(), "it ignores SIGHUP: alive");
    // The next supervisor knows of it and ends it.
    p.spawn("next", &["sh", "-c", "echo next; sleep 30"]);
    let gone = wt_tests::ended(pane_pid);
    if !gone {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pane_pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(gone, "the next supervisor ended the pane the dead one left");
}

#[test]
fn removing_a_worktree_refuses_or_ends_its_running_pane() {
    let p = Panes::new();
    p.spawn("busy", &["sh", "-c", "echo working; sleep 60"]);
    p.wait_match("busy", "working");
    let mut rm = p.t.cmd("wt-create");
    p.env(&mut rm);
    rm.args(["--remove", "busy"]);
    let run = Run::of(&mut rm, "");
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "pane-running", "{run}");
    assert!(p.t.wt_root().join("busy").exists(), "refused: nothing removed");
    let mut merge = p.t.cmd("wt-merge");
    p.env(&mut merge);
    merge.args(["-w", "busy", "--cleanup", "--unverified"]);
    std::fs::write(p.t.wt_root().join("busy/work.txt"), "work\n").unwrap();
    p.t.git_in(&p.t.wt_root().join("busy"), ["add", "work.txt"]);
    p.t.git_in(&p.t.wt_root().join("busy"), ["commit", "-q", "-m", "work"]);
    let run = Run::of(&mut merge, "");
    assert_eq!(run.records()[0]["merge"]["cleanup"]["removed"], false, "{run}");
    assert!(p.t.wt_root().join("busy").exists(), "--cleanup refuses too");
    let mut force = p.t.cmd("wt-create");
    p.env(&mut force);
    force.args(["--remove", "--force", "busy"]);
    Run::of(&mut force, "").expect_code(0);
    let ls = p.json(&["pane", "ls"]);
    assert_eq!((&ls["name"], &ls["alive"]), (&json!("busy"), &json!(false)), "the pane was ended: {ls}");
    assert!(!p.t.wt_root().join("busy").exists());
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: i64) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().to_string();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn supervisor_pid(p: &Panes) -> i64 {
    let mut c = UnixStream::connect(p.socket()).unwrap();
    raw_call(&mut c, b"{\"id\":1,\"method\":\"server.ping\"}\n")["result"]["pid"].as_i64().unwrap()
}

#[test]
fn clients_that_never_read_are_dropped_and_memory_stays_bounded() {
    let p = Panes::new();
    p.spawn("loud", &["sh", "-c", "echo loud-start; exec yes 0123456789abcdefghijklmnopqrstuvwxyz"]);
    p.wait_match("loud", "loud-start|0123");
    let sup = supervisor_pid(&p);
    // Two clients ask for streams and then never read.
    let mut attach = UnixStream::connect(p.socket()).unwrap();
    attach.write_all(b"{\"id\":1,\"method\":\"pane.attach\",\"params\":{\"pane\":\"loud\"}}\n").unwrap();
    let mut events = UnixStream::connect(p.socket()).unwrap();
    events.write_all(b"{\"id\":2,\"method\":\"events.subscribe\"}\n").unwrap();
    let mut peak = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss_kib(sup));
    }
    eprintln!("supervisor peak: {peak} KiB");
    p.wt_run(&["pane", "kill", "loud"]).expect_code(0);
    // Bounded queues (4 MiB of output for the attached client) plus a 1,000-line scrollback:
    // far below what 4 s of `yes` piles up unread without them.
    assert!(peak < 40 * 1024, "supervisor grew to {peak} KiB");
    // What the slow client gets when it finally reads: what was queued, then a too-slow error.
    let mut tail = String::new();
    let _ = attach.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = std::io::Read::read_to_string(&mut attach, &mut tail);
    assert!(tail.contains("too-slow"), "told why it was dropped: …{}", &tail[tail.len().saturating_sub(300)..]);
}

#[test]
fn killing_an_exited_pane_drops_it_with_its_screen() {
    let p = Panes::new();
    p.spawn("short", &["sh", "-c", "echo done-here"]);
    p.json(&["pane", "wait", "short", "--exit", "--timeout", "10s"]);
    let ls = p.wt_run(&["pane", "ls"]);
    assert!(ls.stdout.contains("\"short\""), "listed while it is not killed: {ls}");
    p.wt_run(&["pane", "kill", "short"]).expect_code(0);
    let ls = p.wt_run(&["pane", "ls"]);
    assert!(!ls.stdout.contains("\"short\""), "dropped once killed: {ls}");
    let run = p.wt_run(&["pane", "screen", "short"]);
    assert_ne!(run.code, Some(0), "its screen is gone too: {run}");
}

#[test]
fn sigterm_to_the_supervisor_ends_its_panes() {
    let p = Panes::new();
    let (pane_pid, sup) = deaf_pane(&p, "deaf2", "HUP TERM");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(sup as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let gone = wt_tests::ended(pane_pid);
    if !gone {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pane_pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(gone, "the pane ended with its supervisor");
    assert!(wt_tests::ended(sup as i32), "the supervisor exited");
}
