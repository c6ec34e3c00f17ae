//! The reader's archive end to end, on a real mailing-list archive served by `trove serve`:
//! threads built from headers and only from released emails, the JSON API against the
//! OpenAPI document (schemathesis), and exports, feeds and people pages that agree with
//! the search they come from.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use common::{Server, corpus, p, run};
use serde_json::Value;

/// A workspace with the usrp-users list archive (300 emails) ingested, and nothing
/// released yet: (temporary directory, workspace).
fn list_workspace() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    run(&["init", p(&ws)]);
    run(&[
        "ingest",
        p(&ws),
        p(&corpus("lists/usrp-users-first300.mbox")),
    ]);
    (tmp, ws)
}

fn json(server: &Server, path: &str) -> (u16, Value) {
    let (status, body) = server.get(path);
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, v)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The published emails' identifiers, read from the site's JSON files.
fn published(site: &Path) -> BTreeMap<u64, Value> {
    common::site_files(site)
        .into_iter()
        .filter(|(name, _)| name.contains("/messages/") && name.ends_with(".json"))
        .map(|(_, bytes)| {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            (v["number"].as_u64().unwrap(), v)
        })
        .collect()
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Checks the threads the server gives against the headers, independently of trove's
/// threading code: two emails share a thread exactly when a chain of Message-ID,
/// In-Reply-To and References links joins them.
fn check_threads(server: &Server, emails: &BTreeMap<u64, Value>) -> BTreeMap<u64, Vec<u64>> {
    // Union-find over identifiers, written here from scratch.
    let mut parent: HashMap<String, String> = HashMap::new();
    fn find(parent: &mut HashMap<String, String>, x: &str) -> String {
        let p = parent
            .entry(x.to_string())
            .or_insert_with(|| x.to_string())
            .clone();
        if p == x {
            return p;
        }
        let root = find(parent, &p);
        parent.insert(x.to_string(), root.clone());
        root
    }
    for (n, e) in emails {
        let me = e["message_id"]
            .as_str()
            .map_or(format!("#{n}"), str::to_string);
        let refs = ids(e, "references");
        let named = if refs.is_empty() {
            ids(e, "in_reply_to")
        } else {
            refs
        };
        for r in named {
            let (a, b) = (find(&mut parent, &me), find(&mut parent, &r));
            parent.insert(a, b);
        }
    }
    let mut expected: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (n, e) in emails {
        let me = e["message_id"]
            .as_str()
            .map_or(format!("#{n}"), str::to_string);
        expected
            .entry(find(&mut parent, &me))
            .or_default()
            .insert(*n);
    }
    let mut threads: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for group in expected.values() {
        let first = *group.iter().next().unwrap();
        let (status, t) = json(server, &format!("/api/v1/threads/{first}"));
        assert_eq!(status, 200, "{t}");
        let got: BTreeSet<u64> = t["emails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["number"].as_u64().unwrap())
            .collect();
        assert_eq!(&got, group, "thread of email {first}");
        assert_eq!(t["thread"].as_u64(), Some(first));
        // Every link names a header of the email that made it, and that header names
        // the parent's Message-ID.
        let nodes = t["tree"]["nodes"].as_array().unwrap();
        for node in nodes {
            let Some(via) = node.get("via") else { continue };
            let by = via["by"].as_u64().unwrap();
            let header = match via["header"].as_str().unwrap() {
                "References" => "references",
                "In-Reply-To" => "in_reply_to",
                other => panic!("unknown header {other}"),
            };
            let parent_node = &nodes[node["parent"].as_u64().unwrap() as usize];
            let parent_id = parent_node["message_id"].as_str().unwrap();
            assert!(
                ids(&emails[&by], header).iter().any(|i| i == parent_id),
                "email {by}'s {header} does not name {parent_id}"
            );
        }
        threads.insert(first, got.into_iter().collect());
    }
    threads
}

#[test]
fn threads_come_from_headers_and_only_from_released_emails() {
    let (_tmp, ws) = list_workspace();
    let site = ws.join("site");
    run(&["release", p(&ws), "--next", "150", "--title", "First half"]);
    let server = Server::start(&site);
    let first = published(&site);
    assert_eq!(first.len(), 150);
    let threads = check_threads(&server, &first);
    let mut sizes: Vec<usize> = threads.values().map(Vec::len).collect();
    sizes.sort();
    assert!(
        sizes.iter().filter(|s| **s > 1).count() >= 10,
        "a list archive has conversations: {sizes:?}"
    );
    for members in threads.values() {
        assert!(members.iter().all(|n| *n <= 150), "only released emails");
    }

    run(&["release", p(&ws), "--all", "--title", "Second half"]);
    std::thread::sleep(std::time::Duration::from_millis(2500)); // the server looks every 2 s
    let all = published(&site);
    assert_eq!(all.len(), 300);
    let after = check_threads(&server, &all);
    let spanning = after
        .values()
        .filter(|m| m.iter().any(|n| *n <= 150) && m.iter().any(|n| *n > 150))
        .count();
    assert!(spanning > 0, "a conversation continued in release 2");

    // The page shows the tree, every email inline, and placeholders for missing parents.
    let (biggest, members) = after.iter().max_by_key(|(_, m)| m.len()).unwrap();
    let (status, body) = server.get(&format!("/thread/{}", members[members.len() - 1]));
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    // Long threads are paged, 25 emails in full to a page; the tree is on every page.
    let mut inline = String::new();
    for page in 1..=members.len().div_ceil(25) {
        let (_, b) = server.get(&format!("/thread/{biggest}?page={page}"));
        inline.push_str(&String::from_utf8(b).unwrap());
    }
    for n in members {
        assert!(
            inline.contains(&format!("id=\"email-{n}\"")),
            "email {n} inline"
        );
        assert!(
            body.contains(&format!("#email-{n}\"")),
            "email {n} in the tree"
        );
    }
    assert!(body.contains(&format!("rel=\"canonical\" href=\"/thread/{biggest}\"")));
    assert!(body.contains("by the References of") || body.contains("by the In-Reply-To of"));
    let (_, t) = json(&server, &format!("/api/v1/threads/{biggest}"));
    let placeholders = t["tree"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["number"].is_null())
        .count();
    assert_eq!(
        body.matches("An email not in this archive").count(),
        placeholders
    );
    // thread:N searches the same set.
    let (_, r) = json(
        &server,
        &format!("/api/v1/search?q=thread:{}&limit=100", members[0]),
    );
    assert_eq!(r["total"].as_u64(), Some(members.len() as u64));
}

#[test]
fn api_exports_feeds_and_people_agree_with_search() {
    let (tmp, ws) = list_workspace();
    let site = ws.join("site");
    run(&["release", p(&ws), "--all"]);
    let server = Server::start(&site);

    for q in [
        "",
        "uhd",
        "\"usrp b210\"",
        "from:ettus -uhd",
        "has:attachment",
        "date:2017",
    ] {
        let (status, api) = json(&server, &format!("/api/v1/search?q={}", enc(q)));
        assert_eq!(status, 200, "{q}: {api}");
        let total = api["total"].as_u64().unwrap();
        // The CLI agrees.
        let out = run(&["search", p(&site), q, "--json", "--limit", "1"]);
        let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(cli["total"].as_u64(), Some(total), "{q}");
        // The page says the same.
        let (_, page) = server.get(&format!("/search?q={}", enc(q)));
        let page = String::from_utf8(page).unwrap();
        let said = match total {
            0 => "No emails match.".to_string(),
            1 => "1 email matches.".to_string(),
            n => format!("{n} emails match."),
        };
        assert!(page.contains(&said), "{q}: {said}");
        // A cursor walk of small pages sees every hit once.
        let mut seen = BTreeSet::new();
        let mut after = String::new();
        loop {
            let (_, r) = json(
                &server,
                &format!(
                    "/api/v1/search?q={}&limit=13&facets=false&after={}",
                    enc(q),
                    enc(&after)
                ),
            );
            for h in r["hits"].as_array().unwrap() {
                assert!(seen.insert(h["number"].as_u64().unwrap()), "{q}: twice");
            }
            match r["next"].as_str() {
                Some(n) => after = n.to_string(),
                None => break,
            }
        }
        assert_eq!(seen.len() as u64, total, "{q}");
        // Exports hold every hit.
        let (_, csv) = server.get(&format!("/search.csv?q={}", enc(q)));
        let rows = csv::Reader::from_reader(csv.as_slice()).records().count();
        assert_eq!(rows as u64, total, "{q}: csv");
        let (_, jsonl) = server.get(&format!("/search.jsonl?q={}", enc(q)));
        let numbers: BTreeSet<u64> = jsonl
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice::<Value>(l).unwrap()["number"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(numbers, seen, "{q}: jsonl");
        let (_, mbox) = server.get(&format!("/search.mbox?q={}", enc(q)));
        let mbox_path = tmp.path().join("search.mbox");
        std::fs::write(&mbox_path, &mbox).unwrap();
        let counted = std::process::Command::new("python3")
            .args([
                "-c",
                "import mailbox,sys; print(len(mailbox.mbox(sys.argv[1])))",
                p(&mbox_path),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&counted.stdout).trim(),
            total.to_string(),
            "{q}: Python's mailbox reads every email of the mbox export"
        );
        // The feed has the newest 50.
        let (_, feed) = server.get(&format!("/search.atom?q={}", enc(q)));
        let feed_path = tmp.path().join("feed.xml");
        std::fs::write(&feed_path, &feed).unwrap();
        let entries = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys,xml.etree.ElementTree as E; print(len(E.parse(sys.argv[1]).getroot().findall('{http://www.w3.org/2005/Atom}entry')))",
                p(&feed_path),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&entries.stdout).trim(),
            total.min(50).to_string(),
            "{q}: feed entries ({})",
            String::from_utf8_lossy(&entries.stderr)
        );
    }

    // Facets narrow: each value's count is the total of the narrowed search.
    let (_, api) = json(&server, "/api/v1/search?q=uhd");
    for (facet, field) in [
        ("domain", "domain"),
        ("person", "person"),
        ("release", "release"),
        ("dkim", "dkim"),
    ] {
        for b in api["facets"][facet].as_array().unwrap().iter().take(3) {
            let value = b["value"].as_str().unwrap();
            let (_, r) = json(
                &server,
                &format!("/api/v1/search?q={}", enc(&format!("uhd {field}:{value}"))),
            );
            assert_eq!(r["total"], b["count"], "{facet} {value}");
        }
    }
    for b in api["facets"]["month"].as_array().unwrap().iter().take(3) {
        let (_, r) = json(
            &server,
            &format!(
                "/api/v1/search?q={}",
                enc(&format!("uhd date:{}", b["value"].as_str().unwrap()))
            ),
        );
        assert_eq!(r["total"], b["count"], "month {}", b["value"]);
    }

    // People: counts agree with the searches they link to.
    let top = api["facets"]["person"][1]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, person) = json(&server, &format!("/api/v1/people/{}", enc(&top)));
    assert_eq!(status, 200, "{person}");
    let (_, all) = json(
        &server,
        &format!("/api/v1/search?q={}&limit=0", enc(&format!("person:{top}"))),
    );
    assert_eq!(person["total"], all["total"]);
    assert_eq!(
        person["sent"].as_u64().unwrap() + person["received"].as_u64().unwrap(),
        all["total"].as_u64().unwrap()
    );
    let (status, page) = server.get(&format!("/person/{}", enc(&top)));
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("Most frequent correspondents"));
    assert_eq!(server.get("/person/nobody%40nowhere.invalid").0, 404);

    // Errors are JSON and say where.
    let (status, e) = json(&server, "/api/v1/search?q=%22open");
    assert_eq!(status, 400);
    assert_eq!(e["column"], 1);
    assert!(e["error"].as_str().unwrap().contains("never closed"));
    let (status, e) = json(&server, "/api/v1/search?limit=1000");
    assert_eq!(status, 400, "{e}");
    let (status, _) = json(&server, "/api/v1/emails/100000");
    assert_eq!(status, 404);
    let (status, _) = json(&server, "/api/v1/nothing-here");
    assert_eq!(status, 404);
}

#[test]
fn the_openapi_document_matches_real_responses() {
    let have = std::process::Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have schemathesis (.ci/run installs it from PyPI)"
        );
        eprintln!("skipped: schemathesis is not installed (pip install schemathesis)");
        return;
    }
    let (tmp, ws) = list_workspace();
    run(&["release", p(&ws), "--next", "250"]);
    run(&["withdraw", p(&ws), "7", "--reason", "test"]);
    let server = Server::start(&ws.join("site"));
    // Every check but one: `positive_data_acceptance` sends query strings that the schema
    // allows (any string) and expects 2xx, but a query is a sentence of the search
    // language and an unreadable one is a 400 by design.
    let out = std::process::Command::new("schemathesis")
        .args([
            "run",
            &format!("http://127.0.0.1:{}/api/openapi.json", server.port),
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "60",
            "--workers",
            "2",
            "--seed",
            "1",
        ])
        .env("NO_COLOR", "1")
        // schemathesis keeps a cache where it runs: not in the repository.
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found responses that do not match the OpenAPI document:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}
