//! Facet counting: how the emails a search matches split by sender domain,
//! correspondent, attachment type, month, DKIM status and release.
//!
//! A tantivy collector of our own rather than tantivy's terms aggregations. Those resolve
//! each segment's buckets into strings, build intermediate results and merge them through
//! a general framework made for nested aggregations; under a load of different searches,
//! the aggregations and the pass over the matches they ran in were a third of the
//! server's samples. Here each segment's columns are read once into arrays
//! ([`ColumnCache`]), each match's term ordinals are counted into plain arrays (one slot
//! per value of the column), each segment keeps its biggest counts, and only the values
//! shown are turned into strings, when the segments are merged.
//!
//! Counts are exact within a segment. Across segments, a value that is not among a
//! segment's [`segment_size`] biggest is not counted there, as with tantivy's
//! `segment_size`: ten times the values shown keeps the shown counts exact in practice,
//! and a narrowed search (one click on a value) always counts it exactly. Months, DKIM
//! statuses and releases are few and always counted in full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rustc_hash::FxHashMap;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::index::SegmentId;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use crate::index::{Bucket, Facets};

/// The keyword columns counted, in the order of `FacetColumns::strs`.
const STR_FACETS: [&str; 5] = ["domain", "person", "filetype", "month", "dkim"];
/// Which of them show only their biggest values (the others show every value).
const TOP_ONLY: [bool; 5] = [true, true, true, false, false];
/// Where month and DKIM status are in [`STR_FACETS`].
const MONTH: usize = 3;
const DKIM: usize = 4;

/// How many values of a top-only facet each segment proposes for `size` shown.
fn segment_size(size: usize) -> usize {
    (size * 10).max(100)
}

/// Counts the facets of every match, and how many matched. `size` is how many values of
/// domain, person and file type are kept; months, statuses and releases are all kept.
pub(crate) struct FacetCounter<'a> {
    pub size: usize,
    pub columns: &'a ColumnCache,
}

/// Each segment's columns a search reads for every match ([`SegmentColumns`]), opened or
/// read once and kept while the segment is searched. A segment never changes once
/// written (a withdrawal only marks emails deleted, and deleted emails are never
/// counted), so what is read stays true; segments a reload no longer sees are dropped.
///
/// Reading a facet column through tantivy's column index for each match (an optional
/// column's rank, a multi-valued column's row range, then the value) was most of the
/// counting, and counting a sixth of a server's samples under different searches.
/// Here a match costs the load of its [`Record`] and of its multi-valued columns' values.
/// Before the records, the arrays took 3.6 MB for a generated 100k site (measured); a
/// record takes 8 bytes an email more than the arrays it replaced. The first search
/// with facets after a reload reads them (on that site, the first search took 13 ms,
/// 20 ms before).
#[derive(Default)]
pub(crate) struct ColumnCache {
    segments: Mutex<(u64, HashMap<SegmentId, Arc<SegmentColumns>>)>,
}

impl ColumnCache {
    /// Drops the columns of segments `searcher` does not have, when its generation is
    /// newer than any seen (a search still running on an older snapshot drops nothing).
    pub fn keep_only(&self, searcher: &tantivy::Searcher) {
        let generation = searcher.generation().generation_id();
        let mut kept = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        if generation <= kept.0 {
            return;
        }
        kept.0 = generation;
        let live: std::collections::HashSet<SegmentId> = searcher
            .segment_readers()
            .iter()
            .map(SegmentReader::segment_id)
            .collect();
        kept.1.retain(|id, _| live.contains(id));
    }

    /// `segment`'s columns, opened on first use (its facet columns are read only when
    /// a search counts facets: [`SegmentColumns::facets`]).
    pub fn of(&self, segment: &SegmentReader) -> Arc<SegmentColumns> {
        let id = segment.segment_id();
        let mut kept = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        kept.1
            .entry(id)
            .or_insert_with(|| Arc::new(SegmentColumns::open(segment)))
            .clone()
    }
}

/// One segment's number and date columns as tantivy opens them (opening one decodes its
/// block table, and a search opened each segment's number twice, for the released cap
/// and the ranking: about 2 % of a server's samples at 1M), and its facet columns once a
/// search has counted facets.
pub(crate) struct SegmentColumns {
    pub number: Option<Column<u64>>,
    pub date: Option<Column<i64>>,
    facets: OnceLock<Arc<FacetColumns>>,
}

