//! wt-run's part in the build governor (docs/governor.md): a batch run holds one token for its
//! implicit job slot while it runs and its command gets the jobserver; a pane holds none, but
//! its agent's builds get the jobserver too, by default.

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

/// The pane's part, taken by the supervisor as it starts the pane: the environment the wt-run
/// that asked for the pane passed (`WT_GOVERNOR=off`, or `WT_GOVERNOR_TOKENS`) says whether
/// and how; a request that says neither (a client of the socket of its own) goes by the
/// supervisor's own environment. The lease costs the supervisor no thread and no wakeup of
/// its own while the pane idles: one feeder thread serves every lease (docs/governor.md).
/// The pane's program reaches the jobserver by its path only (a PTY's child inherits no other
/// descriptors), so `MAKEFLAGS` names it only for a make that reads `fifo:` (GNU make ≥ 4.4).
pub fn pane(env: &[(String, String)], name: &str) -> Option<Lease> {
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    if get(governor::lease::IN_JOB).is_some() {
        return None; // a job's pane (a wt-watch round's test pane): the job's jobserver is in env
    }
    let settings =
        match (get("WT_GOVERNOR"), get("WT_GOVERNOR_TOKENS").and_then(|t| t.parse().ok()).filter(|t: &u32| *t > 0)) {
            (Some("off" | "0"), _) => return None,
            (_, Some(tokens)) => Settings { enabled: true, tokens },
            _ => match governor::settings(None, false) {
                Ok(settings) => settings,
                Err(e) => {
                    tracing::warn!("{name}: goes ungoverned: {e}");
                    return None;
                }
            },
        };
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

/// What wt-run tells the supervisor about a pane (in its environment, see `pane`). A confined
/// pane goes ungoverned: its sandbox is laid out before the supervisor would make the lease, so
/// its program could not reach the FIFO, and a spare stocked there would only sit idle.
pub fn pane_request(settings: &Settings, confined: bool) -> Vec<(String, String)> {
    if !settings.enabled || confined {
        return vec![("WT_GOVERNOR".into(), "off".into())];
    }
    vec![("WT_GOVERNOR_TOKENS".into(), settings.tokens.to_string())]
}

/// A confined batch run's command gets its jobserver too, by path: the sandbox lets it write
/// that one FIFO (Landlock, and a writable bind of it into the socket directory the sandbox
/// hides) and keeps the variables naming it. The FIFO is the run's `lease`'s, or for a
/// `--passthrough` run the one its tool (a wt-watch round, a wt-merge verification) holds and
/// passed in `CARGO_MAKEFLAGS` (`passed_on`); only a FIFO of the governor's own directory is
/// let through, so a variable from an agent's env file cannot open a path to writes. What the
/// command's environment gets.
pub fn confined(policy: &mut crate::confine::Policy, lease: Option<&Lease>, passed_on: bool) -> Vec<(String, String)> {
    let from_lease = lease.map(|l| l.env().to_vec());
    if from_lease.is_none() && !passed_on {
        return Vec::new();
    }
    let vars: Vec<(String, String)> = from_lease.unwrap_or_else(|| {
        ["CARGO_MAKEFLAGS", "MAKEFLAGS", governor::lease::IN_JOB]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect()
    });
    let cargo = vars.iter().find(|(k, _)| k == "CARGO_MAKEFLAGS").map(|(_, v)| v.as_str());
    let Some(fifo) = cargo.and_then(governor::makeflags::fifo_of).and_then(|p| ours(&p)) else { return Vec::new() };
    let form = format!("--jobserver-auth=fifo:{}", fifo.display());
    // By path only: descriptors do not reach through the sandbox's helper.
    let kept: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, v)| {
            k == "CARGO_MAKEFLAGS"
                || k == governor::lease::IN_JOB
                || (k == "MAKEFLAGS" && v.contains(&form) && governor::make_speaks_fifo())
        })
        .collect();
    policy.write.push(fifo);
    policy.env_keep.extend(kept.iter().map(|(k, _)| k.clone()));
    kept
}

/// `path` if it is a FIFO the governor's leases make (`<socket dir>/jobs/<name>`, not a link).
fn ours(path: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let jobs = wt_common::proc::supervisor::socket_dir().ok()?.join("jobs").canonicalize().ok()?;
    let name = path.file_name()?;
    let parent = path.parent()?.canonicalize().ok()?;
    let fifo = jobs.join(name);
    let is_fifo = std::fs::symlink_metadata(&fifo).is_ok_and(|m| m.file_type().is_fifo());
    (parent == jobs && is_fifo).then_some(fifo)
}
