//! DKIM in the workspace: key records with their provenance, and one stored verdict per
//! DKIM-Signature of every email, verified on its original bytes at ingest and again by
//! [`Workspace::verify_dkim`] after keys are added.

use std::path::Path;

use rusqlite::{Connection, params};
use trove_mail::dkim::{ArcResult, KeyRecord, KeySource, KeyStore, SignatureVerdict};

/// What [`authenticate`] finds: the DKIM verdicts and the ARC chain.
pub(crate) type Authentication = (Vec<SignatureVerdict>, Option<ArcResult>);

use crate::catalogue::Rows;
use crate::{Result, Workspace, io_err};

/// What importing a key archive did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct KeyImport {
    pub added: u64,
    pub replaced: u64,
    /// Lines that are not key records: (line number, text).
    pub bad_lines: Vec<(usize, String)>,
}

/// Counts after verifying every email.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DkimSummary {
    pub emails: u64,
    pub signed: u64,
    /// Emails with at least one passing signature.
    pub pass: u64,
    /// Signatures by verdict name.
    pub signatures: std::collections::BTreeMap<String, u64>,
    /// Emails with an ARC chain, by the chain's verdict.
    pub arc: std::collections::BTreeMap<String, u64>,
}

fn source_columns(source: &KeySource) -> (&'static str, String) {
    match source {
        KeySource::Archive { file } => ("archive", file.clone()),
        KeySource::Dns { at } => ("dns", at.clone()),
        KeySource::Captured { at } => ("captured", at.clone()),
    }
}

pub(crate) fn source_from(kind: &str, detail: String) -> KeySource {
    match kind {
        "dns" => KeySource::Dns { at: detail },
        "captured" => KeySource::Captured { at: detail },
        _ => KeySource::Archive { file: detail },
    }
}

pub(crate) fn store_verdicts(
    tx: &Connection,
    message: i64,
    verdicts: &[SignatureVerdict],
    rows: Rows,
) -> rusqlite::Result<()> {
    rows.clear(tx, "DELETE FROM dkim_verdicts WHERE message = ?1", message)?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO dkim_verdicts (message, idx, domain, selector, algorithm, verdict, reason, key_bits,
             key_name, body_length_limit, body_length, weak)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for v in verdicts {
        insert.execute(params![
            message,
            v.index as i64,
            v.domain,
            v.selector,
            v.algorithm,
            v.verdict.name(),
            v.verdict.reason(),
            v.key_bits,
            v.key.as_ref().map(|k| k.name.clone()),
            v.body_length_limit.map(|l| l as i64),
            v.body_length.map(|l| l as i64),
            v.weak,
        ])?;
    }
    Ok(())
}

/// A seal of an ARC chain as stored in `arc_results.seals`; the key record is joined in
/// at release from `dkim_keys`, by name.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredSeal {
    pub instance: u32,
    pub domain: String,
    pub selector: String,
    pub verdict: String,
    pub reason: String,
}

/// Verifies every DKIM signature and the ARC chain of one email's original bytes.
pub(crate) fn authenticate(raw: &[u8], keys: &KeyStore, date: Option<i64>) -> Authentication {
    (
        trove_mail::dkim::verify(raw, keys, date),
        trove_mail::dkim::verify_arc(raw, keys, date),
    )
}

pub(crate) fn store_arc(
    tx: &Connection,
    message: i64,
    arc: Option<&ArcResult>,
    rows: Rows,
) -> rusqlite::Result<()> {
    rows.clear(tx, "DELETE FROM arc_results WHERE message = ?1", message)?;
    let Some(arc) = arc else { return Ok(()) };
    let seals: Vec<StoredSeal> = arc
        .seals
        .iter()
        .map(|(instance, domain, selector, verdict)| StoredSeal {
            instance: *instance,
            domain: domain.clone(),
            selector: selector.clone(),
            verdict: verdict.name().to_string(),
            reason: verdict.reason(),
        })
        .collect();
    tx.prepare_cached(
        "INSERT INTO arc_results (message, sets, verdict, reason, seals) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
            message,
            arc.sets,
            arc.verdict.name(),
            arc.verdict.reason(),
            serde_json::to_string(&seals).unwrap_or_else(|_| "[]".into()),
        ],
    )?;
    Ok(())
}

