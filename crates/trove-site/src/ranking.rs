//! The best hits by relevance: the highest scores, equal scores to the lower public
//! number, after a page cursor.
//!
//! tantivy's `TopDocs::tweak_score` gives the same hits, but it works out every match's
//! key, and so reads every match's number from its column, before it compares the key
//! with the worst one kept. Here a match whose score is below the worst kept is passed
//! over on its score alone: a key compares its score first, so nothing after it can
//! lift it. Under different searches at 1M emails, reading the numbers was about 6 % of
//! a server's samples.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use crate::facets::ColumnCache;

/// A hit's place in the order: higher comes first. `(score, date or its complement,
/// number or its complement)`, so ties always break the same way and a cursor can say
/// exactly where a page ended. By relevance: the score, 0, then the complement of the
/// number, so that of equal scores the lower number comes first.
pub(crate) type Key = (Score, i64, i64);

/// Marks a hit at or before the cursor: below every real key (scores are never
/// negative), and dropped after collection.
pub(crate) const SKIPPED: Key = (f32::NEG_INFINITY, i64::MIN, i64::MIN);

/// Whether `key` comes at or before the cursor `after`: a hit the page after it has
/// already shown.
fn shown_before(key: &Key, after: Option<Key>) -> bool {
    after.is_some_and(|cursor| by_key(key, &cursor) != Ordering::Less)
}

/// `key`, or [`SKIPPED`] when it is not after the cursor.
pub(crate) fn keep_after(key: Key, after: Option<Key>) -> Key {
    if shown_before(&key, after) {
        SKIPPED
    } else {
        key
    }
}

/// The key of a hit with `score` and public number `n`.
fn relevance_key(score: Score, n: u64) -> Key {
    (score, 0, !(n as i64))
}

/// `a` against `b`, by key (scores are never NaN: an incomparable pair counts as
/// equal).
fn by_key(a: &Key, b: &Key) -> Ordering {
    a.partial_cmp(b).unwrap_or(Ordering::Equal)
}

/// The `limit` hits with the highest keys below `after` (all of them without a
/// cursor), highest first.
pub(crate) struct TopRelevant<'a> {
    pub limit: usize,
    pub after: Option<Key>,
    /// Where each segment's number column is kept open.
    pub columns: &'a ColumnCache,
}

/// A kept hit, ordered so that the heap's top is the worst one kept.
struct Kept(Key, DocId);

impl PartialEq for Kept {
    fn eq(&self, other: &Kept) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Kept {}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Kept) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kept {
    fn cmp(&self, other: &Kept) -> Ordering {
        // Worse is greater: a lower key, or for an equal key the later email.
        by_key(&other.0, &self.0).then(self.1.cmp(&other.1))
    }
}

/// One segment's best hits.
pub(crate) struct SegmentTop {
    limit: usize,
    after: Option<Key>,
    segment: SegmentOrdinal,
    number: Option<Column<u64>>,
    kept: BinaryHeap<Kept>,
}

impl Collector for TopRelevant<'_> {
    type Fruit = Vec<(Key, DocAddress)>;
    type Child = SegmentTop;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentTop> {
        Ok(SegmentTop {
            limit: self.limit,
            after: self.after,
            segment,
            number: self.columns.of(reader).number.clone(),
            kept: BinaryHeap::with_capacity(self.limit.min(1 << 16) + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, segments: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut all: Vec<(Key, DocAddress)> = segments.into_iter().flatten().collect();
        all.sort_unstable_by(|a, b| by_key(&b.0, &a.0).then(a.1.cmp(&b.1)));
        all.truncate(self.limit);
        Ok(all)
    }
}

impl SegmentCollector for SegmentTop {
    type Fruit = Vec<(Key, DocAddress)>;

    #[inline]
    fn collect(&mut self, doc: DocId, score: Score) {
        if self.limit == 0 {
            return;
        }
        let full = self.kept.len() >= self.limit;
        if full && self.kept.peek().is_some_and(|worst| score < worst.0.0) {
            return;
        }
        let n = self.number.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
        let key = relevance_key(score, n);
        if shown_before(&key, self.after) {
            return;
        }
        let candidate = Kept(key, doc);
        if !full {
            self.kept.push(candidate);
        } else if let Some(mut worst) = self.kept.peek_mut()
            && candidate < *worst
        {
            *worst = candidate;
        }
    }

    fn harvest(self) -> Self::Fruit {
        let segment = self.segment;
        self.kept
            .into_iter()
            .map(|Kept(key, doc)| (key, DocAddress::new(segment, doc)))
            .collect()
    }
}
