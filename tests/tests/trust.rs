//! Nothing an agent writes decides what wt does: its worktree's git files, the records it could
//! feed a pipe, the files and links in its worktree, its database URL. Each test plants what a
//! hostile agent would, then runs the real tools and checks that the harm did not happen.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use wt_tests::{psql, psql_url, PgTemplate, Run, TestRepo};

/// A repository with worktrees `agent-1` and `agent-2`, each with one commit of its own.
fn two_agents() -> TestRepo {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "2"], "").expect_code(0);
    for n in ["agent-1", "agent-2"] {
        let wt = t.wt_root().join(n);
        std::fs::write(wt.join(format!("{n}.txt")), n).unwrap();
        t.git_in(&wt, ["add", "-A"]);
        t.git_in(&wt, ["commit", "-q", "-m", &format!("work of {n}")]);
    }
    t
}

fn wt(t: &TestRepo, name: &str) -> PathBuf {
    t.wt_root().join(name).canonicalize().unwrap()
}

fn admin(t: &TestRepo, name: &str) -> PathBuf {
    t.repo.join(".git/worktrees").join(name).canonicalize().unwrap()
}

fn code(rec: &Value) -> &str {
    rec["error"]["code"].as_str().unwrap_or("")
}

/// A script git would run as `core.fsmonitor`; it leaves `marker` behind if it ever runs.
fn fsmonitor_script(t: &TestRepo) -> (PathBuf, PathBuf) {
    let marker = t.root().join("fsmonitor-ran");
    let script = t.root().join("fsmonitor.sh");
    std::fs::write(&script, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, marker)
}

#[test]
fn a_dot_git_file_saying_gitdir_root_grants_no_write_outside_and_is_restored() {
    let t = two_agents();
    let outside = t.root().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let dot_git = wt(&t, "agent-1").join(".git");
    std::fs::write(&dot_git, "gitdir: /\n").unwrap();
    let script = format!("echo x > '{}/pwned'; git status --short >/dev/null && echo git-ok", outside.display());
    let run = t.run("wt-run", &["-w", "agent-1", "--confine", "--", "sh", "-c", &script], "");
    run.expect_code(0);
    assert!(!outside.join("pwned").exists(), "the confined run wrote outside its worktree");
    assert_eq!(std::fs::read_to_string(&dot_git).unwrap(), format!("gitdir: {}\n", admin(&t, "agent-1").display()));
    assert!(run.records()[0]["run"]["tail"].to_string().contains("git-ok"), "git works again in the worktree");
    // Every other tool repairs it the same way before acting.
    for (tool, args) in [
        ("wt-create", &["--list"][..]),
        ("wt-env", &["-w", "agent-1", "--range", "23000-23099"][..]),
        ("wt-merge", &["--check", "-w", "agent-1"][..]),
    ] {
        std::fs::write(&dot_git, "gitdir: /\n").unwrap();
        t.run(tool, args, "").expect_code(0);
        assert!(std::fs::read_to_string(&dot_git).unwrap().contains("/worktrees/agent-1"), "{tool} restored it");
    }
}

#[test]
fn a_confined_pane_gets_no_write_outside_through_a_rewritten_dot_git_file() {
    let t = two_agents();
    let xdg = t.root().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
    let wt_run = |args: &[&str]| {
        let mut c = t.cmd("wt-run");
        c.env("XDG_RUNTIME_DIR", &xdg).env("WT_PANE_IDLE", "20s").env_remove("TMUX").args(args);
        Run::of(&mut c, "")
    };
    let outside = t.root().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(wt(&t, "agent-1").join(".git"), "gitdir: /\n").unwrap();
    let script = format!("echo x > '{}/pwned'; echo finished", outside.display());
    let started = wt_run(&["-w", "agent-1", "--pane", "--confine", "--", "sh", "-c", &script]);
    assert_eq!(started.expect_code(0).records()[0]["run"]["pane"]["confined"]["enforced"], "full");
    wt_run(&["pane", "wait", "agent-1", "--match", "finished", "--timeout", "15s"]).expect_code(0);
    wt_run(&["pane", "stop"]);
    assert!(!outside.join("pwned").exists(), "the confined pane wrote outside its worktree");
}

