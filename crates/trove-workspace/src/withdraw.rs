//! Withdrawing a published email (a court order, a takedown): a signed, logged event.
//!
//! The withdrawal is a release of its own: a manifest that adds no number (its range is
//! empty) and lists the email's number, the reason and the files removed. The manifest
//! is signed and written first, then the files are deleted and the email leaves the
//! index, so a crash in between is finished by the next `release` or `publish-due` like
//! any interrupted release. The public number is never reused, and the register of the
//! withdrawal counts it under its reason.

use rusqlite::{OptionalExtension, params};
use trove_site::{Site, Withdrawal};

use crate::catalogue::now_rfc3339;
use crate::release::ReleaseOutcome;
use crate::{Result, Workspace, WorkspaceError};

impl Workspace {
    /// Withdraws published email `number` from the site at `site_dir` for `reason`.
    pub fn withdraw(
        &mut self,
        site_dir: &std::path::Path,
        number: u64,
        reason: &str,
    ) -> Result<ReleaseOutcome> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(WorkspaceError::Usage(
                "a withdrawal needs a reason (--reason \"court order\"); the register publishes it"
                    .into(),
            ));
        }
        self.check_site_is_outside(site_dir)?;
        let key = self.signing_key()?;
        let site = Site::open_or_create(site_dir, &self.config.title, &key.verifying_key())?;
        if let Some(pending) = self.pending_release()? {
            self.write_release(&site, &key, pending, true, &|_, _| {})?;
        }
        let published: Option<u32> = self
            .catalogue
            .conn
            .query_row(
                "SELECT m.release FROM messages m JOIN releases r ON r.number = m.release
                 WHERE m.number = ?1 AND r.state = 'published'",
                [number as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.catalogue.err())?;
        let Some(from_release) = published else {
            return Err(WorkspaceError::Usage(format!(
                "email {number} has not been published, so there is nothing to withdraw"
            )));
        };
        let already: Option<u32> = self
            .catalogue
            .conn
            .query_row(
                "SELECT release FROM withdrawals WHERE number = ?1",
                [number as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.catalogue.err())?;
        if let Some(k) = already {
            return Err(WorkspaceError::Usage(format!(
                "email {number} was already withdrawn by release {k}"
            )));
        }
        let files = files_of(&site, number)?;
        let (tx, cat_err) = self.catalogue.begin()?;
        let (release, next_number) = crate::release::next_release(&tx).map_err(cat_err)?;
        // It adds no number: an empty range after the last one given.
        let numbers = trove_site::NumberRange {
            first: next_number,
            last: next_number - 1,
        };
        let title = format!("Withdrawal of email {number}");
        crate::release::record_writing(&tx, release, &title, numbers).map_err(cat_err)?;
        tx.execute(
            "INSERT INTO withdrawals (number, release, reason, at, files) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                number as i64,
                release,
                reason,
                now_rfc3339(),
                serde_json::json!({"from_release": from_release, "files": files}).to_string()
            ],
        )
        .map_err(cat_err)?;
        tx.commit().map_err(cat_err)?;
        let pending = self.pending_release()?.expect("just committed");
        let outcome = self.write_release(&site, &key, pending, false, &|_, _| {})?;
        self.catalogue.log(
            "withdraw",
            &serde_json::json!({"number": number, "reason": reason, "release": release})
                .to_string(),
        )?;
        Ok(outcome)
    }

    /// The withdrawals release `release` records.
    pub(crate) fn withdrawals_in(&self, release: u32) -> Result<Vec<Withdrawal>> {
        let mut stmt = self
            .catalogue
            .conn
            .prepare(
                "SELECT number, reason, files FROM withdrawals WHERE release = ?1 ORDER BY number",
            )
            .map_err(self.catalogue.err())?;
        let rows = stmt
            .query_map([release], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(self.catalogue.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (number, reason, stored) = row.map_err(self.catalogue.err())?;
            #[derive(serde::Deserialize)]
            struct Stored {
                from_release: u32,
                files: Vec<String>,
            }
            let stored: Stored = serde_json::from_str(&stored).map_err(|e| {
                WorkspaceError::Usage(format!(
                    "withdrawal of email {number}: stored files unreadable: {e}"
                ))
            })?;
            out.push(Withdrawal {
                number: number as u64,
                release: stored.from_release,
                reason,
                files: stored.files,
            });
        }
        Ok(out)
    }
}

/// The site files that go with email `number`: its published form, its raw source if
/// published, and each attachment no other published email refers to (attachments are
/// stored once by hash and may be shared).
fn files_of(site: &Site, number: u64) -> Result<Vec<String>> {
    let message = site.message(number)?.ok_or_else(|| {
        WorkspaceError::Usage(format!(
            "email {number} is not in the site at {} (was it copied elsewhere?)",
            site.root().display()
        ))
    })?;
    let mut files = vec![trove_site::message_path(number)];
    if message.raw_sha256.is_some() {
        files.push(trove_site::raw_path(number));
    }
    let mut hashes: Vec<&str> = message
        .attachments
        .iter()
        .map(|a| a.sha256.as_str())
        .collect();
    hashes.sort();
    hashes.dedup();
    if hashes.is_empty() {
        return Ok(files);
    }
    // Every other published email's JSON (packed or loose; a withdrawn one is gone).
    let mut shared = std::collections::HashSet::new();
    for other in (1..=site.last_number()?).filter(|&n| n != number) {
        let Some(bytes) = site.read_file(&trove_site::message_path(other))? else {
            continue;
        };
        for h in &hashes {
            if memchr::memmem::find(&bytes, h.as_bytes()).is_some() {
                shared.insert(*h);
            }
        }
    }
    for h in hashes {
        if !shared.contains(h) {
            files.push(trove_site::attachment_path(h));
        }
    }
    Ok(files)
}
