//! wt-env, end to end: real pipes from wt-create, real sockets, a real PostgreSQL server.
//! Each test takes its ports from its own range, so tests can run in parallel.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use wt_tests::{psql, s, PgTemplate, Run, StoppedAt, TestRepo};

fn block(rec: &Value) -> (u64, u64) {
    let b = &rec["env"]["block"];
    (b["start"].as_u64().unwrap(), b["end"].as_u64().unwrap())
}

fn var<'v>(rec: &'v Value, k: &str) -> &'v str {
    rec["env"]["vars"][k].as_str().unwrap_or_else(|| panic!("no var {k} in {rec}"))
}

fn ledger(t: &TestRepo) -> Value {
    serde_json::from_str(&std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap()).unwrap()
}

#[test]
fn leases_through_a_pipe_from_wt_create_are_distinct_and_stable() {
    let t = TestRepo::new();
    let args = ["--range", "21000-21199", "--ports", "web,api"];
    let run = t.pipeline(&[("wt-create", &["-n", "3"]), ("wt-env", &args)]);
    run.expect_code(0);
    let recs = run.records();
    assert_eq!(recs.iter().map(|r| r["index"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(recs.iter().map(block).collect::<Vec<_>>(), [(21000, 21009), (21010, 21019), (21020, 21029)]);
    let r = &recs[1];
    assert_eq!(s(r, "name"), "agent-2");
    assert_eq!(s(r, "branch"), "wt/agent-2", "wt-create's fields pass through");
    assert_eq!((var(r, "PORT"), var(r, "WT_PORT_WEB"), var(r, "WT_PORT_API")), ("21010", "21010", "21011"));
    assert_eq!((var(r, "CONDUCTOR_PORT"), var(r, "CMUX_PORT"), var(r, "CMUX_PORT_END")), ("21010", "21010", "21019"));
    assert_eq!((var(r, "WT_NAME"), var(r, "WT_INDEX"), var(r, "WT_BRANCH")), ("agent-2", "2", "wt/agent-2"));
    assert_eq!(var(r, "WT_PATH"), s(r, "path"));
    assert_eq!(r["env"]["ports"], serde_json::json!({"web": 21010, "api": 21011}));
    // Asking again, by name on stdin, gives the same leases.
    let again = t.run("wt-env", &["--range", "21000-21199"], "agent-3\nagent-1\n");
    let again = again.expect_code(0).records();
    assert_eq!((again[0]["index"].clone(), block(&again[0])), (Value::from(3), (21020, 21029)));
    assert_eq!(var(&again[1], "WT_PORT_WEB"), "21000", "port names are remembered");
}

#[test]
fn an_index_is_the_smallest_free_one_and_comes_back_after_removal() {
    let t = TestRepo::new();
    t.pipeline(&[("wt-create", &["-n", "3"]), ("wt-env", &["--range", "21200-21399"])]).expect_code(0);
    t.run("wt-create", &["--remove", "agent-2"], "").expect_code(0);
    assert!(ledger(&t)["worktrees"].get("agent-2").is_none(), "wt-create --remove releases the leases");
    let rec = &t.pipeline(&[("wt-create", &["late"]), ("wt-env", &["--range", "21200-21399"])]).records()[0];
    assert_eq!(rec["index"], 2);
    assert_eq!(block(rec), (21210, 21219), "its block was free again");
}

#[test]
fn sixty_four_processes_at_once_get_distinct_indices_and_disjoint_blocks() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "64", "--prefix", "c"], "").expect_code(0);
    let children: Vec<_> = (1..=64)
        .map(|i| {
            let mut cmd = t.cmd("wt-env");
            cmd.args(["-w", &format!("c-{i}"), "--range", "24000-24999", "--block", "5"]);
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let recs: Vec<Value> = children
        .into_iter()
        .map(|c| {
            let run = Run::from_output(c.wait_with_output().unwrap());
            run.expect_code(0);
            run.records().remove(0)
        })
        .collect();
    let indices: BTreeSet<u64> = recs.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, (1..=64).collect());
    let mut ports = BTreeSet::new();
    for r in &recs {
        let (a, b) = block(r);
        assert_eq!(b - a, 4);
        for p in a..=b {
            assert!(ports.insert(p), "port {p} granted twice");
        }
    }
    assert_eq!(ledger(&t)["worktrees"].as_object().unwrap().len(), 64, "every lease recorded");
}

#[test]
fn a_port_something_listens_on_is_never_granted_even_on_ipv6_loopback_only() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "2"], "").expect_code(0);
    let foreign = std::net::TcpListener::bind("[::1]:21405").expect("bind [::1]:21405");
    let rec = &t.run("wt-env", &["-w", "agent-1", "--range", "21400-21599"], "").expect_code(0).records()[0];
    assert_eq!(block(rec), (21410, 21419), "the block holding 21405 was skipped");
    drop(foreign);
    // Something foreign takes a port of a granted block: asking again says so.
    let intruder = std::net::TcpListener::bind("127.0.0.1:21412").unwrap();
    let rec = &t.run("wt-env", &["-w", "agent-1", "--range", "21400-21599"], "").expect_code(0).records()[0];
    assert_eq!(block(rec), (21410, 21419), "the lease stays");
    assert_eq!(rec["env"]["conflicts"], serde_json::json!([21412]));
    drop(intruder);
    // The worktree's own server on its port is not a conflict.
    let wt = PathBuf::from(s(rec, "path"));
    let mut own = std::process::Command::new("python3")
        .args(["-c", "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',21413)); s.listen(); print('up',flush=True); time.sleep(30)"])
        .current_dir(&wt)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(own.stdout.as_mut().unwrap()), &mut line).unwrap();
    let rec = &t.run("wt-env", &["-w", "agent-1", "--range", "21400-21599"], "").records()[0];
    let _ = own.kill();
    let _ = own.wait();
    assert!(rec["env"].get("conflicts").is_none(), "own listener is fine: {rec}");
}

