//! The private side of trove. The principal type is [`Workspace`]: a directory holding
//! the original bytes of every message (content-addressed, zstd-compressed), the catalogue
//! (SQLite), the signing key and the config. Ingest fills it; release cuts installments
//! from it into a public site.
//!
//! ```text
//! trove.toml            config, with comments
//! catalogue.sqlite      messages, every place each was found, files read, releases, log
//! blobs/packs/N.pack   original bytes, zstd frames, a pack per ingest batch (blobs.rs)
//! keys/signing.key      Ed25519 secret key (hex), mode 0600
//! ```
//!
//! Architecture invariant: the workspace writes a site only through trove-site's
//! `ReleaseWriter`, and only messages that a release has numbered.

mod blobs;
mod catalogue;
mod config;
mod dkim;
mod ingest;
pub mod privacy;
mod release;
mod schedule;
mod withdraw;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use catalogue::{SCHEMA_VERSION, Status, now_rfc3339};
pub use config::Config;
pub use dkim::{DkimSummary, KeyImport};
pub use ingest::{IngestStats, Progress, StageTimes};
pub use release::{HeldBack, NOT_BUILT, ReleaseOutcome};
pub use schedule::{Plan, Selection, parse_time, parse_until};

use blobs::BlobStore;
use catalogue::Catalogue;
use trove_site::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a trove workspace (no trove.toml); create one with `trove init {path}`")]
    NotAWorkspace { path: PathBuf },
    #[error("{path} already exists and is not empty; choose a new directory")]
    AlreadyExists { path: PathBuf },
    #[error("catalogue {path}: {source}")]
    Catalogue {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("catalogue schema v{found} is newer than this trove (v{max}); upgrade trove")]
    SchemaTooNew { found: u32, max: u32 },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("original {content_id} is missing from the blob store ({path})")]
    MissingBlob { content_id: String, path: PathBuf },
    #[error(
        "original {content_id} in {path} reads back as other bytes (SHA-256 {found}): the blob \
         store is damaged; restore the workspace from a backup, or ingest the mail again into \
         a new one"
    )]
    DamagedBlob {
        content_id: String,
        path: PathBuf,
        found: String,
    },
    #[error(
        "original {content_id} in {path} does not decompress ({reason}): the blob store is \
         damaged; restore the workspace from a backup, or ingest the mail again into a new one"
    )]
    UnreadableBlob {
        content_id: String,
        path: PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Site(#[from] trove_site::SiteError),
    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = WorkspaceError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct Workspace {
    root: PathBuf,
    config: Config,
    catalogue: Catalogue,
    blobs: BlobStore,
}

impl Workspace {
    /// Creates a new workspace in `root`, which must not exist or be empty.
    pub fn init(root: &Path) -> Result<Workspace> {
        if root.exists() {
            let mut entries = fs::read_dir(root).map_err(io_err(root))?;
            if entries.next().is_some() {
                return Err(WorkspaceError::AlreadyExists {
                    path: root.to_path_buf(),
                });
            }
        }
        fs::create_dir_all(root.join("keys")).map_err(io_err(root))?;
        fs::create_dir_all(root.join("blobs")).map_err(io_err(root))?;
        write_key(&root.join("keys/signing.key"))?;
        let config_path = root.join("trove.toml");
        fs::write(&config_path, config::DEFAULT).map_err(io_err(&config_path))?;
        let policy_path = root.join("policy.toml");
        fs::write(&policy_path, privacy::DEFAULT_POLICY).map_err(io_err(&policy_path))?;
        let ws = Workspace::open(root)?;
        ws.catalogue
            .log("init", &format!("workspace created at {}", root.display()))?;
        Ok(ws)
    }

    pub fn open(root: &Path) -> Result<Workspace> {
        let config_path = root.join("trove.toml");
        if !config_path.exists() {
            return Err(WorkspaceError::NotAWorkspace {
                path: root.to_path_buf(),
            });
        }
        let config = Config::load(&config_path)?;
        let catalogue = Catalogue::open(&root.join("catalogue.sqlite"))?;
        Ok(Workspace {
            root: root.to_path_buf(),
            config,
            catalogue,
            blobs: BlobStore::new(root.join("blobs"), root.join("catalogue.sqlite")),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `compute` on the original bytes (and the date) of every email, in parallel
    /// 1,024 at a time, and `store` on each result, one transaction per chunk. For the
    /// passes that recompute what ingest derived (DKIM verdicts, findings). Returns how
    /// many emails it went over.
    pub(crate) fn over_every_original<T: Send>(
        &mut self,
        compute: impl Fn(&[u8], Option<i64>) -> T + Sync,
        mut store: impl FnMut(&rusqlite::Transaction<'_>, i64, T) -> rusqlite::Result<()>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<u64> {
        use rayon::prelude::*;
        let rows: Vec<(i64, String, Option<i64>)> = {
            let mut stmt = self
                .catalogue
                .conn
                .prepare("SELECT id, content_id, date FROM messages ORDER BY id")
                .map_err(self.catalogue.err())?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(self.catalogue.err())?
                .collect::<Result<_, _>>()
                .map_err(self.catalogue.err())?
        };
        let total = rows.len() as u64;
        let mut done = 0;
        for chunk in rows.chunks(1024) {
            let computed: Vec<Result<(i64, T)>> = chunk
                .par_iter()
                .map(|(id, content_id, date)| {
                    Ok((*id, compute(&self.blobs.get(content_id)?, *date)))
                })
                .collect();
            let (tx, cat_err) = self.catalogue.begin()?;
            for item in computed {
                let (id, value) = item?;
                store(&tx, id, value).map_err(cat_err)?;
            }
            tx.commit().map_err(cat_err)?;
            done += chunk.len() as u64;
            progress(done, total);
        }
        Ok(total)
    }

    /// The personal-data policy (`policy.toml`; the default when the file is missing).
    pub fn policy(&self) -> Result<privacy::Policy> {
        privacy::Policy::load(&self.root.join("policy.toml"))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The site directory from the config, relative to the workspace.
    pub fn site_dir(&self) -> PathBuf {
        self.root.join(&self.config.site)
    }

    pub fn status(&self) -> Result<Status> {
        self.catalogue.status()
    }

    pub fn signing_key(&self) -> Result<SigningKey> {
        read_key(&self.root.join("keys/signing.key"))
    }
}

fn write_key(path: &Path) -> Result<()> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|e| WorkspaceError::Key {
        path: path.to_path_buf(),
        message: format!("no randomness for a key: {e}"),
    })?;
    let text = format!("{}\n", hex::encode(secret));
    fs::write(path, text).map_err(io_err(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    }
    Ok(())
}

fn read_key(path: &Path) -> Result<SigningKey> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let bad = |message: &str| WorkspaceError::Key {
        path: path.to_path_buf(),
        message: message.to_string(),
    };
    let bytes: [u8; 32] = hex::decode(text.trim())
        .map_err(|_| bad("not a hex Ed25519 secret key"))?
        .try_into()
        .map_err(|_| bad("an Ed25519 secret key is 32 bytes"))?;
    Ok(SigningKey::from_bytes(&bytes))
}
