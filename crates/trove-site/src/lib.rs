//! The public site of trove: a plain directory anyone can copy, serve and check.
//!
//! The principal type is [`Site`], a handle on such a directory. Releases append to it
//! through [`ReleaseWriter`]; readers, the web server, mirrors and `trove verify` only
//! read it. Layout (format `trove-site/2`):
//!
//! ```text
//! site.json                     format, site title, public key (hex)
//! public-key.pem                the same Ed25519 key, for openssl and other tools
//! releases/000001.json          release manifest (see [`Manifest`])
//! releases/000001.json.sig      raw 64-byte Ed25519 signature over the manifest's bytes
//! messages/0000/1.pack          the email files release 1 added to folder 0000, each
//!                               compressed on its own (see `pack.rs`):
//!   messages/0000/1.json          published form of email 1 ([`PublishedMessage`])
//!   messages/0000/1.eml           its raw source
//! attachments/ab/ab12…          attachment bytes, named by their SHA-256
//! index/                        search index (derived from messages/, not signed)
//! ```
//!
//! Email files are read with [`Site::read_file`], from a pack or a loose file (format
//! `trove-site/1` kept them loose).
//!
//! Architecture invariant: nothing in this crate reads a workspace. What is in the site
//! directory is public by definition; what is not cannot be served.

mod attached;
mod chain;
mod facets;
mod index;
mod kept;
mod manifest;
pub mod mbox;
mod message;
mod pack;
pub mod query;
mod ranking;
mod snippet;
pub mod threads;
mod tokens;
mod verify;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use attached::{AttachedEmail, read_attached_email};
pub use chain::{Chain, LiveFiles};
pub use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
pub use index::{
    Bucket, Facets, Hit, IndexDocument, SearchIndex, SearchRequest, SearchResults, Sort,
    attachment_text, rebuild_index, rethread, update_index,
};
pub use kept::KeptBytes;
pub use manifest::{
    FileEntry, Manifest, NumberRange, PreparedEmail, RawSource, Register, ReleaseWriter,
    Withdrawal, merkle_root, remove_withdrawn,
};
pub use message::{
    MESSAGE_FORMAT, Person, PublishedArc, PublishedArcSeal, PublishedAttachment, PublishedDkim,
    PublishedKey, PublishedMessage, PublishedRedaction, dkim_status, dkim_status_of,
};
pub use pack::{
    PACK_FORMAT, PackEntry, email_file, pack_file, pack_index, pack_path, raise_open_files_limit,
    unpack,
};
pub use query::QueryError;
pub use snippet::Highlighter;
pub use verify::{VerifyReport, verify_site};

/// The format a site is written in: `trove-site/2` keeps emails' files in packs
/// (see `pack.rs`). Sites in `trove-site/1`, all loose files, are read too, and become
/// `/2` with their next release.
pub const SITE_FORMAT: &str = "trove-site/2";
const SITE_FORMATS_READ: [&str; 2] = ["trove-site/1", SITE_FORMAT];

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path} is not a trove site (no site.json)")]
    NotASite { path: PathBuf },
    #[error(
        "the site at {path} is signed with key {found}, not with this workspace's key {expected}"
    )]
    KeyMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path} already holds files and is not a trove site; give an empty or new directory")]
    NotEmpty { path: PathBuf },
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("{0}")]
    Query(#[from] QueryError),
}