#[test]
fn a_worktree_whose_git_files_cannot_be_told_is_refused_by_every_tool() {
    let t = two_agents();
    let dot_git = wt(&t, "agent-1").join(".git");
    std::fs::remove_file(&dot_git).unwrap();
    std::fs::create_dir(&dot_git).unwrap();
    for (tool, args) in [
        ("wt-env", &["-w", "agent-1", "--range", "23100-23199"][..]),
        ("wt-run", &["-w", "agent-1", "--", "true"][..]),
        ("wt-merge", &["-w", "agent-1"][..]),
        ("wt-create", &["--remove", "agent-1", "--force"][..]),
    ] {
        let run = t.run(tool, args, "");
        run.expect_code(1);
        let rec = &run.records()[0];
        assert_eq!(code(rec), "tampered-worktree", "{tool}: {rec}");
        assert!(rec["error"]["message"].as_str().unwrap().contains(&dot_git.display().to_string()), "names the file");
    }
    let listed = t.run("wt-create", &["--list", "--json"], "");
    listed.expect_code(1);
    let recs = listed.records();
    assert_eq!(code(recs.iter().find(|r| r["name"] == "agent-1").unwrap()), "tampered-worktree");
    assert!(wt(&t, "agent-1").join("agent-1.txt").exists(), "nothing removed");
    assert!(t.branches().contains(&"wt/agent-1".to_string()));
}

#[test]
fn an_admin_dir_gitdir_pointing_at_another_worktree_does_not_pass_its_branch_off() {
    let t = two_agents();
    let a2 = admin(&t, "agent-2");
    std::fs::write(a2.join("gitdir"), format!("{}/.git\n", wt(&t, "agent-1").display())).unwrap();
    // And HEAD moved to the other agent's branch: the worktree's own files say nothing.
    std::fs::write(a2.join("HEAD"), "ref: refs/heads/wt/agent-1\n").unwrap();
    let recs = t.run("wt-create", &["--list", "--json"], "").expect_code(0).records();
    let by = |n: &str| recs.iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(by("agent-1")["branch"], "wt/agent-1");
    assert_eq!(by("agent-2")["branch"], "wt/agent-2");
    assert_eq!(by("agent-2")["path"], json!(wt(&t, "agent-2")));
    assert_eq!(by("agent-2")["head"], t.git(["rev-parse", "wt/agent-2"]));
    assert_eq!(std::fs::read_to_string(a2.join("gitdir")).unwrap(), format!("{}/.git\n", wt(&t, "agent-2").display()));
    // A record that says agent-2 is on agent-1's branch is refused, and the queue merges
    // agent-2's own branch.
    let forged = json!({"v": 1, "name": "agent-2", "path": wt(&t, "agent-2"), "branch": "wt/agent-1"});
    let run = t.run("wt-merge", &[], &format!("{forged}\n"));
    assert_eq!(code(&run.records()[0]), "not-a-worktree");
    t.run("wt-merge", &["-w", "agent-2", "--unverified"], "").expect_code(0);
    let files = t.git(["ls-tree", "--name-only", "main"]);
    assert!(files.contains("agent-2.txt") && !files.contains("agent-1.txt"), "main has agent-2's work only: {files}");
    // Removing agent-1 while agent-2's admin dir claims its path removes agent-1, not agent-2.
    std::fs::write(a2.join("HEAD"), "ref: refs/heads/wt/agent-2\n").unwrap();
    std::fs::write(a2.join("gitdir"), format!("{}/.git\n", wt(&t, "agent-1").display())).unwrap();
    let w2 = wt(&t, "agent-2");
    t.run("wt-create", &["--remove", "--force", "agent-1"], "").expect_code(0);
    let registered: Vec<PathBuf> = t.git_worktrees().into_iter().map(|(p, _)| p).collect();
    assert!(registered.contains(&w2) && !registered.contains(&t.wt_root().join("agent-1")), "{registered:?}");
    assert!(a2.join("HEAD").exists() && w2.join("agent-2.txt").exists(), "agent-2 is intact");
}

