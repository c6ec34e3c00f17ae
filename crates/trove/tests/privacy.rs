//! Personal data end to end: distinct values planted in every place an email can carry
//! them go through review, policy and release, and then appear nowhere in the site (every
//! file, and the search index asked for them) and behind no HTTP route.

use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;

mod common;
use common::{Server, files_under, p, run, trove};

/// Values that must never be published, each planted once, and where.
const PLANTED: &[(&str, &str)] = &[
    ("ssn", "219-45-8873"),                              // plain text
    ("card", "4556 7375 8689 9855"),                     // plain text
    ("iban", "DE89 3704 0044 0532 0130 00"),             // plain text
    ("passport", "K7391046"),                            // plain text, after "Passport No."
    ("password", "Tr0ub4dor-3x"),                        // plain text, after "password:"
    ("ssn", "312-58-4471"),                              // HTML, split by markup
    ("card", "6011 0009 9013 9424"),                     // HTML
    ("ssn", "404-33-9182"),                              // quoted-printable, across a soft break
    ("iban", "GB33BUKB20201555555555"),                  // base64 body
    ("card", "5425 2334 3010 9903"),                     // base64 text attachment
    ("ssn", "521-77-3490"),                              // encoded-word subject
    ("list:donors", "Marguerite Quenneville"),           // publisher's name list
    ("withheld", "ZEBRA-CANARY-7781"),                   // in an email withheld by override
    ("ssn", "623-41-7789"),                              // only in an encoded-word X- header
    ("ssn", "=?utf-8?b?QWt0ZSBTU04gNjIzLTQxLTc3ODk=?="), // that header as written
    // Attachments of email 9, made by real producers (trove-mail/tests/data/attachments).
    ("ssn", "534-27-1986"),                        // Chromium PDF
    ("card", "4556 7375 8611 2341"),               // Chromium PDF
    ("iban", "DE44 5001 0517 5407 3249 31"),       // ReportLab PDF
    ("ssn", "318-52-6604"),                        // DOCX body
    ("card", "5400 1122 3344 5566"),               // DOCX table
    ("password", "Quill-Harbor-58"),               // DOCX header
    ("passport", "X4729185"),                      // DOCX footer
    ("ssn", "287-39-5514"),                        // PPTX slide
    ("card", "4556 9876 5432 1015"),               // PPTX notes
    ("ssn", "401-86-2275"),                        // XLSX cell
    ("card", "6011007766554439"),                  // XLSX number cell
    ("iban", "FR76 3000 6000 0112 3456 7890 189"), // ODT
    ("ssn", "463-20-8851"),                        // ODS
    ("password", MARKUP_ONLY),                     // only in an HTML attribute
];

/// A value only in an HTML attribute: not in the visible text ingest scans (so review
/// does not list it), but redaction masks the markup, and release must not skip that.
const MARKUP_ONLY: &str = "Lantern-Mosaic-93";

