//! Cutting a release: number the next emails, write their published form into the site,
//! sign the manifest, index them.
//!
//! Crash safety: the release row and the numbers are committed first (state `writing`),
//! with the title and time it will carry. Files are then written, the manifest signed and
//! written last, the index updated, and the state set to `published`. A release found in
//! state `writing` is finished before anything else, with the same numbers, title and
//! time, so re-running produces the same manifest bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rayon::prelude::*;
use rusqlite::{Connection, OptionalExtension, params};
use time::format_description::well_known::Rfc3339;
use trove_site::{
    NumberRange, Person, PublishedAttachment, PublishedMessage, RawSource, ReleaseWriter,
    SearchIndex, Site, sha256_hex,
};

use crate::blobs::Packed;
use crate::catalogue::db_err;
use crate::{Result, Workspace, WorkspaceError};

#[derive(Debug, Clone)]
pub struct ReleaseOutcome {
    pub release: u32,
    pub title: String,
    pub numbers: NumberRange,
    pub files: usize,
    pub manifest_sha256: String,
    /// A release interrupted earlier and finished now.
    pub resumed: bool,
    /// Emails this release could not build, held back so that the rest went out.
    pub held_back: Vec<HeldBack>,
}

/// The reason a [`HeldBack`] email is recorded under in `withheld`, and counted under in
/// the signed register: public, so it says what happened and nothing of the email.
pub const NOT_BUILT: &str = "could not be built";

/// An email numbered for a release whose published form could not be made: its original
/// is missing or damaged, or building it panicked. It is held back (`withheld`, reason
/// [`NOT_BUILT`]), the release's later emails take the numbers up, and the release is
/// written without it; it never takes a number, as other withheld emails do not.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldBack {
    pub content_id: String,
    /// The number it had in the attempt that failed; never published.
    pub number: u64,
    /// What went wrong, for the publisher (stderr and the workspace's log), never the site.
    pub error: String,
}

/// Why an email of a release was not built: something of that email alone, which holds
/// it back, or something that stops the whole release (the disk, the catalogue).
enum BuildError {
    Email(i64, HeldBack),
    Whole(WorkspaceError),
}

impl WorkspaceError {
    /// An error that one email's original causes, which another attempt would meet again.
    fn is_of_one_email(&self) -> bool {
        matches!(
            self,
            WorkspaceError::MissingBlob { .. }
                | WorkspaceError::DamagedBlob { .. }
                | WorkspaceError::UnreadableBlob { .. }
        )
    }
}

/// Runs one email's build, turning a panic and an error of that email alone into
/// [`BuildError::Email`], so that one email cannot stop a release from ever finishing.
fn guarded<T>(
    id: i64,
    number: u64,
    content_id: &str,
    build: impl FnOnce() -> Result<T>,
) -> Result<T, BuildError> {
    let held = |error: String| {
        BuildError::Email(
            id,
            HeldBack {
                content_id: content_id.to_string(),
                number,
                error,
            },
        )
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)) {
        Ok(Ok(built)) => Ok(built),
        Ok(Err(e)) if e.is_of_one_email() => Err(held(e.to_string())),
        Ok(Err(e)) => Err(BuildError::Whole(e)),
        Err(panic) => {
            let what = trove_mail::panic_message(&*panic).unwrap_or_else(|| "(no message)".into());
            Err(held(format!("building it panicked: {what}")))
        }
    }
}

/// The packs a release over `numbers` writes in folders wholly past `last` (an empty
/// range when `last` is below its first number): what a shorter release leaves behind.
fn packs_past(numbers: NumberRange, last: u64) -> Vec<String> {
    (numbers.first / 1000..=numbers.last / 1000)
        .filter(|folder| numbers.first.max(folder * 1000) > last)
        .map(|folder| trove_site::pack_path(folder, numbers.first))
        .collect()
}

/// How one attempt at writing a release ended.
enum Attempt {
    Written(ReleaseOutcome),
    /// Emails that could not be built, with their ids; nothing was published.
    NotBuilt(Vec<(i64, HeldBack)>),
}

/// An email's published form, its files ready for the writer (serialised, hashed and
/// compressed on the build's threads), its attachments' bytes and its index document.
type Built = (
    PublishedMessage,
    trove_site::PreparedEmail,
    Vec<Vec<u8>>,
    trove_site::IndexDocument,
);

