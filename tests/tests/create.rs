//! wt-create, end to end: real repositories, real git, the real binary through real pipes.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use wt_tests::{s, Run, TestRepo};

fn names(recs: &[Value]) -> Vec<&str> {
    recs.iter().map(|r| s(r, "name")).collect()
}

#[test]
fn creates_worktrees_that_git_treats_as_its_own() {
    let t = TestRepo::new();
    let run = t.run("wt-create", &["-n", "3"], "");
    run.expect_code(0);
    let recs = run.records();
    assert_eq!(names(&recs), ["agent-1", "agent-2", "agent-3"]);
    let head = t.git(["rev-parse", "HEAD"]);
    for rec in &recs {
        let path = t.wt_root().join(s(rec, "name"));
        assert_eq!(rec["v"], 1);
        assert_eq!(s(rec, "path"), path.to_str().unwrap());
        assert_eq!(s(rec, "repo"), t.repo.to_str().unwrap());
        assert_eq!(s(rec, "branch"), format!("wt/{}", s(rec, "name")));
        assert_eq!((s(rec, "base"), s(rec, "base_commit"), s(rec, "head")), ("main", head.as_str(), head.as_str()));
        assert_eq!(rec["created"], true);
        assert_eq!(t.git_in(&path, ["status", "--porcelain"]), "", "clean checkout");
        assert_eq!(std::fs::read_to_string(path.join("src/lib.rs")).unwrap(), "pub fn f() {}\n");
    }
    let listed = t.git_worktrees();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[2], (t.wt_root().join("agent-2"), Some("wt/agent-2".to_string())));
    // git's own tools work on them as on their own.
    t.git(["worktree", "remove", t.wt_root().join("agent-3").to_str().unwrap()]);
    t.git(["branch", "-d", "wt/agent-3"]);
    assert!(!t.wt_root().join("agent-3").exists());
}

#[test]
fn the_result_is_what_git_worktree_add_makes() {
    let t = TestRepo::new();
    t.run("wt-create", &["ours"], "").expect_code(0);
    let theirs = t.wt_root().join("theirs");
    t.git(["worktree", "add", "-q", "-b", "wt/theirs", theirs.to_str().unwrap(), "main"]);
    let admin = t.repo.join(".git/worktrees");
    for file in ["commondir", "HEAD"] {
        let a = std::fs::read_to_string(admin.join("ours").join(file)).unwrap();
        let b = std::fs::read_to_string(admin.join("theirs").join(file)).unwrap();
        assert_eq!(a.replace("ours", "X"), b.replace("theirs", "X"), "{file}");
    }
    let ours = t.wt_root().join("ours");
    assert_eq!(t.git_in(&ours, ["ls-files", "-s"]), t.git_in(&theirs, ["ls-files", "-s"]), "same index");
    assert_eq!(
        std::fs::read_to_string(ours.join(".git")).unwrap(),
        format!("gitdir: {}\n", admin.join("ours").display())
    );
    let mut a: Vec<_> = std::fs::read_dir(admin.join("ours")).unwrap().map(|e| e.unwrap().file_name()).collect();
    let mut b: Vec<_> = std::fs::read_dir(admin.join("theirs")).unwrap().map(|e| e.unwrap().file_name()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "same admin files");
}

#[test]
fn creating_again_adopts_and_exits_zero() {
    let t = TestRepo::new();
    t.run("wt-create", &["a"], "").expect_code(0);
    let again = t.run("wt-create", &["a", "b"], "");
    again.expect_code(0);
    let recs = again.records();
    assert_eq!((recs[0]["created"].clone(), recs[1]["created"].clone()), (Value::Bool(false), Value::Bool(true)));
    assert_eq!(t.git_worktrees().len(), 3);
}

