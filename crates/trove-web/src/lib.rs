//! The reader's web server over a trove site. The principal function is [`router`]: give
//! it an [`AppState`] opened on a site directory and serve it with axum.
//!
//! Architecture invariant: this crate depends on trove-site only, never on the workspace,
//! so it cannot serve anything that was not released. It further serves only the emails
//! numbered by a signed manifest it has read: files of a release still being written are
//! invisible until their manifest exists.
//!
//! Every page is server-rendered HTML that works with JavaScript off. Every response
//! carries a Content-Security-Policy that forbids scripts, frames and remote resources,
//! so even email HTML that slipped past the sanitiser could not run or fetch anything.
//! Attachments are always served as downloads (`application/octet-stream`, `attachment`).

mod api;
mod conversation;
mod evidence;
pub mod export;
mod kept;
mod pages;
mod search;
mod svg;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use trove_site::{Manifest, SearchIndex, Site};

/// What the server knows about the site, refreshed when a new release appears.
struct Published {
    /// Shared, not copied, per request: a manifest lists every file of its release.
    manifests: Vec<Arc<Manifest>>,
    /// The highest public number vouched for by a signed manifest.
    max_number: u64,
    /// Emails withdrawn after publication: the withdrawing release and the reason.
    withdrawn: HashMap<u64, (u32, String)>,
    /// Attachment files a signed manifest lists and no withdrawal removed: the only
    /// ones `/site/attachments/…` serves.
    attachments: HashSet<String>,
    checked: Instant,
}

impl Published {
    fn new(manifests: Vec<Arc<Manifest>>) -> Published {
        let mut p = Published {
            manifests: Vec::new(),
            max_number: 0,
            withdrawn: HashMap::new(),
            attachments: HashSet::new(),
            checked: Instant::now(),
        };
        for m in manifests {
            p.push(m);
        }
        p
    }

    fn push(&mut self, m: Arc<Manifest>) {
        self.max_number = m.numbers.last.max(self.max_number);
        for f in &m.files {
            if f.path.starts_with("attachments/") {
                self.attachments.insert(f.path.clone());
            }
        }
        for w in &m.withdrawn {
            self.withdrawn
                .insert(w.number, (m.release, w.reason.clone()));
            for f in &w.files {
                self.attachments.remove(f);
            }
        }
        self.manifests.push(m);
    }
}

pub struct AppState {
    site: Site,
    index: Option<SearchIndex>,
    published: RwLock<Published>,
    /// Search pages already made, for links many readers open at once.
    search_pages: kept::KeptPages,
}

/// How often the server looks for a newly written release.
const REFRESH: Duration = Duration::from_secs(2);

pub const PAGE_SIZE: usize = 20;

impl AppState {
    pub fn open(dir: &Path) -> trove_site::Result<AppState> {
        let site = Site::open(dir)?;
        let manifests: Vec<Arc<Manifest>> = site.manifests()?.into_iter().map(Arc::new).collect();
        let index = if site.index_dir().join("meta.json").exists() {
            Some(SearchIndex::open(&site.index_dir())?)
        } else {
            None
        };
        Ok(AppState {
            site,
            index,
            published: RwLock::new(Published::new(manifests)),
            search_pages: Default::default(),
        })
    }

    fn refresh(&self) {
        let stale = self
            .published
            .read()
            .map(|p| p.checked.elapsed() > REFRESH)
            .unwrap_or(true);
        if !stale {
            return;
        }
        let Ok(mut p) = self.published.write() else {
            return;
        };
        // Releases are only ever appended: look for the next one.
        let mut grew = false;
        while let Ok(Some(m)) = self.site.manifest(p.manifests.len() as u32 + 1) {
            p.push(Arc::new(m));
            grew = true;
        }
        p.checked = Instant::now();
        if grew && let Some(index) = &self.index {
            let _ = index.reload();
        }
    }

    fn max_number(&self) -> u64 {
        self.refresh();
        self.published.read().map(|p| p.max_number).unwrap_or(0)
    }

    fn manifests(&self) -> Vec<Arc<Manifest>> {
        self.refresh();
        self.published
            .read()
            .map(|p| p.manifests.clone())
            .unwrap_or_default()
    }