struct Row {
    id: i64,
    number: u64,
    content_id: String,
    folders: Vec<String>,
    /// As catalogued: includes what only ingest can see, such as Message-ID conflicts.
    defects: Vec<String>,
    dkim: Vec<trove_site::PublishedDkim>,
    arc: Option<trove_site::PublishedArc>,
    /// The kinds found in each attachment (numbered from 1), in the order found: what
    /// ingest's scan stored, so release does not read the documents again.
    attachment_kinds: BTreeMap<u32, Vec<String>>,
    /// Every kind found anywhere in the email, as stored by ingest's scan.
    kinds: BTreeSet<String>,
    /// Where the original sits in a pack (read with the row); `None` for a loose one.
    packed: Option<Packed>,
    /// The text ingest read from attachments in document formats, by number (from 1);
    /// `None` where it read none. An attachment not here is read again.
    texts: BTreeMap<u32, Option<String>>,
}

impl Workspace {
    /// The site is public: it may sit inside the workspace (the default, `site/`), but it
    /// must never be the workspace or contain it, or the originals and key would be
    /// published with it.
    pub(crate) fn check_site_is_outside(&self, site_dir: &Path) -> Result<()> {
        let workspace = std::fs::canonicalize(&self.root).map_err(crate::io_err(&self.root))?;
        // The site may not exist yet: resolve its nearest existing ancestor.
        let mut probe = site_dir.to_path_buf();
        let mut rest = Vec::new();
        let site = loop {
            match std::fs::canonicalize(&probe) {
                Ok(p) => {
                    break rest
                        .iter()
                        .rev()
                        .fold(p, |acc: std::path::PathBuf, c| acc.join(c));
                }
                Err(_) => match (probe.parent(), probe.file_name()) {
                    (Some(parent), Some(name)) => {
                        rest.push(name.to_os_string());
                        probe = if parent.as_os_str().is_empty() {
                            ".".into()
                        } else {
                            parent.to_path_buf()
                        };
                    }
                    _ => break site_dir.to_path_buf(),
                },
            }
        };
        if workspace.starts_with(&site) {
            return Err(WorkspaceError::Usage(format!(
                "the site directory {} would contain the private workspace {}; choose a site directory outside it (or the default, {}/site)",
                site_dir.display(),
                self.root.display(),
                self.root.display()
            )));
        }
        Ok(())
    }

