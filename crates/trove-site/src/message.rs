//! The published form of one email: what a reader may see, and nothing else.

use serde::{Deserialize, Serialize};

/// `messages/NNNN/N.json`. Versioned by `format`; fields are only ever added. The
/// default is an empty email of format 0, for code that fills in what it knows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PublishedMessage {
    pub format: u32,
    /// The public number (`/emailid/N`).
    pub number: u64,
    pub release: u32,
    pub message_id: Option<String>,
    /// RFC 3339, in the offset the sender's Date header was written in.
    pub date: Option<String>,
    /// Seconds since the Unix epoch, for sorting.
    pub timestamp: Option<i64>,
    pub from: Vec<Person>,
    pub to: Vec<Person>,
    pub cc: Vec<Person>,
    pub subject: String,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The header section as sent.
    pub headers: String,
    pub text: String,
    /// Sanitised HTML (no scripts, styles or remote resources), if the email had HTML.
    pub html: Option<String>,
    pub attachments: Vec<PublishedAttachment>,
    /// Every folder of the dump the email was found in.
    pub folders: Vec<String>,
    /// The charset used to decode each text part.
    pub charsets: Vec<String>,
    /// What was wrong with the email as received (`no-date`, `broken-mime`, …).
    pub defects: Vec<String>,
    /// SHA-256 of the raw source published beside this file, if it is published.
    pub raw_sha256: Option<String>,
    pub raw_size: Option<u64>,
    /// One verdict per DKIM-Signature, verified on the original bytes before release.
    #[serde(default)]
    pub dkim: Vec<PublishedDkim>,
    /// The ARC chain (RFC 8617), if the email carries one, verified before release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arc: Option<PublishedArc>,
    /// What was masked or withheld before publication, if anything: how much and of what
    /// kind, never the values. DKIM and ARC verdicts above were computed on the original
    /// bytes, before redaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<PublishedRedaction>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishedRedaction {
    /// Masked spans by kind (`ssn`, `card`, `list:donors`, …).
    pub spans_masked: std::collections::BTreeMap<String, u64>,
    /// Attachments not published, by the kind of finding that withheld them.
    pub attachments_withheld: std::collections::BTreeMap<String, u64>,
    /// The raw source is not published (it holds what was masked).
    pub raw_withheld: bool,
    /// The HTML part is not published: masking could not be shown to be complete in it.
    pub html_withheld: bool,
    /// The header section shown was rebuilt from the masked fields.
    pub headers_rebuilt: bool,
}

impl PublishedRedaction {
    /// The redaction in plain words, for a reader.
    pub fn sentence(&self) -> String {
        let list = |m: &std::collections::BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.spans_masked.is_empty() {
            parts.push(format!(
                "personal data masked ({})",
                list(&self.spans_masked)
            ));
        }
        if !self.attachments_withheld.is_empty() {
            parts.push(format!(
                "attachments withheld ({})",
                list(&self.attachments_withheld)
            ));
        }
        if self.html_withheld {
            parts.push("the HTML version withheld".into());
        }
        let mut line = format!("Redacted before publication: {}.", parts.join("; "));
        if self.raw_withheld {
            line.push_str(" The raw source is not published, because it holds what was redacted.");
        }
        if self.headers_rebuilt {
            line.push_str(" The headers shown are rebuilt from the redacted fields.");
        }
        line
    }
}

/// An ARC chain as published: each intermediary that sealed the email, oldest first.
/// ARC says who handled an email on its way and what they saw; unlike a passing DKIM
/// signature of the author's domain, it does not prove who wrote it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishedArc {
    pub sets: u32,
    /// `pass` when every seal and the newest ARC-Message-Signature verify.
    pub verdict: String,
    pub reason: String,
    pub seals: Vec<PublishedArcSeal>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishedArcSeal {
    /// `i=`: 1 for the first intermediary.
    pub instance: u32,
    pub domain: String,
    pub selector: String,
    pub verdict: String,
    pub reason: String,
    pub key: Option<PublishedKey>,
}

