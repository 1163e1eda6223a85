//! wt's own `git status` in an agent's worktree runs unconfined, so it must run nothing the
//! agent planted there: a nested repository checked in as a submodule (a gitlink in the
//! agent's index, a `.gitmodules`) whose own config names a filter driver and an fsmonitor.
//! git recursing into it would run `git status` there, under that config. `wt-create --list
//! --status`, `wt-status` and `wt-create --remove` must tell dirty from clean without it.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wt_tests::{s, TestRepo};

/// A repository with worktree `agent-1`, in which the agent made `sub`, a repository of its
/// own whose config runs the returned canary (as a clean filter and as fsmonitor), added it
/// to its index as a submodule, and changed a file in it. `commit`: the submodule is
/// committed on the branch, so only its own checkout holds a change.
fn planted(commit: bool) -> (TestRepo, PathBuf, PathBuf) {
    let t = TestRepo::new();
    t.run("wt-create", &["agent-1"], "").expect_code(0);
    let wt = t.wt_root().join("agent-1");
    let canary = t.root().join("canary");
    let sub = wt.join("sub");
    std::fs::create_dir(&sub).unwrap();
    t.git_in(&sub, ["init", "-q"]);
    std::fs::write(sub.join("f"), "one\n").unwrap();
    std::fs::write(sub.join(".gitattributes"), "* filter=evil\n").unwrap();
    t.git_in(&sub, ["add", "-A"]);
    t.git_in(&sub, ["commit", "-q", "-m", "sub"]);
    let run = format!("touch {}", canary.display());
    t.git_in(&sub, ["config", "filter.evil.clean", &format!("{run}; cat")]);
    t.git_in(&sub, ["config", "core.fsmonitor", &format!("{run}; false")]);
    std::fs::write(wt.join(".gitmodules"), "[submodule \"sub\"]\n\tpath = sub\n\turl = ./sub\n\tignore = none\n")
        .unwrap();
    t.git_in(&wt, ["add", ".gitmodules", "sub"]);
    if commit {
        t.git_in(&wt, ["commit", "-q", "-m", "add sub"]);
    }
    std::fs::write(sub.join("f"), "two\n").unwrap();
    assert!(!canary.exists(), "the setup itself ran the canary");
    (t, wt, canary)
}

fn ran(canary: &Path) -> bool {
    canary.exists()
}

fn agent(recs: &[Value]) -> &Value {
    recs.iter().find(|r| s(r, "name") == "agent-1").expect("a record of agent-1")
}

#[test]
fn listing_the_status_runs_nothing_from_a_submodule_the_agent_planted() {
    let (t, _wt, canary) = planted(false);
    let run = t.run("wt-create", &["--list", "--status", "--json"], "");
    run.expect_code(0);
    assert!(!ran(&canary), "wt-create --list --status ran the agent's filter or fsmonitor\n{run}");
    let recs = run.records();
    let status = &agent(&recs)["status"];
    assert_eq!(status["state"], "dirty", "{status}");
    // `.gitmodules` and `sub`, staged.
    assert_eq!(status["changed"], 2, "{status}");
}

#[test]
fn wt_status_runs_nothing_from_a_submodule_the_agent_planted() {
    let (t, _wt, canary) = planted(true);
    let run = t.run("wt-status", &["--json", "agent-1"], "");
    assert!(!ran(&canary), "wt-status ran the agent's filter or fsmonitor\n{run}");
    let recs = run.records();
    assert!(agent(&recs)["status"]["state"].is_string(), "{run}");
}

#[test]
fn removing_refuses_a_worktree_with_changes_without_running_the_agents_submodule_config() {
    let (t, wt, canary) = planted(false);
    let run = t.run("wt-create", &["--remove", "agent-1"], "");
    assert!(!ran(&canary), "wt-create --remove ran the agent's filter or fsmonitor\n{run}");
    run.expect_code(1);
    assert_eq!(agent(&run.records())["error"]["code"], "dirty", "{run}");
    assert!(wt.is_dir(), "the worktree was removed");
}

