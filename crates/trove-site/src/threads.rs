//! Conversations: JWZ threading (<https://www.jwz.org/doc/threading.html>) over the
//! `References` and `In-Reply-To` headers of published emails.
//!
//! Only headers make links; subjects are never compared (a "Re: budget" from another
//! conversation is not a reply). A message whose parent was never published keeps an empty
//! *placeholder* in its place, so that siblings answering the same missing email stay
//! together and the reader sees that something is missing. Every link records which header
//! of which email made it.
//!
//! Two derived files live beside the search index and are rebuilt with it:
//! `links.jsonl` (each email's identifiers, so that the next release can be threaded
//! without reading every email again) and `threads.bin` (for each public number, little-
//! endian u64, the thread it belongs to: the smallest number in its conversation; 0 for a
//! number that is not, or no longer, published). A thread's number therefore only changes
//! when a later email joins two conversations, and `/thread/N` accepts any member's number.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{PublishedMessage, Result, SiteError, io_err, write_atomic};

/// The identifiers of one published email that threading reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Links {
    #[serde(rename = "n")]
    pub number: u64,
    #[serde(rename = "id", default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(rename = "irt", default, skip_serializing_if = "Vec::is_empty")]
    pub in_reply_to: Vec<String>,
    #[serde(rename = "refs", default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

impl Links {
    pub fn of(m: &PublishedMessage) -> Links {
        Links {
            number: m.number,
            message_id: m.message_id.clone(),
            in_reply_to: m.in_reply_to.clone(),
            references: m.references.clone(),
        }
    }

    /// [`Links::of`] an email that is done with: its identifiers are moved, not copied.
    pub fn from_published(m: PublishedMessage) -> Links {
        Links {
            number: m.number,
            message_id: m.message_id,
            in_reply_to: m.in_reply_to,
            references: m.references,
        }
    }

    /// The chain of ancestors this email names, oldest first, and the header it comes
    /// from: References when present, else In-Reply-To (RFC 5322 §3.6.4).
    fn ancestors(&self) -> (&[String], Header) {
        if !self.references.is_empty() {
            (&self.references, Header::References)
        } else {
            (&self.in_reply_to, Header::InReplyTo)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Header {
    #[serde(rename = "References")]
    References,
    #[serde(rename = "In-Reply-To")]
    InReplyTo,
}

impl Header {
    pub fn name(self) -> &'static str {
        match self {
            Header::References => "References",
            Header::InReplyTo => "In-Reply-To",
        }
    }
}

/// Why a node hangs under its parent: `header` of email `by` names the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Via {
    pub header: Header,
    pub by: u64,
}

/// One place in a conversation: a published email, or a placeholder for one that is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The email's public number; `None` for a placeholder.
    pub number: Option<u64>,
    /// The Message-ID this node stands for (a placeholder's is all that is known of it).
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    pub children: Vec<usize>,
}

/// A forest of conversations; `roots` index into `nodes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Forest {
    pub nodes: Vec<Node>,
    pub roots: Vec<usize>,
}

impl Forest {
    /// The nodes of the tree under `root` in reading order (depth first, children by the
    /// order given to [`thread`]), with their depth.
    pub fn walk(&self, root: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut stack = vec![(root, 0)];
        while let Some((i, depth)) = stack.pop() {
            out.push((i, depth));
            for &c in self.nodes[i].children.iter().rev() {
                stack.push((c, depth + 1));
            }
        }
        out
    }
}

