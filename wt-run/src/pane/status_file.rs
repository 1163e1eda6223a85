//! An agent's own status file: Claude Code writes `<config dir>/sessions/<pid>.json` (config
//! dir: `$CLAUDE_CONFIG_DIR`, else `~/.claude`) with `status` (`busy`, `waiting`, `idle`) and
//! `procStart`, the process's start time in clock ticks (field 22 of `/proc/PID/stat`). A file
//! is believed only for a process of the pane's session whose start time matches, so a file
//! left behind by a process whose pid was reused says nothing.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where Claude Code keeps its session files, for a pane with environment `env`.
pub fn claude_sessions_dir(env: &[(String, String)]) -> Option<PathBuf> {
    let var =
        |k: &str| env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone()).or_else(|| std::env::var(k).ok());
    match var("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("sessions")),
        None => var("HOME").filter(|h| !h.is_empty()).map(|h| Path::new(&h).join(".claude").join("sessions")),
    }
}

/// The state a status file in `dir` reports for a process of session `sid`, with its pid.
pub fn claude_state(dir: &Path, sid: u32) -> Option<(&'static str, u32)> {
    session_processes(sid).into_iter().find_map(|(pid, start)| {
        // Claude Code's file, in a directory an agent can write: never through a link, a FIFO
        // or past 1 MiB.
        let text = wt_common::fs::untrusted::read_untrusted_bytes(&dir.join(format!("{pid}.json")), 1 << 20).ok()??;
        let file: Value = serde_json::from_slice(&text).ok()?;
        if file.get("procStart").and_then(Value::as_str) != Some(start.as_str()) {
            return None; // another process that once had this pid
        }
        let state = match file.get("status").and_then(Value::as_str)? {
            "busy" => "working",
            "waiting" => "waiting",
            "idle" => "idle",
            _ => return None,
        };
        Some((state, pid))
    })
}

/// The processes of session `sid` with their start times (field 22 of `/proc/PID/stat`).
fn session_processes(sid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (session, start) = stat_fields(&stat)?;
            (session == sid).then(|| (pid, start.to_string()))
        })
        .collect()
}

/// The session id (field 6) and start time (field 22) of a `/proc/PID/stat` line; the
/// command name (field 2) may hold spaces and parentheses, so fields count from its last `)`.
fn stat_fields(stat: &str) -> Option<(u32, &str)> {
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    Some((fields.get(3)?.parse().ok()?, fields.get(19)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1000 1";
        assert_eq!(stat_fields(stat), Some((42, "98765")));
    }

    #[test]
    fn a_file_is_believed_only_for_the_process_that_wrote_it() {
        let dir = std::env::temp_dir().join(format!("wt-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::process::id();
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let (sid, start) = stat_fields(&stat).unwrap();
        let write = |start: &str| {
            let body = serde_json::json!({"pid": me, "status": "waiting", "procStart": start});
            std::fs::write(dir.join(format!("{me}.json")), body.to_string()).unwrap();
        };
        write(start);
        assert_eq!(claude_state(&dir, sid), Some(("waiting", me)));
        write("1");
        assert_eq!(claude_state(&dir, sid), None, "a reused pid is not believed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
