//! wt-status at scale (issue 29, item 5): a worktree git found clean, and nothing git would look
//! at changed since, is shown clean without a `git status`; every change git would see is seen.
//! Real git, real worktrees; a `git` on PATH that logs its calls counts them.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use wt_tests::{Run, TestRepo};

/// A repository with worktrees `a`, `b`, `c`, and a `git` that logs each call before running
/// the real one.
struct Board {
    t: TestRepo,
    log: PathBuf,
    shim: PathBuf,
}

impl Board {
    fn new() -> Board {
        let t = TestRepo::new();
        t.write(".gitignore", "ignored/\n");
        t.commit("ignore");
        t.run("wt-create", &["a", "b", "c"], "").expect_code(0);
        let real = Command::new("sh").args(["-c", "command -v git"]).output().unwrap();
        let real = String::from_utf8(real.stdout).unwrap().trim().to_string();
        let shim = t.root().join("shim");
        std::fs::create_dir(&shim).unwrap();
        let log = t.root().join("git-calls");
        let script = format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec '{real}' \"$@\"\n", log.display());
        std::fs::write(shim.join("git"), script).unwrap();
        std::fs::set_permissions(shim.join("git"), std::fs::Permissions::from_mode(0o755)).unwrap();
        Board { t, log, shim }
    }

    fn wt(&self, name: &str) -> PathBuf {
        self.t.wt_root().join(name)
    }

    /// `wt-status --all`: each worktree's `status`, and the `git status` calls it made.
    fn look(&self) -> (Vec<(String, Value)>, usize) {
        let (recs, statuses, _) = self.look_counted();
        (recs, statuses)
    }

    /// `look`, and the `git ls-files` listings it made as well.
    fn look_counted(&self) -> (Vec<(String, Value)>, usize, usize) {
        let _ = std::fs::remove_file(&self.log);
        let mut cmd = self.t.cmd("wt-status");
        let path = format!("{}:{}", self.shim.display(), std::env::var("PATH").unwrap());
        cmd.env("PATH", path).args(["--all", "--json"]);
        let run = Run::of(&mut cmd, "");
        let recs = run.expect_code(0).records();
        let calls = std::fs::read_to_string(&self.log).unwrap_or_default();
        let statuses = calls.lines().filter(|l| l.contains(" status ")).count();
        let listings = calls.lines().filter(|l| l.contains(" ls-files ")).count();
        let recs = recs.iter().map(|r| (r["name"].as_str().unwrap().to_string(), r["status"].clone())).collect();
        (recs, statuses, listings)
    }

    fn state(&self, name: &str) -> String {
        let (recs, _) = self.look();
        let status = &recs.iter().find(|(n, _)| n == name).unwrap().1;
        status["state"].as_str().unwrap().to_string()
    }

    /// Looks until every worktree is noted clean: a file changed within 2 s of a look is not
    /// trusted, so the worktrees just made are noted once they have been still that long, and
    /// found clean by two looks in a row (the first notes that it was, the second lists it, and
    /// that listing is its only git: it stands in for `git status`).
    fn settle(&self) {
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let (recs, _) = self.look();
        assert!(recs.iter().all(|(_, s)| s["state"] == "clean"), "{recs:?}");
        let (listed, statuses, listings) = self.look_counted();
        assert_eq!(listed, recs, "the same answer");
        assert_eq!((statuses, listings), (0, 3), "clean once: listed (and so checked) by git ls-files alone");
        let (again, statuses, listings) = self.look_counted();
        assert_eq!(again, recs, "the same answer");
        assert_eq!((statuses, listings), (0, 0), "nothing changed: no git at all");
    }

    /// Waits until the worktree's files are old enough, then looks twice: it is noted.
    fn note(&self, name: &str) {
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(self.state(name), "clean");
        assert_eq!(self.state(name), "clean");
        let _ = self.look();
        let calls = std::fs::read_to_string(&self.log).unwrap_or_default();
        let asked = format!("{} ", self.wt(name).display());
        assert!(!calls.lines().any(|l| l.contains(" status ") && l.contains(&asked)), "{name} is proved: {calls}");
    }
}

