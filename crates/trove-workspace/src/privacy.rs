//! Personal data: the policy file (`policy.toml`), findings kept in the catalogue, the
//! review, and redaction of the published form at release. Originals are never touched.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use trove_mail::Parsed;
use trove_mail::extract::{AttachmentText, attachment_text};
use trove_mail::pii::{Detector, List};
use trove_site::{PublishedMessage, PublishedRedaction};

use crate::catalogue::Rows;
use crate::{Result, WorkspaceError};

pub const DEFAULT_POLICY: &str = r#"# trove personal-data policy: what happens to each kind of finding before release.
# `trove review` shows the findings and what this policy would do; edit, then review again.
#
# Actions:
#   "mask"                replace the value with a label such as [SSN REDACTED] (the same
#                         label whatever the value's length); the email's raw source is then
#                         not published, and an attachment holding such a value is withheld
#   "withhold-attachment" as "mask", said explicitly for kinds mostly found in attachments
#   "withhold-message"    the email is not released at all
#   "allow"               published as is
#   "block"               `trove release` refuses while an email about to be released has
#                         such a finding and no override below decides it
#
# Kinds: ssn (US Social Security numbers, invalid ranges excluded), card (payment cards
# passing the Luhn check), iban (valid checksum), passport (a number after "passport"),
# password (values after "password:", "PIN", "verification code"...), dob (a date after
# "date of birth", "born on"...), phone, address (street addresses), email (addresses
# outside public_domains), and list:NAME for the lists below.
#
# Attachments are read as text first: plain text, PDF (its text layer), Word, PowerPoint,
# Excel and OpenDocument files. An attachment trove cannot read (an image, a scanned PDF,
# an encrypted or unknown format) is a finding of kind "unreadable": nothing vouches for
# it. The default publishes it and `trove review` counts it; "withhold-attachment"
# withholds every such attachment, "block" makes the publisher decide each email.

# Addresses at these domains (and their subdomains) belong to organisations named as
# public; they are not findings. Example: ["enron.com"]
public_domains = []

[kinds]
ssn = "mask"
card = "mask"
iban = "mask"
passport = "mask"
password = "mask"
dob = "allow"
phone = "allow"
address = "allow"
email = "allow"
unreadable = "allow"

# A list of names or patterns of your own; findings are of kind "list:NAME".
# [[lists]]
# name = "donors"
# terms = ["Jane Roe", "John Q. Public"]      # whole words, any case
# patterns = ['\bDONOR-\d{6}\b']              # regular expressions
# action = "mask"