/// `wt-create NAME` on a worktree that exists plans under the worktree lock and finishes
/// after it. Its snapshot of the ledger must not be written back: here the worktree is removed
/// and its block leased to another in between, and writing the snapshot's entry back gave two
/// worktrees one port block (the soak found it after 12,000 operations).
#[test]
fn an_existing_worktree_made_again_while_it_is_removed_does_not_bring_back_its_block() {
    let t = TestRepo::new();
    let range = "27000-27009";
    t.run("wt-create", &["old"], "").expect_code(0);
    let first = t.run("wt-env", &["old", "--range", range], "");
    let old_block = block(&first.expect_code(0).records()[0]);
    let again = StoppedAt::spawn(t.cmd("wt-create").arg("old"), "ready-planned");
    t.run("wt-create", &["--remove", "--force", "old"], "").expect_code(0);
    t.run("wt-create", &["new"], "").expect_code(0);
    let second = t.run("wt-env", &["new", "--range", range], "");
    assert_eq!(block(&second.expect_code(0).records()[0]), old_block, "the freed block is handed out again");
    let run = again.resume();
    assert_eq!(run.code, Some(0), "{run}");
    let listed = t.run("wt-env", &["--list"], "");
    let names: Vec<String> = listed.expect_code(0).records().iter().map(|r| s(r, "name").to_string()).collect();
    assert_eq!(names, ["new"], "the removed worktree is not brought back\n{listed}");
    assert!(ledger(&t)["worktrees"].get("old").is_none(), "ledger: {}", ledger(&t));
}

/// `wt-env --gc` releases what it read; a worktree made again at the same path and leased in
/// between holds leases of its own, which the release must not take (the block would then be
/// free to hand out while the new worktree's env file still names it).
#[test]
fn a_gc_does_not_release_a_worktree_made_again_while_it_ran() {
    let t = TestRepo::new();
    let range = "27010-27019";
    t.run("wt-create", &["x"], "").expect_code(0);
    t.run("wt-env", &["x", "--range", range], "").expect_code(0);
    let path = t.wt_root().join("x");
    std::fs::remove_dir_all(&path).unwrap();
    t.git(["worktree", "prune"]);
    let gc = StoppedAt::spawn(t.cmd("wt-env").arg("--gc"), "release-planned");
    t.run("wt-create", &["x"], "").expect_code(0);
    let leased = block(&t.run("wt-env", &["x", "--range", range], "").expect_code(0).records()[0]);
    let run = gc.resume();
    assert_eq!(run.records()[0]["error"]["code"], "lease-changed", "{run}");
    let listed = t.run("wt-env", &["--list"], "");
    assert_eq!(block(&listed.expect_code(0).records()[0]), leased, "the new lease stands\n{listed}");
    let machine = t.run("wt-env", &["--list", "--machine"], "");
    assert_eq!(machine.expect_code(0).records().len(), 1, "and the machine's registry still has it\n{machine}");
}