#[test]
fn unchanged_clean_worktrees_are_not_asked_again_and_every_change_is_seen() {
    let b = Board::new();
    let (first, statuses) = b.look();
    assert_eq!(first.len(), 3);
    assert_eq!(statuses, 3, "a git status each at the first look");
    b.settle();

    // An edit that keeps the size: its times changed.
    let readme = b.wt("a").join("README");
    std::fs::write(&readme, "hellO\n").unwrap();
    let (recs, statuses) = b.look();
    assert_eq!(recs[0].1["state"], "dirty", "{recs:?}");
    assert_eq!(recs[0].1["changed"], 1);
    assert_eq!(statuses, 1, "only the changed worktree is asked");
    // A new file in the root, in a subdirectory, in an empty directory git does not ignore.
    std::fs::create_dir(b.wt("b").join("empty")).unwrap();
    std::fs::create_dir_all(b.wt("c").join("ignored/deep")).unwrap();
    std::fs::write(&readme, "hello\n").unwrap();
    b.note("b");
    std::fs::write(b.wt("b").join("empty/new.txt"), "x").unwrap();
    assert_eq!(b.state("b"), "dirty", "a file in an empty directory");
    std::fs::remove_file(b.wt("b").join("empty/new.txt")).unwrap();
    b.note("b");
    std::fs::write(b.wt("b").join("src/new.rs"), "x").unwrap();
    assert_eq!(b.state("b"), "dirty", "a file in a tracked directory");
    // A file in an ignored directory changes nothing git shows.
    std::fs::write(b.wt("c").join("ignored/deep/build.log"), "x").unwrap();
    assert_eq!(b.state("c"), "clean");
}

#[test]
fn a_commit_moved_under_an_unchanged_index_and_changed_ignore_rules_are_seen() {
    let b = Board::new();
    let a = b.wt("a");
    std::fs::write(a.join("notes.txt"), "n\n").unwrap();
    b.t.git_in(&a, ["add", "notes.txt"]);
    b.t.git_in(&a, ["commit", "-q", "-m", "notes"]);
    // A file only the repository's own exclude file hides.
    std::fs::write(b.wt("c").join("scratch.txt"), "s\n").unwrap();
    std::fs::write(b.t.repo.join(".git/info/exclude"), "scratch.txt\n").unwrap();
    // And one only the excludes file the config names hides, from a file the config includes.
    std::fs::write(b.wt("b").join("draft.txt"), "d\n").unwrap();
    let excludes = b.t.root().join("my-excludes");
    std::fs::write(&excludes, "draft.txt\n").unwrap();
    let included = b.t.root().join("included.gitconfig");
    std::fs::write(&included, format!("[core]\n\texcludesFile = {}\n", excludes.display())).unwrap();
    b.t.git(["config", "include.path", included.to_str().unwrap()]);
    b.settle();
    // `git reset --soft` moves the branch and leaves the index: the commit's change is staged.
    b.t.git_in(&a, ["reset", "-q", "--soft", "HEAD~1"]);
    assert_eq!(b.state("a"), "dirty");
    // The exclude file no longer hides it: an untracked file.
    std::fs::write(b.t.repo.join(".git/info/exclude"), "# nothing\n").unwrap();
    assert_eq!(b.state("c"), "dirty");
    assert_eq!(b.state("b"), "clean");
    std::fs::write(&excludes, "# nothing\n").unwrap();
    assert_eq!(b.state("b"), "dirty", "the excludes file changed");
    std::fs::write(&excludes, "draft.txt\n").unwrap();
    std::fs::write(b.t.repo.join(".git/info/exclude"), "scratch.txt\n").unwrap();
    b.note("b");
    std::fs::write(&included, "[core]\n\tbare = false\n").unwrap();
    assert_eq!(b.state("b"), "dirty", "the included config no longer names the excludes file");
}

