//! How text is cut into words for the index.
//!
//! Alphabetic scripts split on anything that is not a letter or a digit, as tantivy's
//! `SimpleTokenizer` does. Chinese, Japanese and Korean do not separate words with spaces,
//! so each of their characters is a word of its own: a query of several characters is then
//! a phrase of consecutive characters (see `SearchIndex::text_query`), which finds the
//! word wherever it is written and needs no dictionary. The filters after this tokenizer
//! (lower-casing, accent folding, stemming) leave such characters alone.

use std::cell::RefCell;

use rustc_hash::FxHashMap;
use tantivy::tokenizer::{Token, TokenFilter, TokenStream, Tokenizer};

/// Words of this many bytes or more are not indexed: hashes, base64 runs, glued-together
/// URLs.
pub const LONGEST_WORD: usize = 60;

/// Cuts text into words and lower-cases them: what tantivy's `RemoveLongFilter` (at
/// [`LONGEST_WORD`]) and `LowerCaser` after a word cutter would give, token for token
/// and position for position (a test compares them), in one pass over the text's bytes.
/// Cutting char by char with Unicode's tables, then the two filters, took a 10k release
/// 13.56 G instructions besides SHA-256 under callgrind, against 12.99 G this way: an
/// ASCII byte is told a letter or a digit by itself, and only the rest is decoded.
#[derive(Clone, Default)]
pub struct WordTokenizer {
    token: Token,
}

pub struct WordStream<'a> {
    text: &'a str,
    at: usize,
    token: &'a mut Token,
}

/// Han, kana and Hangul: written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF     // hiragana, katakana
        | 0x3400..=0x4DBF   // CJK extension A
        | 0x4E00..=0x9FFF   // CJK unified ideographs
        | 0xF900..=0xFAFF   // compatibility ideographs
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0x20000..=0x2FFFF // supplementary ideographs
    )
}

/// Whether each character from U+0080 to U+07FF (two bytes in UTF-8: accented Latin,
/// Greek, Cyrillic, Armenian, Hebrew, Arabic) is a letter or a digit, a bit each, made
/// by `char::is_alphanumeric`, which searches Unicode's tables on every call.
static TWO_BYTE_WORD: std::sync::LazyLock<[u64; 30]> = std::sync::LazyLock::new(|| {
    let mut bits = [0u64; 30];
    for c in (0x80..0x800).filter_map(char::from_u32) {
        if c.is_alphanumeric() {
            let i = c as usize - 0x80;
            bits[i / 64] |= 1 << (i % 64);
        }
    }
    bits
});

/// `c.is_alphanumeric()`, from the table for two-byte characters.
fn is_word_char(c: char, two_byte: &[u64; 30]) -> bool {
    match (c as usize).checked_sub(0x80) {
        Some(i) if i < 30 * 64 => two_byte[i / 64] & (1 << (i % 64)) != 0,
        _ => c.is_alphanumeric(),
    }
}

/// The next word of `text` at or after byte `at` (a character boundary): its start and
/// end, and whether it is all ASCII. A word is a run of letters and digits; a CJK
/// character is a word of its own.
pub(crate) fn next_word(text: &str, mut at: usize) -> Option<(usize, usize, bool)> {
    let bytes = text.as_bytes();
    let two_byte = &*TWO_BYTE_WORD;
    // The character at `at`, which is not ASCII.
    let wide = |at: usize| text[at..].chars().next().expect("a character boundary");
    loop {
        let b = *bytes.get(at)?;
        if b.is_ascii() {
            if b.is_ascii_alphanumeric() {
                break;
            }
            at += 1;
        } else {
            let c = wide(at);
            if is_word_char(c, two_byte) {
                if is_cjk(c) {
                    return Some((at, at + c.len_utf8(), false));
                }
                break;
            }
            at += c.len_utf8();
        }
    }
    let start = at;
    let mut ascii = true;
    while let Some(&b) = bytes.get(at) {
        if b.is_ascii() {
            if !b.is_ascii_alphanumeric() {
                break;
            }
            at += 1;
        } else {
            let c = wide(at);
            if !is_word_char(c, two_byte) || is_cjk(c) {
                break;
            }
            ascii = false;
            at += c.len_utf8();
        }
    }
    Some((start, at, ascii))
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream<'a> {
        self.token.reset();
        self.token.position = usize::MAX;
        WordStream {
            text,
            at: 0,
            token: &mut self.token,
        }
    }
}

