//! Every vector of ../shared/corpus/dkim/VECTORS.md, with the verdict its origin project
//! (and dkimpy) expects, plus the negative cases derived from them.

use std::path::PathBuf;

use trove_mail::dkim::{Failure, KeyStore, SignatureVerdict, Verdict, verify};

fn dkim(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/dkim")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dkim(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn archive(rel: &str) -> KeyStore {
    let text = String::from_utf8(read(rel)).unwrap();
    KeyStore::parse_archive(&text, rel).0
}

/// A store of one record: `name` holding the bare key record in file `rel`.
fn record_file(name: &str, rel: &str) -> KeyStore {
    let record = String::from_utf8(read(rel)).unwrap();
    KeyStore::parse_archive(&format!("{name} {}", record.trim()), rel).0
}

/// stalwart's vectors: key records (`name value` lines), a blank line, then the message.
fn stalwart(rel: &str) -> (KeyStore, Vec<u8>) {
    let bytes = read(rel);
    let split = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("records, blank line, message");
    let records = String::from_utf8(bytes[..split].to_vec()).unwrap();
    (
        KeyStore::parse_archive(&records, rel).0,
        bytes[split + 2..].to_vec(),
    )
}

fn date(raw: &[u8]) -> Option<i64> {
    trove_mail::parse(raw).date.map(|d| d.timestamp)
}

fn check(raw: &[u8], keys: &KeyStore) -> Vec<SignatureVerdict> {
    verify(raw, keys, date(raw))
}

fn names(v: &[SignatureVerdict]) -> Vec<&'static str> {
    v.iter().map(|s| s.verdict.name()).collect()
}

#[test]
fn stalwart_vectors_1_to_6() {
    for (file, expected) in [
        (
            "stalwartlabs-mail-auth/resources/dkim/001.txt",
            vec!["pass", "pass"],
        ),
        (
            "stalwartlabs-mail-auth/resources/dkim/002.txt",
            vec!["pass"],
        ),
        (
            "stalwartlabs-mail-auth/resources/dkim/003.txt",
            vec!["pass", "pass"],
        ),
        (
            "stalwartlabs-mail-auth/resources/dkim/004.txt",
            vec!["pass"],
        ),
        // x= is 2022-11-08, a day after the message's Date: it passes at its own date.
        (
            "stalwartlabs-mail-auth/resources/dkim/005.txt",
            vec!["pass"],
        ),
        (
            "stalwartlabs-mail-auth/resources/dkim/006.txt",
            vec!["pass"],
        ),
    ] {
        let (keys, raw) = stalwart(file);
        let got = check(&raw, &keys);
        assert_eq!(names(&got), expected, "{file}: {got:#?}");
    }
}

#[test]
fn expired_vector_fails_after_its_x_but_passes_at_its_date() {
    let (keys, raw) = stalwart("stalwartlabs-mail-auth/resources/dkim/005.txt");
    let at_own_date = check(&raw, &keys);
    assert_eq!(at_own_date[0].verdict, Verdict::Pass);
    let x = at_own_date[0].expires.expect("005 has x=");
    let later = verify(&raw, &keys, Some(x + 1));
    assert!(
        matches!(later[0].verdict, Verdict::Fail(Failure::Expired { .. })),
        "{later:?}"
    );
}

#[test]
fn arc_vectors_dkim_signatures() {
    // 7: the stalw.art signature was added over a body that had since changed.
    let (keys, raw) = stalwart("stalwartlabs-mail-auth/resources/arc/001.txt");
    let got = check(&raw, &keys);
    assert_eq!(names(&got), ["pass", "pass", "fail"], "{got:#?}");
    assert_eq!(got[2].verdict, Verdict::Fail(Failure::BodyHashMismatch));
    // 8
    let (keys, raw) = stalwart("stalwartlabs-mail-auth/resources/arc/002.txt");
    let got = check(&raw, &keys);
    assert_eq!(names(&got), ["pass"], "{got:#?}");
}

