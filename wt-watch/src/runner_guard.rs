//! The guard every watch gets unless `--no-guard`: the files with which the detected test runner
//! finds, selects and configures tests. An agent that turns its tests green by changing them
//! (a test rewritten, `addopts = "-k 'not test_x'"` in pyproject.toml, `autotests = false` in
//! Cargo.toml, `--ignore` in package.json's test script) ends `green-guard-touched`.
//!
//! The runner is read from the test command's words (`pytest`, `cargo test`, `go test`, `npm
//! test`, `node --test`, `mocha`, `jest`, `vitest`, …); a command that names none (`make test`,
//! `sh ci/test.sh`) gets the guard of every runner whose project file the repository's main
//! worktree holds (pyproject.toml, Cargo.toml, package.json, go.mod). A command that runs `make`
//! guards the Makefiles too.
//!
//! What cannot be guarded by path is said where the globs are: Rust's `#[cfg(test)]` modules
//! live in the code the agent must change (the count of tests the runner executed catches a
//! test removed there: `wt_common::record::test_count`).

use std::path::Path;

/// A test runner the default guard knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TestRunner {
    Pytest,
    Cargo,
    Npm,
    Go,
    Make,
}

impl TestRunner {
    pub fn name(self) -> &'static str {
        match self {
            TestRunner::Pytest => "pytest",
            TestRunner::Cargo => "cargo",
            TestRunner::Npm => "npm",
            TestRunner::Go => "go",
            TestRunner::Make => "make",
        }
    }

    /// The globs guarded whole, relative to the worktree (`*` stays in a directory, `**`
    /// crosses them).
    pub fn globs(self) -> &'static [&'static str] {
        match self {
            // pyproject.toml: its [tool.pytest…] tables only (`PYTEST_SECTION`).
            TestRunner::Pytest => &[
                "**/tests/**",
                "**/test/**",
                "**/test_*.py",
                "**/*_test.py",
                "**/conftest.py",
                "**/pytest.ini",
                "**/.pytest.ini",
                "**/setup.cfg",
                "**/tox.ini",
            ],
            // Not the `#[cfg(test)]` modules: they are in the code.
            TestRunner::Cargo => {
                &["**/tests/**", "**/benches/**", "**/Cargo.toml", ".cargo/config", ".cargo/config.toml"]
            }
            TestRunner::Npm => &[
                "**/test/**",
                "**/tests/**",
                "**/__tests__/**",
                "**/*.test.*",
                "**/*.spec.*",
                "**/package.json",
                "**/.mocharc*",
                "**/jest.config.*",
                "**/vitest.config.*",
                "**/vitest.workspace.*",
                "**/vite.config.*",
                "**/.taprc",
                "**/ava.config.*",
            ],
            TestRunner::Go => &["**/*_test.go", "**/testdata/**", "**/Makefile", "**/makefile", "**/GNUmakefile"],
            TestRunner::Make => &["**/Makefile", "**/makefile", "**/GNUmakefile", "**/*.mk"],
        }
    }
}

/// pytest's section of pyproject.toml (`[tool.pytest.ini_options]`, pytest 9's `[tool.pytest]`):
/// guarded by itself, so that the project's other tables (its dependencies) stay the agent's.
pub const PYTEST_SECTION: (&str, &[&str]) = ("**/pyproject.toml", &["tool", "pytest"]);

/// The runners of the test command `argv` (its words, `sh -c` scripts split on blanks), else
/// of the project files at `main` (the repository's main worktree), sorted and without
/// repeats.
pub fn detect(argv: &[String], main: Option<&Path>) -> Vec<TestRunner> {
    let words: Vec<&str> = argv
        .iter()
        .flat_map(|a| a.split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '`')))
        .filter(|w| !w.is_empty())
        .map(|w| w.rsplit('/').next().unwrap_or(w))
        .collect();
    let has = |w: &str| words.contains(&w);
    let follows = |a: &str, b: &[&str]| words.windows(2).any(|p| p[0] == a && b.contains(&p[1]));
    let mut found = Vec::new();
    if ["pytest", "py.test"].iter().any(|w| has(w)) || follows("-m", &["pytest"]) || has("tox") || has("nox") {
        found.push(TestRunner::Pytest);
    }
    if follows("cargo", &["test", "nextest", "t"]) {
        found.push(TestRunner::Cargo);
    }
    let node_runner = ["mocha", "jest", "vitest", "ava", "tap", "tape"].iter().any(|w| has(w));
    if node_runner
        || ["npm", "yarn", "pnpm", "bun"].iter().any(|pm| follows(pm, &["test", "t", "run", "run-script"]))
        || (has("node") && has("--test"))
    {
        found.push(TestRunner::Npm);
    }
    if follows("go", &["test", "vet"]) {
        found.push(TestRunner::Go);
    }
    if found.is_empty() {
        if let Some(main) = main {
            let present = |f: &str| main.join(f).symlink_metadata().is_ok_and(|m| m.is_file());
            if ["pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini", "conftest.py"].iter().any(|f| present(f)) {
                found.push(TestRunner::Pytest);
            }
            if present("Cargo.toml") {
                found.push(TestRunner::Cargo);
            }
            if present("package.json") {
                found.push(TestRunner::Npm);
            }
            if present("go.mod") {
                found.push(TestRunner::Go);
            }
        }
    }
    if has("make") || has("gmake") {
        found.push(TestRunner::Make);
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(cmd: &[&str]) -> Vec<TestRunner> {
        detect(&cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>(), None)
    }

    #[test]
    fn the_runner_is_read_from_the_command() {
        use TestRunner::*;
        assert_eq!(words(&["pytest", "-q"]), [Pytest]);
        assert_eq!(words(&["/venv/bin/python", "-m", "pytest"]), [Pytest]);
        assert_eq!(words(&["sh", "-c", "cd x && /v/bin/pytest -rA"]), [Pytest]);
        assert_eq!(words(&["cargo", "test", "--workspace"]), [Cargo]);
        assert_eq!(words(&["npm", "test"]), [Npm]);
        assert_eq!(words(&["npx", "mocha"]), [Npm]);
        assert_eq!(words(&["node", "--test", "test/"]), [Npm]);
        assert_eq!(words(&["go", "test", "./..."]), [Go]);
        assert_eq!(words(&["sh", "-c", "cargo test; go test ./..."]), [Cargo, Go]);
        assert_eq!(words(&["sh", "tests/check.sh"]), []);
        assert_eq!(words(&["cargo", "build"]), []);
    }

    #[test]
    fn a_command_that_names_none_gets_the_project_files_runners_and_make_its_makefiles() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("go.mod"), "module x\n").unwrap();
        std::fs::write(t.path().join("package.json"), "{}").unwrap();
        let argv = vec!["make".to_string(), "test".into()];
        assert_eq!(detect(&argv, Some(t.path())), [TestRunner::Npm, TestRunner::Go, TestRunner::Make]);
        assert_eq!(detect(&["pytest".into()], Some(t.path())), [TestRunner::Pytest], "the command says");
    }
}
