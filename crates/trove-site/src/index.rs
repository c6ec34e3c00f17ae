//! The search index over published messages (tantivy), kept in `SITE/index`.
//!
//! It is derived data: built from `messages/*.json` by releases and rebuildable from them,
//! so it is not covered by the signed manifests. Only released emails are ever added.
//!
//! Text is cut by [`WordTokenizer`] (CJK characters one by one), lower-cased and folded to
//! ASCII, so `zurich` finds "Zürich". Each email's language is detected (`whatlang`
//! among the languages below) and kept in the `lang` field. A bare word or a `body:` word
//! also matches the words of its family in the emails of each language: for English, the
//! words of subject and body with its stem, found in the term dictionaries when the search
//! is made; for the others, its stem in a field where subject and body are indexed a
//! second time, stemmed. So `contracts` finds "contract" and `verträge` finds "Vertrag".
//!
//! Facets are counted over keyword fast fields (`domain`, `person`, `filetype`, `month`,
//! `dkim`, `release`) by the collector in `facets.rs`, in the same pass as the hits.
//! Paging is by cursor: the sort key of the last hit, so page 10,000 costs what page 1
//! does.

use std::ops::Bound;
use std::path::Path;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{AsciiFoldingFilter, TextAnalyzer};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexWriter, ReloadPolicy, SegmentReader,
    TantivyDocument, Term,
};

use crate::facets::{ColumnCache, FacetCounter};
use crate::query::{ExactField, Expr, QueryError, TextField};
use crate::ranking::{Key, SKIPPED, TopRelevant, keep_after};
use crate::snippet::Highlighter;
use crate::threads::{Links, ThreadMap};
use crate::tokens::{CachedStemmer, WordTokenizer};
use crate::{PublishedMessage, Result, Site, SiteError, io_err};
use rust_stemmers::Algorithm;

const TOKENIZER: &str = "trove";

/// The languages whose stems are indexed: the field suffix, tantivy's stemmer, and the
/// language as whatlang names it.
const STEMMED: [(&str, Algorithm, whatlang::Lang); 12] = [
    ("en", Algorithm::English, whatlang::Lang::Eng),
    ("fr", Algorithm::French, whatlang::Lang::Fra),
    ("de", Algorithm::German, whatlang::Lang::Deu),
    ("es", Algorithm::Spanish, whatlang::Lang::Spa),
    ("it", Algorithm::Italian, whatlang::Lang::Ita),
    ("pt", Algorithm::Portuguese, whatlang::Lang::Por),
    ("nl", Algorithm::Dutch, whatlang::Lang::Nld),
    ("sv", Algorithm::Swedish, whatlang::Lang::Swe),
    ("da", Algorithm::Danish, whatlang::Lang::Dan),
    ("no", Algorithm::Norwegian, whatlang::Lang::Nob),
    ("fi", Algorithm::Finnish, whatlang::Lang::Fin),
    ("ru", Algorithm::Russian, whatlang::Lang::Rus),
];

/// The language (its [`STEMMED`] slot) whose stems are not indexed: English, most mail.
/// A search finds an English word's family among the words the exact fields already
/// hold ([`SearchIndex::family`]): indexing its stems had been about a tenth of a 100k
/// release's CPU (BENCHMARKS.md). The other languages keep their stem fields: a family
/// is found among folded words, and folding changes where their stemmers cut (French
/// `annulée` stems to `annul`, its folded `annulee` to `annule`); English words are
/// ASCII.
const FAMILY_AT_SEARCH: usize = 0;

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
    attachment: Field,
    dkim: Field,
    has: Field,
    domain: Field,
    person: Field,
    filetype: Field,
    month: Field,
    /// One per entry of [`STEMMED`], in that order; none for [`FAMILY_AT_SEARCH`].
    stems: Vec<Option<Field>>,
    /// The language whose stems an email has (its [`STEMMED`] suffix), if any.
    lang: Field,
    from_display: Field,
    subject_display: Field,
    date_display: Field,
}

/// The indexing thread's memory budget: see [`SearchIndex::writer`].
const WRITER_BUDGET: usize = 512 << 20;

/// The index schema. Code finds fields by name ([`Fields::of`]), so an index written
/// by an older trove is recognised rather than misread.
fn schema() -> Schema {
    let mut b = Schema::builder();
    let text = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
    };
    b.add_u64_field("number", INDEXED | STORED | FAST);
    b.add_u64_field("release", INDEXED | STORED | FAST);
    b.add_i64_field("date", INDEXED | FAST);
    for name in [
        "from",
        "to",
        "cc",
        "subject",
        "body",
        "filename",
        "attachment",
    ] {
        b.add_text_field(name, text(TOKENIZER));
    }
    // A stem field only ever answers single words (a phrase means exactly its words, in
    // the exact fields), so it keeps no positions: recording them cost the indexer as much
    // as the stems themselves.
    for (slot, (lang, _, _)) in STEMMED.into_iter().enumerate() {
        if slot == FAMILY_AT_SEARCH {
            continue;
        }
        b.add_text_field(
            &format!("stem_{lang}"),
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(&stem_tokenizer(lang))
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        );
    }
    // Which language's stems an email has: a word that is its own stem is not in the
    // stem field, and a search for its family finds it in the exact fields of the emails
    // in that language (`SearchIndex::stem_query`).
    b.add_text_field("lang", STRING);
    b.add_text_field("has", STRING);
    for name in ["dkim", "domain", "person", "filetype", "month"] {
        b.add_text_field(name, STRING | FAST);
    }
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
            attachment: get("attachment")?,
            dkim: get("dkim")?,
            has: get("has")?,
            domain: get("domain")?,
            person: get("person")?,
            filetype: get("filetype")?,
            month: get("month")?,
            // An index written before English's family was found at search time has its
            // stem field too, unused now.
            stems: STEMMED
                .iter()
                .enumerate()
                .map(|(slot, (lang, _, _))| {
                    (slot != FAMILY_AT_SEARCH)
                        .then(|| get(&format!("stem_{lang}")))
                        .transpose()
                })
                .collect::<Result<_>>()?,
            lang: get("lang")?,
            from_display: get("from_display")?,
            subject_display: get("subject_display")?,
            date_display: get("date_display")?,
        })
    }
}

/// The analyser of the exact text fields: words cut, long ones dropped, lower-cased,
/// accents folded. What the index writes, so what the highlighter and its tests compare
/// with.
pub(crate) fn words_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer::default())
        .filter(AsciiFoldingFilter)
        .build()
}

/// The analyser of the stem fields: the exact fields' words, stemmed by `stemmer`
/// before they are folded (the stemmers know their language's accents).
pub(crate) fn stem_analyzer(stemmer: CachedStemmer) -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer::default())
        .filter(stemmer)
        .filter(AsciiFoldingFilter)
        .build()
}

fn register_tokenizers(index: &Index) {
    index.tokenizers().register(TOKENIZER, words_analyzer());
    for (slot, (lang, algorithm, _)) in STEMMED.into_iter().enumerate() {
        // The field's own analyser (what a release indexes) keeps only the stems that
        // differ from their word; a search asks for the stem of every word. English's is
        // registered too: an older index has its field, and a writer looks up the
        // analyser of every field.
        index.tokenizers().register(
            &stem_tokenizer(lang),
            stem_analyzer(CachedStemmer::inflections(slot, algorithm)),
        );
        index.tokenizers().register(
            &stem_query_tokenizer(lang),
            stem_analyzer(CachedStemmer::new(slot, algorithm)),
        );
    }
}

/// The analyser of language `lang`'s stem field: the stems of inflected words only.
fn stem_tokenizer(lang: &str) -> String {
    format!("{TOKENIZER}_{lang}")
}

/// The stems of a search's words in language `lang`, all of them.
fn stem_query_tokenizer(lang: &str) -> String {
    format!("{TOKENIZER}_{lang}_query")
}

/// The position in [`STEMMED`] of the language `text` is written in, when it is one of
/// them and the detector is confident; English when the detector cannot tell (short
/// emails: "See you at 3", a forwarded table), and without asking it when the first
/// 1,000 bytes show none of the other languages' common words. Text in a language it
/// can tell and trove has no stemmer for gets no stems.
fn language_of(text: &str) -> Option<usize> {
    use std::sync::OnceLock;
    static DETECTOR: OnceLock<whatlang::Detector> = OnceLock::new();
    // The opening is enough to tell, and keeps long emails cheap.
    let opening = &text[..text.floor_char_boundary(2000)];
    if reads_as_english(opening) {
        return Some(0);
    }
    let detector = DETECTOR.get_or_init(|| {
        whatlang::Detector::with_allowlist(STEMMED.iter().map(|(_, _, l)| *l).collect())
    });
    // whatlang reads half as much. Of the texts the common words left to it (3,950 of
    // Enron, the list archives and the parser corpora; 1,420 of 10,000 generated
    // emails), it named the same language from the first 1,000 bytes as from 2,000 for
    // 3,936 and 1,407, reading 63 % and 80 % of the bytes; the others mix languages
    // (generated English strewn with French or Cyrillic words, a German reply quoting
    // English), where neither answer is wrong. Its cost is mostly per call, not per
    // byte: under callgrind, a 10,000-email release spent 0.706 G instructions in it
    // (4 %) with 2,000 bytes and 0.628 G with 1,000.
    let opening = &opening[..opening.floor_char_boundary(1000)];
    if !may_be_other_language(opening) {
        return Some(0);
    }
    let Some(info) = detector.detect(opening).filter(|i| i.confidence() >= 0.5) else {
        return Some(0);
    };
    STEMMED.iter().position(|(_, _, l)| *l == info.lang())
}

/// The beginnings of every word whose Snowball English stem is `stem`: the stem itself,
/// or the stem but for its last letter, then `i` or `y` (`happi` for `happy`, `hope`
/// for `hoping`); and Snowball's three exceptions that change a word's beginning
/// (`dying`, `lying`, `tying`). Over the 555,154 different words of the shared corpora
/// and 5,000 generated emails, every word begins with one of its stem's.
fn family_beginnings(stem: &str) -> Vec<String> {
    let mut out = vec![stem.to_owned()];
    let Some((last, _)) = stem.char_indices().last() else {
        return out;
    };
    if last >= 2 {
        let head = &stem[..last];
        out.extend(
            ['i', 'y']
                .map(|c| format!("{head}{c}"))
                .into_iter()
                .filter(|b| b != stem),
        );
    }
    if matches!(stem, "die" | "lie" | "tie") {
        out.push(format!("{}y", &stem[..1]));
    }
    out
}

