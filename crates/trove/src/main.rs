//! The `trove` command: CLI wiring over the library crates. Errors become one clear line
//! and an exit code: 0 ok, 1 operational failure, 2 bad usage.

mod dns;
mod export;
mod mirror;
mod progress;

/// mimalloc instead of glibc's allocator: parsing, detection and the catalogue allocate
/// and free small strings by the million, and glibc's malloc and free were 9 % of an
/// ingest's samples.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use trove_workspace::{Selection, Workspace};

#[derive(Parser)]
#[command(
    name = "trove",
    version,
    about = "Publish a large email archive so that anyone can read it, search it and check it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a workspace: catalogue, original store, signing key, config.
    #[command(after_help = "Example:\n  trove init ~/leak-ws")]
    Init { workspace: PathBuf },

    /// Read mail into a workspace: mbox (any variant, .gz), Maildir, Maildir++, Enron-style
    /// trees, .eml directories, zip/tar/tar.gz archives of these. Safe to re-run.
    #[command(
        after_help = "Example:\n  trove ingest ~/leak-ws ~/dump/maildir ~/dump/lists.mbox.gz"
    )]
    Ingest {
        workspace: PathBuf,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print no progress, only the summary.
        #[arg(long)]
        quiet: bool,
        /// Add the DKIM keys of this key archive before reading (see `trove dkim`).
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Print the counts as one JSON object instead of the summary, with the time each
        /// stage took (`stages`, nanoseconds; see BENCHMARKS.md). Implies --quiet.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dns: DnsArgs,
    },

    /// Add DKIM keys and verify every email's signatures again, judging x= at each email's
    /// own date. Keys come from a key archive file: lines of `selector._domainkey.domain`
    /// and the TXT value.
    #[command(
        after_help = "Examples:\n  trove dkim ~/leak-ws --keys dkim-keys.txt\n  trove dkim ~/leak-ws --private-key-published 20120113._domainkey.example.com"
    )]
    Dkim {
        workspace: PathBuf,
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Mark a key (selector._domainkey.domain) as having its private half published:
        /// a pass with it then proves nothing, and the email page says so.
        #[arg(long, value_name = "NAME")]
        private_key_published: Vec<String>,
        #[command(flatten)]
        dns: DnsArgs,
        #[arg(long)]
        json: bool,
    },

    /// Personal-data findings grouped by kind, what policy.toml does with them, and what
    /// the next release would publish, redact, withhold or be blocked by.
    #[command(
        after_help = "Examples:\n  trove review ~/leak-ws\n  trove review ~/leak-ws --json > findings.json\n  trove review ~/leak-ws --csv findings.csv\n\nEdit ~/leak-ws/policy.toml (documented inside) and run review again."
    )]
    Review {
        workspace: PathBuf,
        /// Everything as one JSON object (`kinds`, `findings`, `next_release`).
        #[arg(long)]
        json: bool,
        /// Write every finding to this CSV file, one row each, for a team to work through.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
    },

    /// Counts of what the workspace holds.
    #[command(after_help = "Example:\n  trove status ~/leak-ws --json")]
    Status {
        workspace: PathBuf,
        #[arg(long)]
        json: bool,
    },

    /// Publish a selection of unreleased emails (oldest first) as a signed release, now or
    /// at a set time (`--at`; it then waits in the workspace for `trove publish-due`).
    #[command(
        after_help = "Examples:\n  trove release ~/leak-ws --next 1000 --title \"Part 1\"\n  trove release ~/leak-ws --all --site /srv/archive\n  trove release ~/leak-ws --folder allen-p/sent --until 2001-06 --title \"Sent mail\"\n  trove release ~/leak-ws --query 'subject:california' --next 500 --at 2016-10-07T09:00Z"
    )]
    Release {
        workspace: PathBuf,
        #[command(flatten)]
        selection: SelectionArgs,
        #[arg(long)]
        title: Option<String>,
        /// Go-live time (2016-10-07T09:00Z). Later than now: the release is planned, and
        /// nothing of it reaches the site before `trove publish-due` runs after that time.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// The site directory (default: `site` in trove.toml).
        #[arg(long)]
        site: Option<PathBuf>,
    },

    /// List planned releases, or lay out a schedule (`--daily N --from DATE`).
    #[command(
        after_help = "Examples:\n  trove plan ~/leak-ws\n  trove plan ~/leak-ws --daily 2000 --from 2016-10-07T09:00Z --title 'Day {n}'\n  trove plan ~/leak-ws --cancel 3\n\nPlanned releases go live when `trove publish-due` runs after their time (cron or a systemd timer; see the README)."
    )]
    Plan {
        workspace: PathBuf,
        /// Emails a day: split the selection into daily installments.
        #[arg(long, value_name = "N", requires = "from")]
        daily: Option<u64>,
        /// The first installment's go-live time; the next ones follow a day apart.
        #[arg(long, value_name = "TIME", requires = "daily")]
        from: Option<String>,
        /// At most this many installments.
        #[arg(long, requires = "daily")]
        days: Option<u32>,
        /// Title of each installment; {n} is its number in the schedule, {date} its day.
        #[arg(long, default_value = "Installment {n} ({date})")]
        title: String,
        #[command(flatten)]
        selection: SelectionArgs,
        /// Cancel a plan that has not gone live (its emails return to the pool).
        #[arg(long, value_name = "PLAN", conflicts_with = "daily")]
        cancel: Option<i64>,
        #[arg(long)]
        json: bool,
    },

    /// Publish every planned release whose time has come, in order. For cron or a
    /// systemd timer; does nothing when nothing is due.
    #[command(
        name = "publish-due",
        after_help = "Example (crontab, every minute):\n  * * * * * trove publish-due /srv/leak-ws --quiet"
    )]
    PublishDue {
        workspace: PathBuf,
        #[arg(long)]
        site: Option<PathBuf>,
        /// Print only what was published.
        #[arg(long)]
        quiet: bool,
    },

    /// Take a published email down (a court order): a signed release records the number
    /// and the reason, and its files leave the site. The number is never reused.
    #[command(after_help = "Example:\n  trove withdraw ~/leak-ws 1234 --reason \"court order\"")]
    Withdraw {
        workspace: PathBuf,
        number: u64,
        /// Published in the register of the withdrawal.
        #[arg(long)]
        reason: String,
        #[arg(long)]
        site: Option<PathBuf>,
    },

    /// Copy a site from its server, checking every signature and hash before accepting
    /// anything; resumes after an interruption and fetches only what is new. Then serve
    /// the copy with `trove serve DIR`.
    #[command(
        after_help = "Examples:\n  trove mirror https://archive.example.org /srv/mirror\n  trove mirror https://archive.example.org /srv/mirror --trust-new-key\n\nRun it from cron to follow new releases; see the README for a systemd timer."
    )]
    Mirror {
        url: String,
        dir: PathBuf,
        /// Accept a signing key different from the one this mirror pinned (only after the
        /// publisher announced it); the copy is then fetched again under the new key.
        #[arg(long)]
        trust_new_key: bool,
        /// Trust the CA certificate(s) in this PEM file instead of the public roots (an
        /// origin with its own certificate authority).
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
        /// Milliseconds to wait between requests, to spare an origin under load.
        #[arg(long, default_value_t = 0, value_name = "MS")]
        pause_ms: u64,
        #[arg(long)]
        quiet: bool,
    },

    /// Copies of a site for distribution: a static HTML copy, a BitTorrent metainfo file
    /// per release, and each release's emails as mbox and JSON Lines.
    #[command(
        after_help = "Examples:\n  trove export ~/leak-ws/site --static /srv/static --live-url https://archive.example.org\n  trove export ~/leak-ws/site --torrent torrents/ --web-seed https://archive.example.org\n  trove export ~/leak-ws/site --mbox out/ --jsonl out/\n\nThe torrents are named `site`: seed them from a static export's site/ directory, which holds the signed files as files (a site keeps emails' files in packs)."
    )]
    Export {
        site: PathBuf,
        /// Write every page as HTML with relative links into this directory.
        #[arg(long = "static", value_name = "DIR")]
        static_dir: Option<PathBuf>,
        /// Write release-NNNNNN.torrent files into this directory.
        #[arg(long = "torrent", value_name = "DIR")]
        torrent_dir: Option<PathBuf>,
        /// Write release-NNNNNN.mbox files (mboxrd) into this directory.
        #[arg(long = "mbox", value_name = "DIR")]
        mbox_dir: Option<PathBuf>,
        /// Write release-NNNNNN.jsonl files (one published email a line) into this directory.
        #[arg(long = "jsonl", value_name = "DIR")]
        jsonl_dir: Option<PathBuf>,
        /// The live archive's address: the static copy's search form and links go there.
        #[arg(long, value_name = "URL")]
        live_url: Option<String>,
        /// Add this address as a web seed to the torrents (it serves the files under /site/).
        #[arg(long, value_name = "URL")]
        web_seed: Option<String>,
        #[arg(long)]
        quiet: bool,
    },

    /// Check every signature, the chain of releases and every file's hash.
    #[command(after_help = "Example:\n  trove verify /srv/archive")]
    Verify { site: PathBuf },

    /// Rebuild a site's search index from its published emails (e.g. on a mirror that
    /// copied the signed files but not the index).
    #[command(after_help = "Example:\n  trove reindex /srv/archive")]
    Reindex { site: PathBuf },

    /// Search the published emails of a site, with the same engine as the web.
    #[command(
        after_help = "Examples:\n  trove search /srv/archive 'from:allen \"gas prices\" after:2001-01'\n  trove search /srv/archive 'subject:meeting -from:lay' --sort newest --json"
    )]
    Search {
        site: PathBuf,
        /// The query; it may start with `-` (`-from:lay`).
        #[arg(allow_hyphen_values = true)]
        query: String,
        /// relevance, newest or oldest.
        #[arg(long, default_value = "relevance")]
        sort: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// The cursor printed after a page (`next:`): the page after it. There is no
        /// limit to how deep the pages go.
        #[arg(long)]
        after: Option<String>,
        /// Also count facets (sender domain, people, month, release, attachment type,
        /// DKIM), as many values of each as given.
        #[arg(long, default_value_t = 0)]
        facets: usize,
        #[arg(long)]
        json: bool,
    },

    /// Check the DKIM signatures of one email file, outside any workspace. Exits 0 when at
    /// least one signature passes, 1 otherwise.
    #[command(
        name = "verify-message",
        after_help = "Examples:\n  trove verify-message leaked.eml --keys dkim-keys.txt\n  trove verify-message leaked.eml --keys dkim-keys.txt --json\n\nKey file: one record a line, `selector._domainkey.domain TXT-value`; # starts a comment.\nSignature expiry (x=) is judged at the email's own Date, not today."
    )]
    VerifyMessage {
        file: PathBuf,
        /// Key archive: lines of `selector._domainkey.domain` and the TXT value.
        #[arg(long)]
        keys: Option<PathBuf>,
        #[command(flatten)]
        dns: DnsArgs,
        #[arg(long)]
        json: bool,
    },

    /// Serve a site to readers over HTTP.
    #[command(after_help = "Example:\n  trove serve /srv/archive --bind 127.0.0.1:8080")]
    Serve {
        site: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
    },

    /// Ingest a sample of real Enron mail, release it in three installments, and serve it.
    #[command(after_help = "Example:\n  trove demo   # then open the printed URL")]
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// Where to build the demo workspace and site (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Build everything, print the URL, and exit without serving.
        #[arg(long)]
        no_serve: bool,
    },
}

