//! The governor's books: how many tokens are free, what each connection holds, who waits, and
//! what each connection is told. The server's event loop (`server`) feeds it requests and
//! closed connections and sends what it queues in each connection's `outbuf`.
//!
//! Two kinds of ask wait here. A **demand** is a job waiting for its slot, or a command that
//! took its spare and may want another: it is served first, oldest first, and holders of an
//! untaken spare are told (`{"others_wait":true}`) so they give it back. A **stock** ask is a
//! lease stocking a spare nobody has asked for yet (an idle pane): served only when no demand
//! waits, and nobody is told to make room for it, so idle panes beyond the tokens queue
//! quietly instead of handing spares round for ever.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use serde_json::{json, Value};

/// The most a connection may have unsent (a client that stopped reading is cut off).
const MAX_OUTBUF: usize = 64 * 1024;

pub(super) struct Conn {
    pub stream: UnixStream,
    pub inbuf: Vec<u8>,
    pub outbuf: Vec<u8>,
    pub dead: bool,
    label: String,
    pid: u32,
    held: u32,
    /// What this connection was last told about others' demand (`others_wait`).
    told_others: bool,
    /// A spare it holds sits untaken in its command's FIFO (`offer`): held, not in use.
    offered: bool,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            dead: false,
            label: String::new(),
            pid: 0,
            held: 0,
            told_others: false,
            offered: false,
        }
    }
}

pub(super) struct Tokens {
    tokens: u32,
    free: u32,
    pub conns: BTreeMap<u64, Conn>,
    /// Asks for one token each, oldest first: demand before stock.
    demand: VecDeque<u64>,
    stock: VecDeque<u64>,
    /// When the last connection closed (or the server started).
    pub last_seen: Option<Instant>,
}

impl Tokens {
    pub fn new(tokens: u32) -> Tokens {
        Tokens {
            tokens,
            free: tokens,
            conns: BTreeMap::new(),
            demand: VecDeque::new(),
            stock: VecDeque::new(),
            last_seen: Some(Instant::now()),
        }
    }

    fn send(&mut self, id: u64, msg: &Value) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.outbuf.extend_from_slice(msg.to_string().as_bytes());
        conn.outbuf.push(b'\n');
        if conn.outbuf.len() > MAX_OUTBUF {
            conn.dead = true;
        }
    }

    /// One request line of connection `id`; `false` when it is not ours (the connection ends).
    pub fn request(&mut self, id: u64, req: &Value) -> bool {
        match req.get("op").and_then(Value::as_str) {
            Some("hello") => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.label =
                        req.get("label").and_then(Value::as_str).unwrap_or_default().chars().take(200).collect();
                    conn.pid = req.get("pid").and_then(Value::as_u64).unwrap_or(0) as u32;
                }
                let tokens = self.tokens;
                self.send(id, &json!({"tokens": tokens}));
            }
            Some("acquire") => {
                if req.get("stock").and_then(Value::as_bool) == Some(true) {
                    self.stock.push_back(id);
                } else {
                    self.demand.push_back(id);
                }
                self.dispatch();
                if let Some(ahead) = self.demand.iter().position(|q| *q == id) {
                    self.send(id, &json!({"queued": ahead}));
                }
            }
            Some("demand") => {
                // Its stock ask turned into a demand (the command opened its jobserver).
                let moved = self.stock.iter().filter(|q| **q == id).count();
                self.stock.retain(|q| *q != id);
                self.demand.extend(std::iter::repeat_n(id, moved));
                self.dispatch();
            }
            Some("offer") => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.offered = req.get("spare").and_then(Value::as_bool) == Some(true) && conn.held > 0;
                }
            }
            Some("release") => {
                if let Some(conn) = self.conns.get_mut(&id).filter(|c| c.held > 0) {
                    conn.held -= 1;
                    conn.offered &= conn.held > 0;
                    self.free += 1;
                    self.dispatch();
                }
            }
            Some("status") => {
                let status = self.status();
                self.send(id, &json!({"status": status}));
            }
            _ => return false,
        }
        self.tell_holders();
        true
    }

    /// Hands free tokens to the oldest demands, then to the oldest stock asks, and tells the
    /// demands still waiting where they stand.
    fn dispatch(&mut self) {
        let mut granted = false;
        while self.free > 0 {
            let Some(id) = self.demand.pop_front().or_else(|| self.stock.pop_front()) else { break };
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.held += 1;
                self.free -= 1;
                self.send(id, &json!({"granted": true}));
                granted = true;
            }
        }
        if granted {
            let mut told = std::collections::BTreeSet::new();
            for (ahead, id) in self.demand.clone().into_iter().enumerate() {
                if told.insert(id) {
                    self.send(id, &json!({"queued": ahead}));
                }
            }
        }
    }

    /// Tells each connection holding tokens when others' demand starts or stops waiting, so a
    /// holder of an untaken spare gives it back (and is not asked to look every second).
    fn tell_holders(&mut self) {
        let mut own: BTreeMap<u64, usize> = BTreeMap::new();
        for id in &self.demand {
            *own.entry(*id).or_default() += 1;
        }
        let total = self.demand.len();
        let mut tell = Vec::new();
        for (id, conn) in &mut self.conns {
            if conn.held == 0 {
                conn.told_others = false; // its lease forgets too when it holds nothing
                continue;
            }
            let others = total > own.get(id).copied().unwrap_or(0);
            if others != conn.told_others {
                conn.told_others = others;
                tell.push((*id, others));
            }
        }
        for (id, others) in tell {
            self.send(id, &json!({"others_wait": others}));
        }
    }

    pub fn status(&self) -> Value {
        let mut waiting: BTreeMap<u64, usize> = BTreeMap::new();
        for id in &self.demand {
            *waiting.entry(*id).or_default() += 1;
        }
        let holders: Vec<Value> = self
            .conns
            .iter()
            .filter(|(id, c)| c.held > 0 || waiting.contains_key(id))
            .map(|(id, c)| {
                json!({"label": c.label, "pid": c.pid, "held": c.held, "on_offer": u32::from(c.offered),
                       "waiting": waiting.get(id).copied().unwrap_or(0)})
            })
            .collect();
        let on_offer = self.conns.values().filter(|c| c.offered && c.held > 0).count() as u32;
        json!({
            "tokens": self.tokens,
            "held": self.tokens - self.free,
            "in_use": (self.tokens - self.free).saturating_sub(on_offer),
            "on_offer": on_offer,
            "waiting": self.demand.len(),
            "holders": holders,
        })
    }

    /// Connection `id` closed (or was cut off): everything it held comes back at once.
    pub fn close(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            self.free += conn.held;
            self.demand.retain(|q| *q != id);
            self.stock.retain(|q| *q != id);
            if self.conns.is_empty() {
                self.last_seen = Some(Instant::now());
            }
            self.dispatch();
            self.tell_holders();
        }
    }
}