# A decision for one email, by Message-ID or content id (`trove review` shows both). It
# replaces the kinds' actions for that email (only for `kinds`, when given).
# [[overrides]]
# message_id = "<1234.JavaMail.evans@thyme>"   # or: content_id = "ab12..."
# action = "withhold-message"                   # or "allow", "mask"
# reason = "court order 17-204"                 # shown in the public register
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Mask,
    WithholdAttachment,
    WithholdMessage,
    Allow,
    Block,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Mask => "mask",
            Action::WithholdAttachment => "withhold-attachment",
            Action::WithholdMessage => "withhold-message",
            Action::Allow => "allow",
            Action::Block => "block",
        }
    }

    pub(crate) fn masks(self) -> bool {
        matches!(self, Action::Mask | Action::WithholdAttachment)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListPolicy {
    name: String,
    #[serde(default)]
    terms: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
    action: Action,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub message_id: Option<String>,
    pub content_id: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub kinds: Vec<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    public_domains: Vec<String>,
    #[serde(default)]
    kinds: BTreeMap<String, Action>,
    #[serde(default)]
    lists: Vec<ListPolicy>,
    #[serde(default)]
    overrides: Vec<Override>,
}

/// A loaded policy with its detectors.
pub struct Policy {
    file: PolicyFile,
    pub detector: Detector,
    /// SHA-256 of the policy file: logged with every decision.
    pub hash: String,
    /// SHA-256 of what the detectors depend on (public domains and lists): findings
    /// stored under another value are out of date.
    pub detector_hash: String,
    /// The first override naming each content id, and each message id (its angle
    /// brackets trimmed), by position in the file: a release asks for every email's
    /// override, and a list of court-ordered overrides can be long.
    by_content: HashMap<String, usize>,
    by_message: HashMap<String, usize>,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            // Workspaces made before policies existed get the default.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_POLICY.to_string(),
            Err(e) => return Err(crate::io_err(path)(e)),
        };
        Policy::parse(&text).map_err(|message| WorkspaceError::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse(text: &str) -> std::result::Result<Policy, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for kind in file.kinds.keys() {
            if !trove_mail::pii::KINDS.contains(&kind.as_str()) && kind != UNREADABLE {
                return Err(format!(
                    "unknown kind {kind:?} in [kinds]; known: {}, {UNREADABLE}",
                    trove_mail::pii::KINDS.join(", ")
                ));
            }
        }
        for o in &file.overrides {
            if o.message_id.is_none() && o.content_id.is_none() {
                return Err("an [[overrides]] entry needs message_id or content_id".into());
            }
        }
        let lists: Vec<List> = file
            .lists
            .iter()
            .map(|l| List {
                name: l.name.clone(),
                terms: l.terms.clone(),
                patterns: l.patterns.clone(),
            })
            .collect();
        let detector = Detector::new(&file.public_domains, &lists)?;
        let detector_hash = hex::encode(Sha256::digest(
            format!(
                "v{} {:?} {:?}",
                trove_mail::pii::DETECTOR_VERSION,
                file.public_domains,
                lists
            )
            .as_bytes(),
        ));
        let (mut by_content, mut by_message) = (HashMap::new(), HashMap::new());
        for (i, o) in file.overrides.iter().enumerate() {
            if let Some(id) = &o.content_id {
                by_content.entry(id.clone()).or_insert(i);
            }
            if let Some(id) = &o.message_id {
                by_message.entry(trim_id(id).to_string()).or_insert(i);
            }
        }
        Ok(Policy {
            detector,
            hash: hex::encode(Sha256::digest(text.as_bytes())),
            detector_hash,
            file,
            by_content,
            by_message,
        })
    }

    /// The action for a kind; kinds the file does not name are allowed, except the four
    /// numbers that are never public, which are masked.
    pub fn action(&self, kind: &str) -> Action {
        if let Some(name) = kind.strip_prefix("list:") {
            return self
                .file
                .lists
                .iter()
                .find(|l| l.name == name)
                .map_or(Action::Mask, |l| l.action);
        }
        match self.file.kinds.get(kind) {
            Some(a) => *a,
            None if matches!(kind, "ssn" | "card" | "iban" | "passport" | "password") => {
                Action::Mask
            }
            None => Action::Allow,
        }
    }

    /// The override for an email: the first in the file that names its content id or its
    /// message id.
    pub fn override_for(&self, content_id: &str, message_id: Option<&str>) -> Option<&Override> {
        let by_content = self.by_content.get(content_id).copied();
        let by_message = message_id.and_then(|id| self.by_message.get(trim_id(id)).copied());
        let first = by_content.into_iter().chain(by_message).min()?;
        Some(&self.file.overrides[first])
    }

    /// The action for one finding of one email, overrides first.
    pub fn action_for(&self, kind: &str, over: Option<&Override>) -> Action {
        match over {
            Some(o) if o.kinds.is_empty() || o.kinds.iter().any(|k| k == kind) => o.action,
            _ => self.action(kind),
        }
    }

    /// What happens to an email whatever its findings, when they cannot change it: no
    /// kind the policy or the email's override names withholds the email or blocks the
    /// release (the default policy's case), or the override withholds the whole email.
    /// `None` when the findings decide. Planning and numbering ask this first, and read
    /// an email's stored findings only on `None`: reading and parsing every email's
    /// findings twice was 130 of the 335 samples of a 100,000-email release's
    /// single-threaded start.
    pub fn decision_without_findings(&self, over: Option<&Override>) -> Option<Decision> {
        let holds = |a: Action| matches!(a, Action::WithholdMessage | Action::Block);
        if let Some(o) = over {
            if o.action == Action::WithholdMessage && o.kinds.is_empty() {
                return Some(self.decide([], over));
            }
            if holds(o.action) {
                return None;
            }
        }
        // Kinds the file does not name are allowed or masked (`Policy::action`).
        let policy_holds = self.file.kinds.values().any(|&a| holds(a))
            || self.file.lists.iter().any(|l| holds(l.action));
        (!policy_holds).then_some(Decision::Publish)
    }

    /// What happens to an email with findings of these kinds.
    pub fn decide<'k>(
        &self,
        kinds: impl IntoIterator<Item = &'k str>,
        over: Option<&Override>,
    ) -> Decision {
        if let Some(o) = over
            && o.action == Action::WithholdMessage
            && o.kinds.is_empty()
        {
            return Decision::Withhold(
                o.reason
                    .clone()
                    .unwrap_or_else(|| "publisher's decision".into()),
            );
        }
        let mut blocked = Vec::new();
        for kind in kinds {
            match self.action_for(kind, over) {
                Action::WithholdMessage => {
                    let reason = over
                        .and_then(|o| o.reason.clone())
                        .unwrap_or_else(|| kind.to_string());
                    return Decision::Withhold(reason);
                }
                Action::Block => blocked.push(kind.to_string()),
                _ => {}
            }
        }
        if blocked.is_empty() {
            Decision::Publish
        } else {
            blocked.sort();
            blocked.dedup();
            Decision::Blocked(blocked)
        }
    }
}

fn trim_id(id: &str) -> &str {
    id.trim().trim_start_matches('<').trim_end_matches('>')
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Publish,
    Withhold(String),
    Blocked(Vec<String>),
}

/// The kind of the finding an attachment gets when its text cannot be read (an image, a
/// scan, an encrypted or unknown format): the detectors cannot vouch for it.
pub const UNREADABLE: &str = "unreadable";

/// One finding in one part of an email, as stored and reviewed.
#[derive(Debug, Clone, Serialize)]
pub struct PartFinding {
    /// `subject`, `from`, `to`, `cc`, `headers`, `text`, `html`, `filename:N`,
    /// `attachment:N` (N from 1).
    pub part: String,
    pub kind: String,
    pub start: usize,
    pub end: usize,
    pub confidence: f32,
    pub value: String,
    /// Up to 40 characters either side, on one line.
    pub context: String,
}

