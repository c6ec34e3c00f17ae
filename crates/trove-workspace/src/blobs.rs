//! Original bytes, named by the SHA-256 of the uncompressed bytes (the content id), each
//! compressed as one zstd frame.
//!
//! Ingest writes the new originals of each batch into one pack, `blobs/packs/NNNNNNNN.pack`
//! (the frames one after another), through a temporary file and a rename, before the
//! catalogue transaction that records where each frame is (`packed`: content id, pack,
//! offset, length). A pack that exists is whole, and a frame the catalogue points to is in
//! it; a pack left by a killed run is never referred to and is overwritten by the next.
//! One file per batch instead of one per email: creating 2,000 small files (inode,
//! directory entry, rename) cost ingest more than compressing them.
//!
//! Workspaces made before packs hold loose files, `blobs/ab/ab12….zst`; those are still
//! read when the catalogue has no pack entry for an id.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::{Result, WorkspaceError, io_err};

pub struct BlobStore {
    root: PathBuf,
    catalogue: PathBuf,
    /// A read-only connection to the catalogue for pack lookups, opened on first use and
    /// shared by the threads of a release (a lookup is a few microseconds; reading and
    /// decompressing the original costs far more).
    lookup: Mutex<Option<Connection>>,
    open_packs: Mutex<HashMap<u32, Arc<fs::File>>>,
}

/// Where one original sits in a pack.
#[derive(Debug, Clone, Copy)]
pub struct Packed {
    pub pack: u32,
    pub offset: u64,
    pub length: u64,
}

impl BlobStore {
    pub fn new(root: PathBuf, catalogue: PathBuf) -> BlobStore {
        BlobStore {
            root,
            catalogue,
            lookup: Mutex::new(None),
            open_packs: Mutex::new(HashMap::new()),
        }
    }

    /// The loose file of a workspace made before packs.
    fn loose_path(&self, content_id: &str) -> PathBuf {
        self.root
            .join(&content_id[..2])
            .join(format!("{content_id}.zst"))
    }

