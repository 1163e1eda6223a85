//! Confinement's store: the private git store of a confined worktree and publishing it, and
//! running a command through `wt-run --confine` from another tool.

pub mod store;
pub mod via;
