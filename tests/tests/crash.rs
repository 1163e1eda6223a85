//! Nothing lost, nothing left behind: each case kills a tool at an exact point (failpoints) or
//! builds the state a kill leaves, then asserts that the next run succeeds and leaves git, the
//! ledger and the databases consistent.

use std::path::Path;

use serde_json::Value;
use wt_tests::{s, Run, StoppedAt, TestRepo};

fn ledger(t: &TestRepo) -> Value {
    let text = std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap_or_else(|_| "{}".into());
    serde_json::from_str(&text).unwrap()
}

/// git lists no prunable worktree, and every admin dir belongs to a listed worktree.
fn assert_git_consistent(t: &TestRepo) {
    let list = t.git(["worktree", "list", "--porcelain"]);
    assert!(!list.contains("prunable"), "{list}");
    let admins = std::fs::read_dir(t.repo.join(".git/worktrees")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(admins, t.git_worktrees().len() - 1, "no stray admin dirs\n{list}");
    t.git(["fsck", "--no-progress"]);
}

#[test]
fn a_worktree_finished_before_its_maker_was_killed_is_kept_with_its_work() {
    let t = TestRepo::new();
    let mut cmd = t.cmd("wt-create");
    cmd.args(["-n", "1"]).env("WT_FAILPOINT", "after-ledger");
    let run = wt_tests::Run::of(&mut cmd, "");
    assert_eq!(run.code, None, "killed\n{run}");
    let path = t.wt_root().join("agent-1");
    std::fs::write(path.join("work.txt"), "an agent's work\n").unwrap();
    let run = t.run("wt-create", &["-n", "1"], "");
    run.expect_code(0);
    assert_eq!(s(&run.records()[0], "name"), "agent-2", "agent-1 is taken: it exists\n{run}");
    assert_eq!(std::fs::read_to_string(path.join("work.txt")).unwrap(), "an agent's work\n");
    assert!(ledger(&t)["worktrees"]["agent-1"].is_object());
    assert!(!t.repo.join(".git/wt/pending/agent-1.json").exists(), "its marker is gone");
    assert_eq!(t.run("wt-create", &["agent-1"], "").expect_code(0).records()[0]["created"], false);
    assert_git_consistent(&t);
}

/// An entry a killed removal left (its worktree gone) is retired when its name is made again,
/// before the new worktree is begun: else a maker killed mid-way left a marker whose name the
/// ledger had at its path, and the next run kept the half-made worktree as finished, with the
/// old worktree's leases.
#[test]
fn a_stale_entry_does_not_pass_a_half_made_worktree_off_as_finished() {
    let t = TestRepo::new();
    t.run("wt-create", &["x"], "").expect_code(0);
    t.run("wt-env", &["x", "--range", "26800-26899"], "").expect_code(0);
    // A removal killed after git's part: the worktree and branch are gone, the entry stays.
    t.git(["worktree", "remove", "--force", &t.wt_root().join("x").to_string_lossy()]);
    t.git(["branch", "-D", "-q", "wt/x"]);
    assert!(ledger(&t)["worktrees"]["x"]["ports"].is_object());
    let mut cmd = t.cmd("wt-create");
    cmd.arg("x").env("WT_FAILPOINT", "ledger-staged");
    assert_eq!(wt_tests::Run::of(&mut cmd, "").code, None, "killed during the checkout");
    assert!(ledger(&t)["worktrees"].get("x").is_none(), "the stale entry was retired: {}", ledger(&t));
    let run = t.run("wt-create", &["x"], "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["created"], true, "the half-made one was rolled back, not kept\n{run}");
    let entry = &ledger(&t)["worktrees"]["x"];
    assert!(entry.get("ports").is_none() && entry.get("index").is_none(), "no old lease: {entry}");
    assert_eq!(t.git_in(&t.wt_root().join("x"), ["status", "--porcelain"]), "");
    assert_git_consistent(&t);
}

/// A post-checkout hook may lease for the worktree being made (`wt-env` on its path): the lease
/// is kept when wt-create records the worktree, not overwritten.
#[test]
fn a_lease_taken_by_the_post_checkout_hook_is_kept() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestRepo::new();
    let hook = t.repo.join(".git/hooks/post-checkout");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    let script =
        format!("#!/bin/sh\n{} \"$PWD\" --range 26900-26999 --dotenv >/dev/null\n", wt_tests::bin("wt-env").display());
    std::fs::write(&hook, script).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.run("wt-create", &["hooked"], "").expect_code(0);
    let entry = &ledger(&t)["worktrees"]["hooked"];
    assert_eq!(entry["ports"]["start"], 26900, "the hook's lease is in the ledger: {entry}");
    assert_eq!(entry["branch"], "wt/hooked", "and wt-create's record of the worktree: {entry}");
    let env = std::fs::read_to_string(t.wt_root().join("hooked/.env.wt")).unwrap();
    assert!(env.contains("26900"), "{env}");
    // Killed after the hook's lease and before its own entry: the hook's entry (at the same
    // name and path) does not pass the half-made worktree off as finished; the next run rolls it
    // back. An entry without a maker could also be a worktree wt-create adopted (a planted
    // marker could name it), so its directory is moved aside, not deleted, and its branch kept.
    let mut killed = t.cmd("wt-create");
    killed.arg("half").env("WT_FAILPOINT", "after-include");
    assert_eq!(Run::of(&mut killed, "").code, None, "killed");
    assert!(ledger(&t)["worktrees"]["half"]["ports"].is_object(), "the hook leased: {}", ledger(&t));
    t.run("wt-create", &["other"], "").expect_code(0);
    assert!(!t.wt_root().join("half").exists(), "the half-made worktree was rolled back");
    let aside = wt_tests::names_in(&t.wt_root(), |n| n.starts_with(".half.rolled-back-"));
    assert_eq!(aside.len(), 1, "moved aside: {aside:?}");
    assert!(!t.git(["worktree", "list"]).contains("/half "), "unregistered");
    let run = t.run("wt-create", &["half"], "");
    assert_eq!(run.expect_code(0).records()[0]["created"], true, "made again, whole\n{run}");
}

#[test]
fn records_of_another_repository_never_remove_this_ones_worktree() {
    let (here, there) = (TestRepo::new(), TestRepo::new());
    here.run("wt-create", &["agent-1"], "").expect_code(0);
    let foreign = there.run("wt-create", &["agent-1"], "").expect_code(0).stdout.clone();
    std::fs::write(here.wt_root().join("agent-1/unsaved.txt"), "uncommitted\n").unwrap();
    let run = here.run("wt-create", &["--remove", "--force"], &foreign);
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "not-a-worktree", "{run}");
    // Without `repo`, the path still decides: no worktree of this repository is there.
    let mut rec: Value = serde_json::from_str(foreign.trim()).unwrap();
    rec.as_object_mut().unwrap().remove("repo");
    let run = here.run("wt-create", &["--remove", "--force"], &format!("{rec}\n"));
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "not-a-worktree", "{run}");
    assert!(here.wt_root().join("agent-1/unsaved.txt").exists(), "this repository's work is untouched");
    assert_eq!(here.branches(), ["main", "wt/agent-1"]);
}