/// Plants `core.fsmonitor` in one of three ways, checks that plain git would run it, then runs
/// every tool: none may run it.
fn planted_fsmonitor_never_runs(plant: fn(&TestRepo, &Path)) {
    let t = two_agents();
    let (script, marker) = fsmonitor_script(&t);
    plant(&t, &script);
    let w1 = wt(&t, "agent-1");
    let _ = std::process::Command::new("git").arg("-C").arg(&w1).args(["status"]).output();
    assert!(marker.exists(), "the plant works: plain `git status` in the worktree runs it");
    std::fs::remove_file(&marker).unwrap();
    let list = t.run("wt-create", &["--list", "--json"], "").stdout.clone();
    for (tool, args, stdin) in [
        ("wt-env", &["--range", "23200-23299", "--dotenv"][..], list.as_str()),
        ("wt-run", &["--", "git", "--version"][..], list.as_str()),
        // Refused (agent-1 has unmerged work), after checking its status.
        ("wt-create", &["--remove"][..], list.as_str()),
        ("wt-merge", &["--cleanup"][..], list.as_str()),
        ("wt-create", &["--remove", "--force"][..], list.as_str()),
    ] {
        t.run(tool, args, stdin);
        assert!(!marker.exists(), "{tool} ran the planted fsmonitor");
    }
}

#[test]
fn a_planted_fsmonitor_through_a_rewritten_dot_git_file_never_runs() {
    planted_fsmonitor_never_runs(|t, script| {
        let w1 = t.wt_root().join("agent-1");
        let evil = w1.join("evil");
        t.git(["clone", "-q", "--no-checkout", t.repo.to_str().unwrap(), evil.to_str().unwrap()]);
        t.git_in(&evil, ["config", "core.fsmonitor", script.to_str().unwrap()]);
        std::fs::write(w1.join(".git"), format!("gitdir: {}/.git\n", evil.display())).unwrap();
    });
}

#[test]
fn a_planted_fsmonitor_through_commondir_never_runs() {
    planted_fsmonitor_never_runs(|t, script| {
        let evil = t.root().join("evil");
        t.git(["clone", "-q", "--no-checkout", t.repo.to_str().unwrap(), evil.to_str().unwrap()]);
        t.git_in(&evil, ["config", "core.fsmonitor", script.to_str().unwrap()]);
        let a1 = t.repo.join(".git/worktrees/agent-1");
        std::fs::write(a1.join("commondir"), format!("{}/.git\n", evil.display())).unwrap();
    });
}

#[test]
fn a_planted_fsmonitor_through_config_worktree_never_runs() {
    planted_fsmonitor_never_runs(|t, script| {
        t.git(["config", "extensions.worktreeConfig", "true"]);
        let a1 = t.repo.join(".git/worktrees/agent-1");
        std::fs::write(a1.join("config.worktree"), format!("[core]\n\tfsmonitor = {}\n", script.display())).unwrap();
    });
}

