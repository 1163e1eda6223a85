//! git's lock files are judged by who holds them (issue 24, item 4): a lock nobody has open and
//! no git of this repository older than it could hold is removed, whatever else runs on the
//! machine; one that somebody holds stops wt-merge with `target-locked`, naming the process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wt_tests::{Reaped, TestRepo};

/// A long-lived program called `name`, as the kernel names it (a copy of `sleep`, so its
/// `/proc/PID/comm` is `name`, which `exec -a` would not change).
fn program_named(t: &TestRepo, name: &str, cwd: &Path) -> Reaped {
    let sleep = Command::new("sh").args(["-c", "command -v sleep"]).output().unwrap();
    let sleep = PathBuf::from(String::from_utf8(sleep.stdout).unwrap().trim());
    let copy = t.root().join("bin").join(name);
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    // Copied by `cp`, not by this process: a file this (multi-threaded) test process held open
    // for writing could be inherited by another test's child between its fork and exec, and
    // then exec of the copy fails with ETXTBSY ("Text file busy").
    let cp = Command::new("cp").arg(&sleep).arg(&copy).status().unwrap();
    assert!(cp.success(), "cp {} {}", sleep.display(), copy.display());
    Reaped(Command::new(&copy).arg("60").current_dir(cwd).spawn().unwrap())
}

/// A `git cat-file --batch` (it waits on its stdin) started by `setup` in `cwd`.
fn waiting_git(t: &TestRepo, cwd: &Path, setup: impl FnOnce(&mut Command)) -> Reaped {
    let mut git = Command::new("git");
    t.isolate(&mut git);
    setup(&mut git);
    git.args(["cat-file", "--batch"]).current_dir(cwd).stdin(Stdio::piped()).stdout(Stdio::null());
    Reaped(git.spawn().unwrap())
}

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn has_open(pid: u32, file: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == file)))
        .unwrap_or(false)
}

/// Sets a file's modification time an hour back, as a lock a git killed long ago left.
fn age(file: &Path) {
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)).unwrap();
}

/// The lock was written after every one of them started: judged by age against every process
/// called `git…` on the machine (as before), any of them made it permanent.
#[test]
fn a_stale_lock_is_removed_while_long_lived_gits_and_git_named_daemons_run() {
    let t = TestRepo::new();
    let list = t.worktree_with_a_commit_to_merge();
    // A shell prompt's status daemon, even working in this very repository.
    let _gitstatusd = program_named(&t, "gitstatusd", &t.repo);
    // A git at work in another repository, as other tests' (or agents') gits are.
    let other = TestRepo::new();
    let _elsewhere = waiting_git(&other, &other.repo, |_| {});
    // git's credential cache: a git daemon that never holds a repository's locks.
    let cache = t.root().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut daemon = Command::new("git");
    t.isolate(&mut daemon).arg("credential-cache--daemon").arg(cache.join("socket")).current_dir(&t.repo);
    let _daemon = Reaped(daemon.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_millis(1100));
    let lock = t.repo.join(".git/index.lock");
    std::fs::write(&lock, "").unwrap();

    let run = t.run("wt-merge", &["--verify", "true"], &list);
    run.expect_code(0);
    assert_eq!(run.records()[0]["merge"]["status"], "merged", "{run}");
    assert!(!lock.exists(), "the stale index.lock is gone");
    assert_eq!(t.git(["status", "--porcelain"]), "", "the files followed the ref");
}