    /// Whether this workspace holds loose originals at all (it was made before packs):
    /// only then must ingest look for one before storing an original again.
    pub fn has_loose(&self) -> bool {
        fs::read_dir(&self.root).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().len() == 2 && e.path().is_dir())
        })
    }

    /// Whether `content_id` is stored as a loose file.
    pub fn is_loose(&self, content_id: &str) -> bool {
        self.loose_path(content_id).is_file()
    }

    pub fn pack_path(&self, pack: u32) -> PathBuf {
        self.root.join("packs").join(format!("{pack:08}.pack"))
    }

    /// Writes `frames` one after another as pack number `pack`; returns each frame's place.
    pub fn write_pack(&self, pack: u32, frames: &[&[u8]]) -> Result<Vec<Packed>> {
        let path = self.pack_path(pack);
        let dir = path.parent().expect("pack paths have a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut bytes = Vec::with_capacity(frames.iter().map(|f| f.len()).sum());
        let mut places = Vec::with_capacity(frames.len());
        for frame in frames {
            places.push(Packed {
                pack,
                offset: bytes.len() as u64,
                length: frame.len() as u64,
            });
            bytes.extend_from_slice(frame);
        }
        let tmp = dir.join(format!("{pack:08}.{}.tmp", std::process::id()));
        fs::write(&tmp, &bytes).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        // A stale handle to a pack a killed run left under this number must not be reused.
        self.open_packs
            .lock()
            .expect("the pack cache is not poisoned")
            .remove(&pack);
        Ok(places)
    }

    fn locate(&self, content_id: &str) -> Result<Option<Packed>> {
        let mut lookup = self.lookup.lock().expect("the lookup is not poisoned");
        let conn = match &mut *lookup {
            Some(conn) => conn,
            None => lookup.insert(crate::catalogue::open_read_only(&self.catalogue)?),
        };
        conn.prepare_cached(
            "SELECT pack, offset, length FROM packed WHERE content_key = ?1 AND content_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(
                params![crate::catalogue::key(content_id), content_id],
                |r| {
                    Ok(Packed {
                        pack: r.get(0)?,
                        offset: r.get(1)?,
                        length: r.get(2)?,
                    })
                },
            )
            .optional()
        })
        .map_err(crate::catalogue::db_err(&self.catalogue))
    }

    fn pack_file(&self, pack: u32) -> Result<Arc<fs::File>> {
        let mut open = self
            .open_packs
            .lock()
            .expect("the pack cache is not poisoned");
        if let Some(file) = open.get(&pack) {
            return Ok(file.clone());
        }
        let path = self.pack_path(pack);
        let file = Arc::new(fs::File::open(&path).map_err(io_err(&path))?);
        open.insert(pack, file.clone());
        Ok(file)
    }

    /// The original bytes of `content_id`.
    pub fn get(&self, content_id: &str) -> Result<Vec<u8>> {
        let at = self.locate(content_id)?;
        Ok(self.original(content_id, at)?.bytes)
    }

    /// The original of `content_id` as stored, at `at` in a pack, or as a loose file when
    /// `at` is `None` (a caller that read the catalogue's `packed` row already passes it,
    /// and the lookup is not made again). Its bytes are checked against the content id,
    /// which is their SHA-256: a damaged store is an error that says so, never an email
    /// published or scanned with other bytes than were ingested.
    pub fn original(&self, content_id: &str, at: Option<Packed>) -> Result<Original> {
        let (frame, path) = match at {
            Some(at) => {
                let path = self.pack_path(at.pack);
                let mut frame = vec![0; at.length as usize];
                self.pack_file(at.pack)?
                    .read_exact_at(&mut frame, at.offset)
                    .map_err(io_err(&path))?;
                (frame, path)
            }
            None => {
                let path = self.loose_path(content_id);
                let frame = fs::read(&path).map_err(|e| {
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
                (frame, path)
            }
        };
        let bytes = decompress(&frame).map_err(|e| WorkspaceError::UnreadableBlob {
            content_id: content_id.to_string(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let found = hex::encode(Sha256::digest(&bytes));
        if found != content_id {
            return Err(WorkspaceError::DamagedBlob {
                content_id: content_id.to_string(),
                path,
                found,
            });
        }
        Ok(Original { frame, bytes })
    }
}

/// An original as the store keeps it: its zstd frame (or frames, in a loose file written
/// by a stream) and the bytes they hold, whose SHA-256 is its content id.
pub struct Original {
    pub frame: Vec<u8>,
    pub bytes: Vec<u8>,
}

/// One zstd frame back to its bytes, with one decompression context per thread (a release
/// reads every original; a new context for each cost as much as the decompression).
fn decompress(frame: &[u8]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    // Frames written by `compress` state their size; one that does not is streamed.
    let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(frame) else {
        return zstd::decode_all(frame);
    };
    DECOMPRESSOR.with_borrow_mut(|d| {
        let d = match d {
            Some(d) => d,
            None => d.insert(zstd::bulk::Decompressor::new()?),
        };
        d.decompress(frame, size as usize)
    })
}

/// zstd level 1, with one compression context per thread: making a context costs more
/// than compressing a typical email (it zeroes its tables). Level 3 made packs only 1.2 %
/// smaller over the generated 100k corpus (193.5 MB against 195.8 MB), and ingest's store
/// stage (SHA-256 and zstd) took 34-35 µs per email against 28-31 µs at level 1.
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with_borrow_mut(|c| {
        let c = match c {
            Some(c) => c,
            None => c.insert(zstd::bulk::Compressor::new(1).expect("zstd accepts level 1")),
        };
        c.compress(bytes)
            .expect("compressing into memory cannot fail")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_and_loose_originals_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let catalogue = dir.path().join("catalogue.sqlite");
        let mut cat = crate::catalogue::Catalogue::open(&catalogue).unwrap();
        let blobs = BlobStore::new(dir.path().join("blobs"), catalogue.clone());
        assert!(!blobs.has_loose());

        let id = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
        // A workspace made before packs: a loose file and no pack entry.
        let loose_id = id(b"loose original");
        let path = blobs.loose_path(&loose_id);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, compress(b"loose original")).unwrap();
        // A loose file damaged on disk: other bytes than its name says.
        let damaged_id = id(b"what was ingested");
        let damaged = blobs.loose_path(&damaged_id);
        fs::create_dir_all(damaged.parent().unwrap()).unwrap();
        fs::write(&damaged, compress(b"what is on disk now")).unwrap();

        let (a, b) = (compress(b"first original"), compress(b"second"));
        let places = blobs.write_pack(1, &[&a, &b]).unwrap();
        let (first, second) = (id(b"first original"), id(b"second"));
        // A third's row points at the first's frame, as a damaged catalogue would.
        let third = id(b"third");
        let (tx, err) = cat.begin().unwrap();
        for (id, at) in [
            (&first, places[0]),
            (&second, places[1]),
            (&third, places[0]),
        ] {
            tx.execute(
                "INSERT INTO packed (content_key, content_id, pack, offset, length)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    crate::catalogue::key(id),
                    id,
                    at.pack,
                    at.offset as i64,
                    at.length as i64
                ],
            )
            .map_err(err)
            .unwrap();
        }
        tx.commit().unwrap();

        assert_eq!(blobs.get(&first).unwrap(), b"first original");
        assert_eq!(blobs.get(&second).unwrap(), b"second");
        assert_eq!(blobs.get(&loose_id).unwrap(), b"loose original");
        assert!(blobs.has_loose() && blobs.is_loose(&loose_id) && !blobs.is_loose(&first));
        for (wrong, path) in [(&third, blobs.pack_path(1)), (&damaged_id, damaged)] {
            let error = blobs.get(wrong).unwrap_err();
            assert!(
                matches!(&error, WorkspaceError::DamagedBlob { content_id, path: at, found }
                    if content_id == wrong && *at == path && found != wrong),
                "{error}"
            );
        }
        let missing = "cd".repeat(32);
        assert!(matches!(
            blobs.get(&missing),
            Err(WorkspaceError::MissingBlob { .. })
        ));
    }
}
