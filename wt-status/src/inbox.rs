//! `wt-status --inbox`: what needs the person across every repository they run wt in, oldest
//! first: one record per attention entry (a table on a terminal).
//!
//! ```json
//! {"v":1,"name":"agent-2","repo":"/home/me/app","path":"/home/me/app.wt/agent-2",
//!  "branch":"wt/agent-2","attention":{"reason":"waiting","since":1767225600000,
//!  "pane":"agent-2","detail":"Allow this tool to run `cargo test`?",
//!  "next":"wt-run pane answer agent-2 yes|no"}}
//! ```
//!
//! The repositories are those of the person's list (`ledger::repos`), and the one it runs in;
//! a listed repository that is gone, or holds no wt state any more, is skipped and dropped
//! from the list. One inside another's managed worktree (an agent's to write) is skipped.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use wt_common::git::repo::Repo;
use wt_common::ledger::LedgerFile;
use wt_common::record::output::{Column, Output};
use wt_common::Record;

use crate::attention;

/// Every entry, oldest first.
pub fn entries(here: Option<&Repo>) -> Vec<Record> {
    let mut roots: Vec<PathBuf> = here.map(|r| r.root().to_path_buf()).into_iter().collect();
    let listed = wt_common::ledger::repos::list();
    let mut gone = Vec::new();
    for root in listed {
        if roots.contains(&root) {
            continue;
        }
        match Repo::discover(&root).ok().filter(|r| r.root() == root && r.state_dir().is_dir()) {
            Some(_) => roots.push(root),
            None => gone.push(root),
        }
    }
    wt_common::ledger::repos::prune(&gone);
    let repos: Vec<Repo> = roots.iter().filter_map(|r| Repo::discover(r).ok()).collect();
    // A repository inside another's managed worktree is that worktree's agent's to write, wt
    // state and all (`git init` there and any wt tool lists it): what it says needs the person,
    // and the next step it gives (a command in a repository whose hooks the agent wrote), is
    // not shown, unless the inbox is asked for there.
    let worktrees: Vec<PathBuf> = repos
        .iter()
        .filter_map(|r| LedgerFile::new(&r.state_dir()).read().ok())
        .flat_map(|l| l.worktrees.values().map(|e| e.path.clone()).collect::<Vec<_>>())
        .collect();
    let mut all = Vec::new();
    for repo in repos {
        let is_here = here.is_some_and(|h| h.root() == repo.root());
        if !is_here && worktrees.iter().any(|w| repo.root().starts_with(w)) {
            tracing::debug!("{} is inside an agent's worktree; not in the inbox", repo.root().display());
            continue;
        }
        all.extend(of_repo(&repo));
    }
    all.sort_by_key(since);
    all
}

fn since(r: &Record) -> u64 {
    r.key("attention").and_then(|a| a["since"].as_u64()).unwrap_or(0)
}

/// The entries of one repository's managed worktrees.
fn of_repo(repo: &Repo) -> Vec<Record> {
    let ledger = LedgerFile::new(&repo.state_dir());
    let Ok(snapshot) = ledger.read() else { return Vec::new() };
    let mut quiet = Output::new(crate::TOOL, true, Vec::new());
    let recs = crate::overviews(repo, &snapshot, &[], true, false, &mut quiet, false);
    let mut out = Vec::new();
    for rec in recs.into_iter().filter(|r| !r.has_error()) {
        let overview = rec.key("overview").cloned().unwrap_or_default();
        for entry in overview["attention"].as_array().cloned().unwrap_or_default() {
            let mut e = Record::named(&rec.name);
            (e.repo, e.path, e.branch) = (Some(repo.root().to_path_buf()), rec.path.clone(), rec.branch.clone());
            e.set_key("attention", entry);
            out.push(e);
        }
    }
    out
}

/// What tells one entry from another: a new one is notified and streamed once.
pub fn key(r: &Record) -> String {
    let a = r.key("attention").cloned().unwrap_or_default();
    format!(
        "{}\0{}\0{}\0{}\0{}",
        r.repo.as_deref().unwrap_or(std::path::Path::new("")).display(),
        r.name,
        a["reason"].as_str().unwrap_or_default(),
        a["pane"].as_str().unwrap_or_default(),
        a["since"]
    )
}

/// The keys of `entries`.
pub fn keys(entries: &[Record]) -> BTreeSet<String> {
    entries.iter().map(key).collect()
}

fn attention_of(r: &Record) -> Value {
    r.key("attention").cloned().unwrap_or_default()
}

pub fn columns() -> Vec<Column> {
    vec![
        Column { title: "SINCE", value: |r| attention::ago(attention_of(r)["since"].as_u64().unwrap_or(0)) },
        Column {
            title: "REPO",
            value: |r| {
                r.repo
                    .as_deref()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            },
        },
        Column { title: "NAME", value: |r| r.name.clone() },
        Column { title: "REASON", value: |r| attention::text(&attention_of(r)) },
        Column { title: "NEXT", value: |r| attention_of(r)["next"].as_str().unwrap_or_default().to_string() },
    ]
}

/// A one-line notification of an entry: `app/agent-2 waiting (agent-2): Allow …?`.
pub fn notification(r: &Record) -> String {
    let repo = r.repo.as_deref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    format!("{}/{} {}", repo.unwrap_or_default(), r.name, attention::text(&attention_of(r)))
}
