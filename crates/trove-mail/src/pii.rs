//! Personal-data detectors and span masking. Pure: text in, findings out.
//!
//! Each detector pairs a pattern with a check that a pattern cannot express (the SSA's
//! invalid number ranges, the Luhn digit of card numbers, the ISO 13616 mod-97 checksum
//! of IBANs) or with the words that must stand before the value (a passport number, a
//! date of birth, a password). A finding carries a confidence: 0.9 and above when a
//! checksum or a labelled context backs it, lower for shapes alone (phone numbers,
//! street addresses).

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// One piece of personal data found in a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// `ssn`, `card`, `iban`, `phone`, `passport`, `dob`, `address`, `password`, `email`,
    /// or `list:NAME` for a publisher's list.
    pub kind: String,
    /// Byte span in the text scanned.
    pub start: usize,
    pub end: usize,
    pub confidence: f32,
}

/// Changes whenever what is found changes (a detector, or which parts are scanned), so
/// that findings stored by an older trove are recomputed.
/// Attachment text extraction ([`crate::extract`]) counts as part of the detectors.
/// 10: PDF text drawn with the next-line operators `'` and `"` is read.
pub const DETECTOR_VERSION: u32 = 10;

/// The built-in kinds, in the order reports list them.
pub const KINDS: &[&str] = &[
    "ssn", "card", "iban", "passport", "password", "dob", "phone", "address", "email",
];

/// A publisher's list: names or patterns of its own (`list:NAME` findings).
#[derive(Debug, Clone)]
pub struct List {
    pub name: String,
    /// Matched whole-word and case-insensitively.
    pub terms: Vec<String>,
    /// Regular expressions (Rust `regex` syntax).
    pub patterns: Vec<String>,
}

/// The detectors, configured once per workspace policy.
pub struct Detector {
    /// Email addresses at these domains (or their subdomains) belong to organisations
    /// named as public, so they are not findings.
    public_domains: Vec<String>,
    lists: Vec<(String, Regex)>,
}

/// Compiles a built-in pattern with ASCII word boundaries. A Unicode `\b` makes the
/// regex crate leave its fast DFA for a far slower engine on any non-ASCII text, and
/// every value the detectors look for is ASCII: so `\b` here means an ASCII boundary.
fn re(pattern: &str) -> Regex {
    Regex::new(&ascii_boundaries(pattern)).expect("built-in pattern compiles")
}

fn ascii_boundaries(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)")
}

static SSN_CONTEXT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(ssn|social security|soc\.? sec\.?|ss#|ss no)\b"));

/// The built-in detectors, in the order of [`Slot::ALL`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    Ssn,
    Card,
    Iban,
    Phone,
    Passport,
    Dob,
    Password,
    Address,
}

impl Slot {
    const ALL: [Slot; 8] = [
        Slot::Ssn,
        Slot::Card,
        Slot::Iban,
        Slot::Phone,
        Slot::Passport,
        Slot::Dob,
        Slot::Password,
        Slot::Address,
    ];