/// Threads `emails` (JWZ steps 1–4, without subject grouping). Children keep the order
/// of `emails`, so give them oldest first. An email without a Message-ID, or whose
/// Message-ID an earlier email of the list already has, still gets its own node.
pub fn thread(emails: &[Links]) -> Forest {
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    fn node_for<'a>(
        nodes: &mut Vec<Node>,
        by_id: &mut HashMap<&'a str, usize>,
        id: &'a str,
    ) -> usize {
        *by_id.entry(id).or_insert_with(|| {
            nodes.push(Node {
                number: None,
                message_id: Some(id.to_string()),
                parent: None,
                via: None,
                children: Vec::new(),
            });
            nodes.len() - 1
        })
    }
    let mut own = Vec::with_capacity(emails.len());
    for e in emails {
        let i = match &e.message_id {
            Some(id) => {
                let i = node_for(&mut nodes, &mut by_id, id);
                if nodes[i].number.is_none() {
                    nodes[i].number = Some(e.number);
                    i
                } else {
                    // A second email with this Message-ID: its own node, unlinked by id.
                    nodes.push(Node {
                        number: Some(e.number),
                        message_id: Some(id.clone()),
                        parent: None,
                        via: None,
                        children: Vec::new(),
                    });
                    nodes.len() - 1
                }
            }
            None => {
                nodes.push(Node {
                    number: Some(e.number),
                    message_id: None,
                    parent: None,
                    via: None,
                    children: Vec::new(),
                });
                nodes.len() - 1
            }
        };
        own.push(i);
    }
    // Parents, as JWZ: consecutive references link where no link exists yet; the email's
    // own parent is the last reference, replacing whatever an earlier guess said.
    let mut parent: Vec<Option<(usize, Via)>> = vec![None; nodes.len()];
    let is_ancestor = |parent: &Vec<Option<(usize, Via)>>, a: usize, mut b: usize| -> bool {
        // Is `a` an ancestor of, or equal to, `b`?
        let mut steps = 0;
        loop {
            if a == b {
                return true;
            }
            match parent.get(b).copied().flatten() {
                Some((p, _)) if steps < 100_000 => {
                    b = p;
                    steps += 1;
                }
                _ => return false,
            }
        }
    };
    for (e, &me) in emails.iter().zip(&own) {
        let (chain, header) = e.ancestors();
        let via = Via {
            header,
            by: e.number,
        };
        let mut prev: Option<usize> = None;
        for id in chain {
            let i = node_for(&mut nodes, &mut by_id, id);
            if parent.len() < nodes.len() {
                parent.resize(nodes.len(), None);
            }
            if let Some(p) = prev
                && parent[i].is_none()
                && !is_ancestor(&parent, i, p)
            {
                parent[i] = Some((p, via));
            }
            prev = Some(i);
        }
        if let Some(p) = prev
            && !is_ancestor(&parent, me, p)
        {
            parent[me] = Some((p, via));
        }
    }
    parent.resize(nodes.len(), None);
    for (i, link) in parent.iter().enumerate() {
        if let Some((p, via)) = link {
            nodes[i].parent = Some(*p);
            nodes[i].via = Some(*via);
        }
    }
    // Children in the order of the emails given; a placeholder sorts where its earliest
    // descendant does.
    let mut key = vec![usize::MAX; nodes.len()];
    for (rank, &i) in own.iter().enumerate() {
        key[i] = rank;
    }
    for &i in &own {
        let mut at = i;
        let mut steps = 0;
        while let Some(p) = nodes[at].parent {
            if key[p] > key[i] {
                key[p] = key[i];
            }
            at = p;
            steps += 1;
            if steps > 100_000 {
                break;
            }
        }
    }
    let mut by_key: Vec<usize> = (0..nodes.len()).collect();
    by_key.sort_by_key(|&i| (key[i], i));
    let mut roots = Vec::new();
    for &i in &by_key {
        match nodes[i].parent {
            Some(p) => nodes[p].children.push(i),
            None => roots.push(i),
        }
    }
    // A placeholder that leads nowhere (a reference whose link was refused, and every
    // placeholder above it that leads only there) is dropped: a node is kept when it is an
    // email or has one below it.
    let mut keep = vec![false; nodes.len()];
    for &i in &own {
        let mut at = Some(i);
        while let Some(n) = at
            && !keep[n]
        {
            keep[n] = true;
            at = nodes[n].parent;
        }
    }
    let mut forest = Forest { nodes, roots };
    if keep.iter().all(|k| *k) {
        return forest;
    }
    let mut new_index = vec![usize::MAX; forest.nodes.len()];
    let mut kept = Vec::new();
    for (i, node) in forest.nodes.into_iter().enumerate() {
        if keep[i] {
            new_index[i] = kept.len();
            kept.push(node);
        }
    }
    // The kept ones of a list of nodes, by their new places.
    let renumber = |list: &[usize]| -> Vec<usize> {
        list.iter()
            .filter(|&&i| keep[i])
            .map(|&i| new_index[i])
            .collect()
    };
    for node in &mut kept {
        node.parent = node.parent.map(|p| new_index[p]);
        node.children = renumber(&node.children);
    }
    forest.roots = renumber(&forest.roots);
    forest.nodes = kept;
    forest
}

/// For each email, the thread it is in: the smallest public number of its conversation.
/// Conversations are the connected parts of the graph of identifiers, which are exactly
/// the trees [`thread`] builds (a link it refuses joins nodes already connected).
pub fn thread_numbers(emails: &[Links]) -> HashMap<u64, u64> {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut sets = DisjointSets::default();
    let mut slot_of_email = Vec::with_capacity(emails.len());
    for e in emails {
        let me = match &e.message_id {
            Some(id) => *ids.entry(id).or_insert_with(|| sets.add()),
            None => sets.add(),
        };
        slot_of_email.push(me);
        let (chain, _) = e.ancestors();
        for id in chain {
            let other = *ids.entry(id).or_insert_with(|| sets.add());
            sets.union(me, other);
        }
    }
    let mut smallest: HashMap<usize, u64> = HashMap::new();
    for (e, &slot) in emails.iter().zip(&slot_of_email) {
        let root = sets.find(slot);
        let s = smallest.entry(root).or_insert(e.number);
        *s = (*s).min(e.number);
    }
    emails
        .iter()
        .zip(&slot_of_email)
        .map(|(e, &slot)| (e.number, smallest[&sets.find(slot)]))
        .collect()
}