    /// Why email `n` is gone, if it was withdrawn: the withdrawing release and reason.
    fn withdrawal(&self, n: u64) -> Option<(u32, String)> {
        self.refresh();
        self.published.read().ok()?.withdrawn.get(&n).cloned()
    }

    fn attachment_listed(&self, path: &str) -> bool {
        self.refresh();
        self.published
            .read()
            .map(|p| p.attachments.contains(path))
            .unwrap_or(false)
    }

    /// The conversations of the published emails (none without an index).
    fn threads(&self) -> Result<Arc<trove_site::threads::ThreadMap>, WebError> {
        match &self.index {
            Some(i) => Ok(i.threads()?),
            None => Ok(Default::default()),
        }
    }

    /// Release `k`'s manifest, if the server has read it. Releases are numbered from 1.
    fn manifest(&self, k: u32) -> Option<Arc<Manifest>> {
        self.refresh();
        let p = self.published.read().ok()?;
        p.manifests.get((k as usize).checked_sub(1)?).cloned()
    }
}

/// How long one kind of request's work took lately (a moving average), which decides
/// where the next one runs ([`blocking`]).
pub(crate) struct Lately {
    micros: std::sync::atomic::AtomicU64,
}

impl Lately {
    pub(crate) const fn new() -> Lately {
        Lately {
            micros: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn took(&self, spent: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let spent = spent.as_micros().min(u64::MAX as u128) as u64;
        // Three parts the past, one part this run; two threads racing lose an update,
        // which an average can afford.
        let was = self.micros.load(Relaxed);
        self.micros
            .store(was.saturating_mul(3).saturating_add(spent) / 4, Relaxed);
    }

    fn is_quick(&self) -> bool {
        self.micros.load(std::sync::atomic::Ordering::Relaxed) < INLINE_MICROS
    }
}

/// Work that took less than this lately runs on the worker that took the request.
const INLINE_MICROS: u64 = 5_000;

/// Searches, thread pages and person pages, each measured apart.
pub(crate) static SEARCHES: Lately = Lately::new();
pub(crate) static THREADS: Lately = Lately::new();
pub(crate) static PEOPLE: Lately = Lately::new();

/// Runs `f` (a search, a thread or person page: file reads and work for the cores, from
/// a fraction of a millisecond to hundreds) for a request, and keeps the server
/// answering its other requests while long ones run.
///
/// While such work has been quick lately (under 5 ms on average: a search page takes
/// about 0.3 ms at 100,000 emails and 1-2 at a million, more while others wait for the
/// cores), `f` runs right on the tokio worker that took the request. Handing it to a
/// blocking thread (`spawn_blocking`) cost two thread switches per request: under 3,000
/// different searches a page took 0.36-0.41 ms of CPU that way and 0.26-0.32 this way
/// at 100,000 emails; at a million, 1.11-1.32 ms with a 2 ms limit (which still sent
/// most of them away) and 0.83-0.88 with this one (BENCHMARKS.md). Once it has been slow (a
/// flood of searches matching a million emails), `f` goes to a blocking thread again, so
/// that the workers stay free for email pages and files: under such a flood an email
/// page took 1-12 ms that way, and hundreds of milliseconds when the searches ran on the
/// workers or with `block_in_place` (whose hand-off waited for a blocking thread).
///
/// A panic in `f` is a 500, as it was from a blocking thread, not a dropped connection.
pub(crate) async fn blocking<T: Send + 'static>(
    lately: &'static Lately,
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    let timed = move || {
        let start = std::time::Instant::now();
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        lately.took(start.elapsed());
        out.map_err(|_| WebError::Internal("the request's work panicked".into()))?
    };
    if lately.is_quick() {
        return timed();
    }
    tokio::task::spawn_blocking(timed)
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
}

/// The one error type of the handlers. A 500 logs its cause and shows the reader nothing
/// internal.
pub enum WebError {
    NotFound,
    /// Published once, then withdrawn: the withdrawing release and its reason.
    Withdrawn(u64, u32, String),
    BadRequest(String),
    /// A query in the search language that could not be read.
    Query(trove_site::QueryError),
    Internal(String),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, Html(pages::not_found())).into_response(),
            WebError::Withdrawn(n, k, reason) => (
                StatusCode::GONE,
                Html(pages::error_page(
                    "Withdrawn",
                    &format!("Email {n} was published, then withdrawn by release {k}. Reason given: {reason}."),
                )),
            )
                .into_response(),
            WebError::BadRequest(msg) => (
                StatusCode::BAD_REQUEST,
                Html(pages::error_page("Bad request", &msg)),
            )
                .into_response(),
            WebError::Query(e) => (
                StatusCode::BAD_REQUEST,
                Html(pages::error_page("That search could not be read", &e.to_string())),
            )
                .into_response(),
            WebError::Internal(cause) => {
                eprintln!("trove serve: internal error: {cause}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html(pages::error_page(
                        "Server error",
                        "Something went wrong on our side.",
                    )),
                )
                    .into_response()
            }
        }
    }
}