#[test]
fn adopts_worktrees_made_by_plain_git_by_path_and_by_name() {
    let t = TestRepo::new();
    let elsewhere = t.root().join("elsewhere");
    t.git(["worktree", "add", "-q", "-b", "feature", elsewhere.to_str().unwrap()]);
    let run = t.run("wt-create", &[elsewhere.to_str().unwrap()], "");
    run.expect_code(0);
    let rec = &run.records()[0];
    assert_eq!((s(rec, "name"), s(rec, "branch")), ("elsewhere", "feature"));
    assert_eq!(rec["created"], false);
    // Now managed: listed, and adoptable by name.
    assert_eq!(names(&t.run("wt-create", &["--list"], "").records()), ["elsewhere"]);
    t.git(["worktree", "add", "-q", "-b", "wt/byname", t.wt_root().join("byname").to_str().unwrap()]);
    let rec = &t.run("wt-create", &["byname"], "").expect_code(0).records()[0];
    assert_eq!(rec["created"], false);
    // A removed adoptee keeps its branch: wt-create did not make it.
    t.run("wt-create", &["--remove", "elsewhere"], "").expect_code(0);
    assert!(t.branches().contains(&"feature".to_string()));
}

#[test]
fn ten_processes_at_once_all_succeed() {
    let t = TestRepo::new();
    for i in 0..200 {
        t.write(&format!("d{}/f{i}.txt", i % 10), &"x\n".repeat(i));
    }
    t.commit("more files");
    let spawn = |args: Vec<String>| {
        let mut cmd = t.cmd("wt-create");
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    // Ten distinct names…
    let children: Vec<_> = (0..10).map(|i| spawn(vec![format!("w{i}")])).collect();
    for c in children {
        Run::from_output(c.wait_with_output().unwrap()).expect_code(0);
    }
    // …and ten `-n 1`, which must pick ten distinct free names.
    let children: Vec<_> = (0..10).map(|_| spawn(vec!["-n".into(), "1".into()])).collect();
    let mut got: Vec<String> = children
        .into_iter()
        .map(|c| {
            let run = Run::from_output(c.wait_with_output().unwrap());
            run.expect_code(0);
            s(&run.records()[0], "name").to_string()
        })
        .collect();
    got.sort_by_key(|n| n[6..].parse::<u32>().unwrap());
    assert_eq!(got, (1..=10).map(|i| format!("agent-{i}")).collect::<Vec<_>>());
    assert_eq!(t.git_worktrees().len(), 21);
    for (path, _) in t.git_worktrees().iter().skip(1) {
        assert_eq!(t.git_in(path, ["status", "--porcelain"]), "", "{} clean", path.display());
    }
    assert_eq!(t.run("wt-create", &["--list"], "").records().len(), 20);
}

/// After a kill, the next run must work, and git must hold no trace of the dead attempt.
fn assert_recovers(t: &TestRepo, name: &str) {
    let run = t.run("wt-create", &[name], "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["created"], true, "rolled back and made anew\n{run}");
    let other = t.run("wt-create", &["bystander"], "");
    other.expect_code(0);
    let list = t.git(["worktree", "list", "--porcelain"]);
    assert!(!list.contains("prunable") && !list.contains("locked"), "{list}");
    let admin: Vec<_> = std::fs::read_dir(t.repo.join(".git/worktrees")).unwrap().collect();
    assert_eq!(admin.len(), t.git_worktrees().len() - 1, "no stray admin dirs");
    assert_eq!(t.git_in(&t.wt_root().join(name), ["status", "--porcelain"]), "");
    t.run("wt-create", &["--remove", name, "bystander"], "").expect_code(0);
    assert_eq!(t.git_worktrees().len(), 1);
    assert_eq!(t.branches(), ["main"]);
}

#[test]
fn a_run_killed_at_any_point_leaves_nothing_that_breaks_the_next() {
    // after-ledger: the worktree is finished and kept (crash.rs). ledger-staged: its entry is
    // written beside the ledger while the files are checked out, not yet in place.
    let points =
        ["after-marker", "after-register", "ledger-staged", "after-checkout", "after-include", "before-ledger"];
    for point in points {
        let t = TestRepo::new();
        let mut cmd = t.cmd("wt-create");
        cmd.arg("victim").env("WT_FAILPOINT", point);
        let run = Run::of(&mut cmd, "");
        assert_eq!(run.code, None, "{point}: killed by a signal\n{run}");
        assert_eq!(run.stdout, "", "{point}: no record of a worktree that is rolled back");
        let ledger = std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap_or_default();
        assert!(!ledger.contains("victim"), "{point}: no entry for an unfinished worktree: {ledger}");
        assert_recovers(&t, "victim");
        let temps = wt_tests::names_in(&t.repo.join(".git/wt"), |n| n.contains(".tmp."));
        assert_eq!(temps, Vec::<String>::new(), "{point}: a staged ledger of the killed run is swept");
    }
}

/// The same with checkouts side by side (`-n 2 -j 2`), where entries are written once each
/// worktree is complete rather than staged: killed at any point, no entry of an unfinished
/// worktree, and the next run makes both anew.
#[test]
fn a_parallel_run_killed_at_any_point_leaves_nothing_that_breaks_the_next() {
    let points = ["after-register", "ledger-staged", "after-checkout", "after-include", "before-ledger"];
    for point in points {
        let t = TestRepo::new();
        let mut cmd = t.cmd("wt-create");
        cmd.args(["-n", "2", "-j", "2", "--prefix", "v"]).env("WT_FAILPOINT", point);
        let run = Run::of(&mut cmd, "");
        assert_eq!(run.code, None, "{point}: killed by a signal\n{run}");
        assert_eq!(run.stdout, "", "{point}: no record of a worktree that is rolled back");
        let ledger = std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap_or_default();
        assert!(!ledger.contains("v-"), "{point}: no entry for an unfinished worktree: {ledger}");
        let again = t.run("wt-create", &["-n", "2", "-j", "2", "--prefix", "v"], "");
        again.expect_code(0);
        let made: Vec<(String, bool)> =
            again.records().iter().map(|r| (s(r, "name").to_string(), r["created"] == true)).collect();
        assert_eq!(made, [("v-1".to_string(), true), ("v-2".to_string(), true)], "{point}: made anew\n{again}");
        for rec in again.records() {
            assert_eq!(t.git_in(Path::new(s(&rec, "path")), ["status", "--porcelain"]), "", "{point}: {rec}");
        }
        let list = t.git(["worktree", "list", "--porcelain"]);
        assert!(!list.contains("prunable") && !list.contains("locked"), "{point}: {list}");
        let mut admin = wt_tests::names_in(&t.repo.join(".git/worktrees"), |_| true);
        admin.sort();
        assert_eq!(admin, ["v-1", "v-2"], "{point}: no stray admin dirs");
        let ledger = std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap();
        assert!(ledger.contains("v-1") && ledger.contains("v-2"), "{point}: {ledger}");
        let temps = wt_tests::names_in(&t.repo.join(".git/wt"), |n| n.contains(".tmp."));
        assert_eq!(temps, Vec::<String>::new(), "{point}: no temp file of the killed run is left");
    }
}

#[test]
fn a_process_group_killed_at_random_moments_leaves_nothing_behind() {
    use std::os::unix::process::CommandExt;
    let t = TestRepo::new();
    for i in 0..300 {
        t.write(&format!("big/f{i}"), "data\n");
    }
    t.commit("bulk");
    for (delay_ms, whole_group) in [0u64, 3, 8, 15, 30, 60].into_iter().flat_map(|d| [(d, true), (d, false)]) {
        let mut cmd = t.cmd("wt-create");
        cmd.args(["-n", "2", "-j", "2", "--prefix", "k"]).process_group(0).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // The whole group, git children included, as a terminal's Ctrl-\ or a supervisor
        // would; or wt-create alone, as `kill PID` would (its git children must die with it).
        let target = if whole_group { format!("-{}", child.id()) } else { child.id().to_string() };
        let _ = Command::new("kill").args(["-KILL", "--", &target]).status();
        let _ = child.wait_with_output();
        let run = t.run("wt-create", &["-n", "2", "--prefix", "k"], "");
        run.expect_code(0);
        for rec in run.records() {
            assert_eq!(t.git_in(Path::new(s(&rec, "path")), ["status", "--porcelain"]), "", "{rec}");
        }
        let listed = t.git(["worktree", "list", "--porcelain"]);
        assert!(!listed.contains("prunable"), "delay {delay_ms}: {listed}");
        let removal: Vec<String> =
            t.run("wt-create", &["--list"], "").records().iter().map(|r| s(r, "name").to_string()).collect();
        let mut args = vec!["--remove", "--force"];
        args.extend(removal.iter().map(String::as_str));
        t.run("wt-create", &args, "").expect_code(0);
        assert_eq!(t.git_worktrees().len(), 1, "delay {delay_ms}");
    }
}

#[test]
fn worktreeinclude_copies_matching_ignored_files_only() {
    let t = TestRepo::new();
    t.write(".gitignore", ".env\n*.local\nnode_modules/\nbuild/\n");
    t.write(".worktreeinclude", ".env\n*.local\nnot-ignored.txt\n");
    t.commit("ignore rules");
    t.write(".env", "SECRET=1\n");
    t.write("sub/.env", "NESTED=1\n");
    t.write("app.local", "local\n");
    t.write("build/out.bin", "artifact\n");
    t.write("not-ignored.txt", "untracked but not ignored\n");
    let rec = &t.run("wt-create", &["inc"], "").expect_code(0).records()[0];
    let wt = Path::new(s(rec, "path"));
    assert_eq!(std::fs::read_to_string(wt.join(".env")).unwrap(), "SECRET=1\n");
    assert_eq!(std::fs::read_to_string(wt.join("sub/.env")).unwrap(), "NESTED=1\n");
    assert!(wt.join("app.local").exists());
    assert!(!wt.join("build").exists(), "ignored but not included");
    assert!(!wt.join("not-ignored.txt").exists(), "included but not ignored");
    assert_eq!(t.git_in(wt, ["status", "--porcelain"]), "", "copies are ignored, status stays clean");
}

#[test]
fn an_include_entry_git_does_not_ignore_is_named_with_the_fix() {
    let t = TestRepo::new();
    t.write(".gitignore", ".env\n");
    t.write(".worktreeinclude", ".env\nnotes.txt\n");
    t.commit("include rules");
    t.write(".env", "SECRET=1\n");
    t.write("notes.txt", "untracked, not ignored\n");
    let run = t.run("wt-create", &["a", "b"], "");
    run.expect_code(0);
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains(".worktreeinclude")).collect();
    assert_eq!(warnings.len(), 1, "said once per run, not per worktree: {run}");
    for says in ["not copying notes.txt", "git does not ignore it", "`/notes.txt` to .gitignore", ".git/info/exclude"] {
        assert!(warnings[0].contains(says), "{says:?} in {run}");
    }
    assert!(t.wt_root().join("a/.env").exists() && !t.wt_root().join("a/notes.txt").exists());
    // Following the advice makes it copied, and the warning goes.
    std::fs::write(t.repo.join(".git/info/exclude"), "/notes.txt\n").unwrap();
    let run = t.run("wt-create", &["c"], "");
    assert!(!run.expect_code(0).stderr.contains(".worktreeinclude"), "{run}");
    assert!(t.wt_root().join("c/notes.txt").exists());
}

#[test]
fn adopting_a_worktree_copies_the_include_files_it_lacks_and_keeps_its_own() {
    let t = TestRepo::new();
    t.write(".gitignore", ".env\n*.local\n");
    t.write(".worktreeinclude", ".env\n*.local\n");
    t.commit("include rules");
    t.write("app.local", "main's\n");
    t.run("wt-create", &["a"], "").expect_code(0);
    let a = t.wt_root().join("a");
    std::fs::write(a.join("app.local"), "the agent's\n").unwrap();
    let plain = t.root().join("plain");
    t.git(["worktree", "add", "-q", "-b", "plain", plain.to_str().unwrap()]);
    // The main worktree gains an include file after both were made.
    t.write(".env", "SECRET=1\n");
    t.write("sub/dev.local", "nested\n");
    let run = t.run("wt-create", &["a", plain.to_str().unwrap()], "");
    let recs = run.expect_code(0).records();
    assert_eq!((&recs[0]["created"], &recs[1]["created"]), (&Value::Bool(false), &Value::Bool(false)));
    for wt in [&a, &plain] {
        assert_eq!(std::fs::read_to_string(wt.join(".env")).unwrap(), "SECRET=1\n", "{}", wt.display());
        assert_eq!(std::fs::read_to_string(wt.join("sub/dev.local")).unwrap(), "nested\n");
        assert_eq!(t.git_in(wt, ["status", "--porcelain"]), "");
    }
    assert_eq!(std::fs::read_to_string(a.join("app.local")).unwrap(), "the agent's\n", "its own file stays");
    assert_eq!(std::fs::read_to_string(plain.join("app.local")).unwrap(), "main's\n");
    assert!(run.stderr.contains("a: copied 2 missing .worktreeinclude file(s)"), "{run}");
}

#[test]
fn list_shows_managed_worktrees_and_all_git_shows_every_one() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "2"], "").expect_code(0);
    t.git(["worktree", "add", "-q", "-b", "foreign", t.root().join("foreign").to_str().unwrap()]);
    let managed = t.run("wt-create", &["--list"], "");
    assert_eq!(names(&managed.expect_code(0).records()), ["agent-1", "agent-2"]);
    let all = t.run("wt-create", &["--list", "--all-git"], "");
    assert_eq!(names(&all.expect_code(0).records()), ["repo", "agent-1", "agent-2", "foreign"]);
}