#[test]
fn dkimpy_vectors_10_to_16() {
    let keys = archive("dkimpy-1.1.8/dns-records.txt");
    // 10: real Gmail, degenerate folding.
    let got = check(&read("dkimpy-1.1.8/data/test2.message"), &keys);
    assert_eq!(names(&got), ["pass"], "{got:#?}");
    assert_eq!(got[0].key_bits, Some(2048));
    // 11: ed25519 + rsa, simple/simple.
    let got = check(&read("dkimpy-1.1.8/data/rfc6376.signed.msg"), &keys);
    assert_eq!(names(&got), ["pass", "pass"], "{got:#?}");
    assert_eq!(got[0].algorithm, "ed25519-sha256");
    // 12: passes with the right key, not with the corrupted one.
    let raw = read("dkimpy-1.1.8/data/rfc6376.signed.rsa.msg");
    assert_eq!(names(&check(&raw, &keys)), ["pass"]);
    let text = String::from_utf8(read("dkimpy-1.1.8/dns-records.txt")).unwrap();
    let corrupted = text
        .lines()
        .find_map(|l| l.strip_prefix("test._domainkey.football.example.com#corrupted "))
        .unwrap();
    let (bad_keys, _) = KeyStore::parse_archive(
        &format!("test._domainkey.football.example.com {corrupted}"),
        "corrupted",
    );
    let got = check(&raw, &bad_keys);
    assert_ne!(got[0].verdict, Verdict::Pass, "{got:?}");
    assert!(
        matches!(
            got[0].verdict,
            Verdict::KeyInvalid(_) | Verdict::Fail(Failure::SignatureMismatch)
        ),
        "{got:?}"
    );
    // 13: no t= tag; dkimpy: won't verify, but don't crash.
    let got = check(&read("dkimpy-1.1.8/data/rfc6376.signed.no_t.msg"), &keys);
    assert_eq!(names(&got), ["fail"], "{got:#?}");
    // 14: Exim's ed25519 prototype.
    let exim_keys = record_file("sed._domainkey.test.ex", "dkimpy-1.1.8/data/eximtest.dns");
    let got = check(&read("dkimpy-1.1.8/data/ed25519test2.msg"), &exim_keys);
    assert_eq!(names(&got), ["pass"], "{got:#?}");
    // 15: d= is not a domain.
    let k15 = record_file("test._domainkey.example.com", "dkimpy-1.1.8/data/test.txt");
    let got = check(&read("dkimpy-1.1.8/data/test.message.baddomain"), &k15);
    assert!(
        matches!(&got[0].verdict, Verdict::Fail(Failure::Malformed(why)) if why.contains("d=")),
        "{got:#?}"
    );
    // 16: the kitterman.com key is not available.
    let got = check(&read("dkimpy-1.1.8/data/message.mbox"), &keys);
    assert!(
        got.iter().all(|v| v.verdict == Verdict::KeyNotFound),
        "{got:#?}"
    );
}

#[test]
fn mimekit_vectors_17_to_20() {
    let keys = archive("jstedfast-MimeKit-dkim/dns-records.txt");
    for file in ["gmail.msg", "related.msg", "multipart-no-end-boundary.msg"] {
        let got = check(
            &read(&format!(
                "jstedfast-MimeKit-dkim/UnitTests/TestData/dkim/{file}"
            )),
            &keys,
        );
        assert_eq!(names(&got), ["pass"], "{file}: {got:#?}");
    }
    let got = check(
        &read("jstedfast-MimeKit-dkim/UnitTests/TestData/dkim/rfc8463-example.msg"),
        &keys,
    );
    assert_eq!(names(&got), ["pass", "pass"], "{got:#?}");
}

