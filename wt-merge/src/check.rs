//! `--check`: every branch merged in memory against the target and against every other
//! branch, all in one `git merge-tree --stdin` process. Nothing is checked out; no index,
//! working tree or ref is touched (merge-tree only adds objects).

use std::io::Write;
use std::process::Stdio;

use serde_json::json;
use wt_common::{git, Error, Record};

/// The outcome of one merge: the conflicted paths (empty when clean).
pub type Conflicts = Vec<String>;

/// Runs the merges of `pairs` (commit ids) and returns their conflicts, in order.
pub fn merge_many(dir: &std::path::Path, pairs: &[(String, String)]) -> Result<Vec<Conflicts>, Error> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = git::command(dir);
    cmd.args(["merge-tree", "--stdin", "-z", "--name-only", "--no-messages"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::env("git-missing", format!("cannot run git: {e}")))?;
    let input: String = pairs.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().map_err(|e| Error::io("git merge-tree", e))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(Error::failed("git-failed", git::failure_message(&cmd, &out)));
    }
    parse(&String::from_utf8_lossy(&out.stdout), pairs.len())
}

/// `<1 clean|0 conflict>\0<tree>\0[<path>\0…]\0` per merge.
fn parse(text: &str, expected: usize) -> Result<Vec<Conflicts>, Error> {
    let mut fields = text.split('\0');
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        let status = fields.next().ok_or_else(|| Error::failed("git-failed", "git merge-tree ended early"))?;
        let _tree = fields.next();
        let mut paths = Vec::new();
        for f in fields.by_ref() {
            if f.is_empty() {
                break;
            }
            paths.push(f.to_string());
        }
        if status == "1" {
            paths.clear();
        }
        out.push(paths);
    }
    Ok(out)
}

/// The conflict matrix: for each record, its merge against the target (`status`,
/// `conflicts`) and the names of the other branches it conflicts with (`conflicts_with`).
pub fn matrix(dir: &std::path::Path, into: &str, target: &str, recs: &mut [(Record, String)]) -> Result<(), Error> {
    let n = recs.len();
    tracing::info!(
        "checking {n} branches against {into} and each other: {} merges in memory",
        n + n * n.saturating_sub(1) / 2
    );
    let mut pairs: Vec<(String, String)> = recs.iter().map(|(_, head)| (target.to_string(), head.clone())).collect();
    for i in 0..n {
        for j in i + 1..n {
            pairs.push((recs[i].1.clone(), recs[j].1.clone()));
        }
    }
    let results = merge_many(dir, &pairs)?;
    let mut with: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut k = n;
    for i in 0..n {
        for j in i + 1..n {
            if !results[k].is_empty() {
                with[i].push(recs[j].0.name.clone());
                with[j].push(recs[i].0.name.clone());
            }
            k += 1;
        }
    }
    for (i, (rec, _)) in recs.iter_mut().enumerate() {
        let status = if results[i].is_empty() { "would-merge" } else { "conflict" };
        rec.set_key(
            "merge",
            json!({"into": into, "status": status, "conflicts": results[i], "conflicts_with": with[i]}),
        );
    }
    Ok(())
}

/// Branches that bring nothing: `nothing-to-merge` when the branch has no commit of its own
/// (its head is still its base), `up-to-date` when its commits are all in the target already.
/// Either way the target would not change, so "would merge" would be a wrong answer.
pub fn mark_nothing_to_merge(dir: &std::path::Path, target: &str, recs: &mut [(Record, String)]) {
    for (rec, head) in recs.iter_mut() {
        if !crate::strategy::is_ancestor(dir, head, target) {
            continue;
        }
        let status = if rec.base_commit.as_deref() == Some(head.as_str()) { "nothing-to-merge" } else { "up-to-date" };
        if let Some(mut merge) = rec.key("merge").cloned() {
            merge["status"] = json!(status);
            rec.set_key("merge", merge);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_clean_and_conflicted_merges() {
        let text = ["1", "aaa", "", "0", "bbb", "f", "g/h", "", "1", "ccc", "", ""].join("\0");
        assert_eq!(super::parse(&text, 3).unwrap(), vec![vec![], vec!["f".to_string(), "g/h".to_string()], vec![]]);
    }
}
