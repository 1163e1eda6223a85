//! Shell completion, as a person gets it: the scripts `wt-docgen` writes (what `make install`
//! installs) are loaded into real bash, zsh and fish, the shells are asked to complete a
//! command line in a real repository with a live pane, and the candidates they would offer are
//! compared with what the tools have: the pane verbs, the worktrees of the ledger, the panes of
//! the supervisor.
//!
//! A shell that is not installed fails the test under CI (`.ci/run` installs zsh and fish) and
//! skips it, saying so, elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use wt_tests::panes::Panes;
use wt_tests::Run;

/// A repository with worktrees `agent-1`, `fix-x` and `sh1`, a live pane `sh1`, and the
/// completion scripts of every tool.
struct Scene {
    p: Panes,
    scripts: tempfile::TempDir,
}

fn scene() -> Scene {
    let p = Panes::new();
    p.t.run("wt-create", &["agent-1", "fix-x"], "").expect_code(0);
    p.spawn("sh1", &["sleep", "300"]);
    let scripts = tempfile::tempdir().unwrap();
    Run::of(Command::new(wt_tests::bin("wt-docgen")).arg(scripts.path()), "").expect_code(0);
    Scene { p, scripts }
}

impl Scene {
    fn script(&self, rel: &str) -> PathBuf {
        self.scripts.path().join("completions").join(rel)
    }

    /// `shell args…` in the repository, with the test's isolation, the built tools first on
    /// PATH (the scripts call the tool by name, as an installed one would be).
    fn shell(&self, shell: &str, args: &[&str]) -> Vec<String> {
        let mut cmd = Command::new(shell);
        cmd.args(args);
        self.p.env(&mut cmd);
        let bins = wt_tests::bin("wt-run").parent().unwrap().to_path_buf();
        let path = std::env::join_paths(
            std::iter::once(bins).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        );
        cmd.current_dir(&self.p.t.repo).env("PATH", path.unwrap()).env("TERM", "dumb");
        let run = Run::of(&mut cmd, "");
        assert_eq!(run.code, Some(0), "{shell} {args:?}: {run}");
        run.stdout.lines().map(str::to_string).collect()
    }

