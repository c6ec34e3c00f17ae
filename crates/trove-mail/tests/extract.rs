//! Text extraction from real documents, made by the producers named in
//! `tests/data/attachments/make.py`, and the detectors run over what it reads.

use trove_mail::extract::{AttachmentText, attachment_text};
use trove_mail::pii::Detector;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/attachments/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Each fixture, the type it is mailed as, the format trove should read it as, and the
/// planted values with the kind the detectors must give them.
/// (file, mailed as, read as, [(kind, value)])
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const CASES: &[Case] = &[
    (
        "chromium.pdf",
        "application/pdf",
        "pdf",
        &[("ssn", "534-27-1986"), ("card", "4556 7375 8611 2341")],
    ),
    (
        "reportlab.pdf",
        "application/octet-stream",
        "pdf",
        &[
            ("iban", "DE44 5001 0517 5407 3249 31"),
            ("ssn", "245-61-0937"),
        ],
    ),
    (
        "form.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
        &[
            ("ssn", "318-52-6604"),
            ("card", "5400 1122 3344 5566"),
            ("password", "Quill-Harbor-58"),
            ("passport", "X4729185"),
        ],
    ),
    (
        "deck.pptx",
        "application/octet-stream",
        "pptx",
        &[("ssn", "287-39-5514"), ("card", "4556 9876 5432 1015")],
    ),
    (
        "donors.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "spreadsheet",
        &[
            ("ssn", "401-86-2275"),
            ("card", "6011007766554439"),
            ("iban", "NL91ABNA0417164300"),
        ],
    ),
    (
        "letter.odt",
        "application/vnd.oasis.opendocument.text",
        "odt",
        &[
            ("ssn", "152-84-3307"),
            ("iban", "FR76 3000 6000 0112 3456 7890 189"),
        ],
    ),
    (
        "payroll.ods",
        "application/vnd.oasis.opendocument.spreadsheet",
        "spreadsheet",
        &[("ssn", "463-20-8851")],
    ),
];

#[test]
fn planted_values_are_read_from_every_document_format_and_detected() {
    let detector = Detector::new(&[], &[]).unwrap();
    for (name, content_type, format, planted) in CASES {
        let read = attachment_text(content_type, Some(name), &fixture(name));
        let AttachmentText::Text { format: got, text } = &read else {
            panic!("{name}: {read:?}");
        };
        assert_eq!(got, format, "{name}");
        let findings = detector.scan(text);
        for (kind, value) in *planted {
            assert!(
                findings
                    .iter()
                    .any(|f| f.kind == *kind && text[f.start..f.end] == **value),
                "{name}: {kind} {value} not found in {text:?}: {findings:?}"
            );
        }
    }
}

#[test]
fn document_properties_are_read_too() {
    let read = attachment_text(
        "application/octet-stream",
        Some("form.docx"),
        &fixture("form.docx"),
    );
    let text = read.text().unwrap();
    assert!(
        text.lines().any(|l| l == "Oriane Bellweather"),
        "the author is a line of its own: {text:?}"
    );
    assert!(!text.contains("\n  "), "indentation is dropped: {text:?}");
    // A spreadsheet: a sheet's name, then a row to a line.
    let read = attachment_text("", Some("donors.xlsx"), &fixture("donors.xlsx"));
    assert_eq!(
        read.text().unwrap(),
        "Donors\nName\tSSN\tCard\tIBAN\nPerpetua Ashdown\t401-86-2275\t6011007766554439\tNL91ABNA0417164300\n"
    );
}

#[test]
fn a_damaged_document_is_unreadable_with_its_reason_never_a_panic() {
    for (name, _, _, _) in CASES {
        let bytes = fixture(name);
        // Cut short, and with its middle overwritten: every parser must still return.
        for damaged in [
            bytes[..bytes.len() / 2].to_vec(),
            bytes
                .iter()
                .enumerate()
                .map(|(i, b)| if (i / 97) % 3 == 1 { b ^ 0x5A } else { *b })
                .collect(),
        ] {
            if let AttachmentText::Unreadable(why) = attachment_text("", Some(name), &damaged) {
                assert!(
                    why.contains("could not be read") || why.contains("no text"),
                    "{name}: {why}"
                );
            }
        }
    }
}
