//! The governor's server: `<any wt tool> __governor`, one per user and machine, holding the
//! tokens and handing them to the connections that ask, in the order they asked.
//!
//! A connection is one governed command's wt parent (or a `wt-status` asking how things
//! stand). The server counts what each connection holds, so when a connection closes — the
//! command ended, or its wt parent died, SIGKILL included — everything it held comes back at
//! once: the plain jobserver FIFO cannot say who holds a token, a connection can.
//!
//! Protocol (JSON lines, one request per line, see docs/protocol.md):
//! - `{"op":"hello","label":"…","pid":N}` → `{"tokens":N}`
//! - `{"op":"acquire"}` (a demand) → `{"queued":AHEAD}` (again whenever AHEAD changes) then
//!   `{"granted":true}`; `{"op":"acquire","stock":true}` (a spare nobody asked for yet, served
//!   after every demand) → `{"granted":true}` only
//! - `{"op":"demand"}` → nothing: the connection's stock asks become demands
//! - `{"op":"release"}` → nothing (a release of a token not held is ignored)
//! - `{"op":"offer","spare":true|false}` → nothing: whether a spare it holds sits untaken in
//!   its command's FIFO (so `status` tells tokens on offer from tokens in use)
//! - `{"op":"status"}` → `{"status":{"tokens":N,"in_use":K,"on_offer":O,"waiting":W,"holders":[…]}}`
//! - pushed to a connection holding tokens: `{"others_wait":true|false}` when another
//!   connection's demand starts or stops waiting (`tokens`)
//!
//! One thread serves every connection (poll over the listener and each connection, no timer
//! while any connection is open). The server ends when it has had no connection for `IDLE`;
//! the lock file it holds while it lives makes sure only one runs, and a client that finds
//! none starts one (`client::connect`).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::Value;

use super::tokens::{Conn, Tokens};

/// How long the server stays without any connection before it ends (`WT_GOVERNOR_IDLE`,
/// e.g. `2s`, sets another, for tests).
pub const IDLE: Duration = Duration::from_secs(30);

fn idle() -> Duration {
    std::env::var("WT_GOVERNOR_IDLE").ok().and_then(|v| crate::record::duration::parse(&v).ok()).unwrap_or(IDLE)
}
/// The longest request line it reads; anything longer ends that connection.
const MAX_LINE: usize = 4096;

/// The server's main: serves on `socket` with `tokens` tokens until idle. Returns the exit code.
pub fn main(socket: &Path, tokens: u32) -> i32 {
    let Some(dir) = socket.parent() else { return 2 };
    // Only one server: the lock is held for the server's life (and dies with it).
    let _lock = match crate::proc::lock::FileLock::try_acquire(&dir.join("governor.lock")) {
        Ok(Some(lock)) => lock,
        _ => return 0, // another server runs (or is starting): clients will find it
    };
    let _ = std::fs::remove_file(socket); // a killed server's socket: nobody listens on it
    let listener = match UnixListener::bind(socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wt governor: cannot listen on {}: {e}", socket.display());
            return 3;
        }
    };
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("wt governor: {e}");
        return 3;
    }
    let mut books = Tokens::new(tokens);
    let mut next_id = 0u64;
    let idle = idle();
    // Out of descriptors (EMFILE): the listener stays readable, so it is left out of the poll
    // until a connection closes, rather than polled in a loop that would spin and answer no one.
    let mut full_at: Option<usize> = None;
    loop {
        if full_at.is_some_and(|n| books.conns.len() < n) {
            full_at = None;
        }
        let ids: Vec<u64> = books.conns.keys().copied().collect();
        // Asleep until something happens; only with no connection at all, until the idle end.
        let timeout = match books.last_seen.filter(|_| books.conns.is_empty()) {
            Some(since) => match idle.checked_sub(since.elapsed()) {
                Some(left) => PollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX),
                None => {
                    // Unlinked before the last look at the backlog: a client that connected
                    // just before sees its connection close unanswered and starts a new server.
                    let _ = std::fs::remove_file(socket);
                    return 0;
                }
            },
            None => PollTimeout::NONE,
        };
        let ready: Vec<PollFlags> = {
            let listening = if full_at.is_some() { PollFlags::empty() } else { PollFlags::POLLIN };
            let mut fds = vec![PollFd::new(listener.as_fd(), listening)];
            for id in &ids {
                let conn = &books.conns[id];
                let mut flags = PollFlags::POLLIN;
                if !conn.outbuf.is_empty() {
                    flags |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(conn.stream.as_fd(), flags));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("wt governor: poll: {e}");
                    return 3;
                }
            }
        };
        if !ready[0].is_empty() && full_at.is_none() {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if stream.set_nonblocking(true).is_ok() {
                            next_id += 1;
                            books.conns.insert(next_id, Conn::new(stream));
                            books.last_seen = None;
                        }
                    }
                    Err(e) if matches!(e.raw_os_error(), Some(nix::libc::EMFILE | nix::libc::ENFILE)) => {
                        eprintln!("wt governor: out of descriptors at {} connections: {e}", books.conns.len());
                        full_at = Some(books.conns.len());
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        for (id, flags) in ids.iter().zip(&ready[1..]) {
            if flags.is_empty() {
                continue;
            }
            read_requests(&mut books, *id);
        }
        // What the requests (and closes) queued for every connection goes out now.
        let ids: Vec<u64> = books.conns.keys().copied().collect();
        for id in ids {
            let dead = books.conns.get_mut(&id).is_none_or(|conn| {
                flush(conn);
                conn.dead
            });
            if dead {
                books.close(id);
            }
        }
    }
}

/// Reads what connection `id` sent and serves each complete request line.
fn read_requests(books: &mut Tokens, id: u64) {
    let mut buf = [0u8; 4096];
    loop {
        let Some(conn) = books.conns.get_mut(&id) else { return };
        match conn.stream.read(&mut buf) {
            Ok(0) => {
                conn.dead = true;
                break;
            }
            Ok(n) => conn.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                conn.dead = true;
                break;
            }
        }
        // Lines as they come: one past the cap without a newline is not a client of ours.
        while let Some(conn) = books.conns.get_mut(&id) {
            let Some(end) = conn.inbuf.iter().position(|b| *b == b'\n') else {
                if conn.inbuf.len() > MAX_LINE {
                    conn.dead = true;
                }
                break;
            };
            let line: Vec<u8> = conn.inbuf.drain(..=end).collect();
            let served =
                end <= MAX_LINE && serde_json::from_slice::<Value>(&line).is_ok_and(|req| books.request(id, &req));
            if !served {
                if let Some(conn) = books.conns.get_mut(&id) {
                    conn.dead = true;
                }
                return;
            }
        }
        if books.conns.get(&id).is_none_or(|c| c.dead) {
            return;
        }
    }
}

/// Writes what is queued for `conn` without blocking; the rest waits for POLLOUT.
fn flush(conn: &mut Conn) {
    while !conn.outbuf.is_empty() && !conn.dead {
        match conn.stream.write(&conn.outbuf) {
            Ok(0) => conn.dead = true,
            Ok(n) => {
                conn.outbuf.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => conn.dead = true,
        }
    }
}
