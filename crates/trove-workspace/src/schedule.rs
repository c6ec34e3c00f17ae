//! Releases planned ahead: which emails go out, under what title, at what time.
//!
//! A plan lives only in the private catalogue (`plans`, `plan_members`) until its time
//! comes; nothing of it is written into the site before. `publish_due` takes every plan
//! whose time has come, oldest first, and only then gives it a release number and its
//! emails their public numbers, so the site never reveals how much is held back or
//! scheduled. An immediate `release` is a plan for now, published at once (after any plan
//! already due), from the choice it has just made.
//!
//! Emails are chosen when the plan is made (oldest first, after the selection's filters),
//! and the privacy policy is asked again when it goes live (a plan for now goes live as it
//! is made, with the answers it was made with): an email the policy blocks refuses the
//! plan at both moments; one it withholds is held back then, not counted.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use trove_site::{NumberRange, SearchIndex, Site};

use crate::privacy::Decision;
use crate::release::ReleaseOutcome;
use crate::{Result, Workspace, WorkspaceError};

/// Which unreleased emails a release takes. Emails already released, withheld or in
/// another plan are never chosen again. Filters combine with AND; emails are taken
/// oldest first (undated last), ties broken by content id.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// At most this many publishable emails (`None`: every one that matches).
    pub limit: Option<u64>,
    /// Only emails with a copy in this folder or below it (`allen-p/sent`).
    pub folder: Option<String>,
    /// Only emails dated before this instant (seconds since the epoch, exclusive).
    /// Undated emails never match.
    pub until: Option<i64>,
    /// Only emails matching this query, in the search language readers use.
    pub query: Option<String>,
}

impl Selection {
    pub fn next(n: u64) -> Selection {
        Selection {
            limit: Some(n),
            ..Selection::default()
        }
    }

    pub fn all() -> Selection {
        Selection::default()
    }

    /// How the emails were chosen, in words, for `trove plan` and the log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.limit {
            Some(n) => parts.push(format!("next {n}")),
            None => parts.push("all".to_string()),
        }
        if let Some(f) = &self.folder {
            parts.push(format!("folder {f}"));
        }
        if let Some(u) = self.until {
            let t = OffsetDateTime::from_unix_timestamp(u)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_else(|| u.to_string());
            parts.push(format!("dated before {t}"));
        }
        if let Some(q) = &self.query {
            parts.push(format!("query {q:?}"));
        }
        parts.join(", ")
    }
}

/// A planned release, as `trove plan` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub id: i64,
    /// Empty: "Release K" once it has a number.
    pub title: String,
    /// Go-live time, RFC 3339 UTC.
    pub at: String,
    pub at_unix: i64,
    pub selection: String,
    /// `planned`, `published` (see `release`) or `empty` (nothing left to publish when
    /// its time came: every email withheld).
    pub state: String,
    pub release: Option<u32>,
    /// Emails chosen (withheld ones included; they are decided at go-live). For a plan
    /// made for now, which keeps no members, the emails its release numbered and held back.
    pub emails: u64,
}

/// One email chosen for a plan, and why the policy would hold it back today (`None`: it
/// would publish it).
struct Chosen {
    id: i64,
    withheld: Option<String>,
}

impl Chosen {
    fn publishable(&self) -> bool {
        self.withheld.is_none()
    }
}

