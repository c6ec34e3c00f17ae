//! HTML pages. maud escapes every value; the only unescaped inserts are sanitised email
//! HTML (cleaned by ammonia at release) and tantivy snippets (escaped text with `<b>`).

use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::sync::Arc;

use trove_site::{Bucket, Manifest, Person, PublishedMessage, QueryError, SearchResults, Sort};

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
.visually-hidden { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
figure.timeline { margin:1rem 0; }
figure.timeline svg { width:100%; height:auto; max-height:9rem; display:block; }
figure.timeline svg a:focus rect, figure.timeline svg a:hover rect { fill:#d9822b; }
figure.timeline figcaption { color:var(--muted); font-size:.85rem; }
div.results { display:grid; grid-template-columns:minmax(0,1fr) 14rem; gap:1.5rem; }
aside.facets h2 { font-size:1rem; margin:.2rem 0; }
aside.facets h3 { font-size:.9rem; margin:.8rem 0 .2rem; color:var(--muted); }
aside.facets ul { list-style:none; padding:0; margin:0; font-size:.9rem; }
aside.facets li { overflow-wrap:anywhere; }
details.fields, details.syntax { margin:.5rem 0; }
form.fields { display:grid; grid-template-columns:max-content minmax(0,20rem); gap:.3rem .6rem; align-items:center; margin:.5rem 0; }
form.fields button { grid-column:2; justify-self:start; }
details.quoted { margin:.3rem 0; }
details.quoted summary { color:var(--muted); cursor:pointer; }
ol.tree { list-style:none; padding:0; }
ol.tree li { padding:.15rem 0; border-left:2px solid var(--line); padding-left:.5rem; }
.via, .placeholder { color:var(--muted); font-size:.85rem; }
article.in-thread { border-top:1px solid var(--line); margin-top:1rem; }
textarea.cite { width:100%; font:inherit; font-size:.9rem; padding:.5rem; }
:focus-visible { outline:3px solid #d9822b; outline-offset:2px; }
@media (max-width: 40rem) {
  div.results { grid-template-columns:minmax(0,1fr); }
  form.fields { grid-template-columns:minmax(0,1fr); }
  form.fields button { grid-column:1; }
  main { padding:.6rem; }
}
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
    layout_with(site_title, page_title, query, None, body)
}

/// A page. `canonical` is its one address (`rel=canonical`), for pages reachable by
/// several (`/thread/7` and `/thread/9` are the same conversation).
fn layout_with(
    site_title: &str,
    page_title: &str,
    query: &str,
    canonical: Option<&str>,
    body: Markup,
) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page_title) " — " (site_title) }
                link rel="stylesheet" href="/style.css";
                link rel="alternate" type="application/atom+xml" title="Releases" href="/releases.atom";
                @if let Some(c) = canonical { link rel="canonical" href=(c); }
            }
            body {
                header.site {
                    a.title href="/" { (site_title) }
                    nav aria-label="Site" { a href="/releases" { "Releases" } a href="/search" { "Search" } a href="/verify" { "Verify" } a href="/api/openapi.json" { "API" } }
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
            label.visually-hidden for="q" { "Search the archive" }
            input #q type="search" name="q" value=(query) placeholder="Search: words, \"phrases\", from:, to:, subject:, after:2001-05, dkim:pass";
            label.visually-hidden for="sort" { "Sort order" }
            select #sort name="sort" {
                @for s in [Sort::Relevance, Sort::Newest, Sort::Oldest] {
                    option value=(s.name()) selected[s == sort] { (s.name()) }
                }
            }
            button type="submit" { "Search" }
        }
    }
}

