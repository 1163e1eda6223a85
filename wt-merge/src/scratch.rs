//! The verification worktree: made like an agent's, by the same code path. wt-merge runs
//! `wt-create` (checkout, `.worktreeinclude` files, shared directories placed from the store,
//! the post-checkout hook) and `wt-env` (its own index, port block, database cloned from the
//! agents' template, env file) on it, as a pipeline would, without importing their libraries.
//! It sits beside the agents' worktrees (`<repo>.wt/<name>-verify-<commit>`), never under a
//! dot-directory, and goes again (`wt-env --release --drop-database`, `wt-create --remove
//! --force`) when the verification ends.
//!
//! Crash safety: its name is written to `<state>/merge-scratch` before wt-create starts, so the
//! next queue (which holds the queue lock, so nothing else verifies) removes what a killed one
//! left: a half-made worktree is rolled back by wt-create itself, a made one is removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use wt_common::git::repo::Repo;
use wt_common::ledger::Entry;
use wt_common::{Error, Record};

/// Where the name of the verification worktree in progress is kept.
fn journal(repo: &Repo) -> PathBuf {
    repo.state_dir().join("merge-scratch")
}

/// The longest part of a candidate's name a verification worktree's name keeps: with
/// `-verify-` and 12 hex digits it stays within the 200 bytes a name may have.
const NAME_KEPT: usize = 150;

/// The verification worktree's name for candidate `name` at `commit`: `-verify-` and 12 hex
/// digits are wt-merge's; a person's worktree is never named so.
pub fn name_for(name: &str, commit: &str) -> String {
    let mut end = name.len().min(NAME_KEPT);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-verify-{}", &name[..end], &commit[..commit.len().min(12)])
}

