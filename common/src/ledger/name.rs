//! Worktree names. A name becomes a directory (`<root>/<name>`) and a branch (`wt/<name>`), so
//! it must be one path component and a valid ref component (`git check-ref-format` rules).

use crate::error::Error;

/// Checks that `name` can be a worktree name; the error says what is wrong and what to do.
pub fn validate(name: &str) -> Result<(), Error> {
    let problem = problem(name);
    match problem {
        None => Ok(()),
        Some(why) => {
            Err(Error::usage("invalid-name", format!("invalid worktree name '{}': {why}", name.escape_debug())))
        }
    }
}

/// The error for a word with '/' that is no existing directory: a name like `feature/login`
/// (the usual branch style). Names are one path component, so it is refused as an invalid
/// name, with the spelling that works. A per-record error (exit 1); callers that check
/// command-line words first make it a usage error.
pub fn slash_refused(word: &str) -> Error {
    let flat: String = word.trim_matches('/').replace('/', "-");
    Error::failed(
        "invalid-name",
        format!(
            "invalid worktree name '{}': a name cannot contain '/' (use '{}'); to adopt an existing worktree, give the path of its directory",
            word.escape_debug(),
            flat.escape_debug()
        ),
    )
}

fn problem(name: &str) -> Option<&'static str> {
    const FORBIDDEN: &[char] = &[' ', '~', '^', ':', '?', '*', '[', '\\'];
    if name.is_empty() {
        Some("it is empty")
    } else if name.contains('/') {
        Some("it must be a single name, not a path (pass a path that has '/' to adopt an existing worktree)")
    } else if name.starts_with('-') {
        Some("it must not start with '-'")
    } else if name.starts_with('.') {
        Some("it must not start with '.'")
    } else if name.contains("..") {
        Some("it must not contain '..'")
    } else if name.chars().any(char::is_control) {
        Some("it must not contain control characters")
    } else if name.contains(FORBIDDEN) {
        Some("it must not contain spaces or any of ~ ^ : ? * [ \\")
    } else if name.ends_with(".lock") || name.ends_with('.') {
        Some("it must not end with '.lock' or '.'")
    } else if name.contains("@{") || name == "@" {
        Some("it must not be '@' or contain '@{'")
    } else if reads_as_json(name) {
        Some("it would read as a JSON value (a number, true, false or null) on stdin; add a letter")
    } else if name.len() > 200 {
        Some("it is longer than 200 bytes")
    } else {
        None
    }
}

/// Whether a word is a JSON scalar (`42`, `-1.5e3`, `true`, `null`): on stdin such a line is a
/// JSON value, not a name, so no name may look like one.
pub fn reads_as_json(word: &str) -> bool {
    // Only these can start a JSON value that is not an object or a string. Any other word is
    // no JSON at all, and is not handed to the parser: its error path costs more than the
    // whole check (the first one probes the CPU's features).
    let value = word.trim_matches([' ', '\t', '\n', '\r']);
    let may_be = matches!(value.as_bytes().first(), Some(b'0'..=b'9' | b'-' | b'['))
        || matches!(value, "true" | "false" | "null");
    may_be && matches!(serde_json::from_str::<serde_json::Value>(word), Ok(v) if !v.is_object() && !v.is_string())
}

/// Whether a word is written as a path (`/abs`, `./x`, `../x`), not as a name with a slash in
/// it (`feature/login`): a missing path is a worktree not found, a missing name a bad name.
pub fn written_as_path(word: &str) -> bool {
    word.starts_with('/') || word.starts_with("./") || word.starts_with("../")
}

/// Whether a bare word on the command line or stdin is a path (it has a '/') or a name.
pub fn is_path(word: &str) -> bool {
    word.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_unicode_names() {
        for ok in ["agent-1", "fix_login", "v1.2", "émile", "任务-3", "a@b"] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_git_or_the_file_system_would_misread() {
        for bad in [
            "", "../x", "a/b", "a..b", "-x", ".hidden", "a b", "a\tb", "a\u{7f}", "x.lock", "x.", "a@{1}", "@", "a:b",
            "a*", "42", "null", "true", "1e3",
        ] {
            let err = validate(bad).unwrap_err();
            assert_eq!(err.code, "invalid-name", "{bad:?}");
            assert!(!err.message.contains('\n'), "one line: {}", err.message);
        }
    }

    /// The quick check before the parser decides as the parser alone would.
    fn parser_says(word: &str) -> bool {
        matches!(serde_json::from_str::<serde_json::Value>(word), Ok(v) if !v.is_object() && !v.is_string())
    }

    #[test]
    fn reads_as_json_agrees_with_the_parser() {
        for word in [
            "42", " 42\n", "-1.5e3", "-", "1x", "[1]", "[]", "true", " null ", "false", "tru", "nulls", "\"s\"", "{}",
            "agent-1", "t", "n", "", " ", "0", "[",
        ] {
            assert_eq!(reads_as_json(word), parser_says(word), "{word:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn reads_as_json_agrees_with_the_parser_on_any_word(word in "[ \t0-9a-z.\\[\\]{}\"+-]{0,8}") {
            proptest::prop_assert_eq!(reads_as_json(&word), parser_says(&word));
        }
    }
}
