//! Search pages already made. The site changes only when a release goes live, so a
//! search page is the same for everyone until then: when one link is shared widely (a
//! reporter's search in an article), thousands of readers ask for the same page at once.
//! The answer is kept, keyed by the index snapshot, the highest signed number and the
//! request's query string, so a new release or a reloaded index never serves an old
//! page. Memory is bounded by bytes; the oldest page goes first
//! ([`trove_site::KeptBytes`]).

use std::sync::Mutex;

use axum::body::Bytes;
use trove_site::KeptBytes;

/// The pages a search page cache holds, at most, in bytes.
pub const BUDGET: usize = 16 << 20;

pub struct KeptPages {
    inner: Mutex<KeptBytes<String, Bytes>>,
}

impl Default for KeptPages {
    fn default() -> Self {
        // A page larger than a sixteenth of the budget is not kept.
        KeptPages {
            inner: Mutex::new(KeptBytes::new(BUDGET, BUDGET / 16)),
        }
    }
}

impl KeptPages {
    /// The key of a page: what it depends on besides the code.
    pub fn key(generation: u64, max_number: u64, query: &str) -> String {
        format!("{generation}/{max_number}/{query}")
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.lock().get(key)
    }

    /// Keeps `page` under `key`, letting the oldest pages go to stay within [`BUDGET`].
    pub fn put(&self, key: String, page: Bytes) {
        self.lock().put(key, page);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeptBytes<String, Bytes>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_pages_go_when_the_budget_is_spent() {
        let kept = KeptPages::default();
        let page = Bytes::from(vec![b'x'; BUDGET / 16]);
        for n in 0..20 {
            kept.put(KeptPages::key(1, 5, &format!("q={n}")), page.clone());
        }
        // Sixteen pages fit; the first four went.
        for n in 0..4 {
            assert!(kept.get(&KeptPages::key(1, 5, &format!("q={n}"))).is_none());
        }
        for n in 4..20 {
            assert!(kept.get(&KeptPages::key(1, 5, &format!("q={n}"))).is_some());
        }
        assert!(kept.lock().bytes() <= BUDGET);
        // Another snapshot or another signed number is another page.
        assert!(kept.get(&KeptPages::key(2, 5, "q=19")).is_none());
        assert!(kept.get(&KeptPages::key(1, 6, "q=19")).is_none());
        // Too big to keep.
        kept.put("big".into(), Bytes::from(vec![0; BUDGET / 16 + 1]));
        assert!(kept.get("big").is_none());
    }
}
