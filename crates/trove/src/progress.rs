//! Ingest progress: a bar with messages/s, bytes and ETA on a terminal; a log line every
//! few seconds otherwise (cron, CI, a pipe).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use trove_workspace::{IngestStats, Progress};

pub struct IngestProgress {
    bar: Option<ProgressBar>,
    quiet: bool,
    last_log: Throttle,
}

const LOG_EVERY: Duration = Duration::from_secs(5);

/// Says when the next log line is due: at most one every [`LOG_EVERY`].
struct Throttle(Mutex<Instant>);

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle(Mutex::new(Instant::now()))
    }
}

impl Throttle {
    fn due(&self) -> bool {
        let mut last = self.0.lock().expect("not poisoned");
        if last.elapsed() < LOG_EVERY {
            return false;
        }
        *last = Instant::now();
        true
    }
}

impl IngestProgress {
    pub fn new(quiet: bool) -> IngestProgress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}")
                    .expect("static template"),
            );
            bar
        });
        IngestProgress {
            bar,
            quiet,
            last_log: Throttle::default(),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn rate(stats: &IngestStats) -> f64 {
    stats.messages_seen as f64 / stats.elapsed.as_secs_f64().max(0.001)
}

impl Progress for IngestProgress {
    fn update(&self, stats: &IngestStats) {
        if let Some(bar) = &self.bar {
            bar.set_length(stats.bytes_total);
            bar.set_position(stats.bytes_read);
            bar.set_message(format!(
                "{} msgs, {:.0} msgs/s",
                stats.messages_seen,
                rate(stats)
            ));
            return;
        }
        if self.quiet {
            return;
        }
        if !self.last_log.due() {
            return;
        }
        let secs = stats.elapsed.as_secs_f64();
        let eta = if stats.bytes_read > 0 && stats.bytes_total > stats.bytes_read {
            format!(
                "{:.0}s",
                secs * (stats.bytes_total - stats.bytes_read) as f64 / stats.bytes_read as f64
            )
        } else {
            "-".into()
        };
        eprintln!(
            "ingest: {} messages ({:.0}/s), {:.1} of {:.1} MB read, ETA {eta}",
            stats.messages_seen,
            rate(stats),
            stats.bytes_read as f64 / 1e6,
            stats.bytes_total as f64 / 1e6
        );
    }

    /// A quiet run (`--quiet`, `--json`, `trove demo`) shows no estimate, and spares the
    /// walk that counts the corpus first: a quarter of a second on one core before the
    /// first email of a 100,000-file Maildir.
    fn shows_size(&self) -> bool {
        !self.quiet
    }

    fn warn(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("warning: {message}")),
            None => eprintln!("trove: warning: {message}"),
        }
    }
}

pub fn print_summary(s: &IngestStats) {
    println!(
        "Ingest done in {:.1}s ({:.0} messages/s)",
        s.elapsed.as_secs_f64(),
        s.messages_seen as f64 / s.elapsed.as_secs_f64().max(0.001)
    );
    println!("  files read:        {}", s.files_read);
    println!("  messages found:    {}", s.messages_seen);
    println!("  new emails:        {}", s.messages_new);
    println!("  duplicates:        {}", s.duplicates);
    if s.already_ingested > 0 {
        println!(
            "  already ingested:  {} (places recorded before, not counted again)",
            s.already_ingested
        );
    }
    let flagged: u64 = s.flagged.values().sum();
    println!("  flagged:           {flagged} flags on new emails");
    for (reason, n) in &s.flagged {
        println!("    {reason:<22} {n}");
    }
    println!("  skipped non-mail:  {}", s.skipped_files);
    for (file, reason) in s.skipped.iter().take(10) {
        println!("    {file}: {reason}");
    }
    if s.skipped_files > 10 {
        println!(
            "    … and {} more (trove status --json counts them by reason)",
            s.skipped_files - 10
        );
    }
    if !s.errors.is_empty() {
        println!("  unreadable:        {} (listed above)", s.errors.len());
    }
}

/// Progress of a count of items (emails written by a release): a bar on a terminal, a log
/// line every few seconds otherwise.
pub struct CountProgress {
    what: &'static str,
    bar: Option<ProgressBar>,
    quiet: bool,
    started: Instant,
    last_log: Throttle,
}

impl CountProgress {
    pub fn new(what: &'static str, quiet: bool) -> CountProgress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} {per_sec} ETA {eta}")
                    .expect("static template"),
            );
            bar.set_message(what);
            bar
        });
        CountProgress {
            what,
            bar,
            quiet,
            started: Instant::now(),
            last_log: Throttle::default(),
        }
    }

    pub fn update(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            return;
        }
        if self.quiet {
            return;
        }
        if !self.last_log.due() {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(0.001);
        let eta = if rate > 0.0 {
            format!("{:.0}s", (total - done) as f64 / rate)
        } else {
            "-".into()
        };
        eprintln!("{}: {done} of {total} ({rate:.0}/s), ETA {eta}", self.what);
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
