//! `--store-gc`: removes store entries that nothing links to any more (their link count is 1:
//! only the store's own name is left), and temp files of killed shares. It holds the store lock
//! exclusively, so no share is between adding an entry and linking it.

use std::fs;
use std::os::unix::fs::MetadataExt;

use wt_common::git::repo::Repo;
use wt_common::Error;

use super::status::human;
use super::store::Store;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub files: u64,
    pub bytes: u64,
    pub kept: u64,
}

pub fn run(repo: &Repo) -> Result<Collected, Error> {
    let store = Store::open(&repo.state_dir(), true)?;
    let mut done = Collected::default();
    let files = store.files_dir();
    let io = |e: std::io::Error| Error::io(files.display(), e);
    for fan in fs::read_dir(&files).map_err(io)?.flatten() {
        let Ok(entries) = fs::read_dir(fan.path()) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() && meta.nlink() == 1 {
                fs::remove_file(entry.path()).map_err(io)?;
                done.files += 1;
                done.bytes += meta.blocks() * 512;
            } else {
                done.kept += 1;
            }
        }
        let _ = fs::remove_dir(fan.path()); // only when empty
    }
    for entry in fs::read_dir(store.tmp_dir()).map_err(io)?.flatten() {
        let _ = wt_common::fs::remove_any(&entry.path());
    }
    eprintln!(
        "wt-create: store: removed {} files ({}) that no worktree links to; {} kept",
        done.files,
        human(done.bytes),
        done.kept
    );
    Ok(done)
}
