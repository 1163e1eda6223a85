//! The pool of warm worktrees (`wt-create --pool N`): claims are a rename and a branch, and a
//! claimed worktree is one a fresh `wt-create NAME` would have made; the pool follows its base,
//! never hands out a worktree whose dependencies differ, drains, and survives a kill at every
//! step of a fill, an advance, a removal and a claim.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use wt_tests::{s, Run, TestRepo};

fn ledger(t: &TestRepo) -> Value {
    let text = std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap_or_else(|_| "{}".into());
    serde_json::from_str(&text).unwrap()
}

fn ledger_names(t: &TestRepo) -> BTreeSet<String> {
    ledger(t)["worktrees"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// Waits until no fill of the pool runs (the background refill holds the fill lock from the
/// claim on, handed down by the claimer, until the pool is full).
/// A refill that found the lock taken waits for it: then no refill of this test's repository
/// is left running either.
fn wait_for_refill(t: &TestRepo) {
    let lock = t.repo.join(".git/wt/pool/fill.lock");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if lock.exists() {
            drop(wt_common::proc::lock::FileLock::acquire(&lock, Duration::from_secs(120)).expect("the refill ends"));
        }
        if refills_running(t) == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "a refill still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `wt-create --pool-refill` processes of this test's repository.
fn refills_running(t: &TestRepo) -> usize {
    let root = t.wt_root();
    let root = root.to_string_lossy();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmd| {
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.contains(&b"--pool-refill".as_slice()) && args.contains(&root.as_bytes())
        })
        .count()
}

/// The pooled worktrees git knows: (path, HEAD).
fn pooled(t: &TestRepo) -> Vec<(PathBuf, String)> {
    let text = t.git(["worktree", "list", "--porcelain", "-z"]);
    wt_common::git::repo::parse_worktree_list(&text)
        .into_iter()
        .filter(|w| w.path.starts_with(t.wt_root().join(".pool")))
        .map(|w| (w.path, w.head.unwrap_or_default()))
        .collect()
}

/// Nothing broken: git lists no prunable worktree, every admin dir belongs to a listed
/// worktree, every linked worktree is pooled or in the ledger (and the ledger's are listed,
/// on their branch), every pooled worktree has a ready journal, each worktree is clean, and no
/// journal of a half-done step is left.
fn assert_consistent(t: &TestRepo, what: &str) {
    let list = t.git(["worktree", "list", "--porcelain"]);
    assert!(!list.contains("prunable"), "{what}: {list}");
    assert!(!list.contains("locked"), "{what}: a claim's lock is left: {list}");
    let admins = std::fs::read_dir(t.repo.join(".git/worktrees")).map(|d| d.count()).unwrap_or(0);
    let worktrees = t.git_worktrees();
    assert_eq!(admins, worktrees.len() - 1, "{what}: no stray admin dirs\n{list}");
    let ledger = ledger(t);
    let mut named = BTreeSet::new();
    for (path, branch) in worktrees.iter().skip(1) {
        if path.starts_with(t.wt_root().join(".pool")) {
            assert_eq!(branch, &None, "{what}: a pooled worktree has no branch");
            let id = path.file_name().unwrap().to_string_lossy();
            let journal = std::fs::read_to_string(t.repo.join(format!(".git/wt/pool/{id}.json"))).unwrap();
            assert!(journal.contains("\"state\":\"ready\""), "{what}: {journal}");
        } else {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                ledger["worktrees"][&name]["path"],
                path.to_string_lossy().as_ref(),
                "{what}: {name} in the ledger"
            );
            assert_eq!(branch.as_deref(), Some(format!("wt/{name}").as_str()), "{what}");
            named.insert(name);
        }
        // Without optional locks: a `git status` that refreshes the index takes `index.lock` in
        // the worktree's admin dir, and a refill checking the pool meanwhile rightly finds that
        // pooled worktree being written into and replaces it (this check made the refill it
        // raced with replace the worktree the test then expected to claim).
        assert_eq!(
            t.git_in(path, ["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"]),
            "",
            "{what}: {} is clean",
            path.display()
        );
    }
    assert_eq!(named, ledger_names(t), "{what}: git and the ledger agree");
    for entry in std::fs::read_dir(t.repo.join(".git/wt/pool")).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.ends_with(".json") && file != "target.json" {
            assert!(text.contains("\"state\":\"ready\""), "{what}: a half-done journal is left: {text}");
        }
    }
    t.git(["fsck", "--no-progress"]);
}

fn create(t: &TestRepo, args: &[&str]) -> Vec<Value> {
    t.run("wt-create", args, "").expect_code(0).records()
}