impl Workspace {
    /// Plans one release of `selection` going live at `at`. Returns `None` when no
    /// unreleased email matches. Nothing is written to the site.
    pub fn plan(
        &mut self,
        selection: &Selection,
        title: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<Option<Plan>> {
        let chosen = self.choose(selection)?;
        if !chosen.iter().any(Chosen::publishable) {
            return Ok(None);
        }
        let plan = self.insert_plans(
            &[(title.unwrap_or_default().to_string(), at, chosen)],
            selection,
        )?;
        Ok(plan.into_iter().next())
    }

    /// Lays out a schedule: every email `selection` matches, `per_day` publishable emails
    /// a day, the first installment at `from` and each next one a day later, at most
    /// `days` installments. `title` may hold `{n}` (installment number in this schedule)
    /// and `{date}` (its day).
    pub fn plan_daily(
        &mut self,
        selection: &Selection,
        per_day: u64,
        from: OffsetDateTime,
        days: Option<u32>,
        title: &str,
    ) -> Result<Vec<Plan>> {
        if per_day == 0 {
            return Err(WorkspaceError::Usage("--daily must be at least 1".into()));
        }
        let chosen = self.choose(selection)?;
        let mut batches: Vec<(String, OffsetDateTime, Vec<Chosen>)> = Vec::new();
        let mut current: Vec<Chosen> = Vec::new();
        let mut counted = 0;
        let push = |batch: Vec<Chosen>,
                    batches: &mut Vec<(String, OffsetDateTime, Vec<Chosen>)>| {
            let n = batches.len() as i64 + 1;
            let at = from + time::Duration::days(n - 1);
            let date = at.date().to_string();
            let t = title
                .replace("{n}", &n.to_string())
                .replace("{date}", &date);
            batches.push((t, at, batch));
        };
        for c in chosen {
            if days.is_some_and(|d| batches.len() as u32 >= d) {
                break;
            }
            counted += c.publishable() as u64;
            current.push(c);
            if counted == per_day {
                push(std::mem::take(&mut current), &mut batches);
                counted = 0;
            }
        }
        if counted > 0 && days.is_none_or(|d| (batches.len() as u32) < d) {
            push(current, &mut batches);
        }
        self.insert_plans(&batches, selection)
    }

    fn insert_plans(
        &mut self,
        batches: &[(String, OffsetDateTime, Vec<Chosen>)],
        selection: &Selection,
    ) -> Result<Vec<Plan>> {
        let described = selection.describe();
        let (tx, cat_err) = self.catalogue.begin()?;
        let mut ids = Vec::new();
        {
            let mut member = tx
                .prepare("INSERT INTO plan_members (plan, message) VALUES (?1, ?2)")
                .map_err(cat_err)?;
            for (title, at, chosen) in batches {
                let id = insert_plan(&tx, title, *at, &described).map_err(cat_err)?;
                for c in chosen {
                    member.execute(params![id, c.id]).map_err(cat_err)?;
                }
                ids.push(id);
            }
        }
        tx.commit().map_err(cat_err)?;
        let plans: Vec<Plan> = self
            .plans()?
            .into_iter()
            .filter(|p| ids.contains(&p.id))
            .collect();
        for p in &plans {
            self.catalogue
                .log("plan", &serde_json::to_string(p).expect("serialisable"))?;
        }
        Ok(plans)
    }

    /// Every plan, by go-live time.
    pub fn plans(&self) -> Result<Vec<Plan>> {
        let mut stmt = self
            .catalogue
            .conn
            .prepare(
                "SELECT p.id, p.title, p.at, p.at_unix, p.selection, p.state, p.release,
                        CASE WHEN p.state = 'published'
                              AND NOT EXISTS (SELECT 1 FROM plan_members m WHERE m.plan = p.id)
                        THEN coalesce((SELECT r.last - r.first + 1 FROM releases r
                                       WHERE r.number = p.release), 0)
                             + (SELECT count(*) FROM withheld w WHERE w.release = p.release)
                        ELSE (SELECT count(*) FROM plan_members m WHERE m.plan = p.id) END
                 FROM plans p ORDER BY p.at_unix, p.id",
            )
            .map_err(self.catalogue.err())?;
        stmt.query_map([], |r| {
            Ok(Plan {
                id: r.get(0)?,
                title: r.get(1)?,
                at: r.get(2)?,
                at_unix: r.get(3)?,
                selection: r.get(4)?,
                state: r.get(5)?,
                release: r.get::<_, Option<i64>>(6)?.map(|k| k as u32),
                emails: r.get::<_, i64>(7)? as u64,
            })
        })
        .map_err(self.catalogue.err())?
        .collect::<Result<_, _>>()
        .map_err(self.catalogue.err())
    }

    /// Cancels a plan that has not gone live: its emails return to the unreleased pool.
    pub fn cancel_plan(&mut self, id: i64) -> Result<Plan> {
        let plan = self
            .plans()?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| {
                WorkspaceError::Usage(format!("there is no plan {id} (see `trove plan`)"))
            })?;
        if plan.state != "planned" {
            return Err(WorkspaceError::Usage(format!(
                "plan {id} is {} and cannot be cancelled",
                plan.state
            )));
        }
        let (tx, cat_err) = self.catalogue.begin()?;
        tx.execute("DELETE FROM plan_members WHERE plan = ?1", [id])
            .map_err(cat_err)?;
        tx.execute("DELETE FROM plans WHERE id = ?1", [id])
            .map_err(cat_err)?;
        tx.commit().map_err(cat_err)?;
        self.catalogue.log(
            "plan-cancel",
            &serde_json::to_string(&plan).expect("serialisable"),
        )?;
        Ok(plan)
    }

