//! `--confine`: Landlock rules so that a command may read anywhere but write only in its
//! worktree (and what git needs to commit there, the temp dir, `--allow-write` paths), and bind
//! only its leased TCP ports.
//!
//! Landlock applies to the calling process and its future children, so it must be set up
//! between fork and exec. The landlock crate allocates, which is not safe in the child of a
//! multi-threaded process; so wt-run runs itself again as a small single-threaded helper
//! (`wt-run __confine-exec POLICY -- CMD…`) that restricts itself and then execs the command.
//! The helper is the group leader and its pid becomes the command's. Before Landlock, it hides
//! the places where a pane supervisor or a tmux server listens (see `hide`).

use std::io::Write;
use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, ABI,
};
use serde::{Deserialize, Serialize};
use wt_common::ledger::Ledger;
use wt_common::repo::Repo;
use wt_common::Record;

/// The helper's first argument.
pub const HELPER: &str = "__confine-exec";

/// What one confined run may write and bind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy {
    pub write: Vec<PathBuf>,
    pub ports: Vec<u16>,
    pub best_effort: bool,
    /// A temp dir of this run's own, when the system's would expose other worktrees.
    pub private_tmp: Option<PathBuf>,
    /// Where the helper reports what was enforced (opened before the rules apply).
    pub status_file: PathBuf,
    /// Directories to hide behind an empty read-only tmpfs, besides every place a pane
    /// supervisor or tmux server may listen (which the helper always hides).
    #[serde(default)]
    pub hide: Vec<PathBuf>,
    /// Files inside hidden directories that stay reachable (a confined pane's own socket).
    #[serde(default)]
    pub keep: Vec<PathBuf>,
}

/// What the helper reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// `full`, `partial` or `none`.
    #[serde(default)]
    pub enforced: String,
    /// Why the rules could not be applied (strict mode), or the command not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `not-found` etc. when exec failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_error: Option<String>,
    /// The directories hidden from the command.
    #[serde(default)]
    pub hidden: Vec<PathBuf>,
}

/// The policy for a worktree: its directory, its git admin dir, what a commit writes in the
/// common dir (objects, its branch's refs and reflogs), a temp dir, the terminal devices.
///
/// Landlock can only allow, never deny below an allowed directory. So when the system temp
/// dir holds the repository or any of its worktrees (worktrees in /tmp), allowing it would
/// allow writing into them: the run then gets a private temp dir (TMPDIR) instead.
pub fn policy_for(
    repo: &Repo,
    ledger: &Ledger,
    rec: &Record,
    ports: Vec<u16>,
    allow: &[PathBuf],
    best_effort: bool,
    status_file: PathBuf,
) -> Policy {
    let path = rec.path.clone().unwrap_or_default();
    let mut write = vec![path.clone()];
    if let Some(admin) = admin_dir(repo, &path) {
        write.push(admin);
    }
    let common = &repo.common_dir;
    write.push(common.join("objects"));
    // The ref's lock file is made beside the ref, so the branch's directory must be writable.
    let branch_dir = rec.branch.as_deref().and_then(|b| Path::new(b).parent()).unwrap_or(Path::new(""));
    write.push(common.join("refs/heads").join(branch_dir));
    write.push(common.join("logs/refs/heads").join(branch_dir));
    let system_tmp = std::env::temp_dir().canonicalize().unwrap_or_else(|_| std::env::temp_dir());
    let exposed = std::iter::once(repo.root().to_path_buf())
        .chain(ledger.worktrees.values().map(|e| e.path.clone()))
        .any(|p| p.starts_with(&system_tmp));
    let private_tmp = if exposed { private_temp_dir(&system_tmp, &rec.name) } else { None };
    write.push(private_tmp.clone().unwrap_or(system_tmp));
    for dev in ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/pts", "/dev/shm", "/dev/ptmx"] {
        write.push(PathBuf::from(dev));
    }
    write.extend(allow.iter().cloned());
    write.retain(|p| p.exists());
    write.dedup();
    Policy { write, ports, best_effort, private_tmp, status_file, hide: Vec::new(), keep: Vec::new() }
}

fn private_temp_dir(system_tmp: &Path, name: &str) -> Option<PathBuf> {
    let dir = system_tmp.join(format!("wt-run-{name}-{}", crate::unique_stem()));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// The worktree's admin dir, from git's registration in the common dir: never from its `.git`
/// file, which the agent can rewrite (`gitdir: /` would grant it write on `/`).
fn admin_dir(repo: &Repo, worktree: &Path) -> Option<PathBuf> {
    wt_common::worktree_check::verify(repo, worktree).ok().map(|r| r.admin_dir).filter(|a| *a != repo.common_dir)
}

/// The ports wt-env leased to the worktree (`env.block`).
pub fn leased_ports(rec: &Record) -> Vec<u16> {
    let block = rec.key("env").and_then(|e| e.get("block"));
    let get =
        |k: &str| block.and_then(|b| b.get(k)).and_then(serde_json::Value::as_u64).and_then(|n| u16::try_from(n).ok());
    match (get("start"), get("end")) {
        (Some(s), Some(e)) if s <= e => (s..=e).collect(),
        _ => Vec::new(),
    }
}

/// The helper's command line: `<wt-run> __confine-exec <policy> -- argv…`.
pub fn wrap(policy: &Policy, argv: &[String]) -> Vec<String> {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "wt-run".into());
    let mut out = vec![exe, HELPER.into(), serde_json::to_string(policy).expect("policy serializes"), "--".into()];
    out.extend(argv.iter().cloned());
    out
}

