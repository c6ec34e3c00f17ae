//! The router driven with `oneshot`, over a site written with trove-site alone.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use trove_site::{
    NumberRange, Person, PublishedAttachment, PublishedMessage, ReleaseWriter, SearchIndex,
    SigningKey, Site, sha256_hex,
};
use trove_web::{AppState, router};

fn message(number: u64, subject: &str, text: &str) -> PublishedMessage {
    PublishedMessage {
        format: trove_site::MESSAGE_FORMAT,
        number,
        release: 1,
        message_id: Some(format!("<{number}@example.com>")),
        date: Some("2001-05-14T09:10:00-07:00".into()),
        timestamp: Some(989_856_600 + number as i64),
        from: vec![Person {
            name: Some("Phillip Allen".into()),
            address: Some("phillip.allen@enron.com".into()),
        }],
        to: vec![Person {
            name: None,
            address: Some("john.lavorato@enron.com".into()),
        }],
        cc: vec![],
        subject: subject.into(),
        in_reply_to: vec![],
        references: vec![],
        headers: format!("Subject: {subject}\n"),
        text: text.into(),
        html: None,
        attachments: vec![],
        folders: vec!["allen-p/inbox".into()],
        charsets: vec!["us-ascii".into()],
        defects: vec![],
        raw_sha256: None,
        raw_size: None,
        dkim: vec![],
        arc: None,
        redaction: None,
    }
}

/// A site with one release of two emails, and email 3 written to disk without any
/// manifest (as if a release were interrupted): it must stay invisible.
fn build_site(dir: &Path) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let site = Site::open_or_create(dir, "Test archive", &key.verifying_key()).unwrap();
    let mut w = ReleaseWriter::new(
        &site,
        1,
        "First",
        "2026-01-01T00:00:00Z",
        NumberRange { first: 1, last: 2 },
    );
    let pdf = b"%PDF-1.4 <script>alert(1)</script>".to_vec();
    let mut m1 = message(
        1,
        "Gas prices in California",
        "The natural gas price rose sharply this week.",
    );
    m1.html = Some(trove_site_sanitised());
    m1.attachments = vec![PublishedAttachment {
        index: 1,
        filename: Some("report \"final\".html".into()),
        content_type: "text/html".into(),
        size: pdf.len() as u64,
        sha256: sha256_hex(&pdf),
    }];
    let raw = b"Subject: Gas prices in California\n\nThe natural gas price rose.\n";
    m1.dkim = vec![trove_site::PublishedDkim {
        domain: "gmail.com".into(),
        selector: "20120113".into(),
        algorithm: "rsa-sha256".into(),
        verdict: "pass".into(),
        reason: String::new(),
        key_bits: Some(2048),
        body_length_limit: None,
        body_length: Some(120),
        weak: None,
        key: Some(trove_site::PublishedKey {
            name: "20120113._domainkey.gmail.com".into(),
            txt: "k=rsa; p=MIIB".into(),
            source: "key archive keys.txt, supplied by the publisher".into(),
            private_key_published: false,
        }),
    }];
    m1.raw_sha256 = Some(sha256_hex(raw));
    m1.raw_size = Some(raw.len() as u64);
    let mut m2 = message(2, "Lunch", "See you at noon.");
    // What a broken header leaves in an address: text the search language cannot hold;
    // and an address written to climb out of a directory named after it.
    m2.cc = vec![
        Person {
            name: Some("Jeff Hines".into()),
            address: Some("jeff_hines@hine the arena. since".into()),
        },
        Person {
            name: None,
            address: Some("../../../escaped@example.org".into()),
        },
    ];
    m2.arc = Some(trove_site::PublishedArc {
        sets: 2,
        verdict: "pass".into(),
        reason: String::new(),
        seals: [(1, "scamorza.org", "ed"), (2, "manchego.org", "rsa")]
            .into_iter()
            .map(
                |(instance, domain, selector)| trove_site::PublishedArcSeal {
                    instance,
                    domain: domain.into(),
                    selector: selector.into(),
                    verdict: "pass".into(),
                    reason: String::new(),
                    key: Some(trove_site::PublishedKey {
                        name: format!("{selector}._domainkey.{domain}"),
                        txt: format!("p={selector}KEY"),
                        source: "key archive arc.keys, supplied by the publisher".into(),
                        private_key_published: false,
                    }),
                },
            )
            .collect(),
    });
    m2.attachments = vec![PublishedAttachment {
        index: 1,
        filename: None,
        content_type: "message/rfc822".into(),
        size: FORWARDED.len() as u64,
        sha256: sha256_hex(FORWARDED),
    }];
    let index = SearchIndex::open_or_create(&site.index_dir()).unwrap();
    let iw = index.writer().unwrap();
    w.add_message(&m1, Some(raw), &[(&m1.attachments[0], &pdf)])
        .unwrap();
    index.add(&iw, &m1, &[]).unwrap();
    w.add_message(&m2, None, &[(&m2.attachments[0], FORWARDED)])
        .unwrap();
    index.add(&iw, &m2, &[]).unwrap();
    w.finish(&key).unwrap();
    // Unreleased: on disk and even in the index, but no manifest names it.
    let m3 = message(3, "Secret merger plans", "unreleased-canary text");
    let json = serde_json::to_vec(&m3).unwrap();
    std::fs::write(dir.join(trove_site::message_path(3)), json).unwrap();
    index.add(&iw, &m3, &[]).unwrap();
    let mut iw = iw;
    iw.commit().unwrap();
}