#[test]
fn list_reads_heads_as_git_lists_them_whether_refs_are_loose_packed_or_detached() {
    let t = TestRepo::new();
    t.run("wt-create", &["loose", "packed", "detached"], "").expect_code(0);
    let wt = |n: &str| t.wt_root().join(n);
    for n in ["loose", "packed"] {
        std::fs::write(wt(n).join(format!("{n}.txt")), "x\n").unwrap();
        t.git_in(&wt(n), ["add", "-A"]);
        t.git_in(&wt(n), ["commit", "-q", "-m", n]);
    }
    t.git(["pack-refs", "--all"]);
    std::fs::write(wt("loose").join("more.txt"), "y\n").unwrap();
    t.git_in(&wt("loose"), ["add", "-A"]);
    t.git_in(&wt("loose"), ["commit", "-q", "-m", "after packing"]);
    t.git_in(&wt("detached"), ["checkout", "-q", "--detach"]);
    let recs = t.run("wt-create", &["--list"], "").expect_code(0).records();
    for rec in &recs {
        let name = s(rec, "name");
        assert_eq!(s(rec, "head"), t.git_in(&wt(name), ["rev-parse", "HEAD"]), "{name}: {rec}");
        assert_eq!(s(rec, "branch"), format!("wt/{name}"), "the ledger's branch, even when detached: {rec}");
    }
    assert_eq!(names(&recs), ["detached", "loose", "packed"]);
}