#[test]
fn a_claimed_worktree_is_one_a_fresh_create_would_have_made() {
    let t = TestRepo::new();
    t.write(".gitignore", ".env\n");
    t.write(".worktreeinclude", ".env\n");
    t.commit("include .env");
    t.write(".env", "SECRET=1\n");
    let filled = create(&t, &["--pool", "2"]);
    assert_eq!(filled.len(), 2, "{filled:?}");
    assert!(filled.iter().all(|r| r["pooled"] == true));
    assert_eq!(pooled(&t).len(), 2);
    assert_eq!(create(&t, &["--list"]), Vec::<Value>::new(), "--list does not show the pool");
    let all_git = create(&t, &["--list", "--all-git"]);
    assert_eq!(all_git.iter().filter(|r| r["pooled"] == true).count(), 2, "{all_git:?}");

    let claimed = &create(&t, &["x"])[0];
    wait_for_refill(&t);
    create(&t, &["--pool", "0"]);
    let fresh = &create(&t, &["y"])[0];
    assert_eq!(claimed["claimed"], true, "{claimed}");
    assert_eq!(fresh.get("claimed"), None, "{fresh}");
    assert_eq!(s(claimed, "pool_base"), s(fresh, "base_commit"));
    for (rec, name) in [(claimed, "x"), (fresh, "y")] {
        let path = t.wt_root().join(name);
        assert_eq!(s(rec, "path"), path.to_string_lossy());
        assert_eq!(s(rec, "branch"), format!("wt/{name}"));
        assert_eq!(rec["created"], true);
        let admin = t.repo.join(".git/worktrees").join(name);
        assert_eq!(std::fs::read_to_string(admin.join("gitdir")).unwrap().trim(), path.join(".git").to_string_lossy());
        assert_eq!(std::fs::read_to_string(admin.join("HEAD")).unwrap(), format!("ref: refs/heads/wt/{name}\n"));
        assert_eq!(
            std::fs::read_to_string(path.join(".git")).unwrap(),
            format!("gitdir: {}\n", admin.display()),
            "the .git file"
        );
        assert_eq!(std::fs::read_to_string(path.join(".env")).unwrap(), "SECRET=1\n", "include files copied");
        assert_eq!(t.git_in(&path, ["status", "--porcelain"]), "");
        assert_eq!(t.git_in(&path, ["rev-parse", "--abbrev-ref", "HEAD"]), format!("wt/{name}"));
    }
    let keys = |r: &Value| {
        r.as_object()
            .unwrap()
            .keys()
            .filter(|k| !["claimed", "pool_base"].contains(&k.as_str()))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(claimed), keys(fresh), "the same record fields but claimed");
    for k in ["base", "base_commit", "head", "repo", "created"] {
        assert_eq!(claimed[k], fresh[k], "{k}");
    }
    let l = ledger(&t);
    let entry_keys = |n: &str| l["worktrees"][n].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(entry_keys("x"), entry_keys("y"), "the same ledger entry");
    assert_eq!(l["worktrees"]["x"]["base_commit"], l["worktrees"]["y"]["base_commit"]);
    let listed: Vec<String> = create(&t, &["--list"]).iter().map(|r| s(r, "name").to_string()).collect();
    assert_eq!(listed, ["x", "y"]);
    let status = t.run("wt-status", &["--all"], "");
    let names: BTreeSet<String> = status.records().iter().map(|r| s(r, "name").to_string()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["x".to_string(), "y".to_string()]),
        "wt-status sees no pooled worktree\n{status}"
    );
    // Removed as any worktree is.
    create(&t, &["--remove", "x", "y"]);
    assert_consistent(&t, "after removal");
    assert_eq!(t.git_worktrees().len(), 1);
}

#[test]
fn pool_zero_drains_the_pool() {
    let t = TestRepo::new();
    assert_eq!(create(&t, &["--pool", "3"]).len(), 3);
    assert_eq!(pooled(&t).len(), 3);
    assert_consistent(&t, "filled");
    assert_eq!(create(&t, &["--pool", "3"]), Vec::<Value>::new(), "a full pool: nothing to do");
    let drained = create(&t, &["--pool", "0"]);
    assert_eq!(drained.len(), 3, "{drained:?}");
    assert!(drained.iter().all(|r| r["removed"] == true && r["pooled"] == true), "{drained:?}");
    assert_eq!(t.git_worktrees().len(), 1, "only the main worktree");
    assert!(!t.wt_root().join(".pool").exists());
    assert_consistent(&t, "drained");
    // No target any more: a create makes a fresh worktree and starts no refill.
    let rec = &create(&t, &["a"])[0];
    assert_eq!(rec.get("claimed"), None);
    assert!(pooled(&t).is_empty());
}

/// `[create] pool = N` in wt.toml: the first create starts the pool, the next ones claim;
/// `--pool 0` then stops it for good.
#[test]
fn a_pool_set_in_wt_toml_is_filled_in_the_background_and_claimed() {
    let t = TestRepo::new();
    t.write("wt.toml", "[create]\npool = 2\n");
    t.commit("a pool");
    let first = &create(&t, &["a"])[0];
    assert_eq!(first.get("claimed"), None, "nothing pooled yet: {first}");
    wait_for_refill(&t);
    assert_eq!(pooled(&t).len(), 2, "filled in the background");
    let second = create(&t, &["-n", "2"]);
    assert!(second.iter().all(|r| r["claimed"] == true), "{second:?}");
    wait_for_refill(&t);
    assert_eq!(pooled(&t).len(), 2, "refilled");
    assert_consistent(&t, "config pool");
    create(&t, &["--pool", "0"]);
    assert_eq!(create(&t, &["b"])[0].get("claimed"), None);
    wait_for_refill(&t);
    assert!(pooled(&t).is_empty(), "--pool 0 wins over wt.toml");
}

