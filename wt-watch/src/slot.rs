//! A test round is one job for the build governor (docs/governor.md): it waits for a job slot
//! before it starts, its status line saying `queued (N ahead)`, and holds the slot's token
//! while it runs; its command gets the jobserver, so a test suite that speaks it (cargo, make)
//! runs more jobs only as tokens come free.

use wt_common::proc::governor::{self, Lease, Settings, Slot};
use wt_common::Error;

/// Waits for the round's job slot; `None` when rounds go ungoverned.
pub fn take(settings: &Settings, name: &str, queued: &mut dyn FnMut(usize)) -> Result<Option<Lease>, Error> {
    governor::lease(settings, Slot::Job, &format!("wt-watch {name}"), queued)
}