/// Up to 40 bytes either side of `start..end`, each run of whitespace made one space:
/// the words of `split_whitespace` joined by spaces, pushed into one string. Collected
/// into a list and joined, they were 2.35 % of a 100k ingest's samples; 1.23 % so (a
/// byte loop for ASCII text measured 1.29 and 1.43 %, and is not kept).
fn context(text: &str, start: usize, end: usize) -> String {
    let a = text.floor_char_boundary(start.saturating_sub(40));
    let b = text.ceil_char_boundary(end + 40);
    let around = &text[a..b];
    let mut out = String::with_capacity(around.len());
    for word in around.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn scan_part(detector: &Detector, part: &str, text: &str, out: &mut Vec<PartFinding>) {
    for f in detector.scan(text) {
        out.push(PartFinding {
            part: part.to_string(),
            kind: f.kind,
            start: f.start,
            end: f.end,
            confidence: f.confidence,
            value: text[f.start..f.end].to_string(),
            context: context(text, f.start, f.end),
        });
    }
}

fn people_line(list: &[trove_mail::Mailbox]) -> String {
    list.iter()
        .map(trove_mail::Mailbox::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The findings in an email's own text, its attachments aside: subject, people, header
/// section, body and the HTML's visible text.
pub fn scan_own_text(parsed: &Parsed, detector: &Detector) -> Vec<PartFinding> {
    let mut out = Vec::new();
    scan_part(
        detector,
        "subject",
        parsed.subject.as_deref().unwrap_or_default(),
        &mut out,
    );
    scan_part(detector, "from", &people_line(&parsed.from), &mut out);
    scan_part(detector, "to", &people_line(&parsed.to), &mut out);
    scan_part(detector, "cc", &people_line(&parsed.cc), &mut out);
    // Every field, its encoded words ("=?utf-8?b?…?=") decoded.
    let header_text = match &parsed.header_text {
        Some(text) => Cow::Borrowed(text.as_str()),
        None => Cow::Owned(trove_mail::decoded_header_text(&parsed.header_block)),
    };
    scan_part(detector, "headers", &header_text, &mut out);
    scan_part(detector, "text", &parsed.text, &mut out);
    if let Some(html) = &parsed.html {
        // The visible text: a value split by markup or written as character references
        // is found whole (the span is then in this text, not in the HTML source).
        scan_part(detector, "html", &html_text(html), &mut out);
    }
    out
}

/// Every finding in an email's parts, as ingest sees them.
pub fn scan(parsed: &Parsed, detector: &Detector) -> Vec<PartFinding> {
    scan_keeping_texts(parsed, detector).0
}

/// The text read from one attachment in a document format, by its number (from 1), or
/// `None` where none could be read: what [`scan_keeping_texts`] keeps for the catalogue's
/// `attachment_texts`.
pub(crate) type DocumentText = (u32, Option<String>);

/// [`scan`], and the text of each attachment in a document format (not plain text, which
/// costs nothing to read again), so that a release indexes it without reading the
/// document a second time: PDF text was 3.5 % of a 100k release's `perf` samples.
pub(crate) fn scan_keeping_texts(
    parsed: &Parsed,
    detector: &Detector,
) -> (Vec<PartFinding>, Vec<DocumentText>) {
    let mut out = scan_own_text(parsed, detector);
    let mut texts = Vec::new();
    for (i, a) in parsed.attachments.iter().enumerate() {
        if let Some(name) = &a.filename {
            scan_part(detector, &format!("filename:{}", i + 1), name, &mut out);
        }
        let part = format!("attachment:{}", i + 1);
        let number = i as u32 + 1;
        match attachment_text(&a.content_type, a.filename.as_deref(), &a.bytes) {
            AttachmentText::Text { text, format } => {
                scan_part(detector, &part, &text, &mut out);
                if format != "text" {
                    texts.push((number, Some(text)));
                }
            }
            // What cannot be read cannot be vouched for: a finding of its own, so that
            // the review counts it and the policy decides.
            AttachmentText::Unreadable(why) => {
                out.push(PartFinding {
                    part,
                    kind: UNREADABLE.to_string(),
                    start: 0,
                    end: 0,
                    confidence: 1.0,
                    value: a.filename.clone().unwrap_or_else(|| a.content_type.clone()),
                    context: format!("{}: {why}", a.filename.as_deref().unwrap_or("(no name)")),
                });
                texts.push((number, None));
            }
        }
    }
    // The header section repeats the subject and the addresses: keep a header finding
    // only when its value is not already found in another part.
    let elsewhere: std::collections::HashSet<(String, String)> = out
        .iter()
        .filter(|f| f.part != "headers")
        .map(|f| (f.kind.clone(), f.value.clone()))
        .collect();
    out.retain(|f| f.part != "headers" || !elsewhere.contains(&(f.kind.clone(), f.value.clone())));
    (out, texts)
}

/// Stores the texts [`scan_keeping_texts`] kept of an email's attachments, as
/// [`store_findings`] stores its findings.
pub(crate) fn store_texts(
    tx: &rusqlite::Connection,
    message: i64,
    texts: &[DocumentText],
    rows: Rows,
) -> rusqlite::Result<()> {
    rows.clear(
        tx,
        "DELETE FROM attachment_texts WHERE message = ?1",
        message,
    )?;
    let mut insert =
        tx.prepare_cached("INSERT INTO attachment_texts (message, idx, text) VALUES (?1, ?2, ?3)")?;
    for (number, text) in texts {
        insert.execute(rusqlite::params![message, number, text])?;
    }
    Ok(())
}

/// One email's findings as the catalogue keeps them: one row per email, a JSON array of
/// `[part, kind, start, end, confidence, value, context]` in the order the scan made
/// them, or no row when there are none. A row per finding cost ingest's catalogue thread
/// a third of its time (four or five inserts and index entries per email).
pub(crate) fn encode_findings(findings: &[PartFinding]) -> Option<String> {
    if findings.is_empty() {
        return None;
    }
    let rows: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                &f.part,
                &f.kind,
                f.start,
                f.end,
                f.confidence,
                &f.value,
                &f.context,
            )
        })
        .collect();
    Some(serde_json::to_string(&rows).expect("findings serialise"))
}

