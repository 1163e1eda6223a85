//! `--confine`: a command that may read anywhere but change only its worktree, commit only on
//! its own branch (through a private git store, published after checking), bind only its
//! leased TCP ports, and signal or reach (abstract unix sockets) nothing outside its run.
//!
//! The sandbox is set up by a small single-threaded helper between fork and exec: wt-run runs
//! itself again as `wt-run __confine-exec POLICY -- CMD…`, which, in this order,
//! 0. enters a pid namespace (`init`): it waits there while its child, pid 1 of the run, does
//!    the rest, and everything left in the namespace is killed when the command exits;
//! 1. enters a mount namespace and lays out the file system (`namespace`): `/` read-only,
//!    the write list writable, the private git store, private `/tmp`, `/dev/shm`, `/dev/pts`;
//! 2. applies Landlock (`rules`): write only in the write list, bind only leased ports, scopes;
//! 3. drops every capability (`caps`);
//! 4. reports what was enforced (`Report`) and runs the command.
//!
//! # For other parts of wt: hiding paths and binding files
//!
//! `Policy::hide` lists directories to cover with an empty read-only tmpfs inside the
//! sandbox, besides those the helper always covers (`crate::hide`: wherever a pane
//! supervisor or tmux server may listen). `Policy::keep` names files inside them that stay
//! reachable at their own paths, when they exist (a confined pane's own socket). `Policy::binds`
//! puts a file or directory at a path (`Bind { src, dst, writable }`); a `dst` inside a hidden
//! directory is created there, so `hide: [sockdir]` + `binds: [{src: pane.sock, dst:
//! sockdir/wt.sock}]` leaves exactly one socket visible. Binds are attached in order, after
//! the hides; every source is resolved before any mount changes, so a bind can name a path
//! that another bind covers.

pub mod caps;
pub mod init;
pub mod namespace;
pub mod record;
pub mod rules;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wt_common::git::repo::Repo;
use wt_common::ledger::Ledger;
use wt_common::{Error, Record};

/// The helper's first argument.
pub const HELPER: &str = "__confine-exec";

/// What one confined run may write, bind and see.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Policy {
    /// Writable (Landlock), and writable mounts in the namespace unless a bind serves them.
    pub write: Vec<PathBuf>,
    pub ports: Vec<u16>,
    pub best_effort: bool,
    /// The run's private tmpfs (TMPDIR).
    pub private_tmp: Option<PathBuf>,
    /// The system temp dir, when it gets a private tmpfs too (it holds nothing of the repository).
    pub system_tmp: Option<PathBuf>,
    /// Mounted one path at another, in order (the private git store; a socket file).
    #[serde(default)]
    pub binds: Vec<Bind>,
    /// Directories covered by an empty read-only tmpfs, besides every place a pane supervisor
    /// or tmux server may listen (which the helper always hides, see `hide`).
    #[serde(default)]
    pub hide: Vec<PathBuf>,
    /// Files inside hidden directories that stay reachable (a confined pane's own socket):
    /// bound back in at their paths, when they exist.
    #[serde(default)]
    pub keep: Vec<PathBuf>,
    /// Files bound read-only over themselves inside a writable tree.
    #[serde(default)]
    pub read_only: Vec<PathBuf>,
    /// The worktree whose private git store is mounted, if any: `(common dir, name)`.
    #[serde(default)]
    pub store: Option<(PathBuf, String)>,
    /// Where the helper reports what was enforced (opened before the rules apply).
    pub status_file: PathBuf,
    /// A batch run: it gives up the caller's controlling terminal before anything else, so
    /// that it can neither open `/dev/tty` nor queue input into the caller's shell with
    /// `TIOCSTI` (a pane keeps its own terminal, the pane's pty).
    #[serde(default)]
    pub no_tty: bool,
    /// Shared dependency directories of the worktree (`wt-create --share`), seen copy-on-write:
    /// their files are the store's, hard-linked into every worktree that shares them.
    #[serde(default)]
    pub cow: Vec<Cow>,
    /// Variables the command keeps besides `CORE_ENV`: those wt-run sets for it (the
    /// worktree's, the lease's, the sandbox's) and what `--pass-env` names (`NAME_*`: a prefix).
    #[serde(default)]
    pub env_keep: Vec<String>,
}

