//! Precision and recall of the personal-data detectors, measured two ways:
//!
//! - on a labelled sample of real mail from ../shared/corpus (the labels are in
//!   `tests/data/pii_labels.tsv`; how they were made is written at its top), and
//! - on planted values, valid and invalid, written into emails in every way mail carries
//!   text (plain, HTML, quoted-printable, base64, encoded-word subjects, attachments).
//!
//! Run with `--nocapture` to see the figures. The tests fail when a detector's precision
//! or recall falls below what was measured when the labels were made, or when a finding
//! appears in the sample that no label covers (the detectors changed: label it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use trove_mail::pii::Detector;
use trove_workspace::privacy::scan;

fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(rel)
}

/// Every email under a corpus folder, keyed `folder/file[@offset]`.
fn emails(rel: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let counter = trove_mail::read::ByteCounter::default();
    trove_mail::read::read_path(&corpus(rel), &counter, &mut |e| {
        if let trove_mail::read::Event::Message { origin, bytes } = e {
            let key = match origin.offset {
                Some(o) => format!("{rel}/{}@{o}", origin.file),
                None => format!("{rel}/{}", origin.file),
            };
            out.push((key, bytes));
        }
    })
    .unwrap();
    out.sort();
    out
}

/// The sample: one email in 40 of each corpus folder, by a hash of its key, so that it
/// does not depend on reading order.
fn in_sample(key: &str) -> bool {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())[0] % 40 == 0
}

/// Kinds measured on the sample; the rest are measured on the whole corpus.
const SAMPLED: &[&str] = &["phone", "address", "email"];

#[derive(Default)]
struct Counts {
    tp: u64,
    fp: u64,
    fn_: u64,
}

impl Counts {
    fn precision(&self) -> Option<f64> {
        let n = self.tp + self.fp;
        (n > 0).then(|| self.tp as f64 / n as f64)
    }
    fn recall(&self) -> Option<f64> {
        let n = self.tp + self.fn_;
        (n > 0).then(|| self.tp as f64 / n as f64)
    }
}

fn collapse(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn precision_and_recall_on_the_labelled_corpus_sample() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pii_labels.tsv"
    ))
    .unwrap();
    // (kind, key, value) -> label; key "*" labels a value wherever it appears.
    let mut labels: HashMap<(String, String, String), bool> = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "bad label line: {line}");
        labels.insert((f[0].into(), f[1].into(), f[2].into()), f[3] == "1");
    }
    let detector = Detector::new(&[], &[]).unwrap();
    let mut found: BTreeSet<(String, String, String)> = BTreeSet::new();
    let (mut corpus_size, mut sample_size) = (0, 0);
    for rel in ["enron", "lists"] {
        for (key, bytes) in emails(rel) {
            let sampled = in_sample(&key);
            corpus_size += 1;
            sample_size += sampled as u64;
            for f in scan(&trove_mail::parse_with_header_text(&bytes), &detector) {
                if RARE.contains(&f.kind.as_str())
                    || (sampled && SAMPLED.contains(&f.kind.as_str()))
                {
                    found.insert((f.kind, key.clone(), collapse(&f.value)));
                }
            }
        }
    }
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let mut unlabelled = Vec::new();
    for (kind, key, value) in &found {
        let label = labels
            .get(&(kind.clone(), key.clone(), value.clone()))
            .or_else(|| labels.get(&(kind.clone(), "*".into(), value.clone())))
            .copied()
            // An address is a person's unless labelled otherwise (see the labels file).
            .or((kind == "email").then_some(true));
        let c = counts.entry(kind.clone()).or_default();
        match label {
            Some(true) => c.tp += 1,
            Some(false) => c.fp += 1,
            None => unlabelled.push(format!("{kind}\t{key}\t{value}")),
        }
    }
    for ((kind, key, value), label) in &labels {
        if *label && key != "*" && !found.contains(&(kind.clone(), key.clone(), value.clone())) {
            counts.entry(kind.clone()).or_default().fn_ += 1;
        }
    }
    let addresses: BTreeSet<&String> = found
        .iter()
        .filter(|(kind, _, _)| kind == "email")
        .map(|(_, _, value)| value)
        .collect();
    println!(
        "{corpus_size} emails read, {sample_size} in the sample ({} distinct addresses found there)",
        addresses.len()
    );
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.1}%", x * 100.0));
    println!("kind        findings   true  false  missed  precision  recall");
    for (kind, c) in &counts {
        println!(
            "{kind:<10} {:>9} {:>6} {:>6} {:>7} {:>10} {:>7}",
            c.tp + c.fp,
            c.tp,
            c.fp,
            c.fn_,
            pct(c.precision()),
            pct(c.recall())
        );
    }
    assert!(
        unlabelled.is_empty(),
        "findings no label covers (the detectors changed: label them in tests/data/pii_labels.tsv):\n{}",
        unlabelled.join("\n")
    );
    // What was measured when the labels were made; a change that lowers one fails here.
    for (kind, precision, recall) in FLOORS {
        let c = &counts[*kind];
        assert!(
            c.precision().unwrap() >= *precision,
            "{kind} precision fell: {}",
            pct(c.precision())
        );
        assert!(
            c.recall().unwrap() >= *recall,
            "{kind} recall fell: {}",
            pct(c.recall())
        );
    }
}

