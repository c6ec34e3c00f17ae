//! The search language shared by the web page, the CLI and (later) the API.
//!
//! ```text
//! query   := or
//! or      := and ("OR" and)*
//! and     := unary+
//! unary   := "-" unary | primary
//! primary := "(" or ")" | FIELD ":" value | value
//! value   := WORD | "\"" phrase "\""
//! ```
//!
//! Text fields: `from:` `to:` `cc:` `subject:` `body:` `filename:` `attachment:` (the text
//! of attachments). Dates: `after:` `before:` `date:A..B` with partial dates (`2001`,
//! `2001-05`, `2001-05-14`); `after:D` includes D, `before:D` excludes it (as in Gmail).
//! Exact fields: `dkim:pass|fail|unverified|none`, `release:K`, `thread:N` (the
//! conversation email N belongs to), `has:attachment`, `filetype:pdf` (an attachment's
//! type), `domain:enron.com` (the sender's domain), `person:ADDRESS` (an address in From,
//! To or Cc). A bare word searches subject, people, body, file names and attachment text.
//!
//! The parser is ours rather than tantivy's so that an error can say what is wrong and at
//! which column, in terms of this language.

use std::fmt;

/// A parsed query, independent of the index.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    All,
    /// Words (one or more; several means a phrase) in a field, or in every text field.
    Text {
        field: Option<TextField>,
        words: String,
        phrase: bool,
    },
    /// An email's DKIM status: `pass`, `fail`, `unverified` or `none`.
    Dkim(String),
    /// One value of an exact (keyword) field: the field's name and the value, lower-cased.
    Exact(ExactField, String),
    /// Emails of release K.
    Release(u32),
    /// The conversation that email N belongs to.
    Thread(u64),
    /// Emails with at least one published attachment.
    HasAttachment,
    /// Seconds since the epoch, `[from, to)`.
    Date {
        from: Option<i64>,
        to: Option<i64>,
    },
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    /// Whether the query asks for a conversation (`thread:N`) anywhere: only then does
    /// a search need the thread map.
    pub fn mentions_thread(&self) -> bool {
        match self {
            Expr::Thread(_) => true,
            Expr::Not(inner) => inner.mentions_thread(),
            Expr::And(parts) | Expr::Or(parts) => parts.iter().any(Expr::mentions_thread),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    From,
    To,
    Cc,
    Subject,
    Body,
    Filename,
    Attachment,
}

/// Keyword fields: matched whole, case-insensitively, and counted as facets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExactField {
    /// The domain of a sender's address.
    Domain,
    /// An address in From, To or Cc.
    Person,
    /// The kind of an attachment (`pdf`, `word`, `image`, …).
    FileType,
}

impl TextField {
    pub fn name(self) -> &'static str {
        match self {
            TextField::From => "from",
            TextField::To => "to",
            TextField::Cc => "cc",
            TextField::Subject => "subject",
            TextField::Body => "body",
            TextField::Filename => "filename",
            TextField::Attachment => "attachment",
        }
    }
}

const FIELDS: &str = "from: to: cc: subject: body: filename: attachment: after: before: date: dkim: release: thread: has: filetype: domain: person:";

