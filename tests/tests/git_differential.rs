//! Differential tests against git (issue 23, item 8): for each odd form of a worktree's `.git`
//! file and of its admin dir's `gitdir`, `commondir`, `HEAD`, `index` and `locked` (what an agent
//! could have left there), real git is asked where it goes (`git rev-parse`, under a timeout:
//! a FIFO hangs git), then `wt-run --confine` runs a command that tries to write into every git
//! dir and common dir git resolved, and to move whatever the pointer goes through. Either wt
//! refused to confine (`tampered-worktree`, one line saying what to do), or:
//!
//! - every write into the places git resolved failed, and nothing changed there;
//! - after the run, git (unconfined, as a person in the worktree would run it) goes exactly to
//!   the admin dir and common dir wt protected, lists the worktree where it is, and runs no
//!   `core.fsmonitor` the command planted.
//!
//! And wt never hangs (a FIFO) nor takes long on a huge file.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wt_tests::{bin, TestRepo};

/// One repository with two managed worktrees, a foreign repository, and paths of both.
struct Ctx {
    t: TestRepo,
    wt: PathBuf,
    admin: PathBuf,
    admin2: PathBuf,
    wt2: PathBuf,
    common: PathBuf,
    /// A bare repository that is not this one, whose config runs the canary.
    evil: PathBuf,
    /// Created by any `core.fsmonitor` a planted config names.
    canary: PathBuf,
}

impl Ctx {
    fn new() -> Ctx {
        let t = TestRepo::new();
        t.run("wt-create", &["agent-1", "agent-2"], "").expect_code(0);
        let wt = t.wt_root().join("agent-1").canonicalize().unwrap();
        let wt2 = t.wt_root().join("agent-2").canonicalize().unwrap();
        let common = t.repo.join(".git").canonicalize().unwrap();
        let admin = common.join("worktrees/agent-1");
        let admin2 = common.join("worktrees/agent-2");
        let canary = t.root().join("canary");
        let evil = t.root().join("evil.git");
        t.git_in(&t.root(), ["init", "-q", "--bare", evil.to_str().unwrap()]);
        let ctx = Ctx { t, wt, admin, admin2, wt2, common, evil, canary };
        append(&ctx.evil.join("config"), &ctx.fsmonitor_config());
        ctx
    }

    fn fsmonitor_config(&self) -> String {
        format!("[core]\n\tfsmonitor = touch {}; false\n", self.canary.display())
    }

