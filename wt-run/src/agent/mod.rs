//! The agent side of pane state: what an agent's hook payload means (`from_hook`), registering
//! those hooks in a worktree (`install`), and the per-agent screen profiles (`profiles`).

pub mod from_hook;
pub mod install;
pub mod profiles;
