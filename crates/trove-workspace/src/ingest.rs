//! Ingest: mail files in, catalogue rows and stored originals out.
//!
//! Messages arrive from [`trove_mail::read::read_path`] one at a time and are processed in
//! batches: parsing, hashing and compression run in parallel (rayon); then one SQLite
//! transaction records the whole batch, together with the files finished so far. Blobs are
//! written before the transaction that refers to them, so a catalogue row always has its
//! original. Killed at any instant, an ingest leaves a consistent catalogue; run again, it
//! skips every copy already recorded. A copy is identified by its place: the absolute path
//! of its file (with `!/` into archives) and its offset in an mbox, so ingesting `dump/a`
//! and later `dump/` records each file once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use trove_mail::read::{ByteCounter, Event, Origin};
use trove_mail::{Defect, Parsed};

use crate::blobs::compress;
use crate::{Result, Workspace, WorkspaceError};

/// Counts for one ingest run; also what a progress display shows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestStats {
    pub files_read: u64,
    pub messages_seen: u64,
    pub messages_new: u64,
    /// Copies of an email already in the workspace (or seen earlier in this run).
    pub duplicates: u64,
    /// Copies recorded by an earlier run of the same ingest, not counted again.
    pub already_ingested: u64,
    /// New emails flagged, by reason.
    pub flagged: BTreeMap<String, u64>,
    pub skipped_files: u64,
    /// The first skipped files of this run, with the reason (at most [`MAX_LISTED`]).
    pub skipped: Vec<(String, String)>,
    pub errors: Vec<String>,
    pub bytes_read: u64,
    pub bytes_total: u64,
    #[serde(skip)]
    pub elapsed: Duration,
    /// Where the time went, for the benchmarks.
    pub stages: StageTimes,
}

/// Time spent per stage of ingest, in nanoseconds. The per-email stages run in parallel,
/// so they are summed over threads (core time); `catalogue` and `batches` are wall time.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StageTimes {
    /// SHA-256 of the original bytes, zstd compression and the blob write.
    pub store_ns: u64,
    /// MIME parsing, charset decoding, dedupe fingerprint.
    pub parse_ns: u64,
    /// DKIM signatures and ARC chains verified.
    pub authenticate_ns: u64,
    /// Personal-data detectors over every part.
    pub detect_ns: u64,
    /// The catalogue transaction of each batch.
    pub catalogue_ns: u64,
    /// Whole batches (parallel stages plus catalogue); the rest of the run is reading.
    pub batches_ns: u64,
}

/// Receives progress while an ingest runs.
pub trait Progress {
    fn update(&self, stats: &IngestStats);
    /// Something the user should see now (a file that could not be read).
    fn warn(&self, message: &str);
}

/// How many skipped files a run lists by name; the rest are only counted.
pub const MAX_LISTED: usize = 100;

const BATCH_MESSAGES: usize = 2000;
const BATCH_BYTES: usize = 64 << 20;

struct Pending {
    origin: Origin,
    bytes: Vec<u8>,
}

struct Prepared {
    origin: Origin,
    content_id: String,
    fingerprint: String,
    parsed: Parsed,
    size: usize,
    dkim: Vec<trove_mail::dkim::SignatureVerdict>,
    arc: Option<trove_mail::dkim::ArcResult>,
    findings: Vec<crate::privacy::PartFinding>,
}

