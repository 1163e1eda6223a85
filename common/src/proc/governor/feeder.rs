//! The feeder: one thread per process keeps every lease's FIFO stocked (see `lease`), asleep
//! until something happens. It waits on one epoll set: an inotify watch on each FIFO (a read
//! from it raises `IN_ACCESS`, a write `IN_MODIFY`, an open `IN_OPEN`, a last close
//! `IN_CLOSE_*`), each lease's
//! connection to the governor, and an eventfd that brings new leases and ends old ones. Its
//! only timer is a spare's grace second, and only while others' demand waits at the governor.
//! So a process with many idle leases (the pane supervisor) costs one thread and no wakeups.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use serde_json::{json, Value};

use crate::Error;

/// How long a spare may sit untaken while others' demand waits before it goes back.
const SPARE_YIELD: Duration = Duration::from_secs(1);
/// How long after a close a pane's lease looks whether anyone holds its FIFO open (closes of
/// a build's many compilers in a row cost one look).
const CLOSE_LOOK: Duration = Duration::from_millis(200);
/// How often an unwatched lease's FIFO is looked at.
const UNWATCHED_TICK: Duration = Duration::from_millis(20);
/// epoll data of the inotify descriptor and of the eventfd; a lease's connection has its id.
const INOTIFY: u64 = u64::MAX;
const WAKE: u64 = u64::MAX - 1;
/// The longest line the governor sends that the feeder keeps; longer ends the lease's feeding.
const MAX_LINE: usize = 4096;

/// What a lease is, for how it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A running job's command: its every ask is a demand.
    Job,
    /// An agent's pane: it stocks a spare as a low-priority ask, and demands only once its
    /// builds took the spare or opened the FIFO.
    Pane,
}

/// One lease as the feeder keeps it.
pub(super) struct Entry {
    pub conn: UnixStream,
    pub unread: Vec<u8>,
    /// The feeder's own read-write end of the FIFO (non-blocking).
    pub fifo: OwnedFd,
    pub kind: Kind,
    pub held: Arc<AtomicU32>,
    /// Its inotify watch; without one (no inotify left: the per-user limit of instances or
    /// watches) the FIFO is looked at every `UNWATCHED_TICK`, as before inotify.
    wd: Option<WatchDescriptor>,
    /// An ask sent and not granted yet: `Some(true)` for a demand, `Some(false)` for stock.
    asking: Option<bool>,
    /// Since when the spare in the FIFO sat there, while there is one.
    spare_since: Option<Instant>,
    /// The governor said another connection's demand waits.
    others_wait: bool,
    /// The governor is gone: the command keeps what it has, nothing more is fed.
    lost: bool,
    /// The FIFO was closed by someone: when to look whether anyone still holds it open.
    closed_at: Option<Instant>,
    /// A build has the FIFO open (a pane's: seen opened, not yet seen let go by everyone): its
    /// asks are demands, even once it gave back a spare it left untaken (a build blocked in
    /// `read` raises no event that would say it waits).
    build_open: bool,
    /// What the governor was last told: a spare sits untaken in the FIFO (`offer`), so
    /// `wt-status` can say a token an idle pane stocks is not in use.
    told_offer: bool,
    path: std::path::PathBuf,
}

impl Entry {
    pub fn new(conn: UnixStream, unread: Vec<u8>, fifo: OwnedFd, kind: Kind, held: Arc<AtomicU32>) -> Entry {
        Entry {
            conn,
            unread,
            fifo,
            kind,
            held,
            wd: None,
            asking: None,
            spare_since: None,
            others_wait: false,
            lost: false,
            closed_at: None,
            told_offer: false,
            build_open: false,
            path: std::path::PathBuf::new(),
        }
    }

    fn send(&mut self, msg: &Value) {
        let mut line = msg.to_string();
        line.push('\n');
        // A few bytes to a socket the governor reads at once: a full buffer means it is wedged.
        if self.conn.write_all(line.as_bytes()).is_err() {
            self.lose();
        }
    }