impl PublishedArc {
    /// The chain in plain words, for a reader.
    pub fn sentence(&self) -> String {
        let sealers: Vec<String> = self
            .seals
            .iter()
            .map(|s| {
                let mut one = format!("{} ({}, selector {})", s.instance, s.domain, s.selector);
                if s.verdict != "pass" {
                    one.push_str(&format!(": {}", s.verdict));
                }
                one
            })
            .collect();
        let outcome = if self.verdict == "pass" {
            "intact: each intermediary's seal verifies".to_string()
        } else {
            format!("broken or not checkable: {}", self.reason)
        };
        format!(
            "ARC chain of {} set(s), {outcome}. Sealed by {}. ARC records who handled the email on its way; it does not prove who wrote it.",
            self.sets,
            sealers.join(", ")
        )
    }
}

/// A DKIM verdict as published: what was checked, the result, and the key record used
/// with where it came from, so anyone can check it again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishedDkim {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    /// `pass`, `fail`, `key-not-found`, `key-invalid` or `unsupported`.
    pub verdict: String,
    pub reason: String,
    pub key_bits: Option<u32>,
    /// `l=`, and the canonicalised body length it is compared with.
    pub body_length_limit: Option<u64>,
    pub body_length: Option<u64>,
    pub weak: Option<String>,
    pub key: Option<PublishedKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishedKey {
    /// `selector._domainkey.domain`.
    pub name: String,
    /// The TXT record as used.
    pub txt: String,
    /// Where the key came from, in words.
    pub source: String,
    /// The private half is known to be public: a pass proves nothing.
    pub private_key_published: bool,
}

impl PublishedDkim {
    pub fn from_verdict(v: &trove_mail::dkim::SignatureVerdict) -> PublishedDkim {
        PublishedDkim {
            domain: v.domain.clone(),
            selector: v.selector.clone(),
            algorithm: v.algorithm.clone(),
            verdict: v.verdict.name().to_string(),
            reason: v.verdict.reason(),
            key_bits: v.key_bits,
            body_length_limit: v.body_length_limit,
            body_length: v.body_length,
            weak: v.weak.clone(),
            key: v.key.as_ref().map(|k| PublishedKey {
                name: k.name.clone(),
                txt: k.txt.clone(),
                source: k.source.to_string(),
                private_key_published: k.private_key_published,
            }),
        }
    }

    /// The verdict in plain words, for a reader.
    pub fn sentence(&self) -> String {
        let key = match (self.key_bits, self.algorithm.as_str()) {
            (Some(bits), a) if a.starts_with("rsa") => format!("a {bits}-bit RSA key"),
            (Some(_), a) if a.starts_with("ed25519") => "an Ed25519 key".to_string(),
            _ => format!("a key for {}", self.algorithm),
        };
        let or_unknown = |s: &str| {
            if s.is_empty() {
                "?".to_string()
            } else {
                s.to_string()
            }
        };
        let mut line = if self.verdict == "pass" {
            let covered = match (self.body_length_limit, self.body_length) {
                (Some(l), Some(total)) if l < total => format!(
                    "only the first {l} of {total} body bytes were signed (l=), so text after them could have been added"
                ),
                _ => "the body and the signed headers are unchanged since signing".to_string(),
            };
            format!(
                "Signed by {} with {key} (selector {}); {covered}.",
                self.domain, self.selector
            )
        } else {
            let what = if self.verdict == "fail" {
                "Signature FAILED"
            } else {
                "Signature not checked"
            };
            format!(
                "{what}: by {} (selector {}, {}): {}.",
                or_unknown(&self.domain),
                or_unknown(&self.selector),
                or_unknown(&self.algorithm),
                self.reason
            )
        };
        if let Some(k) = &self.key {
            line.push_str(&format!(" Key from: {}.", k.source));
            if k.private_key_published {
                line.push_str(" The private half of this key has been published, so anyone could have made this signature: it proves nothing.");
            }
        }
        if let Some(weak) = &self.weak {
            line.push_str(&format!(" Weak: {weak}."));
        }
        line
    }
}

/// An email's DKIM status for search: `pass` (a signature passes), `fail` (one definitely
/// failed, none passes), `unverified` (signed, but no usable key), `none` (unsigned).
pub fn dkim_status(list: &[PublishedDkim]) -> &'static str {
    dkim_status_of(list.iter().map(|d| d.verdict.as_str()))
}

