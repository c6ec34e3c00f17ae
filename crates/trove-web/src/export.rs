//! A static copy of the reader's site: every page the server would answer, rendered by
//! the same router and written as files with relative links, so the copy works from any
//! file server, from IPFS, or opened from disk.
//!
//! Routes map to files as a plain file server expects: `/emailid/5` becomes
//! `emailid/5/index.html`, its raw source `emailid/5/raw.txt`, its evidence bundle
//! `emailid/5/evidence.tar`, page 2 of a release `releases/3/page-2.html`; the signed
//! files keep their paths under `site/`. Links are rewritten relative to each page, and
//! to `index.html` explicitly, since `file://` does not look for it in a folder.
//!
//! Search cannot be static. With `live` (the archive's address), the search form and
//! search links point at the live site; without it they lead to a page that says so and
//! names `trove search` and the site files to build one's own.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::{AppState, pages, router};

#[derive(Debug, Default)]
pub struct StaticStats {
    pub pages: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Writes the static copy of the site at `site_dir` into `out`. `progress` is called
/// with (routes done, routes in all).
pub async fn export_static(
    site_dir: &Path,
    out: &Path,
    live: Option<&str>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<StaticStats, String> {
    let state = Arc::new(AppState::open(site_dir).map_err(|e| e.to_string())?);
    let app = router(state.clone());
    let live = live.map(|l| l.trim_end_matches('/').to_string());
    let mut routes: Vec<String> = [
        "/",
        "/releases",
        "/verify",
        "/style.css",
        "/releases.atom",
        "/public-key.pem",
        "/api/openapi.json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for m in state.manifests() {
        let k = m.release;
        routes.push(format!("/releases/{k}"));
        let pages = m.numbers.count().div_ceil(crate::PAGE_SIZE as u64);
        for page in 2..=pages {
            routes.push(format!("/releases/{k}?page={page}"));
        }
        routes.push(format!("/releases/{k}/manifest.json"));
        routes.push(format!("/releases/{k}/manifest.json.sig"));
        for n in m.numbers.first..=m.numbers.last {
            routes.push(format!("/emailid/{n}"));
            if state.withdrawal(n).is_some() {
                continue;
            }
            let Ok(Some(message)) = state.site.message(n) else {
                continue;
            };
            if message.raw_sha256.is_some() {
                routes.push(format!("/emailid/{n}/raw"));
            }
            routes.push(format!("/emailid/{n}/evidence"));
            for a in &message.attachments {
                routes.push(format!("/emailid/{n}/attachments/{}", a.index));
                if a.kind() == "email" {
                    routes.push(format!("/emailid/{n}/attachments/{}/email", a.index));
                }
            }
        }
    }
    // Conversations (each page of each) and people.
    if let Some(index) = &state.index {
        for (t, size) in index.threads().map_err(|e| e.to_string())?.sizes() {
            if size < 2 || t > state.max_number() {
                continue;
            }
            routes.push(format!("/thread/{t}"));
            for page in 2..=size.div_ceil(crate::conversation::THREAD_PAGE) {
                routes.push(format!("/thread/{t}?page={page}"));
            }
        }
        let people = index
            .run(&trove_site::SearchRequest {
                limit: 0,
                facets: 1_000_000,
                ..trove_site::SearchRequest::new("", state.max_number())
            })
            .map_err(|e| e.to_string())?;
        // An address no person page can take (what a broken header left) has none, and
        // no page links to one.
        for b in people.facets.iter().flat_map(|f| &f.person) {
            if crate::conversation::has_person_page(&b.value) {
                routes.push(format!("/person/{}", crate::pages::encode(&b.value)));
            }
        }
    }
    let mut stats = StaticStats::default();
    let total = routes.len() as u64;
    for (i, route) in routes.iter().enumerate() {
        let response = app
            .clone()
            .oneshot(
                Request::get(route.as_str())
                    .body(Body::empty())
                    .map_err(|e| e.to_string())?,
            )
            .await
            .map_err(|e| format!("{route}: {e}"))?;
        let status = response.status();
        if status != StatusCode::OK && status != StatusCode::GONE {
            return Err(format!("{route}: the server answered {status}"));
        }
        let is_html = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| format!("{route}: {e}"))?;
        let file = file_for(route).ok_or_else(|| format!("{route}: no file for it"))?;
        let bytes = if is_html {
            let html = String::from_utf8_lossy(&body);
            relink(&html, &file, live.as_deref()).into_bytes()
        } else {
            body.to_vec()
        };
        write(out, &file, &bytes)?;
        stats.pages += is_html as u64;
        stats.files += 1;
        stats.bytes += bytes.len() as u64;
        progress(i as u64 + 1, total);
    }
    // The search page of a copy without a live site to send readers to.
    if live.is_none() {
        let page = pages::static_search(&state.site.info().title);
        let page = relink(&page, "search/index.html", None);
        write(out, "search/index.html", page.as_bytes())?;
        stats.pages += 1;
        stats.files += 1;
    }
    // The signed files, as `/site/…` serves them, for checking the copy: what the
    // manifests say is published now, with the manifests and the key.
    let manifests = state.manifests();
    let live = trove_site::LiveFiles::of(manifests.iter().map(|m| m.as_ref()));
    let signed = manifests.iter().flat_map(|m| {
        [
            trove_site::manifest_path(m.release),
            trove_site::signature_path(m.release),
        ]
    });
    let named = ["site.json".to_string(), "public-key.pem".to_string()];
    for rel in named
        .into_iter()
        .chain(signed)
        .chain(live.files.into_keys())
    {
        let from = state.site.root().join(&rel);
        let bytes = state
            .site
            .read_file(&rel)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{}: missing", from.display()))?;
        write(out, &format!("site/{rel}"), &bytes)?;
        stats.files += 1;
        stats.bytes += bytes.len() as u64;
    }
    Ok(stats)
}

/// Writes `bytes` to the file `rel` of the copy at `out`. `file_for` names files inside
/// the copy; this is the check that it always does (on the name alone: `out` is the
/// publisher's, and may well climb, as `../copy` does).
fn write(out: &Path, rel: &str, bytes: &[u8]) -> Result<(), String> {
    let path = out.join(rel);
    if !Path::new(rel)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "{}: a file named outside the copy's directory",
            path.display()
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The file a route is written to, relative to the copy's root. `None` for a route the
/// copy cannot hold (search).
fn file_for(route: &str) -> Option<String> {
    let (path, query) = route.split_once('?').unwrap_or((route, ""));
    // Files are named as a browser looks for them: `%40` in a link means `@` on disk.
    // Each segment is decoded on its own, and one that would not stay one file name
    // once decoded (an address in a leaked email can be "../../x@y", or hold a slash
    // or a NUL) keeps every byte but letters and digits escaped: the copy is
    // written under its directory, whatever the archive's addresses say.
    let decoded: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|segment| {
            let name = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            if name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
                percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            } else {
                name.into_owned()
            }
        })
        .collect();
    let path = decoded.join("/");
    let path = path.as_str();
    let parts: Vec<&str> = path.split('/').collect();
    let page = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse::<u64>().ok())
        .filter(|&p| p > 1);
    Some(match parts.as_slice() {
        [""] => "index.html".into(),
        ["search"] => return None,
        ["api", "openapi.json"] => path.into(),
        ["emailid", n, "attachments", m, "email"] => {
            format!("emailid/{n}/attachments/{m}-email.html")
        }
        ["thread", t] if page.is_some() => format!("thread/{t}/page-{}.html", page?),
        ["style.css"] | ["releases.atom"] | ["public-key.pem"] => path.into(),
        ["site", ..] => path.into(),
        ["releases", _, "manifest.json"] | ["releases", _, "manifest.json.sig"] => path.into(),
        ["emailid", n, "raw"] => format!("emailid/{n}/raw.txt"),
        ["emailid", n, "evidence"] => format!("emailid/{n}/evidence.tar"),
        ["emailid", _, "attachments", _] => path.into(),
        ["releases", k] if page.is_some() => format!("releases/{k}/page-{}.html", page?),
        _ => format!("{path}/index.html"),
    })
}