impl SegmentColumns {
    fn open(segment: &SegmentReader) -> SegmentColumns {
        let fast = segment.fast_fields();
        SegmentColumns {
            number: fast.u64("number").ok(),
            date: fast.i64("date").ok(),
            facets: OnceLock::new(),
        }
    }

    /// The segment's facet columns, read on first use. Two searches may both read them;
    /// the first kept is the one used.
    fn facets(&self, segment: &SegmentReader) -> tantivy::Result<Arc<FacetColumns>> {
        if let Some(facets) = self.facets.get() {
            return Ok(facets.clone());
        }
        let read = Arc::new(FacetColumns::read(segment)?);
        Ok(self.facets.get_or_init(|| read).clone())
    }
}

/// One segment's facet columns: per keyword column, each email's term ordinals and
/// every term's text; per email, its release.
pub(crate) struct FacetColumns {
    /// Per email, its [`Record`].
    records: Vec<Record>,
    strs: Vec<Option<(Values, Vec<Box<str>>)>>,
    release: Option<(Values, u32)>,
    /// Month, DKIM status and release counted together, when each email has at most
    /// one of each (always, with trove's columns).
    combined: Option<Combined>,
}

/// Month, DKIM status and release as one value: a match adds one count instead of
/// three, and the segment's combinations (a few hundred: months times statuses times
/// releases that occur) are split into the three columns' counts when it is harvested.
/// The combination's number has a slot of its own in each [`Record`], and the three
/// columns' own [`Values`] say [`Values::Combined`].
struct Combined {
    /// The combination of each email, as a single-valued column.
    values: Values,
    /// Per combination: the month's and the status's term ordinals and the release
    /// number, `NONE` for what an email lacks.
    parts: Vec<[u32; 3]>,
}

impl Combined {
    /// Numbers each email's combination of the single-valued `month`, `dkim` and
    /// `release` columns: the combination of each email, and the parts of each
    /// combination.
    fn number(month: &[u32], dkim: &[u32], release: &[u32]) -> (Vec<u32>, Vec<[u32; 3]>) {
        let mut ids: FxHashMap<[u32; 3], u32> = FxHashMap::default();
        let mut parts = Vec::new();
        let numbered = month
            .iter()
            .zip(dkim)
            .zip(release)
            .map(|((&m, &d), &r)| {
                let key = [m, d, r];
                *ids.entry(key).or_insert_with(|| {
                    parts.push(key);
                    (parts.len() - 1) as u32
                })
            })
            .collect();
        (numbered, parts)
    }
}

/// The values of one column for every email of a segment.
enum Values {
    /// At most one value per email, in slot `.0` of its [`Record`]; `NONE` for an
    /// email without.
    One(usize),
    /// Any number, up to `width` of them in slots `slot..slot + width` of an email's
    /// record (the rest of them `NONE`), so that counting a match loads no other
    /// memory; an email with more says [`SPILLED`] in its first slot, and its values
    /// are in `spilled`.
    Inline {
        slot: usize,
        width: usize,
        spilled: FxHashMap<DocId, Box<[u32]>>,
    },
    /// The values in an array of their own, for a column the records have no room for
    /// (never with today's columns): email `d`'s are `values[starts[d]..starts[d + 1]]`.
    Spilled { starts: Vec<u32>, values: Vec<u32> },
    /// Counted as part of the segment's [`Combined`] column, not on its own.
    Combined,
}

const NONE: u32 = u32::MAX;
/// In an email's first slot of an [`Values::Inline`] column: it has more values than
/// the slots hold. Never a term's ordinal.
const SPILLED: u32 = u32::MAX - 1;

/// Slots in an email's [`Record`].
const SLOTS: usize = 8;

/// An email's values of every column, side by side in 32 bytes: a match loads one cache
/// line for all its columns. At 1M emails each column's own array missed the cache on
/// every match, and so, with the values of the multi-valued columns (people, file
/// types) kept in arrays of their own, did each match's people.
type Record = [u32; SLOTS];

/// A column read: at most one value per email, or any number.
enum Read {
    One(Vec<u32>),
    Many { starts: Vec<u32>, values: Vec<u32> },
}

