//! The text inside an attachment, for the personal-data detectors (and, later, search).
//!
//! Formats are told by their bytes first (a PDF mailed as `application/octet-stream` is
//! still a PDF), then by the declared type and the file name's extension:
//!
//! - text: `text/*`, `message/*`, JSON, XML, CSV, decoded as UTF-8 (lossily);
//! - PDF: the text layer, by `pdf-extract` (a scanned page has none: unreadable);
//! - Word, PowerPoint and OpenDocument text (DOCX, PPTX, ODT, ODP): the XML parts that
//!   hold the body, headers, footers, notes, comments and the document's properties
//!   (author and title are personal data too), walked with `quick-xml`;
//! - spreadsheets (XLSX, XLSM, XLSB, XLS, ODS): every cell of every sheet, by `calamine`,
//!   a row to a line, cells separated by tabs.
//!
//! A detached OpenPGP signature reads as empty text: nobody wrote it. Anything else
//! (images, archives, S/MIME signatures, old binary Word files, encrypted or broken
//! documents) is [`AttachmentText::Unreadable`], with the reason: the detectors cannot
//! vouch for it, and the policy decides what happens to such attachments.
//!
//! Parsers of untrusted documents can fail in any way, panics included: a panic is
//! caught and reported as unreadable, and the XML parts are read up to a size limit so
//! that a zip bomb cannot exhaust memory.

use std::io::{Cursor, Read};

/// What the detectors can read in an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentText {
    /// The attachment's text, and the format it was read from (`text`, `pdf`, `docx`,
    /// `pptx`, `odt`, `spreadsheet`).
    Text { format: &'static str, text: String },
    /// No text could be read; the reason says why, naming the format.
    Unreadable(String),
}

impl AttachmentText {
    pub fn text(&self) -> Option<&str> {
        match self {
            AttachmentText::Text { text, .. } => Some(text),
            AttachmentText::Unreadable(_) => None,
        }
    }
}

/// The most text read from one document: beyond it the rest is cut (and said so).
const MAX_TEXT: usize = 32 << 20;
/// The most bytes one XML part of an office document may inflate to.
const MAX_XML_PART: u64 = 64 << 20;

/// Reads the text of one attachment. Never panics, whatever the bytes.
pub fn attachment_text(content_type: &str, filename: Option<&str>, bytes: &[u8]) -> AttachmentText {
    let t = content_type.to_ascii_lowercase();
    let ext = filename
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if bytes.starts_with(b"%PDF-") || (t == "application/pdf" && find(bytes, b"%PDF-").is_some()) {
        return guarded("PDF", || pdf(bytes));
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return guarded("zip", || zipped(bytes, &ext));
    }
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        // An OLE compound file: old Excel is read; old Word and others are not.
        if ext == "xls" || t.contains("excel") {
            return guarded("XLS", || spreadsheet(bytes));
        }
        return AttachmentText::Unreadable(format!(
            "an OLE compound document ({}) has no text extraction",
            if ext.is_empty() {
                t.as_str()
            } else {
                ext.as_str()
            }
        ));
    }
    if t == "application/pgp-signature" {
        // A detached OpenPGP signature: armoured bytes over the message, nothing a person
        // wrote. (An S/MIME signature carries the signer's certificate, and stays
        // unreadable.)
        return AttachmentText::Text {
            format: "signature",
            text: String::new(),
        };
    }
    let texty = t.starts_with("text/")
        || t.starts_with("message/")
        || matches!(
            t.as_str(),
            "application/json" | "application/xml" | "application/csv" | "application/x-csv"
        )
        || matches!(
            ext.as_str(),
            "txt" | "csv" | "tsv" | "json" | "xml" | "eml" | "vcf" | "ics"
        );
    if texty {
        return AttachmentText::Text {
            format: "text",
            text: String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_TEXT)]).into_owned(),
        };
    }
    let what = if t.starts_with("image/") {
        "an image"
    } else {
        "a format"
    };
    AttachmentText::Unreadable(format!(
        "{what} with no text extraction ({})",
        if t.is_empty() { "no type" } else { t.as_str() }
    ))
}

