//! After a claim (or a create while the pool is short), the pool is refilled in the
//! background: `wt-create --pool-refill --base B --root R`, started in a session of its own
//! (`setsid`: the claimer's terminal and process group may go away) at the lowest priority
//! (`nice 19`: the agents' own work comes first). It outlives the claimer, which is its job, and
//! ends once the pool is full; refills take turns (`fill`), so two never race.
//!
//! `WT_FAILPOINT` is not passed on (the claimer's failpoint is the claimer's); a test arms the
//! refill's with `WT_REFILL_FAILPOINT`.

use std::process::{Command, Stdio};

use crate::context::{Base, Context};

/// Starts a refill if the pool of `base` has a target and fewer ready worktrees than it, and
/// one for each other base this run claimed from.
pub fn spawn_if_short(ctx: &Context, base: &Base) {
    spawn_for(ctx, base);
    for other in super::claim::claimed_from() {
        if other != base.name {
            if let Ok(other) = ctx.base(Some(&other)) {
                spawn_for(ctx, &other);
            }
        }
    }
}

fn spawn_for(ctx: &Context, base: &Base) {
    let size = super::target_size(ctx, &base.name);
    if size == 0 {
        return;
    }
    // Only those a claim would take: after the main worktree's lock file or include files
    // change, the pool is replaced, not left unused.
    let fingerprint = super::fingerprint::of(ctx);
    let ready = super::read_all(ctx)
        .iter()
        .filter(|p| {
            p.base == base.name
                && p.state == super::State::Ready
                && p.commit == base.commit
                && p.fingerprint == fingerprint
        })
        .count();
    if ready >= size && !super::claim::claimed_from().contains(&base.name) {
        return;
    }
    if failed_lately(ctx) {
        return;
    }
    if let Err(e) = spawn(ctx, base) {
        eprintln!("wt-create: cannot start the pool's refill: {e} (run `wt-create --pool {size}` to fill it)");
    }
}

/// How long after a fill failed no refill is started by a claim or create (`--pool N` still
/// fills at once): a fill that failed fails again until someone fixes the cause.
const FAILURE_BACKOFF: std::time::Duration = std::time::Duration::from_secs(600);

/// The note a failed fill leaves: `<state>/pool/fill.failed`, the error's one line.
fn failure_file(ctx: &Context) -> std::path::PathBuf {
    super::dir(ctx).join("fill.failed")
}

pub fn note_failure(ctx: &Context, e: &wt_common::Error) {
    let _ = wt_common::fs::write_replace(&failure_file(ctx), format!("{}\n", e.message).as_bytes());
}

pub fn clear_failure(ctx: &Context) {
    let _ = std::fs::remove_file(failure_file(ctx));
}

/// Whether a fill failed less than `FAILURE_BACKOFF` ago.
fn failed_lately(ctx: &Context) -> bool {
    std::fs::symlink_metadata(failure_file(ctx))
        .and_then(|m| m.modified())
        .is_ok_and(|at| at.elapsed().map_or(true, |age| age < FAILURE_BACKOFF))
}

#[allow(unsafe_code)]
fn spawn(ctx: &Context, base: &Base) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let log = super::dir(ctx).join("refill.log");
    std::fs::create_dir_all(super::dir(ctx))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--pool-refill", "--base", &base.name, "--root"]).arg(&ctx.root);
    cmd.current_dir(ctx.repo.root()).stdin(Stdio::null()).stdout(Stdio::null());
    cmd.stderr(open_log(&log).map(Stdio::from).unwrap_or_else(|_| Stdio::null()));
    cmd.env_remove("WT_FAILPOINT");
    if let Some(point) = std::env::var_os("WT_REFILL_FAILPOINT") {
        cmd.env("WT_FAILPOINT", point).env_remove("WT_REFILL_FAILPOINT");
    }
    // The fill lock, taken here and handed down, so that the pool is never seen idle between
    // this claim and the refill (a test, or `--pool`, waits for the lock to know the pool is
    // whole). Held by another fill: the refill waits for it instead.
    let handed = wt_common::proc::lock::FileLock::try_acquire(&super::fill::lock_path(ctx)).ok().flatten();
    let fd = handed.as_ref().map(|l| std::os::fd::AsRawFd::as_raw_fd(l.file()));
    if fd.is_some() {
        cmd.env(INHERITED_FD, HANDED_FD.to_string());
    }
    // SAFETY: between fork and exec only dup2(2), setsid(2) and nice(2) run, all
    // async-signal-safe, on plain integers.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = fd {
                // dup2 clears close-on-exec on the copy: the lock passes to the refill.
                if nix::libc::dup2(fd, HANDED_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            nix::libc::setsid();
            nix::libc::nice(19);
            Ok(())
        });
    }
    // Not waited for: it is the init process's child once this one ends.
    let spawned = cmd.spawn().map(drop);
    if spawned.is_ok() {
        // Unlocking here would unlock the refill's copy too (one open file, one flock): the
        // descriptor closes when this process ends, and the refill holds the lock on.
        std::mem::forget(handed);
    }
    spawned
}

/// The most the refill's log grows to: past it, it is emptied before the next refill writes.
const LOG_MAX: u64 = 256 << 10;

/// The refill's log, opened for appending without following a link or blocking on a FIFO, and
/// only if it is a regular file (anything else there is left alone: the refill then logs
/// nowhere); emptied once over `LOG_MAX`.
fn open_log(log: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file =
        wt_common::fs::untrusted::open_regular(log, std::fs::OpenOptions::new().append(true).create(true).mode(0o644))?;
    if file.metadata()?.len() > LOG_MAX {
        file.set_len(0)?;
    }
    Ok(file)
}

/// The variable that tells a refill which descriptor holds the fill lock for it.
pub const INHERITED_FD: &str = "WT_POOL_FILL_FD";

/// The descriptor the fill lock is handed down on.
const HANDED_FD: i32 = 3;

/// The fill lock handed down by the claimer, if this process is its refill: the descriptor
/// must be open on the fill lock file itself (same device and inode).
#[allow(unsafe_code)]
pub fn inherited_lock(lock_path: &std::path::Path) -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::MetadataExt;
    let fd: i32 = std::env::var(INHERITED_FD).ok()?.parse().ok()?;
    std::env::remove_var(INHERITED_FD);
    let on_disk = std::fs::metadata(lock_path).ok()?;
    let mut stat = std::mem::MaybeUninit::<nix::libc::stat>::uninit();
    // SAFETY: fstat(2) writes the buffer or fails (a descriptor not open: EBADF).
    if unsafe { nix::libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so it filled the buffer.
    let stat = unsafe { stat.assume_init() };
    if stat.st_dev != on_disk.dev() || stat.st_ino != on_disk.ino() {
        return None;
    }
    // SAFETY: the descriptor is open on the fill lock file, which the claimer handed to this
    // process for this use; nothing else here owns it.
    Some(unsafe { std::fs::File::from_raw_fd(fd) })
}