#[test]
fn removing_refuses_a_worktree_whose_submodule_holds_changes_without_running_its_config() {
    // Nothing to commit in the worktree itself; the change is inside the submodule.
    let (t, wt, canary) = planted(true);
    let run = t.run("wt-create", &["--remove", "agent-1"], "");
    assert!(!ran(&canary), "wt-create --remove ran the agent's filter or fsmonitor\n{run}");
    run.expect_code(1);
    let rec = agent(&run.records()).clone();
    assert_eq!(rec["error"]["code"], "dirty", "{run}");
    assert!(s(&rec["error"], "message").contains("sub"), "{rec}");
    assert!(wt.is_dir(), "the worktree was removed");
    // --force removes it, still running nothing of the agent's.
    let run = t.run("wt-create", &["--remove", "--force", "agent-1"], "");
    run.expect_code(0);
    assert!(!ran(&canary), "wt-create --remove --force ran the agent's filter or fsmonitor\n{run}");
    assert!(!wt.exists());
}

/// wt-merge into a branch that an agent's worktree has checked out asks git whether that
/// checkout is clean before its files follow the branch: never by recursing into a submodule
/// the agent planted there.
#[test]
fn merging_into_an_agents_checked_out_branch_runs_nothing_from_its_submodule() {
    let (t, _wt, canary) = planted(true);
    t.run("wt-create", &["agent-2"], "").expect_code(0);
    let other = t.wt_root().join("agent-2");
    std::fs::write(other.join("new.txt"), "x\n").unwrap();
    t.git_in(&other, ["add", "new.txt"]);
    t.git_in(&other, ["commit", "-q", "-m", "agent-2"]);
    let run = t.run("wt-merge", &["agent-2", "--into", "wt/agent-1", "--unverified"], "");
    assert!(!ran(&canary), "wt-merge ran the agent's filter or fsmonitor\n{run}");
}

/// A FIFO planted as a `.gitignore` makes every `git status` in the worktree wait for ever:
/// wt's own (listing with status, wt-status, the check before removing, what a run tested) is
/// killed after `WT_GIT_TIMEOUT` and says so, and no tool hangs.
#[test]
fn a_fifo_planted_as_a_gitignore_hangs_no_tool() {
    let t = TestRepo::new();
    t.run("wt-create", &["agent-1"], "").expect_code(0);
    let wt = t.wt_root().join("agent-1");
    nix::unistd::mkfifo(&wt.join(".gitignore"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let run = |tool: &str, args: &[&str]| {
        let mut cmd = std::process::Command::new("timeout");
        cmd.arg("30").arg(wt_tests::bin(tool)).args(args).current_dir(&t.repo);
        t.isolate(&mut cmd).env("WT_GIT_TIMEOUT", "2");
        wt_tests::Run::of(&mut cmd, "")
    };
    let listed = run("wt-create", &["--list", "--status", "--json"]);
    assert_eq!(listed.code, Some(0), "{listed}");
    assert_eq!(agent(&listed.records())["status"]["state"], "unknown", "{listed}");
    let status = run("wt-status", &["--json", "agent-1"]);
    assert_ne!(status.code, Some(124), "wt-status hung: {status}");
    let ran = run("wt-run", &["-w", "agent-1", "--json", "--", "true"]);
    assert_eq!(ran.code, Some(0), "{ran}");
    assert_eq!(agent(&ran.records())["run"]["dirty"], true, "not known clean: {ran}");
    let removed = run("wt-create", &["--remove", "agent-1"]);
    assert_eq!(removed.code, Some(1), "{removed}");
    assert_eq!(agent(&removed.records())["error"]["code"], "git-stuck", "{removed}");
    assert!(wt.is_dir(), "not removed on a guess");
}