    /// Stops feeding: the governor is gone, or it cannot be spoken to. The connection is shut
    /// down, so a governor still alive takes back what it held rather than keep it for the
    /// command's life; the command keeps what it took.
    fn lose(&mut self) {
        self.lost = true;
        let _ = self.conn.shutdown(std::net::Shutdown::Both);
    }

    fn release(&mut self) {
        let Ok(before) = self.held.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| h.checked_sub(1)) else {
            return; // nothing held: the governor has nothing to take back
        };
        self.send(&json!({"op": "release"}));
        let held = before - 1;
        if held == 0 {
            self.others_wait = false; // the governor forgets what it told a connection holding nothing
        }
    }

    fn ask(&mut self, demand: bool) {
        self.send(&json!({"op": "acquire", "stock": !demand}));
        self.asking = Some(demand);
        self.spare_since = None;
    }

    /// When this lease must look again with nothing else happening: its spare's grace second,
    /// while others' demand waits.
    fn deadline(&self) -> Option<Instant> {
        let spare = match (self.lost, self.others_wait, self.asking, self.spare_since) {
            (false, true, None, Some(since)) => Some(since + SPARE_YIELD),
            _ => None,
        };
        let closed = self.closed_at.map(|at| at + CLOSE_LOOK);
        spare.into_iter().chain(closed).min()
    }

    /// Looks at the FIFO and acts (`keep_stocked`), then tells the governor whether a spare
    /// sits untaken there, when that changed.
    fn settle(&mut self) {
        if self.lost {
            return;
        }
        self.keep_stocked();
        let offered = !self.lost && self.held.load(Ordering::Relaxed) > 0 && in_fifo(&self.fifo) > 0;
        if offered != self.told_offer {
            self.told_offer = offered;
            self.send(&json!({"op": "offer", "spare": offered}));
        }
    }

    /// Keeps one spare on offer, returns the rest, asks for the next when the spare was taken,
    /// gives an untaken spare back when others' demand waits.
    fn keep_stocked(&mut self) {
        let mut waiting = in_fifo(&self.fifo);
        let held = self.held.load(Ordering::Relaxed);
        if waiting > held {
            // More in the FIFO than this lease holds: tokens given back to the governor while a
            // build still had them (a reclaim that judged wrong), or bytes a hostile program
            // wrote. Never offered again: the pool would grow by them.
            waiting -= take_back(&self.fifo, waiting - held);
        }
        if waiting > 1 {
            // Tokens came back: keep one on offer, return the rest.
            for _ in 0..take_back(&self.fifo, waiting - 1) {
                self.release();
            }
            self.spare_since = Some(Instant::now());
        } else if waiting == 0 && self.asking.is_none() {
            // The spare was taken (a demand), or none was stocked yet (a pane's is stock).
            let demand = self.kind == Kind::Job || self.build_open || self.spare_since.is_some();
            self.ask(demand);
        } else if waiting >= 1 && self.asking.is_some() {
            // A token came back while this lease's ask for another still waits at the governor
            // (a build took the spare, so it asked, then gave the token back): while others'
            // demand waits too, that token goes back at once; the ask keeps this lease's place.
            // Kept, it sat untaken while the others waited for it, and they for this ask.
            if self.others_wait && take_back(&self.fifo, 1) == 1 {
                self.release();
            }
        } else if waiting == 1 && self.asking.is_none() {
            let since = *self.spare_since.get_or_insert_with(Instant::now);
            if self.others_wait && since.elapsed() >= SPARE_YIELD {
                // Nobody here wanted it for a while and others do: it goes back, and this lease
                // queues behind them (a pane as stock: idle panes do not hand spares round).
                if take_back(&self.fifo, 1) == 1 {
                    self.release();
                }
                self.spare_since = None;
                if in_fifo(&self.fifo) == 0 {
                    self.ask(self.kind == Kind::Job || self.build_open);
                }
            }
        }
    }

    /// What the governor sent: complete lines.
    fn read_messages(&mut self) {
        let mut buf = [0u8; 1024];
        loop {
            match self.conn.read(&mut buf) {
                Ok(0) => {
                    self.lose();
                    break;
                }
                Ok(n) => self.unread.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.lose();
                    break;
                }
            }
        }
        while let Some(end) = self.unread.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.unread.drain(..=end).collect();
            let Ok(msg) = serde_json::from_slice::<Value>(&line) else {
                self.lose();
                return;
            };
            if msg.get("granted").is_some() {
                self.asking = None;
                self.held.fetch_add(1, Ordering::Relaxed);
                if put(&self.fifo) {
                    self.spare_since = Some(Instant::now());
                } else {
                    self.release();
                }
            }
            if let Some(others) = msg.get("others_wait").and_then(Value::as_bool) {
                self.others_wait = others;
            }
        }
        if self.unread.len() > MAX_LINE {
            self.lose();
        }
    }

    /// Someone closed the FIFO (a build, or one of its compilers, ended or was killed): a
    /// pane's lease looks a moment later whether anyone still holds it open (`reclaim`).
    fn closed(&mut self) {
        if self.kind == Kind::Pane && self.closed_at.is_none() {
            self.closed_at = Some(Instant::now());
        }
    }

    /// For a pane, whose FIFO nobody holds by inheritance from us: once no process holds it
    /// open, nobody can give back the tokens taken from it any more (a make SIGKILLed with its
    /// jobs, say), so they go back to the governor now, not when the pane ends. (inotify's
    /// counts cannot say this: it merges like events that come in a row.)
    fn reclaim(&mut self, open: Option<&Option<BTreeSet<PathBuf>>>) {
        if !self.reclaim_due() {
            return;
        }
        self.closed_at = None;
        // `None`: /proc could not be read: as if held (nothing is taken back on a guess).
        let held_open = match open {
            Some(Some(open)) => open.contains(&self.path),
            _ => true,
        };
        if self.lost || held_open {
            return;
        }
        self.build_open = false;
        let taken = self.held.load(Ordering::Relaxed).saturating_sub(in_fifo(&self.fifo));
        for _ in 0..taken {
            self.release();
        }
    }

    /// Whether the look after a close is due.
    fn reclaim_due(&self) -> bool {
        self.closed_at.is_some_and(|at| at.elapsed() >= CLOSE_LOOK)
    }

    /// Someone opened the FIFO: a build starts, so a stock ask becomes a demand.
    fn opened(&mut self) {
        if self.kind == Kind::Pane {
            self.build_open = true;
        }
        if self.asking == Some(false) {
            self.send(&json!({"op": "demand"}));
            self.asking = Some(true);
        }
    }
}

