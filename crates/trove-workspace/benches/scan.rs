//! What the personal-data scan costs per email, by piece, on one thread: the parse it
//! starts from, the detectors on the email's own text (subject, people, header section,
//! body, HTML), and the attachments' text (PDF and office documents read, then scanned).
//!
//! Run: `cargo bench -p trove-workspace --bench scan [MAILDIR] [N]`: the first N files
//! (default 4,000) under MAILDIR (default ../shared/corpus/enron), read into memory
//! first. The suite's corpus (`../shared/bench/gen_corpus.py`) is the one ingest's
//! figures in BENCHMARKS.md come from; Enron has no attachments.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use trove_mail::Parsed;
use trove_workspace::privacy::{self, DEFAULT_POLICY, Policy};

const ROUNDS: usize = 5;

/// The fastest of `ROUNDS` passes of `f` over every email, per email.
fn per_email<T>(emails: &[T], mut f: impl FnMut(&T)) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for e in emails {
                f(e);
            }
            start.elapsed() / emails.len() as u32
        })
        .min()
        .expect("rounds")
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let root = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/enron")
    });
    let n: usize = args
        .next()
        .map_or(4000, |s| s.parse().expect("N is a number"));
    let raws: Vec<Vec<u8>> = walkdir::WalkDir::new(&root)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .take(n)
        .map(|e| std::fs::read(e.path()).expect("readable mail"))
        .collect();
    assert!(!raws.is_empty(), "no files under {}", root.display());
    let policy = Policy::parse(DEFAULT_POLICY).expect("default policy");
    let detector = &policy.detector;

    let parse = per_email(&raws, |r| {
        black_box(trove_mail::parse_with_header_text(r));
    });
    let emails: Vec<Parsed> = raws
        .iter()
        .map(|r| trove_mail::parse_with_header_text(r))
        .collect();
    let own_text = per_email(&emails, |p| {
        black_box(privacy::scan_own_text(p, detector));
    });
    let whole = per_email(&emails, |p| {
        black_box(privacy::scan(p, detector));
    });
    let attachments: usize = emails.iter().map(|p| p.attachments.len()).sum();
    // What was found, so that a change made for speed shows it finds the same.
    let mut found = 0;
    let mut digest = Sha256::new();
    for p in &emails {
        for f in privacy::scan(p, detector) {
            found += 1;
            digest.update(format!(
                "{} {} {} {} {}\n",
                f.part, f.kind, f.start, f.end, f.value
            ));
        }
    }
    println!(
        "{} emails from {} ({attachments} attachments), one thread, fastest of {ROUNDS} passes",
        emails.len(),
        root.display()
    );
    println!(
        "{found} findings, SHA-256 {}",
        hex::encode(&digest.finalize()[..8])
    );
    println!("{:<52} {:>10}", "per email", "µs");
    println!(
        "{:<52} {:>10.1}",
        "parse (with the header text)",
        micros(parse)
    );
    println!(
        "{:<52} {:>10.1}",
        "detectors on the email's own text",
        micros(own_text)
    );
    println!(
        "{:<52} {:>10.1}",
        "whole scan (own text, attachments read and scanned)",
        micros(whole)
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