/// Common words of the stemmed languages besides English that English does not have
/// (`die`, `den`, `over`, `for`, `men`, `mit`, `per`, `van`, `com`, `la` and the like
/// are left out: an English email has them, or `enron.com` and `LA`), in byte order.
const OTHER_LANGUAGES_WORDS: [&str; 130] = [
    "alla", "anche", "att", "auch", "auf", "aussi", "avec", "bij", "bitte", "cette", "che", "como",
    "con", "da", "dans", "das", "dat", "del", "della", "dem", "der", "des", "det", "di", "du",
    "een", "ei", "ein", "eine", "el", "elle", "es", "est", "está", "et", "että", "för", "für",
    "gli", "gracias", "grazie", "har", "het", "hän", "ich", "ihr", "ik", "ikke", "il", "inte",
    "ist", "ja", "jag", "je", "kun", "las", "le", "les", "lo", "los", "maar", "mais", "mutta",
    "muy", "más", "naar", "nach", "nicht", "niet", "noch", "nous", "não", "obrigado", "och", "og",
    "oli", "ook", "op", "ovat", "para", "pas", "pero", "por", "pour", "på", "que", "questo", "qui",
    "se", "sie", "sind", "som", "sono", "sont", "sur", "também", "til", "très", "tämä", "uma",
    "una", "und", "une", "voor", "vous", "werden", "wij", "wir", "wird", "wordt", "zijn", "zu",
    "är", "être", "в", "вы", "за", "и", "из", "как", "мы", "на", "не", "но", "он", "по", "с",
    "что", "это", "я",
];

/// The longest of [`OTHER_LANGUAGES_WORDS`], in bytes: a longer word is not looked up.
const LONGEST_OTHER_WORD: usize = {
    let (mut i, mut longest) = (0, 0);
    while i < OTHER_LANGUAGES_WORDS.len() {
        if OTHER_LANGUAGES_WORDS[i].len() > longest {
            longest = OTHER_LANGUAGES_WORDS[i].len();
        }
        i += 1;
    }
    longest
};

/// Whether `opening` may be in a stemmed language other than English, so that whatlang
/// is asked: at least two of its words, and 3 % of them, are [`OTHER_LANGUAGES_WORDS`],
/// or half of its letters are Cyrillic. Text in those languages is dense with them;
/// whatlang's trigram ranking costs the same for any text, and it was still 6 % of a
/// release's CPU. Of the texts the common-English check left to whatlang, this left it
/// 281 of 14,258 in 100,000 generated emails and 81 of 3,511 in the shared corpora
/// (Enron, the lists, the parser corpora). Of the rest, whatlang had named 20 of the
/// shared corpora's and 650 of the generated ones a language other than English: the
/// shared corpora's were English (forwarded headers, calendar notes, kernel patches),
/// Japanese or mojibake; the generated ones are made-up English with a German,
/// French or Spanish greeting or word here and there.
fn may_be_other_language(opening: &str) -> bool {
    let (mut words, mut common) = (0usize, 0usize);
    let (mut letters, mut cyrillic) = (0usize, 0usize);
    let mut lower = String::new();
    for word in opening
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        words += 1;
        for c in word.chars() {
            letters += 1;
            cyrillic += ('\u{400}'..='\u{4ff}').contains(&c) as usize;
        }
        if word.len() <= LONGEST_OTHER_WORD {
            lower.clear();
            lower.extend(word.chars().flat_map(char::to_lowercase));
            common += OTHER_LANGUAGES_WORDS.binary_search(&lower.as_str()).is_ok() as usize;
        }
    }
    (common >= 2 && common * 100 >= words * 3) || (letters > 0 && cyrillic * 2 >= letters)
}

/// Whether at least 8 % of the words of `opening` (twenty or more) are among sixteen
/// common English words that are not words of the other stemmed languages (`will`, `for`
/// and `have` are German or Scandinavian too, and a German text dense with `will` was
/// taken for English). Most mail is English, and whatlang's trigram ranking was a fifth
/// of a release's CPU; this answers for most emails first. Over Enron, the parser corpora
/// and 10,000 generated emails (21,037 texts) it answers for 16,409; whatlang disagrees
/// on 167 of those, and the ones read were English it misread (an expense-report
/// reminder, forwarded headers) or generated English with French words mixed in.
fn reads_as_english(opening: &str) -> bool {
    let (mut words, mut english) = (0usize, 0usize);
    // The word being read: its length in bytes and its first eight bytes, lowercased,
    // packed into a number; a letter outside ASCII means no English common word.
    let (mut len, mut packed, mut ascii) = (0usize, 0u64, true);
    let mut end_word = |len: usize, packed: u64, ascii: bool| {
        words += 1;
        english += (ascii && len <= 5 && ENGLISH_PACKED.contains(&packed)) as usize;
    };
    for c in opening.chars() {
        if c.is_ascii_alphabetic() {
            if len < 8 {
                packed |= u64::from(c as u8 | 0x20) << (8 * len);
            }
            len += 1;
        } else if !c.is_ascii() && c.is_alphabetic() {
            len += c.len_utf8();
            ascii = false;
        } else if len > 0 {
            end_word(len, packed, ascii);
            (len, packed, ascii) = (0, 0, true);
        }
    }
    if len > 0 {
        end_word(len, packed, ascii);
    }
    words >= 20 && english * 100 >= words * 8
}

/// The sixteen common words [`reads_as_english`] counts (lowercase ASCII, five letters
/// at most). A word is compared packed into a number, as [`pack_word`] makes it: the
/// opening of every email is read, and splitting it into `&str`s and comparing each
/// with every word ignoring case was 3.2 % of a 100k release's `perf` samples (2.2 %
/// packed).
const ENGLISH_WORDS: [&str; 16] = [
    "the", "and", "you", "that", "with", "this", "are", "would", "your", "from", "they", "what",
    "which", "there", "been", "were",
];

const ENGLISH_PACKED: [u64; 16] = {
    let mut out = [0; 16];
    let mut i = 0;
    while i < ENGLISH_WORDS.len() {
        out[i] = pack_word(ENGLISH_WORDS[i]);
        i += 1;
    }
    out
};

/// A word of eight ASCII bytes or fewer as one number, its first byte lowest.
const fn pack_word(word: &str) -> u64 {
    let bytes = word.as_bytes();
    let mut packed = 0u64;
    let mut i = 0;
    while i < bytes.len() && i < 8 {
        packed |= (bytes[i] as u64) << (8 * i);
        i += 1;
    }
    packed
}

/// One email as the index takes it ([`SearchIndex::document`]).
pub type IndexDocument = TantivyDocument;

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
    pub release: u32,
    pub date: Option<String>,
    pub from: String,
    pub subject: String,
}

/// One value of a facet and how many of the matching emails have it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bucket {
    pub value: String,
    pub count: u64,
}

/// How the matching emails split, by facet. Each list is biggest first, but `month`,
/// which is every month with an email, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Facets {
    pub domain: Vec<Bucket>,
    pub person: Vec<Bucket>,
    pub month: Vec<Bucket>,
    pub release: Vec<Bucket>,
    pub filetype: Vec<Bucket>,
    pub dkim: Vec<Bucket>,
}

impl Facets {
    /// About the bytes these facets hold: each value's text and its bucket.
    fn weight(&self) -> usize {
        [
            &self.domain,
            &self.person,
            &self.month,
            &self.release,
            &self.filetype,
            &self.dkim,
        ]
        .iter()
        .flat_map(|list| list.iter())
        .map(|b| b.value.len() + std::mem::size_of::<Bucket>())
        .sum()
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SearchResults {
    /// How many emails match, in all.
    pub total: u64,
    pub hits: Vec<Hit>,
    /// The cursor for the page after this one, if there is one.
    pub next: Option<String>,
    /// Shared with the kept facets ([`SearchIndex::run`] keeps them for the next page),
    /// so that keeping them copies no value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<std::sync::Arc<Facets>>,
}

/// What to search for and which page of it.
#[derive(Debug, Clone)]
pub struct SearchRequest<'a> {
    pub query: &'a str,
    pub sort: Sort,
    /// A cursor from an earlier page's [`SearchResults::next`]: the hits after it.
    pub after: Option<&'a str>,
    /// Hits to skip (after the cursor, if there is one).
    pub offset: usize,
    pub limit: usize,
    /// Facet sizes: how many values of each facet to count (0: no facets).
    pub facets: usize,
    /// The highest public number a signed manifest covers: the index may hold emails of a
    /// release whose manifest is not yet written.
    pub max_number: u64,
}

impl<'a> SearchRequest<'a> {
    pub fn new(query: &'a str, max_number: u64) -> SearchRequest<'a> {
        SearchRequest {
            query,
            sort: Sort::Relevance,
            after: None,
            offset: 0,
            limit: 20,
            facets: 0,
            max_number,
        }
    }
}

/// Hits in order, each with its key.
type Ranked = Vec<(Key, DocAddress)>;

fn encode_cursor(sort: Sort, key: Key) -> String {
    format!("{}.{}.{}.{}", sort.name(), key.0.to_bits(), key.1, key.2)
}

fn decode_cursor(sort: Sort, cursor: &str) -> Result<Key> {
    let bad = || {
        SiteError::Query(QueryError {
            column: 0,
            message: format!(
                "the page cursor {cursor:?} is not one this search gave (or was made for another sort order); start again from the first page"
            ),
        })
    };
    let mut parts = cursor.split('.');
    if parts.next() != Some(sort.name()) {
        return Err(bad());
    }
    let mut num = || {
        parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let score = u32::try_from(num()?).map_err(|_| bad())?;
    let key = (f32::from_bits(score), num()?, num()?);
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(key)
}

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// Where `threads.bin` is; `None` for an index in memory, which has no threads.
    dir: Option<std::path::PathBuf>,
    /// The thread map and the searcher generation it was read for: a reader that sees a
    /// new commit reads the map again (it is written before the commit).
    threads: std::sync::RwLock<(u64, std::sync::Arc<ThreadMap>)>,
    /// Facets already counted: a reader paging through a search, or many readers
    /// opening one shared link, count them once.
    facet_cache: std::sync::Mutex<FacetCache>,
    /// The columns of the segments searched that a search reads per match, opened or
    /// read once per segment (shared with the scorers of a sorted search).
    columns: std::sync::Arc<ColumnCache>,
    /// Searches running now. A search alone spreads its segments over every core (a
    /// million emails' facets take half the time on two); while others run, the cores
    /// are busy anyway, and handing segments to the pool's threads and waiting for them
    /// only adds switches, so it searches on its own thread ([`SearchIndex::alone`]).
    in_flight: std::sync::atomic::AtomicUsize,
    alone: tantivy::Executor,
}

/// One search counted in [`SearchIndex::in_flight`] while it lives.
struct InFlight<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    /// How many others were running when it began.
    others: usize,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> InFlight<'a> {
        let others = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight { count, others }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The figures BM25 weighs one search's words by, each summed over the snapshot's
/// segments once: the search looks up every alternative of a word to leave out the ones
/// no email has ([`any_of`]), then its weights and its highlighter ask the same
/// document frequencies, and each field's token count, again. The same figures as the
/// searcher's, so the same scores.
pub(crate) struct Statistics<'a> {
    searcher: &'a tantivy::Searcher,
    doc_freq: std::cell::RefCell<rustc_hash::FxHashMap<Term, u64>>,
    tokens: std::cell::RefCell<rustc_hash::FxHashMap<Field, u64>>,
}

impl<'a> Statistics<'a> {
    pub(crate) fn new(searcher: &'a tantivy::Searcher) -> Self {
        Statistics {
            searcher,
            doc_freq: Default::default(),
            tokens: Default::default(),
        }
    }
}

impl tantivy::query::Bm25StatisticsProvider for Statistics<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        if let Some(&n) = self.tokens.borrow().get(&field) {
            return Ok(n);
        }
        let n = self.searcher.total_num_tokens(field)?;
        self.tokens.borrow_mut().insert(field, n);
        Ok(n)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        self.searcher.total_num_docs()
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        if let Some(&n) = self.doc_freq.borrow().get(term) {
            return Ok(n);
        }
        let n = self.searcher.doc_freq(term)?;
        self.doc_freq.borrow_mut().insert(term.clone(), n);
        Ok(n)
    }
}

