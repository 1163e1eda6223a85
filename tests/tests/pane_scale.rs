//! The pane supervisor at scale (issue 29): idle panes cost no thread and no wakeup each, many
//! clients at once are served or refused, a client that never reads does not grow the
//! supervisor, and a pane drained of a large burst shows exactly its end.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wt_tests::panes::{raw_call, Panes};
use wt_tests::s;

/// The supervisor's pid, asked over its socket.
fn supervisor_pid(p: &Panes) -> u32 {
    let mut c = UnixStream::connect(p.socket()).unwrap();
    raw_call(&mut c, b"{\"id\":0,\"method\":\"server.ping\"}\n")["result"]["pid"].as_u64().unwrap() as u32
}

/// A field of /proc/PID/status, as a number (kB for memory).
fn status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Context switches of every thread of PID so far: each is a wakeup (or a preemption).
fn switches(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("status")) else { continue };
        total += text
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

fn request(id: usize, method: &str, params: Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({"id": id, "method": method, "params": params})).unwrap();
    line.push(b'\n');
    line
}

#[test]
fn sixty_four_idle_panes_cost_a_few_threads_no_wakeups_and_little_memory() {
    let p = Panes::new();
    p.spawn("idle", &["sleep", "1000"]);
    let mut c = UnixStream::connect(p.socket()).unwrap();
    let cwd = p.t.root().display().to_string();
    for i in 1..64 {
        let spawn =
            request(i, "pane.spawn", json!({"name": format!("idle-{i}"), "cmd": ["sleep", "1000"], "cwd": cwd}));
        let answer = raw_call(&mut c, &spawn);
        assert_eq!(answer["ok"], true, "{answer}");
    }
    drop(c);
    let pid = supervisor_pid(&p);
    std::thread::sleep(Duration::from_secs(5));
    let threads = status(pid, "Threads");
    let rss_kib = status(pid, "VmRSS");
    // A thread a pane (or three, as before) would be 64 or more.
    assert!(threads <= 8, "64 idle panes: {threads} threads in the supervisor");
    // An idle pane that printed nothing holds no cells (a 40×120 screen of them is 150 KiB:
    // 9.6 MiB for 64); a debug build.
    assert!(rss_kib <= 20 * 1024, "64 idle panes: {rss_kib} KiB resident");
    // Nothing happens, so nothing wakes it: no tick, no per-pane timer.
    let before = switches(pid);
    std::thread::sleep(Duration::from_secs(3));
    let woke = switches(pid) - before;
    assert!(woke <= 6, "64 idle panes: the supervisor woke {woke} times in 3 s");
}

#[test]
fn three_hundred_clients_at_once_are_each_served_or_refused_with_bounded_threads() {
    let p = Panes::new();
    p.spawn("many", &["sleep", "1000"]);
    let pid = supervisor_pid(&p);
    let socket = p.socket();
    let mut clients: Vec<UnixStream> = (0..300).map(|_| UnixStream::connect(&socket).unwrap()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // A refused client may already be closed: its answer was sent on accepting it.
        let _ = c.write_all(&request(i, "server.ping", json!({})));
    }
    let (mut served, mut refused) = (0, 0);
    for c in &clients {
        let mut line = String::new();
        BufReader::new(c.try_clone().unwrap()).read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        if answer["ok"] == true {
            served += 1;
        } else {
            assert_eq!(answer["error"]["code"], "too-many-connections", "{answer}");
            assert!(s(&answer["error"], "message").contains("try again later"), "{answer}");
            refused += 1;
        }
    }
    assert_eq!(served + refused, 300);
    assert!(served >= 100 && refused >= 1, "served {served}, refused {refused}");
    let threads = status(pid, "Threads");
    assert!(threads <= 160, "300 clients connected: {threads} threads");
    drop(clients);
    // Once they left, the supervisor serves again.
    let mut c = UnixStream::connect(&socket).unwrap();
    assert_eq!(raw_call(&mut c, &request(1, "server.ping", json!({})))["ok"], true);
}

