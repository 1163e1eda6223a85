//! Answering an agent's dialog (`pane.answer`, `wt-run pane answer NAME yes|no|TEXT`): the keys
//! that mean `yes` or `no` to that agent, from its profile's answer table (`agents.toml`, next
//! to the screen rules that recognise its dialogs), or a line of text typed and entered.
//!
//! An answer names a menu item and/or keys. `item` is a regular expression over the labels of
//! the numbered menu the dialog shows (`❯ 1. Yes`, `2. Yes, and don't ask again`, `3. No`):
//! the number of the first item whose label matches is typed, so the answer follows the menu
//! as the agent drew it, whatever its length. When the screen shows no such item, `keys` are
//! pressed instead (key names as `pane key` takes them, or one character typed as it is).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::handle::Failure;

/// How many rows above the last drawn row a dialog's menu is looked for.
const MENU_ROWS: usize = 30;

/// One answer, as written in the data file and on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerSpec {
    /// A regular expression over the labels of the dialog's numbered menu.
    #[serde(default)]
    pub item: Option<String>,
    /// Keys pressed when no menu item matches (or always, without `item`).
    #[serde(default)]
    pub keys: Vec<String>,
}

/// An answer, checked and compiled.
#[derive(Debug)]
pub struct Answer {
    item: Option<regex::Regex>,
    keys: Vec<(String, Vec<u8>)>,
}

/// What `pane.answer` was asked to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `yes`, `no` (or another answer the profile names).
    Named(String),
    /// A line typed, then Enter.
    Text(String),
}

/// The keys an answer presses, named for people and as bytes for the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub names: Vec<String>,
    pub bytes: Vec<u8>,
    /// The menu item chosen, if the answer followed the menu.
    pub item: Option<String>,
}

/// Compiles a profile's answer table, refusing a bad pattern or key with the agent named.
pub fn compile(agent: &str, specs: &BTreeMap<String, AnswerSpec>) -> Result<BTreeMap<String, Answer>, Failure> {
    let mut out = BTreeMap::new();
    for (name, spec) in specs {
        let bad = |what: String| ("bad-params", format!("agent '{agent}': answer '{name}': {what}"));
        if spec.item.is_none() && spec.keys.is_empty() {
            return Err(bad("needs item (a menu label pattern) or keys".into()));
        }
        let item = match &spec.item {
            Some(re) => Some(regex::Regex::new(re).map_err(|e| bad(format!("bad item pattern '{re}': {e}")))?),
            None => None,
        };
        let keys = spec
            .keys
            .iter()
            .map(|k| key(k).map(|b| (k.clone(), b)).ok_or_else(|| bad(format!("unknown key '{k}'"))))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(name.clone(), Answer { item, keys });
    }
    Ok(out)
}

/// A key name (`enter`, `escape`, `ctrl-c`) or one character, as bytes.
fn key(name: &str) -> Option<Vec<u8>> {
    let mut chars = name.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if !c.is_control() => Some(c.to_string().into_bytes()),
        _ => super::protocol::key_bytes(name),
    }
}

impl Answer {
    /// The keys that give this answer to the dialog on `rows` (the screen's text rows).
    pub fn keys(&self, rows: &[String]) -> Option<Keys> {
        if let Some(re) = &self.item {
            if let Some((number, label)) = menu(rows).into_iter().find(|(_, label)| re.is_match(label)) {
                let n = number.to_string();
                return Some(Keys { names: vec![n.clone()], bytes: n.into_bytes(), item: Some(label) });
            }
        }
        (!self.keys.is_empty()).then(|| Keys {
            names: self.keys.iter().map(|(n, _)| n.clone()).collect(),
            bytes: self.keys.iter().flat_map(|(_, b)| b.clone()).collect(),
            item: None,
        })
    }
}

/// The last numbered menu on the screen: its items (number, label) from `1.` down, within the
/// bottom rows. An earlier menu further up (a dialog answered before) is not this one.
fn menu(rows: &[String]) -> Vec<(u32, String)> {
    let item = regex::Regex::new(r"^[\s│|]*(?:[❯>›▶→*]\s*)?(\d{1,2})[.)]\s+(\S.*?)[\s│|]*$").expect("menu pattern");
    let end = rows.iter().rposition(|r| !r.trim().is_empty()).map_or(0, |i| i + 1);
    let mut items: Vec<(u32, String)> = Vec::new();
    for row in &rows[end.saturating_sub(MENU_ROWS)..end] {
        let Some(c) = item.captures(row) else { continue };
        let number: u32 = c[1].parse().unwrap_or(0);
        if number == 1 {
            items.clear(); // a new menu starts
        }
        items.push((number, c[2].to_string()));
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn answer(item: Option<&str>, keys: &[&str]) -> Answer {
        let spec = AnswerSpec { item: item.map(str::to_string), keys: keys.iter().map(|k| k.to_string()).collect() };
        compile("x", &BTreeMap::from([("a".to_string(), spec)])).unwrap().remove("a").unwrap()
    }

    #[test]
    fn the_menu_item_whose_label_matches_is_chosen_by_its_number() {
        let screen = rows(&[
            "╭────────────────────────╮",
            "│ Do you want to proceed? │",
            "│ ❯ 1. Yes                │",
            "│   2. Yes, and don't ask again for this command │",
            "│   3. No, and tell Claude what to do differently (esc) │",
            "╰────────────────────────╯",
            "",
        ]);
        let no = answer(Some("^No"), &["escape"]).keys(&screen).unwrap();
        assert_eq!((no.names, no.bytes), (vec!["3".to_string()], b"3".to_vec()));
        let yes = answer(Some("^Yes"), &[]).keys(&screen).unwrap();
        assert_eq!(yes.bytes, b"1");
        assert_eq!(yes.item.as_deref(), Some("Yes"));
    }

    #[test]
    fn without_a_matching_item_the_keys_are_pressed() {
        let screen = rows(&["Allow command? (y)es / (n)o"]);
        assert_eq!(answer(Some("^No"), &["escape"]).keys(&screen).unwrap().bytes, b"\x1b");
        assert_eq!(answer(None, &["y", "enter"]).keys(&screen).unwrap().bytes, b"y\r");
        assert_eq!(answer(Some("^No"), &[]).keys(&screen), None);
    }

    #[test]
    fn only_the_last_menu_counts() {
        let screen = rows(&["1. No thanks", "2. Yes", "", "Again?", "1. Yes", "2. No"]);
        assert_eq!(answer(Some("^No"), &[]).keys(&screen).unwrap().bytes, b"2");
    }

    #[test]
    fn bad_answers_are_refused_with_the_agent_named() {
        let spec = |item: Option<&str>, keys: &[&str]| AnswerSpec {
            item: item.map(str::to_string),
            keys: keys.iter().map(|k| k.to_string()).collect(),
        };
        for bad in [spec(None, &[]), spec(Some("("), &[]), spec(None, &["hyper-x"])] {
            let err = compile("x", &BTreeMap::from([("yes".to_string(), bad)])).unwrap_err();
            assert!(err.1.starts_with("agent 'x': answer 'yes'"), "{}", err.1);
        }
    }
}
