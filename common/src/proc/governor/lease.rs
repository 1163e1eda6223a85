//! One governed command's jobserver: a FIFO of its own, fed from the governor by its wt
//! parent, which stays alive while the command runs.
//!
//! The parent keeps exactly one spare token on offer in the command's FIFO. It holds a read
//! end itself, so `FIONREAD` tells it when the command took the spare (then it asks the server
//! for the next) and when tokens came back (then it returns all but one): the tokens the
//! command holds are those acquired less the bytes in the FIFO. A spare left untaken for a
//! second while others wait goes back to the server, and the parent queues for it again.
//! When the command ends, or the parent dies, the parent's connection closes and the server
//! takes back everything it held.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::Mode;
use serde_json::{json, Value};

use super::client::Connection;
use crate::Error;

/// Set in a governed job's environment: a wt tool started inside it takes no job slot of its
/// own (its slot is the job's).
pub const IN_JOB: &str = "WT_GOVERNOR_JOB";

/// How long a spare may sit untaken while others wait before it goes back.
const SPARE_YIELD: Duration = Duration::from_secs(1);
/// How often the feeder looks at the FIFO.
const TICK: Duration = Duration::from_millis(20);

/// A command's jobserver, alive as long as this value: drop it once the command's process
/// group has ended.
#[derive(Debug)]
pub struct Lease {
    stop: Arc<AtomicBool>,
    feeder: Option<JoinHandle<()>>,
    /// The command's own descriptors of the FIFO (read, write): kept open here until the
    /// command has started; it inherits them.
    child: (OwnedFd, OwnedFd),
    fifo: PathBuf,
    env: Vec<(String, String)>,
    /// The tokens this lease's connection holds in all (the implicit slot's included).
    held: Arc<AtomicU32>,
}

impl Lease {
    /// `conn` holds the implicit slot's token already if the command is a job.
    pub(super) fn start(conn: Connection, person_makeflags: Option<&str>, implicit: bool) -> Result<Lease, Error> {
        let fifo = fifo_path()?;
        nix::unistd::mkfifo(&fifo, Mode::S_IRUSR | Mode::S_IWUSR).map_err(|e| Error::io(fifo.display(), e.into()))?;
        let opened = (|| {
            let ours = open(&fifo, OFlag::O_RDWR | OFlag::O_NONBLOCK)?;
            let read = open(&fifo, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
            fcntl(&read, FcntlArg::F_SETFL(OFlag::empty())).map_err(|e| Error::io(fifo.display(), e.into()))?;
            let write = open(&fifo, OFlag::O_WRONLY)?;
            Ok::<_, Error>((ours, read, write))
        })();
        let (ours, read, write) = match opened {
            Ok(fds) => fds,
            Err(e) => {
                let _ = std::fs::remove_file(&fifo);
                return Err(e);
            }
        };
        let fds = format!("{},{}", read.as_raw_fd(), write.as_raw_fd());
        let path_form = format!("fifo:{}", fifo.display());
        let make_form = if super::make_speaks_fifo() { path_form.clone() } else { fds };
        let mut env = vec![
            ("MAKEFLAGS".to_string(), super::makeflags::merged(person_makeflags, &make_form)),
            ("CARGO_MAKEFLAGS".to_string(), super::makeflags::merged(None, &path_form)),
        ];
        if implicit {
            env.push((IN_JOB.to_string(), "1".to_string()));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicU32::new(u32::from(implicit)));
        let feeder = {
            let (stop, held) = (Arc::clone(&stop), Arc::clone(&held));
            std::thread::spawn(move || feed(conn, &ours, &stop, &held))
        };
        Ok(Lease { stop, feeder: Some(feeder), child: (read, write), fifo, env, held })
    }

    /// What the command's environment gets: `MAKEFLAGS` and `CARGO_MAKEFLAGS`.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Gives `cmd` the environment and the FIFO's descriptors (`--jobserver-auth=R,W`).
    #[allow(unsafe_code)]
    pub fn apply(&self, cmd: &mut Command) {
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let fds: [RawFd; 2] = [self.child.0.as_raw_fd(), self.child.1.as_raw_fd()];
        // SAFETY: between fork and exec only fcntl(2) runs, on two descriptors this value keeps
        // open; nothing is allocated and no lock is taken.
        unsafe {
            cmd.pre_exec(move || {
                for fd in fds {
                    let flags = nix::libc::fcntl(fd, nix::libc::F_GETFD);
                    if flags >= 0 {
                        nix::libc::fcntl(fd, nix::libc::F_SETFD, flags & !nix::libc::FD_CLOEXEC);
                    }
                }
                Ok(())
            });
        }
    }

    /// How many tokens this command's connection holds now (the implicit slot's included).
    pub fn held(&self) -> u32 {
        self.held.load(Ordering::Relaxed)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(feeder) = self.feeder.take() {
            let _ = feeder.join();
        }
        let _ = std::fs::remove_file(&self.fifo);
    }
}

fn open(path: &Path, flags: OFlag) -> Result<OwnedFd, Error> {
    nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| Error::io(path.display(), e.into()))
}

