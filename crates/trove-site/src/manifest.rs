//! Release manifests: what a release added, chained to the release before it and signed.
//!
//! A manifest is a JSON file (`releases/000001.json`); its signature is the raw 64-byte
//! Ed25519 signature of exactly those bytes (`releases/000001.json.sig`), so anyone can
//! check it with standard tools:
//!
//! ```text
//! openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin \
//!     -in releases/000001.json -sigfile releases/000001.json.sig
//! ```
//!
//! The Merkle root is over the file list sorted by path: leaf = SHA-256(0x00 ‖ path ‖ 0x00
//! ‖ file SHA-256 as hex), node = SHA-256(0x01 ‖ left ‖ right), and an odd node at the end
//! of a level is carried up unchanged. It lets one file be proved part of a release
//! without the whole list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pack::{PackWriter, PackedFile, email_file};
use crate::{
    PublishedAttachment, PublishedMessage, Result, Site, SiteError, attachment_path, manifest_path,
    message_path, raw_path, sha256_hex, signature_path, write_atomic,
};

pub const MANIFEST_FORMAT: &str = "trove-release/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub release: u32,
    pub title: String,
    /// RFC 3339, UTC.
    pub published_at: String,
    /// The public numbers this release adds: a dense range following the previous release.
    pub numbers: NumberRange,
    /// SHA-256 (hex) of the previous release's manifest file, `None` for the first.
    pub previous: Option<String>,
    /// The signing key, hex; must equal the site's.
    pub public_key: String,
    pub merkle_root: String,
    pub files: Vec<FileEntry>,
    /// How much this release withheld or redacted, by reason; never what.
    #[serde(default, skip_serializing_if = "Register::is_empty")]
    pub register: Register,
    /// Emails taken down after publication (a court order, say): each with its reason and
    /// the files removed from the site. Their numbers are never reused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<Withdrawal>,
}

/// One email withdrawn after publication.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Withdrawal {
    pub number: u64,
    /// The release that published it.
    pub release: u32,
    pub reason: String,
    /// Site paths removed: its published form, its raw source, and each attachment no
    /// other published email still refers to.
    pub files: Vec<String>,
}

/// The public register of one release: counts by reason (a kind of personal data, or an
/// override's stated reason), never which emails or what values.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Register {
    /// Emails not released, by reason.
    pub messages_withheld: BTreeMap<String, u64>,
    /// Released emails with something masked or withheld, by kind.
    pub messages_redacted: BTreeMap<String, u64>,
    /// Masked spans, by kind.
    pub spans_masked: BTreeMap<String, u64>,
    /// Attachments not published, by kind.
    pub attachments_withheld: BTreeMap<String, u64>,
    /// Released emails whose raw source is not published.
    pub raw_sources_withheld: u64,
    /// Emails withdrawn after publication, by reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub messages_withdrawn: BTreeMap<String, u64>,
}

impl Register {
    pub fn is_empty(&self) -> bool {
        *self == Register::default()
    }