/// One search's query over one snapshot of the index, on the executor chosen for it:
/// what the passes over its matches share. It counts as a search in flight while it
/// lives.
struct Pass<'a> {
    /// The snapshot searched is the one its figures come from.
    statistics: &'a Statistics<'a>,
    columns: &'a std::sync::Arc<ColumnCache>,
    q: &'a dyn Query,
    on: &'a tantivy::Executor,
    _flight: InFlight<'a>,
}

impl<'a> Pass<'a> {
    fn new(index: &'a SearchIndex, statistics: &'a Statistics<'a>, q: &'a dyn Query) -> Self {
        let flight = InFlight::enter(&index.in_flight);
        // The executor's threads share out segments: one segment is searched here, since
        // handing it over left them spinning for work after each search (a tenth of a
        // server's samples under different searches over a 100k index of one segment).
        let segments = statistics.searcher.segment_readers().len();
        let on = if flight.others == 0 && segments > 1 {
            index.index.search_executor()
        } else {
            &index.alone
        };
        Pass {
            statistics,
            columns: &index.columns,
            q,
            on,
            _flight: flight,
        }
    }

    /// One pass over the matches with `top` (when given) and either `counter` or a plain
    /// count: the total, the facets when counted, and what `top` kept.
    fn run<C: tantivy::collector::Collector>(
        &self,
        counter: Option<FacetCounter<'_>>,
        top: Option<C>,
    ) -> Result<(u64, Option<Facets>, Option<C::Fruit>)> {
        Ok(match counter {
            Some(counter) => {
                let ((total, facets), kept) = self.search(&(counter, top))?;
                (total, Some(facets), kept)
            }
            None => {
                let (total, kept) = self.search(&(Count, top))?;
                (total as u64, None, kept)
            }
        })
    }

    /// The `want` first hits in the order `sort` (and one more, which says whether there
    /// is a next page), after the cursor `after`, with the total and the facets as
    /// [`Pass::run`] counts them.
    fn ranked(
        &self,
        sort: Sort,
        want: usize,
        after: Option<Key>,
        counter: Option<FacetCounter<'_>>,
    ) -> Result<(u64, Option<Facets>, Ranked)> {
        let (total, facets, keyed) = if sort == Sort::Relevance {
            let top = TopRelevant {
                limit: want + 1,
                after,
                columns: self.columns,
            };
            self.run(counter, Some(top))?
        } else {
            // The scorer is made per segment and may not borrow: it shares the cache.
            let columns = std::sync::Arc::clone(self.columns);
            self.run(
                counter,
                Some(
                    TopDocs::with_limit(want + 1).custom_score(move |seg: &SegmentReader| {
                        let opened = columns.of(seg);
                        let (number, date) = (opened.number.clone(), opened.date.clone());
                        move |doc: DocId| {
                            let n = number.as_ref().and_then(|c| c.first(doc)).unwrap_or(0) as i64;
                            let d = date.as_ref().and_then(|c| c.first(doc)).unwrap_or(NO_DATE);
                            let key = match sort {
                                Sort::Oldest => (0.0, !d, !n),
                                _ => (0.0, d, n),
                            };
                            keep_after(key, after)
                        }
                    }),
                ),
            )?
        };
        Ok((total, facets, keyed.unwrap_or_default()))
    }

    /// `searcher.search` on this pass's executor.
    fn search<C: tantivy::collector::Collector>(&self, collector: &C) -> Result<C::Fruit> {
        let searcher = self.statistics.searcher;
        let scoring = if collector.requires_scoring() {
            tantivy::query::EnableScoring::enabled_from_statistics_provider(
                self.statistics,
                searcher,
            )
        } else {
            tantivy::query::EnableScoring::disabled_from_searcher(searcher)
        };
        Ok(searcher.search_with_executor(self.q, collector, self.on, scoring)?)
    }
}

/// What a search's facets depend on: the index snapshot, the signed numbers, how many
/// values per facet, and the query text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FacetKey {
    generation: u64,
    max_number: u64,
    size: usize,
    query: String,
}

/// Counted facets kept, in bytes (about a thousand searches' worth: a search's facets
/// are a few kilobytes), oldest out.
const FACETS_KEPT: usize = 4 << 20;

/// Facets kept from searches already run, weighed by the text of their values.
type FacetCache = crate::KeptBytes<FacetKey, std::sync::Arc<Facets>>;

