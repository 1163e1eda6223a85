//! The mount namespace a confined command runs in, set up by the helper before Landlock.
//!
//! Landlock can allow or deny writes below a directory, but it cannot make a file inside a
//! writable directory read-only, and it does not cover chmod, chown, utime or xattrs. A mount
//! namespace can: `/` is made read-only (recursively, every mount under it too), and only what
//! the run may change is mounted writable again. A read-only mount refuses every change to a
//! file, metadata included, whatever Landlock says. On top of that:
//!
//! - `/dev/shm`, the private temp dir (and the system temp dir, when it holds nothing of the
//!   repository) get a tmpfs of their own, gone when the last process of the run exits;
//! - `/dev/pts` gets a new devpts instance (and `/dev/ptmx` its multiplexer): the command can
//!   open terminals of its own, but no other terminal of the machine has a name in it;
//! - `binds` put one path at another (the private git store over the shared one), `hide`
//!   covers directories with an empty read-only tmpfs, `read_only` binds files read-only over
//!   themselves inside a writable tree (a worktree's `gitdir`, `commondir`).
//!
//! Without root, the namespace comes with a user namespace that maps the caller's uid and gid
//! to themselves, which gives the capabilities the mounts need inside it and nowhere else.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::Policy;

// The new mount API (Linux 5.2+, `mount_setattr` 5.12+), which libc does not name on every
// target: the syscall numbers are the same on every architecture since 5.1.
const SYS_OPEN_TREE: libc::c_long = 428;
const SYS_MOVE_MOUNT: libc::c_long = 429;
const SYS_MOUNT_SETATTR: libc::c_long = 442;
const SYS_FSOPEN: libc::c_long = 430;
const SYS_FSCONFIG: libc::c_long = 431;
const SYS_FSMOUNT: libc::c_long = 432;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const MOUNT_ATTR_RDONLY: u64 = 1;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A failed step: what was being done, and the error.
pub type Failure = String;

fn cstr(path: &Path) -> Result<CString, Failure> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| format!("{} has a NUL byte", path.display()))
}

fn last_error(what: &str, path: &Path) -> Failure {
    format!("{what} {}: {}", path.display(), std::io::Error::last_os_error())
}

/// Enters a new mount namespace (with a user namespace when not root) and lays out the
/// sandbox's file system. The process must be single-threaded (the helper is).
///
/// Returns each shared directory and how the run sees it (`copy-on-write` or `read-only`).
pub fn enter(policy: &Policy, hide: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, Failure> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))?;
    unshare()?;
    // From here on this is the namespace's init; the process wt-run knows waits for it.
    super::init::split()?;
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    // Detached copies of what stays writable, taken before `/` turns read-only: they keep
    // their own (writable) flags when they are attached again.
    let mut writable = Vec::new();
    for path in self_binds(policy) {
        writable.push((clone_tree(&path)?, path));
    }
    let mut binds = Vec::new();
    // Kept files (a pane's own socket) are binds of themselves into their hidden directory.
    let kept =
        policy.keep.iter().filter_map(|p| p.canonicalize().ok()).filter(|p| hide.iter().any(|d| p.starts_with(d)));
    let kept: Vec<super::Bind> = kept.map(|p| super::Bind { src: p.clone(), dst: p, writable: true }).collect();
    for bind in policy.binds.iter().chain(&kept) {
        let tree = clone_tree(&bind.src)?;
        if !bind.writable {
            set_read_only(&tree, &bind.src)?;
        }
        binds.push((tree, bind.dst.clone()));
    }
    // Shared directories: an overlay each, made now while its layers are reachable (the state
    // dir that holds them is covered below); read-only where the kernel cannot make one.
    let mut shared = Vec::new();
    let mut layers = Vec::new();
    for cow in &policy.cow {
        let (tree, how) = match overlay(cow) {
            Ok(tree) => (tree, "copy-on-write"),
            Err(_) => {
                let tree = clone_tree(&cow.dir)?;
                set_read_only(&tree, &cow.dir)?;
                (tree, "read-only")
            }
        };
        shared.push((cow.dir.clone(), how.to_string()));
        layers.push((tree, cow.dir.clone()));
    }
    set_read_only_at(Path::new("/"), true)?;
    private_devices()?;
    own_proc();
    // The rest, outermost path first: a cover (`hide`) then hides what was mounted above it,
    // and what is mounted inside it (the run's own worktree under a covered worktree root, its
    // temp dir under the covered state dir) is made there and stays reachable.
    let mut layout: Vec<(&Path, Step)> = Vec::new();
    for dir in policy.private_tmp.iter().chain(&policy.system_tmp) {
        layout.push((dir, Step::Tmpfs("mode=0700")));
    }
    for (tree, path) in &writable {
        layout.push((path, Step::Attach(tree)));
    }
    for dir in hide {
        layout.push((dir, Step::Tmpfs(crate::hide::COVER)));
    }
    for (tree, dst) in binds.iter().chain(&layers) {
        layout.push((dst, Step::Attach(tree)));
    }
    layout.sort_by_key(|(path, _)| path.components().count());
    for (path, step) in layout {
        match step {
            Step::Tmpfs(options) => {
                // Inside a cover or a private temp dir it may be missing now: made there.
                let _ = std::fs::create_dir_all(path);
                tmpfs(path, options)?;
            }
            Step::Attach(tree) => {
                make_mountpoint(path, tree)?;
                attach(tree, path)?;
            }
        }
    }
    // Only the tmpfs itself: a writable bind inside it stays writable.
    for dir in hide {
        set_read_only_at(dir, false)?;
    }
    for path in &policy.read_only {
        let tree = clone_tree(path)?;
        set_read_only(&tree, path)?;
        attach(&tree, path)?;
    }
    // The working directory still names the directory as it was before the mounts.
    std::env::set_current_dir(&cwd).map_err(|e| format!("cannot enter {}: {e}", cwd.display()))?;
    Ok(shared)
}