/// The same status from verdict names alone: the one definition the index and the
/// workspace's counts share.
pub fn dkim_status_of<'a>(verdicts: impl IntoIterator<Item = &'a str>) -> &'static str {
    let mut status = "none";
    for v in verdicts {
        match v {
            "pass" => return "pass",
            "fail" | "key-invalid" => status = "fail",
            _ if status == "none" => status = "unverified",
            _ => {}
        }
    }
    status
}

pub const MESSAGE_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Person {
    pub name: Option<String>,
    pub address: Option<String>,
}

impl Person {
    /// "Name <address>", or whichever of the two is there.
    pub fn display(&self) -> String {
        match (&self.name, &self.address) {
            (Some(n), Some(a)) => format!("{n} <{a}>"),
            (Some(n), None) => n.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishedAttachment {
    /// 1-based position, as in `/emailid/N/attachments/M`.
    pub index: u32,
    pub filename: Option<String>,
    /// As declared by the sender; never used to serve the file.
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

impl PublishedAttachment {
    /// What kind of file this is, for the `filetype:` facet: `pdf`, `word`,
    /// `spreadsheet`, `presentation`, `image`, `text`, `html`, `email`, `calendar`,
    /// `archive`, `audio`, `video` or `other`. Told from the file name's extension, then
    /// the declared type (the bytes are not read: this is a label, not a safety check).
    pub fn kind(&self) -> &'static str {
        let ext = self
            .filename
            .as_deref()
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let by_ext = match ext.as_str() {
            "pdf" => Some("pdf"),
            "doc" | "docx" | "odt" | "rtf" | "wpd" => Some("word"),
            "xls" | "xlsx" | "xlsm" | "xlsb" | "ods" | "csv" => Some("spreadsheet"),
            "ppt" | "pptx" | "odp" => Some("presentation"),
            "jpg" | "jpeg" | "png" | "gif" | "bmp" | "tif" | "tiff" | "webp" | "heic" => {
                Some("image")
            }
            "txt" | "text" | "log" | "md" => Some("text"),
            "htm" | "html" => Some("html"),
            "eml" | "msg" => Some("email"),
            "ics" | "vcs" => Some("calendar"),
            "zip" | "gz" | "tgz" | "tar" | "7z" | "rar" | "bz2" => Some("archive"),
            "mp3" | "wav" | "m4a" | "ogg" => Some("audio"),
            "mp4" | "mov" | "avi" | "mkv" => Some("video"),
            _ => None,
        };
        if let Some(k) = by_ext {
            return k;
        }
        let ct = self.content_type.to_ascii_lowercase();
        let (top, sub) = ct.split_once('/').unwrap_or((ct.as_str(), ""));
        match (top, sub) {
            (_, "pdf") => "pdf",
            ("image", _) => "image",
            ("audio", _) => "audio",
            ("video", _) => "video",
            ("message", _) => "email",
            ("text", "html") => "html",
            ("text", "calendar") => "calendar",
            ("text", _) => "text",
            (_, s) if s.contains("word") || s.contains("opendocument.text") => "word",
            (_, s) if s.contains("sheet") || s.contains("excel") => "spreadsheet",
            (_, s) if s.contains("presentation") || s.contains("powerpoint") => "presentation",
            (_, s) if s.contains("zip") || s.contains("tar") || s.contains("compressed") => {
                "archive"
            }
            _ => "other",
        }
    }
}

impl PublishedMessage {
    pub fn from_line(&self) -> String {
        self.from
            .iter()
            .map(Person::display)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::dkim_status_of;

    #[test]
    fn dkim_status_is_the_best_verdict_whatever_the_order() {
        assert_eq!(dkim_status_of([]), "none");
        assert_eq!(dkim_status_of(["fail", "pass"]), "pass");
        assert_eq!(dkim_status_of(["key-not-found", "fail"]), "fail");
        assert_eq!(dkim_status_of(["fail", "key-not-found"]), "fail");
        assert_eq!(dkim_status_of(["key-invalid"]), "fail");
        assert_eq!(
            dkim_status_of(["unsupported", "key-not-found"]),
            "unverified"
        );
    }
}