#[test]
fn a_claim_whose_lock_file_differs_gets_a_fresh_worktree() {
    let t = TestRepo::new();
    t.write("package-lock.json", "{\"lockfileVersion\": 3}\n");
    t.commit("lock file");
    create(&t, &["--pool", "1"]);
    let (pool_path, pool_head) = pooled(&t)[0].clone();

    // The main worktree's lock file changed (dependencies being upgraded): not claimed.
    t.write("package-lock.json", "{\"lockfileVersion\": 3, \"packages\": {}}\n");
    let rec = &create(&t, &["a"])[0];
    assert_eq!(rec.get("claimed"), None, "{rec}");
    assert_eq!(pooled(&t), vec![(pool_path.clone(), pool_head.clone())], "the pooled one is kept");
    t.git(["checkout", "package-lock.json"]);

    // The base moved and its lock file changed: the pooled one cannot be advanced.
    t.write("package-lock.json", "{\"lockfileVersion\": 3, \"packages\": {\"a\": {}}}\n");
    t.commit("upgrade");
    let rec = &create(&t, &["b"])[0];
    assert_eq!(rec.get("claimed"), None, "{rec}");
    assert_eq!(
        std::fs::read_to_string(t.wt_root().join("b/package-lock.json")).unwrap(),
        "{\"lockfileVersion\": 3, \"packages\": {\"a\": {}}}\n"
    );
    // The refill replaced it with one on the new base.
    wait_for_refill(&t);
    let now = pooled(&t);
    assert_eq!(now.len(), 1);
    assert_ne!(now[0].0, pool_path, "replaced");
    assert_eq!(now[0].1, t.git(["rev-parse", "HEAD"]));
    let rec = &create(&t, &["c"])[0];
    assert_eq!(rec["claimed"], true, "{rec}");
    wait_for_refill(&t);
    assert_consistent(&t, "after the claims");
}

#[test]
fn a_pooled_worktree_a_few_files_behind_is_advanced_on_claim() {
    let t = TestRepo::new();
    create(&t, &["--pool", "1"]);
    let old = t.git(["rev-parse", "HEAD"]);
    t.write("src/new.rs", "pub fn g() {}\n");
    t.commit("a new file");
    let rec = &create(&t, &["a"])[0];
    assert_eq!(rec["claimed"], true, "{rec}");
    assert_eq!(s(rec, "pool_base"), old);
    assert_eq!(s(rec, "head"), t.git(["rev-parse", "HEAD"]));
    let path = t.wt_root().join("a");
    assert_eq!(std::fs::read_to_string(path.join("src/new.rs")).unwrap(), "pub fn g() {}\n");
    assert_eq!(t.git_in(&path, ["rev-parse", "HEAD"]), t.git(["rev-parse", "HEAD"]));
    wait_for_refill(&t);
    assert_consistent(&t, "advanced");
}

#[test]
fn four_claims_from_a_pool_of_four_while_the_base_moves_and_a_refill_runs() {
    let t = TestRepo::new();
    create(&t, &["--pool", "4"]);
    let old = t.git(["rev-parse", "HEAD"]);
    let first = create(&t, &["-n", "2"]);
    assert!(first.iter().all(|r| r["claimed"] == true), "{first:?}");
    // The refill is running now; the base moves under it.
    t.write("src/more.rs", "pub fn h() {}\n");
    t.commit("more");
    let new = t.git(["rev-parse", "HEAD"]);
    let second = create(&t, &["-n", "2"]);
    assert_eq!(second.len(), 2, "{second:?}");
    wait_for_refill(&t);
    let all: Vec<&Value> = first.iter().chain(&second).collect();
    let names: Vec<&str> = all.iter().map(|r| s(r, "name")).collect();
    assert_eq!(names, ["agent-1", "agent-2", "agent-3", "agent-4"]);
    for (rec, head) in all.iter().zip([&old, &old, &new, &new]) {
        assert_eq!(s(rec, "head"), head.as_str(), "{rec}");
        let path = Path::new(s(rec, "path"));
        assert_eq!(t.git_in(path, ["rev-parse", "HEAD"]), *head);
        assert_eq!(path.join("src/more.rs").exists(), head == &new);
    }
    assert_eq!(ledger_names(&t).len(), 4);
    let pool = pooled(&t);
    assert_eq!(pool.len(), 4, "refilled: {pool:?}");
    assert!(pool.iter().all(|(_, h)| *h == new), "on the new base: {pool:?}");
    assert_consistent(&t, "after four claims");
}

const CLAIM_POINTS: &[&str] = &[
    "claim-journal",
    "claim-moved",
    "claim-admin-moved",
    "claim-linked",
    "claim-advanced",
    "claim-branched",
    "claim-recorded",
];

/// Each step of a claim killed: the next run finishes it (a claimed worktree, adopted under its
/// name), an agent's work elsewhere is untouched, git and the ledger agree.
#[test]
fn a_claim_killed_at_each_step_leaves_a_claimed_worktree() {
    for point in CLAIM_POINTS {
        let t = TestRepo::new();
        create(&t, &["keep"]);
        std::fs::write(t.wt_root().join("keep/work.txt"), "an agent's work\n").unwrap();
        create(&t, &["--pool", "1"]);
        // Behind by a file, so that the claim also advances.
        t.write("src/more.rs", "pub fn h() {}\n");
        t.commit("more");
        let mut cmd = t.cmd("wt-create");
        cmd.arg("x").env("WT_FAILPOINT", point);
        let run = Run::of(&mut cmd, "");
        assert_eq!(run.code, None, "{point}: killed\n{run}");
        let list = t.git(["worktree", "list", "--porcelain"]);
        assert!(!list.contains("prunable"), "{point}: git sees nothing broken even before the next run:\n{list}");
        let listed = create(&t, &["--list"]);
        let rec = &create(&t, &["x"])[0];
        assert_eq!(rec["created"], false, "{point}: the claim was finished, then adopted\n{rec}");
        assert_eq!(s(rec, "branch"), "wt/x", "{point}");
        assert_eq!(s(rec, "path"), t.wt_root().join("x").to_string_lossy(), "{point}");
        assert!(listed.iter().any(|r| r["name"] == "x"), "{point}: --list finished the claim: {listed:?}");
        let path = t.wt_root().join("x");
        assert_eq!(t.git_in(&path, ["rev-parse", "HEAD"]), t.git(["rev-parse", "HEAD"]), "{point}: advanced");
        assert!(path.join("src/more.rs").exists(), "{point}");
        assert_eq!(std::fs::read_to_string(t.wt_root().join("keep/work.txt")).unwrap(), "an agent's work\n");
        assert!(t.repo.join(".git/worktrees/x").is_dir(), "{point}: the admin dir has the fresh name");
        wait_for_refill(&t);
        assert_consistent(&t, point);
    }
}

