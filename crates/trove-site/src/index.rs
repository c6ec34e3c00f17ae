//! The search index over published messages (tantivy), kept in `SITE/index`.
//!
//! It is derived data: built from `messages/*.json` by releases and rebuildable from them,
//! so it is not covered by the signed manifests. Only released emails are ever added.

use std::ops::Bound;
use std::path::Path;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
};

use crate::query::{Expr, TextField};
use crate::{PublishedMessage, Result, Site, SiteError, io_err};

const TOKENIZER: &str = "trove";

struct Fields {
    number: Field,
    release: Field,
    date: Field,
    from: Field,
    to: Field,
    cc: Field,
    subject: Field,
    body: Field,
    filename: Field,
    dkim: Field,
    from_display: Field,
    subject_display: Field,
    date_display: Field,
}

/// The index schema. Code finds fields by name ([`Fields::of`]), so an index written
/// by an older trove is recognised rather than misread.
fn schema() -> Schema {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    b.add_u64_field("number", INDEXED | STORED | FAST);
    b.add_u64_field("release", INDEXED | FAST);
    b.add_i64_field("date", INDEXED | FAST);
    for name in ["from", "to", "cc", "subject", "body", "filename"] {
        b.add_text_field(name, text.clone());
    }
    b.add_text_field("dkim", STRING);
    for name in ["from_display", "subject_display", "date_display"] {
        b.add_text_field(name, STORED);
    }
    b.build()
}

impl Fields {
    /// The fields of an existing index, by name: an index written by an older trove lacks
    /// some, and says so.
    fn of(index: &Index, dir: &Path) -> Result<Fields> {
        let schema = index.schema();
        let get = |name: &str| {
            schema.get_field(name).map_err(|_| SiteError::Format {
                path: dir.to_path_buf(),
                message: format!("the search index has no {name:?} field (made by an older trove); rebuild it with `trove reindex SITE`"),
            })
        };
        Ok(Fields {
            number: get("number")?,
            release: get("release")?,
            date: get("date")?,
            from: get("from")?,
            to: get("to")?,
            cc: get("cc")?,
            subject: get("subject")?,
            body: get("body")?,
            filename: get("filename")?,
            dkim: get("dkim")?,
            from_display: get("from_display")?,
            subject_display: get("subject_display")?,
            date_display: get("date_display")?,
        })
    }
}

fn register_tokenizer(index: &Index) {
    let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(60))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build();
    index.tokenizers().register(TOKENIZER, analyzer);
}

