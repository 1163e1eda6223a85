//! The disk budget (`wt-create --gc`) and honest disk accounting (`wt-status --disk`,
//! `wt-create --share-status`): real git worktrees with real build dirs of known sizes, a real
//! pane supervisor with a real process in a pane, `du` as the reference.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wt_tests::panes::Panes;
use wt_tests::{s, Run, TestRepo};

/// wt-create (or any tool) in the test's repository, sharing the panes' socket directory.
fn tool(p: &Panes, name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = p.t.cmd(name);
    p.env(&mut cmd);
    cmd.args(args).envs(env.iter().copied());
    Run::of(&mut cmd, "")
}

/// `n` bytes no file system compresses or leaves sparse.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed).collect()
}

/// A `target/`-like and a `node_modules` dir in worktree `wt`, of known sizes.
fn build_dirs(wt: &Path, seed: u8) {
    fs::create_dir_all(wt.join("target/debug/deps")).unwrap();
    fs::write(wt.join("target/debug/deps/libapp.rlib"), bytes(256 * 1024, seed)).unwrap();
    fs::write(wt.join("target/debug/app"), bytes(128 * 1024, seed ^ 1)).unwrap();
    fs::create_dir_all(wt.join("node_modules/lodash")).unwrap();
    fs::write(wt.join("node_modules/lodash/lodash.js"), bytes(64 * 1024, seed ^ 2)).unwrap();
}

fn has_build_dirs(wt: &Path) -> bool {
    wt.join("target/debug/deps/libapp.rlib").is_file() && wt.join("node_modules/lodash/lodash.js").is_file()
}

/// A repository that ignores target/ and node_modules/.
fn ignoring_build_dirs(t: &TestRepo) {
    t.write(".gitignore", "target/\nnode_modules/\n");
    t.commit("ignore build dirs");
}

/// Makes worktree `name` look last used `days_ago` days ago: the times `--gc` reads (its admin
/// dir's index, HEAD, logs/HEAD and the dir itself; wt's logs of it).
fn used_days_ago(t: &TestRepo, name: &str, days_ago: u64) {
    let when = format!("@{}", now_secs() - days_ago * 86400);
    let admin = t.repo.join(".git/worktrees").join(name);
    let mut paths: Vec<PathBuf> =
        ["index", "HEAD", "logs/HEAD"].iter().map(|f| admin.join(f)).filter(|p| p.exists()).collect();
    paths.push(admin);
    if let Ok(logs) = fs::read_dir(t.repo.join(".git/wt/logs").join(name)) {
        paths.extend(logs.map(|e| e.unwrap().path()));
    }
    let out = Command::new("touch").arg("-h").arg("-d").arg(&when).args(&paths).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// `du -s -B1 -c` of `paths` together (each inode once, the first path paying): the total.
fn du(paths: &[PathBuf]) -> u64 {
    let out = Command::new("du").args(["-s", "-B1", "-c"]).args(paths).output().unwrap();
    assert!(out.status.success(), "du: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().and_then(|l| l.split_whitespace().next()).unwrap().parse().unwrap()
}

fn gc_of<'r>(recs: &'r [Value], name: &str) -> Option<&'r Value> {
    recs.iter().find(|r| r["name"] == name).map(|r| &r["gc"])
}

