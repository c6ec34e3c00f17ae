//! Cost of DKIM verification per message, beside the cost of parsing the same message.
//! Run: `cargo bench -p trove-mail --bench dkim`. Reads ../shared/corpus/dkim.

use std::hint::black_box;
use std::path::PathBuf;

use trove_mail::dkim::{KeyStore, verify};

mod common;
use common::per_call;

fn main() {
    let dkim = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/dkim");
    let keys_text = std::fs::read_to_string(dkim.join("jstedfast-MimeKit-dkim/dns-records.txt"))
        .expect("shared corpus");
    let (keys, _) = KeyStore::parse_archive(&keys_text, "dns-records.txt");
    println!(
        "{:<48} {:>12} {:>12} {:>8}",
        "message", "parse", "dkim verify", "sigs"
    );
    for (name, file) in [
        ("gmail.msg (rsa-sha256, 2048-bit)", "gmail.msg"),
        ("related.msg (214 KB, rsa-sha256, 2048-bit)", "related.msg"),
        (
            "rfc8463-example.msg (ed25519 + rsa 1024)",
            "rfc8463-example.msg",
        ),
    ] {
        let raw = std::fs::read(
            dkim.join("jstedfast-MimeKit-dkim/UnitTests/TestData/dkim")
                .join(file),
        )
        .unwrap();
        let date = trove_mail::parse(&raw).date.map(|d| d.timestamp);
        let sigs = verify(&raw, &keys, date);
        assert!(
            sigs.iter()
                .all(|s| s.verdict == trove_mail::dkim::Verdict::Pass),
            "{name}"
        );
        let parse = per_call(|| {
            black_box(trove_mail::parse(black_box(&raw)));
        });
        let check = per_call(|| {
            black_box(verify(black_box(&raw), &keys, date));
        });
        println!(
            "{name:<48} {:>10.1}µs {:>10.1}µs {:>8}",
            parse.as_secs_f64() * 1e6,
            check.as_secs_f64() * 1e6,
            sigs.len()
        );
    }
}