pub type Result<T, E = SiteError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SiteError + '_ {
    move |source| SiteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `site.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SiteInfo {
    pub format: String,
    pub title: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
}

impl SiteInfo {
    /// The signing key `public_key` names.
    pub fn verifying_key(&self) -> Result<VerifyingKey, String> {
        let bytes: [u8; 32] = hex::decode(&self.public_key)
            .map_err(|e| format!("public_key: {e}"))?
            .try_into()
            .map_err(|_| "public_key: not 32 bytes".to_string())?;
        VerifyingKey::from_bytes(&bytes).map_err(|e| format!("public_key: {e}"))
    }

    /// The key's fingerprint: SHA-256 of its 32 bytes, in hex, as
    /// `openssl pkey -pubin -in public-key.pem -outform DER | tail -c 32 | sha256sum`
    /// prints it.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&hex::decode(&self.public_key).unwrap_or_default())
    }
}

/// A site directory.
#[derive(Debug, Clone)]
pub struct Site {
    root: PathBuf,
    info: SiteInfo,
    /// The pack indexes read so far, shared by clones (the server's handlers).
    packs: std::sync::Arc<pack::Packs>,
}

impl Site {
    /// Opens an existing site.
    pub fn open(root: &Path) -> Result<Site> {
        let path = root.join("site.json");
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SiteError::NotASite {
                    path: root.to_path_buf(),
                }
            } else {
                SiteError::Io {
                    path: path.clone(),
                    source: e,
                }
            }
        })?;
        let info: SiteInfo = serde_json::from_slice(&bytes).map_err(|e| SiteError::Format {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if !SITE_FORMATS_READ.contains(&info.format.as_str()) {
            return Err(SiteError::Format {
                path,
                message: format!("format {:?}, this trove reads {SITE_FORMAT:?}", info.format),
            });
        }
        Ok(Site {
            root: root.to_path_buf(),
            info,
            packs: Default::default(),
        })
    }

    /// Opens the site at `root`, creating it for `key` if it does not exist yet.
    /// A site created by another key is refused.
    pub fn open_or_create(root: &Path, title: &str, key: &VerifyingKey) -> Result<Site> {
        let expected = hex::encode(key.as_bytes());
        if root.join("site.json").exists() {
            let site = Site::open(root)?;
            if site.info.public_key != expected {
                return Err(SiteError::KeyMismatch {
                    path: root.to_path_buf(),
                    found: site.info.public_key,
                    expected,
                });
            }
            return Ok(site);
        }
        // Never turn someone's existing directory into a public site. What an interrupted
        // creation leaves (the key written, site.json not yet) is ours to finish.
        if root.exists() {
            for entry in fs::read_dir(root).map_err(io_err(root))? {
                let name = entry.map_err(io_err(root))?.file_name();
                let ours = ["public-key.pem", "public-key.pem.tmp", "site.json.tmp"]
                    .iter()
                    .any(|n| name == *n);
                if !ours {
                    return Err(SiteError::NotEmpty {
                        path: root.to_path_buf(),
                    });
                }
            }
        }
        fs::create_dir_all(root).map_err(io_err(root))?;
        let info = SiteInfo {
            format: SITE_FORMAT.to_string(),
            title: title.to_string(),
            public_key: expected,
        };
        use ed25519_dalek::pkcs8::EncodePublicKey;
        let pem = key
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| SiteError::Format {
                path: root.join("public-key.pem"),
                message: e.to_string(),
            })?;
        write_atomic(&root.join("public-key.pem"), pem.as_bytes())?;
        let json = serde_json::to_vec_pretty(&info).expect("serialisable");
        write_atomic(&root.join("site.json"), &json)?;
        Ok(Site {
            root: root.to_path_buf(),
            info,
            packs: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn info(&self) -> &SiteInfo {
        &self.info
    }

    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        self.info
            .verifying_key()
            .map_err(|message| SiteError::Format {
                path: self.root.join("site.json"),
                message,
            })
    }

    /// Every release manifest, in order. Stops at the first number with no manifest.
    pub fn manifests(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        while let Some(m) = self.manifest(out.len() as u32 + 1)? {
            out.push(m);
        }
        Ok(out)
    }

    /// The highest public number released so far (0 before the first release), read
    /// from the last manifest without building its file list.
    pub fn last_number(&self) -> Result<u64> {
        let mut k = 0;
        while self.root.join(manifest_path(k + 1)).exists() {
            k += 1;
        }
        if k == 0 {
            return Ok(0);
        }
        let path = self.root.join(manifest_path(k));
        let file = fs::File::open(&path).map_err(io_err(&path))?;
        manifest_numbers(io::BufReader::new(file))
            .map(|numbers| numbers.last)
            .map_err(|message| SiteError::Format { path, message })
    }

    /// Release `k`'s manifest, if it has been written.
    pub fn manifest(&self, k: u32) -> Result<Option<Manifest>> {
        let path = self.root.join(manifest_path(k));
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SiteError::Io { path, source: e }),
        };
        Manifest::from_bytes(&bytes)
            .map(Some)
            .map_err(|message| SiteError::Format { path, message })
    }

    /// The published form of email `number`, if it has been released.
    pub fn message(&self, number: u64) -> Result<Option<PublishedMessage>> {
        self.read_message(number)
    }

    /// Only the text of published email `number`, for snippets: the file is read, but
    /// nothing else in it is built, nor parsed when the file is as trove writes it.
    pub fn message_text(&self, number: u64) -> Result<Option<String>> {
        #[derive(serde::Deserialize)]
        struct TextOnly {
            text: String,
        }
        let quick = |json: &[u8]| pretty_text(json).map(|text| TextOnly { text });
        Ok(self.read_message_with(number, quick)?.map(|t| t.text))
    }

    /// `messages/…/N.json` read as `T`; `None` when there is no such file.
    fn read_message<T: serde::de::DeserializeOwned>(&self, number: u64) -> Result<Option<T>> {
        self.read_message_with(number, |_| None)
    }

    /// `messages/…/N.json` as `quick` reads it, or parsed whole as `T` when `quick`
    /// cannot; `None` when there is no such file.
    fn read_message_with<T: serde::de::DeserializeOwned>(
        &self,
        number: u64,
        quick: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Result<Option<T>> {
        let rel = message_path(number);
        let Some(bytes) = self.packs.read(&self.root, &rel)? else {
            return Ok(None);
        };
        if let Some(read) = quick(&bytes) {
            return Ok(Some(read));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SiteError::Format {
                path: self.root.join(rel),
                message: e.to_string(),
            })
    }

    /// The bytes of the site file at relative path `rel` (`messages/0000/1.eml`,
    /// `attachments/ab/ab12…`), wherever it is stored: in a pack or as a file of its
    /// own. `None` when the site does not hold it.
    pub fn read_file(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .packs
            .read(&self.root, rel)?
            .map(pack::FileBytes::into_vec))
    }

    /// Stores emails' files of one folder as one pack (a mirror storing what it fetched
    /// and checked), after making the site's format say it has packs.
    pub fn write_pack(&self, files: &[(String, Vec<u8>)]) -> Result<()> {
        self.ensure_current_format()?;
        pack::write_files(&self.root, files)
    }

    /// Rewrites `site.json` of an older site (`trove-site/1`) as the current format
    /// before the first pack goes in, so an older trove, which would not find the emails
    /// in packs, refuses the site instead.
    pub(crate) fn ensure_current_format(&self) -> Result<()> {
        // A format only goes up: a site opened as the current one still is.
        if self.info.format == SITE_FORMAT {
            return Ok(());
        }
        let path = self.root.join("site.json");
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let mut info: SiteInfo = serde_json::from_slice(&bytes).map_err(|e| SiteError::Format {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if info.format != SITE_FORMAT {
            info.format = SITE_FORMAT.to_string();
            let json = serde_json::to_vec_pretty(&info).expect("serialisable");
            write_atomic(&path, &json)?;
        }
        Ok(())
    }

    /// Removes site files (a withdrawal): loose ones are deleted, packs holding any are
    /// rewritten without them.
    pub fn remove_files(&self, rels: &[String]) -> Result<()> {
        pack::remove(&self.root, rels)
    }

    /// The logical files held in packs under `messages/`, with the pack holding each:
    /// what `trove verify` checks against the manifests.
    pub fn packed_files(&self) -> Result<Vec<(PathBuf, PackEntry)>> {
        let top = self.root.join("messages");
        let mut out = Vec::new();
        if !top.exists() {
            return Ok(out);
        }
        for entry in walkdir::WalkDir::new(&top).sort_by_file_name() {
            let entry = entry.map_err(|e| SiteError::Format {
                path: top.clone(),
                message: format!("cannot be read: {e}"),
            })?;
            let path = entry.path();
            if entry.file_type().is_file() && path.extension().is_some_and(|e| e == "pack") {
                for e in pack::entries(path)? {
                    out.push((path.to_path_buf(), e));
                }
            }
        }
        Ok(out)
    }

    pub fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }
}

/// The `text` of a published email's JSON as trove writes it (`to_vec_pretty`: each
/// key of the top object on a line of its own, two spaces in), read by parsing only that
/// string: the headers before it and the HTML and attachments after it were most of a
/// snippet's parse. `None` when the file is laid out otherwise (then the whole file is
/// parsed). A JSON string holds no raw newline, so `\n  "text": ` can only be the top
/// object's key.
fn pretty_text(json: &[u8]) -> Option<String> {
    use serde::Deserialize;
    const KEY: &[u8] = b"\n  \"text\": ";
    let at = memchr::memmem::find(json, KEY)? + KEY.len();
    let mut de = serde_json::Deserializer::from_slice(json.get(at..)?);
    String::deserialize(&mut de).ok()
}

/// `messages/0001/1234.json`: a thousand emails to a folder.
pub fn message_path(number: u64) -> String {
    format!("messages/{:04}/{number}.json", number / 1000)
}

pub fn raw_path(number: u64) -> String {
    format!("messages/{:04}/{number}.eml", number / 1000)
}

pub fn attachment_path(sha256_hex: &str) -> String {
    format!(
        "attachments/{}/{sha256_hex}",
        &sha256_hex[..2.min(sha256_hex.len())]
    )
}

/// The `numbers` of a manifest, read from its opening: they come before the file list,
/// which is nearly all of a big release's manifest (34 MB at 100,000 emails), and which
/// reading and skipping made up 40 % of a `trove search` process.
fn manifest_numbers(reader: impl io::Read) -> std::result::Result<NumberRange, String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct NumbersFirst<'a>(&'a mut Option<NumberRange>);
    impl<'de> Visitor<'de> for NumbersFirst<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a release manifest")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if key == "numbers" {
                    *self.0 = Some(map.next_value()?);
                    // Stop here: the caller has what it wants, and the rest is unread.
                    return Ok(());
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut found = None;
    let outcome = serde_json::Deserializer::from_reader(reader)
        .deserialize_map(NumbersFirst(&mut found))
        .map_err(|e| e.to_string());
    // Stopping early leaves the map unclosed, which the parser reports; with the numbers
    // in hand that is not an error.
    match (found, outcome) {
        (Some(numbers), _) => Ok(numbers),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err("the manifest has no \"numbers\"".into()),
    }
}

pub fn manifest_path(release: u32) -> String {
    format!("releases/{release:06}.json")
}

pub fn signature_path(release: u32) -> String {
    format!("releases/{release:06}.json.sig")
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    write_atomic_in_place(path, bytes)
}

/// [`write_atomic`] into a directory the caller knows is there.
pub(crate) fn write_atomic_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> VerifyingKey {
        SigningKey::from_bytes(&[7; 32]).verifying_key()
    }

    #[test]
    fn a_manifests_numbers_are_read_from_its_opening_alone() {
        let head = r#"{"format": "trove-manifest/1", "release": 3, "title": "T",
            "numbers": {"first": 11, "last": 20}, "files": ["#;
        // The file list after the numbers is never read: here it is cut off.
        let numbers = manifest_numbers(head.as_bytes()).unwrap();
        assert_eq!((numbers.first, numbers.last), (11, 20));
        let whole = format!("{head}]}}");
        assert_eq!(manifest_numbers(whole.as_bytes()).unwrap().last, 20);
        // Broken before the numbers, or without them: an error that says why.
        let broken = manifest_numbers(&br#"{"release": 3, "title": "#[..]).unwrap_err();
        assert!(broken.contains("EOF"), "{broken}");
        let none = manifest_numbers(&br#"{"release": 3}"#[..]).unwrap_err();
        assert!(none.contains("numbers"), "{none}");
    }

    #[test]
    fn an_interrupted_creation_is_finished_but_a_foreign_directory_refused() {
        let tmp = tempfile::tempdir().unwrap();
        // Killed after the key file, before site.json.
        let half = tmp.path().join("half");
        fs::create_dir_all(&half).unwrap();
        fs::write(half.join("public-key.pem"), b"partial").unwrap();
        fs::write(half.join("site.json.tmp"), b"{").unwrap();
        let site = Site::open_or_create(&half, "t", &key()).unwrap();
        assert_eq!(site.info().public_key, hex::encode(key().as_bytes()));
        assert!(Site::open(&half).is_ok());

        let foreign = tmp.path().join("foreign");
        fs::create_dir_all(&foreign).unwrap();
        fs::write(foreign.join("public-key.pem"), b"x").unwrap();
        fs::write(foreign.join("notes.txt"), b"mine").unwrap();
        assert!(matches!(
            Site::open_or_create(&foreign, "t", &key()),
            Err(SiteError::NotEmpty { .. })
        ));
    }

    /// A snippet's text read from the key alone is the text a full parse reads, with
    /// escapes, other scripts and a header holding the key's look-alike; a file laid
    /// out otherwise is left to the full parse.
    #[test]
    fn the_text_alone_is_the_text_of_the_whole_parse() {
        let tricky = "He wrote \"text\": no.\n  \"text\": \"x\"\tZürich 東京 \u{1F600} \\ end";
        let message = PublishedMessage {
            format: 1,
            number: 7,
            from: vec![Person {
                name: Some("A \"text\": B".into()),
                address: Some("a@example.com".into()),
            }],
            subject: "\n  \"text\": \"subject\"".into(),
            headers: "X-Note: \n  \"text\": \"header\"\r\n".into(),
            text: tricky.into(),
            html: Some("<p>html \"text\": </p>".into()),
            ..Default::default()
        };
        let pretty = serde_json::to_vec_pretty(&message).unwrap();
        assert_eq!(pretty_text(&pretty).as_deref(), Some(tricky));
        let compact = serde_json::to_vec(&message).unwrap();
        assert_eq!(pretty_text(&compact), None);
    }
}