#[test]
fn gc_reclaims_only_the_build_dirs_of_idle_worktrees_least_recently_used_first_and_never_touches_work() {
    let p = Panes::new();
    let t = &p.t;
    ignoring_build_dirs(t);
    // w4 has an agent running in a pane; the others are made plainly.
    p.spawn("w4", &["sleep", "600"]);
    tool(&p, "wt-create", &["w1", "w2", "w3", "w5", "w6"], &[]).expect_code(0);
    let wt = |n: &str| t.wt_root().join(n);
    for (i, n) in ["w1", "w2", "w3", "w4", "w5", "w6"].iter().enumerate() {
        build_dirs(&wt(n), i as u8);
    }
    // w2: uncommitted work; w3: a commit neither merged nor pushed.
    fs::write(wt("w2").join("src/lib.rs"), "pub fn changed() {}\n").unwrap();
    fs::write(wt("w3").join("NOTES"), "work\n").unwrap();
    t.git_in(&wt("w3"), ["add", "NOTES"]);
    t.git_in(&wt("w3"), ["commit", "-qm", "unpushed work"]);
    // Least recently used first: w1, w2, w3, w4, w5, w6.
    for (i, n) in ["w1", "w2", "w3", "w4", "w5", "w6"].iter().enumerate() {
        used_days_ago(t, n, 20 - i as u64);
    }
    // Over the budget by one and a half worktrees' build dirs: w1's and w5's must go (w2, w3,
    // w4 are protected), then it holds and w6 keeps its own.
    let all: Vec<PathBuf> = ["w1", "w2", "w3", "w4", "w5", "w6"].iter().map(|n| wt(n)).collect();
    let one_build = du(&[wt("w1").join("target"), wt("w1").join("node_modules")]);
    let budget = du(&all) - one_build * 3 / 2;
    t.write("wt.toml", &format!("[create]\nbudget = {{ max_size = \"{budget}\" }}\n"));

    // Without --yes: what it would reclaim, nothing removed.
    let dry = tool(&p, "wt-create", &["--gc"], &[]);
    dry.expect_code(0);
    let recs = dry.records();
    assert!(all.iter().all(|w| has_build_dirs(w)), "nothing removed without --yes: {dry}");
    assert_eq!(gc_of(&recs, "w1").unwrap()["action"], "would_reclaim", "{dry}");
    assert!(dry.stderr.contains("--gc --yes"), "says how to do it: {dry}");

    let run = tool(&p, "wt-create", &["--gc", "--yes"], &[]);
    run.expect_code(0);
    let recs = run.records();
    let order: Vec<&str> = recs.iter().map(|r| s(r, "name")).collect();
    assert_eq!(order, ["w1", "w2", "w3", "w4", "w5"], "least recently used first, stopping once it holds: {run}");
    for n in ["w1", "w5"] {
        let gc = gc_of(&recs, n).unwrap();
        assert_eq!(gc["action"], "reclaimed", "{n}: {run}");
        assert!(gc["bytes"].as_u64().unwrap() >= one_build * 9 / 10, "{n}: {run}");
        let dirs: Vec<&str> = gc["dirs"].as_array().unwrap().iter().map(|d| s(d, "dir")).collect();
        assert_eq!(dirs.len(), 2, "{dirs:?}");
        assert!(dirs.contains(&"target") && dirs.contains(&"node_modules"), "{dirs:?}");
        assert!(gc["dirs"].as_array().unwrap().iter().all(|d| !s(d, "restore").is_empty()), "{run}");
        assert!(!wt(n).join("target").exists() && !wt(n).join("node_modules").exists(), "{n}");
        // The checkout stays whole and clean.
        assert!(wt(n).join("src/lib.rs").is_file());
        assert_eq!(t.git_in(&wt(n), ["status", "--porcelain"]), "", "{n}");
    }
    for (n, why) in [("w2", "uncommitted"), ("w3", "neither merged"), ("w4", "pane")] {
        let gc = gc_of(&recs, n).unwrap();
        assert_eq!(gc["action"], "kept", "{n}: {run}");
        assert!(s(gc, "why").contains(why), "{n}: {why} in {gc}");
        assert!(has_build_dirs(&wt(n)), "{n} keeps everything");
    }
    assert!(has_build_dirs(&wt("w6")), "the budget held before w6");
    assert_eq!(fs::read_to_string(wt("w2").join("src/lib.rs")).unwrap(), "pub fn changed() {}\n");
    assert_eq!(t.git_worktrees().len(), 7, "no worktree removed without --remove-idle");
    assert!(!t.wt_root().join(".wt-trash").exists(), "the trash is emptied and gone");
}

