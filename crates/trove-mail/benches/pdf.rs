//! Cost of reading a PDF attachment's text: trove's reader for simple fonts (`pdf.rs`),
//! through `extract::attachment_text` as ingest calls it, beside pdf-extract alone.
//! Run: `cargo bench -p trove-mail --bench pdf`. Reads the crate's test PDFs, and builds a
//! one-page letter like the benchmark corpus's (Helvetica, a line at a time, deflated;
//! with `Tj` and `T*`, which pdf-extract shows, where the corpus uses `'`).

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;

use pdf_extract::{Dictionary, Document, Object, Stream};
use trove_mail::extract::attachment_text;

mod common;
use common::per_call;

/// A page of 40 lines of 60 characters, deflated.
fn letter() -> Vec<u8> {
    let mut content = String::from("BT /F1 11 Tf 72 740 Td 14 TL\n");
    for line in 0..40 {
        content +=
            &format!("(Line {line:02}: the invoice for account 4417 is due on 1 May) Tj T*\n");
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(content.as_bytes()).expect("in memory");
    let mut filter = Dictionary::new();
    filter.set("Filter", Object::Name(b"FlateDecode".to_vec()));
    let dict = |pairs: Vec<(&str, Object)>| {
        let mut d = Dictionary::new();
        for (k, v) in pairs {
            d.set(k, v);
        }
        Object::Dictionary(d)
    };
    let name = |n: &str| Object::Name(n.as_bytes().to_vec());
    let mut doc = Document::with_version("1.4");
    let pages = doc.new_object_id();
    let font = doc.add_object(dict(vec![
        ("Type", name("Font")),
        ("Subtype", name("Type1")),
        ("BaseFont", name("Helvetica")),
    ]));
    let stream = doc.add_object(Stream::new(filter, z.finish().expect("in memory")));
    let page = doc.add_object(dict(vec![
        ("Type", name("Page")),
        ("Parent", Object::Reference(pages)),
        (
            "MediaBox",
            vec![0.into(), 0.into(), 612.into(), 792.into()].into(),
        ),
        ("Contents", Object::Reference(stream)),
        (
            "Resources",
            dict(vec![("Font", dict(vec![("F1", Object::Reference(font))]))]),
        ),
    ]));
    doc.objects.insert(
        pages,
        dict(vec![
            ("Type", name("Pages")),
            ("Kids", vec![Object::Reference(page)].into()),
            ("Count", 1.into()),
        ]),
    );
    let catalog = doc.add_object(dict(vec![
        ("Type", name("Catalog")),
        ("Pages", Object::Reference(pages)),
    ]));
    doc.trailer.set("Root", Object::Reference(catalog));
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("in memory");
    out
}

fn main() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/attachments");
    let mut pdfs = vec![("letter, Helvetica (built here)".to_string(), letter())];
    for name in ["reportlab.pdf", "chromium.pdf"] {
        pdfs.push((
            name.to_string(),
            std::fs::read(data.join(name)).expect("test PDF"),
        ));
    }
    println!(
        "{:<34} {:>8} {:>14} {:>14} {:>7}",
        "PDF", "bytes", "trove", "pdf-extract", "ratio"
    );
    for (name, bytes) in &pdfs {
        let ours = per_call(|| {
            black_box(attachment_text(
                "application/pdf",
                Some("a.pdf"),
                black_box(bytes),
            ));
        });
        let theirs = per_call(|| {
            black_box(pdf_extract::extract_text_from_mem(black_box(bytes)).ok());
        });
        println!(
            "{name:<34} {:>8} {:>11.1} µs {:>11.1} µs {:>6.1}×",
            bytes.len(),
            ours.as_secs_f64() * 1e6,
            theirs.as_secs_f64() * 1e6,
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
    }
}
