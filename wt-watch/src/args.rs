//! The command line of wt-watch, and its `[watch]` section of wt.toml.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use wt_common::record::cli::GlobalArgs;
use wt_common::Error;

/// Watch worktrees and run their tests whenever their files settle; when the tests fail, hand
/// the failure to the agent working there and wait for its next change, until green.
///
/// A red round is fed to the agent after one run. Meanwhile its failing tests alone run again,
/// the runner's own way (pytest `--lf`, cargo test `--exact` filters, go test `-run`, mocha
/// `--grep`; other commands are not run again): those that pass are told to the agent as probably flaky, not
/// its change, and when all do the record says `flaky` and the round runs again (never the
/// end of a loop). Those that fail again run on the worktree's base commit, in a scratch
/// checkout: failing there too, they are told to the agent as pre-existing. The agent's next
/// change ends such a re-run. `--no-rerun` (or `[watch] rerun = false`) runs nothing again.
///
/// Only a change git can see starts a round (every `.gitignore`, `info/exclude` and
/// `core.excludesFile` obeyed, each read before what is under it is judged). A change during a
/// round never ends it: the next round starts when it ends. A file git does not track that the
/// test command writes in two runs in a row (`report.xml`, `.coverage`) is its own output:
/// it starts no round, and wt-watch says once to add it to `.gitignore`.
///
/// Green means a commit: a round green on uncommitted changes tells the agent to commit and
/// waits for the commit (the branch moving); the next round tests it. With `--until-green` a
/// worktree is done on a green round of a clean tree that started after a change made since
/// wt-watch started, or whose branch is ahead of its base: never on the untouched base.
///
/// The clean commit whose tests passed most (counted from the runner's summary) is kept as
/// `refs/wt/best/<name>`; a round that passes fewer tells the agent which tests passed there and
/// now fail.
///
/// Green by gaming the tests is `green-guard-touched` (wt-merge skips it): the test runner's
/// tests and configuration are guarded by default (pytest, cargo, npm, go, make, read from the
/// test command; `--no-guard` drops them, `--guard` adds more), and a green round may not run
/// fewer tests than the first round did (the count from the runner's summary).
///
/// Worktrees come from records or names on stdin (read while watching, so new ones can join),
/// names as arguments or `-w`, or `--all`. One record per worktree per round goes to stdout
/// (with `--until-green`: one per worktree, when it turns green or gives up).
#[derive(Debug, Parser)]
#[command(
    name = "wt-watch",
    version,
    after_help = "Examples:\n  wt-create --list | wt-watch --until-green --feed pane -- cargo test | wt-merge --verify 'cargo test'\n  wt-watch -w agent-1 --feed file:FEEDBACK.md --guard 'fixtures/**' -- pytest -rA\n  wt-watch --all --feed none -- make test              # report every round, feed nobody\n  wt-watch -w agent-1 --feed jsonl:/tmp/agent-1.jsonl -- pytest -q   # a JSON line per round, for the agent's own monitor\n  wt-watch -w agent-1 --confine --until-green -- make test   # the agent's Makefile runs sandboxed\n\nExit: 0 done (with --until-green: every worktree green), 1 a worktree gave up or has an\nerror, 2 usage, 3 unusable environment, 130/143 interrupted."
)]
pub struct Args {
    /// Worktrees by name or path
    #[arg(value_name = "WORKTREE", add = wt_common::record::complete::worktrees())]
    pub names: Vec<String>,

    #[command(flatten)]
    pub select: wt_common::record::cli::Selection,

    /// Milliseconds of quiet after a change before the tests run [default: 300]
    #[arg(long, value_name = "MS")]
    pub debounce: Option<u64>,

    /// Give up after N red rounds [default: 5]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rounds: Option<u32>,

    /// One record per worktree, when it turns green on a commit the agent made, or gives up;
    /// stop watching it then
    #[arg(long)]
    pub until_green: bool,

    /// Do not run a red round's failing tests again to tell a flaky test apart [wt.toml:
    /// [watch] rerun = false]
    #[arg(long)]
    pub no_rerun: bool,

    /// Where failures go: `pane` (the agent's pane, named like the worktree), `pane:NAME`,
    /// `file:PATH` (the failure's text, replaced each red round; relative paths are in the
    /// worktree), `jsonl:PATH` (one JSON line appended per round, red or not, for an agent's own
    /// monitor to follow: `tail -F PATH`), `cmd:COMMAND` (the failure on its stdin), `none`
    /// [default: pane]
    #[arg(long, value_name = "HOW")]
    pub feed: Option<String>,

    /// Files the agent must not change to turn green (glob, repeatable), besides the test
    /// runner's own (its tests and configuration, guarded by default): if one changed between
    /// the first red round and green, the status is green-guard-touched. A glob that matches
    /// no file is an error [wt.toml: [watch] guard]
    #[arg(long, value_name = "GLOB")]
    pub guard: Vec<String>,

