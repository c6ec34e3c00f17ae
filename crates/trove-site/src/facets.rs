//! Facet counting: how the emails a search matches split by sender domain,
//! correspondent, attachment type, month, DKIM status and release.
//!
//! A tantivy collector of our own rather than tantivy's terms aggregations. Those resolve
//! each segment's buckets into strings, build intermediate results and merge them through
//! a general framework made for nested aggregations; under a load of different searches,
//! the aggregations and the pass over the matches they ran in were a third of the
//! server's samples. Here each segment counts term ordinals into plain arrays
//! (one slot per value of the column), keeps the biggest counts, and only those are
//! turned into strings, in one pass over the column's dictionary. Counting is the same
//! work per match; what is saved is everything around it.
//!
//! Counts are exact within a segment. Across segments, a value that is not among a
//! segment's [`segment_size`] biggest is not counted there, as with tantivy's
//! `segment_size`: ten times the values shown keeps the shown counts exact in practice,
//! and a narrowed search (one click on a value) always counts it exactly. Months, DKIM
//! statuses and releases are few and always counted in full.

use std::collections::HashMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use crate::index::{Bucket, Facets};

/// The keyword columns counted, in the order of `SegmentCounts::strs`.
const STR_FACETS: [&str; 5] = ["domain", "person", "filetype", "month", "dkim"];
/// Which of them show only their biggest values (the others show every value).
const TOP_ONLY: [bool; 5] = [true, true, true, false, false];

/// How many values of a top-only facet each segment proposes for `size` shown.
fn segment_size(size: usize) -> usize {
    (size * 10).max(100)
}

/// Counts the facets of every match, and how many matched. `size` is how many values of
/// domain, person and file type are kept; months, statuses and releases are all kept.
pub(crate) struct FacetCounter {
    pub size: usize,
}

/// One segment's counting.
pub(crate) struct SegmentFacets {
    total: u64,
    size: usize,
    strs: Vec<Option<(StrColumn, Tally)>>,
    release: Option<(Column<u64>, ReleaseCounts)>,
}

/// Releases counted by number: an array when the numbers are small (they are counted
/// from 1, one per installment), a map otherwise.
enum ReleaseCounts {
    Dense(Vec<u32>),
    Sparse(HashMap<u64, u32>),
}

/// What a segment found: per keyword facet, (value, count) pairs; per release, counts.
pub(crate) struct SegmentCounts {
    total: u64,
    strs: Vec<Vec<(String, u64)>>,
    release: Vec<(u64, u64)>,
}

impl Collector for FacetCounter {
    type Fruit = (u64, Facets);
    type Child = SegmentFacets;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let fast = segment.fast_fields();
        let mut strs = Vec::with_capacity(STR_FACETS.len());
        for name in STR_FACETS {
            strs.push(fast.str(name)?.map(|column| {
                let tally = Tally::new(column.num_terms());
                (column, tally)
            }));
        }
        let release = fast.u64("release").ok().map(|column| {
            let counts = if column.max_value() < 1 << 16 {
                ReleaseCounts::Dense(vec![0; column.max_value() as usize + 1])
            } else {
                ReleaseCounts::Sparse(HashMap::new())
            };
            (column, counts)
        });
        Ok(SegmentFacets {
            total: 0,
            size: self.size,
            strs,
            release,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<SegmentCounts>) -> tantivy::Result<(u64, Facets)> {
        let mut total = 0;
        let mut strs: Vec<HashMap<String, u64>> = vec![HashMap::new(); STR_FACETS.len()];
        let mut release: HashMap<u64, u64> = HashMap::new();
        for s in segments {
            total += s.total;
            for (merged, values) in strs.iter_mut().zip(s.strs) {
                for (value, count) in values {
                    *merged.entry(value).or_default() += count;
                }
            }
            for (number, count) in s.release {
                *release.entry(number).or_default() += count;
            }
        }
        let mut lists = strs.into_iter().map(|map| {
            map.into_iter()
                .map(|(value, count)| Bucket { value, count })
                .collect::<Vec<_>>()
        });
        let mut next = || lists.next().unwrap_or_default();
        let (mut domain, mut person, mut filetype, mut month, mut dkim) =
            (next(), next(), next(), next(), next());
        for list in [&mut domain, &mut person, &mut filetype, &mut dkim] {
            list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        }
        for list in [&mut domain, &mut person, &mut filetype] {
            list.truncate(self.size);
        }
        month.sort_by(|a, b| a.value.cmp(&b.value));
        let mut release: Vec<(u64, u64)> = release.into_iter().collect();
        release.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let release = release
            .into_iter()
            .map(|(n, count)| Bucket {
                value: n.to_string(),
                count,
            })
            .collect();
        Ok((
            total,
            Facets {
                domain,
                person,
                month,
                release,
                filetype,
                dkim,
            },
        ))
    }
}

impl SegmentCollector for SegmentFacets {
    type Fruit = SegmentCounts;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.total += 1;
        for (column, tally) in self.strs.iter_mut().flatten() {
            for ord in column.ords().values_for_doc(doc) {
                tally.add(ord);
            }
        }
        if let Some((column, counts)) = &mut self.release {
            for n in column.values_for_doc(doc) {
                match counts {
                    ReleaseCounts::Dense(v) => {
                        if let Some(c) = v.get_mut(n as usize) {
                            *c += 1;
                        }
                    }
                    ReleaseCounts::Sparse(m) => *m.entry(n).or_default() += 1,
                }
            }
        }
    }