/// Emails with no readable date sort as the oldest.
const NO_DATE: i64 = i64::MIN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Relevance,
    Newest,
    Oldest,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        match s {
            "relevance" | "" => Some(Sort::Relevance),
            "newest" | "date" => Some(Sort::Newest),
            "oldest" => Some(Sort::Oldest),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::Newest => "newest",
            Sort::Oldest => "oldest",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hit {
    pub number: u64,
    pub date: Option<String>,
    pub from: String,
    pub subject: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchResults {
    /// How many emails match, in all.
    pub total: u64,
    pub hits: Vec<Hit>,
}

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating an empty one if there is none.
    pub fn open_or_create(dir: &Path) -> Result<SearchIndex> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let schema = schema();
        let directory =
            tantivy::directory::MmapDirectory::open(dir).map_err(|e| SiteError::Format {
                path: dir.to_path_buf(),
                message: e.to_string(),
            })?;
        let index = Index::open_or_create(directory, schema)?;
        SearchIndex::ready(index, dir, ReloadPolicy::Manual)
    }

    /// The index with trove's fields found, its analyser registered and a reader.
    fn ready(index: Index, dir: &Path, reload: ReloadPolicy) -> Result<SearchIndex> {
        let fields = Fields::of(&index, dir)?;
        register_tokenizer(&index);
        let reader = index.reader_builder().reload_policy(reload).try_into()?;
        Ok(SearchIndex {
            index,
            reader,
            fields,
        })
    }

    /// Opens an existing index for reading.
    pub fn open(dir: &Path) -> Result<SearchIndex> {
        let index = Index::open_in_dir(dir).map_err(|e| SiteError::Format {
            path: dir.to_path_buf(),
            message: format!(
                "cannot open the search index ({e}); rebuild it with `trove reindex SITE`"
            ),
        })?;
        SearchIndex::ready(index, dir, ReloadPolicy::OnCommitWithDelay)
    }

    /// An index held in memory, for a search over emails that are not published (the
    /// workspace's `--query` selection), with the same language and analysis.
    pub fn in_ram() -> Result<SearchIndex> {
        SearchIndex::ready(
            Index::create_in_ram(schema()),
            Path::new("(memory)"),
            ReloadPolicy::Manual,
        )
    }

    pub fn writer(&self) -> Result<IndexWriter> {
        Ok(self.index.writer_with_num_threads(1, 64 << 20)?)
    }

    /// Removes every email of release `release` (before re-adding it after a crash).
    pub fn delete_release(&self, writer: &IndexWriter, release: u32) {
        writer.delete_term(Term::from_field_u64(self.fields.release, release as u64));
    }

    /// Removes email `number` (withdrawn after publication).
    pub fn delete_number(&self, writer: &IndexWriter, number: u64) {
        writer.delete_term(Term::from_field_u64(self.fields.number, number));
    }

    pub fn add(&self, writer: &IndexWriter, m: &PublishedMessage) -> Result<()> {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_u64(f.number, m.number);
        doc.add_u64(f.release, m.release as u64);
        doc.add_i64(f.date, m.timestamp.unwrap_or(NO_DATE));
        for (field, people) in [(f.from, &m.from), (f.to, &m.to), (f.cc, &m.cc)] {
            for p in people {
                doc.add_text(field, p.display());
            }
        }
        doc.add_text(f.subject, &m.subject);
        doc.add_text(f.body, &m.text);
        for a in &m.attachments {
            if let Some(name) = &a.filename {
                doc.add_text(f.filename, name);
            }
        }
        doc.add_text(f.dkim, crate::dkim_status(&m.dkim));
        doc.add_text(f.from_display, m.from_line());
        doc.add_text(f.subject_display, &m.subject);
        doc.add_text(f.date_display, m.date.as_deref().unwrap_or_default());
        writer.add_document(doc)?;
        Ok(())
    }

    pub fn reload(&self) -> Result<()> {
        Ok(self.reader.reload()?)
    }

    /// Runs a query in the search language. `max_number` caps the public numbers returned:
    /// the index may hold emails of a release whose manifest is not yet written.
    pub fn search(
        &self,
        query: &str,
        sort: Sort,
        offset: usize,
        limit: usize,
        max_number: u64,
    ) -> Result<SearchResults> {
        let expr = crate::query::parse(query)?;
        let q = self.released(self.build(&expr), max_number);
        let searcher = self.reader.searcher();
        let total = searcher.search(&q, &Count)? as u64;
        // tantivy sizes its top-N heap by offset + limit: never ask for more than exists,
        // so `page=1000000` costs nothing.
        let limit = limit.min(total.saturating_sub(offset as u64) as usize);
        if limit == 0 {
            return Ok(SearchResults {
                total,
                hits: Vec::new(),
            });
        }
        let top = TopDocs::with_limit(limit).and_offset(offset);
        let addrs: Vec<DocAddress> = match sort {
            Sort::Relevance if !matches!(expr, Expr::All) => searcher
                .search(&q, &top)?
                .into_iter()
                .map(|(_, a)| a)
                .collect(),
            Sort::Oldest => searcher
                .search(&q, &top.order_by_fast_field::<i64>("date", Order::Asc))?
                .into_iter()
                .map(|(_, a)| a)
                .collect(),
            _ => searcher
                .search(&q, &top.order_by_fast_field::<i64>("date", Order::Desc))?
                .into_iter()
                .map(|(_, a)| a)
                .collect(),
        };
        let mut hits = Vec::with_capacity(addrs.len());
        for addr in addrs.into_iter().take(limit) {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let s = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let date = s(self.fields.date_display);
            hits.push(Hit {
                number: doc
                    .get_first(self.fields.number)
                    .and_then(|v| v.as_u64())
                    .unwrap_or_default(),
                date: (!date.is_empty()).then_some(date),
                from: s(self.fields.from_display),
                subject: s(self.fields.subject_display),
            });
        }
        Ok(SearchResults { total, hits })
    }

    /// `q`, restricted to the numbers a signed manifest covers.
    fn released(&self, q: Box<dyn Query>, max_number: u64) -> Box<dyn Query> {
        let cap: Box<dyn Query> = Box::new(RangeQuery::new(
            Bound::Unbounded,
            Bound::Included(Term::from_field_u64(self.fields.number, max_number)),
        ));
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, q),
            (Occur::Must, cap),
        ]))
    }

    /// How the emails matching `query` split by DKIM status: (`pass`, `fail`,
    /// `unverified`, `none`) with their counts.
    pub fn dkim_facet(&self, query: &str, max_number: u64) -> Result<Vec<(&'static str, u64)>> {
        let expr = crate::query::parse(query)?;
        let searcher = self.reader.searcher();
        let mut out = Vec::with_capacity(4);
        for status in ["pass", "fail", "unverified", "none"] {
            let q = self.released(
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, self.build(&expr)),
                    (Occur::Must, self.build(&Expr::Dkim(status.to_string()))),
                ])),
                max_number,
            );
            out.push((status, searcher.search(&q, &Count)? as u64));
        }
        Ok(out)
    }

    /// The query terms of `query` in the body field, for snippets.
    pub fn snippet(&self, query: &str, text: &str, max_chars: usize) -> Option<String> {
        let expr = crate::query::parse(query).ok()?;
        let q = self.build(&expr);
        let searcher = self.reader.searcher();
        let mut g =
            tantivy::snippet::SnippetGenerator::create(&searcher, &*q, self.fields.body).ok()?;
        g.set_max_num_chars(max_chars);
        let s = g.snippet(text);
        (!s.fragment().is_empty()).then(|| s.to_html())
    }

    fn field(&self, f: TextField) -> Field {
        match f {
            TextField::From => self.fields.from,
            TextField::To => self.fields.to,
            TextField::Cc => self.fields.cc,
            TextField::Subject => self.fields.subject,
            TextField::Body => self.fields.body,
            TextField::Filename => self.fields.filename,
        }
    }

    fn text_query(&self, field: Field, words: &str, phrase: bool) -> Box<dyn Query> {
        let mut analyzer = self.index.tokenizers().get(TOKENIZER).expect("registered");
        let mut stream = analyzer.token_stream(words);
        let mut terms = Vec::new();
        while stream.advance() {
            terms.push(Term::from_field_text(field, &stream.token().text));
        }
        match terms.len() {
            0 => Box::new(EmptyQuery),
            1 => Box::new(TermQuery::new(
                terms.pop().expect("one"),
                IndexRecordOption::WithFreqs,
            )),
            // "k..allen@enron.com" and quoted phrases: the words in order.
            _ if phrase || !words.contains(' ') => Box::new(PhraseQuery::new(terms)),
            _ => Box::new(BooleanQuery::new(
                terms
                    .into_iter()
                    .map(|t| {
                        (
                            Occur::Must,
                            Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs))
                                as Box<dyn Query>,
                        )
                    })
                    .collect(),
            )),
        }
    }

    fn build(&self, expr: &Expr) -> Box<dyn Query> {
        match expr {
            Expr::All => Box::new(AllQuery),
            Expr::Text {
                field: Some(f),
                words,
                phrase,
            } => self.text_query(self.field(*f), words, *phrase),
            Expr::Text {
                field: None,
                words,
                phrase,
            } => {
                let f = &self.fields;
                Box::new(BooleanQuery::new(
                    [f.subject, f.from, f.to, f.cc, f.body, f.filename]
                        .into_iter()
                        .map(|field| (Occur::Should, self.text_query(field, words, *phrase)))
                        .collect(),
                ))
            }
            Expr::Dkim(status) => Box::new(TermQuery::new(
                Term::from_field_text(self.fields.dkim, status),
                IndexRecordOption::Basic,
            )),
            Expr::Date { from, to } => {
                let term = |t: i64| Term::from_field_i64(self.fields.date, t);
                Box::new(RangeQuery::new(
                    from.map_or(Bound::Excluded(term(NO_DATE)), |t| Bound::Included(term(t))),
                    to.map_or(Bound::Unbounded, |t| Bound::Excluded(term(t))),
                ))
            }
            Expr::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, self.build(inner)),
            ])),
            Expr::And(parts) => Box::new(BooleanQuery::new(
                parts.iter().map(|p| (Occur::Must, self.build(p))).collect(),
            )),
            Expr::Or(parts) => Box::new(BooleanQuery::new(
                parts
                    .iter()
                    .map(|p| (Occur::Should, self.build(p)))
                    .collect(),
            )),
        }
    }
}

