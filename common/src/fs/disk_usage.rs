//! What worktrees really cost on disk: the blocks `du` would count for them, each file once.
//!
//! Every tree is walked without following a link and without opening anything but directories
//! (`openat` with `O_NOFOLLOW | O_DIRECTORY` relative to the directory already open, then
//! `fstatat` without following), so a symbolic link planted in a worktree is counted as the link
//! it is and a FIFO is a name with no blocks: neither is followed nor read. Sizes are allocated
//! blocks (`st_blocks * 512`), as `du` gives them, directories included.
//!
//! A file with several names (hard links: the share store's entries, the main worktree's own
//! `node_modules` files shared into worktrees) is counted once, by the first owner in this
//! order: the main worktree (whose part is left out: it is not wt's), the share store, then the
//! worktrees in the order given. So a worktree's shared `node_modules` costs it nothing beyond
//! its directories, and the store carries what is not the main worktree's. Reflinked files are
//! separate inodes sharing blocks; neither this count nor `du` can see that, so with reflinks
//! the real use is lower than shown.
//!
//! Each worktree's cost is split into its checkout and its build directories: directories
//! named in a list (`target`, `node_modules`, …) found by the walk, which the caller confirms
//! with git (`git::build_dirs`) and moves back to the checkout when git does not ignore them.
//! Inside a build directory no other is looked for.
//!
//! The trees are walked in parallel (one tree per task, as many threads as cores), each
//! without any lock; the once-only count is settled afterwards, in the stated order.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};

/// A file's identity: (device, inode).
pub type Inode = (u64, u64);

const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC).union(OFlags::NONBLOCK);

/// A build directory found in a worktree, and what the worktree pays for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildDir {
    /// Relative to the worktree.
    pub rel: PathBuf,
    /// Blocks this worktree pays for (files it shares with the store, the main worktree or an
    /// earlier worktree cost it nothing).
    pub bytes: u64,
    /// Blocks of everything in it, shared or not: what a full copy would take.
    pub full: u64,
}

/// What one worktree costs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cost {
    /// Everything that is not a build directory.
    pub checkout: u64,
    pub build_dirs: Vec<BuildDir>,
}

impl Cost {
    pub fn build(&self) -> u64 {
        self.build_dirs.iter().map(|d| d.bytes).sum()
    }

    pub fn total(&self) -> u64 {
        self.checkout + self.build()
    }

    /// Keeps only the build directories `keep` accepts; the others' blocks go to the checkout
    /// (a directory git does not ignore, or with a tracked file in it, is not rebuildable).
    pub fn confirm(&mut self, keep: impl Fn(&Path) -> bool) {
        let (kept, demoted): (Vec<BuildDir>, Vec<BuildDir>) =
            std::mem::take(&mut self.build_dirs).into_iter().partition(|d| keep(&d.rel));
        self.checkout += demoted.iter().map(|d| d.bytes).sum::<u64>();
        self.build_dirs = kept;
    }
}

/// The disk of a repository's worktrees, beyond what its main worktree holds.
#[derive(Debug, Clone, Default)]
pub struct Accounting {
    /// Per worktree, in the order given.
    pub worktrees: Vec<Cost>,
    /// What the share store holds beyond the main worktree's files.
    pub store: u64,
}

impl Accounting {
    /// Everything wt's worktrees and store take: what `du` over them, less the main
    /// worktree's part, would say.
    pub fn total(&self) -> u64 {
        self.store + self.worktrees.iter().map(Cost::total).sum::<u64>()
    }
}

/// What to walk.
#[derive(Debug, Clone, Default)]
pub struct Trees<'a> {
    /// Directories of the main worktree whose files may be linked into worktrees (the shared
    /// directories): their files cost the worktrees nothing. Not counted themselves.
    pub main: Vec<PathBuf>,
    /// The share store, when there is one.
    pub store: Option<PathBuf>,
    /// The worktrees, in the order they pay for what they share with one another.
    pub worktrees: Vec<PathBuf>,
    /// Names of build directories (`target`, `node_modules`, …).
    pub build_names: &'a [String],
}