/// `wt-env --list --machine` reads the ledger without its lock. A lease taken after that read
/// looks stale against it; the listing once deleted that claim, and another repository was
/// then given the same block.
#[test]
fn listing_the_machine_never_frees_a_claim_made_after_it_read_the_ledger() {
    let (a, b) = (TestRepo::new(), TestRepo::new());
    let registry = a.root().join("port-registry");
    let range = "27020-27039";
    a.run("wt-create", &["n1"], "").expect_code(0);
    b.run("wt-create", &["m1"], "").expect_code(0);
    let listing = StoppedAt::spawn(a.cmd("wt-env").args(["--list", "--machine"]), "machine-list-read");
    let first = block(&a.run("wt-env", &["n1", "--range", range], "").expect_code(0).records()[0]);
    listing.resume();
    let mut other = b.cmd("wt-env");
    other.args(["m1", "--range", range]).env("WT_PORT_REGISTRY", &registry);
    let second = Run::of(&mut other, "");
    assert_ne!(block(&second.expect_code(0).records()[0]), first, "the other repository gets another block");
}

/// A kill after the ledger change is made and before it is written: the registry must still
/// hold the block the ledger still gives (it was freed inside the change, before the write, and
/// another repository was given it).
#[test]
fn a_release_killed_before_the_ledger_is_written_keeps_the_block_claimed_on_the_machine() {
    let (a, b) = (TestRepo::new(), TestRepo::new());
    let registry = a.root().join("port-registry");
    let range = "27100-27119";
    a.run("wt-create", &["c1"], "").expect_code(0);
    b.run("wt-create", &["d1"], "").expect_code(0);
    let held = block(&a.run("wt-env", &["c1", "--range", range], "").expect_code(0).records()[0]);
    for args in [&["--release", "c1"][..], &["c1", "--range", range, "--block", "5"]] {
        let mut killed = a.cmd("wt-env");
        killed.args(args).env("WT_FAILPOINT", "before-ledger-write");
        assert_eq!(Run::of(&mut killed, "").code, None, "{args:?}: killed");
        assert_eq!(block(&a.run("wt-env", &["--list"], "").expect_code(0).records()[0]), held, "the ledger as it was");
        let mut other = b.cmd("wt-env");
        other.args(["d1", "--range", range]).env("WT_PORT_REGISTRY", &registry);
        let got = block(&Run::of(&mut other, "").expect_code(0).records()[0]);
        assert_ne!(got, held, "{args:?}: the block the ledger still gives is not handed to another repository");
    }
}

/// A worktree removed after wt-env looked it up and before it took the ledger's lock gets no
/// lease: an entry made then held an index, a block (and a database) for a worktree that is gone.
#[test]
fn a_worktree_removed_while_it_is_being_leased_gets_no_entry_back() {
    let t = TestRepo::new();
    t.run("wt-create", &["gone"], "").expect_code(0);
    let lease = StoppedAt::spawn(t.cmd("wt-env").args(["gone", "--range", "27050-27059"]), "lease-checked");
    t.run("wt-create", &["--remove", "gone"], "").expect_code(0);
    let run = lease.resume();
    assert_eq!(run.records()[0]["error"]["code"], "no-such-worktree", "{run}");
    assert!(ledger(&t)["worktrees"].get("gone").is_none(), "ledger: {}", ledger(&t));
    let machine = t.run("wt-env", &["--list", "--machine"], "");
    assert_eq!(machine.expect_code(0).records().len(), 0, "no claim\n{machine}");
}