#[test]
fn remove_refuses_dirty_or_unmerged_work_unless_forced() {
    let t = TestRepo::new();
    let recs = t.run("wt-create", &["clean", "dirty", "ahead"], "").expect_code(0).records();
    let path = |i: usize| Path::new(s(&recs[i], "path")).to_path_buf();
    std::fs::write(path(1).join("README"), "changed\n").unwrap();
    std::fs::write(path(2).join("new.txt"), "x\n").unwrap();
    t.git_in(&path(2), ["add", "new.txt"]);
    t.git_in(&path(2), ["commit", "-q", "-m", "work"]);
    let run = t.run("wt-create", &["--remove", "clean", "dirty", "ahead"], "");
    run.expect_code(1);
    let out = run.records();
    assert_eq!(out[0]["removed"], true);
    assert_eq!(out[1]["error"]["code"], "dirty");
    assert_eq!(out[2]["error"]["code"], "unmerged");
    assert!(run.stderr.contains("has 1 uncommitted change (README);"), "names the changed path: {run}");
    assert!(!path(0).exists() && path(1).exists() && path(2).exists());
    assert_eq!(t.branches(), ["main", "wt/ahead", "wt/dirty"]);
    // Records on stdin work as well as names, and --force removes the rest.
    let listed = t.run("wt-create", &["--list"], "").stdout;
    t.run("wt-create", &["--remove", "--force"], &listed).expect_code(0);
    assert_eq!(t.branches(), ["main"]);
    assert_eq!(t.git_worktrees().len(), 1);
    let ledger: Value =
        serde_json::from_str(&std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap()).unwrap();
    assert_eq!(ledger["worktrees"], serde_json::json!({}), "leases dropped");
}

