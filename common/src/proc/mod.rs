//! Processes and locks: running commands in process groups and ending them (the reaper,
//! signals), file locks and judging stale ones, the sibling tools wt runs, the pane
//! supervisor's whereabouts, the build governor, failpoints for crash tests.

pub mod failpoint;
pub mod governor;
pub mod lock;
pub mod panes;
pub mod parallel;
pub mod process;
pub mod reaper;
pub mod sibling;
pub mod signals;
pub mod spawn;
pub mod stale_lock;
pub mod supervisor;
