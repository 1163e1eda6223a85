//! Quoting for the remote shell, and the characters a name may have to be sent at all.
//!
//! ssh hands the remote side one string that the user's shell there parses, so every argument
//! is single-quoted. On top of that, worktree names and branches are checked before anything
//! is sent: git allows `;`, `$`, `|` and backquotes in a ref, and a name that is harmless once
//! quoted may not stay quoted in every script a person later writes around it.

use crate::error::Error;

/// `arg` as one word of a POSIX shell command line.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b)) {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// The words, quoted and joined by spaces.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

/// Checks a worktree name or a branch before it is sent to a host: a valid name (each `/`
/// component of a branch), and only letters, digits and `. _ - + @ = ,`.
pub fn check_sendable(what: &str, value: &str) -> Result<(), Error> {
    let parts: Vec<&str> = if what == "branch" { value.split('/').collect() } else { vec![value] };
    for part in parts {
        crate::ledger::name::validate(part)?;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-+@=,/".contains(c);
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(Error::usage(
            "invalid-name",
            format!(
                "{what} '{}' has '{}', which is not sent to a host; use only letters, digits and . _ - + @ = ,",
                value.escape_debug(),
                bad.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// Checks every worktree name given on the command line of a tool run at a host.
pub fn check_names<S: AsRef<str>>(names: &[S]) -> Result<(), Error> {
    names.iter().try_for_each(|n| check_sendable("name", n.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_a_shell_would_interpret() {
        assert_eq!(quote("agent-1"), "agent-1");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
    }

    #[test]
    fn a_quoted_line_comes_back_word_for_word_from_sh() {
        let words = ["printf", "%s\\n", "a b", "it's", "$HOME", "`id`", "x;y", "\"q\"", ""];
        let out = std::process::Command::new("sh").arg("-c").arg(join(&words)).output().unwrap();
        let got = String::from_utf8(out.stdout).unwrap();
        assert_eq!(got, "a b\nit's\n$HOME\n`id`\nx;y\n\"q\"\n\n");
    }

    #[test]
    fn names_with_shell_metacharacters_are_not_sent() {
        assert!(check_sendable("name", "agent-1").is_ok());
        assert!(check_sendable("branch", "wt/agent-1").is_ok());
        for bad in ["a;b", "$(id)", "a|b", "`x`", "a b", "a'b", "a\"b", "-x", "a&b", "a>b"] {
            assert!(check_sendable("name", bad).is_err(), "{bad}");
        }
        assert!(check_sendable("name", "a/b").is_err());
    }
}
