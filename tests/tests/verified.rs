//! The verified merge queue on a real project: itsdangerous's sdist from PyPI with its own test
//! suite, installed editable into a `.venv` that wt-create shares into every worktree. Four
//! agents' branches go through `wt-create --share .venv | wt-env | wt-merge --verify`: the clean
//! one lands verified, the broken one never reaches the target, the conflicting one is
//! reported, the one that changes the gate is held. The editable-install trap (main's venv
//! imports main's code) is refused before anything is merged. The tests fail, saying so, when
//! PyPI cannot be reached.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wt_tests::{s, Run, TestRepo};

const PIP_NEEDS: &str = "this test installs itsdangerous, pytest and freezegun: PyPI must be reachable";
const SDIST: &str = "itsdangerous==2.2.0";

/// A download cache shared by the tests of one run, so each package crosses the network once.
fn cache_dir(tool: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wt-test-cache").join(tool);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn tool(t: &TestRepo, dir: &Path, program: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(if program.contains('/') { dir.join(program) } else { PathBuf::from(program) });
    cmd.args(args).current_dir(dir);
    t.isolate(&mut cmd)
        .env("PIP_CACHE_DIR", cache_dir("pip"))
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env_remove("VIRTUAL_ENV")
        .env_remove("PYTHONPATH");
    Run::from_output(cmd.output().unwrap_or_else(|e| panic!("cannot run {program}: {e}")))
}

fn must(t: &TestRepo, dir: &Path, program: &str, args: &[&str]) -> String {
    let run = tool(t, dir, program, args);
    assert_eq!(run.code, Some(0), "`{program} {}` failed in {} ({PIP_NEEDS})\n{run}", args.join(" "), dir.display());
    run.stdout
}

/// A repository holding itsdangerous's sdist, its tests passing in the main worktree's `.venv`
/// (an editable install, as a developer has it).
fn itsdangerous() -> TestRepo {
    let t = TestRepo::empty();
    t.write(".gitignore", ".venv/\n__pycache__/\n.pytest_cache/\n");
    must(&t, &t.repo, "python3", &["-m", "venv", ".venv"]);
    let sdists = cache_dir("sdist");
    let tarball = sdists.join("itsdangerous-2.2.0.tar.gz");
    if !tarball.exists() {
        let dest = sdists.to_str().unwrap();
        must(&t, &t.repo, ".venv/bin/pip", &["download", "-q", "--no-deps", "--no-binary", ":all:", SDIST, "-d", dest]);
    }
    must(&t, &t.repo, "tar", &["xzf", tarball.to_str().unwrap(), "--strip-components=1"]);
    t.commit("itsdangerous 2.2.0");
    must(&t, &t.repo, ".venv/bin/pip", &["install", "-q", "pytest", "freezegun", "-e", "."]);
    t
}

/// Commits `edit` (path, old text, new text) on the worktree `name`'s branch.
fn commit_edit(t: &TestRepo, name: &str, path: &str, old: &str, new: &str) {
    let wt = t.wt_root().join(name);
    let text = fs::read_to_string(wt.join(path)).unwrap();
    assert!(text.contains(old), "{path} has {old:?}");
    fs::write(wt.join(path), text.replacen(old, new, 1)).unwrap();
    t.git_in(&wt, ["commit", "-qam", &format!("{name}: {path}")]);
}

fn by_name<'r>(recs: &'r [Value], name: &str) -> &'r Value {
    recs.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no record of {name}"))
}