/// Brings `site`'s index up to date with its releases from `from` on: adds their emails
/// and removes the ones they withdraw (a mirror after a pull). Builds the whole index when
/// there is none. Returns how many emails were added.
pub fn update_index(site: &Site, from: u32) -> Result<u64> {
    if !site.index_dir().join("meta.json").exists() {
        return rebuild_index(site);
    }
    index_releases(site, from)
}

/// Rebuilds `site`'s index from the published messages its manifests number, replacing
/// whatever index was there. Returns how many emails were indexed.
pub fn rebuild_index(site: &Site) -> Result<u64> {
    let dir = site.index_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    index_releases(site, 1)
}

/// (Re-)indexes the emails of releases `from` on and removes the ones they withdraw.
fn index_releases(site: &Site, from: u32) -> Result<u64> {
    let index = SearchIndex::open_or_create(&site.index_dir())?;
    let mut writer = index.writer()?;
    let mut count = 0;
    for k in from.max(1).. {
        let Some(manifest) = site.manifest(k)? else {
            break;
        };
        index.delete_release(&writer, k);
        for number in manifest.numbers.first..=manifest.numbers.last {
            // A withdrawn email has no file: nothing to index.
            if let Some(message) = site.message(number)? {
                index.add(&writer, &message)?;
                count += 1;
            }
        }
        for w in &manifest.withdrawn {
            index.delete_number(&writer, w.number);
        }
    }
    writer.commit()?;
    Ok(count)
}
