//! The catalogue: one SQLite file. Schema v6:
//!
//! - `messages`: one row per distinct email (content id of its first copy, dedupe
//!   fingerprint, the fields releases sort and report by, defects, public number once
//!   released).
//! - `copies`: every place an email was found (the root it was ingested from, the file's
//!   absolute path, mbox offset, folder, Maildir flags) and the content id of that copy's
//!   own bytes. Unique per place (file and offset), so reading a file twice, even from
//!   another root, adds nothing.
//! - `files`, `skipped`: what ingest read, and what it passed over and why.
//! - `releases`: each installment; `state` is `writing` until its manifest is signed.
//! - `dkim_keys`: DKIM key records with their provenance; `dkim_verdicts`: one row per
//!   DKIM-Signature of each email, as verified on its original bytes; `arc_results`: the
//!   ARC chain of each email that carries one (its seals as JSON).
//! - `findings`: personal data found in each part of each email, with the value and its
//!   context (the workspace is private), one row per email
//!   (`privacy::encode_findings`); `withheld`: emails a release held back, and why.
//! - `plans`: releases planned ahead (title, go-live time, how the emails were chosen)
//!   and `plan_members`, the emails each will publish. A plan takes its release number
//!   and its emails take their public numbers only when it goes live.
//! - `withdrawals`: published emails taken down, with the reason and the release that
//!   recorded it.
//! - `log`: every command that changed the workspace: when, what, who (`$USER`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::{Result, WorkspaceError};