/// The caller's variables a confined command keeps: what a shell, a terminal program and the
/// common toolchains need to run, and git's identity. Database passwords (`PG*`), cloud
/// credentials, `SSH_AUTH_SOCK`, API keys and the rest stay out unless `--pass-env` names them.
pub const CORE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "COLORTERM",
    "TERM_PROGRAM",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "NO_COLOR",
    "FORCE_COLOR",
    "CI",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOMODCACHE",
    "JAVA_HOME",
    "NVM_DIR",
    "PYENV_ROOT",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_KEY_*",
    "GIT_CONFIG_VALUE_*",
    "WT_*",
];

/// Whether variable `name` matches `pattern`: the name itself, or `PREFIX*`.
fn env_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The variables of this process a confined command keeps.
fn kept_env(policy: &Policy) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| {
            let name = k.to_string_lossy();
            CORE_ENV.iter().copied().chain(policy.env_keep.iter().map(String::as_str)).any(|p| env_matches(p, &name))
        })
        .collect()
}

/// A shared directory `dir` seen through an overlay: the files as they are below, what the run
/// changes in `upper` (kept for the worktree's later confined runs), `work` the overlay's
/// scratch dir of this run (removed after it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cow {
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// `src` mounted at `dst` inside the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bind {
    pub src: PathBuf,
    pub dst: PathBuf,
    pub writable: bool,
}

/// What the helper reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// `full`, `partial` or `none`.
    #[serde(default)]
    pub enforced: String,
    /// The Landlock ABI of the kernel (0: none).
    #[serde(default)]
    pub landlock_abi: u32,
    /// Features the kernel could not give (best effort only; strict mode refuses instead).
    #[serde(default)]
    pub missing: Vec<String>,
    /// Why the sandbox could not be set up (strict mode), or the command not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `not-found` etc. when exec failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_error: Option<String>,
    /// The directories hidden from the command.
    #[serde(default)]
    pub hidden: Vec<PathBuf>,
    /// Each shared directory and how the run sees it: `copy-on-write`, or `read-only` where
    /// the kernel could not make an overlay there.
    #[serde(default)]
    pub shared: Vec<(PathBuf, String)>,
}

