//! wt-run's part in the build governor (docs/governor.md): a batch run holds one token for its
//! implicit job slot while it runs and its command gets the jobserver; a pane holds none, but
//! its agent's builds get the jobserver too.

use wt_common::proc::governor::{self, Lease, Settings, Slot};
use wt_common::Error;

/// The lease of a batch run's command, `None` when it goes ungoverned. `--passthrough` runs
/// are a wt-watch round's or a wt-merge verification's command, whose tool holds the lease.
pub fn batch(settings: &Settings, passthrough: bool, name: &str, echo: bool) -> Result<Option<Lease>, Error> {
    if passthrough {
        return Ok(None);
    }
    let label = format!("wt-run {name}");
    governor::lease(settings, Slot::Job, &label, &mut |ahead| {
        if echo {
            eprintln!("{name} | wt-run: queued for a build slot ({ahead} ahead)");
        }
        tracing::info!("{name}: queued ({ahead} ahead)");
    })
}

/// Panes are governed only when asked (`WT_GOVERNOR_PANES=on`): a lease's feeder is a thread
/// that looks at its FIFO every 20 ms, and the governor a thread per connection; held by every
/// pane for its whole life, that is a thread and 50 wakeups a second per idle pane, which the
/// supervisor must not cost (docs/governor.md, "Limits"). Batch runs, rounds and verifications
/// hold theirs only while their command runs.
pub const PANES: &str = "WT_GOVERNOR_PANES";

/// The pane's part, taken by the supervisor as it starts the pane: the environment the wt-run
/// that asked for the pane passed (`WT_GOVERNOR`, `WT_GOVERNOR_TOKENS`, `WT_GOVERNOR_PANES`)
/// says whether and how.
/// The pane's program reaches the jobserver by its path only (a PTY's child inherits no other
/// descriptors), so `MAKEFLAGS` names it only for a make that reads `fifo:` (GNU make ≥ 4.4).
pub fn pane(env: &[(String, String)], name: &str) -> Option<Lease> {
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    if get("WT_GOVERNOR") == Some("off") || get(PANES) != Some("on") {
        return None;
    }
    let tokens = get("WT_GOVERNOR_TOKENS").and_then(|t| t.parse().ok())?;
    let settings = Settings { enabled: true, tokens };
    match governor::lease(&settings, Slot::Pane, &format!("pane {name}"), &mut |_| {}) {
        Ok(lease) => lease,
        Err(e) => {
            tracing::warn!("{name}: goes ungoverned: {e}");
            None
        }
    }
}

/// What the pane's program gets in its environment from its lease.
pub fn pane_env(lease: &Lease) -> Vec<(String, String)> {
    lease.env().iter().filter(|(k, _)| k == "CARGO_MAKEFLAGS" || governor::make_speaks_fifo()).cloned().collect()
}

/// What wt-run tells the supervisor about a pane (in its environment, see `pane`).
pub fn pane_request(settings: &Settings) -> Vec<(String, String)> {
    if !settings.enabled {
        return vec![("WT_GOVERNOR".into(), "off".into())];
    }
    let mut env = vec![("WT_GOVERNOR_TOKENS".into(), settings.tokens.to_string())];
    if std::env::var(PANES).is_ok_and(|v| v == "on") {
        env.push((PANES.into(), "on".into()));
    }
    env
}