    /// A git dir inside the worktree, as an agent would make one: `fake-common` (a bare
    /// repository whose config runs the canary) and `fake/agent-1`, an admin dir naming it.
    fn plant_fake_git_dirs(&self) {
        let fake_common = self.wt.join("fake-common");
        self.t.git_in(&self.wt, ["init", "-q", "--bare", fake_common.to_str().unwrap()]);
        append(&fake_common.join("config"), &self.fsmonitor_config());
        let fake_admin = self.wt.join("fake/agent-1");
        std::fs::create_dir_all(&fake_admin).unwrap();
        std::fs::write(fake_admin.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(fake_admin.join("commondir"), format!("{}\n", fake_common.display())).unwrap();
    }

    /// Where git run in the worktree goes: its git dir and common dir; `None` when git fails
    /// or hangs.
    fn git_view(&self) -> Option<(PathBuf, PathBuf)> {
        let args = ["rev-parse", "--path-format=absolute", "--absolute-git-dir", "--git-common-dir"];
        let out = self.git_timed(&self.wt, &args)?;
        let mut lines = out.lines();
        Some((PathBuf::from(lines.next()?), PathBuf::from(lines.next()?)))
    }

    /// `git -C dir args…` killed after 5 s; stdout when it succeeded.
    fn git_timed(&self, dir: &Path, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new("timeout");
        cmd.args(["-s", "KILL", "5", "git", "-C"]).arg(dir).args(args);
        let out = self.t.isolate(&mut cmd).output().expect("run git");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn append(file: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(file).unwrap().write_all(text.as_bytes()).unwrap();
}

fn replace(file: &Path, bytes: &[u8]) {
    remove(file);
    std::fs::write(file, bytes).unwrap();
}

fn remove(file: &Path) {
    match std::fs::symlink_metadata(file) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(file).unwrap(),
        Ok(_) => std::fs::remove_file(file).unwrap(),
        Err(_) => {}
    }
}

fn fifo(file: &Path) {
    remove(file);
    nix::unistd::mkfifo(file, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

/// `text` followed by 10 MB of newlines.
fn huge(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(bytes.len() + 10 * 1024 * 1024, b'\n');
    bytes
}

struct Case {
    name: &'static str,
    setup: fn(&Ctx),
    /// Shell the confined command runs after its writes: what an agent would do to move where
    /// the pointer leads without touching the pointer (it runs in the worktree).
    redirect: &'static str,
}

/// Points the link `link` in the worktree at the agent's own git dirs.
const REDIRECT_LINK: &str = "ln -sfn \"$PWD/fake\" link && echo REDIRECTED";
const REDIRECT_CLINK: &str = "ln -sfn \"$PWD/fake-common\" clink && echo REDIRECTED";
const REDIRECT_SELF: &str = "rm -f self && ln -s /nonexistent self && echo REDIRECTED";

fn dot_git(c: &Ctx) -> PathBuf {
    c.wt.join(".git")
}

fn cases() -> Vec<Case> {
    let plain = |name, setup| Case { name, setup, redirect: "" };
    vec![
        plain("as git wrote it", |_| {}),
        // The worktree's `.git` file.
        plain(".git: CRLF", |c| replace(&dot_git(c), format!("gitdir: {}\r\n", c.admin.display()).as_bytes())),
        plain(".git: no newline", |c| replace(&dot_git(c), format!("gitdir: {}", c.admin.display()).as_bytes())),
        plain(".git: trailing spaces", |c| {
            replace(&dot_git(c), format!("gitdir: {}  \n", c.admin.display()).as_bytes())
        }),
        plain(".git: BOM", |c| replace(&dot_git(c), format!("\u{feff}gitdir: {}\n", c.admin.display()).as_bytes())),
        plain(".git: NUL, then another repository", |c| {
            replace(&dot_git(c), format!("gitdir: {}\0{}\n", c.admin.display(), c.evil.display()).as_bytes())
        }),
        plain(".git: NUL inside the path", |c| {
            let admin = c.admin.display().to_string();
            let (head, tail) = admin.split_at(admin.len() - 3);
            replace(&dot_git(c), format!("gitdir: {head}\0{tail}\n").as_bytes())
        }),
        plain(".git: GITDIR:", |c| replace(&dot_git(c), format!("GITDIR: {}\n", c.admin.display()).as_bytes())),
        plain(".git: gitdir: without a space", |c| {
            replace(&dot_git(c), format!("gitdir:{}\n", c.admin.display()).as_bytes())
        }),
        plain(".git: gitdir: with two spaces", |c| {
            replace(&dot_git(c), format!("gitdir:  {}\n", c.admin.display()).as_bytes())
        }),
        plain(".git: a second line", |c| {
            replace(&dot_git(c), format!("gitdir: {}\ngitdir: {}\n", c.admin.display(), c.evil.display()).as_bytes())
        }),
        plain(".git: relative", |c| replace(&dot_git(c), b"gitdir: ../../repo/.git/worktrees/agent-1\n")),
        plain(".git: with /./", |c| {
            replace(&dot_git(c), format!("gitdir: {}/worktrees/./agent-1\n", c.common.display()).as_bytes())
        }),
        plain(".git: with /../", |c| {
            replace(&dot_git(c), format!("gitdir: {}/worktrees/../worktrees/agent-1\n", c.common.display()).as_bytes())
        }),
        plain(".git: trailing slash", |c| replace(&dot_git(c), format!("gitdir: {}/\n", c.admin.display()).as_bytes())),
        plain(".git: double slash", |c| {
            replace(&dot_git(c), format!("gitdir: {}//agent-1\n", c.common.join("worktrees").display()).as_bytes())
        }),
        Case {
            name: ".git: relative, through a link in the worktree",
            setup: |c| {
                c.plant_fake_git_dirs();
                symlink(c.common.join("worktrees"), c.wt.join("link")).unwrap();
                replace(&dot_git(c), b"gitdir: link/agent-1\n");
            },
            redirect: REDIRECT_LINK,
        },
        Case {
            name: ".git: absolute, through a link in the worktree",
            setup: |c| {
                c.plant_fake_git_dirs();
                symlink(c.common.join("worktrees"), c.wt.join("link")).unwrap();
                replace(&dot_git(c), format!("gitdir: {}/link/agent-1\n", c.wt.display()).as_bytes());
            },
            redirect: REDIRECT_LINK,
        },
        plain(".git: a link to a file saying the same", |c| {
            let file = c.t.root().join("dot-git-elsewhere");
            std::fs::write(&file, format!("gitdir: {}\n", c.admin.display())).unwrap();
            remove(&dot_git(c));
            symlink(file, dot_git(c)).unwrap();
        }),
        plain(".git: a link to the admin dir", |c| {
            remove(&dot_git(c));
            symlink(&c.admin, dot_git(c)).unwrap();
        }),
        plain(".git: a FIFO", |c| fifo(&dot_git(c))),
        plain(".git: an empty directory", |c| {
            remove(&dot_git(c));
            std::fs::create_dir(dot_git(c)).unwrap();
        }),
        plain(".git: a git dir of the agent's", |c| {
            remove(&dot_git(c));
            c.t.git_in(&c.wt, ["init", "-q", "--bare", ".git"]);
            append(&dot_git(c).join("config"), &c.fsmonitor_config());
        }),
        plain(".git: missing", |c| remove(&dot_git(c))),
        plain(".git: 10 MB", |c| replace(&dot_git(c), &huge(&format!("gitdir: {}\n", c.admin.display())))),
        plain(".git: another worktree's admin dir", |c| {
            replace(&dot_git(c), format!("gitdir: {}\n", c.admin2.display()).as_bytes())
        }),
        plain(".git: an admin dir the agent made", |c| {
            c.plant_fake_git_dirs();
            replace(&dot_git(c), format!("gitdir: {}/fake/agent-1\n", c.wt.display()).as_bytes())
        }),
        plain(".git: another repository", |c| {
            replace(&dot_git(c), format!("gitdir: {}\n", c.evil.display()).as_bytes())
        }),
        // The admin dir's `gitdir`, which git reads to list, prune and remove worktrees.
        plain("gitdir: CRLF", |c| replace(&c.admin.join("gitdir"), format!("{}/.git\r\n", c.wt.display()).as_bytes())),
        plain("gitdir: relative", |c| replace(&c.admin.join("gitdir"), b"../../../../repo.wt/agent-1/.git\n")),
        Case {
            name: "gitdir: through a link in the worktree",
            setup: |c| {
                symlink(".", c.wt.join("self")).unwrap();
                replace(&c.admin.join("gitdir"), format!("{}/self/.git\n", c.wt.display()).as_bytes());
            },
            redirect: REDIRECT_SELF,
        },
        plain("gitdir: another worktree", |c| {
            replace(&c.admin.join("gitdir"), format!("{}/.git\n", c.wt2.display()).as_bytes())
        }),
        plain("gitdir: a FIFO", |c| fifo(&c.admin.join("gitdir"))),
        plain("gitdir: missing", |c| remove(&c.admin.join("gitdir"))),
        plain("gitdir: 10 MB", |c| replace(&c.admin.join("gitdir"), &huge(&format!("{}/.git\n", c.wt.display())))),
        plain("gitdir: a link to a file saying the same", |c| {
            let file = c.t.root().join("gitdir-elsewhere");
            std::fs::write(&file, format!("{}/.git\n", c.wt.display())).unwrap();
            remove(&c.admin.join("gitdir"));
            symlink(file, c.admin.join("gitdir")).unwrap();
        }),
        // The admin dir's `commondir`, which git follows to config, hooks, refs and objects.
        plain("commondir: CRLF", |c| replace(&c.admin.join("commondir"), b"../..\r\n")),
        plain("commondir: no newline", |c| replace(&c.admin.join("commondir"), b"../..")),
        plain("commondir: trailing slash", |c| replace(&c.admin.join("commondir"), b"../../\n")),
        plain("commondir: absolute", |c| {
            replace(&c.admin.join("commondir"), format!("{}\n", c.common.display()).as_bytes())
        }),
        plain("commondir: NUL, then more", |c| replace(&c.admin.join("commondir"), b"../..\0/elsewhere\n")),
        plain("commondir: another repository", |c| {
            replace(&c.admin.join("commondir"), format!("{}\n", c.evil.display()).as_bytes())
        }),
        plain("commondir: a common dir the agent made", |c| {
            c.plant_fake_git_dirs();
            replace(&c.admin.join("commondir"), format!("{}/fake-common\n", c.wt.display()).as_bytes())
        }),
        Case {
            name: "commondir: through a link in the worktree",
            setup: |c| {
                c.plant_fake_git_dirs();
                symlink(&c.common, c.wt.join("clink")).unwrap();
                replace(&c.admin.join("commondir"), format!("{}/clink\n", c.wt.display()).as_bytes());
            },
            redirect: REDIRECT_CLINK,
        },
        plain("commondir: a FIFO", |c| fifo(&c.admin.join("commondir"))),
        plain("commondir: missing", |c| remove(&c.admin.join("commondir"))),
        plain("commondir: a directory", |c| {
            remove(&c.admin.join("commondir"));
            std::fs::create_dir(c.admin.join("commondir")).unwrap();
        }),
        plain("commondir: 10 MB", |c| replace(&c.admin.join("commondir"), &huge("../..\n"))),
        plain("commondir: a link to a file saying ../..", |c| {
            let file = c.t.root().join("commondir-elsewhere");
            std::fs::write(&file, "../..\n").unwrap();
            remove(&c.admin.join("commondir"));
            symlink(file, c.admin.join("commondir")).unwrap();
        }),
        // The admin dir's HEAD, index and lock, which every git in the worktree opens.
        plain("HEAD: CRLF", |c| replace(&c.admin.join("HEAD"), b"ref: refs/heads/wt/agent-1\r\n")),
        plain("HEAD: ref: without a space", |c| replace(&c.admin.join("HEAD"), b"ref:refs/heads/wt/agent-1\n")),
        plain("HEAD: another branch", |c| replace(&c.admin.join("HEAD"), b"ref: refs/heads/main\n")),
        plain("HEAD: a link", |c| {
            remove(&c.admin.join("HEAD"));
            symlink("refs/heads/wt/agent-1", c.admin.join("HEAD")).unwrap();
        }),
        plain("HEAD: a FIFO", |c| fifo(&c.admin.join("HEAD"))),
        plain("HEAD: 10 MB", |c| replace(&c.admin.join("HEAD"), &huge("ref: refs/heads/wt/agent-1\n"))),
        plain("index: a FIFO", |c| fifo(&c.admin.join("index"))),
        plain("locked: a FIFO", |c| fifo(&c.admin.join("locked"))),
    ]
}

/// The script the confined command runs: writes into every place git resolved (given, and
/// as git sees them inside the run): a git dir's pointers and `config.worktree`, a common
/// dir's config and hooks; then the case's redirect, then it waits for `GO`.
fn script(c: &Ctx, before: &Option<(PathBuf, PathBuf)>, redirect: &str) -> String {
    let quote = |p: &Path| format!("'{}'", p.display());
    let mut git_dirs = vec![quote(&c.admin)];
    let mut common_dirs = vec![quote(&c.common)];
    if let Some((g, cd)) = before {
        git_dirs.push(quote(g));
        common_dirs.push(quote(cd));
    }
    let planted = c.fsmonitor_config().replace('\n', "\\n").replace('\t', "\\t");
    format!(
        r#"view=$(timeout -s KILL 5 git rev-parse --path-format=absolute --absolute-git-dir --git-common-dir 2>/dev/null)
inside_git=$(echo "$view" | sed -n 1p); inside_common=$(echo "$view" | sed -n 2p)
for d in {git_dirs} $inside_git; do
  for f in commondir gitdir config.worktree; do
    [ -f "$d/$f" ] && printf '{planted}' >> "$d/$f" 2>/dev/null && echo "WROTE $d/$f"
  done
done
for d in {common_dirs} $inside_common; do
  [ -f "$d/config" ] && printf '{planted}' >> "$d/config" 2>/dev/null && echo "WROTE $d/config"
  mkdir -p "$d/hooks" 2>/dev/null && printf '#!/bin/sh\ntouch {canary}\n' > "$d/hooks/post-checkout" 2>/dev/null && echo "WROTE $d/hooks"
done
{redirect}
touch REDIRECTED
i=0; while [ ! -e GO ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
echo DONE"#,
        git_dirs = git_dirs.join(" "),
        common_dirs = common_dirs.join(" "),
        canary = c.canary.display(),
    )
}

/// The bytes of what git would run code from, in every place the case touches.
fn fingerprint(c: &Ctx) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut files = vec![c.common.join("config"), c.evil.join("config")];
    for dir in [&c.common, &c.evil] {
        files.extend(std::fs::read_dir(dir.join("hooks")).unwrap().flatten().map(|e| e.path()));
    }
    files.into_iter().map(|f| (f.clone(), std::fs::read(&f).ok())).collect()
}

#[test]
fn wherever_git_follows_a_worktrees_pointers_wt_protects_the_same_place_or_refuses() {
    let mut holes = Vec::new();
    for case in cases() {
        let c = Ctx::new();
        (case.setup)(&c);
        let before = c.git_view();
        let prints = fingerprint(&c);
        let started = Instant::now();
        let mut cmd = Command::new("timeout");
        cmd.args(["-s", "KILL", "40"]).arg(bin("wt-run"));
        cmd.args(["-w", "agent-1", "--confine", "--json", "--", "sh", "-c", &script(&c, &before, case.redirect)]);
        cmd.current_dir(&c.t.repo).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = c.t.isolate(&mut cmd).spawn().unwrap();
        // While the command runs (an agent in a pane), a person runs git in its worktree.
        let mut during = None;
        while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(30) {
            if c.wt.join("REDIRECTED").exists() {
                during = Some(c.git_view());
                c.git_timed(&c.wt, &["status", "--porcelain"]);
                std::fs::write(c.wt.join("GO"), "").unwrap();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("{}: git went to {before:?}\nstderr: {stderr}", case.name);
        if out.status.code() == Some(137) || took > Duration::from_secs(30) {
            holes.push(format!("{}: wt-run hung ({} s)", case.name, took.as_secs()));
            continue;
        }
        let rec: Value = stdout.lines().next().and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
        if let Some(err) = rec.get("error") {
            // Refused: one line naming the file and how to restore it, and nothing ran.
            let msg = err["message"].as_str().unwrap_or_default();
            assert_eq!(err["code"], "tampered-worktree", "{what}");
            assert!(!msg.contains('\n') && msg.contains(" (") && msg.contains("restored"), "{what}");
            assert_ne!(out.status.code(), Some(0), "{what}");
            assert!(rec.get("run").is_none(), "{what}");
            eprintln!("{}: refused: {msg}", case.name);
            continue;
        }
        let tail: Vec<&str> =
            rec["run"]["tail"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        assert!(tail.contains(&"DONE"), "the command did not run: {what}\nstdout: {stdout}");
        let mut problems = Vec::new();
        // Writes into the worktree are the agent's to make; what matters there is whether git
        // still goes there (below).
        let outside = |l: &&&str| ![&c.wt].iter().any(|w| l.starts_with(&format!("WROTE {}/", w.display())));
        problems.extend(tail.iter().filter(|l| l.starts_with("WROTE")).filter(outside).map(|l| l.to_string()));
        let protected = Some((c.admin.clone(), c.common.clone()));
        match &during {
            Some(view) if *view != protected => {
                problems.push(format!("while the command ran, git went to {view:?}, not where wt protected"))
            }
            Some(_) => {}
            None => problems.push("the command never got to its redirect".into()),
        }
        if fingerprint(&c) != prints {
            problems.push("config or hooks changed".into());
        }
        let after = c.git_view();
        if after != protected {
            problems.push(format!("after the run git goes to {after:?}, not where wt protected"));
        }
        let listed = c.git_timed(&c.t.repo, &["worktree", "list", "--porcelain"]).unwrap_or_default();
        let entry = listed.split("\n\n").find(|e| e.lines().next() == Some(&format!("worktree {}", c.wt.display())));
        if entry.is_none_or(|e| e.contains("prunable")) {
            problems.push(format!("git lists the worktree as {entry:?}"));
        }
        c.git_timed(&c.wt, &["status", "--porcelain"]);
        if c.canary.exists() {
            problems.push("git status ran a planted core.fsmonitor".into());
        }
        if problems.is_empty() {
            eprintln!("{}: confined, protected ({} ms)", case.name, took.as_millis());
        } else {
            holes.push(format!("{}: {problems:?}\n  {what}", case.name));
        }
    }
    assert!(holes.is_empty(), "{} hole(s):\n{}", holes.len(), holes.join("\n"));
}