impl TokenStream for WordStream<'_> {
    fn advance(&mut self) -> bool {
        loop {
            let Some((start, end, ascii)) = next_word(self.text, self.at) else {
                self.at = self.text.len();
                return false;
            };
            self.at = end;
            // A long word keeps its position, as with tantivy's filter after a cutter.
            self.token.position = self.token.position.wrapping_add(1);
            if end - start >= LONGEST_WORD {
                continue;
            }
            self.token.offset_from = start;
            self.token.offset_to = end;
            let word = &self.text[start..end];
            let text = &mut self.token.text;
            text.clear();
            if ascii {
                text.push_str(word);
                text.make_ascii_lowercase();
            } else {
                // Character by character, as tantivy's `LowerCaser` does (a final
                // sigma stays σ).
                for c in word.chars() {
                    text.extend(c.to_lowercase());
                }
            }
            return true;
        }
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// Tantivy's `Stemmer` filter, with the stems each thread has made kept by language.
///
/// The words of mail follow Zipf's law: a release stems the same few thousand words
/// over and over, and the Snowball stemmers were a tenth of a release's samples, on its
/// one indexing thread. A word looked up costs a hash of a few bytes; a word stemmed
/// costs the stemmer's suffix rules. The stem of a word depends on the word alone, so a
/// kept stem is the stem.
#[derive(Clone, Copy)]
pub struct CachedStemmer {
    /// Which of the caller's languages this is: the slot of its kept stems.
    slot: usize,
    algorithm: rust_stemmers::Algorithm,
    /// Whether a word that is its own stem is dropped (see [`CachedStemmer::inflections`]).
    inflections_only: bool,
}

/// Words kept per language and thread: 32 bytes a word and its stem, about 2.2 MiB with
/// the map's own bytes. Once full, new words are stemmed and not kept; the frequent ones
/// come early and are kept.
const KEPT_STEMS: usize = 1 << 16;

/// A word of up to 16 bytes, zero-padded (a token is letters and digits, never a zero
/// byte), so that a kept word and its stem sit in the map's own slot: a lookup touches
/// one cache line, not three (the slot, the word's heap copy, the stem's). Most words are
/// that short; longer ones are stemmed every time.
type Short = [u8; 16];

/// What is kept for a word that is its own stem (most words): all zeros, which no stem
/// kept is (an empty stem is not kept), so such a word costs no comparison.
const ITSELF: Short = [0; 16];

fn short(word: &str) -> Option<Short> {
    let bytes = word.as_bytes();
    let mut short = [0; 16];
    short.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some(short)
}

fn unpad(short: &Short) -> &str {
    let len = short.iter().position(|&b| b == 0).unwrap_or(short.len());
    std::str::from_utf8(&short[..len]).expect("a kept stem is the bytes of a str")
}

type Kept = FxHashMap<Short, Short>;

thread_local! {
    /// Each language's kept stems on this thread, by slot. A stream takes its
    /// language's map for its life (one thread-local access per text, not per word) and
    /// puts it back when dropped.
    static STEMS: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
}

impl CachedStemmer {
    /// A stemmer for `algorithm`, keeping its stems under `slot` (one slot per language;
    /// two stemmers given the same slot must be of the same language).
    pub fn new(slot: usize, algorithm: rust_stemmers::Algorithm) -> CachedStemmer {
        CachedStemmer {
            slot,
            algorithm,
            inflections_only: false,
        }
    }

    /// The same stemmer, dropping the ASCII words that are their own stem (`the`,
    /// `contract`, `meet`). What the index's stem fields hold, since the exact fields
    /// already hold such a word as it is; in the benchmark's generated mail 89 % of the
    /// body's words are their own English stem, and indexing them twice was most of
    /// what the stem fields cost a release (all of it measured at 100,000 emails). A
    /// word with other letters is kept, stem or not: folded to ASCII, it may stem to
    /// something else, and a search could not tell that it was dropped.
    pub fn inflections(slot: usize, algorithm: rust_stemmers::Algorithm) -> CachedStemmer {
        CachedStemmer {
            inflections_only: true,
            ..CachedStemmer::new(slot, algorithm)
        }
    }
}

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> CachedStemmerFilter<T> {
        CachedStemmerFilter {
            stemmer: self,
            inner,
        }
    }
}

