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
//! - `{"op":"acquire"}` → `{"queued":AHEAD}` (again whenever AHEAD changes) then `{"granted":true}`
//! - `{"op":"release"}` → nothing (a release of a token not held is ignored)
//! - `{"op":"status"}` → `{"status":{"tokens":N,"in_use":K,"waiting":W,"holders":[…]}}`
//!
//! The server ends when it has had no connection for `IDLE`; the lock file it holds while it
//! lives makes sure only one runs, and a client that finds none starts one (`client::connect`).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long the server stays without any connection before it ends (`WT_GOVERNOR_IDLE`,
/// e.g. `2s`, sets another, for tests).
pub const IDLE: Duration = Duration::from_secs(30);

fn idle() -> Duration {
    std::env::var("WT_GOVERNOR_IDLE").ok().and_then(|v| crate::record::duration::parse(&v).ok()).unwrap_or(IDLE)
}
/// The longest request line it reads; anything longer ends that connection.
const MAX_LINE: u64 = 4096;

struct Conn {
    writer: UnixStream,
    label: String,
    pid: u32,
    held: u32,
}

#[derive(Default)]
struct State {
    tokens: u32,
    free: u32,
    conns: BTreeMap<u64, Conn>,
    /// Pending acquires, one entry per token asked for, oldest first.
    queue: VecDeque<u64>,
    last_seen: Option<Instant>,
}

impl State {
    fn send(&mut self, id: u64, msg: &Value) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        let mut line = msg.to_string();
        line.push('\n');
        // A client that stopped reading gets cut off rather than stalling every other one.
        if conn.writer.write_all(line.as_bytes()).is_err() {
            let _ = conn.writer.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Hands free tokens to the oldest asks, then tells the rest where they stand.
    fn dispatch(&mut self) {
        let mut granted = false;
        while self.free > 0 {
            let Some(id) = self.queue.pop_front() else { break };
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.held += 1;
                self.free -= 1;
                self.send(id, &json!({"granted": true}));
                granted = true;
            }
        }
        if granted {
            let mut told = std::collections::BTreeSet::new();
            for (ahead, id) in self.queue.clone().into_iter().enumerate() {
                if told.insert(id) {
                    self.send(id, &json!({"queued": ahead}));
                }
            }
        }
    }

    fn status(&self) -> Value {
        let mut waiting: BTreeMap<u64, usize> = BTreeMap::new();
        for id in &self.queue {
            *waiting.entry(*id).or_default() += 1;
        }
        let holders: Vec<Value> = self
            .conns
            .iter()
            .filter(|(id, c)| c.held > 0 || waiting.contains_key(id))
            .map(|(id, c)| {
                json!({"label": c.label, "pid": c.pid, "held": c.held, "waiting": waiting.get(id).copied().unwrap_or(0)})
            })
            .collect();
        json!({
            "tokens": self.tokens,
            "in_use": self.tokens - self.free,
            "waiting": self.queue.len(),
            "holders": holders,
        })
    }

    fn close(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            self.free += conn.held;
            self.queue.retain(|q| *q != id);
            if self.conns.is_empty() {
                self.last_seen = Some(Instant::now());
            }
            self.dispatch();
        }
    }
}

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
    let _ = listener.set_nonblocking(true);
    let state =
        Arc::new(Mutex::new(State { tokens, free: tokens, last_seen: Some(Instant::now()), ..State::default() }));
    let mut next_id = 0u64;
    let idle = idle();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                next_id += 1;
                serve_connection(&state, next_id, stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                let st = state.lock().expect("state");
                if st.conns.is_empty() && st.last_seen.is_some_and(|t| t.elapsed() >= idle) {
                    // Unlinked while the state is locked: a client that connected just before
                    // sees its connection close unanswered and starts a new server.
                    let _ = std::fs::remove_file(socket);
                    return 0;
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn serve_connection(state: &Arc<Mutex<State>>, id: u64, stream: UnixStream) {
    let _ = stream.set_nonblocking(false);
    let Ok(writer) = stream.try_clone() else { return };
    let _ = writer.set_write_timeout(Some(Duration::from_secs(2)));
    state.lock().expect("state").conns.insert(id, Conn { writer, label: String::new(), pid: 0, held: 0 });
    let state = Arc::clone(state);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            match Read::by_ref(&mut reader).take(MAX_LINE).read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if !line.ends_with('\n') => break, // over-long: not a client of ours
                Ok(_) => {}
            }
            let Ok(req) = serde_json::from_str::<Value>(&line) else { break };
            let mut st = state.lock().expect("state");
            match req.get("op").and_then(Value::as_str) {
                Some("hello") => {
                    if let Some(conn) = st.conns.get_mut(&id) {
                        conn.label =
                            req.get("label").and_then(Value::as_str).unwrap_or_default().chars().take(200).collect();
                        conn.pid = req.get("pid").and_then(Value::as_u64).unwrap_or(0) as u32;
                    }
                    let tokens = st.tokens;
                    st.send(id, &json!({"tokens": tokens}));
                }
                Some("acquire") => {
                    st.queue.push_back(id);
                    st.dispatch();
                    let ahead = st.queue.iter().position(|q| *q == id);
                    if let Some(ahead) = ahead {
                        st.send(id, &json!({"queued": ahead}));
                    }
                }
                Some("release") => {
                    if let Some(conn) = st.conns.get_mut(&id).filter(|c| c.held > 0) {
                        conn.held -= 1;
                        st.free += 1;
                        st.dispatch();
                    }
                }
                Some("status") => {
                    let status = st.status();
                    st.send(id, &json!({"status": status}));
                }
                _ => break,
            }
        }
        state.lock().expect("state").close(id);
    });
}