    /// What bash offers for `line` (its last word is the one completed, empty after a space):
    /// the script is sourced, the function `complete -p` names for the tool is called with
    /// COMP_WORDS and COMP_CWORD as bash sets them, and COMPREPLY is printed.
    fn bash(&self, line: &str) -> Vec<String> {
        let tool = line.split(' ').next().unwrap();
        let driver = r#"
            source "$1"; shift
            spec=$(complete -p "$1") || exit 9
            fn=${spec##*-F }; fn=${fn%% *}
            COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9; COMP_KEY=9
            read -ra COMP_WORDS <<< "$COMP_LINE"
            [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}"
        "#;
        let script = self.script(&format!("bash/{tool}.bash"));
        self.shell("bash", &["--norc", "--noprofile", "-c", driver, "bash", path(&script), tool, line])
    }

    /// What fish offers for `line`: the script sourced, then `complete -C` (fish's own way of
    /// asking its completion for a command line); the candidate is what precedes the tab.
    fn fish(&self, line: &str) -> Vec<String> {
        let tool = line.split(' ').next().unwrap();
        let script = self.script(&format!("fish/{tool}.fish"));
        let driver = "source $argv[1]; complete -C $argv[2]";
        let out = self.shell("fish", &["--no-config", "-c", driver, path(&script), line]);
        out.into_iter().map(|l| l.split('\t').next().unwrap().to_string()).collect()
    }

    /// What zsh offers for `line`: an interactive zsh in a pseudo-terminal (zpty), with the
    /// scripts' directory in $fpath and compinit run, as after `make install`; the line is typed
    /// and <TAB> pressed. <TAB> is bound to a completion widget that runs zsh's own completion
    /// and writes down every match `compadd` is asked to offer instead of inserting one.
    fn zsh(&self, line: &str) -> Vec<String> {
        let out = tempfile::tempdir().unwrap();
        let (init, matches) = (out.path().join("init.zsh"), out.path().join("matches"));
        std::fs::write(&init, ZSH_INIT).unwrap();
        let driver = r#"
            zmodload zsh/zpty || exit 9
            zpty z TERM=dumb zsh -f -i
            zpty -w z "WT_MATCHES=${(q)3}; fpath=(${(q)1} \$fpath); source ${(q)2}"
            zpty -w z "$4"$'\t'
            for i in {1..400}; do
              [[ -f $3.done ]] && { cat $3; exit 0 }
              sleep 0.05
            done
            print -u2 "zsh never finished completing: $(zpty -r z 2>/dev/null)"
            exit 1
        "#;
        let fpath = self.script("zsh");
        self.shell("zsh", &["-f", "-c", driver, "zsh", path(&fpath), path(&init), path(&matches), line])
    }
}

/// Loaded into the interactive zsh: compinit, and <TAB> bound to a widget that completes as
/// zsh would and records the matches (zsh's own `compadd -O`: the matches after zsh has
/// matched them against the typed word, without inserting them).
const ZSH_INIT: &str = r#"
PS1=''
autoload -Uz compinit && compinit -u -D
compadd() {
  # A call that already collects matches into an array (-O, -A, -D) is zsh's own bookkeeping.
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits
  builtin compadd -O __hits "$@"
  (( ${#__hits} )) && print -rl -- $__hits >> $WT_MATCHES
  return 0
}
_wt_capture() {
  : >> $WT_MATCHES
  _main_complete
  : > $WT_MATCHES.done
}
zle -C wt-capture complete-word _wt_capture
bindkey '^I' wt-capture
"#;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Whether `shell` can be run; without it the test fails under CI and is skipped elsewhere.
fn have(shell: &str) -> bool {
    if Command::new(shell).arg("-c").arg("exit 0").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{shell} is not installed, and CI must test its completion (.ci/run installs it)"
    );
    eprintln!(
        "skipped: {shell} is not installed, so its completion script is not tested here (apt-get install {shell})"
    );
    false
}

const PANE_VERBS: [&str; 10] = ["ls", "screen", "send", "key", "wait", "attach", "resize", "kill", "notify", "stop"];

/// The same questions to every shell: the pane verbs after `wt-run pane` (what completed
/// nothing in bash before), a live pane's name after `pane attach`, the ledger's worktrees
/// after `wt-status`, `-w` and `wt-merge`, each narrowed by what was typed.
fn completes_verbs_panes_and_worktrees(complete: impl Fn(&str) -> Vec<String>) {
    let verbs = complete("wt-run pane ");
    for verb in PANE_VERBS {
        assert!(verbs.iter().any(|v| v == verb), "`wt-run pane <TAB>` offers {verb}: {verbs:?}");
    }
    assert_eq!(complete("wt-run pane sc"), ["screen"], "a prefix narrows the verbs");
    let panes = complete("wt-run pane attach ");
    assert!(panes.iter().any(|p| p == "sh1"), "`wt-run pane attach <TAB>` offers the live pane sh1: {panes:?}");
    assert!(!panes.iter().any(|p| p == "agent-1"), "a worktree without a pane is not a pane: {panes:?}");
    let worktrees = complete("wt-status ");
    for name in ["agent-1", "fix-x", "sh1"] {
        assert!(worktrees.iter().any(|w| w == name), "`wt-status <TAB>` offers {name}: {worktrees:?}");
    }
    assert_eq!(complete("wt-run -w fi"), ["fix-x"], "`-w` completes a worktree's name");
    assert_eq!(complete("wt-merge ag"), ["agent-1"]);
}

#[test]
fn bash_completes_pane_verbs_live_panes_and_worktrees() {
    let s = scene();
    completes_verbs_panes_and_worktrees(|line| s.bash(line));
}

#[test]
fn zsh_completes_pane_verbs_live_panes_and_worktrees() {
    if !have("zsh") {
        return;
    }
    let s = scene();
    completes_verbs_panes_and_worktrees(|line| s.zsh(line));
}

#[test]
fn fish_completes_pane_verbs_live_panes_and_worktrees() {
    if !have("fish") {
        return;
    }
    let s = scene();
    completes_verbs_panes_and_worktrees(|line| s.fish(line));
}

#[test]
fn completion_outside_a_repository_offers_no_names_and_prints_no_error() {
    // No repository and no supervisor: the verbs still complete, names are simply absent, and
    // nothing is written over the person's prompt.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(wt_tests::bin("wt-run"));
    cmd.current_dir(dir.path())
        .env("WT_COMPLETE", "bash")
        .env("XDG_RUNTIME_DIR", dir.path())
        .env("_CLAP_COMPLETE_INDEX", "3")
        .env("_CLAP_IFS", "\n")
        .args(["--", "wt-run", "pane", "attach", ""]);
    let run = Run::of(&mut cmd, "");
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(run.stderr, "", "silent");
    assert!(!run.stdout.lines().any(|l| !l.starts_with('-')), "only flags, no names: {run}");
}