/// A worktree whose HEAD is detached still owns its branch: commits on the branch, or on the
/// detached HEAD itself, are not lost with it (`--remove` deleted `wt/NAME` and its unmerged
/// commit when the agent had run `git checkout --detach`).
#[test]
fn remove_refuses_unmerged_work_behind_a_detached_head() {
    let t = TestRepo::new();
    let recs = t.run("wt-create", &["on-branch", "on-head"], "").expect_code(0).records();
    let path = |i: usize| Path::new(s(&recs[i], "path")).to_path_buf();
    // The work is on the branch, then HEAD is detached at the base.
    std::fs::write(path(0).join("new.txt"), "x\n").unwrap();
    t.git_in(&path(0), ["add", "new.txt"]);
    t.git_in(&path(0), ["commit", "-q", "-m", "work on the branch"]);
    t.git_in(&path(0), ["checkout", "-q", "--detach", "main"]);
    // The work is on the detached HEAD alone.
    t.git_in(&path(1), ["checkout", "-q", "--detach"]);
    std::fs::write(path(1).join("new.txt"), "y\n").unwrap();
    t.git_in(&path(1), ["add", "new.txt"]);
    t.git_in(&path(1), ["commit", "-q", "-m", "work on the detached head"]);
    let run = t.run("wt-create", &["--remove", "on-branch", "on-head"], "");
    run.expect_code(1);
    let out = run.records();
    assert_eq!(out[0]["error"]["code"], "unmerged", "{run}");
    assert_eq!(out[1]["error"]["code"], "unmerged", "{run}");
    assert!(run.stderr.contains("branch wt/on-branch has 1 commit(s)"), "{run}");
    assert!(run.stderr.contains("its detached HEAD has 1 commit(s)"), "{run}");
    assert!(path(0).exists() && path(1).exists());
    assert_eq!(t.branches(), ["main", "wt/on-branch", "wt/on-head"]);
}