#[test]
fn records_naming_anything_but_a_registered_worktree_are_errors_in_every_tool() {
    let t = two_agents();
    let stray = t.root().join("stray");
    std::fs::create_dir(&stray).unwrap();
    let w2 = wt(&t, "agent-2");
    // A directory dressed up as agent-1's worktree: its `.git` names agent-1's admin dir.
    let fake = t.root().join("fake");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join(".git"), format!("gitdir: {}\n", admin(&t, "agent-1").display())).unwrap();
    let cases = [
        (json!({"v": 1, "name": "fake", "path": fake}), "not-a-worktree"),
        (json!({"v": 1, "name": "x", "path": "/"}), "not-a-worktree"),
        (json!({"v": 1, "name": "x", "path": stray}), "not-a-worktree"),
        (json!({"v": 1, "name": "agent-1", "path": stray}), "not-a-worktree"),
        (json!({"v": 1, "name": "../../x", "path": w2}), "bad-name"),
        (json!({"v": 1, "name": "agent-1", "path": w2}), "not-a-worktree"),
        (json!({"v": 1, "name": "zzz", "path": w2}), "bad-name"),
        (json!({"v": 1, "name": "agent-2", "path": w2, "branch": "../../.."}), "not-a-worktree"),
    ];
    let tools: [(&str, Vec<&str>); 4] = [
        ("wt-env", vec!["--range", "23300-23399", "--dotenv"]),
        ("wt-run", vec!["--confine=best-effort", "--", "sh", "-c", "touch wrote"]),
        ("wt-merge", vec!["--cleanup"]),
        ("wt-create", vec!["--remove", "--force"]),
    ];
    for (rec, want) in &cases {
        for (tool, args) in &tools {
            let run = t.run(tool, args, &format!("{rec}\n"));
            run.expect_code(1);
            assert_eq!(code(&run.records()[0]), *want, "{tool} on {rec}");
        }
    }
    assert_eq!(std::fs::read_dir(&stray).unwrap().count(), 0, "nothing written in the stray directory");
    assert_eq!(std::fs::read_dir(&fake).unwrap().count(), 1, "nothing written in the fake worktree");
    let a1_gitdir = std::fs::read_to_string(admin(&t, "agent-1").join("gitdir")).unwrap();
    assert_eq!(a1_gitdir, format!("{}/.git\n", wt(&t, "agent-1").display()), "agent-1's registration untouched");
    assert!(!Path::new("/.env.wt").exists() && !Path::new("/wrote").exists());
    assert!(!t.root().join("x").exists() && !t.root().join("wrote").exists());
    assert!(w2.join("agent-2.txt").exists() && wt(&t, "agent-1").exists(), "no worktree removed");
    assert_eq!(t.git(["rev-parse", "main"]), t.git(["rev-parse", "main@{0}"]));
    let ledger = std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap();
    assert!(!ledger.contains("\"x\"") && !ledger.contains("zzz"), "nothing leased to a forged name");
}

#[test]
fn env_files_are_written_only_inside_the_worktree() {
    let t = two_agents();
    let outside = t.root().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let w1 = wt(&t, "agent-1");
    let base = ["-w", "agent-1", "--range", "23400-23499"];
    for bad in ["--dotenv=../x", &format!("--dotenv={}/x", outside.display()), "--brief=../brief.md"] {
        let run = t.run("wt-env", &[&base[..], &[bad]].concat(), "");
        run.expect_code(2);
        assert!(run.stderr.contains("inside the worktree"), "{bad}: {}", run.stderr);
    }
    std::os::unix::fs::symlink(&outside, w1.join("sub")).unwrap();
    std::os::unix::fs::symlink(outside.join("final"), w1.join(".env.wt")).unwrap();
    for bad in ["--dotenv=sub/.env", "--dotenv", "--brief=sub/brief.md"] {
        let run = t.run("wt-env", &[&base[..], &[bad]].concat(), "");
        run.expect_code(1);
        assert_eq!(code(&run.records()[0]), "outside-worktree", "{bad}");
    }
    // The SQLite copy, too (it goes to `data/app.db` in the worktree): never through a link.
    t.write("data/app.db", "sqlite data");
    std::os::unix::fs::symlink(&outside, w1.join("data")).unwrap();
    let sqlite = format!("sqlite://{}", t.repo.canonicalize().unwrap().join("data/app.db").display());
    let run = t.run("wt-env", &[&base[..], &["--database", &sqlite]].concat(), "");
    assert_eq!(code(&run.expect_code(1).records()[0]), "outside-worktree");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside");
    t.run("wt-env", &[&base[..], &["--dotenv=inner/.env"]].concat(), "").expect_code(0);
    assert!(std::fs::read_to_string(w1.join("inner/.env")).unwrap().contains("WT_NAME=\"agent-1\""));
}

