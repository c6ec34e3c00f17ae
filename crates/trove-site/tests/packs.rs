//! Sites as stored: a release's email files go into packs, an older site's loose files
//! stay readable, and `verify_site` checks both and what is in a pack.

use trove_site::{
    NumberRange, PublishedMessage, ReleaseWriter, SITE_FORMAT, SigningKey, Site, message_path,
    raw_path, verify_site,
};

fn message(number: u64, release: u32) -> PublishedMessage {
    let raw = format!("Subject: email {number}\n\nThe text of email {number}.\n");
    let mut m: PublishedMessage = serde_json::from_value(serde_json::json!({
        "format": 1, "number": number, "release": release, "message_id": null,
        "date": null, "timestamp": null, "from": [], "to": [], "cc": [],
        "subject": format!("email {number}"), "in_reply_to": [], "references": [],
        "headers": "", "text": format!("The text of email {number}."), "html": null,
        "attachments": [], "folders": [], "charsets": [], "defects": [],
    }))
    .unwrap();
    m.raw_sha256 = Some(trove_site::sha256_hex(raw.as_bytes()));
    m.raw_size = Some(raw.len() as u64);
    m
}

fn release(site: &Site, key: &SigningKey, k: u32, first: u64, last: u64) {
    let mut w = ReleaseWriter::new(
        site,
        k,
        "R",
        "2026-01-01T00:00:00Z",
        NumberRange { first, last },
    );
    for n in first..=last {
        let m = message(n, k);
        let raw = format!("Subject: email {n}\n\nThe text of email {n}.\n");
        w.add_message(&m, Some(raw.as_bytes()), &[]).unwrap();
    }
    w.finish(key).unwrap();
}

fn verified(site: &Site) -> String {
    let report = verify_site(site.root());
    assert_eq!(report.failure, None);
    report.lines.join("\n")
}

#[test]
fn an_older_sites_loose_files_stay_readable_and_its_next_release_packs() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[5u8; 32]);
    let site = Site::open_or_create(tmp.path(), "Packs", &key.verifying_key()).unwrap();
    // Release 1 spans two folders: one pack each.
    release(&site, &key, 1, 1, 1200);
    assert!(tmp.path().join("messages/0000/1.pack").exists());
    assert!(tmp.path().join("messages/0001/1000.pack").exists());
    assert!(!tmp.path().join(message_path(5)).exists());
    verified(&site);

    // Made into a format-1 site: every email file loose, no packs.
    let packed = site.packed_files().unwrap();
    for (_, entry) in &packed {
        let bytes = site.read_file(&entry.path).unwrap().unwrap();
        std::fs::write(tmp.path().join(&entry.path), bytes).unwrap();
    }
    for (pack, _) in &packed {
        let _ = std::fs::remove_file(pack);
    }
    let info = std::fs::read_to_string(tmp.path().join("site.json")).unwrap();
    std::fs::write(
        tmp.path().join("site.json"),
        info.replace(SITE_FORMAT, "trove-site/1"),
    )
    .unwrap();
    let old = Site::open(tmp.path()).unwrap();
    assert_eq!(old.info().format, "trove-site/1");
    assert!(site.packed_files().unwrap().is_empty());
    verified(&old);

    // Its next release starts in folder 0001, beside the loose files there.
    release(&old, &key, 2, 1201, 2100);
    let site = Site::open(tmp.path()).unwrap();
    assert_eq!(site.info().format, SITE_FORMAT);
    assert!(tmp.path().join("messages/0001/1201.pack").exists());
    assert!(tmp.path().join("messages/0002/2000.pack").exists());
    for n in [1, 999, 1000, 1200, 1201, 2100] {
        let json = site.read_file(&message_path(n)).unwrap().unwrap();
        let m: PublishedMessage = serde_json::from_slice(&json).unwrap();
        assert_eq!(m.number, n);
        let raw = site.read_file(&raw_path(n)).unwrap().unwrap();
        assert!(raw.starts_with(format!("Subject: email {n}\n").as_bytes()));
    }
    assert_eq!(site.read_file(&message_path(2101)).unwrap(), None);
    let lines = verified(&site);
    assert!(lines.contains("emails 1201..=2100"), "{lines}");
}