/// What a relative link to a file of the copy must escape.
const FILE_NAME: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'@');

/// Rewrites the site-absolute links (`href`, `src`, `action` starting with one `/`) of a
/// page written at `file` into links relative to it.
fn relink(html: &str, file: &str, live: Option<&str>) -> String {
    let depth = file.matches('/').count();
    let up = "../".repeat(depth);
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some((at, len)) = ["href=\"/", "src=\"/", "action=\"/"]
        .iter()
        .filter_map(|a| rest.find(a).map(|i| (i, a.len())))
        .min()
    {
        out.push_str(&rest[..at + len - 1]);
        let value_start = at + len - 1;
        let Some(end) = rest[value_start..].find('"') else {
            out.push_str(&rest[value_start..]);
            return out;
        };
        let value = &rest[value_start..value_start + end];
        if value.starts_with("//") {
            out.push_str(value);
        } else {
            let unescaped = value.replace("&amp;", "&");
            let (unescaped, fragment) = match unescaped.split_once('#') {
                Some((u, f)) => (u.to_string(), format!("#{f}")),
                None => (unescaped, String::new()),
            };
            // What needs the engine: searches, their feeds and exports, timelines, the API.
            let needs_server = unescaped.starts_with("/search")
                || unescaped.starts_with("/timeline.svg")
                || unescaped.starts_with("/api/v1/");
            match (needs_server, live, file_for(&unescaped)) {
                (true, Some(live), _) => out.push_str(&format!("{live}{value}")),
                (true, None, _) => out.push_str(&format!("{up}search/index.html")),
                (false, _, Some(target)) => {
                    let target = percent_encoding::utf8_percent_encode(&target, FILE_NAME);
                    out.push_str(&format!("{up}{target}{fragment}"))
                }
                (false, _, None) => out.push_str(value),
            }
        }
        rest = &rest[value_start + end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_files_a_file_server_serves() {
        assert_eq!(file_for("/").as_deref(), Some("index.html"));
        assert_eq!(
            file_for("/emailid/5").as_deref(),
            Some("emailid/5/index.html")
        );
        assert_eq!(
            file_for("/emailid/5/raw").as_deref(),
            Some("emailid/5/raw.txt")
        );
        assert_eq!(
            file_for("/releases/3?page=2").as_deref(),
            Some("releases/3/page-2.html")
        );
        assert_eq!(
            file_for("/releases/3?page=1").as_deref(),
            Some("releases/3/index.html")
        );
        assert_eq!(file_for("/search?q=x"), None);
        assert_eq!(
            file_for("/person/jane%2Edoe%40example%2Eorg").as_deref(),
            Some("person/jane.doe@example.org/index.html")
        );
    }

    #[test]
    fn a_segment_that_would_leave_its_directory_stays_escaped() {
        for (route, file) in [
            (
                "/person/%2E%2E%2F%2E%2E%2Fx%40y%2Eorg",
                "person/%2E%2E%2F%2E%2E%2Fx%40y%2Eorg/index.html",
            ),
            ("/person/%2E%2E", "person/%2E%2E/index.html"),
            ("/person/a%00b%40c", "person/a%00b%40c/index.html"),
            ("/person/a%5Cb%40c", "person/a%5Cb%40c/index.html"),
        ] {
            assert_eq!(file_for(route).as_deref(), Some(file), "{route}");
        }
        // The link to such a page names the same file (its `%` escaped once more).
        let out = relink(
            r#"<a href="/person/%2E%2E%2Fx%40y%2Eorg">x</a>"#,
            "emailid/1/index.html",
            None,
        );
        assert_eq!(
            out,
            r#"<a href="../../person/%252E%252E%252Fx%2540y%252Eorg/index.html">x</a>"#
        );
    }

    #[test]
    fn links_become_relative_and_search_goes_live() {
        let html = r#"<a href="/emailid/5">x</a><link href="/style.css"><form action="/search"><a href="https://e.org/">e</a><a href="/search?q=a&amp;sort=newest">s</a>"#;
        let out = relink(
            html,
            "emailid/7/index.html",
            Some("https://archive.example"),
        );
        assert_eq!(
            out,
            r#"<a href="../../emailid/5/index.html">x</a><link href="../../style.css"><form action="https://archive.example/search"><a href="https://e.org/">e</a><a href="https://archive.example/search?q=a&amp;sort=newest">s</a>"#
        );
        let out = relink(html, "index.html", None);
        assert!(out.contains(r#"action="search/index.html""#), "{out}");
    }
}