#[test]
fn a_client_that_never_reads_does_not_grow_the_supervisor_and_is_told_why_it_was_dropped() {
    let p = Panes::new();
    p.spawn("flood", &["sh", "-c", "sleep 1; yes 0123456789abcdef | head -c 200000000; sleep 1000"]);
    let pid = supervisor_pid(&p);
    let rss_before = status(pid, "VmRSS");
    let mut slow = UnixStream::connect(p.socket()).unwrap();
    slow.write_all(&request(1, "pane.attach", json!({"pane": "flood"}))).unwrap();
    // The pane prints 200 MB while this client reads nothing.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ls = p.json(&["pane", "ls"]);
        if ls["bytes"].as_u64().unwrap() >= 200_000_000 {
            break;
        }
        assert!(Instant::now() < deadline, "the pane did not print 200 MB: {ls}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let grown_kib = status(pid, "VmRSS").saturating_sub(rss_before);
    assert!(grown_kib <= 32 * 1024, "a client that reads nothing grew the supervisor by {grown_kib} KiB");
    // What was queued for it still arrives, then why it was dropped, then the end.
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let last = BufReader::new(slow).lines().map_while(Result::ok).last().unwrap();
    let last: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["error"]["code"], "too-slow", "{last}");
}

#[test]
fn a_pane_drained_of_50_mb_shows_its_last_lines_and_its_log_holds_them_in_order() {
    let p = Panes::new();
    // 500,000 numbered lines of 100 characters: 50.5 MB (the terminal adds a CR to each).
    let script = "awk 'BEGIN { for (i = 1; i <= 500000; i++) printf \"%06d %093d\\n\", i, i }'";
    p.spawn("drain", &["sh", "-c", script]);
    p.json(&["pane", "wait", "drain", "--exit", "--timeout", "300s"]);
    let line = |i: usize| format!("{i:06} {i:093}");
    let screen = p.json(&["pane", "screen", "drain", "--lines", "200"]);
    let lines: Vec<&str> = screen["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().trim_end()).collect();
    let printed: Vec<&str> = lines.iter().copied().filter(|l| !l.is_empty()).collect();
    let expected: Vec<String> = (500000 - printed.len() + 1..=500000).map(line).collect();
    assert!(printed.len() >= 200, "scrollback and screen: {} lines", printed.len());
    assert_eq!(printed, expected, "every one of the last lines, in order, and nothing else");
    let ls = p.json(&["pane", "ls"]);
    let total = 500_000 * 102;
    assert_eq!(ls["bytes"], total, "{ls}");
    // The log (and the one it was rotated to) end with the output, byte for byte.
    let log = std::path::PathBuf::from(s(&ls, "log"));
    let mut rotated = log.clone().into_os_string();
    rotated.push(".1");
    let mut logged = std::fs::read(&rotated).unwrap_or_default();
    logged.extend(std::fs::read(&log).unwrap());
    let all: Vec<u8> = (1..=500000).flat_map(|i| format!("{}\r\n", line(i)).into_bytes()).collect();
    assert!(logged.len() >= 16 << 20, "the log holds {} bytes", logged.len());
    assert!(all.ends_with(&logged), "the log is the output's end, byte for byte");
}

#[test]
fn a_quiet_pane_lets_its_cells_go_and_wakes_where_it_was() {
    let p = Panes::new();
    p.spawn("nap", &["bash", "--norc", "--noprofile", "-i"]);
    p.json(&["pane", "send", "nap", "PS1='$ '; seq 1 300; printf '\\033[31mred\\033[0m and plain'", "--enter"]);
    p.wait_match("nap", "red and plain");
    p.json(&["pane", "wait", "nap", "--quiet", "500ms", "--timeout", "10s"]);
    let before = p.json(&["pane", "screen", "nap", "--lines", "400"]);
    // Quiet for longer than the quiet time (2 s): the emulator sleeps; reading wakes it.
    std::thread::sleep(Duration::from_millis(3500));
    let after = p.json(&["pane", "screen", "nap", "--lines", "400"]);
    assert_eq!(before, after, "the screen, scrollback and cursor read the same after a sleep");
    let ones = after["lines"].as_array().unwrap().iter().filter(|l| l.as_str().unwrap().trim() == "1").count();
    assert_eq!(ones, 1, "the scrollback reaches back to the first line, once: {after}");
    // Output, then quiet again: it sleeps, and the next output wakes it where it was.
    p.json(&["pane", "send", "nap", "seq 301 302", "--enter"]);
    p.wait_match("nap", "302");
    std::thread::sleep(Duration::from_millis(3500));
    p.json(&["pane", "send", "nap", "echo woke-$((40+2))", "--enter"]);
    let text = s(&p.wait_match("nap", "woke-42\\s*\\n\\$")["screen"], "text").to_string();
    assert!(text.contains("red and plain$ seq 301 302\n301\n302\n$ echo woke-$((40+2))\nwoke-42\n$"), "{text}");
}

/// Connects and sends one request line.
fn client(p: &Panes, id: usize, method: &str, params: Value) -> UnixStream {
    let mut c = UnixStream::connect(p.socket()).unwrap();
    c.write_all(&request(id, method, params)).unwrap();
    c
}

/// The next line a client gets, within `within`, if any.
fn line_within(c: &UnixStream, within: Duration) -> Option<String> {
    c.set_read_timeout(Some(within)).unwrap();
    let mut line = String::new();
    match BufReader::new(c.try_clone().unwrap()).read_line(&mut line) {
        Ok(n) if n > 0 => Some(line),
        _ => None,
    }
}

/// Whether a client still waits: nothing to read within `within`, and not closed.
fn still_waiting(c: &UnixStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    matches!((&*c).read(&mut byte), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// A `pane.wait` for text that never comes (for ten minutes).
fn never(pane: &str) -> Value {
    json!({"pane": pane, "match": "text that never comes", "timeout_ms": 600_000})
}

/// `server.ping` on a new connection: its answer (a refused client may be closed before its
/// request is written: its answer was sent on accepting it).
fn ping(p: &Panes) -> (UnixStream, Value) {
    let mut c = UnixStream::connect(p.socket()).unwrap();
    let _ = c.write_all(&request(0, "server.ping", json!({})));
    let line = line_within(&c, Duration::from_secs(30)).expect("an answer");
    (c, serde_json::from_str(&line).unwrap())
}

/// Waits until a new client is served (not refused at the cap), for at most 10 s; the served
/// client stays connected, so it holds the slot it took.
fn served_once_a_slot_is_free(p: &Panes, what: &str) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (c, answer) = ping(p);
        if answer["ok"] == true {
            return c;
        }
        assert_eq!(answer["error"]["code"], "too-many-connections", "{answer}");
        assert!(Instant::now() < deadline, "{what}: its slot of the connection cap is still held after 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Blocking requests are state machines on the supervisor's event loop, not a thread each:
/// a hundred clients in `pane wait` and twenty attach streams on 64 panes leave the supervisor
/// within the thread budget of idle panes (before: a thread per connection, 120 more), and
/// the waits still answer when their text comes.
#[test]
fn a_hundred_waiting_clients_and_twenty_attach_streams_hold_no_thread_each() {
    let p = Panes::new();
    p.spawn("echo", &["cat"]);
    let cwd = p.t.root().display().to_string();
    let mut c = UnixStream::connect(p.socket()).unwrap();
    for i in 1..64 {
        let spawn =
            request(i, "pane.spawn", json!({"name": format!("idle-{i}"), "cmd": ["sleep", "1000"], "cwd": cwd}));
        assert_eq!(raw_call(&mut c, &spawn)["ok"], true);
    }
    drop(c);
    let pid = supervisor_pid(&p);
    // Quiet for longer than a screen is kept awake after a look (2 s).
    std::thread::sleep(Duration::from_secs(3));
    let rss_before = status(pid, "VmRSS");
    // 90 wait for text no pane prints, 10 for what the `echo` pane will show.
    let mut idle_waits = Vec::new();
    let mut echo_waits = Vec::new();
    for i in 0..100 {
        if i % 10 == 0 {
            let params = json!({"pane": "echo", "match": "hello (waiters)", "timeout_ms": 600_000});
            echo_waits.push(client(&p, i, "pane.wait", params));
        } else {
            idle_waits.push(client(&p, i, "pane.wait", never(&format!("idle-{}", 1 + i % 63))));
        }
    }
    let mut streams = Vec::new();
    for i in 0..20 {
        let c = client(&p, 100 + i, "pane.attach", json!({"pane": format!("idle-{}", 1 + i)}));
        let first = line_within(&c, Duration::from_secs(30)).expect("attach answered");
        assert!(first.contains("\"attached\":true"), "{first}");
        streams.push(c);
    }
    let threads = status(pid, "Threads");
    assert!(threads <= 8, "100 clients waiting and 20 attached: {threads} threads in the supervisor");
    // A look woke each screen (150 KiB of cells at 40×120; 9.4 MiB for 64): quiet, they sleep
    // again, so a client costs its buffers, not a screen.
    let grown_kib = status(pid, "VmRSS").saturating_sub(rss_before);
    assert!(grown_kib <= 4 * 1024, "120 clients grew the supervisor by {grown_kib} KiB");
    // Still waiting, not refused nor answered.
    for c in idle_waits.iter().take(5).chain(&echo_waits) {
        assert!(still_waiting(c, Duration::from_millis(100)), "a wait was answered early, or closed");
    }
    p.json(&["pane", "send", "echo", "hello waiters", "--enter"]);
    for c in &echo_waits {
        let answer: Value = serde_json::from_str(&line_within(c, Duration::from_secs(30)).expect("answered")).unwrap();
        assert_eq!(answer["result"]["matched"], "hello waiters", "{answer}");
    }
    let threads = status(pid, "Threads");
    assert!(threads <= 8, "after the answers: {threads} threads in the supervisor");
}

/// A client of `pane wait`, `pane attach` or an event stream that goes away gives its slot of
/// the connection cap back at once (before: a waiting client held its thread and its slot
/// until its wait timed out, here ten minutes), so a new client is served at the cap.
#[test]
fn clients_that_go_away_while_waiting_or_streaming_free_their_slot_at_once() {
    let p = Panes::new();
    p.spawn("gone", &["sh", "-c", "echo bye"]);
    p.spawn("idle", &["sleep", "1000"]);
    p.json(&["pane", "wait", "gone", "--exit", "--timeout", "30s"]);
    let mut waits: Vec<UnixStream> = (0..126).map(|i| client(&p, i, "pane.wait", never("idle"))).collect();
    let attach = client(&p, 200, "pane.attach", json!({"pane": "gone"}));
    let events = client(&p, 201, "events.subscribe", json!({}));
    for (c, what) in [(&attach, "attached"), (&events, "subscribed")] {
        let first = line_within(c, Duration::from_secs(30)).expect("answered");
        assert!(first.contains(&format!("\"{what}\":true")), "{first}");
    }
    for c in waits.iter().take(3) {
        assert!(still_waiting(c, Duration::from_millis(100)), "a wait was answered, refused or closed");
    }
    // The cap (128) is full: one more is refused.
    let (extra, refused) = ping(&p);
    assert_eq!(refused["error"]["code"], "too-many-connections", "{refused}");
    drop(extra);
    drop(waits.pop());
    let _a = served_once_a_slot_is_free(&p, "a waiting client that went away");
    drop(attach);
    let _b = served_once_a_slot_is_free(&p, "an attached client that went away");
    drop(events);
    let _c = served_once_a_slot_is_free(&p, "an event subscriber that went away");
}

/// tmux panes are sampled by one thread for all of them (tmux tells nothing when a pane
/// prints), not a tracker thread each: eight more tmux panes add no thread.
#[test]
fn tmux_panes_share_one_tracker_thread() {
    let p = Panes::new();
    p.spawn("native", &["sleep", "1000"]);
    let pid = supervisor_pid(&p);
    let cwd = p.t.root().display().to_string();
    let spawn = |c: &mut UnixStream, i: usize| {
        let params = json!({"name": format!("tm-{i}"), "cmd": ["sleep", "1000"], "cwd": cwd, "backend": "tmux"});
        let answer = raw_call(c, &request(i, "pane.spawn", params));
        assert_eq!(answer["ok"], true, "{answer}");
    };
    let mut c = UnixStream::connect(p.socket()).unwrap();
    spawn(&mut c, 0);
    // Once the workers that made it have ended (idle for 2 s).
    std::thread::sleep(Duration::from_secs(4));
    let one = status(pid, "Threads");
    for i in 1..=8 {
        spawn(&mut c, i);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(pid, "Threads") > one {
        let now = status(pid, "Threads");
        assert!(Instant::now() < deadline, "1 tmux pane: {one} threads; 9: {now}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Still tracked: each is listed with its agent state.
    let listed = raw_call(&mut c, &request(99, "pane.list", json!({})));
    let tmux = listed["result"].as_array().unwrap().iter().filter(|p| p["backend"] == "tmux").count();
    assert_eq!(tmux, 9, "{listed}");
}

/// A program that reads no input (raw mode, asleep): writes to it give up after a while,
/// instead of holding the supervisor's request workers for good (before, 16 such writes left
/// no worker for any other request: `pane.list`, `pane.kill`, `server.ping` went unanswered,
/// even after the program was killed). Other requests are answered meanwhile.
#[test]
fn writes_to_a_program_that_reads_nothing_do_not_stop_the_supervisor() {
    let p = Panes::new();
    p.spawn("deaf", &["python3", "-c", "import tty, time; tty.setraw(0); print('deaf', flush=True); time.sleep(1e5)"]);
    p.wait_match("deaf", "deaf");
    // 210 KB each, far more than a terminal's input buffer holds.
    let data = "eHh4".repeat(70_000);
    let writers: Vec<UnixStream> =
        (0..20).map(|i| client(&p, i, "pane.write", json!({"pane": "deaf", "data_b64": data}))).collect();
    std::thread::sleep(Duration::from_secs(1));
    let (_c, answer) = ping(&p);
    assert_eq!(answer["ok"], true, "answered while the writes wait: {answer}");
    let listed = p.json(&["pane", "ls"]);
    assert!(listed.to_string().contains("deaf"), "{listed}");
    // Each write ends with an error that says why, none with `ok` (nothing read them).
    for w in &writers {
        let line = line_within(w, Duration::from_secs(60)).expect("every write is answered");
        let answer: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(answer["ok"], false, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains("not read its input") || message.starts_with("busy"), "{answer}");
    }
}

/// A client that sends its requests and closes its writing end (`nc -N`, `socat`) still gets
/// every answer: a `pane.wait` already met is answered, and the request after it carried out
/// (before, the wait was dropped unanswered, and what followed it with it).
#[test]
fn a_half_closed_client_gets_a_met_wait_and_what_follows_it() {
    let p = Panes::new();
    p.spawn("ready", &["sh", "-c", "echo READY; exec sleep 100"]);
    p.wait_match("ready", "READY");
    let mut c = UnixStream::connect(p.socket()).unwrap();
    let mut lines = request(1, "pane.wait", json!({"pane": "ready", "match": "READY", "timeout_ms": 10_000}));
    lines.extend(request(2, "server.ping", json!({})));
    c.write_all(&lines).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut all = String::new();
    let _ = BufReader::new(c).read_to_string(&mut all);
    let answers: Vec<Value> = all.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), 2, "{all}");
    assert_eq!((&answers[0]["id"], &answers[0]["result"]["matched"]), (&json!(1), &json!("READY")), "{all}");
    assert_eq!((&answers[1]["id"], &answers[1]["ok"]), (&json!(2), &json!(true)), "{all}");
}

/// A tmux server that answers nothing (stopped): the supervisor's loop never asks tmux, so the
/// other panes are served meanwhile; a request about one of its panes is answered after a
/// while instead of holding its worker for good; and the pane is not taken for ended (a stopped
/// server is not a closed window). Before, the loop itself waited on tmux, for good.
#[test]
fn a_stopped_tmux_server_stops_nothing_else_and_ends_no_pane() {
    let p = Panes::new();
    p.spawn("native", &["sh", "-c", "echo here; exec sleep 1000"]);
    let cwd = p.t.root().display().to_string();
    let mut c = UnixStream::connect(p.socket()).unwrap();
    let params = json!({"name": "tm", "cmd": ["sleep", "1000"], "cwd": cwd, "backend": "tmux"});
    assert_eq!(raw_call(&mut c, &request(1, "pane.spawn", params))["ok"], true);
    let server: i32 = p.tmux(&["display-message", "-p", "#{pid}"]).trim().parse().unwrap();
    let signal = |sig| nix::sys::signal::kill(nix::unistd::Pid::from_raw(server), sig).unwrap();
    signal(nix::sys::signal::Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(1));
    let asked = client(&p, 2, "pane.read_screen", json!({"pane": "tm"}));
    let native = client(&p, 3, "pane.read_screen", json!({"pane": "native"}));
    let native = line_within(&native, Duration::from_secs(30));
    let answer = line_within(&asked, Duration::from_secs(90));
    signal(nix::sys::signal::Signal::SIGCONT);
    let native: Value = serde_json::from_str(&native.expect("another pane is served")).unwrap();
    assert!(native["result"]["text"].as_str().unwrap_or_default().contains("here"), "{native}");
    assert!(answer.is_some(), "the request about the stopped tmux server's pane is answered");
    let listed = raw_call(&mut c, &request(4, "pane.list", json!({})));
    let tm = listed["result"].as_array().unwrap().iter().find(|p| p["name"] == "tm").cloned().unwrap();
    assert_eq!(tm["alive"], true, "not taken for ended: {tm}");
}