fn facet_cache() -> FacetCache {
    FacetCache::weighed(FACETS_KEPT, FACETS_KEPT / 16, |f| f.weight())
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
        SearchIndex::ready(index, Some(dir), ReloadPolicy::Manual)
    }

    /// The index with trove's fields found, its analysers registered and a reader.
    fn ready(index: Index, dir: Option<&Path>, reload: ReloadPolicy) -> Result<SearchIndex> {
        let fields = Fields::of(&index, dir.unwrap_or(Path::new("(memory)")))?;
        register_tokenizers(&index);
        // Each hit's sender, subject and date come from the doc store: blocks of 16 KiB
        // (about a hundred emails' stored fields), compressed. tantivy keeps 100 blocks
        // per segment decompressed; 512 (8 MiB per segment at most) took 3,000 different
        // searches at 100k from 2,346-2,583 to 2,698-2,713 req/s, when 100k emails were
        // three segments of about 330 blocks each. Segments are bigger since
        // ([`WRITER_BUDGET`]): 100k is one of about 1,000 blocks, and with 512 reading the
        // blocks again was 6 % of a server's samples. 2,048 (32 MiB per segment at most)
        // keeps a segment of 200,000 emails whole.
        let reader = index
            .reader_builder()
            .reload_policy(reload)
            .doc_store_cache_num_blocks(2048)
            .try_into()?;
        // The thread map is read on first use ([`SearchIndex::threads`]): most searches
        // never need it.
        Ok(SearchIndex {
            index,
            reader,
            fields,
            dir: dir.map(Path::to_path_buf),
            threads: std::sync::RwLock::new((u64::MAX, Default::default())),
            facet_cache: std::sync::Mutex::new(facet_cache()),
            columns: Default::default(),
            in_flight: Default::default(),
            alone: tantivy::Executor::single_thread(),
        })
    }

    /// Opens an existing index for reading. Its segments are searched on one thread per
    /// core: a search that matches most of a million emails (and counts their facets)
    /// takes about half as long on two cores as on one.
    pub fn open(dir: &Path) -> Result<SearchIndex> {
        let mut index = Index::open_in_dir(dir).map_err(|e| SiteError::Format {
            path: dir.to_path_buf(),
            message: format!(
                "cannot open the search index ({e}); rebuild it with `trove reindex SITE`"
            ),
        })?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores > 1 {
            index.set_multithread_executor(cores)?;
        }
        SearchIndex::ready(index, Some(dir), ReloadPolicy::OnCommitWithDelay)
    }

    /// An index held in memory, for a search over emails that are not published (the
    /// workspace's `--query` selection), with the same language and analysis.
    pub fn in_ram() -> Result<SearchIndex> {
        SearchIndex::ready(Index::create_in_ram(schema()), None, ReloadPolicy::Manual)
    }

    /// One indexing thread: with two, which segment an email lands in depends on timing,
    /// so hits of equal score came back in another order on a mirror that built the same
    /// index (the mirror test caught it), and a release was no faster (the build and the
    /// file writes already fill both cores; tried again with the merge below: 12.3-14.4
    /// s against 14.8-16.1 s for 100k).
    ///
    /// The writer never merges on its own: [`SearchIndex::commit_whole`] makes one
    /// segment of the index after each commit. The memory budget decides how many
    /// segments a release writes before that: with 512 MiB a segment holds about
    /// 100,000 emails (34,000 with 64 MiB), so a release of 100,000 needs no merge and
    /// a million is three segments merged in about 12 s. The arena grows as it is
    /// filled, so a small release or a test index uses no more than it needs.
    pub fn writer(&self) -> Result<IndexWriter> {
        let writer: IndexWriter = self.index.writer_with_num_threads(1, WRITER_BUDGET)?;
        writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        Ok(writer)
    }

    /// Commits `writer`, then merges the index into one segment, with its emails in
    /// the order of their numbers, if it has more than one or any email deleted.
    ///
    /// A search looks each word up, weighs it, unites its fields and counts its facets
    /// once per segment: a million emails released in three segments took 6 to 8 % more
    /// CPU per search page than the same index merged (BENCHMARKS.md), and merging them
    /// took 11.6 s, against a release of 140 to 170 s. A merge also drops the emails a release
    /// deleted (withdrawn, or a crashed release's own, added again): until then their
    /// words, positions and stored fields were still in the index's files.
    pub fn commit_whole(&self, writer: IndexWriter) -> Result<()> {
        self.commit_whole_with(writer, || Ok(()))
    }

    /// [`SearchIndex::commit_whole`], running `meanwhile` on another thread while the
    /// writer's indexing thread writes its segment out, the long part of a commit (a
    /// second at 100,000 emails). The commit is made visible only after `meanwhile` has
    /// returned, so what it writes beside the index (a release's thread map) is there
    /// before a reader sees the commit; if it fails, nothing is committed.
    pub fn commit_whole_with<T: Send>(
        &self,
        mut writer: IndexWriter,
        meanwhile: impl FnOnce() -> Result<T> + Send,
    ) -> Result<T> {
        let (prepared, out) = std::thread::scope(|scope| {
            let other = scope.spawn(meanwhile);
            let prepared = writer.prepare_commit();
            let out = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (prepared, out)
        });
        let out = out?;
        prepared?.commit()?;
        // Only the ids are kept through the merge: a `Segment` held meanwhile keeps its
        // files listed as in use, and tantivy's collection at the merge's end left them
        // on disk (a million emails' index kept its three old segments beside the
        // merged one, and a withdrawn email's words stayed in their files).
        if let Some(ids) = self.merge_order()? {
            writer.merge(&ids).wait()?;
        }
        writer.wait_merging_threads()?;
        Ok(out)
    }

    /// The index's segments in the order of their lowest number, when there is anything
    /// to merge: more than one, or any email deleted. No answer depends on that order
    /// (equal scores break by number), but with it the merged index holds its emails in
    /// number order on every build, where the segments' random ids would shuffle them.
    fn merge_order(&self) -> Result<Option<Vec<tantivy::index::SegmentId>>> {
        let segments = self.index.searchable_segments()?;
        if segments.len() < 2 && !segments.iter().any(|s| s.meta().has_deletes()) {
            return Ok(None);
        }
        let mut ordered = Vec::with_capacity(segments.len());
        for segment in &segments {
            let lowest = SegmentReader::open(segment)?
                .fast_fields()
                .u64("number")
                .ok()
                .map(|c| c.min_value())
                .unwrap_or(u64::MAX);
            ordered.push((lowest, segment.id()));
        }
        ordered.sort_unstable();
        Ok(Some(ordered.into_iter().map(|(_, id)| id).collect()))
    }

    /// Removes every email of release `release` (before re-adding it after a crash).
    pub fn delete_release(&self, writer: &IndexWriter, release: u32) {
        writer.delete_term(Term::from_field_u64(self.fields.release, release as u64));
    }

    /// Removes email `number` (withdrawn after publication).
    pub fn delete_number(&self, writer: &IndexWriter, number: u64) {
        writer.delete_term(Term::from_field_u64(self.fields.number, number));
    }

    /// Adds one email. `attachment_text` holds the text read from its attachments (empty
    /// where none could be read).
    pub fn add(
        &self,
        writer: &IndexWriter,
        m: &PublishedMessage,
        attachment_text: &[String],
    ) -> Result<()> {
        writer.add_document(self.document(m, attachment_text))?;
        Ok(())
    }

    /// One email as the index takes it, with its language detected: the costly part of
    /// [`SearchIndex::add`], which a release runs on every core before the writer takes
    /// the documents one by one.
    pub fn document(&self, m: &PublishedMessage, attachment_text: &[String]) -> IndexDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_u64(f.number, m.number);
        doc.add_u64(f.release, m.release as u64);
        doc.add_i64(f.date, m.timestamp.unwrap_or(NO_DATE));
        let mut people = std::collections::BTreeSet::new();
        for (field, list) in [(f.from, &m.from), (f.to, &m.to), (f.cc, &m.cc)] {
            for p in list {
                doc.add_text(field, p.display());
                if let Some(a) = &p.address {
                    people.insert(a.to_lowercase());
                }
            }
        }
        for p in people {
            doc.add_text(f.person, p);
        }
        let domains: std::collections::BTreeSet<String> = m
            .from
            .iter()
            .filter_map(|p| p.address.as_deref()?.rsplit_once('@'))
            .map(|(_, d)| d.to_lowercase())
            .collect();
        for d in domains {
            doc.add_text(f.domain, d);
        }
        doc.add_text(f.subject, &m.subject);
        doc.add_text(f.body, &m.text);
        if let Some(lang) = language_of(&m.text) {
            doc.add_text(f.lang, STEMMED[lang].0);
            if let Some(stems) = f.stems[lang] {
                doc.add_text(stems, &m.subject);
                doc.add_text(stems, &m.text);
            }
        }
        if !m.attachments.is_empty() {
            doc.add_text(f.has, "attachment");
        }
        let kinds: std::collections::BTreeSet<&str> =
            m.attachments.iter().map(|a| a.kind()).collect();
        for k in kinds {
            doc.add_text(f.filetype, k);
        }
        for a in &m.attachments {
            if let Some(name) = &a.filename {
                doc.add_text(f.filename, name);
            }
        }
        for t in attachment_text {
            doc.add_text(f.attachment, t);
        }
        if let Some(t) = m.timestamp
            && let Ok(d) = time::OffsetDateTime::from_unix_timestamp(t)
        {
            doc.add_text(f.month, format!("{:04}-{:02}", d.year(), d.month() as u8));
        }
        doc.add_text(f.dkim, crate::dkim_status(&m.dkim));
        doc.add_text(f.from_display, m.from_line());
        doc.add_text(f.subject_display, &m.subject);
        doc.add_text(f.date_display, m.date.as_deref().unwrap_or_default());
        doc
    }

    /// Makes the latest commit (and its thread map) visible to searches.
    pub fn reload(&self) -> Result<()> {
        self.reader.reload()?;
        self.threads()?;
        Ok(())
    }

    /// The conversations of the published emails, as of the commit searches see: read
    /// again when the reader has moved to a new commit.
    pub fn threads(&self) -> Result<std::sync::Arc<ThreadMap>> {
        let Some(dir) = &self.dir else {
            return Ok(Default::default());
        };
        let generation = self.reader.searcher().generation().generation_id();
        {
            let held = self.threads.read().unwrap_or_else(|e| e.into_inner());
            if held.0 == generation {
                return Ok(held.1.clone());
            }
        }
        let map = std::sync::Arc::new(ThreadMap::read(dir)?);
        *self.threads.write().unwrap_or_else(|e| e.into_inner()) = (generation, map.clone());
        Ok(map)
    }

    /// Runs a query in the search language: the first `limit` hits from `offset`, in the
    /// order `sort`, and how many match. The short form of [`SearchIndex::run`].
    pub fn search(
        &self,
        query: &str,
        sort: Sort,
        offset: usize,
        limit: usize,
        max_number: u64,
    ) -> Result<SearchResults> {
        self.run(&SearchRequest {
            sort,
            offset,
            limit,
            ..SearchRequest::new(query, max_number)
        })
    }

    /// Runs a search request.
    pub fn run(&self, r: &SearchRequest) -> Result<SearchResults> {
        Ok(self.run_with(r, None)?.0)
    }

    /// Runs a search request, with a highlighter for its hits' texts (snippets of at
    /// most `max_chars` bytes) made from the same query and snapshot, so that a page with
    /// snippets parses and builds its query once.
    pub fn run_highlighted(
        &self,
        r: &SearchRequest,
        max_chars: usize,
    ) -> Result<(SearchResults, Option<Highlighter>)> {
        self.run_with(r, Some(max_chars))
    }

    fn run_with(
        &self,
        r: &SearchRequest,
        highlight: Option<usize>,
    ) -> Result<(SearchResults, Option<Highlighter>)> {
        let expr = crate::query::parse(r.query)?;
        let after = r
            .after
            .filter(|c| !c.is_empty())
            .map(|c| decode_cursor(r.sort, c))
            .transpose()?;
        // One snapshot for the whole search: the cap below is judged on what it holds.
        let searcher = self.reader.searcher();
        self.columns.keep_only(&searcher);
        let threads = if expr.mentions_thread() {
            self.threads()?
        } else {
            Default::default()
        };
        let statistics = Statistics::new(&searcher);
        let q = self.released(
            &searcher,
            self.build(&expr, &threads, Some(&statistics)),
            r.max_number,
        );
        let pass = Pass::new(self, &statistics, &*q);
        let facet_key = (r.facets > 0).then(|| FacetKey {
            generation: searcher.generation().generation_id(),
            max_number: r.max_number,
            size: r.facets,
            query: r.query.to_owned(),
        });
        let kept = facet_key.as_ref().and_then(|k| self.kept_facets().get(k));
        let counter = (r.facets > 0 && kept.is_none()).then_some(FacetCounter {
            size: r.facets,
            columns: &self.columns,
        });
        let sort = if matches!(expr, Expr::All) && r.sort == Sort::Relevance {
            Sort::Newest
        } else {
            r.sort
        };
        // The usual page (the first, or one after a cursor) is counted, faceted and
        // ranked in one pass over the matches. A page by offset (old-style page numbers)
        // is counted first, so that the ranking never keeps more hits than exist.
        let (total, counted, keyed) = if r.limit == 0 || r.offset > 0 {
            let (total, counted, _) = pass.run(counter, None::<TopDocs>)?;
            let want = (r.offset + r.limit).min(total as usize);
            let keyed = if want == 0 || r.limit == 0 {
                Vec::new()
            } else {
                pass.ranked(sort, want, after, None)?.2
            };
            (total, counted, keyed)
        } else {
            pass.ranked(
                sort,
                r.limit.min(searcher.num_docs() as usize),
                after,
                counter,
            )?
        };
        drop(pass);
        let facets = match (kept, counted) {
            (Some(facets), _) => Some(facets),
            (None, Some(facets)) => {
                let facets = std::sync::Arc::new(facets);
                if let Some(key) = facet_key {
                    self.kept_facets().put(key, facets.clone());
                }
                Some(facets)
            }
            (None, None) => None,
        };
        let eligible: Vec<(Key, DocAddress)> = keyed
            .into_iter()
            .filter(|(k, _)| *k != SKIPPED)
            .skip(r.offset)
            .collect();
        let more = eligible.len() > r.limit;
        let page = &eligible[..eligible.len().min(r.limit)];
        let next = more
            .then(|| page.last().map(|(k, _)| encode_cursor(r.sort, *k)))
            .flatten();
        let mut hits = Vec::with_capacity(page.len());
        for (_, addr) in page {
            let doc: TantivyDocument = searcher.doc(*addr)?;
            let s = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let n = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
            let date = s(self.fields.date_display);
            hits.push(Hit {
                number: n(self.fields.number),
                release: n(self.fields.release) as u32,
                date: (!date.is_empty()).then_some(date),
                from: s(self.fields.from_display),
                subject: s(self.fields.subject_display),
            });
        }
        let highlighter =
            highlight.and_then(|max_chars| self.highlighter(&statistics, &*q, max_chars));
        Ok((
            SearchResults {
                total,
                hits,
                next,
                facets,
            },
            highlighter,
        ))
    }

    /// Forgets every counted facet, so that the next search counts its own: for
    /// benchmarks that measure the counting, not the keeping.
    pub fn forget_facets(&self) {
        *self.kept_facets() = facet_cache();
    }

    /// Which snapshot of the index searches now see: it changes when a new commit is
    /// loaded, so anything made from a search can be keyed by it.
    pub fn generation(&self) -> u64 {
        self.reader.searcher().generation().generation_id()
    }

    /// Facets already counted, by snapshot, signed numbers, size and query.
    fn kept_facets(&self) -> std::sync::MutexGuard<'_, FacetCache> {
        self.facet_cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `q`, restricted to the numbers a signed manifest covers. Usually the index holds
    /// nothing above them, and the restriction (a range scan over every match, a quarter
    /// of a search's time) is left out.
    fn released(
        &self,
        searcher: &tantivy::Searcher,
        q: Box<dyn Query>,
        max_number: u64,
    ) -> Box<dyn Query> {
        let highest = searcher
            .segment_readers()
            .iter()
            .filter_map(|s| self.columns.of(s).number.as_ref().map(|c| c.max_value()))
            .max()
            .unwrap_or(0);
        if highest <= max_number {
            return q;
        }
        let cap: Box<dyn Query> = Box::new(RangeQuery::new(
            Bound::Unbounded,
            Bound::Included(Term::from_field_u64(self.fields.number, max_number)),
        ));
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, q),
            (Occur::Must, cap),
        ]))
    }

    /// Snippets of several texts for one query (one highlighter for a page of hits):
    /// HTML, escaped text with `<b>` around the matches; `None` where nothing matches.
    /// (A page of search results gets its highlighter from
    /// [`SearchIndex::run_highlighted`] instead, without building the query again.)
    pub fn snippets(&self, query: &str, texts: &[&str], max_chars: usize) -> Vec<Option<String>> {
        let made = crate::query::parse(query).ok().and_then(|expr| {
            // Threads do not matter to which words are highlighted.
            let q = self.build(&expr, &ThreadMap::default(), None);
            self.highlighter(&self.reader.searcher(), &*q, max_chars)
        });
        let Some(highlighter) = made else {
            return vec![None; texts.len()];
        };
        texts.iter().map(|t| highlighter.html(t)).collect()
    }

    /// The highlighter of `q`'s words in the body, weighed by `statistics`'s document
    /// frequencies.
    fn highlighter(
        &self,
        statistics: &dyn tantivy::query::Bm25StatisticsProvider,
        q: &dyn Query,
        max_chars: usize,
    ) -> Option<Highlighter> {
        let analyzer = self.index.tokenizer_for_field(self.fields.body).ok()?;
        Highlighter::new(statistics, q, self.fields.body, analyzer, max_chars).ok()
    }

    fn field(&self, f: TextField) -> Field {
        match f {
            TextField::From => self.fields.from,
            TextField::To => self.fields.to,
            TextField::Cc => self.fields.cc,
            TextField::Subject => self.fields.subject,
            TextField::Body => self.fields.body,
            TextField::Filename => self.fields.filename,
            TextField::Attachment => self.fields.attachment,
        }
    }

    fn terms(&self, tokenizer: &str, field: Field, words: &str) -> Vec<Term> {
        let mut analyzer = self.index.tokenizers().get(tokenizer).expect("registered");
        let mut stream = analyzer.token_stream(words);
        let mut terms = Vec::new();
        while stream.advance() {
            terms.push(Term::from_field_text(field, &stream.token().text));
        }
        terms
    }

    /// `words` as a query on the exact text field `field` (all of them keep positions):
    /// one term, a phrase (quoted, or one word the tokenizer cuts in several, like
    /// `e-mail`, `k.allen@enron.com` or `東京`), or every term.
    fn words_query(&self, field: Field, words: &str, phrase: bool) -> Box<dyn Query> {
        let mut terms = self.terms(TOKENIZER, field, words);
        match terms.len() {
            0 => Box::new(EmptyQuery),
            1 => Box::new(TermQuery::new(
                terms.pop().expect("one"),
                IndexRecordOption::WithFreqs,
            )),
            _ if phrase || !words.contains(char::is_whitespace) => {
                Box::new(PhraseQuery::new(terms))
            }
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

    /// The emails with a word of the same stem as `words`, in every language: per
    /// language, one [`SearchIndex::stem_query`] per word, all of them for several words.
    /// A quoted phrase means exactly these words: it has none; nor has one word the
    /// tokenizer cuts in several, since the stem fields keep no positions. With
    /// `statistics`, the languages no email has, and the stems no email of theirs has,
    /// are left out.
    fn stemmed(
        &self,
        words: &str,
        phrase: bool,
        statistics: Option<&Statistics<'_>>,
    ) -> Vec<Box<dyn Query>> {
        if phrase {
            return Vec::new();
        }
        use tantivy::query::Bm25StatisticsProvider;
        let mut out = Vec::new();
        // The words as the exact fields hold them (the same cuts as the stems').
        let exact = self.terms(TOKENIZER, self.fields.body, words);
        for (slot, ((lang, _, _), field)) in STEMMED.iter().zip(&self.fields.stems).enumerate() {
            // A language no email is in is not stemmed for (most of the twelve, in most
            // archives): a search clones and runs an analyser per language asked.
            let in_language = Term::from_field_text(self.fields.lang, lang);
            if statistics.is_some_and(|s| s.doc_freq(&in_language).is_ok_and(|n| n == 0)) {
                continue;
            }
            // English's stems are asked as words of the exact fields.
            let field = field.unwrap_or(self.fields.body);
            let stems = self.terms(&stem_query_tokenizer(lang), field, words);
            if stems.len() > 1 && !words.contains(char::is_whitespace) {
                continue;
            }
            // One word that is its own stem: the exact fields' alternatives beside this
            // one find it in any email, so only the rest of its family is asked here.
            let alone = stems.len() == 1
                && exact.len() == 1
                && stems[0].serialized_value_bytes() == exact[0].serialized_value_bytes();
            // A word none of this language's emails has: none has them all.
            let Some(mut each) = stems
                .iter()
                .map(|stem| self.stem_query(slot, stem, !alone, statistics))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            match each.len() {
                0 => {}
                1 => out.extend(each.pop()),
                _ => out.push(Box::new(BooleanQuery::new(
                    each.into_iter().map(|q| (Occur::Must, q)).collect(),
                ))),
            }
        }
        out
    }

    /// The emails of language `slot` with a word whose stem is `stem` (a term of that
    /// language's stem field). The stem field holds only the stems that differ from
    /// their word, so a word that is its own stem (`meet` for `meeting`) is found in
    /// the exact fields, subject and body, of the emails in that language (the `lang`
    /// field), scored as those fields score it; the language itself adds nothing to the
    /// score. Where every email is in that language, it need not be asked. The matches
    /// are those of a stem field holding every word's stem, except that an exact word
    /// written with accents may stem otherwise than its folded form: such an email can
    /// match where it did not, never the other way round.
    ///
    /// [`FAMILY_AT_SEARCH`] has no stem field: its whole family, the words of subject and
    /// body with that stem ([`SearchIndex::family`]), is asked in the exact fields of
    /// its emails, each word scored as those fields score it.
    ///
    /// Without `itself`, only the words whose stem differs from it are asked (the stem
    /// field alone, or the family without the stem): the caller asks for the stem as a
    /// word in the exact fields.
    ///
    /// With `statistics`, the parts no email has are left out, and None means no email
    /// can match.
    fn stem_query(
        &self,
        slot: usize,
        stem: &Term,
        itself: bool,
        statistics: Option<&Statistics<'_>>,
    ) -> Option<Box<dyn Query>> {
        use tantivy::query::{Bm25StatisticsProvider, ConstScoreQuery};
        let f = &self.fields;
        let count = |term: &Term| statistics.map(|s| s.doc_freq(term).unwrap_or(1));
        let present = |term: &Term| count(term).is_none_or(|n| n > 0);
        let lang = Term::from_field_text(f.lang, STEMMED[slot].0);
        let value = stem.value();
        let word = value.as_str().unwrap_or_default();
        let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(2);
        // The words asked in the exact fields of this language's emails.
        let words: Vec<String> = if f.stems[slot].is_none() {
            let mut family = self.family(slot, word, statistics);
            if !itself {
                family.remove(word);
            }
            family.into_iter().collect()
        } else {
            if present(stem) {
                any.push((
                    Occur::Should,
                    Box::new(TermQuery::new(stem.clone(), IndexRecordOption::WithFreqs)),
                ));
            }
            // Only a word that is its own stem was left out of the stem field. When the
            // stem stems to something else (Snowball's stem of a stem may differ from it;
            // the unit test below met one among the Enron sample's words), the emails
            // holding it as a word are not of this family.
            let own_stem = || {
                let again = self.terms(&stem_query_tokenizer(STEMMED[slot].0), stem.field(), word);
                again.len() == 1 && again[0] == *stem
            };
            if !itself || !own_stem() {
                return any.pop().map(|(_, q)| q);
            }
            vec![word.to_owned()]
        };
        let exact: Vec<(Occur, Box<dyn Query>)> = words
            .iter()
            .flat_map(|word| [f.subject, f.body].map(|field| Term::from_field_text(field, word)))
            .filter(|term| present(term))
            .map(|term| {
                (
                    Occur::Should,
                    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)) as Box<dyn Query>,
                )
            })
            .collect();
        if !exact.is_empty() {
            let exact: Box<dyn Query> = Box::new(BooleanQuery::new(exact));
            let everyone = statistics.is_some_and(|s| {
                s.total_num_docs()
                    .is_ok_and(|all| count(&lang).is_some_and(|n| n >= all))
            });
            if everyone {
                any.push((Occur::Should, exact));
            } else {
                let in_language = ConstScoreQuery::new(
                    Box::new(TermQuery::new(lang, IndexRecordOption::Basic)),
                    0.0,
                );
                any.push((
                    Occur::Should,
                    Box::new(BooleanQuery::new(vec![
                        (Occur::Must, Box::new(in_language) as Box<dyn Query>),
                        (Occur::Must, exact),
                    ])),
                ));
            }
        }
        match any.len() {
            0 => None,
            1 => any.pop().map(|(_, q)| q),
            _ => Some(Box::new(BooleanQuery::new(any))),
        }
    }

    /// The words of subject and body in the snapshot searched whose stem in language
    /// `slot` is `stem`: a word's family, for [`FAMILY_AT_SEARCH`], whose stems are not
    /// indexed. Only the words that can have that stem are read from the term
    /// dictionaries and stemmed ([`family_beginnings`]).
    fn family(
        &self,
        slot: usize,
        stem: &str,
        statistics: Option<&Statistics<'_>>,
    ) -> std::collections::BTreeSet<String> {
        let own;
        let searcher = match statistics {
            Some(s) => s.searcher,
            None => {
                own = self.reader.searcher();
                &own
            }
        };
        let mut analyzer = self
            .index
            .tokenizers()
            .get(&stem_query_tokenizer(STEMMED[slot].0))
            .expect("registered");
        // A word met again (in the other field, another segment) is stemmed again: the
        // stemmer keeps what it stemmed on this thread (`CachedStemmer`).
        let mut family = std::collections::BTreeSet::new();
        for beginning in family_beginnings(stem) {
            for segment in searcher.segment_readers() {
                for field in [self.fields.subject, self.fields.body] {
                    let Ok(inverted) = segment.inverted_index(field) else {
                        continue;
                    };
                    let Ok(mut words) = inverted.terms().range().ge(&beginning).into_stream()
                    else {
                        continue;
                    };
                    while words.advance() && words.key().starts_with(beginning.as_bytes()) {
                        let Ok(word) = std::str::from_utf8(words.key()) else {
                            continue;
                        };
                        if family.contains(word) {
                            continue;
                        }
                        let mut stems = analyzer.token_stream(word);
                        if stems.advance() && stems.token().text == stem && !stems.advance() {
                            family.insert(word.to_owned());
                        }
                    }
                }
            }
        }
        family
    }

    fn exact(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    }

    /// The query for `expr`. With `statistics`, a word's alternatives (its fields, its stems)
    /// that no email of the snapshot has are left out: each would still be weighed and
    /// given a scorer per segment only to match nothing (a bare word asks 19 fields, and
    /// most lack it). The hits and their scores are the same: tantivy's union drops a
    /// scorer with no match before it sums.
    fn build(
        &self,
        expr: &Expr,
        threads: &ThreadMap,
        statistics: Option<&Statistics<'_>>,
    ) -> Box<dyn Query> {
        let f = &self.fields;
        match expr {
            Expr::All => Box::new(AllQuery),
            Expr::Text {
                field: Some(field @ (TextField::Subject | TextField::Body)),
                words,
                phrase,
            } => {
                // `body:` also matches stems. The stem fields hold subject and body
                // together, so a stemmed `body:` word may be in the subject: looser, never
                // missing a match.
                let mut any = vec![(
                    Occur::Should,
                    self.words_query(self.field(*field), words, *phrase),
                )];
                if *field == TextField::Body {
                    any.extend(
                        self.stemmed(words, *phrase, statistics)
                            .into_iter()
                            .map(|q| (Occur::Should, q)),
                    );
                }
                any_of(any, statistics)
            }
            Expr::Text {
                field: Some(field),
                words,
                phrase,
            } => self.words_query(self.field(*field), words, *phrase),
            Expr::Text {
                field: None,
                words,
                phrase,
            } => {
                let mut any: Vec<(Occur, Box<dyn Query>)> = [
                    f.subject,
                    f.from,
                    f.to,
                    f.cc,
                    f.body,
                    f.filename,
                    f.attachment,
                ]
                .into_iter()
                .map(|field| (Occur::Should, self.words_query(field, words, *phrase)))
                .collect();
                any.extend(
                    self.stemmed(words, *phrase, statistics)
                        .into_iter()
                        .map(|q| (Occur::Should, q)),
                );
                any_of(any, statistics)
            }
            Expr::Dkim(status) => self.exact(f.dkim, status),
            Expr::Exact(which, value) => match which {
                ExactField::Domain => self.exact(f.domain, value),
                ExactField::Person => self.exact(f.person, value),
                ExactField::FileType => self.exact(f.filetype, value),
            },
            Expr::HasAttachment => self.exact(f.has, "attachment"),
            Expr::Release(k) => Box::new(TermQuery::new(
                Term::from_field_u64(f.release, *k as u64),
                IndexRecordOption::Basic,
            )),
            Expr::Thread(n) => match threads.thread_of(*n) {
                Some(t) => Box::new(TermSetQuery::new(
                    threads
                        .members(t)
                        .into_iter()
                        .map(|m| Term::from_field_u64(f.number, m)),
                )),
                None => Box::new(EmptyQuery),
            },
            Expr::Date { from, to } => {
                let term = |t: i64| Term::from_field_i64(f.date, t);
                Box::new(RangeQuery::new(
                    from.map_or(Bound::Excluded(term(NO_DATE)), |t| Bound::Included(term(t))),
                    to.map_or(Bound::Unbounded, |t| Bound::Excluded(term(t))),
                ))
            }
            Expr::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, self.build(inner, threads, statistics)),
            ])),
            Expr::And(parts) => Box::new(BooleanQuery::new(
                parts
                    .iter()
                    .map(|p| (Occur::Must, self.build(p, threads, statistics)))
                    .collect(),
            )),
            Expr::Or(parts) => Box::new(BooleanQuery::new(
                parts
                    .iter()
                    .map(|p| (Occur::Should, self.build(p, threads, statistics)))
                    .collect(),
            )),
        }
    }
}