    pub(crate) fn pending_release(&self) -> Result<Option<(u32, String, String, NumberRange)>> {
        use rusqlite::OptionalExtension;
        self.catalogue
            .conn
            .query_row(
                "SELECT number, title, published_at, first, last FROM releases WHERE state = 'writing' ORDER BY number LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u32,
                        r.get(1)?,
                        r.get(2)?,
                        NumberRange { first: r.get::<_, i64>(3)? as u64, last: r.get::<_, i64>(4)? as u64 },
                    ))
                },
            )
            .optional()
            .map_err(self.catalogue.err())
    }

    /// Writes release `pending` (in state `writing`) into the site. An email that cannot
    /// be built is held back and the release written again without it: a panic or a
    /// damaged original must not leave a release that every later run resumes and fails.
    pub(crate) fn write_release(
        &mut self,
        site: &Site,
        key: &trove_site::SigningKey,
        pending: (u32, String, String, NumberRange),
        resumed: bool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<ReleaseOutcome> {
        let (release, title, published_at, mut numbers) = pending;
        let mut held_back = Vec::new();
        loop {
            let pending = (release, title.clone(), published_at.clone(), numbers);
            match self.write_attempt(site, key, pending, resumed, progress)? {
                Attempt::Written(mut outcome) => {
                    outcome.held_back = held_back;
                    return Ok(outcome);
                }
                Attempt::NotBuilt(failed) => {
                    numbers = self.hold_back(site, release, numbers, &failed)?;
                    held_back.extend(failed.into_iter().map(|(_, h)| h));
                }
            }
        }
    }

    /// Holds back emails of release `release` that could not be built and gives the
    /// release's other emails consecutive numbers from its first again. Nothing of the
    /// release is public yet (its manifest is written last), and its files written so far
    /// are those of lower numbers, which keep theirs. Returns the release's new range.
    fn hold_back(
        &mut self,
        site: &Site,
        release: u32,
        numbers: NumberRange,
        failed: &[(i64, HeldBack)],
    ) -> Result<NumberRange> {
        let (tx, cat_err) = self.catalogue.begin()?;
        withhold(&tx, release, failed.iter().map(|(id, _)| (*id, NOT_BUILT))).map_err(cat_err)?;
        for (id, _) in failed {
            tx.execute(
                "UPDATE messages SET number = NULL, release = NULL WHERE id = ?1",
                [id],
            )
            .map_err(cat_err)?;
        }
        let ids: Vec<i64> = tx
            .prepare("SELECT id FROM messages WHERE release = ?1 ORDER BY number")
            .and_then(|mut s| s.query_map([release], |r| r.get(0))?.collect())
            .map_err(cat_err)?;
        // Negative first, out of the way of the numbers' unique index, then renumbered.
        tx.execute(
            "UPDATE messages SET number = -number WHERE release = ?1",
            [release],
        )
        .map_err(cat_err)?;
        number_in_order(&tx, release, numbers.first, &ids).map_err(cat_err)?;
        let renumbered = NumberRange {
            first: numbers.first,
            last: numbers.first + ids.len() as u64 - 1,
        };
        tx.execute(
            "UPDATE releases SET last = ?2 WHERE number = ?1",
            params![release, renumbered.last as i64],
        )
        .map_err(cat_err)?;
        // An earlier, interrupted attempt may have written packs for numbers the release
        // no longer reaches: no later attempt would replace them, and a reader looks in
        // packs before the manifests' lists. They go before the commit, so that a crash
        // between the two leaves the old numbering, whose next attempt writes every pack.
        for rel in packs_past(numbers, renumbered.last) {
            let path = site.root().join(&rel);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(crate::io_err(&path)(e));
                }
                _ => {}
            }
        }
        tx.commit().map_err(cat_err)?;
        for (_, h) in failed {
            self.catalogue.log(
                "release-held-back",
                &serde_json::json!({
                    "release": release, "content_id": h.content_id, "number": h.number,
                    "error": h.error, "reason": NOT_BUILT,
                })
                .to_string(),
            )?;
        }
        Ok(renumbered)
    }

    /// One attempt at writing release `release`: every email built and written, the
    /// manifest signed, the index committed; or, when some email could not be built,
    /// every such email found (the rest are still built, not written) and nothing
    /// published.
    fn write_attempt(
        &mut self,
        site: &Site,
        key: &trove_site::SigningKey,
        (release, title, published_at, numbers): (u32, String, String, NumberRange),
        resumed: bool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Attempt> {
        let policy = self.policy()?;
        // The release's rows are read a chunk of numbers at a time, on the build thread
        // (its own read-only connection): at 1M emails, every row at once was a
        // gigabyte held for the whole release.
        let (lowest, highest, count): (Option<i64>, Option<i64>, i64) = self
            .catalogue
            .conn
            .query_row(
                "SELECT min(number), max(number), count(*) FROM messages WHERE release = ?1",
                [release],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(self.catalogue.err())?;
        let chunks: Vec<(u64, u64)> = match (lowest, highest) {
            (Some(lo), Some(hi)) => (lo as u64..=hi as u64)
                .step_by(CHUNK as usize)
                .map(|first| (first, (first + CHUNK - 1).min(hi as u64)))
                .collect(),
            _ => Vec::new(),
        };
        let catalogue_path = self.catalogue.path.clone();
        let mut writer = ReleaseWriter::new(site, release, &title, &published_at, numbers);
        let index = SearchIndex::open_or_create(&site.index_dir())?;
        let index_writer = index.writer()?;
        index.delete_release(&index_writer, release);
        let mut done = 0;
        let mut threaded = Vec::with_capacity(count as usize);
        let mut not_built = Vec::new();
        let build = |row: &Row| -> Result<Built> {
            let original = self.blobs.original(&row.content_id, row.packed)?;
            let raw = original.bytes;
            let (mut message, mut attachments) = published_form(row, release, &raw);
            let over = policy.override_for(&row.content_id, message.message_id.as_deref());
            // The stored findings are the scan of this very form (rescanned when
            // the detectors change), except that ingest reads an HTML part's
            // visible text and redaction also masks its markup (a value in an
            // attribute). With nothing of a kind to mask in either, redaction
            // would change nothing, and the scans it costs are skipped.
            let masks = row.kinds.iter().any(|k| policy.action_for(k, over).masks())
                || message.html.as_deref().is_some_and(|html| {
                    policy
                        .detector
                        .scan(html)
                        .iter()
                        .any(|f| policy.action_for(&f.kind, over).masks())
                });
            message.redaction = if masks {
                crate::privacy::redact(
                    &mut message,
                    &mut attachments,
                    &row.attachment_kinds,
                    &policy,
                    over,
                )
            } else {
                None
            };
            let texts = attachment_texts(&message, &attachments, &row.texts);
            let document = index.document(&message, &texts);
            // A redacted email's raw source holds what was redacted: never published.
            // Otherwise its stored zstd frame goes into the site's pack as it is.
            let published_raw = message.raw_sha256.as_ref().map(|_| RawSource {
                bytes: &raw,
                frame: Some(original.frame),
            });
            let files = ReleaseWriter::prepare(&message, published_raw)?;
            Ok((message, files, attachments, document))
        };
        // The parallel build of the next chunk overlaps the writing of this one: the
        // writer, the manifest's file list and the index take emails one at a time.
        std::thread::scope(|scope| -> Result<()> {
            let (built_tx, built_rx) =
                std::sync::mpsc::sync_channel::<Vec<Result<Built, BuildError>>>(1);
            let (chunks, build, catalogue_path) = (&chunks, &build, &catalogue_path);
            // The numbering's log goes into the database while the emails are built.
            let checkpoint = scope.spawn(move || crate::catalogue::checkpoint(catalogue_path));
            scope.spawn(move || {
                let conn = match crate::catalogue::open_read_only(catalogue_path) {
                    Ok(conn) => conn,
                    Err(e) => {
                        let _ = built_tx.send(vec![Err(BuildError::Whole(e))]);
                        return;
                    }
                };
                for &(first, last) in chunks {
                    let built = match release_rows(&conn, catalogue_path, release, first, last) {
                        Ok(rows) => rows
                            .par_iter()
                            .map(|row| guarded(row.id, row.number, &row.content_id, || build(row)))
                            .collect(),
                        Err(e) => vec![Err(BuildError::Whole(e))],
                    };
                    if built_tx.send(built).is_err() {
                        break;
                    }
                }
            });
            for built in built_rx {
                let n = built.len() as u64;
                for item in built {
                    let (message, files, attachment_bytes, document) = match item {
                        Ok(built) => built,
                        Err(BuildError::Whole(e)) => return Err(e),
                        Err(BuildError::Email(id, held)) => {
                            not_built.push((id, held));
                            continue;
                        }
                    };
                    // After a failure nothing more is written: the attempt is made again
                    // without the emails that failed, whose numbers the next ones take.
                    if !not_built.is_empty() {
                        continue;
                    }
                    if let Some(r) = &message.redaction {
                        writer.register.add(r);
                    }
                    let attachments: Vec<(&PublishedAttachment, &[u8])> = message
                        .attachments
                        .iter()
                        .zip(attachment_bytes.iter().map(Vec::as_slice))
                        .collect();
                    writer.add_prepared(files, &attachments)?;
                    index_writer
                        .add_document(document)
                        .map_err(trove_site::SiteError::from)?;
                    // Threading needs only the identifiers, not the email.
                    threaded.push(trove_site::threads::Links::from_published(message));
                }
                done += n;
                progress(done, count as u64);
            }
            checkpoint
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        if !not_built.is_empty() {
            return Ok(Attempt::NotBuilt(not_built));
        }
        writer.register.messages_withheld = self.withheld_in(release)?;
        let mut withdrawn = Vec::new();
        for w in self.withdrawals_in(release)? {
            index.delete_number(&index_writer, w.number);
            withdrawn.push(w.number);
            writer.withdraw(w);
        }
        let register = writer.register.clone();
        // The manifest is signed and the emails threaded while the index's segment is
        // written out: each was a second of one core at 100,000 emails.
        let (files, manifest_sha256) = index.commit_whole_with(index_writer, || {
            let (manifest, manifest_sha256) = writer.finish(key)?;
            // The signed manifest says they are gone; now they go.
            trove_site::remove_withdrawn(site, &manifest)?;
            // The file list is two entries per email (hundreds of MB at 1M): gone
            // before rethreading, which needs memory of its own.
            let files = manifest.files.len();
            drop(manifest);
            trove_site::rethread(site, threaded, &withdrawn)?;
            Ok((files, manifest_sha256))
        })?;
        self.catalogue
            .conn
            .execute(
                "UPDATE releases SET state = 'published', manifest_sha256 = ?2 WHERE number = ?1",
                params![release, manifest_sha256],
            )
            .map_err(self.catalogue.err())?;
        self.catalogue.log(
            "release",
            &serde_json::json!({
                "release": release, "title": title, "first": numbers.first, "last": numbers.last,
                "site": site.root().display().to_string(), "manifest_sha256": manifest_sha256, "resumed": resumed,
                "policy_sha256": policy.hash, "register": register,
            })
            .to_string(),
        )?;
        Ok(Attempt::Written(ReleaseOutcome {
            release,
            title,
            numbers,
            files,
            manifest_sha256,
            resumed,
            held_back: Vec::new(),
        }))
    }
}

/// The next release's number and the first public number it may give.
pub(crate) fn next_release(conn: &rusqlite::Connection) -> rusqlite::Result<(u32, u64)> {
    conn.query_row(
        "SELECT coalesce(max(number), 0) + 1, coalesce(max(last), 0) + 1 FROM releases",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as u64)),
    )
}

/// Records emails held back from `release`, each under its reason: they take no number,
/// and no later release takes them.
pub(crate) fn withhold<'a>(
    conn: &rusqlite::Connection,
    release: u32,
    held: impl IntoIterator<Item = (i64, &'a str)>,
) -> rusqlite::Result<()> {
    let mut insert =
        conn.prepare("INSERT INTO withheld (message, release, reason) VALUES (?1, ?2, ?3)")?;
    for (id, reason) in held {
        insert.execute(params![id, release, reason])?;
    }
    Ok(())
}

/// Gives the emails `ids`, in their order, the numbers of `release` from `first` on.
pub(crate) fn number_in_order(
    conn: &rusqlite::Connection,
    release: u32,
    first: u64,
    ids: &[i64],
) -> rusqlite::Result<()> {
    let mut set = conn.prepare("UPDATE messages SET number = ?2, release = ?3 WHERE id = ?1")?;
    for (i, id) in ids.iter().enumerate() {
        set.execute(params![id, (first + i as u64) as i64, release])?;
    }
    Ok(())
}

/// Records `release` in state `writing`: numbered and committed before anything is
/// written, so a crash is finished with the same numbers, title and time.
pub(crate) fn record_writing(
    conn: &rusqlite::Connection,
    release: u32,
    title: &str,
    numbers: NumberRange,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO releases (number, title, published_at, first, last, state) VALUES (?1, ?2, ?3, ?4, ?5, 'writing')",
        params![release, title, crate::catalogue::now_rfc3339(), numbers.first as i64, numbers.last as i64],
    )?;
    Ok(())
}

