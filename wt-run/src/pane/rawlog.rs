//! A pane's raw output log, capped: once it reaches `MAX_BYTES` it becomes `<log>.1` (replacing
//! the one before) and a new log starts, so a pane that prints without end holds at most twice
//! that on disk; a pane name keeps its newest few logs (`wt_common::record::pane_logs`).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

/// Size at which a pane's raw log is rotated.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug)]
pub struct RawLog {
    path: PathBuf,
    file: File,
    written: u64,
    max: u64,
}

impl RawLog {
    /// The new log of a pane starting, at `path` (`<logs>/<pane name>/pane-<stem>.log`); the
    /// name's older logs beyond its count cap go first (`pane_logs::prune`).
    pub fn create(path: PathBuf) -> std::io::Result<RawLog> {
        if let Some(dir) = path.parent() {
            wt_common::record::pane_logs::prune(dir);
        }
        Self::with_limit(path, MAX_BYTES)
    }

    pub fn with_limit(path: PathBuf, max: u64) -> std::io::Result<RawLog> {
        let file = File::create(&path)?;
        Ok(RawLog { path, file, written: 0, max })
    }

    /// The previous part of the log, once it has been rotated.
    pub fn previous(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        PathBuf::from(p)
    }

    /// Appends `bytes`, rotating first if they would pass the cap. Errors are the caller's to
    /// ignore: a full disk must not stop the pane.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.written > 0 && self.written + bytes.len() as u64 > self.max {
            std::fs::rename(&self.path, self.previous())?;
            self.file = File::create(&self.path)?;
            self.written = 0;
        }
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_cap_and_keeps_one_previous_part() {
        let t = tempfile::tempdir().unwrap();
        let mut log = RawLog::with_limit(t.path().join("pane.log"), 10).unwrap();
        for chunk in [&b"12345"[..], b"67890", b"abc", b"defghij", b"klm"] {
            log.write(chunk).unwrap();
        }
        assert_eq!(std::fs::read(t.path().join("pane.log")).unwrap(), b"klm");
        assert_eq!(std::fs::read(log.previous()).unwrap(), b"abcdefghij");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2, "never more than two parts");
    }
}
