//! `trove verify`: checks a site the way a mirror or a court would.

use std::fs;
use std::path::Path;

use crate::{Chain, LiveFiles, Site, manifest_path, sha256_hex, signature_path};

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
    check(&site, &key, report)
}

fn check(site: &Site, key: &ed25519_dalek::VerifyingKey, mut report: VerifyReport) -> VerifyReport {
    let root = site.root();
    let mut chain = Chain::default();
    // What the chain says should be there now, and what it says is gone.
    let mut live = LiveFiles::default();
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
        let manifest = match chain.accept(&bytes, &sig, key) {
            Ok(m) => m,
            Err(e) => return report.fail(format!("{}: {e}", mpath.display())),
        };
        live.apply(&manifest);
        emails_withdrawn += manifest.withdrawn.len() as u64;
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
    }
    // Each file as a reader gets it, from its pack or as a file of its own.
    for (path, (k, f)) in &live.files {
        let full = root.join(path);
        match site.read_file(path) {
            Ok(Some(b)) if sha256_hex(&b) == f.sha256 && b.len() as u64 == f.size => {}
            Ok(Some(_)) => {
                return report.fail(format!(
                    "{}: changed (its SHA-256 differs from release {k}'s manifest)",
                    full.display()
                ));
            }
            Ok(None) => {
                return report.fail(format!(
                    "{}: missing (listed in release {k})",
                    full.display()
                ));
            }
            // A pack whose frame no longer decompresses to the file: changed too.
            Err(e) => {
                return report.fail(format!(
                    "{}: changed or damaged (listed in release {k}): {e}",
                    full.display()
                ));
            }
        }
        report.files += 1;
    }
    for (path, k) in &live.withdrawn {
        match site.read_file(path) {
            Ok(None) => {}
            Ok(Some(_)) => {
                return report.fail(format!(
                    "{}: withdrawn by release {k}, but still present",
                    root.join(path).display()
                ));
            }
            Err(e) => return report.fail(e.to_string()),
        }
    }
    // What the packs hold must be listed too, each in the folder its path names (the
    // only one a reader looks in).
    let packed = match site.packed_files() {
        Ok(p) => p,
        Err(e) => return report.fail(e.to_string()),
    };
    for (pack, entry) in packed {
        let placed = crate::pack::email_file(&entry.path).is_some()
            && pack.parent() == root.join(&entry.path).parent();
        if !placed || !live.files.contains_key(&entry.path) {
            return report.fail(format!(
                "{}: holds {}, which {}",
                pack.display(),
                entry.path,
                if placed {
                    "is not listed in any signed release"
                } else {
                    "does not belong in its folder"
                }
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
            if entry.file_type().is_dir()
                || dir == "messages" && entry.path().extension().is_some_and(|e| e == "pack")
            {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            if !live.files.contains_key(&rel) {
                return report.fail(format!(
                    "{}: not listed in any signed release",
                    entry.path().display()
                ));
            }
        }
    }
    report
}