/// The policy for a worktree: its directory, its git admin dir (its `gitdir`, `commondir`,
/// `config.worktree` and `.git` file bound read-only), the private git store, a private temp
/// dir, the terminal devices, `--allow-write` paths.
///
/// The system temp dir gets a private tmpfs unless it holds the repository, a worktree or an
/// `--allow-write` path (worktrees in /tmp): then it stays read-only and TMPDIR names the
/// run's own tmpfs.
pub fn policy_for(
    repo: &Repo,
    ledger: &Ledger,
    rec: &Record,
    ports: Vec<u16>,
    allow: &[PathBuf],
    best_effort: bool,
    status_file: PathBuf,
) -> Result<Policy, Error> {
    let path = rec.path.clone().unwrap_or_default();
    let common = &repo.common_dir;
    // Git's registration, never the worktree's own files, says where its admin dir is.
    // A linked worktree that fails the check is refused, never confined without its admin
    // files bound read-only; the main worktree has no admin dir of its own to check.
    let main = repo.main_worktree.as_deref() == Some(path.as_path());
    let registered = match wt_common::git::worktree_check::verify(repo, &path) {
        Ok(r) => Some(r),
        Err(_) if main => None,
        Err(e) => return Err(e),
    };
    // The branch the run may move: the one the ledger gave the worktree, else the one git has
    // registered for it; never the record's, which anyone upstream could have written.
    let entry = ledger.worktrees.get(&rec.name).filter(|e| e.path == path);
    let branch = entry.and_then(|e| e.branch.clone()).or_else(|| registered.as_ref().and_then(|r| r.branch.clone()));
    let admin = registered.as_ref().map(|r| r.admin_dir.clone()).filter(|a| a != common);
    let store = wt_common::confine::store::prepare(common, &rec.name, branch.as_deref(), admin.as_deref())?;
    let mut policy = Policy {
        ports,
        best_effort,
        status_file,
        private_tmp: Some(store.tmp.clone()),
        store: Some((common.clone(), rec.name.clone())),
        ..Policy::default()
    };
    policy.write.push(path.clone());
    if let Some(admin) = admin {
        for file in ["gitdir", "commondir", "config.worktree"] {
            policy.read_only.push(admin.join(file));
        }
        policy.write.push(admin);
    }
    policy.read_only.push(path.join(".git"));
    for (src, dst, writable) in store.binds {
        if writable {
            policy.write.push(dst.clone());
        }
        policy.binds.push(Bind { src, dst, writable });
    }
    let (cow, pins) = shared_copy_on_write(repo, &rec.name, &path, &store.dir, &policy.status_file)?;
    policy.cow = cow;
    policy.write.extend(pins);
    policy.write.push(store.tmp);
    policy.write.extend(allow.iter().cloned());
    hide_secrets(repo, ledger, &path, &mut policy);
    let system_tmp = std::env::temp_dir().canonicalize().unwrap_or_else(|_| std::env::temp_dir());
    let exposed = std::iter::once(repo.root().to_path_buf())
        .chain(ledger.worktrees.values().map(|e| e.path.clone()))
        .chain(std::iter::once(path))
        .chain(allow.iter().cloned())
        .any(|p| p.starts_with(&system_tmp));
    if !exposed {
        policy.write.push(system_tmp.clone());
        policy.system_tmp = Some(system_tmp);
    }
    for dev in ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/pts", "/dev/shm", "/dev/ptmx"] {
        policy.write.push(PathBuf::from(dev));
    }
    policy.write.retain(|p| p.exists());
    policy.read_only.retain(|p| p.exists());
    let mut seen = std::collections::HashSet::new();
    policy.write.retain(|p| seen.insert(p.clone()));
    Ok(policy)
}

/// The worktree's shared dependency directories (the note wt-create keeps), each with its
/// layer in the private store: `cow/<dir, '/' as '%'>/upper`, and a work dir of this run's own.
/// Their files are hard links to the store's: a run that wrote through one would change the
/// main worktree's and every other agent's copy.
///
/// Also returns the directories between the worktree and a shared directory, to be mounted
/// over themselves.
fn shared_copy_on_write(
    repo: &Repo,
    name: &str,
    path: &Path,
    store: &Path,
    run: &Path,
) -> Result<(Vec<Cow>, Vec<PathBuf>), Error> {
    let run = run.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let (mut out, mut pins) = (Vec::new(), Vec::new());
    for rel in wt_common::ledger::shared_dirs::read(&wt_common::ledger::shared_dirs::file(&repo.state_dir(), name)) {
        let plain = rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            continue;
        }
        // Every directory on the way must be a directory, not a link: a run that made `web` a
        // link would have the overlay of `web/node_modules` put elsewhere, and the shared
        // files, moved aside, writable again.
        let mut on_the_way = path.to_path_buf();
        for part in rel.components() {
            on_the_way.push(part);
            if on_the_way.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::failed(
                    "tampered-worktree",
                    format!(
                        "{} is a symbolic link where wt shared {}; remove it and share again (`wt-create --share {} {name}`)",
                        on_the_way.display(),
                        rel.display(),
                        rel.display()
                    ),
                ));
            }
        }
        let dir = path.join(&rel);
        if !dir.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            continue; // gone: nothing shared is there to protect
        }
        let layer = store.join("cow").join(rel.to_string_lossy().replace('/', "%"));
        // The directories between the worktree and it are mounted over themselves (writable),
        // so that the run cannot move them, and the shared files with them, from under the
        // overlay: a mount point cannot be renamed.
        pins.extend(dir.ancestors().skip(1).take_while(|a| *a != path).map(Path::to_path_buf));
        let cow = Cow { dir, upper: layer.join("upper"), work: layer.join(format!("work.{run}")) };
        for d in [&cow.upper, &cow.work] {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d.display(), e))?;
        }
        out.push(cow);
    }
    Ok((out, pins))
}

