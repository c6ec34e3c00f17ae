//! The one place trove steers its allocator, mimalloc, at run time.
//!
//! The workspace forbids `unsafe` code; setting one of mimalloc's options is a call into
//! its C library, so it lives here, alone, where it can be read in a minute.
//!
//! A release builds the emails of one chunk, writes them and frees them, and the next
//! chunk asks for as much memory again. mimalloc hands freed memory back to the system
//! once it has been free for its purge delay (a second), and what it asks for next comes
//! back as fresh pages the kernel must zero: in a 100,000-email release, 13,600 to 20,200
//! page faults and 4.7 % of a profile's samples in the kernel's `clear_page_erms`.
//! [`KeepFreedMemory`] lengthens the delay to ten seconds while it lives (BENCHMARKS.md
//! has the figures).

use std::ffi::{c_int, c_long};

// The static library these link against is built by libmimalloc-sys, which the
// binary's global allocator (the `mimalloc` crate) already links.
use libmimalloc_sys as _;

/// `mi_option_purge_delay` in `mimalloc.h`'s `mi_option_e`, the same in its v2 and v3
/// (libmimalloc-sys declares the functions below but not this option's number), in
/// milliseconds.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// How long freed memory is kept while [`KeepFreedMemory`] lives, in milliseconds. Never
/// purging (`-1`) took the faults of a 100,000-email release from 13,600–20,200 to 2,400,
/// as this does, but a 1M release's peak from 1.98 to 2.81 GB (memory one stage freed
/// and the next never asked for again); with ten seconds it was 2.09 and 2.24 GB in two
/// runs.
const KEPT_FOR_MS: c_long = 10_000;

unsafe extern "C" {
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
}

/// While alive, freed memory stays with the process for ten seconds, to be used again,
/// before it goes back to the system; dropping it puts back the delay it found.
///
/// For batch work that frees and asks again at the same pace (a release). Not for
/// `serve`, a long-lived process that should give back what a burst took, nor for
/// ingest: there its peak memory grew by 11 and 19 % in two runs at 100,000 emails with
/// the purge off, and it went no faster.
#[must_use = "the memory is kept only while the guard lives"]
pub struct KeepFreedMemory {
    delay: c_long,
}

impl KeepFreedMemory {
    pub fn hold() -> Self {
        let delay = purge_delay();
        set_purge_delay(KEPT_FOR_MS);
        Self { delay }
    }
}

impl Drop for KeepFreedMemory {
    fn drop(&mut self) {
        set_purge_delay(self.delay);
    }
}

/// mimalloc's purge delay now, in milliseconds (`-1`: never).
fn purge_delay() -> c_long {
    // SAFETY: mimalloc's function, linked through libmimalloc-sys; it reads one integer
    // of its option table and takes no pointers.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

fn set_purge_delay(ms: c_long) {
    // SAFETY: as in `purge_delay`, writing that integer, which mimalloc reads again each
    // time it would purge.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test binary's allocator is the system's, but the library is linked and its
    // option table is there to read and write: the option's number is checked against
    // mimalloc's own default for it (1,000 ms in v3, 10 in v2), then set and put back.
    #[test]
    fn the_purge_delay_is_lengthened_and_put_back() {
        let before = purge_delay();
        assert!(
            before == 1000 || before == 10,
            "not the purge delay: {before}"
        );
        {
            let _kept = KeepFreedMemory::hold();
            assert_eq!(purge_delay(), KEPT_FOR_MS);
        }
        assert_eq!(purge_delay(), before);
    }
}
