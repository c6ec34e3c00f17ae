//! Content-addressed original bytes: `blobs/ab/ab12….zst`, named by the SHA-256 of the
//! uncompressed bytes. Writes go through a temporary file and a rename, so a blob that
//! exists is whole; writing one that exists is a no-op.

use std::fs;
use std::path::PathBuf;

use crate::{Result, WorkspaceError, io_err};

pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn new(root: PathBuf) -> BlobStore {
        BlobStore { root }
    }

    pub fn path(&self, content_id: &str) -> PathBuf {
        self.root
            .join(&content_id[..2])
            .join(format!("{content_id}.zst"))
    }

    /// Stores already-compressed bytes under `content_id`, unless present.
    pub fn put_compressed(&self, content_id: &str, compressed: &[u8]) -> Result<()> {
        let path = self.path(content_id);
        if path.exists() {
            return Ok(());
        }
        let dir = path.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = dir.join(format!("{content_id}.{}.tmp", std::process::id()));
        fs::write(&tmp, compressed).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    pub fn get(&self, content_id: &str) -> Result<Vec<u8>> {
        let path = self.path(content_id);
        let compressed = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                WorkspaceError::MissingBlob {
                    content_id: content_id.to_string(),
                    path: path.clone(),
                }
            } else {
                WorkspaceError::Io {
                    path: path.clone(),
                    source: e,
                }
            }
        })?;
        zstd::decode_all(&compressed[..]).map_err(io_err(&path))
    }
}

pub fn compress(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).expect("compressing into memory cannot fail")
}