impl From<trove_site::SiteError> for WebError {
    /// A query the reader wrote is their mistake (400); anything else is ours.
    fn from(e: trove_site::SiteError) -> Self {
        match e {
            trove_site::SiteError::Query(q) => WebError::Query(q),
            e => WebError::Internal(e.to_string()),
        }
    }
}

type Shared = Arc<AppState>;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn router(state: Shared) -> Router {
    let routes = Router::new()
        .route("/", get(home))
        .route("/search", get(search::search))
        .route("/search.atom", get(search::search_feed))
        .route("/search.mbox", get(search::export_mbox))
        .route("/search.jsonl", get(search::export_jsonl))
        .route("/search.csv", get(search::export_csv))
        .route("/timeline.svg", get(search::timeline))
        .route("/thread/{n}", get(conversation::thread_page))
        .route("/person/{address}", get(conversation::person_page))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/v1/search", get(api::search))
        .route("/api/v1/emails/{n}", get(api::email))
        .route("/api/v1/threads/{n}", get(api::thread))
        .route("/api/v1/people/{address}", get(api::person))
        .route("/api/v1/releases", get(api::releases))
        .route("/api/{*rest}", get(api::not_found))
        .route("/emailid/{n}", get(email))
        .route("/emailid/{n}/raw", get(raw))
        .route("/emailid/{n}/evidence", get(evidence_bundle))
        .route("/verify", get(verify_page))
        .route("/public-key.pem", get(public_key))
        .route("/releases/{k}/manifest.json", get(manifest_file))
        .route("/releases/{k}/manifest.json.sig", get(signature_file))
        .route("/emailid/{n}/attachments/{m}", get(attachment))
        .route("/emailid/{n}/attachments/{m}/email", get(attached_email))
        .route("/releases", get(releases))
        .route("/releases.atom", get(releases_feed))
        .route("/site/{*path}", get(site_file))
        .route("/releases/{k}", get(release))
        .route("/style.css", get(style))
        .fallback(|| async { WebError::NotFound });
    layered(routes).with_state(state)
}

/// The layers every response goes through: the security headers, and a panic anywhere
/// in a handler made a 500 page (logged, as any internal error is) instead of a
/// connection dropped without an answer, as a thread page once did.
fn layered<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes
        // The panic hook has already printed the message and where it was raised.
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                WebError::Internal("a handler panicked (its message is above)".into())
                    .into_response()
            },
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
}