#[test]
fn remove_all_removes_every_managed_worktree_and_only_those() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "2"], "").expect_code(0);
    let foreign = t.root().join("foreign");
    t.git(["worktree", "add", "-q", "-b", "foreign", foreign.to_str().unwrap()]);
    let run = t.run("wt-create", &["--remove", "--all"], "");
    assert_eq!(names(&run.expect_code(0).records()), ["agent-1", "agent-2"]);
    assert_eq!(t.git_worktrees().len(), 2, "the worktree wt did not make stays");
    assert_eq!(t.branches(), ["foreign", "main"]);
}

#[test]
fn bad_names_are_refused_before_anything_is_made() {
    let t = TestRepo::new();
    for bad in ["a..b", "", "-x", "bad\u{1}name", ".hidden", "x.lock", "a b"] {
        let run = t.run("wt-create", &["--", "ok-name", bad], "");
        run.expect_code(2);
        assert_eq!(run.stdout, "");
        assert!(run.stderr.starts_with("wt-create: invalid worktree name"), "{run}");
        assert_eq!(run.stderr.lines().count(), 1, "one line: {run}");
    }
    assert!(!t.wt_root().exists(), "nothing made");
    assert_eq!(t.branches(), ["main"]);
}

#[test]
fn a_path_that_is_not_a_worktree_is_an_error_record() {
    let t = TestRepo::new();
    let run = t.run("wt-create", &["../x"], "");
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "not-a-worktree");
    std::fs::create_dir_all(t.wt_root().join("taken")).unwrap();
    std::fs::write(t.wt_root().join("taken/keep.txt"), "mine").unwrap();
    let run = t.run("wt-create", &["taken", "fine"], "");
    run.expect_code(1);
    let recs = run.records();
    assert_eq!(recs[0]["error"]["code"], "path-exists");
    assert_eq!(recs[1]["created"], true, "the others still run");
    assert_eq!(std::fs::read_to_string(t.wt_root().join("taken/keep.txt")).unwrap(), "mine", "untouched");
    assert_eq!(t.branches(), ["main", "wt/fine"]);
}

#[test]
fn unknown_base_no_repository_and_no_commits_are_clear_errors() {
    let t = TestRepo::new();
    let run = t.run("wt-create", &["--base", "no-such-ref", "x"], "");
    run.expect_code(2);
    assert!(run.stderr.contains("base 'no-such-ref' is not a commit"), "{run}");
    assert!(!t.wt_root().exists());

    let outside = tempfile::tempdir().unwrap();
    let mut cmd = t.cmd("wt-create");
    cmd.current_dir(outside.path()).env("GIT_CEILING_DIRECTORIES", outside.path().parent().unwrap()).arg("x");
    let run = Run::of(&mut cmd, "");
    run.expect_code(3);
    assert!(run.stderr.contains("not a git repository"), "{run}");

    let empty = TestRepo::empty();
    let run = empty.run("wt-create", &["x"], "");
    run.expect_code(3);
    assert!(run.stderr.contains("no commits yet"), "{run}");
    assert!(!empty.wt_root().exists());
}