/// Which unreleased emails a release or plan takes.
#[derive(clap::Args)]
struct SelectionArgs {
    /// At most N emails (oldest first).
    #[arg(long, value_name = "N", conflicts_with = "all")]
    next: Option<u64>,
    /// Every unreleased email that matches.
    #[arg(long)]
    all: bool,
    /// Only emails with a copy in this folder or below it (as `trove status` names them).
    #[arg(long)]
    folder: Option<String>,
    /// Only emails dated before the end of this date (2001, 2001-05, 2001-05-14, or a time).
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
    /// Only emails matching this query (the search language of the site, over the
    /// unreleased emails).
    #[arg(long, value_name = "QUERY", allow_hyphen_values = true)]
    query: Option<String>,
}

impl SelectionArgs {
    /// The selection; `required` says whether one must be stated (a release must say how
    /// many; a schedule takes everything by default).
    fn selection(&self, required: bool) -> Result<Selection> {
        if self.next == Some(0) {
            return Err(Usage("--next must be at least 1".into()).into());
        }
        let filtered = self.folder.is_some() || self.until.is_some() || self.query.is_some();
        if required && self.next.is_none() && !self.all && !filtered {
            return Err(Usage(
                "say what to release: --next N, --all, or a filter (--folder, --until, --query)"
                    .into(),
            )
            .into());
        }
        let until = match &self.until {
            Some(u) => {
                Some(trove_workspace::parse_until(u).map_err(|e| Usage(format!("--until: {e}")))?)
            }
            None => None,
        };
        Ok(Selection {
            limit: self.next,
            folder: self.folder.clone(),
            until,
            query: self.query.clone(),
        })
    }
}