/// The same search as form fields, for readers who do not write queries.
fn field_form() -> Markup {
    html! {
        details.fields {
            summary { "Search by field" }
            form.fields action="/search" method="get" {
                @for (name, label, hint) in [
                    ("from", "From contains", "e.g. allen"),
                    ("to", "To contains", ""),
                    ("subject", "Subject contains", ""),
                    ("not_from", "Not from", ""),
                    ("since", "Since", "YYYY, YYYY-MM or YYYY-MM-DD"),
                    ("until", "Until", "YYYY, YYYY-MM or YYYY-MM-DD"),
                ] {
                    label for={ "f-" (name) } { (label) }
                    input id={ "f-" (name) } type="text" name=(name) placeholder=(hint);
                }
                label for="f-q" { "Words" }
                input #f-q type="text" name="q";
                button type="submit" { "Search" }
            }
        }
    }
}

pub fn home(title: &str, manifests: &[Arc<Manifest>], months: &[Bucket]) -> String {
    // Numbers given, less the emails withdrawn since (a later manifest withdraws them).
    let given: u64 = manifests.iter().map(|m| m.numbers.count()).sum();
    let withdrawn: u64 = manifests.iter().map(|m| m.withdrawn.len() as u64).sum();
    let total = given.saturating_sub(withdrawn);
    layout(
        title,
        "Home",
        "",
        html! {
            h1 { (title) }
            p { (total) " emails published in " (manifests.len()) " releases." }
            @if !months.is_empty() {
                figure.timeline {
                    (PreEscaped(crate::svg::timeline(months, "")))
                    figcaption { "Emails per month, by the date each was sent; each bar is a link to its month." }
                }
            }
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
                            td {
                                @if m.numbers.count() > 0 { (m.numbers.count()) " (" (m.numbers.first) "–" (m.numbers.last) ")" }
                                @else { "none" }
                                @if !m.withdrawn.is_empty() { "; " (m.withdrawn.len()) " withdrawn" }
                            }
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
                tr { th { "Emails" } td {
                    @if m.numbers.count() > 0 { (m.numbers.count()) " (numbers " (m.numbers.first) " to " (m.numbers.last) ")" }
                    @else { "none added" }
                } }
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
                    @for (reason, n) in &r.messages_withdrawn { tr { th { "Emails withdrawn" } td { (n) " (" (reason) ")" } } }
                }
            }
            @if !m.withdrawn.is_empty() {
                h2 { "Withdrawn after publication" }
                p { "These emails were published by an earlier release and are taken down by this one; their numbers are not reused." }
                table.headers {
                    @for w in &m.withdrawn {
                        tr { th { "Email " (w.number) } td { "from release " (w.release) ": " (w.reason) " (" (w.files.len()) " files removed)" } }
                    }
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

pub(crate) fn encode(q: &str) -> String {
    percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Everything the search page shows.
pub struct SearchView<'a> {
    pub title: &'a str,
    pub query: &'a str,
    pub sort: Sort,
    pub first_page: bool,
    pub results: &'a SearchResults,
    pub rows: &'a [crate::search::Row],
}

/// `/search?q=…` for `q` (and `sort`, unless it is the default).
fn search_href(q: &str, sort: Sort) -> String {
    let mut h = format!("/search?q={}", encode(q.trim()));
    if sort != Sort::Relevance {
        h.push_str("&sort=");
        h.push_str(sort.name());
    }
    h
}

/// The query narrowed by `term`, unless it is already there.
fn narrowed(q: &str, term: &str) -> Option<String> {
    (!q.split_whitespace().any(|w| w == term))
        .then(|| format!("{} {term}", q.trim()).trim().to_string())
}

fn facet_list(v: &SearchView, heading: &str, field: &str, buckets: &[Bucket]) -> Markup {
    html! {
        @if !buckets.is_empty() {
            section.facet aria-label=(heading) {
                h3 { (heading) }
                ul {
                    @for b in buckets {
                        @let term = format!("{field}:{}", b.value);
                        li {
                            @match narrowed(v.query, &term) {
                                Some(q) => a href=(search_href(&q, v.sort)) { (b.value) },
                                None => strong { (b.value) },
                            }
                            " " span.count { (b.count) }
                        }
                    }
                }
            }
        }
    }
}

/// Month counts (`YYYY-MM`, in order) summed by year.
fn years(months: &[Bucket]) -> Vec<Bucket> {
    let mut years: Vec<Bucket> = Vec::new();
    for m in months {
        let y = m.value.get(..4).unwrap_or_default();
        match years.last_mut() {
            Some(b) if b.value == y => b.count += m.count,
            _ => years.push(Bucket {
                value: y.to_string(),
                count: m.count,
            }),
        }
    }
    years
}

pub fn search(v: &SearchView) -> String {
    let total = v.results.total;
    let q = v.query;
    let body = html! {
        h1 { "Search" }
        (field_form())
        p.count role="status" {
            @match total { 0 => "No emails match.", 1 => "1 email matches.", n => { (n) " emails match." } }
            @if !q.trim().is_empty() { " Query: " code { (q) } }
        }
        @if total > 0 {
            p.tools {
                "This search as "
                a href={ "/search.atom?q=" (encode(q)) } { "a feed" } ", "
                a href={ "/search.mbox?q=" (encode(q)) } download { "mbox" } ", "
                a href={ "/search.jsonl?q=" (encode(q)) } download { "JSON lines" } ", "
                a href={ "/search.csv?q=" (encode(q)) } download { "CSV" } " or "
                a href={ "/api/v1/search?q=" (encode(q)) } { "JSON" } " (all results, no limit)."
            }
        }
        div.results {
            div.hits-col {
                @if let Some(f) = &v.results.facets && !f.month.is_empty() {
                    figure.timeline {
                        (PreEscaped(crate::svg::timeline(&f.month, q)))
                        figcaption { "Emails per month; each bar is a link to its month." }
                    }
                }
                ol.hits {
                    @for (hit, snippet) in v.rows {
                        li {
                            a href={ "/emailid/" (hit.number) } { @if hit.subject.is_empty() { "(no subject)" } @else { (hit.subject) } }
                            div.hit-meta { "#" (hit.number) " · " (show_date(hit.date.as_deref())) " · " (hit.from) " · release " (hit.release) }
                            @if let Some(s) = snippet { div.snippet { (PreEscaped(s)) } }
                        }
                    }
                }
                @if v.results.next.is_some() || !v.first_page {
                    nav.pager aria-label="Pages" {
                        @if !v.first_page { a href=(search_href(q, v.sort)) { "← First page" } }
                        @if let Some(next) = &v.results.next {
                            a rel="next" href={ (search_href(q, v.sort)) "&after=" (encode(next)) } { "Next page →" }
                        }
                    }
                }
            }
            @if let Some(f) = &v.results.facets && total > 0 {
                aside.facets aria-label="Narrow the search" {
                    h2 { "Narrow" }
                    (facet_list(v, "Sender's domain", "domain", &f.domain))
                    (facet_list(v, "People", "person", &f.person))
                    (facet_list(v, "Attachments", "filetype", &f.filetype))
                    (facet_list(v, "DKIM", "dkim", &f.dkim))
                    (facet_list(v, "Release", "release", &f.release))
                    (facet_list(v, "Year", "date", &years(&f.month)))
                }
            }
        }
    };
    layout(v.title, if q.is_empty() { "Search" } else { q }, q, body)
}

fn syntax_help() -> Markup {
    html! {
        details.syntax open {
            summary { "How to write a search" }
            dl {
                dt { code { "gas price" } } dd { "both words, anywhere (stemmed: " code { "prices" } " finds " code { "price" } ")" }
                dt { code { "\"natural gas\"" } } dd { "the exact phrase" }
                dt { code { "from:allen to: cc: subject: body:" } } dd { "words in one field" }
                dt { code { "filename:budget attachment:invoice" } } dd { "an attachment's name, or text inside attachments" }
                dt { code { "after:2001-05 before:2001-06-15 date:2000..2001-03" } } dd { "dates: a year, a month or a day (UTC)" }
                dt { code { "has:attachment filetype:pdf" } } dd { "emails with attachments, of a kind" }
                dt { code { "domain:enron.com person:k.allen@enron.com" } } dd { "the sender's domain; an address in From, To or Cc" }
                dt { code { "dkim:pass release:3 thread:42" } } dd { "DKIM status (pass, fail, unverified, none); a release; the conversation of email 42" }
                dt { code { "-word  a OR b  (a OR b) c" } } dd { "exclude, either, group" }
            }
        }
    }
}

pub fn search_error(title: &str, q: &str, e: &QueryError) -> String {
    layout_with(
        title,
        "Search error",
        q,
        None,
        html! {
            div.error role="alert" {
                h1 { "That search could not be read" }
                p { (e.to_string()) }
                pre { (e.pointer(q)) }
                (syntax_help())
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

/// People as links to their pages (those with an address).
fn people(list: &[Person]) -> Markup {
    html! {
        @for (i, p) in list.iter().enumerate() {
            @if i > 0 { ", " }
            @match &p.address {
                Some(a) if crate::conversation::has_person_page(a) => {
                    a href={ "/person/" (encode(&a.trim().to_lowercase())) } { (p.display()) }
                }
                _ => (p.display()),
            }
        }
    }
}

/// Does this line start a quotation of an earlier email that runs to the end?
fn starts_quote(line: &str) -> bool {
    let l = line.trim();
    (l.starts_with("-----") && l.to_ascii_lowercase().contains("original message"))
        || (l.starts_with("On ") && l.ends_with("wrote:"))
}

/// An email's text with quoted parts (`>` lines, and everything after an "Original
/// Message" or "On … wrote:" line) folded away under a summary that says how long they are.
pub fn body_text(text: &str) -> Markup {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks: Vec<(bool, Vec<&str>)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if starts_quote(lines[i]) && i > 0 {
            blocks.push((true, lines[i..].to_vec()));
            break;
        }
        let quoted = lines[i].trim_start().starts_with('>');
        match blocks.last_mut() {
            Some((q, b)) if *q == quoted => b.push(lines[i]),
            _ => blocks.push((quoted, vec![lines[i]])),
        }
        i += 1;
    }
    html! {
        @for (quoted, b) in &blocks {
            @if *quoted && b.len() > 2 {
                details.quoted {
                    summary { "Quoted text (" (b.len()) " lines)" }
                    pre.body { (b.join("\n")) }
                }
            } @else {
                pre.body { (b.join("\n")) }
            }
        }
    }
}

pub fn email(
    title: &str,
    m: &PublishedMessage,
    release: Option<&Manifest>,
    thread: Option<(u64, usize)>,
) -> String {
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
                @if let Some((t, size)) = thread && size > 1 {
                    tr { th { "Conversation" } td { a href={ "/thread/" (t) "#email-" (m.number) } { (size) " emails" } } }
                }
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
                            @if a.kind() == "email" { " — " a href={ (url) "/attachments/" (a.index) "/email" } { "read it as an email" } }
                        }
                    }
                }
            }
            h2 { "Text" }
            (body_text(&m.text))
            @if let Some(html) = &m.html {
                h2 { "HTML version (sanitised: no scripts, styles or remote images)" }
                section.html-body { (PreEscaped(html)) }
            }
            details {
                summary { "All headers" }
                pre.body { (m.headers) }
            }
            h2 { "Cite" }
            label for="citation" { "Copy this citation:" }
            textarea #citation.cite readonly rows="3" {
                (title) ", email #" (m.number) ", “" (subject) "”, " (show_date(m.date.as_deref())) "."
                @if let Some(r) = release { " Release " (r.release) ", published " (r.published_at) "." }
                " " (url)
                @if let Some(h) = &m.raw_sha256 { " (raw SHA-256 " (h) ")" }
            }
        }
    };
    layout_with(title, &subject, "", Some(&url), body)
}

