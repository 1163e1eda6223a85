//! The tmux backend: each pane is a window of one tmux session per repository (`wt-<hash>`),
//! on the user's tmux server, so a person can `tmux attach -t wt-<hash>` and watch the agents.
//! The supervisor drives it with tmux's own commands (`new-window`, `capture-pane`,
//! `send-keys`, `paste-buffer`), so every protocol verb works the same as with native panes.
//! Windows are addressed by their id (`@7`), unique on the server.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::pty::SpawnSpec;

#[derive(Debug)]
pub struct TmuxPane {
    pub spec: SpawnSpec,
    pub session: String,
    pub window: String,
    pub pid: Option<u32>,
    /// `pane.kill` was asked for: the window's end is the one asked for.
    pub killed: std::sync::atomic::AtomicBool,
    /// The build governor's lease of the pane's builds (`governed::pane`), given back once its
    /// program is seen to have ended.
    pub lease: std::sync::Mutex<Option<wt_common::proc::governor::Lease>>,
}

/// Runs `tmux args…` (outside any tmux the supervisor may have been started from).
fn tmux(args: &[&str]) -> Result<String, String> {
    let out = Command::new("tmux")
        .args(args)
        .env_remove("TMUX")
        .output()
        .map_err(|e| format!("cannot run tmux ({e}); install tmux or use the native backend"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end_matches('\n').to_string())
    } else {
        Err(format!("tmux {}: {}", args[0], String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `text` as one argument tmux takes literally. tmux reads an argument that ends with `;` as
/// the end of its command (the `;` is dropped), and one that ends with `\;` as ending with `;`:
/// a final `;` is written `\;`, so that `pane send` and `pane answer` type what they were given.
fn literal_arg(text: &str) -> std::borrow::Cow<'_, str> {
    match text.strip_suffix(';') {
        Some(rest) => format!("{rest}\\;").into(),
        None => text.into(),
    }
}

/// One command line for tmux's shell (`sh -c`), each word quoted.
fn shell_line(cmd: &[String]) -> String {
    cmd.iter().map(|w| format!("'{}'", w.replace('\'', r"'\''"))).collect::<Vec<_>>().join(" ")
}

impl TmuxPane {
    /// The tmux session of a repository's panes: `wt-<repository dir>-<8 hex>`, so `tmux ls`
    /// tells a person which repository each is (tmux refuses `.` and `:` in names).
    pub fn session_name(root: &std::path::Path, common_dir: &std::path::Path) -> String {
        let dir = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir: String = dir
            .trim_end_matches(".git")
            .chars()
            .map(|c| if c.is_alphanumeric() || c == '_' || c == '-' { c } else { '-' })
            .collect();
        format!("wt-{dir}-{}", &super::socket::repo_hash(common_dir)[..8])
    }

    pub fn spawn(
        spec: SpawnSpec,
        lease: Option<wt_common::proc::governor::Lease>,
        session: &str,
    ) -> Result<TmuxPane, String> {
        let (cols, rows) = (spec.cols.to_string(), spec.rows.to_string());
        let cwd = spec.cwd.display().to_string();
        let governed = lease.as_ref().map(crate::governed::pane_env).unwrap_or_default();
        let env: Vec<String> = spec.env.iter().chain(&governed).map(|(k, v)| format!("{k}={v}")).collect();
        let line = shell_line(&spec.cmd);
        let exists = tmux(&["has-session", "-t", &format!("={session}")]).is_ok();
        let mut args: Vec<&str> = if exists {
            vec!["new-window", "-d", "-t", session]
        } else {
            vec!["new-session", "-d", "-s", session, "-x", &cols, "-y", &rows]
        };
        args.extend(["-P", "-F", "#{window_id} #{pane_pid}", "-n", &spec.name, "-c", &cwd]);
        for e in &env {
            args.extend(["-e", e]);
        }
        args.push(&line);
        // In the same tmux command, before tmux can notice the program exit: keep the window
        // when the program ends, so its last screen and exit status can be read.
        args.extend([";", "set-option", "-w", "remain-on-exit", "on"]);
        let printed = tmux(&args)?;
        let mut it = printed.split_whitespace();
        let window = it.next().ok_or("tmux printed no window id")?.to_string();
        let pid = it.next().and_then(|p| p.parse().ok());
        if !exists {
            let _ = tmux(&["set-option", "-t", session, "window-size", "manual"]);
        }
        let lease = std::sync::Mutex::new(lease);
        Ok(TmuxPane { spec, session: session.to_string(), window, pid, killed: Default::default(), lease })
    }

    fn info(&self) -> Option<Vec<String>> {
        let f = "#{pane_width} #{pane_height} #{alternate_on} #{pane_dead} #{pane_dead_status} #{cursor_y} #{cursor_x}";
        // tmux answers an empty line, and success, about a window that no longer exists.
        let fields: Vec<String> =
            tmux(&["display-message", "-p", "-t", &self.window, f]).ok()?.split(' ').map(str::to_string).collect();
        (fields.len() >= 7 && !fields[0].is_empty()).then_some(fields)
    }

    /// `None` while the program runs; its exit once it ended (or its window is gone).
    pub fn exit(&self) -> Option<Value> {
        let mut exit = match self.info() {
            Some(i) if i.get(3).map(String::as_str) == Some("1") => json!({"code": i[4].parse::<u32>().unwrap_or(0)}),
            Some(_) => return None,
            None => json!({"signal": "window closed"}),
        };
        drop(self.lease.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        if self.killed.load(std::sync::atomic::Ordering::Relaxed) {
            exit["killed"] = json!(true);
        }
        Some(exit)
    }

    pub fn screen(&self, lines: usize) -> Value {
        let start = format!("-{lines}");
        let mut args = vec!["capture-pane", "-p", "-t", &self.window];
        if lines > 0 {
            args.extend(["-S", &start]);
        }
        let text = tmux(&args).unwrap_or_default();
        let info = self.info().unwrap_or_default();
        let num = |i: usize| info.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let rows: Vec<&str> = text.split('\n').collect();
        json!({
            "rows": num(1), "cols": num(0), "lines": rows, "text": text.trim_end(),
            "cursor": [num(5), num(6)], "alternate_screen": num(2) == 1, "exit": self.exit(),
        })
    }

    /// One look at the pane for its state tracker, in a single tmux command: whether its
    /// program has ended (or its window is gone), and the rows its screen shows.
    pub fn sample(&self) -> (bool, Vec<String>) {
        let out = tmux(&[
            "display-message",
            "-p",
            "-t",
            &self.window,
            "#{pane_dead}",
            ";",
            "capture-pane",
            "-p",
            "-t",
            &self.window,
        ]);
        let Ok(out) = out else { return (true, Vec::new()) }; // the window is gone
        let mut lines = out.split('\n');
        let dead = lines.next() != Some("0");
        (dead, lines.map(str::to_string).collect())
    }

    pub fn send_text(&self, text: &str, enter: bool) -> Result<(), (&'static str, String)> {
        self.send_text_inner(text, enter).map_err(|e| ("write-failed", e))
    }

    fn send_text_inner(&self, text: &str, enter: bool) -> Result<(), String> {
        let text = &literal_arg(text);
        if text.contains('\n') {
            let buffer = format!("wt-{}", self.spec.name);
            tmux(&["set-buffer", "-b", &buffer, "--", text])?;
            tmux(&["paste-buffer", "-p", "-d", "-b", &buffer, "-t", &self.window])?;
        } else if !text.is_empty() {
            tmux(&["send-keys", "-t", &self.window, "-l", "--", text])?;
        }
        if enter {
            tmux(&["send-keys", "-t", &self.window, "Enter"])?;
        }
        Ok(())
    }

    /// Bytes typed into the pane as they are (`send-keys -H`), so a key is the same bytes on
    /// both backends.
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), String> {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut args = vec!["send-keys", "-t", &self.window, "-H"];
        args.extend(hex.iter().map(String::as_str));
        tmux(&args).map(|_| ())
    }

    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), String> {
        tmux(&["resize-window", "-t", &self.window, "-x", &cols.to_string(), "-y", &rows.to_string()]).map(|_| ())
    }

    pub fn kill(&self) {
        if self.info().is_some_and(|i| i.get(3).map(String::as_str) != Some("1")) {
            self.killed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = tmux(&["kill-window", "-t", &self.window]);
    }

    pub fn describe(&self) -> Value {
        json!({
            "name": self.spec.name, "pid": self.pid, "cmd": self.spec.cmd, "cwd": self.spec.cwd,
            "backend": "tmux", "tmux": {"session": self.session, "window": self.window},
            "alive": self.exit().is_none(), "exit": self.exit(),
        })
    }

    /// One look for a `pane.wait` on a tmux pane (tmux has no change notification, so its
    /// screen is sampled, every `TMUX_WAIT_EVERY`, each look on a worker): `None` to look again.
    pub fn look(&self, until: &super::wait::Until, deadline: Instant, look: &mut TmuxLook) -> Option<Answer> {
        let super::wait::Until { ref regex, quiet, for_exit, .. } = *until;
        let screen = self.screen(0);
        let text = screen["text"].as_str().unwrap_or_default().to_string();
        if for_exit && !screen["exit"].is_null() {
            return Some(Ok(json!({"exit": screen["exit"], "screen": screen})));
        }
        if let Some(m) = regex.as_ref().and_then(|re| re.find(&text)) {
            return Some(Ok(json!({"matched": m.as_str(), "screen": screen})));
        }
        if text != look.last {
            (look.last, look.since) = (text, Instant::now());
        } else if quiet.is_some_and(|q| look.since.elapsed() >= q) {
            return Some(Ok(json!({"quiet_ms": quiet.map(|q| q.as_millis() as u64), "screen": screen})));
        }
        if Instant::now() >= deadline {
            return Some(Err(until.timed_out()));
        }
        None
    }
}

/// A `pane.wait`'s answer.
pub type Answer = Result<Value, (&'static str, String)>;

/// How often a `pane.wait` looks at a tmux pane.
pub const TMUX_WAIT_EVERY: Duration = Duration::from_millis(25);

/// What a `pane.wait` on a tmux pane saw so far: the screen, and since when it is unchanged.
#[derive(Debug)]
pub struct TmuxLook {
    last: String,
    since: Instant,
}

impl Default for TmuxLook {
    fn default() -> Self {
        TmuxLook { last: String::new(), since: Instant::now() }
    }
}
