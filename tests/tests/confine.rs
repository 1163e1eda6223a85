//! `--confine` against an agent that tries to get out: each test runs the escape from a
//! confined command (batch, and in a pane for the important ones) and asserts that the harm
//! did not happen; the positive cases show that a confined agent can still do its work.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wt_tests::panes::Panes;
use wt_tests::{s, Run, TestRepo};

/// A repository with worktrees `names`, each on `wt/<name>`.
fn repo_with(names: &[&str]) -> TestRepo {
    let t = TestRepo::new();
    for name in names {
        t.run("wt-create", &[name], "").expect_code(0);
    }
    t
}

/// Runs `script` with `sh -c` confined in worktree `name`; returns the run and its record.
fn confined(t: &TestRepo, name: &str, script: &str) -> (Run, Value) {
    let run = t.run("wt-run", &["-w", name, "--confine", "--json", "--", "sh", "-c", script], "");
    let rec = run.records().first().cloned().unwrap_or_else(|| panic!("no record\n{run}"));
    (run, rec)
}

fn tail(rec: &Value) -> Vec<String> {
    rec["run"]["tail"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect()
}

/// The lines of the run's output that are one of the markers the scripts print.
fn said(rec: &Value, marker: &str) -> bool {
    tail(rec).iter().any(|l| l == marker)
}

fn fsck_clean(t: &TestRepo) {
    let out = Command::new("git").current_dir(&t.repo).args(["fsck", "--strict", "--no-dangling"]).output().unwrap();
    assert!(out.status.success(), "git fsck: {}", String::from_utf8_lossy(&out.stderr));
}

fn common(t: &TestRepo) -> PathBuf {
    t.repo.join(".git")
}

/// The two identities every escape is tried as: root, and an unprivileged user (65534).
const AS_ROOT_AND_UNPRIVILEGED: [bool; 2] = [false, true];

/// How to start wt-run as root or as the unprivileged user, as a shell word list; for the
/// unprivileged user the test's whole tree is given to it first (and the test's own git, as
/// root, may read it).
fn wt_run_as(t: &TestRepo, unprivileged: bool) -> String {
    let bin = format!("'{}'", wt_tests::bin("wt-run").display());
    if !unprivileged {
        return bin;
    }
    let status = Command::new("chown").args(["-R", "65534:65534"]).arg(t.root()).status().unwrap();
    assert!(status.success());
    let mut config = std::fs::OpenOptions::new().append(true).open(t.root().join("gitconfig")).unwrap();
    std::io::Write::write_all(&mut config, b"[safe]\n\tdirectory = *\n").unwrap();
    format!("setpriv --reuid=65534 --regid=65534 --clear-groups -- {bin}")
}

/// `confined`, as root or as the unprivileged user (`wt_run_as` gave it the tree).
fn confined_as(t: &TestRepo, who: &str, name: &str, script: &str) -> (Run, Value) {
    let line = format!("{who} -w {name} --confine --json -- sh -c \"$SCRIPT\"");
    let mut cmd = Command::new("sh");
    cmd.current_dir(&t.repo).args(["-c", &line]).env("SCRIPT", script);
    t.isolate(&mut cmd);
    let run = Run::of(&mut cmd, "");
    let rec = run.records().first().cloned().unwrap_or_else(|| panic!("no record\n{run}"));
    (run, rec)
}

#[test]
fn a_confined_agent_edits_builds_tests_and_commits_on_its_branch() {
    let t = repo_with(&["agent-1"]);
    let before = t.git(["rev-parse", "wt/agent-1"]);
    let script = "printf 'int main(){return 0;}' > main.c && cp main.c build.out && echo built; \
        sh -c 'test -f build.out' && echo tests-pass; \
        git add main.c && git commit -q -m one && echo c1; \
        echo more >> main.c && git commit -q -am two && echo c2; \
        echo staged > staged.txt && git add staged.txt && echo staged-ok";
    let (run, rec) = confined(&t, "agent-1", script);
    run.expect_code(0);
    for marker in ["built", "tests-pass", "c1", "c2", "staged-ok"] {
        assert!(said(&rec, marker), "{marker}: {rec}");
    }
    let after = t.git(["rev-parse", "wt/agent-1"]);
    assert_eq!(rec["run"]["confined"]["published"]["from"], before.as_str(), "{rec}");
    assert_eq!(rec["run"]["confined"]["published"]["to"], after.as_str());
    assert_eq!(t.git(["log", "--format=%s", "-2", "wt/agent-1"]), "two\none", "both commits on the real branch");
    fsck_clean(&t);
    // The staged blob, only in the index, reached the shared store too.
    let wt = t.wt_root().join("agent-1");
    assert_eq!(t.git_in(&wt, ["diff", "--cached", "--name-only"]), "staged.txt");
    assert_eq!(t.git_in(&wt, ["show", ":staged.txt"]), "staged");
    // Nothing left to publish: the next run says so, and the private store holds no objects.
    let (_, again) = confined(&t, "agent-1", "true");
    assert!(again["run"]["confined"].get("published").is_none(), "{again}");
    let objects = common(&t).join("wt/confine/agent-1/objects");
    let leftover: Vec<_> = std::fs::read_dir(&objects)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 2)
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap().flatten())
        .collect();
    assert!(leftover.is_empty(), "published objects are removed from the private store");
}

/// A worktree adopted from elsewhere (its directory not named as wt names it) publishes what a
/// confined run commits; a `meta.json` planted for a name the ledger does not list makes no
/// publish touch the admin dir it names.
#[test]
fn an_adopted_worktree_publishes_and_a_planted_store_touches_nothing() {
    let t = TestRepo::new();
    let elsewhere = t.root().join("elsewhere/bar");
    t.git(["worktree", "add", "-q", "-b", "wt/foo", elsewhere.to_str().unwrap()]);
    t.run("wt-create", &["foo"], "").expect_code(0);
    let before = t.git(["rev-parse", "wt/foo"]);
    let (run, rec) = confined(&t, "foo", "echo hi > new.txt && git add new.txt && git commit -qm c && echo c1");
    run.expect_code(0);
    assert!(said(&rec, "c1"), "{rec}");
    assert_ne!(t.git(["rev-parse", "wt/foo"]), before, "published: {rec}");

    let victim = t.root().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("config.worktree"), "mine\n").unwrap();
    let evil = common(&t).join("wt/confine/evil");
    std::fs::create_dir_all(evil.join("objects")).unwrap();
    let meta = serde_json::json!({"admin": victim, "config_worktree": "[core]\n\thooksPath = /tmp\n"});
    std::fs::write(evil.join("meta.json"), meta.to_string()).unwrap();
    t.run("wt-create", &["--list"], "");
    t.run("wt-status", &["--json"], "");
    assert_eq!(std::fs::read_to_string(victim.join("config.worktree")).unwrap(), "mine\n");
}

#[test]
fn other_branches_and_main_cannot_be_moved() {
    let t = repo_with(&["agent-1", "agent-2"]);
    t.git(["pack-refs", "--all", "--no-prune"]);
    let (main, other) = (t.git(["rev-parse", "main"]), t.git(["rev-parse", "wt/agent-2"]));
    let c = common(&t);
    let script = format!(
        "git commit -q --allow-empty -m mine; \
         git update-ref refs/heads/main HEAD 2>/dev/null && echo main-moved; \
         git branch -f main HEAD 2>/dev/null && echo main-forced; \
         git push -q . HEAD:main 2>/dev/null && echo main-pushed; \
         echo $(git rev-parse HEAD) > '{c}/refs/heads/main' 2>/dev/null && echo main-written; \
         git update-ref refs/heads/wt/agent-2 HEAD; git branch -D wt/agent-2 2>/dev/null; \
         rm '{c}/packed-refs' 2>/dev/null && echo packed-removed; \
         git tag planted 2>/dev/null && echo tag-made; \
         echo x >> README && git stash -q 2>/dev/null && echo stashed; true",
        c = c.display()
    );
    let (run, rec) = confined(&t, "agent-1", &script);
    run.expect_code(0);
    for harm in ["main-moved", "main-forced", "main-pushed", "main-written", "packed-removed", "tag-made", "stashed"] {
        assert!(!said(&rec, harm), "{harm}: {rec}");
    }
    assert_eq!(t.git(["rev-parse", "main"]), main, "main unchanged");
    assert_eq!(t.git(["rev-parse", "wt/agent-2"]), other, "the other agent's branch unchanged");
    assert!(t.git(["tag"]).is_empty());
    assert!(c.join("packed-refs").is_file());
    assert_eq!(t.git(["log", "-1", "--format=%s", "wt/agent-1"]), "mine", "its own branch moved");
    fsck_clean(&t);
}