/// The findings of one `findings.found` value.
pub(crate) fn decode_findings(found: &str) -> rusqlite::Result<Vec<PartFinding>> {
    type Row = (String, String, usize, usize, f32, String, String);
    let rows: Vec<Row> = serde_json::from_str(found).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(part, kind, start, end, confidence, value, context)| PartFinding {
                part,
                kind,
                start,
                end,
                confidence,
                value,
                context,
            },
        )
        .collect())
}

/// The stored findings of email `message`, in the order they were found (what the
/// catalogue's tests read back; a release needs only their kinds, [`kinds_in`]).
#[cfg(test)]
pub(crate) fn load_findings(
    conn: &rusqlite::Connection,
    message: i64,
) -> rusqlite::Result<Vec<PartFinding>> {
    stored_findings(conn, message)?.map_or(Ok(Vec::new()), |f| decode_findings(&f))
}

/// Email `message`'s findings as stored: one JSON array, if it has any.
pub(crate) fn stored_findings(
    conn: &rusqlite::Connection,
    message: i64,
) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached("SELECT found FROM findings WHERE message = ?1")?
        .query_row([message], |r| r.get(0))
        .optional()
}

/// The part and kind of each finding in `found` (an email's stored findings, as
/// [`encode_findings`] made them), in the order found: what a release decides from,
/// without the values and contexts (a release reads every email's findings, and those
/// strings were most of the decoding). Part and kind are borrowed from `found` (copied
/// only where escaped, which trove's parts and kinds never are), and the caller keeps
/// each kind once.
pub(crate) fn kinds_in(
    found: Option<&str>,
) -> rusqlite::Result<Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)>> {
    use serde::de::IgnoredAny;
    use std::borrow::Cow;
    #[derive(Deserialize)]
    struct Row<'a>(
        #[serde(borrow)] Cow<'a, str>,
        #[serde(borrow)] Cow<'a, str>,
        IgnoredAny,
        IgnoredAny,
        IgnoredAny,
        IgnoredAny,
        IgnoredAny,
    );
    let Some(found) = found else {
        return Ok(Vec::new());
    };
    let rows: Vec<Row> = serde_json::from_str(found).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(rows.into_iter().map(|r| (r.0, r.1)).collect())
}

/// Stores one email's findings, as [`encode_findings`] made them.
pub(crate) fn store_findings(
    tx: &rusqlite::Connection,
    message: i64,
    found: Option<&str>,
    rows: Rows,
) -> rusqlite::Result<()> {
    rows.clear(tx, "DELETE FROM findings WHERE message = ?1", message)?;
    if let Some(found) = found {
        tx.prepare_cached("INSERT INTO findings (message, found) VALUES (?1, ?2)")?
            .execute(rusqlite::params![message, found])?;
    }
    Ok(())
}

/// Masks what the policy masks in one string, to a fixed point; counts the spans by
/// kind.
fn mask_field(
    text: &str,
    policy: &Policy,
    over: Option<&Override>,
    counts: &mut BTreeMap<String, u64>,
) -> String {
    let (out, masked) = trove_mail::pii::redact_text(&policy.detector, text, |kind| {
        policy.action_for(kind, over).masks()
    });
    for (kind, n) in masked {
        *counts.entry(kind).or_default() += n;
    }
    out
}