    /// Publishes every plan whose time (`now`, seconds since the epoch) has come, in
    /// order, after finishing a release a crash interrupted. A plan the policy now blocks
    /// stops the run there, so releases never go out of order.
    pub fn publish_due(
        &mut self,
        site_dir: &std::path::Path,
        now: i64,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Vec<ReleaseOutcome>> {
        self.without_autocheckpoint(|ws| ws.publish_due_now(site_dir, now, None, progress))
    }

    /// Runs `f` with the catalogue's automatic checkpoints off, and gives them back after.
    /// Numbering a release rewrites every row it numbers; a release copies that log into
    /// the database on a thread of its own while it builds
    /// ([`crate::catalogue::checkpoint`]) instead of at the numbering's commit, where it
    /// held up everything after it.
    fn without_autocheckpoint<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let pages = self.catalogue.set_autocheckpoint(0)?;
        let out = f(self);
        let restored = self.catalogue.set_autocheckpoint(pages);
        let out = out?;
        restored?;
        Ok(out)
    }

    /// Publishes the due plans, then `immediate`, if any: a release made for now, which
    /// goes out after every plan due by now.
    fn publish_due_now(
        &mut self,
        site_dir: &std::path::Path,
        now: i64,
        immediate: Option<Immediate<'_>>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Vec<ReleaseOutcome>> {
        self.check_site_is_outside(site_dir)?;
        let key = self.signing_key()?;
        let site = Site::open_or_create(site_dir, &self.config.title, &key.verifying_key())?;
        // Findings follow the policy before anything is written: redaction reads them.
        let policy = self.policy()?;
        self.refresh_findings(&policy, &|_, _| {})?;
        let mut out = Vec::new();
        if let Some(pending) = self.pending_release()? {
            out.push(self.write_release(&site, &key, pending, true, progress)?);
        }
        loop {
            let due: Option<(i64, String)> = self
                .catalogue
                .conn
                .query_row(
                    "SELECT id, title FROM plans WHERE state = 'planned' AND at_unix <= ?1
                     ORDER BY at_unix, id LIMIT 1",
                    [now],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(self.catalogue.err())?;
            let Some((plan, title)) = due else {
                break;
            };
            if self.go_live(plan, &title, &policy)? {
                let pending = self.pending_release()?.expect("just committed");
                out.push(self.write_release(&site, &key, pending, false, progress)?);
            }
        }
        if let Some(immediate) = immediate
            && self.go_live_now(immediate)?
        {
            let pending = self.pending_release()?.expect("just committed");
            out.push(self.write_release(&site, &key, pending, false, progress)?);
        }
        Ok(out)
    }

    /// Publishes `selection` now: every due plan in order (an earlier plan that is due
    /// goes out first), then a plan for the present moment.
    pub fn release(
        &mut self,
        site_dir: &std::path::Path,
        selection: &Selection,
        title: Option<&str>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Vec<ReleaseOutcome>> {
        self.check_site_is_outside(site_dir)?;
        let now = OffsetDateTime::now_utc();
        self.without_autocheckpoint(|ws| {
            let chosen = ws.choose(selection)?;
            let immediate = chosen.iter().any(Chosen::publishable).then_some(Immediate {
                chosen,
                title: title.unwrap_or_default(),
                at: now,
                selection,
            });
            ws.publish_due_now(site_dir, now.unix_timestamp(), immediate, progress)
        })
    }

    /// Records `immediate` as a plan that has gone live, holds back its withheld emails
    /// and numbers the others, in one transaction. The emails and the policy's answers
    /// are the ones `choose` just made: a plan for now is never left waiting, so it keeps
    /// no `plan_members` rows (writing them, then reading them back and asking the policy
    /// again, was 0.22 s of a 100,000-email release's single-threaded start). Returns
    /// false, as [`Workspace::go_live`] does, when none of them is publishable.
    fn go_live_now(&mut self, immediate: Immediate<'_>) -> Result<bool> {
        let (tx, cat_err) = self.catalogue.begin()?;
        let described = immediate.selection.describe();
        let plan = insert_plan(&tx, immediate.title, immediate.at, &described).map_err(cat_err)?;
        let mut ids = Vec::with_capacity(immediate.chosen.len());
        let mut withheld = Vec::new();
        for c in immediate.chosen {
            match c.withheld {
                None => ids.push(c.id),
                Some(reason) => withheld.push((c.id, reason)),
            }
        }
        let live = number_plan(&tx, plan, immediate.title, &ids, &withheld).map_err(cat_err)?;
        tx.commit().map_err(cat_err)?;
        if let Some(p) = self.plans()?.into_iter().find(|p| p.id == plan) {
            self.catalogue
                .log("plan", &serde_json::to_string(&p).expect("serialisable"))?;
        }
        Ok(live)
    }

    /// Numbers plan `plan`'s emails and records its release in state `writing`, in one
    /// transaction. Returns false when nothing of it is publishable any more.
    fn go_live(&mut self, plan: i64, title: &str, policy: &crate::privacy::Policy) -> Result<bool> {
        let root = self.root.clone();
        let (tx, cat_err) = self.catalogue.begin()?;
        let mut ids: Vec<i64> = Vec::new();
        let mut withheld: Vec<(i64, String)> = Vec::new();
        let mut blocked: Vec<(String, Option<String>, Vec<String>)> = Vec::new();
        {
            let mut stmt = tx
                .prepare(
                    "SELECT m.id, m.date, m.content_id, m.message_id FROM plan_members p
                     JOIN messages m ON m.id = p.message
                     WHERE p.plan = ?1 AND m.number IS NULL
                       AND m.id NOT IN (SELECT message FROM withheld)",
                )
                .map_err(cat_err)?;
            let mut members: Vec<Candidate> = stmt
                .query_map([plan], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(cat_err)?
                .collect::<Result<_, _>>()
                .map_err(cat_err)?;
            oldest_first(&mut members);
            for (id, _, content_id, message_id) in members {
                match decide(&tx, policy, id, &content_id, message_id.as_deref())
                    .map_err(cat_err)?
                {
                    Decision::Publish => ids.push(id),
                    Decision::Withhold(reason) => withheld.push((id, reason)),
                    Decision::Blocked(kinds) => blocked.push((content_id, message_id, kinds)),
                }
            }
        }
        if !blocked.is_empty() {
            return Err(blocked_error(&root, &blocked));
        }
        let live = number_plan(&tx, plan, title, &ids, &withheld).map_err(cat_err)?;
        tx.commit().map_err(cat_err)?;
        Ok(live)
    }

    /// The unreleased, unplanned emails `selection` matches, oldest first, each with
    /// whether the policy would publish it today. Refuses when one it would take is
    /// blocked.
    fn choose(&mut self, selection: &Selection) -> Result<Vec<Chosen>> {
        let policy = self.policy()?;
        self.refresh_findings(&policy, &|_, _| {})?;
        let mut sql = String::from(
            "SELECT id, date, content_id, message_id FROM messages
             WHERE number IS NULL AND id NOT IN (SELECT message FROM withheld)
               AND id NOT IN (SELECT message FROM plan_members)",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(until) = selection.until {
            args.push(until.into());
            sql.push_str(&format!(" AND date < ?{}", args.len()));
        }
        if let Some(folder) = &selection.folder {
            let folder = folder.trim_matches('/').to_string();
            args.push(folder.clone().into());
            let a = args.len();
            args.push(format!("{folder}/%").into());
            let b = args.len();
            sql.push_str(&format!(
                " AND id IN (SELECT message FROM copies WHERE folder = ?{a} OR folder LIKE ?{b})"
            ));
        }
        let mut rows: Vec<Candidate> = {
            let mut stmt = self
                .catalogue
                .conn
                .prepare(&sql)
                .map_err(self.catalogue.err())?;
            stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(self.catalogue.err())?
            .collect::<Result<_, _>>()
            .map_err(self.catalogue.err())?
        };
        oldest_first(&mut rows);
        if let Some(q) = &selection.query {
            let matching = self.query_workspace(q, &rows)?;
            rows.retain(|(id, ..)| matching.contains(id));
        }
        // The findings of each, in one read transaction: a statement outside one takes
        // and releases SQLite's locks.
        let read = self
            .catalogue
            .conn
            .unchecked_transaction()
            .map_err(self.catalogue.err())?;
        let mut chosen = Vec::new();
        let mut counted = 0;
        let mut blocked = Vec::new();
        for (id, _, content_id, message_id) in rows {
            if selection.limit.is_some_and(|n| counted >= n) {
                break;
            }
            let decision = decide(&read, &policy, id, &content_id, message_id.as_deref())
                .map_err(self.catalogue.err())?;
            let withheld = match decision {
                Decision::Publish => None,
                Decision::Withhold(reason) => Some(reason),
                Decision::Blocked(kinds) => {
                    blocked.push((content_id, message_id, kinds));
                    continue;
                }
            };
            counted += withheld.is_none() as u64;
            chosen.push(Chosen { id, withheld });
        }
        read.commit().map_err(self.catalogue.err())?;
        if !blocked.is_empty() {
            return Err(blocked_error(&self.root, &blocked));
        }
        Ok(chosen)
    }

    /// The ids among `rows` whose email matches query `q`: their unredacted form is
    /// indexed in memory (it never leaves the workspace) and searched with the engine
    /// readers use, so `--query` means what it means on the site.
    fn query_workspace(&self, q: &str, rows: &[Candidate]) -> Result<HashSet<i64>> {
        trove_site::query::parse(q)
            .map_err(|e| WorkspaceError::Usage(format!("--query {e}\n{}", e.pointer(q))))?;
        let index = SearchIndex::in_ram()?;
        let writer = index.writer()?;
        for (id, _, content_id, _) in rows {
            let raw = self.blobs.get(content_id)?;
            let (message, texts) = crate::release::searchable_form(*id as u64, &raw);
            index.add(&writer, &message, &texts)?;
        }
        let mut writer = writer;
        writer.commit().map_err(trove_site::SiteError::from)?;
        index.reload()?;
        let found = index.search(q, trove_site::Sort::Oldest, 0, rows.len().max(1), u64::MAX)?;
        Ok(found.hits.iter().map(|h| h.number as i64).collect())
    }
}

/// An unreleased email a plan may take: id, date, content id and Message-ID.
type Candidate = (i64, Option<i64>, String, Option<String>);

/// Oldest first, ties by content id, undated last: the order numbers are given in.
/// Sorted here rather than by SQLite, whose sorter wrote its runs to temporary files
/// at 100,000 candidates (seen in `perf` while the sorted rows carried the findings).
/// A release made for now: the emails `choose` took, with the policy's answer for each.
struct Immediate<'a> {
    chosen: Vec<Chosen>,
    title: &'a str,
    at: OffsetDateTime,
    selection: &'a Selection,
}

/// Adds a plan going live at `at`, in state `planned`; returns its id.
fn insert_plan(
    tx: &rusqlite::Transaction<'_>,
    title: &str,
    at: OffsetDateTime,
    described: &str,
) -> rusqlite::Result<i64> {
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    tx.prepare_cached(
        "INSERT INTO plans (title, at, at_unix, selection, state) VALUES (?1, ?2, ?3, ?4, 'planned')",
    )?
    .execute(params![
        title,
        at.format(&Rfc3339).expect("formattable"),
        at.unix_timestamp(),
        described
    ])?;
    Ok(tx.last_insert_rowid())
}

/// Plan `plan` going live: `withheld` held back, `ids` numbered in order as the next
/// release, recorded in state `writing`, and the plan marked published. When `ids` is
/// empty the plan is marked empty instead, and false returned.
fn number_plan(
    tx: &rusqlite::Transaction<'_>,
    plan: i64,
    title: &str,
    ids: &[i64],
    withheld: &[(i64, String)],
) -> rusqlite::Result<bool> {
    let (release, next_number) = crate::release::next_release(tx)?;
    crate::release::withhold(
        tx,
        release,
        withheld.iter().map(|(id, reason)| (*id, reason.as_str())),
    )?;
    if ids.is_empty() {
        tx.execute("UPDATE plans SET state = 'empty' WHERE id = ?1", [plan])?;
        return Ok(false);
    }
    let title = if title.is_empty() {
        format!("Release {release}")
    } else {
        title.to_string()
    };
    let numbers = NumberRange {
        first: next_number,
        last: next_number + ids.len() as u64 - 1,
    };
    crate::release::number_in_order(tx, release, numbers.first, ids)?;
    crate::release::record_writing(tx, release, &title, numbers)?;
    tx.execute(
        "UPDATE plans SET state = 'published', release = ?2 WHERE id = ?1",
        params![plan, release],
    )?;
    Ok(true)
}

fn oldest_first(rows: &mut [Candidate]) {
    rows.sort_unstable_by(|a, b| (a.1.is_none(), a.1, &a.2).cmp(&(b.1.is_none(), b.1, &b.2)));
}

/// What the policy does with email `id`, from its stored findings and any override.
fn decide(
    conn: &rusqlite::Connection,
    policy: &crate::privacy::Policy,
    id: i64,
    content_id: &str,
    message_id: Option<&str>,
) -> rusqlite::Result<Decision> {
    let over = policy.override_for(content_id, message_id);
    if let Some(decision) = policy.decision_without_findings(over) {
        return Ok(decision);
    }
    // The kinds alone: decoding every finding's value and context for each email was
    // a third of what planning a release of 100,000 emails took.
    let found = crate::privacy::stored_findings(conn, id)?;
    let found = crate::privacy::kinds_in(found.as_deref())?;
    let kinds: std::collections::BTreeSet<&str> = found.iter().map(|(_, kind)| &**kind).collect();
    Ok(policy.decide(kinds, over))
}

fn blocked_error(
    root: &std::path::Path,
    blocked: &[(String, Option<String>, Vec<String>)],
) -> WorkspaceError {
    let (content_id, message_id, kinds) = &blocked[0];
    WorkspaceError::Usage(format!(
        "release refused: {} email(s) about to be released have findings the policy marks \"block\" ({}); decide each with an [[overrides]] entry in {} (see `trove review`). First: content id {content_id}, Message-ID {}",
        blocked.len(),
        kinds.join(", "),
        root.join("policy.toml").display(),
        message_id.as_deref().unwrap_or("(none)"),
    ))
}

/// Reads a time as publishers write it: RFC 3339 (`2016-10-07T09:00:00Z`), or shorter
/// (`2016-10-07T09:00Z`, `2016-10-07 09:00` in UTC, `2016-10-07` at midnight UTC).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a time; write 2016-10-07T09:00Z, 2016-10-07T09:00:00+02:00 or 2016-10-07"
        )
    };
    let mut t = t.replacen(' ', "T", 1);
    if t.len() == 10 {
        t.push_str("T00:00:00Z");
    }
    let (date_time, zone) = match t.find(['Z', 'z']) {
        Some(i) => (t[..i].to_string(), "Z".to_string()),
        None => match t.get(11..).and_then(|rest| rest.find(['+', '-'])) {
            Some(i) => (t[..11 + i].to_string(), t[11 + i..].to_string()),
            None => (t.clone(), "Z".to_string()),
        },
    };
    let date_time = if date_time.len() == 16 {
        format!("{date_time}:00")
    } else {
        date_time
    };
    OffsetDateTime::parse(&format!("{date_time}{zone}"), &Rfc3339).map_err(|_| bad())
}