const FILL_POINTS: &[&str] =
    &["pool-after-journal", "pool-after-register", "pool-after-checkout", "pool-after-include"];

/// A fill killed at each step, in the foreground and as the background refill: the next fill
/// removes the half-made pooled worktree and makes a whole one; a claim in between never takes
/// a half-made one.
#[test]
fn a_fill_killed_at_each_step_leaves_nothing_half_made() {
    for point in FILL_POINTS {
        let t = TestRepo::new();
        let mut cmd = t.cmd("wt-create");
        cmd.args(["--pool", "2"]).env("WT_FAILPOINT", point);
        assert_eq!(Run::of(&mut cmd, "").code, None, "{point}: killed");
        let list = t.git(["worktree", "list", "--porcelain"]);
        assert!(!list.contains("prunable"), "{point}: {list}");
        // A claim now takes nothing half made: a fresh worktree.
        let rec = &create(&t, &["a"])[0];
        assert_eq!(rec.get("claimed"), None, "{point}: {rec}");
        wait_for_refill(&t);
        assert_consistent(&t, point);
        assert_eq!(pooled(&t).len(), 2, "{point}: the refill made the pool whole");

        // The background refill killed at the same step.
        let mut cmd = t.cmd("wt-create");
        cmd.arg("b").env("WT_REFILL_FAILPOINT", point);
        let rec = &Run::of(&mut cmd, "").expect_code(0).records()[0];
        assert_eq!(rec["claimed"], true, "{point}: {rec}");
        wait_for_refill(&t);
        assert!(!t.git(["worktree", "list", "--porcelain"]).contains("prunable"), "{point}");
        create(&t, &["--pool", "2"]);
        assert_eq!(pooled(&t).len(), 2, "{point}: refilled after the killed refill");
        assert_consistent(&t, &format!("{point}, refill"));
    }
}

/// An advance and a removal killed: the pooled worktree is removed and made again.
#[test]
fn an_advance_or_a_drain_killed_leaves_nothing_half_made() {
    let t = TestRepo::new();
    create(&t, &["--pool", "1"]);
    t.write("src/more.rs", "pub fn h() {}\n");
    t.commit("more");
    let mut cmd = t.cmd("wt-create");
    cmd.args(["--pool", "1"]).env("WT_FAILPOINT", "pool-after-advance");
    assert_eq!(Run::of(&mut cmd, "").code, None, "killed");
    create(&t, &["--pool", "1"]);
    assert_eq!(pooled(&t).iter().map(|p| p.1.clone()).collect::<Vec<_>>(), [t.git(["rev-parse", "HEAD"])]);
    assert_consistent(&t, "advance");

    let mut cmd = t.cmd("wt-create");
    cmd.args(["--pool", "0"]).env("WT_FAILPOINT", "pool-removing");
    assert_eq!(Run::of(&mut cmd, "").code, None, "killed");
    assert!(!t.git(["worktree", "list", "--porcelain"]).contains("prunable"));
    create(&t, &["--list"]);
    create(&t, &["--pool", "0"]);
    assert!(pooled(&t).is_empty());
    assert_consistent(&t, "drain");
}

/// `--remove --all --purge` leaves nothing of the pool either: its worktrees, their directory,
/// its journals.
#[test]
fn purge_leaves_nothing_of_the_pool() {
    let t = TestRepo::new();
    create(&t, &["--pool", "2"]);
    create(&t, &["a"]);
    wait_for_refill(&t);
    let run = t.run("wt-create", &["--remove", "--all", "--purge", "--yes"], "");
    run.expect_code(0);
    assert_eq!(t.git_worktrees().len(), 1, "{run}");
    assert!(!t.wt_root().exists(), "{run}");
    assert!(!t.repo.join(".git/wt").exists());
    assert!(!run.stderr.contains("kept"), "{run}");
}

