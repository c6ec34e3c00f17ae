//! An email attached to a published email (`message/rfc822`), read so that a reader can
//! see it as an email rather than download it. It was published as an attachment, so the
//! release's personal-data checks already covered its text; its HTML goes through the same
//! sanitiser as any published HTML.

use crate::Person;

/// What a reader sees of an attached email.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttachedEmail {
    pub subject: String,
    pub from: Vec<Person>,
    pub to: Vec<Person>,
    pub cc: Vec<Person>,
    /// RFC 3339, in the sender's offset.
    pub date: Option<String>,
    pub message_id: Option<String>,
    pub text: String,
    /// Sanitised: no scripts, styles or remote resources.
    pub html: Option<String>,
    /// Its own attachments: file name, declared type and size.
    pub attachments: Vec<(Option<String>, String, u64)>,
    /// What was wrong with it as received.
    pub defects: Vec<String>,
}

/// Reads `bytes` as an email. Never fails: a broken one lists its defects.
pub fn read_attached_email(bytes: &[u8]) -> AttachedEmail {
    let p = trove_mail::parse(bytes);
    let people = |list: &[trove_mail::Mailbox]| {
        list.iter()
            .map(|m| Person {
                name: m.name.clone(),
                address: m.address.clone(),
            })
            .collect()
    };
    let date = p.date.and_then(|d| {
        let offset = time::UtcOffset::from_whole_seconds(d.offset).ok()?;
        time::OffsetDateTime::from_unix_timestamp(d.timestamp)
            .ok()?
            .to_offset(offset)
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    AttachedEmail {
        subject: p.subject.clone().unwrap_or_default(),
        from: people(&p.from),
        to: people(&p.to),
        cc: people(&p.cc),
        date,
        message_id: p.message_id.clone(),
        text: p.text.clone(),
        html: p.html.as_deref().map(trove_mail::sanitize_html),
        attachments: p
            .attachments
            .iter()
            .map(|a| {
                (
                    a.filename.clone(),
                    a.content_type.clone(),
                    a.bytes.len() as u64,
                )
            })
            .collect(),
        defects: p.defects.iter().map(|d| d.to_string()).collect(),
    }
}