/// Runs a parser, turning its errors and panics into an unreadable verdict.
fn guarded(format: &str, parse: impl FnOnce() -> Result<AttachmentText, String>) -> AttachmentText {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse)) {
        Ok(Ok(AttachmentText::Text { format, text })) if text.trim().is_empty() => {
            AttachmentText::Unreadable(format!(
                "{format} holds no text (a scan or an image would need OCR)"
            ))
        }
        Ok(Ok(found)) => found,
        Ok(Err(e)) => AttachmentText::Unreadable(format!("{format} could not be read: {e}")),
        Err(panic) => {
            let why = crate::panic_message(&*panic).unwrap_or_else(|| "the parser failed".into());
            AttachmentText::Unreadable(format!("{format} could not be read: {why}"))
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn capped(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn pdf(bytes: &[u8]) -> Result<AttachmentText, String> {
    let start = find(bytes, b"%PDF-").unwrap_or(0);
    let mut doc = pdf_extract::Document::load_mem(&bytes[start..]).map_err(|e| e.to_string())?;
    // As `pdf_extract::extract_text_from_mem` does: the empty user password opens a
    // document that is encrypted only against editing.
    if doc.is_encrypted() {
        doc.decrypt("").map_err(|e| e.to_string())?;
    }
    // The same text, read by trove where its fonts allow (`pdf.rs`), by pdf-extract where
    // not; neither is given a document pdf-extract would never finish.
    let text = match crate::pdf::simple_text(&doc) {
        Ok(Some(text)) => text,
        Ok(None) => {
            crate::pdf::forms_end(&doc).map_err(|refused| refused.0.to_string())?;
            by_pdf_extract(doc)?
        }
        Err(refused) => return Err(refused.0.to_string()),
    };
    Ok(AttachmentText::Text {
        format: "pdf",
        text: capped(text),
    })
}

/// `doc`'s text by pdf-extract's plain-text output, its `'` and `"` spelled out first.
pub(crate) fn by_pdf_extract(mut doc: pdf_extract::Document) -> Result<String, String> {
    spell_out_next_line_shows(&mut doc);
    let mut text = String::new();
    pdf_extract::output_doc(&doc, &mut pdf_extract::PlainTextOutput::new(&mut text))
        .map_err(|e| e.to_string())?;
    Ok(text)
}

/// Rewrites the text operators `'` and `"` of every page into the ones they stand for
/// (`T*` then `Tj`; `"` sets the word and character spacing first, `Tw` and `Tc`).
/// pdf-extract shows only `Tj` and `TJ`, so the text of documents written a line at a
/// time with `'` (some typesetters, form generators and older exporters do) came out
/// empty, and such a PDF was unreadable to the detectors and to search. A page whose
/// content holds neither byte is left as it is; one that cannot be decoded too.
fn spell_out_next_line_shows(doc: &mut pdf_extract::Document) {
    use pdf_extract::content::{Content, Operation};
    use pdf_extract::{Dictionary, Object, Stream};
    for page in doc.get_pages().into_values() {
        let Ok(bytes) = doc.get_page_content(page) else {
            continue;
        };
        if !bytes.iter().any(|b| matches!(b, b'\'' | b'"')) {
            continue;
        }
        let Ok(content) = Content::decode(&bytes) else {
            continue;
        };
        if !content
            .operations
            .iter()
            .any(|op| matches!(op.operator.as_str(), "'" | "\""))
        {
            continue;
        }
        let mut operations = Vec::with_capacity(content.operations.len() + 16);
        for op in content.operations {
            match (op.operator.as_str(), op.operands.as_slice()) {
                ("'", [_]) => {
                    operations.push(Operation::new("T*", Vec::new()));
                    operations.push(Operation::new("Tj", op.operands));
                }
                ("\"", [word, char, shown]) => {
                    operations.push(Operation::new("Tw", vec![word.clone()]));
                    operations.push(Operation::new("Tc", vec![char.clone()]));
                    operations.push(Operation::new("T*", Vec::new()));
                    operations.push(Operation::new("Tj", vec![shown.clone()]));
                }
                _ => operations.push(op),
            }
        }
        let Ok(encoded) = (Content { operations }).encode() else {
            continue;
        };
        // A new stream, left uncompressed: pdf-extract reads it next, once.
        let stream = doc.add_object(Stream::new(Dictionary::new(), encoded));
        if let Ok(Object::Dictionary(dict)) = doc.get_object_mut(page) {
            dict.set("Contents", Object::Reference(stream));
        }
    }
}

fn spreadsheet(bytes: &[u8]) -> Result<AttachmentText, String> {
    use calamine::{Data, Reader};
    let mut book =
        calamine::open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let mut text = String::new();
    'sheets: for (name, range) in book.worksheets() {
        text.push_str(&name);
        text.push('\n');
        for row in range.rows() {
            let cells: Vec<String> = row
                .iter()
                .map(|cell| match cell {
                    // A number typed into a cell (a card, an account) is shown whole.
                    Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e17 => {
                        format!("{}", *f as i128)
                    }
                    other => other.to_string(),
                })
                .collect();
            text.push_str(cells.join("\t").trim_end());
            text.push('\n');
            if text.len() > MAX_TEXT {
                break 'sheets;
            }
        }
    }
    Ok(AttachmentText::Text {
        format: "spreadsheet",
        text: capped(text),
    })
}

/// A zip: an office document of one of the known kinds, told by the parts it holds.
fn zipped(bytes: &[u8], ext: &str) -> Result<AttachmentText, String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    let spreadsheet_like = has("xl/workbook.xml")
        || has("xl/workbook.bin")
        || (has("content.xml") && mimetype(&mut archive).contains("spreadsheet"));
    if spreadsheet_like {
        return spreadsheet(bytes);
    }
    let (format, parts): (&'static str, Vec<&String>) = if has("word/document.xml") {
        let parts = names
            .iter()
            .filter(|n| {
                n.starts_with("word/")
                    && n.ends_with(".xml")
                    && [
                        "document",
                        "header",
                        "footer",
                        "footnotes",
                        "endnotes",
                        "comments",
                    ]
                    .iter()
                    .any(|p| n["word/".len()..].starts_with(p))
            })
            .collect();
        ("docx", parts)
    } else if has("ppt/presentation.xml") {
        let parts = names
            .iter()
            .filter(|n| {
                (n.starts_with("ppt/slides/slide") || n.starts_with("ppt/notesSlides/"))
                    && n.ends_with(".xml")
            })
            .collect();
        ("pptx", parts)
    } else if has("content.xml") {
        let parts = names
            .iter()
            .filter(|n| matches!(n.as_str(), "content.xml" | "styles.xml"))
            .collect();
        ("odt", parts)
    } else {
        return Ok(AttachmentText::Unreadable(format!(
            "a zip archive{} is not a document trove reads",
            if ext.is_empty() {
                String::new()
            } else {
                format!(" (.{ext})")
            }
        )));
    };
    // Properties first: the author and title, then the body.
    let mut ordered: Vec<String> = ["docProps/core.xml", "docProps/app.xml", "meta.xml"]
        .iter()
        .filter(|n| has(n))
        .map(|n| n.to_string())
        .collect();
    let mut body: Vec<String> = parts.into_iter().cloned().collect();
    // Slides before their notes, each in order.
    body.sort_by(|a, b| {
        (a.contains("notesSlides"), natural_key(a))
            .cmp(&(b.contains("notesSlides"), natural_key(b)))
    });
    ordered.extend(body);
    let mut text = String::new();
    for name in ordered {
        let mut xml = String::new();
        archive
            .by_name(&name)
            .map_err(|e| format!("{name}: {e}"))?
            .take(MAX_XML_PART)
            .read_to_string(&mut xml)
            .map_err(|e| format!("{name}: {e}"))?;
        let properties = name == "meta.xml" || name.starts_with("docProps/");
        xml_text(&xml, properties, &mut text).map_err(|e| format!("{name}: {e}"))?;
        text.push('\n');
        if text.len() > MAX_TEXT {
            break;
        }
    }
    Ok(AttachmentText::Text {
        format,
        text: capped(text),
    })
}

fn mimetype<R: Read + std::io::Seek>(archive: &mut zip::ZipArchive<R>) -> String {
    let mut s = String::new();
    if let Ok(f) = archive.by_name("mimetype") {
        let _ = f.take(200).read_to_string(&mut s);
    }
    s
}

/// `slide10.xml` after `slide9.xml`.
fn natural_key(name: &str) -> (&str, u64) {
    let base = name.strip_suffix(".xml").unwrap_or(name);
    let stem = base.trim_end_matches(|c: char| c.is_ascii_digit());
    (stem, base[stem.len()..].parse().unwrap_or(0))
}

/// The character data of an XML part, with paragraphs, line breaks, tabs and table cells
/// of WordprocessingML, DrawingML and OpenDocument turned into whitespace so that values
/// in neighbouring cells or paragraphs do not run together. In a properties part
/// (`properties`), every element is a line of its own. Whitespace that only indents the
/// markup is dropped; a space between two runs of text is kept.
fn xml_text(xml: &str, properties: bool, out: &mut String) -> Result<(), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Text(t) => {
                let t = t.xml10_content();
                if !(t.contains('\n') && t.trim().is_empty()) {
                    out.push_str(&t);
                }
            }
            Event::End(_) if properties => {
                let eol = if out.ends_with('\n') { "" } else { "\n" };
                out.push_str(eol);
            }
            Event::CData(t) => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    out.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_xml_entity(&r.xml10_content()) {
                    out.push_str(s);
                }
            }
            Event::Empty(e) => match e.local_name().as_ref() {
                "tab" | "s" => out.push('\t'),
                "br" | "cr" | "line-break" => out.push('\n'),
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "p" | "h" | "tr" => out.push('\n'),
                "tc" | "table-cell" => out.push('\t'),
                _ => {}
            },
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_parts_keep_paragraphs_apart_and_resolve_references() {
        let mut out = String::new();
        xml_text(
            r#"<w:document><w:body><w:p><w:r><w:t>SSN 219-45-</w:t></w:r><w:r><w:t>8873</w:t></w:r></w:p><w:p><w:r><w:t>A &amp; B&#32;C</w:t><w:tab/><w:t>D</w:t></w:r></w:p></w:body></w:document>"#,
            false,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, "SSN 219-45-8873\nA & B C\tD\n");
    }

    #[test]
    fn anything_else_is_unreadable_with_a_reason() {
        let r = attachment_text("image/jpeg", Some("scan.jpg"), &[0xFF, 0xD8, 0xFF, 0xE0]);
        assert!(
            matches!(&r, AttachmentText::Unreadable(why) if why.contains("image")),
            "{r:?}"
        );
        let sig = attachment_text("application/pgp-signature", None, b"-----BEGIN PGP");
        assert_eq!(sig.text(), Some(""), "a signature is no one's text");
        let r = attachment_text("application/pdf", Some("x.pdf"), b"%PDF-1.4 garbage");
        assert!(
            matches!(&r, AttachmentText::Unreadable(why) if why.starts_with("PDF")),
            "{r:?}"
        );
        let r = attachment_text("application/zip", Some("x.zip"), b"PK\x03\x04garbage");
        assert!(matches!(&r, AttachmentText::Unreadable(_)), "{r:?}");
        let r = attachment_text(
            "application/msword",
            Some("x.doc"),
            &[0xD0, 0xCF, 0x11, 0xE0, 0],
        );
        assert!(
            matches!(&r, AttachmentText::Unreadable(why) if why.contains("OLE")),
            "{r:?}"
        );
    }

    /// A one-page PDF whose page content is `content`, uncompressed, with Helvetica as F1.
    fn pdf_with_content(content: &str) -> Vec<u8> {
        let helvetica = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>";
        crate::pdf::tests::pdf(&[helvetica], &[("0 0 612 792", content)])
    }

    /// Text shown a line at a time with `'` and `"` is read as well as text shown with
    /// `Tj`: pdf-extract alone read none of it, and the PDF was unreadable.
    #[test]
    fn pdf_text_shown_with_next_line_operators_is_read() {
        let tj = pdf_with_content("BT /F1 11 Tf 72 740 Td 14 TL (Invoice for Jane Roe) Tj ET");
        let quote = pdf_with_content(
            "BT /F1 11 Tf 72 740 Td 14 TL (Invoice for Jane Roe) ' (SSN 219-45-8873) ' \
             2 1 (Paid in full) \" ET",
        );
        let text = |pdf: &[u8]| {
            attachment_text("application/pdf", Some("a.pdf"), pdf)
                .text()
                .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        };
        assert_eq!(text(&tj).as_deref(), Some("Invoice for Jane Roe"));
        let read = text(&quote).unwrap_or_default();
        // pdf-extract, which reads what trove's own reader leaves to it, is given the
        // operators spelled out.
        let doc = pdf_extract::Document::load_mem(&quote).expect("the test's PDF loads");
        let by_pdf_extract = by_pdf_extract(doc).unwrap_or_default();
        for line in ["Invoice for Jane Roe", "SSN 219-45-8873", "Paid in full"] {
            assert!(read.contains(line), "{line:?} not in {read:?}");
            assert!(
                by_pdf_extract.contains(line),
                "{line:?} not in {by_pdf_extract:?}"
            );
        }
    }

    #[test]
    fn slides_sort_by_number() {
        let mut v = vec!["ppt/slides/slide10.xml", "ppt/slides/slide9.xml"];
        v.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
        assert_eq!(v, ["ppt/slides/slide9.xml", "ppt/slides/slide10.xml"]);
    }
}