/// A user error (exit 2) rather than an operational failure (exit 1).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn main() -> ExitCode {
    // `trove … | head` closes stdout early and println! then panics; leave quietly with
    // the status a Unix tool killed by SIGPIPE has.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    trove_site::raise_open_files_limit();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("trove: {}", one_line(&e));
            let usage = e.downcast_ref::<Usage>().is_some()
                || matches!(
                    e.downcast_ref::<trove_workspace::WorkspaceError>(),
                    Some(trove_workspace::WorkspaceError::Usage(_))
                );
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// The error and its causes on one line, leaving out a cause its parent already quotes
/// (our error types write `{path}: {source}`).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init { workspace } => {
            let ws = Workspace::init(&workspace)?;
            let key = ws.signing_key()?;
            println!("Created workspace {}", workspace.display());
            println!("  config:      {}", workspace.join("trove.toml").display());
            println!(
                "  signing key: {} (keep it private; public key {})",
                workspace.join("keys/signing.key").display(),
                hex_key(&key)
            );
            println!("Next: trove ingest {} PATH...", workspace.display());
        }
        Command::Ingest {
            workspace,
            paths,
            quiet,
            keys,
            json,
            dns,
        } => {
            let mut ws = Workspace::open(&workspace)?;
            if let Some(keys) = keys {
                report_key_import(&keys, &ws.import_keys(&keys)?);
            }
            let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
            let progress = progress::IngestProgress::new(quiet || json);
            let stats = ws.ingest(&paths, &progress)?;
            progress.finish();
            if json {
                let mut out = serde_json::to_value(&stats)?;
                out["elapsed_s"] = stats.elapsed.as_secs_f64().into();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                progress::print_summary(&stats);
            }
            if dns.dns && capture_dns_keys(&mut ws, &dns)? > 0 {
                let progress = progress::CountProgress::new("verifying DKIM", quiet);
                let summary = ws.verify_dkim(&|done, total| progress.update(done, total));
                progress.finish();
                let summary = summary?;
                println!(
                    "DKIM with the keys found in DNS: {} of {} signed emails pass",
                    summary.pass, summary.signed
                );
            }
        }
        Command::Dkim {
            workspace,
            keys,
            private_key_published,
            dns,
            json,
        } => {
            let mut ws = Workspace::open(&workspace)?;
            if let Some(keys) = keys {
                report_key_import(&keys, &ws.import_keys(&keys)?);
            }
            if dns.dns {
                capture_dns_keys(&mut ws, &dns)?;
            }
            for name in &private_key_published {
                if !ws.mark_key_compromised(name)? {
                    return Err(Usage(format!(
                        "no key {name} in the workspace; add it with --keys first"
                    ))
                    .into());
                }
            }
            let progress = progress::CountProgress::new("verifying DKIM", json);
            let summary = ws.verify_dkim(&|done, total| progress.update(done, total));
            progress.finish();
            let summary = summary?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "DKIM: {} emails, {} signed, {} with a passing signature, {} unsigned",
                    summary.emails,
                    summary.signed,
                    summary.pass,
                    summary.emails - summary.signed
                );
                for (verdict, n) in &summary.signatures {
                    println!("  signatures {verdict:<14} {n}");
                }
                for (verdict, n) in &summary.arc {
                    println!("  ARC chains {verdict:<14} {n}");
                }
            }
        }
        Command::Review {
            workspace,
            json,
            csv,
        } => review(&workspace, json, csv.as_deref())?,
        Command::Status { workspace, json } => {
            let ws = Workspace::open(&workspace)?;
            let s = ws.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("Workspace {}", workspace.display());
                println!(
                    "  emails:          {} ({} released, {} not yet, {} held back)",
                    s.messages, s.released, s.unreleased, s.withheld
                );
                for (reason, n) in &s.withheld_by_reason {
                    println!("    {reason:<22} {n}");
                }
                println!("  files read:      {}", s.files_read);
                println!(
                    "  duplicates:      {} (extra copies collapsed into their email)",
                    s.duplicates
                );
                println!("  flagged:         {}", s.flagged);
                for (reason, n) in &s.flagged_by_reason {
                    println!("    {reason:<22} {n}");
                }
                println!("  skipped files:   {}", s.skipped_files);
                println!("  releases:        {}", s.releases);
                println!(
                    "  DKIM:            {} pass, {} fail, {} unverified (no usable key), {} unsigned ({} keys held)",
                    s.dkim_pass, s.dkim_fail, s.dkim_unverified, s.dkim_none, s.dkim_keys
                );
                println!("  original bytes:  {}", s.original_bytes);
            }
        }
        Command::Release {
            workspace,
            selection,
            title,
            at,
            site,
        } => {
            let selection = selection.selection(true)?;
            let mut ws = Workspace::open(&workspace)?;
            let site = site.unwrap_or_else(|| ws.site_dir());
            let at = match at {
                Some(at) => Some(
                    trove_workspace::parse_time(&at).map_err(|e| Usage(format!("--at: {e}")))?,
                ),
                None => None,
            };
            match at {
                Some(at) if at > time_now() => match ws.plan(&selection, title.as_deref(), at)? {
                    Some(p) => {
                        println!(
                            "Planned (plan {}): {} emails go live at {}. Nothing is in the site until then; `trove publish-due {}` publishes it once due.",
                            p.id,
                            p.emails,
                            p.at,
                            workspace.display()
                        );
                    }
                    None => println!("Nothing to plan: no unreleased, unplanned email matches."),
                },
                _ => release_now(&mut ws, &site, &selection, title.as_deref(), false)?,
            }
        }
        Command::Plan {
            workspace,
            daily,
            from,
            days,
            title,
            selection,
            cancel,
            json,
        } => {
            let mut ws = Workspace::open(&workspace)?;
            if let Some(id) = cancel {
                let p = ws.cancel_plan(id)?;
                println!(
                    "Cancelled plan {} ({} emails, was due {}).",
                    p.id, p.emails, p.at
                );
                return Ok(ExitCode::SUCCESS);
            }
            if let (Some(per_day), Some(from)) = (daily, from) {
                let selection = selection.selection(false)?;
                let from = trove_workspace::parse_time(&from)
                    .map_err(|e| Usage(format!("--from: {e}")))?;
                let made = ws.plan_daily(&selection, per_day, from, days, &title)?;
                println!("Planned {} installments.", made.len());
            }
            print_plans(&ws.plans()?, json)?;
        }
        Command::PublishDue {
            workspace,
            site,
            quiet,
        } => {
            let mut ws = Workspace::open(&workspace)?;
            let site = site.unwrap_or_else(|| ws.site_dir());
            let progress = progress::CountProgress::new("writing emails", quiet);
            let _memory = trove_alloc::KeepFreedMemory::hold();
            let published = ws.publish_due(&site, time_now().unix_timestamp(), &|done, total| {
                progress.update(done, total)
            });
            progress.finish();
            let published = published?;
            for r in &published {
                print_outcome(r);
            }
            if published.is_empty() && !quiet {
                let next = ws.plans()?.into_iter().find(|p| p.state == "planned");
                match next {
                    Some(p) => println!(
                        "Nothing due. Next: plan {} ({} emails) at {}.",
                        p.id, p.emails, p.at
                    ),
                    None => println!("Nothing due, and nothing planned."),
                }
            }
        }
        Command::Withdraw {
            workspace,
            number,
            reason,
            site,
        } => {
            let mut ws = Workspace::open(&workspace)?;
            let site = site.unwrap_or_else(|| ws.site_dir());
            let r = ws.withdraw(&site, number, &reason)?;
            println!(
                "Withdrew email {number} (\"{reason}\") in release {}, manifest sha256 {}. Its files are gone from {}; mirrors remove them on their next pull.",
                r.release,
                r.manifest_sha256,
                site.display()
            );
        }
        Command::Mirror {
            url,
            dir,
            trust_new_key,
            ca_cert,
            pause_ms,
            quiet,
        } => mirror::mirror(
            &url,
            &dir,
            &mirror::Options {
                trust_new_key,
                ca_cert,
                pause: std::time::Duration::from_millis(pause_ms),
                quiet,
            },
        )?,
        Command::Export {
            site,
            static_dir,
            torrent_dir,
            mbox_dir,
            jsonl_dir,
            live_url,
            web_seed,
            quiet,
        } => {
            if static_dir.is_none()
                && torrent_dir.is_none()
                && mbox_dir.is_none()
                && jsonl_dir.is_none()
            {
                return Err(Usage("say what to export: --static DIR, --torrent DIR, --mbox DIR and/or --jsonl DIR".into()).into());
            }
            export::export(
                &site,
                &export::Options {
                    static_dir,
                    torrent_dir,
                    mbox_dir,
                    jsonl_dir,
                    live_url,
                    web_seed,
                    quiet,
                },
            )?;
        }
        Command::Verify { site } => {
            let report = trove_site::verify_site(&site);
            for line in &report.lines {
                println!("{line}");
            }
            if let Some(problem) = report.failure {
                eprintln!("trove: verify FAILED: {problem}");
                return Ok(ExitCode::from(1));
            }
            let withdrawn = match report.emails_withdrawn {
                0 => String::new(),
                n => format!(" ({n} withdrawn since)"),
            };
            println!(
                "OK: {} releases, {} emails{withdrawn}, {} files checked; every signature, the chain and every hash verify.",
                report.releases, report.emails, report.files
            );
        }
        Command::Search {
            site,
            query,
            sort,
            limit,
            offset,
            after,
            facets,
            json,
        } => {
            let sort = trove_site::Sort::parse(&sort).ok_or_else(|| {
                Usage(format!(
                    "--sort must be relevance, newest or oldest, not {sort:?}"
                ))
            })?;
            let s = trove_site::Site::open(&site)?;
            let max = s.last_number()?;
            let index = trove_site::SearchIndex::open(&s.index_dir())?;
            let request = trove_site::SearchRequest {
                sort,
                after: after.as_deref(),
                offset,
                limit,
                facets,
                ..trove_site::SearchRequest::new(&query, max)
            };
            let results = match index.run(&request) {
                Ok(r) => r,
                Err(trove_site::SiteError::Query(e)) => {
                    return Err(Usage(format!("bad query {e}\n{}", e.pointer(&query))).into());
                }
                Err(e) => return Err(e.into()),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                println!("{} emails match", results.total);
                for h in &results.hits {
                    println!(
                        "{:>7}  {:<25}  {:<35}  {}",
                        h.number,
                        h.date.as_deref().unwrap_or("(no date)"),
                        clip(&h.from, 35),
                        h.subject
                    );
                }
                if let Some(f) = &results.facets {
                    for (name, buckets) in [
                        ("domain", &f.domain),
                        ("person", &f.person),
                        ("filetype", &f.filetype),
                        ("dkim", &f.dkim),
                        ("release", &f.release),
                    ] {
                        let list: Vec<String> = buckets
                            .iter()
                            .map(|b| format!("{} {}", b.value, b.count))
                            .collect();
                        println!("{name:>9}: {}", list.join(", "));
                    }
                }
                if let Some(next) = &results.next {
                    println!("next: --after {next}");
                }
            }
        }
        Command::Reindex { site } => {
            let s = trove_site::Site::open(&site)?;
            let n = trove_site::rebuild_index(&s)?;
            println!(
                "Indexed {n} published emails in {}",
                s.index_dir().display()
            );
        }
        Command::VerifyMessage {
            file,
            keys,
            dns,
            json,
        } => {
            return verify_message(&file, keys.as_deref(), &dns, json);
        }
        Command::Serve { site, bind } => serve(&site, bind)?,
        Command::Demo {
            bind,
            dir,
            no_serve,
        } => demo(bind, dir, no_serve)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn report_key_import(path: &Path, import: &trove_workspace::KeyImport) {
    for (line, text) in &import.bad_lines {
        eprintln!(
            "trove: warning: {}:{line}: not a key record (`selector._domainkey.domain TXT`): {text}",
            path.display()
        );
    }
    // On stderr, so that `--json` output stays one JSON document.
    eprintln!(
        "Keys from {}: {} added, {} replaced",
        path.display(),
        import.added,
        import.replaced
    );
}

