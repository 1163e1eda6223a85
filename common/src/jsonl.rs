//! Reading and writing newline-delimited records.
//!
//! An input line is either a JSON object (a record) or a bare word: a worktree name or a path,
//! so `echo agent-2 | wt-env` works. Blank lines are skipped. Anything else is malformed: the
//! reader reports it with its line number and goes on with the next line.

use std::io::{self, BufRead, Write};

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
        _ if crate::name::reads_as_json(text) => {
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
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Input, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.inner.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
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