#[test]
fn the_shared_object_store_cannot_be_damaged() {
    let t = repo_with(&["agent-1", "agent-2"]);
    let c = common(&t);
    let head = t.git(["rev-parse", "HEAD"]);
    let loose = c.join("objects").join(&head[..2]).join(&head[2..]);
    // An object the agent plants under the name of content someone else will write later.
    let future = "some content another writer will add\n";
    let future_id = {
        let mut cmd = Command::new("git");
        cmd.current_dir(&t.repo).args(["hash-object", "--stdin"]);
        let out = t
            .isolate(&mut cmd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut out = out;
        out.stdin.take().unwrap().write_all(future.as_bytes()).unwrap();
        String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap().trim().to_string()
    };
    let loose_bytes = std::fs::read(&loose).unwrap();
    // Inside, the shared store is shadowed by the private one and also reachable read-only
    // under the private store's real-objects: both paths are attacked.
    let real = c.join("wt/confine/agent-1/real-objects").join(&head[..2]).join(&head[2..]);
    let script = format!(
        "rm -rf '{c}/objects/{h2}'; rm -f '{real}' 2>/dev/null && echo deleted; \
         chmod u+w '{loose}' '{real}' 2>/dev/null; echo garbage > '{real}' 2>/dev/null && echo overwritten; \
         echo garbage > '{loose}' 2>/dev/null; \
         git prune 2>/dev/null; git gc -q --prune=now 2>/dev/null; \
         blob=$(echo wrong content | git hash-object -w --stdin); \
         mkdir -p .git-planted; d=$(git rev-parse --git-common-dir)/objects/{f2}; mkdir -p $d; \
         cp $(git rev-parse --git-common-dir)/objects/$(echo $blob | cut -c1-2)/$(echo $blob | cut -c3-) $d/{f38} && echo planted; \
         find '{c}/objects' -type f -delete 2>/dev/null; true",
        c = c.display(),
        h2 = &head[..2],
        loose = loose.display(),
        real = real.display(),
        f2 = &future_id[..2],
        f38 = &future_id[2..],
    );
    let (_, rec) = confined(&t, "agent-1", &script);
    assert!(!said(&rec, "deleted") && !said(&rec, "overwritten"), "{rec}");
    assert!(said(&rec, "planted"), "the plant went into the private store: {rec}");
    assert_eq!(t.git(["rev-parse", "HEAD"]), head);
    assert_eq!(std::fs::read(&loose).unwrap(), loose_bytes, "the shared object is untouched");
    fsck_clean(&t);
    for name in ["agent-1", "agent-2"] {
        t.git_in(&t.wt_root().join(name), ["status", "--short"]);
    }
    // The planted name never entered the shared store with the wrong content.
    let mut cmd = Command::new("git");
    cmd.current_dir(&t.repo).args(["cat-file", "-e", &future_id]);
    assert!(!t.isolate(&mut cmd).status().unwrap().success(), "planted object {future_id} is not in the shared store");
}

#[test]
fn git_config_hooks_and_admin_files_cannot_be_changed() {
    let t = repo_with(&["agent-1"]);
    let c = common(&t);
    let wt = t.wt_root().join("agent-1");
    let admin = c.join("worktrees/agent-1");
    let watched = [c.join("config"), admin.join("gitdir"), admin.join("commondir"), wt.join(".git")];
    let before: Vec<_> = watched.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let canary = t.root().join("fsmonitor-ran");
    let script = format!(
        "git config core.fsmonitor 'touch {canary}' 2>/dev/null && echo config-written; \
         echo 'touch {canary}' > '{c}/hooks/post-commit' 2>/dev/null && echo hook-written; \
         echo / > '{admin}/commondir' 2>/dev/null && echo commondir-written; \
         echo /tmp/x > '{admin}/gitdir' 2>/dev/null && echo gitdir-written; \
         echo 'gitdir: /' > .git 2>/dev/null && echo dotgit-written; \
         mv .git .git.old 2>/dev/null && echo dotgit-moved; \
         git commit -q --allow-empty -m still-works && echo commit-ok",
        canary = canary.display(),
        c = c.display(),
        admin = admin.display()
    );
    let (run, rec) = confined(&t, "agent-1", &script);
    run.expect_code(0);
    for harm in
        ["config-written", "hook-written", "commondir-written", "gitdir-written", "dotgit-written", "dotgit-moved"]
    {
        assert!(!said(&rec, harm), "{harm}: {rec}");
    }
    assert!(said(&rec, "commit-ok"), "{rec}");
    for (path, old) in watched.iter().zip(before) {
        assert_eq!(std::fs::read(path).unwrap(), old, "{} unchanged", path.display());
    }
    assert!(!c.join("hooks/post-commit").exists());
    t.git(["status"]);
    assert!(!canary.exists(), "no planted command ran");
}

#[test]
fn a_worktree_config_cannot_be_planted() {
    let t = repo_with(&["agent-1"]);
    t.git(["config", "extensions.worktreeConfig", "true"]);
    let canary = t.root().join("fsmonitor-ran");
    let script =
        format!("git config --worktree core.fsmonitor 'touch {}' 2>/dev/null && echo planted; true", canary.display());
    let (run, rec) = confined(&t, "agent-1", &script);
    run.expect_code(0);
    assert!(!said(&rec, "planted"), "{rec}");
    let wt = t.wt_root().join("agent-1");
    t.git_in(&wt, ["status", "--short"]);
    assert!(!canary.exists(), "no planted fsmonitor ran in a later git");
    assert_eq!(t.git_in(&wt, ["config", "--worktree", "--list"]), "");
}

#[test]
fn metadata_outside_cannot_change() {
    let t = repo_with(&["agent-1", "agent-2"]);
    let targets = [t.repo.join("README"), t.wt_root().join("agent-2/README")];
    let stat = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.mode(), m.uid(), m.gid(), m.mtime())
    };
    let before: Vec<_> = targets.iter().map(|p| stat(p)).collect();
    let mut script = String::new();
    for (i, p) in targets.iter().enumerate() {
        let p = p.display();
        script.push_str(&format!(
            "chmod 777 '{p}' 2>/dev/null && echo chmod-{i}; chown 1:1 '{p}' 2>/dev/null && echo chown-{i}; \
             touch -d 2001-01-01 '{p}' 2>/dev/null && echo utime-{i}; \
             python3 -c \"import os; os.setxattr('{p}', 'user.planted', b'1')\" 2>/dev/null && echo xattr-{i}; "
        ));
    }
    script.push_str("chmod 600 README && echo own-chmod-ok");
    let (run, rec) = confined(&t, "agent-1", &script);
    run.expect_code(0);
    for (i, target) in targets.iter().enumerate() {
        for harm in ["chmod", "chown", "utime", "xattr"] {
            assert!(!said(&rec, &format!("{harm}-{i}")), "{harm} of {}: {rec}", target.display());
        }
    }
    assert!(said(&rec, "own-chmod-ok"), "its own files it may chmod: {rec}");
    let after: Vec<_> = targets.iter().map(|p| stat(p)).collect();
    assert_eq!(before, after);
    for p in &targets {
        let out = Command::new("python3")
            .args(["-c", &format!("import os; print(os.listxattr('{}'))", p.display())])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    }
    // Unconfined, the same chmod goes through: the test above can fail.
    let free = t.run("wt-run", &["-w", "agent-1", "--", "chmod", "777", targets[0].to_str().unwrap()], "");
    free.expect_code(0);
    assert_eq!(std::fs::metadata(&targets[0]).unwrap().permissions().mode() & 0o777, 0o777);
}

#[test]
fn signals_and_abstract_sockets_outside_are_refused() {
    let t = repo_with(&["agent-1"]);
    let mut outside = Command::new("sleep").arg("60").spawn().unwrap();
    let name = format!("wt-test-abstract-{}", std::process::id());
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(&name).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let script = format!(
        "kill -TERM {pid} 2>/dev/null && echo killed-outside; \
         sleep 30 & kill $! && echo killed-own; \
         python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.connect('\\0{name}')\" 2>/dev/null && echo connected-outside; \
         python3 -c \"import socket; a=socket.socket(socket.AF_UNIX); a.bind('\\0{name}-own'); a.listen(); b=socket.socket(socket.AF_UNIX); b.connect('\\0{name}-own')\" && echo connected-own",
        pid = outside.id()
    );
    let (run, rec) = confined(&t, "agent-1", &script);
    run.expect_code(0);
    assert!(!said(&rec, "killed-outside") && said(&rec, "killed-own"), "{rec}");
    assert!(!said(&rec, "connected-outside") && said(&rec, "connected-own"), "{rec}");
    assert!(outside.try_wait().unwrap().is_none(), "the process outside is alive");
    assert_eq!(rec["run"]["confined"]["scopes"], serde_json::json!(["signal", "abstract-unix-socket"]));
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nobody connected");
    let _ = outside.kill();
    let _ = outside.wait();
}

