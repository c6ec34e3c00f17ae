//! The search engine on synthetic emails: cursor paging walks every hit once in order,
//! facets count what a brute-force count says, and the language features (exact fields,
//! attachment text, stemming, accent folding, CJK) find what they should and nothing else.

use std::collections::{BTreeMap, HashSet};

use trove_site::{
    Person, PublishedAttachment, PublishedDkim, PublishedMessage, SearchIndex, SearchRequest, Sort,
    dkim_status,
};

fn person(name: &str, address: &str) -> Person {
    Person {
        name: Some(name.into()),
        address: Some(address.into()),
    }
}

fn message(number: u64, subject: &str, text: &str) -> PublishedMessage {
    PublishedMessage {
        format: 1,
        number,
        release: 1 + (number % 3) as u32,
        message_id: Some(format!("<{number}@example.com>")),
        date: Some("2001-05-14T09:10:00-07:00".into()),
        // Ten distinct dates over two years: many ties, which the cursor must break.
        timestamp: Some(978_307_200 + (number % 10) as i64 * 6_000_000),
        from: vec![person(
            "Sender",
            &format!(
                "s{}@{}",
                number % 4,
                ["enron.com", "aol.com"][number as usize % 2]
            ),
        )],
        to: vec![person("Reader", &format!("r{}@enron.com", number % 5))],
        cc: vec![],
        subject: subject.into(),
        in_reply_to: vec![],
        references: vec![],
        headers: String::new(),
        text: text.into(),
        html: None,
        attachments: vec![],
        folders: vec![],
        charsets: vec![],
        defects: vec![],
        raw_sha256: None,
        raw_size: None,
        dkim: vec![],
        arc: None,
        redaction: None,
    }
}

fn attachment(name: &str, content_type: &str) -> PublishedAttachment {
    PublishedAttachment {
        index: 1,
        filename: Some(name.into()),
        content_type: content_type.into(),
        size: 10,
        sha256: "00".repeat(32),
    }
}

fn corpus() -> Vec<PublishedMessage> {
    (1..=250)
        .map(|n| {
            let mut m = message(
                n,
                &format!("Report {n}"),
                if n % 3 == 0 {
                    "The gas pipeline contract was signed."
                } else {
                    "Lunch on Friday?"
                },
            );
            if n % 7 == 0 {
                m.attachments = vec![attachment("q3.pdf", "application/pdf")];
            }
            // Some signed, some failing, the rest unsigned: facets count three statuses.
            let verdict = match n % 5 {
                1 => Some("pass"),
                2 => Some("fail"),
                _ => None,
            };
            m.dkim = verdict.map(dkim).into_iter().collect();
            m
        })
        .collect()
}

fn dkim(verdict: &str) -> PublishedDkim {
    PublishedDkim {
        domain: "enron.com".into(),
        selector: "s1".into(),
        algorithm: "rsa-sha256".into(),
        verdict: verdict.into(),
        reason: String::new(),
        key_bits: Some(2048),
        body_length_limit: None,
        body_length: None,
        weak: None,
        key: None,
    }
}

fn index_of(messages: &[PublishedMessage], texts: &dyn Fn(u64) -> Vec<String>) -> SearchIndex {
    let index = SearchIndex::in_ram().unwrap();
    let mut w = index.writer().unwrap();
    for m in messages {
        index.add(&w, m, &texts(m.number)).unwrap();
    }
    w.commit().unwrap();
    index.reload().unwrap();
    index
}

fn numbers(index: &SearchIndex, q: &str) -> Vec<u64> {
    let r = index.search(q, Sort::Oldest, 0, 10_000, u64::MAX).unwrap();
    let mut n: Vec<u64> = r.hits.iter().map(|h| h.number).collect();
    n.sort();
    n
}

