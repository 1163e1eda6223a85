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
    Ok(merges(dir, pairs)?.into_iter().map(|(_, conflicts)| conflicts).collect())
}

/// Runs the merges of `pairs` and returns each one's tree and conflicts, in order.
fn merges(dir: &std::path::Path, pairs: &[(String, String)]) -> Result<Vec<(String, Conflicts)>, Error> {
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
fn parse(text: &str, expected: usize) -> Result<Vec<(String, Conflicts)>, Error> {
    let mut fields = text.split('\0');
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        let status = fields.next().ok_or_else(|| Error::failed("git-failed", "git merge-tree ended early"))?;
        let tree = fields.next().unwrap_or_default().to_string();
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
        out.push((tree, paths));
    }
    Ok(out)
}

/// The conflict matrix: for each record, its merge against the target (`status`,
/// `conflicts`) and the names of the other branches it conflicts with (`conflicts_with`).
/// Returns, for each record, whether merging it leaves the target's tree as it is (only such
/// a branch can be in the target already; see `mark_nothing_to_merge`).
pub fn matrix(
    dir: &std::path::Path,
    into: &str,
    target: &str,
    recs: &mut [(Record, String)],
) -> Result<Vec<bool>, Error> {
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
    // The target merged with itself, last: its own tree, to compare the others' with.
    pairs.push((target.to_string(), target.to_string()));
    let merged = merges(dir, &pairs)?;
    let target_tree = merged.last().map(|(tree, _)| tree.clone()).unwrap_or_default();
    let unchanged: Vec<bool> = merged[..n].iter().map(|(tree, c)| c.is_empty() && *tree == target_tree).collect();
    let results: Vec<Conflicts> = merged.into_iter().map(|(_, c)| c).collect();
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
    Ok(unchanged)
}

/// Branches that bring nothing: `nothing-to-merge` when the branch has no commit of its own
/// (its head is still its base), `up-to-date` when its commits are all in the target already.
/// Either way the target would not change, so "would merge" would be a wrong answer. Only the
/// branches whose merge left the target's tree as it was (`unchanged`, from `matrix`) can be
/// in the target, so only those cost a git process to ask.
pub fn mark_nothing_to_merge(dir: &std::path::Path, target: &str, recs: &mut [(Record, String)], unchanged: &[bool]) {
    for ((rec, head), _) in recs.iter_mut().zip(unchanged).filter(|(_, u)| **u) {
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
        let got: Vec<_> = super::parse(&text, 3).unwrap();
        let trees: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
        let conflicts: Vec<_> = got.iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(trees, ["aaa", "bbb", "ccc"]);
        assert_eq!(conflicts, vec![vec![], vec!["f".to_string(), "g/h".to_string()], vec![]]);
    }
}