#[test]
fn a_worktree_whose_directory_is_gone_can_be_removed_exactly() {
    let t = TestRepo::new();
    t.run("wt-create", &["gone", "after-gc", "bystander"], "").expect_code(0);
    // A bystander whose directory is momentarily missing must keep its registration.
    let bystander = t.wt_root().join("bystander");
    std::fs::rename(&bystander, t.root().join("moved")).unwrap();
    std::fs::remove_dir_all(t.wt_root().join("gone")).unwrap();
    let run = t.run("wt-create", &["--remove", "gone"], "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["removed"], true);
    // Released behind wt-create's back: no ledger entry left to say what it made.
    std::fs::remove_dir_all(t.wt_root().join("after-gc")).unwrap();
    t.run("wt-env", &["--gc"], "").expect_code(0);
    t.run("wt-create", &["--remove", "--force", "after-gc"], "").expect_code(0);
    assert_eq!(t.branches(), ["main", "wt/bystander"], "their branches are gone");
    std::fs::rename(t.root().join("moved"), &bystander).unwrap();
    let listed: Vec<_> = t.git_worktrees().into_iter().map(|(p, _)| p).collect();
    assert_eq!(listed, [t.repo.clone(), bystander], "exactly those two were unregistered");
    assert_git_consistent(&t);
}

#[test]
fn a_removal_killed_half_way_is_finished_by_the_next() {
    let t = TestRepo::new();
    t.run("wt-create", &["unregistered", "half-admin"], "").expect_code(0);
    // Killed after git removed the worktree, before the branch went.
    t.git(["worktree", "remove", t.wt_root().join("unregistered").to_str().unwrap()]);
    // Killed while git deleted the admin dir: directory gone, `gitdir` gone, the rest left.
    std::fs::remove_dir_all(t.wt_root().join("half-admin")).unwrap();
    std::fs::remove_file(t.repo.join(".git/worktrees/half-admin/gitdir")).unwrap();
    let run = t.run("wt-create", &["--remove", "unregistered", "half-admin"], "");
    run.expect_code(0);
    assert!(run.records().iter().all(|r| r["removed"] == true), "{run}");
    assert_eq!(t.branches(), ["main"]);
    assert!(ledger(&t)["worktrees"].as_object().is_none_or(|w| w.is_empty()));
    assert_git_consistent(&t);
    // The names are free again.
    t.run("wt-create", &["unregistered", "half-admin"], "").expect_code(0);
}

#[test]
fn a_directory_left_with_only_a_cut_off_git_file_does_not_block_its_name() {
    let t = TestRepo::new();
    let mut cmd = t.cmd("wt-create");
    cmd.arg("victim").env("WT_FAILPOINT", "after-register");
    assert_eq!(wt_tests::Run::of(&mut cmd, "").code, None);
    // git was killed while writing the `.git` file.
    std::fs::write(t.wt_root().join("victim/.git"), "").unwrap();
    let run = t.run("wt-create", &["victim"], "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["created"], true, "{run}");
    // And one whose marker is long gone.
    std::fs::create_dir_all(t.wt_root().join("orphan")).unwrap();
    std::fs::write(t.wt_root().join("orphan/.git"), "gitdir: ").unwrap();
    t.run("wt-create", &["orphan"], "").expect_code(0);
    // And one where a lease wrote its env file before git wrote `.git` (the soak test found
    // one): the env file holds only leases, written again on the next lease.
    std::fs::create_dir_all(t.wt_root().join("leased")).unwrap();
    std::fs::write(t.wt_root().join("leased/.env.wt"), "PORT=1\n").unwrap();
    t.run("wt-create", &["leased"], "").expect_code(0);
    // Anything else there is somebody's: refused, and kept.
    std::fs::create_dir_all(t.wt_root().join("theirs")).unwrap();
    std::fs::write(t.wt_root().join("theirs/.env.wt"), "PORT=1\n").unwrap();
    std::fs::write(t.wt_root().join("theirs/notes.txt"), "mine\n").unwrap();
    let run = t.run("wt-create", &["theirs"], "");
    assert_eq!(run.records()[0]["error"]["code"], "path-exists", "{run}");
    assert!(t.wt_root().join("theirs/notes.txt").exists());
    std::fs::remove_dir_all(t.wt_root().join("theirs")).unwrap();
    assert_eq!(t.git_in(&t.wt_root().join("orphan"), ["status", "--porcelain"]), "");
    assert_git_consistent(&t);
}

/// A rollback killed while it deleted a half-made worktree used to leave a directory without
/// `.git` but with files at the worktree's name, which nothing recognised, so the name was
/// blocked for good (the soak test found one). The directory is now renamed aside first.
#[test]
fn a_rollback_killed_while_deleting_leaves_the_name_free_and_its_leftovers_are_swept() {
    let t = TestRepo::new();
    let mut cmd = t.cmd("wt-create");
    cmd.arg("victim").env("WT_FAILPOINT", "after-checkout");
    assert_eq!(wt_tests::Run::of(&mut cmd, "").code, None, "killed after its checkout");
    // The next run rolls the half-made worktree back, and is killed while deleting it.
    let mut cmd = t.cmd("wt-create");
    cmd.arg("bystander").env("WT_FAILPOINT", "tree-renamed");
    assert_eq!(wt_tests::Run::of(&mut cmd, "").code, None, "killed while deleting");
    assert!(!t.wt_root().join("victim").exists(), "nothing left at the worktree's name");
    let run = t.run("wt-create", &["victim", "bystander"], "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["created"], true, "{run}");
    let left = wt_tests::names_in(&t.wt_root(), |n| n.starts_with('.'));
    assert_eq!(left, Vec::<String>::new(), "what the killed rollback left is swept");
    assert_git_consistent(&t);
}

/// The branch of a new worktree is made by a git that wt-create starts itself, so that it dies
/// with wt-create. Made by `git worktree add -b`, it was git's child: killed with its maker, it
/// went on, and made the branch after the next run had rolled the worktree back, leaving a
/// branch nothing knew of. Here it is held up by a lock on the branch (git waits up to
/// `core.filesRefLockTimeout` for one) while wt-create is killed.
#[test]
fn a_branch_being_made_when_its_maker_is_killed_is_not_left_behind() {
    let t = TestRepo::new();
    t.git(["config", "core.filesRefLockTimeout", "4000"]);
    // A git that runs from before the lock was made could hold it: wt-create leaves it alone.
    let (holder, _) = wt_tests::branch_lock_held_by_a_running_git(&t, "wt/held-up");
    let mut maker =
        wt_tests::Reaped(t.cmd("wt-create").arg("held-up").stdout(std::process::Stdio::null()).spawn().unwrap());
    let making_branch = || {
        let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap();
        String::from_utf8_lossy(&ps.stdout).lines().any(|l| l.contains("branch") && l.contains("wt/held-up"))
    };
    let start = std::time::Instant::now();
    while !making_branch() {
        assert!(start.elapsed().as_secs() < 20, "git never started making the branch");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    maker.0.kill().unwrap();
    maker.0.wait().unwrap();
    // The next run rolls the worktree back (and takes the branch's lock for a dead git's);
    // a git that outlived its maker would now make the branch.
    t.run("wt-create", &["bystander"], "").expect_code(0);
    assert!(!t.wt_root().join("held-up").exists(), "rolled back");
    let start = std::time::Instant::now();
    while making_branch() && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(holder);
    assert_eq!(t.branches(), ["main", "wt/bystander"], "no branch outlives its rolled-back worktree");
    assert_eq!(t.git_worktrees().len(), 2);
    assert_git_consistent(&t);
}

/// A lock on the new branch that a running git may hold is never taken from it: wt-create
/// retries, then fails with git's message, and leaves the lock, the branch and the worktree
/// as they were (it used to remove the lock between its retries).
#[test]
fn a_branch_lock_a_running_git_may_hold_is_left_to_it() {
    let t = TestRepo::new();
    let (_holder, ref_lock) = wt_tests::branch_lock_held_by_a_running_git(&t, "wt/locked-out");
    let run = t.run("wt-create", &["locked-out"], "");
    run.expect_code(1);
    let rec = &run.records()[0];
    assert!(s(&rec["error"], "message").contains("locked-out.lock"), "git's reason is given\n{run}");
    assert!(ref_lock.exists(), "the lock is still there for whoever holds it");
    assert_eq!(t.branches(), ["main"]);
    assert_eq!(t.git_worktrees().len(), 1);
    assert!(!t.wt_root().join("locked-out").exists());
    assert_eq!(std::fs::read_dir(t.repo.join(".git/wt/pending")).unwrap().count(), 0, "no marker left");
}

/// A marker is made, locked and then written in place: a maker killed while writing it leaves
/// a cut-off one, before git was asked for anything. The next run drops it and makes the name.
#[test]
fn a_cut_off_marker_of_a_dead_maker_is_dropped_and_its_name_made() {
    let t = TestRepo::new();
    let pending = t.repo.join(".git/wt/pending");
    std::fs::create_dir_all(&pending).unwrap();
    std::fs::write(pending.join("cut.json"), "{\"name\":\"cut\",\"pa").unwrap();
    let run = t.run("wt-create", &["cut"], "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["created"], true, "{run}");
    assert!(run.stderr.contains("dropping unreadable marker"), "{run}");
    assert_eq!(std::fs::read_dir(&pending).unwrap().count(), 0, "no marker left");
    assert_git_consistent(&t);
}

#[test]
fn temp_files_of_killed_writers_are_ignored_by_git_and_swept() {
    let t = TestRepo::new();
    t.run("wt-create", &["a"], "").expect_code(0);
    t.run("wt-env", &["a", "--dotenv"], "").expect_code(0);
    let wt = t.wt_root().join("a");
    // What writers killed before their rename leave (pid 2^22+1 exceeds any pid_max default
    // here, so no live process has it).
    let dead = 4_194_305;
    std::fs::write(wt.join(format!("..env.wt.tmp.{dead}")), "half").unwrap();
    let state = t.repo.join(".git/wt");
    std::fs::write(state.join(format!(".ledger.json.tmp.{dead}")), "half").unwrap();
    assert_eq!(t.git_in(&wt, ["status", "--porcelain", "--untracked-files=all"]), "", "git ignores it");
    t.run("wt-create", &["--remove", "a"], "").expect_code(0).records();
    t.run("wt-create", &["b"], "").expect_code(0);
    t.run("wt-env", &["b", "--dotenv"], "").expect_code(0);
    let left: Vec<_> = std::fs::read_dir(&state).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(!left.iter().any(|n| n.to_string_lossy().contains(".tmp.")), "{left:?}");
    let wt = t.wt_root().join("b");
    std::fs::write(wt.join(format!("..env.wt.tmp.{dead}")), "half").unwrap();
    t.run("wt-env", &["b", "--dotenv"], "").expect_code(0);
    assert!(!wt.join(format!("..env.wt.tmp.{dead}")).exists(), "swept by the next write");
}

#[test]
fn rebasing_records_already_merged_again_skips_them() {
    let t = TestRepo::new();
    t.run("wt-create", &["r1"], "").expect_code(0);
    let wt = t.wt_root().join("r1");
    std::fs::write(wt.join("r1.txt"), "r1\n").unwrap();
    t.git_in(&wt, ["add", "-A"]);
    t.git_in(&wt, ["commit", "-q", "-m", "r1 work"]);
    t.git(["commit", "-q", "--allow-empty", "-m", "main moves on"]);
    let list = t.run("wt-create", &["--list"], "").stdout.clone();
    for strategy in ["rebase", "squash"] {
        let first = t.run("wt-merge", &["--unverified", "--strategy", strategy], &list);
        first.expect_code(0);
        let head = t.git(["rev-parse", "main"]);
        let again = t.run("wt-merge", &["--unverified", "--strategy", strategy], &list);
        again.expect_code(0);
        assert_eq!(again.records()[0]["merge"]["status"], "skipped", "{strategy}: {again}");
        assert_eq!(t.git(["rev-parse", "main"]), head, "{strategy}: no empty duplicate commit");
        if strategy == "rebase" {
            t.git(["reset", "-q", "--hard", "HEAD~1"]);
        }
    }
}

/// The verification worktree is made by wt-create: a wt-create killed while it makes it (at
/// each of its own failpoints, which the child inherits) fails that verification with the
/// target untouched, and leaves nothing the next run trips over.
#[test]
fn a_verification_worktree_killed_while_it_is_made_fails_the_merge_and_leaves_nothing() {
    for point in ["after-register", "after-checkout", "before-ledger", "after-ledger"] {
        let t = TestRepo::new();
        t.run("wt-create", &["m1"], "").expect_code(0);
        std::fs::write(t.wt_root().join("m1/m1.txt"), "m1\n").unwrap();
        t.git_in(&t.wt_root().join("m1"), ["add", "-A"]);
        t.git_in(&t.wt_root().join("m1"), ["commit", "-qm", "m1"]);
        let head = t.git(["rev-parse", "main"]);
        let mut cmd = t.cmd("wt-merge");
        cmd.args(["m1", "--verify", "true"]).env("WT_FAILPOINT", point);
        let run = Run::of(&mut cmd, "");
        assert_eq!(run.code, Some(1), "{point}: the merge fails, wt-merge lives\n{run}");
        assert_eq!(t.git(["rev-parse", "main"]), head, "{point}: the target did not move");
        t.run("wt-merge", &["m1", "--verify", "true"], "").expect_code(0);
        t.assert_no_verification_worktree(point);
    }
}

fn db_of(rec: &Value) -> &Value {
    &rec["env"]["database"]
}

#[test]
fn a_removed_worktrees_database_is_never_handed_on_and_can_still_be_dropped() {
    let t = TestRepo::new();
    let tpl = wt_tests::PgTemplate::new("CREATE TABLE notes (body text)");
    let url = wt_tests::pg_url_for(&tpl.name);
    let first = t.pipeline(&[("wt-create", &["old"]), ("wt-env", &["--database", &url])]).records().remove(0);
    let old_db = s(db_of(&first), "name").to_string();
    wt_tests::psql(&old_db, "INSERT INTO notes VALUES ('old rows')").unwrap();
    let run = t.run("wt-create", &["--remove", "old"], "");
    run.expect_code(0);
    assert!(tpl.clones().contains(&old_db), "kept unless asked");
    assert_eq!(ledger(&t)["kept_databases"][&old_db]["worktree"], "old");
    let next = t.pipeline(&[("wt-create", &["new"]), ("wt-env", &["--database", &url])]).records().remove(0);
    assert_ne!(s(db_of(&next), "name"), old_db, "a new lease gets a database of its own\n{next}");
    assert_eq!(wt_tests::psql(s(db_of(&next), "name"), "SELECT count(*) FROM notes").unwrap(), "0");
    let dropped = t.run("wt-env", &["--release", "--drop-database", "old"], "");
    dropped.expect_code(0);
    assert_eq!(dropped.records()[0]["env"]["database_dropped"], true, "{dropped}");
    assert!(!tpl.clones().contains(&old_db));
    assert!(ledger(&t).get("kept_databases").is_none());
    // --gc --drop-database drops what removed worktrees kept.
    t.run("wt-create", &["--remove", "new"], "").expect_code(0);
    t.run("wt-env", &["--gc", "--drop-database"], "").expect_code(0);
    assert_eq!(tpl.clones(), Vec::<String>::new());
}

#[test]
fn a_database_that_exists_but_was_not_made_for_the_worktree_is_refused() {
    let t = TestRepo::new();
    let tpl = wt_tests::PgTemplate::new("CREATE TABLE notes (body text)");
    let url = wt_tests::pg_url_for(&tpl.name);
    wt_tests::psql("postgres", &format!("CREATE DATABASE {}_wt1", tpl.name)).unwrap();
    let run = t.pipeline(&[("wt-create", &["a"]), ("wt-env", &["--database", &url])]);
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "database-exists", "{run}");
    assert_eq!(db_of(&run.records()[0])["provisioned"], false);
}

#[test]
fn a_failed_database_keeps_the_working_lease() {
    let t = TestRepo::new();
    let tpl = wt_tests::PgTemplate::new("SELECT 1");
    let url = wt_tests::pg_url_for(&tpl.name);
    let good = t.pipeline(&[("wt-create", &["a"]), ("wt-env", &["--database", &url])]).records().remove(0);
    let run = t.run("wt-env", &["a", "--database", "postgres://127.0.0.1:1/app"], "");
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "database-unavailable", "{run}");
    let held = &ledger(&t)["worktrees"]["a"]["database"];
    assert_eq!(held["url"], db_of(&good)["url"], "the ledger keeps the working URL");
    assert_eq!(db_of(&run.records()[0])["url"], db_of(&good)["url"], "and the record says so");
    let export = t.run("wt-env", &["--export", "a"], "");
    assert!(export.stdout.contains(s(db_of(&good), "url")), "{export}");
}

#[test]
fn removing_in_any_order_keeps_git_and_the_ledger_in_step() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "3"], "").expect_code(0);
    t.run("wt-env", &["--all"], "").expect_code(0);
    std::fs::remove_dir_all(t.wt_root().join("agent-2")).unwrap();
    let run = t.run("wt-create", &["--remove", "agent-1", "agent-2", "agent-3"], "");
    run.expect_code(0);
    assert!(ledger(&t)["worktrees"].as_object().is_none_or(|w| w.is_empty()));
    assert_eq!(t.branches(), ["main"]);
    assert!(!Path::new(&t.wt_root().join("agent-2")).exists());
    assert_git_consistent(&t);
}

