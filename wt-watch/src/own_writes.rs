//! The files a round's test command writes in its worktree itself, told apart from the agent's
//! changes, so that they start no round. A test command that writes a file git does not ignore
//! (`report.txt`, `--junitxml out.xml`, `.coverage`, `cover.out`) changed the worktree in
//! every round, and every round queued another: a loop with no end.
//!
//! A change's events say only which path was touched, never by whom, so the choice is made on
//! what can be seen. A change *belongs to a run* when the file's ctime (set by the kernel at
//! each write, and never by a process to a time of its own choosing) falls between the run's
//! start and its end; its event may arrive after the run ended. A file git does not track that
//! two runs in a row wrote is the test command's own output from then on: it starts no round,
//! and wt-watch says once which file it is and to add it to `.gitignore`. The first time, such a
//! file queues one more round, as any change during a run does (an agent may have written it).
//! It is the agent's again as soon as it changes outside a run.
//!
//! The cost of the choice: an agent that writes the same untracked file during two runs in a
//! row, and nothing else, is not tested again for it; a tracked file is never taken for the
//! run's own (an agent's edits are to tracked files, and a test command that rewrites one is
//! rare and is tested again each time, as before).

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// ctime comes from a coarse clock, a tick behind the one `SystemTime::now` reads: a write
/// just after a run started can carry a ctime a little before it.
const SLACK: Duration = Duration::from_millis(20);

/// How many runs' writes are kept: the current (or last) run and the one before it.
const RUNS: usize = 2;

/// How many paths one run's writes keep; past that, the rest count as changes.
const KEEP: usize = 512;

#[derive(Debug)]
struct Window {
    start: SystemTime,
    end: Option<SystemTime>,
    wrote: HashSet<PathBuf>,
}

#[derive(Debug, Default)]
pub struct OwnWrites {
    runs: VecDeque<Window>,
    /// Files known to be the test command's own output.
    outputs: HashSet<PathBuf>,
    /// Outputs already told to the person.
    told: HashSet<PathBuf>,
}

/// How changed files sort out.
#[derive(Debug, Default)]
pub struct Sorted {
    /// Some change counts: a round follows (or is queued).
    pub counts: bool,
    /// A change that counts and is no run's: written outside a run, or a tracked file.
    pub agents: bool,
    /// Untracked files a run wrote that count only because it is the first run seen writing
    /// them: the agent's, or the run's own output (which the next run shows).
    pub maybe_runs: Vec<PathBuf>,
    /// Files just found to be the test command's output, to be told once.
    pub found: Vec<PathBuf>,
}

impl OwnWrites {
    pub fn run_started(&mut self) {
        let start = SystemTime::now().checked_sub(SLACK).unwrap_or(SystemTime::UNIX_EPOCH);
        self.runs.push_back(Window { start, end: None, wrote: HashSet::new() });
        while self.runs.len() > RUNS {
            self.runs.pop_front();
        }
    }

    /// The current run really started at `at` (it waited for a job slot since `run_started`):
    /// what was written while it waited is not its own.
    pub fn started_at(&mut self, at: SystemTime) {
        if let Some(w) = self.runs.back_mut().filter(|w| w.end.is_none()) {
            w.start = at.checked_sub(SLACK).unwrap_or(SystemTime::UNIX_EPOCH);
        }
    }

    pub fn run_ended(&mut self) {
        if let Some(w) = self.runs.back_mut().filter(|w| w.end.is_none()) {
            w.end = Some(SystemTime::now());
        }
    }

    /// Sorts the changed files of worktree `root` (there now, git does not ignore them) into
    /// the test command's output and changes that count.
    pub fn sort(&mut self, root: &Path, files: &[PathBuf]) -> Sorted {
        let mut sorted = Sorted::default();
        let mut learn = Vec::new();
        for path in files {
            let Some(k) = ctime(path).and_then(|t| self.run_of(t)) else {
                // Changed outside any run: the agent's (or a person's).
                self.outputs.remove(path);
                (sorted.counts, sorted.agents) = (true, true);
                continue;
            };
            if self.runs[k].wrote.len() < KEEP {
                self.runs[k].wrote.insert(path.clone());
            }
            if self.outputs.contains(path) {
                continue;
            }
            if k > 0 && self.runs[k - 1].wrote.contains(path) {
                learn.push(path);
            } else if crate::noticed::tracked(root, &[path]) {
                (sorted.counts, sorted.agents) = (true, true);
            } else {
                sorted.counts = true;
                sorted.maybe_runs.push(path.clone());
            }
        }
        for path in learn {
            if crate::noticed::tracked(root, &[path]) {
                (sorted.counts, sorted.agents) = (true, true);
            } else {
                self.outputs.insert(path.clone());
                if self.told.insert(path.clone()) {
                    sorted.found.push(path.clone());
                }
            }
        }
        sorted
    }

