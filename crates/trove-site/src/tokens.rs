//! How text is cut into words for the index.
//!
//! Alphabetic scripts split on anything that is not a letter or a digit, as tantivy's
//! `SimpleTokenizer` does. Chinese, Japanese and Korean do not separate words with spaces,
//! so each of their characters is a word of its own: a query of several characters is then
//! a phrase of consecutive characters (see `SearchIndex::text_query`), which finds the
//! word wherever it is written and needs no dictionary. The filters after this tokenizer
//! (lower-casing, accent folding, stemming) leave such characters alone.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, usize)> {
        let mut t = WordTokenizer::default();
        let mut s = t.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            out.push((s.token().text.clone(), s.token().position));
        }
        out
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
}
