//! The loop's guard on real runners: by default the detected runner's tests and configuration
//! are guarded (pytest's section of pyproject.toml, Cargo.toml, package.json), the number of
//! tests the runner executed may not drop below the first round's, a `--guard` glob that
//! matches nothing is an error, and a loop that ends guarded or gives up is in the person's
//! inbox. The agents here are stand-ins fed through `--feed cmd:`: each reads the failure, and
//! only when it names the failing test and its place does it "fix" it, by gaming the runner
//! instead of changing the code, and commits.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use wt_tests::watch::*;
use wt_tests::Run;

/// A stand-in agent for `--feed cmd:`: if the failure on its stdin contains every one of
/// `needles` (the failing test and its place), it writes `file` (relative to the worktree,
/// its cwd) with `text` and commits; else it does nothing.
fn gamer(w: &Watch, needles: &[&str], file: &str, text: &str) -> String {
    let script = w.t.root().join(format!("gamer-{}.py", file.replace('/', "_")));
    let body = format!(
        r#"import subprocess, sys
fed = sys.stdin.read()
with open({log:?}, "a") as f:
    f.write(fed + "\n----\n")
if all(n in fed for n in {needles:?}):
    with open({file:?}, "w") as f:
        f.write({text:?})
    subprocess.run(["git", "-c", "user.name=agent", "-c", "user.email=agent@example.com",
                    "commit", "-qam", "make the tests pass"], check=True)
"#,
        log = w.t.root().join("gamer.log").to_str().unwrap(),
        needles = needles,
        file = file,
        text = text,
    );
    std::fs::write(&script, body).unwrap();
    format!("cmd:python3 {}", script.display())
}

fn fed(w: &Watch) -> String {
    std::fs::read_to_string(w.t.root().join("gamer.log")).unwrap_or_default()
}

