//! Long runs of plain output, shortened before the terminal emulator parses them.
//!
//! Parsing is a pane's hot path: the emulator does work for every character (its width, its
//! cell, the wrap, the scroll), however fast the program prints. But of a burst far longer
//! than the screen and its scrollback, only the end can still be seen: the rest scrolls out.
//! So a run of plain output (printable ASCII, CR and LF) is held back while it grows, and its
//! middle dropped, such that the emulator's state after the shortened run is its state after
//! the whole run. Two cuts are made:
//!
//! * Lines (a run with line feeds, while no scroll region is set): what is kept reaches the
//!   bottom row from any row (`rows` line feeds), returns to column 0 (a CR), then scrolls every
//!   row that existed at that CR out of the scrollback (`rows + scrollback + 1` more line
//!   feeds). Every row that can still be seen was then written by the kept part on a fresh
//!   row, whatever came before. Without a scroll region every line feed on the bottom row
//!   scrolls; with one, rows below it could be rewritten in place, so nothing is cut then
//!   (scroll regions are followed from the output: `CSI top;bottom r` sets one, `CSI r` or a
//!   reset clears it; anything else with parameters counts as set).
//! * Printable runs (no CR or LF): the middle is dropped in whole rows (the cursor ends in the
//!   column it would have). Printable bytes move any escape sequence on to the ground state
//!   or into a string (OSC, DCS, SOS/PM/APC) by the second byte in 0x40..=0x7e, and a string
//!   cannot end inside a run (its terminators are not plain), so the run's first part up to
//!   there, and a row's worth more (with autowrap off those fill the row, later ones only
//!   rewrite its last cell), is always parsed. From there on each byte prints one cell. The
//!   part kept at the end reaches the bottom of the screen from any row and then pushes every
//!   row it did not write itself (including one inside a scroll region) out of the scrollback.
//!
//! CR and LF inside an escape sequence are executed without ending it, so a run's start is
//! always parsed as it is, up to the second possible final byte and then a row (at least the
//! 1,024 bytes an OSC string keeps). The held run is parsed as soon as anything but a plain
//! byte arrives, when it grows past `MAX_HELD` without a cut, or when anyone looks at the
//! screen (the caller flushes then), so the screen is exact whenever it is read.

/// Printable ASCII: one cell each in the ground state, inert inside strings.
fn printable(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

/// Printable ASCII, CR and LF: what a held run may hold.
fn plain(b: u8) -> bool {
    printable(b) || b == b'\r' || b == b'\n'
}

/// How many bytes at the start of `bytes` are plain. Runs on every byte of output, so whole
/// blocks are checked at once (the compiler turns the fold into vector compares).
fn plain_prefix(bytes: &[u8]) -> usize {
    const BLOCK: usize = 32;
    let mut at = 0;
    for block in bytes.chunks_exact(BLOCK) {
        if !block.iter().fold(true, |all, &b| all & (b.wrapping_sub(0x20) < 0x5f || b == b'\r' || b == b'\n')) {
            break;
        }
        at += BLOCK;
    }
    at + bytes[at..].iter().position(|&b| !plain(b)).unwrap_or(bytes.len() - at)
}

/// The printable bytes that end an escape sequence (or start a string).
fn final_byte(b: u8) -> bool {
    (0x40..=0x7e).contains(&b)
}

/// A held run that grew this long without a cut is parsed: it bounds a pane's held bytes.
pub const MAX_HELD: usize = 4 << 20;

/// The bytes an OSC string keeps (vte's buffer): a run's head is at least this long.
const OSC_KEPT: usize = 1024;

#[derive(Debug, Default)]
pub struct RunShortener {
    /// The plain run not yet parsed.
    run: Vec<u8>,
    /// The run's length at which to look for a cut again.
    next_try: usize,
    /// Where the output is in escape sequences, and whether it may have set a scroll region.
    escapes: Escapes,
    /// Whether the parser was in the ground state where the held run starts.
    run_in_ground: bool,
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
        let lead = plain_prefix(chunk);
        if self.run.is_empty() && lead > 0 {
            self.run_in_ground = self.escapes.ground();
        }
        self.escapes.scan(&chunk[..lead]);
        self.run.extend_from_slice(&chunk[..lead]);
        if lead < chunk.len() {
            self.flush(parse);
            let rest = &chunk[lead..];
            let end = rest.iter().rposition(|&b| !plain(b)).map_or(0, |i| i + 1);
            self.escapes.scan(&rest[..end]);
            parse(&rest[..end]);
            self.run_in_ground = self.escapes.ground();
            self.escapes.scan(&rest[end..]);
            self.run.extend_from_slice(&rest[end..]);
        }
        if self.run.len() >= self.next_try {
            self.shorten(at);
            self.next_try = (2 * self.run.len()).min(MAX_HELD);
            if self.run.len() > MAX_HELD {
                self.flush(parse);
            }
        }
    }

    /// Hands the held run to the emulator.
    pub fn flush(&mut self, parse: &mut dyn FnMut(&[u8])) {
        if !self.run.is_empty() {
            parse(&self.run);
            if self.run.capacity() > 64 * 1024 {
                self.run = Vec::new(); // an idle pane keeps no burst's buffer
            } else {
                self.run.clear();
            }
            self.next_try = 0;
        }
    }

    /// Whether a redraw of the screen (`state_formatted`) carries all the state the output
    /// set: no scroll region, saved cursor or origin mode may be set (as far as the escape
    /// sequences seen tell).
    pub fn redraw_carries_state(&self) -> bool {
        !self.escapes.region && !self.escapes.unrestorable
    }

    fn shorten(&mut self, at: Geometry) {
        let cols = usize::from(at.cols.max(1));
        // In the ground state every plain byte acts on its own: nothing need be parsed first.
        let head = if self.run_in_ground { Some(0) } else { head_len(&self.run, cols) };
        if let Some(head) = head.filter(|_| !self.escapes.region) {
            if let Some(cut) = line_cut(&self.run, head, at) {
                self.run.drain(head..cut);
                self.dropped += (cut - head) as u64;
            }
        }
        // The printable run at the end (after the last CR or LF, or the whole run).
        let start = memchr::memrchr2(b'\r', b'\n', &self.run).map_or(0, |i| i + 1);
        let tail = &self.run[start..];
        let keep = (2 * usize::from(at.rows) + at.scrollback + 2) * cols;
        if tail.len() < 2 * keep {
            return;
        }
        let Some(head) = head_len(tail, cols) else { return };
        let spare = tail.len().saturating_sub(head + keep);
        let drop = spare - spare % cols;
        if drop > 0 {
            self.run.drain(start + head..start + head + drop);
            self.dropped += drop as u64;
        }
    }
}