impl Values {
    /// Reads `column` for the segment's `docs` emails, [`Read::Many`] when the column
    /// is multi-valued. A value that does not fit (never: ordinals and release numbers
    /// are far below 2³²) is left out.
    fn read(column: &Column<u64>, docs: DocId) -> Read {
        let fit = |v: u64| u32::try_from(v).ok().filter(|&v| v != NONE);
        if column.get_cardinality() != tantivy::columnar::Cardinality::Multivalued {
            return Read::One(
                (0..docs)
                    .map(|d| column.first(d).and_then(fit).unwrap_or(NONE))
                    .collect(),
            );
        }
        let mut starts = Vec::with_capacity(docs as usize + 1);
        let mut values = Vec::new();
        starts.push(0);
        for d in 0..docs {
            values.extend(column.values_for_doc(d).filter_map(fit));
            starts.push(u32::try_from(values.len()).unwrap_or(u32::MAX));
        }
        Read::Many { starts, values }
    }

    /// Puts a single-valued column into `records` at slot `*next`, when there is room.
    fn place_one(column: Vec<u32>, records: &mut [Record], next: &mut usize) -> Values {
        if *next >= SLOTS {
            return Values::spill(Read::One(column));
        }
        let slot = *next;
        for (record, v) in records.iter_mut().zip(column) {
            record[slot] = v;
        }
        *next += 1;
        Values::One(slot)
    }

    /// Puts a multi-valued column into `width` slots of `records` from slot `*next` on
    /// (its emails with more values aside), or into an array of its own when `width` is
    /// 0 or there is no such room.
    fn place_many(
        starts: Vec<u32>,
        values: Vec<u32>,
        width: usize,
        records: &mut [Record],
        next: &mut usize,
    ) -> Values {
        if width == 0 || *next + width > SLOTS {
            return Values::Spilled { starts, values };
        }
        let slot = *next;
        let mut spilled = FxHashMap::default();
        for (doc, (record, range)) in records.iter_mut().zip(starts.windows(2)).enumerate() {
            let Some(vs) = values.get(range[0] as usize..range[1] as usize) else {
                continue;
            };
            if vs.len() > width {
                record[slot] = SPILLED;
                spilled.insert(doc as DocId, vs.into());
            } else {
                record[slot..slot + vs.len()].copy_from_slice(vs);
            }
        }
        *next += width;
        Values::Inline {
            slot,
            width,
            spilled,
        }
    }

    /// A column read as an array of its own (a single-valued column's ranges are 0 or
    /// 1 long).
    fn spill(read: Read) -> Values {
        match read {
            Read::One(column) => {
                let mut starts = Vec::with_capacity(column.len() + 1);
                let mut values = Vec::with_capacity(column.len());
                starts.push(0);
                for v in column {
                    if v != NONE {
                        values.push(v);
                    }
                    starts.push(u32::try_from(values.len()).unwrap_or(u32::MAX));
                }
                Values::Spilled { starts, values }
            }
            Read::Many { starts, values } => Values::Spilled { starts, values },
        }
    }

    /// Calls `f` with the values of each of `docs`, whose records are `records`.
    /// Every load a block needs from memory is made before any is counted and with no
    /// branch on what it found (a mispredicted branch would cancel the loads behind
    /// it), so the block's cache misses overlap.
    #[inline]
    fn for_each_of(&self, docs: &[DocId], records: &[Record], mut f: impl FnMut(u32)) {
        let records = &records[..docs.len().min(records.len())];
        match self {
            Values::One(slot) => {
                for record in records {
                    let v = record.get(*slot).copied().unwrap_or(NONE);
                    if v != NONE {
                        f(v)
                    }
                }
            }
            Values::Inline {
                slot,
                width,
                spilled,
            } => {
                for (record, doc) in records.iter().zip(docs) {
                    let Some(inline) = record.get(*slot..slot + width) else {
                        continue;
                    };
                    if inline.first() == Some(&SPILLED) {
                        spilled.get(doc).into_iter().flatten().for_each(|&v| f(v));
                        continue;
                    }
                    for &v in inline {
                        if v == NONE {
                            break;
                        }
                        f(v);
                    }
                }
            }
            Values::Spilled { starts, values } => {
                let mut ranges = [(0u32, 0u32); BLOCK];
                for (range, &doc) in ranges.iter_mut().zip(docs) {
                    let d = doc as usize;
                    if let (Some(&a), Some(&b)) = (starts.get(d), starts.get(d + 1)) {
                        *range = (a, b);
                    }
                }
                count_ranges(values, ranges.into_iter().take(docs.len()), f)
            }
            Values::Combined => {}
        }
    }
}

