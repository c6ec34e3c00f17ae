//! `trove verify`: checks a site the way a mirror or a court would.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use ed25519_dalek::{Signature, Verifier};

use crate::{FileEntry, Site, manifest_path, merkle_root, sha256_hex, signature_path};

/// What was checked, for the report a verifier reads.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// One line per release: number, title, files, what was checked.
    pub lines: Vec<String>,
    pub releases: u32,
    pub files: u64,
    pub emails: u64,
    /// Emails withdrawn after publication (counted in `emails` too).
    pub emails_withdrawn: u64,
    /// The first problem found, naming the file. `None` when everything checked out.
    pub failure: Option<String>,
}

impl VerifyReport {
    fn fail(mut self, problem: String) -> VerifyReport {
        self.failure = Some(problem);
        self
    }
}

/// Checks every manifest's signature, the chain between manifests, the numbering, every
/// listed file's hash, and that no published file is left unlisted by any manifest.
pub fn verify_site(root: &Path) -> VerifyReport {
    let report = VerifyReport::default();
    let site = match Site::open(root) {
        Ok(s) => s,
        Err(e) => return report.fail(e.to_string()),
    };
    let key = match site.verifying_key() {
        Ok(k) => k,
        Err(e) => return report.fail(e.to_string()),
    };
    check(root, &site, &key, report)
}

fn check(
    root: &Path,
    site: &Site,
    key: &ed25519_dalek::VerifyingKey,
    mut report: VerifyReport,
) -> VerifyReport {
    let mut previous_hash: Option<String> = None;
    let mut next_number = 1;
    // What the chain says should be there now: each path with the release that last
    // listed it; a withdrawal takes a path out until a later release lists it again.
    let mut live: BTreeMap<String, (u32, FileEntry)> = BTreeMap::new();
    let mut withdrawn: BTreeMap<String, u32> = BTreeMap::new();
    let mut emails_withdrawn = 0;
    for k in 1.. {
        let mpath = root.join(manifest_path(k));
        let bytes = match fs::read(&mpath) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return report.fail(format!("{}: {e}", mpath.display())),
        };
        let spath = root.join(signature_path(k));
        let sig = match fs::read(&spath) {
            Ok(s) => s,
            Err(e) => return report.fail(format!("{}: {e}", spath.display())),
        };
        let sig = match Signature::from_slice(&sig) {
            Ok(s) => s,
            Err(_) => return report.fail(format!("{}: not an Ed25519 signature", spath.display())),
        };
        if key.verify(&bytes, &sig).is_err() {
            return report.fail(format!(
                "{}: signature does not match (manifest changed, or signed by another key)",
                mpath.display()
            ));
        }
        let manifest = match crate::Manifest::from_bytes(&bytes) {
            Ok(m) => m,
            Err(e) => return report.fail(format!("{}: {e}", mpath.display())),
        };
        if manifest.release != k {
            return report.fail(format!(
                "{}: says it is release {}",
                mpath.display(),
                manifest.release
            ));
        }
        if manifest.public_key != site.info().public_key {
            return report.fail(format!("{}: names another signing key", mpath.display()));
        }
        if manifest.previous != previous_hash {
            return report.fail(format!(
                "{}: chain broken: previous manifest hash is {:?}, expected {:?}",
                mpath.display(),
                manifest.previous,
                previous_hash
            ));
        }
        // A release that only withdraws adds no number: its range is empty (last = first - 1).
        if manifest.numbers.first != next_number
            || manifest.numbers.last + 1 < manifest.numbers.first
        {
            return report.fail(format!(
                "{}: numbers {}..={} do not follow on from {}",
                mpath.display(),
                manifest.numbers.first,
                manifest.numbers.last,
                next_number - 1
            ));
        }
        if merkle_root(&manifest.files) != manifest.merkle_root {
            return report.fail(format!(
                "{}: Merkle root does not match its file list",
                mpath.display()
            ));
        }
        for f in &manifest.files {
            if f.path.contains("..") || f.path.starts_with('/') {
                return report.fail(format!(
                    "{}: lists a path outside the site: {}",
                    mpath.display(),
                    f.path
                ));
            }
            withdrawn.remove(&f.path);
            live.insert(f.path.clone(), (k, f.clone()));
        }
        for w in &manifest.withdrawn {
            if w.number >= next_number {
                return report.fail(format!(
                    "{}: withdraws email {}, which was never published",
                    mpath.display(),
                    w.number
                ));
            }
            for path in &w.files {
                live.remove(path);
                withdrawn.insert(path.clone(), k);
            }
            emails_withdrawn += 1;
        }
        let withdrawals = match manifest.withdrawn.len() {
            0 => String::new(),
            n => format!(", {n} withdrawn"),
        };
        let emails = match manifest.numbers.count() {
            0 => "no new emails".to_string(),
            _ => format!(
                "emails {}..={}",
                manifest.numbers.first, manifest.numbers.last
            ),
        };
        report.lines.push(format!(
            "release {k} \"{}\" ({}): signature ok, chain ok, {emails}{withdrawals}, {} files listed, Merkle root {}",
            manifest.title,
            manifest.published_at,
            manifest.files.len(),
            &manifest.merkle_root[..16]
        ));
        report.releases = k;
        report.emails += manifest.numbers.count();
        next_number = manifest.numbers.last + 1;
        previous_hash = Some(sha256_hex(&bytes));
    }
    for (path, (k, f)) in &live {
        let full = root.join(path);
        match fs::read(&full) {
            Ok(b) if sha256_hex(&b) == f.sha256 && b.len() as u64 == f.size => {}
            Ok(_) => {
                return report.fail(format!(
                    "{}: changed (its SHA-256 differs from release {k}'s manifest)",
                    full.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return report.fail(format!(
                    "{}: missing (listed in release {k})",
                    full.display()
                ));
            }
            Err(e) => return report.fail(format!("{}: {e}", full.display())),
        }
        report.files += 1;
    }
    for (path, k) in &withdrawn {
        if root.join(path).exists() {
            return report.fail(format!(
                "{}: withdrawn by release {k}, but still present",
                root.join(path).display()
            ));
        }
    }
    report.emails_withdrawn = emails_withdrawn;
    // Anything under messages/ or attachments/ that no manifest vouches for is an intruder.
    for dir in ["messages", "attachments"] {
        let top = root.join(dir);
        if !top.exists() {
            continue;
        }
        for entry in walkdir::WalkDir::new(&top).sort_by_file_name() {
            let entry = match entry {
                Ok(e) => e,
                // An unreadable folder could hide an intruder: that is a failure too.
                Err(e) => return report.fail(format!("{}: cannot be read: {e}", top.display())),
            };
            if entry.file_type().is_dir() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            if !live.contains_key(&rel) {
                return report.fail(format!(
                    "{}: not listed in any signed release",
                    entry.path().display()
                ));
            }
        }
    }
    report
}
