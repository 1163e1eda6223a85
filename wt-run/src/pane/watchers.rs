//! One thread looks at every native pane for its tracker (its agent state): when a pane
//! printed, was typed into or ended (`poke`), and when a tracker's timer is due (the quiet
//! time after the last output, a throttled look at the screen). Nothing else wakes it, so
//! idle panes cost no thread and no wakeup each.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::pty::Pane;
use super::tracker::{NativeWatch, Tracker, OUTPUT_EVERY};

#[derive(Debug, Default)]
struct Queue {
    added: Vec<NativeWatch>,
    poked: bool,
    running: bool,
    /// When the last poke came: see `run`.
    last_poke: Option<Instant>,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue { added: Vec::new(), poked: false, running: false, last_poke: None });
static WOKEN: Condvar = Condvar::new();

fn queue() -> std::sync::MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Watches `pane` for `tracker` until the pane ends.
pub fn watch(tracker: Arc<Tracker>, pane: Arc<Pane>) {
    let mut q = queue();
    q.added.push(NativeWatch::new(tracker, pane));
    q.poked = true;
    if !q.running {
        q.running = true;
        std::thread::spawn(run);
    }
    WOKEN.notify_one();
}

/// Something changed in some pane: look again.
pub fn poke() {
    let mut q = queue();
    q.last_poke = Some(Instant::now());
    if !q.poked {
        q.poked = true;
        WOKEN.notify_one();
    }
}

fn run() {
    let mut watches: Vec<NativeWatch> = Vec::new();
    loop {
        let mut q = queue();
        watches.append(&mut q.added);
        q.poked = false;
        drop(q);
        let mut next: Option<Instant> = None;
        watches.retain_mut(|w| match w.step() {
            None => false,
            Some(wake) => {
                next = next.into_iter().chain(wake).min();
                true
            }
        });
        let mut q = queue();
        // The pump pokes at most every OUTPUT_EVERY while output flows: a chunk that came
        // within that time of its last poke, after the look that poke caused (a look for a
        // keystroke, which saw no output yet), pokes no one. One more look OUTPUT_EVERY after
        // any poke sees it; after that, a look that saw output asks for the next itself.
        if q.last_poke.is_some_and(|at| at.elapsed() < OUTPUT_EVERY * 2) {
            let again = Instant::now() + OUTPUT_EVERY;
            next = Some(next.map_or(again, |n| n.min(again)));
        }
        while !q.poked {
            match next {
                None => q = WOKEN.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        break;
                    }
                    q = WOKEN.wait_timeout(q, at - now).unwrap_or_else(std::sync::PoisonError::into_inner).0;
                }
            }
        }
    }
}