impl Workspace {
    /// Every key record the workspace holds.
    pub fn key_store(&self) -> Result<KeyStore> {
        let mut store = KeyStore::default();
        let mut stmt = self
            .catalogue
            .conn
            .prepare(
                "SELECT name, txt, source, source_detail, private_key_published FROM dkim_keys",
            )
            .map_err(self.catalogue.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(KeyRecord {
                    name: r.get(0)?,
                    txt: r.get(1)?,
                    source: source_from(&r.get::<_, String>(2)?, r.get(3)?),
                    private_key_published: r.get::<_, i64>(4)? != 0,
                })
            })
            .map_err(self.catalogue.err())?;
        for row in rows {
            store.insert(row.map_err(self.catalogue.err())?);
        }
        Ok(store)
    }

    /// Adds the records of a key archive file (`selector._domainkey.domain TXT` lines).
    /// A record for a name already held replaces it.
    pub fn import_keys(&mut self, path: &Path) -> Result<KeyImport> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let (store, bad_lines) = KeyStore::parse_archive(&text, &file.display().to_string());
        let records: Vec<KeyRecord> = store.records().cloned().collect();
        let mut import = self.add_keys(&records)?;
        import.bad_lines = bad_lines;
        Ok(import)
    }

    /// Adds key records (from a key archive or a DNS lookup); a record for a name already
    /// held replaces it.
    pub fn add_keys(&mut self, records: &[KeyRecord]) -> Result<KeyImport> {
        let mut import = KeyImport::default();
        let (tx, cat_err) = self.catalogue.begin()?;
        for record in records {
            let (kind, detail) = source_columns(&record.source);
            let existed: i64 = tx
                .query_row(
                    "SELECT count(*) FROM dkim_keys WHERE name = ?1",
                    [&record.name],
                    |r| r.get(0),
                )
                .map_err(cat_err)?;
            tx.execute(
                "INSERT OR REPLACE INTO dkim_keys (name, txt, source, source_detail, private_key_published)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![record.name, record.txt, kind, detail, record.private_key_published as i64],
            )
            .map_err(cat_err)?;
            if existed > 0 {
                import.replaced += 1;
            } else {
                import.added += 1;
            }
        }
        tx.commit().map_err(cat_err)?;
        let sources: std::collections::BTreeSet<String> =
            records.iter().map(|r| r.source.to_string()).collect();
        self.catalogue.log(
            "dkim-keys",
            &serde_json::json!({"sources": sources, "added": import.added, "replaced": import.replaced})
                .to_string(),
        )?;
        Ok(import)
    }

    /// The key names (`selector._domainkey.domain`) that signatures and ARC seals need and
    /// the workspace does not hold: what a DNS lookup should fetch.
    pub fn missing_key_names(&self) -> Result<Vec<String>> {
        let held = self.key_store()?;
        let mut names = std::collections::BTreeSet::new();
        let mut stmt = self
            .catalogue
            .conn
            .prepare("SELECT DISTINCT selector, domain FROM dkim_verdicts WHERE verdict = 'key-not-found'")
            .map_err(self.catalogue.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(self.catalogue.err())?;
        for row in rows {
            names.insert(row.map_err(self.catalogue.err())?);
        }
        let mut stmt = self
            .catalogue
            .conn
            .prepare("SELECT seals FROM arc_results")
            .map_err(self.catalogue.err())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.catalogue.err())?;
        for row in rows {
            let seals: Vec<StoredSeal> =
                serde_json::from_str(&row.map_err(self.catalogue.err())?).unwrap_or_default();
            for seal in seals {
                names.insert((seal.selector, seal.domain));
            }
        }
        Ok(names
            .into_iter()
            .filter(|(s, d)| !s.is_empty() && !d.is_empty())
            .map(|(s, d)| format!("{s}._domainkey.{d}").to_ascii_lowercase())
            .filter(|name| trove_mail::dkim::KeyLookup::lookup(&held, name).is_none())
            .collect())
    }

    /// Marks a key as having its private half published: a pass with it proves nothing.
    pub fn mark_key_compromised(&mut self, name: &str) -> Result<bool> {
        let n = self
            .catalogue
            .conn
            .execute(
                "UPDATE dkim_keys SET private_key_published = 1 WHERE name = ?1",
                [name.to_ascii_lowercase()],
            )
            .map_err(self.catalogue.err())?;
        self.catalogue.log("dkim-key-compromised", name)?;
        Ok(n > 0)
    }

    /// Verifies every email again with the keys held now, replacing the stored verdicts.
    pub fn verify_dkim(&mut self, progress: &dyn Fn(u64, u64)) -> Result<DkimSummary> {
        let keys = self.key_store()?;
        let mut summary = DkimSummary::default();
        summary.emails = self.over_every_original(
            |raw, date| authenticate(raw, &keys, date),
            |tx, id, (list, arc)| {
                if !list.is_empty() {
                    summary.signed += 1;
                }
                if list
                    .iter()
                    .any(|v| v.verdict == trove_mail::dkim::Verdict::Pass)
                {
                    summary.pass += 1;
                }
                for v in &list {
                    *summary
                        .signatures
                        .entry(v.verdict.name().to_string())
                        .or_default() += 1;
                }
                if let Some(arc) = &arc {
                    *summary
                        .arc
                        .entry(arc.verdict.name().to_string())
                        .or_default() += 1;
                }
                store_verdicts(tx, id, &list, Rows::Replace)?;
                store_arc(tx, id, arc.as_ref(), Rows::Replace)
            },
            progress,
        )?;
        self.catalogue
            .log("dkim", &serde_json::to_string(&summary).unwrap_or_default())?;
        Ok(summary)
    }
}
