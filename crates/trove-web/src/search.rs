//! Search for readers: the HTML page, its Atom feed, and streaming exports (mbox, JSONL,
//! CSV) of any search. All of them read the same parameters ([`SearchParams`]) and run
//! the same engine ([`trove_site::SearchIndex::run`]); the JSON API (`api.rs`) too.
//!
//! The form fields for people who do not write queries (`from`, `to`, `subject`,
//! `not_from`, `since`, `until`) are folded into the query text before it runs, so a form
//! search and a written one are the same search, and the page shows the query it ran.

use std::io::Write;

use axum::body::Body;
use axum::extract::{Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use trove_site::{Bucket, SearchIndex, SearchRequest, SearchResults, Sort};

use crate::{AppState, PAGE_SIZE, Shared, WebError, pages};

/// How many values of each facet a search page shows.
pub const FACET_SIZE: usize = 8;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sort: String,
    /// The cursor of the page before (from its `next`).
    #[serde(default)]
    pub after: Option<String>,
    /// Old-style page numbers still work (`page=3`), as an offset.
    #[serde(default)]
    pub page: Option<usize>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub not_from: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
}

/// A form value as a quoted value of the search language (quotes inside are dropped:
/// the language has no escape for them).
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.trim().replace('"', ""))
}

impl SearchParams {
    /// The query text with the form fields folded in.
    pub fn query(&self) -> String {
        let mut q = self.q.trim().to_string();
        let mut push = |part: String| {
            if !q.is_empty() {
                q.push(' ');
            }
            q.push_str(&part);
        };
        for (field, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("subject", &self.subject),
        ] {
            if !v.trim().is_empty() {
                push(format!("{field}:{}", quoted(v)));
            }
        }
        if !self.not_from.trim().is_empty() {
            push(format!("-from:{}", quoted(&self.not_from)));
        }
        let (since, until) = (self.since.trim(), self.until.trim());
        if !since.is_empty() || !until.is_empty() {
            push(format!("date:{since}..{until}"));
        }
        q
    }

    pub fn sort(&self) -> Result<Sort, WebError> {
        Sort::parse(&self.sort).ok_or_else(|| {
            WebError::BadRequest(format!(
                "sort must be relevance, newest or oldest, not {:?}",
                self.sort
            ))
        })
    }

    /// The offset an old-style `page=` asks for.
    pub fn offset(&self, page_size: usize) -> Result<usize, WebError> {
        let page = self.page.unwrap_or(1).max(1);
        if page > 1_000_000 {
            return Err(WebError::BadRequest(
                "page number too large; follow the Next links, which have no limit".into(),
            ));
        }
        Ok((page - 1) * page_size)
    }
}

/// A hit with its snippet (HTML: escaped text with `<b>` around matches).
pub type Row = (trove_site::Hit, Option<String>);

/// Runs `request` and loads a snippet for each hit.
fn run_with_snippets(
    s: &AppState,
    index: &SearchIndex,
    request: &SearchRequest,
) -> trove_site::Result<(SearchResults, Vec<Row>)> {
    // An empty query highlights nothing: its hits show their text's opening.
    let empty = request.query.trim().is_empty();
    let (results, highlighter) = if empty {
        (index.run(request)?, None)
    } else {
        index.run_highlighted(request, 240)?
    };
    let mut rows = Vec::with_capacity(results.hits.len());
    for hit in &results.hits {
        let text = s.site.message_text(hit.number)?.unwrap_or_default();
        let snippet = if empty {
            Some(pages::escape(&text.chars().take(200).collect::<String>()))
        } else {
            highlighter.as_ref().and_then(|h| h.html(&text))
        };
        rows.push((hit.clone(), snippet));
    }
    Ok((results, rows))
}

/// Runs `f` with the site's index, without holding up other connections (searches read
/// files and can take milliseconds; [`crate::blocking`]). `None` when the site has no
/// index yet.
pub(crate) async fn on_index<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&AppState, &SearchIndex) -> trove_site::Result<T> + Send + 'static,
) -> Result<Option<T>, WebError> {
    let state = s.clone();
    crate::blocking(&crate::SEARCHES, move || match &state.index {
        Some(index) => f(&state, index).map(Some).map_err(WebError::from),
        None => Ok(None),
    })
    .await
}