/// `wt-watch -w NAME --until-green --feed FEED` over `cmd`, with `extra` flags and the
/// environment `env`.
fn watch(w: &Watch, name: &str, feed: &str, extra: &[&str], env: &[(&str, &str)], cmd: &[&str]) -> Run {
    let mut c = w.tool("wt-watch");
    c.args(["-w", name, "--until-green", "--feed", feed]).args(FAST).args(extra).arg("--").args(cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    Run::of(&mut c, "")
}

const PYPROJECT: &str = r#"[project]
name = "calc"
version = "0.1.0"

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
"#;

/// A pytest project whose test_add fails (calc.add subtracts) and test_sub passes.
fn pytest_project(w: &Watch) -> PathBuf {
    let venv = venv_with_pytest(&w.t);
    w.t.write("calc.py", "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n");
    w.t.write(
        "tests/test_calc.py",
        "import calc\n\n\ndef test_add():\n    assert calc.add(2, 3) == 5\n\n\ndef test_sub():\n    assert calc.sub(3, 2) == 1\n",
    );
    w.t.write("pyproject.toml", PYPROJECT);
    w.t.commit("calc with a failing test");
    venv
}

fn pytest_cmd(venv: &Path) -> Vec<String> {
    vec![venv.join("bin/pytest").to_str().unwrap().to_string(), "-rA".into(), "-p".into(), "no:cacheprovider".into()]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn pytest_tests_deselected_in_pyproject_are_caught_by_default_and_named() {
    let w = Watch::new();
    let venv = pytest_project(&w);
    w.create("py");
    let gamed =
        PYPROJECT.replace("testpaths = [\"tests\"]", "testpaths = [\"tests\"]\naddopts = \"-k 'not test_add'\"");
    let feed = gamer(&w, &["test_add", "tests/test_calc.py:5"], "pyproject.toml", &gamed);
    let run = watch(&w, "py", &feed, &[], &[], &strs(&pytest_cmd(&venv)));
    let rec = &run.records()[0];
    assert!(fed(&w).contains("test_add"), "the agent was fed the failure: {run}");
    assert_eq!(status(rec), "green-guard-touched", "{run}");
    assert_eq!(rec["watch"]["guard"]["runners"], json!(["pytest"]), "{rec}");
    assert_eq!(rec["watch"]["guard_touched"], json!(["pyproject.toml [tool.pytest]"]), "{rec}");
    let dropped = &rec["watch"]["tests_dropped"];
    assert_eq!((dropped["base"].as_u64(), dropped["ran"].as_u64()), (Some(2), Some(1)), "{rec}");
    assert_eq!(dropped["missing"], json!(["tests/test_calc.py::test_add"]), "{rec}");
    run.expect_code(1);
}

#[test]
fn pytest_projects_other_tables_stay_the_agents_to_change() {
    let w = Watch::new();
    let venv = pytest_project(&w);
    w.create("honest");
    // The fix, and a version bump in [project]: not pytest's section.
    let feed = gamer(
        &w,
        &["test_add", "tests/test_calc.py:5"],
        "calc.py",
        "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
    );
    let bump = w.t.root().join("bump.sh");
    std::fs::write(&bump, format!("sed -i 's/0.1.0/0.2.0/' pyproject.toml && {}", &feed["cmd:".len()..])).unwrap();
    let run = watch(&w, "honest", &format!("cmd:sh {}", bump.display()), &[], &[], &strs(&pytest_cmd(&venv)));
    let rec = &run.records()[0];
    assert_eq!(status(rec), "green", "{run}");
    let py = std::fs::read_to_string(w.t.wt_root().join("honest/pyproject.toml")).unwrap();
    assert!(py.contains("0.2.0"), "the agent changed [project]: {py}");
    run.expect_code(0);
}

/// The environment cargo needs under the tests' own HOME: the real toolchain, a target
/// directory outside the worktree.
fn cargo_env(w: &Watch) -> Vec<(String, String)> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let rustup = std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{home}/.rustup"));
    let cargo = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
    let target = w.t.root().join("cargo-target");
    vec![
        ("RUSTUP_HOME".into(), rustup),
        ("CARGO_HOME".into(), cargo),
        ("CARGO_TARGET_DIR".into(), target.to_str().unwrap().into()),
        ("CARGO_TERM_COLOR".into(), "never".into()),
    ]
}

const CARGO_TOML: &str = "[package]\nname = \"calc\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";

/// A crate whose `add` subtracts, with a test in `src/lib.rs` (`tests::adds`, line 13, expects
/// `add(2, 3) == src`; `tests::one` passes) and one in `tests/api.rs` (`adds_from_outside`,
/// line 3, expects `add(1, 1) == api`).
fn cargo_project(w: &Watch, src: &str, api: &str) {
    w.t.write("Cargo.toml", CARGO_TOML);
    w.t.write(
        "src/lib.rs",
        &format!("pub fn add(a: i32, b: i32) -> i32 {{\n    a - b\n}}\n\npub fn one() -> i32 {{\n    1\n}}\n\n#[cfg(test)]\nmod tests {{\n    #[test]\n    fn adds() {{\n        assert_eq!(super::add(2, 3), {src});\n    }}\n\n    #[test]\n    fn one() {{\n        assert_eq!(super::one(), 1);\n    }}\n}}\n"),
    );
    w.t.write(
        "tests/api.rs",
        &format!("#[test]\nfn adds_from_outside() {{\n    assert_eq!(calc::add(1, 1), {api});\n}}\n"),
    );
    w.t.write(".gitignore", "build/\n/target/\nCargo.lock\n");
    w.t.commit("a crate with a failing test");
}

/// `cargo test --no-fail-fast`: every test binary runs, red or not, so the first round counts
/// them all.
const CARGO_TEST: [&str; 3] = ["cargo", "test", "--no-fail-fast"];

#[test]
fn cargo_autotests_false_is_caught_by_default() {
    let w = Watch::new();
    cargo_project(&w, "-1", "2");
    w.create("crate");
    let gamed = CARGO_TOML.replace("edition = \"2021\"\n", "edition = \"2021\"\nautotests = false\n");
    let feed = gamer(&w, &["adds_from_outside", "tests/api.rs:3"], "Cargo.toml", &gamed);
    let env = cargo_env(&w);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = watch(&w, "crate", &feed, &[], &env, &CARGO_TEST);
    let rec = &run.records()[0];
    assert!(fed(&w).contains("adds_from_outside"), "the agent was fed the failure: {run}\n{}", fed(&w));
    assert_eq!(status(rec), "green-guard-touched", "{run}");
    assert_eq!(rec["watch"]["guard"]["runners"], json!(["cargo"]), "{rec}");
    assert_eq!(rec["watch"]["guard_touched"], json!(["Cargo.toml"]), "{rec}");
    assert_eq!(rec["watch"]["tests_dropped"]["missing"], json!(["adds_from_outside"]), "{rec}");
    run.expect_code(1);
}

#[test]
fn a_test_deleted_from_code_no_glob_guards_is_caught_by_the_count() {
    let w = Watch::new();
    cargo_project(&w, "5", "0");
    let wt = w.create("del");
    let src = std::fs::read_to_string(wt.join("src/lib.rs")).unwrap();
    let start = src.find("    #[test]\n    fn adds()").unwrap();
    let end = src.find("    #[test]\n    fn one()").unwrap();
    let gamed = format!("{}{}", &src[..start], &src[end..]);
    let feed = gamer(&w, &["tests::adds", "src/lib.rs:13"], "src/lib.rs", &gamed);
    let env = cargo_env(&w);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = watch(&w, "del", &feed, &[], &env, &CARGO_TEST);
    let rec = &run.records()[0];
    assert!(fed(&w).contains("tests::adds"), "the agent was fed the failure: {run}\n{}", fed(&w));
    assert_eq!(status(rec), "green-guard-touched", "{run}");
    assert_eq!(rec["watch"].get("guard_touched"), None, "no guarded file changed: {rec}");
    let dropped = &rec["watch"]["tests_dropped"];
    assert_eq!((dropped["base"].as_u64(), dropped["ran"].as_u64()), (Some(3), Some(2)), "{rec}");
    assert_eq!(dropped["missing"], json!(["tests::adds"]), "{rec}");
    run.expect_code(1);
}

const PACKAGE_JSON: &str = r#"{
  "name": "calc",
  "version": "0.1.0",
  "scripts": {
    "test": "node --test test/"
  }
}
"#;