/// An email forwarded as an attachment, with HTML that must not survive as active content.
const FORWARDED: &[u8] = b"From: Kenneth Lay <kenneth.lay@enron.com>\r\nTo: Board <board@enron.com>\r\nSubject: Quarterly numbers\r\nDate: Tue, 14 Aug 2001 10:00:00 -0500\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nThe numbers are attached.\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>The numbers <script>alert(1)</script><img src=\"https://tracker.example/p.gif\"></p>\r\n--x--\r\n";

#[tokio::test]
async fn an_attached_email_reads_as_an_email_and_its_html_is_sanitised() {
    let (_tmp, app) = app();
    let (_, _, body) = get(&app, "/emailid/2").await;
    assert!(body.contains("/emailid/2/attachments/1/email"), "{body}");
    let (status, _, body) = get(&app, "/emailid/2/attachments/1/email").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Quarterly numbers"), "{body}");
    assert!(body.contains("kenneth.lay@enron.com"), "{body}");
    assert!(body.contains("2001-08-14 10:00:00 -05:00"), "{body}");
    assert!(body.contains("The numbers are attached."), "{body}");
    assert!(!body.contains("<script"), "{body}");
    assert!(!body.contains("tracker.example"), "{body}");
    // Only an email attachment has this page; the PDF of email 1 does not.
    let (status, _, _) = get(&app, "/emailid/1/attachments/1/email").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&app, "/emailid/3/attachments/1/email").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// What the release step stores for HTML: already sanitised.
fn trove_site_sanitised() -> String {
    "<p>Hello <b>there</b></p><a href=\"https://example.com/\" rel=\"noopener noreferrer nofollow\">link</a>".into()
}

async fn get_bytes(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = app
        .clone()
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 10 << 20)
        .await
        .unwrap();
    (status, headers, bytes.to_vec())
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let (status, headers, bytes) = get_bytes(app, uri).await;
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn app() -> (tempfile::TempDir, axum::Router) {
    let tmp = tempfile::tempdir().unwrap();
    build_site(tmp.path());
    let state = AppState::open(tmp.path()).unwrap();
    (tmp, router(Arc::new(state)))
}

#[tokio::test]
async fn home_lists_releases_and_counts() {
    let (_tmp, app) = app();
    let (status, headers, body) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("2 emails published in 1 releases"), "{body}");
    assert!(body.contains("First"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("script-src"),
        "no scripts allowed at all: {csp}"
    );
}