/// Which of `fifos` a process other than this one has open (one of its descriptors names it):
/// one walk of /proc for every lease due at once, looking only at this user's processes (a
/// build in a pane runs as the pane's user; /proc of others' is not ours to read anyway).
/// `None` when /proc cannot be read.
fn held_open_by_others(fifos: &BTreeSet<PathBuf>) -> Option<BTreeSet<PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id().to_string();
    let uid = nix::unistd::geteuid().as_raw();
    let procs = std::fs::read_dir("/proc").ok()?;
    let mut open = BTreeSet::new();
    for proc_dir in procs.flatten() {
        let name = proc_dir.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        if pid == me || proc_dir.metadata().is_ok_and(|m| m.uid() != uid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Some(target) = std::fs::read_link(fd.path()).ok().filter(|t| fifos.contains(t)) {
                open.insert(target);
            }
        }
        if open.len() == fifos.len() {
            break;
        }
    }
    Some(open)
}

/// Bytes waiting in the FIFO.
#[allow(unsafe_code)]
fn in_fifo(fd: &OwnedFd) -> u32 {
    let mut n: nix::libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer given, which points at `n`.
    let r = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::FIONREAD, &mut n) };
    if r < 0 {
        0
    } else {
        n.max(0) as u32
    }
}

/// Takes up to `n` tokens out of the FIFO (the command may take some first); how many it got.
fn take_back(fd: &OwnedFd, n: u32) -> u32 {
    let mut buf = vec![0u8; n as usize];
    match nix::unistd::read(fd, &mut buf) {
        Ok(got) => got as u32,
        Err(_) => 0,
    }
}

