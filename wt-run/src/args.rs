//! The command line of wt-run.

use clap::{Parser, Subcommand};
use wt_common::record::cli::GlobalArgs;

/// Run a command in each worktree, with the worktree's environment, and print a record per run.
///
/// Worktrees come from records on stdin (from wt-create or wt-env), `-w NAME` or `--all`. Each
/// run is its own process group, in its worktree, with WT_* variables and the record's
/// env.vars on top of the caller's environment. Output goes to a log file (and, on a terminal,
/// to stderr with a `name |` prefix); the record gets `run` (exit, signal, duration, log, tail).
#[derive(Debug, Parser)]
#[command(
    name = "wt-run",
    version,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  wt-create --list | wt-env | wt-run -j 4 -- cargo test\n  wt-run -w agent-1 --timeout 10m -- npm test\n  wt-run --all --quiet -- make test                 # a line per run and the table, no output\n  wt-run --all --shell -- 'make lint && make test'\n  wt-run --all -- cargo build                       # builds share the machine's jobserver\n  wt-run -w agent-2 --confine -- claude -p \"fix issue 12\"\n  wt-run -w agent-3 --pane -- claude               # an agent in a terminal pane; see `wt-run pane --help`\n  wt-run logs agent-1 --follow                      # the last run's log\n  wt-run -w agent-1 --confine --passthrough --record run.json -- make test   # output and exit code as make's\n\nExit: with one worktree, the command's own exit code (124 on timeout, 128+N on signal N);\nwith several, 0 if every run succeeded, else 1. 2 usage, 3 unusable repository."
)]
pub struct Args {
    #[command(subcommand)]
    pub sub: Option<Sub>,

    #[command(flatten)]
    pub select: wt_common::record::cli::Selection,

    /// Runs at once [default: number of CPUs]
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Stop a run after DUR (500ms, 30s, 5m): SIGTERM to its group, SIGKILL after --grace
    #[arg(long, value_name = "DUR", value_parser = wt_common::record::duration::parse_arg)]
    pub timeout: Option<std::time::Duration>,