/// `--release --drop-database` lists the database as kept before it drops it: killed after the
/// release and before the drop, the database is neither lost track of nor still leased; the
/// next `--drop-kept` drops it. And a release that finds the entry changed drops nothing.
#[test]
fn a_database_is_dropped_only_after_its_release_and_a_kill_in_between_leaves_it_listed_as_kept() {
    let t = TestRepo::new();
    let tpl = PgTemplate::new("CREATE TABLE t (x int)");
    let url = wt_tests::pg_url_for(&tpl.name);
    t.run("wt-create", &["x"], "").expect_code(0);
    let rec =
        t.run("wt-env", &["x", "--range", "27060-27069", "--database", &url], "").expect_code(0).records()[0].clone();
    let db = s(&rec["env"]["database"], "name").to_string();
    psql(&db, "INSERT INTO t VALUES (42)").unwrap();
    // The entry changes while the release waits: nothing is dropped.
    let release = StoppedAt::spawn(t.cmd("wt-env").args(["--release", "--drop-database", "x"]), "release-planned");
    t.run("wt-env", &["x", "--range", "27060-27069", "--ports", "web"], "").expect_code(0);
    let run = release.resume();
    assert_eq!(run.records()[0]["error"]["code"], "lease-changed", "{run}");
    assert_eq!(psql(&db, "SELECT x FROM t").unwrap(), "42", "the database and its rows are still there");
    // Killed between the release and the drop.
    let mut killed = t.cmd("wt-env");
    killed.args(["--release", "--drop-database", "x"]).env("WT_FAILPOINT", "release-kept");
    assert_eq!(Run::of(&mut killed, "").code, None, "killed");
    assert_eq!(ledger(&t)["kept_databases"][&db]["worktree"], "x", "listed as kept: {}", ledger(&t));
    assert!(tpl.clones().contains(&db));
    t.run("wt-env", &["--drop-kept", "x"], "").expect_code(0);
    assert_eq!(tpl.clones(), Vec::<String>::new());
    assert!(ledger(&t).get("kept_databases").is_none(), "ledger: {}", ledger(&t));
}

#[test]
fn a_process_killed_while_holding_the_ledger_lock_leaves_a_readable_ledger() {
    let t = TestRepo::new();
    t.pipeline(&[("wt-create", &["-n", "2"]), ("wt-env", &["--range", "21600-21799"])]).expect_code(0);
    let before = ledger(&t);
    for point in ["ledger-locked", "before-rename"] {
        let mut cmd = t.cmd("wt-env");
        cmd.args(["-w", "agent-2", "--range", "21600-21799", "--block", "7"]).env("WT_FAILPOINT", point);
        let run = Run::of(&mut cmd, "");
        assert_eq!(run.code, None, "killed at {point}\n{run}");
        assert_eq!(ledger(&t), before, "{point}: the old ledger, whole");
    }
    let run = t.run("wt-env", &["-w", "agent-2", "--range", "21600-21799"], "");
    assert_eq!(run.expect_code(0).records()[0]["index"], 2);
}

#[test]
fn postgres_databases_are_cloned_per_worktree_and_dropped_on_release() {
    let t = TestRepo::new();
    let tmpl = PgTemplate::new("CREATE TABLE items (id int); INSERT INTO items VALUES (42);");
    let url = wt_tests::pg_url_for(&tmpl.name);
    let args = ["--range", "21800-21999", "--database", &url];
    let recs = t.pipeline(&[("wt-create", &["-n", "2"]), ("wt-env", &args)]).expect_code(0).records();
    let db = |i: usize| recs[i]["env"]["database"].clone();
    assert_eq!(db(0)["name"], format!("{}_wt1", tmpl.name));
    assert_eq!(db(1)["provisioned"], true);
    let wt2_url = var(&recs[1], "DATABASE_URL");
    let wt2 = format!("{}_wt2", tmpl.name);
    assert!(
        wt2_url.contains(&format!("/{wt2}?")) && wt2_url.contains(&format!("user={wt2}&")),
        "its own role: {wt2_url}"
    );
    assert_eq!(psql(&format!("{}_wt2", tmpl.name), "SELECT id FROM items").unwrap(), "42", "cloned with its data");
    // Each worktree writes to its own database only.
    psql(&format!("{}_wt1", tmpl.name), "INSERT INTO items VALUES (1)").unwrap();
    assert_eq!(psql(&format!("{}_wt2", tmpl.name), "SELECT count(*) FROM items").unwrap(), "1");
    assert_eq!(psql(&tmpl.name, "SELECT count(*) FROM items").unwrap(), "1");
    // Again: the same database, kept as it is.
    let again =
        &t.run("wt-env", &["-w", "agent-1", "--range", "21800-21999", "--database", &url], "").expect_code(0).records()
            [0];
    assert_eq!(again["env"]["database"]["name"], format!("{}_wt1", tmpl.name));
    assert_eq!(psql(&format!("{}_wt1", tmpl.name), "SELECT count(*) FROM items").unwrap(), "2");
    let rel = t.run("wt-env", &["--release", "--drop-database", "agent-1"], "");
    assert_eq!(rel.expect_code(0).records()[0]["env"]["database_dropped"], true);
    assert_eq!(tmpl.clones(), [format!("{}_wt2", tmpl.name)]);
}

