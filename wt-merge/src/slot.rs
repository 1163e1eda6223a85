//! A verification is one job for the build governor (docs/governor.md): it waits for a job
//! slot (on a terminal: `wt-merge: NAME: queued (N ahead)`), holds the slot's token while its
//! prepare and verify commands run, and those commands get the jobserver.
//!
//! The slot is taken before the batch's turn at the merge queue (`hold`), never after: a
//! wt-merge that held the turn while it waited for a token would wait for ever on a governed
//! job whose own command waits for that turn (a `wt-run -- wt-merge …` holding the only token).

use std::io::IsTerminal;
use std::sync::Mutex;

use wt_common::proc::governor::{self, Lease, Settings, Slot};
use wt_common::Error;

/// The slot a batch holds through its turn (`hold`), used by each verification in it.
static HELD: Mutex<Option<Lease>> = Mutex::new(None);

/// Takes the batch's job slot before its turn at the queue; given back when the guard drops.
pub fn hold(settings: &Settings, label: &str) -> Result<Held, Error> {
    let lease = take(settings, label)?;
    *HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = lease;
    Ok(Held)
}

/// The batch's slot, while held (dropping it gives the token back).
#[derive(Debug)]
pub struct Held;

impl Drop for Held {
    fn drop(&mut self) {
        HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }
}

/// The held slot's lock, for a verification to run in (its lease, if governed).
pub fn held() -> std::sync::MutexGuard<'static, Option<Lease>> {
    HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits for the verification's job slot; `None` when it goes ungoverned.
pub fn take(settings: &Settings, name: &str) -> Result<Option<Lease>, Error> {
    let terminal = std::io::stderr().is_terminal();
    governor::lease(settings, Slot::Job, &format!("wt-merge {name}"), &mut |ahead| {
        if terminal {
            eprint!("\r\x1b[Kwt-merge: {name}: queued ({ahead} ahead)");
        }
        tracing::info!("{name}: verification queued ({ahead} ahead)");
    })
}