/// Serves `dir` on `bind` until interrupted.
pub async fn serve(dir: &Path, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let state = AppState::open(dir).map_err(std::io::Error::other)?;
    let app = router(Arc::new(state));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

async fn home(State(s): State<Shared>) -> Result<Html<String>, WebError> {
    let manifests = s.manifests();
    let months = search::months(&s, String::new()).await?;
    Ok(Html(pages::home(&s.site.info().title, &manifests, &months)))
}

/// The published form of email `n`, or the one 404 for unknown and unreleased alike.
fn load(s: &AppState, n: &str) -> Result<trove_site::PublishedMessage, WebError> {
    let n: u64 = n.parse().map_err(|_| WebError::NotFound)?;
    if n == 0 || n > s.max_number() {
        return Err(WebError::NotFound);
    }
    if let Some((k, reason)) = s.withdrawal(n) {
        return Err(WebError::Withdrawn(n, k, reason));
    }
    s.site.message(n)?.ok_or(WebError::NotFound)
}

async fn email(
    State(s): State<Shared>,
    UrlPath(n): UrlPath<String>,
) -> Result<Html<String>, WebError> {
    let m = load(&s, &n)?;
    let release = s.manifest(m.release);
    let threads = s.threads()?;
    let thread = threads.thread_of(m.number).map(|t| (t, threads.size_of(t)));
    Ok(Html(pages::email(
        &s.site.info().title,
        &m,
        release.as_deref(),
        thread,
    )))
}

async fn raw(State(s): State<Shared>, UrlPath(n): UrlPath<String>) -> Result<Response, WebError> {
    let m = load(&s, &n)?;
    // A redacted email publishes no raw source; only a source its JSON names is served.
    if m.raw_sha256.is_none() {
        return Err(WebError::NotFound);
    }
    let bytes = s
        .site
        .read_file(&trove_site::raw_path(m.number))
        .ok()
        .flatten()
        .ok_or(WebError::NotFound)?;
    let ct = if std::str::from_utf8(&bytes).is_ok() {
        "text/plain; charset=utf-8"
    } else {
        "text/plain"
    };
    Ok((
        [
            (header::CONTENT_TYPE, ct),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'",
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn evidence_bundle(
    State(s): State<Shared>,
    UrlPath(n): UrlPath<String>,
) -> Result<Response, WebError> {
    let m = load(&s, &n)?;
    let raw = match m.raw_sha256 {
        Some(_) => s
            .site
            .read_file(&trove_site::raw_path(m.number))
            .ok()
            .flatten(),
        None => None,
    };
    let tar = evidence::bundle(&m, raw.as_deref(), &s.site.info().title)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(download(
        tar,
        "application/x-tar",
        &format!("email-{}-evidence.tar", m.number),
    ))
}

async fn verify_page(State(s): State<Shared>) -> Html<String> {
    let manifests = s.manifests();
    Html(pages::verify(s.site.info(), &manifests))
}

async fn public_key(State(s): State<Shared>) -> Result<Response, WebError> {
    let bytes =
        std::fs::read(s.site.root().join("public-key.pem")).map_err(|_| WebError::NotFound)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes).into_response())
}

/// A file of release `k` (manifest or signature), only for releases the server has read.
fn release_file(
    s: &AppState,
    k: &str,
    path: fn(u32) -> String,
    content_type: &'static str,
) -> Result<Response, WebError> {
    let k: u32 = k.parse().map_err(|_| WebError::NotFound)?;
    if s.manifest(k).is_none() {
        return Err(WebError::NotFound);
    }
    let bytes = std::fs::read(s.site.root().join(path(k))).map_err(|_| WebError::NotFound)?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

async fn manifest_file(
    State(s): State<Shared>,
    UrlPath(k): UrlPath<String>,
) -> Result<Response, WebError> {
    release_file(&s, &k, trove_site::manifest_path, "application/json")
}

async fn signature_file(
    State(s): State<Shared>,
    UrlPath(k): UrlPath<String>,
) -> Result<Response, WebError> {
    release_file(
        &s,
        &k,
        trove_site::signature_path,
        "application/octet-stream",
    )
}

async fn attachment(
    State(s): State<Shared>,
    UrlPath((n, idx)): UrlPath<(String, String)>,
) -> Result<Response, WebError> {
    let m = load(&s, &n)?;
    let idx: u32 = idx.parse().map_err(|_| WebError::NotFound)?;
    let a = m
        .attachments
        .iter()
        .find(|a| a.index == idx)
        .ok_or(WebError::NotFound)?;
    let path = s.site.root().join(trove_site::attachment_path(&a.sha256));
    let bytes = std::fs::read(&path).map_err(|_| WebError::NotFound)?;
    let name = a
        .filename
        .clone()
        .unwrap_or_else(|| format!("email-{}-attachment-{}", m.number, a.index));
    Ok(download(bytes, "application/octet-stream", &name))
}

/// An attached email (`message/rfc822`, or a `.eml` file) shown as an email page.
async fn attached_email(
    State(s): State<Shared>,
    UrlPath((n, idx)): UrlPath<(String, String)>,
) -> Result<Html<String>, WebError> {
    let m = load(&s, &n)?;
    let idx: u32 = idx.parse().map_err(|_| WebError::NotFound)?;
    let a = m
        .attachments
        .iter()
        .find(|a| a.index == idx && a.kind() == "email")
        .ok_or(WebError::NotFound)?;
    let path = s.site.root().join(trove_site::attachment_path(&a.sha256));
    let bytes = std::fs::read(&path).map_err(|_| WebError::NotFound)?;
    let nested = trove_site::read_attached_email(&bytes);
    Ok(Html(pages::attached_email(
        &s.site.info().title,
        &m,
        a,
        &nested,
    )))
}

/// A file served only as a download: never rendered, never sniffed, sandboxed if opened.
fn download(bytes: Vec<u8>, content_type: &'static str, filename: &str) -> Response {
    let disposition = HeaderValue::from_str(&content_disposition(filename))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox; default-src 'none'"),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// `attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded` (RFC 6266).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The site's signed files, read-only, exactly as signed (an email's, out of its pack), for mirrors and
/// for anyone checking a release with standard tools (`/site/releases/000001.json`,
/// `/site/messages/0000/1.json`, …). Only what a signed manifest the server has read
/// vouches for is served: never the index, never a file of a release still being
/// written, never a withdrawn email's files.
async fn site_file(
    State(s): State<Shared>,
    UrlPath(path): UrlPath<String>,
) -> Result<Response, WebError> {
    if !site_path_is_served(&s, &path) {
        return Err(WebError::NotFound);
    }
    let bytes = s
        .site
        .read_file(&path)
        .ok()
        .flatten()
        .ok_or(WebError::NotFound)?;
    if path.ends_with(".pack") && !pack_is_public(&s, &path, &bytes) {
        return Err(WebError::NotFound);
    }
    let content_type = if path.ends_with(".json") {
        "application/json"
    } else if path.ends_with(".pem") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    // Signed files never change once written; site.json names the key and may be
    // re-read by mirrors checking for a key change; a pack is rewritten when a
    // withdrawal takes a file out of it.
    let cache =
        if path.starts_with("site.json") || path == "public-key.pem" || path.ends_with(".pack") {
            "no-cache"
        } else {
            "public, max-age=31536000, immutable"
        };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Whether email `n` is published: covered by a signed manifest and not withdrawn.
fn is_public_number(s: &AppState, n: u64) -> bool {
    n >= 1 && n <= s.max_number() && s.withdrawal(n).is_none()
}

/// Whether pack `path`, whose bytes are `bytes`, may be served whole (a mirror fetching a
/// folder's files of one release in one request): every file in it is a published
/// email's, in its folder. A withdrawal rewrites the pack only after its manifest is
/// signed; until then this says no, and the mirror asks file by file.
fn pack_is_public(s: &AppState, path: &str, bytes: &[u8]) -> bool {
    let (Some((folder, _)), Ok(entries)) = (
        trove_site::pack_file(path),
        trove_site::pack_index(path, bytes),
    ) else {
        return false;
    };
    entries.iter().all(|e| {
        trove_site::email_file(&e.path).is_some_and(|(f, n)| f == folder && is_public_number(s, n))
    })
}

/// Whether `path` (relative to the site root, as in manifests) may be served.
fn site_path_is_served(s: &AppState, path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        ["site.json"] | ["public-key.pem"] => true,
        ["releases", name] => {
            let stem = name
                .strip_suffix(".json.sig")
                .or_else(|| name.strip_suffix(".json"));
            match stem {
                Some(k) if k.len() == 6 && digits(k) => k
                    .parse::<u32>()
                    .is_ok_and(|k| k >= 1 && s.manifest(k).is_some()),
                _ => false,
            }
        }
        // A pack is named by its lowest number when written; that email may have been
        // withdrawn since. What it holds is checked when it is read (`pack_is_public`).
        ["messages", _, name] if name.ends_with(".pack") => trove_site::pack_file(path)
            .is_some_and(|(_, first)| first >= 1 && first <= s.max_number()),
        ["messages", _, _] => {
            trove_site::email_file(path).is_some_and(|(_, n)| is_public_number(s, n))
        }
        ["attachments", _, _] => s.attachment_listed(path),
        _ => false,
    }
}

async fn releases_feed(State(s): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        pages::releases_atom(s.site.info(), &s.manifests()),
    )
        .into_response()
}

async fn releases(State(s): State<Shared>) -> Html<String> {
    Html(pages::releases(&s.site.info().title, &s.manifests()))
}

#[derive(serde::Deserialize, Default)]
struct PageParam {
    page: Option<usize>,
}

async fn release(
    State(s): State<Shared>,
    UrlPath(k): UrlPath<String>,
    Query(p): Query<PageParam>,
) -> Result<Html<String>, WebError> {
    let k: u32 = k.parse().map_err(|_| WebError::NotFound)?;
    let manifest = s.manifest(k).ok_or(WebError::NotFound)?;
    let page = p.page.unwrap_or(1).max(1);
    let first = manifest.numbers.first + ((page - 1) * PAGE_SIZE) as u64;
    let mut emails = Vec::new();
    for n in first..=manifest.numbers.last.min(first + PAGE_SIZE as u64 - 1) {
        if let Some(m) = s.site.message(n)? {
            emails.push(m);
        }
    }
    Ok(Html(pages::release(
        &s.site.info().title,
        &manifest,
        page,
        &emails,
    )))
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::CSS,
    )
}

#[cfg(test)]
mod tests {
    use super::{Lately, WebError, blocking, content_disposition};
    use std::time::Duration;

    /// Quick work runs on the worker that asked; after slow work the next run goes to a
    /// blocking thread, and back to the worker once runs are quick again; a panic is a
    /// 500 either way.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_runs_on_the_worker_while_it_is_quick() {
        static LATELY: Lately = Lately::new();
        let here = || std::thread::current().id();
        let ran_on = || async {
            blocking(&LATELY, move || Ok(std::thread::current().id()))
                .await
                .ok()
                .unwrap()
        };
        let asked = here();
        assert_eq!(ran_on().await, asked);
        blocking(&LATELY, || {
            std::thread::sleep(Duration::from_millis(40));
            Ok(())
        })
        .await
        .ok()
        .unwrap();
        assert!(!LATELY.is_quick());
        let asked = here();
        assert_ne!(ran_on().await, asked, "after slow work, a blocking thread");
        for _ in 0..20 {
            ran_on().await;
        }
        assert!(LATELY.is_quick());
        let asked = here();
        assert_eq!(ran_on().await, asked);
        let panicked = blocking(&LATELY, || -> Result<(), WebError> { panic!("boom") }).await;
        assert!(matches!(panicked, Err(WebError::Internal(_))));
    }

    /// A handler that panics answers a 500 page, with the security headers and nothing
    /// of the panic in it.
    #[tokio::test]
    async fn a_panicking_handler_answers_a_server_error_page() {
        use tower::ServiceExt;
        let app = super::layered(axum::Router::new().route(
            "/boom",
            axum::routing::get(|| async {
                if std::hint::black_box(true) {
                    panic!("secret detail");
                }
                "never"
            }),
        ));
        let request = axum::http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        );
        assert!(
            response
                .headers()
                .contains_key(axum::http::header::CONTENT_SECURITY_POLICY)
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("Server error"), "{body}");
        assert!(!body.contains("secret detail"), "{body}");
    }

    #[test]
    fn disposition_is_always_attachment_and_safe() {
        let d = content_disposition("r\u{e9}sum\u{e9} \"x\".pdf");
        assert!(
            d.starts_with("attachment; filename=\"r_sum_ _x_.pdf\""),
            "{d}"
        );
        assert!(d.contains("filename*=UTF-8''r%C3%A9sum%C3%A9"), "{d}");
    }
}