/// A query matching any of `clauses` (each `Should`), without the clauses none of whose
/// terms any email of the snapshot has, by `statistics` (a clause made of words cannot
/// match then); all of them without.
fn any_of(
    clauses: Vec<(Occur, Box<dyn Query>)>,
    statistics: Option<&Statistics<'_>>,
) -> Box<dyn Query> {
    use tantivy::query::Bm25StatisticsProvider;
    let Some(statistics) = statistics else {
        return Box::new(BooleanQuery::new(clauses));
    };
    let present = |q: &dyn Query| {
        let mut found = false;
        q.query_terms(&mut |term, _| {
            // A term that cannot be looked up counts as present: kept, as before.
            found = found || statistics.doc_freq(term).map_or(true, |n| n > 0);
        });
        found
    };
    let kept: Vec<(Occur, Box<dyn Query>)> =
        clauses.into_iter().filter(|(_, q)| present(&**q)).collect();
    if kept.is_empty() {
        return Box::new(EmptyQuery);
    }
    Box::new(BooleanQuery::new(kept))
}

/// Brings `site`'s index up to date with its releases from `from` on: adds their emails
/// and removes the ones they withdraw (a mirror after a pull), then threads every
/// published email again. Builds the whole index when there is none. Returns how many
/// emails were added.
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

