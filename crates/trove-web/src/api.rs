//! The JSON API (`/api/v1/…`), described by `openapi.json` (served at
//! `/api/openapi.json` and checked against real responses by a test). It answers from the
//! same engine and the same published files as the pages: nothing more is reachable here.
//!
//! Errors are JSON too: `{"error": "...", "column": N}` (the column only for a query that
//! could not be read), with 400, 404 or 410.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use trove_site::{Facets, PublishedMessage, SearchRequest};

use crate::search::SearchParams;
use crate::{Shared, WebError};

pub const OPENAPI: &str = include_str!("openapi.json");

/// The most hits one API page returns.
pub const MAX_LIMIT: usize = 100;

#[derive(Serialize)]
struct ApiError {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
}

fn error(status: StatusCode, message: String, column: Option<usize>) -> Response {
    (
        status,
        Json(ApiError {
            error: message,
            column,
        }),
    )
        .into_response()
}

/// A page error as JSON.
fn json_error(e: WebError) -> Response {
    match e {
        WebError::NotFound => error(StatusCode::NOT_FOUND, "not found".into(), None),
        WebError::Withdrawn(n, k, reason) => error(
            StatusCode::GONE,
            format!("email {n} was withdrawn by release {k}: {reason}"),
            None,
        ),
        WebError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m, None),
        WebError::Query(e) => {
            let column = (e.column > 0).then_some(e.column);
            error(StatusCode::BAD_REQUEST, e.message, column)
        }
        WebError::Internal(cause) => {
            eprintln!("trove serve: internal error: {cause}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".into(),
                None,
            )
        }
    }
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct FacetParam {
    /// `false` leaves the facets out (they cost a little).
    #[serde(default)]
    facets: Option<bool>,
}

#[derive(Serialize)]
struct ApiHit {
    number: u64,
    release: u32,
    date: Option<String>,
    from: String,
    subject: String,
    url: String,
}

#[derive(Serialize)]
struct ApiSearch {
    query: String,
    sort: &'static str,
    total: u64,
    hits: Vec<ApiHit>,
    next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    facets: Option<std::sync::Arc<Facets>>,
}

pub async fn search(
    State(s): State<Shared>,
    p: Result<Query<SearchParams>, QueryRejection>,
    f: Result<Query<FacetParam>, QueryRejection>,
) -> Response {
    let (Query(search), Query(f)) = match (p, f) {
        (Ok(p), Ok(f)) => (p, f),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e.body_text(), None),
    };
    let sort = match search.sort() {
        Ok(s) => s,
        Err(e) => return json_error(e),
    };
    let limit = search.limit.unwrap_or(20);
    if limit > MAX_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit is at most {MAX_LIMIT}; follow `next` for more"),
            None,
        );
    }
    let offset = match search.offset(limit.max(1)) {
        Ok(o) => o,
        Err(e) => return json_error(e),
    };
    let q = search.query();
    let max = s.max_number();
    let (q2, after) = (q.clone(), search.after.clone());
    let facets = f.facets.unwrap_or(true);
    let result = crate::search::on_index(&s, move |_, index| {
        index.run(&SearchRequest {
            sort,
            after: after.as_deref(),
            offset,
            limit,
            facets: if facets { crate::search::FACET_SIZE } else { 0 },
            ..SearchRequest::new(&q2, max)
        })
    })
    .await;
    let results = match result {
        Ok(Some(results)) => results,
        Ok(None) => trove_site::SearchResults {
            facets: facets.then(Default::default),
            ..Default::default()
        },
        Err(e) => return json_error(e),
    };
    Json(ApiSearch {
        query: q,
        sort: sort.name(),
        total: results.total,
        hits: results
            .hits
            .into_iter()
            .map(|h| ApiHit {
                url: format!("/emailid/{}", h.number),
                number: h.number,
                release: h.release,
                date: h.date,
                from: h.from,
                subject: h.subject,
            })
            .collect(),
        next: results.next,
        facets: results.facets,
    })
    .into_response()
}

#[derive(Serialize)]
struct ApiEmail {
    url: String,
    /// The conversation it belongs to: `/api/v1/threads/{thread}`.
    thread: u64,
    #[serde(flatten)]
    email: PublishedMessage,
}

pub async fn email(State(s): State<Shared>, UrlPath(n): UrlPath<String>) -> Response {
    match crate::load(&s, &n) {
        Ok(m) => {
            let thread = match s.threads() {
                Ok(t) => t.thread_of(m.number).unwrap_or(m.number),
                Err(e) => return json_error(e),
            };
            Json(ApiEmail {
                url: format!("/emailid/{}", m.number),
                thread,
                email: m,
            })
            .into_response()
        }
        Err(e) => json_error(e),
    }
}

pub async fn thread(State(s): State<Shared>, UrlPath(n): UrlPath<String>) -> Response {
    let state = s.clone();
    match crate::blocking(&crate::THREADS, move || {
        crate::conversation::load_thread(&state, &n)
    })
    .await
    {
        Ok(t) => Json(t).into_response(),
        Err(e) => json_error(e),
    }
}

pub async fn person(State(s): State<Shared>, UrlPath(address): UrlPath<String>) -> Response {
    let state = s.clone();
    match crate::blocking(&crate::PEOPLE, move || {
        crate::conversation::person_summary(&state, &address)
    })
    .await
    {
        Ok(p) => Json(p).into_response(),
        Err(e) => json_error(e),
    }
}

#[derive(Serialize)]
struct ApiRelease {
    release: u32,
    title: String,
    published_at: String,
    /// The public numbers it added (`last < first` when it added none).
    first: u64,
    last: u64,
    emails: u64,
    withdrawn: Vec<u64>,
    manifest: String,
    signature: String,
    merkle_root: String,
}

pub async fn releases(State(s): State<Shared>) -> Response {
    let list: Vec<ApiRelease> = s
        .manifests()
        .iter()
        .map(|m| ApiRelease {
            release: m.release,
            title: m.title.clone(),
            published_at: m.published_at.clone(),
            first: m.numbers.first,
            last: m.numbers.last,
            emails: m.numbers.count(),
            withdrawn: m.withdrawn.iter().map(|w| w.number).collect(),
            manifest: format!("/site/{}", trove_site::manifest_path(m.release)),
            signature: format!("/site/{}", trove_site::signature_path(m.release)),
            merkle_root: m.merkle_root.clone(),
        })
        .collect();
    Json(list).into_response()
}

/// Unknown API paths answer in JSON too.
pub async fn not_found() -> Response {
    json_error(WebError::NotFound)
}
