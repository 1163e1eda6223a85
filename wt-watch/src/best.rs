//! Best so far: each round that tested a commit on a clean tree is counted from its runner's
//! summary (`record::test_counts`); the commit with the most passing tests is kept as
//! `refs/wt/best/<name>` (`git::best`), moved only when a round passes more. A round that passes
//! fewer says so in the feedback, naming the tests that passed at the best commit and now fail:
//! `round 4: 2 tests that passed at 1a2b3c4 (best so far) now fail: test_b, test_c`. An agent
//! that breaks what worked while fixing something else hears of it, and a person can go back
//! to the ref.

use std::path::Path;

use serde_json::{json, Value};
use wt_common::git::best::{self, Kept, Stored};
use wt_common::git::repo::Repo;
use wt_common::git::tested::Tested;
use wt_common::record::{excerpt, test_counts};

/// How many failing names the feedback line lists before `and N more`.
const NAMES_SHOWN: usize = 10;

/// One worktree's best so far, as last read or written.
#[derive(Debug)]
pub struct Best {
    name: String,
    stored: Stored,
}

impl Best {
    /// The best kept for worktree `name` by an earlier watch, if any.
    pub fn load(repo: &Repo, name: &str) -> Best {
        Best { name: name.to_string(), stored: best::read(repo, name) }
    }

    /// Judges a round that tested `tested` and wrote its output to `log`: a clean commit whose
    /// tests passed more than the best's becomes the best. Returns the feedback line when the
    /// round passed fewer than the best, naming `round`.
    pub fn judge(&mut self, repo: &Repo, round: u32, tested: &Tested, log: &Path) -> Option<String> {
        let text = excerpt::read_log(log, excerpt::READ_BYTES)?;
        let counts = test_counts::of(&text)?;
        let passed = counts.passed?;
        let note = self
            .stored
            .kept
            .as_ref()
            .filter(|b| passed < b.passed)
            .map(|b| regression(round, b, passed, &counts.failing));
        let commit = tested.commit.as_ref().filter(|_| !tested.dirty)?;
        // Without believable counts (none yet, or a write killed half-way), any counted round
        // is the best so far.
        let better = self.stored.kept.as_ref().is_none_or(|b| passed > b.passed);
        if better {
            let kept =
                Kept { commit: commit.clone(), passed, failing: counts.failing, runner: counts.runner.to_string() };
            match best::write(repo, &self.name, &kept, self.stored.commit.as_deref()) {
                Ok(()) => self.stored = Stored { commit: Some(kept.commit.clone()), kept: Some(kept) },
                Err(e) => {
                    // Another watch of this worktree moved it: believe what is there now.
                    tracing::warn!("{}: best so far not kept: {}", self.name, e.message);
                    self.stored = best::read(repo, &self.name);
                }
            }
        }
        note
    }

    /// The record's `watch.best`: the best commit and how many tests passed there.
    pub fn field(&self) -> Option<Value> {
        self.stored.kept.as_ref().map(|k| json!({"commit": k.commit, "passed": k.passed}))
    }
}

/// The feedback line of a round that passed `passed` tests, fewer than `best`.
fn regression(round: u32, best: &Kept, passed: u64, failing: &[String]) -> String {
    let short = &best.commit[..best.commit.len().min(7)];
    let newly: Vec<&str> = failing.iter().filter(|f| !best.failing.contains(f)).map(String::as_str).collect();
    if newly.is_empty() {
        return format!("round {round}: fewer tests pass ({passed}) than at {short} (best so far, {})", best.passed);
    }
    let mut names = newly.iter().take(NAMES_SHOWN).copied().collect::<Vec<_>>().join(", ");
    if newly.len() > NAMES_SHOWN {
        names.push_str(&format!(" and {} more", newly.len() - NAMES_SHOWN));
    }
    let n = newly.len();
    let tests = if n == 1 { "test that passed" } else { "tests that passed" };
    let verb = if n == 1 { "fails" } else { "fail" };
    format!("round {round}: {n} {tests} at {short} (best so far) now {verb}: {names}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(passed: u64, failing: &[&str]) -> Kept {
        Kept {
            commit: "1a2b3c4d5e6f".into(),
            passed,
            failing: failing.iter().map(|s| s.to_string()).collect(),
            runner: "pytest".into(),
        }
    }

    #[test]
    fn the_line_names_the_tests_that_newly_fail() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            regression(4, &kept(3, &["t_a"]), 1, &names(&["t_a", "t_b", "t_c"])),
            "round 4: 2 tests that passed at 1a2b3c4 (best so far) now fail: t_b, t_c"
        );
        assert_eq!(
            regression(2, &kept(3, &[]), 2, &names(&["t_b"])),
            "round 2: 1 test that passed at 1a2b3c4 (best so far) now fails: t_b"
        );
        assert_eq!(
            regression(2, &kept(3, &[]), 1, &[]),
            "round 2: fewer tests pass (1) than at 1a2b3c4 (best so far, 3)"
        );
        let many: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        assert!(regression(1, &kept(20, &[]), 8, &many).ends_with("t8, t9 and 2 more"));
    }
}