/// A pool filled with `--share` holds the shared directory; a claim with the same `--share`
/// takes it (its record says what was shared, `--share-status` knows it by its name), and its
/// refill shares as the pool was asked to.
#[test]
fn a_pooled_worktree_holds_its_shared_directory_and_the_claim_keeps_it() {
    let t = TestRepo::new();
    t.write(".gitignore", "node_modules/\n");
    t.write("package-lock.json", "{\"lockfileVersion\": 3}\n");
    t.commit("npm");
    t.write("node_modules/left-pad/index.js", "module.exports = 1;\n");
    let filled = create(&t, &["--pool", "1", "--share", "node_modules"]);
    assert_eq!(filled[0]["share"]["dirs"][0]["status"], "shared", "{filled:?}");
    let rec = &create(&t, &["a", "--share", "node_modules"])[0];
    assert_eq!(rec["claimed"], true, "{rec}");
    assert_eq!(rec["share"]["dirs"][0]["dir"], "node_modules", "{rec}");
    let path = t.wt_root().join("a");
    assert_eq!(std::fs::read_to_string(path.join("node_modules/left-pad/index.js")).unwrap(), "module.exports = 1;\n");
    let status = create(&t, &["--share-status"]);
    assert!(status.iter().any(|r| r["name"] == "a"), "{status:?}");
    // Without the same sharing, a create is not handed a worktree with node_modules in it.
    wait_for_refill(&t);
    let plain = &create(&t, &["b"])[0];
    assert_eq!(plain.get("claimed"), None, "{plain}");
    assert!(!t.wt_root().join("b/node_modules").exists());
    let refilled = pooled(&t);
    assert_eq!(refilled.len(), 1);
    assert!(refilled[0].0.join("node_modules/left-pad/index.js").is_file(), "the refill shared too");
    assert_consistent(&t, "shared");
}

/// Runs `wt-create args`, killed if it has not ended within two minutes (a fill that never
/// ends is the bug some tests look for).
fn create_within(t: &TestRepo, args: &[&str]) -> Run {
    let mut child = t
        .cmd("wt-create")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("wt-create {args:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from_output(child.wait_with_output().unwrap())
}

/// Making a pooled worktree keeps failing (here: `.worktreeinclude` is a symlink, which wt
/// never follows): the fill stops at the first failure with the error, the background refill
/// ends, and the next create does not start another one at once.
#[test]
fn a_fill_that_keeps_failing_stops_at_the_first_failure() {
    let t = TestRepo::new();
    t.write("wt.toml", "[create]\npool = 2\n");
    t.write(".gitignore", ".env\n");
    t.commit("a pool");
    t.write(".env", "SECRET=1\n");
    t.write("../inc", ".env\n");
    std::os::unix::fs::symlink("../inc", t.repo.join(".worktreeinclude")).unwrap();
    let first = create_within(&t, &["x"]);
    wait_for_refill(&t);
    let failed = t.repo.join(".git/wt/pool/fill.failed");
    assert!(failed.exists(), "the refill noted its failure: {:?}", first);
    let noted = std::fs::metadata(&failed).unwrap().modified().unwrap();
    create_within(&t, &["y"]);
    assert_eq!(refills_running(&t), 0, "no refill started after a failure");
    wait_for_refill(&t);
    assert_eq!(std::fs::metadata(&failed).unwrap().modified().unwrap(), noted, "no refill ran again");
    let run = create_within(&t, &["--pool", "2"]);
    assert!(run.code.is_some_and(|c| c != 0), "the fill reports its failure: {run}");
    assert!(run.stderr.contains("pooled worktree"), "{}", run.stderr);
    assert!(pooled(&t).is_empty(), "nothing half made");
}

/// The pool's directories vanished (`rm -rf .pool`): a create drops those pooled worktrees
/// and makes a fresh one, every time, and leaves no stale admin dir behind.
#[test]
fn a_pool_whose_directories_are_gone_is_dropped_and_the_create_goes_on() {
    let t = TestRepo::new();
    create(&t, &["--pool", "2"]);
    std::fs::remove_dir_all(t.wt_root().join(".pool")).unwrap();
    let rec = &create(&t, &["a"])[0];
    assert_eq!(rec.get("claimed"), None, "{rec}");
    assert_eq!(rec["created"], true, "{rec}");
    wait_for_refill(&t);
    assert_eq!(t.git_in(&t.wt_root().join("a"), ["rev-parse", "--abbrev-ref", "HEAD"]), "wt/a");
    assert!(!t.repo.join(".git/worktrees/a1").exists(), "no second admin dir for a");
    assert_consistent(&t, "after the pool vanished");
}

/// A claimer killed right after its journal, then a directory of someone's put where the
/// claim was going: the next run drops the claim and leaves that directory alone.
#[test]
fn a_dead_claim_is_never_finished_onto_a_directory_that_is_not_its_own() {
    let t = TestRepo::new();
    create(&t, &["--pool", "1"]);
    let (pool_path, _) = pooled(&t)[0].clone();
    let mut cmd = t.cmd("wt-create");
    cmd.arg("a");
    drop(wt_tests::StoppedAt::spawn(&mut cmd, "claim-journal")); // killed there
    let mine = t.wt_root().join("a");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "mine\n").unwrap();
    create(&t, &["--list"]);
    assert!(!mine.join(".git").exists(), "the foreign directory did not become a worktree");
    assert_eq!(std::fs::read_to_string(mine.join("notes.txt")).unwrap(), "mine\n");
    assert_eq!(t.git_worktrees().len(), 1, "the dead claim's pooled worktree went");
    assert!(!pool_path.exists());
    assert!(!t.repo.join(".git/worktrees/a").exists());
    assert_consistent(&t, "after the dropped claim");
}

/// A claim that fails once the pooled worktree was moved (here git refuses branch `wt/foo`, as
/// `wt/foo/x` exists) is undone: the worktree goes back to the pool, whole, and the create
/// fails as a fresh one would, leaving nothing.
#[test]
fn a_claim_that_fails_is_put_back_in_the_pool() {
    let t = TestRepo::new();
    create(&t, &["--pool", "1"]);
    let before = pooled(&t);
    t.git(["branch", "wt/foo/x"]);
    let run = t.run("wt-create", &["foo"], "");
    assert!(run.code.is_some_and(|c| c != 0), "{run}");
    assert!(!t.wt_root().join("foo").exists(), "{run}");
    assert_eq!(pooled(&t), before, "put back in the pool");
    assert!(!ledger_names(&t).contains("foo"));
    assert_consistent(&t, "after the failed claim");
    let rec = &create(&t, &["bar"])[0];
    assert_eq!(rec["claimed"], true, "the put-back worktree is claimed: {rec}");
    wait_for_refill(&t);
    assert_consistent(&t, "after the next claim");
}

