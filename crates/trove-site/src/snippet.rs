//! Snippets: the stretch of an email's text where a search's words weigh most, with
//! those words marked.
//!
//! The choice is tantivy's `SnippetGenerator`'s, kept exactly (a test compares the two on
//! real mail): the text is cut into fragments of at most `max_chars` bytes, each word of
//! the query found in a fragment adds `1 / (1 + its document frequency)`, and the
//! heaviest fragment wins, the earliest among equals. What differs is the cost. The
//! generator lower-cases every word of the text into a new string to look it up in a
//! tree of the query's words, keeps every fragment that scores, and clones its analyser
//! for each text: under different searches its snippets were a sixth of a server's
//! samples, most of it allocating. Here the text is cut into the index's words on its
//! bytes, an ASCII word is compared with the query's few words lower-cased in place,
//! only a word with other letters goes through the analyser (to be lower-cased and folded
//! as the index did it), and only the best fragment so far is kept.

use std::ops::Range;

use tantivy::query::{Bm25StatisticsProvider, Query};
use tantivy::schema::Field;
use tantivy::tokenizer::{TextAnalyzer, TokenStream};
use tantivy::{Score, Term};

use crate::tokens::{LONGEST_WORD, is_cjk, next_word};

/// The words of one search, ready to mark in the texts of its hits
/// ([`crate::SearchIndex::run_highlighted`]).
pub struct Highlighter {
    /// The query's words in the field, as the index writes them, with their weight.
    words: Vec<(String, Score)>,
    /// Which ASCII bytes begin one of `words`, and whether any begins with another
    /// character: what [`Highlighter::may_match`] asks.
    first: [bool; 128],
    first_other: bool,
    analyzer: TextAnalyzer,
    max_chars: usize,
}

/// A fragment of the text: byte offsets, weight, and the words found in it.
#[derive(Default)]
struct Fragment {
    start: usize,
    stop: usize,
    score: Score,
    marked: Vec<Range<usize>>,
}

impl Fragment {
    fn restart(&mut self, start: usize) {
        self.start = start;
        self.stop = start;
        self.score = 0.0;
        self.marked.clear();
    }
}

impl Highlighter {
    /// The words `query` looks for in `field`, weighed by `searcher`'s document
    /// frequencies (a word no email holds is left out). `analyzer` is the field's: the
    /// index's words (`tokens.rs`), lower-cased and folded, which [`Highlighter::html`]
    /// does itself for ASCII words and asks the analyser for the others.
    pub(crate) fn new(
        statistics: &dyn Bm25StatisticsProvider,
        query: &dyn Query,
        field: Field,
        analyzer: TextAnalyzer,
        max_chars: usize,
    ) -> tantivy::Result<Highlighter> {
        let mut terms: Vec<&Term> = Vec::new();
        query.query_terms(&mut |term, _| {
            if term.field() == field {
                terms.push(term);
            }
        });
        terms.sort();
        terms.dedup();
        let mut words = Vec::with_capacity(terms.len());
        for term in terms {
            let value = term.value();
            let Some(word) = value.as_str() else {
                continue;
            };
            let frequency = statistics.doc_freq(term)?;
            if frequency > 0 {
                words.push((word.to_string(), 1.0 / (1.0 + frequency as Score)));
            }
        }
        let mut first = [false; 128];
        let mut first_other = false;
        for (word, _) in &words {
            match word.bytes().next() {
                Some(b) if b.is_ascii() => first[b as usize] = true,
                Some(_) => first_other = true,
                None => {}
            }
        }
        Ok(Highlighter {
            words,
            first,
            first_other,
            analyzer,
            max_chars,
        })
    }

    /// Whether a word of the text beginning with `c` may be one of the query's words;
    /// false when it cannot, whatever follows. The analyser lower-cases and folds a
    /// word character by character, so the word's first character decides the first of
    /// what it becomes: an ASCII letter or digit stays itself, lower-cased, and the
    /// letters of [`stays_outside_ascii`] stay outside ASCII.
    #[inline]
    fn may_match(&self, c: char) -> bool {
        if c.is_ascii() {
            self.first[c.to_ascii_lowercase() as usize]
        } else if stays_outside_ascii(c) {
            self.first_other
        } else {
            true
        }
    }

    /// The weight of an ASCII word of the text, compared lower-cased, in place.
    fn ascii_weight(&self, word: &[u8]) -> Option<Score> {
        self.words
            .iter()
            .find(|(w, _)| {
                w.len() == word.len()
                    && w.bytes()
                        .zip(word)
                        .all(|(a, b)| a == b.to_ascii_lowercase())
            })
            .map(|(_, s)| *s)
    }