/// Removes an overlay's work dir after its run: the kernel leaves a `work/` in it with no
/// permissions, which its owner must open up first.
fn remove_work(work: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(work).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700));
        }
    }
    let _ = std::fs::remove_dir_all(work);
}

/// What one agent must not read of the others: wt's state dir (the ledger names every
/// worktree's database password; other runs' private stores), the other worktrees when they
/// live in the repository's worktree root (covered whole, this one bound back in: a worktree
/// made later is covered too), and elsewhere the files wt-env wrote that hold a secret (its
/// env file, its brief), each covered by an empty read-only file. pnpm's store, in the state
/// dir, stays readable: installs link from it.
fn hide_secrets(repo: &Repo, ledger: &Ledger, path: &Path, policy: &mut Policy) {
    let state = repo.state_dir();
    let secrets = wt_common::ledger::secret_files::read(&state);
    policy.hide.push(state.clone());
    if let Ok(pnpm) = state.join("pnpm-store").canonicalize() {
        policy.binds.push(Bind { src: pnpm.clone(), dst: pnpm, writable: false });
    }
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let root = canonical(&repo.default_worktree_root());
    let own = canonical(path);
    let covered_root = own.parent() == Some(root.as_path());
    if covered_root {
        policy.hide.push(root.clone());
    }
    let others = ledger.worktrees.values().map(|e| e.path.clone()).chain(repo.main_worktree.clone());
    for other in others.map(|p| canonical(&p)) {
        if other == own || (covered_root && other.starts_with(&root)) {
            continue;
        }
        for rel in &secrets {
            let file = other.join(rel);
            // Only a regular file of wt-env's (an agent's link there points elsewhere).
            if file.symlink_metadata().is_ok_and(|m| m.is_file()) {
                policy.binds.push(Bind { src: PathBuf::from("/dev/null"), dst: file, writable: false });
            }
        }
    }
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

/// The policy of a helper command line made by `wrap`, if it is one.
pub fn policy_of(argv: &[String]) -> Option<Policy> {
    match argv {
        [_, helper, policy, ..] if helper == HELPER => serde_json::from_str(policy).ok(),
        _ => None,
    }
}

/// After a confined command ended: publishes what it committed. `None` when nothing moved.
pub fn publish(policy: &Policy) -> Result<Option<serde_json::Value>, Error> {
    for cow in &policy.cow {
        remove_work(&cow.work);
    }
    let Some((common, name)) = &policy.store else { return Ok(None) };
    let started = std::time::Instant::now();
    Ok(match wt_common::confine::store::publish(common, name)? {
        wt_common::confine::store::Published::Done { moved: Some((branch, from, to)), objects } => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            Some(
                serde_json::json!({"branch": branch, "from": from, "to": to, "objects": objects, "ms": (ms * 10.0).round() / 10.0}),
            )
        }
        _ => None,
    })
}

/// The helper: confines itself, reports, and becomes the command. Never returns.
pub fn helper_main(args: &[String]) -> ! {
    let (Some(policy), Some(sep)) = (args.get(2), args.get(3)) else {
        helper_fail("usage: __confine-exec POLICY -- CMD")
    };
    let Ok(policy) = serde_json::from_str::<Policy>(policy) else { helper_fail("unreadable policy") };
    let argv = &args[4..];
    if sep != "--" || argv.is_empty() {
        helper_fail("usage: __confine-exec POLICY -- CMD");
    }
    if policy.no_tty {
        give_up_terminal();
    }
    close_inherited_on_exec();
    let mut status = std::fs::File::create(&policy.status_file).ok();
    let mut report = Report::default();
    if let Err(e) = confine(&policy, &mut report) {
        report.error = Some(e);
        write_report(&mut status, &report);
        std::process::exit(126);
    }
    write_report(&mut status, &report);
    // The status file is close-on-exec: it stays open only if exec fails, to say why. The
    // command is not told of a tmux server it cannot reach.
    let mut command = std::process::Command::new(&argv[0]);
    command.args(&argv[1..]).env_clear().envs(kept_env(&policy)).env_remove("TMUX").env_remove("TMUX_PANE");
    if init::active() {
        init::run(|| exec(&mut command, argv, &mut status, &mut report));
    }
    std::process::exit(exec(&mut command, argv, &mut status, &mut report))
}

