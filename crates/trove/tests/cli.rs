//! The `trove` command end to end, on the shared corpora. One integration-test binary for
//! the CLI; each test names what it guards.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::{Server, corpus, files_under, p, run, site_file, tamper, trove};

/// `trove verify SITE`, which must exit 1 (something failed); what it said on stderr.
fn verify_fails(site: &Path) -> String {
    let out = trove().args(["verify", p(site)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}
fn status(ws: &Path) -> Value {
    let out = run(&["status", p(ws), "--json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn new_workspace(tmp: &Path) -> PathBuf {
    let ws = tmp.join("ws");
    run(&["init", p(&ws)]);
    ws
}

/// Regular files under a directory: in Maildir and Enron trees, one file is one message.
fn count_files(dir: &Path) -> u64 {
    files_under(dir).len() as u64
}

#[test]
fn enron_mailboxes_ingest_with_every_file_accounted_for_and_reingest_adds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = new_workspace(tmp.path());
    let mut expected_files = 0;
    for user in ["allen-p", "lay-k", "stokley-c"] {
        expected_files += count_files(&corpus(&format!("enron/{user}")));
    }
    assert_eq!(
        expected_files,
        3034 + 5937 + 1252,
        "the corpus README's counts"
    );
    let paths: Vec<PathBuf> = ["allen-p", "lay-k", "stokley-c"]
        .iter()
        .map(|u| corpus(&format!("enron/{u}")))
        .collect();
    let mut args = vec!["ingest", p(&ws)];
    args.extend(paths.iter().map(|x| p(x)));
    let out = run(&args);
    let summary = String::from_utf8_lossy(&out.stdout);
    let s = status(&ws);
    assert_eq!(s["files_read"], expected_files, "{summary}");
    // Every file is either a distinct email or a copy folded into one.
    assert_eq!(
        s["messages"].as_u64().unwrap() + s["duplicates"].as_u64().unwrap(),
        expected_files
    );
    // Enron keeps the same email in all_documents, sent, discussion_threads…
    assert!(s["duplicates"].as_u64().unwrap() > 2000, "{s}");
    assert_eq!(s["skipped_files"], 0);

    // Same ingest again: nothing new.
    let again = run(&args);
    assert!(String::from_utf8_lossy(&again.stdout).contains("new emails:        0"));
    let s2 = status(&ws);
    assert_eq!(s, s2);
}

/// Envelope lines, counted without trove: public-inbox writes `From mboxrd@z Thu Jan  1
/// 00:00:00 1970`; pipermail writes `From user at host  Www Mmm dd hh:mm:ss yyyy`.
fn independent_envelope_count(path: &Path) -> u64 {
    let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    text.lines()
        .filter(|l| {
            if *l == "From mboxrd@z Thu Jan  1 00:00:00 1970" {
                return true;
            }
            let Some(rest) = l.strip_prefix("From ") else {
                return false;
            };
            let w: Vec<&str> = rest.split_whitespace().collect();
            w.len() == 8
                && w[1] == "at"
                && w[6].len() == 8
                && w[6].matches(':').count() == 2
                && w[7].len() == 4
        })
        .count() as u64
}

#[test]
fn list_archives_and_pipermail_ingest_every_message() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = new_workspace(tmp.path());
    let lists = corpus("lists");
    let files = files_under(&lists);
    let expected: u64 = files.iter().map(|f| independent_envelope_count(f)).sum();
    assert!(expected > 3300 + 900, "{expected}");
    run(&["ingest", p(&ws), p(&lists)]);
    let s = status(&ws);
    let found = s["messages"].as_u64().unwrap() + s["duplicates"].as_u64().unwrap();
    assert_eq!(found, expected, "{s}");
    assert_eq!(s["files_read"], files.len());
    assert_eq!(s["skipped_files"], 0);
}

#[test]
fn parser_corpora_ingest_without_a_crash_and_keep_every_eml() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = new_workspace(tmp.path());
    let eml_dir = corpus("parser/stalwartlabs-mail-parser/resources/eml");
    let emls = files_under(&eml_dir)
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "eml"))
        .count() as u64;
    let out = run(&["ingest", p(&ws), p(&eml_dir)]);
    let text = String::from_utf8_lossy(&out.stdout);
    let found: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("messages found:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    assert_eq!(
        found, emls,
        "every .eml, however malformed, is kept:\n{text}"
    );
    // The rest of the parser corpora: MimeKit, CPython, the sample Maildir.
    run(&["ingest", p(&ws), p(&corpus("parser"))]);
    let s = status(&ws);
    assert!(
        s["flagged"].as_u64().unwrap() > 0,
        "malformed samples are flagged: {s}"
    );
}

