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

/// Words of this many bytes or more are not indexed (`RemoveLongFilter`): hashes,
/// base64 runs, glued-together URLs.
pub const LONGEST_WORD: usize = 60;

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

thread_local! {
    static STEMS: RefCell<Vec<FxHashMap<Short, Short>>> = const { RefCell::new(Vec::new()) };
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
        CachedStemmerStream {
            tail: self.inner.token_stream(text),
            slot: self.stemmer.slot,
            stemmer: rust_stemmers::Stemmer::create(self.stemmer.algorithm),
            inflections_only: self.stemmer.inflections_only,
        }
    }
}

pub struct CachedStemmerStream<T> {
    tail: T,
    slot: usize,
    stemmer: rust_stemmers::Stemmer,
    inflections_only: bool,
}

impl<T: TokenStream> TokenStream for CachedStemmerStream<T> {
    fn advance(&mut self) -> bool {
        loop {
            if !self.tail.advance() {
                return false;
            }
            let text = &mut self.tail.token_mut().text;
            let keep = STEMS.with_borrow_mut(|stems| {
                if stems.len() <= self.slot {
                    stems.resize_with(self.slot + 1, FxHashMap::default);
                }
                let kept = &mut stems[self.slot];
                let word = short(text);
                if let Some(stem) = word.and_then(|w| kept.get(&w)) {
                    let stem = unpad(stem);
                    if stem == text.as_str() {
                        return !text.is_ascii();
                    }
                    text.clear();
                    text.push_str(stem);
                    return true;
                }
                let stem = self.stemmer.stem(text).into_owned();
                if let (Some(word), Some(stem)) = (word, short(&stem))
                    && kept.len() < KEPT_STEMS
                {
                    kept.insert(word, stem);
                }
                let keep = stem != *text || !text.is_ascii();
                *text = stem;
                keep
            });
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
            words("Re: gas-price 2001, Zürich"),
            [
                ("Re".into(), 0),
                ("gas".into(), 1),
                ("price".into(), 2),
                ("2001".into(), 3),
                ("Zürich".into(), 4)
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
    }

    /// Kept stems are the stems: the same tokens as tantivy's own filter, for words met
    /// the first time and again, in each language, with four languages' stems kept side
    /// by side on one thread.
    #[test]
    fn kept_stems_are_tantivys_stems() {
        use tantivy::tokenizer::{LowerCaser, Stemmer, TextAnalyzer};

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
                    .filter(LowerCaser)
                    .filter(Stemmer::new(*language))
                    .build();
                let mut ours = TextAnalyzer::builder(WordTokenizer::default())
                    .filter(LowerCaser)
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