    /// Do not guard the test runner's files by default (its tests, its configuration); the
    /// `--guard` globs and the count of tests the runner executed still hold
    /// [wt.toml: [watch] default_guard = false]
    #[arg(long)]
    pub no_guard: bool,

    /// Give up when the agent does not answer a failure with a change within DUR [default: 15m]
    #[arg(long, value_name = "DUR", value_parser = wt_common::record::duration::parse_arg)]
    pub agent_timeout: Option<Duration>,

    /// With --feed pane: the agent is taken as idle once its screen has been quiet this long
    /// [default: 1500]
    #[arg(long, value_name = "MS")]
    pub quiet_ms: Option<u64>,

    /// Stop a test run after DUR: it is red, its tests are not run again, and its feedback
    /// says it timed out and which tests were still running (pytest is asked, through
    /// PYTEST_ADDOPTS, to dump a test's stack after half of DUR) [default: [watch] timeout, else
    /// 3x the last green round, at least 2m (10m before the first green round)]
    #[arg(long, value_name = "DUR", value_parser = wt_common::record::duration::parse_arg)]
    pub timeout: Option<Duration>,

    /// Run the test command through `sh -c`, its words joined by spaces
    #[arg(long)]
    pub shell: bool,

    /// Run each round in a pane of its own, `<worktree>-test`, beside the agent's (a window of
    /// the same tmux session with the tmux backend), so a person can watch it
    #[arg(long)]
    pub test_pane: bool,

    /// Run each round confined, in the sandbox of `wt-run --confine` (through the wt-run beside
    /// this one): the tests, and whatever the agent put in them (a Makefile, a test script), may
    /// write only in the worktree, commit only on its branch, bind only its leased ports.
    /// `best-effort` runs where the kernel cannot enforce all of it, `off` overrides wt.toml; the
    /// record says what was enforced (`watch.run.confined`) [default: [watch] confine, else off]
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "strict", value_parser = wt_common::confine::via::MODES)]
    pub confine: Option<String>,

    /// Start rounds without the build governor: no job slot to wait for, no MAKEFLAGS
    /// jobserver for the test command (see docs/governor.md) [env: WT_GOVERNOR=off]
    #[arg(long)]
    pub no_governor: bool,

    /// With --confine: the rounds may also write under PATH (a cache in your home: ~/.cargo)
    /// (repeatable) [wt.toml: [watch] allow_write]
    #[arg(long = "allow-write", value_name = "PATH")]
    pub allow_write: Vec<PathBuf>,

    /// With --confine: the rounds also keep the caller's variable NAME (repeatable, or
    /// comma-separated; `NAME_*` for a prefix), besides the worktree's own and [run] pass_env
    #[arg(long = "pass-env", value_name = "NAME", value_delimiter = ',')]
    pub pass_env: Vec<String>,

    /// The test command [default: wt.toml's `[watch] test`, run through `sh -c`]
    #[arg(last = true, value_name = "TEST")]
    pub command: Vec<String>,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `[watch]` in wt.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The test command, run through `sh -c`.
    pub test: Option<String>,
    /// Globs guarded besides the runner's (replaced by `--guard`).
    pub guard: Option<Vec<String>>,
    /// `false`: `--no-guard` for every watch.
    pub default_guard: Option<bool>,
    pub debounce: Option<u64>,
    pub max_rounds: Option<u32>,
    /// `false`: `--no-rerun` for every watch.
    pub rerun: Option<bool>,
    pub feed: Option<String>,
    pub agent_timeout: Option<String>,
    pub quiet_ms: Option<u64>,
    pub timeout: Option<String>,
    /// `--confine`: `true`, `false`, `"strict"`, `"best-effort"`, `"off"`.
    pub confine: Option<wt_common::confine::via::Setting>,
    /// `--allow-write` for every confined round.
    pub allow_write: Option<Vec<PathBuf>>,
}

/// Where a failure excerpt goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// The agent's pane: the worktree's name, or the one given.
    Pane(Option<String>),
    File(PathBuf),
    /// One JSON line per round appended (`feed_lines`).
    Jsonl(PathBuf),
    Cmd(String),
    None,
}

impl Feed {
    pub fn parse(text: &str) -> Result<Feed, Error> {
        let bad = |why: &str| {
            Error::usage(
                "bad-feed",
                format!("--feed {text}: {why}; use pane, pane:NAME, file:PATH, jsonl:PATH, cmd:COMMAND or none"),
            )
        };
        let (kind, rest) = match text.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => (text, None),
        };
        match (kind, rest) {
            ("pane", None) => Ok(Feed::Pane(None)),
            ("pane", Some(n)) if !n.is_empty() => Ok(Feed::Pane(Some(n.to_string()))),
            ("file", Some(p)) if !p.is_empty() => Ok(Feed::File(PathBuf::from(p))),
            ("jsonl", Some(p)) if !p.is_empty() => Ok(Feed::Jsonl(PathBuf::from(p))),
            ("cmd", Some(c)) if !c.trim().is_empty() => Ok(Feed::Cmd(c.to_string())),
            ("none", None) => Ok(Feed::None),
            ("pane" | "file" | "jsonl" | "cmd", _) => Err(bad("it needs a value after the colon")),
            _ => Err(bad("unknown kind")),
        }
    }
}

