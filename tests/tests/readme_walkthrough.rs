//! The README's walk-through, "Five minutes: four agents on your project", run as written: its
//! `sh` blocks are taken from README.md itself, in order, and run as one bash script (`set -e`,
//! `pipefail`) in a throwaway directory, with the built tools first on PATH. So the walk-through
//! cannot drift from what the tools do: a changed flag, a step that fails, or a block that
//! stops being a `sh` block fails this test.
//!
//! The project is the one the walk-through offers, itsdangerous's sdist and its test suite from
//! PyPI (the test fails, saying so, when PyPI cannot be reached). The agents are a stand-in
//! (tests/readme-agent.py) put in `AGENT`, the variable the walk-through reads its agent's
//! command from: each commits its task's note together with a bug the tests catch, and fixes
//! the bug when wt-watch pastes the failure into its pane.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wt_tests::{bin, Run, TestRepo};

const PIP_NEEDS: &str = "the walk-through installs itsdangerous, pytest and freezegun: PyPI must be reachable";

/// The heading of the walk-through in README.md; its section ends at the next `## ` heading.
const HEADING: &str = "## Five minutes: four agents on your project";

/// Longer than the walk-through ever takes here, so that a step that hangs (a pane that never
/// turns idle, a loop that never goes green) fails the test instead of stalling CI.
const LIMIT: Duration = Duration::from_secs(600);

/// The shell blocks of the walk-through section of `readme`, in order.
fn walkthrough_blocks(readme: &str) -> Vec<String> {
    let start = readme.find(HEADING).unwrap_or_else(|| panic!("README.md has no heading {HEADING:?}"));
    let section = &readme[start + HEADING.len()..];
    let section = section.find("\n## ").map_or(section, |end| &section[..end]);
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an `sh` block of the walk-through is not closed");
    blocks
}

/// Ends what the walk-through started even when it failed half way: the pane supervisor (its
/// agents with it) and the script's process group.
struct Cleanup {
    project: PathBuf,
    env: Vec<(String, PathBuf)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.project.is_dir() {
            let mut stop = Command::new(bin("wt-run"));
            stop.args(["pane", "stop"]).current_dir(&self.project).envs(self.env.iter().map(|(k, v)| (k, v)));
            let _ = stop.output();
        }
    }
}

