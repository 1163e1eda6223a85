//! Panes that know what their agent is doing: stand-in agents that behave like the real ones
//! (hooks with recorded Claude Code and Codex payloads, terminal notifications, a prompt and
//! silence, a permission dialog only a screen rule recognises), each watched through
//! `events.subscribe`; the real Claude Code CLI at its first screen; `--on-state`.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use wt_tests::panes::Panes;
use wt_tests::s;

fn data(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(rel).display().to_string()
}

/// A subscription to the supervisor's events, made before the pane under test starts (a
/// first pane starts the supervisor).
struct Events {
    lines: std::io::Lines<BufReader<UnixStream>>,
}

impl Events {
    fn subscribe(p: &Panes) -> Events {
        p.spawn("keeper", &["sleep", "120"]);
        let mut stream = UnixStream::connect(p.socket()).unwrap();
        let answer = wt_tests::panes::raw_call(&mut stream, b"{\"id\":1,\"method\":\"events.subscribe\"}\n");
        assert_eq!(answer["result"]["subscribed"], true, "{answer}");
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Events { lines: BufReader::new(stream).lines() }
    }

    /// The next `state` event of `pane`, or `None` when none came in time.
    fn next_state(&mut self, pane: &str) -> Option<Value> {
        loop {
            let line = self.lines.next()?.ok()?;
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["event"] == "state" && event["pane"] == pane {
                return Some(event);
            }
        }
    }

    /// The states `pane` goes through (a repeat of the same state, with another message or
    /// source, is not a change) until it has been through `until`; then the last event.
    fn states_until(&mut self, pane: &str, until: &str, seen: &mut Vec<String>) -> Value {
        loop {
            let event =
                self.next_state(pane).unwrap_or_else(|| panic!("no '{until}' in time; states so far: {seen:?}"));
            let state = s(&event, "state").to_string();
            if seen.last() != Some(&state) {
                seen.push(state.clone());
            }
            if state == until {
                return event;
            }
        }
    }
}

/// Runs the hook stand-in with the recorded payloads of `agent` and returns the states seen.
fn hook_states(agent: &str) -> Vec<String> {
    let p = Panes::new();
    let mut events = Events::subscribe(&p);
    p.t.run("wt-create", &["agent"], "").expect_code(0);
    let wt_run = wt_tests::bin("wt-run").display().to_string();
    let payloads = data(&format!("hooks/{agent}.jsonl"));
    let script = data("standins/hooks.py");
    let run =
        p.wt_run(&["-w", "agent", "--pane", "--agent-hooks", "--", "python3", &script, agent, &payloads, &wt_run]);
    run.expect_code(0);
    let mut seen = Vec::new();
    loop {
        let last = events.states_until("agent", "exited", &mut seen);
        if last["source"] == "supervisor" {
            assert_eq!(last["message"], "exit 0", "the stand-in ran every hook without a failure: {last}");
            return seen;
        }
    }
}

#[test]
fn claude_code_hooks_drive_the_state_and_subagents_change_nothing() {
    // The subagent's PreToolUse and Stop (with agent_id) come between working and waiting: were
    // they believed, an `idle` would appear there. Notification is not registered.
    assert_eq!(
        hook_states("claude"),
        ["starting", "working", "waiting", "working", "waiting", "working", "idle", "working", "idle", "exited"]
    );
}

#[test]
fn codex_hooks_and_its_legacy_notify_drive_the_state() {
    assert_eq!(
        hook_states("codex"),
        ["starting", "working", "waiting", "working", "idle", "working", "idle", "exited"]
    );
}