#[test]
fn duplicates_by_bytes_by_message_id_and_by_content_collapse_and_conflicts_are_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mail");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    let base = "From: x@example.com\nTo: y@example.com\nDate: Mon, 1 Jan 2001 10:00:00 +0000\nSubject: s\n";
    std::fs::write(
        dir.join("a/1."),
        format!("Message-ID: <1@x>\nX-Folder: a\n{base}\nhello\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("b/1."),
        format!("Message-ID: <1@x>\nX-Folder: a\n{base}\nhello\n"),
    )
    .unwrap(); // same bytes
    std::fs::write(
        dir.join("b/2."),
        format!("Message-ID: <2@x>\nX-Folder: b\nReceived: by z\n{base}\nhello\n"),
    )
    .unwrap(); // Enron-style copy
    std::fs::write(
        dir.join("b/3."),
        format!("Message-ID: <1@x>\n{base}\nsomething else\n"),
    )
    .unwrap(); // conflict
    std::fs::write(dir.join("b/junk.png"), b"\x89PNG\r\n\x1a\n").unwrap();
    let ws = new_workspace(tmp.path());
    run(&["ingest", p(&ws), p(&dir)]);
    let s = status(&ws);
    assert_eq!(s["messages"], 2, "{s}");
    assert_eq!(s["duplicates"], 2, "{s}");
    assert_eq!(s["skipped_files"], 1, "{s}");
    assert_eq!(s["flagged_by_reason"]["message-id-conflict"], 2, "{s}");
}

#[test]
fn archives_and_gzip_are_read_and_malformed_mail_is_kept_and_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("inbox/cur")).unwrap();
    std::fs::write(
        src.join("inbox/cur/1:2,S"),
        "From: a@x\nSubject: no date\n\nbody\n",
    )
    .unwrap();
    std::fs::write(
        src.join("inbox/cur/2:2,RS"),
        "From: a@x\nDate: Tue, 2 Jan 2001 10:00:00 +0000\nContent-Type: text/plain; charset=us-ascii\nSubject: latin\n\ncaf\u{e9}\n".replace('\u{e9}', "\u{fffd}"),
    )
    .unwrap();
    let tarball = tmp.path().join("dump.tar.gz");
    let st = Command::new("tar")
        .args(["czf", p(&tarball), "-C", p(&src), "inbox"])
        .status()
        .unwrap();
    assert!(st.success());
    let zip = tmp.path().join("dump.zip");
    let st = Command::new("python3")
        .args(["-c", &format!("import zipfile,sys; z=zipfile.ZipFile('{}','w'); z.write('{}', 'x/3.eml'); z.close()", p(&zip), p(&src.join("inbox/cur/1:2,S")))])
        .status()
        .unwrap();
    assert!(st.success());
    let ws = new_workspace(tmp.path());
    run(&["ingest", p(&ws), p(&tarball), p(&zip)]);
    let s = status(&ws);
    assert_eq!(s["messages"], 2, "{s}");
    assert_eq!(s["duplicates"], 1, "{s}");
    assert_eq!(s["flagged_by_reason"]["no-date"], 1, "{s}");
    assert_eq!(s["flagged_by_reason"]["no-message-id"], 2, "{s}");
}

