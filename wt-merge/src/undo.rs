//! `--undo NAME`: the target goes back to where it was before NAME's merge, if nothing was
//! merged on top since; otherwise it refuses and says what is on top. A branch that landed in
//! a batch goes back with the whole batch (the target never pointed between its members, so no
//! commit in between was verified): the record names the others (`undone_with`).

use serde_json::json;
use wt_common::git::repo::Repo;
use wt_common::{git, Error, Record};

pub fn undo(repo: &Repo, into: &str, name: &str) -> Result<Record, Error> {
    let dir = repo.git_dir();
    let resolve = |r: &str| git::run(dir, ["rev-parse", "--verify", "-q", r]).ok().filter(|s| !s.is_empty());
    let (Some(backup), Some(merged)) =
        (resolve(&format!("refs/wt/backup/{name}")), resolve(&format!("refs/wt/merged/{name}")))
    else {
        return Err(Error::failed("no-merge", format!("there is no merge of '{name}' to undo")));
    };
    let current = resolve(&format!("refs/heads/{into}")).unwrap_or_default();
    // Back at the backup already: an undo killed before it deleted its refs (the journal has
    // brought the checkout along); what is left is to forget the merge.
    if current != backup {
        move_back(repo, into, name, &current, &merged, &backup)?;
    }
    // The branches that landed in one batch with it went to the same commit: they go back too.
    let listed = git::run(dir, ["for-each-ref", "--format=%(refname:lstrip=3) %(objectname)", "refs/wt/merged/"])
        .unwrap_or_default();
    let with: Vec<String> = listed
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(other, commit)| *other != name && *commit == merged)
        .map(|(other, _)| other.to_string())
        .collect();
    for n in with.iter().map(String::as_str).chain([name]) {
        for r in ["merged", "backup"] {
            let _ = git::run(dir, ["update-ref", "-d", &format!("refs/wt/{r}/{n}")]);
        }
    }
    let mut rec = Record::named(name);
    rec.repo = Some(repo.root().to_path_buf());
    rec.branch = branch_of(repo, name);
    let mut merge = json!({"into": into, "status": "undone", "commit": backup, "undone": merged});
    if !with.is_empty() {
        merge["undone_with"] = json!(with);
    }
    rec.set_key("merge", merge);
    Ok(rec)
}

/// Moves `into` from `merged` (where it is: `current`) back to `backup`, with the checkout's
/// files; refuses when something was merged on top or the checkout has changes.
fn move_back(repo: &Repo, into: &str, name: &str, current: &str, merged: &str, backup: &str) -> Result<(), Error> {
    let dir = repo.git_dir();
    if current != merged {
        let on_top = git::run(dir, ["log", "--format=%h %s", &format!("{merged}..{current}")]).unwrap_or_default();
        let list: Vec<&str> = on_top.lines().collect();
        return Err(Error::failed(
            "merged-on-top",
            format!(
                "{into} has moved since '{name}' was merged ({} commit(s) on top: {}); undo or revert those first",
                list.len(),
                list.join("; ")
            ),
        ));
    }
    let checked_out = crate::checkout::of(repo, into)?;
    if let Some(wt) = &checked_out {
        let changed = crate::checkout::changed_paths(repo, wt)?;
        if !changed.is_empty() {
            return Err(Error::failed(
                "target-dirty",
                format!(
                    "{into} is checked out at {} with {}; commit or stash them first",
                    wt.display(),
                    wt_common::git::checkout_state::changes_named(&changed)
                ),
            ));
        }
    }
    // Journaled like a merge: killed between the ref and the files, the next wt-merge
    // finishes bringing the checkout along (`journal::roll_forward`).
    if let Some(wt) = &checked_out {
        crate::journal::write(repo, wt, merged, backup)?;
    }
    let moved = git::run(
        dir,
        ["update-ref", "-m", &format!("wt-merge: undo {name}"), &format!("refs/heads/{into}"), backup, merged],
    );
    if moved.is_err() {
        crate::journal::clear(repo);
        return Err(Error::failed("target-moved", format!("{into} moved while undoing; try again")));
    }
    wt_common::proc::failpoint::hit("undo-moved");
    if let Some(wt) = checked_out {
        crate::checkout::follow(repo, &wt, merged, backup)?;
        crate::journal::clear(repo);
    }
    Ok(())
}

/// The branch of the worktree whose merge was undone: the ledger's while it is managed, else
/// `wt/<name>` if that branch is still there (`--cleanup` may have removed both).
fn branch_of(repo: &Repo, name: &str) -> Option<String> {
    let ledger = wt_common::ledger::LedgerFile::new(&repo.state_dir()).read().ok();
    let managed = ledger.and_then(|l| l.worktrees.get(name).and_then(|e| e.branch.clone()));
    managed.or_else(|| {
        let conventional = format!("wt/{name}");
        let exists = git::run(repo.git_dir(), ["rev-parse", "--verify", "-q", &format!("refs/heads/{conventional}")]);
        exists.is_ok().then_some(conventional)
    })
}
