//! One thread looks at every tmux pane for its tracker, every `TMUX_EVERY` (tmux tells nothing
//! when a pane prints, so each pane's screen is sampled, one tmux command a look). It ends
//! when no tmux pane is left, so a supervisor without tmux panes has no such thread, and N
//! tmux panes cost one thread, not N.

use std::sync::{Arc, Mutex};

use super::tmux::TmuxPane;
use super::tracker::{TmuxWatch, Tracker, TMUX_EVERY};

#[derive(Debug, Default)]
struct Queue {
    added: Vec<TmuxWatch>,
    running: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue { added: Vec::new(), running: false });

fn queue() -> std::sync::MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Watches the tmux pane `pane` for `tracker` until it ends (or the supervisor lets it go).
pub fn watch(tracker: Arc<Tracker>, pane: Arc<TmuxPane>) {
    let mut q = queue();
    q.added.push(TmuxWatch::new(tracker, pane));
    if !q.running {
        q.running = true;
        std::thread::spawn(run);
    }
}

fn run() {
    let mut watches: Vec<TmuxWatch> = Vec::new();
    loop {
        std::thread::sleep(TMUX_EVERY);
        let mut q = queue();
        watches.append(&mut q.added);
        if watches.is_empty() {
            q.running = false;
            return;
        }
        drop(q);
        watches.retain_mut(TmuxWatch::step);
    }
}