#[test]
fn kept_databases_are_listed_with_their_worktree_age_and_size_and_dropped_on_request() {
    let t = TestRepo::new();
    let tmpl = PgTemplate::new("CREATE TABLE items (id int); INSERT INTO items VALUES (42);");
    let url = wt_tests::pg_url_for(&tmpl.name);
    let args = ["--range", "23000-23099", "--database", &url];
    t.pipeline(&[("wt-create", &["k1", "k2", "live"]), ("wt-env", &args)]).expect_code(0);
    t.run("wt-create", &["--remove", "k1", "k2"], "").expect_code(0);
    let (db1, db2) = (format!("{}_wt1", tmpl.name), format!("{}_wt2", tmpl.name));
    let listed = t.run("wt-env", &["--list", "--kept"], "").expect_code(0).records();
    assert_eq!(listed.len(), 2, "the live worktree's database is not kept: {listed:?}");
    for (rec, (name, db)) in listed.iter().zip([("k1", &db1), ("k2", &db2)]) {
        assert_eq!((s(rec, "name"), rec["env"]["kept"]["database"].as_str()), (name, Some(db.as_str())));
        assert_eq!(rec["env"]["kept"]["kind"], "postgres");
        assert!(rec["env"]["kept"]["since"].as_u64().is_some_and(|t| t > 1_700_000_000), "{rec}");
        assert!(rec["env"]["kept"]["size_bytes"].as_u64().is_some_and(|b| b > 1_000_000), "a real size: {rec}");
    }
    // On a terminal: a table that reads.
    let line = format!("'{}' --list --kept", wt_tests::bin("wt-env").display());
    let mut cmd = std::process::Command::new("script");
    cmd.current_dir(&t.repo).args(["-qec", &line, "/dev/null"]);
    let table = wt_tests::Run::of(t.isolate(&mut cmd), "");
    let lines: Vec<&str> = table.expect_code(0).stdout.lines().map(str::trim_end).collect();
    assert!(
        lines[0].starts_with("DATABASE") && lines[0].contains("WORKTREE") && lines[0].contains("KEPT SINCE"),
        "{table}"
    );
    assert!(
        lines[1].starts_with(&db1) && lines[1].contains("k1") && lines[1].contains(" ago") && lines[1].contains("MiB"),
        "{table}"
    );
    // Dropped by the worktree's name, after saying what goes.
    let dropped = t.run("wt-env", &["--drop-kept", "k1"], "");
    let recs = dropped.expect_code(0).records();
    assert_eq!((recs.len(), &recs[0]["env"]["dropped"]), (1, &Value::Bool(true)), "{dropped}");
    assert!(dropped.stderr.contains(&format!("dropping 1 kept database(s): {db1} (from k1, ")), "{dropped}");
    assert_eq!(tmpl.clones(), [db2.clone(), format!("{}_wt3", tmpl.name)]);
    let unknown = t.run("wt-env", &["--drop-kept", "nope"], "");
    assert!(unknown.expect_code(1).stderr.contains("no database was kept from 'nope'"), "{unknown}");
    // Without names: every kept one.
    t.run("wt-env", &["--drop-kept"], "").expect_code(0);
    assert_eq!(tmpl.clones(), [format!("{}_wt3", tmpl.name)]);
    assert_eq!(t.run("wt-env", &["--list", "--kept"], "").expect_code(0).stdout, "");
}

#[test]
fn a_database_server_that_is_down_is_an_error_but_the_ports_are_leased() {
    let t = TestRepo::new();
    t.run("wt-create", &["one"], "").expect_code(0);
    let down = "postgres:///app?host=/nonexistent-wt-socket-dir&user=nobody";
    let run = t.run("wt-env", &["-w", "one", "--range", "22000-22099", "--database", down], "");
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(rec["error"]["code"], "database-unavailable");
    assert_eq!(block(rec), (22000, 22009));
    assert_eq!(ledger(&t)["worktrees"]["one"]["ports"]["start"], 22000);
}

#[test]
fn sqlite_files_are_copied_into_each_worktree() {
    let t = TestRepo::new();
    t.write(".gitignore", "*.db\n");
    t.commit("ignore dbs");
    t.write("data/app.db", "SQLite format 3\0fake");
    let url = format!("sqlite://{}", t.repo.join("data/app.db").display());
    let run = t.pipeline(&[("wt-create", &["s"]), ("wt-env", &["--range", "22100-22199", "--database", &url])]);
    let rec = &run.expect_code(0).records()[0];
    let copy = Path::new(s(rec, "path")).join("data/app.db");
    assert_eq!(std::fs::read(&copy).unwrap(), b"SQLite format 3\0fake");
    assert_eq!(var(rec, "DATABASE_URL"), format!("sqlite://{}", copy.display()));
    std::fs::write(&copy, "the agent's own data").unwrap();
    t.run("wt-env", &["-w", "s", "--range", "22100-22199", "--database", &url], "").expect_code(0);
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "the agent's own data", "never overwritten");
}

