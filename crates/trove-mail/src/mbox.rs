//! Streaming mbox splitter. The principal type is [`MboxReader`]: it yields one
//! [`MboxMessage`] at a time from any [`BufRead`], so memory stays at the size of the
//! largest single message however large the file.
//!
//! One reader covers the variants found in the wild, without being told which one it has:
//!
//! - **mboxo / mboxrd**: `From ` envelope lines separate messages; `>From ` (any number of
//!   `>`) is unquoted by one level, which is exact for mboxrd and the best reading of mboxo.
//! - **mboxcl / mboxcl2**: when a message carries `Content-Length` and exactly that many
//!   body bytes are followed by the end of file or by the next envelope line, the body is
//!   taken whole, so unescaped `From ` lines inside it do not split it.
//! - **Mailman pipermail** archives (and Thunderbird's unmunged mboxes) do not escape body
//!   lines that start with `From `. A line counts as an envelope only when it looks like
//!   one (`From -`, `From addr@host …`, or `From … <asctime date>`) and is followed by a
//!   header line. "From Russia with love"
//!   in a body is therefore body text.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::LazyLock;

use regex::bytes::Regex;

use crate::read::MAX_MESSAGE;

/// One message cut out of an mbox, with the envelope line removed and `>From ` unquoted.
#[derive(Debug, Clone)]
pub struct MboxMessage {
    /// Byte offset of the envelope (`From `) line in the file.
    pub offset: u64,
    /// The envelope line, without its line ending.
    pub envelope: String,
    /// The message, or nothing when it is larger than [`MAX_MESSAGE`]: its size is then
    /// in `too_large`, and its bytes were never held.
    pub bytes: Vec<u8>,
    pub too_large: Option<u64>,
}

/// How much of one line is read at a time: a line longer than this (a file with no line
/// ends, a decompression bomb) is taken in pieces, so that memory stays bounded by the
/// message limit whatever the input.
const LINE_PIECE: u64 = 1 << 20;

pub struct MboxReader<R> {
    input: R,
    /// Lines read ahead and given back; consumed before `input`.
    pushback: VecDeque<Line>,
    /// An envelope line already recognised, starting the next message.
    next_envelope: Option<(u64, Vec<u8>)>,
    /// Offset in the input of the next byte `read_line` returns.
    offset: u64,
    started: bool,
    /// The size of the message being read once it has passed [`MAX_MESSAGE`] (its bytes
    /// are then dropped and the rest only counted); 0 before.
    dropped: u64,
    /// The last piece `input` gave ended inside a line longer than [`LINE_PIECE`].
    mid_line: bool,
}

/// A line of the mbox, or a piece of one longer than [`LINE_PIECE`].
struct Line {
    /// Its offset in the input.
    at: u64,
    /// Whether it starts a line: a long line's later pieces do not, and are never read
    /// as an envelope, a blank line or a header (a piece that began `From ` once split a
    /// message in two).
    starts: bool,
    bytes: Vec<u8>,
}

impl Line {
    fn is_blank(&self) -> bool {
        self.starts && is_blank(&self.bytes)
    }

    fn is_envelope(&self) -> bool {
        self.starts && is_envelope(&self.bytes)
    }

    fn is_header(&self) -> bool {
        self.starts && is_header_line(&self.bytes)
    }
}

static ASCTIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? +(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} +\d{1,2}:\d{2}(?::\d{2})?(?: +[A-Za-z+\-0-9]+)? +\d{4}",
    )
    .expect("static regex")
});

static HEADER_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[!-9;-~]+[ \t]*:").expect("static regex"));

/// Does this line, read as an mbox envelope, look like one?
pub fn is_envelope(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    let rest = trim_eol(rest);
    let sender = rest.split(|&b| b == b' ').next().unwrap_or_default();
    sender == b"-" || sender.contains(&b'@') || ASCTIME.is_match(rest)
}