/// How email volume splits by month for `query` (the month facet), for timelines.
pub(crate) async fn months(s: &Shared, query: String) -> Result<Vec<Bucket>, WebError> {
    let max = s.max_number();
    let months = on_index(s, move |_, index| {
        let r = index.run(&SearchRequest {
            limit: 0,
            facets: 1,
            ..SearchRequest::new(&query, max)
        })?;
        Ok(r.facets.map(|f| f.month.clone()).unwrap_or_default())
    })
    .await?;
    Ok(months.unwrap_or_default())
}

pub async fn search(
    State(s): State<Shared>,
    RawQuery(raw): RawQuery,
    Query(p): Query<SearchParams>,
) -> Result<Response, WebError> {
    let title = s.site.info().title.clone();
    let sort = p.sort()?;
    let offset = p.offset(PAGE_SIZE)?;
    let q = p.query();
    let max = s.max_number();
    let key = s.index.as_ref().map(|index| {
        crate::kept::KeptPages::key(index.generation(), max, raw.as_deref().unwrap_or(""))
    });
    if let Some(page) = key.as_deref().and_then(|k| s.search_pages.get(k)) {
        return Ok(Html(page).into_response());
    }
    let (q2, after) = (q.clone(), p.after.clone());
    let result = on_index(&s, move |state, index| {
        run_with_snippets(
            state,
            index,
            &SearchRequest {
                sort,
                after: after.as_deref(),
                offset,
                limit: PAGE_SIZE,
                facets: FACET_SIZE,
                ..SearchRequest::new(&q2, max)
            },
        )
    })
    .await;
    let (results, rows) = match result {
        Ok(Some(found)) => found,
        Ok(None) => (SearchResults::default(), Vec::new()),
        Err(WebError::Query(e)) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                Html(pages::search_error(&title, &q, &e)),
            )
                .into_response());
        }
        Err(e) => return Err(e),
    };
    let page = pages::search(&pages::SearchView {
        title: &title,
        query: &q,
        sort,
        first_page: p.after.is_none() && offset == 0,
        results: &results,
        rows: &rows,
    });
    let page = axum::body::Bytes::from(page);
    if let Some(key) = key {
        s.search_pages.put(key, page.clone());
    }
    Ok(Html(page).into_response())
}

/// The newest emails matching a search, as an Atom feed a reader can follow.
pub async fn search_feed(
    State(s): State<Shared>,
    Query(p): Query<SearchParams>,
) -> Result<Response, WebError> {
    let q = p.query();
    let max = s.max_number();
    let q2 = q.clone();
    let emails = on_index(&s, move |state, index| {
        let results = index.run(&SearchRequest {
            sort: Sort::Newest,
            limit: 50,
            ..SearchRequest::new(&q2, max)
        })?;
        let mut emails = Vec::with_capacity(results.hits.len());
        for h in results.hits {
            if let Some(m) = state.site.message(h.number)? {
                emails.push(m);
            }
        }
        Ok(emails)
    })
    .await?
    .unwrap_or_default();
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        pages::search_atom(s.site.info(), &q, &emails),
    )
        .into_response())
}

/// What a search can be exported as.
#[derive(Debug, Clone, Copy)]
pub enum Export {
    Mbox,
    Jsonl,
    Csv,
}

impl Export {
    fn content_type(self) -> &'static str {
        match self {
            Export::Mbox => "application/mbox",
            Export::Jsonl => "application/jsonl; charset=utf-8",
            Export::Csv => "text/csv; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Export::Mbox => "mbox",
            Export::Jsonl => "jsonl",
            Export::Csv => "csv",
        }
    }
}

/// How many hits a streaming export reads from the index at a time.
const EXPORT_BATCH: usize = 500;

