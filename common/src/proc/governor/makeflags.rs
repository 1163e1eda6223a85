//! What a governed command finds in its environment: `MAKEFLAGS` and `CARGO_MAKEFLAGS` naming
//! its jobserver, merged with the flags the person set.

/// How the jobserver is named to the command.
#[derive(Debug, Clone)]
pub struct Auth {
    /// `fifo:PATH` (make ≥ 4.4, ninja ≥ 1.13, cargo/rustc).
    pub fifo: String,
    /// `R,W`: inherited descriptors (every GNU make, cargo/rustc).
    pub fds: String,
}

/// An explicit job count (`-j4`, `-j 4`, `--jobs=4`, or `j` among the single-letter flags
/// before the first `-`) in the person's `MAKEFLAGS`: they chose their parallelism, so the
/// command goes ungoverned.
pub fn explicit_jobs(makeflags: &str) -> bool {
    let words: Vec<&str> = makeflags.split_whitespace().collect();
    for (i, word) in words.iter().enumerate() {
        if let Some(rest) = word.strip_prefix("-j") {
            let next_is_number = words.get(i + 1).is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
            if rest.chars().next().is_some_and(|c| c.is_ascii_digit()) || (rest.is_empty() && next_is_number) {
                return true;
            }
        }
        if word.strip_prefix("--jobs=").is_some_and(|n| !n.is_empty()) {
            return true;
        }
        if *word == "--" {
            break;
        }
    }
    false
}

/// The person's flags without any jobserver they were under (wt's replaces it).
fn without_jobserver(makeflags: &str) -> Vec<&str> {
    makeflags
        .split_whitespace()
        .filter(|w| !w.starts_with("--jobserver-auth=") && !w.starts_with("--jobserver-fds=") && *w != "-j")
        .collect()
}

/// `MAKEFLAGS` for the command: the person's flags, then `-j --jobserver-auth=…`. `fifo` picks
/// the form (see `Auth`).
pub fn merged(person: Option<&str>, auth: &str) -> String {
    let mut words = without_jobserver(person.unwrap_or_default());
    let ours = format!("--jobserver-auth={auth}");
    // Variable assignments come after ` -- `: our flags go before them.
    let at = words.iter().position(|w| *w == "--").unwrap_or(words.len());
    words.splice(at..at, ["-j", ours.as_str()]);
    let joined = words.join(" ");
    // make reads a first word without `-` as single-letter flags.
    if joined.starts_with('-') {
        format!(" {joined}")
    } else {
        joined
    }
}

/// The FIFO a `--jobserver-auth=fifo:PATH` in `flags` names, if one does.
pub fn fifo_of(flags: &str) -> Option<std::path::PathBuf> {
    flags
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--jobserver-auth=fifo:"))
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_job_count_is_seen() {
        for yes in ["-j4", "-j 4", "k -j8", "--jobs=3", " -k -j12 --no-print-directory"] {
            assert!(explicit_jobs(yes), "{yes}");
        }
        for no in ["", "-k", " -j --jobserver-auth=3,4", "-- CFLAGS=-j4", "--jobserver-auth=fifo:/x"] {
            assert!(!explicit_jobs(no), "{no}");
        }
    }

    #[test]
    fn the_persons_flags_are_kept_and_an_old_jobserver_replaced() {
        assert_eq!(merged(None, "3,4"), " -j --jobserver-auth=3,4");
        assert_eq!(merged(Some("k"), "3,4"), "k -j --jobserver-auth=3,4");
        assert_eq!(
            merged(Some(" -k -j --jobserver-auth=fifo:/old -- V=1"), "fifo:/new"),
            " -k -j --jobserver-auth=fifo:/new -- V=1"
        );
    }
}
