//! For unit tests: git run in a throwaway repository with the user's config files left out and
//! an identity of its own, failing the test with git's message when it fails.

use std::path::Path;

/// `git -C dir args…`; its stdout without the trailing newline.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = crate::git::command(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "protocol.file.allow=always"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim_end_matches('\n').to_string()
}
