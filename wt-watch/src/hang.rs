//! What a round asks of the test runner so that, if its timeout stops it, its excerpt can name
//! the test that hung and where (`wt_common::record::running` reads it from the output).
//!
//! pytest prints nothing of a running test by default (`-q` prints only dots), so a round adds
//! `-o faulthandler_timeout=S` to `PYTEST_ADDOPTS`, S half the round's timeout: a test that runs
//! that long gets Python's dump of its stack in the output (`Timeout (0:01:00)!`, then `File
//! "tests/test_a.py", line 5 in test_hang`), and runs on. Nothing else changes: the person's
//! command is untouched, no test is stopped by it, the outcome and the report are the same (on
//! itsdangerous' 297 tests: the same `297 passed`, the same output), and a command that is not
//! pytest ignores the variable. A `PYTEST_ADDOPTS` of the person's own is kept, ours after it;
//! one that already sets `faulthandler_timeout` is left alone. Half the timeout: a test that
//! hangs is dumped while the round still runs if it started in the round's first half, which
//! with the default timeout (3× the last green round) it does unless the suite got 50% slower.
//!
//! Other runners are not asked: cargo test says on its own which tests have run over a minute;
//! go test names them with `-v`, which would change the whole of its output, so it is left to
//! the person (or go's own `-timeout`, whose panic lists them); node's runner and mocha print a
//! test only when it ends.

use std::time::Duration;

/// The variable pytest reads extra arguments from.
pub const PYTEST_ADDOPTS: &str = "PYTEST_ADDOPTS";

/// `PYTEST_ADDOPTS` as a round with `timeout` sets it, given the round's `env` on top of
/// `inherited` (wt-watch's own environment); `None` when it is left as it is.
pub fn pytest_addopts(
    env: &[(String, String)],
    inherited: Option<String>,
    timeout: Option<Duration>,
) -> Option<String> {
    let timeout = timeout?;
    let theirs = env.iter().rev().find(|(k, _)| k == PYTEST_ADDOPTS).map(|(_, v)| v.clone()).or(inherited);
    let theirs = theirs.unwrap_or_default();
    if theirs.contains("faulthandler_timeout") {
        return None;
    }
    let after = (timeout.as_millis() / 2).max(1);
    let ours = format!("-o faulthandler_timeout={}.{:03}", after / 1000, after % 1000);
    Some(if theirs.trim().is_empty() { ours } else { format!("{theirs} {ours}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_timeout_after_the_persons_own_options() {
        let t = Some(Duration::from_secs(120));
        assert_eq!(pytest_addopts(&[], None, t).as_deref(), Some("-o faulthandler_timeout=60.000"));
        assert_eq!(
            pytest_addopts(&[], Some("-x".into()), Some(Duration::from_millis(1500))).as_deref(),
            Some("-x -o faulthandler_timeout=0.750")
        );
        let env = [(PYTEST_ADDOPTS.to_string(), "-p no:randomly".to_string())];
        assert_eq!(
            pytest_addopts(&env, Some("-x".into()), t).as_deref(),
            Some("-p no:randomly -o faulthandler_timeout=60.000"),
            "the round's env over wt-watch's"
        );
        assert_eq!(pytest_addopts(&[], Some("-o faulthandler_timeout=5".into()), t), None, "theirs");
        assert_eq!(pytest_addopts(&[], None, None), None, "no timeout, nothing to dump before");
    }
}