    /// The numbers' patterns (SSN, card, IBAN, phone) take ASCII digits only, as their
    /// checks read them: `\d` also matches Arabic-Indic, Devanagari or fullwidth digits,
    /// and such a match left the SSN's check fewer than nine digits to slice (a panic that
    /// stopped a whole ingest). Dates and codes keep `\d`: they are taken as written.
    fn pattern(self) -> &'static str {
        match self {
            Slot::Ssn => r"\b([0-9]{3})([- ])([0-9]{2})([- ])([0-9]{4})\b|\b([0-9]{9})\b",
            Slot::Card => r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
            Slot::Iban => r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b",
            // "(713) 853-6794", "713.853.6794", "713/853-6794", "512) 263-0177", an area
            // code at the end of a wrapped line, "+44 20 7783 7520".
            Slot::Phone => {
                r"(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{3}\)|\b[0-9]{3}\)?)(?:[ ./-]|\s)?[0-9]{3}[ .-][0-9]{4}\b|\+[0-9]{1,3}(?:[ .-]?[0-9]){7,12}\b"
            }
            Slot::Passport => {
                r"(?i)\bpassport(?:\s+(?:no\.?|number|num\.?|#))?\s*(?:is|:|#)?\s*([A-Z0-9]{6,9})\b"
            }
            Slot::Dob => {
                r"(?i)\b(?:date of birth|d\.?o\.?b\.?|born(?: on)?|birth ?date|birthday(?: is| on)?)\s*(?:is|:|-)?\s*((?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4})|(?:\d{4}-\d{2}-\d{2})|(?:(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?\b(?:,? \d{4})?)|(?:\d{1,2} (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{4}))"
            }
            Slot::Password => {
                r"(?i)\b(?:password|passwd|pwd|passcode|pass code|pin number|pin code|one[- ]time code|verification code|security code|login code|access code|(?:host|participant|moderator|leader|guest|chair(?:person)?|conference|dial-in) (?:access )?(?:code|pin))\b\s*(?:is|:|=)\s*([^\s,;\[][^\s,;]{2,63})|\bPIN\b\s*(?:is|:|=|-)?\s*(\d{4,8})\b|\b(?:passcode|pass code|(?:host|participant|moderator|leader|guest|conference) (?:access )?code)\s*(?:#|-|is)?\s*(\d(?:-?\d){3,15})\b"
            }
            Slot::Address => {
                r"\b\d{1,5}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Circle|Cir)\b\.?(?:,?\s+(?:Apt|Suite|Ste|Unit|#)\.?\s*[A-Za-z0-9-]+)?(?:,\s*[A-Z][a-zA-Z]+(?:\s[A-Z][a-zA-Z]+)?,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?)?|\b(?i:P\.?\s?O\.?\s?Box)\s+\d{1,7}\b"
            }
        }
    }
}

/// Each built-in detector's regex, and all of them as one set. The set says in one pass
/// which of them match anywhere in a text: most texts hold none of these values, and one
/// pass of the set costs about what one pattern does, where running each costs eight
/// (measured over the generated corpus and Enron: 5-6 µs against 27-30 µs per email). A
/// detector that does not match is not run.
struct BuiltIn {
    set: RegexSet,
    each: Vec<Regex>,
}

impl BuiltIn {
    /// The regex of `slot`, when the set found it matching in the text.
    fn matching(&self, set: &regex::SetMatches, slot: Slot) -> Option<&Regex> {
        set.matched(slot as usize)
            .then(|| &self.each[slot as usize])
    }
}

static BUILT_IN: LazyLock<BuiltIn> = LazyLock::new(|| BuiltIn {
    set: RegexSet::new(Slot::ALL.map(|s| ascii_boundaries(s.pattern())))
        .expect("built-in patterns compile"),
    each: Slot::ALL.iter().map(|s| re(s.pattern())).collect(),
});

/// Words that follow "password is" in prose, not passwords.
const PASSWORD_STOPWORDS: &[&str] = &[
    "case",
    "required",
    "incorrect",
    "invalid",
    "expired",
    "correct",
    "the",
    "your",
    "not",
    "sensitive",
    "below",
    "above",
    "same",
    "changed",
    "reset",
    "blank",
    "empty",
    "needed",
    "attached",
    "available",
    "different",
    "wrong",
    "valid",
    "too",
];

/// What [`label`] writes: never context for a detector.
static LABEL: LazyLock<Regex> = LazyLock::new(|| re(r"\[[A-Z_-]+ REDACTED\]"));
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b"));

/// US Social Security numbers the SSA never issues: area 000, 666 or 900–999, group 00,
/// serial 0000, and the numbers made famous by advertising (078-05-1120, 219-09-9999).
pub fn ssn_valid(area: u32, group: u32, serial: u32) -> bool {
    !(area == 0
        || area == 666
        || area >= 900
        || group == 0
        || serial == 0
        || (area, group, serial) == (78, 5, 1120)
        || (area, group, serial) == (219, 9, 9999))
}