#[derive(Default)]
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn add(&mut self) -> usize {
        self.parent.push(self.parent.len());
        self.parent.len() - 1
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            let (lo, hi) = (a.min(b), a.max(b));
            self.parent[hi] = lo;
        }
    }
}

const LINKS_FILE: &str = "links.jsonl";
const THREADS_FILE: &str = "threads.bin";

/// Threads the site again: `links.jsonl` with `added` put in and `removed` taken out,
/// then both derived files rewritten. Call it before committing the index the change
/// belongs to, so that a reader who sees the new index finds the new threads.
pub(crate) fn apply(
    dir: &Path,
    added: impl IntoIterator<Item = Links>,
    removed: &[u64],
) -> Result<()> {
    let mut links: std::collections::BTreeMap<u64, Links> = read_links(dir)?
        .into_iter()
        .map(|l| (l.number, l))
        .collect();
    for l in added {
        links.insert(l.number, l);
    }
    for n in removed {
        links.remove(n);
    }
    let links: Vec<Links> = links.into_values().collect();
    write_threads(dir, &links)
}

/// Reads `links.jsonl` from the index directory (empty if there is none yet).
fn read_links(dir: &Path) -> Result<Vec<Links>> {
    let path = dir.join(LINKS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&path)(e)),
    };
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| SiteError::Format {
                path: path.clone(),
                message: format!("{e}; rebuild it with `trove reindex SITE`"),
            })
        })
        .collect()
}

/// Writes both derived files for `emails` (sorted by number).
fn write_threads(dir: &Path, emails: &[Links]) -> Result<()> {
    // Each line is written straight into one buffer, sized for the ids it will hold: a
    // `String` per line, copied in and dropped, and a buffer outgrowing a guess of 120
    // bytes a line (a reply's references run to several hundred) were 1.3 of this
    // function's 2.3 % of a 100k release's samples.
    let ids: usize = emails
        .iter()
        .map(|e| {
            let listed = e.in_reply_to.iter().chain(&e.references);
            e.message_id.as_ref().map_or(0, String::len)
                + listed.map(|i| i.len() + 3).sum::<usize>()
        })
        .sum();
    let mut text = Vec::with_capacity(ids + emails.len() * 48);
    for e in emails {
        serde_json::to_writer(&mut text, e).expect("plain data");
        text.push(b'\n');
    }
    write_atomic(&dir.join(LINKS_FILE), &text)?;
    let of = thread_numbers(emails);
    let max = emails.iter().map(|e| e.number).max().unwrap_or(0);
    let mut bin = vec![0u8; max as usize * 8];
    for (n, t) in of {
        let at = (n as usize - 1) * 8;
        bin[at..at + 8].copy_from_slice(&t.to_le_bytes());
    }
    write_atomic(&dir.join(THREADS_FILE), &bin)
}

/// `threads.bin`, in memory: the thread of each public number, and the numbers sorted by
/// thread so that a thread's members are found without a scan.
#[derive(Debug, Clone, Default)]
pub struct ThreadMap {
    of: Vec<u64>,
    /// (thread, number) for every threaded number, sorted; made on first use. A search
    /// needs it only for `thread:N`, and sorting it on every open was a third of a
    /// `trove search` process at 100k (and grows with the archive).
    by_thread: std::sync::OnceLock<Vec<(u64, u64)>>,
}

