//! A byte-bounded memory of recent values, oldest out: what readers keep of files read
//! out of packs (`pack.rs`), the facets searches counted (`index.rs`) and the pages the
//! server made (trove-web).

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Values kept under keys, at most `budget` bytes of them in all (as `weigh` counts
/// them); the oldest goes first when a new one needs room, and a value over `largest`
/// bytes is not kept. Keys are hashed with `S`: the standard library's keyed hash unless
/// they are the reader's own (places in packs), never a request's.
#[derive(Debug)]
pub struct KeptBytes<K, V, S = RandomState> {
    values: HashMap<K, V, S>,
    order: VecDeque<K>,
    bytes: usize,
    budget: usize,
    largest: usize,
    weigh: fn(&V) -> usize,
}

impl<K: Hash + Eq + Clone, V: AsRef<[u8]> + Clone, S: BuildHasher + Default> KeptBytes<K, V, S> {
    /// Kept bytes (files, pages), weighed by their length.
    pub fn new(budget: usize, largest: usize) -> Self {
        KeptBytes::weighed(budget, largest, |v| v.as_ref().len())
    }
}

impl<K: Hash + Eq + Clone, V: Clone, S: BuildHasher + Default> KeptBytes<K, V, S> {
    /// Kept values of any kind, weighed by `weigh`.
    pub fn weighed(budget: usize, largest: usize, weigh: fn(&V) -> usize) -> Self {
        KeptBytes {
            values: HashMap::default(),
            order: VecDeque::new(),
            bytes: 0,
            budget,
            largest,
            weigh,
        }
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.values.get(key).cloned()
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps `value` under `key`, letting the oldest values go to stay within budget.
    /// A key already kept keeps its first value.
    pub fn put(&mut self, key: K, value: V) {
        let len = (self.weigh)(&value);
        if len > self.largest || self.values.contains_key(&key) {
            return;
        }
        while self.bytes + len > self.budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.values.remove(&old) {
                self.bytes -= (self.weigh)(&gone);
            }
        }
        self.bytes += len;
        self.order.push_back(key.clone());
        self.values.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_values_go_when_the_budget_is_spent() {
        let mut kept: KeptBytes<u32, Vec<u8>> = KeptBytes::new(1000, 100);
        for n in 0..20u32 {
            kept.put(n, vec![n as u8; 100]);
        }
        assert_eq!(kept.bytes(), 1000);
        for n in 0..10 {
            assert!(kept.get(&n).is_none(), "{n} should have gone first");
        }
        for n in 10..20 {
            assert_eq!(kept.get(&n).unwrap(), vec![n as u8; 100]);
        }
        kept.put(99, vec![0; 101]);
        assert!(kept.get(&99).is_none(), "too big to keep");
        kept.put(19, vec![0; 10]);
        assert_eq!(
            kept.get(&19).unwrap(),
            vec![19u8; 100],
            "the first value stays"
        );
    }
}