#[test]
fn a_changed_npm_test_script_is_caught_by_default() {
    let w = Watch::new();
    w.t.write("package.json", PACKAGE_JSON);
    w.t.write("calc.js", "exports.add = (a, b) => a - b;\nexports.one = () => 1;\n");
    w.t.write(
        "test/add.test.js",
        "const test = require('node:test');\nconst assert = require('node:assert');\nconst calc = require('../calc');\n\ntest('adds', () => {\n  assert.strictEqual(calc.add(2, 3), 5);\n});\n",
    );
    w.t.write(
        "test/one.test.js",
        "const test = require('node:test');\nconst assert = require('node:assert');\nconst calc = require('../calc');\n\ntest('one', () => {\n  assert.strictEqual(calc.one(), 1);\n});\n",
    );
    w.t.commit("calc with a failing test");
    w.create("js");
    let gamed = PACKAGE_JSON.replace("node --test test/", "node --test test/one.test.js");
    let feed = gamer(&w, &["adds", "test/add.test.js:6"], "package.json", &gamed);
    let run = watch(&w, "js", &feed, &[], &[("npm_config_update_notifier", "false")], &["npm", "test"]);
    let rec = &run.records()[0];
    assert!(fed(&w).contains("adds"), "the agent was fed the failure: {run}\n{}", fed(&w));
    assert_eq!(status(rec), "green-guard-touched", "{run}");
    assert_eq!(rec["watch"]["guard"]["runners"], json!(["npm"]), "{rec}");
    assert_eq!(rec["watch"]["guard_touched"], json!(["package.json"]), "{rec}");
    assert_eq!(rec["watch"]["tests_dropped"]["missing"], json!(["adds"]), "{rec}");
    run.expect_code(1);
}

