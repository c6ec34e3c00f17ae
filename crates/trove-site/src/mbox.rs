//! Published emails as mbox (mboxrd), for exports of a release or of any search.
//!
//! An email's entry is its raw source as published. An email whose raw source is withheld
//! (it was redacted) is written from its published, redacted form, marked with an
//! `X-Trove-Redacted: yes` header, so an mbox never holds more than the site does.

use std::io::Write;

use crate::{PublishedMessage, Result, Site};

/// The bytes to export for `m`: its published raw source, or its redacted form.
pub fn source_of(site: &Site, m: &PublishedMessage) -> Result<Vec<u8>> {
    match &m.raw_sha256 {
        Some(_) => {
            let rel = crate::raw_path(m.number);
            site.read_file(&rel)?.ok_or_else(|| crate::SiteError::Io {
                path: site.root().join(rel),
                source: std::io::ErrorKind::NotFound.into(),
            })
        }
        None => Ok(redacted_source(m)),
    }
}

/// Appends `m` (whose exported bytes are `bytes`) to an mboxrd stream: `From ` lines in
/// the body, quoted or not, gain one `>`; readers remove one.
pub fn write_entry(
    out: &mut impl Write,
    m: &PublishedMessage,
    bytes: &[u8],
) -> std::io::Result<()> {
    let when = m
        .timestamp
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
            ))
            .ok()
        })
        .unwrap_or_else(|| "Thu Jan  1 00:00:00 1970".into());
    writeln!(out, "From trove-{}@archive {when}", m.number)?;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let stripped = line.iter().position(|&b| b != b'>').map(|i| &line[i..]);
        if stripped.is_some_and(|l| l.starts_with(b"From ")) {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
    }
    if !bytes.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")
}

/// A redacted email as a message: its published header section and text.
pub fn redacted_source(m: &PublishedMessage) -> Vec<u8> {
    let mut s = String::new();
    // The body below is plain UTF-8 text, whatever the original's MIME structure: its
    // MIME fields (and their continuation lines) go.
    let mut skipping = false;
    for line in m.headers.lines() {
        if !line.starts_with([' ', '\t']) {
            let name = line
                .split(':')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            skipping = name.starts_with("content-") || name == "mime-version";
        }
        if skipping {
            continue;
        }
        s.push_str(line);
        s.push('\n');
    }
    s.push_str("X-Trove-Redacted: yes\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
    s.push_str(&m.text);
    s.into_bytes()
}