/// Walks every tree and settles who pays for what (see the module's comment).
pub fn account(trees: &Trees) -> Accounting {
    let names: HashSet<&str> = trees.build_names.iter().map(String::as_str).collect();
    let mut jobs: Vec<(PathBuf, bool)> = trees.main.iter().map(|p| (p.clone(), false)).collect();
    let main_count = jobs.len();
    jobs.extend(trees.store.iter().map(|p| (p.clone(), false)));
    let store_count = jobs.len() - main_count;
    jobs.extend(trees.worktrees.iter().map(|p| (p.clone(), true)));
    let walked = parallel(&jobs, |(root, look)| walk(root, if *look { Some(&names) } else { None }));
    let mut walked = walked.into_iter();

    let mut main: HashSet<Inode> = HashSet::new();
    for w in walked.by_ref().take(main_count) {
        main.extend(w.linked.iter().map(|l| l.inode));
    }
    let mut paid: HashSet<Inode> = HashSet::new();
    let mut settle = |w: &Walked| -> Vec<u64> {
        // Per part (0: checkout, 1+: build dir), what this tree pays.
        let mut parts: Vec<u64> = std::iter::once(w.own_checkout).chain(w.candidates.iter().map(|c| c.1)).collect();
        for l in &w.linked {
            if !main.contains(&l.inode) && paid.insert(l.inode) {
                parts[l.part] += l.blocks;
            }
        }
        parts
    };
    let mut acc = Accounting::default();
    for w in walked.by_ref().take(store_count) {
        acc.store += settle(&w).iter().sum::<u64>();
    }
    for w in walked {
        let parts = settle(&w);
        acc.worktrees.push(Cost {
            checkout: parts[0],
            build_dirs: w
                .candidates
                .iter()
                .zip(&parts[1..])
                .map(|((rel, _, full), bytes)| BuildDir { rel: rel.clone(), bytes: *bytes, full: *full })
                .collect(),
        });
    }
    acc
}

/// The blocks under `root` (itself included), each inode once, links not followed: `du -s`.
pub fn du(root: &Path) -> u64 {
    let w = walk(root, None);
    let mut seen = HashSet::new();
    w.own_checkout + w.linked.iter().filter(|l| seen.insert(l.inode)).map(|l| l.blocks).sum::<u64>()
}

/// A file with more than one name, to be paid for once.
#[derive(Debug)]
struct Linked {
    inode: Inode,
    blocks: u64,
    /// 0: the checkout; i: the build directory `candidates[i - 1]`.
    part: usize,
}

#[derive(Debug, Default)]
struct Walked {
    /// Blocks of the checkout's single-named files and of its directories.
    own_checkout: u64,
    /// Build directories found: (relative path, single-named blocks, all blocks).
    candidates: Vec<(PathBuf, u64, u64)>,
    linked: Vec<Linked>,
}

