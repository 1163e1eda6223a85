//! wt-watch: not built yet (a later issue). The binary exists so that pipelines and `make install`
//! see the whole toolkit, and says plainly that it cannot do its job yet.

pub mod args;
pub mod excerpt;

use wt_common::Exit;

/// What the binary says until the tool is built.
pub const NOT_BUILT: &str = "wt-watch is not built yet (a later issue); nothing was done";

/// Prints why nothing happens and gives the usage exit code.
pub fn run() -> Exit {
    eprintln!("{NOT_BUILT}");
    Exit::Usage
}
