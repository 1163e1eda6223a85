//! wt-merge, end to end: real repositories, real worktrees, real verification commands.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use wt_tests::{s, Run, TestRepo};

/// A repository with worktrees whose branches each commit `files` (path, content).
fn repo_with(branches: &[(&str, &[(&str, &str)])]) -> TestRepo {
    let t = TestRepo::new();
    t.write("shared.txt", "a\nb\nc\n");
    t.commit("shared file");
    for (name, files) in branches {
        t.run("wt-create", &[name], "").expect_code(0);
        let wt = t.wt_root().join(name);
        for (path, text) in *files {
            let p = wt.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        t.git_in(&wt, ["add", "-A"]);
        t.git_in(&wt, ["commit", "-q", "-m", &format!("work of {name}")]);
    }
    t
}

fn merge_of(rec: &Value) -> &Value {
    &rec["merge"]
}

fn main_head(t: &TestRepo) -> String {
    t.git(["rev-parse", "main"])
}

fn list(t: &TestRepo) -> String {
    t.run("wt-create", &["--list"], "").expect_code(0).stdout.clone()
}

#[test]
fn check_builds_the_conflict_matrix_in_memory() {
    let t = repo_with(&[
        ("one", &[("shared.txt", "ONE\nb\nc\n")]),
        ("two", &[("shared.txt", "TWO\nb\nc\n")]),
        ("three", &[("other.txt", "x\n")]),
    ]);
    t.write("shared.txt", "MAIN\nb\nc\n");
    t.commit("main changes the same line");
    let before = (main_head(&t), t.git(["status", "--porcelain"]), t.git(["stash", "list"]));
    let run = t.run("wt-merge", &["--check"], &list(&t));
    run.expect_code(1);
    let recs = run.records();
    let by = |n: &str| recs.iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(merge_of(&by("one"))["status"], "conflict");
    assert_eq!(merge_of(&by("one"))["conflicts"], serde_json::json!(["shared.txt"]));
    assert_eq!(merge_of(&by("one"))["conflicts_with"], serde_json::json!(["two"]));
    assert_eq!(merge_of(&by("three"))["status"], "would-merge");
    assert_eq!(merge_of(&by("three"))["conflicts_with"], serde_json::json!([]));
    assert_eq!((main_head(&t), t.git(["status", "--porcelain"]), t.git(["stash", "list"])), before, "nothing touched");
}

#[test]
fn check_reads_exactly_the_branches_the_records_name() {
    let t = repo_with(&[("kept", &[("k.txt", "k\n")]), ("gone", &[("g.txt", "g\n")])]);
    let records = list(&t);
    // The branch goes, and a branch below its name appears: `wt/gone/later` is not `wt/gone`.
    t.git(["worktree", "remove", "--force", t.wt_root().join("gone").to_str().unwrap()]);
    t.git(["branch", "-D", "wt/gone"]);
    t.git(["branch", "wt/gone/later", "main"]);
    let run = t.run("wt-merge", &["--check"], &records);
    run.expect_code(1);
    let recs = run.records();
    let by = |n: &str| recs.iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(by("gone")["error"]["code"], "no-such-branch", "{run}");
    assert_eq!(merge_of(&by("kept"))["status"], "would-merge", "{run}");
    // An unknown target is a usage error before anything is merged.
    let run = t.run("wt-merge", &["--check", "--into", "nope"], &records);
    run.expect_code(2);
    assert!(run.stderr.contains("no branch 'nope'"), "{run}");
    assert!(run.records().is_empty(), "{run}");
}

#[test]
fn clean_branches_merge_in_order_and_a_conflict_leaves_the_target_alone() {
    let t = repo_with(&[
        ("one", &[("shared.txt", "ONE\nb\nc\n")]),
        ("two", &[("shared.txt", "TWO\nb\nc\n")]),
        ("three", &[("three.txt", "3\n")]),
    ]);
    let run = t.run("wt-merge", &["--verify", "test -f shared.txt"], &list(&t));
    run.expect_code(1);
    let recs = run.records();
    let status: Vec<(&str, &str)> = recs.iter().map(|r| (s(r, "name"), s(merge_of(r), "status"))).collect();
    assert_eq!(status, [("one", "merged"), ("three", "merged"), ("two", "conflict")]);
    assert_eq!(merge_of(&recs[2])["conflicts"], serde_json::json!(["shared.txt"]));
    assert_eq!(s(merge_of(&recs[1]), "commit"), main_head(&t));
    // The main worktree has main checked out: its files followed, and it is clean.
    assert_eq!(std::fs::read_to_string(t.repo.join("shared.txt")).unwrap(), "ONE\nb\nc\n");
    assert!(t.repo.join("three.txt").exists());
    assert_eq!(t.git(["status", "--porcelain"]), "");
    assert_eq!(t.git(["worktree", "list", "--porcelain"]).matches("worktree ").count(), 4, "no scratch worktree left");
    assert!(!t.git(["diff", "--name-only", "HEAD"]).contains("<<<<<<<"));
}

/// The scratch worktree a merge is verified in is checked out as `git worktree add` would:
/// the post-checkout hook runs there, with the arguments git gives it.
#[test]
fn the_verification_worktree_gets_the_post_checkout_hook() {
    use std::os::unix::fs::PermissionsExt;
    let t = repo_with(&[("one", &[("one.txt", "1\n")])]);
    let hook = t.repo.join(".git/hooks/post-checkout");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, "#!/bin/sh\necho \"$@\" > hooked-args\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let verify = r#"grep -qx "0\{40\} $WT_MERGE_COMMIT 1" hooked-args"#;
    let run = t.run("wt-merge", &["--verify", verify], &list(&t));
    run.expect_code(0);
    assert_eq!(s(merge_of(&run.records()[0]), "status"), "merged", "{run}");
    assert_eq!(t.git(["worktree", "list", "--porcelain"]).matches("worktree ").count(), 2, "no scratch worktree left");
}

#[test]
fn branches_that_pass_alone_but_break_together_never_both_land() {
    // Verification fails when both features are present.
    let t = repo_with(&[("a", &[("feature-a", "on\n")]), ("b", &[("feature-b", "on\n")])]);
    let verify = "! { test -f feature-a && test -f feature-b; }";
    for name in ["a", "b"] {
        let alone = t.run("wt-merge", &["--check", "-w", name], "");
        alone.expect_code(0);
    }
    let run = t.run("wt-merge", &["--verify", verify], &list(&t));
    run.expect_code(1);
    let recs = run.records();
    assert_eq!(merge_of(&recs[0])["status"], "merged");
    assert_eq!(merge_of(&recs[1])["status"], "verify-failed");
    assert!(t.repo.join("feature-a").exists() && !t.repo.join("feature-b").exists());
    // Every commit the target ever pointed at passed: only the merge of a.
    let reflog = t.git(["reflog", "--format=%gs", "refs/heads/main"]);
    assert!(reflog.contains("wt-merge: a into main") && !reflog.contains("wt-merge: b"), "{reflog}");
}

#[test]
fn a_commit_made_on_the_target_during_verification_is_kept() {
    let t = repo_with(&[("slow", &[("slow.txt", "s\n")])]);
    // The first verification makes a commit on main meanwhile (as a person might; a verify
    // command that names the main worktree is refused, so it goes there by $WT_REPO).
    let marker = t.root().join("sneaked");
    let verify = format!(
        "if [ ! -e '{m}' ]; then touch '{m}'; git -C \"$WT_REPO\" commit -q --allow-empty -m sneaky; fi; true",
        m = marker.display(),
    );
    let run = t.run("wt-merge", &["--verify", &verify], &list(&t));
    run.expect_code(0);
    let rec = &run.records()[0];
    assert_eq!(merge_of(rec)["status"], "merged");
    let log = t.git(["log", "--format=%s", "main"]);
    assert!(log.starts_with("Merge branch 'wt/slow' into main\nsneaky"), "merged again onto the new tip: {log}");
}

#[test]
fn squash_rebase_and_fast_forward_make_the_commits_a_person_expects() {
    let t = TestRepo::new();
    for name in ["sq", "rb", "ff"] {
        t.run("wt-create", &[name], "").expect_code(0);
    }
    let commit_as = |wt: &str, file: &str, author: &str| {
        let dir = t.wt_root().join(wt);
        std::fs::write(dir.join(file), file).unwrap();
        t.git_in(&dir, ["add", file]);
        t.git_in(
            &dir,
            [
                "-c",
                &format!("user.name={author}"),
                "-c",
                &format!("user.email={author}@x"),
                "commit",
                "-q",
                "-m",
                &format!("add {file}"),
            ],
        );
    };
    commit_as("sq", "s1", "Ann");
    commit_as("sq", "s2", "Bob");
    commit_as("rb", "r1", "Cy");
    commit_as("rb", "r2", "Cy");
    commit_as("ff", "f1", "Di");
    // ff first: main has not moved, so it can fast-forward.
    let ff = t.run("wt-merge", &["--unverified", "-w", "ff", "--strategy", "ff"], "");
    assert_eq!(merge_of(&ff.expect_code(0).records()[0])["status"], "merged");
    assert_eq!(main_head(&t), t.git(["rev-parse", "wt/ff"]));
    let sq = t.run("wt-merge", &["--unverified", "-w", "sq", "--strategy", "squash"], "");
    sq.expect_code(0);
    assert_eq!(t.git(["rev-list", "--count", "--no-merges", "HEAD~1..HEAD"]), "1", "one commit");
    let msg = t.git(["log", "-1", "--format=%B"]);
    assert!(msg.contains("add s1") && msg.contains("add s2") && msg.contains("Co-authored-by: Ann <Ann@x>"), "{msg}");
    assert_eq!(t.git(["log", "-1", "--format=%an"]), "Bob");
    let rb = t.run("wt-merge", &["--unverified", "-w", "rb", "--strategy", "rebase"], "");
    rb.expect_code(0);
    assert_eq!(t.git(["log", "-2", "--format=%s %an"]), "add r2 Cy\nadd r1 Cy", "linear, authors kept");
    assert_eq!(t.git(["rev-list", "--merges", "--count", "HEAD"]), "0");
    // Now main has moved past ff's base: a second ff branch cannot fast-forward.
    t.run("wt-create", &["late"], "").expect_code(0);
    let late = t.wt_root().join("late");
    t.git_in(&late, ["reset", "-q", "--hard", "HEAD~3"]);
    std::fs::write(late.join("l"), "l").unwrap();
    t.git_in(&late, ["add", "l"]);
    t.git_in(&late, ["commit", "-q", "-m", "late"]);
    let head = main_head(&t);
    let run = t.run("wt-merge", &["--unverified", "-w", "late", "--strategy", "ff"], "");
    run.expect_code(1);
    assert!(s(merge_of(&run.records()[0]), "reason").contains("fast-forward is impossible"));
    assert_eq!(main_head(&t), head);
}

#[test]
fn a_dirty_main_worktree_stops_the_ref_and_says_why() {
    let t = repo_with(&[("d", &[("d.txt", "d\n")])]);
    std::fs::write(t.repo.join("shared.txt"), "uncommitted\n").unwrap();
    let head = main_head(&t);
    let run = t.run("wt-merge", &["--unverified"], &list(&t));
    run.expect_code(1);
    let m = merge_of(&run.records()[0]).clone();
    assert_eq!(m["status"], "skipped");
    assert!(s(&m, "reason").contains("with 1 uncommitted change (shared.txt)"), "names the path: {m}");
    assert_eq!(main_head(&t), head);
    assert_eq!(std::fs::read_to_string(t.repo.join("shared.txt")).unwrap(), "uncommitted\n");
}

#[test]
fn sigkill_at_any_point_leaves_no_half_merge_and_no_scratch_worktree() {
    for point in ["after-scratch", "before-update", "after-update"] {
        let t = repo_with(&[("k", &[("k.txt", "k\n")])]);
        let head = main_head(&t);
        let mut cmd = t.cmd("wt-merge");
        cmd.args(["-w", "k", "--verify", "true"]).env("WT_FAILPOINT", point);
        let run = Run::of(&mut cmd, "");
        assert_eq!(run.code, None, "{point}: killed\n{run}");
        let moved = main_head(&t) != head;
        assert_eq!(moved, point == "after-update", "{point}: the ref moved only after the compare-and-swap");
        // The next run sweeps what was left and finishes the job.
        let again = t.run("wt-merge", &["-w", "k", "--verify", "true"], "");
        again.expect_code(0);
        let status = s(merge_of(&again.records()[0]), "status").to_string();
        assert!(status == "merged" || (moved && status == "skipped"), "{point}: {again}");
        assert_eq!(t.git(["worktree", "list", "--porcelain"]).matches("worktree ").count(), 2, "{point}");
        t.assert_no_verification_worktree(point);
        assert_eq!(t.git(["status", "--porcelain"]), "", "{point}: no half-merged index");
    }
}

/// What a wt-merge killed while the checked-out target's files followed its branch leaves
/// (found by the soak test): the branch moved, the index still at the old commit, some files
/// already written. The next run finishes the update; a file changed since by someone else
/// stops it, untouched.
#[test]
fn an_update_of_the_checkout_killed_part_way_is_finished_or_left_to_a_person() {
    for edited in [false, true] {
        let t = repo_with(&[("u", &[("shared.txt", "A\nb\nc\n"), ("README", "more\n"), ("new.txt", "new\n")])]);
        let old = main_head(&t);
        t.run("wt-merge", &["--unverified", "-w", "u"], "").expect_code(0);
        let new = main_head(&t);
        // The killed `read-tree -m -u`: shared.txt written, README and new.txt not yet, the
        // index not at all.
        t.git(["read-tree", &old]);
        std::fs::write(t.repo.join("README"), "hello\n").unwrap();
        std::fs::remove_file(t.repo.join("new.txt")).unwrap();
        if edited {
            std::fs::write(t.repo.join("shared.txt"), "someone's edit\n").unwrap();
        }
        let journal = serde_json::json!({"worktree": t.repo, "old": old, "new": new});
        std::fs::write(t.repo.join(".git/wt/merge-journal"), journal.to_string()).unwrap();
        let run = t.run("wt-merge", &["--unverified", "-w", "u"], "");
        if edited {
            run.expect_code(1);
            assert!(run.stderr.contains("shared.txt") && run.stderr.contains("was changed"), "{run}");
            assert_eq!(std::fs::read_to_string(t.repo.join("shared.txt")).unwrap(), "someone's edit\n");
            assert!(t.repo.join(".git/wt/merge-journal").exists(), "the update is still to be finished");
        } else {
            run.expect_code(0);
            assert_eq!(t.git(["status", "--porcelain"]), "", "index and files at the new commit\n{run}");
            assert_eq!(std::fs::read_to_string(t.repo.join("README")).unwrap(), "more\n");
            assert_eq!(std::fs::read_to_string(t.repo.join("new.txt")).unwrap(), "new\n");
            assert!(!t.repo.join(".git/wt/merge-journal").exists());
        }
    }
}

#[test]
fn a_killed_verification_in_progress_is_swept_by_the_next_run() {
    let t = repo_with(&[("v", &[("v.txt", "v\n")])]);
    let head = main_head(&t);
    let mut cmd = t.cmd("wt-merge");
    cmd.args(["-w", "v", "--verify", "sleep 30"]);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().unwrap();
    // Killed once the verify command runs: its log exists.
    let logs = t.repo.join(".git/wt/logs/v");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let started = || logs.exists() && !wt_tests::names_in(&logs, |n| n.starts_with("verify-")).is_empty();
    while !started() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(t.git(["worktree", "list"]).contains("v-verify-"), "the verification worktree was made");
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    let _ = child.wait_with_output();
    assert_eq!(main_head(&t), head);
    t.run("wt-merge", &["-w", "v", "--verify", "true"], "").expect_code(0);
    assert_eq!(t.git(["worktree", "list", "--porcelain"]).matches("worktree ").count(), 2);
    t.assert_no_verification_worktree("after the next run");
}

#[test]
fn undo_goes_back_unless_something_landed_on_top() {
    let t = repo_with(&[("u1", &[("u1", "1\n")]), ("u2", &[("u2", "2\n")])]);
    let before = main_head(&t);
    t.run("wt-merge", &["--unverified", "-w", "u1"], "").expect_code(0);
    let undo = t.run("wt-merge", &["--undo", "u1"], "");
    assert_eq!(merge_of(&undo.expect_code(0).records()[0])["status"], "undone");
    assert_eq!(main_head(&t), before);
    assert!(!t.repo.join("u1").exists(), "files followed the undo");
    t.run("wt-merge", &["--unverified", "-w", "u1"], "").expect_code(0);
    t.run("wt-merge", &["--unverified", "-w", "u2"], "").expect_code(0);
    let refused = t.run("wt-merge", &["--undo", "u1"], "");
    refused.expect_code(1);
    // u2's merge put two commits on top: its work and the merge commit.
    assert!(refused.stderr.contains("2 commit(s) on top") && refused.stderr.contains("wt/u2"), "{refused}");
}

/// An undo killed after it moved the target and before the files followed: the next wt-merge
/// finishes bringing the checkout along (the undo is journaled like a merge), and `--undo`
/// again forgets the merge, where the leftover once looked like the person's uncommitted change.
#[test]
fn an_undo_killed_half_way_is_finished_by_the_next_run() {
    let t = repo_with(&[("u1", &[("u1.txt", "u1\n")])]);
    let before = main_head(&t);
    t.run("wt-merge", &["--unverified", "-w", "u1"], "").expect_code(0);
    assert!(t.repo.join("u1.txt").exists());
    let mut killed = t.cmd("wt-merge");
    killed.args(["--undo", "u1"]).env("WT_FAILPOINT", "undo-moved");
    assert_eq!(Run::of(&mut killed, "").code, None, "killed");
    assert_eq!(main_head(&t), before, "the target moved back");
    let again = t.run("wt-merge", &["--undo", "u1"], "");
    assert_eq!(merge_of(&again.expect_code(0).records()[0])["status"], "undone", "{again}");
    assert!(!t.repo.join("u1.txt").exists(), "the files followed");
    assert_eq!(t.git(["status", "--porcelain"]), "", "nothing left looking like a change of the person's");
    assert_eq!(t.git(["for-each-ref", "refs/wt/"]), "", "the merge is forgotten");
}

#[test]
fn cleanup_removes_merged_worktrees_branches_and_leases() {
    let t = repo_with(&[("c", &[("c.txt", "c\n")])]);
    t.run("wt-env", &["-w", "c", "--range", "23500-23599"], "").expect_code(0);
    let run = t.run("wt-merge", &["--unverified", "--cleanup"], &list(&t));
    run.expect_code(0);
    assert_eq!(merge_of(&run.records()[0])["cleanup"]["removed"], true);
    assert!(!t.wt_root().join("c").exists());
    assert!(!t.branches().contains(&"wt/c".to_string()));
    let ledger: Value =
        serde_json::from_str(&std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap()).unwrap();
    assert!(ledger["worktrees"].get("c").is_none());
}

/// An agent that commits while its merge is verified: `--cleanup` keeps its worktree and
/// branch (that commit is not merged), where it once deleted the branch by name and lost it.
#[test]
fn cleanup_keeps_a_worktree_whose_branch_moved_while_its_merge_was_verified() {
    let t = repo_with(&[("late", &[("l.txt", "l\n")])]);
    let agent = t.wt_root().join("late");
    // The verification commits in the agent's worktree, as an agent working on would.
    let script = t.root().join("late-commit.sh");
    std::fs::write(
        &script,
        format!("git -C '{}' commit -q --allow-empty -m 'work after the merge'\n", agent.display()),
    )
    .unwrap();
    let verify = format!("sh '{}'", script.display());
    let run = t.run("wt-merge", &["--verify", &verify, "--cleanup"], &list(&t));
    run.expect_code(0);
    let merge = merge_of(&run.records()[0]).clone();
    assert_eq!(merge["status"], "merged", "{run}");
    assert_eq!(merge["cleanup"]["removed"], false, "{run}");
    assert!(merge["cleanup"]["error"].as_str().unwrap().contains("moved"), "{run}");
    assert!(agent.exists(), "the worktree stays");
    assert_eq!(
        t.git(["log", "-1", "--format=%s", "wt/late"]),
        "work after the merge",
        "and its branch with the commit"
    );
}

#[test]
fn failed_records_are_skipped_and_bad_input_is_refused() {
    let t = repo_with(&[("red", &[("r", "r\n")]), ("gone", &[("g", "g\n")]), ("hang", &[("h", "h\n")])]);
    let head = main_head(&t);
    let red = r#"{"v":1,"name":"red","branch":"wt/red","run":{"exit":3}}"#;
    let err = r#"{"v":1,"name":"x","error":{"tool":"wt-run","code":"c","message":"m"}}"#;
    let other = r#"{"v":1,"name":"alien","repo":"/somewhere/else","branch":"wt/alien"}"#;
    let input = format!("{red}\n{err}\n{other}\n");
    let run = t.run("wt-merge", &["--unverified"], &input);
    run.expect_code(1);
    // A line that is no record is reported with its number, the rest still handled, exit 2.
    let broken = t.run("wt-merge", &[], &format!("{{oops\n{red}\n"));
    broken.expect_code(2);
    assert!(broken.stderr.contains("line 1"), "{broken}");
    assert_eq!(broken.records().len(), 1);
    let recs = run.records();
    assert!(s(merge_of(&recs[0]), "reason").contains("exited 3"));
    assert_eq!(recs[1]["error"]["tool"], "wt-run", "passed through untouched");
    assert_eq!(recs[2]["error"]["code"], "other-repository");
    // A branch that no longer exists.
    let gone_path = t.wt_root().join("gone");
    t.git(["worktree", "remove", "--force", gone_path.to_str().unwrap()]);
    t.git(["branch", "-D", "wt/gone"]);
    let run = t.run("wt-merge", &["--unverified"], r#"{"v":1,"name":"gone","branch":"wt/gone"}"#);
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "no-such-branch");
    // A verification that hangs is stopped by --timeout and counts as failed.
    let run = t.run("wt-merge", &["-w", "hang", "--verify", "sleep 60", "--timeout", "500ms"], "");
    run.expect_code(1);
    let m = merge_of(&run.records()[0]).clone();
    assert_eq!(
        (m["status"].clone(), m["verify"]["timed_out"].clone()),
        (Value::from("verify-failed"), Value::Bool(true))
    );
    // An unknown target branch.
    let run = t.run("wt-merge", &["--into", "no-such-branch", "-w", "hang"], "");
    run.expect_code(2);
    assert!(run.stderr.contains("no branch 'no-such-branch'"));
    assert_eq!(main_head(&t), head, "nothing moved");
}

/// Without --verify, only a record that tested exactly the branch tip on a clean tree proves
/// it; a commit made after the run is untested, and says how to verify it.
#[test]
fn a_run_proves_the_tip_it_tested_and_a_later_commit_is_untested() {
    let t = repo_with(&[("p", &[("p.txt", "p\n")]), ("late", &[("late.txt", "1\n")])]);
    let tested = t.run("wt-run", &["-w", "p", "-w", "late", "--", "true"], "").expect_code(0).stdout.clone();
    // The agent commits a change after its run.
    let wt = t.wt_root().join("late");
    std::fs::write(wt.join("late.txt"), "2\n").unwrap();
    t.git_in(&wt, ["commit", "-qam", "after the run"]);
    let run = t.run("wt-merge", &[], &tested);
    run.expect_code(1);
    let recs = run.records();
    let p = recs.iter().find(|r| r["name"] == "p").unwrap();
    assert_eq!((s(merge_of(p), "status"), s(merge_of(p), "verified_by")), ("merged", "wt-run"), "{run}");
    let late = merge_of(recs.iter().find(|r| r["name"] == "late").unwrap());
    assert_eq!(s(late, "status"), "untested", "{run}");
    assert!(s(late, "reason").contains("committed after the test?") && s(late, "reason").contains("--verify"), "{run}");
    assert!(!t.git(["log", "--format=%s", "main"]).contains("after the run"), "the untested commit never landed");
    // The merge result differs from what was tested once main moved: untested too.
    let tested = t.run("wt-run", &["-w", "late", "--", "true"], "").expect_code(0).stdout.clone();
    let moved = t.run("wt-merge", &[], &tested);
    assert_eq!(s(merge_of(&moved.records()[0]), "status"), "untested", "{moved}");
    assert!(s(merge_of(&moved.records()[0]), "reason").contains("has moved since"), "{moved}");
    // --unverified merges it, and says so.
    let forced = t.run("wt-merge", &["--unverified"], &tested).expect_code(0).records();
    assert_eq!(
        (s(merge_of(&forced[0]), "status"), merge_of(&forced[0])["verified"].as_bool()),
        ("merged", Some(false))
    );
}

/// Dependencies that differ from the main worktree's are installed by `[merge] prepare` in the
/// verification worktree, never taken from the store; without one, nothing is merged.
#[test]
fn dependencies_that_differ_are_prepared_or_the_merge_is_held() {
    let t = TestRepo::new();
    t.write(".gitignore", "deps/\n");
    t.write("package-lock.json", "v1\n");
    t.commit("deps");
    std::fs::create_dir_all(t.repo.join("deps")).unwrap();
    std::fs::write(t.repo.join("deps/version"), "v1\n").unwrap();
    t.run("wt-create", &["up", "--share", "deps"], "").expect_code(0);
    let wt = t.wt_root().join("up");
    std::fs::write(wt.join("package-lock.json"), "v2\n").unwrap();
    t.git_in(&wt, ["commit", "-qam", "upgrade"]);
    let verify = "test \"$(cat deps/version)\" = \"$(cat package-lock.json)\"";
    let held = t.run("wt-merge", &["up", "--verify", verify], "");
    held.expect_code(1);
    let m = merge_of(&held.records()[0]).clone();
    assert_eq!(s(&m, "status"), "deps-differ", "{held}");
    assert!(
        s(&m, "reason").contains("deps (package-lock.json differs") && s(&m, "reason").contains("[merge] prepare"),
        "{held}"
    );
    let failing = t.run("wt-merge", &["up", "--verify", verify, "--prepare", "exit 3"], "");
    failing.expect_code(1);
    let v = merge_of(&failing.records()[0])["verify"].clone();
    assert_eq!((s(&v, "stage"), v["exit"].as_i64()), ("prepare", Some(3)), "{failing}");
    let prepare = "mkdir deps && cp package-lock.json deps/version";
    let merged = t.run("wt-merge", &["up", "--verify", verify, "--prepare", prepare], "");
    merged.expect_code(0);
    assert_eq!(s(merge_of(&merged.records()[0]), "status"), "merged", "{merged}");
    t.assert_no_verification_worktree("after prepare");
}

/// Bad verify commands: one that is not found says so in one line; one that hangs times out.
#[test]
fn a_verify_command_not_found_or_hanging_fails_with_what_happened() {
    let t = repo_with(&[("h", &[("h.txt", "h\n")])]);
    let head = main_head(&t);
    let missing = t.run("wt-merge", &["h", "--verify", "no-such-test-runner --all"], "");
    missing.expect_code(1);
    let v = merge_of(&missing.records()[0])["verify"].clone();
    assert_eq!(v["exit"].as_i64(), Some(127), "{missing}");
    assert!(v["tail"].to_string().contains("no-such-test-runner: not found"), "{missing}");
    let hang = t.run("wt-merge", &["h", "--verify", "echo collecting; exec sleep 60", "--timeout", "1s"], "");
    hang.expect_code(1);
    let v = merge_of(&hang.records()[0])["verify"].clone();
    assert_eq!(v["timed_out"], true, "{hang}");
    assert_eq!(s(&v, "excerpt"), "timed out after 1.0s\ncollecting\n", "said first, then how far it got: {hang}");
    assert_eq!(main_head(&t), head);
    t.assert_no_verification_worktree("after the failures");
}

/// A candidate cannot change the gate: not [merge] itself, not another section that runs
/// commands, and not through wt.toml made a symbolic link to a file it changes.
#[test]
fn a_candidate_that_changes_the_gate_is_held_however_it_does_it() {
    let t = TestRepo::new();
    t.write("wt.toml", "[merge]\nverify = \"test -f shared.txt\"\n");
    t.write("shared.txt", "a\n");
    t.commit("gate");
    let edits: [(&str, &[(&str, &str)]); 3] = [
        ("verify", &[("wt.toml", "[merge]\nverify = \"true\"\n")]),
        ("run", &[("wt.toml", "[merge]\nverify = \"test -f shared.txt\"\n[run]\non_waiting = \"touch x\"\n")]),
        ("benign", &[("wt.toml", "# a comment\n[merge]\n  verify = \"test -f shared.txt\"\n"), ("b.txt", "b\n")]),
    ];
    for (name, files) in edits {
        t.run("wt-create", &[name], "").expect_code(0);
        let wt = t.wt_root().join(name);
        for (path, text) in files {
            std::fs::write(wt.join(path), text).unwrap();
        }
        t.git_in(&wt, ["add", "-A"]);
        t.git_in(&wt, ["commit", "-qm", name]);
    }
    // wt.toml made a link to a file of the branch's own.
    t.run("wt-create", &["link"], "").expect_code(0);
    let wt = t.wt_root().join("link");
    std::fs::write(wt.join("gate.toml"), "[merge]\nverify = \"true\"\n").unwrap();
    std::fs::remove_file(wt.join("wt.toml")).unwrap();
    std::os::unix::fs::symlink("gate.toml", wt.join("wt.toml")).unwrap();
    t.git_in(&wt, ["add", "-A"]);
    t.git_in(&wt, ["commit", "-qm", "link"]);
    let run = t.run("wt-merge", &["link", "run", "verify"], "");
    run.expect_code(1);
    let benign = t.run("wt-merge", &["benign"], "");
    assert_eq!(s(merge_of(&benign.records()[0]), "status"), "merged", "the same values, written otherwise: {benign}");
    let status = |n: &str| {
        let rec = run.records().into_iter().find(|r| r["name"] == n).unwrap();
        let reason = merge_of(&rec)["reason"].as_str().unwrap_or_default().to_string();
        (s(merge_of(&rec), "status").to_string(), reason)
    };
    let (st, why) = status("verify");
    assert!(st == "gate-changed" && why.contains("[merge] of wt.toml") && why.contains("--allow-gate-change"), "{run}");
    assert_eq!(status("run").0, "gate-changed", "{run}");
    let (st, why) = status("link");
    assert!(st == "gate-changed" && why.contains("not a plain file"), "{run}");
}

/// A verification worktree a killed queue left is listed by `wt-create --list`; the next queue
/// removes it and does not take it for a candidate.
#[test]
fn a_verification_worktree_left_behind_is_no_candidate() {
    let t = repo_with(&[("c", &[("c.txt", "c\n")])]);
    let mut cmd = t.cmd("wt-merge");
    cmd.args(["c", "--verify", "true"]).env("WT_FAILPOINT", "after-scratch");
    assert_eq!(Run::of(&mut cmd, "").code, None, "killed");
    let listed = list(&t);
    assert!(listed.contains("c-verify-"), "{listed}");
    let run = t.run("wt-merge", &["--verify", "true"], &listed);
    run.expect_code(0);
    let recs = run.records();
    assert_eq!(recs.len(), 2, "{run}");
    let left = recs.iter().find(|r| s(r, "name").starts_with("c-verify-")).unwrap();
    assert_eq!(s(merge_of(left), "status"), "skipped", "{run}");
    assert_eq!(s(merge_of(recs.iter().find(|r| r["name"] == "c").unwrap()), "status"), "merged", "{run}");
    t.assert_no_verification_worktree("after the next queue");
}

/// A person's shell with the main worktree's virtualenv activated: its bin directory is taken
/// off PATH for the verification (it would run main's code), and the record says so.
#[test]
fn an_activated_virtualenv_of_the_main_worktree_is_not_on_the_verifications_path() {
    let t = repo_with(&[("v", &[("v.txt", "v\n")])]);
    let bin = t.repo.join(".venv/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("mytest"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(bin.join("mytest"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut cmd = t.cmd("wt-merge");
    cmd.args(["v", "--verify", "mytest"]).env("PATH", &path).env("VIRTUAL_ENV", t.repo.join(".venv"));
    let run = Run::of(&mut cmd, "");
    run.expect_code(1);
    let m = merge_of(&run.records()[0]).clone();
    assert_eq!((s(&m, "status"), m["verify"]["exit"].as_i64()), ("verify-failed", Some(127)), "{run}");
    assert_eq!(m["verify"]["env"]["path_dropped"], serde_json::json!([bin]), "{run}");
}

/// Six branches ready at once, one of them broken: verified together, then split in halves
/// until the broken one is alone. Five land; every commit the target moved to passed a
/// verification; the broken one is named; fewer verifications than one per branch plus the
/// splits would take.
#[test]
fn a_batch_of_six_with_one_broken_lands_the_five_each_target_commit_verified() {
    let names = ["b1", "b2", "b3", "b4", "b5", "b6"];
    let files: Vec<(String, String)> =
        names.iter().map(|n| (format!("{n}.txt"), if *n == "b4" { "broken\n" } else { "ok\n" }.to_string())).collect();
    let branches: Vec<(&str, Vec<(&str, &str)>)> =
        names.iter().zip(&files).map(|(n, (f, c))| (*n, vec![(f.as_str(), c.as_str())])).collect();
    let specs: Vec<(&str, &[(&str, &str)])> = branches.iter().map(|(n, f)| (*n, f.as_slice())).collect();
    let t = repo_with(&specs);
    let before = main_head(&t);
    let seen = t.root().join("verified");
    let verify = format!(
        "if grep -qs broken b1.txt b2.txt b3.txt b4.txt b5.txt b6.txt; then echo \"$WT_MERGE_COMMIT fail\" >> '{0}'; exit 1; fi; echo \"$WT_MERGE_COMMIT pass\" >> '{0}'",
        seen.display()
    );
    let run = t.run("wt-merge", &["--verify", &verify], &list(&t));
    run.expect_code(1);
    let recs = run.records();
    let status = |n: &str| s(merge_of(recs.iter().find(|r| r["name"] == n).unwrap()), "status").to_string();
    for n in names {
        assert_eq!(status(n), if n == "b4" { "verify-failed" } else { "merged" }, "{n}: {run}");
    }
    let log = std::fs::read_to_string(&seen).unwrap();
    let passed: Vec<&str> = log.lines().filter_map(|l| l.strip_suffix(" pass")).collect();
    let moves = t.git(["rev-list", "--first-parent", &format!("{before}..main")]);
    let reflog = t.git(["reflog", "show", "--format=%H", "main"]);
    let landed: Vec<&str> = reflog.lines().take_while(|c| *c != before).collect();
    assert!(!landed.is_empty(), "{moves}");
    for commit in &landed {
        assert!(passed.contains(commit), "the target moved to {commit}, which no verification passed:\n{log}");
    }
    // All six, then halves: never one verification per branch and more.
    assert!(log.lines().count() <= 6, "verifications:\n{log}");
    let batched = recs.iter().filter(|r| merge_of(r).get("batch").is_some()).count();
    assert!(batched >= 2, "some landed together: {run}");
    let files = t.git(["ls-tree", "--name-only", "main"]);
    assert!(!files.contains("b4.txt") && files.contains("b6.txt"), "{files}");
    t.assert_no_verification_worktree("after the batch");
    // --batch 1: one by one, as before.
    let t1 = repo_with(&specs[..2]);
    let one = t1.run("wt-merge", &["--verify", "true", "--batch", "1"], &list(&t1));
    assert!(one.records().iter().all(|r| merge_of(r).get("batch").is_none()), "{one}");
}

/// A branch that conflicts only with a broken branch of its batch is judged again once that
/// one is out: it lands, as it would have on its own.
#[test]
fn a_conflict_with_a_branch_that_never_lands_is_judged_again() {
    let t = repo_with(&[
        ("x", &[("shared.txt", "a\nX\nc\n"), ("broken", "1\n")]),
        ("y", &[("shared.txt", "a\nY\nc\n")]),
        ("z", &[("z.txt", "z\n")]),
    ]);
    let run = t.run("wt-merge", &["--verify", "test ! -e broken"], &list(&t));
    run.expect_code(1);
    let recs = run.records();
    let status = |n: &str| s(merge_of(recs.iter().find(|r| r["name"] == n).unwrap()), "status").to_string();
    assert_eq!(
        (status("x"), status("y"), status("z")),
        ("verify-failed".into(), "merged".into(), "merged".into()),
        "{run}"
    );
    assert_eq!(t.git(["show", "main:shared.txt"]), "a\nY\nc");
}

/// A batch lands as one move of the target, so it is undone as one: undoing any of its
/// branches takes the target back to before the batch and says which went with it.
#[test]
fn undoing_a_branch_of_a_batch_undoes_the_batch() {
    let t = repo_with(&[("b", &[("b.txt", "b\n")]), ("c", &[("c.txt", "c\n")]), ("d", &[("d.txt", "d\n")])]);
    let before = main_head(&t);
    let run = t.run("wt-merge", &["--verify", "true"], &list(&t));
    assert!(run.expect_code(0).records().iter().all(|r| merge_of(r)["batch"]["size"] == 3), "{run}");
    let undone = t.run("wt-merge", &["--undo", "d"], "");
    let m = merge_of(&undone.expect_code(0).records()[0]).clone();
    assert_eq!((s(&m, "status"), s(&m, "commit")), ("undone", before.as_str()), "{undone}");
    assert_eq!(m["undone_with"], serde_json::json!(["b", "c"]), "{undone}");
    assert_eq!(main_head(&t), before);
    assert_eq!(t.run("wt-merge", &["--undo", "b"], "").records()[0]["error"]["code"], "no-merge", "undone with d");
}

/// The same worktree twice in one batch is merged once.
#[test]
fn a_worktree_named_twice_in_a_batch_is_merged_once() {
    let t = repo_with(&[("b", &[("b.txt", "b\n")])]);
    let list = list(&t);
    let run = t.run("wt-merge", &["--verify", "true"], &format!("{list}{list}"));
    let recs = run.expect_code(0).records();
    let statuses: Vec<&str> = recs.iter().map(|r| s(merge_of(r), "status")).collect();
    assert_eq!(statuses, ["merged", "skipped"], "{run}");
    assert!(merge_of(&recs[1]).get("fine").is_none(), "no key of wt-merge's own leaks into the record: {run}");
    assert_eq!(t.git(["rev-list", "--count", "--merges", "main"]), "1");
}

/// Streaming: a record is merged as soon as it arrives, even when a malformed line follows it
/// and nothing more comes yet (the batch never waits for what has not arrived).
#[test]
fn a_record_followed_by_a_malformed_line_is_merged_without_waiting_for_more() {
    use std::io::{BufRead, Write};
    let t = repo_with(&[("b", &[("b.txt", "b\n")]), ("c", &[("c.txt", "c\n")])]);
    let lines: Vec<String> = list(&t).lines().map(str::to_string).collect();
    let mut cmd = t.cmd("wt-merge");
    cmd.args(["--verify", "true", "--json"]);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}\n{{\"name\": ", lines[0]).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let first = rx.recv_timeout(std::time::Duration::from_secs(120)).expect("b was merged without waiting for c");
    assert!(first.contains("\"name\":\"b\"") && first.contains("\"merged\""), "{first}");
    writeln!(stdin, "{}", lines[1]).unwrap();
    drop(stdin);
    let second = rx.recv_timeout(std::time::Duration::from_secs(120)).unwrap();
    assert!(second.contains("\"name\":\"c\"") && second.contains("\"merged\""), "{second}");
    assert_eq!(child.wait().unwrap().code(), Some(2), "the malformed line makes the exit 2");
}

/// What a killed verification left without its journal (a branch its wt-create's git made
/// after the kill, a worktree of that name) is removed by the next queue all the same: the
/// names `<name>-verify-<12 hex>` are wt-merge's alone.
#[test]
fn leftovers_of_verification_worktrees_are_swept_by_their_names() {
    let t = repo_with(&[("c", &[("c.txt", "c\n")])]);
    t.git(["branch", "wt/c-verify-0123456789ab", "main"]);
    t.run("wt-create", &["c-verify-abcdefabcdef"], "").expect_code(0);
    t.run("wt-merge", &["c", "--verify", "true"], "").expect_code(0);
    t.assert_no_verification_worktree("after the queue");
    assert!(t.branches().contains(&"wt/c".to_string()), "the candidate's branch stays");
}

/// A Makefile on a candidate's branch that tries to get out of the verification: write beside
/// the worktrees and into the main worktree, move the target with git and by writing its ref
/// file (unless `keep_main`); then exits `code`.
fn escaping_makefile(t: &TestRepo, tag: &str, code: u8, keep_main: bool) -> String {
    let (outside, main, common) = (t.root(), t.repo.clone(), t.repo.join(".git"));
    let (outside, main, common) = (outside.display(), main.display(), common.display());
    let moves = format!(
        "\t-c=$$(git commit-tree -m evil HEAD^{{tree}}) && git update-ref refs/heads/main $$c && echo MOVED-MAIN\n\
         \t-c=$$(git commit-tree -m evil2 HEAD^{{tree}}) && echo $$c > {common}/refs/heads/main && echo WROTE-MAIN-REF\n"
    );
    let moves = if keep_main { String::new() } else { moves };
    format!(
        "test:\n\
         \t-echo escaped > {outside}/escaped-{tag}.txt && echo WROTE-OUTSIDE\n\
         \t-echo planted > {main}/planted-{tag}.txt && echo WROTE-MAIN\n\
         {moves}\texit {code}\n"
    )
}

#[test]
fn a_confined_verification_cannot_move_the_target_or_write_outside_and_its_exit_still_judges() {
    let t = TestRepo::new();
    for (name, code) in [("bad", 3), ("good", 0), ("ctl", 0)] {
        t.run("wt-create", &[name], "").expect_code(0);
        let wt = t.wt_root().join(name);
        // Each its own file, so that one landing does not make the others conflict.
        std::fs::write(wt.join(format!("{name}.mk")), escaping_makefile(&t, name, code, name == "ctl")).unwrap();
        t.git_in(&wt, ["add", "-A"]);
        t.git_in(&wt, ["commit", "-q", "-m", &format!("{name}: a Makefile")]);
    }
    let before = main_head(&t);
    let escaped = |tag: &str| t.root().join(format!("escaped-{tag}.txt")).exists();
    let planted = |tag: &str| t.repo.join(format!("planted-{tag}.txt")).exists();
    let log_of = |rec: &Value| std::fs::read_to_string(s(&rec["merge"]["verify"], "log")).unwrap();
    let escapes = ["WROTE-OUTSIDE", "WROTE-MAIN", "MOVED-MAIN", "WROTE-MAIN-REF"];
    // Failing: refused everything, judged by make's exit (the recipe's 3 makes make exit 2).
    let run = t.run("wt-merge", &["-w", "bad", "--verify", "make -f bad.mk", "--confine"], "");
    run.expect_code(1);
    let rec = &run.records()[0];
    let m = merge_of(rec);
    assert_eq!((&m["status"], &m["verify"]["exit"]), (&"verify-failed".into(), &2.into()), "{rec}");
    assert_eq!(m["verify"]["confined"]["enforced"], "full", "{rec}");
    assert_eq!(m["verify"]["confined"]["git"], "private-store", "{rec}");
    let log = log_of(rec);
    assert!(!escapes.iter().any(|e| log.lines().any(|l| l == *e)), "an escape got through:\n{log}");
    assert_eq!(main_head(&t), before, "the target did not move");
    assert!(!escaped("bad") && !planted("bad"), "nothing written outside");
    // Passing: merged, and the target moved only to the verified merge.
    let run = t.run("wt-merge", &["-w", "good", "--verify", "make -f good.mk", "--confine"], "");
    run.expect_code(0);
    let rec = &run.records()[0];
    let m = merge_of(rec);
    assert_eq!((&m["status"], &m["verify"]["passed"]), (&"merged".into(), &true.into()), "{rec}");
    assert_eq!(m["verify"]["confined"]["enforced"], "full", "{rec}");
    assert_eq!(main_head(&t), s(m, "commit"), "main is the merge wt-merge verified");
    assert_eq!(t.git(["rev-parse", "main^1"]), before);
    assert!(!t.git(["log", "--format=%s", "main"]).contains("evil"), "no commit of the Makefile's on main");
    let log = log_of(rec);
    assert!(!escapes.iter().any(|e| log.lines().any(|l| l == *e)), "an escape got through:\n{log}");
    assert!(!escaped("good") && !planted("good"));
    t.assert_no_verification_worktree("after a confined verification");
    let stores = t.repo.join(".git/wt/confine");
    let left = wt_tests::names_in(&stores, |n| n.contains("-verify-"));
    assert!(left.is_empty(), "the verification's private store went with it: {left:?}");
    // The control: unconfined, the same writes get out (so the checks above can fail).
    let run = t.run("wt-merge", &["-w", "ctl", "--verify", "make -f ctl.mk", "--timeout", "20s"], "");
    assert!(escaped("ctl") && planted("ctl"), "unconfined, the Makefile wrote outside\n{run}");
    assert!(merge_of(&run.records()[0])["verify"].get("confined").is_none(), "{run}");
}

/// A `wt-watch | wt-merge` pipeline's wt-merge, as a test drives it: records written to its
/// stdin, which stays open until `close`; its output and stderr lines on channels.
struct Pipeline {
    child: wt_tests::Reaped,
    stdin: Option<std::process::ChildStdin>,
    out: std::sync::mpsc::Receiver<String>,
    err: std::sync::mpsc::Receiver<String>,
}

impl Pipeline {
    fn start(t: &TestRepo, verify: &str) -> Pipeline {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut cmd = t.cmd("wt-merge");
        cmd.args(["--verify", verify, "--json", "-v"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            rx
        };
        let out = lines(Box::new(child.stdout.take().unwrap()));
        let err = lines(Box::new(child.stderr.take().unwrap()));
        let stdin = child.stdin.take();
        let pipeline = Pipeline { child: wt_tests::Reaped(child), stdin, out, err };
        // What a killed wt-merge left is swept (under the queue lock) before records are read.
        pipeline.said("merging records as they come");
        pipeline
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// The record of worktree `name`, as `wt-create --list` prints it, arrives on stdin.
    fn feed(&mut self, t: &TestRepo, name: &str) {
        use std::io::Write;
        let line = list(t).lines().find(|l| l.contains(&format!("\"name\":\"{name}\""))).unwrap().to_string();
        writeln!(self.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    /// The next record it prints (two minutes at most: a merge of one file).
    fn record(&self) -> Value {
        let line = self.out.recv_timeout(std::time::Duration::from_secs(120)).expect("a record");
        serde_json::from_str(&line).unwrap()
    }

    /// Waits for a line on its stderr that contains `text`; the lines until then.
    fn said(&self, text: &str) -> String {
        let mut seen = String::new();
        loop {
            match self.err.recv_timeout(std::time::Duration::from_secs(120)) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push_str(&format!("{line}\n")),
                Err(e) => panic!("no stderr line with {text:?} ({e}); it said:\n{seen}"),
            }
        }
    }

    /// Closes its stdin (the watch ended) and returns its exit code.
    fn close(mut self) -> Option<i32> {
        drop(self.stdin.take());
        self.child.0.wait().unwrap().code()
    }
}

/// The subjects of the target's merges, oldest first.
fn merges_in_order(t: &TestRepo) -> Vec<String> {
    let log = t.git(["log", "--first-parent", "--reverse", "--format=%s", "main"]);
    log.lines().filter(|l| l.starts_with("Merge branch")).map(str::to_string).collect()
}

/// `N` `wt-watch | wt-merge` pipelines on a repository with worktrees `branches` (`a` among
/// them), the first merging `a`: its verification waits, holding the queue lock, until the test
/// writes the file returned (a verification of anything else, or once that file is there,
/// passes at once). What the queue tests start from. All are started before the first takes
/// its turn: a wt-merge takes one at its start, to sweep what a killed one left.
fn first_merging_a<const N: usize>(branches: &[(&str, &[(&str, &str)])]) -> (TestRepo, [Pipeline; N], PathBuf) {
    let t = repo_with(branches);
    let started = t.root().join("started");
    let go = t.root().join("go");
    let verify = format!(
        "if [ -e a.txt ] && [ ! -e {go} ]; then touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; fi",
        go = go.display(),
        started = started.display()
    );
    let mut pipelines: [Pipeline; N] = std::array::from_fn(|_| Pipeline::start(&t, &verify));
    pipelines[0].feed(&t, "a");
    while !started.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (t, pipelines, go)
}

/// Two `wt-watch | wt-merge` pipelines on one repository: the first wt-merge used to hold the
/// queue lock while its stdin was open, so the second, whose branch became ready meanwhile,
/// gave up after 30 s with exit 3 and its green work was never merged. Now each takes the lock
/// per merge, says whom it waits for, and they take turns in the order they asked: the second's
/// branch goes before the first's next one, which arrived later.
#[test]
fn two_pipelines_on_one_repository_both_merge_taking_turns() {
    // a's verification waits until the test says go; the others' pass at once.
    let (t, [mut first, mut second], go) =
        first_merging_a(&[("a", &[("a.txt", "a\n")]), ("b", &[("b.txt", "b\n")]), ("c", &[("c.txt", "c\n")])]);
    // b becomes ready while the first merges a: the second waits, and says for whom.
    second.feed(&t, "b");
    let waiting = second.said("b: waiting for the merge queue");
    let whom = format!("wt-merge: b: waiting for the merge queue: wt-merge pid {} merging a", first.pid());
    assert!(waiting.starts_with(&whom), "{waiting}");
    // c becomes ready for the first after b did for the second: b goes first.
    first.feed(&t, "c");
    std::fs::write(&go, "").unwrap();
    for (pipeline, name) in [(&first, "a"), (&second, "b"), (&first, "c")] {
        let rec = pipeline.record();
        assert_eq!(s(&rec, "name"), name, "{rec}");
        assert_eq!(s(merge_of(&rec), "status"), "merged", "{rec}");
        assert!(merge_of(&rec)["verify"].is_object(), "verified: {rec}");
    }
    assert_eq!(
        merges_in_order(&t),
        ["Merge branch 'wt/a' into main", "Merge branch 'wt/b' into main", "Merge branch 'wt/c' into main"],
        "merged in the order they asked for the queue"
    );
    assert_eq!(second.close(), Some(0));
    assert_eq!(first.close(), Some(0));
    for f in ["a.txt", "b.txt", "c.txt"] {
        assert!(t.repo.join(f).exists(), "{f} is in the main worktree");
    }
    assert_eq!(t.git(["status", "--porcelain"]), "");
    let members = t.repo.join(".git/wt/merge-queue");
    assert_eq!(wt_tests::names_in(&members, |_| true), Vec::<String>::new(), "each wt-merge unregistered");
}

/// A wt-merge killed with SIGKILL while it holds the queue lock (verifying): the other one,
/// waiting with its own branch, proceeds: it sweeps the killed one's verification worktree
/// and merges; nothing is half merged, and the killed one's registration is gone.
#[test]
fn a_wt_merge_killed_holding_the_queue_lets_the_other_merge() {
    // a's verification never ends: it is never told to go.
    let (t, [first, mut second], _) = first_merging_a(&[("a", &[("a.txt", "a\n")]), ("b", &[("b.txt", "b\n")])]);
    let head = main_head(&t);
    second.feed(&t, "b");
    second.said("b: waiting for the merge queue");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first.pid() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(first.close(), None, "killed");
    let rec = second.record();
    assert_eq!((s(&rec, "name"), s(merge_of(&rec), "status")), ("b", "merged"), "{rec}");
    assert_eq!(second.close(), Some(0));
    assert_eq!(t.git(["rev-parse", "main^1"]), head, "b alone was merged onto the old target");
    assert!(!t.repo.join("a.txt").exists() && t.repo.join("b.txt").exists());
    assert_eq!(t.git(["status", "--porcelain"]), "", "no half-merged index");
    t.assert_no_verification_worktree("after the kill");
    let members = t.repo.join(".git/wt/merge-queue");
    assert_eq!(wt_tests::names_in(&members, |_| true), Vec::<String>::new(), "the killed one's files were removed");
}

/// wt-merge holds the queue lock only while it merges, but a purge must still see one that
/// waits for records between merges (it would make the state directory again under the purge,
/// and merge into a repository whose worktrees are gone): refused, naming it, nothing removed.
#[test]
fn purge_refuses_while_a_wt_merge_waits_for_records() {
    let t = repo_with(&[("a", &[("a.txt", "a\n")])]);
    let mut waiting = Pipeline::start(&t, "true");
    waiting.feed(&t, "a");
    let rec = waiting.record();
    assert_eq!(s(merge_of(&rec), "status"), "merged", "{rec}");
    let purge = t.run("wt-create", &["--remove", "--all", "--purge", "--yes", "--force"], "");
    purge.expect_code(1);
    let said = format!("a wt-merge is running in this repository (pid {})", waiting.pid());
    assert!(purge.stderr.contains(&said) && purge.stderr.contains("nothing was removed"), "{purge}");
    assert!(t.wt_root().join("a").exists());
    assert_eq!(waiting.close(), Some(0));
    t.run("wt-create", &["--remove", "--all", "--purge", "--yes", "--force"], "").expect_code(0);
    assert!(!t.repo.join(".git/wt").exists());
}

/// SIGTERM (or Ctrl-C) to a wt-merge waiting for its turn ends it at once, its record saying
/// it was not merged, while the one merging goes on undisturbed.
#[test]
fn a_wt_merge_interrupted_while_waiting_for_its_turn_merges_nothing() {
    let (t, [first, mut second], go) = first_merging_a(&[("a", &[("a.txt", "a\n")]), ("b", &[("b.txt", "b\n")])]);
    second.feed(&t, "b");
    second.said("b: waiting for the merge queue");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(second.pid() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let rec = second.record();
    assert_eq!(s(&rec, "name"), "b");
    assert!(rec["error"]["message"].as_str().unwrap_or_default().contains("interrupted"), "{rec}");
    assert_eq!(second.close(), Some(143));
    std::fs::write(&go, "").unwrap();
    let rec = first.record();
    assert_eq!((s(&rec, "name"), s(merge_of(&rec), "status")), ("a", "merged"), "{rec}");
    assert_eq!(first.close(), Some(0));
    assert!(t.repo.join("a.txt").exists() && !t.repo.join("b.txt").exists());
}

/// A wt-merge stopped (SIGSTOP, as Ctrl-Z stops it) while it waits for its turn: it kept its
/// place ahead of the others for ever, though the lock was free, and they said someone held
/// the lock. Now the one behind it says it waits behind a stopped wt-merge, passes it after the
/// grace and merges; resumed, the stopped one merges too.
#[test]
fn a_wt_merge_stopped_while_it_waits_is_passed_and_merges_when_resumed() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let (t, [first, mut second, mut third], go) =
        first_merging_a(&[("a", &[("a.txt", "a\n")]), ("b", &[("b.txt", "b\n")]), ("c", &[("c.txt", "c\n")])]);
    second.feed(&t, "b");
    second.said("b: waiting for the merge queue");
    third.feed(&t, "c");
    third.said("c: waiting for the merge queue");
    let stopped = Pid::from_raw(second.pid() as i32);
    kill(stopped, Signal::SIGSTOP).unwrap();
    let said = third.said("waiting behind a stopped wt-merge");
    assert!(said.contains(&format!("waiting behind a stopped wt-merge (pid {})", second.pid())), "{said}");
    std::fs::write(&go, "").unwrap();
    let rec = first.record();
    assert_eq!((s(&rec, "name"), s(merge_of(&rec), "status")), ("a", "merged"), "{rec}");
    let rec = third.record();
    assert_eq!((s(&rec, "name"), s(merge_of(&rec), "status")), ("c", "merged"), "past the stopped one: {rec}");
    assert!(!t.repo.join("b.txt").exists(), "b's wt-merge is still stopped");
    kill(stopped, Signal::SIGCONT).unwrap();
    let rec = second.record();
    assert_eq!((s(&rec, "name"), s(merge_of(&rec), "status")), ("b", "merged"), "resumed: {rec}");
    assert_eq!(
        merges_in_order(&t),
        ["Merge branch 'wt/a' into main", "Merge branch 'wt/c' into main", "Merge branch 'wt/b' into main"]
    );
    for p in [first, second, third] {
        assert_eq!(p.close(), Some(0));
    }
}
