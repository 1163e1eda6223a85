//! `wt-create --remove --all --purge`: one command that leaves nothing of wt behind. Real git,
//! a real pane supervisor with a real process in a pane, a real PostgreSQL (WT_TEST_PG).

use std::os::unix::net::UnixStream;
use std::path::Path;

use wt_tests::panes::{raw_call, Panes};
use wt_tests::{s, PgTemplate, Run};

/// wt-create or wt-env in the test's repository, sharing the panes' socket directory.
fn tool(p: &Panes, name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = p.t.cmd(name);
    p.env(&mut cmd);
    cmd.args(args).envs(env.iter().copied());
    Run::of(&mut cmd, "")
}

/// What is left of wt in the repository, as a person would look for it.
fn leftovers(p: &Panes) -> Vec<String> {
    let t = &p.t;
    let mut left = Vec::new();
    if t.git_worktrees().len() != 1 {
        left.push(format!("worktrees: {:?}", t.git_worktrees()));
    }
    if t.branches() != ["main"] {
        left.push(format!("branches: {:?}", t.branches()));
    }
    let refs = t.git(["for-each-ref", "refs/wt/"]);
    if !refs.is_empty() {
        left.push(format!("refs: {refs}"));
    }
    for dir in [t.repo.join(".git/wt"), t.wt_root()] {
        if dir.symlink_metadata().is_ok() {
            left.push(format!("{} is there", dir.display()));
        }
    }
    left
}

fn ping(p: &Panes) -> i32 {
    let mut c = UnixStream::connect(p.socket()).unwrap();
    raw_call(&mut c, b"{\"id\":1,\"method\":\"server.ping\"}\n")["result"]["pid"].as_i64().unwrap() as i32
}

#[test]
fn purge_leaves_nothing_behind_after_showing_it_and_never_takes_uncommitted_work() {
    let p = Panes::new();
    let t = &p.t;
    t.write(".gitignore", "deps/\n");
    t.commit("ignore deps");
    t.write("deps/x.js", "x\n");
    let tmpl = PgTemplate::new("CREATE TABLE items (id int);");
    let url = wt_tests::pg_url_for(&tmpl.name);
    // An agent running in a pane of `a1`, two more worktrees with shared deps, databases for all
    // three, one of them removed (its database kept), a merged backup ref, logs.
    p.spawn("a1", &["sleep", "600"]);
    let agent = p.json(&["pane", "ls"])["pid"].as_i64().unwrap() as i32;
    let supervisor = ping(&p);
    tool(&p, "wt-create", &["a2", "a3", "gone", "--share", "deps"], &[]).expect_code(0);
    let env = ["-w", "a1", "-w", "a2", "-w", "a3", "-w", "gone", "--range", "23100-23199", "--database", &url];
    tool(&p, "wt-env", &env, &[]).expect_code(0);
    tool(&p, "wt-create", &["--remove", "gone"], &[]).expect_code(0);
    assert_eq!(tmpl.clones().len(), 4);
    t.git(["update-ref", "refs/wt/backup/a9", "HEAD"]);
    std::fs::write(t.wt_root().join("a2/work.txt"), "uncommitted\n").unwrap();

    // Uncommitted work: refused, naming it, and nothing at all is removed.
    let refused = tool(&p, "wt-create", &["--remove", "--all", "--purge", "--yes"], &[]);
    refused.expect_code(1);
    assert!(refused.stderr.contains("a2: ") && refused.stderr.contains("(work.txt)"), "{refused}");
    assert!(refused.stderr.contains("nothing was removed"), "{refused}");
    assert_eq!(t.git_worktrees().len(), 4);
    assert!(!wt_tests::ended(agent), "the agent still runs");
    std::fs::remove_file(t.wt_root().join("a2/work.txt")).unwrap();

    // In a pipe without --yes: it shows what it would delete, and refuses with the fix.
    let asked = tool(&p, "wt-create", &["--remove", "--all", "--purge"], &[]);
    asked.expect_code(2);
    for says in
        ["worktrees, with the branches wt made (3): a1 (", "panes (1): a1", "refs (1): refs/wt/backup/a9", "pass --yes"]
    {
        assert!(asked.stderr.contains(says), "{says:?} in {asked}");
    }
    assert!(asked.stderr.contains(&format!("{}_wt4", tmpl.name)), "the kept database is shown: {asked}");
    assert_eq!(t.git_worktrees().len(), 4);

    // Killed half-way (worktrees gone, databases not yet dropped): a rerun finishes.
    let killed =
        tool(&p, "wt-create", &["--remove", "--all", "--purge", "--yes"], &[("WT_FAILPOINT", "purge-after-worktrees")]);
    assert_eq!(killed.code, None, "killed: {killed}");
    assert_eq!(t.git_worktrees().len(), 1);
    assert!(wt_tests::ended(agent), "the agent's pane was ended");
    assert_eq!(tmpl.clones().len(), 4, "not dropped yet");
    let done = tool(&p, "wt-create", &["--remove", "--all", "--purge", "--yes"], &[]);
    done.expect_code(0);
    assert!(done.stderr.contains("purged"), "{done}");
    assert_eq!(leftovers(&p), Vec::<String>::new(), "{done}");
    assert_eq!(tmpl.clones(), Vec::<String>::new(), "every database dropped");
    assert!(wt_tests::ended(supervisor), "the supervisor, with no pane left, stopped");
    let again = tool(&p, "wt-create", &["--remove", "--all", "--purge", "--yes"], &[]);
    assert!(again.expect_code(0).stderr.contains("nothing of wt is left"), "{again}");
    assert_eq!(leftovers(&p), Vec::<String>::new(), "a purge of nothing makes nothing: {again}");
}

