//! Clean exits (issue 24, item 5): a killed tool's runs end all at once; a supervisor leaves no
//! file behind, nor what a killed predecessor left; its socket serves many clients with
//! bounded threads.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wt_tests::panes::{raw_call, Panes};
use wt_tests::TestRepo;

fn kill(pid: u32, sig: &str) {
    Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().unwrap();
}

fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// wt-run killed with SIGKILL while 8 runs each have a background job that ignores SIGTERM:
/// the reaper gives them one grace together, so all are gone about 2 s (wt-run's grace) after
/// the kill, not 2 s after one another (16 s).
#[test]
fn the_background_jobs_of_a_killed_tool_s_runs_end_within_one_grace() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "8"], "").expect_code(0);
    let pids = t.root().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    let script = format!("trap '' TERM; sleep 60 & echo $! > {}/$(basename \"$PWD\").pid; wait", pids.display());
    let mut cmd = t.cmd("wt-run");
    cmd.args(["--all", "-j", "8", "--shell", "--", &script]).stdout(Stdio::null()).stderr(Stdio::null());
    let mut tool = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let background = loop {
        let found: Vec<i32> = std::fs::read_dir(&pids)
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
            .collect();
        if found.len() == 8 {
            break found;
        }
        assert!(Instant::now() < deadline, "8 runs started their background jobs: {found:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    kill(tool.id(), "KILL");
    tool.wait().unwrap();
    let killed = Instant::now();
    while background.iter().any(|p| running(*p)) && killed.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = killed.elapsed();
    let left: Vec<i32> = background.iter().copied().filter(|p| running(*p)).collect();
    for pid in &left {
        kill(*pid as u32, "KILL");
    }
    assert!(left.is_empty(), "background jobs outlived wt-run: {left:?}");
    // One grace (2 s) + 0.5 s, with generous slack for a loaded machine: one grace after
    // another would take 16 s.
    assert!(took < Duration::from_secs(6), "the 8 background jobs took {took:?} to end (one grace is 2 s)");
}

/// The files in the private socket directory.
fn socket_files(p: &Panes) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(p.xdg.join("wt"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn supervisor_pid(socket: &Path) -> u32 {
    let mut stream = UnixStream::connect(socket).unwrap();
    let answer = raw_call(&mut stream, b"{\"id\":1,\"method\":\"server.ping\"}\n");
    answer["result"]["pid"].as_u64().unwrap_or_else(|| panic!("{answer}")) as u32
}

#[test]
fn a_supervisor_killed_with_sigkill_leaves_nothing_once_the_next_has_run() {
    let p = Panes::new();
    p.spawn("a", &["sleep", "60"]);
    let socket = p.socket();
    let stem = socket.file_stem().unwrap().to_string_lossy().into_owned();
    // A confined pane's own socket, as `--confine --pane` makes (the confinement is not what
    // this is about).
    let cwd = p.t.wt_root().join("a");
    let spawn = json!({"id": 2, "method": "pane.spawn", "params": {
        "name": "c", "cmd": ["sleep", "60"], "cwd": cwd, "restricted": true}});
    let mut stream = UnixStream::connect(&socket).unwrap();
    let answer = raw_call(&mut stream, format!("{spawn}\n").as_bytes());
    assert_eq!(answer["ok"], true, "{answer}");
    drop(stream);
    // The lock file of a repository whose supervisor is long gone (as older wt left them).
    std::fs::write(p.xdg.join("wt/00000000deadbeef.lock"), "").unwrap();
    let files = socket_files(&p);
    assert_eq!(files.iter().filter(|f| f.contains(".pane-")).count(), 1, "{files:?}");

    kill(supervisor_pid(&socket), "KILL");
    let files = socket_files(&p);
    assert!(files.iter().any(|f| f.contains(".pane-")), "a SIGKILL leaves the pane's socket: {files:?}");

    // The next supervisor removes what the killed one left.
    p.spawn("b", &["sleep", "60"]);
    assert_eq!(socket_files(&p), [format!("{stem}.lock"), format!("{stem}.sock")], "only the live supervisor's");
    // And leaves nothing when it stops.
    p.wt_run(&["pane", "stop"]).expect_code(0);
    assert_eq!(socket_files(&p), Vec::<String>::new(), "nothing left once the supervisor is gone");
}

/// Raises this process's limit of open files to what 1,000 connections need, if it is lower.
fn allow_open_files(n: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(0);
    if soft < n {
        let pid = std::process::id().to_string();
        let ok = Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={n}:")]).status();
        assert!(ok.is_ok_and(|s| s.success()), "cannot raise the limit of open files to {n}");
    }
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count()
}

#[test]
fn a_thousand_connections_get_bounded_threads_and_the_surplus_a_clear_refusal() {
    let p = Panes::new();
    p.spawn("a", &["sleep", "60"]);
    let socket = p.socket();
    let pid = supervisor_pid(&socket);
    let before = threads(pid);
    allow_open_files(2200);
    let mut streams: Vec<UnixStream> = (0..1000).map(|_| UnixStream::connect(&socket).unwrap()).collect();
    // Every connection asks; each gets an answer or the refusal, never silence.
    for stream in &mut streams {
        let _ = stream.write_all(b"{\"id\":1,\"method\":\"server.ping\"}\n");
    }
    let (mut served, mut refused) = (0, 0);
    for stream in &streams {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        if answer["ok"] == true {
            served += 1;
        } else {
            assert_eq!(answer["error"]["code"], "too-many-connections", "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("connections at once"), "{message}");
            refused += 1;
        }
    }
    let during = threads(pid);
    assert!(during <= before + 140, "threads: {before} before, {during} with 1,000 connections");
    assert!((100..=140).contains(&served), "served {served}, refused {refused}");
    assert_eq!(served + refused, 1000);
    drop(streams);
    // The connections gone, the supervisor serves the next client as before.
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads(pid) > before + 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(threads(pid) <= before + 8, "the threads of closed connections end");
    let mut stream = UnixStream::connect(&socket).unwrap();
    let listed = raw_call(&mut stream, b"{\"id\":1,\"method\":\"pane.list\"}\n");
    assert_eq!(listed["result"][0]["name"], "a", "{listed}");
}