fn put(fd: &OwnedFd) -> bool {
    nix::unistd::write(fd, b"+").is_ok_and(|n| n == 1)
}

enum Msg {
    Add(u64, Box<Entry>, std::path::PathBuf, SyncSender<()>),
    Remove(u64, SyncSender<()>),
}

/// The process's feeder: where leases are handed over.
pub(super) struct Feeder {
    inbox: Mutex<Vec<Msg>>,
    wake: EventFd,
    next: AtomicU32,
}

impl std::fmt::Debug for Feeder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Feeder")
    }
}

impl Feeder {
    /// The process's one feeder, started with its first lease.
    pub fn get() -> Result<&'static Feeder, Error> {
        static FEEDER: OnceLock<Result<&'static Feeder, String>> = OnceLock::new();
        FEEDER.get_or_init(Feeder::start).as_ref().copied().map_err(|e| Error::env("governor-feeder", e.clone()))
    }

    fn start() -> Result<&'static Feeder, String> {
        raise_fd_limit();
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
        // Without inotify (the user's instances used up) every FIFO is looked at on a tick.
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .inspect_err(|e| tracing::warn!("governor feeder: no inotify ({e}): looking at each FIFO every 20 ms"))
            .ok();
        let wake =
            EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).map_err(|e| format!("eventfd: {e}"))?;
        if let Some(inotify) = &inotify {
            epoll.add(inotify.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, INOTIFY)).map_err(|e| e.to_string())?;
        }
        epoll.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE)).map_err(|e| e.to_string())?;
        let feeder: &'static Feeder =
            Box::leak(Box::new(Feeder { inbox: Mutex::new(Vec::new()), wake, next: AtomicU32::new(0) }));
        std::thread::Builder::new()
            .name("governor-feeder".into())
            .spawn(move || run(feeder, &epoll, inotify.as_ref()))
            .map_err(|e| format!("cannot start the governor's feeder: {e}"))?;
        Ok(feeder)
    }

    fn post(&self, msg: Msg) {
        self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(msg);
        let _ = self.wake.write(1);
    }

    /// Hands `entry` (the FIFO at `path`) to the feeder; its id. Once this returns the FIFO is
    /// watched, so the command, started after, cannot open it unseen.
    pub fn add(&self, entry: Entry, path: &Path) -> u64 {
        let id = u64::from(self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.post(Msg::Add(id, Box::new(entry), path.to_path_buf(), tx));
        let _ = rx.recv_timeout(Duration::from_secs(5));
        id
    }

    /// Ends lease `id`: once this returns its connection is closed, so the governor has taken
    /// back what it held.
    pub fn remove(&self, id: u64) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.post(Msg::Remove(id, tx));
        let _ = rx.recv_timeout(Duration::from_secs(5));
    }
}