#[test]
fn ingest_killed_at_any_point_then_rerun_ends_with_every_message_once() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = [
        corpus("enron/allen-p"),
        corpus("lists/linux-serial-first3000.mbox"),
    ];
    let clean = tmp.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    let clean_ws = new_workspace(&clean);
    // The kills are spread over what this uninterrupted ingest takes on the machine:
    // fixed delays missed it once ingest got faster.
    let started = std::time::Instant::now();
    run(&["ingest", p(&clean_ws), p(&inputs[0]), p(&inputs[1])]);
    let whole = started.elapsed().as_millis() as u64;
    let expected = status(&clean_ws);
    let mut partial = 0;
    for (i, percent) in [5u64, 25, 45, 65, 85].into_iter().enumerate() {
        let delay_ms = whole * percent / 100;
        let dir = tmp.path().join(format!("k{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ws = new_workspace(&dir);
        let mut child = trove()
            .args(["ingest", "--quiet", p(&ws), p(&inputs[0]), p(&inputs[1])])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if status(&ws)["messages"].as_u64().unwrap() < expected["messages"].as_u64().unwrap() {
            partial += 1;
        }
        run(&["ingest", p(&ws), p(&inputs[0]), p(&inputs[1])]);
        let got = status(&ws);
        for key in [
            "messages",
            "duplicates",
            "files_read",
            "flagged",
            "flagged_by_reason",
            "original_bytes",
        ] {
            assert_eq!(
                got[key], expected[key],
                "{key} after a kill at {delay_ms} ms"
            );
        }
    }
    assert!(
        partial >= 3,
        "only {partial} kills landed inside an ingest of {whole} ms"
    );
}

fn demo_site(tmp: &Path) -> PathBuf {
    let dir = tmp.join("demo");
    run(&["demo", "--no-serve", "--dir", p(&dir)]);
    dir.join("workspace/site")
}

#[test]
fn releases_number_oldest_first_and_verify_catches_a_changed_and_a_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let site = demo_site(tmp.path());
    let out = run(&["verify", p(&site)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK: 3 releases"));

    // Numbers follow the dates: oldest first.
    let out = run(&[
        "search",
        p(&site),
        "",
        "--sort",
        "oldest",
        "--limit",
        "400",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let numbers: Vec<u64> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["number"].as_u64().unwrap())
        .collect();
    assert_eq!(v["total"].as_u64().unwrap() as usize, numbers.len());
    let mut sorted = numbers.clone();
    sorted.sort();
    assert_eq!(numbers, sorted, "public numbers are in date order");

    // One byte flipped in a published email.
    let victim = "messages/0000/5.json";
    let original = site_file(&site, victim).unwrap();
    let mut changed = original.clone();
    let i = changed.len() / 2;
    changed[i] ^= 0x01;
    tamper(&site, victim, &changed);
    let err = verify_fails(&site);
    assert!(
        err.contains("messages/0000/5.json") && err.contains("changed"),
        "{err}"
    );
    tamper(&site, victim, &original);
    assert!(
        trove()
            .args(["verify", p(&site)])
            .status()
            .unwrap()
            .success()
    );

    // One byte flipped inside a pack, in the middle of an email's compressed frame.
    let opened = trove_site::Site::open(&site).unwrap();
    let (pack, entry) = opened
        .packed_files()
        .unwrap()
        .into_iter()
        .find(|(_, e)| e.path == "messages/0000/7.json")
        .unwrap();
    let packed = std::fs::read(&pack).unwrap();
    let mut damaged = packed.clone();
    damaged[(entry.offset + entry.length / 2) as usize] ^= 0x40;
    std::fs::write(&pack, &damaged).unwrap();
    let err = verify_fails(&site);
    assert!(
        err.contains("messages/0000/7.json") && err.contains("changed"),
        "{err}"
    );
    std::fs::write(&pack, &packed).unwrap();

    // A raw source removed.
    opened
        .remove_files(&["messages/0000/200.eml".to_string()])
        .unwrap();
    let err = verify_fails(&site);
    assert!(
        err.contains("messages/0000/200.eml") && err.contains("missing"),
        "{err}"
    );

    // A manifest edited: its signature no longer matches.
    let tmp2 = tempfile::tempdir().unwrap();
    let site2 = demo_site(tmp2.path());
    let m = site2.join("releases/000002.json");
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("Part two", "Part 2");
    std::fs::write(&m, text).unwrap();
    let out = trove().args(["verify", p(&site2)]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("000002.json") && err.contains("signature"),
        "{err}"
    );

    // A file slipped into the site that no release vouches for.
    let tmp3 = tempfile::tempdir().unwrap();
    let site3 = demo_site(tmp3.path());
    std::fs::write(site3.join("messages/0000/9999.json"), "{}").unwrap();
    let out = trove().args(["verify", p(&site3)]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("9999.json") && err.contains("not listed"),
        "{err}"
    );
}

#[test]
fn manifest_signature_checks_with_openssl() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have openssl (.ci/run installs it)"
        );
        eprintln!("openssl not installed; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let site = demo_site(tmp.path());
    let out = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(site.join("public-key.pem"))
        .arg("-rawin")
        .arg("-in")
        .arg(site.join("releases/000001.json"))
        .arg("-sigfile")
        .arg(site.join("releases/000001.json.sig"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn search_cli_answers_json_and_explains_bad_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let site = demo_site(tmp.path());
    let out = run(&["search", p(&site), "from:phillip.allen@enron.com", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = v["total"].as_u64().unwrap();
    assert!(total > 10);
    let hit = &v["hits"][0];
    for key in ["number", "date", "from", "subject"] {
        assert!(!hit[key].is_null(), "{key} in {hit}");
    }
    let neg = run(&[
        "search",
        p(&site),
        "-from:phillip.allen@enron.com",
        "--json",
    ]);
    let n: Value = serde_json::from_slice(&neg.stdout).unwrap();
    let all = run(&["search", p(&site), "", "--json"]);
    let a: Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(
        n["total"].as_u64().unwrap() + total,
        a["total"].as_u64().unwrap()
    );

    // The index is derived: removed and rebuilt, it answers the same. (Oldest first: equal
    // relevance scores are ordered by tantivy's segment layout, which a rebuild changes.)
    let search_all = || {
        run(&[
            "search",
            p(&site),
            "from:phillip.allen@enron.com",
            "--json",
            "--sort",
            "oldest",
            "--limit",
            "1000",
        ])
        .stdout
    };
    let before: Value = serde_json::from_slice(&search_all()).unwrap();
    std::fs::remove_dir_all(site.join("index")).unwrap();
    run(&["reindex", p(&site)]);
    let after: Value = serde_json::from_slice(&search_all()).unwrap();
    assert_eq!(after, before);
    assert_eq!(after["total"], v["total"]);

    let out = trove()
        .args(["search", p(&site), "subject:(gas"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("column"), "{err}");
}

#[test]
fn errors_name_the_path() {
    let out = trove()
        .args(["status", "/nonexistent/ws"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ws is not a trove workspace")
    );
    let tmp = tempfile::tempdir().unwrap();
    let ws = new_workspace(tmp.path());
    let out = trove()
        .args(["ingest", p(&ws), "/nonexistent/mail"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/mail"));
    let out = trove().args(["release", p(&ws)]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --next/--all is bad usage"
    );
}

#[test]
fn dkim_and_pst_corpora_ingest_and_outlook_files_are_skipped_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = new_workspace(tmp.path());
    let out = run(&["ingest", p(&ws), p(&corpus("dkim")), p(&corpus("pst"))]);
    let text = String::from_utf8_lossy(&out.stdout);
    let s = status(&ws);
    assert!(
        s["messages"].as_u64().unwrap() >= 20,
        "the DKIM vectors are mail: {s}\n{text}"
    );
    let pst_files = count_files(&corpus("pst"));
    assert!(s["skipped_files"].as_u64().unwrap() >= pst_files - 1, "{s}");
    let reasons = s["skipped_by_reason"].as_object().unwrap();
    assert!(
        reasons.keys().any(|r| r.starts_with("Outlook PST file")),
        "{s}"
    );
}

#[test]
fn ingesting_a_folder_then_its_parent_records_each_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = new_workspace(tmp.path());
    let user = corpus("enron/stokley-c/chris_stokley");
    let first = user.join("sent");
    run(&["ingest", p(&ws), p(&first)]);
    let after_first = status(&ws);
    assert_eq!(after_first["files_read"], count_files(&first));
    run(&["ingest", p(&ws), p(&user)]);
    let s = status(&ws);
    assert_eq!(s["files_read"], count_files(&user), "{s}");
    assert_eq!(
        s["messages"].as_u64().unwrap() + s["duplicates"].as_u64().unwrap(),
        count_files(&user),
        "{s}"
    );
}

/// A folder and its parent in one run: ingest keeps its transaction open across batches,
/// so the second reading of the folder's files finds their places recorded only in that
/// open transaction. They are copies already ingested, not duplicates, and nothing is
/// recorded twice.
#[test]
fn a_folder_and_its_parent_in_one_run_count_the_second_reading_as_already_ingested() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = new_workspace(tmp.path());
    let user = corpus("enron/stokley-c/chris_stokley");
    let sent = user.join("sent");
    let out = run(&["ingest", p(&ws), p(&sent), p(&user), "--json"]);
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = |k: &str| stats[k].as_u64().unwrap();
    assert_eq!(n("already_ingested"), count_files(&sent), "{stats}");
    assert_eq!(
        n("messages_new") + n("duplicates"),
        count_files(&user),
        "{stats}"
    );
    let s = status(&ws);
    assert_eq!(s["files_read"], count_files(&user), "{s}");
    assert_eq!(s["messages"], stats["messages_new"], "{s}");
    assert_eq!(s["duplicates"], stats["duplicates"], "{s}");
}

/// A second run over a folder an earlier run read, with a folder no run has read: the
/// first is all already ingested (each copy's place is looked up), the second all read
/// (its root has no recorded place, so the lookups are left out), and a third run over
/// both finds nothing new.
#[test]
fn a_second_run_skips_what_the_first_recorded_and_reads_the_new_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = new_workspace(tmp.path());
    let user = corpus("enron/stokley-c/chris_stokley");
    let (sent, iso) = (user.join("sent"), user.join("iso"));
    run(&["ingest", p(&ws), p(&sent)]);
    let stats =
        |out: std::process::Output| -> Value { serde_json::from_slice(&out.stdout).unwrap() };
    let second = stats(run(&["ingest", p(&ws), p(&sent), p(&iso), "--json"]));
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap();
    assert_eq!(
        n(&second, "already_ingested"),
        count_files(&sent),
        "{second}"
    );
    assert_eq!(
        n(&second, "messages_seen"),
        count_files(&sent) + count_files(&iso),
        "{second}"
    );
    assert_eq!(
        n(&second, "messages_new") + n(&second, "duplicates"),
        count_files(&iso),
        "{second}"
    );
    let third = stats(run(&["ingest", p(&ws), p(&sent), p(&iso), "--json"]));
    assert_eq!(
        n(&third, "already_ingested"),
        count_files(&sent) + count_files(&iso),
        "{third}"
    );
    assert_eq!(n(&third, "messages_new"), 0, "{third}");
}

/// The shared corpus generator knows what it wrote: unique messages, duplicate files and
/// each kind of malformation. trove's counts must match, from the mbox and the Maildir++.
#[test]
fn generated_corpus_counts_match_the_generators_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("corpus");
    let generator =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/gen_corpus.py");
    let st = Command::new("python3")
        .arg(&generator)
        .args(["--out", p(&out_dir), "-n", "3000", "--seed", "42", "-q"])
        .status()
        .expect("python3 runs the shared corpus generator");
    assert!(st.success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    let mal = &manifest["malformed"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    // Messages whose header section really holds non-ASCII bytes (the mbox is mboxrd:
    // every line starting "From " is an envelope). The generator labels a
    // few more "raw8bit" whose added word happened to be ASCII.
    let mbox = std::fs::read(out_dir.join("corpus.mbox")).unwrap();
    let mut raw8 = std::collections::HashSet::new();
    for message in mbox
        .split(|&b| b == b'\n')
        .collect::<Vec<_>>()
        .split(|l| l.starts_with(b"From "))
    {
        let header_end = message
            .iter()
            .position(|l| l.is_empty())
            .unwrap_or(message.len());
        let header = &message[..header_end];
        if header.iter().any(|l| !l.is_ascii()) {
            let id = header
                .iter()
                .find(|l| l.to_ascii_lowercase().starts_with(b"message-id:"))
                .map(|l| l.to_vec());
            raw8.insert(id.unwrap_or_else(|| header.concat()));
        }
    }
    assert!(raw8.len() as u64 <= n(&mal["raw8bit"]) && !raw8.is_empty());
    for input in ["corpus.mbox", "maildir"] {
        let dir = tmp.path().join(format!("ws-{input}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ws = new_workspace(&dir);
        run(&["ingest", p(&ws), p(&out_dir.join(input))]);
        let s = status(&ws);
        let by = &s["flagged_by_reason"];
        assert_eq!(s["messages"], manifest["messages"], "{input}: {s}");
        assert_eq!(s["duplicates"], manifest["duplicates"], "{input}: {s}");
        assert_eq!(n(&by["no-date"]), n(&mal["nodate"]), "{input}: {s}");
        assert_eq!(n(&by["bad-date"]), n(&mal["baddate"]), "{input}: {s}");
        assert_eq!(n(&by["no-message-id"]), n(&mal["nomsgid"]), "{input}: {s}");
        // A closing boundary missing, cut short, or a boundary that never appears.
        assert_eq!(
            n(&by["truncated"]),
            n(&mal["noclose"]) + n(&mal["trunc"]) + n(&mal["mismatch"]),
            "{input}: {s}"
        );
        // Every message with no boundary parameter or a boundary that never appears is
        // broken MIME; mail-parser also reports some cut-short ones (a part cut inside its
        // encoding). The manifest has totals only, so this is a bound, not an equality.
        let broken = n(&by["broken-mime"]);
        let structural = n(&mal["noparam"]) + n(&mal["mismatch"]);
        assert!(broken >= structural, "{input}: {s}");
        assert!(
            broken <= structural + n(&mal["noclose"]) + n(&mal["trunc"]),
            "{input}: {s}"
        );
        assert_eq!(n(&by["raw-8bit-header"]), raw8.len() as u64, "{input}: {s}");
    }
}

#[test]
fn release_killed_at_any_point_then_rerun_publishes_every_email_once_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let src = corpus("enron/allen-p");
    // The kills are spread over what an uninterrupted release takes on this machine:
    // fixed delays missed it once releases got faster.
    let probe = tmp.path().join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    let ws = new_workspace(&probe);
    run(&["ingest", "--quiet", p(&ws), p(&src)]);
    let started = std::time::Instant::now();
    run(&["release", p(&ws), "--next", "1500", "--title", "One"]);
    let whole = started.elapsed().as_millis() as u64;
    let mut resumed = 0;
    for (i, percent) in [5u64, 25, 45, 65, 85].into_iter().enumerate() {
        let delay_ms = whole * percent / 100;
        let dir = tmp.path().join(format!("r{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ws = new_workspace(&dir);
        run(&["ingest", "--quiet", p(&ws), p(&src)]);
        let messages = status(&ws)["messages"].as_u64().unwrap();
        let mut child = trove()
            .args(["release", p(&ws), "--next", "1500", "--title", "One"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // Finishes the interrupted release (if it got as far as numbering), then the rest.
        let out = run(&["release", p(&ws), "--all", "--title", "Two"]);
        if String::from_utf8_lossy(&out.stdout).contains("Finished interrupted release") {
            resumed += 1;
        }
        let out = run(&["verify", p(&ws.join("site"))]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("{messages} emails")),
            "after a kill at {delay_ms} ms: {text}"
        );
        let s = status(&ws);
        assert_eq!(s["released"].as_u64().unwrap(), messages, "{s}");
        let out = run(&["search", p(&ws.join("site")), "", "--json", "--limit", "1"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["total"].as_u64().unwrap(),
            messages,
            "index holds each email once"
        );
    }
    assert!(
        resumed >= 2,
        "only {resumed} kills landed inside a release of {whole} ms: the test needs a bigger release"
    );
}

/// An email whose original is damaged in its pack cannot be built. Before, the release
/// stopped there, stayed in state `writing`, and every later run resumed it and stopped
/// again. Now it is held back with a warning naming it, the emails after it take the
/// numbers up, the signed register counts it, and the site verifies.
#[test]
fn an_email_that_cannot_be_built_is_held_back_and_the_release_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = new_workspace(tmp.path());
    run(&["ingest", "--quiet", p(&ws), p(&corpus("enron/allen-p"))]);
    let messages = status(&ws)["messages"].as_u64().unwrap();
    // Two emails' frames in the workspace's packs, damaged in their middle.
    let db = rusqlite::Connection::open(ws.join("catalogue.sqlite")).unwrap();
    let damaged: Vec<(String, i64, i64, i64)> = db
        .prepare(
            "SELECT m.content_id, p.pack, p.offset, p.length FROM messages m
             JOIN packed p ON p.content_id = m.content_id ORDER BY m.content_id LIMIT 2",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(db);
    assert_eq!(damaged.len(), 2);
    for (_, pack, offset, length) in &damaged {
        let path = ws.join(format!("blobs/packs/{pack:08}.pack"));
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = (offset + length / 2) as usize;
        for b in &mut bytes[middle - 4..middle + 4] {
            *b ^= 0x5a;
        }
        std::fs::write(&path, bytes).unwrap();
    }

    let out = run(&["release", p(&ws), "--all", "--title", "One"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let published = messages - 2;
    assert!(
        stdout.contains(&format!("emails 1..={published} ")),
        "{stdout}"
    );
    for (content_id, ..) in &damaged {
        assert!(
            stderr.contains(&format!(
                "email {content_id} could not be built and is held back"
            )),
            "{stderr}"
        );
    }
    let site = ws.join("site");
    let out = run(&["verify", p(&site)]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{published} emails")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(site.join("releases/000001.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["register"]["messages_withheld"]["could not be built"], 2,
        "{}",
        manifest["register"]
    );
    // The index holds the published emails once each; nothing is left past the new last
    // number, and nothing is left to release.
    let out = run(&["search", p(&site), "", "--json", "--limit", "1"]);
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["total"].as_u64().unwrap(), published);
    let folder = (published + 1) / 1000;
    assert!(
        site_file(
            &site,
            &format!("messages/{folder:04}/{}.json", published + 1)
        )
        .is_none()
    );
    let s = status(&ws);
    assert_eq!(s["released"].as_u64().unwrap(), published, "{s}");
    assert_eq!(s["withheld_by_reason"]["could not be built"], 2, "{s}");
    assert_eq!(s["unreleased"], 0, "{s}");
    let out = run(&["release", p(&ws), "--all"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Nothing to release"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn release_refuses_a_site_that_would_publish_the_workspace_or_someone_elses_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = new_workspace(tmp.path());
    run(&[
        "ingest",
        "--quiet",
        p(&ws),
        p(&corpus("enron/stokley-c/chris_stokley/sent")),
    ]);
    for site in [ws.clone(), tmp.path().to_path_buf()] {
        let out = trove()
            .args(["release", p(&ws), "--next", "1", "--site", p(&site)])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{site:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("would contain the private workspace"), "{err}");
    }
    let other = tmp.path().join("photos");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("cat.jpg"), b"not a site").unwrap();
    let out = trove()
        .args(["release", p(&ws), "--next", "1", "--site", p(&other)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already holds files and is not a trove site"),
        "{err}"
    );
    assert_eq!(status(&ws)["released"], 0, "nothing was numbered");
}

#[test]
fn verify_message_checks_one_file_offline_and_exits_by_verdict() {
    let d = corpus("dkim");
    let gmail = d.join("jstedfast-MimeKit-dkim/UnitTests/TestData/dkim/gmail.msg");
    let keys = d.join("jstedfast-MimeKit-dkim/dns-records.txt");
    let out = run(&["verify-message", p(&gmail), "--keys", p(&keys)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PASS: Signed by gmail.com with a 2048-bit RSA key (selector 20120113)"),
        "{text}"
    );
    assert!(text.contains("Key from: key archive"), "{text}");

    let out = trove()
        .args(["verify-message", p(&gmail), "--keys", p(&keys), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["domain"], "gmail.com");
    assert_eq!(v[0]["selector"], "20120113");
    assert_eq!(v[0]["verdict"], "pass");
    assert_eq!(v[0]["reason"], "");

    // Without keys: key not found, exit 1.
    let out = trove()
        .args(["verify-message", p(&gmail), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["verdict"], "key-not-found");

    // A changed body: fail, with the reason.
    let tmp = tempfile::tempdir().unwrap();
    let changed = tmp.path().join("changed.eml");
    let text =
        std::fs::read_to_string(&gmail)
            .unwrap()
            .replacen("\n\n", "\n\nP.S. added later\n", 1);
    std::fs::write(&changed, text).unwrap();
    let out = trove()
        .args(["verify-message", p(&changed), "--keys", p(&keys), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["verdict"], "fail");
    assert!(
        v[0]["reason"]
            .as_str()
            .unwrap()
            .contains("body hash mismatch"),
        "{v}"
    );

    // An ARC-sealed message: the chain is reported too.
    let arc = std::fs::read(corpus("dkim/stalwartlabs-mail-auth/resources/arc/002.txt")).unwrap();
    let split = arc.windows(2).position(|w| w == b"\n\n").unwrap();
    let arc_keys = tmp.path().join("arc.keys");
    let arc_mail = tmp.path().join("arc.eml");
    std::fs::write(&arc_keys, &arc[..split]).unwrap();
    std::fs::write(&arc_mail, &arc[split + 2..]).unwrap();
    let out = run(&["verify-message", p(&arc_mail), "--keys", p(&arc_keys)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ARC: chain of 2 set(s), PASS; seals 1: scamorza.org (selector ed) pass, 2: manchego.org (selector rsa) pass"),
        "{text}"
    );

    let out = trove()
        .args(["verify-message", "/nonexistent.eml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.eml"));
}

#[test]
fn dkim_verdicts_are_stored_at_ingest_and_recomputed_when_keys_arrive() {
    let tmp = tempfile::tempdir().unwrap();
    let mail = tmp.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let src = corpus("dkim/jstedfast-MimeKit-dkim/UnitTests/TestData/dkim");
    for m in [
        "gmail.msg",
        "related.msg",
        "multipart-no-end-boundary.msg",
        "rfc8463-example.msg",
    ] {
        std::fs::copy(src.join(m), mail.join(m)).unwrap();
    }
    // A visible change (the text a reader sees), so it is not a duplicate of the original.
    let tampered = std::fs::read_to_string(src.join("gmail.msg"))
        .unwrap()
        .replacen("This is the message body.", "This is the altered body.", 1);
    std::fs::write(mail.join("tampered.msg"), tampered).unwrap();
    std::fs::write(
        mail.join("unsigned.eml"),
        "From: a@example.com\nSubject: hi\nDate: Mon, 1 Jan 2001 10:00:00 +0000\n\nhello\n",
    )
    .unwrap();
    let ws = new_workspace(tmp.path());
    run(&["ingest", p(&ws), p(&mail)]);
    let s = status(&ws);
    assert_eq!(
        (
            s["dkim_pass"].as_u64(),
            s["dkim_unverified"].as_u64(),
            s["dkim_none"].as_u64()
        ),
        (Some(0), Some(5), Some(1)),
        "{s}"
    );
    let keys = corpus("dkim/jstedfast-MimeKit-dkim/dns-records.txt");
    let out = run(&["dkim", p(&ws), "--keys", p(&keys)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 with a passing signature"), "{text}");
    let s = status(&ws);
    assert_eq!(
        (
            s["dkim_pass"].as_u64(),
            s["dkim_fail"].as_u64(),
            s["dkim_none"].as_u64()
        ),
        (Some(4), Some(1), Some(1)),
        "{s}"
    );
    // Keys given at ingest are used at once.
    let ws2 = new_workspace(&tmp.path().join("second"));
    run(&["ingest", p(&ws2), p(&mail), "--keys", p(&keys)]);
    assert_eq!(status(&ws2)["dkim_pass"], 4);
    let out = trove()
        .args([
            "dkim",
            p(&ws),
            "--private-key-published",
            "nokey._domainkey.example.com",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Released: the verdicts and keys are published, searchable and said in words.
    run(&[
        "dkim",
        p(&ws),
        "--private-key-published",
        "brisbane._domainkey.football.example.com",
    ]);
    run(&["release", p(&ws), "--all"]);
    let site = ws.join("site");
    for (query, expected) in [
        ("dkim:pass", 4),
        ("dkim:fail", 1),
        ("dkim:none", 1),
        ("dkim:unverified", 0),
    ] {
        let out = run(&["search", p(&site), query, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["total"], expected, "{query}");
    }
    let all = run(&["search", p(&site), "dkim:pass", "--json", "--limit", "10"]);
    let all: Value = serde_json::from_slice(&all.stdout).unwrap();
    let mut seen = String::new();
    for hit in all["hits"].as_array().unwrap() {
        let n = hit["number"].as_u64().unwrap();
        let json: Value =
            serde_json::from_slice(&site_file(&site, &format!("messages/0000/{n}.json")).unwrap())
                .unwrap();
        for d in json["dkim"].as_array().unwrap() {
            assert!(
                d["key"]["txt"].as_str().unwrap().contains("p="),
                "the key record is published: {d}"
            );
            assert_eq!(
                d["key"]["source"], "key archive dns-records.txt, supplied by the publisher",
                "no local path of the publisher's is published"
            );
            seen.push_str(&format!(
                "{} {}\n",
                d["verdict"], d["key"]["private_key_published"]
            ));
        }
    }
    assert!(
        seen.contains("\"pass\" true"),
        "the marked key is published as compromised: {seen}"
    );
    run(&["verify", p(&site)]);
}

/// A real DNS server (dnsmasq) on 127.0.0.1 serving `records` (name, TXT value), each
/// value split into 200-byte strings as long DKIM records are. Killed on drop.
struct Dnsmasq(std::process::Child, std::net::SocketAddr);

impl Dnsmasq {
    fn start(records: &[(&str, &str)]) -> Option<Dnsmasq> {
        if Command::new("dnsmasq").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have dnsmasq (.ci/run installs dnsmasq-base)"
            );
            eprintln!("dnsmasq not installed; skipped");
            return None;
        }
        let mut args = vec![
            "--keep-in-foreground".to_string(),
            "--listen-address=127.0.0.1".into(),
            "--bind-interfaces".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--pid-file".into(),
        ];
        for (name, txt) in records {
            let parts: Vec<String> = txt
                .as_bytes()
                .chunks(200)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            args.push(format!("--txt-record={name},{}", parts.join(",")));
        }
        // A port picked free can be taken by another test before dnsmasq binds it (dnsmasq
        // then exits), and a port taken is not yet a server answering: dnsmasq counts as
        // started once it answers a query, on a new port if it could not start.
        for _ in 0..5 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("dnsmasq")
                .args(&args)
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let server = ([127, 0, 0, 1], port).into();
            if answers(&mut child, server) {
                return Some(Dnsmasq(child, server));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start answering on any of five ports");
    }
}

/// Whether the dnsmasq `child` answers a DNS query (the root's `NS` records) at `server`
/// within ten seconds; false at once if it has exited.
fn answers(child: &mut std::process::Child, server: std::net::SocketAddr) -> bool {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    // Header: id 0x7407, recursion desired, one question; then the root name, NS, IN.
    let query = [
        0x74, 0x07, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1,
    ];
    let mut reply = [0u8; 512];
    for _ in 0..100 {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        socket.send_to(&query, server).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut reply)
            && n >= 2
            && reply[..2] == query[..2]
        {
            return true;
        }
    }
    false
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--dns` asks a real DNS server, keeps each key found with the time of the lookup, and
/// publishes that provenance.
#[test]
fn dns_keys_are_looked_up_kept_with_their_time_and_published() {
    let keys =
        std::fs::read_to_string(corpus("dkim/jstedfast-MimeKit-dkim/dns-records.txt")).unwrap();
    let gmail_key = keys
        .lines()
        .find_map(|l| l.strip_prefix("20120113._domainkey.gmail.com "))
        .unwrap();
    let Some(dns) = Dnsmasq::start(&[("20120113._domainkey.gmail.com", gmail_key)]) else {
        return;
    };
    let server = dns.1.to_string();
    let tmp = tempfile::tempdir().unwrap();
    let mail = tmp.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let src = corpus("dkim/jstedfast-MimeKit-dkim/UnitTests/TestData/dkim");
    for m in ["gmail.msg", "rfc8463-example.msg"] {
        std::fs::copy(src.join(m), mail.join(m)).unwrap();
    }

    // One file, outside any workspace.
    let out = trove()
        .args([
            "verify-message",
            p(&mail.join("gmail.msg")),
            "--dns",
            "--dns-server",
            &server,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("PASS: Signed by gmail.com with a 2048-bit RSA key"),
        "{text}"
    );
    assert!(text.contains("Key from: DNS, looked up at 20"), "{text}");

    // A workspace: the key is found, kept, used and published with its provenance.
    let ws = new_workspace(tmp.path());
    run(&["ingest", p(&ws), p(&mail)]);
    assert_eq!(status(&ws)["dkim_pass"], 0);
    let out = run(&["dkim", p(&ws), "--dns", "--dns-server", &server, "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DNS: looking up 3 key record(s)"), "{err}");
    assert!(
        err.contains("DNS: brisbane._domainkey.football.example.com: no such record"),
        "{err}"
    );
    assert!(
        err.contains("1 key record(s) found and kept, 2 not found"),
        "{err}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["pass"], 1, "{summary}");
    assert_eq!(status(&ws)["dkim_keys"], 1);
    drop(dns);
    // The key was captured: with the server gone, verifying again still passes.
    let out = run(&["dkim", p(&ws), "--json"]);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["pass"], 1, "{summary}");
    run(&["release", p(&ws), "--all"]);
    let out = run(&["search", p(&ws.join("site")), "dkim:pass", "--json"]);
    let hits: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = hits["hits"][0]["number"].as_u64().unwrap();
    let json: Value = serde_json::from_slice(
        &site_file(&ws.join("site"), &format!("messages/0000/{n}.json")).unwrap(),
    )
    .unwrap();
    let source = json["dkim"][0]["key"]["source"].as_str().unwrap();
    assert!(source.starts_with("DNS, looked up at 20"), "{source}");
}

/// ARC chains are verified at ingest, re-verified when keys arrive, and published with
/// the key record of every seal.
#[test]
fn arc_chains_are_verified_at_ingest_and_published_with_their_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let mail = tmp.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let mut keys = String::new();
    for name in ["001", "002"] {
        let file = std::fs::read(corpus(&format!(
            "dkim/stalwartlabs-mail-auth/resources/arc/{name}.txt"
        )))
        .unwrap();
        let split = file.windows(2).position(|w| w == b"\n\n").unwrap();
        keys.push_str(&String::from_utf8_lossy(&file[..split + 1]));
        std::fs::write(mail.join(format!("{name}.eml")), &file[split + 2..]).unwrap();
    }
    let keys_file = tmp.path().join("arc.keys");
    std::fs::write(&keys_file, keys).unwrap();
    let ws = new_workspace(tmp.path());
    run(&["ingest", p(&ws), p(&mail)]);
    let out = run(&["dkim", p(&ws), "--keys", p(&keys_file), "--json"]);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["arc"]["pass"], 2, "{summary}");
    run(&["release", p(&ws), "--all"]);
    let site = ws.join("site");
    let mut chains = Vec::new();
    for n in 1..=2 {
        let json: Value =
            serde_json::from_slice(&site_file(&site, &format!("messages/0000/{n}.json")).unwrap())
                .unwrap();
        let arc = &json["arc"];
        assert_eq!(arc["verdict"], "pass", "{arc}");
        for seal in arc["seals"].as_array().unwrap() {
            assert_eq!(seal["verdict"], "pass");
            assert!(
                seal["key"]["txt"].as_str().unwrap().contains("p="),
                "{seal}"
            );
            assert_eq!(
                seal["key"]["source"],
                "key archive arc.keys, supplied by the publisher"
            );
            chains.push(format!("{}:{}", seal["instance"], seal["domain"]));
        }
    }
    chains.sort();
    assert_eq!(
        chains,
        [
            "1:\"google.com\"",
            "1:\"scamorza.org\"",
            "2:\"manchego.org\""
        ]
    );
    run(&["verify", p(&site)]);
}

/// The evidence bundle's README, followed to the letter with dkimpy, confirms the pass.
#[test]
fn evidence_bundle_instructions_verify_with_dkimpy() {
    let has_dkimpy = Command::new("python3")
        .args(["-c", "import dkim"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_dkimpy {
        assert!(std::env::var_os("CI").is_none(), "CI must install dkimpy");
        eprintln!("dkimpy not installed; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mail = tmp.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    std::fs::copy(
        corpus("dkim/jstedfast-MimeKit-dkim/UnitTests/TestData/dkim/gmail.msg"),
        mail.join("gmail.msg"),
    )
    .unwrap();
    let ws = new_workspace(tmp.path());
    run(&[
        "ingest",
        p(&ws),
        p(&mail),
        "--keys",
        p(&corpus("dkim/jstedfast-MimeKit-dkim/dns-records.txt")),
    ]);
    run(&["release", p(&ws), "--all"]);
    let (status, body) = Server::start(&ws.join("site")).get("/emailid/1/evidence");
    assert_eq!(status, 200);
    let bundle = tmp.path().join("evidence.tar");
    std::fs::write(&bundle, &body).unwrap();
    let out_dir = tmp.path().join("unpacked");
    std::fs::create_dir_all(&out_dir).unwrap();
    assert!(
        Command::new("tar")
            .arg("xf")
            .arg(&bundle)
            .arg("-C")
            .arg(&out_dir)
            .status()
            .unwrap()
            .success()
    );
    let dir = out_dir.join("email-1");
    let readme = std::fs::read_to_string(dir.join("README.txt")).unwrap();
    let script = readme
        .split("python3 - <<'PY'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nPY\n").next())
        .expect("the README holds a python snippet");
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(&dir)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(printed.trim(), "signature 0 pass", "{readme}");
}
