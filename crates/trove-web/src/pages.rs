//! HTML pages. maud escapes every value; the only unescaped inserts are sanitised email
//! HTML (cleaned by ammonia at release) and tantivy snippets (escaped text with `<b>`).

use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::sync::Arc;

use trove_site::{Hit, Manifest, Person, PublishedMessage, QueryError, Sort};

use crate::PAGE_SIZE;

pub const CSS: &str = r#"
:root { --fg:#1a1a1a; --muted:#555; --line:#ddd; --bg:#fff; --accent:#0b4f9c; --mark:#fff3a8; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header.site { border-bottom:1px solid var(--line); padding:.6rem 1rem; display:flex; flex-wrap:wrap; gap:.5rem 1.5rem; align-items:center; }
header.site a.title { font-weight:700; color:var(--fg); text-decoration:none; font-size:1.1rem; }
header.site nav a { margin-right:1rem; }
main { max-width:60rem; margin:0 auto; padding:1rem; }
a { color:var(--accent); }
form.search { display:flex; flex-wrap:wrap; gap:.5rem; margin:1rem 0; }
form.search input[type=search] { flex:1 1 16rem; font-size:1rem; padding:.45rem .6rem; border:1px solid #888; border-radius:4px; }
form.search select, form.search button { font-size:1rem; padding:.4rem .7rem; }
.count { color:var(--muted); }
ol.hits { list-style:none; padding:0; }
ol.hits li { border-bottom:1px solid var(--line); padding:.6rem 0; }
.hit-meta { color:var(--muted); font-size:.9rem; }
.snippet b { background:var(--mark); font-weight:normal; }
table.headers { border-collapse:collapse; margin:1rem 0; }
table.headers th { text-align:left; vertical-align:top; padding:.15rem 1rem .15rem 0; color:var(--muted); font-weight:600; white-space:nowrap; }
table.headers td { padding:.15rem 0; overflow-wrap:anywhere; }
pre.body { white-space:pre-wrap; overflow-wrap:anywhere; font:15px/1.45 ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace; background:#fafafa; border:1px solid var(--line); padding:.8rem; }
section.html-body { border:1px solid var(--line); padding:.8rem; overflow-wrap:anywhere; }
.flags { color:#8a4b00; }
.cite { font-size:.9rem; color:var(--muted); border-left:3px solid var(--line); padding-left:.6rem; }
nav.pager { display:flex; gap:1rem; margin:1rem 0; }
table.releases { border-collapse:collapse; width:100%; }
table.releases th, table.releases td { text-align:left; padding:.35rem .5rem; border-bottom:1px solid var(--line); }
.error pre { background:#fff0f0; border:1px solid #e0a0a0; padding:.6rem; overflow-x:auto; }
code { overflow-wrap:anywhere; word-break:break-all; }
main, article { min-width:0; overflow-wrap:anywhere; }
footer { color:var(--muted); font-size:.85rem; padding:1rem; text-align:center; }
"#;

/// `2000-12-12T04:03:00-08:00` as `2000-12-12 04:03:00 -08:00`: absolute, with the
/// sender's offset, and readable.
pub fn show_date(d: Option<&str>) -> String {
    let Some(d) = d else { return "no date".into() };
    let Some((day, rest)) = d.split_once('T') else {
        return d.to_string();
    };
    let split = rest.find(['+', '-', 'Z']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(split);
    let zone = if zone == "Z" { "UTC" } else { zone };
    format!("{day} {time} {zone}")
}

pub fn escape(s: &str) -> String {
    maud::html! { (s) }.into_string()
}

fn layout(site_title: &str, page_title: &str, query: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page_title) " — " (site_title) }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header.site {
                    a.title href="/" { (site_title) }
                    nav { a href="/releases" { "Releases" } a href="/search" { "Search" } a href="/verify" { "Verify" } }
                }
                main {
                    (search_form(query, Sort::Relevance))
                    (body)
                }
                footer { "Published with trove. Every release is signed; see the release pages for manifests." }
            }
        }
    }
    .into_string()
}

fn search_form(query: &str, sort: Sort) -> Markup {
    html! {
        form.search action="/search" method="get" role="search" {
            input #q type="search" name="q" value=(query) placeholder="Search: words, \"phrases\", from:, to:, subject:, after:2001-05, dkim:pass" aria-label="Search the archive";
            select name="sort" aria-label="Sort order" {
                @for s in [Sort::Relevance, Sort::Newest, Sort::Oldest] {
                    option value=(s.name()) selected[s == sort] { (s.name()) }
                }
            }
            button type="submit" { "Search" }
        }
    }
}

pub fn home(title: &str, manifests: &[Arc<Manifest>]) -> String {
    let total: u64 = manifests.iter().map(|m| m.numbers.count()).sum();
    layout(
        title,
        "Home",
        "",
        html! {
            h1 { (title) }
            p { (total) " emails published in " (manifests.len()) " releases." }
            (release_table(manifests))
        },
    )
}

fn release_table(manifests: &[Arc<Manifest>]) -> Markup {
    html! {
        @if manifests.is_empty() {
            p { "Nothing has been released yet." }
        } @else {
            table.releases {
                thead { tr { th { "Release" } th { "Title" } th { "Published" } th { "Emails" } } }
                tbody {
                    @for m in manifests.iter().rev() {
                        tr {
                            td { a href={ "/releases/" (m.release) } { (m.release) } }
                            td { (m.title) }
                            td { (m.published_at) }
                            td { (m.numbers.count()) " (" (m.numbers.first) "–" (m.numbers.last) ")" }
                        }
                    }
                }
            }
        }
    }
}

pub fn releases(title: &str, manifests: &[Arc<Manifest>]) -> String {
    layout(
        title,
        "Releases",
        "",
        html! { h1 { "Releases" } (release_table(manifests)) },
    )
}

fn email_row(m: &PublishedMessage) -> Markup {
    html! {
        li {
            a href={ "/emailid/" (m.number) } { @if m.subject.is_empty() { "(no subject)" } @else { (m.subject) } }
            div.hit-meta { "#" (m.number) " · " (show_date(m.date.as_deref())) " · " (m.from_line()) }
        }
    }
}

pub fn release(title: &str, m: &Manifest, page: usize, emails: &[PublishedMessage]) -> String {
    let pages = m.numbers.count().div_ceil(PAGE_SIZE as u64) as usize;
    layout(
        title,
        &format!("Release {}", m.release),
        "",
        html! {
            h1 { "Release " (m.release) ": " (m.title) }
            table.headers {
                tr { th { "Published" } td { (m.published_at) } }
                tr { th { "Emails" } td { (m.numbers.count()) " (numbers " (m.numbers.first) " to " (m.numbers.last) ")" } }
                tr { th { "Files" } td { (m.files.len()) } }
                tr { th { "Merkle root" } td { code { (m.merkle_root) } } }
                tr { th { "Previous manifest" } td { code { (m.previous.as_deref().unwrap_or("none (first release)")) } } }
                tr { th { "Signing key" } td { code { (m.public_key) } } }
            tr { th { "Manifest" } td { a href={ "/releases/" (m.release) "/manifest.json" } { "manifest.json" } ", " a href={ "/releases/" (m.release) "/manifest.json.sig" } { "signature" } " (" a href="/verify" { "how to check" } ")" } }
            }
            h2 { "Register of what was withheld" }
            @let r = &m.register;
            @if r.is_empty() {
                p { "Nothing in this release was withheld or redacted." }
            } @else {
                p { "Counts by reason, signed with the manifest; never which emails or what values." }
                table.headers {
                    @for (reason, n) in &r.messages_withheld { tr { th { "Emails withheld" } td { (n) " (" (reason) ")" } } }
                    @for (kind, n) in &r.messages_redacted { tr { th { "Emails redacted" } td { (n) " (" (kind) ")" } } }
                    @for (kind, n) in &r.spans_masked { tr { th { "Values masked" } td { (n) " (" (kind) ")" } } }
                    @for (kind, n) in &r.attachments_withheld { tr { th { "Attachments withheld" } td { (n) " (" (kind) ")" } } }
                    @if r.raw_sources_withheld > 0 { tr { th { "Raw sources not published" } td { (r.raw_sources_withheld) } } }
                }
            }
            ol.hits { @for e in emails { (email_row(e)) } }
            (pager(&format!("/releases/{}?", m.release), page, pages))
        },
    )
}

fn pager(base: &str, page: usize, pages: usize) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a rel="prev" href={ (base) "page=" (page - 1) } { "← Previous" } }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a rel="next" href={ (base) "page=" (page + 1) } { "Next →" } }
            }
        }
    }
}

