//! A pooled worktree's shared virtualenv, claimed: its scripts and its editable install name
//! the worktree's path, not the pool's (`<root>/.pool/<id>`, which the claim renames and the
//! refill gives to another worktree). Real venv, real editable install from PyPI's setuptools.

use std::path::Path;
use std::process::Command;

use wt_tests::{s, Run, TestRepo};

const PIP_NEEDS: &str = "this test installs setuptools for an editable install: PyPI must be reachable";

#[test]
fn a_claimed_worktrees_venv_runs_its_own_code_not_the_pools() {
    let t = TestRepo::new();
    t.write("src/mypkg/__init__.py", "WHERE = __file__\n");
    t.write(
        "pyproject.toml",
        "[project]\nname = \"mypkg\"\nversion = \"0.1\"\n[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n",
    );
    t.write(".gitignore", ".venv/\n*.egg-info/\n");
    t.commit("a package");
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wt-test-cache/pip");
    for (program, args) in
        [("python3", vec!["-m", "venv", ".venv"]), (".venv/bin/pip", vec!["install", "-q", "-e", "."])]
    {
        // `python3` from PATH; the venv's pip by its path in the repository.
        let mut c = match program.contains('/') {
            true => Command::new(t.repo.join(program)),
            false => Command::new(program),
        };
        c.args(&args).current_dir(&t.repo);
        t.isolate(&mut c)
            .env("PIP_CACHE_DIR", &cache)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env_remove("VIRTUAL_ENV")
            .env_remove("PYTHONPATH");
        let run = Run::from_output(c.output().unwrap());
        assert_eq!(run.code, Some(0), "{program} failed ({PIP_NEEDS})\n{run}");
    }
    t.run("wt-create", &["--pool", "1", "--share", ".venv"], "").expect_code(0);
    let rec = t.run("wt-create", &["agent-1", "--share", ".venv"], "").expect_code(0).records()[0].clone();
    assert_eq!(rec["claimed"], true, "{rec}");
    let path = Path::new(s(&rec, "path")).to_path_buf();
    // Its own package, imported through its own venv.
    let mut py = Command::new(path.join(".venv/bin/python"));
    py.args(["-c", "import mypkg; print(mypkg.WHERE)"]).current_dir(&path).env_remove("PYTHONPATH");
    let run = Run::from_output(t.isolate(&mut py).output().unwrap());
    run.expect_code(0);
    assert_eq!(run.stdout.trim(), path.join("src/mypkg/__init__.py").display().to_string(), "{run}");
    // Its scripts run its venv's Python.
    let pip = std::fs::read_to_string(path.join(".venv/bin/pip")).unwrap();
    let shebang = pip.lines().next().unwrap();
    assert!(shebang.starts_with(&format!("#!{}/.venv/bin/python", path.display())), "{pip}");
    assert!(!pip.contains(".pool"), "nothing names the pool: {pip}");
}