/// Waits until `file` holds a pid, and returns it.
/// The pid a command wrote to `file`, waiting for it: on a loaded machine a verification starts
/// only after its worktree was made (wt-create and wt-env), which can take seconds.
fn pid_in(file: &Path) -> i32 {
    for _ in 0..6000 {
        if let Some(pid) = std::fs::read_to_string(file).ok().and_then(|t| t.trim().parse().ok()) {
            return pid;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} never got a pid", file.display());
}

fn kill(pid: u32, sig: &str) {
    std::process::Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().unwrap();
}

#[test]
fn a_command_does_not_outlive_wt_run_killed_with_sigkill() {
    let t = TestRepo::new();
    t.run("wt-create", &["a"], "").expect_code(0);
    let pidfile = t.root().join("cmd.pid");
    let script = format!("echo $$ > {}; exec sleep 60", pidfile.display());
    let mut cmd = t.cmd("wt-run");
    cmd.args(["-w", "a", "--shell", "--", &script]).stdout(std::process::Stdio::null());
    assert_dies_with_its_tool(cmd.spawn().unwrap(), &pidfile, "the command outlived wt-run");
}

/// git makes a new worktree's admin dir, then writes its "initializing" lock into it: a kill in
/// between leaves an empty admin dir (found by the soak test), which the next run rolls back.
#[test]
fn an_empty_admin_dir_a_killed_git_left_is_rolled_back_by_the_next_run() {
    let t = TestRepo::new();
    let mut cmd = t.cmd("wt-create");
    cmd.arg("victim").env("WT_FAILPOINT", "after-marker");
    assert_eq!(wt_tests::Run::of(&mut cmd, "").code, None, "killed at the failpoint");
    std::fs::create_dir_all(t.repo.join(".git/worktrees/victim")).unwrap();
    t.run("wt-create", &["victim"], "").expect_code(0);
    let admins: Vec<String> = std::fs::read_dir(t.repo.join(".git/worktrees"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(admins, ["victim"], "one admin dir, git's own for the new worktree");
    assert!(t.repo.join(".git/worktrees/victim/gitdir").is_file());
    t.run("wt-create", &["--remove", "victim"], "").expect_code(0);
    assert!(std::fs::read_dir(t.repo.join(".git/worktrees")).map_or(true, |mut d| d.next().is_none()));
}

/// Killed while writing `gitdir` (git creates the file, then writes the path into it), git
/// leaves its "initializing" lock beside an empty or cut-off `gitdir`: the next run rolls that
/// admin dir back too, rather than leaving it registered.
#[test]
fn an_admin_dir_with_a_cut_off_gitdir_is_rolled_back_by_the_next_run() {
    for written in [0, 12] {
        let t = TestRepo::new();
        let mut cmd = t.cmd("wt-create");
        cmd.arg("victim").env("WT_FAILPOINT", "after-marker");
        assert_eq!(wt_tests::Run::of(&mut cmd, "").code, None, "killed at the failpoint");
        let admin = t.repo.join(".git/worktrees/victim");
        std::fs::create_dir_all(&admin).unwrap();
        std::fs::write(admin.join("locked"), "initializing").unwrap();
        let dot_git = t.wt_root().join("victim/.git").to_string_lossy().into_owned();
        std::fs::write(admin.join("gitdir"), &dot_git[..written]).unwrap();
        t.run("wt-create", &["victim"], "").expect_code(0);
        let admins = wt_tests::names_in(&t.repo.join(".git/worktrees"), |_| true);
        assert_eq!(admins, ["victim"], "{written}: one admin dir, git's own for the new worktree");
        assert_eq!(std::fs::read_to_string(admin.join("gitdir")).unwrap(), format!("{dot_git}\n"), "{written}");
        assert!(!admin.join("locked").exists(), "{written}");
    }
}

/// The command's own parent-death signal reaches only the command: what it started in the
/// background is ended by the tool's reaper once the tool is gone.
#[test]
fn background_jobs_of_a_command_do_not_outlive_its_tool_killed_with_sigkill() {
    let t = TestRepo::new();
    t.run("wt-create", &["a"], "").expect_code(0);
    let bg = t.root().join("bg.pid");
    let script = format!("sleep 60 & echo $! > {}; wait", bg.display());
    let mut cmd = t.cmd("wt-run");
    cmd.args(["-w", "a", "--shell", "--", &script]).stdout(std::process::Stdio::null());
    assert_dies_with_its_tool(cmd.spawn().unwrap(), &bg, "a background job outlived wt-run");

    let t = TestRepo::new();
    let list = t.worktree_with_a_commit_to_merge();
    let bg = t.root().join("bg.pid");
    let verify = format!("sleep 60 & echo $! > {}; wait", bg.display());
    let mut cmd = t.cmd("wt-merge");
    cmd.args(["--verify", &verify]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    wt_tests::Run::feed(&mut child, &list);
    assert_dies_with_its_tool(child, &bg, "a background job of the verification outlived wt-merge");
}

/// SIGKILLs the tool once the command it started wrote its pid, and asserts that the command
/// did not live on (ending it if it did, so the test leaves nothing behind).
fn assert_dies_with_its_tool(mut tool: std::process::Child, pidfile: &Path, what: &str) {
    let pid = pid_in(pidfile);
    kill(tool.id(), "KILL");
    tool.wait().unwrap();
    let survived = !wt_tests::ended(pid);
    if survived {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(!survived, "{what}");
}

#[test]
fn sigterm_or_sigint_to_wt_merge_ends_the_verification_and_prints_the_record() {
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let t = TestRepo::new();
        let list = t.worktree_with_a_commit_to_merge();
        let main = t.git(["rev-parse", "main"]);
        let pidfile = t.root().join("verify.pid");
        let verify = format!("echo $$ > {}; exec sleep 60", pidfile.display());
        let mut cmd = t.cmd("wt-merge");
        cmd.args(["--verify", &verify]);
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wt_tests::Run::feed(&mut child, &list);
        let pid = pid_in(&pidfile);
        kill(child.id(), sig);
        let run = wt_tests::Run::from_output(child.wait_with_output().unwrap());
        assert!(wt_tests::ended(pid), "{sig}: the verification was ended");
        run.expect_code(code);
        let recs = run.records();
        assert_eq!(recs.len(), 1, "{sig}: the record is printed\n{run}");
        assert_eq!(recs[0]["merge"]["status"], "verify-failed", "{run}");
        assert_eq!(t.git(["rev-parse", "main"]), main, "{sig}: the target did not move");
        assert!(!t.repo.join(".git/wt/scratch").read_dir().is_ok_and(|mut d| d.next().is_some()));
        assert_git_consistent(&t);
    }
}

#[test]
fn a_verification_does_not_outlive_wt_merge_killed_with_sigkill() {
    let t = TestRepo::new();
    let list = t.worktree_with_a_commit_to_merge();
    let pidfile = t.root().join("verify.pid");
    let verify = format!("echo $$ > {}; exec sleep 60", pidfile.display());
    let mut cmd = t.cmd("wt-merge");
    cmd.args(["--verify", &verify]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    wt_tests::Run::feed(&mut child, &list);
    assert_dies_with_its_tool(child, &pidfile, "the verification outlived wt-merge");
    // The next run sweeps the scratch worktree and merges.
    let run = t.run("wt-merge", &["--verify", "true"], &list);
    run.expect_code(0);
    assert_eq!(run.records()[0]["merge"]["status"], "merged");
    assert_git_consistent(&t);
}

/// Sets a file's modification time an hour back, as a lock a git killed long ago left.
fn age(file: &Path) {
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600)).unwrap();
}

#[test]
fn stale_locks_on_the_target_are_cleared_and_live_ones_refused_before_verifying() {
    for lock in ["index.lock", "HEAD.lock"] {
        let t = TestRepo::new();
        let list = t.worktree_with_a_commit_to_merge();
        let counter = t.root().join("verifications");
        let verify = format!("echo run >> {}", counter.display());
        // Held by a git that is running in the repository: refused, nothing verified or moved.
        let mut live = std::process::Command::new("git");
        live.args(["cat-file", "--batch"]).current_dir(&t.repo).stdin(std::process::Stdio::piped());
        let mut holder = t.isolate(&mut live).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(t.repo.join(".git").join(lock), "").unwrap();
        let main = t.git(["rev-parse", "main"]);
        let run = t.run("wt-merge", &["--verify", &verify], &list);
        run.expect_code(1);
        assert_eq!(run.records()[0]["error"]["code"], "target-locked", "{lock}: {run}");
        assert!(!counter.exists(), "{lock}: no verification ran");
        assert_eq!(t.git(["rev-parse", "main"]), main);
        holder.kill().unwrap();
        holder.wait().unwrap();
        // Left by a git that is gone: removed, and the merge moves the ref and the files.
        age(&t.repo.join(".git").join(lock));
        let run = t.run("wt-merge", &["--verify", &verify], &list);
        run.expect_code(0);
        assert_eq!(run.records()[0]["merge"]["status"], "merged", "{lock}: {run}");
        assert_eq!(std::fs::read_to_string(&counter).unwrap(), "run\n", "{lock}: verified once");
        assert_eq!(t.git(["status", "--porcelain"]), "", "{lock}: the files followed the ref");
        assert_eq!(std::fs::read_to_string(t.repo.join("v.txt")).unwrap(), "v\n");
    }
}

/// `git branch -D` rewrites the config under `config.lock`; a removal killed there leaves the
/// lock, and git only warns about it, so every later config write in the repository would fail.
#[test]
fn a_config_lock_a_killed_branch_deletion_left_is_cleared_by_the_next_removal() {
    let t = TestRepo::new();
    t.run("wt-create", &["a", "b"], "").expect_code(0);
    let lock = t.repo.join(".git/config.lock");
    std::fs::write(&lock, "").unwrap();
    age(&lock);
    t.run("wt-create", &["--remove", "a"], "").expect_code(0);
    assert!(!lock.exists(), "the stale config.lock is gone");
    t.git(["config", "wt.probe", "1"]);
    // One a running git may hold is left alone.
    let mut live = std::process::Command::new("git");
    live.args(["cat-file", "--batch"]).current_dir(&t.repo).stdin(std::process::Stdio::piped());
    let mut holder = t.isolate(&mut live).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&lock, "").unwrap();
    t.run("wt-create", &["--remove", "b"], "").expect_code(0);
    assert!(lock.exists(), "a lock a live git may hold is kept");
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(t.branches(), ["main"]);
}

/// A `git maintenance run --auto` (started by an agent's commit) killed with its run leaves
/// `objects/maintenance.lock`, and git then skips all later maintenance without a word; the
/// soak test found one. wt-create and wt-merge clear such repository locks when provably stale.
#[test]
fn repository_locks_a_killed_git_left_are_cleared_by_the_next_create_or_merge() {
    for (tool, lock) in [
        ("wt-create", "objects/maintenance.lock"),
        ("wt-merge", "objects/maintenance.lock"),
        ("wt-create", "packed-refs.lock"),
    ] {
        let t = TestRepo::new();
        let list = t.worktree_with_a_commit_to_merge();
        let lock = t.repo.join(".git").join(lock);
        std::fs::write(&lock, "").unwrap();
        age(&lock);
        match tool {
            "wt-create" => t.run("wt-create", &["another"], "").expect_code(0),
            _ => t.run("wt-merge", &["--verify", "true"], &list).expect_code(0),
        };
        assert!(!lock.exists(), "{tool}: {} is gone", lock.display());
    }
}

#[test]
fn a_removal_killed_at_random_moments_leaves_nothing_the_next_cannot_finish() {
    use std::os::unix::process::CommandExt;
    let t = TestRepo::new();
    for i in 0..300 {
        t.write(&format!("big/f{i}"), "data\n");
    }
    t.commit("bulk");
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80] {
        t.run("wt-create", &["victim", "bystander"], "").expect_code(0);
        let mut cmd = t.cmd("wt-create");
        cmd.args(["--remove", "victim"]).process_group(0).stdout(std::process::Stdio::null());
        let child = cmd.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
        let _ = child.wait_with_output();
        let lock = t.repo.join(".git/worktrees/victim/index.lock");
        assert!(!lock.exists(), "delay {delay_ms}: index.lock left in a worktree that survives");
        let run = t.run("wt-create", &["--remove", "--force", "victim", "bystander"], "");
        let recs = run.records();
        // The kill may have come after the removal was complete: then there is nothing to do.
        let victim_done = recs[0]["removed"] == true || recs[0]["error"]["code"] == "no-such-worktree";
        assert!(victim_done && recs[1]["removed"] == true, "delay {delay_ms}\n{run}");
        assert_eq!(t.branches(), ["main"], "delay {delay_ms}\n{run}");
        assert!(ledger(&t)["worktrees"].as_object().is_none_or(|w| w.is_empty()), "delay {delay_ms}");
        assert_git_consistent(&t);
    }
}

/// A wt-create with a `--root` of its own killed half-way is rolled back by the next wt-create,
/// whatever its root: the marker names the worktree's path, and nothing of it is left for a
/// later run to adopt as finished.
#[test]
fn a_half_made_worktree_under_another_root_is_rolled_back() {
    let t = TestRepo::new();
    let other = t.root().join("other");
    let mut cmd = t.cmd("wt-create");
    cmd.args(["--root", other.to_str().unwrap(), "d"]).env("WT_FAILPOINT", "after-register");
    assert_eq!(Run::of(&mut cmd, "").code, None, "killed at the failpoint");
    t.run("wt-create", &["e"], "").expect_code(0);
    assert!(!other.join("d").exists(), "its directory is gone");
    let listed = t.git(["worktree", "list", "--porcelain"]);
    assert!(!listed.contains("other/d"), "{listed}");
    assert!(!t.branches().contains(&"wt/d".to_string()), "{:?}", t.branches());
}

#[test]
fn an_input_line_over_a_mebibyte_is_refused_with_a_short_excerpt() {
    let t = TestRepo::new();
    t.run("wt-create", &["a"], "").expect_code(0);
    let huge = format!("{{\"name\":\"{}\"}}\na\n", "x".repeat(3 << 20));
    let run = t.run("wt-env", &[], &huge);
    run.expect_code(2);
    assert!(run.stderr.contains("line 1: line over 1 MiB"), "{}", &run.stderr[..run.stderr.len().min(500)]);
    assert!(run.stderr.len() < 1000, "the line is not echoed whole ({} bytes)", run.stderr.len());
    assert_eq!(s(&run.records()[0], "name"), "a", "the next line is still read");
}

/// Every tool that reads records splits its stdin between this machine and the hosts first:
/// that split too reads a line only up to the cap. A line of 128 MiB without an end, under a
/// 64 MiB limit on the tool's data, is refused as the tool's own reader refuses it, and the
/// next is read (held whole, it ended the tool with "memory allocation failed").
#[test]
fn a_line_without_an_end_is_never_held_whole() {
    let t = TestRepo::new();
    t.run("wt-create", &["a"], "").expect_code(0);
    let mut env = std::process::Command::new("sh");
    env.args(["-c", "ulimit -d 65536 && exec \"$0\""]).arg(wt_tests::bin("wt-env")).current_dir(&t.repo);
    t.isolate(&mut env);
    let huge = format!("{}\na\n", "x".repeat(128 << 20));
    let run = Run::of(&mut env, &huge);
    run.expect_code(2);
    assert!(run.stderr.contains("line 1: line over 1 MiB"), "{}", &run.stderr[..run.stderr.len().min(500)]);
    assert_eq!(s(&run.records()[0], "name"), "a", "the next line is still read");
}

#[test]
fn run_logs_are_pruned_beyond_the_documented_count() {
    let t = TestRepo::new();
    t.run("wt-create", &["a"], "").expect_code(0);
    let dir = t.repo.join(".git/wt/logs/a");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..70 {
        std::fs::write(dir.join(format!("1000000{i:03}-1-0.log")), "old run\n").unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "not a run log").unwrap();
    t.run("wt-run", &["-w", "a", "--", "true"], "").expect_code(0);
    let logs = std::fs::read_dir(&dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".log"));
    assert_eq!(logs.count(), 50, "the newest 50 run logs are kept");
    assert!(dir.join("notes.txt").exists());
}