pub fn is_header_line(line: &[u8]) -> bool {
    HEADER_LINE.is_match(line)
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_blank(line: &[u8]) -> bool {
    trim_eol(line).is_empty()
}

impl<R: BufRead> MboxReader<R> {
    pub fn new(input: R) -> Self {
        MboxReader {
            input,
            pushback: VecDeque::new(),
            next_envelope: None,
            offset: 0,
            started: false,
            dropped: 0,
            mid_line: false,
        }
    }

    /// Reads one line (with its ending), or the next piece of a long one, into a new
    /// buffer; `None` at end of input.
    fn read_line(&mut self) -> io::Result<Option<Line>> {
        if let Some(line) = self.pushback.pop_front() {
            self.offset += line.bytes.len() as u64;
            return Ok(Some(line));
        }
        let mut bytes = Vec::new();
        let n = (&mut self.input)
            .take(LINE_PIECE)
            .read_until(b'\n', &mut bytes)?;
        if n == 0 {
            return Ok(None);
        }
        let line = Line {
            at: self.offset,
            starts: !self.mid_line,
            bytes,
        };
        self.offset += n as u64;
        self.mid_line = !line.bytes.ends_with(b"\n");
        Ok(Some(line))
    }

    fn unread(&mut self, line: Line) {
        self.offset -= line.bytes.len() as u64;
        self.pushback.push_front(line);
    }

    /// Finds the first envelope line of the file, skipping a byte-order mark and blank lines.
    fn start(&mut self) -> io::Result<()> {
        self.started = true;
        while let Some(mut line) = self.read_line()? {
            if line.at == 0 && line.bytes.starts_with(b"\xEF\xBB\xBF") {
                line.bytes.drain(..3);
                line.at = 3;
            }
            if line.is_blank() {
                continue;
            }
            if line.bytes.starts_with(b"From ") {
                self.next_envelope = Some((line.at, line.bytes));
            } else {
                // Not an mbox after all: hand the bytes back as one message without envelope.
                let at = line.at;
                self.unread(line);
                self.next_envelope = Some((at, Vec::new()));
            }
            break;
        }
        Ok(())
    }

    fn next_message(&mut self) -> io::Result<Option<MboxMessage>> {
        if !self.started {
            self.start()?;
        }
        let Some((offset, envelope)) = self.next_envelope.take() else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(8192);
        let mut content_length: Option<usize> = None;
        // Headers: up to and including the first blank line.
        let mut in_headers = true;
        while in_headers {
            let Some(line) = self.read_line()? else {
                break;
            };
            if line.is_blank() {
                in_headers = false;
            } else if let Some(n) = parse_content_length(&line.bytes).filter(|_| line.starts) {
                content_length = Some(n);
            }
            self.keep(&mut bytes, &line.bytes);
        }
        if !in_headers {
            // A length over the message limit is not believed (a corrupt one must not make
            // us allocate gigabytes): the line scanner, which drops what passes the limit,
            // reads such a body instead.
            if let Some(n) = content_length.filter(|&n| n as u64 <= MAX_MESSAGE) {
                self.read_counted_body(n, &mut bytes)?;
                if self.next_envelope.is_some() || self.at_end()? {
                    return Ok(Some(self.finish(offset, envelope, bytes)));
                }
            }
            self.read_scanned_body(&mut bytes)?;
        }
        Ok(Some(self.finish(offset, envelope, bytes)))
    }

    fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.pushback.is_empty() && self.input.fill_buf()?.is_empty())
    }

    /// mboxcl: takes exactly `n` body bytes if the next envelope (or the end) follows them.
    /// Otherwise gives the bytes back as lines for the scanner.
    fn read_counted_body(&mut self, n: usize, bytes: &mut Vec<u8>) -> io::Result<()> {
        let mut body = Vec::with_capacity(n);
        let mut lines = Vec::new();
        while body.len() < n {
            let Some(line) = self.read_line()? else {
                break;
            };
            body.extend_from_slice(&line.bytes);
            lines.push(line);
        }
        if body.len() == n {
            // Allow the customary blank line between the body and the next envelope.
            let mut lookahead = Vec::new();
            let mut found = false;
            while let Some(line) = self.read_line()? {
                let blank = line.is_blank();
                let envelope = line.is_envelope();
                lookahead.push(line);
                if envelope {
                    found = true;
                    break;
                }
                if !blank || lookahead.len() > 1 {
                    break;
                }
            }
            let reached_end = lookahead.iter().all(Line::is_blank) && self.at_end()?;
            if found {
                let line = lookahead.pop().expect("the envelope line");
                self.keep(bytes, &body);
                self.next_envelope = Some((line.at, line.bytes));
                return Ok(());
            }
            if reached_end {
                self.keep(bytes, &body);
                return Ok(());
            }
            for line in lookahead.into_iter().rev() {
                self.unread(line);
            }
        }
        for line in lines.into_iter().rev() {
            self.unread(line);
        }
        Ok(())
    }

    /// mboxo / mboxrd / pipermail: reads body lines until the next real envelope.
    fn read_scanned_body(&mut self, bytes: &mut Vec<u8>) -> io::Result<()> {
        while let Some(line) = self.read_line()? {
            // No blank line is required before an envelope: Netscape wrote none (MimeKit's
            // content-length.mbox). The envelope's shape and the header line after it decide.
            if line.is_envelope() {
                match self.read_line()? {
                    Some(next) if next.is_header() || next.is_envelope() => {
                        self.unread(next);
                        self.next_envelope = Some((line.at, line.bytes));
                        return Ok(());
                    }
                    Some(next) => self.unread(next),
                    None => {}
                }
            }
            let kept = if line.starts {
                unquoted(&line.bytes)
            } else {
                &line.bytes
            };
            self.keep(bytes, kept);
        }
        Ok(())
    }

    /// Adds `part` to the message being read, until it passes [`MAX_MESSAGE`]: from then
    /// on its bytes are dropped and only their number is kept.
    fn keep(&mut self, bytes: &mut Vec<u8>, part: &[u8]) {
        if self.dropped > 0 {
            self.dropped += part.len() as u64;
        } else if (bytes.len() + part.len()) as u64 > MAX_MESSAGE {
            self.dropped = (bytes.len() + part.len()) as u64;
            *bytes = Vec::new();
        } else {
            bytes.extend_from_slice(part);
        }
    }

    fn finish(&mut self, offset: u64, envelope: Vec<u8>, mut bytes: Vec<u8>) -> MboxMessage {
        // The blank line before the next envelope belongs to the mbox, not the message.
        if self.next_envelope.is_some() {
            if bytes.ends_with(b"\r\n\r\n") {
                bytes.truncate(bytes.len() - 2);
            } else if bytes.ends_with(b"\n\n") {
                bytes.truncate(bytes.len() - 1);
            }
        }
        let too_large = std::mem::take(&mut self.dropped);
        MboxMessage {
            offset,
            envelope: String::from_utf8_lossy(trim_eol(&envelope)).into_owned(),
            bytes,
            too_large: (too_large > 0).then_some(too_large),
        }
    }
}