#[test]
fn a_changed_body_byte_or_header_of_a_real_message_fails_for_that_reason() {
    let keys = archive("jstedfast-MimeKit-dkim/dns-records.txt");
    let raw = read("jstedfast-MimeKit-dkim/UnitTests/TestData/dkim/gmail.msg");
    assert_eq!(check(&raw, &keys)[0].verdict, Verdict::Pass);
    let body_at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n" || w.starts_with(b"\n\n"))
        .unwrap()
        + 4;
    let mut body_changed = raw.clone();
    let i = body_at + (raw.len() - body_at) / 2;
    body_changed[i] = if body_changed[i] == b'a' { b'b' } else { b'a' };
    assert_eq!(
        check(&body_changed, &keys)[0].verdict,
        Verdict::Fail(Failure::BodyHashMismatch)
    );
    let text = String::from_utf8_lossy(&raw).into_owned();
    let subject_at = text.find("\nSubject: ").expect("a Subject header") + "\nSubject: ".len();
    let mut header_changed = raw.clone();
    header_changed[subject_at] ^= 0x20; // flip the case of its first letter
    assert_eq!(
        check(&header_changed, &keys)[0].verdict,
        Verdict::Fail(Failure::SignatureMismatch)
    );
}

#[test]
fn unsigned_mail_has_no_verdicts_and_missing_keys_are_said() {
    let keys = KeyStore::default();
    assert!(verify(b"From: a@b\r\nSubject: x\r\n\r\nhi\r\n", &keys, None).is_empty());
    let got = check(
        &read("jstedfast-MimeKit-dkim/UnitTests/TestData/dkim/gmail.msg"),
        &keys,
    );
    assert_eq!(got[0].verdict, Verdict::KeyNotFound);
    assert_eq!(
        (got[0].domain.as_str(), got[0].selector.as_str()),
        ("gmail.com", "20120113")
    );
}

/// Each vector as (key archive, message), written out for dkimpy where the vector keeps
/// its keys at the top of the message file.
fn vector_files(tmp: &std::path::Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for (i, rel) in [
        "stalwartlabs-mail-auth/resources/dkim/001.txt",
        "stalwartlabs-mail-auth/resources/dkim/002.txt",
        "stalwartlabs-mail-auth/resources/dkim/003.txt",
        "stalwartlabs-mail-auth/resources/dkim/004.txt",
        "stalwartlabs-mail-auth/resources/dkim/005.txt",
        "stalwartlabs-mail-auth/resources/dkim/006.txt",
        "stalwartlabs-mail-auth/resources/arc/001.txt",
        "stalwartlabs-mail-auth/resources/arc/002.txt",
    ]
    .iter()
    .enumerate()
    {
        let bytes = read(rel);
        let split = bytes.windows(2).position(|w| w == b"\n\n").unwrap();
        let keys = tmp.join(format!("s{i}.keys"));
        let message = tmp.join(format!("s{i}.eml"));
        std::fs::write(&keys, &bytes[..split]).unwrap();
        std::fs::write(&message, &bytes[split + 2..]).unwrap();
        out.push((keys, message));
    }
    let dkimpy_keys = dkim("dkimpy-1.1.8/dns-records.txt");
    for m in [
        "test2.message",
        "rfc6376.signed.msg",
        "rfc6376.signed.rsa.msg",
        "rfc6376.signed.no_t.msg",
        "message.mbox",
    ] {
        out.push((dkimpy_keys.clone(), dkim(&format!("dkimpy-1.1.8/data/{m}"))));
    }
    let exim = tmp.join("exim.keys");
    let exim_txt = String::from_utf8(read("dkimpy-1.1.8/data/eximtest.dns")).unwrap();
    std::fs::write(
        &exim,
        format!("sed._domainkey.test.ex {}\n", exim_txt.trim()),
    )
    .unwrap();
    out.push((exim, dkim("dkimpy-1.1.8/data/ed25519test2.msg")));
    let bad = tmp.join("baddomain.keys");
    let test_txt = String::from_utf8(read("dkimpy-1.1.8/data/test.txt")).unwrap();
    std::fs::write(
        &bad,
        format!("test._domainkey.example.com {}\n", test_txt.trim()),
    )
    .unwrap();
    out.push((bad, dkim("dkimpy-1.1.8/data/test.message.baddomain")));
    let mimekit_keys = dkim("jstedfast-MimeKit-dkim/dns-records.txt");
    for m in [
        "gmail.msg",
        "related.msg",
        "multipart-no-end-boundary.msg",
        "rfc8463-example.msg",
    ] {
        out.push((
            mimekit_keys.clone(),
            dkim(&format!(
                "jstedfast-MimeKit-dkim/UnitTests/TestData/dkim/{m}"
            )),
        ));
    }
    out
}

