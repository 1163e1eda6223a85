//! A stream to one client (`pane.attach`: raw output as base64 lines; `events.subscribe`: one
//! JSON line per event), fed from its bounded queue (`fanout`) and written by its connection on
//! the event loop (`conn`) as the client reads. One shape for both: what differs is how an
//! item becomes a line, which items the client may see, and the reason it gets if it falls too
//! far behind.

use serde_json::{json, Value};

use super::fanout::{Subscription, ATTACH_QUEUE, EVENT_QUEUE};

/// What a stream has for its client next.
#[derive(Debug)]
pub enum Next {
    /// A line to write (with its newline).
    Line(Vec<u8>),
    /// Nothing queued now.
    Empty,
    /// The queue ended: the client was dropped for not reading (`reason` to send), or what it
    /// followed is gone (`None`).
    End(Option<Value>),
    /// The connection no longer acts for what it was accepted for: close it.
    Stop,
}

/// A stream as its connection sees it.
pub trait Feed: Send {
    fn next(&mut self) -> Next;
    /// Lets the queue go (the client is dropped): what was queued goes now, not when the
    /// reason is read.
    fn drop_queue(&mut self);
    /// Why a client that read nothing for too long was dropped.
    fn reason(&self) -> Value;
}

/// A stream of `T`s: `line` makes an item its client's line, or `None` for an item that is
/// not this client's; `current` says whether the connection still acts for what it was
/// accepted for.
pub struct Stream<T> {
    queue: Option<Subscription<T>>,
    line: Box<dyn FnMut(T) -> Option<Vec<u8>> + Send>,
    current: Box<dyn Fn() -> bool + Send>,
    bound: usize,
    what: &'static str,
}

impl<T> std::fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("what", &self.what).finish_non_exhaustive()
    }
}

impl<T: Send> Feed for Stream<T> {
    fn next(&mut self) -> Next {
        let Some(queue) = &self.queue else { return Next::End(None) };
        loop {
            match queue.rx.try_recv() {
                Ok(item) => {
                    let Some(line) = (self.line)(item) else { continue };
                    if !(self.current)() {
                        return Next::Stop;
                    }
                    return Next::Line(line);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return Next::Empty,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    let overflowed = queue.overflowed();
                    self.queue = None;
                    return Next::End(overflowed.then(|| self.reason()));
                }
            }
        }
    }

    fn drop_queue(&mut self) {
        self.queue = None;
    }

    fn reason(&self) -> Value {
        too_slow(self.bound, self.what)
    }
}

/// `pane.attach`'s stream: every chunk of the pane's output (the first a redraw of its screen).
pub fn output(queue: Subscription<Vec<u8>>) -> Box<dyn Feed> {
    let line = |chunk: Vec<u8>| Some(json_line(&json!({"data_b64": super::attach::encode(&chunk)})));
    Box::new(Stream {
        queue: Some(queue),
        line: Box::new(line),
        current: Box::new(|| true),
        bound: ATTACH_QUEUE,
        what: "chunks of output",
    })
}

/// `events.subscribe`'s stream: every event, or only those of the pane `only`, while
/// `current` holds.
pub fn events(
    queue: Subscription<Value>,
    only: Option<String>,
    current: Box<dyn Fn() -> bool + Send>,
) -> Box<dyn Feed> {
    let line = move |event: Value| only.as_ref().is_none_or(|p| event["pane"] == p.as_str()).then(|| json_line(&event));
    Box::new(Stream { queue: Some(queue), line: Box::new(line), current, bound: EVENT_QUEUE, what: "events" })
}

/// `value` as a line of JSON.
pub fn json_line(value: &impl serde::Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).expect("serializes");
    line.push(b'\n');
    line
}

/// The last line a client that fell too far behind gets before it is disconnected.
fn too_slow(bound: usize, what: &str) -> Value {
    json!({"error": {"code": "too-slow", "message": format!("disconnected: more than {bound} {what} were waiting to be read; read faster, or reconnect")}})
}
