//! The build governor: one GNU make jobserver per user and machine for every command wt
//! starts, so N agents' builds share the machine's cores instead of asking for N × cores jobs
//! (docs/governor.md).
//!
//! - `server`: the process holding the tokens, started on demand, ending when idle.
//! - `client`: a connection to it (and starting it).
//! - `lease`: one governed command's own FIFO, fed from the server by its wt parent, so a
//!   command (or parent) that dies gives back what it held.
//! - `feeder`: the one thread per process that keeps every lease's FIFO stocked.
//! - `tokens`: the server's books (who holds, who waits, who is told).
//! - `makeflags`: what the command's `MAKEFLAGS`/`CARGO_MAKEFLAGS` say.

pub mod client;
mod feeder;
pub mod lease;
pub mod makeflags;
pub mod server;
mod tokens;

use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

pub use lease::Lease;

use crate::Error;

/// `[governor]` in wt.toml.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many jobs may run at once across all governed commands (default: the cores).
    pub tokens: Option<u32>,
}

/// Whether and how commands are governed.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub enabled: bool,
    pub tokens: u32,
}

/// What a governed command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A batch run, a test round, a verification: it holds one token for the implicit job slot
    /// every jobserver client has, for as long as it runs.
    Job,
    /// An agent's pane: not a job itself, so it holds no token; its builds get their implicit
    /// slot beyond the pool. Its program reaches the FIFO by its path only (no descriptors: a
    /// PTY's child inherits none), and an idle pane stocks its spare behind every demand.
    Pane,
    /// A command this process starts that takes no slot of its own, because another already
    /// covers it: a job inside a governed job, a re-run of a red round's failing tests. Like a
    /// job's, its command inherits the FIFO's descriptors (a make older than 4.4 reads only
    /// those) and its every ask is a demand.
    Covered,
}

/// The settings from `--no-governor`, `WT_GOVERNOR` (`off`), `WT_GOVERNOR_TOKENS`, then
/// `[governor] tokens` in the wt.toml at `root`, then the number of cores.
pub fn settings(root: Option<&Path>, no_governor: bool) -> Result<Settings, Error> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let off = match std::env::var("WT_GOVERNOR").as_deref() {
        Err(_) | Ok("" | "on" | "1") => false,
        Ok("off" | "0") => true,
        Ok(other) => {
            return Err(Error::usage(
                "bad-env",
                format!("WT_GOVERNOR='{}' is neither on nor off", other.escape_debug()),
            ))
        }
    };
    if no_governor || off {
        return Ok(Settings { enabled: false, tokens: cores });
    }
    let from_env = match std::env::var("WT_GOVERNOR_TOKENS") {
        Err(_) => None,
        Ok(t) => Some(t.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            Error::usage(
                "bad-env",
                format!("WT_GOVERNOR_TOKENS='{}' is not a positive number of jobs", t.escape_debug()),
            )
        })?),
    };
    let tokens = match from_env {
        Some(t) => t,
        None => {
            let config: Config = crate::config::section(root, "governor")?;
            match config.tokens {
                Some(0) => return Err(Error::usage("bad-config", "[governor] tokens must be at least 1 in wt.toml")),
                Some(t) => t,
                None => cores,
            }
        }
    };
    Ok(Settings { enabled: true, tokens })
}

/// A jobserver for a command about to start, or `None` when it goes ungoverned (`--no-governor`,
/// or the person set `-jN` in `MAKEFLAGS`). A job waits here for its token, telling `queued`
/// how many asks are ahead of it.
pub fn lease(
    settings: &Settings,
    slot: Slot,
    label: &str,
    queued: &mut dyn FnMut(usize),
) -> Result<Option<Lease>, Error> {
    if !settings.enabled {
        return Ok(None);
    }
    let person = std::env::var("MAKEFLAGS").ok();
    if person.as_deref().is_some_and(makeflags::explicit_jobs) {
        tracing::debug!("{label}: ungoverned: MAKEFLAGS sets an explicit -j ({})", person.unwrap_or_default());
        return Ok(None);
    }
    // Inside a confined run the socket directory is hidden (or not ours): no governor there.
    let reachable = crate::proc::supervisor::socket_dir().is_ok_and(|d| !crate::proc::supervisor::hidden_here(&d));
    if !reachable {
        tracing::debug!("{label}: ungoverned: the governor is out of reach here (a confined run?)");
        return Ok(None);
    }
    // Inside a governed job (a wt-run under a wt-merge verification, wt-watch run by a batch
    // run): that job's token covers this one's slot; taking another could wait forever.
    let slot = match std::env::var_os(lease::IN_JOB) {
        Some(_) if slot == Slot::Job => {
            tracing::debug!("{label}: inside a governed job: its slot is that job's");
            Slot::Covered
        }
        _ => slot,
    };
    let mut conn = client::Connection::open(label, settings.tokens)?;
    if slot == Slot::Job {
        if let Err(e) = conn.acquire(queued) {
            if e.code != "governor-lost" {
                return Err(e);
            }
            // The governor died (killed) while this one waited: a new one is started, and the
            // run queues there, rather than failing.
            tracing::warn!("{label}: {}; asking a new one", e.message);
            conn = client::Connection::open(label, settings.tokens)?;
            conn.acquire(queued)?;
        }
    }
    Lease::start(conn, person.as_deref(), slot).map(Some)
}

/// For a long-lived process started from inside a governed job (the pane supervisor, the
/// governor itself): the job's jobserver variables are the job's, not theirs, and would reach
/// every pane for its whole life (a FIFO gone with the job, and `WT_GOVERNOR_JOB`, which makes
/// the wt tools an agent runs there skip their slot). The person's own `MAKEFLAGS` stays.
pub fn outside_any_job(cmd: &mut std::process::Command) -> &mut std::process::Command {
    if std::env::var_os(lease::IN_JOB).is_some() {
        for var in [lease::IN_JOB, "MAKEFLAGS", "CARGO_MAKEFLAGS", "MFLAGS"] {
            cmd.env_remove(var);
        }
    }
    cmd
}

/// Whether the `make` on PATH reads `--jobserver-auth=fifo:PATH` (GNU make ≥ 4.4); older
/// makes get the descriptors (`R,W`), which every make reads, but ninja does not.
pub fn make_speaks_fifo() -> bool {
    static FIFO: OnceLock<bool> = OnceLock::new();
    *FIFO.get_or_init(|| {
        let out = std::process::Command::new("make")
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output();
        // No make here: the descriptors, which every make reads (a make < 4.4 on the command's
        // own PATH stops on a `fifo:` it cannot read); cargo gets the path regardless.
        let Ok(out) = out else { return false };
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.lines().next().and_then(|l| l.strip_prefix("GNU Make ")).unwrap_or("");
        let mut parts = version.split('.').map(|p| p.trim().parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (4, 4)
    })
}