    /// How long a group has between SIGTERM and SIGKILL
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = wt_common::record::duration::parse_arg)]
    pub grace: std::time::Duration,

    /// Run CMD through `sh -c` (one string: pipes, &&, globs)
    #[arg(long)]
    pub shell: bool,

    /// On a terminal, leave the commands' output in their logs instead of echoing it as
    /// `name | line`: only a line as each run ends, the closing count and the table
    #[arg(short, long)]
    pub quiet: bool,

    /// Sandbox the command: write only in the worktree (commits on its own branch, through a
    /// private git store), a private temp dir and --allow-write; bind only its leased ports; no
    /// signals or abstract sockets outside. `best-effort` runs anyway where the kernel cannot
    /// enforce all of it
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "strict", value_parser = ["strict", "best-effort"])]
    pub confine: Option<String>,

    /// With --confine: also allow writing under PATH (repeatable)
    #[arg(long = "allow-write", value_name = "PATH", requires = "confine")]
    pub allow_write: Vec<std::path::PathBuf>,

    /// With --confine: also pass the caller's variable NAME to the command (repeatable, or
    /// comma-separated; `NAME_*` passes every variable that starts so). A confined command gets
    /// only PATH, HOME, TERM, the locale, the toolchains' homes, git's identity, the worktree's
    /// own variables and these [wt.toml: [run] pass_env]
    #[arg(long = "pass-env", value_name = "NAME", value_delimiter = ',', requires = "confine")]
    pub pass_env: Vec<String>,

    /// With --pane --confine: the pane's socket may also read other panes' screens (it may
    /// always report its own state, read its own screen, wait on it and list panes)
    #[arg(long, requires_all = ["confine", "pane"])]
    pub confine_read_panes: bool,

    /// For a tool that runs one command through wt-run (wt-watch and wt-merge with --confine):
    /// one worktree; the command's stdout and stderr are wt-run's own (no log, no echo), wt-run
    /// exits with the command's code (124 on timeout, 128+N on signal N), and the record goes
    /// to --record FILE, or nowhere
    #[arg(long, conflicts_with = "pane")]
    pub passthrough: bool,

    /// Run without the build governor: no job slot to wait for, no MAKEFLAGS jobserver (see
    /// docs/governor.md) [env: WT_GOVERNOR=off]
    #[arg(long)]
    pub no_governor: bool,

    /// With --passthrough: write the run's record (`run.confined` included) to FILE
    #[arg(long, value_name = "FILE", requires = "passthrough")]
    pub record: Option<std::path::PathBuf>,

    /// Start CMD in a terminal pane held by the supervisor and return at once; the pane is named
    /// after its worktree, or `--pane=NAME` (one worktree only)
    #[arg(long, value_name = "NAME", num_args = 0..=1, require_equals = true, default_missing_value = "", conflicts_with = "timeout")]
    pub pane: Option<String>,

    /// With --pane: hold the pane in the supervisor's own PTY (native), or as a window of this
    /// repository's tmux session, which a person can `tmux attach` to [wt.toml: [run] backend]
    #[arg(long, value_name = "BACKEND", value_parser = ["native", "tmux"], requires = "pane")]
    pub backend: Option<String>,

    /// With --pane: register wt-run in the agent's own hooks in the worktree (Claude Code's
    /// .claude/settings.local.json, Codex's .codex/hooks.json; merged, git-ignored), so it
    /// reports its state itself [wt.toml: [run] agent_hooks]
    #[arg(long, requires = "pane")]
    pub agent_hooks: bool,

    /// With --pane: run COMMAND (through sh) each time the pane enters STATE (starting,
    /// working, waiting, idle, running, exited), with WT_PANE, WT_STATE, WT_MESSAGE set (repeatable)
    /// [wt.toml: [run] on_waiting]
    #[arg(long = "on-state", value_name = "STATE=COMMAND", requires = "pane")]
    pub on_state: Vec<String>,

    /// With --pane: the agent profile whose screen rules apply (claude, codex, aider, default,
    /// or one of wt.toml's [agents.NAME]) [default: chosen by the command's name]
    #[arg(long, value_name = "NAME", requires = "pane")]
    pub agent: Option<String>,

    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,

    #[command(flatten)]
    pub global: GlobalArgs,
}

impl Args {
    /// wt-run's command line as the shell completes it: `Args`, with the names of `logs` and of
    /// every pane verb completed from the repository. Every positional `NAME…` of a `pane` verb
    /// is a pane's name, so a new verb completes without a word here.
    pub fn completing() -> clap::Command {
        use wt_common::record::complete;
        let pane_name = |arg: clap::Arg| {
            let named = arg.get_value_names().and_then(|v| v.first()).is_some_and(|v| v.starts_with("NAME"));
            if arg.is_positional() && named {
                arg.add(complete::panes())
            } else {
                arg
            }
        };
        <Args as clap::CommandFactory>::command()
            .mut_subcommand("logs", |logs| logs.mut_arg("name", |a| a.add(complete::worktrees_and_panes())))
            .mut_subcommand("pane", |pane| pane.mut_subcommands(|verb| verb.mut_args(pane_name)))
    }

    /// Parses the command line like `Args::parse`, but a command typed without `--` in front
    /// (`wt-run -w agent-1 pytest`) gets a one-line answer that shows where it goes.
    pub fn parse_or_exit() -> Args {
        wt_common::record::complete::answer_if_asked(Args::completing);
        let raw: Vec<String> = std::env::args().collect();
        match Args::try_parse_from(&raw) {
            Ok(args) => args,
            Err(e) if e.kind() == clap::error::ErrorKind::UnknownArgument && !raw.iter().any(|a| a == "--") => {
                let stray = e.get(clap::error::ContextKind::InvalidArg).map(|v| v.to_string()).unwrap_or_default();
                if stray.starts_with('-') {
                    wt_common::record::cli::exit_on("wt-run", &e)
                }
                let at = raw.iter().position(|a| *a == stray).unwrap_or(raw.len());
                let fixed = [&raw[1..at], &["--".to_string()], &raw[at..]].concat().join(" ");
                eprintln!("wt-run: the command goes after `--`: wt-run {fixed}");
                std::process::exit(2)
            }
            Err(e) => wt_common::record::cli::exit_on("wt-run", &e),
        }
    }
}