/// A key record as published. The site is public: an archive key names the key file,
/// not where it sits on the publisher's machine.
fn public_key(
    name: String,
    txt: String,
    kind: &str,
    detail: String,
    private_key_published: i64,
) -> trove_site::PublishedKey {
    let mut source = crate::dkim::source_from(kind, detail);
    if let trove_mail::dkim::KeySource::Archive { file } = &mut source {
        *file = std::path::Path::new(file.as_str())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    trove_site::PublishedKey {
        name,
        txt,
        source: source.to_string(),
        private_key_published: private_key_published != 0,
    }
}

/// How many numbers the build thread reads and builds at a time.
const CHUNK: u64 = 512;

/// One chunk of a release's rows, by number. The folders are a subquery, not a join
/// grouped by id: with the join, SQLite scanned the whole table for every chunk instead
/// of searching the numbers' index (quadratic in the release's size; see the test).
/// Where the original is packed comes with the row (at most one place, by the subquery),
/// rather than from a lookup per email behind the blob store's one shared connection
/// (2.4 % of a 100k release's samples).
const RELEASE_ROWS: &str = "SELECT m.number, m.content_id,
        (SELECT group_concat(DISTINCT c.folder) FROM copies c WHERE c.message = m.id),
        m.defects, m.id, p.pack, p.offset, p.length,
        (SELECT found FROM findings f WHERE f.message = m.id)
    FROM messages m
    LEFT JOIN packed p ON p.rowid = (SELECT q.rowid FROM packed q
        WHERE q.content_key = m.content_key AND q.content_id = m.content_id LIMIT 1)
    WHERE m.release = ?1 AND m.number BETWEEN ?2 AND ?3 ORDER BY m.number";

/// The rows of `release` numbered `first..=last`, with what release needs of their DKIM
/// and ARC results and their findings. They are read in one transaction: outside one,
/// each of the DKIM and ARC lookups (one each per email) took and released SQLite's
/// locks on the catalogue's files.
fn release_rows(
    conn: &Connection,
    path: &Path,
    release: u32,
    first: u64,
    last: u64,
) -> Result<Vec<Row>> {
    let read = conn.unchecked_transaction().map_err(db_err(path))?;
    let rows = chunk_rows(&read, path, release, first, last)?;
    read.commit().map_err(db_err(path))?;
    Ok(rows)
}

/// [`release_rows`]' reads, inside its transaction.
fn chunk_rows(
    conn: &Connection,
    path: &Path,
    release: u32,
    first: u64,
    last: u64,
) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(RELEASE_ROWS).map_err(db_err(path))?;
    let mut rows: Vec<Row> = stmt
        .query_map(params![release, first as i64, last as i64], |r| {
            let folders: Option<String> = r.get(2)?;
            let mut folders: Vec<String> = folders
                .unwrap_or_default()
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect();
            folders.sort();
            let defects: String = r.get(3)?;
            let defects = defects
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect();
            let packed = match r.get::<_, Option<u32>>(5)? {
                Some(pack) => Some(Packed {
                    pack,
                    offset: r.get(6)?,
                    length: r.get(7)?,
                }),
                None => None,
            };
            let mut kinds = BTreeSet::new();
            let mut attachment_kinds: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            // Read where SQLite holds it, not copied out first.
            let found = r.get_ref(8)?.as_str_or_null()?;
            for (part, kind) in crate::privacy::kinds_in(found)? {
                if let Some(n) = part
                    .strip_prefix("attachment:")
                    .and_then(|n| n.parse().ok())
                {
                    attachment_kinds
                        .entry(n)
                        .or_default()
                        .push(kind.to_string());
                }
                if !kinds.contains(kind.as_ref()) {
                    kinds.insert(kind.into_owned());
                }
            }
            Ok(Row {
                id: r.get(4)?,
                number: r.get::<_, i64>(0)? as u64,
                content_id: r.get(1)?,
                folders,
                defects,
                dkim: Vec::new(),
                arc: None,
                attachment_kinds,
                kinds,
                packed,
                texts: BTreeMap::new(),
            })
        })
        .map_err(db_err(path))?
        .collect::<std::result::Result<_, _>>()
        .map_err(db_err(path))?;
    load_dkim(conn, path, &mut rows)?;
    load_arc(conn, path, &mut rows)?;
    load_texts(conn, path, &mut rows)?;
    Ok(rows)
}