/// The Luhn check digit test over a string of digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Issuer prefixes and lengths of the card networks in use (Visa, Mastercard, American
/// Express, Discover, JCB, Diners Club, UnionPay, Maestro).
fn card_network(digits: &[u8]) -> bool {
    let n = digits.len();
    let prefix = |k: usize| -> u32 {
        std::str::from_utf8(&digits[..k.min(n)])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    match digits[0] {
        b'4' => matches!(n, 13 | 16 | 19),
        b'5' => {
            (51..=55).contains(&prefix(2)) && n == 16 || prefix(2) >= 56 && (12..=19).contains(&n)
        }
        b'2' => (2221..=2720).contains(&prefix(4)) && n == 16,
        b'3' => {
            (matches!(prefix(2), 34 | 37) && n == 15)
                || ((3528..=3589).contains(&prefix(4)) && (16..=19).contains(&n))
                || ((matches!(prefix(2), 36 | 38 | 39) || (300..=305).contains(&prefix(3)))
                    && (14..=19).contains(&n))
        }
        b'6' => {
            (prefix(4) == 6011
                || prefix(2) == 65
                || (644..=649).contains(&prefix(3))
                || prefix(2) == 62)
                && (16..=19).contains(&n)
                || (prefix(2) == 67 && (12..=19).contains(&n))
        }
        _ => false,
    }
}

/// ISO 13616: country code, two check digits, then the account; valid when the number
/// read with the first four characters moved to the end is 1 modulo 97.
pub fn iban_valid(iban: &str) -> bool {
    let s: Vec<u8> = iban.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&s.len()) || !s.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let mut rem = 0u32;
    for &b in s[4..].iter().chain(&s[..4]) {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b.to_ascii_uppercase() - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

impl Detector {
    /// Fails with the list name and the error when a pattern does not compile.
    pub fn new(public_domains: &[String], lists: &[List]) -> Result<Detector, String> {
        let mut compiled = Vec::new();
        for list in lists {
            let mut alternatives: Vec<String> = list
                .terms
                .iter()
                .filter(|t| !t.trim().is_empty())
                .map(|t| list_term(t.trim()))
                .collect();
            for p in &list.patterns {
                Regex::new(p).map_err(|e| format!("list {}: pattern {p:?}: {e}", list.name))?;
                alternatives.push(format!("(?:{p})"));
            }
            if alternatives.is_empty() {
                continue;
            }
            let joined = format!("(?i){}", alternatives.join("|"));
            let regex = Regex::new(&joined).map_err(|e| format!("list {}: {e}", list.name))?;
            compiled.push((format!("list:{}", list.name), regex));
        }
        Ok(Detector {
            public_domains: public_domains
                .iter()
                .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
                .collect(),
            lists: compiled,
        })
    }

    /// Every finding in `text`, sorted by position. Where findings overlap, the one with
    /// the higher confidence (then the longer) is kept, so spans never overlap.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        let mut push = |kind: &str, start: usize, end: usize, confidence: f32| {
            found.push(Finding {
                kind: kind.to_string(),
                start,
                end,
                confidence,
            })
        };
        // Only the detectors the set says match somewhere run; the others would find nothing.
        let set = BUILT_IN.set.matches(text);
        let on = |slot: Slot| BUILT_IN.matching(&set, slot);
        let captures = |slot| on(slot).into_iter().flat_map(|r| r.captures_iter(text));
        let finds = |slot| on(slot).into_iter().flat_map(|r| r.find_iter(text));
        let spans = |slot, valid: &dyn Fn(&str) -> bool| {
            on(slot).map_or_else(Vec::new, |r| checked_spans(r, text, valid))
        };
        for c in captures(Slot::Ssn) {
            let m = c.get(0).expect("group 0");
            let digits: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
            let (a, g, s) = (
                digits[..3].parse().unwrap_or(0),
                digits[3..5].parse().unwrap_or(0),
                digits[5..].parse().unwrap_or(0),
            );
            // Part of a longer number (a phone number "011 501 26 4101", "528-12-2400/05").
            let before = text[..m.start()].trim_end_matches(' ');
            let after = &text[m.end()..];
            let longer = (m.start() - before.len() <= 1
                && before.ends_with(|c: char| c.is_ascii_digit()))
                || after.starts_with(|c: char| c == '/' || c == '-' || c.is_ascii_digit());
            if !ssn_valid(a, g, s) || longer {
                continue;
            }
            if c.get(6).is_some() {
                // Nine bare digits: only with the words around them.
                let before =
                    &text[text.floor_char_boundary(m.start().saturating_sub(40))..m.start()];
                if SSN_CONTEXT.is_match(&LABEL.replace_all(before, "")) {
                    push("ssn", m.start(), m.end(), 0.8);
                }
            } else if c.get(2).map(|x| x.as_str()) == c.get(4).map(|x| x.as_str()) {
                push("ssn", m.start(), m.end(), 0.9);
            }
        }
        let card_valid = |s: &str| {
            let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
            // Written as cards are: one run of digits, or the groups the networks print
            // (4-4-4-4, 4-4-4-4-3, Amex 4-6-5, Diners 4-6-4) with one kind of separator.
            let groups: Vec<usize> = s.split([' ', '-']).map(str::len).collect();
            let one_separator = !(s.contains(' ') && s.contains('-'));
            let grouped = groups.len() == 1
                || (one_separator
                    && matches!(
                        groups.as_slice(),
                        [4, 4, 4, 4] | [4, 4, 4, 4, 3] | [4, 6, 5] | [4, 6, 4]
                    ));
            grouped
                && (13..=19).contains(&digits.len())
                && luhn_valid(&digits)
                && card_network(&digits)
                && !digits.iter().all(|d| *d == digits[0])
        };
        for (a, b) in spans(Slot::Card, &card_valid) {
            // A MIME boundary or an encoded token ("boundary=\"====446349…==\"").
            if text[..a].ends_with(['=', '_']) || text[b..].starts_with(['=', '_']) {
                continue;
            }
            push("card", a, b, 0.95);
        }
        let iban_ok = |s: &str| s.as_bytes()[0].is_ascii_uppercase() && iban_valid(s);
        for (a, b) in spans(Slot::Iban, &iban_ok) {
            push("iban", a, b, 0.95);
        }
        for c in captures(Slot::Passport) {
            let v = c.get(1).expect("group 1");
            if v.as_str().bytes().any(|b| b.is_ascii_digit()) {
                push("passport", v.start(), v.end(), 0.85);
            }
        }
        for c in captures(Slot::Dob) {
            let v = c.get(1).expect("group 1");
            push("dob", v.start(), v.end(), 0.85);
        }
        for c in captures(Slot::Password) {
            if let Some(v) = c.get(1).or_else(|| c.get(2)).or_else(|| c.get(3)) {
                // "your password is case sensitive", "password: Login: 31594".
                let word = v.as_str().to_ascii_lowercase();
                if v.as_str().ends_with(':')
                    || PASSWORD_STOPWORDS.contains(&word.trim_end_matches(['.', '!']))
                {
                    continue;
                }
                push("password", v.start(), v.end(), 0.85);
            }
        }
        for m in finds(Slot::Phone) {
            let digits = m.as_str().bytes().filter(u8::is_ascii_digit).count();
            if (10..=15).contains(&digits) {
                push("phone", m.start(), m.end(), 0.6);
            }
        }
        for m in finds(Slot::Address) {
            let confidence = if m.as_str().contains(',') { 0.75 } else { 0.5 };
            push("address", m.start(), m.end(), confidence);
        }
        // A match's domain is what follows its one '@' (the local part takes none), found
        // without the capture engines: with them, the detectors on an email's own text
        // took 13.2 µs instead of 10.5 (`cargo bench -p trove-workspace --bench scan`).
        for m in EMAIL.find_iter(text) {
            let (_, domain) = m.as_str().split_once('@').expect("an address has an '@'");
            let domain = domain.to_ascii_lowercase();
            let public = self.public_domains.iter().any(|d| {
                domain
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
            });
            if !public {
                push("email", m.start(), m.end(), 0.9);
            }
        }
        for (kind, regex) in &self.lists {
            for m in regex.find_iter(text) {
                if m.end() > m.start() {
                    push(kind, m.start(), m.end(), 1.0);
                }
            }
        }
        resolve_overlaps(found)
    }
}

