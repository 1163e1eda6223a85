//! A pane's scrollback kept as text, not as the emulator's cells (issue 29): panes that printed
//! far more than their scrollback and go on printing (so their emulators never sleep) show
//! exactly their last lines above the screen, and cost the supervisor about a screen each, not
//! the 3.7 MiB a scrollback of cells took at 120 columns.

use std::os::unix::net::UnixStream;

use serde_json::json;
use wt_tests::panes::{raw_call, Panes};

/// The supervisor's pid, asked over its socket.
fn supervisor_pid(p: &Panes) -> u32 {
    let mut c = UnixStream::connect(p.socket()).unwrap();
    raw_call(&mut c, b"{\"id\":0,\"method\":\"server.ping\"}\n")["result"]["pid"].as_u64().unwrap() as u32
}

/// Resident memory of PID, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn printing_panes_keep_their_last_lines_as_text_and_stay_small() {
    let p = Panes::new();
    p.spawn("first", &["sleep", "1000"]);
    let pid = supervisor_pid(&p);
    let before = rss_kib(pid);
    // 3,000 lines, then a dot every 200 ms on the last row: never quiet for the 2 s after
    // which an emulator sleeps, so every pane's emulator stays awake with a full scrollback.
    let script = "seq 1 3000; while :; do sleep 0.2; printf .; done";
    let mut c = UnixStream::connect(p.socket()).unwrap();
    let cwd = p.t.root().display().to_string();
    let names: Vec<String> = (0..8).map(|i| format!("printing-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let line =
            json!({"id": i, "method": "pane.spawn", "params": {"name": name, "cmd": ["sh", "-c", script], "cwd": cwd}});
        let answer = raw_call(&mut c, format!("{line}\n").as_bytes());
        assert_eq!(answer["ok"], true, "{answer}");
    }
    for name in &names {
        p.wait_match(name, "^3000\\n\\.");
        // More than there is: all of the scrollback, then the screen.
        let screen = p.json(&["pane", "screen", name, "--lines", "5000"]);
        let rows = screen["rows"].as_u64().unwrap() as usize;
        let lines: Vec<&str> =
            screen["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().trim_end()).collect();
        assert_eq!(lines.len(), 1000 + rows, "{name}: 1,000 lines of scrollback above the screen");
        // The screen's last row holds the dots; every row above, the numbers up to 3,000.
        let first = 3000 - (1000 + rows - 1) + 1;
        let expected: Vec<String> = (first..=3000).map(|i| i.to_string()).collect();
        assert_eq!(lines[..lines.len() - 1], expected, "{name}: exactly the last lines, in order");
        assert!(lines[lines.len() - 1].chars().all(|c| c == '.'), "{name}: {:?}", lines.last());
    }
    // Eight awake panes with full scrollbacks: each costs its screen (150 KiB of cells at
    // 40×120) and its scrollback as text (about 50 KiB here), where the scrollback's cells
    // alone took 3.7 MiB (30 MiB for eight). A debug build; a MiB a pane is the bound.
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown <= 8 * 1024, "8 printing panes grew the supervisor by {grown} KiB");
}
