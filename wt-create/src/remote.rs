//! `wt-create --host H`: the worktrees are made at H, by wt-create there, in the repository
//! that `[hosts.H] path` names. First the remote tool's protocol version is checked and the
//! repository there is made (or brought up to date) with the base the worktrees start from,
//! pushed over git; then the request goes to the host's wt-create and its records come back
//! with `host`.

use wt_common::host::{self, quote, router, Hosts, Router};
use wt_common::record::output::Output;
use wt_common::{Error, Exit};

use crate::args::Args;
use crate::context::{Context, TOOL};

pub fn create_at(ctx: &Context, args: &Args, host_name: &str, out: &mut Output) -> Result<Exit, Error> {
    let root = ctx.repo.main_worktree.as_deref();
    let hosts = Hosts::load(root)?;
    let host = hosts.get(host_name)?;
    // Nothing is sent before every name is known to be safe on the other side.
    for n in &args.names {
        quote::check_sendable("name", n)?;
    }
    if let Some(p) = &args.prefix {
        quote::check_sendable("name", &format!("{p}-1"))?;
    }
    let mut forwarded = router::without_option(&router::forwarded_args(), "--base");
    if !(args.list || args.remove) {
        let fail = |e: Error, out: &mut Output| {
            out.emit(&host::failed("", host_name, TOOL, &e));
            Ok(Exit::Failed)
        };
        if let Err(e) = host::repo::check_tools(host, TOOL) {
            return fail(e, out);
        }
        let base = ctx.base(args.base.as_deref())?;
        let base_name = if args.base.is_some() || ctx.config.base.is_some() { base.name } else { main_branch(ctx)? };
        match host::repo::ensure_base(ctx.repo.git_dir(), host, &base_name) {
            Ok(remote_base) => forwarded.extend(["--base".to_string(), remote_base]),
            Err(e) => return fail(e, out),
        }
    }
    let stdin = args.names.is_empty() && args.count.is_none() && !args.list;
    Ok(Router::at_host(TOOL, root, host_name, forwarded, stdin)?.finish(Exit::Ok))
}

/// The branch checked out in the main worktree (what new worktrees start from by default).
fn main_branch(ctx: &Context) -> Result<String, Error> {
    let head = ctx.repo.main_head()?;
    Ok(head.map(|h| h.branch.unwrap_or(h.commit)).unwrap_or_else(|| "HEAD".into()))
}
