//! `--disk`: what each worktree really costs on disk (`wt_common::git::worktree_cost`: a file
//! shared with the share store, the main worktree or another worktree counted once), added to
//! its record as `disk`, and the total of all of wt's worktrees on stderr. Only when asked: it
//! walks every file of every worktree (about a second for a million files), which the board,
//! redrawn every 2 s, should not pay by default.

use serde_json::Value;
use wt_common::git::repo::Repo;
use wt_common::git::worktree_cost;
use wt_common::ledger::Ledger;
use wt_common::record::size::human;
use wt_common::{Error, Record};

/// `[create] build_dirs` and `root`, the only keys of wt-create's section this tool reads.
#[derive(Debug, Default, serde::Deserialize)]
struct CreateSection {
    build_dirs: Option<Vec<String>>,
    root: Option<std::path::PathBuf>,
}

pub fn add(repo: &Repo, ledger: &Ledger, recs: &mut [Record]) -> Result<(), Error> {
    let section: CreateSection = wt_common::config::section(repo.main_worktree.as_deref(), "create")?;
    let names = wt_common::git::build_dirs::names(section.build_dirs.as_deref().unwrap_or_default())?;
    // The worktree root as wt-create finds it (without its `--root`): its trash is counted.
    let root = match &section.root {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => repo.root().join(dir),
        None => repo.default_worktree_root(),
    };
    let measured = worktree_cost::measure(repo, ledger, &names, Some(&root))?;
    for rec in recs.iter_mut() {
        if let Some(w) =
            measured.worktrees.iter().find(|w| w.name == rec.name && rec.path.as_ref() == Some(&w.worktree.path))
        {
            rec.set_key("disk", worktree_cost::disk_value(w));
        }
    }
    let builds: u64 = measured.worktrees.iter().map(|w| w.cost.build()).sum();
    eprintln!(
        "wt-status: all {} worktrees of wt: {} on disk beyond the main worktree's ({} of it build dirs, {} the share store{})",
        measured.worktrees.len(),
        human(measured.total()),
        human(builds),
        human(measured.store),
        measured.others_text()
    );
    Ok(())
}

/// `1.2 GiB (build 1.1 GiB)`.
pub fn text(disk: &Value) -> String {
    let total = disk["bytes"].as_u64().unwrap_or_default();
    match disk["build"].as_u64().unwrap_or_default() {
        0 => human(total),
        b => format!("{} (build {})", human(total), human(b)),
    }
}
