//! The published form of one email: what a reader may see, and nothing else.

use serde::{Deserialize, Serialize};

/// `messages/NNNN/N.json`. Versioned by `format`; fields are only ever added.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

    /// The name if there is one, else the address.
    pub fn short(&self) -> &str {
        self.name
            .as_deref()
            .or(self.address.as_deref())
            .unwrap_or_default()
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

impl PublishedMessage {
    pub fn from_line(&self) -> String {
        self.from
            .iter()
            .map(Person::display)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