#[test]
fn shm_tmp_and_terminals_are_private() {
    let t = repo_with(&["agent-1"]);
    let shm = PathBuf::from(format!("/dev/shm/wt-test-{}", std::process::id()));
    std::fs::write(&shm, "outside").unwrap();
    let script = format!(
        "test -e '{shm}' && echo sees-outside-shm; echo mine > /dev/shm/wt-test-own-{pid} && echo shm-write-ok; \
         echo t > \"$TMPDIR/t\" && echo tmp-ok; ls /dev/pts | tr '\\n' ' '; echo; \
         python3 -c 'import os, pty; m, s = pty.openpty(); print(\"own-pty\", os.ttyname(s))'",
        shm = shm.display(),
        pid = std::process::id()
    );
    let (run, rec) = confined(&t, "agent-1", &script);
    std::fs::remove_file(&shm).unwrap();
    run.expect_code(0);
    assert!(!said(&rec, "sees-outside-shm") && said(&rec, "shm-write-ok") && said(&rec, "tmp-ok"), "{rec}");
    assert!(!Path::new(&format!("/dev/shm/wt-test-own-{}", std::process::id())).exists(), "its shm stayed inside");
    assert!(said(&rec, "ptmx "), "no other terminal in /dev/pts: {rec}");
    assert!(said(&rec, "own-pty /dev/pts/0"), "it can open terminals of its own: {rec}");
    let tmp = common(&t).join("wt/confine/agent-1/tmp");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the private temp dir is gone with the run");
    assert_eq!(rec["run"]["confined"]["private"], serde_json::json!(["tmp", "shm", "pts"]));
}

#[test]
fn the_system_temp_dir_is_private_when_it_holds_nothing_of_the_repository() {
    let t = TestRepo::new_in(Path::new("/var/tmp"));
    t.run("wt-create", &["agent-1"], "").expect_code(0);
    let outside = PathBuf::from(format!("/tmp/wt-test-outside-{}", std::process::id()));
    std::fs::write(&outside, "outside").unwrap();
    let mine = format!("/tmp/wt-test-mine-{}", std::process::id());
    let script = format!(
        "test -e '{}' && echo sees-outside; echo x > '{mine}' && echo tmp-write-ok; echo \"TMPDIR=$TMPDIR\"",
        outside.display()
    );
    let (run, rec) = confined(&t, "agent-1", &script);
    std::fs::remove_file(&outside).unwrap();
    run.expect_code(0);
    assert!(!said(&rec, "sees-outside") && said(&rec, "tmp-write-ok") && said(&rec, "TMPDIR=/tmp"), "{rec}");
    assert!(!Path::new(&mine).exists(), "what it wrote in /tmp stayed inside");
}