/// The searchable text of a published attachment (`attachment:` and bare words), if any
/// can be read: an image or a broken document adds nothing, and its name is still indexed.
pub fn attachment_text(a: &crate::PublishedAttachment, bytes: &[u8]) -> Option<String> {
    trove_mail::extract::attachment_text(&a.content_type, a.filename.as_deref(), bytes)
        .text()
        .filter(|t| !t.trim().is_empty())
        .map(str::to_string)
}

fn attachment_texts(site: &Site, m: &PublishedMessage) -> Vec<String> {
    m.attachments
        .iter()
        .filter_map(|a| {
            let path = site.root().join(crate::attachment_path(&a.sha256));
            attachment_text(a, &std::fs::read(path).ok()?)
        })
        .collect()
}

/// Threads the site again for a release that writes its emails to the index itself:
/// `added` are the emails it publishes, `removed` the numbers it withdraws. Call it before
/// committing the index, so that a reader who sees the commit finds the threads.
pub fn rethread(
    site: &Site,
    added: impl IntoIterator<Item = Links>,
    removed: &[u64],
) -> Result<()> {
    crate::threads::apply(&site.index_dir(), added, removed)
}

/// (Re-)indexes the emails of releases `from` on, removes the ones they withdraw, and
/// threads the result.
fn index_releases(site: &Site, from: u32) -> Result<u64> {
    let dir = site.index_dir();
    let index = SearchIndex::open_or_create(&dir)?;
    let writer = index.writer()?;
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for k in from.max(1).. {
        let Some(manifest) = site.manifest(k)? else {
            break;
        };
        index.delete_release(&writer, k);
        for number in manifest.numbers.first..=manifest.numbers.last {
            // A withdrawn email has no file: nothing to index.
            if let Some(message) = site.message(number)? {
                index.add(&writer, &message, &attachment_texts(site, &message))?;
                added.push(Links::of(&message));
            }
        }
        for w in &manifest.withdrawn {
            index.delete_number(&writer, w.number);
            removed.push(w.number);
        }
    }
    let count = added.len() as u64;
    crate::threads::apply(&dir, added, &removed)?;
    index.commit_whole(writer)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::{
        FAMILY_AT_SEARCH, OTHER_LANGUAGES_WORDS, STEMMED, SearchIndex, Statistics, ThreadMap,
        family_beginnings, language_of, may_be_other_language, reads_as_english,
    };
    use crate::{Person, PublishedMessage};
    use std::collections::BTreeSet;
    use tantivy::collector::{Count, TopDocs};

    /// Email `number` of release 1 with `subject` and `text`.
    fn email(number: u64, subject: String, text: String) -> PublishedMessage {
        PublishedMessage {
            format: 1,
            number,
            release: 1,
            subject,
            text,
            ..Default::default()
        }
    }

    /// After a commit the index is one segment, its emails in number order whichever
    /// segment held them, and an email deleted before it is gone from the index's
    /// files, not only from its results.
    #[test]
    fn commit_whole_leaves_one_segment_in_number_order_without_the_deleted() {
        let index = SearchIndex::in_ram().unwrap();
        let mut w = index.writer().unwrap();
        // Three segments, the highest numbers written first.
        for first in [21u64, 11, 1] {
            for n in first..first + 10 {
                let text = if n == 5 { "Zeppelin" } else { "Lunch" };
                let m = email(n, format!("Note {n}"), text.into());
                index.add(&w, &m, &[]).unwrap();
            }
            w.commit().unwrap();
        }
        assert_eq!(index.index.searchable_segments().unwrap().len(), 3);
        // The index's own reader holds the three, as a release's holds the segments of
        // the releases before it: that does not keep their files.
        index.reload().unwrap();
        index.delete_number(&w, 5);
        index.commit_whole(w).unwrap();
        index.reload().unwrap();
        let searcher = index.reader.searcher();
        assert_eq!(searcher.segment_readers().len(), 1);
        let segment = &searcher.segment_readers()[0];
        assert_eq!((segment.max_doc(), segment.num_docs()), (29, 29));
        let numbers = segment.fast_fields().u64("number").unwrap();
        let in_order: Vec<u64> = (0..29).filter_map(|d| numbers.first(d)).collect();
        let expected: Vec<u64> = (1..=30).filter(|&n| n != 5).collect();
        assert_eq!(in_order, expected);
        // A delete alone leaves the email's words in the index (counted by doc_freq);
        // the merge removes them.
        let zeppelin = index.terms(super::TOKENIZER, index.fields.body, "zeppelin");
        assert_eq!(searcher.doc_freq(&zeppelin[0]).unwrap(), 0);
        // And the merged segments' files are gone, not only out of use.
        let live = segment.segment_id().uuid_string();
        let mut on_disk: Vec<String> = index
            .index
            .directory()
            .list_managed_files()
            .iter()
            .filter_map(|f| Some(f.file_stem()?.to_str()?.to_string()))
            .filter(|stem| stem.len() == 32)
            .collect();
        on_disk.sort();
        on_disk.dedup();
        assert_eq!(on_disk, vec![live]);
    }

    /// What runs beside a commit sees the index as it was, and a failure there leaves it
    /// so: the release's manifest and thread map come first, or nothing is committed.
    #[test]
    fn commit_whole_with_commits_only_after_what_runs_beside_it_succeeded() {
        let index = SearchIndex::in_ram().unwrap();
        let count = |index: &SearchIndex| {
            index.reload().unwrap();
            index.reader.searcher().num_docs()
        };
        let w = index.writer().unwrap();
        index
            .add(&w, &email(1, "One".into(), "Lunch".into()), &[])
            .unwrap();
        let failed: crate::Result<()> = index.commit_whole_with(w, || {
            Err(crate::SiteError::Format {
                path: "manifest".into(),
                message: "no key".into(),
            })
        });
        assert!(failed.is_err());
        assert_eq!(count(&index), 0);

        let w = index.writer().unwrap();
        index
            .add(&w, &email(2, "Two".into(), "Lunch".into()), &[])
            .unwrap();
        let seen_beside = index.commit_whole_with(w, || Ok(count(&index))).unwrap();
        assert_eq!((seen_beside, count(&index)), (0, 1));
    }

    /// Leaving out a word's alternatives that no email has changes nothing a search
    /// finds: the same emails with the same scores, bit for bit, for words in some
    /// fields and not others, in several languages, absent words, phrases, `body:`,
    /// negations and alternatives, over two segments.
    #[test]
    fn absent_alternatives_left_out_change_no_hit_or_score() {
        let texts = [
            (
                "Pipeline meeting",
                "The meetings about the gas pipeline are moved to Friday.",
            ),
            (
                "Réunion",
                "Les réunions sur le gazoduc sont déplacées à vendredi.",
            ),
            (
                "Besprechung",
                "Die Besprechungen über die Pipeline werden verschoben.",
            ),
            ("Lunch", "Lunch on Friday? Bring the contract."),
        ];
        let index = SearchIndex::in_ram().unwrap();
        let mut w = index.writer().unwrap();
        for n in 1..=40u64 {
            let (subject, text) = texts[n as usize % texts.len()];
            // One email has a word no other has.
            let text = if n == 33 {
                format!("{text} Zeppelin.")
            } else {
                text.into()
            };
            let m = PublishedMessage {
                from: vec![Person {
                    name: Some(["Kay Mann", "Jürgen Weiß"][n as usize % 2].into()),
                    address: Some(format!("p{}@enron.com", n % 3)),
                }],
                ..email(n, format!("{subject} {n}"), text)
            };
            let attached = if n % 5 == 0 {
                vec!["pipeline tariff schedule".to_string()]
            } else {
                vec![]
            };
            index.add(&w, &m, &attached).unwrap();
            if n == 20 {
                w.commit().unwrap();
            }
        }
        w.commit().unwrap();
        index.reload().unwrap();
        let searcher = index.reader.searcher();
        let mut pruned_any = false;
        for q in [
            "pipeline",
            "meeting",
            "meetings",
            "réunion",
            "besprechung",
            "kay",
            "weiss",
            "tariff",
            "friday",
            "nowhere",
            "\"gas pipeline\"",
            "body:meeting",
            "subject:lunch",
            "pipeline -friday",
            "lunch OR gazoduc",
            "e-mail",
            "(kay OR nowhere) contract",
            "zeppelin",
            "7",
            "pipeline 13",
        ] {
            let expr = crate::query::parse(q).unwrap();
            let threads = ThreadMap::default();
            let whole = index.build(&expr, &threads, None);
            // Built and weighed with the figures the pruning looked up and kept.
            let statistics = Statistics::new(&searcher);
            let pruned = index.build(&expr, &threads, Some(&statistics));
            let terms = |q: &dyn tantivy::query::Query| {
                let mut n = 0;
                q.query_terms(&mut |_, _| n += 1);
                n
            };
            pruned_any |= terms(&*pruned) < terms(&*whole);
            let hits =
                |q: &dyn tantivy::query::Query,
                 statistics: &dyn tantivy::query::Bm25StatisticsProvider| {
                    let collector = (TopDocs::with_limit(100), Count);
                    let (top, count) = searcher
                        .search_with_statistics_provider(q, &collector, statistics)
                        .unwrap();
                    let top: Vec<(u32, tantivy::DocAddress)> =
                        top.into_iter().map(|(s, a)| (s.to_bits(), a)).collect();
                    (top, count)
                };
            assert_eq!(hits(&*pruned, &statistics), hits(&*whole, &searcher), "{q}");
        }
        assert!(pruned_any, "some alternative was left out");
    }

    /// Each word of `texts` (three letters or more, ASCII) and an inflection of every
    /// fifth, searched in an index of one email per text: the emails found are those
    /// with the word, or, in the email's language, a word of the same stem (in English,
    /// whose family is found at search time, a word as the exact fields hold it, folded;
    /// in the others, as written). Returns the
    /// index, the languages of the emails, how many words were searched, and how many
    /// emails were found by their family alone.
    fn search_every_word_of(texts: &[String]) -> (SearchIndex, BTreeSet<usize>, usize, usize) {
        use super::{CachedStemmer, Sort, stem_analyzer, words_analyzer};

        let index = SearchIndex::in_ram().unwrap();
        let w = index.writer().unwrap();
        for (i, text) in texts.iter().enumerate() {
            let m = email(i as u64 + 1, String::new(), text.clone());
            index.add(&w, &m, &[]).unwrap();
        }
        index.commit_whole(w).unwrap();
        index.reload().unwrap();

        let words = |mut analyzer: tantivy::tokenizer::TextAnalyzer, text: &str| {
            let mut stream = analyzer.token_stream(text);
            let mut out = Vec::new();
            while stream.advance() {
                out.push(stream.token().text.clone());
            }
            out
        };
        let every_stem = |slot: usize, text: &str| {
            words(
                stem_analyzer(CachedStemmer::new(slot, STEMMED[slot].1)),
                text,
            )
        };
        /// An email's words, and its language with its stems in that language.
        struct Words {
            exact: BTreeSet<String>,
            stems: Option<(usize, BTreeSet<String>)>,
        }
        let emails: Vec<Words> = texts
            .iter()
            .map(|t| {
                let exact: BTreeSet<String> = words(words_analyzer(), t).into_iter().collect();
                let stems = language_of(t).map(|l| {
                    let stems = if l == FAMILY_AT_SEARCH {
                        exact.iter().flat_map(|w| every_stem(l, w)).collect()
                    } else {
                        every_stem(l, t).into_iter().collect()
                    };
                    (l, stems)
                });
                Words { exact, stems }
            })
            .collect();
        let languages: BTreeSet<usize> = emails
            .iter()
            .filter_map(|e| Some(e.stems.as_ref()?.0))
            .collect();

        let mut queries: BTreeSet<String> = emails
            .iter()
            .flat_map(|e| e.exact.iter())
            .filter(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_lowercase()))
            .filter(|w| !["and", "not"].contains(&w.as_str()))
            .cloned()
            .collect();
        let inflected: Vec<String> = queries
            .iter()
            .step_by(5)
            .flat_map(|w| [format!("{w}s"), format!("{w}ing"), format!("{w}ed")])
            .collect();
        queries.extend(inflected);
        let (mut by_family, mut checked) = (0, 0);
        for q in &queries {
            let expected: Vec<u64> = emails
                .iter()
                .enumerate()
                .filter(|(_, Words { exact, stems })| {
                    exact.contains(q)
                        || stems.as_ref().is_some_and(|(l, stems)| {
                            every_stem(*l, q).first().is_some_and(|s| stems.contains(s))
                        })
                })
                .map(|(i, _)| i as u64 + 1)
                .collect();
            let mut found: Vec<u64> = index
                .search(q, Sort::Newest, 0, 1000, u64::MAX)
                .unwrap()
                .hits
                .iter()
                .map(|h| h.number)
                .collect();
            found.sort();
            assert_eq!(found, expected, "{q}");
            by_family += expected
                .iter()
                .filter(|&&n| !emails[n as usize - 1].exact.contains(q))
                .count();
            checked += 1;
        }
        (index, languages, checked, by_family)
    }

    /// The Enron sample's texts longer than 40 bytes, up to 60.
    fn enron_texts() -> Vec<String> {
        let sample = include_str!("../../trove/demo/enron-allen-p-sample.mbox");
        sample
            .split("\nFrom ")
            .filter_map(|m| Some(m.split_once("\n\n")?.1.to_string()))
            .filter(|t| t.len() > 40)
            .take(60)
            .collect()
    }

    /// The stem fields hold only the stems that differ from their word, and a search
    /// finds a word that is its own stem in the exact fields of the emails in that
    /// language: the same emails as stem fields holding every word's stem would give.
    /// Checked against that rule, computed here word by word, for the words of real mail
    /// (the Enron sample) and their inflections, and for German and French emails that
    /// hold English words, whose own stemmers make other stems of them.
    #[test]
    fn a_stem_finds_the_emails_of_its_whole_family_in_their_language() {
        let mut texts = enron_texts();
        texts.extend([
            "Die Besprechung ist abgesagt; wir meet uns morgen wegen der contracts und der \
             Verträge, die noch nicht unterschrieben worden sind."
                .to_string(),
            "La réunion est annulée; nous parlerons demain du contract et des meetings \
             prévus avec les avocats de la société."
                .to_string(),
            "We will meet again about the meetings and the contracts next week, as agreed."
                .to_string(),
        ]);
        let (index, languages, checked, by_family) = search_every_word_of(&texts);
        assert!(languages.len() >= 3, "{languages:?}");
        assert!(checked > 500, "{checked}");
        assert!(by_family > 50, "{by_family}");
        // The stems that differ from their word are all the stem fields hold, and
        // English has none.
        let searcher = index.reader.searcher();
        let meet = |slot: usize, word: &str| {
            let term = tantivy::Term::from_field_text(index.fields.stems[slot].unwrap(), word);
            searcher.doc_freq(&term).unwrap()
        };
        assert!(meet(2, "vertrag") > 0, "German: Verträge → vertrag");
        assert_eq!(meet(2, "meet"), 0, "German: meet is its own stem");
        assert!(index.fields.stems[FAMILY_AT_SEARCH].is_none());
        assert!(index.index.schema().get_field("stem_en").is_err());
    }

    /// The same rule where every email is in one language, so that a search does not
    /// ask the language (`stem_query`'s shortcut).
    #[test]
    fn a_stem_finds_its_whole_family_where_every_email_is_in_one_language() {
        let texts: Vec<String> = enron_texts()
            .into_iter()
            .filter(|t| language_of(t) == Some(0))
            .collect();
        let (index, languages, checked, by_family) = search_every_word_of(&texts);
        assert_eq!(languages, BTreeSet::from([0]));
        let searcher = index.reader.searcher();
        let english = tantivy::Term::from_field_text(index.fields.lang, STEMMED[0].0);
        assert_eq!(searcher.doc_freq(&english).unwrap(), searcher.num_docs());
        assert!(checked > 300, "{checked}");
        assert!(by_family > 20, "{by_family}");
    }

    /// Every word begins with one of its English stem's beginnings, Snowball's
    /// exceptions included; a search finds the family across segments.
    #[test]
    fn an_english_family_is_found_among_the_words_of_every_segment() {
        let stem = |w: &str| {
            rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English)
                .stem(w)
                .into_owned()
        };
        for word in [
            "happy",
            "happiness",
            "hoping",
            "dying",
            "tying",
            "contracts",
            "go",
        ] {
            let s = stem(word);
            assert!(
                family_beginnings(&s)
                    .iter()
                    .any(|b| word.starts_with(b.as_str())),
                "{word} -> {s}: {:?}",
                family_beginnings(&s)
            );
        }
        assert_eq!(family_beginnings("go"), ["go"]);
        assert_eq!(family_beginnings("happi"), ["happi", "happy"]);

        let index = SearchIndex::in_ram().unwrap();
        let texts = [
            "We signed the contracts yesterday and will send them over to the team today.",
            "The contract was signed and the other documents are with the lawyers for now.",
            "They are contracting a new firm to review the agreements before the meeting.",
            "Nothing about the agreement here, only lunch plans for the team on Friday.",
        ];
        let mut emails: Vec<_> = (texts.iter().enumerate())
            .map(|(i, text)| email(i as u64 + 1, String::new(), text.to_string()))
            .collect();
        // A family word in a subject only.
        emails.push(email(
            5,
            "Contracted work".into(),
            "See the attached.".into(),
        ));
        for m in &emails {
            // One commit per email, not merged: one segment each.
            let mut w = index.writer().unwrap();
            index.add(&w, m, &[]).unwrap();
            w.commit().unwrap();
        }
        index.reload().unwrap();
        assert!(index.reader.searcher().segment_readers().len() > 1);
        let family = index.family(FAMILY_AT_SEARCH, "contract", None);
        assert_eq!(
            family.into_iter().collect::<Vec<_>>(),
            ["contract", "contracted", "contracting", "contracts"]
        );
        let found = |q: &str| {
            let mut n: Vec<u64> = index
                .search(q, super::Sort::Newest, 0, 10, u64::MAX)
                .unwrap()
                .hits
                .iter()
                .map(|h| h.number)
                .collect();
            n.sort();
            n
        };
        assert_eq!(found("contracted"), [1, 2, 3, 5]);
        assert_eq!(found("contracts"), [1, 2, 3, 5]);
        assert_eq!(found("agreements"), [3, 4]);
    }

    /// whatlang is asked only about text with the other languages' common words, or
    /// Cyrillic: English that whatlang misnamed in the shared corpora is English without
    /// it, and text in those languages still reaches it.
    #[test]
    fn whatlang_is_asked_only_about_text_with_other_languages_words() {
        assert!(
            OTHER_LANGUAGES_WORDS.is_sorted(),
            "binary search needs byte order"
        );
        for english in [
            "When: Wednesday, October 03, 2001 10:30 AM-11:30 AM (GMT-06:00) Central Time \
             (US & Canada). Where: 3AC 1603",
            "FYI - see attached Press Release. Barbara Sain, Law Department, Compaq Computer \
             Corporation <<CPQ Board Release.doc>>",
            "Please send the LA gas numbers to k.allen@enron.com and p.allen@enron.com per \
             the van pool list before the MIT meeting over lunch; men and women welcome.",
        ] {
            assert!(!may_be_other_language(english), "{english}");
            assert_eq!(language_of(english), Some(0), "{english}");
        }
        let code = |lang: &str| STEMMED.iter().position(|(c, _, _)| *c == lang);
        for (text, lang) in [
            (
                "Die Verträge sind unterschrieben, und wir schicken sie morgen.",
                "de",
            ),
            (
                "Nous avons reçu les documents et la réunion est confirmée pour jeudi.",
                "fr",
            ),
            (
                "Hemos recibido los documentos y la reunión es el jueves por la tarde.",
                "es",
            ),
            ("Здравствуйте! Вас интересуют клиентские базы данных?", "ru"),
        ] {
            assert!(may_be_other_language(text), "{text}");
            assert_eq!(language_of(text), code(lang), "{text}");
        }
    }

    /// whatlang is asked about the first 1,000 bytes only: French for 900 of them,
    /// then German to the end, is French, though German is most of the first 2,000.
    #[test]
    fn whatlang_reads_the_first_thousand_bytes() {
        let repeat = |s: &str, bytes: usize| {
            let mut out = String::new();
            while out.len() < bytes {
                out.push_str(s);
            }
            out.truncate(out.floor_char_boundary(bytes));
            out
        };
        let french = repeat(
            "Merci pour la mise à jour. Nous avons regardé les chiffres que vous avez \
             envoyés et nous allons suivre le plan convenu la semaine dernière. ",
            900,
        );
        let german = repeat(
            "Danke für die Aktualisierung. Wir haben uns die Zahlen angesehen, die Sie \
             geschickt haben, und machen mit dem Plan weiter, der vereinbart wurde. ",
            1400,
        );
        let code = |lang: &str| STEMMED.iter().position(|(c, _, _)| *c == lang);
        assert!(french.len() < 1000 && french.len() + german.len() > 2000);
        assert_eq!(language_of(&german), code("de"));
        assert_eq!(language_of(&format!("{french}{german}")), code("fr"));
    }

    #[test]
    fn english_is_told_by_its_common_words_and_other_languages_go_to_whatlang() {
        let english = "Thanks for the update. I have looked at the numbers you sent and they \
            are what we expected, so we will go ahead with the plan that was agreed last week.";
        let french = "Merci pour la mise à jour. J'ai regardé les chiffres que vous avez \
            envoyés et ils correspondent à ce que nous attendions, donc nous allons suivre le \
            plan convenu la semaine dernière.";
        let german = "Danke für die Aktualisierung. Ich habe mir die Zahlen angesehen, die Sie \
            geschickt haben, und sie entsprechen unseren Erwartungen, also machen wir mit dem \
            Plan weiter, der letzte Woche vereinbart wurde.";
        // `for` is Danish and `will` German: neither is counted.
        let danish = "Tak for opdateringen. Jeg har set på tallene, som du sendte, og de er             som forventet, så vi går videre med planen, som blev aftalt i sidste uge. Det er             godt for os alle, og tak for hjælpen.";
        let german_will = "Er will morgen kommen, und sie will die Zahlen sehen, die wir             letzte Woche geschickt haben; danach will das Team den Plan besprechen.";
        assert!(reads_as_english(english));
        assert!(!reads_as_english(french));
        assert!(!reads_as_english(german));
        assert!(!reads_as_english(danish));
        assert!(!reads_as_english(german_will));
        // Too few words to count on.
        assert!(!reads_as_english("See you at 3 with the files"));
        let code = |lang: &str| STEMMED.iter().position(|(c, _, _)| *c == lang);
        assert_eq!(language_of(english), code("en"));
        assert_eq!(language_of(french), code("fr"));
        assert_eq!(language_of(german), code("de"));
    }

    /// The packed comparison answers as splitting into words and comparing each with
    /// the sixteen words ignoring case did, on openings made of English, other-language
    /// and non-letter pieces in every order.
    #[test]
    fn reads_as_english_answers_as_the_word_by_word_reading() {
        fn word_by_word(opening: &str) -> bool {
            let (mut words, mut english) = (0usize, 0usize);
            for word in opening
                .split(|c: char| !c.is_alphabetic())
                .filter(|w| !w.is_empty())
            {
                words += 1;
                if word.len() <= 5
                    && super::ENGLISH_WORDS
                        .iter()
                        .any(|e| word.eq_ignore_ascii_case(e))
                {
                    english += 1;
                }
            }
            words >= 20 && english * 100 >= words * 8
        }
        let pieces = [
            "the ",
            "The",
            "THE",
            "thé ",
            "theː",
            "there's ",
            "whiches ",
            "WOULD,",
            "yourself ",
            "wéré ",
            "from—",
            "über ",
            "und ",
            "der ",
            "Straße ",
            "日本語 ",
            "où ",
            "été ",
            "3rd ",
            "42 ",
            "—",
            "\n",
            "\t",
            "'",
            "are",
            "n't ",
            "thisthat ",
            "ﬁle ",
            "İstanbul ",
            "and\u{301} ",
            "ΑΒΓ ",
            "with ",
            "thE\r\n",
            "x ",
            "a ",
            "been. ",
        ];
        let (mut seed, mut agreed, mut english) = (0x2545_f491_4f6c_dd1du64, 0, 0);
        for _ in 0..20_000 {
            let mut opening = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = 15 + (seed % 40) as usize;
            for k in 0..n {
                let r = seed.rotate_left(k as u32 * 7) ^ (k as u64).wrapping_mul(0x9e37_79b9);
                opening.push_str(pieces[(r % pieces.len() as u64) as usize]);
            }
            let expected = word_by_word(&opening);
            assert_eq!(reads_as_english(&opening), expected, "{opening:?}");
            agreed += 1;
            english += expected as usize;
        }
        // Both answers occur, so the comparison tells something.
        assert!(
            english > 1_000 && english < agreed - 1_000,
            "{english} of {agreed}"
        );
    }
}
