//! `wt-run pane wait --match RE`: the regular expression is searched in the screen as a person
//! reads it, line by line: `^` and `$` match at the start and end of every line of the screen,
//! not only at the screen's first and last character (issue 29, item 6).

use wt_tests::panes::Panes;
use wt_tests::s;

/// A screen whose line of interest is neither its first nor its last.
const SCREEN: &str = "printf 'top line\\nready: port 4242\\nbottom line\\n'; sleep 60";

#[test]
fn caret_and_dollar_match_at_each_line_of_the_screen() {
    let p = Panes::new();
    p.spawn("lines", &["sh", "-c", SCREEN]);
    p.wait_match("lines", "bottom line");
    // The whole line, anchored at both ends, in the middle of the screen.
    let found = p.json(&["pane", "wait", "lines", "--match", "^ready: port [0-9]+$", "--timeout", "5s"]);
    assert_eq!(s(&found, "matched"), "ready: port 4242");
    assert!(s(&found["screen"], "text").starts_with("top line\n"), "the line matched is not the first: {found}");
    // `$` at the end of a line that is followed by blank rows, `^` at a line that is not first.
    let last = p.json(&["pane", "wait", "lines", "--match", "^bottom line$", "--timeout", "5s"]);
    assert_eq!(s(&last, "matched"), "bottom line");
    // Anchors still anchor: a line that only contains the text is no match for the whole line.
    let run = p.wt_run(&["pane", "wait", "lines", "--match", "^port 4242$", "--timeout", "1s"]);
    run.expect_code(1);
    assert!(run.stderr.contains("timeout") || run.stdout.contains("timeout"), "{run}");
    // The screen's own start and end are `\A` and `\z`.
    let first = p.json(&["pane", "wait", "lines", "--match", r"\Atop line$", "--timeout", "5s"]);
    assert_eq!(s(&first, "matched"), "top line");
    p.json(&["pane", "kill", "lines"]);
}

#[test]
fn the_help_says_how_the_screen_is_matched() {
    let p = Panes::new();
    let run = p.wt_run(&["pane", "wait", "--help"]);
    run.expect_code(0);
    assert!(run.stdout.contains("multi-line mode"), "{run}");
    assert!(run.stdout.contains("--match '^Listening on port [0-9]+$'"), "an example: {run}");
}