/// How many slots hold the values of 99 % of the emails of a multi-valued column whose
/// email `d`'s values are `starts[d]..starts[d + 1]` (at least one, at most [`SLOTS`]).
fn slots_needed(starts: &[u32]) -> usize {
    let mut by_count = [0usize; SLOTS + 1];
    for range in starts.windows(2) {
        by_count[(range[1].saturating_sub(range[0]) as usize).min(SLOTS)] += 1;
    }
    let emails = starts.len().saturating_sub(1);
    let mut held = 0;
    for (count, &n) in by_count.iter().enumerate() {
        held += n;
        if held * 100 >= emails * 99 {
            return count.max(1);
        }
    }
    SLOTS
}

/// Calls `f` with `values[a..b]` for each of a block's `ranges`, each range's first
/// value loaded before any is counted.
#[inline]
fn count_ranges(
    values: &[u32],
    ranges: impl Iterator<Item = (u32, u32)> + Clone,
    mut f: impl FnMut(u32),
) {
    let mut first = [NONE; BLOCK];
    for (slot, (a, _)) in first.iter_mut().zip(ranges.clone()) {
        *slot = values.get(a as usize).copied().unwrap_or(NONE);
    }
    for ((a, b), v) in ranges.zip(first) {
        if a < b {
            f(v);
            for &v in values.get(a as usize + 1..b as usize).unwrap_or_default() {
                f(v)
            }
        }
    }
}

impl FacetColumns {
    fn read(segment: &SegmentReader) -> tantivy::Result<FacetColumns> {
        let fast = segment.fast_fields();
        let docs = segment.max_doc();
        let mut strs = Vec::with_capacity(STR_FACETS.len());
        for name in STR_FACETS {
            let Some(column) = fast.str(name)? else {
                strs.push(None);
                continue;
            };
            let mut terms = Vec::with_capacity(column.num_terms());
            let mut stream = column.dictionary().stream()?;
            while stream.advance() {
                terms.push(String::from_utf8_lossy(stream.key()).into());
            }
            strs.push(Some((Values::read(column.ords(), docs), terms)));
        }
        let release = fast.u64("release").ok().map(|column| {
            // Beyond u32 (never: releases are numbered from 1) counts by map.
            let max = u32::try_from(column.max_value()).unwrap_or(u32::MAX);
            (Values::read(&column, docs), max)
        });
        let mut records = vec![[NONE; SLOTS]; docs as usize];
        let mut next = 0;
        // Month, status and release as one combination when each is single-valued (always,
        // with trove's columns), in a slot of its own.
        let combined = match (&strs[MONTH], &strs[DKIM], &release) {
            (Some((Read::One(m), _)), Some((Read::One(d), _)), Some((Read::One(r), _))) => {
                let (numbered, parts) = Combined::number(m, d, r);
                let values = Values::place_one(numbered, &mut records, &mut next);
                Some(Combined { values, parts })
            }
            _ => None,
        };
        let combined_away = |i: usize| combined.is_some() && (i == MONTH || i == DKIM);
        // The other single-valued columns a slot each; the multi-valued ones share the
        // slots left, below.
        let mut many = Vec::new();
        let mut strs: Vec<Option<(Values, Vec<Box<str>>)>> = strs
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                c.map(|(read, terms)| {
                    let values = match read {
                        _ if combined_away(i) => Values::Combined,
                        Read::One(column) => Values::place_one(column, &mut records, &mut next),
                        Read::Many { starts, values } => {
                            many.push((slots_needed(&starts), i, starts, values));
                            Values::Combined // in place of what is placed below
                        }
                    };
                    (values, terms)
                })
            })
            .collect();
        let release = release.map(|(read, max)| {
            let values = match read {
                _ if combined.is_some() => Values::Combined,
                Read::One(column) => Values::place_one(column, &mut records, &mut next),
                many @ Read::Many { .. } => Values::spill(many),
            };
            (values, max)
        });
        // The column with the fewest values per email first, as many slots as hold 99 %
        // of its emails' values (leaving one for each column after it); the last takes
        // every slot left.
        many.sort_by_key(|(needed, ..)| *needed);
        let columns = many.len();
        for (k, (needed, i, starts, values)) in many.into_iter().enumerate() {
            let later = columns - k - 1;
            let room = SLOTS.saturating_sub(next).saturating_sub(later);
            let width = match later {
                0 => room,
                _ => needed.min(room),
            };
            let placed = Values::place_many(starts, values, width, &mut records, &mut next);
            if let Some((values, _)) = &mut strs[i] {
                *values = placed;
            }
        }
        Ok(FacetColumns {
            records,
            strs,
            release,
            combined,
        })
    }
}