#[test]
fn a_damaged_note_proves_nothing() {
    let b = Board::new();
    b.settle();
    let note = b.t.repo.join(".git/wt/status/a");
    let real = std::fs::read(&note).unwrap();
    std::fs::write(b.wt("a").join("README"), "changed\n").unwrap();
    // A note of a path outside the worktree, of no path, or not a note at all. (The state
    // directory is out of a confined agent's reach; these are what a damaged one could hold.)
    // Each sealed as wt seals a note (an FNV-1a hash of the rest, last): so what rejects it is
    // the reading of the note, not its seal.
    let sealed = |content: Vec<u8>| {
        let sum =
            content.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
        [content, format!("sum {sum:016x}\0").into_bytes()].concat()
    };
    assert_eq!(sealed(real[..real.len() - 21].to_vec()), real, "the seal is made as wt makes it");
    let header = &real[..real.iter().position(|c| *c == 0).unwrap()];
    let stat_of_root = {
        let rest = &real[header.len() + 1..];
        let first = &rest[..rest.iter().position(|c| *c == 0).unwrap()];
        String::from_utf8_lossy(first).split(' ').next().unwrap().to_string()
    };
    for forged in [
        [header, b"\0"].concat(),
        // Cut short after its first path (the root, unchanged): a write killed half way.
        [header, b"\0", stat_of_root.as_bytes(), b" .\0"].concat(),
        // Whole, but its one path leads out of the worktree (here back into it: `../a` is the
        // worktree's own directory, whose stat data it holds): only the path's check rejects it.
        [header, b"\0", stat_of_root.as_bytes(), b" ../a\0end 1\0"].concat(),
        b"garbage".to_vec(),
    ] {
        std::fs::write(&note, sealed(forged.clone())).unwrap();
        assert_eq!(b.state("a"), "dirty", "{}", String::from_utf8_lossy(&forged));
    }
}

