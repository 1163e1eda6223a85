//! A worktree's best commit so far: `refs/wt/best/<name>` points at the commit whose tests passed
//! most among wt-watch's rounds (a committed, clean tree), and `<state>/best/<name>.json` says
//! how many passed there and which failed:
//!
//! ```json
//! {"commit":"<40 hex>","passed":41,"failing":["tests/test_parse.py::test_unicode"],"runner":"pytest"}
//! ```
//!
//! wt-watch keeps them (`wt-watch/src/best.rs`): the file is written first, then the ref moved
//! with `git update-ref` given its old value, so that a run killed between the two leaves a
//! file that names another commit than the ref, which is then not believed ([`read`] gives the
//! ref alone). The ref also keeps the commit from git's garbage collection after the agent's
//! branch moves on. `wt-create --remove` forgets both with the worktree ([`forget`]), and
//! `wt-create --purge` deletes every `refs/wt/` ref and the state directory.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::git;
use crate::git::repo::Repo;

/// The most a best file may hold.
const MAX_BYTES: u64 = 256 << 10;

/// The ref of worktree `name`'s best commit.
pub fn ref_name(name: &str) -> String {
    format!("refs/wt/best/{name}")
}

/// Where the best commit's counts are kept.
pub fn file(repo: &Repo, name: &str) -> PathBuf {
    repo.state_dir().join("best").join(format!("{name}.json"))
}

/// What the best commit's round counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kept {
    pub commit: String,
    pub passed: u64,
    #[serde(default)]
    pub failing: Vec<String>,
    pub runner: String,
}

/// The best so far as the repository holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    /// Where the ref points, if it exists.
    pub commit: Option<String>,
    /// The counts, when the file names the ref's commit.
    pub kept: Option<Kept>,
}

/// Reads the ref and the file. The file is wt's, in wt's state directory; it is still read with
/// a size cap, never through a link, and parsed strictly. One that does not match the ref is
/// left out.
pub fn read(repo: &Repo, name: &str) -> Stored {
    let commit = git::run(repo.git_dir(), ["rev-parse", "--verify", "-q", &format!("{}^{{commit}}", ref_name(name))])
        .ok()
        .filter(|c| !c.is_empty());
    let kept = crate::fs::read_untrusted(&file(repo, name), MAX_BYTES)
        .ok()
        .flatten()
        .and_then(|text| serde_json::from_str::<Kept>(&text).ok())
        .filter(|k| Some(&k.commit) == commit.as_ref());
    Stored { commit, kept }
}

/// Makes `kept` the best: the file, then the ref, moved only from `old` (`None`: it must not
/// exist yet). Fails when the ref moved meanwhile (another watch of the same worktree).
pub fn write(repo: &Repo, name: &str, kept: &Kept, old: Option<&str>) -> Result<(), crate::Error> {
    let path = file(repo, name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir.display(), e))?;
    }
    let json = serde_json::to_vec(kept).expect("counts serialize");
    crate::fs::write_atomic(&path, &json).map_err(|e| crate::Error::io(path.display(), e))?;
    git::run(
        repo.git_dir(),
        ["update-ref", "-m", "wt-watch: best so far", &ref_name(name), &kept.commit, old.unwrap_or("")],
    )?;
    Ok(())
}

/// Deletes worktree `name`'s best ref and file (with the worktree). Nothing there is no error.
pub fn forget(repo: &Repo, name: &str) {
    let r = ref_name(name);
    // Asked of git only when the ref files may hold it (a packed ref, or a format only git
    // reads): every create forgets its name's best, and a git process was a fifth of a claim.
    let known_absent = crate::git::refs::BranchReader::new(&repo.common_dir).and_then(|b| b.full_ref(&r)) == Some(None);
    if !known_absent && git::run(repo.git_dir(), ["rev-parse", "--verify", "-q", &r]).is_ok() {
        if let Err(e) = git::run(repo.git_dir(), ["update-ref", "-d", &r]) {
            tracing::warn!("cannot delete {r}: {}", e.message);
        }
    }
    let path = file(repo, name);
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_git::git;

    #[test]
    fn written_read_moved_from_its_old_value_only_and_forgotten() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().canonicalize().unwrap();
        git(&d, &["init", "-q", "-b", "main"]);
        git(&d, &["commit", "-q", "--allow-empty", "-m", "one"]);
        let one = git(&d, &["rev-parse", "HEAD"]);
        git(&d, &["commit", "-q", "--allow-empty", "-m", "two"]);
        let two = git(&d, &["rev-parse", "HEAD"]);
        let repo = Repo::discover(&d).unwrap();
        assert_eq!(read(&repo, "a"), Stored::default());
        let k1 = Kept { commit: one.clone(), passed: 2, failing: vec!["t1".into()], runner: "pytest".into() };
        write(&repo, "a", &k1, None).unwrap();
        assert_eq!(read(&repo, "a"), Stored { commit: Some(one.clone()), kept: Some(k1.clone()) });
        let k2 = Kept { commit: two.clone(), passed: 3, failing: vec![], runner: "pytest".into() };
        assert!(write(&repo, "a", &k2, None).is_err(), "created over an existing ref");
        // The file was written, the ref not moved: the file is not believed.
        assert_eq!(read(&repo, "a"), Stored { commit: Some(one.clone()), kept: None });
        write(&repo, "a", &k2, Some(&one)).unwrap();
        assert_eq!(read(&repo, "a").kept, Some(k2));
        forget(&repo, "a");
        assert_eq!(read(&repo, "a"), Stored::default());
        assert!(!file(&repo, "a").exists());
        forget(&repo, "a");
    }
}