#[test]
fn verify_names_a_pack_holding_what_no_release_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[6u8; 32]);
    let site = Site::open_or_create(tmp.path(), "Packs", &key.verifying_key()).unwrap();
    release(&site, &key, 1, 1, 10);
    verified(&site);
    // A second pack with email 11, which release 1 does not list, written by a release
    // that never finished (no manifest, no signature).
    let mut w = ReleaseWriter::new(
        &site,
        2,
        "R",
        "2026-01-01T00:00:00Z",
        NumberRange {
            first: 11,
            last: 11,
        },
    );
    w.add_message(&message(11, 2), None, &[]).unwrap();
    let (_, _) = w.finish(&key).unwrap();
    std::fs::remove_file(tmp.path().join("releases/000002.json")).unwrap();
    std::fs::remove_file(tmp.path().join("releases/000002.json.sig")).unwrap();
    let failure = verify_site(tmp.path()).failure.unwrap();
    assert!(
        failure.contains("messages/0000/11.pack")
            && failure.contains("messages/0000/11.json")
            && failure.contains("not listed"),
        "{failure}"
    );
    // Written again, the release replaces that pack rather than adding a second.
    release(&site, &key, 2, 11, 12);
    verified(&site);
}

/// Attachments are named by their hash: a later release that has one an earlier release
/// wrote lists it again and leaves its file as it was, and writes one that is new into the
/// folder the earlier release made.
#[test]
fn a_later_release_keeps_a_shared_attachment_and_writes_a_new_one_beside_it() {
    use std::os::unix::fs::MetadataExt;
    use trove_site::{PublishedAttachment, attachment_path, sha256_hex};

    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[6u8; 32]);
    let site = Site::open_or_create(tmp.path(), "Attachments", &key.verifying_key()).unwrap();
    let shared = b"an attachment both releases have".to_vec();
    let folder = |bytes: &[u8]| sha256_hex(bytes)[..2].to_string();
    // A second attachment whose hash puts it in the shared one's folder.
    let fresh = (0..)
        .map(|i| format!("a new attachment {i}").into_bytes())
        .find(|b| folder(b) == folder(&shared))
        .unwrap();
    let publish = |k: u32, n: u64, files: &[&[u8]]| {
        let mut m = message(n, k);
        m.attachments = files
            .iter()
            .enumerate()
            .map(|(i, bytes)| PublishedAttachment {
                index: i as u32 + 1,
                filename: Some(format!("{i}.txt")),
                content_type: "text/plain".into(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect();
        let listed: Vec<(&PublishedAttachment, &[u8])> =
            m.attachments.iter().zip(files.iter().copied()).collect();
        let mut w = ReleaseWriter::new(
            &site,
            k,
            "R",
            "2026-01-01T00:00:00Z",
            NumberRange { first: n, last: n },
        );
        let raw = format!("Subject: email {n}\n\nThe text of email {n}.\n");
        w.add_message(&m, Some(raw.as_bytes()), &listed).unwrap();
        let (manifest, _) = w.finish(&key).unwrap();
        manifest
    };
    let path = |bytes: &[u8]| tmp.path().join(attachment_path(&sha256_hex(bytes)));

    publish(1, 1, &[&shared]);
    let first = std::fs::metadata(path(&shared)).unwrap().ino();
    let second = publish(2, 2, &[&shared, &fresh]);
    assert_eq!(std::fs::metadata(path(&shared)).unwrap().ino(), first);
    assert_eq!(std::fs::read(path(&fresh)).unwrap(), fresh);
    for bytes in [&shared, &fresh] {
        let listed = attachment_path(&sha256_hex(bytes));
        assert!(second.files.iter().any(|f| f.path == listed), "{listed}");
    }
    verified(&site);
}
