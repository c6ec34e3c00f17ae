//! What DKIM verification costs inside ingest: per email, and as a share of the ingest.
//! Run: `cargo bench -p trove-workspace --bench ingest_dkim` (reads ../shared/corpus).
//!
//! The lists corpus is the signed mail (most of linux-serial and usrp-users carry one or
//! more signatures); Enron is the unsigned case. Its signers' keys are not available
//! offline, so every signature is checked against one stand-in RSA-2048 key: verification
//! then does all its work (canonicalisation, body hash, RSA) and fails only at the last
//! step, which costs the same as a pass. Two measurements of the same cost:
//! 1. the stage timers of the run with keys (core time in DKIM and ARC per email, and its
//!    share of all per-email work), and
//! 2. the wall time of the same ingest with no keys at all, where verification stops at
//!    the key lookup, before any hashing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use trove_workspace::{IngestStats, Progress, Workspace};

struct Quiet;

impl Progress for Quiet {
    fn update(&self, _: &IngestStats) {}
    fn warn(&self, _: &str) {}
}

const RUNS: usize = 5;

fn ingest(paths: &[&Path], keys: Option<&Path>) -> IngestStats {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut ws = Workspace::init(&tmp.path().join("ws")).expect("init");
    if let Some(keys) = keys {
        ws.import_keys(keys).expect("keys");
    }
    ws.ingest(paths, &Quiet).expect("ingest")
}

/// The run with the median wall time of `RUNS`.
fn median(paths: &[&Path], keys: Option<&Path>) -> IngestStats {
    let mut runs: Vec<IngestStats> = (0..RUNS).map(|_| ingest(paths, keys)).collect();
    runs.sort_by_key(|s| s.elapsed);
    runs.swap_remove(RUNS / 2)
}

/// The TXT record of `name` in a key archive of the shared corpus.
fn record(corpus: &Path, archive: &str, name: &str) -> String {
    std::fs::read_to_string(corpus.join("dkim").join(archive))
        .expect("shared corpus")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
        .expect("key in archive")
}

/// `(selector._domainkey.domain, signature bytes)` of each DKIM-Signature of `raw`.
fn signatures(raw: &[u8]) -> Vec<(String, usize)> {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let head = text.split("\n\n").next().unwrap_or_default();
    let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
    let mut out = Vec::new();
    for line in unfolded.lines() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        if !field.eq_ignore_ascii_case("dkim-signature") {
            continue;
        }
        let tag = |t: &str| {
            value.split(';').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == t).then(|| v.split_whitespace().collect::<String>())
            })
        };
        let (d, s, b) = (tag("d"), tag("s"), tag("b").unwrap_or_default());
        if let (Some(d), Some(s)) = (d, s) {
            out.push((
                format!("{s}._domainkey.{d}").to_ascii_lowercase(),
                b.len() / 4 * 3,
            ));
        }
    }
    out
}

/// A stand-in key for every signer of the lists corpus, of the size its signatures were
/// made with (RSA checks a signature's length against the key's before any arithmetic).
fn stand_in_keys(corpus: &Path, lists: &[PathBuf], out: &Path) {
    let rsa2048 = record(
        corpus,
        "jstedfast-MimeKit-dkim/dns-records.txt",
        "20120113._domainkey.gmail.com",
    );
    let rsa1024 = record(
        corpus,
        "dkimpy-1.1.8/dns-records.txt",
        "test._domainkey.football.example.com",
    );
    let mut names = std::collections::BTreeMap::new();
    for mbox in lists {
        let file = std::fs::File::open(mbox).expect("lists corpus");
        for m in trove_mail::mbox::MboxReader::new(std::io::BufReader::new(file)) {
            for (name, bytes) in signatures(&m.expect("mbox").bytes) {
                names.insert(name, if bytes <= 128 { &rsa1024 } else { &rsa2048 });
            }
        }
    }
    let text: String = names.iter().map(|(n, k)| format!("{n} {k}\n")).collect();
    std::fs::write(out, text).expect("write keys");
}

fn micros(ns: u64, n: u64) -> f64 {
    ns as f64 / 1000.0 / n.max(1) as f64
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let lists = [
        corpus.join("lists/linux-serial-first3000.mbox"),
        corpus.join("lists/usrp-users-first300.mbox"),
    ];
    let tmp = tempfile::tempdir().expect("temp dir");
    let keys = tmp.path().join("stand-in.keys");
    stand_in_keys(&corpus, &lists, &keys);
    let enron = [
        corpus.join("enron/allen-p"),
        corpus.join("enron/lay-k"),
        corpus.join("enron/stokley-c"),
    ];
    println!(
        "threads: {}; median of {RUNS} runs each\n",
        rayon::current_num_threads()
    );
    println!(
        "{:<34} {:>6} {:>8} {:>9} | core µs per email: {:>6} {:>6} {:>6} {:>6} | {:>10} {:>14}",
        "corpus",
        "emails",
        "wall s",
        "emails/s",
        "store",
        "parse",
        "DKIM",
        "detect",
        "DKIM share",
        "wall w/o keys"
    );
    for (name, paths) in [
        (
            "lists (signed, stand-in keys)",
            lists.iter().collect::<Vec<_>>(),
        ),
        ("enron 3 mailboxes (unsigned)", enron.iter().collect()),
    ] {
        let paths: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
        let with = median(&paths, Some(&keys));
        let without = median(&paths, None);
        let n = with.messages_new;
        let st = &with.stages;
        let work = st.store_ns + st.parse_ns + st.authenticate_ns + st.detect_ns;
        println!(
            "{:<34} {:>6} {:>8.3} {:>9.0} | {:>25.1} {:>6.1} {:>6.1} {:>6.1} | {:>9.1}% {:>9.3} ({:+.1}%)",
            name,
            n,
            secs(with.elapsed),
            n as f64 / secs(with.elapsed),
            micros(st.store_ns, n),
            micros(st.parse_ns, n),
            micros(st.authenticate_ns, n),
            micros(st.detect_ns, n),
            100.0 * st.authenticate_ns as f64 / work.max(1) as f64,
            secs(without.elapsed),
            100.0 * (secs(with.elapsed) - secs(without.elapsed)) / secs(without.elapsed),
        );
    }
    println!(
        "\nDKIM share: DKIM+ARC core time over all per-email core time (store + parse + DKIM + detect).\n\
         wall w/o keys: the same ingest with no keys (verification stops at the key lookup);\n\
         the percentage is how much longer the run with full verification took."
    );
}