fn review(workspace: &Path, json: bool, csv_path: Option<&Path>) -> Result<()> {
    let mut ws = Workspace::open(workspace)?;
    let progress = progress::CountProgress::new("scanning for personal data", json);
    let review = ws.review(&|done, total| progress.update(done, total));
    progress.finish();
    let review = review?;
    if let Some(path) = csv_path {
        let mut w = csv::Writer::from_path(path).with_context(|| format!("{}", path.display()))?;
        w.write_record([
            "kind",
            "action",
            "confidence",
            "content_id",
            "message_id",
            "number",
            "part",
            "value",
            "context",
        ])?;
        for f in &review.findings {
            w.write_record([
                f.kind.as_str(),
                f.action.as_str(),
                &format!("{:.2}", f.confidence),
                f.message.as_str(),
                f.message_id.as_deref().unwrap_or_default(),
                &f.number.map(|n| n.to_string()).unwrap_or_default(),
                f.part.as_str(),
                f.value.as_str(),
                f.context.as_str(),
            ])?;
        }
        w.flush().with_context(|| format!("{}", path.display()))?;
        eprintln!(
            "{} findings written to {}",
            review.findings.len(),
            path.display()
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&review)?);
        return Ok(());
    }
    println!(
        "Personal data in {} (policy sha256 {})",
        workspace.display(),
        &review.policy_sha256[..12]
    );
    if review.kinds.is_empty() {
        println!("  no findings");
    }
    for k in &review.kinds {
        println!(
            "\n{:<14} {:>6} finding(s) in {:>5} email(s)   policy: {}",
            k.kind, k.findings, k.messages, k.action
        );
        for e in &k.examples {
            println!("    … {e} …");
        }
    }
    let n = &review.next_release;
    println!(
        "\nNext release (--all): {} unreleased email(s): {} published ({} with redactions), {} withheld",
        n.unreleased,
        n.publish,
        n.redacted,
        n.withhold.values().sum::<u64>()
    );
    for (reason, count) in &n.withhold {
        println!("  withheld: {count} for {reason}");
    }
    if !n.blocked.is_empty() {
        println!(
            "  BLOCKED: {} email(s) have findings marked \"block\"; release refuses until policy.toml has an [[overrides]] entry for each:",
            n.blocked.len()
        );
        for (content_id, message_id, kinds) in n.blocked.iter().take(20) {
            println!(
                "    content_id = \"{content_id}\"  Message-ID {}  ({})",
                message_id.as_deref().unwrap_or("(none)"),
                kinds.join(", ")
            );
        }
    }
    Ok(())
}