/// Every email matching a search, oldest first, streamed as it is read: there is no cap,
/// and memory stays at one batch whatever the size of the result.
pub async fn export(s: Shared, p: SearchParams, what: Export) -> Result<Response, WebError> {
    let q = p.query();
    let sort = p.sort()?;
    let max = s.max_number();
    if s.index.is_none() {
        return Err(WebError::NotFound);
    }
    // Read the query now, so a bad one is a 400, not a broken download.
    trove_site::query::parse(&q).map_err(WebError::Query)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let state = s.clone();
    tokio::task::spawn_blocking(move || {
        let sort = if sort == Sort::Relevance {
            Sort::Oldest
        } else {
            sort
        };
        if let Err(e) = stream_export(&state, &q, sort, max, what, &tx) {
            eprintln!("trove serve: export of {q:?} stopped: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    Ok((
        [
            (header::CONTENT_TYPE, what.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"search.{}\"", what.extension()),
            ),
        ],
        body,
    )
        .into_response())
}

fn stream_export(
    s: &crate::AppState,
    q: &str,
    sort: Sort,
    max: u64,
    what: Export,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let index = s.index.as_ref().ok_or("no search index")?;
    let mut after: Option<String> = None;
    let mut first = true;
    loop {
        let results = index.run(&SearchRequest {
            sort,
            after: after.as_deref(),
            limit: EXPORT_BATCH,
            ..SearchRequest::new(q, max)
        })?;
        let mut chunk = Vec::with_capacity(64 << 10);
        if first && matches!(what, Export::Csv) {
            chunk.extend_from_slice(
                b"number,release,date,from,to,cc,subject,attachments,dkim,url\n",
            );
        }
        first = false;
        let mut csv = matches!(what, Export::Csv).then(|| csv::Writer::from_writer(Vec::new()));
        for h in &results.hits {
            let Some(m) = s.site.message(h.number)? else {
                continue;
            };
            match what {
                Export::Mbox => {
                    let bytes = trove_site::mbox::source_of(&s.site, &m)?;
                    trove_site::mbox::write_entry(&mut chunk, &m, &bytes)?;
                }
                Export::Jsonl => {
                    serde_json::to_writer(&mut chunk, &m)?;
                    chunk.write_all(b"\n")?;
                }
                Export::Csv => {
                    let people = |l: &[trove_site::Person]| {
                        l.iter().map(|p| p.display()).collect::<Vec<_>>().join("; ")
                    };
                    csv.as_mut().expect("csv").write_record([
                        m.number.to_string(),
                        m.release.to_string(),
                        m.date.clone().unwrap_or_default(),
                        people(&m.from),
                        people(&m.to),
                        people(&m.cc),
                        m.subject.clone(),
                        m.attachments.len().to_string(),
                        trove_site::dkim_status(&m.dkim).to_string(),
                        format!("/emailid/{}", m.number),
                    ])?;
                }
            }
        }
        if let Some(w) = csv {
            chunk.extend_from_slice(&w.into_inner().map_err(|e| e.to_string())?);
        }
        if tx.blocking_send(Ok(chunk)).is_err() {
            return Ok(()); // the reader went away
        }
        match results.next {
            Some(n) => after = Some(n),
            None => return Ok(()),
        }
    }
}

pub async fn export_mbox(
    State(s): State<Shared>,
    Query(p): Query<SearchParams>,
) -> Result<Response, WebError> {
    export(s, p, Export::Mbox).await
}

pub async fn export_jsonl(
    State(s): State<Shared>,
    Query(p): Query<SearchParams>,
) -> Result<Response, WebError> {
    export(s, p, Export::Jsonl).await
}

pub async fn export_csv(
    State(s): State<Shared>,
    Query(p): Query<SearchParams>,
) -> Result<Response, WebError> {
    export(s, p, Export::Csv).await
}

/// The volume of a search per month, as a picture (`/timeline.svg?q=…`).
pub async fn timeline(
    State(s): State<Shared>,
    Query(p): Query<SearchParams>,
) -> Result<Response, WebError> {
    let q = p.query();
    let months = months(&s, q.clone()).await?;
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml")],
        crate::svg::timeline(&months, &q),
    )
        .into_response())
}