/// A confined run started beside one still going (a test round or re-run beside the agent's
/// pane) never takes back a commit the running one made while the new one was being set up:
/// the new run's start published the pane's work, then wrote the branch's old tip over the
/// pane's private ref, and the agent's commit was gone from its branch (found by the README
/// walk-through, where wt-watch's re-run starts just as the agent commits its fix).
#[test]
fn a_run_started_beside_a_running_one_keeps_the_commit_it_made_meanwhile() {
    let t = repo_with(&["agent-1"]);
    let base = t.git(["rev-parse", "wt/agent-1"]);
    let (go, done, end) = (t.root().join("go"), t.wt_root().join("agent-1/committed"), t.root().join("end"));
    // The pane: commits when told, then keeps running (its store stays mounted).
    let script = format!(
        "while [ ! -e '{go}' ]; do sleep 0.02; done; git commit -q --allow-empty -m pane-work && touch committed; \
         while [ ! -e '{end}' ]; do sleep 0.02; done",
        go = go.display(),
        end = end.display()
    );
    let mut pane = t.cmd("wt-run");
    pane.args(["-w", "agent-1", "--confine", "--json", "--", "sh", "-c", &script]);
    pane.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let pane = pane.spawn().unwrap();
    // Wait for the pane's store to be set up, as the second run would find it.
    let meta = t.repo.join(".git/wt/confine/agent-1/meta.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !meta.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    // The second run, stopped right after its start published what there was.
    let mut round = t.cmd("wt-run");
    round.args(["-w", "agent-1", "--confine", "--json", "--", "true"]);
    let stopped = wt_tests::StoppedAt::spawn(&mut round, "confine-prepare-published");
    std::fs::write(&go, "").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(done.exists(), "the pane committed");
    stopped.resume().expect_code(0);
    std::fs::write(&end, "").unwrap();
    let run = Run::from_output(pane.wait_with_output().unwrap());
    run.expect_code(0);
    assert_eq!(
        t.git(["log", "-1", "--format=%s", "wt/agent-1"]),
        "pane-work",
        "the pane's commit is on its branch\n{run}"
    );
    assert_eq!(t.git(["rev-parse", "wt/agent-1~1"]), base);
    fsck_clean(&t);
}

#[test]
fn a_branch_moved_outside_is_not_overwritten() {
    let t = repo_with(&["agent-1"]);
    let flag = t.root().join("go");
    let script = format!(
        "git commit -q --allow-empty -m agent-work && touch committed; while [ ! -e '{}' ]; do sleep 0.05; done",
        flag.display()
    );
    let mut cmd = t.cmd("wt-run");
    cmd.args(["-w", "agent-1", "--confine", "--json", "--", "sh", "-c", &script]);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let marker = t.wt_root().join("agent-1/committed");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !marker.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    t.git(["commit", "-q", "--allow-empty", "-m", "someone else"]);
    t.git(["update-ref", "refs/heads/wt/agent-1", "main"]);
    std::fs::write(&flag, "").unwrap();
    let run = Run::from_output(child.wait_with_output().unwrap());
    let rec = &run.records()[0];
    assert_eq!(rec["error"]["code"], "branch-moved", "{run}");
    assert_eq!(t.git(["log", "-1", "--format=%s", "wt/agent-1"]), "someone else", "not overwritten");
    fsck_clean(&t);
}

#[test]
fn strict_mode_refuses_what_the_kernel_lacks_and_best_effort_says_so() {
    let t = repo_with(&["agent-1"]);
    let run = |mode: &str| {
        let mut cmd = t.cmd("wt-run");
        cmd.env("WT_LANDLOCK_ABI_MAX", "5").args([
            "-w",
            "agent-1",
            &format!("--confine={mode}"),
            "--json",
            "--",
            "sh",
            "-c",
            "touch ran-$0",
            mode,
        ]);
        Run::of(&mut cmd, "")
    };
    let strict = run("strict");
    strict.expect_code(1);
    let rec = &strict.records()[0];
    assert_eq!(rec["error"]["code"], "confine-unsupported", "{strict}");
    assert!(s(&rec["error"], "message").contains("scope-signal"), "{strict}");
    assert!(!t.wt_root().join("agent-1/ran-strict").exists(), "the command did not run");
    let best = run("best-effort");
    best.expect_code(0);
    let rec = &best.records()[0];
    assert_eq!(rec["run"]["confined"]["enforced"], "partial");
    assert_eq!(rec["run"]["confined"]["missing"], serde_json::json!(["scope-signal", "scope-abstract-unix-socket"]));
    assert_eq!(rec["run"]["confined"]["scopes"], serde_json::json!([]));
    assert!(t.wt_root().join("agent-1/ran-best-effort").exists());
}

#[test]
fn an_unprivileged_user_gets_the_same_sandbox() {
    let t = repo_with(&["agent-1"]);
    let status = Command::new("chown").args(["-R", "65534:65534"]).arg(t.root()).status().unwrap();
    assert!(status.success());
    let outside = t.repo.join("evil.txt");
    let readme = t.repo.join("README");
    let mode = std::fs::metadata(&readme).unwrap().permissions().mode();
    let script = format!(
        "echo x > '{}' 2>/dev/null && echo wrote-outside; echo mine > mine.txt && git add mine.txt && \
         git commit -q -m unprivileged && echo commit-ok; grep Cap /proc/self/status | tr '\\n' ' '",
        outside.display()
    );
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(wt_tests::bin("wt-run"))
        .args(["-w", "agent-1", "--confine", "--json", "--", "sh", "-c", &script])
        .current_dir(&t.repo);
    t.isolate(&mut cmd);
    let run = Run::of(&mut cmd, "");
    run.expect_code(0);
    let rec = &run.records()[0];
    assert_eq!(rec["run"]["confined"]["enforced"], "full", "{run}");
    assert!(!said(rec, "wrote-outside") && !said(rec, "chmod-outside") && said(rec, "commit-ok"), "{run}");
    assert!(!outside.exists());
    assert_eq!(std::fs::metadata(&readme).unwrap().permissions().mode(), mode);
    assert_eq!(rec["run"]["confined"]["git"], "private-store");
    assert_eq!(t.git(["-c", "safe.directory=*", "log", "-1", "--format=%s", "wt/agent-1"]), "unprivileged");
}

/// Panes (the tests' own supervisor) over worktrees `names`.
fn panes_with(names: &[&str]) -> Panes {
    let p = Panes::new();
    for name in names {
        p.t.run("wt-create", &[name], "").expect_code(0);
    }
    p
}

/// Starts bash in a pane of worktree `name`, confined or not; returns its record.
fn spawn_bash(p: &Panes, name: &str, confine: bool) -> Value {
    let mut args = vec!["-w", name, "--pane", "--json"];
    if confine {
        args.push("--confine");
    }
    args.extend(["--", "bash", "--norc", "--noprofile", "-i"]);
    let run = p.wt_run(&args);
    run.expect_code(0);
    run.records().remove(0)
}

/// Types `line` into the pane and waits until `marker` starts a line of its screen.
fn type_and_wait(p: &Panes, pane: &str, line: &str, marker: &str) -> String {
    p.json(&["pane", "send", pane, line, "--enter"]);
    let done = p.json(&["pane", "wait", pane, "--match", &format!("(?m)^{marker}"), "--timeout", "20s"]);
    s(&done["screen"], "text").to_string()
}

fn pid_alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_confined_pane_cannot_reach_another_terminal_or_signal_outside() {
    let p = panes_with(&["victim", "agent"]);
    let victim = spawn_bash(&p, "victim", false);
    let victim_pid = victim["run"]["pane"]["pid"].as_u64().unwrap();
    let tty = std::fs::read_link(format!("/proc/{victim_pid}/fd/0")).unwrap();
    assert!(tty.starts_with("/dev/pts"), "{}", tty.display());
    let agent = spawn_bash(&p, "agent", true);
    assert_eq!(agent["run"]["pane"]["confined"]["enforced"], "full", "{agent}");
    let supervisor = Command::new("pgrep").args(["-f", "wt-run serve"]).output().unwrap();
    let supervisors: Vec<u64> =
        String::from_utf8_lossy(&supervisor.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect();
    let tty = tty.display();
    let attack = format!(
        "echo INJECTED > {tty} 2>/dev/null && echo wrote-tty; timeout 1 cat {tty} 2>/dev/null && echo read-tty; \
         python3 -c \"import fcntl,termios; f=open('{tty}','w'); fcntl.ioctl(f, termios.TIOCSTI, b'X')\" 2>/dev/null && echo typed-tty; \
         kill -TERM {victim_pid} 2>/dev/null && echo killed-victim; {kill_sup} ls /dev/pts | tr '\\n' ' '; echo; echo attack-done",
        kill_sup = supervisors.iter().map(|pid| format!("kill -0 {pid} 2>/dev/null && echo signalled-supervisor;")).collect::<String>()
    );
    let text = type_and_wait(&p, "agent", &attack, "attack-done");
    for harm in ["wrote-tty", "read-tty", "typed-tty", "killed-victim", "signalled-supervisor"] {
        assert!(!text.lines().any(|l| l == harm), "{harm}:\n{text}");
    }
    assert!(text.lines().any(|l| l.trim() == "ptmx"), "only its own terminals in /dev/pts:\n{text}");
    assert!(
        !s(&p.json(&["pane", "screen", "victim"]), "text").contains("INJECTED"),
        "the other pane's screen is untouched"
    );
    assert!(pid_alive(victim_pid));
    p.wt_run(&["pane", "ls"]).expect_code(0);
    assert_eq!(agent["run"]["pane"]["confined"]["private"], serde_json::json!(["tmp", "shm", "pts"]));
}

#[test]
fn a_confined_pane_commits_on_its_branch_and_nothing_else_moves() {
    let p = panes_with(&["other", "agent"]);
    let (main, other) = (p.t.git(["rev-parse", "main"]), p.t.git(["rev-parse", "wt/other"]));
    spawn_bash(&p, "agent", true);
    let outside = p.t.wt_root().join("other/evil.txt");
    let head = p.t.git(["rev-parse", "HEAD"]);
    let object = p.t.repo.join(".git/objects").join(&head[..2]).join(&head[2..]);
    let work = format!(
        "echo x > '{}' 2>/dev/null && echo wrote-other; git update-ref refs/heads/main HEAD 2>/dev/null && echo moved-main; \
         git update-ref refs/heads/wt/other HEAD~0; rm -f '{}' 2>/dev/null; \
         echo pane > pane.txt && git add pane.txt && git commit -q -m from-pane && echo committed",
        outside.display(),
        object.display()
    );
    let text = type_and_wait(&p, "agent", &work, "committed");
    assert!(!text.lines().any(|l| l == "wrote-other" || l == "moved-main"), "{text}");
    p.json(&["pane", "send", "agent", "exit", "--enter"]);
    p.json(&["pane", "wait", "agent", "--exit", "--timeout", "20s"]);
    assert_eq!(p.t.git(["log", "-1", "--format=%s", "wt/agent"]), "from-pane", "published when the pane exited");
    assert_eq!(p.t.git(["rev-parse", "main"]), main);
    assert_eq!(p.t.git(["rev-parse", "wt/other"]), other);
    assert!(!outside.exists() && object.exists());
    fsck_clean(&p.t);
}

#[test]
fn tools_that_read_branches_publish_a_running_pane_first() {
    let p = panes_with(&["agent"]);
    spawn_bash(&p, "agent", true);
    type_and_wait(&p, "agent", "git commit -q --allow-empty -m live && echo committed", "committed");
    // The pane still runs: its commit is in its private store until a tool reads the branch.
    let listed = p.t.run("wt-create", &["--list", "--json"], "");
    let rec = &listed.expect_code(0).records()[0];
    assert_eq!(s(rec, "head"), p.t.git(["rev-parse", "wt/agent"]));
    assert_eq!(p.t.git(["log", "-1", "--format=%s", "wt/agent"]), "live");
    // …and the pane goes on committing on top of what was published.
    type_and_wait(&p, "agent", "git commit -q --allow-empty -m again && echo committed-again", "committed-again");
    let merged = p.t.run("wt-merge", &["--unverified", "-w", "agent", "--json"], "");
    merged.expect_code(0);
    assert_eq!(p.t.git(["log", "-1", "--format=%s", "wt/agent"]), "again", "published before the merge read it");
    p.t.git(["merge-base", "--is-ancestor", "wt/agent", "main"]);
    fsck_clean(&p.t);
}

#[test]
fn packs_and_detached_commits_are_published_and_the_store_goes_with_the_worktree() {
    let t = repo_with(&["agent-1", "agent-2"]);
    let script = "git commit -q --allow-empty -m packed && git repack -q -d && ls $(git rev-parse --git-common-dir)/objects/pack | grep -q pack && echo repacked; \
        git commit -q --allow-empty -m loose-on-packed && echo c2";
    let (run, rec) = confined(&t, "agent-1", script);
    run.expect_code(0);
    assert!(said(&rec, "repacked") && said(&rec, "c2"), "{rec}");
    assert_eq!(t.git(["log", "--format=%s", "-2", "wt/agent-1"]), "loose-on-packed\npacked");
    fsck_clean(&t);
    // A detached worktree has no branch to move, but its HEAD's commit must still be readable.
    let wt2 = t.wt_root().join("agent-2");
    t.git_in(&wt2, ["checkout", "-q", "--detach"]);
    let (run, rec) = confined(&t, "agent-2", "git commit -q --allow-empty -m detached && echo c");
    run.expect_code(0);
    assert!(said(&rec, "c"), "{rec}");
    assert_eq!(t.git_in(&wt2, ["log", "-1", "--format=%s"]), "detached");
    fsck_clean(&t);
    let store = common(&t).join("wt/confine/agent-1");
    assert!(store.is_dir());
    t.run("wt-create", &["--remove", "--force", "agent-1"], "").expect_code(0);
    assert!(!store.exists(), "the private store goes with its worktree");
}

#[test]
fn a_private_branch_that_is_not_a_plain_ref_is_not_published() {
    let t = repo_with(&["agent-1"]);
    let before = t.git(["rev-parse", "wt/agent-1"]);
    let c = common(&t);
    // Inside, refs/heads/wt is the private copy: the agent turns its branch into a link, then
    // into a symbolic ref to main.
    let link = format!("ln -sf /etc/passwd '{}/refs/heads/wt/agent-1' && echo linked", c.display());
    let (run, rec) = confined(&t, "agent-1", &link);
    run.expect_code(1);
    assert!(said(&rec, "linked"), "{rec}");
    assert_eq!(rec["error"]["code"], "publish-failed", "{rec}");
    assert_eq!(t.git(["rev-parse", "wt/agent-1"]), before);
    let symref = "git symbolic-ref refs/heads/wt/agent-1 refs/heads/main && echo symref";
    let (run, rec) = confined(&t, "agent-1", symref);
    assert!(said(&rec, "symref"), "the next run starts afresh: {run}");
    assert_eq!(rec["error"]["code"], "publish-failed", "{rec}");
    assert_eq!(t.git(["rev-parse", "wt/agent-1"]), before, "the real branch is still a plain ref at its commit");
    assert_eq!(t.git(["symbolic-ref", "-q", "HEAD"]), "refs/heads/main");
    fsck_clean(&t);
}

/// The helper's `hide` and `binds` (what the supervisor uses to leave a confined pane exactly
/// one socket): a hidden directory shows only what is bound into it, read-only.
#[test]
fn hidden_directories_show_only_what_is_bound_into_them() {
    let t = TestRepo::new();
    let root = t.root();
    let (secret, shared, work) = (root.join("secret"), root.join("shared.txt"), root.join("work"));
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(secret.join("private.txt"), "hidden").unwrap();
    std::fs::write(&shared, "shared").unwrap();
    let status = root.join("status.json");
    let policy = serde_json::json!({
        "write": [work], "ports": [], "best_effort": false, "private_tmp": null, "system_tmp": null,
        "hide": [secret], "binds": [{"src": shared, "dst": secret.join("one/visible.txt"), "writable": false}],
        "read_only": [], "status_file": status,
    });
    let script = format!(
        "ls -R '{s}' | tr '\\n' ' '; echo; cat '{s}/one/visible.txt'; echo; \
         echo x > '{s}/one/visible.txt' 2>/dev/null && echo wrote-bound; touch '{s}/new' 2>/dev/null && echo wrote-hidden; \
         echo ok > '{w}/out' && echo wrote-work",
        s = secret.display(),
        w = work.display()
    );
    let out = Command::new(wt_tests::bin("wt-run"))
        .args(["__confine-exec", &policy.to_string(), "--", "sh", "-c", &script])
        .current_dir(&work)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert!(!text.contains("private.txt"), "the hidden file is not visible: {text}");
    assert!(lines[0].contains("visible.txt"), "{text}");
    assert_eq!(lines[1], "shared");
    assert!(!text.contains("wrote-bound") && !text.contains("wrote-hidden") && text.contains("wrote-work"), "{text}");
    assert_eq!(std::fs::read_to_string(&shared).unwrap(), "shared");
    assert_eq!(std::fs::read_dir(&secret).unwrap().count(), 1, "nothing was made in the real directory");
}

#[test]
fn a_confined_commit_merges_and_cleanup_takes_the_private_store() {
    let t = repo_with(&["agent-1"]);
    let (run, _) = confined(&t, "agent-1", "echo f > f.txt && git add f.txt && git commit -q -m feature");
    run.expect_code(0);
    let store = common(&t).join("wt/confine/agent-1");
    assert!(store.is_dir());
    let merged = t.run("wt-merge", &["--unverified", "-w", "agent-1", "--cleanup", "--json"], "");
    merged.expect_code(0);
    let rec = &merged.records()[0];
    assert_eq!(rec["merge"]["status"], "merged", "{merged}");
    assert_eq!(rec["merge"]["cleanup"]["removed"], true, "{merged}");
    assert_eq!(t.git(["show", "main:f.txt"]), "f", "the confined commit is on main");
    assert!(!store.exists(), "the private store went with the worktree");
}

/// Runs wt-create --list (which publishes every private store first) and fails the test if it
/// has not ended within a minute: a FIFO in a private store must not hang it.
fn list_publishing(t: &TestRepo) -> Run {
    let mut child = t
        .cmd("wt-create")
        .args(["--list", "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("wt-create --list hung on what the agent planted in its private store");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from_output(child.wait_with_output().unwrap())
}

/// Every file under `dir` with its content, for before-and-after comparisons.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The agent's private object store is the agent's to write: pointed at another repository's
/// objects (its loose-object directories and its packs, by symbolic links) and holding a FIFO
/// named like an object, it makes the unconfined publish import nothing of the other
/// repository, delete nothing there, and hang nowhere.
#[test]
fn a_private_store_pointing_at_another_repository_changes_nothing_there() {
    let t = repo_with(&["agent"]);
    let (run, _) = confined(&t, "agent", "echo x > f && git add f && git commit -qm one");
    run.expect_code(0);
    // The victim: a repository outside, with a pack and loose objects.
    let victim = t.root().join("victim");
    let git_v = |args: &[&str]| {
        let out = Command::new("git").arg("-C").arg(&victim).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    std::fs::create_dir_all(&victim).unwrap();
    git_v(&["init", "-q"]);
    std::fs::write(victim.join("a"), "victim a\n").unwrap();
    git_v(&["add", "a"]);
    git_v(&["-c", "user.name=v", "-c", "user.email=v@v", "commit", "-qm", "packed"]);
    git_v(&["gc", "-q"]);
    std::fs::write(victim.join("b"), "victim b\n").unwrap();
    git_v(&["add", "b"]);
    git_v(&["-c", "user.name=v", "-c", "user.email=v@v", "commit", "-qm", "loose"]);
    let victim_head = git_v(&["rev-parse", "HEAD"]);
    let before = snapshot(&victim.join(".git/objects"));
    // What the agent plants in its private store (it writes there through its mount).
    let store = common(&t).join("wt/confine/agent/objects");
    for e in std::fs::read_dir(victim.join(".git/objects")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() == 2 || name == "pack" {
            let _ = std::fs::remove_dir_all(store.join(&name));
            std::os::unix::fs::symlink(e.path(), store.join(&name)).unwrap();
        }
    }
    // In a fan-out directory of the store's own: one named like a victim's directory is a link
    // to it (planted above), and the FIFO would then be in the victim's store, where this test's
    // own look at it would block (1 run in ~80: its loose objects' names are random).
    let fan = (0..=255u8)
        .map(|b| format!("{b:02x}"))
        .rev()
        .find(|d| !victim.join(".git/objects").join(d).exists())
        .expect("a fan-out directory the victim has not");
    std::fs::create_dir_all(store.join(&fan)).unwrap();
    nix::unistd::mkfifo(&store.join(&fan).join("f".repeat(38)), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let listed = list_publishing(&t);
    listed.expect_code(0);
    assert_eq!(snapshot(&victim.join(".git/objects")), before, "nothing of the victim's store changed");
    git_v(&["fsck", "--strict"]);
    let imported = Command::new("git").arg("-C").arg(&t.repo).args(["cat-file", "-e", &victim_head]).status().unwrap();
    assert!(!imported.success(), "the victim's objects were not imported");
    fsck_clean(&t);
}

/// An object git refuses, planted in the private store: the publish fails once, naming why;
/// the objects leave the private store (the checked copy is kept aside, once), so later
/// publishes have nothing to retry, nothing is left in the shared store or the import area
/// however often it is tried, and the rest of the worktree's work merges.
#[test]
fn a_refused_object_is_refused_once_and_leaves_nothing_behind() {
    let t = repo_with(&["agent"]);
    let (run, _) = confined(&t, "agent", "echo x > f && git add f && git commit -qm one");
    run.expect_code(0);
    // A loose object whose content is not a zlib stream of an object.
    let store = common(&t).join("wt/confine/agent/objects");
    let planted = store.join("ab").join("c".repeat(38));
    std::fs::create_dir_all(store.join("ab")).unwrap();
    std::fs::write(&planted, vec![7u8; 4096]).unwrap();
    let shared = snapshot(&common(&t).join("objects"));
    let listed = list_publishing(&t);
    listed.expect_code(0);
    assert!(listed.stderr.contains("is corrupt") && listed.stderr.contains(&"c".repeat(38)), "names it: {listed}");
    assert!(listed.stderr.contains("confine/agent/refused"), "says where the copy is: {listed}");
    assert_eq!(listed.stderr.lines().filter(|l| l.contains("agent")).count(), 1, "one line: {listed}");
    assert!(!planted.exists(), "out of the private store");
    let kept = common(&t).join("wt/confine/agent/refused");
    assert!(kept.is_dir(), "the checked copy is kept for a person");
    for _ in 0..4 {
        let listed = list_publishing(&t);
        listed.expect_code(0);
        assert!(!listed.stderr.contains("corrupt"), "refused once only: {listed}");
    }
    assert_eq!(snapshot(&common(&t).join("objects")), shared, "the shared store is as it was");
    assert!(!common(&t).join("wt/confine/agent/importing").exists(), "no copy is left");
    let merged = t.run("wt-merge", &["agent", "--unverified"], "");
    merged.expect_code(0);
    assert!(t.git(["log", "--format=%s", "main"]).lines().any(|l| l == "one"), "the work before it merged");
    fsck_clean(&t);
}

/// A `config.worktree` cannot be planted for later: the run sees an empty one read-only even
/// while `extensions.worktreeConfig` is off, so turning the extension on afterwards runs
/// nothing; one changed where the sandbox could not stop it is put back at the next publish,
/// and the error says so once.
#[test]
fn a_worktree_config_planted_for_later_is_harmless() {
    let t = repo_with(&["agent"]);
    let canary = t.root().join("fsmonitor-ran");
    let script = format!(
        "f=\"$(git rev-parse --git-dir)/config.worktree\"; printf '[core]\\n\\tfsmonitor = touch {}\\n' > \"$f\" 2>/dev/null && echo planted; true",
        canary.display()
    );
    let (run, rec) = confined(&t, "agent", &script);
    run.expect_code(0);
    assert!(!said(&rec, "planted"), "{rec}");
    t.git(["config", "extensions.worktreeConfig", "true"]);
    let wt = t.wt_root().join("agent");
    t.git_in(&wt, ["status", "--short"]);
    assert!(!canary.exists(), "no planted fsmonitor ran once the extension was on");
    // As if the sandbox had not held (best effort without a mount namespace): written from
    // outside, between two publishes.
    let admin = common(&t).join("worktrees/agent");
    std::fs::write(admin.join("config.worktree"), format!("[core]\n\tfsmonitor = touch {}\n", canary.display()))
        .unwrap();
    let listed = list_publishing(&t);
    assert!(listed.stderr.contains("config.worktree was changed"), "{listed}");
    assert_eq!(std::fs::read_to_string(admin.join("config.worktree")).unwrap(), "", "put back as wt left it");
    t.git_in(&wt, ["status", "--short"]);
    assert!(!canary.exists());
    let again = list_publishing(&t);
    assert!(!again.stderr.contains("config.worktree"), "said once: {again}");
}

/// A confined run that points its worktree's `HEAD` at an object nobody has would make
/// `git gc` and `git repack` fail for the whole repository: the publish at its end points
/// `HEAD` at its branch again and says so.
#[test]
fn a_head_naming_a_missing_object_is_put_back() {
    for unprivileged in AS_ROOT_AND_UNPRIVILEGED {
        let t = repo_with(&["agent"]);
        let who = wt_run_as(&t, unprivileged);
        let missing = "1234567890abcdef1234567890abcdef12345678";
        let script = format!("echo {missing} > \"$(git rev-parse --git-dir)/HEAD\" && echo moved");
        let (run, rec) = confined_as(&t, &who, "agent", &script);
        assert!(said(&rec, "moved"), "{rec}");
        assert_eq!(rec["error"]["code"], "tampered-worktree", "{run}");
        let head = std::fs::read_to_string(common(&t).join("worktrees/agent/HEAD")).unwrap();
        assert_eq!(head, "ref: refs/heads/wt/agent\n");
        let gc = Command::new("git")
            .current_dir(&t.repo)
            .args(["gc", "-q"])
            .env("HOME", t.root().join("home"))
            .env("GIT_CONFIG_GLOBAL", t.root().join("gitconfig"))
            .output()
            .unwrap();
        assert!(gc.status.success(), "git gc: {}", String::from_utf8_lossy(&gc.stderr));
    }
}

/// A confined batch run started from a terminal has no controlling terminal: it can neither
/// open `/dev/tty` nor queue a command into the caller's shell with `TIOCSTI`, which the shell
/// would run, unconfined, once wt-run returns.
#[test]
fn a_confined_batch_run_cannot_type_into_the_callers_terminal() {
    for unprivileged in AS_ROOT_AND_UNPRIVILEGED {
        cannot_type_into_the_callers_terminal(unprivileged);
    }
}

fn cannot_type_into_the_callers_terminal(unprivileged: bool) {
    let t = repo_with(&["agent"]);
    let attack = t.root().join("tiocsti.py");
    std::fs::write(
        &attack,
        "import os, fcntl, termios\n\
         try:\n    fd = os.open('/dev/tty', os.O_RDWR)\nexcept OSError as e:\n    print('no-tty'); raise SystemExit(0)\n\
         for c in b'echo INJECTED\\n':\n    fcntl.ioctl(fd, termios.TIOCSTI, bytes([c]))\nprint('typed')\n",
    )
    .unwrap();
    let who = wt_run_as(&t, unprivileged);
    let line =
        format!("{who} -w agent --confine --json -- python3 '{}'; read -t 2 x; echo \"read:[$x]\"", attack.display());
    let mut cmd = Command::new("script");
    cmd.current_dir(&t.repo).args(["-qec", &line, "/dev/null"]);
    t.isolate(&mut cmd);
    let run = Run::of(&mut cmd, "");
    let out = run.stdout.replace('\r', "");
    assert!(out.contains("no-tty") && !out.contains("\"typed\""), "the run had the terminal: {out}");
    assert!(out.contains("read:[]"), "something was typed into the caller's terminal: {out}");
}

/// A descriptor the caller left open without close-on-exec (`3>file`) does not reach the
/// confined command: it cannot write through it to a file outside the sandbox.
#[test]
fn an_inherited_writable_descriptor_does_not_reach_a_confined_command() {
    for unprivileged in AS_ROOT_AND_UNPRIVILEGED {
        let t = repo_with(&["agent"]);
        let outside = t.root().join("outside.txt");
        std::fs::write(&outside, "").unwrap();
        let who = wt_run_as(&t, unprivileged);
        let line = format!(
            "exec 3>>'{}'; {who} -w agent --confine --json -- sh -c 'echo ESCAPED >&3 && echo wrote || echo refused'",
            outside.display(),
        );
        let mut cmd = Command::new("sh");
        cmd.current_dir(&t.repo).args(["-c", &line]);
        t.isolate(&mut cmd);
        let run = Run::of(&mut cmd, "");
        let rec = run.records().first().cloned().unwrap_or_else(|| panic!("{run}"));
        assert!(said(&rec, "refused"), "{rec}");
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "", "nothing was written outside");
    }
}

/// A confined command gets the worktree's variables and what a program needs, never the
/// caller's secrets: database admin credentials, cloud keys, the ssh agent; `--pass-env` lets
/// one through by name. wt's ssh control sockets are out of its reach.
#[test]
fn a_confined_command_gets_no_secret_of_the_caller_unless_passed() {
    let t = repo_with(&["agent"]);
    let script = "for v in PGPASSWORD PGUSER AWS_SECRET_ACCESS_KEY SSH_AUTH_SOCK MY_TOKEN WT_NAME HOME PATH; do \
        eval \"x=\\${$v-unset}\"; [ \"$x\" = unset ] && echo \"$v=unset\" || echo \"$v=set\"; done; \
        ls \"$SSH_DIR\" 2>/dev/null | wc -l | sed 's/^/ssh-sockets=/'";
    let ssh_dir = wt_common::host::ssh::control_dir();
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let planted = ssh_dir.join(format!("wt-test-{}", std::process::id()));
    std::fs::write(&planted, "").unwrap();
    let mut cmd = t.cmd("wt-run");
    cmd.args(["-w", "agent", "--confine", "--json", "--pass-env", "MY_*", "--", "sh", "-c", script])
        .env("PGPASSWORD", "admin-secret")
        .env("PGUSER", "postgres")
        .env("AWS_SECRET_ACCESS_KEY", "k")
        .env("SSH_AUTH_SOCK", "/tmp/agent.sock")
        .env("MY_TOKEN", "passed")
        .env("SSH_DIR", &ssh_dir);
    let run = Run::of(&mut cmd, "");
    let _ = std::fs::remove_file(&planted);
    let rec = run.records().first().cloned().unwrap_or_else(|| panic!("{run}"));
    for line in ["PGPASSWORD=unset", "PGUSER=unset", "AWS_SECRET_ACCESS_KEY=unset", "SSH_AUTH_SOCK=unset"] {
        assert!(said(&rec, line), "{line}: {rec}");
    }
    for line in ["MY_TOKEN=set", "WT_NAME=set", "HOME=set", "PATH=set", "ssh-sockets=0"] {
        assert!(said(&rec, line), "{line}: {rec}");
    }
    // The same as an unprivileged user (its own ssh control dir is covered as well).
    let t = repo_with(&["agent"]);
    let who = wt_run_as(&t, true);
    let line = format!("{who} -w agent --confine --json --pass-env 'MY_*' -- sh -c \"$SCRIPT\"");
    let mut cmd = Command::new("sh");
    cmd.current_dir(&t.repo).args(["-c", &line]);
    t.isolate(&mut cmd)
        .env("SCRIPT", script)
        .env("PGPASSWORD", "admin-secret")
        .env("PGUSER", "postgres")
        .env("AWS_SECRET_ACCESS_KEY", "k")
        .env("SSH_AUTH_SOCK", "/tmp/agent.sock")
        .env("MY_TOKEN", "passed")
        .env("SSH_DIR", "/nonexistent");
    let run = Run::of(&mut cmd, "");
    let rec = run.records().first().cloned().unwrap_or_else(|| panic!("{run}"));
    for line in
        ["PGPASSWORD=unset", "PGUSER=unset", "AWS_SECRET_ACCESS_KEY=unset", "SSH_AUTH_SOCK=unset", "MY_TOKEN=set"]
    {
        assert!(said(&rec, line), "unprivileged: {line}: {rec}");
    }
}

/// Every process a confined run starts ends with it, before wt-run reports it over (and before
/// its commits are published): a `setsid` child, a double fork, a `nohup` daemon. As root and
/// unprivileged.
#[test]
fn processes_that_leave_the_run_end_with_it() {
    for unprivileged in [false, true] {
        let t = repo_with(&["agent"]);
        if unprivileged {
            let status = Command::new("chown").args(["-R", "65534:65534"]).arg(t.root()).status().unwrap();
            assert!(status.success());
        }
        let marker = format!("wt-escapee-{}-{unprivileged}", std::process::id());
        let late = t.wt_root().join("agent/late.txt");
        // Each one waits a moment, then writes and commits: after the run, if it were alive.
        let later =
            format!("exec -a {marker} sh -c 'sleep 2; echo late > late.txt; git add late.txt; git commit -qm late'");
        let script = format!(
            "setsid sh -c \"{later}\" </dev/null >/dev/null 2>&1 & \
             (sh -c \"{later}\" </dev/null >/dev/null 2>&1 &) ; \
             nohup sh -c \"{later}\" </dev/null >/dev/null 2>&1 & \
             sleep 0.3; ps -eo pid= | wc -l | sed 's/ //g; s/^/procs=/'; echo started"
        );
        let mut cmd = if unprivileged {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(wt_tests::bin("wt-run"));
            c
        } else {
            Command::new(wt_tests::bin("wt-run"))
        };
        cmd.args(["-w", "agent", "--confine", "--json", "--", "sh", "-c", &script]).current_dir(&t.repo);
        t.isolate(&mut cmd);
        let run = Run::of(&mut cmd, "");
        run.expect_code(0);
        let rec = &run.records()[0];
        assert!(said(rec, "started"), "{run}");
        // The run saw only its own processes (its /proc is the namespace's).
        let procs: usize = tail(rec).iter().find_map(|l| l.strip_prefix("procs=")?.parse().ok()).unwrap();
        assert!(procs < 12, "{procs} processes visible: {run}");
        let left = Command::new("pgrep").args(["-f", &marker]).output().unwrap();
        assert!(left.stdout.is_empty(), "still running after the run: {}", String::from_utf8_lossy(&left.stdout));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!late.exists(), "a process of the run wrote after it ended");
        let log = t.git(["-c", "safe.directory=*", "log", "--format=%s", "wt/agent"]);
        assert!(!log.contains("late"), "{log}");
    }
}

/// One agent cannot read another's database password: not from the other's env file or brief,
/// not from wt's ledger, not from a worktree made after the run started, not from the main
/// worktree's env file; its own stays readable. The files are private to their owner too.
#[test]
fn another_worktrees_password_is_out_of_reach() {
    for unprivileged in AS_ROOT_AND_UNPRIVILEGED {
        password_out_of_reach(unprivileged);
    }
}

fn password_out_of_reach(unprivileged: bool) {
    let t = TestRepo::new();
    let tmpl = wt_tests::PgTemplate::new("CREATE TABLE t (id int);");
    let url = wt_tests::pg_url_for(&tmpl.name);
    let env_args = ["--range", "23400-23499", "--database", &url, "--dotenv", "--brief=AGENT.md"];
    let recs = t.pipeline(&[("wt-create", &["a", "b"]), ("wt-env", &env_args)]).expect_code(0).records();
    let password = |rec: &Value| {
        let url = rec["env"]["vars"]["DATABASE_URL"].as_str().unwrap().to_string();
        let start = url.find("password=").unwrap() + "password=".len();
        url[start..].split('&').next().unwrap().to_string()
    };
    let (mine, theirs) = (password(&recs[0]), password(&recs[1]));
    assert!(!theirs.is_empty() && mine != theirs);
    let env_b = t.wt_root().join("b/.env.wt");
    assert_eq!(std::fs::metadata(&env_b).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(common(&t).join("wt/ledger.json")).unwrap().permissions().mode() & 0o777, 0o600);
    // The main worktree has an env file too (a person's own dev server), and a worktree outside
    // the worktree root.
    let outside = t.root().join("elsewhere/c");
    t.git(["worktree", "add", "-q", "-b", "wt/c", outside.to_str().unwrap()]);
    t.run("wt-create", &[outside.to_str().unwrap()], "").expect_code(0);
    let c = t.run("wt-env", &["-w", "c", "--range", "23400-23499", "--database", &url, "--dotenv"], "");
    let theirs = format!("{theirs}|{}", password(&c.expect_code(0).records()[0]));
    std::fs::write(t.repo.join(".env.wt"), format!("DATABASE_URL=x?password={theirs}\n")).unwrap();
    // Pane-long runs see worktrees made after they started: one made during the run.
    let script = format!(
        "sleep 1; for f in ../b/.env.wt ../b/AGENT.md ../d/.env.wt '{main}/.env.wt' '{c}/.env.wt' '{ledger}'; do \
           grep -Erqs -- '{theirs}' \"$f\" && echo \"read:$f\"; done; \
         grep -Erqs -- '{theirs}' '{state}' && echo read:state; \
         grep -qs -- '{mine}' .env.wt && echo own-ok; ls .. | tr '\\n' ' '",
        main = t.repo.display(),
        c = outside.display(),
        ledger = common(&t).join("wt/ledger.json").display(),
        state = common(&t).join("wt").display(),
    );
    let who = wt_run_as(&t, unprivileged);
    let mut run_cmd = Command::new("sh");
    run_cmd.current_dir(&t.repo).args(["-c", &format!("{who} -w a --confine --json -- sh -c \"$SCRIPT\"")]);
    t.isolate(&mut run_cmd).env("SCRIPT", &script);
    let child = std::thread::spawn(move || Run::of(&mut run_cmd, ""));
    std::thread::sleep(Duration::from_millis(300));
    t.run("wt-create", &["d"], "").expect_code(0);
    t.run("wt-env", &["-w", "d", "--range", "23400-23499", "--dotenv"], "").expect_code(0);
    std::fs::write(t.wt_root().join("d/.env.wt"), format!("P={theirs}\n")).unwrap();
    let run = child.join().unwrap();
    run.expect_code(0);
    let rec = &run.records()[0];
    let read: Vec<String> = tail(rec).into_iter().filter(|l| l.starts_with("read:")).collect();
    assert!(read.is_empty(), "{read:?}\n{run}");
    assert!(said(rec, "own-ok"), "its own env file stays readable: {run}");
}

/// A shared dependency directory's files are the store's, hard-linked into every worktree: a
/// confined run sees them copy-on-write, so an append, a chmod or a new file changes its own
/// layer only, never the main worktree's or another agent's copy; its later confined runs see
/// what it changed. As root and unprivileged.
#[test]
fn a_shared_directory_is_copy_on_write_for_a_confined_run() {
    for unprivileged in [false, true] {
        let t = TestRepo::new();
        t.write(".gitignore", "node_modules/\n");
        t.commit("ignore");
        let file = "node_modules/left-pad/index.js";
        std::fs::create_dir_all(t.repo.join("node_modules/left-pad")).unwrap();
        std::fs::write(t.repo.join(file), "module.exports = 1;\n").unwrap();
        t.run("wt-create", &["a", "b", "--share", "node_modules"], "").expect_code(0);
        let shared = [t.repo.join(file), t.wt_root().join("b").join(file), t.wt_root().join("a").join(file)];
        assert_eq!(std::fs::metadata(&shared[0]).unwrap().ino(), std::fs::metadata(&shared[1]).unwrap().ino());
        let mode = std::fs::metadata(&shared[0]).unwrap().permissions().mode();
        if unprivileged {
            let status = Command::new("chown").args(["-R", "65534:65534"]).arg(t.root()).status().unwrap();
            assert!(status.success());
        }
        let run_as = |script: &str| {
            let mut cmd = if unprivileged {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(wt_tests::bin("wt-run"));
                c
            } else {
                Command::new(wt_tests::bin("wt-run"))
            };
            cmd.args(["-w", "a", "--confine", "--json", "--", "sh", "-c", script]).current_dir(&t.repo);
            t.isolate(&mut cmd);
            let run = Run::of(&mut cmd, "");
            run.expect_code(0);
            run.records()[0].clone()
        };
        let rec = run_as(&format!(
            "echo EVIL >> {file} && echo appended; chmod 777 {file} && echo chmodded; \
             mkdir node_modules/new && echo n > node_modules/new/x && echo created"
        ));
        for marker in ["appended", "chmodded", "created"] {
            assert!(said(&rec, marker), "the run can still change its dependencies: {marker}: {rec}");
        }
        assert_eq!(rec["run"]["confined"]["shared"][0]["as"], "copy-on-write", "{rec}");
        for path in &shared {
            assert_eq!(std::fs::read_to_string(path).unwrap(), "module.exports = 1;\n", "{}", path.display());
            assert_eq!(std::fs::metadata(path).unwrap().permissions().mode(), mode, "{}", path.display());
        }
        assert!(!t.repo.join("node_modules/new").exists());
        // Its next confined run sees its own changes.
        let again = run_as(&format!("cat {file}; cat node_modules/new/x"));
        assert!(said(&again, "EVIL") && said(&again, "n"), "{again}");
        // No overlay scratch is left behind.
        let layers = common(&t).join("wt/confine/a/cow/node_modules");
        let left: Vec<String> = std::fs::read_dir(&layers)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["upper"], "{unprivileged}");
    }
}

/// The run's pid 1 (the namespace's init, which runs the command) holds the caller's
/// environment and descriptors and shares the command's user and sandbox: the command can
/// neither read its environment, nor trace it, nor copy a descriptor out of it. As root and
/// unprivileged.
#[test]
fn the_runs_first_process_gives_the_command_nothing() {
    let probe = "import ctypes, os\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        try:\n    data = open('/proc/1/environ', 'rb').read(); print('environ-read' if b'admin-secret' in data else 'environ-clean')\n\
        except OSError:\n    print('environ-denied')\n\
        print('ptrace-ok' if libc.ptrace(16, 1, 0, 0) == 0 else 'ptrace-denied')\n\
        fd = os.pidfd_open(1)\n\
        print('getfd-ok' if libc.syscall(438, fd, 7, 0) >= 0 else 'getfd-denied')\n";
    for unprivileged in AS_ROOT_AND_UNPRIVILEGED {
        let t = repo_with(&["agent"]);
        std::fs::write(t.wt_root().join("agent/probe.py"), probe).unwrap();
        let outside = t.root().join("outside.txt");
        std::fs::write(&outside, "").unwrap();
        let who = wt_run_as(&t, unprivileged);
        let line = format!("exec 7>>'{}'; {who} -w agent --confine --json -- python3 probe.py", outside.display());
        let mut cmd = Command::new("sh");
        cmd.current_dir(&t.repo).args(["-c", &line]);
        t.isolate(&mut cmd).env("PGPASSWORD", "admin-secret");
        let run = Run::of(&mut cmd, "");
        let rec = run.records().first().cloned().unwrap_or_else(|| panic!("{run}"));
        for line in ["ptrace-denied", "getfd-denied"] {
            assert!(said(&rec, line), "{line} ({unprivileged}): {rec}");
        }
        assert!(!said(&rec, "environ-read"), "the caller's environment leaked through pid 1: {rec}");
    }
}

/// A run can make a directory of its private store a link to another repository's: the next
/// run's preparation writes through `beneath`, so the other repository's `alternates` stay
/// as they were (found by an adversarial review: they were overwritten).
#[test]
fn a_link_in_the_private_store_does_not_send_wt_elsewhere() {
    let t = repo_with(&["agent"]);
    let other = t.root().join("other");
    let git = |args: &[&str]| assert!(Command::new("git").args(args).status().unwrap().success());
    git(&["init", "-q", other.to_str().unwrap()]);
    let theirs = other.join(".git/objects/info/alternates");
    std::fs::write(&theirs, "/some/reference/objects\n").unwrap();
    let script = format!(
        "cd '{}' && rm -rf info && ln -s '{}' info && echo linked",
        common(&t).join("objects").display(),
        theirs.parent().unwrap().display()
    );
    let (_, rec) = confined(&t, "agent", &script);
    assert!(said(&rec, "linked"), "{rec}");
    let (run, _) = confined(&t, "agent", "git status --short >/dev/null && echo ok");
    run.expect_code(0);
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "/some/reference/objects\n");
}

/// What a run leaves in its admin dir that would break git for the whole repository is put
/// right when it is published, and said: an index naming a missing object (`git gc` fails), a
/// FIFO as the index, as `HEAD` or as `locked` (`git gc`, `git worktree list` hang).
#[test]
fn an_admin_dir_that_would_break_git_for_everyone_is_put_right() {
    let t = repo_with(&["agent"]);
    let attacks = [
        (
            "git update-index --add --cacheinfo 100644,1234567890123456789012345678901234567890,ghost",
            "index named object",
        ),
        ("d=\"$(git rev-parse --git-dir)\"; rm -f \"$d/index\"; mkfifo \"$d/index\"", "index was not a plain file"),
        ("d=\"$(git rev-parse --git-dir)\"; rm -f \"$d/HEAD\"; mkfifo \"$d/HEAD\"", "HEAD was not a plain HEAD"),
        ("mkfifo \"$(git rev-parse --git-dir)/locked\"", "locked was not a plain file"),
    ];
    for (attack, said_so) in attacks {
        let (run, rec) = confined(&t, "agent", attack);
        assert_eq!(rec["error"]["code"], "tampered-worktree", "{attack}: {run}");
        assert!(s(&rec["error"], "message").contains(said_so), "{attack}: {run}");
        for args in [&["gc", "-q"][..], &["worktree", "list"][..]] {
            let out = Command::new("timeout")
                .arg("20")
                .arg("git")
                .args(args)
                .current_dir(&t.repo)
                .env("HOME", t.root().join("home"))
                .env("GIT_CONFIG_GLOBAL", t.root().join("gitconfig"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{attack}: git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        // Said once: the next run finds the admin dir as wt left it.
        let (again, rec) = confined(&t, "agent", "true");
        again.expect_code(0);
        assert!(rec.get("error").is_none(), "{rec}");
    }
}

/// A shared directory deeper in the worktree (`web/node_modules`): the run cannot move the
/// directory it sits in (and the shared files with it) from under its overlay, and a link put
/// on the way is refused at the next run rather than confined around.
#[test]
fn a_nested_shared_directory_cannot_be_moved_from_under_its_overlay() {
    let t = TestRepo::new();
    t.write(".gitignore", "node_modules/\n");
    t.write("web/index.js", "\n");
    t.commit("web");
    let file = "web/node_modules/left-pad/index.js";
    std::fs::create_dir_all(t.repo.join("web/node_modules/left-pad")).unwrap();
    std::fs::write(t.repo.join(file), "module.exports = 1;\n").unwrap();
    t.run("wt-create", &["a", "--share", "web/node_modules"], "").expect_code(0);
    let (run, rec) = confined(&t, "a", "mv web web2 2>/dev/null && echo moved; echo EVIL >> web2/node_modules/left-pad/index.js 2>/dev/null; echo EVIL >> web/node_modules/left-pad/index.js; true");
    run.expect_code(0);
    assert!(!said(&rec, "moved"), "{rec}");
    assert_eq!(std::fs::read_to_string(t.repo.join(file)).unwrap(), "module.exports = 1;\n");
    // Moved unconfined (by a person, or before wt confined it), with a link in its place.
    let wt = t.wt_root().join("a");
    std::fs::rename(wt.join("web"), wt.join("web2")).unwrap();
    std::os::unix::fs::symlink(wt.join("web2"), wt.join("web")).unwrap();
    let (run, rec) = confined(&t, "a", "true");
    run.expect_code(1);
    assert_eq!(rec["error"]["code"], "tampered-worktree", "{run}");
    assert!(s(&rec["error"], "message").contains("wt-create --share"), "{run}");
}
