//! One governed command's jobserver: a FIFO of its own, fed from the governor by its wt
//! parent, which stays alive while the command runs.
//!
//! The parent keeps exactly one spare token on offer in the command's FIFO. It holds a read
//! end itself, so `FIONREAD` tells it when the command took the spare (then it asks the server
//! for the next) and when tokens came back (then it returns all but one): the tokens the
//! command holds are those acquired less the bytes in the FIFO. A spare left untaken for a
//! second while others' demand waits goes back to the server, and the parent queues again.
//! When the command ends, or the parent dies, the parent's connection closes and the server
//! takes back everything it held. The feeding is done by the process's one feeder thread
//! (`feeder`), woken by the FIFO's inotify events and the governor's messages only.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::Mode;

use super::client::Connection;
use super::feeder::{Entry, Feeder, Kind};
use super::Slot;
use crate::Error;

/// Set in a governed job's environment: a wt tool started inside it takes no job slot of its
/// own (its slot is the job's).
pub const IN_JOB: &str = "WT_GOVERNOR_JOB";

/// A command's jobserver, alive as long as this value: drop it once the command's process
/// group has ended.
#[derive(Debug)]
pub struct Lease {
    feeder: &'static Feeder,
    id: u64,
    /// The command's own descriptors of the FIFO (read, write), for a job's command, which
    /// inherits them (a pane's program reaches the FIFO by its path only).
    child: Option<(OwnedFd, OwnedFd)>,
    fifo: PathBuf,
    env: Vec<(String, String)>,
    /// The tokens this lease's connection holds in all (the implicit slot's included).
    held: Arc<AtomicU32>,
}

impl Lease {
    /// `conn` holds the implicit slot's token already if the command is a job (`Slot::Job`).
    pub(super) fn start(conn: Connection, person_makeflags: Option<&str>, slot: Slot) -> Result<Lease, Error> {
        let implicit = slot == Slot::Job;
        // Every command this process starts inherits the descriptors (make < 4.4 reads only
        // those); a pane's program, which inherits none, gets the path alone.
        let descriptors = slot != Slot::Pane;
        let feeder = Feeder::get()?;
        let fifo = fifo_path()?;
        nix::unistd::mkfifo(&fifo, Mode::S_IRUSR | Mode::S_IWUSR).map_err(|e| Error::io(fifo.display(), e.into()))?;
        let opened = (|| {
            let ours = open(&fifo, OFlag::O_RDWR | OFlag::O_NONBLOCK)?;
            if !descriptors {
                return Ok::<_, Error>((ours, None));
            }
            let read = open(&fifo, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
            fcntl(&read, FcntlArg::F_SETFL(OFlag::empty())).map_err(|e| Error::io(fifo.display(), e.into()))?;
            let write = open(&fifo, OFlag::O_WRONLY)?;
            Ok((ours, Some((read, write))))
        })();
        let (ours, child) = match opened {
            Ok(fds) => fds,
            Err(e) => {
                let _ = std::fs::remove_file(&fifo);
                return Err(e);
            }
        };
        let path_form = format!("fifo:{}", fifo.display());
        let make_form = match &child {
            Some((read, write)) if !super::make_speaks_fifo() => format!("{},{}", read.as_raw_fd(), write.as_raw_fd()),
            _ => path_form.clone(),
        };
        let mut env = vec![
            ("MAKEFLAGS".to_string(), super::makeflags::merged(person_makeflags, &make_form)),
            ("CARGO_MAKEFLAGS".to_string(), super::makeflags::merged(None, &path_form)),
        ];
        if slot != Slot::Pane {
            env.push((IN_JOB.to_string(), "1".to_string()));
        }
        let held = Arc::new(AtomicU32::new(u32::from(implicit)));
        let (stream, unread) = conn.into_parts();
        if let Err(e) = stream.set_nonblocking(true) {
            let _ = std::fs::remove_file(&fifo);
            return Err(Error::io("the governor's connection", e));
        }
        let kind = if slot == Slot::Pane { Kind::Pane } else { Kind::Job };
        let id = feeder.add(Entry::new(stream, unread, ours, kind, Arc::clone(&held)), &fifo);
        Ok(Lease { feeder, id, child, fifo, env, held })
    }

    /// What the command's environment gets: `MAKEFLAGS` and `CARGO_MAKEFLAGS`.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Gives `cmd` the environment and the FIFO's descriptors (`--jobserver-auth=R,W`).
    #[allow(unsafe_code)]
    pub fn apply(&self, cmd: &mut Command) {
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let Some((read, write)) = &self.child else { return };
        let fds: [RawFd; 2] = [read.as_raw_fd(), write.as_raw_fd()];
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
        self.feeder.remove(self.id);
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