/// A query that could not be read: what is wrong, and the column (1-based, in characters;
/// 0 when the problem is not in the query text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.column == 0 {
            // Not about a place in the query (a page cursor, say).
            return f.write_str(&self.message);
        }
        write!(f, "at column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for QueryError {}

impl QueryError {
    /// The query with a caret under the column, for a terminal or a `<pre>`.
    pub fn pointer(&self, query: &str) -> String {
        if self.column == 0 {
            return query.to_string();
        }
        format!("{query}\n{}^", " ".repeat(self.column.saturating_sub(1)))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Or,
    Minus,
    /// `field:` followed by its value; value quoted or not.
    Field(String, String, bool),
    Word(String),
    Phrase(String),
}

fn err(column: usize, message: impl Into<String>) -> QueryError {
    QueryError {
        column,
        message: message.into(),
    }
}

fn lex(input: &str) -> Result<Vec<(usize, Tok)>, QueryError> {
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let quoted = |i: &mut usize, start: usize| -> Result<String, QueryError> {
        // chars[*i] is the opening quote.
        *i += 1;
        let mut s = String::new();
        while *i < chars.len() && chars[*i] != '"' {
            s.push(chars[*i]);
            *i += 1;
        }
        if *i >= chars.len() {
            return Err(err(
                start + 1,
                "this quote is never closed; add a closing \"",
            ));
        }
        *i += 1;
        Ok(s)
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            '"' => {
                let s = quoted(&mut i, start)?;
                out.push((start, Tok::Phrase(s)));
            }
            '-' if i + 1 < chars.len() && !chars[i + 1].is_whitespace() => {
                out.push((start, Tok::Minus));
                i += 1;
            }
            _ => {
                let mut word = String::new();
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | '"')
                {
                    if chars[i] == ':'
                        && !word.is_empty()
                        && word.chars().all(|c| c.is_ascii_alphabetic())
                    {
                        break;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() && chars[i] == ':' {
                    i += 1;
                    let field = word.to_ascii_lowercase();
                    let (value, is_quoted) = if i < chars.len() && chars[i] == '"' {
                        {
                            let at = i;
                            (quoted(&mut i, at)?, true)
                        }
                    } else {
                        let mut v = String::new();
                        while i < chars.len()
                            && !chars[i].is_whitespace()
                            && !matches!(chars[i], '(' | ')')
                        {
                            v.push(chars[i]);
                            i += 1;
                        }
                        (v, false)
                    };
                    if value.is_empty() {
                        return Err(err(
                            start + 1,
                            format!(
                                "{field}: needs a value right after the colon, e.g. {field}:word"
                            ),
                        ));
                    }
                    out.push((start, Tok::Field(field, value, is_quoted)));
                } else if word == "OR" {
                    out.push((start, Tok::Or));
                } else if word == "AND" {
                    // Juxtaposition already means AND.
                } else {
                    out.push((start, Tok::Word(word)));
                }
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    len: usize,
}

/// Parses a query. An empty query matches everything.
pub fn parse(input: &str) -> Result<Expr, QueryError> {
    let toks = lex(input)?;
    if toks.is_empty() {
        return Ok(Expr::All);
    }
    let mut p = Parser {
        toks,
        pos: 0,
        len: input.chars().count(),
    };
    let e = p.or()?;
    if let Some((col, t)) = p.toks.get(p.pos) {
        let what = if *t == Tok::RParen {
            "this ) has no matching ("
        } else {
            "unexpected text"
        };
        return Err(err(col + 1, what));
    }
    Ok(e)
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn column(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|(c, _)| c + 1)
            .unwrap_or(self.len + 1)
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            if matches!(self.peek(), None | Some(Tok::RParen) | Some(Tok::Or)) {
                return Err(err(
                    self.column(),
                    "OR needs something to search for on its right",
                ));
            }
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut parts = Vec::new();
        while let Some(t) = self.peek() {
            if matches!(t, Tok::Or | Tok::RParen) {
                break;
            }
            parts.push(self.unary()?);
        }
        match parts.len() {
            0 => Err(err(
                self.column(),
                match self.peek() {
                    Some(Tok::Or) => "OR needs something to search for on its left",
                    _ => "expected a word, a \"phrase\" or field:value here",
                },
            )),
            1 => Ok(parts.pop().expect("one")),
            _ => Ok(Expr::And(parts)),
        }
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.peek() == Some(&Tok::Minus) {
            self.pos += 1;
            if self.peek().is_none() {
                return Err(err(self.column(), "- must be followed by what to exclude"));
            }
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let (col, tok) = self.toks[self.pos].clone();
        let col = col + 1;
        self.pos += 1;
        match tok {
            Tok::LParen => {
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(err(col, "this ( is never closed; add a )"));
                }
                self.pos += 1;
                Ok(e)
            }
            Tok::Word(w) => Ok(Expr::Text {
                field: None,
                words: w,
                phrase: false,
            }),
            Tok::Phrase(p) => Ok(Expr::Text {
                field: None,
                words: p,
                phrase: true,
            }),
            Tok::Field(f, v, quoted) => field_expr(&f, &v, quoted, col),
            Tok::Or | Tok::RParen | Tok::Minus => Err(err(
                col,
                "expected a word, a \"phrase\" or field:value here",
            )),
        }
    }
}

fn field_expr(field: &str, value: &str, quoted: bool, col: usize) -> Result<Expr, QueryError> {
    let text = |f: TextField| {
        Ok(Expr::Text {
            field: Some(f),
            words: value.to_string(),
            phrase: quoted,
        })
    };
    let value_col = col + field.len() + 1;
    match field {
        "from" => text(TextField::From),
        "to" => text(TextField::To),
        "cc" => text(TextField::Cc),
        "subject" => text(TextField::Subject),
        "body" => text(TextField::Body),
        "filename" => text(TextField::Filename),
        "attachment" => text(TextField::Attachment),
        "domain" => Ok(Expr::Exact(
            ExactField::Domain,
            value.trim_start_matches('@').to_lowercase(),
        )),
        "person" => Ok(Expr::Exact(ExactField::Person, value.to_lowercase())),
        "filetype" => Ok(Expr::Exact(
            ExactField::FileType,
            value.trim_start_matches('.').to_lowercase(),
        )),
        "has" => match value.to_ascii_lowercase().as_str() {
            "attachment" | "attachments" => Ok(Expr::HasAttachment),
            _ => Err(err(
                value_col,
                format!("has:{value} is not known; use has:attachment"),
            )),
        },
        "release" => value.parse().map(Expr::Release).map_err(|_| {
            err(
                value_col,
                format!("release:{value} is not a release number; write e.g. release:3"),
            )
        }),
        "thread" => value.parse().map(Expr::Thread).map_err(|_| {
            err(
                value_col,
                format!(
                    "thread:{value} is not an email number; write thread:N for the conversation of /emailid/N"
                ),
            )
        }),
        "after" => {
            let (start, _) = period(value, value_col)?;
            Ok(Expr::Date {
                from: Some(start),
                to: None,
            })
        }
        "before" => {
            let (start, _) = period(value, value_col)?;
            Ok(Expr::Date {
                from: None,
                to: Some(start),
            })
        }
        "dkim" => match value.to_ascii_lowercase().as_str() {
            s @ ("pass" | "fail" | "unverified" | "none") => Ok(Expr::Dkim(s.to_string())),
            _ => Err(err(
                value_col,
                format!(
                    "dkim:{value} is not a DKIM status; use dkim:pass, dkim:fail, dkim:unverified or dkim:none"
                ),
            )),
        },
        "date" => {
            if let Some((a, b)) = value.split_once("..") {
                let from = if a.is_empty() {
                    None
                } else {
                    Some(period(a, value_col)?.0)
                };
                let to = if b.is_empty() {
                    None
                } else {
                    Some(period(b, value_col + a.len() + 2)?.1)
                };
                Ok(Expr::Date { from, to })
            } else {
                let (start, end) = period(value, value_col)?;
                Ok(Expr::Date {
                    from: Some(start),
                    to: Some(end),
                })
            }
        }
        other => Err(err(
            col,
            format!(
                "unknown field {other}: (known: {FIELDS}); to search for text with a colon, put it in quotes"
            ),
        )),
    }
}

/// A partial date `YYYY`, `YYYY-MM` or `YYYY-MM-DD` as the UTC period `[start, end)`.
fn period(value: &str, col: usize) -> Result<(i64, i64), QueryError> {
    let bad = || {
        err(
            col,
            format!("{value:?} is not a date; write YYYY, YYYY-MM or YYYY-MM-DD"),
        )
    };
    let parts: Vec<&str> = value.split('-').collect();
    let num = |s: &str, len: usize| -> Result<i32, QueryError> {
        if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let year = num(parts[0], 4)?;
    let (month, day) = match parts.len() {
        1 => (None, None),
        2 => (Some(num(parts[1], 2)?), None),
        3 => (Some(num(parts[1], 2)?), Some(num(parts[2], 2)?)),
        _ => return Err(bad()),
    };
    let date = |y: i32, m: i32, d: i32| -> Result<i64, QueryError> {
        let month = time::Month::try_from(m as u8).map_err(|_| bad())?;
        let date = time::Date::from_calendar_date(y, month, d as u8).map_err(|_| bad())?;
        Ok(date.midnight().assume_utc().unix_timestamp())
    };
    Ok(match (month, day) {
        (None, _) => (date(year, 1, 1)?, date(year + 1, 1, 1)?),
        (Some(m), None) => {
            let end = if m == 12 {
                date(year + 1, 1, 1)?
            } else {
                date(year, m + 1, 1)?
            };
            (date(year, m, 1)?, end)
        }
        (Some(m), Some(d)) => {
            let start = date(year, m, d)?;
            (start, start + 86_400)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(field: Option<TextField>, w: &str, phrase: bool) -> Expr {
        Expr::Text {
            field,
            words: w.into(),
            phrase,
        }
    }

    #[test]
    fn parses_the_language() {
        assert_eq!(parse("").unwrap(), Expr::All);
        assert_eq!(
            parse("gas -from:allen \"natural gas\"").unwrap(),
            Expr::And(vec![
                text(None, "gas", false),
                Expr::Not(Box::new(text(Some(TextField::From), "allen", false))),
                text(None, "natural gas", true),
            ])
        );
        assert_eq!(
            parse("(a OR b) subject:\"x y\"").unwrap(),
            Expr::And(vec![
                Expr::Or(vec![text(None, "a", false), text(None, "b", false)]),
                text(Some(TextField::Subject), "x y", true),
            ])
        );
        assert_eq!(
            parse("well-known").unwrap(),
            text(None, "well-known", false)
        );
    }

    #[test]
    fn dates_are_periods() {
        let Expr::Date { from, to } = parse("date:2001-05").unwrap() else {
            panic!()
        };
        assert_eq!(from, Some(988675200));
        assert_eq!(to, Some(988675200 + 31 * 86400));
        assert_eq!(
            parse("after:2001").unwrap(),
            Expr::Date {
                from: Some(978307200),
                to: None
            }
        );
        let Expr::Date { from, to } = parse("date:2000..2000-12-31").unwrap() else {
            panic!()
        };
        assert_eq!((from, to), (Some(946684800), Some(978307200)));
    }

    #[test]
    fn exact_fields() {
        assert_eq!(
            parse("has:attachment release:3 thread:17").unwrap(),
            Expr::And(vec![
                Expr::HasAttachment,
                Expr::Release(3),
                Expr::Thread(17)
            ])
        );
        assert_eq!(
            parse("domain:@Enron.com filetype:.PDF person:K.Allen@enron.com").unwrap(),
            Expr::And(vec![
                Expr::Exact(ExactField::Domain, "enron.com".into()),
                Expr::Exact(ExactField::FileType, "pdf".into()),
                Expr::Exact(ExactField::Person, "k.allen@enron.com".into()),
            ])
        );
        assert_eq!(parse("release:x").unwrap_err().column, 9);
        assert!(
            parse("has:wings")
                .unwrap_err()
                .message
                .contains("has:attachment")
        );
        assert_eq!(
            parse("attachment:invoice").unwrap(),
            text(Some(TextField::Attachment), "invoice", false)
        );
    }

    #[test]
    fn a_thread_anywhere_in_the_query_is_seen() {
        for q in [
            "thread:5",
            "gas -thread:5",
            "(gas OR thread:5) from:lay",
            "NOT thread:7",
        ] {
            assert!(parse(q).unwrap().mentions_thread(), "{q}");
        }
        for q in ["gas", "\"thread 5\"", "subject:thread", "-from:lay"] {
            assert!(!parse(q).unwrap().mentions_thread(), "{q}");
        }
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = parse("gas \"natural").unwrap_err();
        assert_eq!(e.column, 5);
        assert!(e.message.contains("never closed"));
        let e = parse("subjct:gas").unwrap_err();
        assert_eq!(e.column, 1);
        assert!(e.message.contains("unknown field subjct:"));
        assert_eq!(parse("dkim:PASS").unwrap(), Expr::Dkim("pass".into()));
        let e = parse("gas dkim:maybe").unwrap_err();
        assert_eq!(e.column, 10);
        let e = parse("after:2001-13").unwrap_err();
        assert_eq!(e.column, 7);
        let e = parse("(a OR b").unwrap_err();
        assert!(e.message.contains("never closed"));
        let e = parse("a OR").unwrap_err();
        assert!(e.message.contains("OR needs"), "{e}");
        let e = parse("a )").unwrap_err();
        assert_eq!(e.column, 3);
        assert_eq!(e.pointer("a )"), "a )\n  ^");
    }
}
