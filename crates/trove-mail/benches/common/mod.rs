//! What the crate's benchmarks share.

use std::time::{Duration, Instant};

/// The mean time of one call of `f`, after a warm-up, over about a second.
pub fn per_call(mut f: impl FnMut()) -> Duration {
    for _ in 0..20 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs(1) {
        f();
        n += 1;
    }
    start.elapsed() / n
}