#[derive(Clone)]
pub struct CachedStemmerFilter<T> {
    stemmer: CachedStemmer,
    inner: T,
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemmerStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        let slot = self.stemmer.slot;
        let kept = STEMS.with_borrow_mut(|stems| {
            if stems.len() <= slot {
                stems.resize_with(slot + 1, Kept::default);
            }
            std::mem::take(&mut stems[slot])
        });
        CachedStemmerStream {
            tail: self.inner.token_stream(text),
            slot,
            kept,
            stemmer: rust_stemmers::Stemmer::create(self.stemmer.algorithm),
            inflections_only: self.stemmer.inflections_only,
        }
    }
}

pub struct CachedStemmerStream<T> {
    tail: T,
    slot: usize,
    /// This language's kept stems, taken from the thread's for the stream's life.
    kept: Kept,
    stemmer: rust_stemmers::Stemmer,
    inflections_only: bool,
}

impl<T> Drop for CachedStemmerStream<T> {
    fn drop(&mut self) {
        let kept = std::mem::take(&mut self.kept);
        STEMS.with_borrow_mut(|stems| {
            // Another stream of the language on this thread, alive at the same time,
            // started without the kept stems; the larger map is the one kept.
            if stems[self.slot].len() < kept.len() {
                stems[self.slot] = kept;
            }
        });
    }
}

impl<T: TokenStream> TokenStream for CachedStemmerStream<T> {
    fn advance(&mut self) -> bool {
        loop {
            if !self.tail.advance() {
                return false;
            }
            let text = &mut self.tail.token_mut().text;
            let word = short(text);
            let keep = match word.and_then(|w| self.kept.get(&w)) {
                Some(&ITSELF) => !text.is_ascii(),
                Some(stem) => {
                    text.clear();
                    text.push_str(unpad(stem));
                    true
                }
                None => {
                    let stem = self.stemmer.stem(text).into_owned();
                    if let Some(word) = word
                        && self.kept.len() < KEPT_STEMS
                    {
                        if stem == *text {
                            self.kept.insert(word, ITSELF);
                        } else if let Some(kept) = short(&stem).filter(|s| *s != ITSELF) {
                            self.kept.insert(word, kept);
                        }
                    }
                    let keep = stem != *text || !text.is_ascii();
                    *text = stem;
                    keep
                }
            };
            if keep || !self.inflections_only {
                return true;
            }
        }
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each token's text and position.
    fn tokens(mut stream: impl TokenStream) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        while stream.advance() {
            out.push((stream.token().text.clone(), stream.token().position));
        }
        out
    }

    fn words(text: &str) -> Vec<(String, usize)> {
        tokens(WordTokenizer::default().token_stream(text))
    }

