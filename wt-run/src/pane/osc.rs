//! Terminal notifications in a pane's output: OSC 9 (iTerm2), OSC 99 (kitty), OSC 777
//! (urxvt, `notify;title;body`) and a bare BEL. The scan runs on every chunk the PTY reader
//! drains, so it is cheap: outside an escape sequence it only looks for ESC and BEL; other
//! escape sequences (titles, colours, hyperlinks) are skipped without copying.

/// The longest OSC payload kept; longer ones are skipped (no notification is that long).
const MAX_OSC: usize = 4096;

#[derive(Debug, Default)]
enum Mode {
    #[default]
    Text,
    /// After ESC.
    Escape,
    /// Inside `ESC ]`, collecting the payload.
    Osc,
    /// Inside an OSC, after an ESC (the `ESC \` terminator, or not).
    OscEscape,
}

/// Scans output across chunks (a sequence may be split anywhere).
#[derive(Debug, Default)]
pub struct Scanner {
    mode: Mode,
    payload: Vec<u8>,
    overflow: bool,
}

impl Scanner {
    /// Feeds one chunk; returns the notifications it completed (the text, empty for a BEL).
    pub fn scan(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        let mut i = 0;
        while i < chunk.len() {
            match self.mode {
                Mode::Text => match memchr::memchr2(0x1b, 0x07, &chunk[i..]) {
                    None => return found,
                    Some(at) => {
                        i += at;
                        if chunk[i] == 0x07 {
                            found.push(String::new());
                        } else {
                            self.mode = Mode::Escape;
                        }
                    }
                },
                Mode::Escape => {
                    self.mode = if chunk[i] == b']' { Mode::Osc } else { Mode::Text };
                    self.payload.clear();
                    self.overflow = false;
                }
                Mode::Osc => match chunk[i] {
                    0x07 => self.finish(&mut found),
                    0x1b => self.mode = Mode::OscEscape,
                    b => {
                        if self.payload.len() < MAX_OSC {
                            self.payload.push(b);
                        } else {
                            self.overflow = true;
                        }
                    }
                },
                Mode::OscEscape => {
                    if chunk[i] == b'\\' {
                        self.finish(&mut found);
                    } else {
                        self.mode = Mode::Text; // an unterminated OSC: dropped
                        continue;
                    }
                }
            }
            i += 1;
        }
        found
    }

    fn finish(&mut self, found: &mut Vec<String>) {
        self.mode = Mode::Text;
        if !self.overflow {
            if let Some(text) = notification(&String::from_utf8_lossy(&self.payload)) {
                found.push(text);
            }
        }
    }
}

/// The text of an OSC payload that is a notification.
fn notification(payload: &str) -> Option<String> {
    let (code, rest) = payload.split_once(';')?;
    match code {
        // ConEmu's OSC 9;N;… (progress and the like) shares the code: not a notification.
        "9" if rest.split(';').next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) => None,
        "9" => Some(rest.to_string()),
        // kitty: 99;metadata;text (metadata `p=title` or `p=body`, or empty).
        "99" => rest.split_once(';').map(|(_, text)| text.to_string()),
        // urxvt: 777;notify;title;body.
        "777" => {
            let rest = rest.strip_prefix("notify;")?;
            Some(match rest.split_once(';') {
                Some((title, body)) if !title.is_empty() && !body.is_empty() => format!("{title}: {body}"),
                Some((title, body)) => format!("{title}{body}"),
                None => rest.to_string(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_kind_and_skips_other_sequences() {
        let mut s = Scanner::default();
        let out = s.scan(b"a\x1b]0;title\x07b\x1b[31mred\x1b]9;Need input\x07\x1b]777;notify;Codex;Approve?\x1b\\\x07");
        assert_eq!(out, ["Need input", "Codex: Approve?", ""]);
        assert_eq!(s.scan(b"\x1b]99;i=1:p=body;Done here\x1b\\"), ["Done here"]);
        assert!(s.scan(b"\x1b]9;4;1;50\x07\x1b]8;;http://x\x07link\x1b]8;;\x07").is_empty(), "progress, links");
    }

    #[test]
    fn a_sequence_split_across_chunks_is_found_once() {
        let mut s = Scanner::default();
        let whole = b"xx\x1b]777;notify;T;body text\x1b\\yy";
        let mut out = Vec::new();
        for byte in whole {
            out.extend(s.scan(&[*byte]));
        }
        assert_eq!(out, ["T: body text"]);
    }

    #[test]
    fn an_endless_osc_is_bounded_and_dropped() {
        let mut s = Scanner::default();
        s.scan(b"\x1b]9;");
        s.scan(&vec![b'x'; MAX_OSC * 4]);
        assert!(s.scan(b"\x07").is_empty());
        assert_eq!(s.payload.len(), MAX_OSC);
        assert_eq!(s.scan(b"\x1b]9;next\x07"), ["next"]);
    }
}
