//! Conversations (`/thread/N`) and people (`/person/ADDRESS`), as data for the API and
//! as pages. Only released emails take part: a thread's members are checked against the
//! numbers a signed manifest covers and the withdrawals, whatever the thread map says.

use axum::extract::{Path as UrlPath, Query, State};
use axum::response::Html;
use serde::{Deserialize, Serialize};
use trove_site::threads::{Forest, Links};
use trove_site::{Bucket, PublishedMessage, SearchRequest, Sort};

use crate::{AppState, Shared, WebError, pages};

/// A conversation: its emails, oldest first, and their tree.
#[derive(Debug, Serialize)]
pub struct Thread {
    /// The thread's number: the smallest email number in it.
    pub thread: u64,
    pub emails: Vec<PublishedMessage>,
    /// Nodes name emails by number; placeholders stand for emails not in the archive.
    pub tree: Forest,
}

/// The conversation email `n` belongs to.
pub fn load_thread(s: &AppState, n: &str) -> Result<Thread, WebError> {
    let first = crate::load(s, n)?;
    let max = s.max_number();
    let threads = s.threads()?;
    let members = threads
        .thread_of(first.number)
        .map_or_else(|| vec![first.number], |t| threads.members(t));
    let mut emails = Vec::with_capacity(members.len());
    for m in members {
        if m == first.number {
            continue;
        }
        if m > max || s.withdrawal(m).is_some() {
            continue;
        }
        if let Some(e) = s.site.message(m)? {
            emails.push(e);
        }
    }
    emails.push(first);
    emails.sort_by_key(|e| (e.timestamp.unwrap_or(i64::MIN), e.number));
    let links: Vec<Links> = emails.iter().map(Links::of).collect();
    let tree = trove_site::threads::thread(&links);
    let thread = emails.iter().map(|e| e.number).min().unwrap_or(0);
    Ok(Thread {
        thread,
        emails,
        tree,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    #[serde(default)]
    pub page: Option<usize>,
}

/// Emails shown in full per page of a thread.
pub const THREAD_PAGE: usize = 25;

pub async fn thread_page(
    State(s): State<Shared>,
    UrlPath(n): UrlPath<String>,
    Query(p): Query<PageParams>,
) -> Result<Html<String>, WebError> {
    let state = s.clone();
    let t = crate::blocking(&crate::THREADS, move || load_thread(&state, &n)).await?;
    let page = p.page.unwrap_or(1).max(1);
    Ok(Html(pages::thread(&s.site.info().title, &t, page)))
}

/// What the archive says about one address.
#[derive(Debug, Serialize)]
pub struct PersonSummary {
    pub address: String,
    /// The display names this address was written with, most used first.
    pub names: Vec<Bucket>,
    /// Emails with the address in From, To or Cc.
    pub total: u64,
    pub sent: u64,
    pub received: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// The addresses it exchanged most emails with.
    pub correspondents: Vec<Bucket>,
    /// Emails per month.
    pub months: Vec<Bucket>,
}

/// How many emails are read for display names.
const NAME_SAMPLE: usize = 200;

/// Whether `address` can have a person page: it goes into the search language whole
/// (`person:ADDRESS`), so it holds no space, quote or parenthesis. A broken header can
/// leave such text in an address; the email page then shows it without a link.
pub(crate) fn has_person_page(address: &str) -> bool {
    let address = address.trim();
    !address.is_empty()
        && !address.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '(' | ')'))
}

pub fn person_summary(s: &AppState, address: &str) -> Result<PersonSummary, WebError> {
    let address = address.trim().to_lowercase();
    if !has_person_page(&address) {
        return Err(WebError::BadRequest(format!(
            "{address:?} is not an email address"
        )));
    }
    let index = s.index.as_ref().ok_or(WebError::NotFound)?;
    let max = s.max_number();
    let all = format!("person:{address}");
    let run = |query: &str, sort: Sort, limit: usize, facets: usize| {
        index.run(&SearchRequest {
            sort,
            limit,
            facets,
            ..SearchRequest::new(query, max)
        })
    };
    let everything = run(&all, Sort::Newest, NAME_SAMPLE, 11)?;
    if everything.total == 0 {
        return Err(WebError::NotFound);
    }
    let sent = run(&format!("{all} from:\"{address}\""), Sort::Newest, 0, 0)?.total;
    let oldest = run(&all, Sort::Oldest, 1, 0)?;
    let facets = everything.facets.unwrap_or_default();
    let mut names: std::collections::HashMap<String, u64> = Default::default();
    for h in &everything.hits {
        let Some(m) = s.site.message(h.number)? else {
            continue;
        };
        for p in m.from.iter().chain(&m.to).chain(&m.cc) {
            if p.address.as_deref().map(str::to_lowercase).as_deref() == Some(address.as_str())
                && let Some(n) = &p.name
            {
                let n = n.trim().trim_matches(['"', '\'']).trim();
                if !n.is_empty() && !n.eq_ignore_ascii_case(&address) {
                    *names.entry(n.to_string()).or_default() += 1;
                }
            }
        }
    }
    let mut names: Vec<Bucket> = names
        .into_iter()
        .map(|(value, count)| Bucket { value, count })
        .collect();
    names.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
    Ok(PersonSummary {
        names,
        total: everything.total,
        sent,
        received: everything.total - sent,
        first: oldest.hits.first().and_then(|h| h.date.clone()),
        last: everything.hits.first().and_then(|h| h.date.clone()),
        correspondents: facets
            .person
            .iter()
            .filter(|b| b.value != address)
            .take(10)
            .cloned()
            .collect(),
        months: facets.month.clone(),
        address,
    })
}

pub async fn person_page(
    State(s): State<Shared>,
    UrlPath(address): UrlPath<String>,
) -> Result<Html<String>, WebError> {
    let state = s.clone();
    let p = crate::blocking(&crate::PEOPLE, move || person_summary(&state, &address)).await?;
    Ok(Html(pages::person(&s.site.info().title, &p)))
}