/// What the walk-through's processes, panes and logs show, for a run that did not finish: the
/// process tree under the test's directory (with each process's wait channel), the panes'
/// states and screens, wt-status, and the end of each log wt wrote.
fn diagnosis(t: &TestRepo, root: &Path, project: &Path, xdg: &Path) -> String {
    let mut out = String::from("--- diagnosis of the hung walk-through\n");
    let run = |out: &mut String, title: &str, cmd: &mut Command| {
        let r = t.isolate(cmd).env("XDG_RUNTIME_DIR", xdg).env("TMUX_TMPDIR", xdg).current_dir(project).output();
        match r {
            Ok(o) => out.push_str(&format!(
                "--- {title}\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => out.push_str(&format!("--- {title}: {e}\n")),
        }
    };
    let ps = Command::new("ps").args(["-eo", "pid,ppid,pgid,stat,etimes,wchan:24,args", "--forest"]).output();
    if let Ok(ps) = ps {
        let root = root.to_string_lossy();
        let text = String::from_utf8_lossy(&ps.stdout);
        out.push_str("--- processes\n");
        for line in text.lines().filter(|l| l.contains(&*root) || l.contains("wt-") || l.contains("pytest")) {
            out.push_str(&line.chars().take(400).collect::<String>());
            out.push('\n');
        }
    }
    run(&mut out, "wt-run pane ls", Command::new(bin("wt-run")).args(["pane", "ls", "--json"]));
    for n in 1..=4 {
        let name = format!("agent-{n}");
        run(&mut out, &format!("screen of {name}"), Command::new(bin("wt-run")).args(["pane", "screen", &name]));
    }
    run(&mut out, "wt-status --json", Command::new(bin("wt-status")).arg("--json"));
    let logs = project.join(".git/wt/logs");
    let mut files: Vec<PathBuf> = walk(&logs);
    files.sort();
    for f in files {
        let text = std::fs::read(&f).unwrap_or_default();
        let tail = &text[text.len().saturating_sub(1500)..];
        out.push_str(&format!("--- {} (last 1500 bytes)\n{}\n", f.display(), String::from_utf8_lossy(tail)));
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(ft) if ft.is_dir() => found.extend(walk(&p)),
            Ok(ft) if ft.is_file() => found.push(p),
            _ => {}
        }
    }
    found
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let blocks = walkthrough_blocks(&readme);
    // The project, the four steps and the clean-up, with the wait between steps 3 and 4.
    assert!(blocks.len() >= 7, "the walk-through has {} `sh` blocks; the test expects 7:\n{blocks:#?}", blocks.len());
    let script = format!("set -euxo pipefail\n{}", blocks.concat());

    let t = TestRepo::empty();
    let root = t.root();
    // The stand-in agent is copied here so that its processes are this test's alone to find.
    // It is named `claude`, so that wt-run gives its pane Claude Code's profile (its dialog
    // rules, working and idle from its output), as the person's agent would get.
    std::fs::create_dir_all(root.join("agent")).unwrap();
    let agent = root.join("agent/claude");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("readme-agent.py"), &agent).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let xdg = root.join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
    let tools = bin("wt-create").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", tools.display(), std::env::var("PATH").unwrap_or_default());
    let pip_cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wt-test-cache/pip");
    std::fs::create_dir_all(&pip_cache).unwrap();
    let project = root.join("itsdangerous");
    let _cleanup = Cleanup {
        project: project.clone(),
        env: vec![
            ("XDG_RUNTIME_DIR".into(), xdg.clone()),
            ("HOME".into(), root.join("home")),
            ("GIT_CONFIG_GLOBAL".into(), root.join("gitconfig")),
        ],
    };

    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script).current_dir(&root);
    t.isolate(&mut cmd)
        .env("PATH", path)
        .env("AGENT", &agent)
        .env("XDG_RUNTIME_DIR", &xdg)
        .env("TMUX_TMPDIR", &xdg)
        .env_remove("TMUX")
        .env("WT_PANE_IDLE", "20s")
        .env("PIP_CACHE_DIR", &pip_cache)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env_remove("VIRTUAL_ENV")
        .env_remove("PYTHONPATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let child = cmd.spawn().expect("run bash");
    let pgid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(LIMIT) {
        Ok(out) => Run::from_output(out.expect("wait for bash")),
        Err(_) => {
            // What hung, read before anything is killed: CI's log is all the next session has.
            let diagnosis = diagnosis(&t, &root, &project, &xdg);
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
            let out = rx.recv().expect("bash ends once killed").expect("wait for bash");
            panic!("the walk-through did not finish within {LIMIT:?}\n{}\n{diagnosis}", Run::from_output(out));
        }
    };
    // What each step printed (shown with --nocapture, or when the test fails).
    eprintln!("{out}\nthe walk-through took {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(out.code, Some(0), "a step of the walk-through failed ({PIP_NEEDS})\n{out}");

    // Each agent's work is on main, with the fix wt-watch's report led it to; its bug is not.
    let git = |args: &[&str]| {
        let mut c = Command::new("git");
        c.arg("-C").arg(&project).args(args);
        let run = Run::from_output(t.isolate(&mut c).output().unwrap());
        run.expect_code(0);
        run.stdout.trim_end().to_string()
    };
    let notes = git(&["ls-tree", "--name-only", "main", "notes/"]);
    assert_eq!(notes, "notes/agent-1.md\nnotes/agent-2.md\nnotes/agent-3.md\nnotes/agent-4.md", "{out}");
    let subjects = git(&["log", "--format=%s", "main"]);
    for n in 1..=4 {
        assert!(
            subjects.contains(&format!("agent-{n}: fix the padding in encoding.py")),
            "agent-{n} fixed its bug after wt-watch told it:\n{subjects}\n{out}"
        );
    }
    let first = git(&["rev-list", "--max-parents=0", "main"]);
    assert_eq!(git(&["diff", &first, "main", "--", "src/itsdangerous/encoding.py"]), "", "no bug reached main");
    let received = std::fs::read_to_string(root.join("home/.claude/notes-received.log")).unwrap_or_default();
    assert!(
        received.contains("failed") && received.contains("encoding.py"),
        "what wt-watch pasted names the failing tests: {received}"
    );
    // main is verified: its own suite passes there.
    let mut pytest = Command::new(project.join(".venv/bin/pytest"));
    pytest.args(["-q", "-p", "no:cacheprovider"]).current_dir(&project);
    Run::from_output(t.isolate(&mut pytest).output().unwrap()).expect_code(0);

    // Nothing is left: no worktree but main, no branch but main, no lease, no agent running.
    let worktrees = git(&["worktree", "list", "--porcelain"]);
    assert_eq!(worktrees.matches("worktree ").count(), 1, "only the main worktree:\n{worktrees}");
    assert_eq!(git(&["for-each-ref", "--format=%(refname:short)", "refs/heads/"]), "main");
    let beside = root.join("itsdangerous.wt");
    let left: Vec<_> =
        std::fs::read_dir(&beside).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing in {}: {left:?}", beside.display());
    assert!(!project.join(".git/wt").exists(), "the purge took wt's state");
    let mut inbox = Command::new(bin("wt-status"));
    inbox.args(["--inbox", "--json"]).current_dir(&project);
    let inbox = Run::from_output(t.isolate(&mut inbox).output().unwrap());
    assert_eq!(inbox.expect_code(0).stdout, "", "nobody needs the person any more");
    let mut leases = Command::new(bin("wt-env"));
    leases.args(["--list", "--json"]).current_dir(&project);
    let leases = Run::from_output(t.isolate(&mut leases).output().unwrap());
    assert_eq!(leases.expect_code(0).stdout, "", "no lease is left");
    let agents = Command::new("pgrep").args(["-f", agent.to_str().unwrap()]).output().unwrap();
    assert!(agents.stdout.is_empty(), "no stand-in agent is running: {}", String::from_utf8_lossy(&agents.stdout));
}