#[tokio::test]
async fn email_page_shows_headers_text_and_sanitised_html() {
    let (_tmp, app) = app();
    let (status, _, body) = get(&app, "/emailid/1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Gas prices in California"));
    assert!(
        body.contains("Phillip Allen &lt;phillip.allen@enron.com&gt;"),
        "addresses are escaped"
    );
    assert!(body.contains("The natural gas price rose sharply"));
    assert!(body.contains("<b>there</b>"));
    assert!(body.contains("/emailid/1/attachments/1"));
    assert!(body.contains("/emailid/1/raw"));
    assert!(
        body.contains("Signed by gmail.com with a 2048-bit RSA key (selector 20120113); the body and the signed headers are unchanged since signing. Key from: key archive keys.txt, supplied by the publisher."),
        "{body}"
    );
    let (_, _, unsigned) = get(&app, "/emailid/2").await;
    assert!(unsigned.contains("carries no DKIM signature"));
    assert!(!body.contains("<script"));
}

/// Each address on an email page links to its person page, and that page answers; an
/// address no person page can take is shown without a link.
#[tokio::test]
async fn every_person_link_on_an_email_page_leads_to_a_page() {
    let (_tmp, app) = app();
    fn person_links(page: &str) -> Vec<String> {
        page.split("href=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .filter(|href| href.starts_with("/person/"))
            .map(str::to_string)
            .collect()
    }
    let (_, _, body) = get(&app, "/emailid/2").await;
    assert!(body.contains("Jeff Hines"), "{body}");
    let links = person_links(&body);
    assert_eq!(links.len(), 3, "{links:?}");
    for href in links {
        let (status, _, page) = get(&app, &href).await;
        assert_eq!(status, StatusCode::OK, "{href}: {page}");
        // A person page's correspondents too (Phillip Allen's include the broken one).
        for href in person_links(&page) {
            let (status, _, page) = get(&app, &href).await;
            assert_eq!(status, StatusCode::OK, "{href}: {page}");
        }
    }
    let (status, _, _) = get(&app, "/person/jeff_hines%40hine%20the%20arena").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The static copy takes every page there is, and skips the person page an address in
/// a broken header cannot have (it asked for it, and failed on the 400).
#[tokio::test]
async fn the_static_copy_is_written_whatever_the_addresses() {
    let site = tempfile::tempdir().unwrap();
    build_site(site.path());
    let tmp = tempfile::tempdir().unwrap();
    // The publisher's own path may climb; the copy's names may not.
    let out = tmp.path().join("a/b/../b/copy");
    let stats = trove_web::export::export_static(site.path(), &out, None, &|_, _| {})
        .await
        .unwrap();
    assert!(stats.pages > 0);
    let mut pages: Vec<String> = std::fs::read_dir(out.join("person"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "%2E%2E%2F%2E%2E%2F%2E%2E%2Fescaped%40example%2Eorg",
            "john.lavorato@enron.com",
            "phillip.allen@enron.com"
        ]
    );
    // Nothing was written beside the copy: "a" holds "b", which holds the copy alone.
    for (dir, only) in [(tmp.path().to_path_buf(), "a"), (tmp.path().join("a"), "b")] {
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [only], "{}", dir.display());
    }
    assert_eq!(
        std::fs::read_dir(tmp.path().join("a/b")).unwrap().count(),
        1
    );
}

#[tokio::test]
async fn unknown_and_unreleased_numbers_get_the_same_404() {
    let (_tmp, app) = app();
    let (s3, _, b3) = get(&app, "/emailid/3").await;
    let (s999, _, b999) = get(&app, "/emailid/999").await;
    let (s0, _, b0) = get(&app, "/emailid/0").await;
    let (sx, _, bx) = get(&app, "/emailid/abc").await;
    assert_eq!(s3, StatusCode::NOT_FOUND);
    assert_eq!((s3, &b3), (s999, &b999));
    assert_eq!((s3, &b3), (s0, &b0));
    assert_eq!((s3, &b3), (sx, &bx));
    assert!(!b3.contains("Secret"));
    for uri in ["/emailid/3/raw", "/emailid/3/attachments/1"] {
        let (s, _, b) = get(&app, uri).await;
        assert_eq!((s, &b), (StatusCode::NOT_FOUND, &b999), "{uri}");
    }
    // Nor does search see it, though the index holds it.
    let (_, _, body) = get(&app, "/search?q=unreleased-canary").await;
    assert!(body.contains("No emails match"), "{body}");
    let (_, _, body) = get(&app, "/search?q=").await;
    assert!(body.contains("2 emails match"), "{body}");
    assert!(!body.contains("Secret merger"));
}

#[tokio::test]
async fn attachments_are_downloads_never_active_content() {
    let (_tmp, app) = app();
    let (status, headers, body) = get(&app, "/emailid/1/attachments/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/octet-stream");
    let cd = headers["content-disposition"].to_str().unwrap();
    assert!(cd.starts_with("attachment;"), "{cd}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert!(body.starts_with("%PDF"));
    let (status, _, _) = get(&app, "/emailid/1/attachments/2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn raw_source_is_plain_text() {
    let (_tmp, app) = app();
    let (status, headers, body) = get(&app, "/emailid/1/raw").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(body.starts_with("Subject: Gas prices"));
    // Email 2 was published without raw source.
    let (status, _, _) = get(&app, "/emailid/2/raw").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn search_page_counts_snippets_and_explains_errors() {
    let (_tmp, app) = app();
    let (status, _, body) = get(&app, "/search?q=natural+gas").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("1 email matches"), "{body}");
    assert!(
        body.contains("<b>natural</b>"),
        "highlighted snippet: {body}"
    );
    let (status, _, body) = get(&app, "/search?q=from%3Aallen+-lunch&sort=newest").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("1 email matches"), "{body}");
    let (status, _, body) = get(&app, "/search?q=%22unclosed").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("at column 1"), "{body}");
    assert!(body.contains("never closed"), "{body}");
    let (status, _, body) = get(&app, "/search?q=&page=999999").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("2 emails match"),
        "deep pages answer at once: {body}"
    );
    let (_, _, body) = get(&app, "/search?q=").await;
    assert!(body.contains("<h3>DKIM</h3>"), "{body}");
    assert!(
        body.contains(r#"<a href="/search?q=dkim%3Apass">pass</a> <span class="count">1</span>"#),
        "a facet link narrows to dkim:pass: {body}"
    );
    assert!(
        body.contains(r#">none</a> <span class="count">1</span>"#),
        "{body}"
    );
    let (_, _, body) = get(&app, "/search?q=dkim%3Apass").await;
    assert!(body.contains("1 email matches"), "{body}");
    let (_, _, body) = get(&app, "/search?q=dkim%3Anone").await;
    assert!(
        body.contains("1 email matches"),
        "unreleased email 3 is not counted: {body}"
    );
    let (status, _, _) = get(&app, "/search?q=x&sort=sideways").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn release_page_lists_its_emails_and_manifest() {
    let (_tmp, app) = app();
    let (status, _, body) = get(&app, "/releases/1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Merkle root"));
    assert!(body.contains("/emailid/2"));
    assert!(!body.contains("/emailid/3"));
    let (status, _, _) = get(&app, "/releases/2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn evidence_bundle_holds_raw_keys_verdicts_and_instructions() {
    let (_tmp, app) = app();
    let (status, headers, bytes) = get_bytes(&app, "/emailid/1/evidence").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-tar");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut files = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
        files.insert(name, text);
    }
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        [
            "email-1/README.txt",
            "email-1/email-1.eml",
            "email-1/keys.txt",
            "email-1/verdicts.json"
        ]
    );
    assert!(files["email-1/email-1.eml"].starts_with("Subject: Gas prices"));
    assert_eq!(
        files["email-1/keys.txt"],
        "20120113._domainkey.gmail.com k=rsa; p=MIIB\n"
    );
    assert!(files["email-1/verdicts.json"].contains("\"verdict\": \"pass\""));
    assert!(files["email-1/README.txt"].contains("dkim.DKIM(raw)"));
    assert!(files["email-1/README.txt"].contains("Signed by gmail.com"));
    // An ARC chain is shown in words and its seal keys travel in the bundle.
    let (_, _, page) = get(&app, "/emailid/2").await;
    assert!(
        page.contains("ARC chain of 2 set(s), intact")
            && page.contains(
                "Sealed by 1 (scamorza.org, selector ed), 2 (manchego.org, selector rsa)."
            ),
        "{page}"
    );
    let (_, _, bytes) = get_bytes(&app, "/emailid/2/evidence").await;
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut names = Vec::new();
    let mut keys = String::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with("keys.txt") {
            std::io::Read::read_to_string(&mut entry, &mut keys).unwrap();
        }
        names.push(name);
    }
    assert!(names.contains(&"email-2/arc.json".to_string()), "{names:?}");
    assert_eq!(
        keys,
        "ed._domainkey.scamorza.org p=edKEY\nrsa._domainkey.manchego.org p=rsaKEY\n"
    );
    let (status, _, _) = get(&app, "/emailid/3/evidence").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn verify_page_and_release_files_let_anyone_check_the_site() {
    let (_tmp, app) = app();
    let (status, _, body) = get(&app, "/verify").await;
    assert_eq!(status, StatusCode::OK);
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let hex: String = key
        .verifying_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(body.contains(&hex), "{body}");
    assert!(body.contains("openssl pkeyutl -verify"));
    let (status, _, pem) = get(&app, "/public-key.pem").await;
    assert_eq!(status, StatusCode::OK);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let (status, headers, manifest) = get(&app, "/releases/1/manifest.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(manifest.contains("trove-release/1"));
    let (status, _, sig) = get_bytes(&app, "/releases/1/manifest.json.sig").await;
    assert_eq!(status, StatusCode::OK);
    let sig = trove_site::Signature::from_slice(&sig).expect("64 bytes");
    assert!(
        key.verifying_key()
            .verify_strict(manifest.as_bytes(), &sig)
            .is_ok(),
        "the served signature checks"
    );
    for uri in ["/releases/2/manifest.json", "/releases/x/manifest.json.sig"] {
        let (status, _, _) = get(&app, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

/// A pack is served whole (for mirrors) only while everything in it is signed and not
/// withdrawn: between a withdrawal's signed manifest and the pack's rewrite, it is not.
#[tokio::test]
async fn a_pack_is_served_only_while_all_it_holds_is_public() {
    let tmp = tempfile::tempdir().unwrap();
    build_site(tmp.path());
    let served = |dir: &Path| {
        let state = AppState::open(dir).unwrap();
        router(Arc::new(state))
    };
    let app = served(tmp.path());
    let (status, headers, pack) = get_bytes(&app, "/site/messages/0000/1.pack").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-cache");
    let files = trove_site::unpack("1.pack", &pack, |_| true).unwrap();
    let paths: Vec<&str> = files.iter().map(|(e, _)| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "messages/0000/1.eml",
            "messages/0000/1.json",
            "messages/0000/2.json"
        ]
    );
    // Email 3 was written loose with no manifest: no pack names it either.
    for unsigned in [
        "/site/messages/0000/3.pack",
        "/site/messages/0001/1000.pack",
    ] {
        assert_eq!(
            get(&app, unsigned).await.0,
            StatusCode::NOT_FOUND,
            "{unsigned}"
        );
    }

    // Release 2 withdraws email 2; its pack is not yet rewritten.
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let site = Site::open(tmp.path()).unwrap();
    let mut w = ReleaseWriter::new(
        &site,
        2,
        "Withdrawal",
        "2026-01-02T00:00:00Z",
        NumberRange { first: 3, last: 2 },
    );
    w.withdraw(trove_site::Withdrawal {
        number: 2,
        release: 1,
        reason: "court order".into(),
        files: vec![trove_site::message_path(2)],
    });
    let (manifest, _) = w.finish(&key).unwrap();
    let app = served(tmp.path());
    assert_eq!(
        get(&app, "/site/messages/0000/1.pack").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/site/messages/0000/2.json").await.0,
        StatusCode::NOT_FOUND
    );
    // Rewritten without it, the pack is served again, and holds no trace of email 2.
    trove_site::remove_withdrawn(&site, &manifest).unwrap();
    let (status, _, pack) = get_bytes(&app, "/site/messages/0000/1.pack").await;
    assert_eq!(status, StatusCode::OK);
    let files = trove_site::unpack("1.pack", &pack, |_| true).unwrap();
    assert!(files.iter().all(|(e, _)| e.path != "messages/0000/2.json"));
    assert!(
        files
            .iter()
            .all(|(_, b)| !String::from_utf8_lossy(b).contains("Lunch"))
    );
    assert_eq!(get(&app, "/emailid/1").await.0, StatusCode::OK);
}