/// Spans of `text` that `regex` matches and `valid` accepts; after a valid part of a
/// match, the search goes on right after that part, so that two values written side by
/// side are both found.
fn checked_spans(regex: &Regex, text: &str, valid: &dyn Fn(&str) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(m) = regex.find_at(text, at) {
        match longest_valid(m.as_str(), valid) {
            Some((a, b)) => {
                out.push((m.start() + a, m.start() + b));
                at = m.start() + b;
            }
            // The value may start inside this match and run past its end: go on from
            // the match's next word.
            None => {
                let bytes = m.as_str().as_bytes();
                at = m.start()
                    + (1..bytes.len())
                        .find(|&i| {
                            !bytes[i - 1].is_ascii_alphanumeric()
                                && bytes[i].is_ascii_alphanumeric()
                        })
                        .unwrap_or(bytes.len());
            }
        }
    }
    out
}

/// The longest part of a pattern match that passes its check. A pattern for grouped
/// digits also takes in digits standing next to the value ("card 4556 7375 8689 9855
/// 1400 Main St"), which would fail the checksum; so shorter spans, starting and ending
/// on an alphanumeric character, are tried too, longest first.
fn longest_valid(s: &str, valid: impl Fn(&str) -> bool) -> Option<(usize, usize)> {
    if valid(s) {
        return Some((0, s.len()));
    }
    let bytes = s.as_bytes();
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| {
            bytes[i].is_ascii_alphanumeric() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
        })
        .collect();
    let ends: Vec<usize> = (1..=bytes.len())
        .filter(|&i| {
            bytes[i - 1].is_ascii_alphanumeric()
                && (i == bytes.len() || !bytes[i].is_ascii_alphanumeric())
        })
        .collect();
    let mut best: Option<(usize, usize)> = None;
    for &a in &starts {
        for &b in ends.iter().rev() {
            if b <= a || best.is_some_and(|(x, y)| y - x >= b - a) {
                break;
            }
            if valid(&s[a..b]) {
                best = Some((a, b));
                break;
            }
        }
    }
    best
}

