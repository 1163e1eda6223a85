//! Long runs of printable output, shortened before the terminal emulator parses them.
//!
//! Parsing is a pane's hot path: the emulator does work for every character (its width, its
//! cell, the wrap, the scroll), however fast the program prints. But of a run of printable
//! ASCII far longer than the screen and its scrollback, only the end can still be seen: the
//! rest scrolls out of the scrollback. So while a run grows, its middle is dropped in whole
//! rows (the cursor ends in the column it would have), and the emulator's state after the
//! shortened run is its state after the whole run.
//!
//! Why that holds, whatever state the parser is in when the run starts: printable bytes move
//! any escape sequence on to the ground state or into a string (OSC, DCS, SOS/PM/APC) by the
//! second byte in 0x40..=0x7e, and a string cannot end inside a run (its terminators are not
//! printable), so the run's first part up to there, and a row's worth more (with autowrap off
//! those fill the row, later ones only rewrite its last cell), is always parsed. From there on
//! each byte prints one cell. The part kept at the end is long enough to reach the bottom of
//! the screen from any row and then push every row it did not write itself (including one
//! written in insert mode, or inside a scroll region) out of the scrollback.
//!
//! The run is held back while it grows and handed to the emulator as soon as anything but a
//! printable byte arrives or the program stops printing (the caller flushes when its next read
//! would wait), so the screen is exact whenever output pauses.

/// Printable ASCII: one cell each in the ground state, inert inside strings.
fn printable(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

/// The printable bytes that end an escape sequence (or start a string).
fn final_byte(b: u8) -> bool {
    (0x40..=0x7e).contains(&b)
}

#[derive(Debug, Default)]
pub struct RunShortener {
    /// The printable run not yet parsed.
    run: Vec<u8>,
    /// Bytes dropped from runs so far (for tests and diagnostics).
    pub dropped: u64,
}

/// The screen a run is shortened for.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub rows: u16,
    pub cols: u16,
    pub scrollback: usize,
}

impl RunShortener {
    /// Takes the next chunk of output; what the emulator must parse now goes to `parse`, in
    /// order. Whatever is held back follows on a later call or on `flush`.
    pub fn feed(&mut self, chunk: &[u8], at: Geometry, parse: &mut dyn FnMut(&[u8])) {
        let lead = chunk.iter().position(|&b| !printable(b)).unwrap_or(chunk.len());
        self.run.extend_from_slice(&chunk[..lead]);
        if lead < chunk.len() {
            self.flush(parse);
            let rest = &chunk[lead..];
            let end = rest.iter().rposition(|&b| !printable(b)).map_or(0, |i| i + 1);
            parse(&rest[..end]);
            self.run.extend_from_slice(&rest[end..]);
        }
        self.shorten(at);
    }

    /// Hands the held run to the emulator.
    pub fn flush(&mut self, parse: &mut dyn FnMut(&[u8])) {
        if !self.run.is_empty() {
            parse(&self.run);
            self.run.clear();
        }
    }

    /// Drops the run's middle once it holds twice what must be kept, so that the held bytes
    /// stay bounded (about 1.2 MB for a 120×40 screen with 5,000 lines of scrollback).
    fn shorten(&mut self, at: Geometry) {
        let cols = usize::from(at.cols.max(1));
        let keep = (2 * usize::from(at.rows) + at.scrollback + 2) * cols;
        if self.run.len() < 2 * keep {
            return;
        }
        let Some(head) = head_len(&self.run, cols) else { return };
        let spare = self.run.len().saturating_sub(head + keep);
        let drop = spare - spare % cols;
        if drop > 0 {
            self.run.drain(head..head + drop);
            self.dropped += drop as u64;
        }
    }
}

/// How much of a run's start must be parsed as it is: through the second byte that could end
/// an escape sequence, then a row.
fn head_len(run: &[u8], cols: usize) -> Option<usize> {
    let second = run.iter().enumerate().filter(|(_, &b)| final_byte(b)).nth(1)?.0;
    Some(second + 1 + cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Geometry = Geometry { rows: 5, cols: 7, scrollback: 4 };

    /// The emulator's state after `bytes` fed in `chunk`-sized pieces through a shortener,
    /// against the state after all of them parsed as they are.
    fn both(bytes: &[u8], chunk: usize) -> (Vec<u8>, Vec<u8>, u64) {
        let new = || vt100::Parser::new(AT.rows, AT.cols, AT.scrollback);
        let mut whole = new();
        whole.process(bytes);
        let mut short = new();
        let mut s = RunShortener::default();
        for piece in bytes.chunks(chunk) {
            s.feed(piece, AT, &mut |b| short.process(b));
        }
        s.flush(&mut |b| short.process(b));
        (state(&mut whole), state(&mut short), s.dropped)
    }

    fn state(p: &mut vt100::Parser) -> Vec<u8> {
        let mut out = p.screen().contents_formatted();
        out.extend(format!("{:?}", p.screen().cursor_position()).bytes());
        p.screen_mut().set_scrollback(usize::MAX);
        let (_, cols) = p.screen().size();
        for row in p.screen().rows(0, cols) {
            out.extend(row.bytes());
            out.push(b'|');
        }
        out
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789 .,;"[i * 7 % 40]).collect()
    }

    #[test]
    fn a_long_run_ends_in_the_state_the_whole_run_leaves() {
        for prefix in [&b""[..], b"xy\r\n\x1b[3;4H", b"\x1b[4h", b"\x1b[?7l", b"\x1b[2;4r\x1b[3;1H", b"\xc3"] {
            for len in [1000, 1001, 1003, 5000] {
                let mut bytes = prefix.to_vec();
                bytes.extend(text(len));
                bytes.extend(b"\r\nend");
                let (whole, short, dropped) = both(&bytes, 13);
                assert_eq!(whole, short, "prefix {prefix:?}, run of {len}");
                assert!(dropped > 0, "prefix {prefix:?}, run of {len}: nothing was dropped");
            }
        }
    }

    #[test]
    fn escape_sequences_and_strings_around_a_run_stay_whole() {
        // A run that starts inside a CSI (its parameters are printable), inside an OSC title
        // and after an ESC that opens a CSI: the parser's state is never guessed.
        for prefix in [&b"\x1b[1;2;3"[..], b"\x1b]0;title ", b"\x1b", b"\x1bP1;2", b"\x1b[31m"] {
            let mut bytes = prefix.to_vec();
            bytes.extend(text(3000));
            bytes.extend(b"\x07\x1b[0mtail");
            bytes.extend(text(2000));
            let (whole, short, _) = both(&bytes, 64);
            assert_eq!(whole, short, "prefix {prefix:?}");
        }
    }

    #[test]
    fn output_with_control_bytes_is_parsed_whole() {
        let lines: Vec<u8> = (0..2000).flat_map(|i| format!("line {i}\r\n").into_bytes()).collect();
        let (whole, short, dropped) = both(&lines, 100);
        assert_eq!(whole, short);
        assert_eq!(dropped, 0, "no run is long enough to shorten");
    }
}
