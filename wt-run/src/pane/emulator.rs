//! The terminal emulator a pane runs: its screen as cells (what a redraw, `pane screen` and
//! `pane wait --match` read), its scrollback as text. vt100 keeps scrollback as cells of 32
//! bytes (3.7 MiB for 1,000 rows of 120 columns, for every pane that printed that much and
//! has not turned quiet); a reader of the scrollback only ever gets its text, so the rows that
//! leave the screen are kept as that text (vendor/vt100's patch, `text_scrollback`): about a
//! byte a character and a few words a row.

/// An emulator of `rows`×`cols` keeping `scrollback` rows that left its screen, as text.
pub fn new(rows: u16, cols: u16, scrollback: usize) -> vt100::Parser {
    let mut vt = vt100::Parser::new(rows, cols, 0);
    vt.screen_mut().set_text_scrollback(scrollback);
    vt
}

/// The last `lines` rows of the scrollback (above the screen), oldest first, as
/// `vt100::Screen::rows` shows a row.
pub fn scrollback(vt: &vt100::Parser, lines: usize) -> Vec<String> {
    let kept = vt.screen().text_scrollback();
    kept.iter().skip(kept.len().saturating_sub(lines)).map(|row| row.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scrollback of an emulator keeping it as cells, read a screenful at a time.
    fn as_cells(vt: &mut vt100::Parser) -> Vec<String> {
        let (rows, cols) = vt.screen().size();
        vt.screen_mut().set_scrollback(usize::MAX);
        let mut above = vt.screen().scrollback();
        let mut out = Vec::new();
        while above > 0 {
            vt.screen_mut().set_scrollback(above);
            let page = above.min(usize::from(rows));
            out.extend(vt.screen().rows(0, cols).take(page));
            above -= page;
        }
        vt.screen_mut().set_scrollback(0);
        out
    }

    #[test]
    fn the_text_scrollback_holds_what_a_scrollback_of_cells_shows() {
        // Lines longer than a row (wrapped), colours, wide and combining characters, tabs, a
        // scroll region (rows scrolled inside it never reach the scrollback), the alternate
        // screen (neither), cursor moves and erasures, a scroll up (SU), a reset (RIS).
        let mut bytes = Vec::new();
        for i in 0..300 {
            bytes.extend(format!("line {i} \x1b[31mred\x1b[0m {}\r\n", "w".repeat(i % 23)).into_bytes());
            if i % 50 == 7 {
                bytes.extend("wide 漢字 é\u{301}\tafter tab\r\n".as_bytes());
                bytes.extend(b"\x1b[2;4r\x1b[4;1Hin region\n\n\n\x1b[r\x1b[9;1H");
                bytes.extend(b"\x1b[?1049halternate\r\n\r\n\x1b[?1049l");
                bytes.extend(b"\x1b[3;3Hx\x1b[K\x1b[2S\x1b[10;1H");
            }
            if i == 200 {
                bytes.extend(b"\x1bc");
            }
        }
        for scrollback in [5, 40, 1000] {
            let mut cells = vt100::Parser::new(6, 17, scrollback);
            let mut text = new(6, 17, scrollback);
            for piece in bytes.chunks(37) {
                cells.process(piece);
                text.process(piece);
            }
            assert_eq!(scrollback_rows_of(&text), as_cells(&mut cells), "a scrollback of {scrollback}");
            assert_eq!(text.screen().contents_formatted(), cells.screen().contents_formatted());
        }
    }

    fn scrollback_rows_of(vt: &vt100::Parser) -> Vec<String> {
        scrollback(vt, usize::MAX)
    }

    /// A wide character on a screen of one row (a pane may be made or resized to 1×2): vt100
    /// 0.16.2 panicked, and the supervisor with every pane. (Fewer than 2 columns, where a
    /// wide character cannot fit at all, are refused: `pane.spawn`, `pane.resize`.)
    #[test]
    fn a_wide_character_on_a_tiny_screen_is_no_panic() {
        for (rows, cols) in [(1, 2), (1, 3), (2, 2), (1, 10)] {
            let mut vt = new(rows, cols, 10);
            for _ in 0..5 {
                vt.process("a漢é\u{301}漢\r\n漢漢漢".as_bytes());
            }
            let _ = vt.screen().contents();
            let _ = scrollback(&vt, 10);
        }
    }

    #[test]
    fn a_scrollback_is_bounded_and_keeps_the_newest_rows() {
        let mut vt = new(3, 10, 4);
        for i in 0..20 {
            vt.process(format!("{i}\r\n").as_bytes());
        }
        assert_eq!(scrollback(&vt, usize::MAX), ["14", "15", "16", "17"]);
        assert_eq!(scrollback(&vt, 2), ["16", "17"]);
    }
}