#[test]
fn a_sqlite_copy_is_kept_out_of_git_like_the_env_file() {
    let t = TestRepo::new();
    // Nothing in .gitignore covers it: in the main worktree it is an untracked file.
    t.write("data/app.db", "SQLite format 3\0fake");
    let url = format!("sqlite://{}", t.repo.join("data/app.db").display());
    let run = t.pipeline(&[("wt-create", &["s"]), ("wt-env", &["--range", "22200-22299", "--database", &url])]);
    let wt = std::path::PathBuf::from(s(&run.expect_code(0).records()[0], "path"));
    assert!(wt.join("data/app.db").is_file());
    std::fs::write(wt.join("data/app.db-wal"), "wal").unwrap();
    assert_eq!(
        t.git_in(&wt, ["status", "--porcelain", "--untracked-files=all"]),
        "",
        "the copy and its WAL are ignored"
    );
    t.git_in(&wt, ["add", "-A"]);
    assert_eq!(t.git_in(&wt, ["diff", "--cached", "--name-only"]), "", "`git add -A` commits no database");
}

#[test]
fn dotenv_export_and_brief_are_written_and_git_ignores_them() {
    let t = TestRepo::new();
    let args = ["--range", "22200-22299", "--ports", "web", "--dotenv", "--brief", "CLAUDE.local.md"];
    let rec = &t.pipeline(&[("wt-create", &["b"]), ("wt-env", &args)]).expect_code(0).records()[0];
    let wt = PathBuf::from(s(rec, "path"));
    let dotenv = std::fs::read_to_string(wt.join(".env.wt")).unwrap();
    assert!(dotenv.contains("PORT=\"22200\"\n") && dotenv.contains("WT_PORT_WEB=\"22200\"\n"), "{dotenv}");
    assert_eq!(s(&rec["env"], "file"), wt.join(".env.wt").to_str().unwrap());
    let brief = std::fs::read_to_string(wt.join("CLAUDE.local.md")).unwrap();
    assert!(
        brief.contains(wt.to_str().unwrap()) && brief.contains("22200-22209") && brief.contains(".env.wt"),
        "{brief}"
    );
    assert_eq!(t.git_in(&wt, ["status", "--porcelain"]), "", "git ignores both");
    assert_eq!(t.git(["status", "--porcelain"]), "");
    // --export, evaluated by a real shell.
    let script = format!(
        "eval \"$('{}' --export b --range 22200-22299)\" && echo \"$PORT $WT_NAME\"",
        wt_tests::bin("wt-env").display()
    );
    let mut bash = std::process::Command::new("bash");
    bash.current_dir(&t.repo).args(["-c", &script]);
    t.isolate(&mut bash);
    let out = Run::of(&mut bash, "");
    assert_eq!(out.expect_code(0).stdout, "22200 b\n");
}

#[test]
fn list_release_and_gc_give_leases_back() {
    let t = TestRepo::new();
    t.pipeline(&[("wt-create", &["-n", "3"]), ("wt-env", &["--range", "22300-22399"])]).expect_code(0);
    let listed = t.run("wt-env", &["--list"], "").expect_code(0).records();
    assert_eq!(listed.iter().map(|r| s(r, "name")).collect::<Vec<_>>(), ["agent-1", "agent-2", "agent-3"]);
    assert_eq!(var(&listed[2], "PORT"), "22320");
    t.run("wt-env", &["--release", "agent-1"], "").expect_code(0);
    assert!(ledger(&t)["worktrees"]["agent-1"].get("ports").is_none());
    // Removed behind wt's back: rm -rf plus git worktree prune.
    let gone = t.wt_root().join("agent-3");
    std::fs::remove_dir_all(&gone).unwrap();
    t.git(["worktree", "prune"]);
    let gc = t.run("wt-env", &["--gc"], "").expect_code(0).records();
    assert_eq!(gc.iter().map(|r| s(r, "name")).collect::<Vec<_>>(), ["agent-3"]);
    assert!(ledger(&t)["worktrees"].get("agent-3").is_none());
    let rec = &t.pipeline(&[("wt-create", &["new"]), ("wt-env", &["--range", "22300-22399"])]).records()[0];
    assert_eq!(rec["index"], 1, "index 1 was released");
}