/// A publisher's term as a pattern: whole words, with an ASCII word boundary on each side
/// that is an ASCII letter or digit (a name may begin or end with "é", where an ASCII
/// boundary would never hold).
fn list_term(term: &str) -> String {
    let edge = |c: Option<char>| {
        if c.is_some_and(|c| c.is_ascii_alphanumeric()) {
            r"(?-u:\b)"
        } else {
            ""
        }
    };
    format!(
        "{}{}{}",
        edge(term.chars().next()),
        regex::escape(term),
        edge(term.chars().last())
    )
}

fn resolve_overlaps(mut found: Vec<Finding>) -> Vec<Finding> {
    // Strongest first; a finding is kept if it overlaps none kept before it.
    found.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Finding> = Vec::new();
    for f in found {
        if kept.iter().all(|k| f.end <= k.start || f.start >= k.end) {
            kept.push(f);
        }
    }
    kept.sort_by_key(|f| f.start);
    kept
}

/// The label that replaces a masked span: the same for every value of a kind, so the
/// length of what was masked is not shown. It contains no digit and no `@`, so no
/// detector finds anything in it and masking twice changes nothing.
pub fn label(kind: &str) -> String {
    let name = kind.strip_prefix("list:").unwrap_or(kind);
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphabetic() || *c == '-' || *c == '_')
        .collect();
    format!("[{} REDACTED]", name.to_ascii_uppercase())
}

/// Masks every finding `masks` accepts (by kind), then scans the result again, until
/// nothing is left to mask: masking can change a value's surroundings (a context word
/// moves closer), so one pass is not always enough. The result is a fixed point, so
/// redacting it again changes nothing. Returns the text and the masked spans by kind.
pub fn redact_text(
    detector: &Detector,
    text: &str,
    masks: impl Fn(&str) -> bool,
) -> (String, std::collections::BTreeMap<String, u64>) {
    let mut counts = std::collections::BTreeMap::new();
    let mut current = text.to_string();
    for _ in 0..16 {
        let findings = detector.scan(&current);
        let spans: Vec<(usize, usize, &str)> = findings
            .iter()
            .filter(|f| masks(&f.kind))
            .map(|f| (f.start, f.end, f.kind.as_str()))
            .collect();
        if spans.is_empty() {
            break;
        }
        for (_, _, kind) in &spans {
            *counts.entry(kind.to_string()).or_default() += 1;
        }
        current = mask(&current, &spans);
    }
    (current, counts)
}