impl Workspace {
    /// Reads every path given, recording what is new. Returns the counts for this run.
    pub fn ingest(&mut self, paths: &[&Path], progress: &dyn Progress) -> Result<IngestStats> {
        let started = Instant::now();
        let mut stats = IngestStats::default();
        let keys = self.key_store()?;
        let policy = self.policy()?;
        self.mark_findings_scanned_with(&policy.detector_hash)?;
        let keys = (&keys, &policy);
        for path in paths {
            if !path.exists() {
                return Err(WorkspaceError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such file or directory",
                    ),
                });
            }
            stats.bytes_total += trove_mail::read::total_size(path);
        }
        for path in paths {
            let canonical = std::fs::canonicalize(path).map_err(crate::io_err(path))?;
            let source = canonical.to_string_lossy().into_owned();
            // read_path names files from the root's parent directory.
            let base = canonical
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let base = base.to_string_lossy().trim_end_matches('/').to_string();
            let place = |rel: &str| format!("{base}/{rel}");
            let counter = ByteCounter::default();
            let base = stats.bytes_read;
            let mut batch: Vec<Pending> = Vec::new();
            let mut batch_bytes = 0;
            let mut finished_files: Vec<(String, u64)> = Vec::new();
            let mut skipped: Vec<(String, String)> = Vec::new();
            let mut failure: Option<WorkspaceError> = None;
            let mut last_update = Instant::now();
            let mut on_event = |event: Event| {
                if failure.is_some() {
                    return;
                }
                match event {
                    Event::Message { mut origin, bytes } => {
                        origin.file = place(&origin.file);
                        batch_bytes += bytes.len();
                        batch.push(Pending { origin, bytes });
                    }
                    Event::FileRead { file, messages } => {
                        finished_files.push((place(&file), messages))
                    }
                    Event::Skipped { file, reason } => skipped.push((place(&file), reason)),
                    Event::Error { file, error } => {
                        let msg = format!("{}: {error}", place(&file));
                        progress.warn(&msg);
                        stats.errors.push(msg);
                    }
                }
                let full = batch.len() >= BATCH_MESSAGES || batch_bytes >= BATCH_BYTES;
                if full
                    || (!finished_files.is_empty()
                        && last_update.elapsed() > Duration::from_millis(500))
                {
                    let result = self.commit_batch(
                        &source,
                        std::mem::take(&mut batch),
                        &mut finished_files,
                        &mut skipped,
                        &mut stats,
                        keys,
                    );
                    batch_bytes = 0;
                    stats.bytes_read = base + counter.get();
                    stats.elapsed = started.elapsed();
                    progress.update(&stats);
                    last_update = Instant::now();
                    if let Err(e) = result {
                        failure = Some(e);
                    }
                }
            };
            trove_mail::read::read_path(path, &counter, &mut on_event).map_err(|e| {
                WorkspaceError::Io {
                    path: path.to_path_buf(),
                    source: e,
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            self.commit_batch(
                &source,
                batch,
                &mut finished_files,
                &mut skipped,
                &mut stats,
                keys,
            )?;
            stats.bytes_read = base + counter.get();
        }
        stats.elapsed = started.elapsed();
        progress.update(&stats);
        let detail = serde_json::json!({
            "paths": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "files_read": stats.files_read,
            "messages_new": stats.messages_new,
            "duplicates": stats.duplicates,
            "flagged": stats.flagged,
            "skipped_files": stats.skipped_files,
            "errors": stats.errors.len(),
        });
        self.catalogue.log("ingest", &detail.to_string())?;
        Ok(stats)
    }

    fn commit_batch(
        &mut self,
        source: &str,
        batch: Vec<Pending>,
        finished_files: &mut Vec<(String, u64)>,
        skipped: &mut Vec<(String, String)>,
        stats: &mut IngestStats,
        (keys, policy): (&trove_mail::dkim::KeyStore, &crate::privacy::Policy),
    ) -> Result<()> {
        // Copies an earlier run already recorded are dropped before any work is done on them.
        let batch = {
            let mut stmt = self
                .catalogue
                .conn
                .prepare_cached("SELECT 1 FROM copies WHERE file = ?1 AND offset = ?2")
                .map_err(self.catalogue.err())?;
            let mut fresh = Vec::with_capacity(batch.len());
            for p in batch {
                let offset = p.origin.offset.map_or(-1, |o| o as i64);
                let seen = stmt
                    .query_row(params![p.origin.file, offset], |_| Ok(()))
                    .optional()
                    .map_err(self.catalogue.err())?
                    .is_some();
                stats.messages_seen += 1;
                if seen {
                    stats.already_ingested += 1;
                } else {
                    fresh.push(p);
                }
            }
            fresh
        };
        let blobs = &self.blobs;
        let batch_started = Instant::now();
        let [store_ns, parse_ns, authenticate_ns, detect_ns] = [(); 4].map(|_| AtomicU64::new(0));
        let lap = |since: &mut Instant, total: &AtomicU64| {
            let now = Instant::now();
            total.fetch_add((now - *since).as_nanos() as u64, Ordering::Relaxed);
            *since = now;
        };
        let prepared: Vec<Result<Prepared>> = batch
            .into_par_iter()
            .map(|p| {
                let mut t = Instant::now();
                let content_id = hex::encode(Sha256::digest(&p.bytes));
                blobs.put_compressed(&content_id, &compress(&p.bytes))?;
                lap(&mut t, &store_ns);
                let parsed = trove_mail::parse(&p.bytes);
                lap(&mut t, &parse_ns);
                let (dkim, arc) =
                    crate::dkim::authenticate(&p.bytes, keys, parsed.date.map(|d| d.timestamp));
                lap(&mut t, &authenticate_ns);
                let findings = crate::privacy::scan(&parsed, &policy.detector);
                lap(&mut t, &detect_ns);
                Ok(Prepared {
                    dkim,
                    arc,
                    findings,
                    fingerprint: hex::encode(parsed.fingerprint()),
                    origin: p.origin,
                    content_id,
                    size: p.bytes.len(),
                    parsed,
                })
            })
            .collect();
        let catalogue_started = Instant::now();
        let (tx, cat_err) = self.catalogue.begin()?;
        {
            let mut by_content = tx
                .prepare_cached("SELECT id FROM messages WHERE content_id = ?1")
                .map_err(cat_err)?;
            let mut by_fingerprint = tx
                .prepare_cached(
                    "SELECT id FROM messages WHERE fingerprint = ?1 ORDER BY id LIMIT 1",
                )
                .map_err(cat_err)?;
            let mut by_message_id = tx
                .prepare_cached(
                    "SELECT id, defects FROM messages WHERE message_id = ?1 AND fingerprint != ?2",
                )
                .map_err(cat_err)?;
            let mut set_defects = tx
                .prepare_cached("UPDATE messages SET defects = ?2 WHERE id = ?1")
                .map_err(cat_err)?;
            let mut insert_message = tx
                .prepare_cached(
                    "INSERT INTO messages (content_id, fingerprint, message_id, date, from_addr, subject, size, defects, charsets)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(cat_err)?;
            let mut insert_copy = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO copies (message, content_id, source, file, offset, folder, flags)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(cat_err)?;
            for p in prepared {
                let p = p?;
                let existing: Option<i64> = match by_content
                    .query_row([&p.content_id], |r| r.get(0))
                    .optional()
                    .map_err(cat_err)?
                {
                    Some(id) => Some(id),
                    None => by_fingerprint
                        .query_row([&p.fingerprint], |r| r.get(0))
                        .optional()
                        .map_err(cat_err)?,
                };
                let id = match existing {
                    Some(id) => {
                        stats.duplicates += 1;
                        id
                    }
                    None => {
                        let mut defects = p.parsed.defects.clone();
                        if let Some(mid) = &p.parsed.message_id {
                            let conflicts: Vec<(i64, String)> = by_message_id
                                .query_map(params![mid, p.fingerprint], |r| {
                                    Ok((r.get(0)?, r.get(1)?))
                                })
                                .map_err(cat_err)?
                                .collect::<Result<_, _>>()
                                .map_err(cat_err)?;
                            for (other, other_defects) in &conflicts {
                                if !other_defects
                                    .split(',')
                                    .any(|d| d == Defect::MessageIdConflict.name())
                                {
                                    let mut list: Vec<&str> = other_defects
                                        .split(',')
                                        .filter(|d| !d.is_empty())
                                        .collect();
                                    list.push(Defect::MessageIdConflict.name());
                                    set_defects
                                        .execute(params![other, list.join(",")])
                                        .map_err(cat_err)?;
                                    if list.len() == 1 {
                                        *stats
                                            .flagged
                                            .entry("message-id-conflict".into())
                                            .or_default() += 1;
                                    }
                                }
                            }
                            if !conflicts.is_empty() {
                                defects.push(Defect::MessageIdConflict);
                            }
                        }
                        for d in &defects {
                            *stats.flagged.entry(d.name().to_string()).or_default() += 1;
                        }
                        let defects = defects
                            .iter()
                            .map(|d| d.name())
                            .collect::<Vec<_>>()
                            .join(",");
                        let from = p.parsed.from.first().and_then(|m| m.address.clone());
                        insert_message
                            .execute(params![
                                p.content_id,
                                p.fingerprint,
                                p.parsed.message_id,
                                p.parsed.date.map(|d| d.timestamp),
                                from,
                                p.parsed.subject,
                                p.size as i64,
                                defects,
                                p.parsed.charsets.join(","),
                            ])
                            .map_err(cat_err)?;
                        stats.messages_new += 1;
                        let id = tx.last_insert_rowid();
                        crate::dkim::store_verdicts(&tx, id, &p.dkim).map_err(cat_err)?;
                        crate::dkim::store_arc(&tx, id, p.arc.as_ref()).map_err(cat_err)?;
                        crate::privacy::store_findings(&tx, id, &p.findings).map_err(cat_err)?;
                        id
                    }
                };
                insert_copy
                    .execute(params![
                        id,
                        p.content_id,
                        source,
                        p.origin.file,
                        p.origin.offset.map_or(-1, |o| o as i64),
                        p.origin.folder,
                        p.origin.flags,
                    ])
                    .map_err(cat_err)?;
            }
            let mut insert_file = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO files (source, file, messages) VALUES (?1, ?2, ?3)",
                )
                .map_err(cat_err)?;
            for (file, messages) in finished_files.drain(..) {
                insert_file
                    .execute(params![source, file, messages as i64])
                    .map_err(cat_err)?;
                stats.files_read += 1;
            }
            let mut insert_skipped = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO skipped (source, file, reason) VALUES (?1, ?2, ?3)",
                )
                .map_err(cat_err)?;
            for (file, reason) in std::mem::take(skipped) {
                let added = insert_skipped
                    .execute(params![source, file, reason])
                    .map_err(cat_err)?;
                if added > 0 {
                    stats.skipped_files += 1;
                    if stats.skipped.len() < MAX_LISTED {
                        stats.skipped.push((file, reason));
                    }
                }
            }
        }
        tx.commit().map_err(cat_err)?;
        let st = &mut stats.stages;
        st.store_ns += store_ns.into_inner();
        st.parse_ns += parse_ns.into_inner();
        st.authenticate_ns += authenticate_ns.into_inner();
        st.detect_ns += detect_ns.into_inner();
        st.catalogue_ns += catalogue_started.elapsed().as_nanos() as u64;
        st.batches_ns += batch_started.elapsed().as_nanos() as u64;
        Ok(())
    }
}
