//! A verification is one job for the build governor (docs/governor.md): it waits for a job
//! slot before it starts (on a terminal: `wt-merge: NAME: queued (N ahead)`), holds the slot's
//! token while its prepare and verify commands run, and those commands get the jobserver.

use std::io::IsTerminal;

use wt_common::proc::governor::{self, Lease, Settings, Slot};
use wt_common::Error;

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