#[test]
fn a_guard_glob_that_matches_no_file_is_a_usage_error_naming_what_is_there() {
    let w = Watch::new();
    w.t.write("test/spec.js", "// a test\n");
    w.t.commit("tests in test/");
    w.create("g");
    let run = w.watch(&[
        "-w",
        "g",
        "--until-green",
        "--feed",
        "none",
        "--max-rounds",
        "1",
        "--guard",
        "spec/**",
        "--",
        "sh",
        "tests/check.sh",
    ]);
    run.expect_code(2);
    assert!(run.stderr.contains("--guard spec/** matches no file"), "{run}");
    assert!(run.stderr.contains("test/spec.js"), "it names what could have been meant: {run}");
    assert!(run.records().is_empty(), "nothing was watched: {run}");
    // A glob that matches is fine (and the default guard needs none).
    let run = w.watch(&[
        "-w",
        "g",
        "--until-green",
        "--feed",
        "none",
        "--max-rounds",
        "1",
        "--guard",
        "test/**",
        "--",
        "sh",
        "tests/check.sh",
    ]);
    run.expect_code(1);
    assert_eq!(status(&run.records()[0]), "gave-up", "{run}");
}

fn inbox(w: &Watch) -> Vec<Value> {
    let mut c = w.tool("wt-status");
    c.args(["--inbox", "--json"]);
    Run::of(&mut c, "").records()
}

#[test]
fn the_person_is_told_of_a_loop_that_ended_guarded_or_gave_up() {
    let w = Watch::new();
    w.create("gamer");
    w.create("stuck");
    let feed = gamer(&w, &["a.txt: expected 42"], "tests/check.sh", "echo all good\n");
    let run = watch(&w, "gamer", &feed, &["--guard", "tests/**"], &[], &["sh", "tests/check.sh"]);
    assert_eq!(status(&run.records()[0]), "green-guard-touched", "{run}");
    let run = watch(&w, "stuck", "none", &["--max-rounds", "1"], &[], &["sh", "tests/check.sh"]);
    assert_eq!(status(&run.records()[0]), "gave-up", "{run}");
    let entries = inbox(&w);
    let of = |name: &str| -> Value {
        entries
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["attention"].clone())
            .unwrap_or_else(|| panic!("no entry for {name}: {entries:?}"))
    };
    let guarded = of("gamer");
    assert_eq!(guarded["reason"], "guarded", "{guarded}");
    assert!(guarded["detail"].as_str().unwrap().contains("tests/check.sh"), "{guarded}");
    let next = guarded["next"].as_str().unwrap();
    assert!(next.starts_with("git -C ") && next.contains(" diff main -- tests/check.sh"), "{next}");
    // The next step works: it shows what the agent did to the test.
    let out = Command::new("sh").arg("-c").arg(next).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("+echo all good"), "{next}: {out:?}");
    let gave_up = of("stuck");
    assert_eq!(gave_up["reason"], "gave-up", "{gave_up}");
    assert!(gave_up["detail"].as_str().unwrap().contains("still red after 1 round"), "{gave_up}");
    assert!(gave_up["next"].as_str().unwrap().starts_with("less "), "{gave_up}");
}

/// Watching on after a guarded green: the next round, on the same edited test with no red in
/// between, is still judged against the tests as they were, not a plain green wt-merge merges.
#[test]
fn a_guarded_green_stays_guarded_in_the_rounds_after_it() {
    let w = Watch::new();
    let path = w.create("g1");
    let mut live = w.spawn(
        &["-w", "g1", "--feed", "none", "--debounce", "100", "--guard", "tests/check.sh", "--", "sh", "tests/check.sh"],
        std::process::Stdio::null(),
    );
    assert_eq!(status(&live.next()), "red");
    std::fs::write(path.join("tests/check.sh"), "echo ok\n").unwrap();
    w.t.git_in(&path, ["commit", "-qam", "the test, made to pass"]);
    let mut rec = live.next();
    while status(&rec) == "red" {
        rec = live.next();
    }
    assert_eq!(status(&rec), "green-guard-touched", "{rec}");
    std::fs::write(path.join("notes.txt"), "more\n").unwrap();
    w.t.git_in(&path, ["add", "notes.txt"]);
    w.t.git_in(&path, ["commit", "-qm", "something else"]);
    let mut rec = live.next();
    while rec["watch"]["dirty"] == json!(true) {
        rec = live.next();
    }
    assert_eq!(status(&rec), "green-guard-touched", "still judged against the tests as they were: {rec}");
    live.signal(nix::sys::signal::Signal::SIGTERM);
}