/// How much of a run's start must be parsed as it is: through the second byte that could end
/// an escape sequence, then a row (and at least what an OSC string keeps).
fn head_len(run: &[u8], cols: usize) -> Option<usize> {
    let second = run.iter().enumerate().filter(|(_, &b)| final_byte(b)).nth(1)?.0;
    Some(second + 1 + cols.max(OSC_KEPT)).filter(|&h| h <= run.len())
}

/// Where the kept part of a run of lines may start (see the module's note): before the last
/// `rows + scrollback + 1` line feeds, a CR, and before it `rows` line feeds. None when the run
/// after `head` is too short for a cut worth making.
fn line_cut(run: &[u8], head: usize, at: Geometry) -> Option<usize> {
    let body = &run[head..];
    let rows = usize::from(at.rows);
    let after_cr = nth_from_end(body, body.len(), b'\n', rows + at.scrollback + 1)?;
    let cr = memchr::memrchr(b'\r', &body[..after_cr])?;
    let cut = nth_from_end(body, cr, b'\n', rows)?;
    // Only worth it when most of the run goes.
    (cut >= body.len() - cut).then_some(head + cut)
}

/// The index of the `n`th `byte` before `end`, counting back (`end` itself for none).
fn nth_from_end(bytes: &[u8], end: usize, byte: u8, n: usize) -> Option<usize> {
    if n == 0 {
        return Some(end);
    }
    memchr::memrchr_iter(byte, &bytes[..end]).nth(n - 1)
}

/// Follows the output through escape sequences as the emulator's parser (vte) does, across
/// chunks, to know where a run starts in the ground state and whether a scroll region (DECSTBM)
/// may be set. Plain output costs a search for ESC. Where it cannot tell, it errs on the side
/// of "not ground" and "region set", which only cuts less.
#[derive(Debug, Default)]
struct Escapes {
    region: bool,
    /// A saved cursor or origin mode may be set: state a redraw of the screen does not carry.
    unrestorable: bool,
    state: Esc,
}

/// Private modes whose state a redraw of the screen does not carry: origin mode, and the
/// cursor saved with the alternate screen.
const SAVING: [u16; 3] = [6, 1048, 1049];

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Esc {
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// After ESC and an intermediate byte (`ESC ( B`).
    EscapeIntermediate,
    /// Inside `ESC [`: whether it has parameters, and whether it is private or has an
    /// intermediate byte (then it is no DECSTBM).
    Csi { params: bool, other: bool, private: bool, num: u16, hit: bool },
    /// Inside a string (OSC, DCS, SOS, PM, APC).
    Text,
}

impl Escapes {
    fn ground(&self) -> bool {
        self.state == Esc::Ground
    }