#[test]
fn a_database_made_by_a_killed_wt_env_is_taken_by_the_next_and_dropped_with_its_worktree() {
    let t = TestRepo::new();
    let tpl = wt_tests::PgTemplate::new("CREATE TABLE notes (body text)");
    let url = wt_tests::pg_url_for(&tpl.name);
    t.run("wt-create", &["a"], "").expect_code(0);
    let mut cmd = t.cmd("wt-env");
    cmd.args(["a", "--database", &url]).env("WT_FAILPOINT", "after-create-database");
    assert_eq!(wt_tests::Run::of(&mut cmd, "").code, None, "killed");
    assert_eq!(tpl.clones().len(), 1, "made, not yet recorded");
    let run = t.run("wt-env", &["a", "--database", &url], "");
    run.expect_code(0);
    assert_eq!(db_of(&run.records()[0])["provisioned"], true, "{run}");
    t.run("wt-create", &["--remove", "a"], "").expect_code(0);
    t.run("wt-env", &["--gc", "--drop-database"], "").expect_code(0);
    assert_eq!(tpl.clones(), Vec::<String>::new(), "no database is left that wt does not know of");
}

/// A wt-env killed while the server still makes its database (here, `CREATE DATABASE` waits
/// for a session on the template to leave): the server would finish it after a release that
/// found nothing to drop, leaving a database nobody leases under the name the next worktree of
/// that index gets. The release ends the creation first.
#[test]
fn a_database_still_being_made_for_a_killed_wt_env_is_ended_by_its_release() {
    let t = TestRepo::new();
    let tpl = wt_tests::PgTemplate::new("CREATE TABLE notes (body text)");
    let url = wt_tests::pg_url_for(&tpl.name);
    t.run("wt-create", &["a"], "").expect_code(0);
    // A session on the template: CREATE DATABASE … TEMPLATE waits (up to 5 s) for it to leave.
    let mut holder = std::process::Command::new("psql")
        .args([&url, "-X", "-q", "-c", "SELECT pg_sleep(3)"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let on_template = || {
        let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'", tpl.name);
        wt_tests::psql("postgres", &sql).unwrap() != "0"
    };
    while !on_template() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut env = t.cmd("wt-env");
    env.args(["a", "--database", &url]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut env = env.spawn().unwrap();
    let creating = || {
        let sql =
            format!("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE \"{}\\_wt%'", tpl.name);
        wt_tests::psql("postgres", &sql).unwrap() != "0"
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !creating() {
        assert!(std::time::Instant::now() < deadline, "wt-env never began to create the database");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    env.kill().unwrap();
    env.wait().unwrap();
    t.run("wt-env", &["--release", "--drop-database", "a"], "").expect_code(0);
    holder.wait().unwrap();
    // Had the creation gone on, it would be done by now (the template is free).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(tpl.clones(), Vec::<String>::new(), "no database is left that no lease names");
}

#[test]
fn removing_a_worktree_a_killed_wt_create_left_half_made_rolls_it_back() {
    let t = TestRepo::new();
    let mut cmd = t.cmd("wt-create");
    cmd.arg("victim").env("WT_FAILPOINT", "after-register");
    assert_eq!(wt_tests::Run::of(&mut cmd, "").code, None, "killed");
    // git was killed while writing the `.git` file: git itself cannot remove this worktree.
    std::fs::write(t.wt_root().join("victim/.git"), "gitd").unwrap();
    let run = t.run("wt-create", &["--remove", "--force", "victim"], "");
    assert_eq!(run.records()[0]["error"]["code"], "no-such-worktree", "rolled back, nothing left to remove\n{run}");
    assert!(!t.wt_root().join("victim").exists());
    assert_eq!(t.branches(), ["main"]);
    assert_git_consistent(&t);
}

#[test]
fn a_forced_removal_finishes_a_worktree_whose_admin_dir_a_killed_git_left_half_written() {
    let t = TestRepo::new();
    t.run("wt-create", &["broken"], "").expect_code(0);
    // git was killed while it wrote (or deleted) the admin dir: no HEAD, so git no longer
    // takes the directory for a repository.
    std::fs::remove_file(t.repo.join(".git/worktrees/broken/HEAD")).unwrap();
    let run = t.run("wt-create", &["--remove", "--force", "broken"], "");
    run.expect_code(0);
    assert!(!t.wt_root().join("broken").exists());
    assert_eq!(t.branches(), ["main"]);
    assert_git_consistent(&t);
}

/// Ctrl-C while a batch is verified ends it: nothing lands afterwards, no half of it is
/// verified again, every record read is printed, and the exit says the signal.
#[test]
fn sigint_during_a_batch_verification_lands_nothing_more() {
    let t = TestRepo::new();
    for n in ["b", "c", "d"] {
        t.run("wt-create", &[n], "").expect_code(0);
        let wt = t.wt_root().join(n);
        std::fs::write(wt.join(format!("{n}.txt")), "x\n").unwrap();
        t.git_in(&wt, ["add", "-A"]);
        t.git_in(&wt, ["commit", "-q", "-m", n]);
    }
    let main = t.git(["rev-parse", "main"]);
    let pidfile = t.root().join("verify.pid");
    let verify = format!("echo $$ >> {}; exec sleep 30", pidfile.display());
    let mut cmd = t.cmd("wt-merge");
    cmd.args(["b", "c", "d", "--verify", &verify]);
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    pid_in(&pidfile);
    kill(child.id(), "INT");
    let run = wt_tests::Run::from_output(child.wait_with_output().unwrap());
    run.expect_code(130);
    assert_eq!(run.records().len(), 3, "{run}");
    assert!(run.records().iter().all(|r| r["merge"]["status"] != "merged"), "{run}");
    assert_eq!(t.git(["rev-parse", "main"]), main, "nothing landed");
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap().lines().count(), 1, "no half was verified afterwards");
    t.assert_no_verification_worktree("after the interrupt");
}

/// A commit made in the worktree after `--remove` judged its branch merged, and before the
/// branch is deleted, is kept: the branch was deleted by name and the commit lost.
#[test]
fn a_commit_made_while_a_removal_runs_keeps_its_branch() {
    let t = TestRepo::new();
    t.run("wt-create", &["r1"], "").expect_code(0);
    let removal = StoppedAt::spawn(t.cmd("wt-create").args(["--remove", "r1"]), "remove-checked");
    let path = t.wt_root().join("r1");
    std::fs::write(path.join("w.txt"), "work\n").unwrap();
    t.git_in(&path, ["add", "w.txt"]);
    t.git_in(&path, ["commit", "-qm", "work"]);
    let run = removal.resume();
    run.expect_code(0);
    assert!(run.records()[0]["branch_kept"].as_str().unwrap().contains("moved"), "{run}");
    assert_eq!(t.git(["log", "-1", "--format=%s", "wt/r1"]), "work", "the branch keeps the commit");
    assert!(!path.exists(), "the worktree (clean, its work committed) is removed");
}