/// Someone wrote into a pooled worktree (a tracked file saved as editors save, by a rename;
/// one removed; an untracked file; a changed include file; a lock file in its admin dir): none
/// is handed out; each is removed and the create makes a fresh worktree. (A tracked file
/// rewritten in place is caught by the next refill:
/// `a_tracked_file_rewritten_in_place_is_caught_by_the_next_refill`.)
#[test]
fn a_pooled_worktree_someone_wrote_into_is_never_handed_out() {
    type Tamper = fn(&Path, &Path);
    let tampers: [(&str, Tamper); 8] = [
        // A staged change matches the files (diff-files sees nothing), and one hidden from
        // git with assume-unchanged is seen by nothing but the index's flags.
        ("staged", |p, _| {
            std::fs::write(p.join("src/lib.rs"), "evil()\n").unwrap();
            assert!(std::process::Command::new("git")
                .arg("-C")
                .arg(p)
                .args(["add", "src/lib.rs"])
                .status()
                .unwrap()
                .success());
        }),
        ("assume-unchanged", |p, _| {
            let git = |args: &[&str]| std::process::Command::new("git").arg("-C").arg(p).args(args).status().unwrap();
            assert!(git(&["update-index", "--assume-unchanged", "README"]).success());
            std::fs::write(p.join("README"), "evil\n").unwrap();
        }),
        ("ignored", |p, _| {
            std::fs::create_dir_all(p.join("x")).unwrap();
            std::fs::write(p.join("x/.env"), "EVIL=1\n").unwrap();
        }),
        ("tracked", |p, _| {
            std::fs::write(p.join("src/lib.rs.swp"), "evil()\n").unwrap();
            std::fs::rename(p.join("src/lib.rs.swp"), p.join("src/lib.rs")).unwrap();
        }),
        ("removed", |p, _| std::fs::remove_file(p.join("src/lib.rs")).unwrap()),
        ("untracked", |p, _| std::fs::write(p.join("planted"), "x\n").unwrap()),
        ("include", |p, _| std::fs::write(p.join(".env"), "SECRET=other\n").unwrap()),
        ("lock", |_, admin| std::fs::write(admin.join("index.lock"), "").unwrap()),
    ];
    for (what, tamper) in tampers {
        let t = TestRepo::new();
        t.write(".gitignore", ".env\n");
        t.write(".worktreeinclude", ".env\n");
        t.commit("include .env");
        t.write(".env", "SECRET=1\n");
        create(&t, &["--pool", "1"]);
        let (path, _) = pooled(&t)[0].clone();
        tamper(&path, &t.repo.join(".git/worktrees").join(path.file_name().unwrap()));
        let rec = &create(&t, &["a"])[0];
        assert_eq!(rec.get("claimed"), None, "{what}: {rec}");
        assert!(!path.exists(), "{what}: the tampered one was removed");
        let a = t.wt_root().join("a");
        assert_eq!(t.git_in(&a, ["status", "--porcelain"]), "", "{what}");
        assert_eq!(std::fs::read_to_string(a.join(".env")).unwrap(), "SECRET=1\n", "{what}");
        wait_for_refill(&t);
        assert_consistent(&t, what);
    }
}

/// A claim trusts a pooled worktree's seal (the stat data of its directories, include files
/// and index, taken when it was filled) instead of reading the whole checkout: no
/// `git diff-files` or `git ls-files` runs in it. A seal broken by a write that left nothing
/// behind (a file made and removed) costs the whole check, which finds it untouched: it is
/// still claimed.
#[test]
fn a_claim_checks_the_seal_not_the_whole_checkout() {
    let t = TestRepo::new();
    create(&t, &["--pool", "2"]);
    // No refill after these claims (its git would trace too): a fill that failed lately holds
    // the claims' refills back for a while.
    std::fs::write(t.repo.join(".git/wt/pool/fill.failed"), "held back by the test\n").unwrap();
    let trace = t.root().join("git-trace");
    let claim = |name: &str| {
        let _ = std::fs::remove_file(&trace);
        let mut cmd = t.cmd("wt-create");
        cmd.arg(name).env("GIT_TRACE", &trace);
        let run = Run::of(&mut cmd, "");
        run.expect_code(0);
        let log = std::fs::read_to_string(&trace).unwrap_or_default();
        let whole = log.lines().filter(|l| l.contains("git diff-files") || l.contains("git ls-files")).count();
        (run.records().remove(0), whole, log)
    };
    let (rec, whole, log) = claim("a");
    assert_eq!(rec["claimed"], true, "{rec}");
    assert_eq!(whole, 0, "the claim read the whole checkout:\n{log}");
    let (path, _) = pooled(&t)[0].clone();
    std::fs::write(path.join("src/tmp"), "x").unwrap();
    std::fs::remove_file(path.join("src/tmp")).unwrap();
    let (rec, whole, log) = claim("b");
    assert_eq!(rec["claimed"], true, "a seal broken by nothing that stayed: {rec}");
    assert!(whole >= 2, "a broken seal costs the whole check:\n{log}");
    assert_eq!(t.git_in(&t.wt_root().join("b"), ["status", "--porcelain"]), "");
    assert_consistent(&t, "after the claims");
}