#[test]
fn a_corrupt_ledger_is_refused_and_left_as_it_was() {
    let t = TestRepo::new();
    t.run("wt-create", &["a"], "").expect_code(0);
    let ledger = t.repo.join(".git/wt/ledger.json");
    std::fs::write(&ledger, "{\"v\":1,\"worktrees\":").unwrap();
    let run = t.run("wt-create", &["b"], "");
    run.expect_code(3);
    assert!(run.stderr.contains("cannot be parsed") && run.stderr.contains("mv "), "{run}");
    assert_eq!(std::fs::read_to_string(&ledger).unwrap(), "{\"v\":1,\"worktrees\":");
    assert_eq!(t.git_worktrees().len(), 2, "nothing new made");
}

#[test]
fn bare_repositories_work() {
    let t = TestRepo::new();
    let bare = t.root().join("proj.git");
    t.git(["clone", "-q", "--bare", t.repo.to_str().unwrap(), bare.to_str().unwrap()]);
    let mut cmd = t.cmd("wt-create");
    cmd.current_dir(&bare).args(["-n", "2"]);
    let run = Run::of(&mut cmd, "");
    run.expect_code(0);
    let recs = run.records();
    assert_eq!(s(&recs[0], "path"), t.root().join("proj.wt/agent-1").to_str().unwrap());
    assert_eq!(s(&recs[0], "repo"), bare.to_str().unwrap());
    assert_eq!(t.git_in(Path::new(s(&recs[1], "path")), ["status", "--porcelain"]), "");
    // From inside one of its worktrees, the same repository is found.
    let mut cmd = t.cmd("wt-create");
    cmd.current_dir(s(&recs[0], "path")).args(["--remove", "agent-2"]);
    Run::of(&mut cmd, "").expect_code(0);
    assert!(!t.root().join("proj.wt/agent-2").exists());
}

#[test]
fn stdin_takes_names_paths_and_records_and_reports_malformed_lines() {
    let t = TestRepo::new();
    let input = "one\n{\"v\":1,\"name\":\"two\",\"env\":{\"x\":1}}\n{not json\n\n{\"v\":1,\"name\":\"z\",\"error\":{\"tool\":\"up\",\"code\":\"c\",\"message\":\"m\"}}\nthree\n";
    let run = t.run("wt-create", &[], input);
    run.expect_code(2);
    assert!(run.stderr.contains("line 3"), "names the malformed line: {run}");
    let recs = run.records();
    // The failed record passes through untouched (first: it needs no work); the rest are made.
    assert_eq!(recs[0]["error"]["tool"], "up");
    assert_eq!(names(&recs[1..]), ["one", "two", "three"]);
    assert_eq!(t.git_worktrees().len(), 4);
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let t = TestRepo::new();
    let mut cmd = Command::new("bash");
    // `true` exits without reading, so the pipe is closed before the first record is written.
    let script = format!("'{}' -n 4 | true; echo \"status=${{PIPESTATUS[0]}}\"", wt_tests::bin("wt-create").display());
    cmd.current_dir(&t.repo).args(["-c", &script]);
    t.isolate(&mut cmd);
    let run = Run::of(&mut cmd, "");
    assert!(!run.stderr.contains("panicked"), "{run}");
    assert!(run.stdout.contains("status=0"), "{run}");
    assert_eq!(t.git_worktrees().len(), 5, "the work is still done");
}

#[test]
fn a_terminal_gets_a_table() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "2"], "").expect_code(0);
    // `script` gives the tool a real pseudo-terminal as stdout.
    let mut cmd = Command::new("script");
    let line = format!("'{}' --list", wt_tests::bin("wt-create").display());
    cmd.current_dir(&t.repo).args(["-qec", &line, "/dev/null"]);
    t.isolate(&mut cmd);
    let run = Run::of(&mut cmd, "");
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().map(str::trim_end).collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("BRANCH") && lines[0].contains("PATH"), "{run}");
    assert!(lines[1].starts_with("agent-1  ") && lines[1].contains("wt/agent-1"), "{run}");
    assert!(!run.stdout.contains('{'), "no JSON on a terminal: {run}");
    let json =
        Run::of(Command::new("script").current_dir(&t.repo).args(["-qec", &format!("{line} --json"), "/dev/null"]), "");
    assert!(json.stdout.trim_start().starts_with('{'), "--json forces JSON: {json}");
}

