//! A live line for a person watching a verification: `wt-merge: agent-2: verifying 1m12s |
//! <the last line of its output>`, redrawn once a second on stderr, only when stderr is a
//! terminal, and wiped when the verification ends. The line is read from the end of the
//! verification's log (wt-merge's own file), never more than its last 4 KiB.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much of the log's end is read for its last line.
const TAIL_BYTES: u64 = 4096;
/// The longest output line shown.
const WIDTH: usize = 80;

/// The redrawing thread, while a verification runs.
#[derive(Debug)]
pub struct Line {
    stop: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Line {
    /// Starts redrawing, when stderr is a terminal.
    pub fn start(name: &str, log: &Path) -> Line {
        if !std::io::stderr().is_terminal() {
            return Line { stop: None };
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, name, log) = (Arc::clone(&stop), name.to_string(), log.to_path_buf());
        let handle = std::thread::spawn(move || redraw(&flag, &name, &log));
        Line { stop: Some((stop, handle)) }
    }

    /// Stops redrawing and wipes the line.
    pub fn stop(self) {
        if let Some((flag, handle)) = self.stop {
            flag.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}

fn redraw(stop: &AtomicBool, name: &str, log: &Path) {
    let started = Instant::now();
    let mut drawn = false;
    let mut shown = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        // Once a second, however late this thread wakes on a busy machine.
        let elapsed = started.elapsed();
        if elapsed.as_secs() == shown {
            continue;
        }
        shown = elapsed.as_secs();
        let last = last_line(log).map(|l| format!(" | {l}")).unwrap_or_default();
        let took = wt_common::record::duration::human(Duration::from_secs(elapsed.as_secs()));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[Kwt-merge: {}: verifying {took}{last}", name.escape_debug());
        let _ = err.flush();
        drawn = true;
    }
    if drawn {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
}

/// The last line of the log with text in it, printable characters only (no control or
/// formatting characters: the command's output must not move the cursor or reorder the line),
/// cut to `WIDTH`. The log is read as any file in a command's reach: a FIFO or a link put in
/// its place reads as nothing.
fn last_line(log: &Path) -> Option<String> {
    let text = wt_common::fs::read_end(log, TAIL_BYTES)?;
    // A progress bar redraws with `\r`: its last state is what a terminal shows.
    let line = text.lines().rev().map(|l| l.rsplit('\r').next().unwrap_or(l)).find(|l| !l.trim().is_empty())?;
    let clean: String = line.chars().filter(|c| !c.is_control() && !is_format(*c)).take(WIDTH).collect();
    Some(clean.trim().to_string())
}

/// Unicode's invisible formatting characters that reorder or hide text (bidirectional
/// controls, zero-width characters).
fn is_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_the_last_with_text_its_last_redraw_without_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "one\n  3 passed\r  5 passed\x1b\n\n  \n").unwrap();
        assert_eq!(last_line(&log).as_deref(), Some("5 passed"));
        std::fs::write(&log, format!("{}\nlast\n", "x".repeat(10_000))).unwrap();
        assert_eq!(last_line(&log).as_deref(), Some("last"));
        std::fs::write(&log, "y".repeat(500)).unwrap();
        assert_eq!(last_line(&log).map(|l| l.len()), Some(WIDTH));
        std::fs::write(&log, "ok \u{202E}desrever\n").unwrap();
        assert_eq!(last_line(&log).as_deref(), Some("ok desrever"));
        // A FIFO in the log's place is not waited on.
        std::fs::remove_file(&log).unwrap();
        nix::unistd::mkfifo(&log, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(last_line(&log), None);
    }
}
