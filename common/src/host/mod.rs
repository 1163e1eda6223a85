//! Worktrees on other hosts, over the system `ssh` and git.
//!
//! A record with `host` is acted on at that host: the tool hands it, in order, to the same tool
//! there (`ssh H <tool> --json -C <path> …`) and streams that tool's records back into the
//! local stream, each with `host` set. A record without `host` is acted on here. Branches travel
//! through git over the same ssh connection. There is no daemon and no ssh client of our own:
//! the user's OpenSSH, their ssh config, their keys and their known hosts.
//!
//! - `config`: the `[hosts.NAME]` sections of wt.toml.
//! - `quote`: quoting for the remote shell, and what may be sent at all.
//! - `ssh`: the ssh command line (one multiplexed connection per host).
//! - `remote`: a tool's command line at a host, and a session that streams records through it.
//! - `router`: splits a tool's stdin between this machine and the hosts.
//! - `guard`: the remote end's wrapper that ends the tool when the connection drops.
//! - `repo`: making sure the repository and a base exist at a host; fetching a branch back.

pub mod config;
pub mod guard;
pub mod quote;
pub mod remote;
pub mod repo;
pub mod router;
pub mod ssh;

pub use config::{Host, Hosts};
pub use router::Router;

/// The record key that names the host of a worktree.
pub const KEY: &str = "host";

/// The host a record names, if any.
pub fn of(rec: &crate::Record) -> Option<&str> {
    rec.key(KEY).and_then(serde_json::Value::as_str)
}

/// The record of a worktree at `host` that `tool` could not handle (or, with no name, of the
/// whole request to that host).
pub fn failed(name: &str, host: &str, tool: &str, err: &crate::Error) -> crate::Record {
    let mut rec = crate::Record::failed(name, tool, err);
    rec.set_key(KEY, host.into());
    rec
}