/// (kind, precision, recall) as measured on the labels, rounded down.
const FLOORS: &[(&str, f64, f64)] = &[
    ("address", 1.0, 1.0),
    ("dob", 1.0, 1.0),
    ("email", 0.80, 1.0),
    ("password", 0.97, 0.93),
    ("phone", 1.0, 0.98),
    ("ssn", 1.0, 1.0),
];

/// A finding, with its surroundings, as a line to label.
fn print_finding(key: &str, f: &trove_workspace::privacy::PartFinding) {
    let value = f.value.replace(['\n', '\t'], " ");
    println!("F\t{key}\t{}\t{}\t{value}\t{}", f.part, f.kind, f.context);
}

/// A candidate the detectors did not report, with its surroundings, as a line to label.
fn print_candidate(key: &str, kind: &str, text: &str, m: regex::Match<'_>) {
    let a = text.floor_char_boundary(m.start().saturating_sub(40));
    let b = text.ceil_char_boundary((m.end() + 40).min(text.len()));
    println!(
        "C\t{key}\t{kind}\t{}\t{}",
        m.as_str().replace(['\n', '\t'], " "),
        text[a..b].split_whitespace().collect::<Vec<_>>().join(" ")
    );
}

/// Broad patterns that over-collect, to find what the detectors miss.
fn candidates() -> Vec<(&'static str, regex::Regex)> {
    [
        ("phone", r"(?:\+\d{1,3}[\s.\-]?)?\(?\d{3}\)?[\s.\-/]{0,2}\d{3}[\s.\-]{0,2}\d{4}\b|\b\d{3}[.\-]\d{4}\b"),
        ("ssn", r"\b\d{3}[\s\-]?\d{2}[\s\-]?\d{4}\b"),
        ("card", r"\b\d(?:[\s\-]?\d){12,18}\b"),
        ("address", r"\b\d{1,6}\s+(?:[NSEW]\.?\s+)?[A-Z][A-Za-z]+(?:\s+[A-Z][A-Za-z]+){0,3}\s+(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Boulevard|Dr|Drive|Ln|Lane|Way|Pkwy|Parkway|Ct|Court|Pl|Place|Circle|Cir|Hwy|Highway|Plaza|Square|Terrace|Trail)\b|(?i:P\.?\s?O\.?\s+Box\s+\d+)"),
        ("password", r"(?i:\b(?:password|passwd|pwd|passcode|pin|code)\b\s*(?:is|:|=)\s*\S+)"),
        ("dob", r"(?i:\b(?:born|birth|dob|birthday)\b.{0,30}\d)"),
    ]
    .into_iter()
    .map(|(k, r)| (k, regex::Regex::new(r).unwrap()))
    .collect()
}

#[test]
#[ignore = "prints the sample's findings and candidates, to label"]
fn dump_sample() {
    let detector = Detector::new(&[], &[]).unwrap();
    for rel in ["enron", "lists"] {
        for (key, bytes) in emails(rel).into_iter().filter(|(k, _)| in_sample(k)) {
            let parsed = trove_mail::parse_with_header_text(&bytes);
            let found = scan(&parsed, &detector);
            for f in &found {
                print_finding(&key, f);
            }
            let text = format!(
                "{}\n{}\n{}",
                parsed.subject.as_deref().unwrap_or_default(),
                parsed.text,
                parsed.html.as_deref().unwrap_or_default()
            );
            for (kind, re) in candidates() {
                for m in re.find_iter(&text) {
                    let v = m.as_str();
                    let digits: String = v.chars().filter(char::is_ascii_digit).collect();
                    if found.iter().any(|f| {
                        f.kind == kind
                            && (f.value.contains(v)
                                || v.contains(&f.value)
                                || f.value
                                    .chars()
                                    .filter(char::is_ascii_digit)
                                    .collect::<String>()
                                    == digits)
                    }) {
                        continue;
                    }
                    print_candidate(&key, kind, &text, m);
                }
            }
        }
    }
}