#[test]
fn cursor_pages_visit_every_hit_once_in_order() {
    let messages = corpus();
    let index = index_of(&messages, &|_| Vec::new());
    let date = |n: u64| messages[n as usize - 1].timestamp.unwrap();
    for (q, sort) in [
        ("", Sort::Newest),
        ("", Sort::Oldest),
        ("gas", Sort::Relevance),
        ("gas OR lunch", Sort::Relevance),
        ("-gas", Sort::Newest),
    ] {
        let expected = index.search(q, sort, 0, 10_000, u64::MAX).unwrap();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let r = index
                .run(&SearchRequest {
                    sort,
                    after: after.as_deref(),
                    limit: 7,
                    ..SearchRequest::new(q, u64::MAX)
                })
                .unwrap();
            assert_eq!(r.total, expected.total, "{q} {sort:?}");
            assert!(r.hits.len() <= 7);
            seen.extend(r.hits.iter().map(|h| h.number));
            pages += 1;
            match r.next {
                Some(n) => after = Some(n),
                None => break,
            }
            assert!(pages < 100, "paging does not end for {q:?}");
        }
        let distinct: HashSet<u64> = seen.iter().copied().collect();
        assert_eq!(distinct.len(), seen.len(), "{q} {sort:?}: a hit came twice");
        assert_eq!(
            seen.len() as u64,
            expected.total,
            "{q} {sort:?}: hits missed"
        );
        // The same order as one big page.
        let one_page: Vec<u64> = expected.hits.iter().map(|h| h.number).collect();
        assert_eq!(seen, one_page, "{q} {sort:?}");
        if sort == Sort::Newest {
            assert!(seen.windows(2).all(|w| date(w[0]) >= date(w[1])));
        }
        if sort == Sort::Oldest {
            assert!(seen.windows(2).all(|w| date(w[0]) <= date(w[1])));
        }
    }
    // A cursor from another sort order, or made up, is refused with a message.
    let r = index
        .run(&SearchRequest {
            sort: Sort::Newest,
            after: Some("oldest.0.1.2"),
            ..SearchRequest::new("", u64::MAX)
        })
        .unwrap_err();
    assert!(r.to_string().contains("cursor"), "{r}");
}

/// The key a relevance cursor states: (score, number), from `relevance.BITS.0.!N`.
fn relevance_key(cursor: &str) -> (f32, u64) {
    let parts: Vec<&str> = cursor.split('.').collect();
    assert_eq!(parts[0], "relevance", "{cursor}");
    let score = f32::from_bits(parts[1].parse::<u32>().unwrap());
    (score, !parts[3].parse::<i64>().unwrap() as u64)
}

/// By relevance, hits come by score, equal scores by the lower number, whatever the
/// segments and the order the emails were indexed in; a page of any size is the start
/// of the whole order. Walked one hit per page, each cursor states the hit's key: the
/// keys must fall strictly and the walk must see every match.
#[test]
fn relevance_ranks_by_score_then_lower_number() {
    let messages: Vec<PublishedMessage> = (1..=120u64)
        .map(|n| {
            // Scores vary with how often "gas" comes and how long the text is, in
            // four groups of 30 equal scores, about 10 of each per segment.
            let text = format!(
                "{} {}",
                vec!["gas"; (n % 2 + 1) as usize].join(" "),
                vec!["pipeline"; (n % 3 / 2 * 3) as usize].join(" ")
            );
            message(n, &format!("Report {n}"), &text)
        })
        .collect();
    let index = SearchIndex::in_ram().unwrap();
    let mut w = index.writer().unwrap();
    for (i, k) in (0..120u64).map(|i| (i, i * 37 % 120)).collect::<Vec<_>>() {
        index.add(&w, &messages[k as usize], &[]).unwrap();
        if i % 40 == 39 {
            w.commit().unwrap();
        }
    }
    index.reload().unwrap();
    let whole: Vec<u64> = index
        .search("gas", Sort::Relevance, 0, 10_000, u64::MAX)
        .unwrap()
        .hits
        .iter()
        .map(|h| h.number)
        .collect();
    assert_eq!(whole.len(), 120);
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let r = index
            .run(&SearchRequest {
                sort: Sort::Relevance,
                after: after.as_deref(),
                limit: 1,
                ..SearchRequest::new("gas", u64::MAX)
            })
            .unwrap();
        let Some(next) = r.next else { break };
        let (score, number) = relevance_key(&next);
        assert_eq!(r.hits[0].number, number);
        keys.push((score, number));
        after = Some(next);
    }
    // The last hit has no next page, so its key is not stated.
    assert_eq!(keys.len(), 119);
    for pair in keys.windows(2) {
        let ((s1, n1), (s2, n2)) = (pair[0], pair[1]);
        assert!(s1 > s2 || (s1 == s2 && n1 < n2), "{pair:?} out of order");
    }
    assert!(
        keys.windows(2).any(|p| p[0].0 == p[1].0),
        "the corpus has ties"
    );
    let walked: Vec<u64> = keys.iter().map(|k| k.1).collect();
    assert_eq!(walked[..], whole[..119]);
    for limit in [1, 2, 7, 30, 119, 500] {
        let page: Vec<u64> = index
            .search("gas", Sort::Relevance, 0, limit, u64::MAX)
            .unwrap()
            .hits
            .iter()
            .map(|h| h.number)
            .collect();
        assert_eq!(page[..], whole[..limit.min(120)], "limit {limit}");
    }
}