/// `[run]` in wt.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `native` or `tmux`.
    pub backend: Option<String>,
    /// `--agent-hooks` for every pane.
    pub agent_hooks: Option<bool>,
    /// `--on-state waiting=COMMAND` for every pane.
    pub on_waiting: Option<String>,
    /// `--pass-env` for every confined command.
    pub pass_env: Option<Vec<String>>,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Run this repository's pane supervisor (`--pane` starts one on demand)
    Serve {
        /// Exit after no pane has run and no client has been connected for DUR
        #[arg(long, value_name = "DUR", value_parser = wt_common::record::duration::parse_arg, env = "WT_PANE_IDLE", default_value = "60s")]
        idle: std::time::Duration,
    },
    /// Drive the panes: read their screens, type, wait
    #[command(subcommand)]
    Pane(PaneCmd),
    /// Print the log of a worktree's last run (or pane), from the repository's log directory
    #[command(
        after_help = "Examples:\n  wt-run logs agent-1\n  wt-run logs agent-1 --follow     # and what it writes next, until Ctrl-C"
    )]
    Logs {
        /// The worktree (or pane) name
        name: String,
        /// Keep printing what is appended to the log, like `tail -f`
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
#[command(
    after_help = "Examples:\n  wt-run pane ls\n  wt-run pane send agent-2 \"fix the failing test\" --enter\n  wt-run pane wait agent-2 --quiet 5s --timeout 10m\n  wt-run pane screen agent-2 --lines 100\n  wt-run pane key agent-2 ctrl-c\n  wt-run pane wait agent-2 --state waiting # no time limit with --state\n  wt-run pane answer agent-2 yes           # at its permission dialog\n  wt-run pane kill agent-2 dev-server\n  wt-run pane attach agent-2               # Ctrl-] detaches"
)]
pub enum PaneCmd {
    /// List the panes and their agents' states (a table on a terminal, else one JSON object
    /// per pane)
    Ls {
        /// JSON lines even on a terminal
        #[arg(long)]
        json: bool,
    },
    /// Print a pane's screen (its text on a terminal, else JSON)
    Screen {
        /// The pane's name
        name: String,
        /// The last N lines the pane printed (scrollback included) instead of the screen
        #[arg(long, value_name = "N")]
        lines: Option<usize>,
    },
    /// Type TEXT into a pane (several lines go in as one bracketed paste if the program turned
    /// bracketed paste on, else line by line, as a terminal pastes them)
    Send {
        /// The pane's name
        name: String,
        /// What to type
        text: String,
        /// Press enter after the text
        #[arg(long)]
        enter: bool,
    },
    /// Answer the dialog a waiting pane shows: yes or no presses the keys its agent's profile
    /// names for them (Claude Code's numbered menu, Codex's approval keys); other TEXT is typed,
    /// then Enter. Refused unless the pane is `waiting`
    #[command(
        after_help = "Examples:\n  wt-run pane answer agent-2 yes\n  wt-run pane answer agent-2 no\n  wt-run pane answer agent-3 \"use the staging database\"\n  wt-run pane wait agent-2 --state waiting && wt-run pane screen agent-2"
    )]
    Answer {
        /// The pane's name
        name: String,
        /// yes, no, or the text to type
        #[arg(value_name = "yes|no|TEXT")]
        answer: String,
    },
    /// Press a key: enter, tab, shift-tab, escape, backspace, space, arrows, home, end, pageup,
    /// pagedown, insert, delete, f1-f12, ctrl-<letter>, alt-<key>
    Key {
        /// The pane's name
        name: String,
        /// The key, e.g. ctrl-c, shift-tab, f5, alt-b
        key: String,
    },
    /// Wait until the agent is in a STATE, the program exits, the screen matches RE, or it has
    /// been quiet for DUR
    #[command(
        after_help = "Examples:\n  wt-run pane wait agent-2 --state idle,waiting\n  wt-run pane wait dev-2 --match '^Listening on port [0-9]+$'   (any line of the screen)\n  wt-run pane wait tests-2 --exit --timeout 10m\n  wt-run pane wait agent-2 --quiet 5s"
    )]
    Wait {
        /// The pane's name
        name: String,
        /// Until the agent is in one of these states (idle, waiting, running, exited, working, starting)
        #[arg(long, value_name = "STATE", value_delimiter = ',', num_args = 1..)]
        state: Vec<String>,
        /// Until the program exits
        #[arg(long)]
        exit: bool,
        /// Until the screen matches the regular expression RE, searched line by line: `^` and
        /// `$` match at the start and end of each line of the screen (multi-line mode), `\A`
        /// and `\z` at the screen's own
        #[arg(long = "match", value_name = "RE")]
        pattern: Option<String>,
        /// Until the pane has printed nothing for DUR (500ms, 2s)
        #[arg(long, value_name = "DUR", value_parser = wt_common::record::duration::parse_arg)]
        quiet: Option<std::time::Duration>,
        /// Give up after DUR (exit 1) [default: 30s for --exit, --match, --quiet; with --state,
        /// no limit: it waits until the pane is in the state or has exited]
        #[arg(long, value_name = "DUR", value_parser = wt_common::record::duration::parse_arg)]
        timeout: Option<std::time::Duration>,
    },
    /// Sit at a pane's keyboard (raw mode); Ctrl-] detaches and leaves it running
    Attach {
        /// The pane's name
        name: String,
    },
    /// Resize a pane's terminal
    Resize {
        /// The pane's name
        name: String,
        /// Rows, 1-1000
        rows: u16,
        /// Columns, 1-1000
        cols: u16,
    },
    /// End panes' programs (SIGTERM to each one's session, SIGKILL after 2s); returns once they
    /// are dead. A pane that had already exited is dropped from the list
    Kill {
        /// The panes' names
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Report a pane's agent state, from the agent's hooks: --state STATE, or --from-hook
    /// claude|codex to read the hook's JSON (stdin; for Codex's notify, the last argument)
    #[command(
        after_help = "Examples:\n  wt-run pane notify --state waiting --message 'needs a decision'\n  wt-run pane notify agent-1 --state idle\n  wt-run pane notify --from-hook claude      (in a Claude Code hook)"
    )]
    Notify {
        /// [NAME] the pane [default: WT_PANE, the pane this runs in]; with --from-hook codex,
        /// a last argument holding JSON is the payload of Codex's notify
        #[arg(value_name = "NAME", num_args = 0..=2)]
        args: Vec<String>,
        /// starting, working, waiting, idle, running or exited
        #[arg(long, value_name = "STATE", required_unless_present = "from_hook", conflicts_with = "from_hook")]
        state: Option<String>,
        /// A line for people (what it is doing or waiting for)
        #[arg(long, value_name = "TEXT")]
        message: Option<String>,
        /// Read the agent's hook payload and map its event to a state
        #[arg(long, value_name = "AGENT", value_parser = ["claude", "codex"])]
        from_hook: Option<String>,
    },
    /// Stop the supervisor and every pane; returns once the supervisor has exited
    Stop,
}

impl PaneCmd {
    /// The panes a verb is about.
    pub fn pane_names(&self) -> Vec<&str> {
        match self {
            PaneCmd::Screen { name, .. }
            | PaneCmd::Send { name, .. }
            | PaneCmd::Answer { name, .. }
            | PaneCmd::Key { name, .. }
            | PaneCmd::Wait { name, .. }
            | PaneCmd::Attach { name }
            | PaneCmd::Resize { name, .. } => vec![name],
            PaneCmd::Kill { names } => names.iter().map(String::as_str).collect(),
            PaneCmd::Notify { args, .. } => {
                args.iter().find(|a| !a.trim_start().starts_with('{')).map(String::as_str).into_iter().collect()
            }
            PaneCmd::Ls { .. } | PaneCmd::Stop => Vec::new(),
        }
    }
}
