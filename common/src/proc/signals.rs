//! One signal discipline for every tool that runs commands (wt-run's runs, wt-merge's
//! verification): on Ctrl-C or SIGTERM the tool ends every running group (SIGTERM, then SIGKILL
//! after the grace), prints the records of the runs it stopped, and exits 128+N. On SIGKILL,
//! which no tool can catch, each command dies with it (`process::run` asks the kernel for a
//! parent-death signal).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::proc::process::Groups;

/// The signal `on_interrupt` caught, in this process: for a wait that must end on it (a run
/// queued for a build slot).
static CAUGHT: OnceLock<i32> = OnceLock::new();

/// The signal caught, once one was (see `on_interrupt`).
pub fn interrupted() -> Option<i32> {
    CAUGHT.get().copied()
}

/// Starts a thread that, on SIGINT or SIGTERM, ends every group in `groups`. The returned cell
/// holds the signal once one arrived.
pub fn on_interrupt(groups: Groups, grace: Duration) -> Arc<OnceLock<i32>> {
    let got = Arc::new(OnceLock::new());
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else { return got };
    let cell = Arc::clone(&got);
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let _ = CAUGHT.set(sig);
            let _ = cell.set(sig);
            let live: Vec<i32> = groups.lock().map(|g| g.iter().copied().collect()).unwrap_or_default();
            for pgid in &live {
                let _ = killpg(Pid::from_raw(*pgid), Signal::SIGTERM);
            }
            std::thread::sleep(grace);
            for pgid in live {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
        }
    });
    got
}