#[test]
fn terminal_notifications_mean_waiting_until_answered_and_on_state_runs_once_per_change() {
    // `[run] on_waiting` from wt.toml, `--on-state` for exited.
    let p = Panes::new();
    let log = p.t.root().join("on-state.log");
    let on_waiting = format!("echo \"$WT_PANE|$WT_STATE|$WT_MESSAGE\" >> '{}'", log.display());
    p.t.write(
        "wt.toml",
        &format!("[run]\non_waiting = '''{on_waiting}'''\n[agents.default]\nquiet_ms = 60000\nprogram = false\n"),
    );
    let mut events = Events::subscribe(&p);
    p.t.run("wt-create", &["notifier"], "").expect_code(0);
    let on_exited = format!("exited=echo \"$WT_PANE|$WT_STATE\" >> '{}'", log.display());
    let script = data("standins/notifier.py");
    p.wt_run(&["-w", "notifier", "--pane", "--on-state", &on_exited, "--", "python3", &script]).expect_code(0);
    let mut seen = Vec::new();
    events.states_until("notifier", "working", &mut seen);
    p.json(&["pane", "send", "notifier", "ask", "--enter"]);
    let first = events.states_until("notifier", "waiting", &mut seen);
    assert_eq!((s(&first, "source"), s(&first, "message")), ("terminal", "Codex: Approve running cargo test?"));
    p.json(&["pane", "send", "notifier", "yes", "--enter"]);
    events.states_until("notifier", "working", &mut seen);
    p.json(&["pane", "send", "notifier", "go on", "--enter"]);
    let second = events.states_until("notifier", "waiting", &mut seen);
    assert_eq!(s(&second, "message"), "Need a decision on the parser");
    p.json(&["pane", "send", "notifier", "ok", "--enter"]);
    events.states_until("notifier", "working", &mut seen);
    p.json(&["pane", "send", "notifier", "bye", "--enter"]);
    events.states_until("notifier", "exited", &mut seen);
    assert_eq!(seen, ["starting", "working", "waiting", "working", "waiting", "working", "exited"]);
    // The commands run beside the supervisor: wait for the exited one, then count.
    let mut text = String::new();
    for _ in 0..500 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("notifier|exited") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "notifier|exited",
            "notifier|waiting|Codex: Approve running cargo test?",
            "notifier|waiting|Need a decision on the parser"
        ],
        "once per change into the state"
    );
}

#[test]
fn a_prompt_then_silence_is_idle_and_pane_wait_state_sees_it() {
    let p = Panes::new();
    // The stand-in is an agent, though wt has no profile for it: it is told so.
    p.t.write("wt.toml", "[agents.default]\nquiet_ms = 1000\nprogram = false\n");
    let mut events = Events::subscribe(&p);
    p.t.run("wt-create", &["quiet"], "").expect_code(0);
    p.wt_run(&["-w", "quiet", "--pane", "--", "python3", &data("standins/prompt.py")]).expect_code(0);
    let waited = p.json(&["pane", "wait", "quiet", "--state", "waiting,idle", "--timeout", "30s"]);
    assert_eq!((s(&waited, "state"), s(&waited, "source")), ("idle", "output"), "{waited}");
    let mut seen = Vec::new();
    events.states_until("quiet", "idle", &mut seen);
    assert_eq!(seen, ["starting", "working", "idle"]);
    let ls = p.wt_run(&["pane", "ls"]);
    let entry: Value =
        ls.stdout.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|e| e["name"] == "quiet").unwrap();
    assert_eq!((s(&entry, "state"), s(&entry, "source"), s(&entry, "agent")), ("idle", "output", "default"), "{entry}");
    assert!(entry["since"].as_u64().unwrap() > 1_700_000_000_000, "since is a Unix time in ms: {entry}");
    let timeout = p.wt_run(&["pane", "wait", "quiet", "--state", "waiting", "--timeout", "300ms"]);
    assert_eq!(timeout.code, Some(1), "{timeout}");
    assert!(timeout.stderr.contains("the pane is idle"), "{timeout}");
    p.json(&["pane", "kill", "quiet"]);
    events.states_until("quiet", "exited", &mut seen);
    let exited = p.json(&["pane", "wait", "quiet", "--state", "idle,exited"]);
    assert_eq!(s(&exited, "state"), "exited");
}

#[test]
fn a_screen_rule_from_wt_toml_recognises_a_permission_dialog() {
    let p = Panes::new();
    p.t.write(
        "wt.toml",
        "[agents.standin]\ncommands = [\"dialog.py\"]\nquiet_ms = 60000\n\
         rules = [{ pattern = 'Allow this tool to run `[^`]*`\\?', lines = 6, priority = 9 }]\n",
    );
    let mut events = Events::subscribe(&p);
    p.t.run("wt-create", &["dialog"], "").expect_code(0);
    p.wt_run(&["-w", "dialog", "--pane", "--", "python3", &data("standins/dialog.py")]).expect_code(0);
    let mut seen = Vec::new();
    events.states_until("dialog", "working", &mut seen);
    p.json(&["pane", "send", "dialog", "ask", "--enter"]);
    let waiting = events.states_until("dialog", "waiting", &mut seen);
    assert_eq!(s(&waiting, "source"), "screen", "{waiting}");
    assert_eq!(s(&waiting, "message"), "Allow this tool to run `cargo test`?");
    p.json(&["pane", "send", "dialog", "1", "--enter"]);
    events.states_until("dialog", "working", &mut seen);
    p.json(&["pane", "send", "dialog", "bye", "--enter"]);
    events.states_until("dialog", "exited", &mut seen);
    assert_eq!(seen, ["starting", "working", "waiting", "working", "exited"]);
}