/// One segment's counting.
pub(crate) struct SegmentFacets {
    total: u64,
    size: usize,
    columns: Arc<FacetColumns>,
    tallies: Vec<Tally>,
    release: ReleaseCounts,
    /// Per combination of month, status and release, when they are [`Combined`].
    combined: Tally,
    /// Matches not yet counted (fewer than [`BLOCK`]).
    pending: Vec<DocId>,
}

/// How many matches are gathered before their facets are counted, column by column.
const BLOCK: usize = 64;

impl SegmentFacets {
    /// Counts the facets of the matches gathered so far.
    fn count_pending(&mut self) {
        let docs = &self.pending[..];
        self.total += docs.len() as u64;
        // The block's records loaded first, with no branch on what they hold (a
        // mispredicted branch would cancel the loads behind it), then counted.
        let mut records = [[NONE; SLOTS]; BLOCK];
        for (record, &doc) in records.iter_mut().zip(docs) {
            if let Some(r) = self.columns.records.get(doc as usize) {
                *record = *r;
            }
        }
        for (column, tally) in self.columns.strs.iter().zip(&mut self.tallies) {
            if let Some((values, _)) = column {
                values.for_each_of(docs, &records, |ord| tally.add(ord));
            }
        }
        if let Some((values, _)) = &self.columns.release {
            let counts = &mut self.release;
            values.for_each_of(docs, &records, |n| counts.add(n, 1));
        }
        if let Some(c) = &self.columns.combined {
            let combined = &mut self.combined;
            c.values.for_each_of(docs, &records, |id| combined.add(id));
        }
        self.pending.clear();
    }
}

/// Releases counted by number: an array when the numbers are small (they are counted
/// from 1, one per installment), a map otherwise.
enum ReleaseCounts {
    Dense(Vec<u32>),
    Sparse(HashMap<u32, u32>),
}

impl ReleaseCounts {
    #[inline]
    fn add(&mut self, release: u32, count: u32) {
        match self {
            ReleaseCounts::Dense(v) => {
                if let Some(c) = v.get_mut(release as usize) {
                    *c += count;
                }
            }
            ReleaseCounts::Sparse(m) => *m.entry(release).or_default() += count,
        }
    }
}

/// One facet's values, borrowed from a segment's columns, and their counts.
type Counted<'a> = Vec<(&'a str, u64)>;

/// What a segment found: per keyword facet, (term ordinal, count) pairs, turned into
/// text from the segment's columns only when merged; per release, counts.
pub(crate) struct SegmentCounts {
    total: u64,
    columns: Arc<FacetColumns>,
    strs: Vec<Vec<(u32, u64)>>,
    release: Vec<(u64, u64)>,
}

