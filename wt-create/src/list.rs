//! `--list`: the worktrees the tools manage (`--all-git`: every worktree git knows).

use wt_common::output::Output;
use wt_common::Error;

use crate::context::Context;

pub fn run(ctx: &Context, all_git: bool, out: &mut Output) -> Result<(), Error> {
    let worktrees = ctx.repo.worktrees()?;
    let ledger = ctx.ledger.read()?;
    let mut records = Vec::new();
    if all_git {
        for wt in worktrees.iter().filter(|w| !w.bare) {
            let name = match ledger.name_of_path(&wt.path) {
                Some(n) => n.to_string(),
                None => wt.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            };
            records.push(ctx.record(&name, wt, ledger.worktrees.get(&name)));
        }
        // Main first, as git lists it; the rest in a stable order (git's is readdir order).
        if records.len() > 1 {
            records[1..].sort_by_cached_key(|r| natural_key(&r.name));
        }
    } else {
        for (name, entry) in &ledger.worktrees {
            match worktrees.iter().find(|w| w.path == entry.path) {
                Some(wt) => records.push(ctx.record(name, wt, Some(entry))),
                None => tracing::warn!(
                    "{name}: {} no longer exists; `wt-create --remove {name}` forgets it",
                    entry.path.display()
                ),
            }
        }
        records.sort_by_cached_key(|r| natural_key(&r.name));
    }
    for rec in &records {
        out.emit(rec);
        if out.closed() {
            break;
        }
    }
    Ok(())
}

/// Sorts `agent-2` before `agent-10`.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = c.to_digit(10).unwrap_or(0) as u64;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(d as u64);
                chars.next();
            }
            key.push((std::mem::take(&mut text), n));
        } else {
            text.push(c);
        }
    }
    key.push((text, 0));
    key
}

#[cfg(test)]
mod tests {
    #[test]
    fn natural_order() {
        let mut v = vec!["agent-10", "agent-2", "b", "agent-1"];
        v.sort_by_key(|n| super::natural_key(n));
        assert_eq!(v, ["agent-1", "agent-2", "agent-10", "b"]);
    }
}