#[test]
fn notify_from_a_hook_is_quiet_and_never_blocks_the_agent() {
    let p = Panes::new();
    p.spawn("agent", &["sleep", "60"]);
    let mut c = p.cmd();
    c.args(["pane", "notify", "agent", "--from-hook", "claude"]);
    let bad = wt_tests::Run::of(&mut c, "not json");
    assert_eq!(bad.code, Some(1), "exit 2 would block Claude Code's tool call: {bad}");
    assert_eq!(bad.stderr.lines().count(), 1, "{bad}");
    assert!(bad.stdout.is_empty());
    let mut c = p.cmd();
    c.args(["pane", "notify", "agent", "--from-hook", "claude"]);
    let ok = wt_tests::Run::of(&mut c, r#"{"hook_event_name":"UserPromptSubmit","prompt":"go"}"#);
    assert_eq!(
        (ok.code, ok.stdout.as_str()),
        (Some(0), ""),
        "nothing on stdout (Claude Code reads it as context): {ok}"
    );
    let mut c = p.cmd();
    c.args(["pane", "notify", "--from-hook", "claude"]).env_remove("WT_PANE");
    let outside = wt_tests::Run::of(&mut c, r#"{"hook_event_name":"Stop"}"#);
    assert_eq!((outside.code, outside.stdout.as_str()), (Some(0), ""), "outside any pane: nothing to do: {outside}");
    let bad_state = p.wt_run(&["pane", "notify", "agent", "--state", "asleep"]);
    assert_eq!(bad_state.code, Some(1), "{bad_state}");
    assert!(bad_state.stderr.contains("starting, working, waiting, idle, running, exited"), "{bad_state}");
    let bad_flag = p.wt_run(&["-w", "agent", "--pane", "--on-state", "asleep=true", "--", "true"]);
    assert_eq!(bad_flag.code, Some(2), "{bad_flag}");
}

/// The Claude Code CLI, installed by npm into the target directory once.
/// The Claude Code CLI from npm, installed once under the target dir. The tests of this file
/// run at once: each used to see no CLI and run `npm install` into the same directory, so one
/// started the CLI while the other's install was rewriting it, and it exited (on a fresh
/// clone only). It is installed once per process, beside its place, and renamed into it.
fn claude_cli() -> PathBuf {
    static INSTALLED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let target = wt_tests::bin("wt-run").parent().unwrap().parent().unwrap().to_path_buf();
            let dir = target.join("claude-code");
            let bin = dir.join("node_modules/.bin/claude");
            if !bin.exists() {
                let fresh = target.join(format!("claude-code.{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&fresh);
                std::fs::create_dir_all(&fresh).unwrap();
                let out = std::process::Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund", "--prefix"])
                    .arg(&fresh)
                    .arg("@anthropic-ai/claude-code")
                    .output()
                    .expect("npm, to install the Claude Code CLI");
                assert!(out.status.success(), "npm install: {}", String::from_utf8_lossy(&out.stderr));
                // A directory a killed run left (no CLI in it) makes way; one another test
                // process put in place meanwhile is kept.
                if !bin.exists() {
                    let _ = std::fs::remove_dir_all(&dir);
                    if std::fs::rename(&fresh, &dir).is_err() {
                        assert!(bin.exists(), "the Claude Code CLI is at {}", bin.display());
                    }
                }
                let _ = std::fs::remove_dir_all(&fresh);
            }
            bin
        })
        .clone()
}

#[test]
fn the_real_claude_code_cli_is_seen_waiting_at_its_first_screen() {
    let claude = claude_cli();
    let p = Panes::new();
    p.t.run("wt-create", &["claude"], "").expect_code(0);
    let worktree = p.t.wt_root().join("claude");
    let settings = worktree.join(".claude/settings.local.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let user = r#"{"permissions": {"allow": ["Bash(cargo test:*)"]},
        "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./my-guard.sh"}]}],
                  "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]}}"#;
    std::fs::write(&settings, user).unwrap();
    // Past the first-run theme screens (which would try to reach the service and exit), with
    // a key that cannot work: it stops at its first dialog, asking the person.
    std::fs::write(p.t.root().join("home/.claude.json"), r#"{"hasCompletedOnboarding": true, "theme": "dark"}"#)
        .unwrap();
    let mut c = p.cmd();
    c.args(["-w", "claude", "--pane", "--agent-hooks", "--"]).arg(&claude);
    c.env("ANTHROPIC_API_KEY", "sk-ant-api03-not-a-key").env("DISABLE_AUTOUPDATER", "1");
    c.env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    wt_tests::Run::of(&mut c, "").expect_code(0);
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).expect("valid JSON");
    assert_eq!(written["permissions"]["allow"][0], "Bash(cargo test:*)");
    let pre = written["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre[0]["hooks"][0]["command"], "./my-guard.sh", "the user's hook stays first: {written}");
    assert!(pre[1]["hooks"][0]["command"].as_str().unwrap().ends_with("pane notify --from-hook claude"));
    assert_eq!(written["hooks"]["Stop"][0]["hooks"][0]["command"], "notify-send done");
    assert!(written["hooks"].get("WorktreeCreate").is_none());
    let status = p.t.git_in(&worktree, ["status", "--porcelain"]);
    assert_eq!(status, "", "the hook settings are git-ignored");
    let waited = p.wt_run(&["pane", "wait", "claude", "--state", "waiting", "--timeout", "90s"]);
    let screen = p.wt_run(&["pane", "screen", "claude"]);
    assert_eq!(waited.code, Some(0), "{waited}\n{screen}");
    let waited: Value = serde_json::from_str(waited.stdout.trim()).unwrap();
    assert_eq!(s(&waited, "source"), "screen", "{waited}");
    let text = s(&p.json(&["pane", "screen", "claude"]), "text").to_string();
    assert!(text.contains("Enter to confirm"), "a dialog for the person: {text}");
    let listed = p.wt_run(&["pane", "ls"]);
    assert!(listed.stdout.contains("\"agent\":\"claude\""), "{listed}");
}

#[test]
fn agent_hooks_refuse_a_planted_link_and_a_settings_file_that_is_not_json() {
    let p = Panes::new();
    p.t.run("wt-create", &["linked", "broken"], "").expect_code(0);
    // The agent made .claude a link to the user's own settings directory.
    let users = p.t.root().join("home/.claude");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(users.join("settings.local.json"), "{}").unwrap();
    std::os::unix::fs::symlink(&users, p.t.wt_root().join("linked/.claude")).unwrap();
    let run = p.wt_run(&["-w", "linked", "--pane", "--agent-hooks", "--", "sleep", "30"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(run.records()[0]["error"]["code"], "unsafe-path", "{run}");
    assert_eq!(
        std::fs::read_to_string(users.join("settings.local.json")).unwrap(),
        "{}",
        "the link's target is untouched"
    );
    let settings = p.t.wt_root().join("broken/.claude/settings.local.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, "{ \"hooks\": ").unwrap();
    let run = p.wt_run(&["-w", "broken", "--pane", "--agent-hooks", "--", "sleep", "30"]);
    assert_eq!(run.records()[0]["error"]["code"], "bad-settings", "{run}");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{ \"hooks\": ", "left as it is");
    let listed = p.wt_run(&["pane", "ls"]);
    assert!(!listed.stdout.contains("\"name\":\"broken\""), "nothing started: {listed}");
}

#[test]
fn pane_answer_takes_the_real_claude_code_cli_through_its_dialogs() {
    // Its workspace trust dialog (yes), then its question about the API key in the
    // environment (no): each answered by the number of the menu item, as Claude Code takes it.
    let claude = claude_cli();
    let p = Panes::new();
    p.t.run("wt-create", &["answered"], "").expect_code(0);
    std::fs::write(p.t.root().join("home/.claude.json"), r#"{"hasCompletedOnboarding": true, "theme": "dark"}"#)
        .unwrap();
    let mut c = p.cmd();
    c.args(["-w", "answered", "--pane", "--"]).arg(&claude);
    c.env("ANTHROPIC_API_KEY", "sk-ant-api03-not-a-key").env("DISABLE_AUTOUPDATER", "1");
    c.env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    wt_tests::Run::of(&mut c, "").expect_code(0);
    p.json(&["pane", "wait", "answered", "--match", "trust this folder", "--timeout", "90s"]);
    p.json(&["pane", "wait", "answered", "--state", "waiting", "--timeout", "30s"]);
    let yes = p.json(&["pane", "answer", "answered", "yes"]);
    assert_eq!(s(&yes, "item"), "Yes, I trust this folder", "{yes}");
    p.json(&["pane", "wait", "answered", "--match", "Do you want to use this API key", "--timeout", "30s"]);
    p.json(&["pane", "wait", "answered", "--state", "waiting", "--timeout", "30s"]);
    let no = p.json(&["pane", "answer", "answered", "no"]);
    assert_eq!((s(&no, "item"), &no["keys"]), ("No (recommended)", &serde_json::json!(["2"])), "{no}");
    // Past both dialogs: at its prompt, no longer waiting for the person.
    p.json(&["pane", "wait", "answered", "--match", "for shortcuts", "--timeout", "30s"]);
    let state = p.json(&["pane", "wait", "answered", "--state", "idle,working", "--timeout", "30s"]);
    assert_ne!(s(&state, "state"), "waiting", "{state}");
    let refused = p.wt_run(&["pane", "answer", "answered", "yes"]);
    assert_eq!(refused.code, Some(1), "not waiting now: {refused}");
}