#[test]
fn remove_idle_removes_only_clean_merged_worktrees_idle_past_max_age() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["idle", "dirty", "ahead", "pushed", "recent"], "").expect_code(0);
    let wt = |n: &str| t.wt_root().join(n);
    for n in ["idle", "dirty", "ahead", "pushed", "recent"] {
        build_dirs(&wt(n), 7);
    }
    fs::write(wt("dirty").join("scratch.txt"), "untracked work\n").unwrap();
    t.git_in(&wt("ahead"), ["commit", "-q", "--allow-empty", "-m", "not merged"]);
    // Not merged, but pushed: nothing is lost with its worktree.
    let remote = t.root().join("remote.git");
    t.git(["init", "-q", "--bare", remote.to_str().unwrap()]);
    t.git(["remote", "add", "origin", remote.to_str().unwrap()]);
    t.git_in(&wt("pushed"), ["commit", "-q", "--allow-empty", "-m", "pushed work"]);
    t.git_in(&wt("pushed"), ["push", "-q", "origin", "wt/pushed"]);
    for n in ["idle", "dirty", "ahead", "pushed"] {
        used_days_ago(&t, n, 10);
    }
    used_days_ago(&t, "recent", 1);

    let dry = t.run("wt-create", &["--gc", "--remove-idle", "--max-age", "3d"], "");
    dry.expect_code(0);
    assert_eq!(gc_of(&dry.records(), "idle").unwrap()["action"], "would_remove", "{dry}");
    assert!(wt("idle").is_dir() && has_build_dirs(&wt("idle")), "{dry}");

    let run = t.run("wt-create", &["--gc", "--remove-idle", "--yes", "--max-age", "3d"], "");
    run.expect_code(0);
    let recs = run.records();
    for n in ["idle", "pushed"] {
        assert_eq!(gc_of(&recs, n).unwrap()["action"], "removed", "{n}: {run}");
        assert!(!wt(n).exists(), "{run}");
    }
    assert!(t.git(["rev-parse", "refs/remotes/origin/wt/pushed"]).len() == 40, "the pushed commit stays on the remote");
    assert!(!t.branches().contains(&"wt/idle".to_string()), "its merged branch goes as --remove takes it");
    for (n, why) in [("dirty", "uncommitted"), ("ahead", "neither merged")] {
        let gc = gc_of(&recs, n).unwrap();
        assert_eq!(gc["action"], "kept", "{n}: {run}");
        assert!(s(gc, "why").contains(why), "{n}: {gc}");
        assert!(has_build_dirs(&wt(n)), "{n} keeps everything");
    }
    assert_eq!(fs::read_to_string(wt("dirty").join("scratch.txt")).unwrap(), "untracked work\n");
    assert!(gc_of(&recs, "recent").is_none(), "a worktree used within max_age is not touched: {run}");
    assert!(has_build_dirs(&wt("recent")));
    let names: Vec<String> =
        t.run("wt-create", &["--list"], "").records().iter().map(|r| s(r, "name").to_string()).collect();
    assert_eq!(names, ["ahead", "dirty", "recent"]);
}

#[test]
fn the_reported_cost_matches_du_beyond_the_main_worktree_with_hard_links_counted_once() {
    let t = TestRepo::new();
    t.write(".gitignore", "target/\nnode_modules/\ndeps/\n");
    t.commit("ignore");
    // Shared from the main worktree through the store (hard links), and own build dirs.
    fs::create_dir_all(t.repo.join("deps/lib")).unwrap();
    fs::write(t.repo.join("deps/a.bin"), bytes(300_000, 1)).unwrap();
    fs::write(t.repo.join("deps/lib/b.bin"), bytes(200_000, 2)).unwrap();
    t.run("wt-create", &["a", "b", "c", "--share", "deps", "--share-mode", "hardlink"], "").expect_code(0);
    let wt = |n: &str| t.wt_root().join(n);
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        build_dirs(&wt(n), i as u8);
    }
    // A store entry the main worktree no longer holds (it was installed again), a file hard
    // linked between two worktrees, and one linked into the store from a worktree.
    fs::remove_file(t.repo.join("deps/a.bin")).unwrap();
    fs::write(t.repo.join("deps/a.bin"), bytes(300_000, 1)).unwrap();
    fs::hard_link(wt("a").join("target/debug/app"), wt("b").join("target/debug/app-from-a")).unwrap();
    let store = t.repo.join(".git/wt/store");
    fs::hard_link(wt("c").join("node_modules/lodash/lodash.js"), store.join("tmp/linked-from-c")).unwrap();

    let status = t.run("wt-status", &["--disk", "--all", "--json"], "");
    status.expect_code(0);
    let recs = status.records();
    let cost = |n: &str| -> u64 {
        recs.iter().find(|r| r["name"] == n).unwrap_or_else(|| panic!("{n} in {status}"))["disk"]["bytes"]
            .as_u64()
            .unwrap()
    };
    let worktrees: u64 = ["a", "b", "c"].iter().map(|n| cost(n)).sum();
    // du in the same order: the main worktree's shared dir, the store, then the worktrees; the
    // worktrees' part is what du adds for them.
    let before = vec![t.repo.join("deps"), store.clone()];
    let mut with = before.clone();
    with.extend(["a", "b", "c"].iter().map(|n| wt(n)));
    let by_du = du(&with) - du(&before);
    let diff = worktrees.abs_diff(by_du);
    assert!(diff * 20 <= by_du, "wt-status says {worktrees}, du says {by_du}\n{status}");
    // b's second name of a's file is a's (a comes first): b pays nothing for it, and c's
    // lodash.js, linked into the store, is the store's.
    let build = |n: &str| recs.iter().find(|r| r["name"] == n).unwrap()["disk"]["build"].as_u64().unwrap();
    assert_eq!(build("a"), build("b"), "{status}");
    assert!(build("c") + 60 * 1024 <= build("a"), "{status}");
    // The machine's total: the store beyond the main worktree's, and the worktrees.
    let total = du(&with) - du(&[t.repo.join("deps")]);
    assert!(
        status.stderr.contains(&format!("{} on disk", wt_common::record::size::human(total))),
        "total {total} in {status}"
    );
    // --share-status gives each shared worktree the same cost.
    let share = t.run("wt-create", &["--share-status", "--json"], "");
    share.expect_code(0);
    for r in share.records() {
        assert_eq!(r["disk"]["bytes"].as_u64().unwrap(), cost(s(&r, "name")), "{share}");
    }
    assert!(share.stderr.contains("all 3 worktrees of wt:"), "{share}");
}