/// Replaces each span (non-overlapping, sorted, on char boundaries) with its kind's
/// label; the text between spans is kept byte for byte.
pub fn mask(text: &str, spans: &[(usize, usize, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for &(start, end, kind) in spans {
        if start < at
            || end > text.len()
            || !text.is_char_boundary(start)
            || !text.is_char_boundary(end)
        {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(&label(kind));
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, String)> {
        let d = Detector::new(&["enron.com".into()], &[]).unwrap();
        d.scan(text)
            .into_iter()
            .map(|f| (f.kind, text[f.start..f.end].to_string()))
            .collect()
    }

    #[test]
    fn each_detector_is_gated_by_its_own_pattern_in_the_set() {
        assert_eq!(BUILT_IN.set.len(), Slot::ALL.len());
        for (i, slot) in Slot::ALL.into_iter().enumerate() {
            assert_eq!(slot as usize, i, "{slot:?} is out of place in Slot::ALL");
            let pattern = ascii_boundaries(slot.pattern());
            assert_eq!(BUILT_IN.set.patterns()[i], pattern);
            assert_eq!(BUILT_IN.each[i].as_str(), pattern);
        }
    }

    #[test]
    fn checksums_and_ranges_decide() {
        assert_eq!(
            kinds("SSN 123-45-6789 ok"),
            [("ssn".into(), "123-45-6789".into())]
        );
        for invalid in [
            "000-12-3456",
            "666-12-3456",
            "912-34-5678",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert!(kinds(invalid).is_empty(), "{invalid}");
        }
        assert_eq!(kinds("my ssn: 123456789").len(), 1);
        assert!(kinds("order 123456789").is_empty());
        assert_eq!(kinds("card 4111 1111 1111 1111.")[0].0, "card");
        assert!(kinds("card 4111 1111 1111 1112.").is_empty());
        assert_eq!(kinds("IBAN GB82 WEST 1234 5698 7654 32")[0].0, "iban");
        assert!(kinds("IBAN GB82 WEST 1234 5698 7654 33").is_empty());
    }

    #[test]
    fn digits_of_other_scripts_are_scanned_without_failing() {
        // Every valued example above, its ASCII digits written in another script (all
        // of them, or the first one only), between ASCII letters so that the patterns'
        // ASCII word boundaries hold around the digits too.
        let examples = [
            "SSN 123-45-6789 ok",
            "my ssn: 123456789",
            "card 4111 1111 1111 1111.",
            "IBAN GB82 WEST 1234 5698 7654 32",
            "Passport No. X1234567 issued",
            "Date of birth: 04/12/1961",
            "call (713) 853-6794 now",
            "dial-in # 801.983.4017 Passcode # 54536 Many",
            "at 1400 Smith Street, Houston, TX 77002.",
        ];
        let d = Detector::new(&[], &[]).unwrap();
        for zero in ['\u{660}', '\u{6F0}', '\u{966}', '\u{9E6}', '\u{FF10}'] {
            let script = |c: char| {
                c.to_digit(10)
                    .map_or(c, |v| char::from_u32(zero as u32 + v).unwrap())
            };
            for example in examples {
                let all: String = example.chars().map(script).collect();
                let at = example.find(|c: char| c.is_ascii_digit()).unwrap();
                let first = format!(
                    "{}{}{}",
                    &example[..at],
                    script(example[at..].chars().next().unwrap()),
                    &example[at + 1..]
                );
                for text in [all.clone(), format!("x{}y", all.replace(' ', "")), first] {
                    for f in d.scan(&text) {
                        assert!(
                            text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
                            "{text}: {f:?}"
                        );
                        let value = &text[f.start..f.end];
                        if ["ssn", "card", "iban"].contains(&f.kind.as_str()) {
                            // Their checks read ASCII digits: a value in another
                            // script has too few to pass.
                            assert!(value.is_ascii(), "{text}: {f:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn context_detectors_take_only_the_value() {
        assert_eq!(
            kinds("Passport No. X1234567 issued"),
            [("passport".into(), "X1234567".into())]
        );
        assert_eq!(
            kinds("password: hunter22!"),
            [("password".into(), "hunter22!".into())]
        );
        assert_eq!(
            kinds("Date of birth: 04/12/1961"),
            [("dob".into(), "04/12/1961".into())]
        );
        assert_eq!(
            kinds("mail jane@gmail.com or ken.lay@enron.com"),
            [("email".into(), "jane@gmail.com".into())]
        );
        assert_eq!(kinds("call (713) 853-6794 now")[0].0, "phone");
        for (text, phone) in [
            ("contact Sherri Sera (713/853-5984) or", "713/853-5984"),
            ("call at 512) 263-0177 during", "512) 263-0177"),
            ("Sales (469)\n357-6893", "(469)\n357-6893"),
        ] {
            assert_eq!(kinds(text), [("phone".into(), phone.into())], "{text}");
        }
        assert_eq!(
            kinds("Enron Corp. P.O Box 1188, Room 4724a"),
            [("address".into(), "P.O Box 1188".into())]
        );
        for (text, code) in [
            ("dial-in # 801.983.4017 Passcode # 54536 Many", "54536"),
            ("Participant code - 741466 Audit", "741466"),
            ("participant code 550894. I will", "550894"),
        ] {
            assert_eq!(
                kinds(text).last().unwrap(),
                &("password".into(), code.into()),
                "{text}"
            );
        }
        for (text, date) in [
            ("Victoria Ashley Jones Born 5/25/01 7:31am.", "5/25/01"),
            ("Sharon Lay's birthday on October 8th and", "October 8th"),
            ("who was born on June 8, 2000 at 7:19", "June 8, 2000"),
        ] {
            assert_eq!(kinds(text), [("dob".into(), date.into())], "{text}");
        }
        assert!(kinds("life expectancy at birth is only 54 years").is_empty());
        assert_eq!(
            kinds("Host Code: 661877, (for Jim only), Participant Code: 936022,"),
            [
                ("password".into(), "661877".into()),
                ("password".into(), "936022".into())
            ]
        );
        assert_eq!(
            kinds("at 1400 Smith Street, Houston, TX 77002.")[0].0,
            "address"
        );
    }

    #[test]
    fn list_terms_match_whole_words_even_at_non_ascii_edges() {
        let list = |t: &str| List {
            name: "n".into(),
            terms: vec![t.into()],
            patterns: vec![],
        };
        let d = Detector::new(&[], &[list("José Ñúñez"), list("Roe")]).unwrap();
        let found: Vec<&str> = ["met José Ñúñez today", "Mr Roe.", "Monroe", "Roes"]
            .iter()
            .filter(|t| !d.scan(t).is_empty())
            .copied()
            .collect();
        assert_eq!(found, ["met José Ñúñez today", "Mr Roe."]);
    }

    #[test]
    fn masking_twice_changes_nothing() {
        let d = Detector::new(
            &[],
            &[List {
                name: "names".into(),
                terms: vec!["Jane Roe".into()],
                patterns: vec![],
            }],
        )
        .unwrap();
        let text = "Jane Roe, SSN 123-45-6789, card 4111-1111-1111-1111, pw: password: abc123";
        let once = {
            let f = d.scan(text);
            let spans: Vec<_> = f
                .iter()
                .map(|f| (f.start, f.end, f.kind.as_str()))
                .collect();
            mask(text, &spans)
        };
        assert_eq!(
            once,
            "[NAMES REDACTED], SSN [SSN REDACTED], card [CARD REDACTED], pw: password: [PASSWORD REDACTED]"
        );
        assert!(d.scan(&once).is_empty(), "{:?}", d.scan(&once));
    }
}