#[test]
fn bad_input_is_refused_and_the_ledger_is_unchanged() {
    let t = TestRepo::new();
    t.pipeline(&[("wt-create", &["-n", "2"]), ("wt-env", &["--range", "22400-22419"])]).expect_code(0);
    t.run("wt-create", &["third"], "").expect_code(0);
    let before = std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap();
    let same = |t: &TestRepo| assert_eq!(std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap(), before);
    let cases: [(&[&str], i32, &str); 5] = [
        (&["--range", "22500-22503"], 2, "fewer than a block"),
        (&["--range", "9-1"], 2, "is not LO-HI"),
        (&["--database", "mysql://x/y"], 2, "unsupported scheme"),
        (&["--database", "postgres://localhost"], 2, "template database"),
        (&["--ports", "we-b"], 2, "letters, digits"),
    ];
    for (args, code, says) in cases {
        let mut full = vec!["-w", "third"];
        full.extend_from_slice(args);
        let run = t.run("wt-env", &full, "");
        run.expect_code(code);
        assert!(run.stderr.contains(says), "{args:?}: {run}");
        same(&t);
    }
    // Every block taken: both blocks of 22400-22419 are leased.
    let run = t.run("wt-env", &["-w", "third", "--range", "22400-22419"], "");
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "no-free-block");
    same(&t);
    // A ledger that cannot be parsed is refused and left alone.
    std::fs::write(t.repo.join(".git/wt/ledger.json"), "{\"v\":1,").unwrap();
    let run = t.run("wt-env", &["-w", "third", "--range", "22600-22699"], "");
    run.expect_code(3);
    assert!(run.stderr.contains("cannot be parsed") && run.stderr.contains("mv "), "{run}");
    assert_eq!(std::fs::read_to_string(t.repo.join(".git/wt/ledger.json")).unwrap(), "{\"v\":1,");
}

#[test]
fn a_dev_server_of_the_main_checkout_on_a_worktrees_port_is_a_conflict_in_its_record() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "4"], "").expect_code(0);
    let recs = t.run("wt-env", &["--all", "--range", "26400-26499"], "").expect_code(0).records();
    let port = block(&recs[3]).0;
    // A server started from the main checkout: the common case.
    let server = format!("import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',{port}))\ns.listen()\nprint('up',flush=True)\ntime.sleep(30)");
    let mut child = std::process::Command::new("python3")
        .args(["-c", &server])
        .current_dir(&t.repo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut up).unwrap();
    let run = t.run("wt-env", &["agent-4", "--range", "26400-26499"], "");
    let _ = child.kill();
    let _ = child.wait();
    let rec = &run.expect_code(0).records()[0];
    assert_eq!(s(rec, "name"), "agent-4", "{run}");
    assert_eq!(rec["env"]["conflicts"], serde_json::json!([port]), "{run}");
}