    #[test]
    fn alphabetic_words_and_cjk_characters() {
        assert_eq!(
            words("Re: gas-price 2001, ZÜRICH"),
            [
                ("re".into(), 0),
                ("gas".into(), 1),
                ("price".into(), 2),
                ("2001".into(), 3),
                ("zürich".into(), 4)
            ]
        );
        assert_eq!(
            words("会議は東京で ok"),
            [
                ("会".into(), 0),
                ("議".into(), 1),
                ("は".into(), 2),
                ("東".into(), 3),
                ("京".into(), 4),
                ("で".into(), 5),
                ("ok".into(), 6)
            ]
        );
        assert_eq!(
            words("abc東京"),
            [("abc".into(), 0), ("東".into(), 1), ("京".into(), 2)]
        );
        assert!(words(" -- ").is_empty());
        let long = "x".repeat(LONGEST_WORD);
        assert_eq!(
            words(&format!("a {long} B")),
            [("a".into(), 0), ("b".into(), 2)]
        );
    }

    #[test]
    fn the_two_byte_table_is_unicodes() {
        let table = &*TWO_BYTE_WORD;
        for c in (0..0x30000).filter_map(char::from_u32) {
            assert_eq!(is_word_char(c, table), c.is_alphanumeric(), "{c:?}");
        }
    }

    /// The cut as it was written first, character by character with Unicode's tables:
    /// what the byte-wise cut must give.
    #[derive(Clone, Default)]
    struct CharWords {
        token: Token,
    }