/// Live DNS lookups of DKIM keys, opt-in.
#[derive(clap::Args, Debug)]
struct DnsArgs {
    /// Look up keys the workspace lacks in live DNS now; each is kept with the time of the
    /// lookup. A key found today may not be the one used years ago (keys rotate).
    #[arg(long)]
    dns: bool,
    /// Ask this DNS server (IP:PORT) instead of the system's resolvers.
    #[arg(long, value_name = "ADDR", requires = "dns")]
    dns_server: Option<SocketAddr>,
}

/// Looks up the keys the workspace's signatures need and lacks; returns how many it added.
fn capture_dns_keys(ws: &mut Workspace, dns: &DnsArgs) -> Result<u64> {
    let names = ws.missing_key_names()?;
    if names.is_empty() {
        eprintln!("DNS: no key is missing; nothing to look up");
        return Ok(0);
    }
    eprintln!("DNS: looking up {} key record(s)", names.len());
    let lookups = dns::lookup_keys(&names, dns.dns_server)?;
    for (name, why) in &lookups.missing {
        eprintln!("DNS: {name}: {why}");
    }
    let import = ws.add_keys(&lookups.found)?;
    eprintln!(
        "DNS: {} key record(s) found and kept, {} not found",
        lookups.found.len(),
        lookups.missing.len()
    );
    Ok(import.added + import.replaced)
}