    /// Adds one released email's redaction.
    pub fn add(&mut self, r: &crate::PublishedRedaction) {
        let kinds: std::collections::BTreeSet<&String> = r
            .spans_masked
            .keys()
            .chain(r.attachments_withheld.keys())
            .collect();
        for k in kinds {
            *self.messages_redacted.entry(k.clone()).or_default() += 1;
        }
        for (k, n) in &r.spans_masked {
            *self.spans_masked.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &r.attachments_withheld {
            *self.attachments_withheld.entry(k.clone()).or_default() += n;
        }
        if r.raw_withheld {
            self.raw_sources_withheld += 1;
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct NumberRange {
    pub first: u64,
    pub last: u64,
}

impl NumberRange {
    pub fn count(&self) -> u64 {
        if self.last >= self.first {
            self.last - self.first + 1
        } else {
            0
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

impl Manifest {
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.format != MANIFEST_FORMAT {
            return Err(format!(
                "format {:?}, this trove reads {MANIFEST_FORMAT:?}",
                m.format
            ));
        }
        Ok(m)
    }
}

pub fn merkle_root(files: &[FileEntry]) -> String {
    let mut sorted: Vec<&FileEntry> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut level: Vec<[u8; 32]> = sorted
        .iter()
        .map(|f| {
            let mut h = Sha256::new();
            h.update([0u8]);
            h.update(f.path.as_bytes());
            h.update([0u8]);
            h.update(f.sha256.as_bytes());
            h.finalize().into()
        })
        .collect();
    if level.is_empty() {
        return hex::encode(Sha256::digest([]));
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => {
                    let mut h = Sha256::new();
                    h.update([1u8]);
                    h.update(l);
                    h.update(r);
                    h.finalize().into()
                }
                [one] => *one,
                _ => unreachable!("chunks(2)"),
            })
            .collect();
    }
    hex::encode(level[0])
}

/// Writes one release into a site: messages first, then the signature and the manifest,
/// so a release whose manifest exists is complete. Writing the same release again with the
/// same inputs produces the same bytes.
pub struct ReleaseWriter<'s> {
    site: &'s Site,
    release: u32,
    title: String,
    published_at: String,
    numbers: NumberRange,
    files: Vec<FileEntry>,
    /// The attachment paths in `files`, so a shared attachment is listed once.
    attachments_listed: std::collections::HashSet<String>,
    /// The attachment folders this release has made (true) or found (false).
    attachment_folders: std::collections::HashMap<PathBuf, bool>,
    /// The pack of the folder being written (a thousand emails share one).
    pack: Option<PackWriter>,
    /// Whether what an earlier, cut-short attempt at this release left has been cleared
    /// (before the first file is written).
    cleared: bool,
    withdrawn: Vec<Withdrawal>,
    /// Filled by the caller while it adds emails; signed with the manifest.
    pub register: Register,
}

impl<'s> ReleaseWriter<'s> {
    pub fn new(
        site: &'s Site,
        release: u32,
        title: &str,
        published_at: &str,
        numbers: NumberRange,
    ) -> ReleaseWriter<'s> {
        ReleaseWriter {
            site,
            release,
            title: title.to_string(),
            published_at: published_at.to_string(),
            numbers,
            files: Vec::new(),
            attachments_listed: Default::default(),
            attachment_folders: Default::default(),
            pack: None,
            cleared: false,
            withdrawn: Vec::new(),
            register: Register::default(),
        }
    }

    /// Records that an earlier release's email is withdrawn. Its files are removed by
    /// [`remove_withdrawn`] once the signed manifest that says so is written.
    pub fn withdraw(&mut self, w: Withdrawal) {
        *self
            .register
            .messages_withdrawn
            .entry(w.reason.clone())
            .or_default() += 1;
        self.withdrawn.push(w);
    }

    /// Adds one of the release's own files (an email's JSON or raw source) to its
    /// folder's pack. Packs are written in place of any a cut-short attempt at this
    /// release left: their numbers are above every signed manifest's, so no reader looks
    /// at them until this release's manifest, written last, lists them.
    fn write(&mut self, file: PackedFile) -> Result<()> {
        let root = self.site.root();
        if !self.cleared {
            crate::pack::remove_unsigned(root, self.numbers.first, self.numbers.last)?;
            self.site.ensure_current_format()?;
            self.cleared = true;
        }
        let Some((folder, number)) = email_file(&file.path) else {
            return Err(SiteError::Format {
                path: root.join(&file.path),
                message: "not an email's file".into(),
            });
        };
        if self.pack.as_ref().is_none_or(|p| p.folder() != folder) {
            if let Some(done) = self.pack.take() {
                done.finish(root)?;
            }
            self.pack = Some(PackWriter::new(folder, number));
        }
        self.pack.as_mut().expect("made above").add(&file);
        self.files.push(FileEntry {
            path: file.path,
            sha256: file.sha256,
            size: file.size,
        });
        Ok(())
    }

    /// An email's files made ready to add: its published form serialised, it and its
    /// raw source hashed and compressed. This is most of the cost of adding an email,
    /// and it needs no writer, so a release makes it on every core.
    pub fn prepare(
        message: &PublishedMessage,
        raw: Option<RawSource<'_>>,
    ) -> Result<PreparedEmail> {
        let fail = |rel: String| {
            move |e: std::io::Error| SiteError::Format {
                path: PathBuf::from(rel),
                message: format!("compressing: {e}"),
            }
        };
        let mut files = Vec::with_capacity(2);
        if let Some(raw) = raw {
            let rel = raw_path(message.number);
            let file = match (raw.frame, &message.raw_sha256) {
                (Some(frame), Some(sha256)) => {
                    PackedFile::framed(rel.clone(), raw.bytes, frame, sha256.clone())
                }
                _ => PackedFile::new(rel.clone(), raw.bytes),
            };
            files.push(file.map_err(fail(rel))?);
        }
        // Sized from the long strings it holds, with room for their escapes: grown from
        // empty, the buffer's copies were 0.4 % of a 100,000-email release's samples.
        let long = message.headers.len()
            + message.text.len()
            + message.html.as_ref().map_or(0, String::len);
        let mut json = Vec::with_capacity(long + long / 8 + 2048);
        serde_json::to_writer_pretty(&mut json, message).expect("serialisable");
        let rel = message_path(message.number);
        files.push(PackedFile::new(rel.clone(), &json).map_err(fail(rel))?);
        Ok(PreparedEmail {
            number: message.number,
            files,
        })
    }

    /// Adds one message: its published form, raw source and attachments.
    pub fn add_message(
        &mut self,
        message: &PublishedMessage,
        raw: Option<&[u8]>,
        attachments: &[(&PublishedAttachment, &[u8])],
    ) -> Result<()> {
        let prepared = Self::prepare(message, raw.map(RawSource::from))?;
        self.add_prepared(prepared, attachments)
    }

    /// Adds one message made ready by [`ReleaseWriter::prepare`], with its attachments.
    pub fn add_prepared(
        &mut self,
        email: PreparedEmail,
        attachments: &[(&PublishedAttachment, &[u8])],
    ) -> Result<()> {
        if !(self.numbers.first..=self.numbers.last).contains(&email.number) {
            return Err(SiteError::Format {
                path: self.site.root().join(message_path(email.number)),
                message: format!(
                    "email {} is outside release {}'s numbers {}..={}",
                    email.number, self.release, self.numbers.first, self.numbers.last
                ),
            });
        }
        for (meta, bytes) in attachments {
            let rel = attachment_path(&meta.sha256);
            let path = self.site.root().join(&rel);
            // Content-addressed: an attachment already there (an earlier email, an earlier
            // release) is the same bytes; written by rename, so one that is there is whole.
            if self.attachments_listed.contains(&rel) {
                continue;
            }
            // Each of the 256 folders is made, or found, once a release (asking for every
            // attachment was two system calls each); one this release made holds only
            // what it wrote, so nothing in it needs looking for.
            let dir = path.parent().expect("attachment paths have a folder");
            let made_now = match self.attachment_folders.get(dir) {
                Some(made_now) => *made_now,
                None => {
                    let made_now = make_folder(dir)?;
                    self.attachment_folders.insert(dir.to_path_buf(), made_now);
                    made_now
                }
            };
            if made_now || !path.exists() {
                crate::write_atomic_in_place(&path, bytes)?;
            }
            self.attachments_listed.insert(rel.clone());
            self.files.push(FileEntry {
                path: rel,
                sha256: meta.sha256.clone(),
                size: meta.size,
            });
        }
        for file in email.files {
            self.write(file)?;
        }
        Ok(())
    }

    /// Signs and writes the manifest. Returns it with the hex SHA-256 of its bytes.
    pub fn finish(mut self, key: &SigningKey) -> Result<(Manifest, String)> {
        if let Some(pack) = self.pack.take() {
            pack.finish(self.site.root())?;
        }
        let previous = if self.release > 1 {
            let path = self.site.root().join(manifest_path(self.release - 1));
            let bytes = std::fs::read(&path).map_err(crate::io_err(&path))?;
            Some(sha256_hex(&bytes))
        } else {
            None
        };
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_string(),
            release: self.release,
            title: self.title,
            published_at: self.published_at,
            numbers: self.numbers,
            previous,
            public_key: hex::encode(key.verifying_key().as_bytes()),
            merkle_root: merkle_root(&self.files),
            files: self.files,
            register: self.register,
            withdrawn: self.withdrawn,
        };
        // Sized up front: grown by doubling, the buffer of a million-email manifest was
        // copied into one twice its size. An entry takes about 160 bytes written out (a 10k
        // release's manifest), and the pages of the capacity never written are never
        // resident.
        let mut bytes = Vec::with_capacity(4096 + manifest.files.len() * 256);
        serde_json::to_writer_pretty(&mut bytes, &manifest).expect("serialisable");
        bytes.push(b'\n');
        let signature = key.sign(&bytes);
        let root: &Path = self.site.root();
        write_atomic(
            &root.join(signature_path(manifest.release)),
            &signature.to_bytes(),
        )?;
        write_atomic(&root.join(manifest_path(manifest.release)), &bytes)?;
        Ok((manifest, sha256_hex(&bytes)))
    }
}

/// Makes folder `dir` (and its parents); true when it was not there before.
fn make_folder(dir: &Path) -> Result<bool> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(crate::io_err(parent))?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(crate::io_err(dir)(e)),
    }
}

