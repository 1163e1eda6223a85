//! `run.confined` (and `run.pane.confined`): what `--confine` enforced on this run, so nobody
//! has to guess. docs/protocol.md documents every key; a test keeps the two in step.

use std::path::PathBuf;

use serde::Serialize;

use super::{Policy, Report};

/// What a confined run could still do, whatever the kernel: the record says so on every run.
pub const NOT_COVERED: &[&str] =
    &["reading-files", "network-egress", "udp", "listen-without-bind", "pathname-unix-sockets", "database-servers"];

#[derive(Debug, Clone, Serialize)]
pub struct Confined {
    /// `strict` or `best-effort`.
    pub mode: String,
    /// `full` (everything below holds), `partial` (best effort: see `missing`), `none`.
    pub enforced: String,
    /// The kernel's Landlock ABI (0: no Landlock).
    pub landlock_abi: u32,
    /// `read-only except write`: every mount read-only (metadata too) but the `write` list.
    pub filesystem: String,
    /// Where the command may write.
    pub write: Vec<PathBuf>,
    /// `private-store`: commits land in a private store, published after checking; `shared`:
    /// (best effort without a mount namespace) the command writes the shared store.
    pub git: String,
    /// `bind: leased ports only`, or `unrestricted` (no lease).
    pub net: String,
    /// The leased block `[first, last]`, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<[u16; 2]>,
    /// Landlock scopes: `signal`, `abstract-unix-socket`.
    pub scopes: Vec<String>,
    /// What the run has of its own: `tmp`, `shm`, `pts`.
    pub private: Vec<String>,
    /// `none`: every capability dropped.
    pub capabilities: String,
    /// Features the kernel lacked (only with `best-effort`).
    pub missing: Vec<String>,
    /// What `--confine` never covers (see the threat model in docs/security.md).
    pub not_covered: Vec<String>,
    /// The directories hidden from the command (where a pane supervisor or a tmux server of
    /// the user may listen).
    pub hidden: Vec<PathBuf>,
    /// Each shared dependency directory (`wt-create --share`) and how the run sees it:
    /// `copy-on-write` (an overlay: what it changes stays in its worktree's layer) or
    /// `read-only` (where the kernel could not make an overlay).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<serde_json::Value>,
    /// A confined pane's own socket (its `WT_SOCKET`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// A confined pane's `--confine-read-panes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_panes: Option<bool>,
    /// Set once the run's branch was published: `branch`, `from`, `to`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<serde_json::Value>,
}

impl Confined {
    pub fn new(mode: &str, policy: &Policy, report: &Report) -> Confined {
        let lacks = |f: &str| report.missing.iter().any(|m| m == f);
        let namespace = !lacks("mount-namespace") && !report.enforced.is_empty();
        let scopes = ["signal", "abstract-unix-socket"]
            .into_iter()
            .filter(|s| !lacks(&format!("scope-{s}")) && !report.enforced.is_empty())
            .map(String::from)
            .collect();
        let ports = match (policy.ports.first(), policy.ports.last()) {
            (Some(a), Some(b)) => Some([*a, *b]),
            _ => None,
        };
        Confined {
            mode: mode.into(),
            enforced: report.enforced.clone(),
            landlock_abi: report.landlock_abi,
            filesystem: if namespace { "read-only except write" } else { "landlock: write only in write" }.into(),
            write: policy.write.clone(),
            git: if namespace { "private-store" } else { "shared" }.into(),
            net: if ports.is_some() && !lacks("landlock-net") { "bind: leased ports only" } else { "unrestricted" }
                .into(),
            ports,
            scopes,
            private: if namespace { vec!["tmp".into(), "shm".into(), "pts".into()] } else { Vec::new() },
            capabilities: if lacks("capability-drop") { "kept" } else { "none" }.into(),
            missing: report.missing.clone(),
            not_covered: NOT_COVERED.iter().map(|s| s.to_string()).collect(),
            hidden: report.hidden.clone(),
            shared: report.shared.iter().map(|(dir, how)| serde_json::json!({"dir": dir, "as": how})).collect(),
            socket: None,
            read_panes: None,
            published: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key `run.confined` can have is documented in docs/protocol.md's table, and the
    /// table names no key the type lacks.
    #[test]
    fn the_documented_shape_is_the_written_shape() {
        let policy = Policy { ports: vec![20000, 20009], ..Policy::default() };
        let report = Report {
            enforced: "full".into(),
            landlock_abi: 7,
            shared: vec![(PathBuf::from("/w/node_modules"), "copy-on-write".into())],
            ..Report::default()
        };
        let mut rec = Confined::new("strict", &policy, &report);
        rec.published = Some(serde_json::json!({}));
        rec.socket = Some(PathBuf::from("/run/wt/x.sock"));
        rec.read_panes = Some(false);
        let value = serde_json::to_value(&rec).unwrap();
        let mut written: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        written.sort();
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md")).unwrap();
        let section = doc.split("### `run.confined`").nth(1).expect("docs/protocol.md has a `run.confined` section");
        let section = section.split("\n#").next().unwrap();
        let mut documented: Vec<String> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(String::from)
            .collect();
        documented.sort();
        assert_eq!(written, documented, "run.confined and its table in docs/protocol.md differ");
    }
}