/// Whether `name` is a verification worktree's (`…-verify-<12 hex digits>`).
pub fn is_scratch_name(name: &str) -> bool {
    name.rsplit_once("-verify-").is_some_and(|(_, hex)| hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A provisioned verification worktree.
#[derive(Debug)]
pub struct Scratch {
    pub name: String,
    pub path: PathBuf,
    /// The env its lease gives (`env.vars` of wt-env's record): the verify command gets it.
    pub vars: Vec<(String, String)>,
    /// Shared directories that were not placed from the store, with the reason (their lock
    /// files differ from the main worktree's): `[merge] prepare` installs them, else the
    /// verification cannot be trusted.
    pub not_shared: Vec<(String, String)>,
    /// The entries of `PATH` inside other worktrees, which the commands run without
    /// (`verify::foreign_path_entries`).
    pub path_dropped: Vec<String>,
    /// `merge.verify.env`: what was placed.
    pub placed: Value,
}

/// What the candidate's worktree had, to give the verification worktree the same: its shared
/// directories (from its record, checked again by wt-create), its port names and block size
/// and its database template (from the ledger, which wt wrote), its env file's name.
#[derive(Debug, Default)]
pub struct Like {
    pub shares: Vec<String>,
    pub ports: Vec<String>,
    pub block: Option<u16>,
    pub database: Option<String>,
    pub dotenv: Option<String>,
}

impl Like {
    pub fn of(repo: &Repo, rec: &Record, entry: Option<&Entry>) -> Like {
        let mut like = Like::default();
        let dirs = rec.key("share").and_then(|s| s.get("dirs")).and_then(Value::as_array);
        for d in dirs.into_iter().flatten() {
            if let Some(dir) = d.get("dir").and_then(Value::as_str) {
                like.shares.push(dir.to_string());
            }
        }
        // What wt-create noted it shared into it: a name on the command line brings no
        // `share` key.
        for dir in
            wt_common::ledger::shared_dirs::read(&wt_common::ledger::shared_dirs::file(&repo.state_dir(), &rec.name))
        {
            let dir = dir.to_string_lossy().into_owned();
            if !like.shares.contains(&dir) {
                like.shares.push(dir);
            }
        }
        if let Some(entry) = entry {
            if let Some(block) = wt_common::ledger::lease::block_of(entry) {
                like.ports = block.names.clone();
                like.block = Some(block.size);
            }
            let db = entry.extra.get("database").and_then(|d| d.get("server_url")).and_then(Value::as_str);
            like.database = db.map(str::to_string);
        }
        // The env file's name, when it is a plain name inside the worktree (wt-env checks it).
        let file = rec.key("env").and_then(|e| e.get("file")).and_then(Value::as_str).map(Path::new);
        if let (Some(file), Some(root)) = (file, rec.path.as_deref()) {
            if let Ok(rel) = file.strip_prefix(root) {
                let plain = rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
                if plain {
                    like.dotenv = rel.to_str().map(str::to_string);
                }
            }
        }
        like
    }
}

/// Makes the verification worktree of `name` at `commit`, like `like`.
pub fn provision(repo: &Repo, name: &str, commit: &str, like: &Like) -> Result<Scratch, Error> {
    let started = std::time::Instant::now();
    let scratch = name_for(name, commit);
    // One journal: what an earlier verification could not remove is removed first, or nothing
    // new is made (its name would be forgotten). The queue swept every other leftover when it
    // started.
    if let Some(left) = journaled(repo) {
        dispose(repo, &left);
    }
    if let Some(left) = wt_common::fs::read_small(&journal(repo)).text() {
        return Err(Error::failed(
            "scratch-left",
            format!(
                "the verification worktree {} an earlier run left cannot be removed (see above); remove it with wt-create --remove --force",
                left.trim()
            ),
        ));
    }
    let state = repo.ensure_state_dir()?;
    wt_common::fs::write_atomic(&journal(repo), scratch.as_bytes()).map_err(|e| Error::io(state.display(), e))?;
    let mut create = tool(repo, "wt-create")?;
    create.arg("--base").arg(commit);
    for dir in &like.shares {
        create.arg(format!("--share={dir}"));
    }
    create.arg("--").arg(&scratch);
    let made = match one_record(create, None, "wt-create") {
        Ok(rec) => rec,
        Err(e) => {
            dispose(repo, &scratch);
            return Err(e);
        }
    };
    if made.created == Some(true) && made.head.as_deref() != Some(commit) {
        // A branch of that name was there already, at another commit: not what is to be tested.
        dispose(repo, &scratch);
        return Err(Error::failed(
            "scratch-exists",
            format!("a branch wt/{scratch} exists at another commit; wt-merge verifies on that name, so delete it (git branch -D wt/{scratch})"),
        ));
    }
    if made.created != Some(true) {
        // Never ours to remove: someone made a worktree of that name.
        let _ = std::fs::remove_file(journal(repo));
        return Err(Error::failed(
            "scratch-exists",
            format!("a worktree named {scratch} exists; wt-merge verifies in it, so remove it (wt-create --remove {scratch})"),
        ));
    }
    let mut env = tool(repo, "wt-env")?;
    if !like.ports.is_empty() {
        env.arg(format!("--ports={}", like.ports.join(",")));
    }
    if let Some(size) = like.block {
        env.arg(format!("--block={size}"));
    }
    if let Some(url) = &like.database {
        env.arg(format!("--database={url}"));
    }
    if let Some(file) = &like.dotenv {
        env.arg(format!("--dotenv={file}"));
    }
    let leased = match one_record(env, Some(made.to_json()), "wt-env") {
        Ok(rec) => rec,
        Err(e) => {
            dispose(repo, &scratch);
            return Err(e);
        }
    };
    let path = leased.path.clone().unwrap_or_default();
    let vars = leased
        .key("env")
        .and_then(|e| e.get("vars"))
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    let dirs = leased.key("share").and_then(|s| s.get("dirs")).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut shared = Vec::new();
    let mut not_shared = Vec::new();
    for d in &dirs {
        let dir = d["dir"].as_str().unwrap_or_default().to_string();
        match d["status"].as_str() {
            Some("shared") => shared.push(dir),
            _ => not_shared.push((dir, d["reason"].as_str().unwrap_or("not placed").to_string())),
        }
    }
    let e = leased.key("env").cloned().unwrap_or(Value::Null);
    let placed = json!({
        "name": scratch,
        "path": path,
        "shared": shared,
        "not_shared": not_shared.iter().map(|(d, r)| json!({"dir": d, "reason": r})).collect::<Vec<_>>(),
        "ports": e.get("ports").cloned().unwrap_or(Value::Null),
        "database": e.get("database").and_then(|d| d.get("name")).cloned().unwrap_or(Value::Null),
        "file": e.get("file").cloned().unwrap_or(Value::Null),
        "provision_ms": started.elapsed().as_millis() as u64,
    });
    Ok(Scratch { name: scratch, path, vars, not_shared, path_dropped: Vec::new(), placed })
}

/// Removes the verification worktree `name`: its leases (and its database) first, then the
/// worktree and its branch, and the branch alone when wt-create no longer knows the worktree (a
/// wt-create killed while it made it, whose git went on a moment). What fails is said on
/// stderr; the journal stays then, so the next queue tries again.
pub fn dispose(repo: &Repo, name: &str) {
    let mut ok = true;
    for (program, args) in
        [("wt-env", &["--release", "--drop-database"][..]), ("wt-create", &["--remove", "--force"][..])]
    {
        let Ok(mut cmd) = tool(repo, program) else {
            ok = false;
            continue;
        };
        cmd.args(args).arg("--").arg(name);
        match one_record(cmd, None, program) {
            Ok(_) => {}
            // Gone already (a run killed before wt-create made it, or after it was removed).
            Err(e) if e.code == "no-such-worktree" || e.code == "no-lease" => {}
            Err(e) => {
                eprintln!("wt-merge: removing the verification worktree {name}: {}", e.message);
                ok = false;
            }
        }
    }
    if ok {
        if let Err(e) = delete_branch(repo, name) {
            eprintln!("wt-merge: removing the verification worktree {name}: {}", e.message);
            ok = false;
        }
    }
    if ok {
        let _ = std::fs::remove_file(journal(repo));
    }
}

/// Deletes `wt/<name>` when it is still there and no worktree has it checked out.
fn delete_branch(repo: &Repo, name: &str) -> Result<(), Error> {
    let branch = format!("wt/{name}");
    let dir = repo.git_dir();
    if wt_common::git::run(dir, ["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}")]).is_err() {
        return Ok(());
    }
    // Under the worktree lock: a git a killed wt-create left running is waited for first.
    let lock = repo.worktree_lock()?;
    if repo.worktrees()?.iter().any(|w| w.branch.as_deref() == Some(branch.as_str())) {
        return Err(Error::failed("scratch-left", format!("{branch} is still checked out")));
    }
    let mut cmd = wt_common::git::about_worktrees(dir, &repo.common_dir);
    wt_common::git::output_under(cmd.args(["branch", "-D", "--quiet", &branch]), &lock).map(|_| ())
}

/// The verification worktree the journal names; a journal that names anything else is
/// dropped, never acted on.
fn journaled(repo: &Repo) -> Option<String> {
    let left = wt_common::fs::read_small(&journal(repo)).text().map(|n| n.trim().to_string())?;
    if is_scratch_name(&left) && wt_common::ledger::name::validate(&left).is_ok() {
        return Some(left);
    }
    tracing::warn!("ignoring the journal of verification worktrees: {left:?} is not one");
    let _ = std::fs::remove_file(journal(repo));
    None
}

/// Removes what verifications killed along the way left: the worktree the journal names, and
/// any other with a verification worktree's name (in the ledger, registered with git, or as a
/// branch). Only wt-merge makes such names, and only while it holds the queue lock, which the
/// caller holds: none of them is in use.
pub fn sweep(repo: &Repo) {
    let mut names: std::collections::BTreeSet<String> = journaled(repo).into_iter().collect();
    let ledger = wt_common::ledger::LedgerFile::new(&repo.state_dir());
    if let Ok(l) = ledger.read() {
        names.extend(l.worktrees.keys().filter(|n| is_scratch_name(n)).cloned());
    }
    for wt in repo.worktrees().unwrap_or_default() {
        let dir_name = wt.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if is_scratch_name(dir_name) {
            names.insert(dir_name.to_string());
        }
    }
    let branches =
        wt_common::git::run(repo.git_dir(), ["for-each-ref", "--format=%(refname:lstrip=3)", "refs/heads/wt/"])
            .unwrap_or_default();
    names.extend(
        branches
            .lines()
            .filter(|b| is_scratch_name(b) && wt_common::ledger::name::validate(b).is_ok())
            .map(str::to_string),
    );
    for name in names {
        tracing::info!("removing the verification worktree {name} a killed wt-merge left");
        dispose(repo, &name);
    }
}

/// `TOOL -C <repo> --json` of the wt tool beside this one, dying with this process.
fn tool(repo: &Repo, name: &str) -> Result<Command, Error> {
    let mut cmd = Command::new(wt_common::proc::sibling::tool(name)?);
    cmd.arg("-C").arg(repo.root()).arg("--json");
    // Its progress and tables are not ours to show; its verdict comes back as a record.
    cmd.env_remove("WT_LOG");
    wt_common::proc::process::die_with_parent(&mut cmd);
    Ok(cmd)
}

/// Runs `cmd` (with `input` on stdin) and returns the one record it printed, or the error the
/// record (or, failing that, its stderr) names.
fn one_record(mut cmd: Command, input: Option<String>, program: &str) -> Result<Record, Error> {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::env("tool-missing", format!("cannot start {program}: {e}")))?;
    if let (Some(mut stdin), Some(line)) = (child.stdin.take(), input) {
        let _ = writeln!(stdin, "{line}");
    }
    let out = child.wait_with_output().map_err(|e| Error::io(program, e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rec = stdout.lines().find_map(|l| Record::from_json(l).ok());
    match rec {
        Some(rec) if !rec.has_error() && out.status.success() => Ok(rec),
        Some(rec) if rec.has_error() => {
            let e = rec.error.expect("checked");
            Err(Error::failed(&e.code, format!("{program}: {}", e.message)))
        }
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
            Err(Error::failed("verify-provision", format!("{program} failed ({}): {last}", out.status)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verification_worktrees_name_is_valid_for_any_valid_candidate_name_and_recognised() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        for name in ["agent-1", &"a".repeat(200), &"é".repeat(100)] {
            let scratch = name_for(name, commit);
            wt_common::ledger::name::validate(&scratch).unwrap();
            assert!(is_scratch_name(&scratch), "{scratch}");
        }
        assert!(!is_scratch_name("agent-1"));
        assert!(!is_scratch_name("agent-verify-xyz"));
        assert!(!is_scratch_name("agent-verify-0123456789abc"));
    }
}
