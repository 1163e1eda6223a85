//! Taking turns at the merge queue. Several `wt-watch | wt-merge` pipelines may run on one
//! repository; each wt-merge holds the queue lock (`<state>/merge.lock`) only while it merges a
//! batch, never while it waits for records, and the wt-merges that want it take it in the order
//! they asked (first come, first served; one that merged and wants it again queues behind those
//! already waiting, so none starves).
//!
//! Every running wt-merge is a *member*: it holds an exclusive `flock` on
//! `<state>/merge-queue/<pid>` for its whole life (so it is alive exactly while that lock is
//! held, whatever became of the pid), and says in `<state>/merge-queue/<pid>.json` whether it
//! waits for its turn (and since when) or which worktrees it merges. A member killed leaves its
//! files unlocked; whoever looks next removes them. `wt-create --purge` refuses while any member
//! is alive.
//!
//! A member waits for as long as the lock's holder is a live member merging: its merge is
//! bounded by the verification's own timeout. A lock held by anything else (a purge, a wt-merge
//! of an older version) is waited for up to `WT_LOCK_TIMEOUT`, as every wt lock is.
//!
//! A member stopped while it waits (Ctrl-Z, SIGSTOP) cannot take its turn: the others wait
//! behind it for [`STOPPED_GRACE`], saying so, and then pass it. Resumed, it is in line again
//! where it was.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use wt_common::git::repo::Repo;
use wt_common::proc::lock::{default_timeout, FileLock};
use wt_common::Error;

/// How long a waiter stopped ahead in line keeps its place.
pub const STOPPED_GRACE: Duration = Duration::from_secs(3);

/// The directory of the members' files, under wt's state directory.
pub const DIR: &str = "merge-queue";

/// What a member says about itself (`<state>/merge-queue/<pid>.json`).
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Note {
    pub pid: u32,
    /// When it asked for its turn (nanoseconds since the epoch); absent when it does not wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since_ns: Option<u64>,
    /// It holds the queue lock.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub holding: bool,
    /// The worktrees it merges, holding the queue lock (none while it finishes what a killed
    /// wt-merge left, at its start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merging: Vec<String>,
}

/// This wt-merge's membership of the queue, for its whole run.
#[derive(Debug)]
pub struct Member {
    dir: PathBuf,
    lock_path: PathBuf,
    pid: u32,
    _alive: FileLock,
}

/// A turn at the queue: the queue lock, held until dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    member: &'a Member,
    _lock: FileLock,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // Said before the lock goes: a waiter never sees the lock free while this still merges.
        self.member.say(&Note { pid: self.member.pid, ..Note::default() });
    }
}

impl Member {
    /// Registers this process as a running wt-merge of `repo`.
    pub fn join(repo: &Repo) -> Result<Member, Error> {
        let state = repo.ensure_state_dir()?;
        let dir = state.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let pid = std::process::id();
        // Free unless a killed wt-merge had this pid and a sweeper looks at it this moment.
        let alive = FileLock::acquire(&dir.join(pid.to_string()), default_timeout())?;
        let member = Member { dir, lock_path: state.join("merge.lock"), pid, _alive: alive };
        member.say(&Note { pid, ..Note::default() });
        Ok(member)
    }

    fn say(&self, note: &Note) {
        let bytes = serde_json::to_vec(note).expect("a note serializes");
        if let Err(e) = wt_common::fs::write_replace(&note_path(&self.dir, self.pid), &bytes) {
            tracing::warn!("cannot write this wt-merge's note in {}: {e}", self.dir.display());
        }
    }