    fn harvest(self) -> SegmentCounts {
        let keep = segment_size(self.size);
        let strs = self
            .strs
            .into_iter()
            .zip(TOP_ONLY)
            .map(|(column, top_only)| match column {
                Some((column, tally)) => {
                    values_of(&column, tally.drain(), top_only.then_some(keep))
                }
                None => Vec::new(),
            })
            .collect();
        let release = match self.release {
            Some((_, ReleaseCounts::Dense(v))) => v
                .into_iter()
                .enumerate()
                .filter(|(_, c)| *c > 0)
                .map(|(n, c)| (n as u64, c as u64))
                .collect(),
            Some((_, ReleaseCounts::Sparse(m))) => {
                m.into_iter().map(|(n, c)| (n, c as u64)).collect()
            }
            None => Vec::new(),
        };
        SegmentCounts {
            total: self.total,
            strs,
            release,
        }
    }
}

/// The counted values of `column` as strings, the `keep` biggest when given (ties to the
/// lower ordinal, which is the value first in byte order).
fn values_of(
    column: &StrColumn,
    mut counted: Vec<(u64, u32)>,
    keep: Option<usize>,
) -> Vec<(String, u64)> {
    if let Some(keep) = keep
        && counted.len() > keep
    {
        counted.select_nth_unstable_by(keep, |a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counted.truncate(keep);
    }
    counted.sort_unstable_by_key(|&(ord, _)| ord);
    let mut out = Vec::with_capacity(counted.len());
    let mut counts = counted.iter().map(|&(_, c)| c as u64);
    // The dictionary is read once, front to back, for the sorted ordinals.
    let read =
        column
            .dictionary()
            .sorted_ords_to_term_cb(counted.iter().map(|&(ord, _)| ord), |bytes| {
                let count = counts.next().unwrap_or(0);
                out.push((String::from_utf8_lossy(bytes).into_owned(), count));
                Ok(())
            });
    // A dictionary that cannot be read (a damaged index) leaves the facet short; the
    // search itself still answers, and `trove reindex` rebuilds the index.
    if read.is_err() {
        out.clear();
    }
    out
}

/// Counts per term ordinal of one column in one segment: an array with a slot per value,
/// and the list of slots touched, so that a search matching a few emails reads back a
/// few slots, not every value of the column (a real archive has thousands of
/// correspondents).
struct Tally {
    counts: Vec<u32>,
    touched: Vec<u32>,
}

impl Tally {
    fn new(terms: usize) -> Tally {
        Tally {
            counts: vec![0; terms],
            touched: Vec::new(),
        }
    }

    fn add(&mut self, ord: u64) {
        // An ordinal is below the column's number of terms by construction.
        if let Some(c) = self.counts.get_mut(ord as usize) {
            if *c == 0 {
                self.touched.push(ord as u32);
            }
            *c += 1;
        }
    }

    /// The (ordinal, count) pairs counted, in no order.
    fn drain(self) -> Vec<(u64, u32)> {
        self.touched
            .iter()
            .map(|&ord| (ord as u64, self.counts[ord as usize]))
            .collect()
    }
}
