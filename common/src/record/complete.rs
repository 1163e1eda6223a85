//! Shell completion that knows the repository: on each <TAB> the shell runs the tool itself
//! with `WT_COMPLETE=<shell>` set and the words typed so far, and the tool answers from its own
//! clap definition (clap_complete's dynamic completion), so subcommands, flags and values never
//! disagree with what it parses. Worktree names come from the ledger and pane names from the
//! supervisor; both are quick and say nothing when they cannot answer (no repository, no
//! supervisor), since a shell prints whatever a completer writes over the person's prompt.
//!
//! `WT_COMPLETE=bash wt-run` (no other argument) prints the script that registers it; the
//! tools call [`answer_if_asked`] before anything else, and `wt-docgen` writes these scripts
//! for `make install`.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

use clap_complete::engine::{
    ArgValueCandidates, ArgValueCompleter, CompletionCandidate, PathCompleter, ValueCompleter,
};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

/// The variable that asks a tool for completions instead of a run. Not clap's default
/// `COMPLETE`: a variable that generic could be set for something else in an agent's
/// environment, and a tool would then print a script instead of running.
pub const VAR: &str = "WT_COMPLETE";

/// The shells wt writes completion scripts for.
pub const SHELLS: [&str; 3] = ["bash", "zsh", "fish"];

/// When the shell asks for completions (`WT_COMPLETE` set), answers from `command` and exits;
/// otherwise returns at once and the tool runs.
pub fn answer_if_asked(command: impl Fn() -> clap::Command) {
    if std::env::var_os(VAR).is_some() {
        clap_complete::CompleteEnv::with_factory(command).var(VAR).complete();
    }
}

/// The script that registers `bin`'s completion in `shell` (`bash`, `zsh`, `fish`): it calls
/// `bin`, found on PATH, for every <TAB>.
pub fn registration(shell: &str, bin: &str) -> std::io::Result<Vec<u8>> {
    let completer: &dyn EnvCompleter = match shell {
        "bash" => &Bash,
        "zsh" => &Zsh,
        "fish" => &Fish,
        other => return Err(std::io::Error::other(format!("no completion for the shell {other}"))),
    };
    let mut script = Vec::new();
    completer.write_registration(VAR, bin, bin, bin, &mut script)?;
    if shell == "zsh" {
        // Installed in $fpath as `_BIN`, zsh autoloads this file as the completion function
        // itself on the first <TAB>: it must complete then, not only register for the next.
        let function = format!("_clap_dynamic_completer_{}", bin.replace('-', "_"));
        writeln!(script, "if [[ \"${{funcstack[1]}}\" == \"_{bin}\" ]]; then {function} \"$@\"; fi")?;
    }
    Ok(script)
}

/// Completes a worktree's name from the ledger of the repository here; a value with a `/` in it
/// is a path (the tools take one where they take a name) and completes as a directory.
pub fn worktrees() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        if current.as_encoded_bytes().contains(&b'/') {
            return PathCompleter::dir().complete(current);
        }
        let typed = current.to_string_lossy();
        worktree_names().into_iter().filter(|n| n.starts_with(&*typed)).map(CompletionCandidate::new).collect()
    })
}

/// Completes a pane's name from the repository's supervisor, with its state as the help text
/// (shown by zsh and fish).
pub fn panes() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        pane_names().into_iter().map(|(name, state)| CompletionCandidate::new(name).help(Some(state.into()))).collect()
    })
}

/// Completes a name that may be a worktree's or a pane's (`wt-run logs NAME`).
pub fn worktrees_and_panes() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let mut names = worktree_names();
        names.extend(pane_names().into_iter().map(|(name, _)| name));
        names.sort();
        names.dedup();
        names.into_iter().map(CompletionCandidate::new).collect()
    })
}

fn worktree_names() -> Vec<String> {
    let names = here().and_then(|repo| crate::ledger::worktree_names(&repo.state_dir()).ok()).unwrap_or_default();
    names.into_iter().filter(|n| shell_safe(n)).collect()
}

fn pane_names() -> Vec<(String, String)> {
    let names = here().map(|repo| crate::proc::panes::names(&repo)).unwrap_or_default();
    names.into_iter().filter(|(n, _)| shell_safe(n)).collect()
}

/// Whether a name can be put on the command line as it is. Names may hold `$`, `(`, `;`, `&`,
/// `|`, quotes: bash inserts a candidate unquoted, so a worktree named `x$(touch${IFS}P)`
/// (an agent's adopted worktree, a name in a record) would run its command when the person
/// pressed Enter after <TAB>. Such a name is not offered; it can still be typed, quoted.
fn shell_safe(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || "-_.+@%=,".contains(c))
}

/// The repository of the directory the shell is in, if it is in one.
fn here() -> Option<crate::git::repo::Repo> {
    crate::git::repo::Repo::discover(Path::new(".")).ok()
}

#[cfg(test)]
mod tests {
    use super::shell_safe;

    #[test]
    fn only_names_that_need_no_quoting_are_offered() {
        for ok in ["agent-2", "fix_login", "v1.2", "a+b", "émile"] {
            assert!(shell_safe(ok), "{ok}");
        }
        for bad in ["x$(touch${IFS}P)", "a;b", "a&&b", "a|b", "a'b", "a\"b", "a`b`", "a>b", "a!b", "a{b}", ""] {
            assert!(!shell_safe(bad), "{bad}");
        }
    }
}