impl ThreadMap {
    /// Reads `threads.bin` in `dir`; an empty map when there is none.
    pub(crate) fn read(dir: &Path) -> Result<ThreadMap> {
        let path = dir.join(THREADS_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let of: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(ThreadMap {
            of,
            by_thread: Default::default(),
        })
    }

    fn by_thread(&self) -> &[(u64, u64)] {
        self.by_thread.get_or_init(|| {
            let mut by_thread: Vec<(u64, u64)> = self
                .of
                .iter()
                .enumerate()
                .filter(|(_, t)| **t != 0)
                .map(|(i, t)| (*t, i as u64 + 1))
                .collect();
            by_thread.sort_unstable();
            by_thread
        })
    }

    /// The thread of email `number`, if it is published and threaded.
    pub fn thread_of(&self, number: u64) -> Option<u64> {
        let t = *self.of.get((number as usize).checked_sub(1)?)?;
        (t != 0).then_some(t)
    }

    /// The entries of thread `thread` in `by_thread`.
    fn range(&self, thread: u64) -> &[(u64, u64)] {
        let by_thread = self.by_thread();
        let start = by_thread.partition_point(|(t, _)| *t < thread);
        let end = by_thread.partition_point(|(t, _)| *t <= thread);
        &by_thread[start..end]
    }

    /// Every email of thread `thread`, by number.
    pub fn members(&self, thread: u64) -> Vec<u64> {
        self.range(thread).iter().map(|(_, n)| *n).collect()
    }

    /// How many emails thread `thread` has.
    pub fn size_of(&self, thread: u64) -> usize {
        self.range(thread).len()
    }

    /// Every thread and how many emails it has, in thread order.
    pub fn sizes(&self) -> Vec<(u64, usize)> {
        self.by_thread()
            .chunk_by(|a, b| a.0 == b.0)
            .map(|c| (c[0].0, c.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: u64, id: &str, irt: &[&str], refs: &[&str]) -> Links {
        Links {
            number: n,
            message_id: (!id.is_empty()).then(|| id.to_string()),
            in_reply_to: irt.iter().map(|s| s.to_string()).collect(),
            references: refs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn shape(f: &Forest) -> Vec<String> {
        let mut out = Vec::new();
        for &r in &f.roots {
            for (i, depth) in f.walk(r) {
                let n = &f.nodes[i];
                let what = match n.number {
                    Some(x) => x.to_string(),
                    None => format!("?{}", n.message_id.as_deref().unwrap_or("")),
                };
                let via = n
                    .via
                    .map(|v| format!(" ({} of {})", v.header.name(), v.by))
                    .unwrap_or_default();
                out.push(format!("{}{what}{via}", "  ".repeat(depth)));
            }
        }
        out
    }

    #[test]
    fn replies_hang_under_their_parents_with_the_header_that_said_so() {
        let f = thread(&[
            l(1, "a", &[], &[]),
            l(2, "b", &["a"], &[]),
            l(3, "c", &["b"], &["a", "b"]),
            l(4, "d", &[], &[]),
        ]);
        assert_eq!(
            shape(&f),
            [
                "1",
                "  2 (In-Reply-To of 2)",
                "    3 (References of 3)",
                "4"
            ]
        );
    }

    #[test]
    fn a_missing_parent_is_a_placeholder_that_keeps_siblings_together() {
        let f = thread(&[l(5, "x", &["gone"], &[]), l(6, "y", &[], &["root", "gone"])]);
        assert_eq!(
            shape(&f),
            [
                "?root",
                "  ?gone (References of 6)",
                "    5 (In-Reply-To of 5)",
                "    6 (References of 6)"
            ]
        );
        let of = thread_numbers(&[
            l(5, "x", &["gone"], &[]),
            l(6, "y", &[], &["root", "gone"]),
            l(7, "z", &[], &[]),
        ]);
        assert_eq!((of[&5], of[&6], of[&7]), (5, 5, 7));
    }

    #[test]
    fn subjects_do_not_thread_and_loops_do_not_hang() {
        // 1 claims 2 as parent, 2 claims 1: one link is refused, nothing loops.
        let f = thread(&[l(1, "a", &["b"], &[]), l(2, "b", &["a"], &[])]);
        let walked: usize = f.roots.iter().map(|&r| f.walk(r).len()).sum();
        assert_eq!(walked, 2);
        assert_eq!(f.roots.len(), 1);
        // A duplicate Message-ID gets its own node; an email without one too.
        let f = thread(&[
            l(1, "a", &[], &[]),
            l(2, "a", &[], &[]),
            l(3, "", &["a"], &[]),
        ]);
        assert_eq!(shape(&f), ["1", "  3 (In-Reply-To of 3)", "2"]);
    }

    #[test]
    fn a_placeholder_that_leads_nowhere_is_dropped_from_its_parents_children_too() {
        // "a" names itself, then "c": "c" hangs under "a", and "a" under "c" is refused,
        // so "c" leads nowhere. Below "d", "e" then "f" lead nowhere in a chain.
        let f = thread(&[
            l(1, "a", &[], &["a", "c"]),
            l(2, "b", &[], &["d", "b", "e", "f"]),
        ]);
        assert_eq!(shape(&f), ["1", "?d", "  2 (References of 2)"]);
        for node in &f.nodes {
            assert!(node.children.iter().all(|&c| c < f.nodes.len()), "{node:?}");
            assert!(node.parent.is_none_or(|p| p < f.nodes.len()), "{node:?}");
        }
    }
}