#[test]
fn four_agents_on_itsdangerous_land_only_the_clean_one_verified() {
    let t = itsdangerous();
    let made = t.run("wt-create", &["a-clean", "b-broken", "c-conflict", "d-gate", "--share", ".venv"], "");
    made.expect_code(0);
    commit_edit(&t, "a-clean", "CHANGES.rst", "Version 2.2.0\n", "Version 2.2.1\n");
    // Breaks every signature that has padding to restore: tests fail only if the verification
    // imports the candidate's own code (the shared venv's editable install points at it).
    commit_edit(
        &t,
        "b-broken",
        "src/itsdangerous/encoding.py",
        "string += b\"=\" * (-len(string) % 4)",
        "string += b\"\"",
    );
    commit_edit(&t, "c-conflict", "CHANGES.rst", "Version 2.2.0\n", "Version 2.3.0\n");
    fs::write(t.wt_root().join("d-gate/wt.toml"), "[merge]\nverify = \"true\"\n").unwrap();
    t.git_in(&t.wt_root().join("d-gate"), ["add", "wt.toml"]);
    t.git_in(&t.wt_root().join("d-gate"), ["commit", "-qm", "d-gate: no more tests"]);
    let before = t.git(["rev-parse", "main"]);

    // The trap: main's venv runs main's code. Refused before anything is merged.
    let trap = format!("{}/.venv/bin/pytest -q", t.repo.display());
    let refused = t.run("wt-merge", &["--all", "--verify", &trap], "");
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("inside the main worktree") && refused.stderr.contains("'.venv/bin/pytest'"),
        "{refused}"
    );
    assert_eq!(t.git(["rev-parse", "main"]), before, "nothing merged");
    let climbing = t.run("wt-merge", &["--all", "--verify", "../../repo/.venv/bin/pytest -q"], "");
    climbing.expect_code(2);
    assert!(climbing.stderr.contains("inside the main worktree"), "a relative path out of the worktree: {climbing}");

    let list = t.run("wt-create", &["--list"], "").stdout.clone();
    let leased = t.run("wt-env", &["--ports", "web"], &list).expect_code(0).stdout.clone();
    let run = t.run("wt-merge", &["--verify", ".venv/bin/pytest -q -p no:cacheprovider"], &leased);
    run.expect_code(1);
    let recs = run.records();
    let clean = &by_name(&recs, "a-clean")["merge"];
    assert_eq!(
        (s(clean, "status"), clean["verified"].as_bool(), s(clean, "verified_by")),
        ("merged", Some(true), "wt-merge --verify"),
        "{run}"
    );
    let env = &clean["verify"]["env"];
    assert_eq!(env["shared"], serde_json::json!([".venv"]), "{run}");
    let scratch = env["path"].as_str().unwrap();
    assert!(
        scratch.starts_with(t.wt_root().to_str().unwrap()) && !scratch.contains("/."),
        "beside the worktrees: {scratch}"
    );
    assert!(env["ports"]["web"].as_u64().is_some(), "its own lease: {env}");

    let broken = &by_name(&recs, "b-broken")["merge"];
    assert_eq!(s(broken, "status"), "verify-failed", "{run}");
    let excerpt = s(&broken["verify"], "excerpt");
    assert!(
        excerpt.contains("✗ TestSerializer.test_") && excerpt.contains("BadSignature"),
        "the failing tests and their assertion: {excerpt}"
    );
    assert_eq!(s(&by_name(&recs, "c-conflict")["merge"], "status"), "conflict", "{run}");
    let gate = &by_name(&recs, "d-gate")["merge"];
    assert_eq!(s(gate, "status"), "gate-changed", "{run}");
    assert!(s(gate, "reason").contains("[merge]"), "{run}");

    // main is the clean branch merged, and its own suite passes there.
    assert_eq!(t.git(["log", "-1", "--format=%s", "main"]), "Merge branch 'wt/a-clean' into main");
    assert!(!t.git(["diff", &before, "main", "--stat"]).contains("encoding.py"), "the broken change never landed");
    must(&t, &t.repo, ".venv/bin/pytest", &["-q", "-p", "no:cacheprovider"]);
    t.assert_no_verification_worktree("after the queue");

    // A person lets the gate change through, and it is verified like any other.
    let allowed = t.run(
        "wt-merge",
        &["d-gate", "--allow-gate-change", "--verify", ".venv/bin/pytest -q -p no:cacheprovider"],
        "",
    );
    allowed.expect_code(0);
    assert_eq!(s(&allowed.records()[0]["merge"], "status"), "merged", "{allowed}");
}

const NPM_NEEDS: &str = "this test installs send, mocha and supertest: the npm registry must be reachable";

fn npm(t: &TestRepo, dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("npm");
    cmd.args(args).current_dir(dir);
    t.isolate(&mut cmd).env("npm_config_cache", cache_dir("npm")).env("npm_config_update_notifier", "false");
    let run = Run::from_output(cmd.output().unwrap_or_else(|e| panic!("cannot run npm ({NPM_NEEDS}): {e}")));
    assert_eq!(run.code, Some(0), "`npm {}` failed in {} ({NPM_NEEDS})\n{run}", args.join(" "), dir.display());
    run.stdout
}