/// The shell steps on /verify that check release `k` with standard tools only (curl,
/// openssl, sha256sum, python3 for reading JSON). A test runs them against a server.
pub fn verify_script(k: u32) -> String {
    let m = format!("{k:06}.json");
    let prev = if k > 1 {
        format!(
            "\n# 3. The chain: this manifest names the SHA-256 of the one before it.\ncurl -fsS -o {p} \"$BASE/site/releases/{p}\"\nsha256sum {p}\ngrep '\"previous\"' {m}\n",
            p = format!("{:06}.json", k - 1)
        )
    } else {
        "\n# 3. The chain: release 1 has no previous manifest; later ones name it.\n".to_string()
    };
    format!(
        "BASE=https://this-site.example   # the address you are reading this page at\n\
         curl -fsS -O \"$BASE/site/public-key.pem\"\n\
         curl -fsS -O \"$BASE/site/releases/{m}\" -O \"$BASE/site/releases/{m}.sig\"\n\
         \n\
         # 1. The key: its fingerprint must match the one the publisher announced.\n\
         openssl pkey -pubin -in public-key.pem -outform DER | tail -c 32 | sha256sum\n\
         \n\
         # 2. The signature over the manifest (prints \"Signature Verified Successfully\").\n\
         openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin -in {m} -sigfile {m}.sig\n\
         {prev}\
         \n\
         # 4. The files: fetch each one the manifest lists and check its SHA-256. A file\n\
         #    withdrawn by a later release is no longer served: it is named, and the\n\
         #    release that withdrew it says why (see the Releases page).\n\
         python3 -c 'import json,sys; [print(f[\"sha256\"]+\"  \"+f[\"path\"]) for f in json.load(open(sys.argv[1]))[\"files\"]]' {m} > {k:06}.sha256\n\
         while read -r sum path; do\n\
         \x20 curl -fsS --create-dirs -o \"$path\" \"$BASE/site/$path\" 2>/dev/null || echo \"$path: not served (withdrawn?)\"\n\
         done < {k:06}.sha256\n\
         sha256sum -c --quiet --ignore-missing {k:06}.sha256 && echo \"release {k}: every file served matches\"\n"
    )
}

