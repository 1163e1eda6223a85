//! Records of worktrees at other hosts: their branch is fetched from the host (git over its
//! ssh connection) into `hosts/<host>/<branch>` here and merged by the same queue, verified as
//! any other; this queue stays the one writer of the target. `--cleanup` removes the worktree
//! at its host, through that host's wt-create.

use serde_json::{json, Value};
use wt_common::host::{self, Hosts};
use wt_common::{git, Error, Record};

use crate::queue::Queue;

/// Merges the record of a worktree at `host_name`. `queue` must not clean up: what it would
/// remove is this machine's.
pub fn merge(queue: &Queue, hosts: &Hosts, host_name: &str, rec: Record, cleanup: bool) -> Record {
    if rec.has_error() {
        return rec;
    }
    let fail = |mut rec: Record, e: Error| {
        rec.set_error(crate::TOOL, &e);
        rec.set_key("merge", json!({"into": queue.into, "strategy": queue.strategy, "status": "error"}));
        rec
    };
    let host = match hosts.get(host_name) {
        Ok(h) => h,
        Err(e) => return fail(rec, e),
    };
    let Some(branch) = rec.branch.clone() else {
        let e = Error::failed("no-branch", format!("'{}' has no branch to merge", rec.name));
        return fail(rec, e);
    };
    let dir = queue.repo.git_dir();
    let local = match host::repo::fetch_branch(dir, host, &branch) {
        Ok(l) => l,
        Err(e) => return fail(rec, e),
    };
    // The queue sees a local branch and a name no local worktree has; nothing of this machine
    // at the host's path.
    let mut here = rec.clone();
    here.name = format!("{}@{host_name}", rec.name);
    here.branch = Some(local.clone());
    here.path = None;
    let merged = queue.merge(here);
    let mut out = rec;
    let mut m = merged.key("merge").cloned().unwrap_or_else(|| json!({}));
    out.error = merged.error;
    if m.get("status") == Some(&Value::from("merged")) {
        let _ = git::run(dir, ["branch", "-D", "--quiet", &local]);
        if cleanup {
            m["cleanup"] = match host::repo::remove_worktree(host, &out.name) {
                Ok(()) => json!({"removed": true}),
                Err(e) => json!({"removed": false, "error": e.message}),
            };
        }
    }
    out.set_key("merge", m);
    out
}