/// The facets of `q` as a brute-force count over `messages` says they are, for the
/// hits the index returns (every value: the corpus has fewer than the size asked).
fn check_facets(index: &SearchIndex, messages: &[PublishedMessage], q: &str) {
    let r = index
        .run(&SearchRequest {
            limit: 0,
            facets: 100,
            ..SearchRequest::new(q, u64::MAX)
        })
        .unwrap();
    let hits: HashSet<u64> = numbers(index, q).into_iter().collect();
    let matching: Vec<&PublishedMessage> = messages
        .iter()
        .filter(|m| hits.contains(&m.number))
        .collect();
    assert_eq!(r.total, matching.len() as u64, "{q}");
    let f = r.facets.unwrap();
    let mut domain: BTreeMap<String, u64> = BTreeMap::new();
    let mut release: BTreeMap<String, u64> = BTreeMap::new();
    let mut person: BTreeMap<String, u64> = BTreeMap::new();
    let mut month: BTreeMap<String, u64> = BTreeMap::new();
    let mut dkim: BTreeMap<String, u64> = BTreeMap::new();
    for m in &matching {
        *dkim.entry(dkim_status(&m.dkim).into()).or_default() += 1;
        if let Some(a) = m.from.first().and_then(|p| p.address.clone()) {
            *domain
                .entry(a.split('@').nth(1).unwrap().into())
                .or_default() += 1;
            *person.entry(a).or_default() += 1;
        }
        *release.entry(m.release.to_string()).or_default() += 1;
        *person.entry(m.to[0].address.clone().unwrap()).or_default() += 1;
        if let Some(t) = m.timestamp {
            let d = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
            *month
                .entry(format!("{:04}-{:02}", d.year(), d.month() as u8))
                .or_default() += 1;
        }
    }
    let got = |b: &[trove_site::Bucket]| -> BTreeMap<String, u64> {
        b.iter().map(|b| (b.value.clone(), b.count)).collect()
    };
    assert_eq!(got(&f.domain), domain, "{q}");
    assert_eq!(got(&f.release), release, "{q}");
    assert_eq!(got(&f.person), person, "{q}");
    assert_eq!(got(&f.month), month, "{q}");
    let months: Vec<&String> = f.month.iter().map(|b| &b.value).collect();
    assert!(months.windows(2).all(|w| w[0] < w[1]), "months in order");
    for list in [&f.domain, &f.person, &f.release] {
        assert!(
            list.windows(2).all(|w| w[0].count > w[1].count
                || (w[0].count == w[1].count && w[0].value < w[1].value)),
            "{q}: biggest first, ties in order: {list:?}"
        );
    }
    let pdfs = matching
        .iter()
        .filter(|m| !m.attachments.is_empty())
        .count() as u64;
    assert_eq!(
        got(&f.filetype).get("pdf").copied().unwrap_or(0),
        pdfs,
        "{q}"
    );
    assert_eq!(got(&f.dkim), dkim, "{q}");
}

#[test]
fn facets_count_what_brute_force_counts() {
    let messages = corpus();
    let index = index_of(&messages, &|_| Vec::new());
    for q in ["", "gas", "has:attachment", "-domain:aol.com"] {
        check_facets(&index, &messages, q);
    }
}

/// The counter reads each segment's columns once and keeps them: they must stay true
/// when emails have no date or sender (columns with gaps), when a withdrawal deletes an
/// email from a segment already read, and when segments are merged into a new one.
#[test]
fn facets_stay_true_across_segments_withdrawals_and_merges() {
    let mut messages = corpus();
    for m in &mut messages {
        if m.number % 11 == 0 {
            m.timestamp = None;
        }
        if m.number % 13 == 0 {
            m.from.clear();
        }
    }
    let index = SearchIndex::in_ram().unwrap();
    let mut w = index.writer().unwrap();
    for part in messages.chunks(90) {
        for m in part {
            index.add(&w, m, &[]).unwrap();
        }
        w.commit().unwrap();
    }
    index.reload().unwrap();
    let queries = ["", "gas", "has:attachment", "-domain:aol.com"];
    for q in queries {
        check_facets(&index, &messages, q);
    }
    for gone in [3, 91, 250] {
        index.delete_number(&w, gone);
        messages.retain(|m| m.number != gone);
    }
    w.commit().unwrap();
    index.reload().unwrap();
    for q in queries {
        check_facets(&index, &messages, q);
    }
    let segments = w.index().searchable_segment_ids().unwrap();
    assert_eq!(segments.len(), 3, "one segment per commit");
    w.merge(&segments).wait().unwrap();
    w.commit().unwrap();
    index.reload().unwrap();
    for q in queries {
        check_facets(&index, &messages, q);
    }
}

