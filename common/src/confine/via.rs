//! Running one command confined, for the tools that run commands of an agent's branch besides
//! wt-run: wt-watch's test rounds and wt-merge's prepare and verify commands. The sandbox is
//! wt-run's (`--confine`), and the tools never link wt-run's code: they run the `wt-run`
//! installed beside them (`sibling`) as
//!
//! ```text
//! wt-run -C DIR -w NAME --confine=MODE --passthrough --record FILE [--allow-write P]… [--pass-env N,…] -- CMD…
//! ```
//!
//! `--passthrough` leaves the caller's own output capture, excerpt, timeout and kill semantics
//! as they were: the command's stdout and stderr are wt-run's, wt-run exits with the command's
//! code, ends the command's process group when it gets SIGTERM (and the kernel ends it when
//! wt-run is killed), and writes its record, with `run.confined`, to FILE, which the caller
//! reads back (`finish`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Record};

/// `confine` in a section of wt.toml: `true` (strict), `false`, or a mode (`"strict"`,
/// `"best-effort"`, `"off"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Setting {
    On(bool),
    Mode(String),
}

/// The modes a `--confine=MODE` of wt-watch and wt-merge takes (`off` overrides wt.toml).
pub const MODES: [&str; 3] = ["strict", "best-effort", "off"];

/// The mode in force: the flag's, else wt.toml's (`[section] confine`); `None` when off.
pub fn mode(flag: Option<&str>, config: Option<&Setting>, section: &str) -> Result<Option<String>, Error> {
    let chosen = match (flag, config) {
        (Some(f), _) => f.to_string(),
        (None, Some(Setting::On(true))) => "strict".into(),
        (None, Some(Setting::On(false))) | (None, None) => "off".into(),
        (None, Some(Setting::Mode(m))) => m.clone(),
    };
    if !MODES.contains(&chosen.as_str()) {
        return Err(Error::usage(
            "bad-config",
            format!("wt.toml: [{section}] confine must be true, false, \"strict\", \"best-effort\" or \"off\", not '{chosen}'"),
        ));
    }
    Ok((chosen != "off").then_some(chosen))
}

/// `[run] pass_env` of wt.toml: the caller's variables every confined command keeps.
#[derive(Debug, Default, Deserialize)]
struct RunSection {
    pass_env: Option<Vec<String>>,
}

/// How a tool runs its commands confined.
#[derive(Debug, Clone)]
pub struct Via {
    /// The `wt-run` beside the running tool.
    pub wt_run: PathBuf,
    /// `strict` or `best-effort`.
    pub mode: String,
    pub allow_write: Vec<PathBuf>,
    /// Variables of the caller the command keeps besides those of its worktree (`--pass-env`
    /// given to the tool, and `[run] pass_env`).
    pub pass_env: Vec<String>,
}

impl Via {
    /// Finds `wt-run` (an error when it is missing: nothing would be confined) and reads
    /// `[run] pass_env` of the wt.toml at `root`.
    pub fn new(
        mode: String,
        allow_write: Vec<PathBuf>,
        pass_env: Vec<String>,
        root: Option<&Path>,
    ) -> Result<Via, Error> {
        let wt_run = crate::proc::sibling::tool("wt-run")?;
        let run: RunSection = crate::config::section(root, "run")?;
        let mut pass = pass_env;
        pass.extend(run.pass_env.unwrap_or_default().into_iter().filter(|n| !n.trim().is_empty()));
        // wt-run runs in the worktree: a relative path is the caller's (or wt.toml's `~/.cargo`).
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let allow_write = allow_write
            .into_iter()
            .map(|p| match (p.strip_prefix("~"), &home) {
                (Ok(rest), Some(home)) => home.join(rest),
                _ => std::path::absolute(&p).unwrap_or(p),
            })
            .collect();
        Ok(Via { wt_run, mode, allow_write, pass_env: pass })
    }

    /// The command line that runs `argv` confined in worktree `name` (at `dir`), its record
    /// written to `record`. `env` is what the caller sets for the command (the lease's
    /// variables): the caller sets it on wt-run, and the command keeps it.
    pub fn argv(
        &self,
        dir: &Path,
        name: &str,
        record: &Path,
        env: &[(String, String)],
        argv: &[String],
    ) -> Vec<String> {
        let mut out = vec![
            self.wt_run.display().to_string(),
            "-C".into(),
            dir.display().to_string(),
            "-w".into(),
            name.to_string(),
            format!("--confine={}", self.mode),
            "--passthrough".into(),
            "--record".into(),
            record.display().to_string(),
        ];
        for p in &self.allow_write {
            out.push(format!("--allow-write={}", p.display()));
        }
        let mut names: Vec<&str> =
            env.iter().map(|(k, _)| k.as_str()).chain(self.pass_env.iter().map(String::as_str)).collect();
        names.retain(|n| !n.is_empty() && !n.contains(',') && !n.contains('='));
        names.dedup();
        if !names.is_empty() {
            out.push(format!("--pass-env={}", names.join(",")));
        }
        out.push("--".into());
        out.extend(argv.iter().cloned());
        out
    }

    /// A `Command` for `argv`: wt-run with the caller's `env` set on it, and without `WT_LOG`
    /// (wt-run's own log lines would land in the command's output).
    pub fn command(&self, argv: &[String], env: &[(String, String)]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).envs(env.iter().map(|(k, v)| (k, v))).env_remove("WT_LOG");
        cmd
    }
}

/// What a confined run's record (`record`, which wt-run wrote) says: its `run.confined`
/// report, and its `run` (exit or signal, as wt-run saw the command end). The file is removed.
/// wt-run's error (the sandbox could not be set up, the command not started, its commit not
/// published) is the error; a run that ended without a record (wt-run killed) is `None`.
pub fn finish(record: &Path) -> Result<Option<Value>, Error> {
    let text = crate::fs::read_end(record, 1 << 20);
    let _ = std::fs::remove_file(record);
    let Some(rec) = text.as_deref().and_then(|t| t.lines().find_map(|l| Record::from_json(l).ok())) else {
        return Ok(None);
    };
    if let Some(e) = &rec.error {
        return Err(Error::failed(&e.code, format!("wt-run --confine: {}", e.message)));
    }
    Ok(rec.key("run").cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_wins_over_wt_toml_and_off_turns_it_off() {
        let on = Setting::On(true);
        let best = Setting::Mode("best-effort".into());
        assert_eq!(mode(None, None, "watch").unwrap(), None);
        assert_eq!(mode(None, Some(&on), "watch").unwrap().as_deref(), Some("strict"));
        assert_eq!(mode(None, Some(&best), "watch").unwrap().as_deref(), Some("best-effort"));
        assert_eq!(mode(Some("off"), Some(&on), "watch").unwrap(), None);
        assert_eq!(mode(Some("strict"), Some(&Setting::On(false)), "watch").unwrap().as_deref(), Some("strict"));
        let e = mode(None, Some(&Setting::Mode("yes".into())), "merge").unwrap_err();
        assert!(e.message.contains("[merge] confine"), "{}", e.message);
    }
}