/// A detached overlay mount of `cow.dir` (below) and `cow.upper` (what runs change), through
/// the new mount API: `fsopen`, `fsconfig`, `fsmount`. In a user namespace the overlay keeps
/// its metadata in `user.` xattrs (`userxattr`). `lowerdir+` takes the path whole (Linux
/// 6.8+); older kernels parse `lowerdir`, where `:` and `,` separate layers, so such a path is
/// refused there.
#[allow(unsafe_code)]
fn overlay(cow: &super::Cow) -> Result<OwnedFd, Failure> {
    let name = CString::new("overlay").expect("no NUL");
    // SAFETY: a NUL-terminated name and integer flags; the result is a new fd or -1.
    let fs = unsafe { libc::syscall(SYS_FSOPEN, name.as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(last_error("cannot open an overlay for", &cow.dir));
    }
    // SAFETY: the kernel just returned this fd, and nothing else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    let set = |key: &str, value: Option<&Path>| -> Result<(), Failure> {
        let key_c = CString::new(key).expect("no NUL");
        let value_c = value.map(cstr).transpose()?;
        let (cmd, ptr) = match &value_c {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: a valid fs context fd and NUL-terminated strings (or null for a flag).
        let rc = unsafe { libc::syscall(SYS_FSCONFIG, fs.as_raw_fd(), cmd, key_c.as_ptr(), ptr, 0) };
        if rc != 0 {
            return Err(last_error(&format!("overlay {key}"), &cow.dir));
        }
        Ok(())
    };
    if set("lowerdir+", Some(&cow.dir)).is_err() {
        let text = cow.dir.to_string_lossy();
        if text.contains([':', ',']) {
            return Err(format!("{} has ':' or ',' in its path", cow.dir.display()));
        }
        set("lowerdir", Some(&cow.dir))?;
    }
    set("upperdir", Some(&cow.upper))?;
    set("workdir", Some(&cow.work))?;
    if !nix::unistd::geteuid().is_root() {
        set("userxattr", None)?;
    }
    // SAFETY: a valid fs context fd; no pointers.
    if unsafe {
        libc::syscall(
            SYS_FSCONFIG,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
            0,
        )
    } != 0
    {
        return Err(last_error("cannot make the overlay of", &cow.dir));
    }
    // SAFETY: a valid fs context fd and integer flags; the result is a new mount fd or -1.
    let tree = unsafe { libc::syscall(SYS_FSMOUNT, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    if tree < 0 {
        return Err(last_error("cannot mount the overlay of", &cow.dir));
    }
    // SAFETY: the kernel just returned this fd, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(tree as i32) })
}

/// One mount of the layout.
enum Step<'a> {
    Tmpfs(&'static str),
    Attach(&'a OwnedFd),
}

/// `unshare(CLONE_NEWNS | CLONE_NEWPID)`, with `CLONE_NEWUSER` and an identity map when not root.
#[allow(unsafe_code)]
fn unshare() -> Result<(), Failure> {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | if uid.is_root() { 0 } else { libc::CLONE_NEWUSER };
    // SAFETY: unshare(2) takes flags only; the helper is single-threaded, as CLONE_NEWUSER needs.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(format!("cannot make a mount namespace: {}", std::io::Error::last_os_error()));
    }
    if !uid.is_root() {
        let write = |file: &str, text: String| {
            std::fs::write(file, text).map_err(|e| format!("cannot write {file} for the user namespace: {e}"))
        };
        write("/proc/self/setgroups", "deny".into())?;
        write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
        write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    }
    Ok(())
}

#[allow(unsafe_code)]
fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), Failure> {
    let c = |s: Option<&str>| s.map(|s| CString::new(s).expect("no NUL in a literal"));
    let (source, fstype, data) = (c(source), c(fstype), c(data));
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    let target_c = cstr(target)?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call, or null.
    let rc =
        unsafe { libc::mount(ptr(&source), target_c.as_ptr(), ptr(&fstype), flags, ptr(&data).cast::<libc::c_void>()) };
    if rc != 0 {
        return Err(last_error("cannot mount", target));
    }
    Ok(())
}

fn tmpfs(dir: &Path, options: &str) -> Result<(), Failure> {
    mount(Some("tmpfs"), dir, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some(options))
}

/// A `/proc` of the run's pid namespace, so that `ps` and `/proc` show the run's processes
/// only. Where the kernel refuses (a user namespace under a `/proc` with covered parts, as in
/// some containers), the machine's stays: Landlock already keeps the command from reading
/// other processes' memory or environment, and the namespace still ends every process.
fn own_proc() {
    let _ = mount(
        Some("proc"),
        Path::new("/proc"),
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
        None,
    );
}

/// A private `/dev/shm`, and a new devpts instance at `/dev/pts` whose `ptmx` serves `/dev/ptmx`.
fn private_devices() -> Result<(), Failure> {
    tmpfs(Path::new("/dev/shm"), "mode=1777")?;
    let pts = Path::new("/dev/pts");
    mount(
        Some("devpts"),
        pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let ptmx = clone_tree(&pts.join("ptmx"))?;
    attach(&ptmx, Path::new("/dev/ptmx"))
}

/// A detached copy of the mount tree at `path` (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`).
#[allow(unsafe_code)]
fn clone_tree(path: &Path) -> Result<OwnedFd, Failure> {
    let c = cstr(path)?;
    let flags = OPEN_TREE_CLONE | libc::AT_RECURSIVE as libc::c_uint | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: a NUL-terminated path and integer flags; the result is a new fd or -1.
    let fd = unsafe { libc::syscall(SYS_OPEN_TREE, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(last_error("cannot take a copy of the mount at", path));
    }
    // SAFETY: the kernel just returned this fd, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches a detached tree at `path`.
#[allow(unsafe_code)]
fn attach(tree: &OwnedFd, path: &Path) -> Result<(), Failure> {
    let c = cstr(path)?;
    let empty = CString::default();
    // SAFETY: valid fd and NUL-terminated strings; move_mount(2) reads them only.
    let rc = unsafe {
        libc::syscall(
            SYS_MOVE_MOUNT,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(last_error("cannot mount at", path));
    }
    Ok(())
}

/// Makes the mount at `path` read-only (`recursive`: and every mount below it).
fn set_read_only_at(path: &Path, recursive: bool) -> Result<(), Failure> {
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    mount_setattr(libc::AT_FDCWD, &cstr(path)?, flags).map_err(|_| last_error("cannot make read-only", path))
}

/// Makes every mount of a detached tree read-only.
fn set_read_only(tree: &OwnedFd, what: &Path) -> Result<(), Failure> {
    mount_setattr(tree.as_raw_fd(), &CString::default(), libc::AT_EMPTY_PATH | libc::AT_RECURSIVE)
        .map_err(|_| last_error("cannot make read-only", what))
}

#[allow(unsafe_code)]
fn mount_setattr(dirfd: libc::c_int, path: &CString, flags: libc::c_int) -> Result<(), ()> {
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: valid fd/path, and a mount_attr whose size is passed with it.
    let rc = unsafe {
        libc::syscall(
            SYS_MOUNT_SETATTR,
            dirfd,
            path.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(())
    }
}

/// A bind target must exist and be of the source's kind. Only a writable parent (a `hide`
/// tmpfs) can get a new one; elsewhere it must be there already.
fn make_mountpoint(dst: &Path, tree: &OwnedFd) -> Result<(), Failure> {
    if dst.symlink_metadata().is_ok() {
        return Ok(());
    }
    let is_dir = nix::sys::stat::fstat(tree).map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR).unwrap_or(true);
    let made = match is_dir {
        true => std::fs::create_dir_all(dst),
        false => {
            dst.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|_| std::fs::File::create(dst).map(drop))
        }
    };
    made.map_err(|e| format!("cannot make the mount point {}: {e}", dst.display()))
}

/// Paths that must stay writable by a self-bind: the policy's write list without what gets
/// its own mount (binds, private temp dirs) and without devices (their mounts are set up above).
pub fn self_binds(policy: &Policy) -> Vec<PathBuf> {
    let own = |p: &PathBuf| {
        policy.binds.iter().any(|b| &b.dst == p)
            || policy.private_tmp.as_ref() == Some(p)
            || policy.system_tmp.as_ref() == Some(p)
            || p.starts_with("/dev")
    };
    let mut out: Vec<PathBuf> = policy.write.iter().filter(|p| !own(p)).cloned().collect();
    out.sort_by_key(|p| p.components().count());
    out
}