    fn weight(&self, word: &str) -> Option<Score> {
        let find = |w: &str| self.words.iter().find(|(x, _)| x == w).map(|(_, s)| *s);
        if word.is_ascii() {
            if word.bytes().any(|b| b.is_ascii_uppercase()) {
                find(&word.to_ascii_lowercase())
            } else {
                find(word)
            }
        } else {
            find(&word.to_lowercase())
        }
    }

    /// The weight of a word with non-ASCII letters, lower-cased and folded by the
    /// analyser (cloned from the field's on the text's first such word).
    fn analysed_weight(&self, analyzer: &mut Option<TextAnalyzer>, word: &str) -> Option<Score> {
        let analyzer = analyzer.get_or_insert_with(|| self.analyzer.clone());
        let mut stream = analyzer.token_stream(word);
        stream
            .advance()
            .then(|| self.weight(&stream.token().text))
            .flatten()
    }

    /// The best fragment of `text` as HTML (escaped, the query's words in `<b>`), or
    /// `None` when none of the words is in it.
    pub fn html(&self, text: &str) -> Option<String> {
        if self.words.is_empty() {
            return None;
        }
        let mut best = Fragment::default();
        let mut fragment = Fragment::default();
        let max_chars = self.max_chars;
        let mut visit = |word: Range<usize>, weight: Option<Score>| {
            if word.end - fragment.start > max_chars {
                if fragment.score > best.score {
                    std::mem::swap(&mut best, &mut fragment);
                }
                fragment.restart(word.start);
            }
            fragment.stop = word.end;
            if let Some(score) = weight {
                fragment.score += score;
                fragment.marked.push(word);
            }
        };
        // The index's cut of the text into words (`tokens::next_word`, which works on
        // the bytes), words of LONGEST_WORD bytes or more dropped: an ASCII word is
        // compared lower-cased in place, and only a word with other letters goes
        // through the analyser, which lower-cases and folds it as the index did. A word
        // that cannot be one of the query's words by its first character is passed over
        // (`may_match`), so the analyser is asked only about the few others, and cloned
        // only for a text that has one.
        let mut analyzer: Option<TextAnalyzer> = None;
        let mut at = 0;
        while let Some((start, end, ascii)) = next_word(text, at) {
            at = end;
            if end - start >= LONGEST_WORD {
                continue;
            }
            let word = &text[start..end];
            let first = word.chars().next().expect("a word is not empty");
            let weight = if !self.may_match(first) {
                None
            } else if ascii {
                self.ascii_weight(word.as_bytes())
            } else {
                self.analysed_weight(&mut analyzer, word)
            };
            visit(start..end, weight);
        }
        if fragment.score > best.score {
            best = fragment;
        }
        if best.score <= 0.0 {
            return None;
        }
        let mut html = String::with_capacity(best.stop - best.start + 16 * best.marked.len());
        let mut at = best.start;
        for word in merged(&best.marked) {
            escape_into(&mut html, &text[at..word.start]);
            html.push_str("<b>");
            escape_into(&mut html, &text[word.clone()]);
            html.push_str("</b>");
            at = word.end;
        }
        escape_into(&mut html, &text[at..best.stop]);
        Some(html)
    }
}

/// Marked ranges in order, overlapping ones merged (adjacent ones stay apart), as the
/// generator's HTML has them. The analysis gives words in order and apart, so this
/// normally returns them as they are.
fn merged(ranges: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut sorted = ranges.to_vec();
    sorted.sort_by_key(|r| (r.start, r.end));
    sorted.dedup();
    let mut out: Vec<Range<usize>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if last.end > r.start => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Letters that the analyser's lower-casing and folding leave outside ASCII: Greek,
/// Cyrillic, Hebrew, Arabic and the CJK scripts (a test runs the analyser over each).
#[inline]
fn stays_outside_ascii(c: char) -> bool {
    matches!(c as u32, 0x0370..=0x03FF | 0x0400..=0x052F | 0x0590..=0x06FF) || is_cjk(c)
}

/// `s` escaped for HTML text and attribute values: the five characters that matter, as
/// the generator escapes them.
fn escape_into(out: &mut String, s: &str) {
    let mut at = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'"' => "&quot;",
            b'&' => "&amp;",
            b'\'' => "&#x27;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => continue,
        };
        out.push_str(&s[at..i]);
        out.push_str(entity);
        at = i + 1;
    }
    out.push_str(&s[at..]);
}

