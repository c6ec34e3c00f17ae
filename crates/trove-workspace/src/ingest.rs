//! Ingest: mail files in, catalogue rows and stored originals out.
//!
//! Messages arrive from [`trove_mail::read::read_path`] one at a time and are processed in
//! batches: parsing, hashing and compression run in parallel (rayon); then the catalogue
//! records the whole batch, together with the files finished so far, in a transaction that
//! spans a few batches (a few seconds of work). Blobs are
//! written before the transaction that refers to them, so a catalogue row always has its
//! original. Killed at any instant, an ingest leaves a consistent catalogue; run again, it
//! skips every copy already recorded. A copy is identified by its place: the absolute path
//! of its file (with `!/` into archives) and its offset in an mbox, so ingesting `dump/a`
//! and later `dump/` records each file once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use trove_mail::read::{ByteCounter, Event, Origin};
use trove_mail::{Defect, Parsed};

use crate::blobs::{BlobStore, compress};
use crate::catalogue::Rows;
use crate::{Result, Workspace, WorkspaceError};

/// Counts for one ingest run; also what a progress display shows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestStats {
    pub files_read: u64,
    pub messages_seen: u64,
    pub messages_new: u64,
    /// Copies of an email already in the workspace (or seen earlier in this run).
    pub duplicates: u64,
    /// Copies whose place (file and offset) was already recorded, by an earlier run or
    /// earlier in this one (a folder and its parent given together): not counted again.
    pub already_ingested: u64,
    /// New emails flagged, by reason.
    pub flagged: BTreeMap<String, u64>,
    pub skipped_files: u64,
    /// The first skipped files of this run, with the reason (at most [`MAX_LISTED`]).
    pub skipped: Vec<(String, String)>,
    pub errors: Vec<String>,
    pub bytes_read: u64,
    /// The size of every file under the paths given, counted before the reading when the
    /// progress shows it ([`Progress::shows_size`]); otherwise the bytes read, which is
    /// the same figure unless a file could not be read.
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
    /// The pack write and catalogue transaction of each batch (one thread's wall time:
    /// the stages overlap, so the run's wall time is about the slowest stage's).
    pub catalogue_ns: u64,
}

/// Receives progress while an ingest runs.
pub trait Progress {
    fn update(&self, stats: &IngestStats);
    /// Whether the run's size is shown (an estimate of the time left needs it): only then
    /// is every file under the paths counted before the reading starts.
    fn shows_size(&self) -> bool {
        true
    }
    /// Something the user should see now (a file that could not be read).
    fn warn(&self, message: &str);
}

/// How many skipped files a run lists by name; the rest are only counted.
pub const MAX_LISTED: usize = 100;

const BATCH_MESSAGES: usize = 2000;
const BATCH_BYTES: usize = 64 << 20;
/// Batches the reader may have read ahead of the parallel stage. The catalogue thread
/// commits once the reader is done (`Commits`), and the checkpoint after that commit
/// overlaps the batches still in flight: with one batch read ahead it ran after the
/// parallel stage had finished. Four hold about 28 MB of the suite's mail (2,000 emails
/// of 3.5 KB each, computed; up to 256 MB of large messages, `BATCH_BYTES` each); peak
/// memory at 100k went from 348 to 355 MB (one run each).
const READ_AHEAD: usize = 4;

/// One transaction records several batches: a commit writes every page the batches
/// changed to the write-ahead log, and the catalogue's indexes on hashes and paths take
/// their keys in random order, so a commit per 2,000 emails rewrote most of each index's
/// pages every time. A killed ingest loses at most this much work, never consistency.
/// At 1M, with files read ahead, 100,000 emails or 15 s took ingest from 143.5 to 110.6 s
/// against 20,000 or 3 s (peak memory 546 → 835 MB, with the larger cache below). With
/// the checkpoints beside ingest ([`Commits`]), 50,000 took a 1M ingest from 71.3 s to
/// 72.0 and 72.9 s, its log to 1.14 GB.
const COMMIT_MESSAGES: usize = 100_000;
const COMMIT_EVERY: Duration = Duration::from_secs(15);

