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
    /// Its exit, once seen (`exit`): what the supervisor's loop reads, which never asks tmux
    /// itself (a stopped tmux server would stop the loop, and every pane with it).
    ended: std::sync::Mutex<Option<Value>>,
}

/// How long one tmux command may take. A tmux server that is stopped (SIGSTOP) or wedged
/// answers nothing: without a limit, the request worker or the tmux watcher that asked waited
/// for good, and with enough such waits no request of any pane was answered.
const TMUX_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `tmux args…` (outside any tmux the supervisor may have been started from), killed if it
/// has not finished within `TMUX_TIMEOUT`.
fn tmux(args: &[&str]) -> Result<String, String> {
    tmux_timed(args)?
}

/// `tmux`, telling a tmux that did not answer in time (the outer `Err`) from one that failed.
fn tmux_timed(args: &[&str]) -> Result<Result<String, String>, String> {
    use std::process::Stdio;
    let child = Command::new("tmux")
        .args(args)
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("cannot run tmux ({e}); install tmux or use the native backend"))),
    };
    let deadline = Instant::now() + TMUX_TIMEOUT;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let file = |fd: std::os::fd::OwnedFd| std::fs::File::from(fd);
    let mut pipes = [child.stdout.take().map(|p| file(p.into())), child.stderr.take().map(|p| file(p.into()))];
    if !read_until(&mut pipes, [&mut out, &mut err], deadline) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "tmux {} did not answer within {} s: is its server stopped?",
            args[0],
            TMUX_TIMEOUT.as_secs()
        ));
    }
    Ok(match child.wait() {
        Ok(status) if status.success() => Ok(String::from_utf8_lossy(&out).trim_end_matches('\n').to_string()),
        Ok(_) => Err(format!("tmux {}: {}", args[0], String::from_utf8_lossy(&err).trim())),
        Err(e) => Err(format!("tmux {}: {e}", args[0])),
    })
}

/// Reads `pipes` into `into` until each ends; `false` if `deadline` came first.
fn read_until(pipes: &mut [Option<std::fs::File>; 2], into: [&mut Vec<u8>; 2], deadline: Instant) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::Read;
    use std::os::fd::AsFd;
    let sinks = into;
    loop {
        let open: Vec<usize> = (0..2).filter(|i| pipes[*i].is_some()).collect();
        if open.is_empty() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = open
                .iter()
                .map(|i| PollFd::new(pipes[*i].as_ref().expect("open").as_fd(), PollFlags::POLLIN))
                .collect();
            let timeout = PollTimeout::try_from(left.as_millis().max(1) as u64).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {
                    fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect()
                }
                Err(_) => return false,
            }
        };
        for (i, ready) in open.into_iter().zip(ready) {
            if !ready {
                continue;
            }
            let mut buf = [0u8; 8192];
            match pipes[i].as_mut().expect("open").read(&mut buf) {
                Ok(0) | Err(_) => pipes[i] = None,
                Ok(n) => sinks[i].extend_from_slice(&buf[..n]),
            }
        }
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
        let ended = Default::default();
        Ok(TmuxPane { spec, session: session.to_string(), window, pid, killed: Default::default(), lease, ended })
    }

    /// The window's size, state and cursor; `Ok(None)` when it is gone; `Err` when tmux did
    /// not answer in time (nothing is known).
    fn info(&self) -> Result<Option<Vec<String>>, String> {
        let f = "#{pane_width} #{pane_height} #{alternate_on} #{pane_dead} #{pane_dead_status} #{cursor_y} #{cursor_x}";
        // tmux answers an empty line, and success, about a window that no longer exists.
        let Ok(line) = tmux_timed(&["display-message", "-p", "-t", &self.window, f])? else { return Ok(None) };
        let fields: Vec<String> = line.split(' ').map(str::to_string).collect();
        Ok((fields.len() >= 7 && !fields[0].is_empty()).then_some(fields))
    }

    /// `None` while the program runs (or while tmux does not answer: a stopped server is not a
    /// closed window); its exit once it ended (or its window is gone), kept once seen.
    pub fn exit(&self) -> Option<Value> {
        if let Some(seen) = self.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() {
            return Some(seen);
        }
        let mut exit = match self.info() {
            Err(_) => return None,
            Ok(Some(i)) if i.get(3).map(String::as_str) == Some("1") => {
                json!({"code": i[4].parse::<u32>().unwrap_or(0)})
            }
            Ok(Some(_)) => return None,
            Ok(None) => json!({"signal": "window closed"}),
        };
        drop(self.lease.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        if self.killed.load(std::sync::atomic::Ordering::Relaxed) {
            exit["killed"] = json!(true);
        }
        *self.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(exit.clone());
        Some(exit)
    }

    /// Whether its exit has been seen (by `exit`, which the tmux watcher calls when the pane
    /// ends): asks tmux nothing, for the supervisor's loop.
    pub fn exit_seen(&self) -> bool {
        self.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    pub fn screen(&self, lines: usize) -> Value {
        let start = format!("-{lines}");
        let mut args = vec!["capture-pane", "-p", "-t", &self.window];
        if lines > 0 {
            args.extend(["-S", &start]);
        }
        let text = tmux(&args).unwrap_or_default();
        let info = self.info().ok().flatten().unwrap_or_default();
        let num = |i: usize| info.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let rows: Vec<&str> = text.split('\n').collect();
        json!({
            "rows": num(1), "cols": num(0), "lines": rows, "text": text.trim_end(),
            "cursor": [num(5), num(6)], "alternate_screen": num(2) == 1, "exit": self.exit(),
        })
    }

    /// One look at the pane for its state tracker, in a single tmux command: whether its
    /// program has ended (or its window is gone), and the rows its screen shows.
    /// Whether the program ended, and the screen's rows; `None` when tmux did not answer in
    /// time (nothing is known: looked at again later).
    pub fn sample(&self) -> Option<(bool, Vec<String>)> {
        let out = tmux_timed(&[
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
        ])
        .ok()?;
        let Ok(out) = out else { return Some((true, Vec::new())) }; // the window is gone
        let mut lines = out.split('\n');
        let dead = lines.next() != Some("0");
        Some((dead, lines.map(str::to_string).collect()))
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
        if self.info().ok().flatten().is_some_and(|i| i.get(3).map(String::as_str) != Some("1")) {
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
