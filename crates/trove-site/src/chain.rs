//! The rules a chain of signed manifests follows, in one place for everyone who reads
//! one: `verify_site` on a directory, and a mirror on manifests fetched over the network.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::{FileEntry, Manifest, merkle_root, sha256_hex};

/// What the next manifest of a chain must say: its release number, the previous
/// manifest's hash, and the first public number it may give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The last release accepted (0 before the first).
    pub release: u32,
    /// SHA-256 (hex) of the last accepted manifest's bytes.
    pub previous: Option<String>,
    pub next_number: u64,
}

impl Default for Chain {
    fn default() -> Chain {
        Chain {
            release: 0,
            previous: None,
            next_number: 1,
        }
    }
}

impl Chain {
    /// The chain as it stands after `manifest` (whose bytes are `bytes`).
    pub fn after(manifest: &Manifest, bytes: &[u8]) -> Chain {
        Chain {
            release: manifest.release,
            previous: Some(sha256_hex(bytes)),
            next_number: manifest.numbers.last + 1,
        }
    }

    /// Checks `bytes` (with its detached signature `sig`) as the next manifest, signed
    /// by `key`: signature, format, release number, key, chain, numbering, Merkle root,
    /// the paths it names, and that it withdraws only emails already published. On
    /// success the chain moves on to it. The error says what is wrong, without a path.
    pub fn accept(
        &mut self,
        bytes: &[u8],
        sig: &[u8],
        key: &VerifyingKey,
    ) -> Result<Manifest, String> {
        let sig = Signature::from_slice(sig)
            .map_err(|_| "its signature is not a 64-byte Ed25519 signature".to_string())?;
        key.verify(bytes, &sig).map_err(|_| {
            "signature does not match the site's key (the manifest changed, or another key signed it)"
                .to_string()
        })?;
        let m = Manifest::from_bytes(bytes)?;
        let k = self.release + 1;
        if m.release != k {
            return Err(format!("says it is release {}, expected {k}", m.release));
        }
        if m.public_key != hex::encode(key.as_bytes()) {
            return Err("names another signing key".into());
        }
        if m.previous != self.previous {
            return Err(format!(
                "chain broken: previous manifest hash is {:?}, expected {:?}",
                m.previous, self.previous
            ));
        }
        // A release that only withdraws adds no number: its range is empty (last = first - 1).
        if m.numbers.first != self.next_number || m.numbers.last + 1 < m.numbers.first {
            return Err(format!(
                "numbers {}..={} do not follow on from {}",
                m.numbers.first,
                m.numbers.last,
                self.next_number - 1
            ));
        }
        if merkle_root(&m.files) != m.merkle_root {
            return Err("Merkle root does not match its file list".into());
        }
        let paths = m.files.iter().map(|f| &f.path);
        for path in paths.chain(m.withdrawn.iter().flat_map(|w| &w.files)) {
            if !is_site_file(path) {
                return Err(format!("names a path a site never holds: {path:?}"));
            }
        }
        if let Some(w) = m.withdrawn.iter().find(|w| w.number >= self.next_number) {
            return Err(format!(
                "withdraws email {}, which was never published",
                w.number
            ));
        }
        *self = Chain::after(&m, bytes);
        Ok(m)
    }
}

/// A path a release may add or withdraw: under `messages/` or `attachments/`, relative,
/// with no empty, `.` or `..` component.
fn is_site_file(path: &str) -> bool {
    (path.starts_with("messages/") || path.starts_with("attachments/"))
        && !path.contains('\\')
        && !path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
}

/// The files a chain says are published, as its manifests are applied in order: a path
/// is live from the release that lists it until one withdraws it (and live again if a
/// later release lists it again, as a shared attachment may be).
#[derive(Debug, Default, Clone)]
pub struct LiveFiles {
    /// Each live path, with the release that last listed it and its entry there.
    pub files: BTreeMap<String, (u32, FileEntry)>,
    /// Each path withdrawn and not listed since, with the withdrawing release.
    pub withdrawn: BTreeMap<String, u32>,
}

impl LiveFiles {
    pub fn of<'m>(manifests: impl IntoIterator<Item = &'m Manifest>) -> LiveFiles {
        let mut live = LiveFiles::default();
        for m in manifests {
            live.apply(m);
        }
        live
    }

    pub fn apply(&mut self, m: &Manifest) {
        for f in &m.files {
            self.withdrawn.remove(&f.path);
            self.files.insert(f.path.clone(), (m.release, f.clone()));
        }
        for w in &m.withdrawn {
            for path in &w.files {
                self.files.remove(path);
                self.withdrawn.insert(path.clone(), m.release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_messages_or_attachments_pass() {
        assert!(is_site_file("messages/0000/1.json"));
        assert!(is_site_file("attachments/ab/ab12"));
        for bad in [
            "site.json",
            "/etc/passwd",
            "messages/../../x",
            "messages//1.json",
            "messages/./1.json",
            "attachments\\ab",
            "index/meta.json",
        ] {
            assert!(!is_site_file(bad), "{bad}");
        }
    }
}