/// The catalogue's page cache during ingest, in KiB (SQLite's default is 2 MiB). At 100k
/// every index fits; at 1M they do not (a 1.7 GB catalogue), and the catalogue's time per
/// email doubles (51 → 103 µs in the suite's runs).
const INGEST_CACHE_KIB: i64 = 512 << 10;

struct Pending {
    origin: Origin,
    bytes: Vec<u8>,
}

/// What the reader hands on: the messages of one batch not recorded by an earlier run,
/// with the files finished and skipped since the last batch (committed together with it,
/// so a file is marked read only once its messages are in).
#[derive(Default)]
struct Batch {
    source: String,
    messages: Vec<Pending>,
    finished_files: Vec<(String, u64)>,
    skipped: Vec<(String, String)>,
    errors: Vec<String>,
    seen: u64,
    already_ingested: u64,
}

/// A batch after the parallel stage, ready for its catalogue transaction.
struct PreparedBatch {
    batch: Batch,
    prepared: Vec<Prepared>,
    /// Core time of the parallel stages: store, parse, authenticate, detect.
    stage_ns: [u64; 4],
}

struct Prepared {
    origin: Origin,
    content_id: String,
    /// The original as one zstd frame, for the batch's pack.
    compressed: Vec<u8>,
    fingerprint: String,
    /// The catalogue's lookup keys ([`crate::catalogue::key`]) of the content id,
    /// fingerprint and Message-ID.
    keys: (i64, i64, Option<i64>),
    parsed: Parsed,
    size: usize,
    dkim: Vec<trove_mail::dkim::SignatureVerdict>,
    arc: Option<trove_mail::dkim::ArcResult>,
    /// The email's findings, encoded for the catalogue on the parallel stage.
    findings: Option<String>,
    /// The text read from its attachments in document formats, kept for release.
    texts: Vec<crate::privacy::DocumentText>,
}