/// The pool's warm worktrees and the trash are wt's disk too: counted in the total (as du sees
/// them), named in the summary, and a budget the pool alone breaks says how to free it.
#[test]
fn the_pool_and_the_trash_count_in_the_total() {
    let t = TestRepo::new();
    t.write("data.bin", &"x".repeat(400_000));
    t.commit("a big tracked file");
    t.run("wt-create", &["a"], "").expect_code(0);
    t.run("wt-create", &["--pool", "1"], "").expect_code(0);
    let root = t.wt_root();
    // What a --gc killed half way leaves: an entry of a process that is gone.
    let trash = root.join(".wt-trash/999999999.0.a");
    fs::create_dir_all(&trash).unwrap();
    fs::write(trash.join("blob"), bytes(200_000, 9)).unwrap();
    let status = t.run("wt-status", &["--disk", "--all", "--json"], "");
    status.expect_code(0);
    let total = du(&[root.join("a"), root.join(".pool"), root.join(".wt-trash")]);
    let said = wt_common::record::size::human(total);
    assert!(status.stderr.contains(&format!("{said} on disk")), "du says {total} ({said}): {status}");
    assert!(status.stderr.contains("the pool's 1 worktree(s)") && status.stderr.contains(", trash "), "{status}");
    let share = t.run("wt-create", &["--share-status"], "");
    assert!(share.stderr.contains(&format!("{said} on disk")), "{share}");
    let gc = t.run("wt-create", &["--gc", "--max-size", "1K"], "");
    gc.expect_code(0);
    assert!(gc.stderr.contains("(`wt-create --pool 0` frees them)"), "{gc}");
}

#[test]
fn a_planted_symlink_or_fifo_is_neither_followed_nor_blocks_and_what_it_points_at_survives_the_gc() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["w"], "").expect_code(0);
    let w = t.wt_root().join("w");
    build_dirs(&w, 3);
    // A big directory outside, linked from inside the build dir and from the checkout; a FIFO
    // nobody writes to.
    let outside = t.root().join("precious");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("big"), bytes(4 << 20, 9)).unwrap();
    std::os::unix::fs::symlink(&outside, w.join("target/escape")).unwrap();
    std::os::unix::fs::symlink(&outside, w.join("node_modules/lodash/dir-link")).unwrap();
    nix::unistd::mkfifo(&w.join("target/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    nix::unistd::mkfifo(&w.join("node_modules/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();

    let status = t.run("wt-status", &["--disk", "--all", "--json"], "");
    status.expect_code(0);
    let disk = &status.records()[0]["disk"];
    assert!(disk["bytes"].as_u64().unwrap() < 2 << 20, "the link's target is not counted: {disk}");
    assert!(disk["build"].as_u64().unwrap() >= 400 * 1024, "{disk}");

    let run = t.run("wt-create", &["--gc", "--yes", "--max-size", "1K"], "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["gc"]["action"], "reclaimed", "{run}");
    assert!(!w.join("target").exists() && !w.join("node_modules").exists(), "{run}");
    assert_eq!(fs::metadata(outside.join("big")).unwrap().len(), 4 << 20, "what the links point at survives");
}

#[test]
fn a_gc_killed_after_moving_a_build_dir_aside_leaves_no_half_dir_and_the_next_run_finishes() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["w"], "").expect_code(0);
    let w = t.wt_root().join("w");
    build_dirs(&w, 4);
    let mut cmd = t.cmd("wt-create");
    cmd.args(["--gc", "--yes", "--max-size", "1K"]).env("WT_FAILPOINT", "gc-moved-to-trash");
    let killed = Run::of(&mut cmd, "");
    assert_eq!(killed.code, None, "killed at the failpoint: {killed}");
    // The first build dir is gone from the worktree, whole, never half; it waits in the trash.
    let trash = t.wt_root().join(".wt-trash");
    let moved: Vec<_> = fs::read_dir(&trash).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    let first = if w.join("target").exists() { "node_modules" } else { "target" };
    assert!(!w.join(first).exists());
    let other = if first == "target" { "node_modules" } else { "target" };
    assert!(w.join(other).is_dir(), "the other build dir is untouched");

    let run = t.run("wt-create", &["--gc", "--yes", "--max-size", "1K"], "");
    run.expect_code(0);
    assert!(!trash.exists(), "the next run deleted what the killed one left: {run}");
    assert!(!w.join("target").exists() && !w.join("node_modules").exists(), "{run}");
}