/// The attachment texts ingest kept for each row.
fn load_texts(conn: &Connection, path: &Path, rows: &mut [Row]) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("SELECT idx, text FROM attachment_texts WHERE message = ?1")
        .map_err(db_err(path))?;
    for row in rows.iter_mut() {
        row.texts = stmt
            .query_map([row.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_err(path))?
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err(path))?;
    }
    Ok(())
}

/// The stored ARC chain of each row, with the key record of each seal.
fn load_arc(conn: &Connection, path: &Path, rows: &mut [Row]) -> Result<()> {
    let mut chain = conn
        .prepare_cached("SELECT sets, verdict, reason, seals FROM arc_results WHERE message = ?1")
        .map_err(db_err(path))?;
    let mut key = conn
        .prepare_cached(
            "SELECT name, txt, source, source_detail, private_key_published FROM dkim_keys WHERE name = ?1",
        )
        .map_err(db_err(path))?;
    for row in rows.iter_mut() {
        let found: Option<(u32, String, String, String)> = chain
            .query_row([row.id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .map_err(db_err(path))?;
        let Some((sets, verdict, reason, seals)) = found else {
            continue;
        };
        let stored: Vec<crate::dkim::StoredSeal> = serde_json::from_str(&seals).unwrap_or_default();
        let mut seals = Vec::with_capacity(stored.len());
        for s in stored {
            let name = format!("{}._domainkey.{}", s.selector, s.domain).to_ascii_lowercase();
            let key = key
                .query_row([&name], |r| {
                    Ok(public_key(
                        r.get(0)?,
                        r.get(1)?,
                        &r.get::<_, String>(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                })
                .optional()
                .map_err(db_err(path))?;
            seals.push(trove_site::PublishedArcSeal {
                instance: s.instance,
                domain: s.domain,
                selector: s.selector,
                verdict: s.verdict,
                reason: s.reason,
                key,
            });
        }
        row.arc = Some(trove_site::PublishedArc {
            sets,
            verdict,
            reason,
            seals,
        });
    }
    Ok(())
}

fn load_dkim(conn: &Connection, path: &Path, rows: &mut [Row]) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT v.domain, v.selector, v.algorithm, v.verdict, v.reason, v.key_bits,
                    v.body_length_limit, v.body_length, v.weak,
                    k.name, k.txt, k.source, k.source_detail, k.private_key_published
             FROM dkim_verdicts v LEFT JOIN dkim_keys k ON k.name = v.key_name
             WHERE v.message = ?1 ORDER BY v.idx",
        )
        .map_err(db_err(path))?;
    for row in rows.iter_mut() {
        row.dkim = stmt
            .query_map([row.id], |r| {
                let key = match r.get::<_, Option<String>>(9)? {
                    Some(name) => Some(public_key(
                        name,
                        r.get(10)?,
                        &r.get::<_, String>(11)?,
                        r.get(12)?,
                        r.get(13)?,
                    )),
                    None => None,
                };
                Ok(trove_site::PublishedDkim {
                    domain: r.get(0)?,
                    selector: r.get(1)?,
                    algorithm: r.get(2)?,
                    verdict: r.get(3)?,
                    reason: r.get(4)?,
                    key_bits: r.get(5)?,
                    body_length_limit: r.get::<_, Option<i64>>(6)?.map(|l| l as u64),
                    body_length: r.get::<_, Option<i64>>(7)?.map(|l| l as u64),
                    weak: r.get(8)?,
                    key,
                })
            })
            .map_err(db_err(path))?
            .collect::<Result<_, _>>()
            .map_err(db_err(path))?;
    }
    Ok(())
}

fn people(list: &[trove_mail::Mailbox]) -> Vec<Person> {
    list.iter()
        .map(|m| Person {
            name: m.name.clone(),
            address: m.address.clone(),
        })
        .collect()
}

/// An email's unredacted form under a stand-in number, for searching the workspace
/// (`--query`); never written to a site.
pub(crate) fn searchable_form(number: u64, raw: &[u8]) -> (PublishedMessage, Vec<String>) {
    let row = Row {
        id: 0,
        number,
        content_id: String::new(),
        folders: Vec::new(),
        defects: Vec::new(),
        dkim: Vec::new(),
        arc: None,
        attachment_kinds: BTreeMap::new(),
        kinds: Default::default(),
        packed: None,
        texts: BTreeMap::new(),
    };
    let (message, bytes) = published_form(&row, 0, raw);
    let texts = attachment_texts(&message, &bytes, &row.texts);
    (message, texts)
}

/// The searchable text of each attachment that has some: as ingest read it, where it
/// kept it (`stored`, by attachment number), or read now.
fn attachment_texts(
    message: &PublishedMessage,
    bytes: &[Vec<u8>],
    stored: &BTreeMap<u32, Option<String>>,
) -> Vec<String> {
    message
        .attachments
        .iter()
        .zip(bytes)
        .filter_map(|(a, b)| match stored.get(&a.index) {
            Some(text) => text.clone().filter(|t| !t.trim().is_empty()),
            None => trove_site::attachment_text(a, b),
        })
        .collect()
}

/// The published form of one email, and the bytes of its attachments in order.
fn published_form(row: &Row, release: u32, raw: &[u8]) -> (PublishedMessage, Vec<Vec<u8>>) {
    let parsed = trove_mail::parse(raw);
    let date = parsed.date.and_then(|d| {
        let offset = time::UtcOffset::from_whole_seconds(d.offset).unwrap_or(time::UtcOffset::UTC);
        time::OffsetDateTime::from_unix_timestamp(d.timestamp)
            .ok()?
            .to_offset(offset)
            .format(&Rfc3339)
            .ok()
    });
    let mut attachments = Vec::with_capacity(parsed.attachments.len());
    let mut bytes = Vec::with_capacity(parsed.attachments.len());
    for (i, a) in parsed.attachments.into_iter().enumerate() {
        attachments.push(PublishedAttachment {
            index: i as u32 + 1,
            filename: a.filename,
            content_type: a.content_type,
            size: a.bytes.len() as u64,
            sha256: sha256_hex(&a.bytes),
        });
        bytes.push(a.bytes);
    }
    let message = PublishedMessage {
        format: trove_site::MESSAGE_FORMAT,
        number: row.number,
        release,
        message_id: parsed.message_id,
        date,
        timestamp: parsed.date.map(|d| d.timestamp),
        from: people(&parsed.from),
        to: people(&parsed.to),
        cc: people(&parsed.cc),
        subject: parsed.subject.unwrap_or_default(),
        in_reply_to: parsed.in_reply_to,
        references: parsed.references,
        headers: parsed.header_block,
        text: parsed.text,
        html: parsed.html.as_deref().map(trove_mail::sanitize_html),
        attachments,
        folders: row.folders.clone(),
        charsets: parsed.charsets,
        defects: row.defects.clone(),
        // The store checked the bytes against their content id, their SHA-256.
        raw_sha256: Some(row.content_id.clone()),
        raw_size: Some(raw.len() as u64),
        dkim: row.dkim.clone(),
        arc: row.arc.clone(),
        redaction: None,
    };
    (message, bytes)
}

#[cfg(test)]
mod tests {
    use super::{BuildError, guarded};
    use crate::WorkspaceError;

    /// A panic and a damaged original hold back that one email, with what went wrong; an
    /// error of the machine (here the disk) stops the release as before.
    #[test]
    fn one_emails_panic_or_damage_holds_it_back_and_others_stop_the_release() {
        let held = |r: Result<(), BuildError>| match r {
            Err(BuildError::Email(id, h)) => (id, h.number, h.content_id, h.error),
            Err(BuildError::Whole(e)) => panic!("held back, not stopped: {e}"),
            Ok(()) => panic!("held back, not built"),
        };
        let (id, number, content_id, error) =
            held(guarded(7, 41, "ab", || -> crate::Result<()> {
                panic!("no part {}", 3)
            }));
        assert_eq!((id, number, content_id.as_str()), (7, 41, "ab"));
        assert_eq!(error, "building it panicked: no part 3");
        let damaged = || -> crate::Result<()> {
            Err(WorkspaceError::UnreadableBlob {
                content_id: "cd".into(),
                path: "packs/00000001.pack".into(),
                reason: "Unknown frame descriptor".into(),
            })
        };
        let (_, _, _, error) = held(guarded(8, 42, "cd", damaged));
        assert!(
            error.contains("packs/00000001.pack does not decompress"),
            "{error}"
        );
        let disk = || -> crate::Result<()> {
            Err(WorkspaceError::Io {
                path: "site".into(),
                source: std::io::Error::other("no space left on device"),
            })
        };
        assert!(matches!(
            guarded(9, 43, "ef", disk),
            Err(BuildError::Whole(WorkspaceError::Io { .. }))
        ));
        assert!(guarded(10, 44, "01", || Ok(())).is_ok());
    }

    /// Folders a release no longer reaches once shortened lose their pack; the folder of
    /// its new last number keeps its pack, which the next attempt writes again.
    #[test]
    fn a_shortened_release_names_the_packs_past_its_end() {
        let range = |first, last| trove_site::NumberRange { first, last };
        assert_eq!(
            super::packs_past(range(990, 2000), 1999),
            ["messages/0002/2000.pack"]
        );
        assert!(super::packs_past(range(990, 2000), 2000).is_empty());
        assert_eq!(
            super::packs_past(range(990, 2000), 999),
            ["messages/0001/1000.pack", "messages/0002/2000.pack"]
        );
        // Every email held back: the range is empty, and every pack goes.
        assert_eq!(
            super::packs_past(range(990, 991), 989),
            ["messages/0000/990.pack"]
        );
    }

    /// Every chunk of a release searches the numbers' index; a plan that scans the
    /// messages table made release quadratic (2,000 scans of a million rows at 1M). The
    /// copies' folders and the packed place are searched by index too: nothing is scanned.
    #[test]
    fn a_chunk_of_rows_is_read_through_the_numbers_index() {
        let dir = tempfile::tempdir().unwrap();
        let catalogue = crate::catalogue::Catalogue::open(&dir.path().join("c.sqlite")).unwrap();
        let mut stmt = catalogue
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", super::RELEASE_ROWS))
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map([1, 1, 512], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH m USING INDEX")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN")),
            "{plan:?}"
        );
    }
}