/// Kinds too rare in real mail for a sample: every finding in the corpus is labelled.
const RARE: &[&str] = &["ssn", "card", "iban", "passport", "dob", "password"];

#[test]
#[ignore = "prints the whole corpus's findings of the rare kinds, to label"]
fn dump_rare() {
    let detector = Detector::new(&[], &[]).unwrap();
    let broad: Vec<(&str, regex::Regex)> = [
        (
            "password",
            r"(?i)\b(?:password|passwd|pwd|passcode|pin|code)\b\W{0,3}(?:is\s+)?\S+",
        ),
        ("iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
        ("dob", r"(?i)\b(?:born|birth|dob|birthday|b\.)\b.{0,30}\d"),
        ("passport", r"(?i)\bpassport\b.{0,20}\d"),
        ("ssn", r"\b\d{3}-\d{2}-\d{4}\b"),
    ]
    .into_iter()
    .map(|(k, r)| (k, regex::Regex::new(r).unwrap()))
    .collect();
    for rel in ["enron", "lists"] {
        for (key, bytes) in emails(rel) {
            let parsed = trove_mail::parse_with_header_text(&bytes);
            let found = scan(&parsed, &detector);
            for f in found.iter().filter(|f| RARE.contains(&f.kind.as_str())) {
                print_finding(&key, f);
            }
            for (kind, re) in &broad {
                for m in re.find_iter(&parsed.text) {
                    if found
                        .iter()
                        .any(|f| f.kind == *kind && m.as_str().contains(&f.value))
                    {
                        continue;
                    }
                    print_candidate(&key, kind, &parsed.text, m);
                }
            }
        }
    }
}

/// A small deterministic generator (xorshift), so that the planted set is the same on
/// every run without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// The Luhn check digit that completes `body`, computed here, apart from the detectors.
fn luhn_digit(body: &str) -> u32 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = (b - b'0') as u32;
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// An IBAN's check digits, by ISO 13616's mod-97, computed here.
fn iban_check(country: &str, bban: &str) -> u32 {
    let s = format!("{bban}{country}00");
    let mut r = 0u32;
    for c in s.chars() {
        let v = c.to_digit(36).unwrap();
        for d in v.to_string().chars() {
            r = (r * 10 + d.to_digit(10).unwrap()) % 97;
        }
    }
    98 - r
}

/// One planted value: its kind, whether it is valid (and so must be found), as written.
fn planted_values(rng: &mut Rng, per_kind: usize) -> Vec<(&'static str, bool, String)> {
    let mut out = Vec::new();
    for i in 0..per_kind {
        let valid = i % 2 == 0;
        // SSN: the SSA never issues area 000, 666 or 900-999, group 00 or serial 0000.
        let (area, group, serial) = if valid {
            let mut area = 1 + rng.below(899);
            if area == 666 {
                area = 667;
            }
            (area, 1 + rng.below(99), 1 + rng.below(9999))
        } else {
            match rng.below(4) {
                0 => (0, 1 + rng.below(99), 1 + rng.below(9999)),
                1 => (666, 1 + rng.below(99), 1 + rng.below(9999)),
                2 => (900 + rng.below(100), 1 + rng.below(99), 1 + rng.below(9999)),
                _ => (1 + rng.below(665), 0, 1 + rng.below(9999)),
            }
        };
        let sep = ["-", " "][rng.below(2) as usize];
        out.push((
            "ssn",
            valid,
            format!("{area:03}{sep}{group:02}{sep}{serial:04}"),
        ));
        // Cards: a network prefix and length, the Luhn digit right or off by one.
        let (prefix, len) =
            [("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)][rng.below(5) as usize];
        let body = format!("{prefix}{}", rng.digits(len - prefix.len() - 1));
        let check = (luhn_digit(&body) + if valid { 0 } else { 1 + rng.below(9) as u32 }) % 10;
        let number = format!("{body}{check}");
        let written = if len == 16 && rng.below(2) == 0 {
            let sep = ["-", " "][rng.below(2) as usize];
            number
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(sep)
        } else {
            number
        };
        out.push(("card", valid, written));
        // IBANs: Germany (18 digits), Great Britain (4 letters, 14 digits), the check
        // right or wrong.
        let (country, bban) = if rng.below(2) == 0 {
            ("DE", rng.digits(18))
        } else {
            let bank: String = (0..4)
                .map(|_| char::from(b'A' + rng.below(26) as u8))
                .collect();
            ("GB", format!("{bank}{}", rng.digits(14)))
        };
        let check = iban_check(country, &bban);
        let check = if valid {
            check
        } else {
            (check + 1 + rng.below(90) as u32 - 2) % 97 + 2
        };
        let iban = format!("{country}{check:02}{bban}");
        let written = if rng.below(2) == 0 {
            iban.as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            iban
        };
        out.push(("iban", valid, written));
    }
    out
}

/// The ways mail carries text, each writing one sentence into a whole email.
const CARRIERS: &[&str] = &[
    "text",
    "html",
    "quoted-printable",
    "base64",
    "subject",
    "attachment",
];

fn email_with(carrier: &str, sentence: &str) -> Vec<u8> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let head = "From: a@example.org\nTo: b@example.org\nDate: Mon, 1 Jan 2001 10:00:00 +0000\nMIME-Version: 1.0\n";
    let mail = match carrier {
        "text" => format!("{head}Subject: x\nContent-Type: text/plain\n\n{sentence}\n"),
        "html" => {
            // The value's first character set apart by markup.
            let (a, b) =
                sentence.split_at(sentence.find(|c: char| c.is_ascii_digit()).unwrap_or(0));
            format!("{head}Subject: x\nContent-Type: text/html\n\n<p>{a}<b>{b}</b></p>\n")
        }
        "quoted-printable" => {
            // A soft line break in the middle of the sentence.
            let mid = sentence.len() / 2;
            format!(
                "{head}Subject: x\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n{}=\n{}\n",
                &sentence[..mid],
                &sentence[mid..]
            )
        }
        "base64" => format!(
            "{head}Subject: x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n{}\n",
            b64(sentence)
        ),
        "subject" => format!(
            "{head}Subject: =?utf-8?b?{}?=\nContent-Type: text/plain\n\nsee subject\n",
            b64(sentence)
        ),
        "attachment" => format!(
            "{head}Subject: x\nContent-Type: multipart/mixed; boundary=\"z\"\n\n--z\nContent-Type: text/plain\n\nattached\n--z\nContent-Type: text/csv; name=\"f.csv\"\nContent-Disposition: attachment; filename=\"f.csv\"\nContent-Transfer-Encoding: base64\n\n{}\n--z--\n",
            b64(sentence)
        ),
        _ => unreachable!(),
    };
    mail.into_bytes()
}

#[test]
fn planted_values_are_found_when_valid_and_left_when_not() {
    let detector = Detector::new(&[], &[]).unwrap();
    let mut rng = Rng(0x7e57_c0de_5eed_1234);
    let values = planted_values(&mut rng, 100);
    // Every value in every carrier. (kind, carrier) -> [valid found, valid planted,
    // invalid found, invalid planted].
    let mut tally: BTreeMap<(&str, &str), [u32; 4]> = BTreeMap::new();
    for ((kind, valid, written), carrier) in values
        .iter()
        .flat_map(|v| CARRIERS.iter().map(move |c| (v, *c)))
    {
        let sentence = match *kind {
            "ssn" => format!("Applicant SSN {written} on file."),
            "card" => format!("Card {written} exp 04/27."),
            _ => format!("Pay to IBAN {written} today."),
        };
        let digits = |s: &str| {
            s.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        };
        let hit = scan(
            &trove_mail::parse_with_header_text(&email_with(carrier, &sentence)),
            &detector,
        )
        .iter()
        .any(|f| f.kind == *kind && digits(&f.value) == digits(written));
        let t = tally.entry((kind, carrier)).or_default();
        let i = if *valid { 0 } else { 2 };
        t[i] += hit as u32;
        t[i + 1] += 1;
    }
    println!("kind  carrier           valid found  invalid taken");
    let mut missed = Vec::new();
    for ((kind, carrier), [vf, vn, ivf, ivn]) in &tally {
        println!("{kind:<5} {carrier:<17} {vf:>5}/{vn:<5} {ivf:>6}/{ivn}");
        if vf < vn || *ivf > 0 {
            missed.push(format!(
                "{kind} in {carrier}: {vf}/{vn} valid found, {ivf}/{ivn} invalid taken"
            ));
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}
