//! `wt-docgen OUT_DIR`: shell completions (bash, zsh, fish) and man pages for every wt tool,
//! generated from the same clap definitions the tools parse with, so they never disagree.
//! `make install` runs it and installs what it writes. Not a tool: it only reads definitions.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> std::process::ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("wt-docgen: give the directory to write into: wt-docgen OUT_DIR");
        return std::process::ExitCode::from(2);
    };
    match write_all(&out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wt-docgen: {}: {e}", out.display());
            std::process::ExitCode::from(3)
        }
    }
}

fn write_all(out: &Path) -> std::io::Result<()> {
    let commands = [
        wt_create::args::Args::command(),
        wt_env::args::Args::command(),
        wt_run::args::Args::command(),
        wt_merge::args::Args::command(),
        wt_status::args::Args::command(),
    ];
    for cmd in commands {
        // `help` subcommands would each get a man page of their own: the pages say it all.
        let mut cmd = without_help_subcommands(cmd);
        let name = cmd.get_name().to_string();
        for (shell, dir) in [(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")] {
            let dir = out.join("completions").join(dir);
            std::fs::create_dir_all(&dir)?;
            clap_complete::generate_to(shell, &mut cmd, &name, &dir)?;
        }
        let man = out.join("man");
        std::fs::create_dir_all(&man)?;
        clap_mangen::generate_to(cmd, &man)?;
    }
    Ok(())
}

fn without_help_subcommands(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true).mut_subcommands(without_help_subcommands)
}