/// The end (exclusive) of a time or of a partial date, for `--until`: `2001` means up to
/// the end of 2001, `2001-05` the end of May, `2001-05-14` the end of that day, and a
/// full time that very second.
pub fn parse_until(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let ymd: Vec<&str> = t.split('-').collect();
    let num = |x: &str| x.parse::<i32>().ok();
    let start = |y: i32, m: u8, d: u8| {
        time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d)
            .ok()
            .map(|d| d.midnight().assume_utc())
    };
    let bad =
        || format!("{s:?} is not a date; write 2001, 2001-05, 2001-05-14 or 2001-05-14T09:00Z");
    let end = match ymd.as_slice() {
        [y] if y.len() == 4 => num(y).and_then(|y| start(y + 1, 1, 1)),
        [y, m] if y.len() == 4 && m.len() == 2 => {
            let (y, m) = (num(y).ok_or_else(bad)?, num(m).ok_or_else(bad)? as u8);
            if m == 12 {
                start(y + 1, 1, 1)
            } else {
                start(y, m + 1, 1)
            }
        }
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => start(
            num(y).ok_or_else(bad)?,
            num(m).ok_or_else(bad)? as u8,
            num(d).ok_or_else(bad)? as u8,
        )
        .map(|t| t + time::Duration::days(1)),
        _ => {
            return parse_time(t)
                .map(|t| t.unix_timestamp() + 1)
                .map_err(|_| bad());
        }
    };
    end.map(|t| t.unix_timestamp()).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order SQL's `ORDER BY date IS NULL, date, content_id` gave.
    #[test]
    fn candidates_go_oldest_first_ties_by_content_id_undated_last() {
        let mut rows: Vec<Candidate> = [
            (1, None, "b"),
            (2, Some(5), "z"),
            (3, Some(5), "a"),
            (4, Some(-1), "c"),
            (5, None, "a"),
        ]
        .into_iter()
        .map(|(id, date, cid)| (id, date, cid.to_string(), None))
        .collect();
        oldest_first(&mut rows);
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(ids, [4, 3, 2, 5, 1]);
    }

    #[test]
    fn times_as_publishers_write_them() {
        let t = |s: &str| parse_time(s).map(|t| t.unix_timestamp());
        assert_eq!(t("2016-10-07T09:00Z"), Ok(1475830800));
        assert_eq!(t("2016-10-07T09:00:00Z"), Ok(1475830800));
        assert_eq!(t("2016-10-07 09:00"), Ok(1475830800));
        assert_eq!(t("2016-10-07T11:00+02:00"), Ok(1475830800));
        assert_eq!(t("2016-10-07"), Ok(1475798400));
        assert!(
            t("tomorrow")
                .unwrap_err()
                .contains("\"tomorrow\" is not a time")
        );
        assert!(t("2016-13-07").is_err());
    }

    #[test]
    fn until_takes_the_end_of_a_partial_date() {
        assert_eq!(parse_until("2001"), Ok(1009843200)); // 2002-01-01
        assert_eq!(parse_until("2001-12"), Ok(1009843200));
        assert_eq!(parse_until("2001-05"), Ok(991353600)); // 2001-06-01
        assert_eq!(parse_until("2001-05-31"), Ok(991353600));
        assert_eq!(parse_until("2016-10-07T09:00Z"), Ok(1475830801));
        assert!(parse_until("May").is_err());
    }
}