/// A tracked file rewritten in place changes no directory, so a pooled worktree's seal does not
/// see it; the refill that follows every claim (and `--pool N`) checks each pooled worktree
/// whole and replaces one written into: the next claim gets a clean one.
#[test]
fn a_tracked_file_rewritten_in_place_is_caught_by_the_next_refill() {
    let t = TestRepo::new();
    create(&t, &["--pool", "1"]);
    let (path, _) = pooled(&t)[0].clone();
    std::fs::write(path.join("src/lib.rs"), "evil()\n").unwrap();
    let refilled = create(&t, &["--pool", "1"]);
    assert!(!path.exists(), "the rewritten one was removed: {refilled:?}");
    assert!(refilled.iter().any(|r| r["removed"] == true), "its removal is reported: {refilled:?}");
    assert_eq!(pooled(&t).len(), 1, "and replaced");
    let rec = &create(&t, &["a"])[0];
    assert_eq!(rec["claimed"], true, "{rec}");
    let a = t.wt_root().join("a");
    assert_eq!(t.git_in(&a, ["status", "--porcelain"]), "");
    wait_for_refill(&t);
    assert_consistent(&t, "after the refill");
}

/// Links planted in the pool are never followed: a pooled directory replaced by a link to
/// another one is not claimed (nothing is written into the link's target), and `.pool` made a
/// link to a directory elsewhere is not filled there.
#[test]
fn links_planted_in_the_pool_are_never_followed() {
    let t = TestRepo::new();
    create(&t, &["--pool", "1"]);
    let (path, _) = pooled(&t)[0].clone();
    let elsewhere = t.root().join("elsewhere");
    std::fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let rec = &create(&t, &["a"])[0];
    assert_eq!(rec.get("claimed"), None, "{rec}");
    assert!(t.wt_root().join("a").symlink_metadata().unwrap().is_dir(), "a is a real directory");
    assert!(elsewhere.join("src/lib.rs").exists(), "the link's target is left as it was");
    wait_for_refill(&t);
    create(&t, &["--pool", "0"]);

    let outside = t.root().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::remove_dir(t.wt_root().join(".pool")).ok();
    std::os::unix::fs::symlink(&outside, t.wt_root().join(".pool")).unwrap();
    create(&t, &["--pool", "1"]);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing was made outside the root");
    assert!(t.wt_root().join(".pool").symlink_metadata().unwrap().is_dir(), "a real .pool");
    assert_eq!(pooled(&t).len(), 1);
    assert_consistent(&t, "after the links");
}

/// A FIFO or a link planted as `refill.log` neither hangs the claim nor truncates the link's
/// target; the refill then logs nowhere.
#[test]
fn a_fifo_or_a_link_as_the_refill_log_is_left_alone() {
    let t = TestRepo::new();
    create(&t, &["--pool", "1"]);
    let log = t.repo.join(".git/wt/pool/refill.log");
    let _ = std::fs::remove_file(&log);
    nix::unistd::mkfifo(&log, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let run = create_within(&t, &["a"]);
    assert_eq!(run.records()[0]["claimed"], true, "{run}");
    wait_for_refill(&t);
    std::fs::remove_file(&log).unwrap();
    let target = t.root().join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    std::os::unix::fs::symlink(&target, &log).unwrap();
    create(&t, &["b"]);
    wait_for_refill(&t);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    assert_consistent(&t, "after the planted logs");
}

/// A claim killed while it advances a pooled worktree a few files behind (git killed in its
/// checkout leaves `index.lock`): the advance ran while it was still pooled, so the next run
/// removes it and the create makes a whole worktree on its branch.
#[test]
fn a_claim_killed_in_its_advance_leaves_no_broken_worktree() {
    let t = TestRepo::new();
    create(&t, &["--pool", "1"]);
    let (path, _) = pooled(&t)[0].clone();
    t.write("src/more.rs", "pub fn h() {}\n");
    t.commit("more");
    let mut cmd = t.cmd("wt-create");
    cmd.arg("a");
    let stopped = wt_tests::StoppedAt::spawn(&mut cmd, "claim-pool-advanced");
    std::fs::write(t.repo.join(".git/worktrees").join(path.file_name().unwrap()).join("index.lock"), "").unwrap();
    drop(stopped); // killed there
    let rec = &create(&t, &["a"])[0];
    assert_eq!(s(rec, "branch"), "wt/a", "{rec}");
    let a = t.wt_root().join("a");
    assert_eq!(t.git_in(&a, ["rev-parse", "--abbrev-ref", "HEAD"]), "wt/a");
    assert_eq!(t.git_in(&a, ["rev-parse", "HEAD"]), t.git(["rev-parse", "HEAD"]));
    assert!(a.join("src/more.rs").exists());
    wait_for_refill(&t);
    assert_consistent(&t, "after the killed advance");
}

/// The main worktree's lock file changed: the pool no longer matches, so the create that
/// could not claim starts a refill that replaces it, and the next create claims again.
#[test]
fn a_pool_that_no_longer_matches_is_replaced() {
    let t = TestRepo::new();
    t.write("package-lock.json", "{\"lockfileVersion\": 3}\n");
    t.commit("lock file");
    create(&t, &["--pool", "1"]);
    let (old, _) = pooled(&t)[0].clone();
    t.write("package-lock.json", "{\"lockfileVersion\": 3, \"packages\": {}}\n");
    assert_eq!(create(&t, &["a"])[0].get("claimed"), None);
    wait_for_refill(&t);
    let now = pooled(&t);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0].0, old, "replaced by one that matches");
    assert_eq!(create(&t, &["b"])[0]["claimed"], true);
    wait_for_refill(&t);
    assert_consistent(&t, "after the replacement");
}