#[test]
fn wt_toml_sets_defaults_and_flags_win() {
    let t = TestRepo::new();
    t.write("wt.toml", "[create]\nroot = \"../trees\"\nprefix = \"bot\"\n");
    t.commit("config");
    let rec = &t.run("wt-create", &["-n", "1"], "").expect_code(0).records()[0];
    assert_eq!(s(rec, "path"), t.root().join("trees/bot-1").to_str().unwrap());
    let rec = &t.run("wt-create", &["-n", "1", "--prefix", "x", "--root", "../other"], "").expect_code(0).records()[0];
    assert_eq!(s(rec, "path"), t.root().join("other/x-1").to_str().unwrap());
    t.write("wt.toml", "[create]\nroott = 1\n");
    let run = t.run("wt-create", &["-n", "1"], "");
    run.expect_code(2);
    assert!(run.stderr.contains("wt.toml") && run.stderr.contains("roott"), "{run}");
}

/// A run killed after it made its branch, and a `packed-refs.lock` a killed git left: the next
/// run clears the lock before it rolls the half-made worktree back (deleting a branch takes
/// that lock), so the branch goes and the name is made anew rather than skipped as taken.
#[test]
fn a_stale_packed_refs_lock_does_not_keep_a_rolled_back_name_taken() {
    let t = TestRepo::new();
    let mut cmd = t.cmd("wt-create");
    cmd.args(["-n", "1", "--prefix", "v"]).env("WT_FAILPOINT", "after-checkout");
    let run = Run::of(&mut cmd, "");
    assert_eq!(run.code, None, "killed by a signal\n{run}");
    assert!(t.branches().contains(&"wt/v-1".to_string()), "{:?}", t.branches());
    let lock = t.repo.join(".git/packed-refs.lock");
    std::fs::write(&lock, "").unwrap();
    // Made an hour ago: older than any git running now.
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&lock).unwrap().set_modified(hour_ago).unwrap();
    let again = t.run("wt-create", &["-n", "1", "--prefix", "v"], "");
    again.expect_code(0);
    assert_eq!(s(&again.records()[0], "name"), "v-1", "made anew, not skipped\n{again}");
    assert!(!lock.exists());
}

/// A worktree made again under a name whose last worktree was red and then merged: wt-status
/// shows the new one as itself (no run, not merged), not as the old one; and wt-merge's
/// verification would not give it the old one's shared directories.
#[test]
fn a_name_made_again_starts_with_nothing_of_the_old_worktree() {
    let t = TestRepo::new();
    t.run("wt-create", &["n"], "").expect_code(0);
    let path = t.wt_root().join("n");
    t.run("wt-run", &["-w", "n", "--", "sh", "-c", "echo 'FAILED tests/test_x.py::test_old - boom'; exit 1"], "");
    std::fs::write(path.join("n.txt"), "n\n").unwrap();
    t.git_in(&path, ["add", "n.txt"]);
    t.git_in(&path, ["commit", "-qm", "n"]);
    t.run("wt-merge", &["--unverified", "-w", "n", "--cleanup"], "").expect_code(0);
    let state = t.repo.join(".git/wt");
    std::fs::create_dir_all(state.join("share")).unwrap();
    std::fs::write(state.join("share/n.json"), "[\"node_modules\"]").unwrap();
    let overview = |t: &TestRepo| t.run("wt-status", &["n"], "").expect_code(0).records()[0]["overview"].clone();
    t.run("wt-create", &["n"], "").expect_code(0);
    let o = overview(&t);
    assert_eq!(o["merge"]["state"], "unmerged", "{o}");
    assert!(o.get("last_run").is_none(), "{o}");
    assert_eq!(o["attention"], serde_json::json!([]), "{o}");
    assert!(!state.join("share/n.json").exists(), "the old share note is gone");
}
