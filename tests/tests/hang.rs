//! A run stopped by its timeout (a wt-watch round, a wt-merge verification) names the tests that
//! were still running, from the runner's own output: real pytest from PyPI (`-q`, which prints
//! only dots of its own; wt asks it for its faulthandler dump through `PYTEST_ADDOPTS`) and real
//! go test (`-v`).

use std::path::Path;

use serde_json::Value;
use wt_tests::watch::*;
use wt_tests::{Run, TestRepo};

/// A module that spins for ever, and the pytest configuration that finds it.
fn spinning_app(t: &TestRepo) {
    t.write("app/__init__.py", "");
    // One line: the dump catches the loop on it, whichever instruction runs.
    t.write("app/spin.py", "def spin():\n    while True: pass\n");
    t.write("pyproject.toml", "[tool.pytest.ini_options]\npythonpath = [\".\"]\n");
}

/// Tests of which the second spins (in `app/spin.py`, called from its line 9).
const HANGING_TEST: &str =
    "from app.spin import spin\n\n\ndef test_ok():\n    assert 1 == 1\n\n\ndef test_hang():\n    spin()\n";

/// The failure excerpt of the one round a `--max-rounds 1` run had.
fn last_failure(run: &Run) -> String {
    let recs = run.records();
    let rec: &Value = &recs[0];
    assert_eq!(rec["watch"]["run"]["timed_out"], true, "{run}");
    rec["watch"]["last_failure"].as_str().unwrap_or_default().to_string()
}

/// `pytest -q` where the second test spins in the project's code: the excerpt names the test,
/// its line and where it spun, not only the dot of the test before it. The person's own
/// `PYTEST_ADDOPTS` still applies.
#[test]
fn a_hanging_pytest_run_names_the_test_and_where_it_hangs() {
    let w = Watch::new();
    let venv = venv_with_pytest(&w.t);
    spinning_app(&w.t);
    w.t.write("tests/test_hang.py", HANGING_TEST);
    w.t.commit("a suite that hangs");
    let tree = w.create("hang");
    let python = venv.join("bin/python");
    let mut c = w.tool("wt-watch");
    c.env("PYTEST_ADDOPTS", "-p no:cacheprovider");
    c.args(["-w", "hang", "--until-green", "--feed", "none", "--max-rounds", "1", "--timeout", "10s", "--"]);
    c.arg(&python).args(["-m", "pytest", "-q", "tests"]);
    let run = Run::of(&mut c, "");
    run.expect_code(1);
    let failure = last_failure(&run);
    let first = failure.lines().next().unwrap_or_default();
    let test_at = tree.join("tests/test_hang.py:9");
    let spun_at = tree.join("app/spin.py:2");
    assert_eq!(
        first,
        format!("timed out after 10.0s while running test_hang ({}) at {}", test_at.display(), spun_at.display()),
        "{failure}"
    );
    assert!(!tree.join(".pytest_cache").exists(), "the person's PYTEST_ADDOPTS (no cache) was kept");
}

/// `go test -v` where a subtest spins: the subtest, by its full name.
#[test]
fn a_hanging_go_test_run_names_the_subtest() {
    let w = Watch::new();
    w.t.write("go.mod", "module example.com/calc\n\ngo 1.19\n");
    w.t.write("calc.go", "package calc\n\nfunc Spin() {\n\tfor {\n\t}\n}\n");
    w.t.write(
        "calc_test.go",
        "package calc\n\nimport \"testing\"\n\nfunc TestOK(t *testing.T) {}\n\nfunc TestHang(t *testing.T) {\n\tt.Run(\"inner\", func(t *testing.T) { Spin() })\n}\n",
    );
    w.t.commit("a go suite that hangs");
    w.create("gohang");
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wt-test-cache/go");
    std::fs::create_dir_all(&cache).unwrap();
    let mut c = w.tool("wt-watch");
    c.env("GOCACHE", &cache);
    c.args(["-w", "gohang", "--until-green", "--feed", "none", "--max-rounds", "1", "--timeout", "20s"]);
    c.args(["--", "go", "test", "-v", "./..."]);
    let run = Run::of(&mut c, "");
    run.expect_code(1);
    let failure = last_failure(&run);
    assert!(failure.starts_with("timed out after 20.0s while running TestHang/inner\n"), "{failure}");
    assert!(failure.contains("--- PASS: TestOK"), "how far it got: {failure}");
}

/// wt-merge verifying with `pytest -q` that hangs: the verification's excerpt names the test and
/// where it spins, in the verification's worktree.
#[test]
fn a_verification_hanging_in_pytest_names_the_test() {
    let t = TestRepo::new();
    let venv = venv_with_pytest(&t);
    spinning_app(&t);
    t.commit("an app that can spin");
    t.run("wt-create", &["h"], "").expect_code(0);
    let wt = t.wt_root().join("h");
    std::fs::create_dir_all(wt.join("tests")).unwrap();
    std::fs::write(wt.join("tests/test_hang.py"), HANGING_TEST).unwrap();
    t.git_in(&wt, ["add", "-A"]);
    t.git_in(&wt, ["commit", "-q", "-m", "a test that hangs"]);
    let verify = format!("{} -m pytest -q -p no:cacheprovider tests", venv.join("bin/python").display());
    let run = t.run("wt-merge", &["h", "--verify", &verify, "--timeout", "10s"], "");
    run.expect_code(1);
    let v = &run.records()[0]["merge"]["verify"];
    assert_eq!(v["timed_out"], true, "{run}");
    let excerpt = v["excerpt"].as_str().unwrap_or_default();
    let first = excerpt.lines().next().unwrap_or_default();
    assert!(first.starts_with("timed out after 10.0s while running test_hang (/"), "{excerpt}");
    assert!(first.contains("/tests/test_hang.py:9) at /") && first.ends_with("/app/spin.py:2"), "{excerpt}");
}
