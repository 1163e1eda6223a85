//! The manual pages: clap_mangen's sections, except two it gets wrong for these tools. Its
//! SYNOPSIS names the flags but not their values (`[--timeout]` for `--timeout DUR`), and it
//! sets the `after_help` text (examples, exit codes) as filled paragraphs, so `man` joins and
//! re-wraps the example command lines. Here the SYNOPSIS carries each value's name and the
//! examples are set unfilled, one command per line, in an EXAMPLES section of their own.

use std::path::Path;

use clap::{Arg, ArgAction, Command};
use std::io::Write;

use clap_mangen::roff::{roman, Roff};
use clap_mangen::Man;

/// Writes a page for `cmd` and one for each of its subcommands (`wt-run-pane-attach.1`).
pub fn write_pages(mut cmd: Command, dir: &Path) -> std::io::Result<()> {
    cmd.build();
    write_tree(cmd, dir)
}

fn write_tree(cmd: Command, dir: &Path) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        write_tree(sub, dir)?;
    }
    let man = Man::new(cmd.clone());
    std::fs::write(dir.join(man.get_filename()), page(&man, &cmd)?)
}

/// The page's roff source.
pub fn page(man: &Man, cmd: &Command) -> std::io::Result<String> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut part = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| -> std::io::Result<()> {
        let mut buf = Vec::new();
        render(&mut buf)?;
        parts.push(buf);
        Ok(())
    };
    part(&|w| man.render_title(w))?;
    // No hyphenation (a command, a flag or a path broken at a hyphen reads as another word), and
    // ragged right: the synopsis is a row of flags, not prose to justify.
    part(&|w| w.write_all(b".nh\n.ad l\n"))?;
    part(&|w| man.render_name_section(w))?;
    part(&|w| w.write_all(synopsis(cmd).as_bytes()))?;
    part(&|w| man.render_description_section(w))?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        part(&|w| man.render_options_section(w))?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        part(&|w| man.render_subcommands_section(w))?;
    }
    part(&|w| after_help(cmd).to_writer(w))?;
    if cmd.get_version().is_some() {
        part(&|w| man.render_version_section(w))?;
    }
    // Each part starts with roff's two-line preamble (the apostrophe string); once is enough.
    let preamble = Roff::new().render();
    let mut text = String::new();
    for (i, part) in parts.into_iter().enumerate() {
        let part = String::from_utf8(part).map_err(std::io::Error::other)?;
        text.push_str(if i == 0 { &part } else { part.strip_prefix(&preamble).unwrap_or(&part) });
    }
    Ok(text)
}

/// `wt-run [-j|--jobs N] [--timeout DUR] … [--confine[=MODE]] … -- CMD...`: every visible
/// argument with the name of its value, as `--help`'s option list shows it. Written as roff
/// source, not through `roff::Roff`, for the unbreakable space (`\ `) that keeps a flag and its
/// value on one line.
fn synopsis(cmd: &Command) -> String {
    let name = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    let mut words = vec![bold(name)];
    words.extend(cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_positional()).map(option));
    words.extend(cmd.get_positionals().filter(|a| !a.is_hide_set()).map(positional));
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        let (open, close) = if cmd.is_subcommand_required_set() { ("<", ">") } else { ("[", "]") };
        words.push(format!("{open}{}{close}", italic("COMMAND")));
    }
    format!(".SH SYNOPSIS\n{}\n", words.join(" "))
}

/// `[-j|--jobs N]`, `[--confine[=MODE]]`, `[-w|--worktree NAME]...`, `[-v|--verbose]...`.
fn option(arg: &Arg) -> String {
    let mut out = String::from(if arg.is_required_set() { "" } else { "[" });
    match (arg.get_short(), arg.get_long()) {
        (Some(short), Some(long)) => out += &format!("{}|{}", bold(&format!("-{short}")), bold(&format!("--{long}"))),
        (Some(short), None) => out += &bold(&format!("-{short}")),
        (None, Some(long)) => out += &bold(&format!("--{long}")),
        (None, None) => {}
    }
    let values = arg.get_num_args().expect("a built command");
    if values.takes_values() {
        let value = italic(&value_names(arg));
        out += &match (values.min_values() == 0, arg.is_require_equals_set()) {
            (true, true) => format!("[={value}]"),
            (true, false) => format!("\\ [{value}]"),
            (false, true) => format!("={value}"),
            (false, false) => format!("\\ {value}"),
        };
    }
    out += if arg.is_required_set() { "" } else { "]" };
    if repeats(arg) {
        out += "...";
    }
    out
}

/// `[NAME|PATH]...`, `-- CMD...` (an argument that comes after `--`).
fn positional(arg: &Arg) -> String {
    let last = if arg.is_last_set() { "\\-\\-\\ " } else { "" };
    let (open, close) = if arg.is_required_set() { ("", "") } else { ("[", "]") };
    let more = if repeats(arg) { "..." } else { "" };
    format!("{last}{open}{}{close}{more}", italic(&value_names(arg)))
}

fn bold(text: &str) -> String {
    format!("\\fB{}\\fR", escape(text))
}

fn italic(text: &str) -> String {
    format!("\\fI{}\\fR", escape(text))
}

/// Text as roff prints it: a backslash is `\e`, a hyphen-minus `\-` (a plain `-` may be set
/// as a hyphen, which a reader cannot type).
fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

fn value_names(arg: &Arg) -> String {
    match arg.get_value_names() {
        Some(names) => names.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
        None => arg.get_id().as_str().to_uppercase(),
    }
}

/// Whether the argument may be given more than once, or take several values.
fn repeats(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append | ArgAction::Count)
        || arg.get_num_args().is_some_and(|n| n.max_values() > 1)
}

/// The `after_help` text, by paragraph: `Examples:` set unfilled in EXAMPLES (a command per
/// line, as typed), `Exit:` in EXIT STATUS, anything else in NOTES, filled as prose.
fn after_help(cmd: &Command) -> Roff {
    let mut roff = Roff::new();
    let text = cmd.get_after_long_help().or_else(|| cmd.get_after_help()).map(|h| h.to_string()).unwrap_or_default();
    let mut notes = Vec::new();
    for paragraph in text.split("\n\n").map(str::trim_end).filter(|p| !p.trim().is_empty()) {
        if let Some(examples) = paragraph.strip_prefix("Examples:") {
            roff.control("SH", ["EXAMPLES"]).control("nf", []);
            for line in examples.lines().filter(|l| !l.trim().is_empty()) {
                roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]);
            }
            roff.control("fi", []);
        } else if let Some(exit) = paragraph.strip_prefix("Exit:") {
            roff.control("SH", ["EXIT STATUS"]).text([roman(exit.trim().replace('\n', " "))]);
        } else {
            notes.push(paragraph);
        }
    }
    if !notes.is_empty() {
        roff.control("SH", ["NOTES"]);
        for (i, note) in notes.iter().enumerate() {
            if i > 0 {
                roff.control("PP", []);
            }
            roff.text([roman(note.replace('\n', " "))]);
        }
    }
    roff
}
