//! `trove verify`: checks a site the way a mirror or a court would.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use ed25519_dalek::{Signature, Verifier};

use crate::{Site, manifest_path, merkle_root, sha256_hex, signature_path};

/// What was checked, for the report a verifier reads.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// One line per release: number, title, files, what was checked.
    pub lines: Vec<String>,
    pub releases: u32,
    pub files: u64,
    pub emails: u64,
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
    let mut listed: HashSet<String> = HashSet::new();
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
        if manifest.numbers.first != next_number || manifest.numbers.last < manifest.numbers.first {
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
            let path = root.join(&f.path);
            if f.path.contains("..") || f.path.starts_with('/') {
                return report.fail(format!(
                    "{}: lists a path outside the site: {}",
                    mpath.display(),
                    f.path
                ));
            }
            match fs::read(&path) {
                Ok(b) if sha256_hex(&b) == f.sha256 && b.len() as u64 == f.size => {}
                Ok(_) => {
                    return report.fail(format!(
                        "{}: changed (its SHA-256 differs from release {k}'s manifest)",
                        path.display()
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return report.fail(format!(
                        "{}: missing (listed in release {k})",
                        path.display()
                    ));
                }
                Err(e) => return report.fail(format!("{}: {e}", path.display())),
            }
            listed.insert(f.path.clone());
            report.files += 1;
        }
        report.lines.push(format!(
            "release {k} \"{}\" ({}): signature ok, chain ok, emails {}..={}, {} files ok, Merkle root {}",
            manifest.title,
            manifest.published_at,
            manifest.numbers.first,
            manifest.numbers.last,
            manifest.files.len(),
            &manifest.merkle_root[..16]
        ));
        report.releases = k;
        report.emails += manifest.numbers.count();
        next_number = manifest.numbers.last + 1;
        previous_hash = Some(sha256_hex(&bytes));
    }
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
            if !listed.contains(&rel) {
                return report.fail(format!(
                    "{}: not listed in any signed release",
                    entry.path().display()
                ));
            }
        }
    }
    report
}