/// The helper: applies the policy to itself, reports, and becomes the command. Never returns.
pub fn helper_main(args: &[String]) -> ! {
    let (Some(policy), Some(sep)) = (args.get(2), args.get(3)) else {
        helper_fail("usage: __confine-exec POLICY -- CMD")
    };
    let Ok(policy) = serde_json::from_str::<Policy>(policy) else { helper_fail("unreadable policy") };
    let argv = &args[4..];
    if sep != "--" || argv.is_empty() {
        helper_fail("usage: __confine-exec POLICY -- CMD");
    }
    let mut status = std::fs::File::create(&policy.status_file).ok();
    let mut report = Report::default();
    let hidden = hide_control_plane(&policy, &mut report, &mut status);
    match restrict(&policy) {
        Ok(enforced) if !hidden && enforced == "full" => report.enforced = "partial".into(),
        Ok(enforced) => report.enforced = enforced.into(),
        Err(e) => {
            report.error = Some(e);
            write_report(&mut status, &report);
            std::process::exit(126);
        }
    }
    write_report(&mut status, &report);
    // The status file is close-on-exec: it stays open only if exec fails, to say why. The
    // command is not told of a tmux server it cannot reach.
    let mut command = std::process::Command::new(&argv[0]);
    command.args(&argv[1..]).env_remove("TMUX").env_remove("TMUX_PANE");
    let err = std::os::unix::process::CommandExt::exec(&mut command);
    let (code, kind) = match err.kind() {
        std::io::ErrorKind::NotFound => (127, "not-found"),
        std::io::ErrorKind::PermissionDenied => (126, "not-executable"),
        _ => (126, "spawn-failed"),
    };
    report.exec_error = Some(kind.into());
    report.error = Some(format!("{}: {err}", argv[0]));
    write_report(&mut status, &report);
    std::process::exit(code);
}

/// Hides every place a pane supervisor or a tmux server may listen (they would run anything
/// they are asked to, unconfined), keeping the pane's own socket; `false` if it could not,
/// which only best-effort mode survives.
fn hide_control_plane(policy: &Policy, report: &mut Report, status: &mut Option<std::fs::File>) -> bool {
    let mut hide = policy.hide.clone();
    hide.extend(crate::pane::socket::control_dirs());
    match crate::hide::hide(&hide, &policy.keep) {
        Ok(dirs) => {
            report.hidden = dirs;
            true
        }
        Err(_) if policy.best_effort => false,
        Err(e) => {
            report.error = Some(format!(
                "--confine cannot hide the pane supervisor and tmux from the command ({e}); use --confine=best-effort to run without hiding them"
            ));
            write_report(status, report);
            std::process::exit(126);
        }
    }
}

fn helper_fail(why: &str) -> ! {
    eprintln!("wt-run {HELPER}: {why}");
    std::process::exit(126);
}

fn write_report(file: &mut Option<std::fs::File>, report: &Report) {
    use std::io::Seek;
    if let Some(f) = file {
        let _ = f.set_len(0).and_then(|_| f.rewind());
        let _ = f.write_all(serde_json::to_string(report).expect("report serializes").as_bytes());
        let _ = f.flush();
    }
}

/// Applies the rules to this process: `full` when every rule is enforced, `partial` or `none`
/// when the kernel could not (best effort only; strict mode fails instead).
fn restrict(policy: &Policy) -> Result<&'static str, String> {
    let abi = ABI::V4;
    let level = if policy.best_effort { CompatLevel::BestEffort } else { CompatLevel::HardRequirement };
    let explain = |e: &dyn std::fmt::Display| {
        format!("Landlock cannot enforce --confine here ({e}); it needs Linux 6.7+ with Landlock enabled (ABI 4), or use --confine=best-effort")
    };
    let mut ruleset =
        Ruleset::default().set_compatibility(level).handle_access(AccessFs::from_all(abi)).map_err(|e| explain(&e))?;
    if !policy.ports.is_empty() {
        ruleset = ruleset.handle_access(AccessNet::BindTcp).map_err(|e| explain(&e))?;
    }
    let mut created = ruleset
        .create()
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(&policy.write, AccessFs::from_all(abi))))
        .map_err(|e| explain(&e))?;
    for port in &policy.ports {
        created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp)).map_err(|e| explain(&e))?;
    }
    let status = created.restrict_self().map_err(|e| explain(&e))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "full",
        RulesetStatus::PartiallyEnforced => "partial",
        RulesetStatus::NotEnforced => "none",
    })
}
