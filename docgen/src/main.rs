//! `wt-docgen OUT_DIR`: shell completions (bash, zsh, fish) and man pages for every wt tool,
//! generated from the same clap definitions the tools parse with, so they never disagree.
//! `make install` runs it and installs what it writes. Not a tool: it only reads definitions.
//!
//! The completion scripts are small: each <TAB> asks the tool itself (`WT_COMPLETE=<shell>`,
//! see `wt_common::record::complete`), which answers from its clap definition and the
//! repository (worktree and pane names).

mod man;

use std::path::{Path, PathBuf};

use clap::CommandFactory;

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

fn commands() -> [clap::Command; 6] {
    [
        wt_create::args::Args::command(),
        wt_env::args::Args::command(),
        wt_run::args::Args::command(),
        wt_merge::args::Args::command(),
        wt_watch::args::Args::command(),
        wt_status::args::Args::command(),
    ]
}

fn write_all(out: &Path) -> std::io::Result<()> {
    for cmd in commands() {
        // `help` subcommands would each get a man page of their own: the pages say it all.
        let cmd = without_help_subcommands(cmd);
        let name = cmd.get_name().to_string();
        for shell in wt_common::record::complete::SHELLS {
            let dir = out.join("completions").join(shell);
            std::fs::create_dir_all(&dir)?;
            // The names each shell's completion directory expects (see `make install`).
            let file = match shell {
                "bash" => format!("{name}.bash"),
                "zsh" => format!("_{name}"),
                _ => format!("{name}.{shell}"),
            };
            std::fs::write(dir.join(file), wt_common::record::complete::registration(shell, &name)?)?;
        }
        let man = out.join("man");
        std::fs::create_dir_all(&man)?;
        man::write_pages(cmd, &man)?;
    }
    Ok(())
}

fn without_help_subcommands(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true).mut_subcommands(without_help_subcommands)
}

#[cfg(test)]
mod tests {
    /// Every argument of every command, subcommands included, says what it is.
    fn undocumented(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        let path = format!("{path} {}", cmd.get_name());
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if arg.get_help().is_none() && !["help", "version"].contains(&arg.get_id().as_str()) {
                missing.push(format!("{path}: {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            if sub.get_about().is_none() {
                missing.push(format!("{path} {}: no description", sub.get_name()));
            }
            undocumented(sub, &path, missing);
        }
    }

    #[test]
    fn every_argument_is_described_and_every_tool_has_examples() {
        let mut missing = Vec::new();
        for cmd in super::commands() {
            let examples = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(examples.contains("Examples:"), "{} --help has no examples", cmd.get_name());
            undocumented(&cmd, "", &mut missing);
        }
        assert!(missing.is_empty(), "arguments without a description: {missing:#?}");
    }
}
