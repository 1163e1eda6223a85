//! The pane supervisor at scale (issue 29): idle panes cost no thread and no wakeup each, many
//! clients at once are served or refused, a client that never reads does not grow the
//! supervisor, and a pane drained of a large burst shows exactly its end.

use std::io::{BufRead, BufReader, Write};
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

/// Stream clients that went away without a word (killed) are let go even when nothing is sent
/// to them — an attach to a pane that exited, an event subscription while nothing happens —
/// so they do not keep a thread and a slot of the connection cap for ever.
#[test]
fn stream_clients_that_vanish_are_let_go_when_nothing_is_sent_to_them() {
    let p = Panes::new();
    p.spawn("gone", &["sh", "-c", "echo bye"]);
    p.spawn("idle", &["sleep", "1000"]);
    let pid = supervisor_pid(&p);
    std::thread::sleep(Duration::from_millis(500));
    let baseline = status(pid, "Threads");
    let mut clients = Vec::new();
    for i in 0..20 {
        let mut c = UnixStream::connect(p.socket()).unwrap();
        let (method, params) =
            if i % 2 == 0 { ("pane.attach", json!({"pane": "gone"})) } else { ("events.subscribe", json!({})) };
        c.write_all(&request(i, method, params)).unwrap();
        let mut line = String::new();
        BufReader::new(c.try_clone().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("\"ok\":true"), "{method}: {line}");
        clients.push(c);
    }
    assert!(status(pid, "Threads") >= baseline + 20, "each stream is served");
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(pid, "Threads") > baseline + 1 {
        assert!(
            Instant::now() < deadline,
            "{} threads left for 20 vanished clients",
            status(pid, "Threads") - baseline
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