#[test]
fn a_create_with_a_budget_reclaims_build_dirs_on_stderr_and_its_stdout_is_the_new_worktrees_only() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["old"], "").expect_code(0);
    build_dirs(&t.wt_root().join("old"), 5);
    used_days_ago(&t, "old", 30);
    t.write("wt.toml", "[create]\nbudget = { max_age = \"7d\" }\n");
    let run = t.run("wt-create", &["new"], "");
    run.expect_code(0);
    let recs = run.records();
    assert_eq!(recs.len(), 1, "{run}");
    assert_eq!(recs[0]["name"], "new");
    assert!(run.stderr.contains("reclaimed"), "{run}");
    assert!(!t.wt_root().join("old/target").exists(), "{run}");
    assert!(t.wt_root().join("old").is_dir(), "never a whole worktree after a create");
}

#[test]
fn a_build_named_dir_with_a_tracked_file_in_it_is_source_and_is_never_reclaimed() {
    let t = TestRepo::new();
    t.write(".gitignore", "target/\nbuild/\n");
    t.write("build/config.mk", "CFLAGS = -O2\n");
    t.git(["add", "-f", "build/config.mk"]);
    t.commit("a committed file in build/");
    t.run("wt-create", &["w"], "").expect_code(0);
    let w = t.wt_root().join("w");
    fs::write(w.join("build/out.o"), bytes(64 * 1024, 1)).unwrap();
    fs::create_dir_all(w.join("target")).unwrap();
    fs::write(w.join("target/app"), bytes(64 * 1024, 2)).unwrap();
    let status = t.run("wt-status", &["--disk", "--all", "--json"], "");
    status.expect_code(0);
    let dirs: Vec<String> =
        status.records()[0]["disk"]["build_dirs"].as_array().unwrap().iter().map(|d| s(d, "dir").to_string()).collect();
    assert_eq!(dirs, ["target"], "{status}");
    let run = t.run("wt-create", &["--gc", "--yes", "--max-size", "1K"], "");
    run.expect_code(0);
    assert!(!w.join("target").exists(), "{run}");
    assert!(w.join("build/config.mk").is_file() && w.join("build/out.o").is_file(), "{run}");
}

/// Runs `cmd`, failing the test (and killing it) if it has not ended within `limit`: a hang
/// is the failure being tested for, not a time being measured.
fn run_or_hang(cmd: &mut Command, limit: std::time::Duration) -> Run {
    use std::process::Stdio;
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => Run::from_output(out.unwrap()),
        Err(_) => {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = rx.recv();
            panic!("{cmd:?} hung");
        }
    }
}