/// The documents attached to email 9, with the type each is mailed as.
const DOCUMENTS: &[(&str, &str)] = &[
    ("chromium.pdf", "application/pdf"),
    ("reportlab.pdf", "application/octet-stream"),
    (
        "form.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("deck.pptx", "application/octet-stream"),
    (
        "donors.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("letter.odt", "application/vnd.oasis.opendocument.text"),
    (
        "payroll.ods",
        "application/vnd.oasis.opendocument.spreadsheet",
    ),
];

/// An email with every document attached, and a PNG image nothing can read.
fn documents_email() -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| {
        let s = base64::engine::general_purpose::STANDARD.encode(bytes);
        s.as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../trove-mail/tests/data/attachments"
    );
    let mut mail = String::from(
        "From: Sender 9 <s9@example.org>\nTo: r@example.org\nSubject: Documents\nDate: Tue, 9 Jan 2001 10:00:00 +0000\nMessage-ID: <planted-9@example.org>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"d\"\n\n--d\nContent-Type: text/plain\n\nThe documents, and a photo.\n",
    );
    for (name, content_type) in DOCUMENTS {
        let bytes = std::fs::read(format!("{dir}/{name}")).unwrap();
        mail += &format!(
            "--d\nContent-Type: {content_type}; name=\"{name}\"\nContent-Disposition: attachment; filename=\"{name}\"\nContent-Transfer-Encoding: base64\n\n{}\n",
            b64(&bytes)
        );
    }
    // A 1x1 PNG.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\x00\x01\x01\x01\0\x18\xdd\x8d\xb4\0\0\0\0IEND\xaeB`\x82";
    mail += &format!(
        "--d\nContent-Type: image/png; name=\"photo.png\"\nContent-Disposition: attachment; filename=\"photo.png\"\nContent-Transfer-Encoding: base64\n\n{}\n--d--\n",
        b64(png)
    );
    mail
}

/// Values that look alike but fail their checks: they must be published unchanged.
const DECOYS: &[&str] = &[
    "666-12-3456",
    "4556 7375 8689 9856",
    "GB33BUKB20201555555556",
];

fn emails() -> Vec<(&'static str, String)> {
    let head = |n: u32, subject: &str| {
        format!(
            "From: Sender {n} <s{n}@example.org>\nTo: r@example.org\nSubject: {subject}\nDate: Mon, {n} Jan 2001 10:00:00 +0000\nMessage-ID: <planted-{n}@example.org>\nMIME-Version: 1.0\n"
        )
    };
    vec![
        (
            "1.eml",
            format!(
                "{}Content-Type: text/plain\n\nHer SSN is 219-45-8873 and the card 4556 7375 8689 9855.\nIBAN DE89 3704 0044 0532 0130 00. Passport No. K7391046.\nLogin password: Tr0ub4dor-3x\nDonor: Marguerite Quenneville.\nNot personal: 666-12-3456, 4556 7375 8689 9856, GB33BUKB20201555555556.\n",
                head(1, "Donor file")
            ),
        ),
        (
            "2.eml",
            format!(
                "{}Content-Type: multipart/alternative; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nSee the HTML.\n--b\nContent-Type: text/html\n\n<html><body><p>SSN 312-58-<b>4471</b></p><p>Card 6011 0009 9013 9424</p></body></html>\n--b--\n",
                head(2, "HTML form")
            ),
        ),
        (
            "3.eml",
            format!(
                "{}Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nThe applicant's SSN: 404-33=\n-9182 (confirmed).\n",
                head(3, "Quoted")
            ),
        ),
        (
            "4.eml",
            format!(
                "{}Content-Type: multipart/mixed; boundary=\"m\"\n\n--m\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nV2lyZSB0aGUgZnVuZHMgdG8gR0IzM0JVS0IyMDIwMTU1NTU1NTU1NSB0b2RheS4K\n--m\nContent-Type: text/plain; name=\"card.txt\"\nContent-Disposition: attachment; filename=\"card.txt\"\nContent-Transfer-Encoding: base64\n\nQ2FyZCBvbiBmaWxlOiA1NDI1IDIzMzQgMzAxMCA5OTAzCg==\n--m--\n",
                head(4, "Base64")
            ),
        ),
        (
            "5.eml",
            format!(
                "{}Content-Type: text/plain\n\nForm attached.\n",
                head(
                    5,
                    "=?utf-8?b?UmU6IEZvcm11bGFyIGbDvHIgU1NOIDUyMS03Ny0zNDkw?="
                )
            ),
        ),
        (
            "6.eml",
            format!(
                "{}Content-Type: text/plain\n\nSealed exhibit ZEBRA-CANARY-7781.\n",
                head(6, "Sealed")
            ),
        ),
        (
            "8.eml",
            format!(
                "{}X-Case-Note: =?utf-8?b?QWt0ZSBTU04gNjIzLTQxLTc3ODk=?=\nContent-Type: text/plain\n\nNothing here.\n",
                head(8, "Note")
            ),
        ),
        ("9.eml", documents_email()),
        (
            "10.eml",
            format!(
                "{}Content-Type: text/html\n\n<html><body><p><a title=\"password: {MARKUP_ONLY}\" href=\"#\">the link</a></p></body></html>\n",
                head(10, "Markup")
            ),
        ),
        (
            "7.eml",
            format!(
                "{}Content-Type: text/plain\n\nCall me on 713-853-7041 about lunch.\n",
                head(7, "Lunch")
            ),
        ),
    ]
}

/// The forms a value can take in a file: as written, and without separators.
fn forms(value: &str) -> Vec<String> {
    let compact: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    vec![value.to_string(), compact]
}

/// The planted emails written under `dir/mail`, and a new workspace `dir/ws` (not yet
/// ingested, so that a test can set its policy first).
fn planted_mail_and_workspace(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    for (name, text) in emails() {
        std::fs::write(mail.join(name), text).unwrap();
    }
    let ws = dir.join("ws");
    run(&["init", p(&ws)]);
    (mail, ws)
}

#[test]
fn planted_personal_data_is_found_masked_and_published_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let (mail, ws) = planted_mail_and_workspace(tmp.path());
    // The publisher's policy: the default, plus a name list, phones blocking, and an
    // override that withholds one email.
    let policy = std::fs::read_to_string(ws.join("policy.toml"))
        .unwrap()
        .replace("phone = \"allow\"", "phone = \"block\"")
        .replace(
            "unreadable = \"allow\"",
            "unreadable = \"withhold-attachment\"",
        )
        + "\n[[lists]]\nname = \"donors\"\nterms = [\"Marguerite Quenneville\"]\naction = \"mask\"\n\
           \n[[overrides]]\nmessage_id = \"<planted-6@example.org>\"\naction = \"withhold-message\"\nreason = \"court order\"\n";
    std::fs::write(ws.join("policy.toml"), &policy).unwrap();
    run(&["ingest", p(&ws), p(&mail)]);

    // Review finds every planted value, with what the policy does.
    let out = run(&[
        "review",
        p(&ws),
        "--json",
        "--csv",
        p(&tmp.path().join("f.csv")),
    ]);
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = review["findings"].as_array().unwrap();
    for (kind, value) in PLANTED
        .iter()
        .filter(|(k, v)| *k != "withheld" && !v.starts_with("=?") && *v != MARKUP_ONLY)
    {
        assert!(
            findings.iter().any(|f| f["kind"] == *kind
                && f["value"].as_str().unwrap().replace('\n', "") == value.replace('\n', "")
                && f["action"] == "mask"),
            "{kind} {value} not found: {findings:#?}"
        );
    }
    for decoy in DECOYS {
        assert!(
            !findings.iter().any(|f| f["value"] == *decoy),
            "decoy {decoy} taken for personal data"
        );
    }
    assert_eq!(
        review["next_release"]["blocked"].as_array().unwrap().len(),
        1
    );
    let csv = std::fs::read_to_string(tmp.path().join("f.csv")).unwrap();
    assert!(
        csv.starts_with("kind,action,confidence,content_id"),
        "{csv}"
    );
    assert!(csv.contains("219-45-8873"));

    // A phone marked block stops the release, and says which email.
    let out = trove().args(["release", p(&ws), "--all"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("release refused")
            && err.contains("phone")
            && err.contains("planted-7@example.org"),
        "{err}"
    );
    assert!(
        !ws.join("site/releases").exists() || files_under(&ws.join("site/messages")).is_empty()
    );

    // The publisher decides that email: then the release goes through.
    let policy =
        policy + "\n[[overrides]]\nmessage_id = \"<planted-7@example.org>\"\naction = \"allow\"\n";
    std::fs::write(ws.join("policy.toml"), &policy).unwrap();
    run(&["release", p(&ws), "--all"]);
    let site = ws.join("site");
    run(&["verify", p(&site)]);

    // Nothing planted is in any file of the site.
    // Emails' files are read out of their packs.
    let files = common::site_files(&site);
    assert!(files.len() > 10);
    for (file, bytes) in &files {
        // A document keeps its text in compressed streams: read it as trove would.
        let name = file.rsplit('/').next();
        let text = String::from_utf8_lossy(bytes).into_owned()
            + trove_mail::extract::attachment_text("", name, bytes)
                .text()
                .unwrap_or_default();
        for (_, value) in PLANTED {
            for form in forms(value) {
                assert!(!text.contains(&form), "{form} is in {file}");
            }
        }
    }
    // Nor does the index answer for them (its stored fields are compressed; ask it).
    for (_, value) in PLANTED {
        let words: Vec<&str> = value
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let query = format!("\"{}\"", words.join(" "));
        let out = run(&["search", p(&site), &query, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["total"], 0, "the index finds {query}");
    }
    // The decoys are published as written.
    let out = run(&["search", p(&site), "\"666 12 3456\"", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["total"],
        1
    );

    // The register counts, and says nothing else.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(site.join("releases/000001.json")).unwrap()).unwrap();
    let register = &manifest["register"];
    assert_eq!(
        register["messages_withheld"]["court order"], 1,
        "{register}"
    );
    // Text, quoted-printable, subject and the encoded X- header (the one split by HTML
    // markup withholds the HTML part instead).
    assert_eq!(register["spans_masked"]["ssn"], 4, "{register}");
    // card.txt, the seven documents of email 9 (each under the kind of its first value to
    // mask) and the image nothing could read.
    let withheld = register["attachments_withheld"].as_object().unwrap();
    assert_eq!(
        withheld.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        9,
        "{register}"
    );
    assert_eq!(withheld["unreadable"], 1, "{register}");
    // Seven masked emails, and email 10 whose markup alone held a value.
    assert_eq!(register["raw_sources_withheld"], 8, "{register}");
    assert_eq!(
        manifest["numbers"]["last"], 9,
        "the withheld email takes no number"
    );

    // No HTTP route shows them either.
    let server = Server::start(&site);
    let mut routes: Vec<String> = vec![
        "/".into(),
        "/releases".into(),
        "/releases/1".into(),
        "/releases/1/manifest.json".into(),
        "/verify".into(),
    ];
    for n in 1..=10 {
        for suffix in ["", "/raw", "/evidence"] {
            routes.push(format!("/emailid/{n}{suffix}"));
        }
        for a in 1..=9 {
            routes.push(format!("/emailid/{n}/attachments/{a}"));
        }
    }
    for (_, value) in PLANTED {
        routes.push(format!("/search?q={}", value.replace(' ', "+")));
    }
    let mut statuses = Vec::new();
    for route in &routes {
        let (status, body) = server.get(route);
        statuses.push((route.clone(), status));
        let mut text = String::from_utf8_lossy(&body).into_owned();
        if let Some(t) = trove_mail::extract::attachment_text("", None, &body).text() {
            text.push_str(t);
        }
        if route.ends_with("/evidence") && status == 200 {
            // A tar: read every member.
            let mut archive = tar::Archive::new(&body[..]);
            for entry in archive.entries().unwrap() {
                let mut s = String::new();
                let _ = entry.unwrap().read_to_string(&mut s);
                text.push_str(&s);
            }
        }
        for (_, value) in PLANTED {
            // The search page repeats the query it was given; look past the form.
            let shown = if route.starts_with("/search") {
                text.split("</form>").nth(1).unwrap_or_default().to_string()
            } else {
                text.clone()
            };
            assert!(!shown.contains(value), "{value} behind {route}");
        }
    }
    let status_of = |r: &str| statuses.iter().find(|(route, _)| route == r).unwrap().1;
    assert_eq!(
        status_of("/emailid/1/raw"),
        404,
        "a redacted email has no raw source"
    );
    assert_eq!(
        status_of("/emailid/10"),
        404,
        "only nine emails were released"
    );
    let (_, page) = server.get("/emailid/1");
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("[SSN REDACTED]") && page.contains("Redacted before publication"),
        "{page}"
    );
}

/// Findings follow the policy: a list added after ingest is found by the next review (a
/// rescan of every original), and a review with the policy unchanged does not rescan.
#[test]
fn a_list_added_after_ingest_is_found_by_the_next_review() {
    let tmp = tempfile::tempdir().unwrap();
    let (mail, ws) = planted_mail_and_workspace(tmp.path());
    run(&["ingest", p(&ws), p(&mail)]);
    let kinds = |ws: &std::path::Path| -> Vec<String> {
        let out = run(&["review", p(ws), "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!kinds(&ws).contains(&"list:donors".to_string()));
    let policy = std::fs::read_to_string(ws.join("policy.toml")).unwrap()
        + "\n[[lists]]\nname = \"donors\"\nterms = [\"Marguerite Quenneville\"]\naction = \"mask\"\n";
    std::fs::write(ws.join("policy.toml"), policy).unwrap();
    assert!(kinds(&ws).contains(&"list:donors".to_string()));
    let catalogue = ws.join("catalogue.sqlite");
    let rescans = rescans_logged(&catalogue);
    kinds(&ws);
    assert_eq!(
        rescans_logged(&catalogue),
        rescans,
        "an unchanged policy does not rescan"
    );
    assert_eq!(rescans, 1, "one rescan, after the list was added");
}

/// How many rescans the workspace log records. trove's `status` does not show them, so
/// the catalogue is asked directly, with Python's sqlite3.
fn rescans_logged(db: &std::path::Path) -> u64 {
    sql(
        db,
        "SELECT count(*) FROM log WHERE command = 'findings-rescan'",
    )
    .parse()
    .unwrap()
}

/// Runs one SQL statement on the catalogue `db` (with Python's sqlite3, not trove's
/// code) and returns the first column of its first row, if any, committing any change.
fn sql(db: &std::path::Path, statement: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\nc = sqlite3.connect(sys.argv[1])\nrow = c.execute(sys.argv[2]).fetchone()\nc.commit()\nprint(row[0] if row else '')",
        ])
        .arg(db)
        .arg(statement)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Ingest keeps the text it read from documents, and a release indexes that text instead
/// of reading the documents again; where the workspace kept none (an older ingest), the
/// release reads them.
#[test]
fn a_release_indexes_the_document_text_ingest_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let mail = tmp.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    std::fs::write(mail.join("documents.eml"), documents_email()).unwrap();
    let total = |site: &std::path::Path, q: &str| -> u64 {
        let out = run(&["search", p(site), q, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["total"].as_u64().unwrap()
    };
    for kept in [true, false] {
        let ws = tmp.path().join(if kept { "kept" } else { "older" });
        run(&["init", p(&ws)]);
        // Everything allowed, so that no document is withheld from the index.
        let policy = std::fs::read_to_string(ws.join("policy.toml"))
            .unwrap()
            .replace("= \"mask\"", "= \"allow\"")
            .replace("= \"withhold-attachment\"", "= \"allow\"");
        std::fs::write(ws.join("policy.toml"), policy).unwrap();
        run(&["ingest", p(&ws), p(&mail)]);
        let db = ws.join("catalogue.sqlite");
        // Texts, unreadable attachments and texts holding the tampered word.
        let counts = || {
            [
                "count(text)",
                "sum(text IS NULL)",
                "sum(text LIKE '%zebracorn%')",
            ]
            .map(|c| sql(&db, &format!("SELECT {c} FROM attachment_texts")))
        };
        let documents = DOCUMENTS.len().to_string();
        // Every document read, and the PNG kept as unreadable.
        assert_eq!(counts(), [documents.as_str(), "1", "0"]);
        if kept {
            // A word only the kept text holds shows which text the release indexed.
            sql(
                &db,
                "UPDATE attachment_texts SET text = text || ' zebracornkept' WHERE text IS NOT NULL",
            );
        } else {
            sql(&db, "DELETE FROM attachment_texts");
        }
        run(&["release", p(&ws), "--all"]);
        let site = ws.join("site");
        assert_eq!(
            total(&site, "security"),
            1,
            "the form's words, kept = {kept}"
        );
        assert_eq!(total(&site, "zebracornkept"), kept as u64);
        if kept {
            // A rescan (the lists changed) reads the documents again and replaces the
            // kept texts with its reading.
            let policy = std::fs::read_to_string(ws.join("policy.toml")).unwrap()
                + "\n[[lists]]\nname = \"extra\"\nterms = [\"Nobody Atall\"]\naction = \"mask\"\n";
            std::fs::write(ws.join("policy.toml"), policy).unwrap();
            run(&["review", p(&ws), "--json"]);
            assert_eq!(rescans_logged(&db), 1);
            assert_eq!(counts(), [documents.as_str(), "1", "0"]);
        }
    }
}