fn verify_message(file: &Path, keys: Option<&Path>, dns: &DnsArgs, json: bool) -> Result<ExitCode> {
    use trove_mail::dkim::{KeyLookup, KeyStore, Verdict};
    let raw = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
    let store = match keys {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
            let (store, bad) = KeyStore::parse_archive(&text, &path.display().to_string());
            for (line, text) in bad {
                eprintln!(
                    "trove: warning: {}:{line}: not a key record (`selector._domainkey.domain TXT`): {text}",
                    path.display()
                );
            }
            store
        }
        None => KeyStore::default(),
    };
    let mut store = store;
    let parsed = trove_mail::parse(&raw);
    let date = parsed.date.map(|d| d.timestamp);
    if dns.dns {
        // The names the signatures and seals point at that the key file does not give.
        let mut names: Vec<String> = trove_mail::dkim::verify(&raw, &store, date)
            .iter()
            .map(|v| (v.selector.clone(), v.domain.clone()))
            .chain(
                trove_mail::dkim::verify_arc(&raw, &store, date)
                    .into_iter()
                    .flat_map(|a| a.seals.into_iter().map(|(_, d, s, _)| (s, d))),
            )
            .filter(|(s, d)| !s.is_empty() && !d.is_empty())
            .map(|(s, d)| format!("{s}._domainkey.{d}").to_ascii_lowercase())
            .filter(|name| store.lookup(name).is_none())
            .collect();
        names.sort();
        names.dedup();
        let lookups = dns::lookup_keys(&names, dns.dns_server)?;
        for (name, why) in &lookups.missing {
            eprintln!("DNS: {name}: {why}");
        }
        for record in lookups.found {
            store.insert(record);
        }
    }
    let verdicts = trove_mail::dkim::verify(&raw, &store, date);
    let passed = verdicts.iter().any(|v| v.verdict == Verdict::Pass);
    if json {
        let list: Vec<serde_json::Value> = verdicts
            .iter()
            .map(|v| {
                serde_json::json!({
                    "domain": v.domain,
                    "selector": v.selector,
                    "algorithm": v.algorithm,
                    "verdict": v.verdict.name(),
                    "reason": v.verdict.reason(),
                    "key_bits": v.key_bits,
                    "key_source": v.key.as_ref().map(|k| k.source.to_string()),
                    "body_length_limit": v.body_length_limit,
                    "body_length": v.body_length,
                    "signed_headers": v.signed_headers,
                    "weak": v.weak,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if verdicts.is_empty() {
        println!(
            "{}: no DKIM-Signature header: nothing to verify.",
            file.display()
        );
    } else {
        for v in &verdicts {
            let d = trove_site::PublishedDkim::from_verdict(v);
            println!("{}: {}", d.verdict.to_uppercase(), d.sentence());
        }
    }
    let arc = trove_mail::dkim::verify_arc(&raw, &store, date);
    if let (false, Some(arc)) = (json, arc) {
        let seals: Vec<String> = arc
            .seals
            .iter()
            .map(|(i, d, s, v)| format!("{i}: {d} (selector {s}) {}", v.name()))
            .collect();
        let outcome = match &arc.verdict {
            Verdict::Pass => "PASS".to_string(),
            other => format!("{}: {}", other.name().to_uppercase(), other.reason()),
        };
        println!(
            "ARC: chain of {} set(s), {outcome}; seals {}",
            arc.sets,
            seals.join(", ")
        );
    }
    Ok(ExitCode::from(if passed { 0 } else { 1 }))
}

fn hex_key(key: &trove_site::SigningKey) -> String {
    key.verifying_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn print_outcome(r: &trove_workspace::ReleaseOutcome) {
    let verb = if r.resumed {
        "Finished interrupted"
    } else {
        "Published"
    };
    let emails = if r.numbers.count() == 0 {
        "no new emails".to_string()
    } else {
        format!("emails {}..={}", r.numbers.first, r.numbers.last)
    };
    println!(
        "{verb} release {} \"{}\": {emails} ({} files), manifest sha256 {}",
        r.release, r.title, r.files, r.manifest_sha256
    );
    for h in &r.held_back {
        eprintln!(
            "warning: release {}: email {} could not be built and is held back (the register counts it as \"{}\"; the emails after it took the numbers up): {}",
            r.release,
            h.content_id,
            trove_workspace::NOT_BUILT,
            h.error
        );
    }
}

/// Publishes `selection` now (and any planned release already due, first).
fn release_now(
    ws: &mut Workspace,
    site: &Path,
    selection: &Selection,
    title: Option<&str>,
    quiet: bool,
) -> Result<()> {
    let progress = progress::CountProgress::new("writing emails", quiet);
    let _memory = trove_alloc::KeepFreedMemory::hold();
    let outcome = ws.release(site, selection, title, &|done, total| {
        progress.update(done, total)
    });
    progress.finish();
    let published = outcome?;
    if published.is_empty() {
        println!("Nothing to release: no unreleased, unplanned email matches.");
        return Ok(());
    }
    for r in &published {
        print_outcome(r);
    }
    println!("Site: {}", site.display());
    Ok(())
}

fn print_plans(plans: &[trove_workspace::Plan], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(plans)?);
        return Ok(());
    }
    if plans.is_empty() {
        println!("No releases planned.");
        return Ok(());
    }
    let now = time_now().unix_timestamp();
    println!(
        "{:>5}  {:<20}  {:>7}  {:<18}  title",
        "plan", "go-live (UTC)", "emails", "state"
    );
    for p in plans {
        let state = match (p.state.as_str(), p.release) {
            ("published", Some(k)) => format!("live as release {k}"),
            ("planned", _) if p.at_unix <= now => "due".to_string(),
            ("planned", _) => "scheduled".to_string(),
            (s, _) => s.to_string(),
        };
        let title = if p.title.is_empty() {
            "(Release K)"
        } else {
            p.title.as_str()
        };
        println!(
            "{:>5}  {:<20}  {:>7}  {:<18}  {title}",
            p.id, p.at, p.emails, state
        );
    }
    Ok(())
}

fn serve(site: &Path, bind: SocketAddr) -> Result<()> {
    trove_site::Site::open(site)?;
    // Searches and pack reads run on tokio's blocking threads, and they are work for the
    // cores, not waits: tokio's default of 512 let 32 connections start 32 searches on 2
    // cores, and switching between them cost a tenth of the throughput. Four per core
    // leave room for reads that wait on the disk.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(cores * 4)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let addr = listener.local_addr()?;
        println!(
            "Serving {} at http://{addr}/ (Ctrl-C to stop)",
            site.display()
        );
        trove_web::serve(site, listener)
            .await
            .map_err(|e| anyhow!(e))
    })
}

const DEMO_MBOX: &[u8] = include_bytes!("../demo/enron-allen-p-sample.mbox");

fn demo(bind: SocketAddr, dir: Option<PathBuf>, no_serve: bool) -> Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("trove-demo-{}", std::process::id())),
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} is not empty; give --dir a new directory", dir.display());
    }
    let ws_dir = dir.join("workspace");
    let input = dir.join("input");
    std::fs::create_dir_all(&input).with_context(|| format!("{}", input.display()))?;
    let mbox = input.join("enron-allen-p-sample.mbox.gz");
    {
        use std::io::Write;
        let file = std::fs::File::create(&mbox).with_context(|| format!("{}", mbox.display()))?;
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        gz.write_all(DEMO_MBOX)?;
        gz.finish()?;
    }
    println!("trove demo: building in {}", dir.display());
    let mut ws = Workspace::init(&ws_dir)?;
    let progress = progress::IngestProgress::new(true);
    let stats = ws.ingest(&[mbox.as_path()], &progress)?;
    progress::print_summary(&stats);
    let site = ws.site_dir();
    let total = ws.status()?.messages;
    let part = total.div_ceil(3).max(1);
    for (i, title) in ["Part one", "Part two", "Part three"].iter().enumerate() {
        let selection = if i == 2 {
            Selection::all()
        } else {
            Selection::next(part)
        };
        release_now(&mut ws, &site, &selection, Some(title), true)?;
    }
    let report = trove_site::verify_site(&site);
    if let Some(problem) = report.failure {
        bail!("the demo site does not verify: {problem}");
    }
    println!(
        "Verified: {} releases, {} emails, {} files.",
        report.releases, report.emails, report.files
    );
    if no_serve {
        println!(
            "Site ready at {}; serve it with: trove serve {}",
            site.display(),
            site.display()
        );
        return Ok(());
    }
    serve(&site, bind)
}