/// An email's raw source, for [`ReleaseWriter::prepare`]: its bytes, and a zstd frame of
/// exactly those bytes when the caller keeps them compressed already (a workspace keeps
/// its originals so, and decompresses that very frame to get `bytes`). Such a frame goes
/// into the pack as it is, hashed by the published form's `raw_sha256`: a release then
/// neither compresses nor hashes an original a second time (making the packs' files went
/// from 10.8 % to 6.8 % of a 100k release's samples).
#[derive(Debug)]
pub struct RawSource<'a> {
    pub bytes: &'a [u8],
    pub frame: Option<Vec<u8>>,
}

impl<'a> From<&'a [u8]> for RawSource<'a> {
    fn from(bytes: &'a [u8]) -> RawSource<'a> {
        RawSource { bytes, frame: None }
    }
}

/// One email's files, ready for [`ReleaseWriter::add_prepared`].
#[derive(Debug)]
pub struct PreparedEmail {
    number: u64,
    files: Vec<PackedFile>,
}

/// Removes the files a manifest withdraws, from packs or as loose files. Safe to repeat:
/// a file already gone is fine.
pub fn remove_withdrawn(site: &Site, manifest: &Manifest) -> Result<()> {
    let files: Vec<String> = manifest
        .withdrawn
        .iter()
        .flat_map(|w| w.files.iter().cloned())
        .collect();
    site.remove_files(&files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, h: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            sha256: h.into(),
            size: 1,
        }
    }

    #[test]
    fn merkle_root_depends_on_every_leaf_but_not_order() {
        let a = [entry("a", "1"), entry("b", "2"), entry("c", "3")];
        let b = [entry("c", "3"), entry("a", "1"), entry("b", "2")];
        let c = [entry("a", "1"), entry("b", "2"), entry("c", "4")];
        assert_eq!(merkle_root(&a), merkle_root(&b));
        assert_ne!(merkle_root(&a), merkle_root(&c));
        assert_ne!(merkle_root(&a[..2]), merkle_root(&a));
    }
}