impl Collector for FacetCounter<'_> {
    type Fruit = (u64, Facets);
    type Child = SegmentFacets;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let columns = self.columns.of(segment).facets(segment)?;
        let tallies = columns
            .strs
            .iter()
            .map(|c| Tally::new(c.as_ref().map_or(0, |(_, terms)| terms.len())))
            .collect();
        let release = match &columns.release {
            Some((_, max)) if *max >= 1 << 16 => ReleaseCounts::Sparse(HashMap::new()),
            Some((_, max)) => ReleaseCounts::Dense(vec![0; *max as usize + 1]),
            None => ReleaseCounts::Dense(Vec::new()),
        };
        let combined = Tally::new(columns.combined.as_ref().map_or(0, |c| c.parts.len()));
        Ok(SegmentFacets {
            total: 0,
            size: self.size,
            columns,
            tallies,
            release,
            combined,
            pending: Vec::with_capacity(BLOCK),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<SegmentCounts>) -> tantivy::Result<(u64, Facets)> {
        let total = segments.iter().map(|s| s.total).sum();
        // Values are borrowed from the segments' columns until the shown ones are known.
        let (strs, mut release): (Vec<Counted>, Vec<(u64, u64)>) = match &segments[..] {
            // One segment's ordinals are distinct: nothing to add up.
            [one] => {
                let strs = one
                    .strs
                    .iter()
                    .zip(&one.columns.strs)
                    .map(|(counted, column)| match column {
                        Some((_, terms)) => counted
                            .iter()
                            .filter_map(|&(ord, count)| Some((&**terms.get(ord as usize)?, count)))
                            .collect(),
                        None => Vec::new(),
                    })
                    .collect();
                (strs, one.release.clone())
            }
            _ => {
                let mut strs: Vec<FxHashMap<&str, u64>> =
                    vec![FxHashMap::default(); STR_FACETS.len()];
                let mut release: FxHashMap<u64, u64> = FxHashMap::default();
                for s in &segments {
                    for ((merged, counted), column) in
                        strs.iter_mut().zip(&s.strs).zip(&s.columns.strs)
                    {
                        let Some((_, terms)) = column else { continue };
                        for &(ord, count) in counted {
                            if let Some(term) = terms.get(ord as usize) {
                                *merged.entry(term).or_default() += count;
                            }
                        }
                    }
                    for &(number, count) in &s.release {
                        *release.entry(number).or_default() += count;
                    }
                }
                let strs = strs.into_iter().map(|m| m.into_iter().collect()).collect();
                (strs, release.into_iter().collect())
            }
        };
        let mut lists = strs.into_iter().zip(TOP_ONLY).map(|(mut list, top_only)| {
            if top_only {
                list.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                list.truncate(self.size);
            }
            list.into_iter()
                .map(|(value, count)| Bucket {
                    value: value.to_owned(),
                    count,
                })
                .collect::<Vec<_>>()
        });
        let mut next = || lists.next().unwrap_or_default();
        let (domain, person, filetype, mut month, mut dkim) =
            (next(), next(), next(), next(), next());
        dkim.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        month.sort_by(|a, b| a.value.cmp(&b.value));
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

    #[inline]
    fn collect(&mut self, doc: DocId, _: Score) {
        self.pending.push(doc);
        if self.pending.len() == BLOCK {
            self.count_pending();
        }
    }

    fn harvest(mut self) -> SegmentCounts {
        self.count_pending();
        if let Some(c) = &self.columns.combined {
            for (id, count) in std::mem::take(&mut self.combined).drain() {
                let Some(&[month, dkim, release]) = c.parts.get(id as usize) else {
                    continue;
                };
                // A count never exceeds the segment's emails, which fit in u32.
                let count = count as u32;
                self.tallies[MONTH].add_n(month, count);
                self.tallies[DKIM].add_n(dkim, count);
                if release != NONE {
                    self.release.add(release, count);
                }
            }
        }
        let keep = segment_size(self.size);
        let strs = self
            .tallies
            .into_iter()
            .zip(TOP_ONLY)
            .map(|(tally, top_only)| biggest(tally.drain(), top_only.then_some(keep)))
            .collect();
        let release = match self.release {
            ReleaseCounts::Dense(v) => v
                .into_iter()
                .enumerate()
                .filter(|(_, c)| *c > 0)
                .map(|(n, c)| (n as u64, c as u64))
                .collect(),
            ReleaseCounts::Sparse(m) => m.into_iter().map(|(n, c)| (n as u64, c as u64)).collect(),
        };
        SegmentCounts {
            total: self.total,
            columns: self.columns,
            strs,
            release,
        }
    }
}

/// The `keep` biggest of the counted (ordinal, count) pairs when given (ties to the
/// lower ordinal, which is the value first in byte order), else all of them.
fn biggest(mut counted: Vec<(u32, u64)>, keep: Option<usize>) -> Vec<(u32, u64)> {
    if let Some(keep) = keep
        && counted.len() > keep
    {
        counted.select_nth_unstable_by(keep, |a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counted.truncate(keep);
    }
    counted
}

/// Counts per term ordinal of one column in one segment: an array with a slot per value,
/// and the list of slots touched, so that a search matching a few emails reads back a
/// few slots, not every value of the column (a real archive has thousands of
/// correspondents).
#[derive(Default)]
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

    #[inline]
    fn add(&mut self, ord: u32) {
        self.add_n(ord, 1)
    }

    /// Counts `n` more for `ord`; an ordinal past the column's terms (`NONE`) is not
    /// counted.
    #[inline]
    fn add_n(&mut self, ord: u32, n: u32) {
        if let Some(c) = self.counts.get_mut(ord as usize) {
            if *c == 0 {
                self.touched.push(ord);
            }
            *c += n;
        }
    }

    /// The (ordinal, count) pairs counted, in no order.
    fn drain(self) -> Vec<(u32, u64)> {
        self.touched
            .iter()
            .map(|&ord| (ord, self.counts[ord as usize] as u64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `for_each_of` calls `f` with for `docs`, per email, gathered as count does.
    fn seen(values: &Values, records: &[Record], docs: &[DocId]) -> Vec<u32> {
        let block: Vec<Record> = docs
            .iter()
            .map(|&d| records.get(d as usize).copied().unwrap_or([NONE; SLOTS]))
            .collect();
        let mut out = Vec::new();
        values.for_each_of(docs, &block, |v| out.push(v));
        out
    }

    /// A column placed in the records and the same column spilled to an array of its own
    /// (when the records are full) give the same values, in the same order, for every
    /// block of emails: empty, one value, several, and emails past the segment's end.
    #[test]
    fn spilled_columns_count_what_placed_ones_count() {
        let docs = 300u32;
        let one: Vec<u32> = (0..docs)
            .map(|d| if d % 7 == 0 { NONE } else { d % 13 })
            .collect();
        let mut starts = vec![0u32];
        let mut many = Vec::new();
        for d in 0..docs {
            many.extend((0..d % 4).map(|k| d * 3 + k));
            starts.push(many.len() as u32);
        }
        let mut records = vec![[NONE; SLOTS]; docs as usize];
        let mut next = 0;
        let placed_one = Values::place_one(one.clone(), &mut records, &mut next);
        // Two slots: the emails with three values are set aside.
        let placed_many =
            Values::place_many(starts.clone(), many.clone(), 2, &mut records, &mut next);
        assert!(matches!(placed_one, Values::One(0)));
        assert!(matches!(
            &placed_many,
            Values::Inline { slot: 1, width: 2, spilled } if spilled.len() == 75
        ));
        assert_eq!(next, 3);
        let mut full = SLOTS - 1;
        let last = Values::place_one(one.clone(), &mut records, &mut full);
        assert!(matches!(last, Values::One(slot) if slot == SLOTS - 1));
        let spilled_one = Values::place_one(one, &mut records, &mut full);
        let spilled_many =
            Values::place_many(starts.clone(), many.clone(), 2, &mut records, &mut full);
        let unplaced_many = Values::place_many(starts, many, 0, &mut records, &mut next);
        assert!(matches!(spilled_one, Values::Spilled { .. }));
        assert!(matches!(spilled_many, Values::Spilled { .. }));
        assert!(matches!(unplaced_many, Values::Spilled { .. }));
        let blocks: [Vec<DocId>; 4] = [
            (0..64).collect(),
            (0..docs).step_by(5).take(BLOCK).collect(),
            vec![3, 4, 5, 299, 300, 1000],
            Vec::new(),
        ];
        for block in &blocks {
            let expected_one: Vec<u32> = block
                .iter()
                .filter(|&&d| d < docs && d % 7 != 0)
                .map(|&d| d % 13)
                .collect();
            let expected_many: Vec<u32> = block
                .iter()
                .filter(|&&d| d < docs)
                .flat_map(|&d| (0..d % 4).map(move |k| d * 3 + k))
                .collect();
            assert_eq!(seen(&placed_one, &records, block), expected_one);
            assert_eq!(seen(&spilled_one, &records, block), expected_one);
            assert_eq!(seen(&placed_many, &records, block), expected_many);
            assert_eq!(seen(&spilled_many, &records, block), expected_many);
            assert_eq!(seen(&unplaced_many, &records, block), expected_many);
        }
    }

    /// A multi-valued column gets the slots that hold 99 % of its emails' values.
    #[test]
    fn a_column_gets_the_slots_most_of_its_emails_need() {
        let starts = |counts: &[u32]| {
            let mut starts = vec![0];
            for c in counts {
                starts.push(starts.last().unwrap() + c);
            }
            starts
        };
        assert_eq!(slots_needed(&starts(&[])), 1);
        assert_eq!(slots_needed(&starts(&[0; 100])), 1);
        let mut counts = vec![2; 98];
        counts.extend([5, 9]);
        assert_eq!(slots_needed(&starts(&counts)), 5);
        // One email in a hundred with forty people does not widen every record.
        let mut counts = vec![2; 99];
        counts.push(40);
        assert_eq!(slots_needed(&starts(&counts)), 2);
        assert_eq!(slots_needed(&starts(&[SLOTS as u32 + 3; 10])), SLOTS);
    }
}