/// Execs the command; returns only when that failed, with the exit code to end with, and
/// says why in the report.
fn exec(
    command: &mut std::process::Command,
    argv: &[String],
    status: &mut Option<std::fs::File>,
    report: &mut Report,
) -> i32 {
    let err = std::os::unix::process::CommandExt::exec(command);
    let (code, kind) = match err.kind() {
        std::io::ErrorKind::NotFound => (127, "not-found"),
        std::io::ErrorKind::PermissionDenied => (126, "not-executable"),
        _ => (126, "spawn-failed"),
    };
    report.exec_error = Some(kind.into());
    report.error = Some(format!("{}: {err}", argv[0]));
    write_report(status, report);
    code
}

/// The three layers, in order. Strict mode refuses (before changing anything) when the kernel
/// lacks a feature; best effort skips what is missing and lists it.
fn confine(policy: &Policy, report: &mut Report) -> Result<(), String> {
    report.landlock_abi = rules::kernel_abi();
    let mut missing: Vec<String> = rules::missing(report.landlock_abi, policy).into_iter().map(String::from).collect();
    if !missing.is_empty() && !policy.best_effort {
        return Err(refusal(&missing));
    }
    let hide = crate::hide::dirs(&policy.hide);
    match namespace::enter(policy, &hide) {
        Ok(shared) => {
            report.hidden = hide;
            report.shared = shared;
        }
        Err(e) if !policy.best_effort => {
            return Err(format!(
                "--confine cannot set up its mount namespace ({e}); use --confine=best-effort to run without it"
            ))
        }
        Err(_) => missing.push("mount-namespace".into()),
    }
    let status = rules::restrict(policy, report.landlock_abi)?;
    if let Err(e) = caps::drop_all() {
        if !policy.best_effort {
            return Err(e);
        }
        missing.push("capability-drop".into());
    }
    report.enforced = match status {
        landlock::RulesetStatus::FullyEnforced if missing.is_empty() => "full",
        landlock::RulesetStatus::NotEnforced if missing.contains(&"mount-namespace".to_string()) => "none",
        _ => "partial",
    }
    .into();
    report.missing = missing;
    Ok(())
}

/// Gives up the controlling terminal, if this process has one: it is a process group leader
/// (`wt-run` starts each run so), not a session leader, so `TIOCNOTTY` only detaches it; the
/// command then has no `/dev/tty`, and `TIOCSTI` (which needs the controlling terminal, or a
/// capability it no longer has) cannot reach the caller's shell.
#[allow(unsafe_code)]
fn give_up_terminal() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open("/dev/tty");
    if let Ok(tty) = tty {
        // SAFETY: TIOCNOTTY takes no argument; the descriptor is open for the whole call.
        unsafe { nix::libc::ioctl(tty.as_raw_fd(), nix::libc::TIOCNOTTY) };
    }
}

/// Marks every descriptor but standard input, output and error close-on-exec: one the caller
/// left open without it (`3>file` in a shell) would reach the command, writable, whatever the
/// sandbox allows. (The status file is close-on-exec already.)
#[allow(unsafe_code)]
fn close_inherited_on_exec() {
    // SAFETY: close_range only changes descriptor flags; no pointer is passed.
    unsafe { nix::libc::close_range(3, u32::MAX, nix::libc::CLOSE_RANGE_CLOEXEC as nix::libc::c_int) };
}

fn refusal(missing: &[String]) -> String {
    format!(
        "this kernel cannot enforce --confine fully (missing: {}); it needs Linux 6.12+ with Landlock enabled (ABI 6), or use --confine=best-effort",
        missing.join(", ")
    )
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