    fn scan(&mut self, chunk: &[u8]) {
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            self.state = match (self.state, b) {
                (Esc::Ground, _) => match memchr::memchr(0x1b, &chunk[i..]) {
                    None => return,
                    Some(at) => {
                        i += at;
                        Esc::Escape
                    }
                },
                (_, 0x1b) => Esc::Escape,
                (_, 0x18 | 0x1a) => Esc::Ground, // CAN, SUB: abort any sequence
                (Esc::Text, 0x07) => Esc::Ground,
                (Esc::Text, _) => Esc::Text,
                (state, 0x00..=0x1f) => state, // other C0 controls run inside a sequence
                (Esc::Escape, b'[') => Esc::Csi { params: false, other: false, private: false, num: 0, hit: false },
                (Esc::Escape, b'7') => {
                    self.unrestorable = true; // DECSC: a saved cursor a redraw does not carry
                    Esc::Ground
                }
                (Esc::Escape, b']' | b'P' | b'X' | b'^' | b'_') => Esc::Text,
                (Esc::Escape, b'c') => {
                    self.region = false; // RIS: a full reset
                    self.unrestorable = false;
                    Esc::Ground
                }
                (Esc::Escape | Esc::EscapeIntermediate, 0x20..=0x2f) => Esc::EscapeIntermediate,
                (Esc::Escape | Esc::EscapeIntermediate, 0x30..=0x7e) => Esc::Ground,
                (Esc::Escape | Esc::EscapeIntermediate, _) => self.state,
                (Esc::Csi { other, private, num, hit, .. }, b'0'..=b'9') => {
                    let num = num.saturating_mul(10).saturating_add(u16::from(b - b'0'));
                    Esc::Csi { params: true, other, private, num, hit }
                }
                (Esc::Csi { other, private, num, hit, .. }, b';' | b':') => {
                    Esc::Csi { params: true, other, private, num: 0, hit: hit || SAVING.contains(&num) }
                }
                (Esc::Csi { params, num, hit, .. }, 0x3c..=0x3f) => {
                    Esc::Csi { params, other: true, private: true, num, hit }
                }
                (Esc::Csi { params, private, num, hit, .. }, 0x20..=0x2f) => {
                    Esc::Csi { params, other: true, private, num, hit }
                }
                (Esc::Csi { params, other, private, num, hit }, 0x40..=0x7e) => {
                    if b == b'r' && !other {
                        self.region = params;
                    }
                    // SCOSC, or origin mode / a cursor saved with the alternate screen.
                    if (b == b's' && !other) || (private && b == b'h' && (hit || SAVING.contains(&num))) {
                        self.unrestorable = true;
                    }
                    Esc::Ground
                }
                (Esc::Csi { .. }, _) => self.state,
            };
            i += 1;
        }
    }
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
            for len in [3000, 3001, 3003, 9000] {
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

    /// `n` lines of `width` digits (as `seq` prints), or of words for a width over 10.
    fn lines(n: usize, width: usize) -> Vec<u8> {
        let word = if width > 10 { "line " } else { "" };
        (0..n).flat_map(|i| format!("{word}{i:0width$}\r\n").into_bytes()).collect()
    }

    #[test]
    fn a_burst_of_lines_ends_in_the_state_the_whole_burst_leaves() {
        // Lines shorter and longer than a row (they wrap), after a cursor anywhere, colours, a
        // half-read escape sequence, an OSC title, and a scroll region set then cleared.
        let prefixes: [&[u8]; 8] = [
            b"",
            b"xy\r\n\x1b[3;4Hpartial",
            b"\x1b[31;44m",
            b"\x1b[1;2",
            b"\x1b]0;title ",
            b"\x1b[2;4r\x1b[r\x1b[1;1H",
            b"\x1b[?7l",
            b"\x1b[?1049h",
        ];
        for prefix in prefixes {
            for (n, width) in [(1000, 3), (400, 12), (3000, 1)] {
                for chunk in [5, 64, 4096] {
                    let mut bytes = prefix.to_vec();
                    bytes.extend(lines(n, width));
                    bytes.extend(b"last");
                    let (whole, short, dropped) = both(&bytes, chunk);
                    assert_eq!(whole, short, "prefix {prefix:?}, {n} lines of {width}, chunks of {chunk}");
                    // Digits only, inside an unfinished CSI: all parameters, never cut.
                    let csi_params = prefix == b"\x1b[1;2" && width <= 10;
                    assert!(
                        dropped > 0 || csi_params,
                        "prefix {prefix:?}, {n} lines of {width}, chunks of {chunk}: nothing was dropped"
                    );
                }
            }
        }
    }

    #[test]
    fn lines_in_a_scroll_region_or_without_carriage_returns_are_parsed_whole() {
        // With a scroll region, rows below it are rewritten in place: nothing is cut. Line
        // feeds without CR keep the column of what came before: nothing is cut either.
        for (prefix, body) in [
            (&b"\x1b[2;4r\x1b[5;1H"[..], lines(500, 3)),
            (b"\x1b[2;4r", lines(500, 3)),
            (b"abc", (0..2000).flat_map(|i| format!("{}\n", i % 10).into_bytes()).collect()),
        ] {
            let mut bytes = prefix.to_vec();
            bytes.extend(body);
            let (whole, short, dropped) = both(&bytes, 64);
            assert_eq!(whole, short, "prefix {prefix:?}");
            assert_eq!(dropped, 0, "prefix {prefix:?}: nothing may be cut");
        }
    }

    #[test]
    fn output_with_control_bytes_is_parsed_whole() {
        let lines: Vec<u8> = (0..2000).flat_map(|i| format!("\tline {i}\r\n").into_bytes()).collect();
        let (whole, short, dropped) = both(&lines, 100);
        assert_eq!(whole, short);
        assert_eq!(dropped, 0, "a tab is not plain: no run is long enough to shorten");
    }
}
