//! The raw output logs of panes: `<state>/logs/<pane name>/pane-<stem>.log`, and its previous
//! part `pane-<stem>.log.1` once it passed the size cap (wt-run's `pane/rawlog.rs`). Each start
//! of a pane writes a new log, so a name started again and again (a dev server restarted, a
//! test pane rerun) would fill the disk: before a pane starts, its name keeps the newest
//! `KEEP_PANE_LOGS - 1` parts, none older than `KEEP_LOGS_FOR` (the batch logs' rule, with a
//! smaller count, since a part can be 16 MiB where a batch log is usually a few KiB). And
//! `wt-create --remove` and `--purge` take the pane logs of the worktree's panes.

use std::path::Path;

use crate::fs::{prune_logs, KEEP_LOGS_FOR};

/// How many pane log parts one pane name keeps, the running pane's included (its own previous
/// part, once it rotates, is one more): at most 9 × 16 MiB per name.
pub const KEEP_PANE_LOGS: usize = 8;

/// Whether `file` (a file name) is a pane log part: `pane-<stem>.log` or `pane-<stem>.log.1`,
/// the stem being `unique_stem`'s digits and dashes. Run logs (`<stem>.log`) and anything else
/// in the directory are not.
pub fn is_pane_log(file: &str) -> bool {
    let Some(rest) = file.strip_prefix("pane-") else { return false };
    let stem = rest.strip_suffix(".log").or_else(|| rest.strip_suffix(".log.1"));
    stem.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
}

/// Before a pane of the directory's name starts a new log: drops all but the newest
/// `KEEP_PANE_LOGS - 1` parts, and any older than `KEEP_LOGS_FOR`. A directory that is not
/// one (a link put in its place) is left alone: its files are not wt's.
pub fn prune(dir: &Path) {
    if is_real_dir(dir) {
        prune_logs(dir, is_pane_log, KEEP_PANE_LOGS - 1, KEEP_LOGS_FOR);
    }
}

/// Deletes every pane log part of pane `name` (under `logs`, the state dir's `logs/`), and its
/// directory when nothing else is left in it (a worktree's run logs share the directory of the
/// pane named after it, and stay). Returns how many files went.
pub fn forget(logs: &Path, name: &str) -> usize {
    if crate::ledger::name::validate(name).is_err() {
        return 0;
    }
    let dir = logs.join(name);
    if !is_real_dir(&dir) {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let gone = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(is_pane_log))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count();
    let _ = std::fs::remove_dir(&dir); // only when empty
    gone
}

/// A directory itself, not a link to one.
fn is_real_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pane_log_parts_are_told_from_run_logs() {
        assert!(is_pane_log("pane-1767225600000-4242-0.log"));
        assert!(is_pane_log("pane-1767225600000-4242-0.log.1"));
        assert!(!is_pane_log("1767225600000-4242-0.log"), "a run log");
        assert!(!is_pane_log("pane-.log"));
        assert!(!is_pane_log("pane-x.log"));
        assert!(!is_pane_log("pane-1-2-3.log.2"));
        assert!(!is_pane_log("supervisor.log"));
    }

    #[test]
    fn forgetting_a_pane_takes_its_logs_and_leaves_run_logs() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("agent-2");
        std::fs::create_dir(&dir).unwrap();
        for f in ["pane-1-2-0.log", "pane-1-2-0.log.1", "pane-3-4-1.log", "5-6-0.log"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        assert_eq!(forget(t.path(), "agent-2"), 3);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["5-6-0.log"]);
        std::fs::remove_file(dir.join("5-6-0.log")).unwrap();
        std::fs::write(dir.join("pane-7-8-0.log"), "x").unwrap();
        assert_eq!(forget(t.path(), "agent-2"), 1);
        assert!(!dir.exists(), "an emptied directory goes");
        assert_eq!(forget(t.path(), "../x"), 0, "not a name");
    }

    #[test]
    fn a_linked_directory_is_not_pruned_through() {
        let t = tempfile::tempdir().unwrap();
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        for i in 0..20 {
            std::fs::write(elsewhere.join(format!("pane-{i}-1-0.log")), "x").unwrap();
        }
        std::os::unix::fs::symlink(&elsewhere, t.path().join("dev")).unwrap();
        prune(&t.path().join("dev"));
        assert_eq!(forget(t.path(), "dev"), 0);
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 20);
    }
}