/// The dkimpy verdict script, if dkimpy (with PyNaCl) is installed; under CI it must be.
fn dkimpy_script() -> Option<PathBuf> {
    let has_dkimpy = std::process::Command::new("python3")
        .args(["-c", "import dkim, nacl"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_dkimpy {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install dkimpy and pynacl (pip)"
        );
        eprintln!("dkimpy not installed; skipped (pip install dkimpy pynacl)");
        return None;
    }
    Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/dkimpy_verdicts.py"))
}

#[test]
fn verdicts_agree_with_dkimpy_on_every_vector() {
    let Some(script) = dkimpy_script() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut disagreements = Vec::new();
    let mut signatures = 0;
    for (keys, message) in vector_files(tmp.path()) {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(&keys)
            .arg(&message)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let theirs: Vec<bool> = line
            .split("\"verdicts\": [")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .unwrap()
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(|s| s == "true")
            .collect();
        let text = String::from_utf8(std::fs::read(&keys).unwrap()).unwrap();
        let (store, _) = KeyStore::parse_archive(&text, "keys");
        let raw = std::fs::read(&message).unwrap();
        let ours: Vec<bool> = check(&raw, &store)
            .iter()
            .map(|v| v.verdict == Verdict::Pass)
            .collect();
        signatures += ours.len();
        if ours != theirs {
            disagreements.push(format!(
                "{}: trove {ours:?}, dkimpy {theirs:?}",
                message.display()
            ));
        }
    }
    assert!(signatures >= 25, "{signatures}");
    assert!(
        disagreements.is_empty(),
        "disagreements with dkimpy:\n{}",
        disagreements.join("\n")
    );
}

#[test]
fn arc_chains_verify_and_tampering_breaks_them() {
    use trove_mail::dkim::verify_arc;
    // 7: one set sealed by google.com (rsa-sha256).
    let (keys, raw) = stalwart("stalwartlabs-mail-auth/resources/arc/001.txt");
    let arc = verify_arc(&raw, &keys, date(&raw)).expect("ARC headers");
    assert_eq!(arc.sets, 1);
    assert_eq!(arc.verdict, Verdict::Pass, "{arc:#?}");
    assert_eq!(arc.seals[0].1, "google.com");
    // 8: two sets, an ed25519 seal then an rsa one.
    let (keys, raw) = stalwart("stalwartlabs-mail-auth/resources/arc/002.txt");
    let arc = verify_arc(&raw, &keys, date(&raw)).expect("ARC headers");
    assert_eq!(arc.sets, 2);
    assert_eq!(arc.verdict, Verdict::Pass, "{arc:#?}");
    assert!(arc.seals.iter().all(|s| s.3 == Verdict::Pass), "{arc:#?}");
    // The set-1 authentication results rewritten: the seals over them break.
    let text = String::from_utf8(raw.clone()).unwrap();
    let aar1 = text
        .find("ARC-Authentication-Results: i=1;")
        .expect("AAR i=1");
    let mut changed = raw.clone();
    let at = text[aar1..].find("dkim=").unwrap() + aar1 + "dkim=".len();
    changed[at] = b'X';
    let arc = verify_arc(&changed, &keys, date(&changed)).unwrap();
    assert_ne!(arc.verdict, Verdict::Pass, "{arc:#?}");
    // A missing key is said as such.
    let arc = verify_arc(&raw, &KeyStore::default(), date(&raw)).unwrap();
    assert_eq!(arc.verdict, Verdict::KeyNotFound, "{arc:#?}");
    // No ARC headers: nothing to say.
    assert!(
        verify_arc(
            &read("jstedfast-MimeKit-dkim/UnitTests/TestData/dkim/gmail.msg"),
            &keys,
            None
        )
        .is_none()
    );
}

/// One verdict, in the terms both verifiers can report when the key is a stand-in.
fn outcome_of(v: &SignatureVerdict) -> String {
    match &v.verdict {
        Verdict::Pass => "pass".into(),
        Verdict::Fail(Failure::BodyHashMismatch) => "body-hash".into(),
        Verdict::Fail(Failure::SignatureMismatch) => "signature".into(),
        other => format!("error: {}", other.reason()),
    }
}

/// The signers of ../shared/corpus/lists publish their keys only in DNS, which this
/// machine cannot reach, and most have rotated them since. So every signature is checked
/// against one stand-in RSA-2048 key: no signature can pass, but the body hash is still
/// computed and compared by both verifiers, so whether each signature fails on its body
/// hash or only on the RSA check tests the body canonicalisation (simple/relaxed, l=,
/// line endings) of 2,116 real signatures from dozens of signers against dkimpy.
#[test]
fn body_verdicts_agree_with_dkimpy_on_every_signed_list_message() {
    let Some(script) = dkimpy_script() else {
        return;
    };
    let stand_in = String::from_utf8(read("jstedfast-MimeKit-dkim/dns-records.txt"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("20120113._domainkey.gmail.com ")
                .map(str::to_string)
        })
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let lists = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/lists");
    let (mut files, mut names) = (Vec::new(), std::collections::BTreeSet::new());
    let mut ours = Vec::new();
    for mbox in ["linux-serial-first3000.mbox", "usrp-users-first300.mbox"] {
        let file = std::fs::File::open(lists.join(mbox)).unwrap();
        for m in trove_mail::mbox::MboxReader::new(std::io::BufReader::new(file)) {
            let m = m.unwrap();
            let verdicts = verify(&m.bytes, &KeyStore::default(), None);
            if verdicts.is_empty() {
                continue;
            }
            for v in &verdicts {
                names
                    .insert(format!("{}._domainkey.{}", v.selector, v.domain).to_ascii_lowercase());
            }
            let path = tmp.path().join(format!("{mbox}-{}.eml", m.offset));
            std::fs::write(&path, &m.bytes).unwrap();
            files.push((path, m.bytes));
        }
    }
    let keys_path = tmp.path().join("stand-in.keys");
    let keys_text: String = names.iter().map(|n| format!("{n} {stand_in}\n")).collect();
    std::fs::write(&keys_path, &keys_text).unwrap();
    let (store, _) = KeyStore::parse_archive(&keys_text, "stand-in.keys");
    for (_, bytes) in &files {
        ours.push(
            check(bytes, &store)
                .iter()
                .map(outcome_of)
                .collect::<Vec<_>>(),
        );
    }
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&keys_path)
        .args(files.iter().map(|(p, _)| p))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    let mut disagreements = Vec::new();
    for (line, (ours, (path, _))) in String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .zip(ours.iter().zip(&files))
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let theirs: Vec<String> = v["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .zip(v["errors"].as_array().unwrap())
            .map(|(ok, err)| {
                let err = err.as_str().unwrap();
                if ok.as_bool() == Some(true) {
                    "pass".into()
                } else if err.is_empty() {
                    "signature".into()
                } else if err.contains("body hash mismatch") {
                    "body-hash".into()
                } else {
                    format!("error: {err}")
                }
            })
            .collect();
        for (i, ours_one) in ours.iter().enumerate() {
            let theirs_one = theirs.get(i).cloned().unwrap_or_else(|| "missing".into());
            *tally
                .entry(format!("{ours_one} / {theirs_one}"))
                .or_default() += 1;
            if *ours_one != theirs_one {
                disagreements.push(format!(
                    "{} signature {i}: trove {ours_one}, dkimpy {theirs_one}",
                    path.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    eprintln!("trove / dkimpy: {tally:#?}");
    let signatures: usize = tally.values().sum();
    assert!(signatures >= 2000, "{signatures}");
    // Lists that add footers break body hashes; most do not: both outcomes are exercised.
    for both in ["body-hash / body-hash", "signature / signature"] {
        assert!(tally.get(both).copied().unwrap_or(0) >= 100, "{tally:?}");
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements with dkimpy:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
