//! Agent profiles: which agent a pane runs, and its screen rules and quiet time, from the data
//! file built into wt-run (`agents.toml`) and `wt.toml [agents.NAME]`, which adds rules and
//! overrides the rest. The supervisor gets the chosen profile in `pane.spawn`'s `agent`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use wt_common::Error;

use crate::pane::answer::AnswerSpec;
use crate::pane::rules::{ProfileSpec, RuleSpec};

/// The built-in profiles.
pub const BUILT_IN: &str = include_str!("../../agents.toml");

/// One `[agents.NAME]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default)]
    pub commands: Option<Vec<String>>,
    #[serde(default)]
    pub quiet_ms: Option<u64>,
    #[serde(default)]
    pub status_file: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    #[serde(default)]
    pub answers: BTreeMap<String, AnswerSpec>,
    #[serde(default)]
    pub program: Option<bool>,
}

/// Every profile: the built-in ones with the user's `[agents]` over them.
pub fn load(root: Option<&Path>) -> Result<BTreeMap<String, AgentConfig>, Error> {
    let mut all: BTreeMap<String, AgentConfig> = toml::from_str(BUILT_IN).expect("agents.toml is valid");
    let user: BTreeMap<String, AgentConfig> = wt_common::config::section(root, "agents")?;
    for (name, mine) in user {
        let entry = all.entry(name).or_default();
        entry.commands = mine.commands.or(entry.commands.take());
        entry.quiet_ms = mine.quiet_ms.or(entry.quiet_ms);
        entry.status_file = mine.status_file.or(entry.status_file.take());
        entry.rules.extend(mine.rules);
        entry.answers.extend(mine.answers);
        entry.program = mine.program.or(entry.program);
    }
    Ok(all)
}

/// The profile for a pane running `argv`: `forced` by name, else the first agent one of
/// whose commands is a word of the command line (by its file name), else `default`.
pub fn choose(
    all: &BTreeMap<String, AgentConfig>,
    argv: &[String],
    forced: Option<&str>,
) -> Result<ProfileSpec, Error> {
    let name = match forced {
        Some(n) if all.contains_key(n) => n.to_string(),
        Some(n) => {
            let known = all.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(Error::usage(
                "bad-agent",
                format!("no agent profile '{n}' (known: {known}; add one in wt.toml [agents.{n}])"),
            ));
        }
        None => {
            let words: Vec<&str> =
                argv.iter().flat_map(|a| a.split_whitespace()).map(|w| w.rsplit('/').next().unwrap_or(w)).collect();
            all.iter()
                .find(|(name, c)| {
                    let default = [name.to_string()];
                    let commands = c.commands.as_deref().unwrap_or(if *name == "default" { &[] } else { &default });
                    commands.iter().any(|cmd| words.contains(&cmd.as_str()))
                })
                .map_or_else(|| "default".to_string(), |(n, _)| n.clone())
        }
    };
    let c = all.get(&name).cloned().unwrap_or_default();
    let spec = ProfileSpec {
        name: name.clone(),
        quiet_ms: c.quiet_ms,
        rules: c.rules,
        status_file: c.status_file,
        answers: c.answers,
        program: c.program.unwrap_or(false),
    };
    // Refuse a bad rule here, where the person who wrote it sees the message.
    crate::pane::rules::Profile::compile(&spec)
        .map_err(|(_, msg)| Error::usage("bad-config", format!("wt.toml: {msg}")))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_chooses_the_profile() {
        let all = load(None).unwrap();
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(choose(&all, &argv(&["/usr/bin/claude", "fix it"]), None).unwrap().name, "claude");
        assert_eq!(choose(&all, &argv(&["sh", "-c", "exec codex --full-auto"]), None).unwrap().name, "codex");
        assert_eq!(choose(&all, &argv(&["python3", "x.py"]), None).unwrap().name, "default");
        assert_eq!(choose(&all, &argv(&["python3"]), Some("claude")).unwrap().name, "claude");
        assert!(choose(&all, &argv(&["x"]), Some("nope")).is_err());
        for spec in all.keys().map(|n| choose(&all, &[], Some(n)).unwrap()) {
            crate::pane::rules::Profile::compile(&spec).unwrap();
        }
    }
}