/// An npm project that serves a file by its absolute path with `send` (as Express's
/// `res.sendFile` does), tested with mocha and supertest: `send` refuses a path under a
/// dot-directory, so its tests pass only where a checkout really lives, not under `.git/`.
/// Five agents: a clean change lands verified, a broken one does not, one whose lock file
/// differs is held until `--prepare 'npm ci'` installs its dependencies, one conflicts, one
/// that adds a gate of its own is held.
#[test]
fn an_express_style_app_is_verified_where_it_can_run_and_its_new_dependencies_are_installed() {
    let t = TestRepo::empty();
    t.write(".gitignore", "node_modules/\n");
    t.write("package.json", "{\"name\": \"app\", \"version\": \"1.0.0\", \"private\": true, \"scripts\": {\"test\": \"mocha --exit test/\"}}\n");
    t.write(
        "app.js",
        "const http = require('http');\nconst path = require('path');\nconst send = require('send');\n\
         module.exports = http.createServer((req, res) => {\n  send(req, path.join(__dirname, 'public', 'index.html')).pipe(res);\n});\n",
    );
    t.write("public/index.html", "hello\n");
    t.write(
        "test/app.test.js",
        "const request = require('supertest');\nconst app = require('../app');\n\
         describe('GET /', () => {\n  it('serves the page', () => request(app).get('/').expect(200, 'hello\\n'));\n});\n",
    );
    npm(&t, &t.repo, &["install", "--no-audit", "--no-fund", "--save-exact", "send@0.19.0"]);
    npm(
        &t,
        &t.repo,
        &["install", "--no-audit", "--no-fund", "--save-exact", "--save-dev", "mocha@9.2.2", "supertest@6.2.2"],
    );
    t.commit("app");
    npm(&t, &t.repo, &["test"]);
    let agents = ["a-clean", "b-broken", "c-upgrade", "d-conflict", "e-gate", "--share", "node_modules"];
    t.run("wt-create", &agents, "").expect_code(0);
    commit_edit(&t, "a-clean", "public/index.html", "hello\n", "hello\n<!-- a-clean -->\n");
    commit_edit(&t, "a-clean", "test/app.test.js", "'hello\\n'", "'hello\\n<!-- a-clean -->\\n'");
    commit_edit(&t, "b-broken", "app.js", "'index.html'", "'missing.html'");
    let upgrade = t.wt_root().join("c-upgrade");
    npm(&t, &upgrade, &["install", "--package-lock-only", "--no-audit", "--no-fund", "--save-exact", "left-pad@1.3.0"]);
    t.git_in(&upgrade, ["commit", "-qam", "c-upgrade: a new dependency"]);
    commit_edit(&t, "d-conflict", "public/index.html", "hello\n", "hi\n");
    commit_edit(&t, "e-gate", "package.json", "\"mocha --exit test/\"", "\"true\"");
    std::fs::write(t.wt_root().join("e-gate/wt.toml"), "[merge]\nverify = \"npm test\"\n").unwrap();
    t.git_in(&t.wt_root().join("e-gate"), ["add", "wt.toml"]);
    t.git_in(&t.wt_root().join("e-gate"), ["commit", "-qm", "e-gate: a gate of its own"]);

    let list = t.run("wt-create", &["--list"], "").stdout.clone();
    let mut merge = t.cmd("wt-merge");
    merge.args(["--verify", "npm test"]).env("npm_config_cache", cache_dir("npm"));
    let run = Run::of(&mut merge, &list);
    run.expect_code(1);
    let recs = run.records();
    let clean = &by_name(&recs, "a-clean")["merge"];
    assert_eq!((s(clean, "status"), clean["verified"].as_bool()), ("merged", Some(true)), "{run}");
    assert_eq!(clean["verify"]["env"]["shared"], serde_json::json!(["node_modules"]), "{run}");
    let broken = &by_name(&recs, "b-broken")["merge"];
    assert_eq!(s(broken, "status"), "verify-failed", "{run}");
    assert!(s(&broken["verify"], "excerpt").contains("serves the page"), "mocha's failing test: {run}");
    let held = &by_name(&recs, "c-upgrade")["merge"];
    assert_eq!(s(held, "status"), "deps-differ", "{run}");
    assert!(s(held, "reason").contains("package-lock.json"), "{run}");
    assert_eq!(s(&by_name(&recs, "d-conflict")["merge"], "status"), "conflict", "{run}");
    assert_eq!(s(&by_name(&recs, "e-gate")["merge"], "status"), "gate-changed", "{run}");

    let mut prepared = t.cmd("wt-merge");
    prepared
        .args([
            "c-upgrade",
            "--verify",
            "npm test && node -e \"require('left-pad')\"",
            "--prepare",
            "npm ci --no-audit --no-fund",
        ])
        .env("npm_config_cache", cache_dir("npm"));
    let run = Run::of(&mut prepared, "");
    run.expect_code(0);
    assert_eq!(s(&run.records()[0]["merge"], "status"), "merged", "{run}");
    // Installed in the verification worktree only: the main worktree's (and the store's)
    // node_modules never got it.
    assert!(!t.repo.join("node_modules/left-pad").exists());
    t.assert_no_verification_worktree("after the queue");
}