/// A new FIFO's name under the socket directory's `jobs/`, after sweeping those of dead wt
/// processes (named `<pid>-<n>`).
fn fifo_path() -> Result<PathBuf, Error> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = crate::proc::supervisor::socket_dir()?.join("jobs");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.split('-').next()).and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| !crate::proc::process::is_alive(p)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    Ok(path)
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

/// The feeder: keeps one spare token in the FIFO and returns the rest, until `stop`.
fn feed(mut conn: Connection, fifo: &OwnedFd, stop: &AtomicBool, held: &AtomicU32) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::BufRead;
    use std::os::fd::AsFd;
    let mut asking = false;
    let mut spare_since: Option<Instant> = None;
    let mut asked_status: Option<Instant> = None;
    let mut others_wait = false;
    while !stop.load(Ordering::Relaxed) {
        // What the server said.
        let readable = !conn.reader().buffer().is_empty() || {
            let mut fds = [PollFd::new(conn.stream().as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(TICK.as_millis() as u16)).is_ok_and(|n| n > 0)
        };
        if readable {
            let mut line = String::new();
            match conn.reader().read_line(&mut line) {
                Ok(0) | Err(_) => return, // the server is gone: the command keeps what it has
                Ok(_) => {}
            }
            let Ok(msg) = serde_json::from_str::<Value>(&line) else { return };
            if msg.get("granted").is_some() {
                asking = false;
                held.fetch_add(1, Ordering::Relaxed);
                if !put(fifo) {
                    let _ = conn.send(&json!({"op": "release"}));
                    held.fetch_sub(1, Ordering::Relaxed);
                }
                spare_since = Some(Instant::now());
            }
            if let Some(status) = msg.get("status") {
                others_wait = status.get("waiting").and_then(Value::as_u64).unwrap_or(0) > u64::from(asking);
            }
            continue;
        }
        let waiting = in_fifo(fifo);
        if waiting > 1 {
            // Tokens came back: keep one on offer, return the rest.
            for _ in 0..take_back(fifo, waiting - 1) {
                if conn.send(&json!({"op": "release"})).is_err() {
                    return;
                }
                held.fetch_sub(1, Ordering::Relaxed);
            }
            spare_since = Some(Instant::now());
        } else if waiting == 0 && !asking {
            if conn.send(&json!({"op": "acquire"})).is_err() {
                return;
            }
            asking = true;
            spare_since = None;
        } else if waiting == 1 && !asking {
            let since = *spare_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= SPARE_YIELD {
                if others_wait {
                    // Nobody here wanted it for a while and others wait: it goes back, and this
                    // command queues behind them for the next.
                    if take_back(fifo, 1) == 1 {
                        if conn.send(&json!({"op": "release"})).is_err() {
                            return;
                        }
                        held.fetch_sub(1, Ordering::Relaxed);
                    }
                    others_wait = false;
                    spare_since = None;
                } else if asked_status.is_none_or(|t| t.elapsed() >= SPARE_YIELD) {
                    if conn.send(&json!({"op": "status"})).is_err() {
                        return;
                    }
                    asked_status = Some(Instant::now());
                }
            }
        }
    }
}