#[test]
fn a_fifo_planted_as_gitignore_neither_hangs_the_gc_nor_the_disk_status_and_the_record_says_why() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["w"], "").expect_code(0);
    let w = t.wt_root().join("w");
    build_dirs(&w, 6);
    fs::remove_file(w.join(".gitignore")).unwrap();
    nix::unistd::mkfifo(&w.join(".gitignore"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    // Other git commands of these tools have their own limit; keep it short so that only the
    // build-dir check could hang.
    let limit = std::time::Duration::from_secs(90);
    let status = run_or_hang(t.cmd("wt-status").args(["--disk", "--all", "--json"]).env("WT_GIT_TIMEOUT", "2"), limit);
    status.expect_code(0);
    let disk = &status.records()[0]["disk"];
    assert_eq!(disk["build"], 0, "nothing confirmed as rebuildable: {disk}");
    assert!(s(disk, "unconfirmed").contains(".gitignore"), "{disk}");

    let run =
        run_or_hang(t.cmd("wt-create").args(["--gc", "--yes", "--max-size", "1K"]).env("WT_GIT_TIMEOUT", "2"), limit);
    run.expect_code(0);
    let gc = &run.records()[0]["gc"];
    assert_eq!(gc["action"], "kept", "{run}");
    assert!(s(gc, "why").contains(".gitignore"), "{gc}");
    assert!(has_build_dirs(&w), "nothing unconfirmed is removed");
    let share = run_or_hang(t.cmd("wt-create").args(["--share-status", "--json"]).env("WT_GIT_TIMEOUT", "2"), limit);
    share.expect_code(0);
}

#[test]
fn remove_idle_keeps_a_worktree_whose_ignored_files_are_work_and_names_them() {
    let t = TestRepo::new();
    t.write(".gitignore", "target/\nnode_modules/\n.env\n*.sqlite3\n.env.wt\n");
    t.write(".worktreeinclude", ".env\n");
    t.commit("ignore build dirs and local files");
    fs::write(t.repo.join(".env"), "KEY=from-the-main-worktree\n").unwrap();
    t.run("wt-create", &["keyed", "sqlite", "copied", "pushed"], "").expect_code(0);
    let wt = |n: &str| t.wt_root().join(n);
    for n in ["keyed", "sqlite", "copied", "pushed"] {
        build_dirs(&wt(n), 8);
        assert!(wt(n).join(".env").is_file(), ".worktreeinclude copied .env into {n}");
        // wt-env's own file is not work.
        fs::write(wt(n).join(".env.wt"), "PORT=4000\n").unwrap();
    }
    // The only copy of a key; a database nobody committed.
    fs::write(wt("keyed").join(".env"), "KEY=the-only-copy\n").unwrap();
    fs::write(wt("sqlite").join("dev.sqlite3"), bytes(8192, 3)).unwrap();
    // Not merged, but pushed.
    let remote = t.root().join("remote.git");
    t.git(["init", "-q", "--bare", remote.to_str().unwrap()]);
    t.git(["remote", "add", "origin", remote.to_str().unwrap()]);
    t.git_in(&wt("pushed"), ["commit", "-q", "--allow-empty", "-m", "pushed work"]);
    t.git_in(&wt("pushed"), ["push", "-q", "origin", "wt/pushed"]);
    for n in ["keyed", "sqlite", "copied", "pushed"] {
        used_days_ago(&t, n, 10);
    }

    let run = t.run("wt-create", &["--gc", "--remove-idle", "--yes", "--max-age", "3d"], "");
    run.expect_code(0);
    let recs = run.records();
    for (n, file) in [("keyed", ".env"), ("sqlite", "dev.sqlite3")] {
        let gc = gc_of(&recs, n).unwrap();
        assert!(wt(n).join(file).is_file(), "{n} is kept: {run}");
        let why = gc["kept_because"].as_str().or(gc["why"].as_str()).unwrap_or_default();
        assert!(why.contains(file), "{n}: names {file}: {gc}");
    }
    assert_eq!(fs::read_to_string(wt("keyed").join(".env")).unwrap(), "KEY=the-only-copy\n");
    for n in ["copied", "pushed"] {
        assert_eq!(gc_of(&recs, n).unwrap()["action"], "removed", "{n}: {run}");
        assert!(!wt(n).exists(), "{n}: {run}");
    }
    let restore = s(gc_of(&recs, "pushed").unwrap(), "restore");
    assert!(restore.contains("origin/wt/pushed"), "names where its commits are: {restore}");
    assert!(!s(gc_of(&recs, "copied").unwrap(), "restore").contains("origin/"), "{run}");
}

#[test]
fn a_worktree_whose_branch_has_unmerged_commits_keeps_its_build_dirs_even_with_head_detached() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["detached"], "").expect_code(0);
    let w = t.wt_root().join("detached");
    t.git_in(&w, ["commit", "-q", "--allow-empty", "-m", "work on the branch"]);
    t.git_in(&w, ["checkout", "-q", "--detach", "HEAD~1"]);
    build_dirs(&w, 9);
    let run = t.run("wt-create", &["--gc", "--yes", "--max-size", "1K"], "");
    run.expect_code(0);
    let gc = gc_of(&run.records(), "detached").unwrap().clone();
    assert_eq!(gc["action"], "kept", "{run}");
    assert!(s(&gc, "why").contains("neither merged"), "{gc}");
    assert!(has_build_dirs(&w));
}