    /// The run (its index) whose time holds `t`.
    fn run_of(&self, t: SystemTime) -> Option<usize> {
        self.runs.iter().rposition(|w| w.start <= t && w.end.is_none_or(|end| t <= end))
    }

    /// Whether `path` is known to be the test command's output.
    pub fn is_output(&self, path: &Path) -> bool {
        self.outputs.contains(path)
    }

    /// Whether every path of `changed` (relative to `root`, as `git status` lists them) is a
    /// known output of the test command: a tree with only those is no uncommitted change.
    pub fn only_outputs(&self, root: &Path, changed: &[String]) -> bool {
        !changed.is_empty() && changed.iter().all(|c| self.outputs.contains(&root.join(c)))
    }
}

/// The path's ctime (never through a link), as a wall-clock time.
fn ctime(path: &Path) -> Option<SystemTime> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).ok()?;
    let (secs, nanos) = (u64::try_from(m.ctime()).ok()?, u32::try_from(m.ctime_nsec()).ok()?);
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// The line that tells a person (on stderr, and in the record's `notes`) of an output file.
pub fn note(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path).display();
    format!(
        "the test command writes {rel}, which git does not ignore: it starts no round, and a tree with it is not counted uncommitted; add it to .gitignore"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file written during two runs in a row that git does not track is the run's own; the
    /// first time it counts, as does a tracked file written during both, and a file written
    /// outside a run (which makes an output the agent's again).
    #[test]
    fn a_file_two_runs_wrote_is_theirs_and_a_write_outside_a_run_is_not() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let git = std::process::Command::new("git").arg("init").arg("-q").arg(&root).status().unwrap();
        assert!(git.success());
        std::fs::write(root.join("tracked.txt"), "x").unwrap();
        let add = std::process::Command::new("git").arg("-C").arg(&root).args(["add", "tracked.txt"]).status();
        assert!(add.unwrap().success());
        let (report, tracked) = (root.join("report.txt"), root.join("tracked.txt"));
        let both = [report.clone(), tracked.clone()];
        let mut own = OwnWrites::default();
        let run = |own: &mut OwnWrites| {
            own.run_started();
            std::thread::sleep(SLACK * 2);
            std::fs::write(&report, "r").unwrap();
            std::fs::write(&tracked, "t").unwrap();
            std::thread::sleep(SLACK * 2);
            own.run_ended();
            std::thread::sleep(SLACK * 2);
        };
        run(&mut own);
        let first = own.sort(&root, &both);
        assert!(first.counts && first.agents && first.found.is_empty(), "{first:?}");
        assert_eq!(first.maybe_runs, std::slice::from_ref(&report), "the agent's, or the run's: not known yet");
        run(&mut own);
        let learnt = own.sort(&root, &both);
        assert!(learnt.counts, "tracked.txt is never the run's");
        assert_eq!(learnt.found, std::slice::from_ref(&report), "report.txt is, and is told");
        let second = own.sort(&root, std::slice::from_ref(&report));
        assert!(!second.counts && second.found.is_empty(), "found already, told once: {second:?}");
        assert!(own.only_outputs(&root, &["report.txt".into()]));
        assert!(!own.only_outputs(&root, &["report.txt".into(), "tracked.txt".into()]));
        run(&mut own);
        assert!(!own.sort(&root, std::slice::from_ref(&report)).counts, "a third run writes it again");
        std::fs::write(&report, "the agent").unwrap();
        let outside = own.sort(&root, std::slice::from_ref(&report));
        assert!(outside.counts && outside.agents, "written outside a run: {outside:?}");
        assert!(!own.only_outputs(&root, &["report.txt".into()]));
    }
}