    /// Waits for this member's turn and takes the queue lock, to merge `names`. Says on stderr
    /// whom it waits for whenever that changes. Gives up when `interrupted` holds a signal
    /// (Ctrl-C while it waits: nothing was started).
    pub fn take_turn(&self, names: &[&str], interrupted: Option<&OnceLock<i32>>) -> Result<Turn<'_>, Error> {
        let since = now_ns();
        self.say(&Note { pid: self.pid, waiting_since_ns: Some(since), ..Note::default() });
        let mut said = String::new();
        // Since when the lock is held by something that is not a member merging.
        let mut unknown_since: Option<Instant> = None;
        let mut pause = Duration::from_millis(1);
        let mut stopped = Stopped::default();
        loop {
            let others = others(&self.dir, self.pid);
            let in_line: Vec<&Note> =
                others.iter().filter(|n| n.waiting_since_ns.is_some_and(|w| (w, n.pid) < (since, self.pid))).collect();
            stopped.look(&in_line);
            let ahead: Vec<&Note> = in_line.into_iter().filter(|n| !stopped.passed(n.pid)).collect();
            if ahead.is_empty() {
                if let Some(lock) = FileLock::try_acquire(&self.lock_path)? {
                    let merging = names.iter().map(|n| n.to_string()).collect();
                    self.say(&Note { pid: self.pid, waiting_since_ns: None, holding: true, merging });
                    return Ok(Turn { member: self, _lock: lock });
                }
            }
            let holder = others.iter().find(|n| n.holding);
            let whom = match holder {
                Some(h) if h.merging.is_empty() => format!("wt-merge pid {} finishing what a killed one left", h.pid),
                Some(h) => format!("wt-merge pid {} merging {}", h.pid, h.merging.join(", ")),
                None => format!("whoever holds {}", self.lock_path.display()),
            };
            let first_stopped = ahead.iter().find(|n| stopped.is_stopped(n.pid));
            let line = match (first_stopped, ahead.len()) {
                (Some(n), _) => format!(
                    "waiting behind a stopped wt-merge (pid {0}) for the merge queue: it keeps its place for {1}s stopped (resume it: kill -CONT {0})",
                    n.pid,
                    STOPPED_GRACE.as_secs()
                ),
                (None, 0) => format!("waiting for the merge queue: {whom}"),
                (None, n) => format!("waiting for the merge queue: {whom}; {n} wt-merge(s) ahead in line"),
            };
            if line != said {
                match names.is_empty() {
                    true => eprintln!("wt-merge: {line}"),
                    false => eprintln!("wt-merge: {}: {line}", names.join(", ")),
                }
                said = line;
            }
            // A member merging is waited for as long as it lives; anything else for the timeout.
            match (holder, unknown_since) {
                (Some(_), _) => unknown_since = None,
                (None, None) => unknown_since = Some(Instant::now()),
                (None, Some(t)) if t.elapsed() >= default_timeout() && ahead.is_empty() => {
                    self.say(&Note { pid: self.pid, ..Note::default() });
                    return Err(Error::env(
                        "lock-timeout",
                        format!(
                            "timed out after {:.1}s waiting for the lock {} (held by a process that is not a wt-merge merging; wait for it, or raise WT_LOCK_TIMEOUT)",
                            default_timeout().as_secs_f64(),
                            self.lock_path.display()
                        ),
                    ));
                }
                (None, Some(_)) => {}
            }
            if let Some(sig) = interrupted.and_then(OnceLock::get) {
                self.say(&Note { pid: self.pid, ..Note::default() });
                return Err(Error::failed(
                    "interrupted",
                    format!("not merged: wt-merge was interrupted (signal {sig}) while it waited for the merge queue"),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    }
}

/// The waiters ahead in line that are stopped, and since when this one has seen them so.
#[derive(Debug, Default)]
struct Stopped(std::collections::HashMap<u32, Instant>);

impl Stopped {
    /// Looks at the waiters ahead: one seen stopped for the first time starts its grace, one
    /// that runs again loses it.
    fn look(&mut self, ahead: &[&Note]) {
        let now: Vec<u32> =
            ahead.iter().map(|n| n.pid).filter(|p| wt_common::proc::process::is_stopped(*p as i32)).collect();
        self.0.retain(|pid, _| now.contains(pid));
        for pid in now {
            self.0.entry(pid).or_insert_with(Instant::now);
        }
    }

    fn is_stopped(&self, pid: u32) -> bool {
        self.0.contains_key(&pid)
    }

    /// Stopped for longer than its grace: passed.
    fn passed(&self, pid: u32) -> bool {
        self.0.get(&pid).is_some_and(|since| since.elapsed() >= STOPPED_GRACE)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // The files of members that died meanwhile go too: one killed as this one took its
        // turn may still have held its member lock while its queue lock was already released
        // (a dying process closes its descriptors one by one), and was passed over as alive.
        let _ = others(&self.dir, self.pid);
        let _ = std::fs::remove_file(note_path(&self.dir, self.pid));
        let _ = std::fs::remove_file(self.dir.join(self.pid.to_string()));
    }
}

fn note_path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("{pid}.json"))
}

fn now_ns() -> u64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

/// The live members of the queue in `<state>/merge-queue`, but `me`, with what they say; the
/// files of dead ones are removed on the way.
fn others(dir: &Path, me: u32) -> Vec<Note> {
    let mut notes = Vec::new();
    for pid in member_pids(dir).into_iter().filter(|p| *p != me) {
        match FileLock::try_existing(&dir.join(pid.to_string())) {
            // Nobody holds it: a wt-merge killed. Its note goes while its lock is held here,
            // so that a new wt-merge with its pid never loses the note it writes.
            Ok(Some(mut dead)) => {
                let _ = std::fs::remove_file(note_path(dir, pid));
                dead.remove_when_released();
            }
            Ok(None) => {
                let text = wt_common::fs::read_small(&note_path(dir, pid)).text();
                let note = text.and_then(|t| serde_json::from_str::<Note>(&t).ok()).filter(|n| n.pid == pid);
                notes.push(note.unwrap_or(Note { pid, ..Note::default() }));
            }
            Err(e) => tracing::debug!("member {pid}: {}", e.message),
        }
    }
    notes
}

/// The pids of the members' lock files in `dir` (names that are a number).
fn member_pids(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())).collect()
}