#[test]
fn a_process_running_a_built_binary_or_holding_a_file_open_from_elsewhere_keeps_the_build_dirs() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["server", "reader", "idle"], "").expect_code(0);
    let wt = |n: &str| t.wt_root().join(n);
    for n in ["server", "reader", "idle"] {
        build_dirs(&wt(n), 10);
    }
    // A server built into target/, started from /; a process with a file of node_modules open
    // whose working directory is /.
    let server = wt("server").join("target/debug/server");
    fs::copy(which("sleep"), &server).unwrap();
    let _server = wt_tests::Reaped(Command::new(&server).arg("600").current_dir("/").spawn().unwrap());
    let lodash = wt("reader").join("node_modules/lodash/lodash.js");
    let _reader = wt_tests::Reaped(
        Command::new("sh")
            .args(["-c", "exec 3<\"$1\"; exec sleep 600", "sh"])
            .arg(&lodash)
            .current_dir("/")
            .spawn()
            .unwrap(),
    );
    // Until the fd is open.
    while !fs::read_dir(format!("/proc/{}/fd", _reader.0.id()))
        .map(|d| d.flatten().any(|e| fs::read_link(e.path()).is_ok_and(|p| p == lodash)))
        .unwrap_or(false)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = t.run("wt-create", &["--gc", "--yes", "--max-size", "1K"], "");
    run.expect_code(0);
    let recs = run.records();
    for (n, why) in [("server", "runs"), ("reader", "open")] {
        let gc = gc_of(&recs, n).unwrap();
        assert_eq!(gc["action"], "kept", "{n}: {run}");
        assert!(s(gc, "why").contains(why), "{n}: {gc}");
        assert!(has_build_dirs(&wt(n)), "{n}");
    }
    assert_eq!(gc_of(&recs, "idle").unwrap()["action"], "reclaimed", "{run}");
}

fn which(prog: &str) -> PathBuf {
    let out = Command::new("sh").args(["-c", &format!("command -v {prog}")]).output().unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn a_build_started_after_the_gc_looked_keeps_its_build_dirs() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["w"], "").expect_code(0);
    let w = t.wt_root().join("w");
    // One build dir: a failpoint stops the tool at each.
    target_only(&w, 11);
    let mut cmd = t.cmd("wt-create");
    cmd.args(["--gc", "--yes", "--max-size", "1K"]);
    // It has looked at the processes, and is about to move the first build dir.
    let gc = wt_tests::StoppedAt::spawn(&mut cmd, "gc-before-move");
    let _build =
        wt_tests::Reaped(Command::new("sleep").arg("600").current_dir(w.join("target/debug")).spawn().unwrap());
    let run = gc.resume();
    run.expect_code(0);
    let g = gc_of(&run.records(), "w").unwrap().clone();
    assert_eq!(g["action"], "kept", "{run}");
    assert!(s(&g, "why").contains("process"), "{g}");
    assert!(w.join("target/debug/app").is_file(), "{run}");
}

#[test]
fn a_build_dir_a_process_started_using_in_the_instant_of_its_move_is_put_back_whole() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["w"], "").expect_code(0);
    let w = t.wt_root().join("w");
    target_only(&w, 12);
    let mut cmd = t.cmd("wt-create");
    cmd.args(["--gc", "--yes", "--max-size", "1K"]);
    let gc = wt_tests::StoppedAt::spawn(&mut cmd, "gc-moved-to-trash");
    let trash = t.wt_root().join(".wt-trash");
    let moved: Vec<PathBuf> = fs::read_dir(&trash).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    let _build = wt_tests::Reaped(Command::new("sleep").arg("600").current_dir(&moved[0]).spawn().unwrap());
    while fs::read_link(format!("/proc/{}/cwd", _build.0.id())).map_or(true, |p| p != moved[0]) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = gc.resume();
    run.expect_code(0);
    assert!(w.join("target/debug/app").is_file(), "put back whole: {run}");
    let g = gc_of(&run.records(), "w").unwrap().clone();
    assert_eq!(g["action"], "kept", "{run}");
    assert!(s(&g, "why").contains("put back"), "{g}");
}

/// Only a `target/`, of known size.
fn target_only(wt: &Path, seed: u8) {
    fs::create_dir_all(wt.join("target/debug")).unwrap();
    fs::write(wt.join("target/debug/app"), bytes(128 * 1024, seed)).unwrap();
}

#[test]
fn max_count_alone_removes_the_least_recently_used_clean_merged_worktrees() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["a", "b", "c"], "").expect_code(0);
    for (n, days) in [("a", 3), ("b", 2), ("c", 1)] {
        used_days_ago(&t, n, days);
    }
    let run = t.run("wt-create", &["--gc", "--remove-idle", "--yes", "--max-count", "1"], "");
    run.expect_code(0);
    let recs = run.records();
    for n in ["a", "b"] {
        assert_eq!(gc_of(&recs, n).unwrap()["action"], "removed", "{n}: {run}");
    }
    assert!(gc_of(&recs, "c").is_none(), "{run}");
    let names: Vec<String> =
        t.run("wt-create", &["--list"], "").records().iter().map(|r| s(r, "name").to_string()).collect();
    assert_eq!(names, ["c"]);
}

