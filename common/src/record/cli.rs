//! Command-line conventions every tool shares: `-C DIR`, `--json`, `-v`, logging to stderr,
//! reading records from stdin, and turning an error into a one-line message and an exit code.

use std::io::{self, IsTerminal};
use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Exit};
use crate::record::jsonl::Reader;

/// Options every tool takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Run as if started in DIR (like `git -C DIR`)
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,

    /// Write JSON records even when stdout is a terminal
    #[arg(long, global = true)]
    pub json: bool,

    /// Act at HOST (a [hosts.HOST] of wt.toml) over ssh, in the repository there
    #[arg(long, value_name = "HOST", global = true)]
    pub host: Option<String>,

    /// Log more on stderr (-v info, -vv debug, -vvv trace); `WT_LOG` takes a full filter
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// How tools that act on existing worktrees are told which: `-w NAME` (repeatable) or `--all`;
/// without either, the records or names on stdin.
#[derive(Debug, Clone, Args)]
pub struct Selection {
    /// A worktree by name (repeatable)
    #[arg(short = 'w', long = "worktree", value_name = "NAME", add = crate::record::complete::worktrees())]
    pub worktrees: Vec<String>,

    /// Every worktree the tools manage
    #[arg(long)]
    pub all: bool,
}

impl Selection {
    /// Neither `-w` nor `--all`: the worktrees come from stdin.
    pub fn from_stdin(&self) -> bool {
        self.worktrees.is_empty() && !self.all
    }

    /// Refuses a run that was told of no worktree at all: no `names` (arguments), no `-w`, no
    /// `--all`, and stdin a terminal, so nothing can be piped in. Doing nothing and exiting 0
    /// would look like success. An empty pipe is fine: upstream found nothing to do.
    pub fn require_some(&self, names: &[String]) -> Result<(), Error> {
        if names.is_empty() && self.from_stdin() && io::stdin().is_terminal() {
            return Err(nothing_selected());
        }
        Ok(())
    }
}

/// The error of a run that names no worktree (exit 2).
pub fn nothing_selected() -> Error {
    Error::usage("no-worktrees", "no worktrees given (name them, -w, --all, or pipe records)")
}

impl GlobalArgs {
    /// The directory to work from: `-C DIR`, or the current one.
    pub fn start_dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| PathBuf::from("."))
    }
}

/// Sends `tracing` output to stderr, never stdout. `WT_LOG` (an `EnvFilter` directive such as
/// `debug` or `wt_create=trace`) wins over `-v`. Also checks the environment variables every
/// tool reads (`WT_LOG`, `WT_LOCK_TIMEOUT`), so a typo in one is a usage error at the start
/// rather than a surprise later.
pub fn init_logging(verbose: u8) -> Result<(), Error> {
    use tracing_subscriber::EnvFilter;
    crate::proc::lock::timeout_from_env()?;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = match std::env::var("WT_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).map_err(|e| {
            Error::usage(
                "bad-env",
                format!("WT_LOG='{}' is not a log filter ({e}); write e.g. WT_LOG=debug", spec.escape_debug()),
            )
        })?,
        _ => EnvFilter::new(level),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .with_ansi(io::stderr().is_terminal())
        .without_time()
        .try_init();
    Ok(())
}

/// Records from stdin, unless stdin is a terminal (then a tool waits for nobody).
pub fn stdin_records() -> Option<Reader<io::StdinLock<'static>>> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        None
    } else {
        Some(Reader::new(stdin.lock()))
    }
}

/// Parses the command line, or ends the process: `--help` and `--version` print as clap
/// prints them; a usage error becomes one line (`tool: unexpected argument '--x' found (see
/// tool --help)`), exit 2, like every other error of the tools.
pub fn parse_args<T: clap::Parser>(tool: &str) -> T {
    crate::record::complete::answer_if_asked(T::command);
    T::try_parse().unwrap_or_else(|e| exit_on(tool, &e))
}

/// Ends the process for a clap error: help and version as they are, anything else in one line.
pub fn exit_on(tool: &str, e: &clap::Error) -> ! {
    use clap::error::ErrorKind as K;
    if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand) {
        e.exit()
    }
    eprintln!("{tool}: {}", usage_line(tool, &e.to_string()));
    std::process::exit(Exit::Usage.code())
}

/// clap's message (`error: …`, a tip, the usage) as one line: the problem, the tip, the help.
fn usage_line(tool: &str, rendered: &str) -> String {
    let lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    // What comes before the usage: the problem, what it lists (missing arguments, possible
    // values), and clap's tips.
    let parts: Vec<String> = lines
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(|l| match l.strip_prefix("tip: ") {
            Some(tip) => format!("({tip})"),
            None => l.trim_start_matches("error: ").to_string(),
        })
        .collect();
    let problem = if parts.is_empty() { "bad usage".to_string() } else { parts.join(" ") };
    one_line(&format!("{problem} (see `{tool} --help`)"))
}

/// Runs a tool's body and turns its outcome into the process exit code; an error that ends
/// the run is printed as one line, `tool: message`.
pub fn run_main(tool: &str, body: impl FnOnce() -> Result<Exit, Error>) -> std::process::ExitCode {
    match body() {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("{tool}: {}", one_line(&err.message));
            err.kind.exit().into()
        }
    }
}

/// A message as one line of stderr: a person reads one line per problem, and a script can
/// `grep` it. Line breaks inside (git's or toml's own messages, a name with a newline) become
/// spaces, other control characters escapes.
pub fn one_line(message: &str) -> String {
    let joined: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    joined.join(" ").chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_errors_become_one_line_with_what_they_list() {
        let rendered = "error: the following required arguments were not provided:\n  <NAME>\n\nUsage: wt-run pane wait <NAME>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            super::usage_line("wt-run", rendered),
            "the following required arguments were not provided: <NAME> (see `wt-run --help`)"
        );
        let rendered = "error: unexpected argument '--x' found\n\n  tip: to pass '--x' as a value, use '-- --x'\n\nUsage: wt-env\n";
        assert_eq!(
            super::usage_line("wt-env", rendered),
            "unexpected argument '--x' found (to pass '--x' as a value, use '-- --x') (see `wt-env --help`)"
        );
    }
}
