//! `wt-run logs NAME [--follow]`: the log of a worktree's last run or pane, so nobody has to
//! dig in `.git/wt/logs/<name>/` for millisecond file names.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use wt_common::{ledger::name, Error};

/// Prints the newest log of `name` under `logs`; with `follow`, then what is appended to it,
/// until interrupted.
pub fn print(logs: &Path, name: &str, follow: bool) -> Result<(), Error> {
    name::validate(name)?;
    let file = newest(&logs.join(name)).ok_or_else(|| {
        Error::failed(
            "no-log",
            format!("no run of '{name}' has left a log yet (run one with `wt-run -w {name} -- CMD`)"),
        )
    })?;
    // The logs are in the common dir, which an unconfined agent can write: never opened through
    // a link or blocking on a FIFO, and only a regular file is printed.
    let mut f = wt_common::fs::untrusted::open_regular(&file, std::fs::OpenOptions::new().read(true)).map_err(|e| {
        Error::failed("not-a-log", format!("{}: {e}; it is not a log wt wrote, remove it", file.display()))
    })?;
    let mut out = std::io::stdout().lock();
    loop {
        let copied = std::io::copy(&mut f, &mut out);
        if copied.is_err() || out.flush().is_err() {
            return Ok(()); // the reader went away (`| head`)
        }
        if !follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
        // A log cut short (rotated by hand) is read again from its start.
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if f.stream_position().unwrap_or(0) > len {
            let _ = f.seek(SeekFrom::Start(0));
        }
    }
}

/// The most recently changed `*.log` in `dir`.
fn newest(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let logs = entries.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".log"));
    let dated = logs.filter_map(|e| Some((e.metadata().ok()?.modified().unwrap_or(SystemTime::UNIX_EPOCH), e.path())));
    dated.max_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1))).map(|(_, p)| p)
}