impl Workspace {
    /// Reads every path given, recording what is new. Returns the counts for this run.
    ///
    /// Three stages run at once, joined by channels that hold one batch each (so memory
    /// stays at a few batches whatever the corpus): a reader thread walks the paths and
    /// drops copies an earlier run recorded (through a read-only connection of its own);
    /// a worker hashes, stores, parses, verifies and scans each batch on the rayon pool;
    /// this thread records the prepared batches, committing every few seconds. Reading and the
    /// catalogue, which are serial, overlap the parallel work instead of idling the cores.
    pub fn ingest(&mut self, paths: &[&Path], progress: &dyn Progress) -> Result<IngestStats> {
        let started = Instant::now();
        let mut stats = IngestStats::default();
        let keys = self.key_store()?;
        let policy = self.policy()?;
        self.mark_findings_scanned_with(&policy.detector_hash)?;
        let mut roots = Vec::new();
        let counts_size = progress.shows_size();
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
            if counts_size {
                stats.bytes_total += trove_mail::read::total_size(path);
            }
            let canonical = std::fs::canonicalize(path).map_err(crate::io_err(path))?;
            roots.push(canonical);
        }
        let catalogue_path = self.catalogue.path().to_path_buf();
        let counter = ByteCounter::default();
        let blobs = &self.blobs;
        let loose = blobs.has_loose();
        let catalogue = &mut self.catalogue;
        let mut next_pack: u32 = catalogue
            .conn
            .query_row("SELECT COALESCE(MAX(pack), 0) + 1 FROM packed", [], |r| {
                r.get(0)
            })
            .map_err(catalogue.err())?;
        // The large cache is for this ingest only: the connection lives on (`trove demo`
        // releases with it next) and gets back the size it had.
        let cache_before: i64 = catalogue
            .conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .map_err(catalogue.err())?;
        catalogue
            .conn
            .execute_batch(&format!("PRAGMA cache_size = -{INGEST_CACHE_KIB}"))
            .map_err(catalogue.err())?;
        let (keys, policy) = (&keys, &policy);
        // Checkpoints are ingest's own (`Commits`) while it runs. Once this and the cache
        // are set, nothing returns before the end of the run, which gives both back.
        let autocheckpoint = catalogue.set_autocheckpoint(0)?;
        let failed = AtomicBool::new(false);
        let all_read = AtomicBool::new(false);
        let outcome = std::thread::scope(|scope| -> Result<()> {
            let (read_tx, read_rx) = std::sync::mpsc::sync_channel::<Batch>(READ_AHEAD);
            let (prepared_tx, prepared_rx) = std::sync::mpsc::sync_channel::<PreparedBatch>(1);
            let (roots, counter, failed, all_read) = (&roots, &counter, &failed, &all_read);
            let catalogue_path = &catalogue_path;
            let reader = scope.spawn(move || {
                read_batches(roots, catalogue_path, counter, failed, read_tx)?;
                all_read.store(true, Ordering::Relaxed);
                Ok(())
            });
            scope.spawn(move || {
                for batch in read_rx {
                    let prepared = prepare_batch(keys, policy, batch);
                    if prepared_tx.send(prepared).is_err() {
                        break;
                    }
                }
            });
            // Freeing a batch's parsed emails is the catalogue thread's time for nothing
            // (7 % of it at 100k): a thread of its own does it.
            let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Vec<Prepared>>();
            scope.spawn(move || spent_rx.into_iter().for_each(drop));
            let mut result = Ok(());
            let mut open: Option<(Instant, usize)> = None;
            let mut commits = Commits {
                scope,
                path: catalogue_path,
                log_bound: LOG_BOUND,
                checkpoint: None,
            };
            let mut last_stretch = false;
            for prepared in prepared_rx {
                for e in &prepared.batch.errors {
                    progress.warn(e);
                }
                let messages = prepared.prepared.len();
                let recorded = (|| {
                    let (since, pending) = match &mut open {
                        Some(open) => open,
                        None => {
                            catalogue
                                .conn
                                .execute_batch("BEGIN IMMEDIATE")
                                .map_err(catalogue.err())?;
                            open.insert((Instant::now(), 0))
                        }
                    };
                    let spent = record_batch(
                        catalogue,
                        (blobs, loose),
                        &mut next_pack,
                        prepared,
                        &mut stats,
                    )?;
                    let _ = spent_tx.send(spent);
                    *pending += messages;
                    // Once the reader is done, only the batches in flight are left (up to
                    // six: four read ahead, one being prepared, one prepared): what is
                    // recorded is committed now, and copied into the database while they
                    // are recorded, not after the last one with the other core idle.
                    let last = !last_stretch && all_read.load(Ordering::Relaxed);
                    last_stretch |= last;
                    if last || *pending >= COMMIT_MESSAGES || since.elapsed() >= COMMIT_EVERY {
                        open = None;
                        commits.commit(catalogue, &mut stats)?;
                    }
                    Ok(())
                })();
                if let Err(e) = recorded {
                    // The reader stops at its next message; the channels then close.
                    failed.store(true, Ordering::Relaxed);
                    result = Err(e);
                    break;
                }
                stats.bytes_read = counter.get();
                stats.elapsed = started.elapsed();
                progress.update(&stats);
            }
            result = result.and_then(|()| match open {
                // The log's last pages are copied by the catalogue's next automatic
                // checkpoint, or when it is closed.
                Some(_) => commit(catalogue, &mut stats),
                None => Ok(()),
            });
            result = result.and(commits.wait());
            if result.is_err() {
                // What the open transaction recorded is dropped; a run again redoes it.
                let _ = catalogue.conn.execute_batch("ROLLBACK");
            }
            result?;
            reader.join().expect("the reader thread does not panic")
        });
        let restored = self
            .catalogue
            .conn
            .execute_batch(&format!("PRAGMA cache_size = {cache_before}"))
            .map_err(self.catalogue.err())
            .and(self.catalogue.set_autocheckpoint(autocheckpoint));
        outcome.and(restored.map(drop))?;
        stats.bytes_read = counter.get();
        if !counts_size {
            // A run that read everything read every byte counted (`read_path` counts each
            // file whole, read or skipped): the walk a size shown needs is skipped, not
            // the figure.
            stats.bytes_total = stats.bytes_read;
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
}

/// The catalogue stage: records a prepared batch and the files it finished, in the
/// transaction the caller holds open, after writing the batch's new originals as a pack.
fn record_batch(
    catalogue: &crate::catalogue::Catalogue,
    (blobs, loose): (&BlobStore, bool),
    next_pack: &mut u32,
    prepared: PreparedBatch,
    stats: &mut IngestStats,
) -> Result<Vec<Prepared>> {
    let PreparedBatch {
        batch,
        prepared,
        stage_ns,
    } = prepared;
    let Batch {
        source,
        finished_files,
        skipped,
        errors,
        seen,
        already_ingested,
        ..
    } = batch;
    stats.messages_seen += seen;
    stats.already_ingested += already_ingested;
    stats.errors.extend(errors);
    let source = source.as_str();
    let catalogue_started = Instant::now();
    // The batch's new originals go into one pack, written before the transaction that
    // says where they are. Stored already: a pack entry, or a copy recorded by a workspace
    // made before packs (its loose file).
    let places = {
        let mut packed = catalogue
            .conn
            .prepare_cached("SELECT 1 FROM packed WHERE content_key = ?1 AND content_id = ?2")
            .map_err(catalogue.err())?;
        let mut in_batch = std::collections::HashSet::new();
        let mut frames: Vec<(&Prepared, &[u8])> = Vec::new();
        for p in &prepared {
            if in_batch.insert(p.content_id.as_str())
                && !packed
                    .exists(params![p.keys.0, p.content_id])
                    .map_err(catalogue.err())?
                && !(loose && blobs.is_loose(&p.content_id))
            {
                frames.push((p, &p.compressed));
            }
        }
        let mut places = Vec::new();
        if !frames.is_empty() {
            let bytes: Vec<&[u8]> = frames.iter().map(|(_, f)| *f).collect();
            let written = blobs.write_pack(*next_pack, &bytes)?;
            *next_pack += 1;
            places = frames
                .iter()
                .map(|(p, _)| (p.keys.0, p.content_id.as_str()))
                .zip(written)
                .collect::<Vec<_>>();
        }
        places
    };
    // An original first stored by this batch cannot be any email's yet: the catalogue is
    // not asked for it (the first copy of each; a second copy in the batch is asked).
    let mut first_stored: std::collections::HashSet<&str> =
        places.iter().map(|((_, id), _)| *id).collect();
    let (tx, cat_err) = (&catalogue.conn, catalogue.err());
    {
        let mut insert_packed = tx
            .prepare_cached(
                "INSERT INTO packed (content_key, content_id, pack, offset, length)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(cat_err)?;
        for ((key, id), at) in &places {
            insert_packed
                .execute(params![
                    key,
                    id,
                    at.pack,
                    at.offset as i64,
                    at.length as i64
                ])
                .map_err(cat_err)?;
        }
    }
    {
        let mut by_content = tx
            .prepare_cached("SELECT id FROM messages WHERE content_key = ?1 AND content_id = ?2")
            .map_err(cat_err)?;
        let mut by_fingerprint = tx
            .prepare_cached(
                "SELECT id FROM messages WHERE fingerprint_key = ?1 AND fingerprint = ?2
                 ORDER BY id LIMIT 1",
            )
            .map_err(cat_err)?;
        let mut by_message_id = tx
            .prepare_cached(
                "SELECT id, defects FROM messages
                 WHERE message_key = ?1 AND message_id = ?2 AND fingerprint != ?3",
            )
            .map_err(cat_err)?;
        let mut set_defects = tx
            .prepare_cached("UPDATE messages SET defects = ?2 WHERE id = ?1")
            .map_err(cat_err)?;
        let mut insert_message = tx
            .prepare_cached(
                "INSERT INTO messages (content_id, fingerprint, message_id, date, from_addr, subject,
                     size, defects, charsets, content_key, fingerprint_key, message_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .map_err(cat_err)?;
        let mut insert_copy = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO copies (message, content_id, source, file, offset, folder, flags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(cat_err)?;
        for p in &prepared {
            let same_original = if first_stored.remove(p.content_id.as_str()) {
                None
            } else {
                by_content
                    .query_row(params![p.keys.0, p.content_id], |r| r.get(0))
                    .optional()
                    .map_err(cat_err)?
            };
            let existing: Option<i64> = match same_original {
                Some(id) => Some(id),
                None => by_fingerprint
                    .query_row(params![p.keys.1, p.fingerprint], |r| r.get(0))
                    .optional()
                    .map_err(cat_err)?,
            };
            let id = match existing {
                Some(id) => id,
                None => {
                    let mut defects = p.parsed.defects.clone();
                    if let Some(mid) = &p.parsed.message_id {
                        let conflicts: Vec<(i64, String)> = by_message_id
                            .query_map(params![p.keys.2, mid, p.fingerprint], |r| {
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
                                let mut list: Vec<&str> =
                                    other_defects.split(',').filter(|d| !d.is_empty()).collect();
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
                            p.keys.0,
                            p.keys.1,
                            p.keys.2,
                        ])
                        .map_err(cat_err)?;
                    stats.messages_new += 1;
                    let id = tx.last_insert_rowid();
                    crate::dkim::store_verdicts(tx, id, &p.dkim, Rows::First).map_err(cat_err)?;
                    crate::dkim::store_arc(tx, id, p.arc.as_ref(), Rows::First).map_err(cat_err)?;
                    crate::privacy::store_findings(tx, id, p.findings.as_deref(), Rows::First)
                        .map_err(cat_err)?;
                    crate::privacy::store_texts(tx, id, &p.texts, Rows::First).map_err(cat_err)?;
                    id
                }
            };
            let placed = insert_copy
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
            // A known email at a new place is a duplicate; at a place already recorded it
            // is a copy read again (the reader drops those an earlier commit holds; this
            // finds those of the transaction still open, such as a folder and its parent
            // given in one run).
            if existing.is_some() {
                if placed == 0 {
                    stats.already_ingested += 1;
                } else {
                    stats.duplicates += 1;
                }
            }
        }
        let mut insert_file = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO files (source, file, messages) VALUES (?1, ?2, ?3)",
            )
            .map_err(cat_err)?;
        for (file, messages) in finished_files {
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
        for (file, reason) in skipped {
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
    let st = &mut stats.stages;
    let [store_ns, parse_ns, authenticate_ns, detect_ns] = stage_ns;
    st.store_ns += store_ns;
    st.parse_ns += parse_ns;
    st.authenticate_ns += authenticate_ns;
    st.detect_ns += detect_ns;
    st.catalogue_ns += catalogue_started.elapsed().as_nanos() as u64;
    Ok(prepared)
}

/// The write-ahead log's size past which a commit copies it into the database before
/// ingest goes on. The log starts again from its beginning only when a transaction
/// begins with all of it copied, which beside checkpoints running on their own thread it
/// seldom does: without a bound, a million-email ingest's log would hold every page each
/// commit wrote. The log's size is its file's length, which does not shrink when the log
/// starts again: once past the bound, every later commit of the run copies the log
/// itself, as before (SQLite removes the file when the catalogue is closed). At 1M
/// (commits every 100,000 emails) the ingest took 71.0 s against 71.3 s with SQLite's
/// own checkpoints, and the log's file reached 308 MB against 234 MB; at 100k the log
/// stays under the bound, and the checkpoint after the commit made when the reader is
/// done runs beside the last batches.
const LOG_BOUND: u64 = 256 << 20;

/// Ingest's commits, each followed by a checkpoint (the write-ahead log copied into the
/// database file) on a thread of its own while the next batches are recorded, up to
/// [`LOG_BOUND`]. SQLite's automatic checkpoint ran in the commit, on the catalogue
/// thread, the pipeline's serial stage: at 100,000 emails, the last commit and its
/// checkpoint were the last 0.9 s of a 7.3 s ingest, with the other core idle. (The
/// fifteenth session moved the checkpoints alone to a thread, with no gain: the last
/// commit still came after the last batch.)
struct Commits<'scope, 'env> {
    scope: &'scope std::thread::Scope<'scope, 'env>,
    path: &'scope Path,
    /// [`LOG_BOUND`], but for tests.
    log_bound: u64,
    checkpoint: Option<std::thread::ScopedJoinHandle<'scope, Result<()>>>,
}

impl Commits<'_, '_> {
    fn commit(
        &mut self,
        catalogue: &crate::catalogue::Catalogue,
        stats: &mut IngestStats,
    ) -> Result<()> {
        commit(catalogue, stats)?;
        // The commit before's checkpoint: seconds ago, so done.
        self.wait()?;
        let log = std::fs::metadata(crate::catalogue::log_path(self.path)).map_or(0, |m| m.len());
        if log > self.log_bound {
            let started = Instant::now();
            crate::catalogue::checkpoint_on(&catalogue.conn, self.path)?;
            stats.stages.catalogue_ns += started.elapsed().as_nanos() as u64;
        } else {
            let path = self.path;
            self.checkpoint = Some(self.scope.spawn(move || crate::catalogue::checkpoint(path)));
        }
        Ok(())
    }

    /// Waits for the checkpoint running, if one is.
    fn wait(&mut self) -> Result<()> {
        self.checkpoint.take().map_or(Ok(()), |running| {
            running
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// Commits the open transaction; its time counts as catalogue time.
fn commit(catalogue: &crate::catalogue::Catalogue, stats: &mut IngestStats) -> Result<()> {
    let started = Instant::now();
    catalogue
        .conn
        .execute_batch("COMMIT")
        .map_err(catalogue.err())?;
    stats.stages.catalogue_ns += started.elapsed().as_nanos() as u64;
    Ok(())
}

/// The reader stage: walks every root in order and sends batches of messages not recorded
/// by an earlier run. Stops early when the consumer has failed or gone.
fn read_batches(
    roots: &[std::path::PathBuf],
    catalogue: &Path,
    counter: &ByteCounter,
    failed: &AtomicBool,
    out: std::sync::mpsc::SyncSender<Batch>,
) -> Result<()> {
    let seen = crate::catalogue::open_read_only(catalogue)?;
    let mut recorded = seen
        .prepare("SELECT 1 FROM copies WHERE file = ?1 AND offset = ?2")
        .map_err(crate::catalogue::db_err(catalogue))?;
    for root in roots {
        let source = root.to_string_lossy().into_owned();
        // read_path names files from the root's parent directory.
        let base = root.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = base.to_string_lossy().trim_end_matches('/').to_string();
        let place = |rel: &str| format!("{base}/{rel}");
        // Every place under this root starts with this; when the catalogue holds none,
        // no copy can have been recorded by an earlier run, and the lookup per message
        // (a random read of a million-entry index at 1M) is left out.
        let under = place(&root.file_name().unwrap_or_default().to_string_lossy());
        let known_before = seen
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM copies WHERE file >= ?1 AND file < ?2)",
                params![under, format!("{under}{}", char::MAX)],
                |r| r.get::<_, bool>(0),
            )
            .unwrap_or(true);
        let fresh = || Batch {
            source: source.clone(),
            ..Batch::default()
        };
        let mut batch = fresh();
        let mut batch_bytes = 0;
        let mut last_sent = Instant::now();
        let mut gone = false;
        let mut on_event = |event: Event| {
            if gone || failed.load(Ordering::Relaxed) {
                gone = true;
                return;
            }
            match event {
                Event::Message { mut origin, bytes } => {
                    origin.file = place(&origin.file);
                    batch.seen += 1;
                    let offset = origin.offset.map_or(-1, |o| o as i64);
                    // A lookup error only costs the work of ingesting the copy again; the
                    // catalogue's unique place keeps it from being recorded twice.
                    let recorded = known_before
                        && recorded
                            .exists(params![origin.file, offset])
                            .unwrap_or(false);
                    if recorded {
                        batch.already_ingested += 1;
                    } else {
                        batch_bytes += bytes.len();
                        batch.messages.push(Pending { origin, bytes });
                    }
                }
                Event::FileRead { file, messages } => {
                    batch.finished_files.push((place(&file), messages))
                }
                Event::Skipped { file, reason } => batch.skipped.push((place(&file), reason)),
                Event::Error { file, error } => {
                    batch.errors.push(format!("{}: {error}", place(&file)));
                }
            }
            let full = batch.messages.len() >= BATCH_MESSAGES || batch_bytes >= BATCH_BYTES;
            if full || (batch.seen > 0 && last_sent.elapsed() > Duration::from_millis(500)) {
                gone = out.send(std::mem::replace(&mut batch, fresh())).is_err();
                batch_bytes = 0;
                last_sent = Instant::now();
            }
        };
        trove_mail::read::read_path(root, counter, &mut on_event).map_err(|e| {
            WorkspaceError::Io {
                path: root.clone(),
                source: e,
            }
        })?;
        if gone || out.send(batch).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The parallel stage of one batch: hash and compress each original (the catalogue stage
/// writes the pack), parse it, verify its signatures and scan it for personal data.
fn prepare_batch(
    keys: &trove_mail::dkim::KeyStore,
    policy: &crate::privacy::Policy,
    mut batch: Batch,
) -> PreparedBatch {
    let [store_ns, parse_ns, authenticate_ns, detect_ns] = [(); 4].map(|_| AtomicU64::new(0));
    let lap = |since: &mut Instant, total: &AtomicU64| {
        let now = Instant::now();
        total.fetch_add((now - *since).as_nanos() as u64, Ordering::Relaxed);
        *since = now;
    };
    let prepared = std::mem::take(&mut batch.messages)
        .into_par_iter()
        .map(|p| {
            let mut t = Instant::now();
            let content_id = hex::encode(Sha256::digest(&p.bytes));
            let compressed = compress(&p.bytes);
            lap(&mut t, &store_ns);
            let parsed = trove_mail::parse_with_header_text(&p.bytes);
            lap(&mut t, &parse_ns);
            let (dkim, arc) =
                crate::dkim::authenticate(&p.bytes, keys, parsed.date.map(|d| d.timestamp));
            lap(&mut t, &authenticate_ns);
            let (findings, texts) = crate::privacy::scan_keeping_texts(&parsed, &policy.detector);
            let findings = crate::privacy::encode_findings(&findings);
            lap(&mut t, &detect_ns);
            let fingerprint = hex::encode(parsed.fingerprint());
            let key = crate::catalogue::key;
            Prepared {
                compressed,
                dkim,
                arc,
                findings,
                texts,
                keys: (
                    key(&content_id),
                    key(&fingerprint),
                    parsed.message_id.as_deref().map(key),
                ),
                fingerprint,
                origin: p.origin,
                content_id,
                size: p.bytes.len(),
                parsed,
            }
        })
        .collect();
    PreparedBatch {
        batch,
        prepared,
        stage_ns: [store_ns, parse_ns, authenticate_ns, detect_ns].map(AtomicU64::into_inner),
    }
}

#[cfg(test)]
mod tests {
    /// A commit leaves its pages in the log for a checkpoint on a thread of its own, which
    /// copies them into the database; past the log's bound, the commit copies them itself
    /// and the next transaction writes the log from its start.
    #[test]
    fn commits_copy_the_log_beside_ingest_and_bound_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalogue.sqlite");
        let catalogue = crate::catalogue::Catalogue::open(&path).unwrap();
        catalogue.set_autocheckpoint(0).unwrap();
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let log = crate::catalogue::log_path(&path);
        let write = |from: u32| {
            catalogue.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            for i in from..from + 2000 {
                catalogue
                    .conn
                    .execute(
                        "INSERT INTO log (time, command, detail) VALUES ('', 'test', ?1)",
                        [format!("{i:01000}")],
                    )
                    .unwrap();
            }
        };
        let mut stats = super::IngestStats::default();
        std::thread::scope(|scope| {
            let mut commits = super::Commits {
                scope,
                path: &path,
                log_bound: u64::MAX,
                checkpoint: None,
            };
            let before = size(&path);
            write(0);
            commits.commit(&catalogue, &mut stats).unwrap();
            commits.wait().unwrap();
            assert!(
                size(&path) > before + 2_000_000,
                "the checkpoint left the commit's pages in the log: {} bytes",
                size(&path)
            );
            assert!(
                size(&log) > 2_000_000,
                "the log was emptied: {} bytes",
                size(&log)
            );
            // The log starts again only for a transaction begun with all of it copied:
            // beside a reader still on an older state of the catalogue (as a checkpoint
            // still running is beside ingest's next transaction), it grows.
            let reader = crate::catalogue::open_read_only(&path).unwrap();
            reader.execute_batch("BEGIN").unwrap();
            reader
                .query_row("SELECT count(*) FROM log", [], |r| r.get::<_, i64>(0))
                .unwrap();
            commits.log_bound = u64::MAX;
            for round in 1..=3 {
                write(round * 2000);
                commits.commit(&catalogue, &mut stats).unwrap();
                commits.wait().unwrap();
            }
            assert!(
                size(&log) > 6_000_000,
                "the log did not grow: {} bytes",
                size(&log)
            );
            reader.execute_batch("COMMIT").unwrap();
            // Past its bound, the commit copies the log itself, and the next transaction
            // writes the log from its start again instead of at its end.
            commits.log_bound = 4 << 20;
            write(8000);
            commits.commit(&catalogue, &mut stats).unwrap();
            assert!(
                commits.checkpoint.is_none(),
                "the checkpoint was left to a thread"
            );
            let grown = size(&log);
            write(10_000);
            commits.commit(&catalogue, &mut stats).unwrap();
            assert_eq!(size(&log), grown, "the log did not start again");
        });
        let rows: i64 = crate::catalogue::open_read_only(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM log WHERE command = 'test'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(rows, 12_000);
    }

    use super::*;

    /// A progress that shows the run's size or not, and keeps the size each update saw.
    struct Seen {
        shows_size: bool,
        totals: std::sync::Mutex<Vec<u64>>,
    }

    impl Progress for Seen {
        fn update(&self, stats: &IngestStats) {
            self.totals.lock().unwrap().push(stats.bytes_total);
        }
        fn warn(&self, _: &str) {}
        fn shows_size(&self) -> bool {
            self.shows_size
        }
    }

    /// A run that shows its size counts the files before reading them, so that its first
    /// update has the whole; a quiet one does not walk the tree for it, and still reports
    /// the size it read at the end. A file that is not mail counts in both.
    #[test]
    fn only_a_run_that_shows_its_size_counts_the_files_first() {
        let dir = tempfile::tempdir().unwrap();
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).unwrap();
        for i in 0..3 {
            let message = format!("From: a{i}@example.com\nSubject: note {i}\n\nbody {i}\n");
            std::fs::write(mail.join(format!("{i}.eml")), message).unwrap();
        }
        std::fs::write(mail.join("picture.png"), [0x89, b'P', b'N', b'G', 0, 1, 2]).unwrap();
        let size = trove_mail::read::total_size(&mail);
        for shows_size in [true, false] {
            let mut ws =
                crate::Workspace::init(&dir.path().join(format!("ws-{shows_size}"))).unwrap();
            let seen = Seen {
                shows_size,
                totals: Default::default(),
            };
            let stats = ws.ingest(&[&mail], &seen).unwrap();
            assert_eq!(stats.messages_new, 3);
            assert_eq!(stats.skipped_files, 1);
            assert_eq!((stats.bytes_read, stats.bytes_total), (size, size));
            let totals = seen.totals.into_inner().unwrap();
            let first = if shows_size { size } else { 0 };
            assert_eq!(totals.first(), Some(&first), "shows size: {shows_size}");
        }
    }
}