/// Facets are counted once per (snapshot, signed numbers, size, query) and kept: a page
/// after the first, or a second reader, must still see what is true now, not what was
/// true when they were first counted.
#[test]
fn kept_facets_follow_new_emails_and_the_signed_cap() {
    let messages = corpus();
    let index = index_of(&messages[..100], &|_| Vec::new());
    let facets = |max: u64| {
        let r = index
            .run(&SearchRequest {
                limit: 5,
                facets: 8,
                ..SearchRequest::new("gas", max)
            })
            .unwrap();
        let f = r.facets.unwrap();
        (r.total, f.release.iter().map(|b| b.count).sum::<u64>())
    };
    let gas_up_to = |n: u64| (1..=n).filter(|n| n % 3 == 0).count() as u64;
    assert_eq!(facets(u64::MAX), (gas_up_to(100), gas_up_to(100)));
    // The same question again is answered from what was kept, and agrees.
    assert_eq!(facets(u64::MAX), (gas_up_to(100), gas_up_to(100)));
    // Fewer signed numbers: fewer emails, and their facets with them.
    assert_eq!(facets(50), (gas_up_to(50), gas_up_to(50)));
    // More emails in a new commit: counted again.
    let mut w = index.writer().unwrap();
    for m in &messages[100..] {
        index.add(&w, m, &[]).unwrap();
    }
    w.commit().unwrap();
    index.reload().unwrap();
    assert_eq!(facets(u64::MAX), (gas_up_to(250), gas_up_to(250)));
}

#[test]
fn exact_fields_and_attachment_text() {
    let messages = corpus();
    let index = index_of(&messages, &|n| {
        if n == 14 {
            vec!["Invoice 4711 for pipeline capacity".into()]
        } else {
            Vec::new()
        }
    });
    let with_pdf: Vec<u64> = (1..=250).filter(|n| n % 7 == 0).collect();
    assert_eq!(numbers(&index, "has:attachment"), with_pdf);
    assert_eq!(numbers(&index, "filetype:pdf"), with_pdf);
    assert_eq!(numbers(&index, "filetype:PDF"), with_pdf);
    assert!(numbers(&index, "filetype:word").is_empty());
    let aol: Vec<u64> = (1..=250).filter(|n| n % 2 == 1).collect();
    assert_eq!(numbers(&index, "domain:aol.com"), aol);
    let r2: Vec<u64> = (1..=250).filter(|n| n % 5 == 2).collect();
    assert_eq!(numbers(&index, "person:R2@Enron.com"), r2);
    let rel: Vec<u64> = (1..=250).filter(|n| n % 3 == 1).collect();
    assert_eq!(numbers(&index, "release:2"), rel);
    assert_eq!(numbers(&index, "attachment:4711"), [14]);
    assert_eq!(
        numbers(&index, "4711"),
        [14],
        "bare words search attachments too"
    );
    assert!(numbers(&index, "body:4711").is_empty());
    assert!(numbers(&index, "subject:4711").is_empty());
}

#[test]
fn stems_accents_and_cjk() {
    let mut messages = vec![
        message(
            1,
            "Pipeline",
            "We signed the contracts yesterday and the pricing is final.",
        ),
        message(
            2,
            "Verträge",
            "Die Verträge für die Leitung wurden gestern unterschrieben, und der Preis ist endgültig festgelegt worden.",
        ),
        message(
            3,
            "Réunion",
            "La réunion à Zürich est reportée à la semaine prochaine, merci de confirmer votre présence.",
        ),
        message(
            4,
            "会議",
            "明日の会議は東京都で行います。よろしくお願いします。",
        ),
        message(5, "Other", "京東 is a different word order entirely."),
    ];
    for m in &mut messages {
        m.timestamp = Some(978_307_200);
    }
    let index = index_of(&messages, &|_| Vec::new());
    assert_eq!(numbers(&index, "contract"), [1], "English stem");
    assert_eq!(numbers(&index, "price"), [1], "pricing → price");
    assert_eq!(
        numbers(&index, "body:contract"),
        [1],
        "body: is stemmed too"
    );
    assert_eq!(numbers(&index, "vertrag"), [2], "German stem");
    assert_eq!(numbers(&index, "zurich"), [3], "accent folding");
    assert_eq!(numbers(&index, "reunion"), [3]);
    assert_eq!(
        numbers(&index, "東京"),
        [4],
        "CJK as consecutive characters"
    );
    assert_eq!(numbers(&index, "京東"), [5]);
    assert_eq!(numbers(&index, "会議"), [4]);
    assert!(
        numbers(&index, "\"contract yesterday\"").is_empty(),
        "a phrase stays exact"
    );
    assert_eq!(numbers(&index, "\"contracts yesterday\""), [1]);
    assert_eq!(numbers(&index, "\"signed the contracts\""), [1]);
}