/// The visible text of HTML: tags dropped, character references decoded, so that a value
/// split by markup (`123-<b>45</b>-6789`) or written as `&#49;23-…` is seen whole.
fn html_text(html: &str) -> String {
    // Elements that separate words; inline ones (b, i, span, a) do not.
    const BLOCKS: [&str; 19] = [
        "p",
        "br",
        "div",
        "li",
        "tr",
        "td",
        "th",
        "table",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "hr",
    ];
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    // Text runs are copied whole, up to the next tag or reference ('<' and '&' are ASCII,
    // so every cut is at a character's boundary).
    while let Some(at) = memchr::memchr2(b'<', b'&', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with('<') {
            // A tag runs to the next '>'; one that never closes hides the rest.
            let Some(end) = rest.find('>') else {
                return out;
            };
            let tag = rest[1..end].trim_start_matches('/');
            let name = &tag[..tag
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(tag.len())];
            if BLOCKS.iter().any(|b| name.eq_ignore_ascii_case(b)) {
                out.push('\n');
            }
            rest = &rest[end + 1..];
            continue;
        }
        if let Some(end) = rest[..rest.floor_char_boundary(12)].find(';') {
            let entity = &rest[1..end];
            let decoded = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            if let Some(d) = decoded {
                out.push(d);
                rest = &rest[end + 1..];
                continue;
            }
        }
        out.push('&');
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

/// Applies the policy to an email's published form and its attachments' bytes (a
/// withheld attachment's bytes are emptied and its entry dropped). `attachment_kinds` are
/// the kinds [`scan`] found in each attachment, by number from 1 (`unreadable` included):
/// documents are not read again here. Returns what was done, or `None` when nothing was.
pub fn redact(
    m: &mut PublishedMessage,
    attachments: &mut Vec<Vec<u8>>,
    attachment_kinds: &BTreeMap<u32, Vec<String>>,
    policy: &Policy,
    over: Option<&Override>,
) -> Option<PublishedRedaction> {
    let mut r = PublishedRedaction::default();
    let counts = &mut r.spans_masked;
    m.subject = mask_field(&m.subject, policy, over, counts);
    for p in m
        .from
        .iter_mut()
        .chain(m.to.iter_mut())
        .chain(m.cc.iter_mut())
    {
        if let Some(n) = &p.name {
            p.name = Some(mask_field(n, policy, over, counts));
        }
        if let Some(a) = &p.address {
            p.address = Some(mask_field(a, policy, over, counts));
        }
    }
    m.text = mask_field(&m.text, policy, over, counts);
    if let Some(html) = &m.html {
        let masked = mask_field(html, policy, over, counts);
        // Markup can split a value or hide it in character references: if the visible
        // text still holds something to mask, the HTML is not published at all.
        let leftover = policy
            .detector
            .scan(&html_text(&masked))
            .into_iter()
            .any(|f| policy.action_for(&f.kind, over).masks());
        if leftover {
            m.html = None;
            r.html_withheld = true;
        } else {
            m.html = Some(masked);
        }
    }
    // Attachments: a finding to mask inside one withholds it; names are masked.
    let mut kept = Vec::new();
    let mut kept_bytes = Vec::new();
    for (a, bytes) in m.attachments.drain(..).zip(attachments.drain(..)) {
        let withheld_for = attachment_kinds
            .get(&a.index)
            .into_iter()
            .flatten()
            .find(|kind| policy.action_for(kind, over).masks())
            .cloned();
        match withheld_for {
            Some(kind) => *r.attachments_withheld.entry(kind).or_default() += 1,
            None => {
                let mut a = a;
                if let Some(name) = &a.filename {
                    a.filename = Some(mask_field(name, policy, over, &mut r.spans_masked));
                }
                kept.push(a);
                kept_bytes.push(bytes);
            }
        }
    }
    for (i, a) in kept.iter_mut().enumerate() {
        a.index = i as u32 + 1;
    }
    m.attachments = kept;
    *attachments = kept_bytes;
    // The header section may hold values in encoded words or in fields shown nowhere
    // else. When anything is masked the section is rebuilt from the masked fields below;
    // when nothing else is, a value found only there counts as masked there.
    if r.spans_masked.is_empty() {
        for f in policy
            .detector
            .scan(&trove_mail::decoded_header_text(&m.headers))
        {
            if policy.action_for(&f.kind, over).masks() {
                *r.spans_masked.entry(f.kind).or_default() += 1;
            }
        }
    }
    let changed =
        !r.spans_masked.is_empty() || !r.attachments_withheld.is_empty() || r.html_withheld;
    if !changed {
        return None;
    }
    m.headers = rebuilt_headers(m);
    r.headers_rebuilt = true;
    m.raw_sha256 = None;
    m.raw_size = None;
    r.raw_withheld = true;
    Some(r)
}

fn rebuilt_headers(m: &PublishedMessage) -> String {
    let people = |list: &[trove_site::Person]| {
        list.iter()
            .map(trove_site::Person::display)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut h = String::new();
    for (name, value) in [
        ("From", people(&m.from)),
        ("To", people(&m.to)),
        ("Cc", people(&m.cc)),
        ("Date", m.date.clone().unwrap_or_default()),
        ("Subject", m.subject.clone()),
        ("Message-ID", m.message_id.clone().unwrap_or_default()),
    ] {
        if !value.is_empty() {
            h.push_str(&format!("{name}: {value}\n"));
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_parses_and_masks_the_four_numbers() {
        let p = Policy::parse(DEFAULT_POLICY).unwrap();
        for k in ["ssn", "card", "iban", "passport", "password"] {
            assert_eq!(p.action(k), Action::Mask, "{k}");
        }
        for k in ["phone", "email", "dob", "address"] {
            assert_eq!(p.action(k), Action::Allow, "{k}");
        }
        assert_eq!(p.decide(["ssn", "phone"], None), Decision::Publish);
    }

    #[test]
    fn bad_policies_say_what_is_wrong() {
        let e = Policy::parse("[kinds]\nssm = \"mask\"\n").err().unwrap();
        assert!(e.contains("unknown kind \"ssm\""), "{e}");
        let e = Policy::parse("[kinds]\nssn = \"hide\"\n").err().unwrap();
        assert!(e.contains("unknown variant"), "{e}");
        let e = Policy::parse("[[lists]]\nname = \"x\"\npatterns = [\"(\"]\naction = \"mask\"\n")
            .err()
            .unwrap();
        assert!(e.contains("list x"), "{e}");
    }

    /// An email's override is the first in the file naming its content id or its message
    /// id (with or without angle brackets), as a scan of the list in order finds it.
    #[test]
    fn an_emails_override_is_the_first_that_names_it() {
        let entries = [
            ("message_id", "<m1@x>", "allow"),
            ("content_id", "c1", "withhold-message"),
            ("content_id", "c2", "allow"),
            ("message_id", "m2@x", "withhold-message"),
            ("message_id", "m1@x", "block"),
            ("content_id", "c1", "block"),
            ("message_id", "", "mask"),
        ];
        let mut text = String::new();
        for (field, id, action) in entries {
            text.push_str(&format!(
                "[[overrides]]\n{field} = \"{id}\"\naction = \"{action}\"\n"
            ));
        }
        let policy = Policy::parse(&text).unwrap();
        let scanned = |content_id: &str, message_id: Option<&str>| {
            entries.iter().position(|(field, id, _)| match *field {
                "content_id" => *id == content_id,
                _ => message_id.is_some_and(|m| trim_id(id) == trim_id(m)),
            })
        };
        for content_id in ["c1", "c2", "c3"] {
            for message_id in [
                None,
                Some("<m1@x>"),
                Some("m1@x"),
                Some("<m2@x>"),
                Some("<>"),
                Some("m3"),
            ] {
                let found = policy
                    .override_for(content_id, message_id)
                    .map(std::ptr::from_ref);
                let expected =
                    scanned(content_id, message_id).map(|i| &raw const policy.file.overrides[i]);
                assert_eq!(found, expected, "{content_id} {message_id:?}");
            }
        }
        // The first entry wins where both ids name an email.
        let both = policy.override_for("c2", Some("<m1@x>")).unwrap();
        assert_eq!(both.action, Action::Allow);
        assert_eq!(both.message_id.as_deref(), Some("<m1@x>"));
    }

    #[test]
    fn overrides_and_blocks_decide_per_email() {
        let p = Policy::parse(
            "[kinds]\nphone = \"block\"\n[[overrides]]\nmessage_id = \"<a@b>\"\naction = \"allow\"\n\
             [[overrides]]\ncontent_id = \"ff\"\naction = \"withhold-message\"\nreason = \"court order\"\n",
        )
        .unwrap();
        assert_eq!(
            p.decide(["phone"], None),
            Decision::Blocked(vec!["phone".into()])
        );
        let o = p.override_for("00", Some("a@b"));
        assert_eq!(p.decide(["phone"], o), Decision::Publish);
        let o = p.override_for("ff", None);
        assert_eq!(p.decide([], o), Decision::Withhold("court order".into()));
    }

    /// Wherever the decision is given without the findings, it is the decision any
    /// findings would get; and it is given where nothing can hold an email.
    #[test]
    fn a_decision_made_without_findings_is_the_one_any_findings_get() {
        let policies = [
            DEFAULT_POLICY.to_string(),
            "[kinds]\nphone = \"block\"\n".into(),
            "[kinds]\ndob = \"withhold-message\"\nemail = \"withhold-attachment\"\n".into(),
            "[[lists]]\nname = \"x\"\nterms = [\"Acme\"]\naction = \"withhold-message\"\n".into(),
            "[[lists]]\nname = \"x\"\nterms = [\"Acme\"]\naction = \"mask\"\n".into(),
        ];
        let overrides = "\n[[overrides]]\ncontent_id = \"allow\"\naction = \"allow\"\n\
             [[overrides]]\ncontent_id = \"all\"\naction = \"withhold-message\"\n\
             [[overrides]]\ncontent_id = \"phone\"\naction = \"withhold-message\"\nkinds = [\"phone\"]\n\
             [[overrides]]\ncontent_id = \"block\"\naction = \"block\"\n\
             [[overrides]]\ncontent_id = \"mask\"\naction = \"mask\"\nkinds = [\"email\"]\n";
        let kinds = [
            "phone",
            "email",
            "dob",
            "ssn",
            "unreadable",
            "list:x",
            "list:y",
        ];
        let mut given = 0;
        for text in &policies {
            let p = Policy::parse(&format!("{text}{overrides}")).unwrap();
            for id in ["none", "allow", "all", "phone", "block", "mask"] {
                let over = p.override_for(id, None);
                let Some(without) = p.decision_without_findings(over) else {
                    continue;
                };
                given += 1;
                for subset in 0..1u32 << kinds.len() {
                    let found = kinds
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| subset & 1 << i != 0)
                        .map(|(_, k)| *k);
                    assert_eq!(p.decide(found, over), without, "{text} {id} {subset:b}");
                }
            }
        }
        let default = Policy::parse(DEFAULT_POLICY).unwrap();
        assert_eq!(
            default.decision_without_findings(None),
            Some(Decision::Publish)
        );
        let blocking = Policy::parse(&policies[1]).unwrap();
        assert_eq!(blocking.decision_without_findings(None), None);
        assert!(given >= 10, "{given}");
    }

    /// The context around a finding is its words as `split_whitespace` cuts them, joined
    /// by single spaces, for ASCII text and other text alike.
    #[test]
    fn a_findings_context_is_its_surroundings_words_joined_by_spaces() {
        let texts = [
            "call  me at\t555-0100 \r\n tomorrow",
            " \x0b\x0cleading and trailing\x0b ",
            "no-break\u{a0}space and em\u{2003}space, caf\u{e9}\n\nnext",
            "\u{1f600} emoji\u{3000}ideographic space",
            "",
            "   ",
            "x",
        ];
        for text in texts {
            for (start, end) in [(0, 0), (0, text.len()), (text.len() / 2, text.len() / 2)] {
                let (a, b) = (
                    text.floor_char_boundary(start),
                    text.ceil_char_boundary(end),
                );
                let around = &text[text.floor_char_boundary(a.saturating_sub(40))
                    ..text.ceil_char_boundary(b + 40)];
                let expected = around.split_whitespace().collect::<Vec<_>>().join(" ");
                assert_eq!(super::context(text, a, b), expected, "{text:?} {a}..{b}");
            }
        }
        let long = format!("{} middle {}", "word ".repeat(20), "\tend ".repeat(20));
        let at = long.find("middle").unwrap();
        let around = super::context(&long, at, at + 6);
        assert!(
            around.contains("word middle end") && !around.contains("  "),
            "{around}"
        );
    }

    #[test]
    fn html_text_sees_through_markup_and_references() {
        assert_eq!(html_text("1<b>23</b>-45-&#54;789 &amp;"), "123-45-6789 &");
        assert_eq!(html_text("<p>one</p><p>two</p>"), "\none\n\ntwo\n");
        // A reference-like '&' followed by multi-byte text (found in the lists corpus).
        assert_eq!(html_text("&gt; I don’t &nbsp;│x"), "> I don’t  │x");
        assert_eq!(html_text("&x’’’’’’’"), "&x’’’’’’’");
    }
}

/// `meta` key: the detector hash all stored findings were made with, or `stale`.
const FINDINGS_DETECTOR: &str = "findings_detector";

/// One kind of finding in the review.
#[derive(Debug, Clone, Serialize)]
pub struct KindSummary {
    pub kind: String,
    pub findings: u64,
    pub messages: u64,
    pub action: String,
    /// A few findings in context.
    pub examples: Vec<String>,
}

/// One finding as the review lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewFinding {
    pub kind: String,
    /// The email's content id.
    pub message: String,
    pub message_id: Option<String>,
    /// Its public number, if released.
    pub number: Option<u64>,
    pub part: String,
    pub confidence: f32,
    /// What the policy does with it (overrides included).
    pub action: String,
    pub value: String,
    pub context: String,
}

/// What the next `trove release --all` would do with the emails not yet released.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NextRelease {
    pub unreleased: u64,
    pub publish: u64,
    /// Of those published, emails with something masked or withheld.
    pub redacted: u64,
    pub withhold: BTreeMap<String, u64>,
    /// Emails that stop the release, with the blocking kinds.
    pub blocked: Vec<(String, Option<String>, Vec<String>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub policy_sha256: String,
    pub kinds: Vec<KindSummary>,
    pub findings: Vec<ReviewFinding>,
    pub next_release: NextRelease,
}

impl crate::Workspace {
    /// Records that new findings were made with `detector_hash`: if older ones were made
    /// with other detectors, the stored findings are now mixed ("stale").
    pub(crate) fn mark_findings_scanned_with(&self, detector_hash: &str) -> Result<()> {
        let stored = self.catalogue.meta(FINDINGS_DETECTOR)?;
        let value = match stored {
            Some(s) if s != detector_hash && self.has_messages()? => "stale",
            _ => detector_hash,
        };
        self.catalogue.set_meta(FINDINGS_DETECTOR, value)
    }

    fn has_messages(&self) -> Result<bool> {
        self.catalogue
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM messages)", [], |r| r.get(0))
            .map_err(self.catalogue.err())
    }

    /// Scans every email again if the stored findings were made with other detectors
    /// (the public domains, the lists or the detectors themselves changed). Returns
    /// whether it scanned.
    pub fn refresh_findings(
        &mut self,
        policy: &Policy,
        progress: &dyn Fn(u64, u64),
    ) -> Result<bool> {
        let stored = self.catalogue.meta(FINDINGS_DETECTOR)?;
        if stored.as_deref() == Some(policy.detector_hash.as_str()) || !self.has_messages()? {
            self.catalogue
                .set_meta(FINDINGS_DETECTOR, &policy.detector_hash)?;
            return Ok(false);
        }
        // The documents are read again too (extraction counts as part of the
        // detectors), so the texts kept for release are replaced with the new reading.
        let total = self.over_every_original(
            |raw, _| {
                let (found, texts) =
                    scan_keeping_texts(&trove_mail::parse_with_header_text(raw), &policy.detector);
                (encode_findings(&found), texts)
            },
            |tx, id, (found, texts)| {
                store_findings(tx, id, found.as_deref(), Rows::Replace)?;
                store_texts(tx, id, &texts, Rows::Replace)
            },
            progress,
        )?;
        self.catalogue
            .set_meta(FINDINGS_DETECTOR, &policy.detector_hash)?;
        self.catalogue.log(
            "findings-rescan",
            &serde_json::json!({"emails": total, "policy_sha256": policy.hash}).to_string(),
        )?;
        Ok(true)
    }

    /// Emails a release held back, by reason.
    pub(crate) fn withheld_in(&self, release: u32) -> Result<BTreeMap<String, u64>> {
        let mut stmt = self
            .catalogue
            .conn
            .prepare("SELECT reason, count(*) FROM withheld WHERE release = ?1 GROUP BY reason")
            .map_err(self.catalogue.err())?;
        let rows = stmt
            .query_map([release], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.catalogue.err())?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(self.catalogue.err())
    }

    /// The findings, what the policy does with them, and what the next release would do.
    pub fn review(&mut self, progress: &dyn Fn(u64, u64)) -> Result<Review> {
        let policy = self.policy()?;
        self.refresh_findings(&policy, progress)?;
        // Each email's findings are one row; the review lists them by kind, then by the
        // email's date (undated first) and id, then by part and place.
        let mut sorted = Vec::new();
        {
            let mut stmt = self
                .catalogue
                .conn
                .prepare(
                    "SELECT f.found, m.content_id, m.message_id, m.number, m.date, m.id
                     FROM findings f JOIN messages m ON m.id = f.message",
                )
                .map_err(self.catalogue.err())?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        decode_findings(&r.get::<_, String>(0)?)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(self.catalogue.err())?;
            for row in rows {
                let (found, message, message_id, number, date, id) =
                    row.map_err(self.catalogue.err())?;
                let over = policy.override_for(&message, message_id.as_deref());
                for f in found {
                    let finding = ReviewFinding {
                        action: policy.action_for(&f.kind, over).name().to_string(),
                        kind: f.kind,
                        message: message.clone(),
                        message_id: message_id.clone(),
                        number: number.map(|n| n as u64),
                        part: f.part,
                        confidence: f.confidence,
                        value: f.value,
                        context: f.context,
                    };
                    sorted.push(((date, id, f.start), finding));
                }
            }
        }
        sorted.sort_by(|(a, fa), (b, fb)| {
            (&fa.kind, a.0, a.1, &fa.part, a.2).cmp(&(&fb.kind, b.0, b.1, &fb.part, b.2))
        });
        let findings: Vec<ReviewFinding> = sorted.into_iter().map(|(_, f)| f).collect();
        let mut kinds: BTreeMap<String, (u64, std::collections::BTreeSet<String>, Vec<String>)> =
            BTreeMap::new();
        for f in &findings {
            let e = kinds.entry(f.kind.clone()).or_default();
            e.0 += 1;
            e.1.insert(f.message.clone());
            if e.2.len() < 3 {
                e.2.push(f.context.clone());
            }
        }
        let kinds = kinds
            .into_iter()
            .map(|(kind, (n, messages, examples))| KindSummary {
                action: policy.action(&kind).name().to_string(),
                kind,
                findings: n,
                messages: messages.len() as u64,
                examples,
            })
            .collect();
        // The next release, as `--all` would cut it.
        let mut next = NextRelease::default();
        let mut by_message: BTreeMap<String, (Option<String>, Vec<String>)> = BTreeMap::new();
        for f in findings.iter().filter(|f| f.number.is_none()) {
            let e = by_message
                .entry(f.message.clone())
                .or_insert((f.message_id.clone(), vec![]));
            e.1.push(f.kind.clone());
        }
        let unreleased: Vec<String> = {
            let mut stmt = self
                .catalogue
                .conn
                .prepare(
                    "SELECT content_id FROM messages WHERE number IS NULL
                     AND id NOT IN (SELECT message FROM withheld)",
                )
                .map_err(self.catalogue.err())?;
            stmt.query_map([], |r| r.get(0))
                .map_err(self.catalogue.err())?
                .collect::<std::result::Result<_, _>>()
                .map_err(self.catalogue.err())?
        };
        next.unreleased = unreleased.len() as u64;
        for content_id in unreleased {
            let (message_id, found) = by_message.remove(&content_id).unwrap_or_default();
            let over = policy.override_for(&content_id, message_id.as_deref());
            match policy.decide(found.iter().map(String::as_str), over) {
                Decision::Publish => {
                    next.publish += 1;
                    if found.iter().any(|k| policy.action_for(k, over).masks()) {
                        next.redacted += 1;
                    }
                }
                Decision::Withhold(reason) => *next.withhold.entry(reason).or_default() += 1,
                Decision::Blocked(kinds) => next.blocked.push((content_id, message_id, kinds)),
            }
        }
        self.catalogue.log(
            "review",
            &serde_json::json!({"policy_sha256": policy.hash, "findings": findings.len(),
                "publish": next.publish, "redacted": next.redacted, "withhold": next.withhold,
                "blocked": next.blocked.len()})
            .to_string(),
        )?;
        Ok(Review {
            policy_sha256: policy.hash.clone(),
            kinds,
            findings,
            next_release: next,
        })
    }
}