#[test]
fn a_build_dirs_entry_that_is_not_a_directory_name_is_refused_naming_it() {
    let t = TestRepo::new();
    t.run("wt-create", &["w"], "").expect_code(0);
    for bad in ["out/cache", "..", ""] {
        t.write("wt.toml", &format!("[create]\nbuild_dirs = [\"{bad}\"]\n"));
        for (tool, args) in [("wt-create", &["--gc", "--max-size", "1G"][..]), ("wt-status", &["--disk", "--all"][..])]
        {
            let run = t.run(tool, args, "");
            assert_ne!(run.code, Some(0), "{tool} {bad:?}: {run}");
            assert!(run.stderr.contains(&format!("'{bad}' is not a directory name")), "{tool}: {run}");
            assert_eq!(run.stderr.trim().lines().count(), 1, "one line: {run}");
        }
    }
}

#[test]
fn a_size_budget_that_cannot_be_met_leaves_shared_dirs_that_free_nothing_and_says_so() {
    let t = TestRepo::new();
    t.write(".gitignore", "target/\nnode_modules/\n");
    t.commit("ignore");
    fs::create_dir_all(t.repo.join("node_modules/big")).unwrap();
    fs::write(t.repo.join("node_modules/big/a.bin"), bytes(400_000, 1)).unwrap();
    t.run("wt-create", &["w", "--share", "node_modules", "--share-mode", "hardlink"], "").expect_code(0);
    let w = t.wt_root().join("w");
    fs::create_dir_all(w.join("target")).unwrap();
    fs::write(w.join("target/app"), bytes(128 * 1024, 2)).unwrap();
    let run = t.run("wt-create", &["--gc", "--yes", "--max-size", "1K"], "");
    run.expect_code(0);
    let gc = gc_of(&run.records(), "w").unwrap().clone();
    let dirs: Vec<&str> = gc["dirs"].as_array().unwrap().iter().map(|d| s(d, "dir")).collect();
    assert_eq!(dirs, ["target"], "{run}");
    assert!(!w.join("target").exists(), "{run}");
    assert!(w.join("node_modules/big/a.bin").is_file(), "the shared dir, which frees nothing, stays: {run}");
    assert!(run.stderr.contains("cannot be met"), "{run}");
}

#[test]
fn a_build_dir_with_a_read_only_subdir_is_deleted_whole_and_nothing_is_left_in_the_trash() {
    let t = TestRepo::new();
    ignoring_build_dirs(&t);
    t.run("wt-create", &["w"], "").expect_code(0);
    let w = t.wt_root().join("w");
    build_dirs(&w, 13);
    // A Go module cache: directories 0555, files 0444.
    let cache = w.join("target/gomod/pkg");
    fs::create_dir_all(&cache).unwrap();
    fs::write(cache.join("mod.go"), bytes(4096, 1)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(cache.join("mod.go"), fs::Permissions::from_mode(0o444)).unwrap();
    for d in [&cache, &w.join("target/gomod")] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o555)).unwrap();
    }
    // root may write anything: the tool runs as an unprivileged user who owns the files.
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let out = Command::new("chown").args(["-R", "65534:65534"]).arg(t.root()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(wt_tests::bin("wt-create"));
        c.current_dir(&t.repo);
        t.isolate(&mut c);
        c
    } else {
        t.cmd("wt-create")
    };
    cmd.args(["--gc", "--yes", "--max-size", "1K"]);
    let run = Run::of(&mut cmd, "");
    run.expect_code(0);
    assert_eq!(gc_of(&run.records(), "w").unwrap()["action"], "reclaimed", "{run}");
    assert!(!w.join("target").exists() && !w.join("node_modules").exists(), "{run}");
    assert!(!t.wt_root().join(".wt-trash").exists(), "nothing stuck in the trash: {run}");
}

#[test]
fn a_confined_runs_copy_on_write_layer_is_counted_against_its_worktree() {
    let t = TestRepo::new();
    t.run("wt-create", &["w"], "").expect_code(0);
    let layer = t.repo.join(".git/wt/confine/w/cow");
    fs::create_dir_all(&layer).unwrap();
    fs::write(layer.join("big"), bytes(512 * 1024, 4)).unwrap();
    let status = t.run("wt-status", &["--disk", "--all", "--json"], "");
    status.expect_code(0);
    let disk = &status.records()[0]["disk"];
    let confine = disk["confine"].as_u64().unwrap_or_default();
    assert!(confine >= 512 * 1024, "{disk}");
    assert!(disk["bytes"].as_u64().unwrap() >= confine + disk["checkout"].as_u64().unwrap(), "{disk}");
}
