//! Panes: agents in terminals held by a supervisor, and the clients that drive them over its
//! socket. See `server` for the supervisor, `pty` for a pane, `protocol` for the wire format.

pub mod access;
pub mod agent;
pub mod answer;
pub mod attach;
pub mod client;
pub mod emulator;
pub mod epoll;
pub mod events;
pub mod fanout;
pub mod handle;
pub mod notify;
pub mod on_state;
pub mod orphans;
pub mod osc;
pub mod own_socket;
pub mod peer;
pub mod program;
pub mod protocol;
pub mod pty;
pub mod pump;
pub mod rawlog;
pub mod reactor;
pub mod rules;
pub mod run_shortener;
pub mod server;
pub mod socket;
pub mod status_file;
pub mod tmux;
pub mod tracker;
pub mod verbs;
pub mod wait;
pub mod watchers;