    struct CharStream<'a> {
        text: &'a str,
        at: usize,
        token: &'a mut Token,
    }

    impl Tokenizer for CharWords {
        type TokenStream<'a> = CharStream<'a>;

        fn token_stream<'a>(&'a mut self, text: &'a str) -> CharStream<'a> {
            self.token.reset();
            self.token.position = usize::MAX;
            CharStream {
                text,
                at: 0,
                token: &mut self.token,
            }
        }
    }

    impl TokenStream for CharStream<'_> {
        fn advance(&mut self) -> bool {
            self.token.text.clear();
            let rest = &self.text[self.at..];
            let Some((skip, first)) = rest.char_indices().find(|(_, c)| c.is_alphanumeric()) else {
                self.at = self.text.len();
                return false;
            };
            let start = self.at + skip;
            let end = if is_cjk(first) {
                start + first.len_utf8()
            } else {
                let word = &self.text[start..];
                start
                    + word
                        .char_indices()
                        .find(|(_, c)| !c.is_alphanumeric() || is_cjk(*c))
                        .map_or(word.len(), |(i, _)| i)
            };
            self.at = end;
            self.token.offset_from = start;
            self.token.offset_to = end;
            self.token.position = self.token.position.wrapping_add(1);
            self.token.text.push_str(&self.text[start..end]);
            true
        }

        fn token(&self) -> &Token {
            self.token
        }

        fn token_mut(&mut self) -> &mut Token {
            self.token
        }
    }

    /// Each token's text, position and offsets.
    fn full(mut stream: impl TokenStream) -> Vec<(String, usize, usize, usize)> {
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token();
            out.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
        }
        out
    }

    /// The byte-wise cut with its lower-casing and length limit gives what the
    /// character-wise cut followed by tantivy's `RemoveLongFilter` and `LowerCaser`
    /// gives, token for token (text, position, offsets), on real mail and on the
    /// corners: scripts of every kind, case that changes a letter's length, long words
    /// among short ones, marks, symbols and digits of other scripts.
    #[test]
    fn byte_wise_cut_is_the_filters_after_a_character_wise_cut() {
        use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, TextAnalyzer};

        let enron = include_str!("../../trove/demo/enron-allen-p-sample.mbox");
        let long = "Ab".repeat(LONGEST_WORD / 2);
        let corners = [
            "Re: gas-price 2001, ZÜRICH; Straße ĲSSELMEER İstanbul ΣΟΦΟΣ σοφος",
            "会議は東京で ok abc東京def 한국어 テスト",
            "e\u{301}te\u{301} café naïve résumé — “quoted” ½ ² ٣٤ ߁ x²y",
            "emoji 🙂 mixed👍words tab\tand\r\nlines, ǅungla ǈ ǋ",
            "ﬁnance ﬂow Ⅻ ⅻ ℌ 𝔄𝔅 𝐀𝐁𝐂 ＡＢＣ ｱｲｳ",
            "",
            " ",
            "x",
        ];
        let mut texts: Vec<String> = corners.iter().map(|c| c.to_string()).collect();
        texts.push(format!(
            "{long} short {long}x {}",
            &long[..LONGEST_WORD - 1]
        ));
        texts.push(format!(
            "{}é {}é",
            "a".repeat(LONGEST_WORD - 2),
            "a".repeat(LONGEST_WORD - 3)
        ));
        texts.extend(enron.split("\nFrom ").map(str::to_string));
        let mut theirs = TextAnalyzer::builder(CharWords::default())
            .filter(RemoveLongFilter::limit(LONGEST_WORD))
            .filter(LowerCaser)
            .build();
        let mut ours = TextAnalyzer::builder(WordTokenizer::default()).build();
        let mut compared = 0;
        for text in &texts {
            let expected = full(theirs.token_stream(text));
            let got = full(ours.token_stream(text));
            assert_eq!(got, expected, "{text:?}");
            compared += got.len();
        }
        assert!(compared > 10_000, "{compared}");
    }

    /// Kept stems are the stems: the same tokens as tantivy's own filter, for words met
    /// the first time and again, in each language, with four languages' stems kept side
    /// by side on one thread.
    #[test]
    fn kept_stems_are_tantivys_stems() {
        use tantivy::tokenizer::{Stemmer, TextAnalyzer};

        let enron = include_str!("../../trove/demo/enron-allen-p-sample.mbox");
        let samples: [(tantivy::tokenizer::Language, rust_stemmers::Algorithm, &str); 4] = [
            (
                tantivy::tokenizer::Language::English,
                rust_stemmers::Algorithm::English,
                enron,
            ),
            (
                tantivy::tokenizer::Language::German,
                rust_stemmers::Algorithm::German,
                "Die Verträge wurden gestern unterzeichnet; die Vertragsparteien \
                 unterzeichneten alle Verträge, und die Häuser gehören den Häusern.",
            ),
            (
                tantivy::tokenizer::Language::French,
                rust_stemmers::Algorithm::French,
                "Les contrats signés hier: les parties contractantes ont signé \
                 toutes les conventions, et nous signerons les prochaines.",
            ),
            (
                tantivy::tokenizer::Language::Russian,
                rust_stemmers::Algorithm::Russian,
                "Договоры были подписаны вчера; стороны подписали все договоры, \
                 и подписанные договоры хранятся в архиве договоров.",
            ),
        ];
        for round in 0..2 {
            for (slot, (language, algorithm, text)) in samples.iter().enumerate() {
                let mut theirs = TextAnalyzer::builder(WordTokenizer::default())
                    .filter(Stemmer::new(*language))
                    .build();
                let mut ours = TextAnalyzer::builder(WordTokenizer::default())
                    .filter(CachedStemmer::new(slot, *algorithm))
                    .build();
                let expected = tokens(theirs.token_stream(text));
                assert!(expected.len() > 10, "{language:?}");
                let got = tokens(ours.token_stream(text));
                let first_difference = got.iter().zip(&expected).position(|(a, b)| a != b);
                assert_eq!(
                    (got.len(), first_difference.map(|i| (&got[i], &expected[i]))),
                    (expected.len(), None),
                    "{language:?}, round {round}"
                );
            }
        }
        let kept = STEMS.with_borrow(|stems| stems.iter().map(|m| m.len()).collect::<Vec<_>>());
        assert_eq!(kept.len(), 4);
        assert!(kept.iter().all(|&n| n > 5), "{kept:?}");
    }
}
