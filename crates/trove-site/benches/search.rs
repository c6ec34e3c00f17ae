//! Search latency on a real site: the first page of each query of a fixed set, p50 and
//! p99, with and without facets.
//!
//!     TROVE_BENCH_SITE=/path/to/site \
//!     TROVE_BENCH_QUERIES=/path/to/corpus/manifest.json \
//!     cargo bench -p trove-site --bench search
//!
//! The queries are the abstract list `../shared/bench/gen_corpus.py` writes into its
//! manifest (the same list the peers script runs against notmuch, mu and public-inbox),
//! written in trove's language. Each query runs `TROVE_BENCH_ROUNDS` times (default 20)
//! after one warm-up run; the index is memory-mapped and warm, as on a serving machine.
//! Facets counted by one run are kept for the next ([`SearchIndex::forget_facets`]):
//! the runs with facets forget them first, so that each counts its own.

use std::time::Instant;

use trove_site::{SearchIndex, SearchRequest, Site, Sort};

/// One abstract query of the manifest in trove's language.
fn translate(q: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for c in q["clauses"].as_array().into_iter().flatten() {
        let v = &c["v"];
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        parts.push(match c["t"].as_str().unwrap_or_default() {
            "word" => s(v),
            "phrase" => format!(
                "\"{}\"",
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(s)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            "date" => format!("date:{}..{}", s(&v[0]), s(&v[1])),
            "not" => format!("-{}", s(v)),
            field => format!("{field}:{}", s(v)),
        });
    }
    parts.join(" ")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let (Ok(site), Ok(queries)) = (
        std::env::var("TROVE_BENCH_SITE"),
        std::env::var("TROVE_BENCH_QUERIES"),
    ) else {
        eprintln!(
            "set TROVE_BENCH_SITE (a released site) and TROVE_BENCH_QUERIES (gen_corpus.py's manifest.json); see the file's doc"
        );
        return;
    };
    let rounds: usize = std::env::var("TROVE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let site = Site::open(std::path::Path::new(&site)).expect("a site");
    let max = site.last_number().expect("manifests");
    let index = SearchIndex::open(&site.index_dir()).expect("an index");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&queries).expect("the manifest")).expect("JSON");
    let list: Vec<(String, String)> = manifest["queries"]
        .as_array()
        .expect("a query list")
        .iter()
        .map(|q| (q["id"].as_str().unwrap_or("?").to_string(), translate(q)))
        .collect();
    println!(
        "site: {max} emails; {} queries x {rounds} rounds",
        list.len()
    );
    for facets in [0, 8] {
        let mut all = Vec::new();
        println!(
            "\nfirst page (20 hits){}:",
            if facets > 0 { " with facets" } else { "" }
        );
        println!(
            "{:<24} {:>9} {:>9} {:>9}  query",
            "id", "hits", "p50 ms", "max ms"
        );
        for (id, q) in &list {
            let request = SearchRequest {
                sort: Sort::Relevance,
                limit: 20,
                facets,
                ..SearchRequest::new(q, max)
            };
            let total = index.run(&request).expect("query runs").total;
            let mut times = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                index.forget_facets();
                let t = Instant::now();
                let r = index.run(&request).expect("query runs");
                std::hint::black_box(r);
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{id:<24} {total:>9} {:>9.2} {:>9.2}  {q}",
                percentile(&times, 0.5),
                times[times.len() - 1]
            );
            all.extend(times);
        }
        all.sort_by(|a, b| a.total_cmp(b));
        println!(
            "ALL{}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} runs",
            if facets > 0 { " (facets)" } else { "" },
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            all[all.len() - 1],
            all.len()
        );
    }
}
