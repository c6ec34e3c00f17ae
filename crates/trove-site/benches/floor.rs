//! The floor under ingest: how fast this machine can merely read a corpus, parse each
//! message with mail-parser and add it to a tantivy index with positions. Nothing trove
//! adds (charset detection, dedupe, DKIM, personal-data detectors, stored originals,
//! the catalogue, the published form, signatures) is done, so no real ingest can beat
//! this rate; the benchmark suite reports trove's rates against it.
//!
//!     TROVE_BENCH_MAIL=/path/to/maildir-or-mbox cargo bench -p trove-site --bench floor
//!
//! The index has the fields a search needs (from, to, subject, body as text with
//! positions; the date as a fast field) and is written into a temporary directory
//! (`TMPDIR`) by tantivy's writer with two threads, the machine's cores, while the main
//! thread parses. The last line is JSON for scripts: messages, seconds to read, seconds
//! to parse and index, and the rates.

use std::path::Path;
use std::time::Instant;

use mail_parser::MessageParser;
use tantivy::schema::{FAST, INDEXED, STORED, Schema, TEXT};
use tantivy::{Index, TantivyDocument};
use trove_mail::read::{ByteCounter, Event, read_path};

fn main() {
    let Ok(mail) = std::env::var("TROVE_BENCH_MAIL") else {
        eprintln!(
            "set TROVE_BENCH_MAIL (a Maildir, mbox or directory of mail); see the file's doc"
        );
        return;
    };
    let threads: usize = std::env::var("TROVE_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);

    let started = Instant::now();
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let counter = ByteCounter::default();
    let read = read_path(Path::new(&mail), &counter, &mut |event| {
        if let Event::Message { bytes, .. } = event {
            messages.push(bytes);
        }
    });
    if let Err(e) = read {
        eprintln!("{mail}: {e}");
        std::process::exit(1);
    }
    let read_s = started.elapsed().as_secs_f64();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    eprintln!(
        "read {} messages ({:.0} MB) in {read_s:.2} s",
        messages.len(),
        bytes as f64 / 1e6
    );

    let mut builder = Schema::builder();
    let from = builder.add_text_field("from", TEXT);
    let to = builder.add_text_field("to", TEXT);
    let subject = builder.add_text_field("subject", TEXT);
    let body = builder.add_text_field("body", TEXT);
    let date = builder.add_i64_field("date", INDEXED | FAST | STORED);
    let schema = builder.build();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let index = Index::create_in_dir(dir.path(), schema).expect("a new index");
    let mut writer = index
        .writer_with_num_threads(threads, threads * 100_000_000)
        .expect("an index writer");

    let started = Instant::now();
    let parser = MessageParser::default();
    let mut parsed = 0usize;
    for raw in &messages {
        let Some(m) = parser.parse(raw) else { continue };
        parsed += 1;
        let mut doc = TantivyDocument::default();
        let addresses = |a: Option<&mail_parser::Address>| {
            a.map(|a| {
                a.iter()
                    .map(|x| {
                        format!(
                            "{} {}",
                            x.name().unwrap_or_default(),
                            x.address().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
        };
        doc.add_text(from, addresses(m.from()));
        doc.add_text(to, addresses(m.to()));
        doc.add_text(subject, m.subject().unwrap_or_default());
        for i in 0..m.text_body_count() {
            if let Some(text) = m.body_text(i) {
                doc.add_text(body, text);
            }
        }
        doc.add_i64(date, m.date().map_or(0, |d| d.to_timestamp()));
        writer
            .add_document(doc)
            .expect("the writer accepts documents");
    }
    writer.commit().expect("the index commits");
    let index_s = started.elapsed().as_secs_f64();
    let n = messages.len() as f64;
    eprintln!(
        "parsed {parsed} and indexed them in {index_s:.2} s: {:.0} messages/s ({:.0} with reading)",
        n / index_s,
        n / (index_s + read_s)
    );
    println!(
        "{}",
        serde_json::json!({
            "messages": messages.len(),
            "bytes": bytes,
            "threads": threads,
            "read_s": read_s,
            "parse_index_s": index_s,
            "parse_index_per_s": n / index_s,
            "with_read_per_s": n / (index_s + read_s),
        })
    );
}