/// A reader that is already open (a running `trove serve`) follows a mirror pull or a
/// reindex: once its searcher sees the new commit, it sees the new threads too, with no
/// explicit reload. (The thread map is written before the index commit for this.)
#[test]
fn an_open_reader_sees_new_threads_with_the_new_commit() {
    use trove_site::{NumberRange, ReleaseWriter, SigningKey, Site, update_index};
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let site = Site::open_or_create(tmp.path(), "Threads", &key.verifying_key()).unwrap();
    let release = |k: u32, messages: &[PublishedMessage]| {
        let first = messages[0].number;
        let last = messages[messages.len() - 1].number;
        let mut w = ReleaseWriter::new(
            &site,
            k,
            "R",
            "2026-01-01T00:00:00Z",
            NumberRange { first, last },
        );
        for m in messages {
            w.add_message(m, None, &[]).unwrap();
        }
        w.finish(&key).unwrap();
    };
    let mut m2 = message(2, "Re: plan", "reply");
    m2.in_reply_to = vec!["<1@example.com>".into()];
    m2.release = 1;
    let mut m1 = message(1, "plan", "the plan");
    m1.release = 1;
    release(1, &[m1, m2]);
    update_index(&site, 1).unwrap();
    let index = SearchIndex::open(&site.index_dir()).unwrap();
    assert_eq!(index.threads().unwrap().thread_of(2), Some(1));
    assert_eq!(index.threads().unwrap().thread_of(3), None);

    let mut m3 = message(3, "Re: Re: plan", "a later reply");
    m3.release = 2;
    m3.references = vec!["<1@example.com>".into(), "<2@example.com>".into()];
    release(2, &[m3]);
    update_index(&site, 2).unwrap();
    let started = std::time::Instant::now();
    // Wait for the reader to reach the commit (tantivy reloads on its own, after a delay).
    while index.threads().unwrap().thread_of(3).is_none() || numbers(&index, "") != [1, 2, 3] {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the open reader never saw the new thread map"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(index.threads().unwrap().members(1), [1, 2, 3]);
    assert_eq!(index.threads().unwrap().size_of(1), 3);
    assert_eq!(numbers(&index, "thread:3"), [1, 2, 3]);
}

#[test]
fn snippets_highlight_the_query_words_in_any_case_and_accent() {
    let emails = vec![
        message(1, "Gas", "The GAS prices rose again."),
        message(2, "Gas", "Nothing about it in here."),
        message(3, "Meeting", "We met in Zürich about gas."),
        message(4, "会議", "明日の会議について"),
    ];
    let index = index_of(&emails, &|_| Vec::new());
    let texts: Vec<&str> = emails.iter().map(|m| m.text.as_str()).collect();
    let got = index.snippets("gas", &texts, 100);
    assert_eq!(got[0].as_deref(), Some("The <b>GAS</b> prices rose again"));
    // Matched on its subject only: no words of the query in the text, no snippet.
    assert_eq!(got[1], None);
    assert_eq!(got[2].as_deref(), Some("We met in Zürich about <b>gas</b>"));
    assert_eq!(got[3], None);
    // A text that is not ASCII, found through the folding of its accents.
    let got = index.snippets("zurich", &texts, 100);
    assert_eq!(got[2].as_deref(), Some("We met in <b>Zürich</b> about gas"));
    // A word that is not ASCII.
    let got = index.snippets("会", &texts, 100);
    assert!(
        got[3].as_deref().is_some_and(|s| s.contains("<b>会</b>")),
        "{got:?}"
    );
    // A word the text holds only inside another word is not highlighted.
    assert_eq!(index.snippets("nothin", &texts[1..2], 100), vec![None]);
}
