//! `git2probe git2|files DIR`: prints each worktree of the repository at DIR as `path HEAD`,
//! read with libgit2 or with wt's registry reader; the same answer either way, so that the
//! benchmark times only how it is got.

use std::io::Write;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (how, dir) = (args[1].as_str(), Path::new(&args[2]));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match how {
        "git2" => {
            let repo = git2::Repository::open(dir).expect("a repository");
            let head = repo.head().ok().and_then(|h| h.target());
            // libgit2 gives the work dir with a trailing slash; git and wt without.
            let workdir = repo.workdir().expect("not bare").to_string_lossy();
            let workdir = workdir.trim_end_matches('/');
            writeln!(out, "{workdir} {}", head.map(|h| h.to_string()).unwrap_or_default()).unwrap();
            for name in repo.worktrees().expect("worktrees").iter().flatten() {
                let wt = repo.find_worktree(name).expect("a worktree");
                let head = git2::Repository::open_from_worktree(&wt)
                    .ok()
                    .and_then(|r| r.head().ok().and_then(|h| h.target()))
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                writeln!(out, "{} {head}", wt.path().display()).unwrap();
            }
        }
        "files" => {
            let repo = wt_common::git::repo::Repo::discover(dir).expect("a repository");
            for wt in repo.worktrees().expect("worktrees") {
                writeln!(out, "{} {}", wt.path.display(), wt.head.unwrap_or_default()).unwrap();
            }
        }
        _ => panic!("usage: git2probe git2|files DIR"),
    }
}