/// `[create] pool = N` is the default base's pool only: a create with `--base` does not start
/// a pool of that base; `--pool 0` without `--base` drains the pools of every base.
#[test]
fn the_configured_pool_is_the_default_bases_and_pool_zero_drains_every_base() {
    let t = TestRepo::new();
    t.write("wt.toml", "[create]\npool = 1\n");
    t.commit("a pool");
    t.git(["branch", "other"]);
    create(&t, &["--base", "other", "x"]);
    wait_for_refill(&t);
    assert!(pooled(&t).is_empty(), "no pool of 'other' from wt.toml: {:?}", pooled(&t));
    create(&t, &["--pool", "1", "--base", "other"]);
    create(&t, &["--pool", "1"]);
    assert_eq!(pooled(&t).len(), 2);
    let drained = create(&t, &["--pool", "0"]);
    assert_eq!(drained.len(), 2, "{drained:?}");
    assert!(pooled(&t).is_empty());
    assert_consistent(&t, "drained");
}

/// The pid of this test's refill, once it has stopped at its failpoint.
fn stopped_refill(t: &TestRepo) -> i32 {
    let root = t.wt_root();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            let ours =
                args.contains(&b"--pool-refill".as_slice()) && args.contains(&root.as_os_str().as_encoded_bytes());
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let stopped = stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'));
            if ours && stopped {
                return pid;
            }
        }
        assert!(std::time::Instant::now() < deadline, "the refill never stopped at its failpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--pool 0` while a refill is making pooled worktrees: the refill reads the size again at
/// each step, so it makes no more and drains the pool itself.
#[test]
fn a_refill_stops_making_once_the_pool_is_set_to_zero() {
    let t = TestRepo::new();
    create(&t, &["--pool", "3"]);
    let mut claim = t.cmd("wt-create");
    claim.args(["-n", "2"]).env("WT_REFILL_FAILPOINT", "pool-after-checkout:stop");
    Run::of(&mut claim, "").expect_code(0);
    let refill = stopped_refill(&t);
    let mut drain = t.cmd("wt-create");
    drain.args(["--pool", "0"]).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped());
    let drain = drain.spawn().unwrap();
    let target = t.repo.join(".git/wt/pool/target.json");
    while !std::fs::read_to_string(&target).unwrap_or_default().contains("\"size\": 0") {
        std::thread::sleep(Duration::from_millis(20));
    }
    let go_on = || nix::sys::signal::kill(nix::unistd::Pid::from_raw(refill), nix::sys::signal::Signal::SIGCONT);
    go_on().unwrap();
    // A refill that still made pooled worktrees stops at its failpoint again: let it go on, and
    // count it.
    let mut made_more = 0;
    let mut drain = drain;
    while drain.try_wait().unwrap().is_none() {
        let stat = std::fs::read_to_string(format!("/proc/{refill}/stat")).unwrap_or_default();
        if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T')) {
            made_more += 1;
            go_on().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let drained = Run::from_output(drain.wait_with_output().unwrap());
    drained.expect_code(0);
    wait_for_refill(&t);
    assert_eq!(made_more, 0, "the refill made no more pooled worktrees after --pool 0");
    assert_eq!(drained.records(), Vec::<Value>::new(), "the refill drained the pool itself: {drained}");
    assert!(pooled(&t).is_empty());
    assert_consistent(&t, "after the drain");
}

/// A claim with `--base` takes from that base's pool first; when it takes from another base's
/// pool, that pool is refilled.
#[test]
fn a_claim_prefers_its_bases_pool_and_refills_the_pool_it_took_from() {
    let t = TestRepo::new();
    t.git(["branch", "other"]);
    let main_pool = s(&create(&t, &["--pool", "1"])[0], "path").to_string();
    let other_pool = s(&create(&t, &["--pool", "1", "--base", "other"])[0], "path").to_string();
    let rec = &create(&t, &["--base", "other", "x"])[0];
    assert_eq!(rec["claimed"], true, "{rec}");
    assert!(Path::new(&main_pool).exists(), "main's pool is left alone");
    assert!(!Path::new(&other_pool).exists(), "other's pooled worktree was claimed");
    wait_for_refill(&t);
    create(&t, &["--pool", "0", "--base", "other"]);
    let rec = &create(&t, &["--base", "other", "y"])[0];
    assert_eq!(rec["claimed"], true, "from main's pool: {rec}");
    wait_for_refill(&t);
    assert_eq!(pooled(&t).len(), 1, "main's pool refilled: {:?}", pooled(&t));
    assert_consistent(&t, "after the claims across bases");
}

/// A name shaped like a pooled worktree's id is refused (its notes would be the pool's).
#[test]
fn a_name_like_a_pool_id_is_refused() {
    let t = TestRepo::new();
    let run = t.run("wt-create", &["p123x456"], "");
    run.expect_code(2);
    assert!(run.stderr.contains("the pool's"), "{run}");
    assert_eq!(t.git_worktrees().len(), 1);
    let fine = &create(&t, &["p123"])[0];
    assert_eq!(fine["created"], true, "{fine}");
}
