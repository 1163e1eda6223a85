//! Reading and writing newline-delimited records.
//!
//! An input line is either a JSON object (a record) or a bare word: a worktree name or a path,
//! so `echo agent-2 | wt-env` works. Blank lines are skipped. Anything else is malformed: the
//! reader reports it with its line number and goes on with the next line.

use std::io::{self, BufRead, Read, Write};

use crate::record::Record;

/// One usable input line.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Record(Box<Record>),
    /// A bare name or path, trimmed.
    Word(String),
}

/// A line that was neither a record nor a bare word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Classifies one line of input. `None` for a blank line.
pub fn parse_line(line: &str) -> Option<Result<Input, String>> {
    let text = line.trim();
    if text.is_empty() {
        return None;
    }
    Some(match text.as_bytes()[0] {
        b'{' => Record::from_json(text).map(|r| Input::Record(Box::new(r))),
        b'[' | b'"' => Err("expected a JSON object or a bare name, found other JSON".into()),
        _ if crate::ledger::name::reads_as_json(text) => {
            Err(format!("expected a JSON object or a bare name, found the JSON value {text}"))
        }
        _ if text.chars().any(char::is_control) => Err("a bare name must not contain control characters".into()),
        _ => Ok(Input::Word(text.to_string())),
    })
}

/// Iterates over the usable lines of a reader; malformed lines come out as `Err`.
#[derive(Debug)]
pub struct Reader<R> {
    inner: R,
    line: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader { inner, line: 0, buf: Vec::new() }
    }

    /// The number of the line last read (1-based).
    pub fn line(&self) -> usize {
        self.line
    }

    /// What it reads from (to ask a `BufReader` what it holds already).
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Input, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            // One byte past the cap is enough to know a line is too long.
            match (&mut self.inner).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(n) if n > MAX_LINE => {
                    self.line += 1;
                    let excerpt = String::from_utf8_lossy(&self.buf[..EXCERPT]).into_owned();
                    let skipped = skip_line(&mut self.inner);
                    self.buf = Vec::new(); // give the megabyte back
                    let message = format!("line over {} MiB (starts {excerpt:?}…)", MAX_LINE >> 20);
                    return Some(Err(Malformed {
                        line: self.line,
                        message: skipped.err().map_or(message, |e| e.to_string()),
                    }));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.line += 1;
                    return Some(Err(Malformed { line: self.line, message: e.to_string() }));
                }
            }
            self.line += 1;
            let line = self.line;
            let Ok(text) = std::str::from_utf8(&self.buf) else {
                return Some(Err(Malformed { line, message: "line is not valid UTF-8".into() }));
            };
            if let Some(parsed) = parse_line(text) {
                return Some(parsed.map_err(|message| Malformed { line, message }));
            }
        }
    }
}

/// The longest input line read, newline included: records are small, and a line of any
/// length would otherwise cost its size several times over in memory.
pub const MAX_LINE: usize = 1 << 20;

/// How much of an oversized line its error shows.
const EXCERPT: usize = 60;

/// Reads and drops the rest of the current line.
fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
    rest_of_line(reader, |_| {})
}

/// Reads the rest of a line, through its newline, handing each buffer of it to `each`: a line
/// of any length is passed on or skipped without ever being held whole.
pub fn rest_of_line(reader: &mut impl BufRead, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        let (part, end) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..=i], true),
            None => (chunk, false),
        };
        each(part);
        let n = part.len();
        reader.consume(n);
        if end {
            return Ok(());
        }
    }
}

/// Why writing a record stopped.
#[derive(Debug)]
pub enum WriteError {
    /// The reader went away (`| head`): end quietly, exit 0.
    Closed,
    Io(io::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            WriteError::Closed
        } else {
            WriteError::Io(e)
        }
    }
}

/// Writes one record as a line and flushes it, so the next tool in the pipe sees it at once.
pub fn write_record(out: &mut impl Write, rec: &Record) -> Result<(), WriteError> {
    let mut line = rec.to_json();
    line.push('\n');
    out.write_all(line.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Vec<Result<Input, Malformed>> {
        Reader::new(text.as_bytes()).collect()
    }

    #[test]
    fn reads_records_words_and_reports_malformed_lines_with_numbers() {
        let got = read_all("{\"v\":1,\"name\":\"a\"}\n\n  agent-2  \n{broken\n[1]\n/x/y z\n42\nnull\n");
        assert_eq!(got.len(), 7);
        assert!(matches!(&got[0], Ok(Input::Record(r)) if r.name == "a"));
        assert_eq!(got[1], Ok(Input::Word("agent-2".into())));
        assert!(matches!(&got[2], Err(Malformed { line: 4, .. })));
        assert!(matches!(&got[3], Err(Malformed { line: 5, .. })));
        assert_eq!(got[4], Ok(Input::Word("/x/y z".into())));
        assert!(matches!(&got[5], Err(Malformed { line: 7, .. })), "a bare number is JSON, not a name");
        assert!(matches!(&got[6], Err(Malformed { line: 8, .. })), "null is JSON, not a name");
    }

    #[test]
    fn a_line_over_the_cap_is_malformed_with_a_short_excerpt_and_the_next_is_read() {
        let mut text = format!("{{\"name\":\"{}", "x".repeat(MAX_LINE + 10));
        text.push_str("\"}\nagent-2\n");
        let got = read_all(&text);
        assert_eq!(got.len(), 2);
        let Err(m) = &got[0] else { panic!("accepted: {:?}", got[0].as_ref().map(|_| ())) };
        assert_eq!(m.line, 1);
        assert!(m.message.starts_with("line over 1 MiB") && m.message.len() < 200, "{}", m.message);
        assert_eq!(got[1], Ok(Input::Word("agent-2".into())));
        let exactly = format!("{}\n", "y".repeat(MAX_LINE - 1));
        assert!(matches!(&read_all(&exactly)[0], Ok(Input::Word(_))), "a line of exactly the cap is read");
    }

    #[test]
    fn refuses_other_protocol_versions() {
        let got = read_all("{\"v\":2,\"name\":\"a\"}\n");
        assert!(matches!(&got[0], Err(m) if m.message.contains("version 2")));
    }

    #[test]
    fn last_line_without_newline_is_read() {
        assert_eq!(read_all("a\nb"), vec![Ok(Input::Word("a".into())), Ok(Input::Word("b".into()))]);
    }

    #[test]
    fn invalid_utf8_is_malformed_not_fatal() {
        let got: Vec<_> = Reader::new(&b"\xff\xfe\nok\n"[..]).collect();
        assert!(matches!(&got[0], Err(Malformed { line: 1, .. })));
        assert_eq!(got[1], Ok(Input::Word("ok".into())));
    }

    #[test]
    fn broken_pipe_is_closed_not_an_error() {
        struct Gone;
        impl Write for Gone {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(matches!(write_record(&mut Gone, &Record::named("a")), Err(WriteError::Closed)));
    }
}