#[test]
fn a_database_url_found_through_pghost_names_its_server() {
    let t = TestRepo::new();
    let tmpl = PgTemplate::new("CREATE TABLE t (id int);");
    // The test server's socket directory, from its URL (`…?host=/dir&…`).
    let server = wt_tests::pg_url();
    let param = |k: &str| server.split(['?', '&']).find_map(|kv| kv.strip_prefix(k)).map(str::to_string);
    let socket_dir = param("host=").expect("a socket URL");
    t.run("wt-create", &["pg"], "").expect_code(0);
    let mut cmd = t.cmd("wt-env");
    cmd.env("PGHOST", &socket_dir).env("PGUSER", param("user=").unwrap_or_default()).args([
        "pg",
        "--range",
        "26500-26599",
        "--database",
    ]);
    cmd.arg(format!("postgres:///{}", tmpl.name));
    let run = Run::of(&mut cmd, "");
    let url = var(&run.expect_code(0).records()[0], "DATABASE_URL").to_string();
    assert!(url.contains("host="), "{url}");
    // It works in a shell without PGHOST or PGUSER.
    let out = std::process::Command::new("psql")
        .env_remove("PGHOST")
        .env_remove("PGUSER")
        .args([&url, "-X", "-At", "-c", "SELECT current_database()"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{}_wt1", tmpl.name), "{url}: {out:?}");
}

/// Ports are unique on the machine, not per repository: two repositories leasing 32 worktrees
/// each at once, from the same range, with a third repository leasing while a worktree of the
/// first is removed, never share a port, though nothing listens on any of them (probing could
/// not have told). `wt-env --list --machine` shows every block and whose it is.
#[test]
fn two_repositories_leasing_at_once_never_share_a_port_on_the_machine() {
    let registry = tempfile::tempdir().unwrap();
    let repos = [TestRepo::new(), TestRepo::new(), TestRepo::new()];
    let cmd = |t: &TestRepo, tool: &str| {
        let mut c = t.cmd(tool);
        c.env("WT_PORT_REGISTRY", registry.path());
        c
    };
    for t in &repos[..2] {
        let mut c = cmd(t, "wt-create");
        Run::of(c.args(["-n", "32", "--prefix", "c"]), "").expect_code(0);
    }
    let mut c = cmd(&repos[2], "wt-create");
    Run::of(c.args(["-n", "4", "--prefix", "late"]), "").expect_code(0);
    // First lease one worktree of the first repository, to be removed while the rest lease.
    let mut c = cmd(&repos[0], "wt-env");
    Run::of(c.args(["-w", "c-1", "--range", "25000-25999", "--block", "5"]), "").expect_code(0);
    let mut children = Vec::new();
    for t in &repos[..2] {
        for i in 2..=32 {
            let mut c = cmd(t, "wt-env");
            c.args(["-w", &format!("c-{i}"), "--range", "25000-25999", "--block", "5"]);
            c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            children.push(c.spawn().unwrap());
        }
    }
    let mut remove = cmd(&repos[0], "wt-create");
    let removing = remove.args(["--remove", "c-1"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut late = cmd(&repos[2], "wt-env");
    late.args([
        "--range",
        "25000-25999",
        "--block",
        "5",
        "-w",
        "late-1",
        "-w",
        "late-2",
        "-w",
        "late-3",
        "-w",
        "late-4",
    ]);
    let late = Run::of(&mut late, "");
    late.expect_code(0);
    for c in children {
        Run::from_output(c.wait_with_output().unwrap()).expect_code(0);
    }
    assert!(removing.wait_with_output().unwrap().status.success());
    let mut listed = cmd(&repos[0], "wt-env");
    let listed = Run::of(listed.args(["--list", "--machine", "--json"]), "");
    let recs = listed.expect_code(0).records();
    let live: Vec<&Value> = recs.iter().filter(|r| r["machine"]["live"] == true).collect();
    assert_eq!(live.len(), 31 + 31 + 4, "every live lease, and c-1's no more: {listed}");
    let mut ports = BTreeSet::new();
    for r in &live {
        let (a, b) = block(r);
        for p in a..=b {
            assert!(ports.insert(p), "port {p} leased twice on the machine: {listed}");
        }
    }
    // Each repository's own ledger agrees with the machine's registry.
    for t in &repos {
        for (name, entry) in ledger(t)["worktrees"].as_object().unwrap() {
            let Some(start) = entry["ports"]["start"].as_u64() else { continue };
            assert!(
                live.iter()
                    .any(|r| s(r, "name") == name && block(r).0 == start && s(r, "repo") == t.repo.to_str().unwrap()),
                "{name} of {}: {start} not in the registry: {listed}",
                t.repo.display()
            );
        }
    }
}

/// A block a repository's ledger held before the registry existed (two repositories given the
/// same block by an older wt) is given up by the repository that did not register it first.
#[test]
fn a_block_two_repositories_already_hold_goes_to_the_first_to_register() {
    let registry = tempfile::tempdir().unwrap();
    let (a, b) = (TestRepo::new(), TestRepo::new());
    for t in [&a, &b] {
        t.run("wt-create", &["x"], "").expect_code(0);
    }
    let lease = |t: &TestRepo, reg: &Path| {
        let mut c = t.cmd("wt-env");
        c.env("WT_PORT_REGISTRY", reg).args(["-w", "x", "--range", "25600-25699"]);
        block(&Run::of(&mut c, "").expect_code(0).records()[0])
    };
    // Each leased with a registry of its own: the same block, as before the registry.
    let (own_a, own_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    assert_eq!(lease(&a, own_a.path()), lease(&b, own_b.path()));
    // Now with the machine's one: a registers first and keeps it; b moves.
    let first = lease(&a, registry.path());
    let second = lease(&b, registry.path());
    assert_eq!(first, (25600, 25609));
    assert_ne!(second, first, "b was given a block of its own");
    assert_eq!(lease(&a, registry.path()), first, "a keeps its block");
}