#[test]
fn purge_with_force_takes_uncommitted_work_and_unmerged_branches() {
    let p = Panes::new();
    let t = &p.t;
    tool(&p, "wt-create", &["d", "ahead"], &[]).expect_code(0);
    std::fs::write(t.wt_root().join("d/README"), "changed\n").unwrap();
    let ahead = t.wt_root().join("ahead");
    std::fs::write(ahead.join("new.txt"), "x\n").unwrap();
    t.git_in(&ahead, ["add", "new.txt"]);
    t.git_in(&ahead, ["commit", "-q", "-m", "work"]);
    // A wt/ branch whose worktree went by hand.
    t.git(["branch", "wt/orphan", &t.git_in(&ahead, ["rev-parse", "HEAD"])]);
    let refused = tool(&p, "wt-create", &["--remove", "--all", "--purge", "--yes"], &[]);
    assert!(refused.expect_code(1).stderr.contains("nothing was removed"), "{refused}");
    assert_eq!(t.git_worktrees().len(), 3);
    let run = tool(&p, "wt-create", &["--remove", "--all", "--purge", "--yes", "--force"], &[]);
    run.expect_code(0);
    let recs = run.records();
    assert!(recs.iter().all(|r| r["removed"] == true) && recs.len() == 2, "{run}");
    assert!(recs.iter().any(|r| s(r, "name") == "ahead"));
    assert_eq!(leftovers(&p), Vec::<String>::new(), "{run}");
    assert!(!Path::new(&t.wt_root()).exists());
}

/// A worktree made and leased while a purge runs (after it removed the planned worktrees, before
/// it deletes the state directory): the purge stops, naming it, and deletes nothing more (the
/// ledger with the new lease deleted, its block was handed out again); a second purge takes it.
#[test]
fn a_worktree_made_while_purging_stops_the_purge_and_keeps_its_lease() {
    let t = wt_tests::TestRepo::new();
    t.run("wt-create", &["a1"], "").expect_code(0);
    let mut purge = t.cmd("wt-create");
    purge.args(["--remove", "--all", "--purge", "--yes"]);
    let purge = wt_tests::StoppedAt::spawn(&mut purge, "purge-after-worktrees");
    t.run("wt-create", &["b1"], "").expect_code(0);
    t.run("wt-env", &["b1", "--range", "27200-27209"], "").expect_code(0);
    let run = purge.resume();
    run.expect_code(1);
    assert!(run.stderr.contains("purge-incomplete") || run.stderr.contains("made while purging"), "{run}");
    assert!(run.stderr.contains("b1"), "names what was made: {run}");
    let listed = t.run("wt-env", &["--list"], "");
    assert_eq!(s(&listed.expect_code(0).records()[0], "name"), "b1", "the lease stands\n{listed}");
    t.run("wt-create", &["--remove", "--all", "--purge", "--yes"], "").expect_code(0);
    assert!(!t.repo.join(".git/wt").exists(), "the second purge finished");
}