#[cfg(test)]
mod tests {
    use tantivy::query::{BooleanQuery, Occur, TermQuery};
    use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
    use tantivy::snippet::SnippetGenerator;
    use tantivy::{Index, TantivyDocument};

    use super::*;

    /// Every letter and digit [`stays_outside_ascii`] names becomes, through the index's
    /// analyser, a word whose first character is not ASCII.
    #[test]
    fn letters_said_to_stay_outside_ascii_do() {
        let mut analyzer = crate::index::words_analyzer();
        let mut checked = 0;
        for c in (0x80..0x30000).filter_map(char::from_u32) {
            if !stays_outside_ascii(c) || !c.is_alphanumeric() {
                continue;
            }
            let word = c.to_string();
            let mut stream = analyzer.token_stream(&word);
            assert!(stream.advance(), "{c:?} is a word");
            let first = stream.token().text.chars().next();
            assert!(first.is_some_and(|f| !f.is_ascii()), "{c:?} -> {first:?}");
            checked += 1;
        }
        assert!(checked > 90_000, "{checked}");
    }

    /// Ours and tantivy's generator give the same HTML for every text of the Enron
    /// sample and a few written to test case, accents, CJK and escaping, for queries of
    /// one to three words drawn from the texts (and one no email holds), at two widths.
    #[test]
    fn the_same_snippets_as_tantivys_generator() {
        let analyzer = crate::index::words_analyzer;
        let mut schema = Schema::builder();
        let body = schema.add_text_field(
            "body",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("words")
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            ),
        );
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register("words", analyzer());
        let enron = include_str!("../../trove/demo/enron-allen-p-sample.mbox");
        let mut texts: Vec<&str> = enron.split("\nFrom ").collect();
        texts.extend([
            "Meeting in Zürich: ZÜRICH or zurich? <b>Bring</b> \"the\" A&B 'deck'.",
            "会議は東京で。東京 meeting, Tokyo.",
            "ǅemal's forward: Straße STRASSE strasse, café CAFÉ.",
            "Привет, ПРИВЕТ: ёлка Ёлка и Σοφία ΣΟΦΊΑ, привет café.",
        ]);
        let mut writer = index.writer_with_num_threads(1, 20_000_000).unwrap();
        for t in &texts {
            let mut doc = TantivyDocument::default();
            doc.add_text(body, t);
            writer.add_document(doc).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();

        // Words of the texts, as the index has them, every 89th distinct one.
        let mut vocabulary = std::collections::BTreeSet::new();
        let mut a = analyzer();
        for t in &texts {
            let mut stream = a.token_stream(t);
            while stream.advance() {
                vocabulary.insert(stream.token().text.clone());
            }
        }
        let mut words: Vec<String> = vocabulary.into_iter().step_by(89).collect();
        words.extend(
            [
                "zurich",
                "東",
                "strasse",
                "cafe",
                "привет",
                "ёлка",
                "σοφια",
                "meeting",
                "deck",
                "b",
                "nowhere1x",
            ]
            .map(String::from),
        );
        let mut compared = 0;
        for (i, first) in words.iter().enumerate() {
            let mut chosen = vec![first.clone()];
            if i % 2 == 0 {
                chosen.push(words[(i * 7 + 3) % words.len()].clone());
            }
            if i % 3 == 0 {
                chosen.push(words[(i * 13 + 5) % words.len()].clone());
            }
            let query = BooleanQuery::new(
                chosen
                    .iter()
                    .map(|w| {
                        let term = Term::from_field_text(body, w);
                        let q: Box<dyn Query> =
                            Box::new(TermQuery::new(term, IndexRecordOption::Basic));
                        (Occur::Should, q)
                    })
                    .collect(),
            );
            for width in [240, 60] {
                let mut theirs = SnippetGenerator::create(&searcher, &query, body).unwrap();
                theirs.set_max_num_chars(width);
                let ours = Highlighter::new(&searcher, &query, body, analyzer(), width).unwrap();
                for t in &texts {
                    let s = theirs.snippet(t);
                    let expected = (!s.fragment().is_empty()).then(|| s.to_html());
                    assert_eq!(ours.html(t), expected, "{chosen:?} at {width} in {t:.80}");
                    compared += usize::from(expected.is_some());
                }
            }
        }
        assert!(compared > 1_000, "{compared}");
    }
}