#[test]
fn each_worktree_database_is_reachable_only_with_its_own_role() {
    let t = two_agents();
    let tmpl = PgTemplate::new("CREATE TABLE items (id int); INSERT INTO items VALUES (42);");
    let url = wt_tests::pg_url_for(&tmpl.name);
    let recs = t.run("wt-env", &["--all", "--range", "23500-23699", "--database", &url], "").expect_code(0).records();
    let db_url = |i: usize| recs[i]["env"]["vars"]["DATABASE_URL"].as_str().unwrap().to_string();
    let (db1, db2) = (format!("{}_wt1", tmpl.name), format!("{}_wt2", tmpl.name));
    // Its own database: it owns the cloned table, so it can read, write and migrate.
    assert_eq!(psql_url(&db_url(0), "SELECT current_user").unwrap(), db1);
    psql_url(&db_url(0), "INSERT INTO items VALUES (1); ALTER TABLE items ADD COLUMN note text").unwrap();
    // The other worktree's database, with this worktree's role: refused.
    let other = db_url(0).replacen(&format!("/{db1}?"), &format!("/{db2}?"), 1);
    let err = psql_url(&other, "SELECT 1").unwrap_err();
    assert!(err.contains("permission denied for database"), "{err}");
    assert_eq!(psql(&db2, "SELECT count(*) FROM items").unwrap(), "1", "untouched");
    // Asking again keeps the role's password: a running agent's URL stays valid.
    let again = t.run("wt-env", &["-w", "agent-1", "--range", "23500-23699", "--database", &url], "");
    assert_eq!(again.expect_code(0).records()[0]["env"]["vars"]["DATABASE_URL"].as_str().unwrap(), db_url(0));
    t.run("wt-env", &["--release", "--drop-database", "agent-1"], "").expect_code(0);
    assert_eq!(psql("postgres", &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{db1}'")).unwrap(), "0");
    assert_eq!(tmpl.clones(), [db2]);
}

#[test]
fn inherited_git_variables_do_not_redirect_wt_or_plant_config() {
    let t = TestRepo::new();
    t.run("wt-create", &["clean"], "").expect_code(0);
    let (script, marker) = fsmonitor_script(&t);
    let mut cmd = t.cmd("wt-create");
    cmd.args(["--remove", "clean"])
        .env("GIT_DIR", t.root().join("nowhere"))
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "core.fsmonitor")
        .env("GIT_CONFIG_VALUE_0", &script)
        .env("GIT_CONFIG_PARAMETERS", format!("'core.fsmonitor'='{}'", script.display()));
    Run::of(&mut cmd, "").expect_code(0);
    assert!(!marker.exists(), "an inherited variable made wt's git run the planted fsmonitor");
    assert!(!t.wt_root().join("clean").exists(), "and the removal itself went ahead, in this repository");
}

#[test]
fn a_worktree_that_claims_the_target_branch_runs_no_planted_code_when_the_target_moves() {
    let t = two_agents();
    let (script, marker) = fsmonitor_script(&t);
    // The main worktree is elsewhere; agent-1 says it has `main` checked out, and plants a
    // git dir of its own with core.fsmonitor behind its `.git` file.
    t.git(["checkout", "-q", "-b", "elsewhere"]);
    let w1 = wt(&t, "agent-1");
    std::fs::write(admin(&t, "agent-1").join("HEAD"), "ref: refs/heads/main\n").unwrap();
    let evil = w1.join("evil");
    t.git(["clone", "-q", "--no-checkout", t.repo.to_str().unwrap(), evil.to_str().unwrap()]);
    t.git_in(&evil, ["config", "core.fsmonitor", script.to_str().unwrap()]);
    std::fs::write(w1.join(".git"), format!("gitdir: {}/.git\n", evil.display())).unwrap();
    t.run("wt-merge", &["-w", "agent-2", "--into", "main"], "");
    assert!(!marker.exists(), "wt-merge ran the planted fsmonitor in the worktree that has the target");
}