fn encode(q: &str) -> String {
    percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub fn search(
    title: &str,
    q: &str,
    sort: Sort,
    page: usize,
    total: u64,
    rows: &[(Hit, Option<String>)],
    dkim_facet: &[(&str, u64)],
) -> String {
    let pages = total.div_ceil(PAGE_SIZE as u64) as usize;
    let body = html! {
        h1 { "Search" }
        p.count role="status" {
            @match total { 0 => "No emails match.", 1 => "1 email matches.", n => { (n) " emails match." } }
        }
        @if total > 0 && !dkim_facet.is_empty() {
            p.facet {
                "DKIM: "
                @for (i, (status, count)) in dkim_facet.iter().enumerate() {
                    @if i > 0 { " · " }
                    @if *count > 0 && !q.contains(&format!("dkim:{status}")) {
                        a href={ "/search?q=" (encode(format!("{q} dkim:{status}").trim())) "&sort=" (sort.name()) } { (status) " " (count) }
                    } @else {
                        (status) " " (count)
                    }
                }
            }
        }
        ol.hits {
            @for (hit, snippet) in rows {
                li {
                    a href={ "/emailid/" (hit.number) } { @if hit.subject.is_empty() { "(no subject)" } @else { (hit.subject) } }
                    div.hit-meta { "#" (hit.number) " · " (show_date(hit.date.as_deref())) " · " (hit.from) }
                    @if let Some(s) = snippet { div.snippet { (PreEscaped(s)) } }
                }
            }
        }
        (pager(&format!("/search?q={}&sort={}&", encode(q), sort.name()), page, pages))
    };
    layout(title, if q.is_empty() { "Search" } else { q }, q, body)
}

pub fn search_error(title: &str, q: &str, e: &QueryError) -> String {
    layout(
        title,
        "Search error",
        q,
        html! {
            div.error role="alert" {
                h1 { "That search could not be read" }
                p { (e.to_string()) }
                pre { (e.pointer(q)) }
                p { "Search syntax: words, \"exact phrases\", from:, to:, cc:, subject:, body:, filename:, after:YYYY-MM-DD, before:, date:2001-05, dkim:pass|fail|unverified|none, -word to exclude, OR, parentheses." }
            }
        },
    )
}

/// Each value once, in first-seen order.
fn distinct(list: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in list {
        if !out.contains(&s.as_str()) {
            out.push(s);
        }
    }
    out
}

fn people(list: &[Person]) -> String {
    list.iter()
        .map(Person::display)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn email(title: &str, m: &PublishedMessage, release: Option<&Manifest>) -> String {
    let subject = if m.subject.is_empty() {
        "(no subject)".to_string()
    } else {
        m.subject.clone()
    };
    let url = format!("/emailid/{}", m.number);
    let body = html! {
        article {
            h1 { (subject) }
            table.headers {
                tr { th { "From" } td { (people(&m.from)) } }
                @if !m.to.is_empty() { tr { th { "To" } td { (people(&m.to)) } } }
                @if !m.cc.is_empty() { tr { th { "Cc" } td { (people(&m.cc)) } } }
                tr { th { "Date" } td { (show_date(m.date.as_deref())) } }
                @if let Some(id) = &m.message_id { tr { th { "Message-ID" } td { code { (id) } } } }
                tr { th { "Email" } td { "#" (m.number) ", release " a href={ "/releases/" (m.release) } { (m.release) } } }
                @if !m.folders.is_empty() { tr { th { "Found in" } td { (m.folders.join(", ")) } } }
                @if !m.charsets.is_empty() { tr { th { "Charset" } td { (distinct(&m.charsets).join(", ")) } } }
                @if !m.defects.is_empty() { tr { th { "Flags" } td.flags { (m.defects.join(", ")) } } }
                @if m.raw_sha256.is_some() {
                    tr { th { "Source" } td { a href={ (url) "/raw" } { "raw email" } @if let Some(size) = m.raw_size { " (" (size) " bytes)" } } }
                } @else {
                    tr { th { "Source" } td { "not published" } }
                }
            }
            @if let Some(r) = &m.redaction {
                p.redaction { (r.sentence()) }
            }
            h2 { "Authenticity (DKIM)" }
            @if m.dkim.is_empty() {
                p { "This email carries no DKIM signature, so where it came from cannot be checked this way." }
            } @else {
                ul.dkim {
                    @for d in &m.dkim { li { (d.sentence()) } }
                }
                p.hit-meta {
                    @if m.redaction.is_some() {
                        "Verified before redaction, on the original bytes; the text shown above was redacted afterwards, so it no longer matches the signature. "
                    } @else {
                        "Verified on the original bytes before release. "
                    }
                    a href={ (url) "/evidence" } { "Download the evidence" }
                    " (raw email, key records, verdicts, and how to check them with dkimpy) or read "
                    a href="/verify" { "how to verify" } "."
                }
            }
            @if let Some(arc) = &m.arc {
                h3 { "Forwarding chain (ARC)" }
                p.arc { (arc.sentence()) }
            }
            @if !m.attachments.is_empty() {
                h2 { "Attachments" }
                ul {
                    @for a in &m.attachments {
                        li {
                            a href={ (url) "/attachments/" (a.index) } download { (a.filename.as_deref().unwrap_or("(unnamed)")) }
                            " — " (a.content_type) ", " (a.size) " bytes"
                        }
                    }
                }
            }
            h2 { "Text" }
            pre.body { (m.text) }
            @if let Some(html) = &m.html {
                h2 { "HTML version (sanitised: no scripts, styles or remote images)" }
                section.html-body { (PreEscaped(html)) }
            }
            details {
                summary { "All headers" }
                pre.body { (m.headers) }
            }
            p.cite {
                "Cite as: " (url) ", email #" (m.number)
                @if let Some(r) = release { ", release " (r.release) " (" (r.published_at) ")" }
                @if let Some(h) = &m.raw_sha256 { ", raw SHA-256 " code { (h) } }
            }
        }
    };
    layout(title, &subject, "", body)
}

pub fn verify(title: &str, public_key: &str, manifests: &[Arc<Manifest>]) -> String {
    layout(
        title,
        "Verify this site",
        "",
        html! {
            h1 { "Check this archive yourself" }
            p { "Nothing here asks you to trust this server. Every release is a signed list of the files it published; every email's DKIM signatures can be checked against the key records shown with it." }
            h2 { "The signing key" }
            p { "Ed25519 public key (hex): " code { (public_key) } }
            p { "As PEM: " a href="/public-key.pem" { "public-key.pem" } ". Compare it with the key the publisher announces elsewhere." }
            h2 { "A release" }
            ol {
                li { "Download a release's manifest and signature (links on each release page, e.g. " a href="/releases/1/manifest.json" { "/releases/1/manifest.json" } " and " a href="/releases/1/manifest.json.sig" { "manifest.json.sig" } ")." }
                li { "Check the signature with standard tools: " pre { "openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin \
        -in manifest.json -sigfile manifest.json.sig" } }
                li { "Check each file it lists: its " code { "sha256" } " must match " code { "sha256sum FILE" } "." }
                li { "Each manifest's " code { "previous" } " is the SHA-256 of the manifest before it: the releases form a chain, so none can be changed or dropped unnoticed." }
                li { "Or run " code { "trove verify SITE" } ", which checks all of this and names the first file that fails." }
            }
            h2 { "An email's DKIM signatures" }
            p { "Each email page says which domain signed it, with which key, and where the key came from. Its " em { "evidence" } " link downloads the raw email, the key records and the verdicts, with a README showing how to check them with dkimpy. Signature expiry (x=) is judged at the email's own date." }
            h2 { "Releases" }
            (release_table(manifests))
        },
    )
}

pub fn not_found() -> String {
    error_page(
        "Not found",
        "There is no published email or page at this address.",
    )
}

pub fn error_page(heading: &str, message: &str) -> String {
    layout(
        "trove",
        heading,
        "",
        html! { h1 { (heading) } p { (message) } },
    )
}