/// Everything a watch needs to know, flags over wt.toml over defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    pub command: Vec<String>,
    pub debounce: Duration,
    pub max_rounds: u32,
    pub until_green: bool,
    /// Run a red round's failing tests again while the agent reads (`narrow`).
    pub rerun: bool,
    pub feed: Feed,
    pub guard: Vec<String>,
    /// Guard the detected test runner's files too.
    pub default_guard: bool,
    pub agent_timeout: Duration,
    pub quiet: Duration,
    pub timeout: Option<Duration>,
    pub test_pane: bool,
    /// `--confine`: the mode, the paths it may also write, the variables it keeps; `None` when
    /// the rounds run unconfined.
    pub confine: Option<(String, Vec<PathBuf>, Vec<String>)>,
}

impl Settings {
    pub fn resolve(args: &Args, config: Config) -> Result<Settings, Error> {
        let command = if !args.command.is_empty() {
            if args.shell {
                vec!["sh".into(), "-c".into(), args.command.join(" ")]
            } else {
                args.command.clone()
            }
        } else if let Some(test) = config.test.filter(|t| !t.trim().is_empty()) {
            vec!["sh".into(), "-c".into(), test]
        } else {
            return Err(Error::usage(
                "no-test-command",
                "no test command: give it after `--` (wt-watch -- cargo test) or as `[watch] test = \"…\"` in wt.toml",
            ));
        };
        let duration = |flag: Option<Duration>, conf: Option<String>, default: Duration| -> Result<Duration, Error> {
            match (flag, conf) {
                (Some(d), _) => Ok(d),
                (None, Some(text)) => wt_common::record::duration::parse(&text),
                (None, None) => Ok(default),
            }
        };
        let timeout = match (args.timeout, &config.timeout) {
            (Some(d), _) => Some(d),
            (None, Some(t)) => Some(wt_common::record::duration::parse(t)?),
            (None, None) => None,
        };
        let confine = wt_common::confine::via::mode(args.confine.as_deref(), config.confine.as_ref(), "watch")?;
        let allow_write =
            if args.allow_write.is_empty() { config.allow_write.unwrap_or_default() } else { args.allow_write.clone() };
        if confine.is_none() && (!args.allow_write.is_empty() || !args.pass_env.is_empty()) {
            return Err(Error::usage("usage", "--allow-write and --pass-env go with --confine"));
        }
        let confine = confine.map(|mode| (mode, allow_write, args.pass_env.clone()));
        let max_rounds = args.max_rounds.or(config.max_rounds).unwrap_or(5);
        if max_rounds == 0 {
            return Err(Error::usage("bad-config", "wt.toml: [watch] max_rounds must be at least 1"));
        }
        Ok(Settings {
            command,
            debounce: Duration::from_millis(args.debounce.or(config.debounce).unwrap_or(300)),
            max_rounds,
            until_green: args.until_green,
            rerun: !args.no_rerun && config.rerun.unwrap_or(true),
            feed: Feed::parse(args.feed.as_deref().or(config.feed.as_deref()).unwrap_or("pane"))?,
            guard: if args.guard.is_empty() { config.guard.unwrap_or_default() } else { args.guard.clone() },
            default_guard: !args.no_guard && config.default_guard.unwrap_or(true),
            agent_timeout: duration(args.agent_timeout, config.agent_timeout, Duration::from_secs(15 * 60))?,
            quiet: Duration::from_millis(args.quiet_ms.or(config.quiet_ms).unwrap_or(1500)),
            timeout,
            test_pane: args.test_pane,
            confine,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_parse_and_bad_ones_say_what_is_allowed() {
        assert_eq!(Feed::parse("pane").unwrap(), Feed::Pane(None));
        assert_eq!(Feed::parse("pane:agent-2").unwrap(), Feed::Pane(Some("agent-2".into())));
        assert_eq!(Feed::parse("file:out.md").unwrap(), Feed::File("out.md".into()));
        assert_eq!(Feed::parse("jsonl:/tmp/a.jsonl").unwrap(), Feed::Jsonl("/tmp/a.jsonl".into()));
        assert_eq!(Feed::parse("cmd:cat > x").unwrap(), Feed::Cmd("cat > x".into()));
        assert_eq!(Feed::parse("none").unwrap(), Feed::None);
        for bad in ["", "panes", "file:", "jsonl:", "cmd: ", "none:x", "mail:me"] {
            let e = Feed::parse(bad).unwrap_err();
            assert_eq!(e.code, "bad-feed", "{bad}");
            assert!(e.message.contains("pane:NAME"), "{}", e.message);
        }
    }
}