/// Each lease holds two descriptors (its FIFO, its connection) for its command's life: a
/// supervisor of 128 governed panes holds about 900 in all, near the soft limit of 1024 many
/// systems start with, so the soft limit goes up to 4096 (within the hard one; not further,
/// as the panes' programs inherit it).
#[allow(unsafe_code)]
fn raise_fd_limit() {
    let mut limit = nix::libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the one struct given, which lives here.
    unsafe {
        if nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max.min(4096)
        {
            limit.rlim_cur = limit.rlim_max.min(4096);
            let _ = nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn run(feeder: &Feeder, epoll: &Epoll, inotify: Option<&Inotify>) {
    let mut leases: BTreeMap<u64, Entry> = BTreeMap::new();
    let mut watches: BTreeMap<WatchDescriptor, u64> = BTreeMap::new();
    let mut events = vec![EpollEvent::empty(); 64];
    loop {
        let polling = leases.values().any(|e| e.wd.is_none() && !e.lost);
        let tick = polling.then(|| Instant::now() + UNWATCHED_TICK);
        let deadline = leases.values().filter_map(Entry::deadline).chain(tick).min();
        let timeout = match deadline {
            None => EpollTimeout::NONE,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                // Rounded up: a timeout that ends a little early would spin until it is due.
                EpollTimeout::try_from(Duration::from_millis(left.as_micros().div_ceil(1000) as u64))
                    .unwrap_or(EpollTimeout::MAX)
            }
        };
        let n = match epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!("governor feeder: epoll: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let mut touched: Vec<u64> = Vec::new();
        for ev in &events[..n] {
            match ev.data() {
                WAKE => {
                    let _ = feeder.wake.read();
                    let msgs =
                        std::mem::take(&mut *feeder.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
                    for msg in msgs {
                        match msg {
                            Msg::Add(id, entry, path, added) => {
                                let mut entry = *entry;
                                // As /proc names it: the real path, links resolved.
                                entry.path = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                                let flags = AddWatchFlags::IN_ACCESS
                                    | AddWatchFlags::IN_MODIFY
                                    | AddWatchFlags::IN_OPEN
                                    | AddWatchFlags::IN_CLOSE;
                                match inotify.map(|i| i.add_watch(&path, flags)) {
                                    Some(Ok(wd)) => {
                                        watches.insert(wd, id);
                                        entry.wd = Some(wd);
                                    }
                                    Some(Err(e)) => {
                                        tracing::warn!("governor feeder: cannot watch {}: {e}", path.display());
                                    }
                                    None => {}
                                }
                                if epoll.add(entry.conn.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, id)).is_err() {
                                    entry.lose();
                                }
                                leases.insert(id, entry);
                                touched.push(id);
                                let _ = added.send(());
                            }
                            Msg::Remove(id, done) => {
                                if let Some(entry) = leases.remove(&id) {
                                    if let (Some(wd), Some(inotify)) = (entry.wd, inotify) {
                                        watches.remove(&wd);
                                        let _ = inotify.rm_watch(wd);
                                    }
                                    let _ = epoll.delete(entry.conn.as_fd());
                                    drop(entry); // closes the connection: the governor takes back the rest
                                }
                                let _ = done.send(());
                            }
                        }
                    }
                }
                INOTIFY => {
                    for event in inotify.and_then(|i| i.read_events().ok()).unwrap_or_default() {
                        if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                            for entry in leases.values_mut() {
                                entry.closed(); // a close may be among what was lost
                            }
                            touched.extend(leases.keys().copied());
                            continue;
                        }
                        let Some(id) = watches.get(&event.wd).copied() else { continue };
                        if let Some(entry) = leases.get_mut(&id) {
                            if event.mask.contains(AddWatchFlags::IN_OPEN) {
                                entry.opened();
                            }
                            if event.mask.intersects(AddWatchFlags::IN_CLOSE) {
                                entry.closed();
                            }
                        }
                        touched.push(id);
                    }
                }
                id => {
                    if let Some(entry) = leases.get_mut(&id) {
                        entry.read_messages();
                        if entry.lost {
                            let _ = epoll.delete(entry.conn.as_fd());
                        }
                        touched.push(id);
                    }
                }
            }
        }
        let now = Instant::now();
        if polling {
            touched.extend(leases.iter().filter(|(_, e)| e.wd.is_none()).map(|(id, _)| *id));
        }
        touched.extend(leases.iter().filter(|(_, e)| e.deadline().is_some_and(|at| at <= now)).map(|(id, _)| *id));
        touched.sort_unstable();
        touched.dedup();
        // One walk of /proc for every lease whose look after a close is due.
        let due: BTreeSet<PathBuf> =
            leases.values().filter(|e| e.reclaim_due() && !e.lost).map(|e| e.path.clone()).collect();
        let open = (!due.is_empty()).then(|| held_open_by_others(&due));
        for id in touched {
            if let Some(entry) = leases.get_mut(&id) {
                entry.reclaim(open.as_ref());
                entry.settle();
                if entry.lost {
                    let _ = epoll.delete(entry.conn.as_fd());
                }
            }
        }
    }
}