/// A body line with mboxrd's quoting of `From ` taken off: one `>` fewer.
fn unquoted(line: &[u8]) -> &[u8] {
    let quotes = line.iter().take_while(|&&b| b == b'>').count();
    if quotes > 0 && line[quotes..].starts_with(b"From ") {
        &line[1..]
    } else {
        line
    }
}

fn parse_content_length(line: &[u8]) -> Option<usize> {
    let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
    if !name.eq_ignore_ascii_case(b"content-length") {
        return None;
    }
    std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok()
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = io::Result<MboxMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_message().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &str) -> Vec<(u64, String)> {
        MboxReader::new(input.as_bytes())
            .map(|m| {
                let m = m.unwrap();
                (m.offset, String::from_utf8(m.bytes).unwrap())
            })
            .collect()
    }

    /// A line longer than a piece is one line: its later pieces are not read as lines of
    /// their own, here an envelope followed by a header line, which split the message.
    #[test]
    fn a_long_lines_later_pieces_are_not_lines() {
        let body = format!(
            "{}From x@y Thu Jan  1 00:00:00 1970\nSubject: still the body\n\nend\n",
            "a".repeat(LINE_PIECE as usize)
        );
        let mbox = format!("From a@b Thu Jan  1 00:00:00 1970\nSubject: long\n\n{body}");
        let got = split(&mbox);
        assert_eq!(
            got.len(),
            1,
            "{:?}",
            got.iter().map(|m| m.0).collect::<Vec<_>>()
        );
        assert_eq!(got[0].1, format!("Subject: long\n\n{body}"));
    }

    #[test]
    fn mboxrd_unquotes_one_level() {
        let got = split(
            "From a@b Thu Jan  1 00:00:00 1970\nSubject: x\n\n>From here\n>>From there\n\nFrom c@d Thu Jan  1 00:00:00 1970\nSubject: y\n\nbody\n",
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, "Subject: x\n\nFrom here\n>From there\n");
        assert_eq!(got[1].0, 71);
        assert_eq!(got[1].1, "Subject: y\n\nbody\n");
    }

    #[test]
    fn unescaped_prose_does_not_split() {
        let got = split(
            "From -\nSubject: a\n\nMy film:\n\nFrom Russia with love\nYear: 1963\n\nFrom -\nSubject: b\n\nx\n",
        );
        assert_eq!(got.len(), 2);
        assert!(got[0].1.contains("From Russia with love\nYear: 1963\n"));
    }

    #[test]
    fn pipermail_envelopes() {
        let got = split(
            "From dcm at MIT.EDU  Sat Apr  1 04:34:15 2006\nFrom: dcm at MIT.EDU\n\nhi\n\nFrom my desk I write\nthis.\n\nFrom sig at netdot.net  Wed Apr  5 21:15:39 2006\nFrom: sig at netdot.net\n\nyo\n",
        );
        assert_eq!(got.len(), 2);
        assert!(got[0].1.contains("From my desk I write"));
    }

    #[test]
    fn content_length_keeps_unescaped_from_inside_body() {
        let body = "line\n\nFrom x@y Thu Jan  1 00:00:00 1970\nSubject: not a message\n";
        let input = format!(
            "From a@b Thu Jan  1 00:00:00 1970\nContent-Length: {}\n\n{body}\nFrom c@d Thu Jan  1 00:00:00 1970\nSubject: 2\n\nz\n",
            body.len()
        );
        let got = split(&input);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].1.ends_with("Subject: not a message\n"));
    }

    #[test]
    fn wrong_content_length_falls_back_to_scanning() {
        let got = split(
            "From a@b Thu Jan  1 00:00:00 1970\nContent-Length: 3\n\nhello world\n\nFrom c@d Thu Jan  1 00:00:00 1970\nSubject: 2\n\nz\n",
        );
        assert_eq!(got.len(), 2);
        assert!(got[0].1.ends_with("\n\nhello world\n"));
    }

    #[test]
    fn crlf_and_bom() {
        let got =
            split("\u{feff}From -\r\nSubject: a\r\n\r\nx\r\n\r\nFrom -\r\nSubject: b\r\n\r\ny\r\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, "Subject: a\r\n\r\nx\r\n");
        assert_eq!(got[1].0, 30);
    }
}