/// v2 added `dkim_keys` and `dkim_verdicts`, v3 `arc_results` (each created on open;
/// nothing else changed, so an older workspace is upgraded by opening it; `trove dkim`
/// then fills in what older versions did not compute).
///
/// v4 added `findings` (personal data found in each email, with the value: private),
/// `withheld` (emails a release held back, and why) and the `user` column of `log`.
///
/// v5 added `plans`, `plan_members` and `withdrawals`.
///
/// v6 keeps each email's findings in one row (`message`, `found`: a JSON array) instead
/// of a row per finding; opening a v4 or v5 catalogue converts its findings.
///
/// v7 looks emails and originals up by [`key`]s (8 bytes of a hash) instead of their
/// 64-character content ids, fingerprints and Message-IDs: `messages` gains
/// `content_key`, `fingerprint_key` and `message_key`, indexed in place of the text, and
/// `content_id` is no longer `UNIQUE` (ingest looks an original up before adding it);
/// `packed` is keyed the same way. Opening an older catalogue rebuilds both tables.
pub const SCHEMA_VERSION: u32 = 7;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    content_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    message_id TEXT,
    date INTEGER,
    from_addr TEXT,
    subject TEXT,
    size INTEGER NOT NULL,
    defects TEXT NOT NULL DEFAULT '',
    charsets TEXT NOT NULL DEFAULT '',
    number INTEGER UNIQUE,
    release INTEGER,
    content_key INTEGER NOT NULL,
    fingerprint_key INTEGER NOT NULL,
    message_key INTEGER
);
-- Hashes are random keys: every new email lands on a random page of each of these
-- indexes. Eight-byte keys (not the 64-character text) keep them a fifth of the size.
CREATE INDEX IF NOT EXISTS messages_content ON messages(content_key);
CREATE INDEX IF NOT EXISTS messages_fingerprint_key ON messages(fingerprint_key);
CREATE INDEX IF NOT EXISTS messages_message_key ON messages(message_key);
-- No query used `messages_order` (number, date, content_id): the planner takes the
-- numbers' own index, and every new email paid a random insert into it.
DROP INDEX IF EXISTS messages_order;
CREATE TABLE IF NOT EXISTS copies (
    message INTEGER NOT NULL REFERENCES messages(id),
    content_id TEXT NOT NULL,
    source TEXT NOT NULL,
    file TEXT NOT NULL,
    offset INTEGER NOT NULL,
    folder TEXT NOT NULL,
    flags TEXT,
    UNIQUE (file, offset)
);
CREATE INDEX IF NOT EXISTS copies_message ON copies(message);
-- Ingest once looked originals up by content id here; it asks `packed` (and the blob
-- store, for loose originals) now, and the index cost every insert a random page.
DROP INDEX IF EXISTS copies_content;
-- Where each original sits in a pack (blobs.rs); originals of workspaces made before
-- packs are loose files and have no row here.
CREATE TABLE IF NOT EXISTS packed (
    content_key INTEGER NOT NULL,
    content_id TEXT NOT NULL,
    pack INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS packed_content ON packed(content_key);
-- Keyed by the path alone (no rowid and a second tree holding the path again): at 100k
-- files the table and its index were 21 MB that every ingest wrote twice (log, then
-- database). Catalogues made before keep their rowid table; the statements are the same.
CREATE TABLE IF NOT EXISTS files (
    source TEXT NOT NULL, file TEXT NOT NULL PRIMARY KEY, messages INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS skipped (
    source TEXT NOT NULL, file TEXT NOT NULL PRIMARY KEY, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    number INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    published_at TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    state TEXT NOT NULL,
    manifest_sha256 TEXT
);
CREATE TABLE IF NOT EXISTS dkim_keys (
    name TEXT PRIMARY KEY,
    txt TEXT NOT NULL,
    source TEXT NOT NULL,
    source_detail TEXT NOT NULL,
    private_key_published INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dkim_verdicts (
    message INTEGER NOT NULL REFERENCES messages(id),
    idx INTEGER NOT NULL,
    domain TEXT NOT NULL,
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    key_bits INTEGER,
    key_name TEXT,
    body_length_limit INTEGER,
    body_length INTEGER,
    weak TEXT,
    PRIMARY KEY (message, idx)
);
CREATE TABLE IF NOT EXISTS arc_results (
    message INTEGER PRIMARY KEY REFERENCES messages(id),
    sets INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    seals TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    message INTEGER PRIMARY KEY REFERENCES messages(id),
    found TEXT NOT NULL
);
-- The text ingest read from each attachment in a document format (PDF, Word, ...), or
-- NULL where it could read none: a release indexes it instead of reading the document
-- again. A cache: an attachment without a row (plain text, or ingested by an older
-- trove) is read at release.
CREATE TABLE IF NOT EXISTS attachment_texts (
    message INTEGER NOT NULL REFERENCES messages(id),
    idx INTEGER NOT NULL,
    text TEXT,
    PRIMARY KEY (message, idx)
);
CREATE TABLE IF NOT EXISTS withheld (
    message INTEGER PRIMARY KEY REFERENCES messages(id),
    release INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plans (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    at TEXT NOT NULL,
    at_unix INTEGER NOT NULL,
    selection TEXT NOT NULL,
    state TEXT NOT NULL,
    release INTEGER
);
CREATE TABLE IF NOT EXISTS plan_members (
    plan INTEGER NOT NULL REFERENCES plans(id),
    message INTEGER NOT NULL UNIQUE REFERENCES messages(id)
);
CREATE INDEX IF NOT EXISTS plan_members_plan ON plan_members(plan);
CREATE TABLE IF NOT EXISTS withdrawals (
    number INTEGER PRIMARY KEY,
    release INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    files TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    time TEXT NOT NULL, command TEXT NOT NULL, detail TEXT NOT NULL
);
";

/// Whether rows stored for an email replace what an earlier scan stored (a rescan, `trove
/// dkim`) or are its first (ingest, just after the email's row was inserted: there is
/// nothing to delete, and the three `DELETE`s per email were catalogue time for nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rows {
    First,
    Replace,
}

impl Rows {
    /// Runs `delete`, a `DELETE` of what an earlier scan stored for the email `?1` in one
    /// of the catalogue's tables, when these rows replace it. The statement is written
    /// out whole by the caller, so that `prepare_cached` finds it without a string
    /// being made for every email of a rescan.
    pub(crate) fn clear(self, tx: &Connection, delete: &str, message: i64) -> rusqlite::Result<()> {
        if self == Rows::Replace {
            tx.prepare_cached(delete)?.execute([message])?;
        }
        Ok(())
    }
}

pub struct Catalogue {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

/// Counts for `trove status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    /// Distinct emails.
    pub messages: u64,
    /// Files (and archive members) read.
    pub files_read: u64,
    /// Copies found beyond the first of each email.
    pub duplicates: u64,
    /// Emails with at least one defect.
    pub flagged: u64,
    pub flagged_by_reason: BTreeMap<String, u64>,
    pub skipped_files: u64,
    /// Skipped files by the reason given (`not mail`, `Outlook PST file: …`).
    pub skipped_by_reason: BTreeMap<String, u64>,
    pub released: u64,
    /// Emails a later release may still take: neither released nor withheld.
    pub unreleased: u64,
    /// Emails held back for good: by the policy when a release went live, or because a
    /// release could not build them ([`crate::NOT_BUILT`]).
    pub withheld: u64,
    pub withheld_by_reason: BTreeMap<String, u64>,
    pub releases: u64,
    pub original_bytes: u64,
    /// Emails with at least one passing DKIM signature.
    pub dkim_pass: u64,
    /// Emails with a DKIM signature that definitely failed (changed since signing,
    /// malformed, expired, bad key) and none that passes.
    pub dkim_fail: u64,
    /// Emails signed, but whose signatures could not be checked (key not found,
    /// unsupported algorithm).
    pub dkim_unverified: u64,
    /// Emails without any DKIM signature.
    pub dkim_none: u64,
    pub dkim_keys: u64,
}

/// Converts v4/v5 findings (a row per finding) into v6's row per email, in one
/// transaction, keeping each email's findings in the order they were stored. [`SCHEMA`]
/// makes the new table once the old one is out of the way.
fn findings_to_one_row_per_email(conn: &Connection) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch("ALTER TABLE findings RENAME TO findings_v5;")?;
    tx.execute_batch(SCHEMA)?;
    {
        let mut read = tx.prepare(
            "SELECT message, part, kind, start, end, confidence, value, context
             FROM findings_v5 ORDER BY message, rowid",
        )?;
        let mut rows = read.query([])?;
        let mut current: Option<(i64, Vec<crate::privacy::PartFinding>)> = None;
        let store = |message: i64, found: &[crate::privacy::PartFinding]| {
            crate::privacy::store_findings(
                &tx,
                message,
                crate::privacy::encode_findings(found).as_deref(),
                Rows::First,
            )
        };
        while let Some(r) = rows.next()? {
            let message: i64 = r.get(0)?;
            let finding = crate::privacy::PartFinding {
                part: r.get(1)?,
                kind: r.get(2)?,
                start: r.get::<_, i64>(3)? as usize,
                end: r.get::<_, i64>(4)? as usize,
                confidence: r.get::<_, f64>(5)? as f32,
                value: r.get(6)?,
                context: r.get(7)?,
            };
            match &mut current {
                Some((m, found)) if *m == message => found.push(finding),
                _ => {
                    if let Some((m, found)) = current.take() {
                        store(m, &found)?;
                    }
                    current = Some((message, vec![finding]));
                }
            }
        }
        if let Some((m, found)) = current {
            store(m, &found)?;
        }
    }
    tx.execute_batch("DROP TABLE findings_v5;")?;
    tx.commit()
}

/// The lookup key of a content id, fingerprint or Message-ID: the first eight bytes of
/// its SHA-256, as a signed integer. Different texts may share a key, so a lookup by key
/// also compares the text.
pub(crate) fn key(text: &str) -> i64 {
    let digest = Sha256::digest(text.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 32 bytes"))
}

/// Rebuilds a v6 or older catalogue's `messages` and `packed` with v7's lookup keys, in
/// one transaction; every email keeps its id. The old tables are renamed with foreign keys
/// off and the legacy rename, so that the tables referring to `messages` keep referring
/// to that name, which [`SCHEMA`] then gives the new table.
fn add_lookup_keys(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA foreign_keys=OFF; PRAGMA legacy_alter_table=ON;")?;
    let rebuilt = (|| {
        let tx = conn.unchecked_transaction()?;
        let packed = has_column(&tx, "packed", "content_id")?;
        tx.execute_batch("ALTER TABLE messages RENAME TO messages_v6;")?;
        if packed {
            tx.execute_batch("ALTER TABLE packed RENAME TO packed_v6;")?;
        }
        // The new indexes are made after the rows are in, by one sort each, rather than by
        // a million random inserts: a 1M-email catalogue took 37 s to migrate with the
        // indexes made first, 15 s with them made last (`trove status`, which opens it).
        tx.execute_batch(SCHEMA)?;
        tx.execute_batch(
            "DROP INDEX messages_content; DROP INDEX messages_fingerprint_key;
             DROP INDEX messages_message_key; DROP INDEX packed_content;",
        )?;
        {
            const KEPT: &str = "id, content_id, fingerprint, message_id, date, from_addr, \
                subject, size, defects, charsets, number, release";
            let mut read = tx.prepare(&format!("SELECT {KEPT} FROM messages_v6 ORDER BY id"))?;
            let mut write = tx.prepare(&format!(
                "INSERT INTO messages ({KEPT}, content_key, fingerprint_key, message_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ))?;
            let mut rows = read.query([])?;
            while let Some(r) = rows.next()? {
                let kept = (0..12)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let content_id: String = r.get(1)?;
                let fingerprint: String = r.get(2)?;
                let message_id: Option<String> = r.get(3)?;
                let keys = [
                    Some(key(&content_id)),
                    Some(key(&fingerprint)),
                    message_id.as_deref().map(key),
                ];
                let values = kept
                    .iter()
                    .map(|v| v as &dyn rusqlite::ToSql)
                    .chain(keys.iter().map(|k| k as &dyn rusqlite::ToSql));
                write.execute(rusqlite::params_from_iter(values))?;
            }
        }
        if packed {
            let mut read = tx.prepare("SELECT content_id, pack, offset, length FROM packed_v6")?;
            let mut write = tx.prepare(
                "INSERT INTO packed (content_key, content_id, pack, offset, length)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut rows = read.query([])?;
            while let Some(r) = rows.next()? {
                let content_id: String = r.get(0)?;
                let (pack, offset, length): (i64, i64, i64) = (r.get(1)?, r.get(2)?, r.get(3)?);
                write.execute(params![key(&content_id), content_id, pack, offset, length])?;
            }
        }
        tx.execute_batch("DROP TABLE messages_v6;")?;
        if packed {
            tx.execute_batch("DROP TABLE packed_v6;")?;
        }
        tx.execute_batch(SCHEMA)?;
        tx.commit()
    })();
    conn.execute_batch("PRAGMA legacy_alter_table=OFF; PRAGMA foreign_keys=ON;")?;
    rebuilt
}

/// Whether `table` exists with a column named `column` (how an older schema is told).
fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists([table, column])
}

impl Catalogue {
    pub fn open(path: &Path) -> Result<Catalogue> {
        let err = |source| WorkspaceError::Catalogue {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        )
        .map_err(err)?;
        let found: Option<u32> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .unwrap_or(None)
            .and_then(|v| v.parse().ok());
        if let Some(found) = found
            && found > SCHEMA_VERSION
        {
            return Err(WorkspaceError::SchemaTooNew {
                found,
                max: SCHEMA_VERSION,
            });
        }
        // Keys first: the findings' conversion makes the new tables through SCHEMA, whose
        // indexes need v7's columns.
        if has_column(&conn, "messages", "content_id").map_err(err)?
            && !has_column(&conn, "messages", "content_key").map_err(err)?
        {
            add_lookup_keys(&conn).map_err(err)?;
        }
        if has_column(&conn, "findings", "part").map_err(err)? {
            findings_to_one_row_per_email(&conn).map_err(err)?;
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        if !has_column(&conn, "log", "user").map_err(err)? {
            conn.execute_batch("ALTER TABLE log ADD COLUMN user TEXT")
                .map_err(err)?;
        }
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(err)?;
        Ok(Catalogue {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a transaction, with the error mapper to use while it holds the connection.
    pub(crate) fn begin(
        &mut self,
    ) -> Result<(
        rusqlite::Transaction<'_>,
        impl Fn(rusqlite::Error) -> WorkspaceError + Copy + '_,
    )> {
        let Catalogue { conn, path } = self;
        let tx = conn.transaction().map_err(db_err(path))?;
        Ok((tx, db_err(path)))
    }

    /// Sets how many pages the write-ahead log may hold before a commit on this
    /// connection copies it into the database file (SQLite's default is 1,000; 0 turns
    /// those checkpoints off) and returns the setting it replaces, to be given back.
    pub(crate) fn set_autocheckpoint(&self, pages: i64) -> Result<i64> {
        let before = self
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .map_err(self.err())?;
        self.conn
            .query_row(&format!("PRAGMA wal_autocheckpoint = {pages}"), [], |_| {
                Ok(())
            })
            .map_err(self.err())?;
        Ok(before)
    }

    pub(crate) fn err(&self) -> impl Fn(rusqlite::Error) -> WorkspaceError + Copy + '_ {
        db_err(&self.path)
    }

    /// A value of the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [key, value],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn log(&self, command: &str, detail: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO log (time, command, detail, user) VALUES (?1, ?2, ?3, ?4)",
                params![now_rfc3339(), command, detail, user()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn status(&self) -> Result<Status> {
        let one = |sql: &str| -> Result<u64> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|v| v as u64)
                .map_err(self.err())
        };
        let mut s = Status {
            messages: one("SELECT count(*) FROM messages")?,
            files_read: one("SELECT count(*) FROM files")?,
            flagged: one("SELECT count(*) FROM messages WHERE defects != ''")?,
            released: one("SELECT count(*) FROM messages WHERE number IS NOT NULL")?,
            releases: one("SELECT count(*) FROM releases WHERE state = 'published'")?,
            original_bytes: one("SELECT coalesce(sum(size), 0) FROM messages")?,
            ..Status::default()
        };
        s.duplicates = one("SELECT count(*) FROM copies")?.saturating_sub(s.messages);
        // Reasons and their counts, from a `SELECT reason, count(*) … GROUP BY reason`.
        let by_reason = |sql: &str| -> Result<BTreeMap<String, u64>> {
            let mut stmt = self.conn.prepare(sql).map_err(self.err())?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })
                .map_err(self.err())?;
            rows.collect::<rusqlite::Result<_>>().map_err(self.err())
        };
        s.withheld_by_reason = by_reason("SELECT reason, count(*) FROM withheld GROUP BY reason")?;
        s.withheld = s.withheld_by_reason.values().sum();
        s.unreleased = s.messages.saturating_sub(s.released + s.withheld);
        // Each email's DKIM status, by the definition the search index uses.
        let mut stmt = self
            .conn
            .prepare("SELECT group_concat(verdict) FROM dkim_verdicts GROUP BY message")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        let mut signed = 0;
        for row in rows {
            let verdicts = row.map_err(self.err())?;
            signed += 1;
            match trove_site::dkim_status_of(verdicts.split(',')) {
                "pass" => s.dkim_pass += 1,
                "fail" => s.dkim_fail += 1,
                _ => s.dkim_unverified += 1,
            }
        }
        s.dkim_none = s.messages - signed;
        s.dkim_keys = one("SELECT count(*) FROM dkim_keys")?;
        s.skipped_by_reason = by_reason("SELECT reason, count(*) FROM skipped GROUP BY reason")?;
        s.skipped_files = s.skipped_by_reason.values().sum();
        let mut stmt = self
            .conn
            .prepare("SELECT defects FROM messages WHERE defects != ''")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        for row in rows {
            for d in row.map_err(self.err())?.split(',') {
                *s.flagged_by_reason.entry(d.to_string()).or_default() += 1;
            }
        }
        Ok(s)
    }
}

/// A read-only connection to the catalogue at `path`, for a thread that looks things up
/// while another writes (WAL lets it read the last committed state).
pub(crate) fn open_read_only(path: &Path) -> Result<Connection> {
    Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err(path))
}

/// Copies the write-ahead log of the catalogue at `path` into the database file, on a
/// connection of its own, without waiting for readers or writers (a passive checkpoint:
/// what it cannot copy now, a later checkpoint copies). A release runs it on a thread
/// of its own while it builds: the numbering's commit leaves the log holding every page
/// of `messages`, and copying them back (and syncing) at that commit took a quarter of
/// a second of the release's single-threaded start at 100,000 emails.
pub(crate) fn checkpoint(path: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err(path))?;
    checkpoint_on(&conn, path)
}

/// [`checkpoint`] on a connection already open (as SQLite's automatic checkpoint does
/// after a commit). Once all of the log is copied, the next transaction writes it again
/// from its start.
pub(crate) fn checkpoint_on(conn: &Connection, path: &Path) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .map_err(db_err(path))
}

/// The write-ahead log of the catalogue at `path`.
pub(crate) fn log_path(path: &Path) -> PathBuf {
    let mut log = path.as_os_str().to_owned();
    log.push("-wal");
    PathBuf::from(log)
}

/// Maps a SQLite error to one naming the catalogue file. Borrowing only the path, it can
/// be used while a transaction holds the connection.
pub(crate) fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> WorkspaceError + Copy + '_ {
    move |source| WorkspaceError::Catalogue {
        path: path.to_path_buf(),
        source,
    }
}

/// Who ran the command: the login name, as the environment gives it.
fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formattable")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With automatic checkpoints off, a large commit stays in the write-ahead log, and
    /// the database file grows only when `checkpoint` copies it there from a connection
    /// of its own; the setting comes back as it was.
    #[test]
    fn a_commit_waits_in_the_log_for_a_checkpoint_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalogue.sqlite");
        let mut catalogue = Catalogue::open(&path).unwrap();
        let file_size = || std::fs::metadata(&path).unwrap().len();
        assert_eq!(catalogue.set_autocheckpoint(0).unwrap(), 1000);
        let before = file_size();
        let (tx, _) = catalogue.begin().unwrap();
        for i in 0..4000 {
            tx.execute(
                "INSERT INTO log (time, command, detail) VALUES ('', 'test', ?1)",
                [format!("{i:01000}")],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(file_size(), before, "the commit copied its pages already");
        checkpoint(&path).unwrap();
        assert!(
            file_size() > before + 4_000_000,
            "the checkpoint left the pages in the log: {} bytes",
            file_size()
        );
        assert_eq!(catalogue.set_autocheckpoint(1000).unwrap(), 0);
    }

    /// A v5 catalogue's findings, a row each, read back from v6's row per email in the
    /// order they were stored; emails without findings get no row.
    #[test]
    fn opening_a_v5_catalogue_groups_its_findings_by_email() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalogue.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', '5');
                 CREATE TABLE messages (id INTEGER PRIMARY KEY, content_id TEXT NOT NULL UNIQUE,
                     fingerprint TEXT NOT NULL, message_id TEXT, date INTEGER, from_addr TEXT,
                     subject TEXT, size INTEGER NOT NULL, defects TEXT NOT NULL DEFAULT '',
                     charsets TEXT NOT NULL DEFAULT '', number INTEGER UNIQUE, release INTEGER);
                 INSERT INTO messages (id, content_id, fingerprint, size) VALUES
                     (1, 'a', 'fa', 10), (2, 'b', 'fb', 20), (3, 'c', 'fc', 30);
                 CREATE TABLE findings (message INTEGER NOT NULL REFERENCES messages(id),
                     part TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
                     kind TEXT NOT NULL, confidence REAL NOT NULL, value TEXT NOT NULL,
                     context TEXT NOT NULL);
                 CREATE INDEX findings_message ON findings(message);
                 INSERT INTO findings VALUES
                     (3, 'text', 5, 16, 'phone', 0.5, '555-123-4567', 'call 555-123-4567 now'),
                     (1, 'text', 0, 11, 'ssn', 0.9, '078-05-1120', '078-05-1120 is \"it\"'),
                     (3, 'attachment:1', 0, 0, 'unreadable', 1.0, 'scan.png', 'scan.png: image'),
                     (1, 'subject', 2, 13, 'ssn', 0.9, '219-09-9999', 'x 219-09-9999');",
            )
            .unwrap();
        }
        let catalogue = Catalogue::open(&path).unwrap();
        let got = |id| {
            crate::privacy::load_findings(&catalogue.conn, id)
                .unwrap()
                .into_iter()
                .map(|f| (f.part, f.kind, f.start, f.end, f.value, f.context))
                .collect::<Vec<_>>()
        };
        let row = |part: &str, kind: &str, start, end, value: &str, context: &str| {
            (
                part.to_string(),
                kind.to_string(),
                start,
                end,
                value.to_string(),
                context.to_string(),
            )
        };
        assert_eq!(
            got(1),
            [
                row("text", "ssn", 0, 11, "078-05-1120", "078-05-1120 is \"it\""),
                row("subject", "ssn", 2, 13, "219-09-9999", "x 219-09-9999"),
            ]
        );
        assert_eq!(got(2), []);
        assert_eq!(
            got(3),
            [
                row(
                    "text",
                    "phone",
                    5,
                    16,
                    "555-123-4567",
                    "call 555-123-4567 now"
                ),
                row(
                    "attachment:1",
                    "unreadable",
                    0,
                    0,
                    "scan.png",
                    "scan.png: image"
                ),
            ]
        );
        let rows: i64 = catalogue
            .conn
            .query_row("SELECT count(*) FROM findings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
        assert_eq!(
            catalogue.meta("schema_version").unwrap().as_deref(),
            Some(SCHEMA_VERSION.to_string().as_str())
        );
        drop(catalogue);
        // Opening again changes nothing.
        let again = Catalogue::open(&path).unwrap();
        assert_eq!(
            crate::privacy::load_findings(&again.conn, 1).unwrap().len(),
            2
        );
    }

    /// A v6 catalogue's emails and pack entries, found again by v7's keys after opening;
    /// the ids, columns and rows that refer to them kept; the tables referring to
    /// `messages` still referring to it.
    #[test]
    fn opening_a_v6_catalogue_keys_its_emails_and_originals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalogue.sqlite");
        let (a, b) = ("a1".repeat(32), "b2".repeat(32));
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', '6');
                 CREATE TABLE messages (id INTEGER PRIMARY KEY, content_id TEXT NOT NULL UNIQUE,
                     fingerprint TEXT NOT NULL, message_id TEXT, date INTEGER, from_addr TEXT,
                     subject TEXT, size INTEGER NOT NULL, defects TEXT NOT NULL DEFAULT '',
                     charsets TEXT NOT NULL DEFAULT '', number INTEGER UNIQUE, release INTEGER);
                 CREATE INDEX messages_fingerprint ON messages(fingerprint);
                 CREATE INDEX messages_message_id ON messages(message_id);
                 CREATE TABLE copies (message INTEGER NOT NULL REFERENCES messages(id),
                     content_id TEXT NOT NULL, source TEXT NOT NULL, file TEXT NOT NULL,
                     offset INTEGER NOT NULL, folder TEXT NOT NULL, flags TEXT,
                     UNIQUE (file, offset));
                 CREATE TABLE packed (content_id TEXT PRIMARY KEY, pack INTEGER NOT NULL,
                     offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID;
                 CREATE TABLE findings (message INTEGER PRIMARY KEY REFERENCES messages(id),
                     found TEXT NOT NULL);",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO messages (id, content_id, fingerprint, message_id, subject, size,
                     defects, number, release)
                 VALUES (4, ?1, 'f4', '<x@y>', 'Re: hello', 10, 'no-date', 1, 1),
                        (9, ?2, 'f9', NULL, NULL, 20, '', NULL, NULL)",
                [&a, &b],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO copies VALUES (4, ?1, '/mail', '/mail/one', -1, 'INBOX', 'S'),
                                           (9, ?2, '/mail', '/mail/two', -1, 'INBOX', NULL);
                 ",
                [&a, &b],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO packed VALUES (?1, 1, 0, 100), (?2, 1, 100, 50)",
                [&a, &b],
            )
            .unwrap();
        }
        let catalogue = Catalogue::open(&path).unwrap();
        let conn = &catalogue.conn;
        let by_key = |content_id: &str| -> (i64, String, Option<String>, i64, Option<i64>) {
            conn.query_row(
                "SELECT id, fingerprint, message_id, size, number FROM messages
                 WHERE content_key = ?1 AND content_id = ?2",
                params![key(content_id), content_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap()
        };
        assert_eq!(
            by_key(&a),
            (4, "f4".into(), Some("<x@y>".into()), 10, Some(1))
        );
        assert_eq!(by_key(&b), (9, "f9".into(), None, 20, None));
        let (fingerprint, message): (i64, i64) = conn
            .query_row(
                "SELECT id, (SELECT id FROM messages WHERE message_key = ?2 AND message_id = '<x@y>')
                 FROM messages WHERE fingerprint_key = ?1 AND fingerprint = 'f9'",
                params![key("f9"), key("<x@y>")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((fingerprint, message), (9, 4));
        let packed: (i64, i64, i64) = conn
            .query_row(
                "SELECT pack, offset, length FROM packed WHERE content_key = ?1 AND content_id = ?2",
                params![key(&b), b],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(packed, (1, 100, 50));
        // The copies still refer to `messages`, and foreign keys are on again.
        let parent: String = conn
            .query_row(
                "SELECT \"table\" FROM pragma_foreign_key_list('copies')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(parent, "messages");
        assert!(
            conn.execute(
                "INSERT INTO copies VALUES (77, 'x', '/mail', '/mail/three', -1, 'INBOX', NULL)",
                [],
            )
            .is_err()
        );
        let old_tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%_v6%'
                 OR name IN ('messages_fingerprint', 'messages_message_id')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_tables, 0);
        assert_eq!(
            catalogue.meta("schema_version").unwrap().as_deref(),
            Some("7")
        );
    }
}