/// The person's ignore file linked from where git looks (a dotfile manager's way): a change to
/// the file it links to is seen. A conditional include (which may hold for a worktree and not
/// for the main one) leaves nothing proved: every worktree is asked each look.
#[test]
fn a_linked_excludes_file_and_a_conditional_include_are_seen() {
    let b = Board::new();
    std::fs::write(b.wt("b").join("draft.txt"), "d\n").unwrap();
    let real = b.t.root().join("dotfiles-excludes");
    std::fs::write(&real, "draft.txt\n").unwrap();
    let link = b.t.root().join("excludes-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    b.t.git(["config", "core.excludesFile", link.to_str().unwrap()]);
    b.note("b");
    std::fs::write(&real, "# nothing\n").unwrap();
    assert_eq!(b.state("b"), "dirty", "the linked excludes file changed");
    std::fs::write(&real, "draft.txt\n").unwrap();
    b.t.git(["config", "includeIf.onbranch:wt/**.path", b.t.root().join("absent.inc").to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    for _ in 0..3 {
        let (recs, statuses) = b.look();
        assert!(recs.iter().all(|(_, s)| s["state"] == "clean"), "{recs:?}");
        assert_eq!(statuses, 3, "nothing is proved under a conditional include");
    }
}

/// The look after one that found a worktree clean asks `git ls-files` alone, not `git status`:
/// every change since that look is still seen, and a worktree no note can prove is asked by
/// `git status` alone from then on, not listed again at every other look.
#[test]
fn the_look_that_lists_a_worktree_sees_every_change_since_the_look_before() {
    let b = Board::new();
    // In `c`, an untracked directory holding only an ignored one with a file: clean to git,
    // never provable by a note (what is in it is not listed).
    std::fs::create_dir_all(b.wt("c").join("stuff/ignored")).unwrap();
    std::fs::write(b.wt("c").join("stuff/ignored/out.log"), "x").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (recs, statuses) = b.look();
    assert!(recs.iter().all(|(_, s)| s["state"] == "clean"), "{recs:?}");
    assert_eq!(statuses, 3);
    // Between that look and the next: an edit that keeps the size, and an untracked file.
    std::fs::write(b.wt("a").join("README"), "hellO\n").unwrap();
    std::fs::write(b.wt("b").join("src/new.rs"), "x").unwrap();
    let (recs, statuses, listings) = b.look_counted();
    let state = |n: &str| recs.iter().find(|(name, _)| name == n).unwrap().1.clone();
    assert_eq!(state("a")["state"], "dirty", "{recs:?}");
    assert_eq!(state("a")["changed"], 1);
    assert_eq!(state("b")["state"], "dirty", "{recs:?}");
    assert_eq!(state("c")["state"], "clean", "{recs:?}");
    assert_eq!(listings, 3, "each listed once");
    assert_eq!(statuses, 3, "the changed ones and the unprovable one asked git status");
    // A tracked file deleted between the looks.
    std::fs::write(b.wt("a").join("README"), "hello\n").unwrap();
    std::fs::remove_file(b.wt("b").join("src/new.rs")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(b.state("b"), "clean");
    std::fs::remove_file(b.wt("b").join("README")).unwrap();
    assert_eq!(b.state("b"), "dirty", "a tracked file gone since the look before");
    // The unprovable worktree: a git status each look, never listed again while its index,
    // HEAD and config stay as they are.
    for _ in 0..3 {
        let log = {
            let (recs, _) = b.look();
            assert_eq!(recs.iter().find(|(n, _)| n == "c").unwrap().1["state"], "clean");
            std::fs::read_to_string(&b.log).unwrap_or_default()
        };
        let asked = format!("{} ", b.wt("c").display());
        let of_c: Vec<&str> = log.lines().filter(|l| l.contains(&asked)).collect();
        assert_eq!(of_c.iter().filter(|l| l.contains(" status ")).count(), 1, "{log}");
        assert_eq!(of_c.iter().filter(|l| l.contains(" ls-files ")).count(), 0, "{log}");
    }
}

/// Listing a worktree and noting its paths costs about one and a half `git status`: a look lists
/// at most a quarter of its worktrees (at least 16), so that no look costs much more than the
/// `git status` loop; the looks after it list the rest, each worktree once.
#[test]
fn a_look_lists_at_most_its_share_of_the_worktrees_and_the_next_looks_list_the_rest() {
    let b = Board::new();
    b.t.run("wt-create", &["-n", "17", "--prefix", "s"], "").expect_code(0);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let mut counts = Vec::new();
    for _ in 0..4 {
        let (recs, statuses, listings) = b.look_counted();
        assert_eq!(recs.len(), 20);
        assert!(recs.iter().all(|(_, s)| s["state"] == "clean"), "{recs:?}");
        counts.push((statuses, listings));
    }
    assert_eq!(counts, [(20, 0), (4, 16), (0, 4), (0, 0)], "(git status, git ls-files) of each look");
}

/// A look stopped for seconds (Ctrl-Z, a debugger) between reading a worktree's header and its
/// `git status` notes nothing that changed meanwhile: here `HEAD`'s branch moved and moved back
/// while it was stopped, and moving it again later must not find the worktree proved clean.
#[test]
fn a_look_stopped_after_reading_a_header_notes_nothing_that_changed_meanwhile() {
    let b = Board::new();
    b.settle();
    let git = |args: &[&str]| {
        let out = Command::new("git").current_dir(b.wt("a")).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (now, before) = (git(&["rev-parse", "HEAD"]), git(&["rev-parse", "HEAD~1"]));
    // Staged changes since the commit it is now at (not looked at: its note stays).
    git(&["reset", "-q", "--soft", &before]);
    assert!(!git(&["status", "--porcelain"]).is_empty());
    // Stopped right after reading a's header (the branch at `before`).
    let mut look = b.t.cmd("wt-status");
    look.args(["a", "--json"]).env("WT_FAILPOINT", "clean-proof-header-read:stop");
    look.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = look.spawn().unwrap();
    // Killed if the test fails while it is stopped (a stopped look would stay for good).
    struct KillOnDrop(Option<i32>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    let mut guard = KillOnDrop(Some(child.id() as i32));
    let stat = format!("/proc/{}/stat", child.id());
    let stopped =
        || std::fs::read_to_string(&stat).is_ok_and(|s| s.rsplit(')').next().unwrap().trim_start().starts_with('T'));
    let waited = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        stopped()
    });
    assert!(waited, "the look stops at the failpoint");
    git(&["reset", "-q", "--soft", &now]);
    std::thread::sleep(std::time::Duration::from_millis(2600));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGCONT).unwrap();
    let out = child.wait_with_output().unwrap();
    guard.0 = None; // reaped: its pid may be another's now
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""state":"clean""#), "clean when git looked");
    // Moved back: staged changes again, with the header that look read.
    git(&["reset", "-q", "--soft", &before]);
    std::thread::sleep(std::time::Duration::from_millis(2300));
    for _ in 0..3 {
        assert_eq!(b.state("a"), "dirty");
    }
}