fn walk(root: &Path, build_names: Option<&HashSet<&str>>) -> Walked {
    let mut w = Walked::default();
    let Ok(st) = rustix::fs::statat(CWD, root, AtFlags::SYMLINK_NOFOLLOW) else { return w };
    w.own_checkout += blocks(&st);
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return w;
    }
    let Ok(fd) = rustix::fs::openat(CWD, root, DIR_FLAGS, Mode::empty()) else { return w };
    // Directories still to read: each is opened when its turn comes, relative to its parent,
    // which stays open (shared) only while a child of it waits: a directory of 10,000
    // subdirectories holds one descriptor, not 10,000.
    struct Pending {
        parent: Rc<OwnedFd>,
        name: std::ffi::CString,
        rel: PathBuf,
        part: usize,
    }
    let mut stack: Vec<Pending> = Vec::new();
    let mut current = Some((Rc::new(fd), PathBuf::new(), 0usize));
    loop {
        let (dir, rel, part) = match current.take() {
            Some(c) => c,
            None => {
                let Some(p) = stack.pop() else { break };
                match rustix::fs::openat(&*p.parent, p.name.as_c_str(), DIR_FLAGS, Mode::empty()) {
                    Ok(fd) => (Rc::new(fd), p.rel, p.part),
                    Err(_) => continue,
                }
            }
        };
        let Ok(entries) = rustix::fs::Dir::read_from(&*dir) else { continue };
        for entry in entries.flatten() {
            let cname = entry.file_name();
            let bytes = cname.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let Ok(st) = rustix::fs::statat(&*dir, cname, AtFlags::SYMLINK_NOFOLLOW) else { continue };
            let size = blocks(&st);
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            let name = std::ffi::OsStr::from_bytes(bytes);
            let mut into = part;
            if is_dir && part == 0 && build_names.is_some_and(|n| name.to_str().is_some_and(|s| n.contains(s))) {
                w.candidates.push((rel.join(name), 0, 0));
                into = w.candidates.len();
            }
            if into > 0 {
                w.candidates[into - 1].2 += size;
            }
            if !is_dir && st.st_nlink > 1 {
                w.linked.push(Linked { inode: (st.st_dev, st.st_ino), blocks: size, part: into });
            } else if into == 0 {
                w.own_checkout += size;
            } else {
                w.candidates[into - 1].1 += size;
            }
            if is_dir {
                stack.push(Pending {
                    parent: Rc::clone(&dir),
                    name: cname.to_owned(),
                    rel: rel.join(name),
                    part: into,
                });
            }
        }
    }
    w
}

fn blocks(st: &rustix::fs::Stat) -> u64 {
    (st.st_blocks as u64) * 512
}

/// `f` over every item, on as many threads as cores, results in the items' order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = crate::proc::parallel::cores().clamp(1, 16).min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().expect("results")[i] = Some(r);
            });
        }
    });
    results.into_inner().expect("results").into_iter().map(|r| r.expect("every item walked")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names() -> Vec<String> {
        vec!["target".into(), "node_modules".into()]
    }

    #[test]
    fn a_hard_link_is_paid_once_by_the_first_owner_and_links_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, store, main) = (d.path().join("a"), d.path().join("b"), d.path().join("store"), d.path().join("m"));
        for p in [&a, &b, &store, &main] {
            fs::create_dir_all(p.join("target")).unwrap();
        }
        fs::write(store.join("blob"), vec![1u8; 64 * 1024]).unwrap();
        fs::hard_link(store.join("blob"), a.join("target/blob")).unwrap();
        fs::hard_link(store.join("blob"), b.join("target/blob")).unwrap();
        fs::write(a.join("target/own"), vec![2u8; 32 * 1024]).unwrap();
        fs::write(main.join("mine"), vec![3u8; 32 * 1024]).unwrap();
        fs::hard_link(main.join("mine"), b.join("mine")).unwrap();
        std::os::unix::fs::symlink("/", a.join("root-link")).unwrap();
        nix::unistd::mkfifo(&a.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let names = names();
        let acc = account(&Trees {
            main: vec![main.clone()],
            store: Some(store.clone()),
            worktrees: vec![a.clone(), b.clone()],
            build_names: &names,
        });
        let (ca, cb) = (&acc.worktrees[0], &acc.worktrees[1]);
        assert_eq!(ca.build_dirs.len(), 1);
        assert!(ca.build_dirs[0].bytes >= 32 * 1024 && ca.build_dirs[0].bytes < 64 * 1024, "{ca:?}");
        assert!(ca.build_dirs[0].full >= 96 * 1024, "{ca:?}");
        assert!(cb.build() < 16 * 1024, "b's target is all shared: {cb:?}");
        assert!(cb.checkout < 16 * 1024, "b's `mine` is the main worktree's: {cb:?}");
        assert!(acc.store >= 64 * 1024, "{acc:?}");
    }

    #[test]
    fn confirm_moves_a_rejected_build_dir_to_the_checkout() {
        let mut c = Cost { checkout: 10, build_dirs: vec![BuildDir { rel: "target".into(), bytes: 5, full: 5 }] };
        c.confirm(|_| false);
        assert_eq!((c.checkout, c.build()), (15, 0));
    }
}
