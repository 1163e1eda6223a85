//! The build governor (docs/governor.md), end to end: real GNU make and real cargo builds from
//! crates.io through wt-run, a real server, real SIGKILLs. Each test has its own runtime dir
//! (XDG_RUNTIME_DIR), so its own governor, which ends itself soon after (WT_GOVERNOR_IDLE).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wt_tests::TestRepo;

/// A runtime dir of the test's own (private, as the socket dir must be).
fn runtime_dir(t: &TestRepo) -> PathBuf {
    let dir = t.root().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// A wt tool of `t`, governed by the governor of `xdg` with `tokens` tokens.
fn governed(t: &TestRepo, tool: &str, xdg: &Path, tokens: u32) -> Command {
    let mut c = t.cmd(tool);
    c.env_remove("WT_GOVERNOR")
        .env_remove("MAKEFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env("XDG_RUNTIME_DIR", xdg)
        .env("WT_GOVERNOR_TOKENS", tokens.to_string())
        .env("WT_GOVERNOR_IDLE", "3s");
    c
}

/// The governor's state, asked over its socket as wt-status does (docs/protocol.md).
fn governor_state(xdg: &Path) -> Option<Value> {
    let stream = UnixStream::connect(xdg.join("wt/governor.sock")).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    writeln!(w, "{}", json!({"op": "hello", "label": "test", "pid": std::process::id()})).ok()?;
    writeln!(w, "{}", json!({"op": "status"})).ok()?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let v: Value = serde_json::from_str(&line).ok()?;
        if let Some(s) = v.get("status") {
            return Some(s.clone());
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Makefile of `jobs` independent jobs, each counted by `count.sh` (under flock) while it
/// runs for `secs`: `max` ends up holding the most that ran at once, across every make that
/// shares the counter.
fn counting_makefile(t: &TestRepo, counter: &Path, jobs: usize, secs: &str) {
    let c = counter.display();
    let script = format!(
        "#!/bin/sh\n\
         flock {c}/lock sh -c 'n=$(( $(cat {c}/now 2>/dev/null || echo 0) + 1 )); echo $n > {c}/now; \
         m=$(cat {c}/max 2>/dev/null || echo 0); if [ $n -gt $m ]; then echo $n > {c}/max; fi'\n\
         sleep {secs}\n\
         flock {c}/lock sh -c 'echo $(( $(cat {c}/now) - 1 )) > {c}/now'\n\
         echo done >> {c}/finished\n"
    );
    std::fs::create_dir_all(counter).unwrap();
    std::fs::write(counter.join("count.sh"), script).unwrap();
    let names: Vec<String> = (1..=jobs).map(|i| format!("job{i}")).collect();
    let makefile = format!("all: {}\njob%:\n\t@sh {c}/count.sh\n", names.join(" "));
    t.write("Makefile", &makefile);
    t.commit("a Makefile of parallel jobs");
}

fn read_number(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.trim().parse().unwrap_or(0)).unwrap_or(0)
}

fn wait_all(children: Vec<Child>) -> Vec<std::process::Output> {
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

/// Four concurrent makes, each of which would run its 16 jobs as fast as it is let, through
/// four wt-runs with 2 tokens: never more than 2 jobs at once across all of them (each run's
/// implicit slot included), at times 2 (the jobserver, not a queue of whole runs, bounds them),
/// and all finish. Without the governor, each make runs its own jobs and 4 run at once.
///
/// Each make is plain `make`: GNU make given `-jN` on its command line ignores an inherited
/// jobserver by design (`-jN forced in submake: resetting jobserver mode`); under the governor
/// plain `make` runs as many jobs as the tokens allow (docs/governor.md).
#[test]
fn four_makes_with_two_tokens_never_run_more_than_two_jobs_at_once() {
    let t = TestRepo::new();
    let xdg = runtime_dir(&t);
    let counter = t.root().join("counter");
    counting_makefile(&t, &counter, 16, "0.2");
    t.run("wt-create", &["a", "b", "c", "d"], "").expect_code(0);
    let runs: Vec<Child> = ["a", "b", "c", "d"]
        .iter()
        .map(|w| {
            let mut c = governed(&t, "wt-run", &xdg, 2);
            c.args(["-w", w, "--", "make"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for out in wait_all(runs) {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    let finished = std::fs::read_to_string(counter.join("finished")).unwrap().lines().count();
    assert_eq!(finished, 64, "every job of every make ran");
    let max = read_number(&counter.join("max"));
    assert_eq!(max, 2, "at most the 2 tokens' worth of jobs ran at once, and that many did");
}

/// The most rustc processes seen at once whose command line names `under`, sampled from /proc
/// until `done` says stop.
fn peak_rustc(under: &Path, done: &std::sync::atomic::AtomicBool) -> usize {
    let needle = under.display().to_string();
    let mut peak = 0;
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        let mut n = 0;
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let p = entry.path();
            if std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == "rustc") {
                let cmdline = std::fs::read(p.join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&needle) {
                    n += 1;
                }
            }
        }
        peak = peak.max(n);
        std::thread::sleep(Duration::from_millis(5));
    }
    peak
}

/// A crate with a handful of small dependencies from crates.io, built cold in 3 worktrees at
/// once through wt-run with 2 tokens: CARGO_MAKEFLAGS reaches each build and the rustc
/// processes of all three never outnumber the tokens. Without the governor each cargo runs
/// up to a rustc per core, and three of them at once run more than 2.
#[test]
fn cargo_builds_in_three_worktrees_never_run_more_rustc_than_tokens() {
    let t = TestRepo::new();
    let xdg = runtime_dir(&t);
    t.write(
        "Cargo.toml",
        "[package]\nname = \"governed\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
         itoa = \"1\"\nryu = \"1\"\nfnv = \"1\"\ncfg-if = \"1\"\nlazy_static = \"1\"\nscopeguard = \"1\"\n\
         smallvec = \"1\"\nmemchr = \"2\"\n\n[workspace]\n",
    );
    t.write("src/lib.rs", "pub fn f() -> String { itoa::Buffer::new().format(7).to_string() }\n");
    t.write(".gitignore", "target/\nmakeflags.txt\n");
    t.commit("a crate with dependencies");
    t.run("wt-create", &["a", "b", "c"], "").expect_code(0);
    // The registry cache of the person running the tests: the crates come from crates.io.
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (done, under) = (std::sync::Arc::clone(&done), t.root());
        std::thread::spawn(move || peak_rustc(&under, &done))
    };
    let runs: Vec<Child> = ["a", "b", "c"]
        .iter()
        .map(|w| {
            let mut c = governed(&t, "wt-run", &xdg, 2);
            c.env("CARGO_HOME", &cargo_home).env_remove("CARGO_TARGET_DIR").env_remove("CARGO_BUILD_JOBS");
            c.args(["-w", w, "--shell", "--", "echo \"$CARGO_MAKEFLAGS\" > makeflags.txt && cargo build -q"]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let outs = wait_all(runs);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    for out in &outs {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    for w in ["a", "b", "c"] {
        let flags = std::fs::read_to_string(t.wt_root().join(w).join("makeflags.txt")).unwrap();
        assert!(flags.contains("--jobserver-auth=fifo:"), "CARGO_MAKEFLAGS reached the build: {flags}");
        assert!(t.wt_root().join(w).join("target/debug/libgoverned.rlib").is_file(), "{w} built");
    }
    assert!(peak >= 1, "the sampler saw the builds");
    assert!(peak <= 2, "at most 2 rustc at once across the three builds, saw {peak}");
}

/// `wt-run -w a -- make` under a governor of 3 tokens, once make's three jobs run (the
/// implicit slot and both of make's other jobs: every token held): the counter dir, the run.
fn make_holding_every_token(t: &TestRepo, xdg: &Path, stdout: Stdio) -> (PathBuf, std::process::Child) {
    let counter = t.root().join("counter");
    counting_makefile(t, &counter, 3, "60");
    t.run("wt-create", &["a"], "").expect_code(0);
    let mut run = governed(t, "wt-run", xdg, 3);
    let run = run.args(["-w", "a", "--", "make"]).stdout(stdout).stderr(Stdio::null()).spawn().unwrap();
    wait_for("make's three jobs", Duration::from_secs(30), || read_number(&counter.join("now")) == 3);
    let state = governor_state(xdg).expect("a governor runs");
    assert_eq!(state["held"], 3, "{state}");
    (counter, run)
}

/// A wt-run holding tokens (its make's jobs hold them) is SIGKILLed: the server takes back
/// everything it held (its connection closed), seen in the server's own count.
#[test]
fn a_killed_holders_tokens_come_back() {
    let t = TestRepo::new();
    let xdg = runtime_dir(&t);
    let (counter, mut run) = make_holding_every_token(&t, &xdg, Stdio::null());
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    wait_for("the tokens back", Duration::from_secs(5), || {
        governor_state(&xdg).is_some_and(|s| s["held"] == 0 && s["holders"].as_array().is_some_and(Vec::is_empty))
    });
    // The make and its jobs went with wt-run (its reaper): nothing holds a token unseen.
    wait_for("the jobs ended", Duration::from_secs(10), || {
        !Command::new("pgrep").arg("-f").arg(counter.join("count.sh")).stdout(Stdio::null()).status().unwrap().success()
    });
}

/// The command itself (make, holding its jobs' tokens) is SIGKILLed, its wt-run alive: its
/// jobs are ended with its group and every token comes back, seen in the server's count.
#[test]
fn a_killed_commands_tokens_come_back() {
    let t = TestRepo::new();
    let xdg = runtime_dir(&t);
    let (_, run) = make_holding_every_token(&t, &xdg, Stdio::piped());
    let worktree = t.wt_root().join("a");
    let make = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "make")
                && std::fs::read_link(e.path().join("cwd")).is_ok_and(|d| d == worktree)
        })
        .and_then(|e| e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()))
        .expect("the make");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(make), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for("the tokens back", Duration::from_secs(10), || governor_state(&xdg).is_some_and(|s| s["held"] == 0));
    let out = run.wait_with_output().unwrap();
    assert!(!out.status.success(), "the run says its command was killed");
}

/// The runs of two repositories share the one governor of their user: with 1 token, never
/// two jobs at once across both, and the server's count shows both repositories' runs.
#[test]
fn two_repositories_runs_share_one_governor() {
    let (one, two) = (TestRepo::new(), TestRepo::new());
    let xdg = runtime_dir(&one);
    let counter = one.root().join("counter");
    counting_makefile(&one, &counter, 4, "0.3");
    counting_makefile(&two, &counter, 4, "0.3");
    one.run("wt-create", &["a"], "").expect_code(0);
    two.run("wt-create", &["b"], "").expect_code(0);
    let runs: Vec<Child> = [(&one, "a"), (&two, "b")]
        .iter()
        .map(|(t, w)| {
            let mut c = governed(t, "wt-run", &xdg, 1);
            c.args(["-w", w, "--", "make"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    // While they run, one holds the token and the other waits, at the same server.
    let mut saw_both = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !saw_both && Instant::now() < deadline {
        if let Some(s) = governor_state(&xdg) {
            let labels: Vec<&str> =
                s["holders"].as_array().unwrap().iter().filter_map(|h| h["label"].as_str()).collect();
            saw_both = labels.contains(&"wt-run a") && labels.contains(&"wt-run b");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for out in wait_all(runs) {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    assert!(saw_both, "the one server had both repositories' runs");
    assert_eq!(read_number(&counter.join("max")), 1, "one job at a time across both repositories");
    assert_eq!(std::fs::read_to_string(counter.join("finished")).unwrap().lines().count(), 8);
}

/// The one token of the governor of `xdg` (started here with 1 token), held by the test until
/// the stream is dropped.
fn hold_the_only_token(xdg: &Path) -> UnixStream {
    let mut start = Command::new(wt_tests::bin("wt-run"));
    start.args(["__governor", "1"]).env("XDG_RUNTIME_DIR", xdg).env("WT_GOVERNOR_IDLE", "3s");
    assert!(start.status().unwrap().success());
    let socket = xdg.join("wt/governor.sock");
    wait_for("the governor", Duration::from_secs(10), || UnixStream::connect(&socket).is_ok());
    let stream = UnixStream::connect(&socket).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    writeln!(w, "{}", json!({"op": "hello", "label": "the test", "pid": std::process::id()})).unwrap();
    writeln!(w, "{}", json!({"op": "acquire"})).unwrap();
    let mut line = String::new();
    while !line.contains("granted") {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "the governor answers");
    }
    stream
}

/// A wt-watch round waits for its job slot (the governor shows it waiting, and no round runs);
/// the agent's changes made meanwhile are tested by that round once it has its slot, not
/// queued as another round. Without the governor the round runs at once, on the old files.
#[test]
fn a_watch_round_waits_for_its_slot_and_tests_what_changed_meanwhile_once() {
    let w = wt_tests::watch::Watch::new();
    let tree = w.create("q");
    let holder = hold_the_only_token(&w.xdg);
    let marker = w.t.root().join("rounds");
    let cmd = format!("cat a.txt >> {}; sh tests/check.sh", marker.display());
    let mut c = w.tool("wt-watch");
    c.env_remove("WT_GOVERNOR").env("WT_GOVERNOR_TOKENS", "1").env("WT_GOVERNOR_IDLE", "3s");
    c.args(["-w", "q", "--feed", "none", "--debounce", "100", "--", "sh", "-c", &cmd]);
    let mut watch = c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut records = BufReader::new(watch.stdout.take().unwrap()).lines();
    wait_for("the round to wait for its slot", Duration::from_secs(30), || {
        governor_state(&w.xdg).is_some_and(|s| {
            s["holders"].as_array().unwrap().iter().any(|h| h["label"] == "wt-watch q" && h["waiting"] == 1)
        })
    });
    assert!(!marker.exists(), "no round ran without its slot");
    // The agent fixes both files while the round waits, in two changes.
    std::fs::write(tree.join("a.txt"), "42\n").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(tree.join("b.txt"), "7\n").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    drop(holder);
    let first: Value = serde_json::from_str(&records.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["watch"]["status"], "green", "the round tested the changed files: {first}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "42\n", "one round, on the changed files");
    let _ = watch.kill();
    let _ = watch.wait();
}

/// A wt-merge verification waits for its job slot like a round (the governor shows it waiting,
/// and its command has not run), then runs with the jobserver in its `MAKEFLAGS`.
#[test]
fn a_verification_waits_for_its_slot_and_its_command_gets_the_jobserver() {
    let t = TestRepo::new();
    let xdg = runtime_dir(&t);
    let list = t.worktree_with_a_commit_to_merge();
    let holder = hold_the_only_token(&xdg);
    let flags = t.root().join("verify-flags");
    let mut c = governed(&t, "wt-merge", &xdg, 1);
    c.args(["--verify", &format!("echo \"$MAKEFLAGS\" > {}", flags.display())]);
    let mut merge = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    merge.stdin.take().unwrap().write_all(list.as_bytes()).unwrap();
    wait_for("the verification to wait for its slot", Duration::from_secs(30), || {
        governor_state(&xdg).is_some_and(|s| {
            s["holders"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["label"].as_str().is_some_and(|l| l.starts_with("wt-merge")) && h["waiting"] == 1)
        })
    });
    assert!(!flags.exists(), "the verification did not run without its slot");
    drop(holder);
    let out = merge.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let rec: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(rec["merge"]["status"], "merged", "{rec}");
    let seen = std::fs::read_to_string(&flags).unwrap();
    assert!(seen.contains("--jobserver-auth="), "the verify command got the jobserver: {seen}");
}

/// An agent's pane gets the jobserver for its builds by default, but holds no job slot: with
/// the only token (stocked as the pane's spare), a batch run beside the pane still gets its slot
/// (the governor tells the pane others wait; it gives the untaken spare back) and runs. A pane
/// started with `--no-governor` goes ungoverned. Before, panes went ungoverned unless
/// `WT_GOVERNOR_PANES=on`.
#[test]
fn a_panes_builds_get_the_jobserver_but_the_pane_holds_no_job_slot() {
    let p = wt_tests::panes::Panes::new();
    p.t.run("wt-create", &["agent", "job"], "").expect_code(0);
    let seen = p.t.root().join("pane-flags");
    let mut c = governed_panes(&p, 1);
    c.args(["-w", "agent", "--pane", "--", "sh", "-c"]);
    c.arg(format!("echo \"$CARGO_MAKEFLAGS\" > {}.tmp && mv {0}.tmp {0}; sleep 120", seen.display()));
    wt_tests::Run::of(&mut c, "").expect_code(0);
    wait_for("the pane's program", Duration::from_secs(30), || seen.exists());
    let flags = std::fs::read_to_string(&seen).unwrap();
    assert!(flags.contains("--jobserver-auth=fifo:"), "the pane's builds get the jobserver: {flags}");
    let mut plain = governed_panes(&p, 1);
    plain.args(["-w", "job", "--pane=plain", "--no-governor", "--", "sh", "-c"]);
    plain.arg(format!(
        "echo \"flags:$CARGO_MAKEFLAGS\" > {}.tmp && mv {0}.tmp {0}; sleep 120",
        seen.with_extension("plain").display()
    ));
    wt_tests::Run::of(&mut plain, "").expect_code(0);
    wait_for("the plain pane's program", Duration::from_secs(30), || seen.with_extension("plain").exists());
    assert_eq!(std::fs::read_to_string(seen.with_extension("plain")).unwrap(), "flags:\n", "--no-governor: ungoverned");
    let mut run = governed(&p.t, "wt-run", &p.xdg, 1);
    run.args(["-w", "job", "--timeout", "60s", "--", "true"]);
    let run = wt_tests::Run::of(&mut run, "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["run"]["exit"], 0, "{run}");
}

/// A confined pane's sandbox is laid out before its lease could be, so its program could not
/// reach a FIFO: it goes ungoverned, and no spare is stocked for it where nobody can take it.
#[test]
fn a_confined_pane_takes_no_lease() {
    let p = wt_tests::panes::Panes::new();
    p.t.run("wt-create", &["job"], "").expect_code(0);
    let flags = p.t.wt_root().join("job/boxed-flags");
    let mut boxed = governed_panes(&p, 2);
    boxed.args(["-w", "job", "--pane=boxed", "--confine", "--", "sh", "-c"]);
    boxed.arg(format!("echo \"flags:$CARGO_MAKEFLAGS\" > {}.tmp && mv {0}.tmp {0}; sleep 120", flags.display()));
    wt_tests::Run::of(&mut boxed, "").expect_code(0);
    wait_for("the confined pane's program", Duration::from_secs(30), || flags.exists());
    assert_eq!(std::fs::read_to_string(&flags).unwrap(), "flags:\n", "a confined pane goes ungoverned");
    std::thread::sleep(Duration::from_millis(500));
    if let Some(state) = governor_state(&p.xdg) {
        assert_eq!(state["held"], 0, "no spare stocked for the confined pane: {state}");
    }
}

/// `wt-run ARGS` (a pane) of the panes test `p`, governed with `tokens` tokens: started.
fn start_governed_pane(p: &wt_tests::panes::Panes, tokens: u32, args: &[&str]) {
    let mut c = governed_panes(p, tokens);
    c.args(args);
    wt_tests::Run::of(&mut c, "").expect_code(0);
}

/// wt-run of the panes test `p`, its supervisor and panes governed by the governor of `p.xdg`
/// with `tokens` tokens.
fn governed_panes(p: &wt_tests::panes::Panes, tokens: u32) -> Command {
    let mut c = p.cmd();
    c.env_remove("WT_GOVERNOR")
        .env_remove("MAKEFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env("WT_GOVERNOR_TOKENS", tokens.to_string())
        .env("WT_GOVERNOR_IDLE", "3s");
    c
}

/// A cargo workspace of a crate and 8 path dependencies (no registry needed), whose every
/// rustc goes through `wrap.sh`, which counts the compilers running at once across all builds
/// (each stays counted for 0.3 s more, so overlaps are certain where the jobs may overlap).
fn counted_crate(t: &TestRepo, counter: &Path) -> PathBuf {
    let c = counter.display();
    std::fs::create_dir_all(counter).unwrap();
    let wrap = counter.join("wrap.sh");
    std::fs::write(
        &wrap,
        format!(
            "#!/bin/sh
             flock {c}/lock sh -c 'n=$(( $(cat {c}/now 2>/dev/null || echo 0) + 1 )); echo $n > {c}/now; \
             m=$(cat {c}/max 2>/dev/null || echo 0); if [ $n -gt $m ]; then echo $n > {c}/max; fi'\n\
             sleep 0.3\n\
             \"$@\"; rc=$?\n\
             flock {c}/lock sh -c 'echo $(( $(cat {c}/now) - 1 )) > {c}/now'\n\
             exit $rc\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    let deps: String = (1..=8).map(|i| format!("d{i} = {{ path = \"d{i}\" }}\n")).collect();
    t.write(
        "Cargo.toml",
        &format!("[package]\nname = \"governed\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}\n[workspace]\n"),
    );
    let uses: String = (1..=8).map(|i| format!(" + d{i}::f()")).collect();
    t.write("src/lib.rs", &format!("pub fn f() -> u32 {{ 0{uses} }}\n"));
    for i in 1..=8 {
        t.write(
            &format!("d{i}/Cargo.toml"),
            &format!("[package]\nname = \"d{i}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
        );
        t.write(&format!("d{i}/src/lib.rs"), &format!("pub fn f() -> u32 {{ {i} }}\n"));
    }
    t.write(".gitignore", "target/\nCargo.lock\n");
    t.commit("a crate with 8 path dependencies");
    wrap
}

/// A real cargo build in an agent's native pane, governed by default with 1 token: its
/// compilers never outnumber the token plus cargo's own implicit slot (2), though cargo was
/// told it may run 8 (`CARGO_BUILD_JOBS`); counted by the rustc wrapper. Ungoverned (before:
/// panes were, by default), cargo runs up to 8 at once.
#[test]
fn a_cargo_build_in_a_governed_pane_never_runs_more_compilers_than_the_tokens_allow() {
    let p = wt_tests::panes::Panes::new();
    let counter = p.t.root().join("counter");
    let wrap = counted_crate(&p.t, &counter);
    p.t.run("wt-create", &["agent"], "").expect_code(0);
    let done = p.t.root().join("built");
    let script = format!(
        "echo \"$CARGO_MAKEFLAGS\" > {c}/flags; CARGO_BUILD_JOBS=8 RUSTC_WRAPPER={w} CARGO_TARGET_DIR=target \
         cargo build -q --offline > {c}/out 2>&1; echo $? > {d}.tmp && mv {d}.tmp {d}; sleep 1000",
        c = counter.display(),
        w = wrap.display(),
        d = done.display()
    );
    let mut c = governed_panes(&p, 1);
    c.env_remove("RUSTC_WRAPPER").env_remove("CARGO_BUILD_JOBS").env_remove("CARGO_TARGET_DIR");
    c.args(["-w", "agent", "--pane", "--", "sh", "-c", &script]);
    wt_tests::Run::of(&mut c, "").expect_code(0);
    wait_for("the build in the pane", Duration::from_secs(300), || done.exists());
    let out = std::fs::read_to_string(counter.join("out")).unwrap_or_default();
    assert_eq!(std::fs::read_to_string(&done).unwrap().trim(), "0", "the build succeeded: {out}");
    let flags = std::fs::read_to_string(counter.join("flags")).unwrap();
    assert!(flags.contains("--jobserver-auth=fifo:"), "the pane's cargo got the jobserver: {flags}");
    let max = read_number(&counter.join("max"));
    eprintln!("compilers at once: {max}");
    assert!(max >= 1, "the wrapper counted the compilers");
    assert!(max <= 2, "at most 1 token + cargo's implicit slot: {max} compilers at once");
}

/// The governor's process for the runtime dir `xdg` (`__governor-serve`), found in /proc.
fn governor_pid(xdg: &Path) -> Option<u32> {
    let needle = format!("XDG_RUNTIME_DIR={}", xdg.display());
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let environ = std::fs::read(e.path().join("environ")).ok()?;
        let serves = String::from_utf8_lossy(&cmdline).contains("__governor-serve");
        let ours = environ.split(|b| *b == 0).any(|v| v == needle.as_bytes());
        (serves && ours).then_some(pid)
    })
}

/// A field of /proc/PID/status summed over its threads (`voluntary_ctxt_switches`), or of the
/// process (`Threads`).
fn proc_status(pid: u32, field: &str, every_thread: bool) -> u64 {
    if !every_thread {
        return status_field(&PathBuf::from(format!("/proc/{pid}/status")), field);
    }
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|t| status_field(&t.path().join("status"), field))
        .sum()
}

fn status_field(path: &Path, field: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Each thread's voluntary context switches (its sleeps), by thread id.
fn switches(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten();
    tasks
        .map(|t| {
            (
                t.file_name().to_string_lossy().into_owned(),
                status_field(&t.path().join("status"), "voluntary_ctxt_switches"),
            )
        })
        .collect()
}

/// How many times the process woke between two `switches`: each thread's count since, and one
/// for each thread that started or ended meanwhile (the supervisor's request workers end a
/// while after their last request, taking their counts with them).
fn woke_since(pid: u32, before: &std::collections::BTreeMap<String, u64>) -> u64 {
    let after = switches(pid);
    let kept: u64 = after.iter().filter_map(|(tid, n)| before.get(tid).map(|b| n.saturating_sub(*b))).sum();
    let came_or_went = after.keys().filter(|t| !before.contains_key(*t)).count()
        + before.keys().filter(|t| !after.contains_key(*t)).count();
    kept + came_or_went as u64
}

/// The supervisor's pid, asked over its socket.
fn supervisor_pid(p: &wt_tests::panes::Panes) -> u32 {
    let mut c = UnixStream::connect(p.socket()).unwrap();
    let answer = wt_tests::panes::raw_call(&mut c, b"{\"id\":0,\"method\":\"server.ping\"}\n");
    answer["result"]["pid"].as_u64().unwrap() as u32
}

/// 64 idle panes, each governed (its program finds the jobserver), with 2 tokens: the supervisor
/// keeps a few threads and sleeps (one feeder thread for every lease, woken only when a FIFO or
/// the governor says something), the governor is one thread and sleeps too, and the idle panes
/// beyond the tokens queue quietly instead of handing spares round. Before, panes went
/// ungoverned by default; governed, each lease was a thread polling its FIFO every 20 ms and
/// the governor a thread per connection.
#[test]
fn sixty_four_governed_idle_panes_cost_a_few_threads_and_no_wakeups() {
    let p = wt_tests::panes::Panes::new();
    let flags = p.t.root().join("flags");
    std::fs::create_dir_all(&flags).unwrap();
    let program = |name: &str| {
        vec![
            "sh".to_string(),
            "-c".to_string(),
            format!(
                "echo \"$CARGO_MAKEFLAGS\" > {0}/{name}.tmp && mv {0}/{name}.tmp {0}/{name}; exec sleep 1000",
                flags.display()
            ),
        ]
    };
    p.t.run("wt-create", &["idle"], "").expect_code(0);
    let mut first = governed_panes(&p, 2);
    first.args(["-w", "idle", "--pane=idle-0", "--"]).args(program("idle-0"));
    wt_tests::Run::of(&mut first, "").expect_code(0);
    let mut c = UnixStream::connect(p.socket()).unwrap();
    let cwd = p.t.root().display().to_string();
    for i in 1..64 {
        let name = format!("idle-{i}");
        let spawn = json!({"id": i, "method": "pane.spawn", "params": {
            "name": name, "cmd": program(&name), "cwd": cwd, "env": {"WT_GOVERNOR_TOKENS": "2"}}});
        let answer = wt_tests::panes::raw_call(&mut c, format!("{spawn}\n").as_bytes());
        assert_eq!(answer["ok"], true, "{answer}");
    }
    drop(c);
    wait_for("64 panes' programs", Duration::from_secs(60), || {
        std::fs::read_dir(&flags)
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
            .count()
            == 64
    });
    for entry in std::fs::read_dir(&flags).unwrap().flatten() {
        let seen = std::fs::read_to_string(entry.path()).unwrap();
        assert!(seen.contains("--jobserver-auth=fifo:"), "{:?} is governed: {seen}", entry.file_name());
    }
    let supervisor = supervisor_pid(&p);
    let governor = governor_pid(&p.xdg).expect("the governor runs");
    std::thread::sleep(Duration::from_secs(2));
    let state = governor_state(&p.xdg).unwrap();
    assert_eq!(state["held"], 2, "two panes stock the two tokens as spares: {state}");
    assert_eq!(
        (&state["in_use"], &state["on_offer"]),
        (&json!(0), &json!(2)),
        "spares untaken are not in use: {state}"
    );
    assert_eq!(state["waiting"], 0, "the others' stock asks are no demand: {state}");
    let before = (switches(supervisor), switches(governor));
    std::thread::sleep(Duration::from_secs(5));
    let woke = (woke_since(supervisor, &before.0), woke_since(governor, &before.1));
    let threads = (proc_status(supervisor, "Threads", false), proc_status(governor, "Threads", false));
    let rss = (proc_status(supervisor, "VmRSS", false), proc_status(governor, "VmRSS", false));
    let fds = std::fs::read_dir(format!("/proc/{supervisor}/fd")).unwrap().count();
    let governor_fds: Vec<String> = std::fs::read_dir(format!("/proc/{governor}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok().map(|t| t.display().to_string()))
        .collect();
    // Its socket, one per connection, its lock and log: nothing of the supervisor's (a pane's
    // terminal held open here would outlive the supervisor).
    assert!(!governor_fds.iter().any(|t| t.contains("ptmx") || t.contains("/dev/pts")), "{governor_fds:?}");
    eprintln!(
        "supervisor: {} threads, woke {} times, {} KiB, {fds} fds; governor: {} threads, woke {} times, {} KiB",
        threads.0, woke.0, rss.0, threads.1, woke.1, rss.1
    );
    assert!(threads.0 <= 8, "64 governed idle panes: {} threads in the supervisor", threads.0);
    assert_eq!(threads.1, 1, "the governor serves 65 connections on one thread");
    // The status asks above are the governor's only wakeups (none in these 5 s).
    assert!(woke.0 <= 10, "64 governed idle panes: the supervisor woke {} times in 5 s", woke.0);
    assert!(woke.1 <= 5, "the governor woke {} times in 5 s with nothing happening", woke.1);
}

/// The supervisor is SIGKILLed while its pane's program holds both tokens (read from its FIFO,
/// as make does): its connection to the governor closes, and every token comes back at once.
#[test]
fn a_killed_supervisors_panes_give_back_their_tokens() {
    let p = wt_tests::panes::Panes::new();
    p.t.run("wt-create", &["agent"], "").expect_code(0);
    let took = p.t.root().join("took");
    let script = format!(
        "f=${{CARGO_MAKEFLAGS#*fifo:}}; exec 3<>\"$f\"; dd bs=1 count=1 <&3 2>/dev/null; \
         dd bs=1 count=1 <&3 2>/dev/null; echo two > {t}.tmp && mv {t}.tmp {t}; exec sleep 1000",
        t = took.display()
    );
    start_governed_pane(&p, 2, &["-w", "agent", "--pane", "--", "sh", "-c", &script]);
    wait_for("the pane's program to take both tokens", Duration::from_secs(30), || took.exists());
    let state = governor_state(&p.xdg).unwrap();
    assert_eq!(state["held"], 2, "{state}");
    let supervisor = supervisor_pid(&p);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for("the tokens back", Duration::from_secs(5), || {
        governor_state(&p.xdg).is_some_and(|s| s["held"] == 0 && s["holders"].as_array().is_some_and(Vec::is_empty))
    });
}

/// A wt-run inside a governed job (here another wt-run's command) takes no slot of its own: with
/// the only token held by the outer run, the inner one still runs (else it waited forever, and
/// the outer run's timeout ended both). Its command is a make, whatever its version: this
/// machine's make 4.3 reads only the descriptors form, and stopped on the `fifo:` form the
/// inner lease gave it before (`invalid --jobserver-auth string`).
#[test]
fn a_wt_tool_inside_a_governed_job_runs_in_that_jobs_slot() {
    let t = TestRepo::new();
    let xdg = runtime_dir(&t);
    t.run("wt-create", &["outer", "inner"], "").expect_code(0);
    std::fs::write(t.wt_root().join("inner/jobs.mk"), "all: a b\na:\n\t@true\nb:\n\t@true\n").unwrap();
    let inner = format!("{} -w inner --quiet -- make -f jobs.mk", wt_tests::bin("wt-run").display());
    let mut c = governed(&t, "wt-run", &xdg, 1);
    c.args(["-w", "outer", "--timeout", "30s", "--shell", "--", &inner]);
    let run = wt_tests::Run::of(&mut c, "");
    run.expect_code(0);
    assert_eq!(run.records()[0]["run"]["exit"], 0, "{run}");
}

/// wt-status shows the governor while one runs: each record's `governor` field says the tokens in
/// use, and none is started by asking.
#[test]
fn wt_status_shows_the_tokens_in_use_and_starts_no_governor() {
    let t = TestRepo::new();
    let xdg = runtime_dir(&t);
    t.run("wt-create", &["a"], "").expect_code(0);
    let mut status = governed(&t, "wt-status", &xdg, 1);
    status.arg("--all");
    let quiet = wt_tests::Run::of(&mut status, "");
    quiet.expect_code(0);
    assert!(quiet.records()[0].get("governor").is_none(), "no governor runs: {quiet}");
    assert!(governor_state(&xdg).is_none(), "wt-status started none");
    let holder = hold_the_only_token(&xdg);
    let mut status = governed(&t, "wt-status", &xdg, 1);
    status.arg("--all");
    let busy = wt_tests::Run::of(&mut status, "");
    busy.expect_code(0);
    assert_eq!(busy.records()[0]["governor"], json!({"tokens": 1, "in_use": 1, "on_offer": 0, "waiting": 0}), "{busy}");
    drop(holder);
}

/// A wt-merge never waits for a build slot while it holds its turn at the merge queue: with the
/// only token held by a batch run whose own command is a wt-merge (which needs the turn, not a
/// token), a wt-merge with a verification queued meanwhile waits for the token first, so both
/// merge (the other order waited for ever on each other).
#[test]
fn a_merge_waits_for_its_slot_before_its_turn_at_the_queue() {
    let t = TestRepo::new();
    let xdg = runtime_dir(&t);
    t.run("wt-create", &["a", "b"], "").expect_code(0);
    for n in ["a", "b"] {
        let wt = t.wt_root().join(n);
        std::fs::write(wt.join(format!("{n}.txt")), "x\n").unwrap();
        t.git_in(&wt, ["add", "."]);
        t.git_in(&wt, ["commit", "-qm", n]);
    }
    let inner = format!("sleep 2; {} a --unverified --json", wt_tests::bin("wt-merge").display());
    let mut outer = governed(&t, "wt-run", &xdg, 1);
    outer.args(["-w", "a", "--json", "--shell", "--", &inner]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let outer = outer.spawn().unwrap();
    wait_for("the batch run to hold the token", Duration::from_secs(30), || {
        governor_state(&xdg).is_some_and(|s| s["held"] == 1)
    });
    let mut merge = governed(&t, "wt-merge", &xdg, 1);
    merge.args(["b", "--verify", "true", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let merge = merge.spawn().unwrap();
    // Not a speed bound: the deadlock this guards against never ends.
    let deadline = Instant::now() + Duration::from_secs(120);
    for mut child in [outer, merge] {
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("a wt-merge and a governed job waited for each other");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let files = t.git(["ls-tree", "--name-only", "main"]);
    assert!(files.contains("a.txt") && files.contains("b.txt"), "both merged: {files}");
}

/// A pane of the tmux backend is governed like a native one: its program finds the jobserver
/// by path, and once its program has ended the pane's lease is given back (its stocked spare
/// with it). Before, tmux panes went ungoverned.
#[test]
fn a_tmux_panes_builds_get_the_jobserver_and_its_lease_ends_with_it() {
    let p = wt_tests::panes::Panes::new();
    p.t.run("wt-create", &["tm"], "").expect_code(0);
    let seen = p.t.root().join("tmux-flags");
    let go = p.t.root().join("go");
    let mut c = governed_panes(&p, 2);
    c.args(["-w", "tm", "--pane", "--backend", "tmux", "--", "sh", "-c"]);
    c.arg(format!(
        "echo \"$CARGO_MAKEFLAGS\" > {s}.tmp && mv {s}.tmp {s}; while [ ! -e {g} ]; do sleep 0.1; done",
        s = seen.display(),
        g = go.display()
    ));
    wt_tests::Run::of(&mut c, "").expect_code(0);
    wait_for("the tmux pane's program", Duration::from_secs(30), || seen.exists());
    let flags = std::fs::read_to_string(&seen).unwrap();
    assert!(flags.contains("--jobserver-auth=fifo:"), "the tmux pane's builds get the jobserver: {flags}");
    wait_for("the pane's spare stocked", Duration::from_secs(10), || {
        governor_state(&p.xdg).is_some_and(|s| s["held"] == 1)
    });
    std::fs::write(&go, "").unwrap();
    p.json(&["pane", "wait", "tm", "--exit", "--timeout", "30s"]);
    wait_for("the lease given back", Duration::from_secs(10), || {
        let _ = p.wt_run(&["pane", "ls"]);
        governor_state(&p.xdg).is_some_and(|s| s["held"] == 0)
    });
}

/// A wt-watch round in a test pane (`--test-pane`) holds its job slot like any round and hands
/// its jobserver to the pane: the round's command takes a token from it (as make would).
/// Before, test-pane rounds took no slot and their command got no jobserver.
#[test]
fn a_test_pane_round_holds_its_slot_and_its_command_gets_the_jobserver() {
    let w = wt_tests::watch::Watch::new();
    w.create("tp");
    w.agent("tp", "fix-code"); // the supervisor the test pane is asked of
    let took = w.t.root().join("took");
    let cmd = format!(
        "f=${{CARGO_MAKEFLAGS#*fifo:}}; exec 3<>\"$f\" && dd bs=1 count=1 <&3 >/dev/null 2>&1 && \
         echo \"took $WT_GOVERNOR_JOB\" > {t}; true",
        t = took.display()
    );
    let mut c = w.tool("wt-watch");
    c.env_remove("WT_GOVERNOR").env("WT_GOVERNOR_TOKENS", "2").env("WT_GOVERNOR_IDLE", "3s");
    c.args(["-w", "tp", "--test-pane", "--feed", "none", "--", "sh", "-c", &cmd]);
    let mut watch = c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut records = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&records.next().unwrap().unwrap()).unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(first["watch"]["status"], "green", "{first}");
    assert_eq!(std::fs::read_to_string(&took).unwrap_or_default(), "took 1\n", "the test pane's command took a token");
}

/// A build in an agent's pane is SIGKILLed while it holds both tokens (a make killed with its
/// jobs: nobody will write them back), the pane's shell alive: the tokens come back to the
/// governor once no process holds the pane's FIFO open, not when the pane ends. Before, they
/// stayed taken for the pane's life.
#[test]
fn a_killed_build_in_a_pane_gives_back_its_tokens_while_the_pane_lives() {
    let p = wt_tests::panes::Panes::new();
    p.t.run("wt-create", &["agent"], "").expect_code(0);
    let took = p.t.root().join("took");
    let pid = p.t.root().join("build.pid");
    let build = format!(
        "f=${{CARGO_MAKEFLAGS#*fifo:}}; exec 3<>\"$f\"; dd bs=1 count=1 <&3 2>/dev/null; \
         dd bs=1 count=1 <&3 2>/dev/null; echo two > {t}.tmp && mv {t}.tmp {t}; exec sleep 1000",
        t = took.display()
    );
    // The shell stays; the "build" is its child, killed alone.
    let script = format!("sh -c '{build}' & echo $! > {pid}; wait; exec sleep 1000", pid = pid.display());
    start_governed_pane(&p, 2, &["-w", "agent", "--pane", "--", "sh", "-c", &script]);
    wait_for("the build to take both tokens", Duration::from_secs(30), || took.exists());
    assert_eq!(governor_state(&p.xdg).unwrap()["held"], 2);
    let build_pid: i32 = std::fs::read_to_string(&pid).unwrap().trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(build_pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for("the killed build's tokens back", Duration::from_secs(10), || {
        // The pane stocks its spare again: one token, no more.
        governor_state(&p.xdg).is_some_and(|s| s["held"] == 1)
    });
    let panes = p.json(&["pane", "ls"]);
    assert!(panes.to_string().contains("\"agent\""), "the pane lives: {panes}");
}

/// The script a confined command runs: takes a token from the jobserver its `CARGO_MAKEFLAGS`
/// names (as make would) and says `took`; then tries to write beside the FIFO, which the
/// sandbox must still refuse.
const TAKE_A_TOKEN_CONFINED: &str =
    "f=${CARGO_MAKEFLAGS#*fifo:}; exec 3<>\"$f\" && dd bs=1 count=1 <&3 >/dev/null 2>&1 \
     && echo took; touch \"$(dirname \"$f\")/planted\" 2>/dev/null && echo wrote-beside; true";

/// A confined batch run's command gets the jobserver through its sandbox, by path: it opens
/// its FIFO and takes a token, while the directory around the FIFO stays out of its reach.
/// Before, confined commands got no jobserver (their run held its slot's token only).
#[test]
fn a_confined_runs_command_gets_the_jobserver_through_its_sandbox() {
    let t = TestRepo::new();
    let xdg = runtime_dir(&t);
    t.run("wt-create", &["a"], "").expect_code(0);
    let mut c = governed(&t, "wt-run", &xdg, 2);
    c.args(["-w", "a", "--confine", "--json", "--", "sh", "-c", TAKE_A_TOKEN_CONFINED]);
    let run = wt_tests::Run::of(&mut c, "");
    run.expect_code(0);
    let rec = &run.records()[0];
    let tail: Vec<&str> = rec["run"]["tail"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(rec["run"]["confined"]["mode"], "strict", "{rec}");
    assert_eq!(tail, ["took"], "took a token, and wrote nothing beside the FIFO: {rec}");
    assert!(!xdg.join("wt/jobs/planted").exists());
}

/// A confined wt-watch round (`wt-run --confine --passthrough` under wt-watch, which holds the
/// round's slot) hands its jobserver through the sandbox the same way.
#[test]
fn a_confined_rounds_command_gets_the_jobserver_through_its_sandbox() {
    let w = wt_tests::watch::Watch::new();
    w.create("cq");
    let mut c = w.tool("wt-watch");
    c.env_remove("WT_GOVERNOR").env("WT_GOVERNOR_TOKENS", "2").env("WT_GOVERNOR_IDLE", "3s");
    c.args(["-w", "cq", "--confine", "--feed", "none", "--", "sh", "-c", TAKE_A_TOKEN_CONFINED]);
    let mut watch = c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut records = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&records.next().unwrap().unwrap()).unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    let log = std::fs::read_to_string(first["watch"]["run"]["log"].as_str().unwrap()).unwrap();
    assert_eq!(log, "took\n", "took a token, and wrote nothing beside the FIFO: {first}");
}

/// A build running in a pane that gave back a spare it left untaken (others' demand waited)
/// keeps its place in the queue: its next ask is a demand, served before a job that asked
/// after it. (A build blocked in `read` on its FIFO raises no event: its ask was a quiet stock
/// ask before, served only once no demand waited.)
#[test]
fn a_build_in_a_pane_that_gave_back_its_spare_keeps_its_place_in_the_queue() {
    let p = wt_tests::panes::Panes::new();
    p.t.run("wt-create", &["busy", "one", "two"], "").expect_code(0);
    let (go, order) = (p.t.root().join("go"), p.t.root().join("order"));
    let script = format!(
        "f=${{CARGO_MAKEFLAGS#*fifo:}}; exec 3<>\"$f\"; while [ ! -e {go} ]; do sleep 0.1; done; \
         dd bs=1 count=1 <&3 2>/dev/null; echo pane >> {order}; printf + >&3; exec sleep 1000",
        go = go.display(),
        order = order.display()
    );
    start_governed_pane(&p, 1, &["-w", "busy", "--pane", "--", "sh", "-c", &script]);
    wait_for("the pane's spare", Duration::from_secs(10), || governor_state(&p.xdg).is_some_and(|s| s["held"] == 1));
    // A job asks: the pane's build, which opened its FIFO but took nothing, gives its spare back
    // (within a second) and asks again.
    let job = |name: &str, then: &str| {
        let mut c = governed(&p.t, "wt-run", &p.xdg, 1);
        let line = format!("echo {name} >> {}; {then}", order.display());
        c.args(["-w", name, "--timeout", "60s", "--quiet", "--", "sh", "-c", &line]);
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap()
    };
    let mut one = job("one", "sleep 3");
    wait_for("the first job", Duration::from_secs(30), || std::fs::read_to_string(&order).is_ok_and(|o| o == "one\n"));
    std::fs::write(&go, "").unwrap();
    // A job that asks after the pane's build did.
    let mut two = job("two", "true");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&order).is_ok_and(|o| o.lines().count() == 3) {
        assert!(
            std::time::Instant::now() < deadline,
            "the build and the second job: {:?} {:?}",
            std::fs::read_to_string(&order),
            governor_state(&p.xdg)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = (one.wait(), two.wait());
    assert_eq!(std::fs::read_to_string(&order).unwrap(), "one\npane\ntwo\n", "served in the order they asked");
}

/// With more idle panes than tokens, the panes beyond the tokens queue quietly for a spare; a
/// build that starts in one of them (it opens its FIFO and waits for a token) gets the spare of
/// an idle pane, which is told that a demand waits and gives its untaken spare back.
#[test]
fn a_build_in_a_pane_beyond_the_tokens_gets_an_idle_panes_spare() {
    let p = wt_tests::panes::Panes::new();
    p.t.run("wt-create", &["idle", "busy"], "").expect_code(0);
    start_governed_pane(&p, 1, &["-w", "idle", "--pane", "--", "sleep", "1000"]);
    wait_for("the idle pane's spare", Duration::from_secs(10), || {
        governor_state(&p.xdg).is_some_and(|s| s["held"] == 1)
    });
    let took = p.t.root().join("took");
    let script = format!(
        "sleep 1; f=${{CARGO_MAKEFLAGS#*fifo:}}; exec 3<>\"$f\"; dd bs=1 count=1 <&3 2>/dev/null; \
         echo took > {t}.tmp && mv {t}.tmp {t}; exec sleep 1000",
        t = took.display()
    );
    start_governed_pane(&p, 1, &["-w", "busy", "--pane", "--", "sh", "-c", &script]);
    // Not a speed bound: without the idle pane giving its spare back, the build waits for ever.
    wait_for("the busy pane's build to get a token", Duration::from_secs(30), || took.exists());
}

/// The governor is SIGKILLed while governed panes live: the supervisor lets their leases go
/// quiet (it neither spins nor dies), and a pane started afterwards is governed by a new one.
#[test]
fn a_killed_governor_leaves_the_supervisor_quiet_and_new_panes_governed_again() {
    let p = wt_tests::panes::Panes::new();
    p.t.run("wt-create", &["one", "two"], "").expect_code(0);
    start_governed_pane(&p, 2, &["-w", "one", "--pane", "--", "sleep", "1000"]);
    wait_for("the governor", Duration::from_secs(10), || governor_state(&p.xdg).is_some_and(|s| s["held"] == 1));
    let old = governor_pid(&p.xdg).expect("the governor runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let supervisor = supervisor_pid(&p);
    std::thread::sleep(Duration::from_millis(500));
    let before = switches(supervisor);
    std::thread::sleep(Duration::from_secs(2));
    let woke = woke_since(supervisor, &before);
    assert!(woke <= 4, "the supervisor woke {woke} times in 2 s after the governor died");
    let seen = p.t.root().join("two-flags");
    let mut two = governed_panes(&p, 2);
    two.args(["-w", "two", "--pane", "--", "sh", "-c"]);
    two.arg(format!("echo \"$CARGO_MAKEFLAGS\" > {0}.tmp && mv {0}.tmp {0}; exec sleep 1000", seen.display()));
    wt_tests::Run::of(&mut two, "").expect_code(0);
    wait_for("the second pane's program", Duration::from_secs(30), || seen.exists());
    assert!(std::fs::read_to_string(&seen).unwrap().contains("--jobserver-auth=fifo:"));
    let new = governor_pid(&p.xdg).expect("a new governor runs");
    assert_ne!(new, old);
    assert_eq!(governor_state(&p.xdg).unwrap()["held"], 1, "the new governor knows the new pane's spare only");
}
