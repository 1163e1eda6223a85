//! The documentation holds together: every link in README.md and docs/*.md is relative, names
//! a file of the repository that exists and, for `page.md#anchor`, a heading of that page; and
//! the README stays a front door, not a manual.

use std::path::{Path, PathBuf};

/// The README's budget: what wt is, prerequisites, the two commands, install, the walk-through
/// and links. What goes beyond it belongs in a page of docs/.
const README_MAX_LINES: usize = 250;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// README.md and every page of docs/.
fn pages() -> Vec<PathBuf> {
    let root = repo();
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The text outside fenced code blocks (where `](` is code, not a link).
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The anchors GitHub makes of a page's headings: lower case, punctuation but `-` and `_`
/// dropped, spaces made `-`.
fn anchors(text: &str) -> Vec<String> {
    prose(text)
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// The targets of the `[text](target)` links of a page.
fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut found = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            found.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    found
}

#[test]
fn every_link_of_the_readme_and_docs_is_relative_and_resolves() {
    let root = repo();
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page.strip_prefix(&root).unwrap().display().to_string();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") || link.starts_with('/') {
                broken.push(format!("{name}: {link} leaves the repository"));
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            let Ok(target) = target.canonicalize() else {
                broken.push(format!("{name}: {link} names no file"));
                continue;
            };
            if !target.starts_with(&root) {
                broken.push(format!("{name}: {link} leaves the repository"));
            } else if !anchor.is_empty() && target.extension().is_some_and(|x| x == "md") {
                let heads = anchors(&std::fs::read_to_string(&target).unwrap());
                if !heads.iter().any(|h| h == anchor) {
                    broken.push(format!("{name}: {link} names no heading of {}", file));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_a_front_door_and_every_docs_page_is_in_the_index() {
    let root = repo();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines <= README_MAX_LINES, "README.md has {lines} lines; move detail to a page of docs/");
    let index = std::fs::read_to_string(root.join("docs/README.md")).unwrap();
    let linked = links(&index);
    for page in pages().iter().skip(1) {
        let file = page.file_name().unwrap().to_str().unwrap();
        if file != "README.md" {
            assert!(linked.iter().any(|l| l == file), "docs/README.md does not link {file}");
        }
    }
}