pub fn verify(info: &trove_site::SiteInfo, manifests: &[Arc<Manifest>]) -> String {
    // The steps check the latest release that published files (a withdrawal adds none).
    let last = manifests
        .iter()
        .rev()
        .find(|m| !m.files.is_empty())
        .map_or(1, |m| m.release);
    layout(
        &info.title,
        "Verify this site",
        "",
        html! {
            h1 { "Check this archive yourself" }
            p { "Nothing here asks you to trust this server. Every release is a signed list of the files it published, and names the release before it; every email's DKIM signatures can be checked against the key records shown with it." }
            h2 { "The signing key" }
            table.headers {
                tr { th { "Fingerprint" } td { code #fingerprint { (info.fingerprint()) } } }
                tr { th { "Ed25519 key (hex)" } td { code { (info.public_key) } } }
                tr { th { "As PEM" } td { a href="/site/public-key.pem" { "public-key.pem" } } }
            }
            p { "Compare the fingerprint with the one the publisher announces elsewhere (a printed notice, another site, a signed post). A mirror serving this archive shows the same key and fingerprint, or it is not a copy of it." }
            h2 { "A release, with standard tools" }
            p { "The site's signed files are served as they are under " code { "/site/" } " (" a href="/site/site.json" { "site.json" } ", " code { "/site/releases/000001.json" } ", its " code { ".sig" } ", " code { "/site/messages/…" } ", " code { "/site/attachments/…" } "). These steps check release " (last) " with curl, openssl, sha256sum and python3:" }
            pre.body #verify-script { (verify_script(last)) }
            p { "Withdrawn emails (a court order, say) are listed by the release that withdrew them, with the reason; their files are gone, and a later manifest says so." }
            p { "Or run " code { "trove verify SITE" } " on a copy (" code { "trove mirror URL DIR" } " makes one, checking every signature and hash as it copies): it checks all releases and names the first file that fails." }
            h2 { "An email's DKIM signatures" }
            p { "Each email page says which domain signed it, with which key, and where the key came from. Its " em { "evidence" } " link downloads the raw email, the key records and the verdicts, with a README showing how to check them with dkimpy. Signature expiry (x=) is judged at the email's own date." }
            h2 { "Releases" }
            p { "New releases are announced in an " a href="/releases.atom" { "Atom feed" } "." }
            (release_table(manifests))
        },
    )
}

/// The Atom feed of releases (RFC 4287). Ids are built from the key's fingerprint and
/// the release number, so they are the same on every mirror; links are relative to the
/// feed's own address. (maud writes void elements HTML-style, so `link` is given an empty
/// body to stay well-formed XML.)
pub fn releases_atom(info: &trove_site::SiteInfo, manifests: &[Arc<Manifest>]) -> String {
    let fingerprint = info.fingerprint();
    let updated = manifests
        .last()
        .map_or("1970-01-01T00:00:00Z", |m| m.published_at.as_str());
    let body = html! {
        feed xmlns="http://www.w3.org/2005/Atom" {
            title { (info.title) }
            id { "urn:trove:site:" (fingerprint) }
            updated { (updated) }
            link rel="self" href="releases.atom" {}
            link rel="alternate" href="releases" {}
            author { name { (info.title) } }
            @for m in manifests.iter().rev() {
                entry {
                    title { "Release " (m.release) ": " (m.title) }
                    id { "urn:trove:release:" (fingerprint) ":" (m.release) }
                    updated { (m.published_at) }
                    link rel="alternate" href={ "releases/" (m.release) } {}
                    link rel="related" type="application/json" href={ "site/releases/" (format!("{:06}", m.release)) ".json" } {}
                    summary {
                        @if m.numbers.count() > 0 { (m.numbers.count()) " emails (numbers " (m.numbers.first) " to " (m.numbers.last) ")." }
                        @for w in &m.withdrawn { " Email " (w.number) " withdrawn: " (w.reason) "." }
                        " Merkle root " (m.merkle_root) "."
                    }
                }
            }
        }
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{}",
        body.into_string()
    )
}

/// The search page of a static copy: search needs a server.
pub fn static_search(title: &str) -> String {
    layout(
        title,
        "Search",
        "",
        html! {
            h1 { "Search is not part of this copy" }
            p { "This is a static copy of the archive: every email, release and signed file, but no search engine. To search, use the live archive or any mirror of it, or copy the signed files under " a href="/site/site.json" { "site/" } " and run " code { "trove reindex DIR" } " and " code { "trove search DIR QUERY" } " (or " code { "trove serve DIR" } ")." }
            p { "Browse by " a href="/releases" { "release" } " meanwhile." }
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

/// A conversation: its tree (every email and placeholder, with the header that placed
/// it), then its emails in full, in the tree's reading order, a page at a time.
pub fn thread(title: &str, t: &crate::conversation::Thread, page: usize) -> String {
    use crate::conversation::THREAD_PAGE;
    let by_number: std::collections::HashMap<u64, &PublishedMessage> =
        t.emails.iter().map(|e| (e.number, e)).collect();
    let order: Vec<(usize, usize)> = t.tree.roots.iter().flat_map(|&r| t.tree.walk(r)).collect();
    let emails_in_order: Vec<&PublishedMessage> = order
        .iter()
        .filter_map(|(i, _)| by_number.get(&t.tree.nodes[*i].number?).copied())
        .collect();
    let pages = emails_in_order.len().div_ceil(THREAD_PAGE).max(1);
    let page = page.min(pages);
    // Where each email is shown in full: a link in the tree goes to its page.
    let page_of: std::collections::HashMap<u64, usize> = emails_in_order
        .iter()
        .enumerate()
        .map(|(i, e)| (e.number, i / THREAD_PAGE + 1))
        .collect();
    let anchor = |n: u64| match page_of.get(&n) {
        Some(&p) if p != page => format!("/thread/{}?page={p}#email-{n}", t.thread),
        _ => format!("#email-{n}"),
    };
    let first_subject = emails_in_order
        .first()
        .map(|e| e.subject.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("(no subject)");
    let canonical = format!("/thread/{}", t.thread);
    let body = html! {
        h1 { "Conversation: " (first_subject) }
        p.count { (t.emails.len()) " emails"
            @let missing = t.tree.nodes.iter().filter(|n| n.number.is_none()).count();
            @if missing > 0 { ", and " (missing) " referred to that are not in this archive" }
            ". Threaded by the References and In-Reply-To headers only, never by subject." }
        h2 { "Tree" }
        ol.tree {
            @for (i, depth) in &order {
                @let node = &t.tree.nodes[*i];
                li style={ "margin-left:" (depth.min(&12) * 14) "px" } {
                    @match node.number.and_then(|n| by_number.get(&n)) {
                        Some(e) => {
                            a href=(anchor(e.number)) { @if e.subject.is_empty() { "(no subject)" } @else { (e.subject) } }
                            " " span.hit-meta { (e.from_line()) " · " (show_date(e.date.as_deref())) " · #" (e.number) }
                        }
                        None => span.placeholder { "An email not in this archive" @if let Some(id) = &node.message_id { " (" code { (id) } ")" } }
                    }
                    @if let Some(via) = node.via {
                        " " span.via { "← by the " (via.header.name()) " of #" (via.by) }
                    }
                }
            }
        }
        h2 { "Emails" @if pages > 1 { " (page " (page) " of " (pages) ")" } }
        @for e in emails_in_order.iter().skip((page - 1) * THREAD_PAGE).take(THREAD_PAGE) {
            article.in-thread id={ "email-" (e.number) } {
                h3 { a href={ "/emailid/" (e.number) } { @if e.subject.is_empty() { "(no subject)" } @else { (e.subject) } } }
                p.hit-meta { (people(&e.from)) " · " (show_date(e.date.as_deref())) " · #" (e.number) }
                (body_text(&e.text))
            }
        }
        (pager(&format!("/thread/{}?", t.thread), page, pages))
    };
    layout_with(
        title,
        &format!("Conversation: {first_subject}"),
        "",
        Some(&canonical),
        body,
    )
}

pub fn person(title: &str, p: &crate::conversation::PersonSummary) -> String {
    let all = format!("person:{}", p.address);
    let body = html! {
        h1 { (p.names.first().map_or(p.address.as_str(), |n| n.value.as_str())) }
        table.headers {
            tr { th { "Address" } td { code { (p.address) } } }
            @if !p.names.is_empty() {
                tr { th { "Written as" } td { @for (i, n) in p.names.iter().take(8).enumerate() { @if i > 0 { "; " } (n.value) " (" (n.count) ")" } } }
            }
            tr { th { "Emails" } td { a href=(search_href(&all, Sort::Newest)) { (p.total) } } }
            tr { th { "Sent" } td { a href=(search_href(&format!("{all} from:\"{}\"", p.address), Sort::Newest)) { (p.sent) } } }
            tr { th { "Received" } td { a href=(search_href(&format!("{all} -from:\"{}\"", p.address), Sort::Newest)) { (p.received) } } }
            tr { th { "First" } td { (show_date(p.first.as_deref())) } }
            tr { th { "Last" } td { (show_date(p.last.as_deref())) } }
        }
        @if !p.months.is_empty() {
            figure.timeline {
                (PreEscaped(crate::svg::timeline(&p.months, &all)))
                figcaption { "Emails per month with this address." }
            }
        }
        @if !p.correspondents.is_empty() {
            h2 { "Most frequent correspondents" }
            ol {
                @for c in &p.correspondents {
                    li {
                        @if crate::conversation::has_person_page(&c.value) {
                            a href={ "/person/" (encode(&c.value)) } { (c.value) }
                            " — " a href=(search_href(&format!("{all} person:{}", c.value), Sort::Newest)) { (c.count) " emails together" }
                        } @else {
                            (c.value) " — " (c.count) " emails together"
                        }
                    }
                }
            }
        }
    };
    layout_with(
        title,
        &p.address,
        "",
        Some(&format!("/person/{}", encode(&p.address))),
        body,
    )
}

/// The newest emails matching `q`, as Atom (RFC 4287). Ids are built from the key's
/// fingerprint and the email's number, so they are the same on every mirror.
pub fn search_atom(info: &trove_site::SiteInfo, q: &str, emails: &[PublishedMessage]) -> String {
    let fingerprint = info.fingerprint();
    let updated = emails
        .iter()
        .filter_map(|e| e.date.as_deref())
        .max()
        .unwrap_or("1970-01-01T00:00:00Z");
    let body = html! {
        feed xmlns="http://www.w3.org/2005/Atom" {
            title { (info.title) ": " @if q.trim().is_empty() { "all emails" } @else { (q) } }
            id { "urn:trove:search:" (fingerprint) ":" (encode(q.trim())) }
            updated { (updated) }
            link rel="self" href={ "search.atom?q=" (encode(q)) } {}
            link rel="alternate" href={ "search?q=" (encode(q)) } {}
            author { name { (info.title) } }
            @for e in emails {
                entry {
                    title { @if e.subject.is_empty() { "(no subject)" } @else { (e.subject) } }
                    id { "urn:trove:email:" (fingerprint) ":" (e.number) }
                    updated { (e.date.as_deref().unwrap_or("1970-01-01T00:00:00Z")) }
                    author { name { (e.from_line()) } }
                    link rel="alternate" href={ "emailid/" (e.number) } {}
                    summary { (e.text.chars().take(300).collect::<String>()) }
                }
            }
        }
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{}",
        body.into_string()
    )
}

/// An email attached to email `m`, shown as an email.
pub fn attached_email(
    title: &str,
    m: &PublishedMessage,
    a: &trove_site::PublishedAttachment,
    e: &trove_site::AttachedEmail,
) -> String {
    let subject = if e.subject.is_empty() {
        "(no subject)"
    } else {
        e.subject.as_str()
    };
    let url = format!("/emailid/{}", m.number);
    let body = html! {
        article {
            p.hit-meta { "An email attached to " a href=(url) { "email #" (m.number) } " (attachment " (a.index) ", "
                a href={ (url) "/attachments/" (a.index) } download { "download it" } ")." }
            h1 { (subject) }
            table.headers {
                tr { th { "From" } td { (people(&e.from)) } }
                @if !e.to.is_empty() { tr { th { "To" } td { (people(&e.to)) } } }
                @if !e.cc.is_empty() { tr { th { "Cc" } td { (people(&e.cc)) } } }
                tr { th { "Date" } td { (show_date(e.date.as_deref())) } }
                @if let Some(id) = &e.message_id { tr { th { "Message-ID" } td { code { (id) } } } }
                @if !e.defects.is_empty() { tr { th { "Flags" } td.flags { (e.defects.join(", ")) } } }
            }
            @if !e.attachments.is_empty() {
                h2 { "Its attachments" }
                ul { @for (name, ct, size) in &e.attachments { li { (name.as_deref().unwrap_or("(unnamed)")) " — " (ct) ", " (size) " bytes" } } }
                p.hit-meta { "They are inside the attached email; download it to open them." }
            }
            h2 { "Text" }
            (body_text(&e.text))
            @if let Some(h) = &e.html {
                h2 { "HTML version (sanitised: no scripts, styles or remote images)" }
                section.html-body { (PreEscaped(h)) }
            }
        }
    };
    layout_with(
        title,
        subject,
        "",
        Some(&format!("{url}/attachments/{}/email", a.index)),
        body,
    )
}