#[test]
fn a_lock_somebody_holds_stops_the_merge_naming_the_holder() {
    let t = TestRepo::new();
    let list = t.worktree_with_a_commit_to_merge();
    let lock = t.repo.join(".git/index.lock");
    let main = t.git(["rev-parse", "main"]);
    let refused = |holder: &Reaped, command: &str, what: &str| {
        let run = t.run("wt-merge", &["--verify", "true"], &list);
        run.expect_code(1);
        let error = &run.records()[0]["error"];
        assert_eq!(error["code"], "target-locked", "{what}: {run}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(&format!("pid {} (", holder.0.id())), "{what}: names the pid: {message}");
        assert!(message.contains(command), "{what}: names the command: {message}");
        assert!(lock.exists(), "{what}: the lock is kept");
        assert_eq!(t.git(["rev-parse", "main"]), main, "{what}: nothing moved");
    };

    // Open in a process that is not git and works elsewhere, however old the lock.
    std::fs::write(&lock, "").unwrap();
    age(&lock);
    let mut sh = Command::new("sh");
    sh.args(["-c", "exec 3>>\"$0\"; exec sleep 60"]).arg(&lock).current_dir("/");
    let holder = Reaped(sh.spawn().unwrap());
    wait_until("the holder opens the lock and becomes sleep", || {
        has_open(holder.0.id(), &lock)
            && std::fs::read(format!("/proc/{}/cmdline", holder.0.id())).is_ok_and(|c| c.starts_with(b"sleep"))
    });
    refused(&holder, "sleep 60", "open");
    drop(holder);

    // A git working in this repository since before the lock was written.
    let holder = waiting_git(&t, &t.repo, |_| {});
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&lock, "").unwrap();
    refused(&holder, "git cat-file --batch", "a git in the main worktree");
    drop(holder);

    // One pointed at it from elsewhere (GIT_DIR, --git-dir), and one in a linked worktree.
    let holder = waiting_git(&t, Path::new("/"), |git| {
        git.env("GIT_DIR", t.repo.join(".git"));
    });
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&lock, "").unwrap();
    refused(&holder, "git cat-file --batch", "GIT_DIR");
    drop(holder);
    let holder = waiting_git(&t, Path::new("/"), |git| {
        git.arg(format!("--git-dir={}", t.repo.join(".git").display()));
    });
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&lock, "").unwrap();
    refused(&holder, "cat-file --batch", "--git-dir");
    drop(holder);
    let holder = waiting_git(&t, &t.wt_root().join("v"), |_| {});
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&lock, "").unwrap();
    refused(&holder, "git cat-file --batch", "a git in a linked worktree");
    drop(holder);

    // The holders gone, the lock is stale: removed, and the merge goes through.
    let run = t.run("wt-merge", &["--verify", "true"], &list);
    run.expect_code(0);
    assert_eq!(run.records()[0]["merge"]["status"], "merged", "{run}");
    assert!(!lock.exists());
}

/// The lock judged stale is replaced before it is removed (the git that held it finished, and
/// another made a new one whose maker was not yet among the processes looked at): the new lock
/// is kept, and the merge stops naming it.
#[test]
fn a_lock_replaced_after_it_was_judged_is_kept() {
    let t = TestRepo::new();
    t.worktree_with_a_commit_to_merge();
    let lock = t.repo.join(".git/index.lock");
    std::fs::write(&lock, "").unwrap();
    age(&lock);
    let main = t.git(["rev-parse", "main"]);

    let mut merge = t.cmd("wt-merge");
    merge.args(["v", "--verify", "true"]);
    let stopped = wt_tests::StoppedAt::spawn(&mut merge, "stale-lock-judged");
    std::fs::remove_file(&lock).unwrap();
    let mut sh = Command::new("sh");
    sh.args(["-c", "exec 3>>\"$0\"; exec sleep 60"]).arg(&lock).current_dir("/");
    let holder = Reaped(sh.spawn().unwrap());
    wait_until("the new lock is made and held", || has_open(holder.0.id(), &lock));
    let run = stopped.resume();

    run.expect_code(1);
    let error = &run.records()[0]["error"];
    assert_eq!(error["code"], "target-locked", "{run}");
    assert!(error["message"].as_str().unwrap().contains("replaced while wt looked at it"), "{run}");
    assert!(lock.exists() && has_open(holder.0.id(), &lock), "the new lock is kept");
    assert_eq!(t.git(["rev-parse", "main"]), main, "nothing moved");
}
