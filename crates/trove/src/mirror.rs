//! `trove mirror URL DIR`: copy a site over HTTP(S), accepting nothing unchecked.
//!
//! The origin serves its signed files under `/site/` (see trove-web). A pull reads the
//! origin's `site.json`, pins its key (the first pull trusts it, as ssh does; later pulls
//! refuse a different key unless told `--trust-new-key`), checks that the origin's copy
//! of the mirror's last release is byte-for-byte the one the mirror holds (history is
//! never rewritten), and then takes each new release in order:
//!
//! 1. the manifest and its signature, checked against the pinned key, the chain, the
//!    numbering and the Merkle root;
//! 2. every file it lists, into `DIR/.trove-mirror/files/` (staging, invisible to `trove
//!    serve` and `trove verify`), each checked against its size and SHA-256 as it arrives;
//!    emails' files come a pack at a time (`/site/messages/FFFF/FIRST.pack`, one request
//!    for a folder's files of one release) where the origin serves packs, and one by one
//!    otherwise; a file already staged or already in place with the right hash is not
//!    fetched again, so an interrupted pull resumes where it stopped;
//! 3. only when every file checks out: emails' files written as a pack per folder (as
//!    the origin keeps them) and other files moved into place, then the signature, then
//!    the manifest (the order releases are written in), then the files the release
//!    withdraws removed.
//!
//! A file that does not match stops the pull with its name; the mirror's copy stays as
//! it was, complete up to its last release. Finally the search index is brought up to
//! date (it is derived, so it is rebuilt locally rather than copied).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use trove_site::{Manifest, Site, SiteInfo};

use crate::progress::CountProgress;

pub struct Options {
    pub trust_new_key: bool,
    /// Trust the CA certificates in this PEM file instead of the public roots (an origin
    /// with a private certificate authority).
    pub ca_cert: Option<PathBuf>,
    /// Wait between requests, to spare an origin under load.
    pub pause: Duration,
    pub quiet: bool,
}

/// Where the origin's files are, relative to its base URL.
const SITE_PREFIX: &str = "site";
const STAGING: &str = ".trove-mirror";

struct Origin {
    base: String,
    agent: ureq::Agent,
    pause: Duration,
}

impl Origin {
    /// The bytes at `path` under the origin's `/site/`, at most `limit` of them; `None`
    /// for a 404.
    fn get(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        if !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        let url = format!("{}/{SITE_PREFIX}/{path}", self.base);
        match self.agent.get(&url).call() {
            Ok(mut response) => {
                match response.body_mut().with_config().limit(limit).read_to_vec() {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(ureq::Error::BodyExceedsLimit(_)) => Err(anyhow!(TooLarge(url))),
                    Err(e) => Err(anyhow!("reading {url}: {e}")),
                }
            }
            Err(ureq::Error::StatusCode(404)) | Err(ureq::Error::StatusCode(410)) => Ok(None),
            Err(e) if e.to_string().contains("certificate") => Err(anyhow!(
                "{url}: {e} (if the origin uses its own certificate authority, give its certificate with --ca-cert)"
            )),
            Err(e) => Err(anyhow!("{url}: {e}")),
        }
    }
}

/// A response longer than the signed size (or the sanity limit) allows.
#[derive(Debug)]
struct TooLarge(String);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: larger than allowed", self.0)
    }
}

impl std::error::Error for TooLarge {}

pub fn mirror(url: &str, dir: &Path, opts: &Options) -> Result<()> {
    let base = url.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("{url}: give the origin's address as http://… or https://…");
    }
    let mut config = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(300)));
    if let Some(path) = &opts.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            bail!("{}: no certificate in it (expected PEM)", path.display());
        }
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    let origin = Origin {
        base: base.clone(),
        agent: config.build().into(),
        pause: opts.pause,
    };
    let info_bytes = origin.get("site.json", 1 << 20)?.ok_or_else(|| {
        anyhow!("{base}/{SITE_PREFIX}/site.json: not found; is {base} a trove site (trove serve)?")
    })?;
    let info: SiteInfo = serde_json::from_slice(&info_bytes)
        .with_context(|| format!("{base}/{SITE_PREFIX}/site.json is not a trove site.json"))?;
    let key = info
        .verifying_key()
        .map_err(|e| anyhow!("{base}/{SITE_PREFIX}/site.json: {e}"))?;

    if dir.join("site.json").exists() {
        let local = Site::open(dir)?;
        if local.info().public_key != info.public_key {
            if !opts.trust_new_key {
                bail!(
                    "the origin's signing key changed: this mirror holds key {} (fingerprint {}), {base} now signs with {} (fingerprint {}). Nothing was copied. If the publisher announced this key, run again with --trust-new-key; the copy is then fetched again and checked under the new key.",
                    local.info().public_key,
                    local.info().fingerprint(),
                    info.public_key,
                    info.fingerprint()
                );
            }
            eprintln!(
                "Trusting the new key {} (fingerprint {}); removing the copy made under the old key.",
                info.public_key,
                info.fingerprint()
            );
            for sub in ["releases", "messages", "attachments", "index", STAGING] {
                let p = dir.join(sub);
                if p.exists() {
                    std::fs::remove_dir_all(&p).with_context(|| format!("{}", p.display()))?;
                }
            }
            for f in ["site.json", "public-key.pem"] {
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
    } else {
        println!(
            "First pull from {base}: pinning its key {} (fingerprint {}). Compare the fingerprint with the one the publisher announced.",
            info.public_key,
            info.fingerprint()
        );
    }
    let site = Site::open_or_create(dir, &info.title, &key)?;

    // What the mirror holds, and the check that the origin still agrees with it.
    let mut have = 0u32;
    while dir.join(trove_site::manifest_path(have + 1)).exists() {
        have += 1;
    }
    let mut chain = trove_site::Chain::default();
    if have > 0 {
        let path = dir.join(trove_site::manifest_path(have));
        let local = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
        let theirs = origin
            .get(&trove_site::manifest_path(have), 1 << 30)?
            .ok_or_else(|| {
                anyhow!("{base} no longer serves release {have}, which this mirror holds")
            })?;
        if theirs != local {
            bail!(
                "{base}'s release {have} differs from this mirror's copy ({}): the origin's history was rewritten, or it is another site; nothing was copied",
                path.display()
            );
        }
        let manifest =
            Manifest::from_bytes(&local).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        chain = trove_site::Chain::after(&manifest, &local);
    }

    let started = Instant::now();
    // 1. Every new manifest, checked in order before any file is fetched.
    let mut new: Vec<(Manifest, Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        let k = have + new.len() as u32 + 1;
        let mpath = trove_site::manifest_path(k);
        let Some(bytes) = origin.get(&mpath, 1 << 30)? else {
            break;
        };
        let spath = trove_site::signature_path(k);
        let sig = origin.get(&spath, 1024)?.ok_or_else(|| {
            anyhow!("{base}/{SITE_PREFIX}/{spath}: missing (release {k} has a manifest but no signature)")
        })?;
        let manifest = chain
            .accept(&bytes, &sig, &key)
            .map_err(|e| anyhow!("{base}/{SITE_PREFIX}/{mpath}: {e}; nothing was accepted"))?;
        new.push((manifest, bytes, sig));
    }
    if new.is_empty() {
        println!("Up to date: {base} has no release after {have}.");
        return Ok(());
    }

    // 2. The files the copy will hold once every new release is applied: a file a later
    //    release withdraws is not fetched (the origin no longer serves it).
    let wanted = trove_site::LiveFiles::of(new.iter().map(|(m, _, _)| m)).files;
    let staging = dir.join(STAGING).join("files");
    let (mut fetched, mut fetched_bytes, mut reused, mut packs) = (0u64, 0u64, 0u64, 0u64);
    // Files the pack phase settled (held already, or fetched in a pack and checked):
    // not read, hashed or asked for again file by file.
    let mut settled = std::collections::HashSet::new();
    let mut from_packs = 0u64;
    // An email's files come a pack at a time where the origin serves its packs (one
    // request for a folder's files of one release, not two per email); each file in it
    // is checked as if fetched alone, and what a pack does not bring is fetched alone.
    let held = |f: &trove_site::FileEntry| -> Result<bool> {
        Ok(site_holds(&site, f)? || file_matches(&staging.join(&f.path), f)?)
    };
    let groups = pack_groups(new.iter().map(|(m, _, _)| m), &wanted);
    let progress = CountProgress::new("fetching packs", opts.quiet);
    for (i, group) in groups.iter().enumerate() {
        progress.update(i as u64, groups.len() as u64);
        let mut missing = std::collections::HashMap::new();
        for f in &group.files {
            if held(f)? {
                reused += 1;
                settled.insert(f.path.as_str());
            } else {
                missing.insert(f.path.as_str(), *f);
            }
        }
        if missing.is_empty() {
            continue;
        }
        let rel = trove_site::pack_path(group.folder, group.first);
        // A pack is its files compressed, and an index of about 100 bytes a file.
        let limit = group.files.iter().map(|f| f.size + 200).sum::<u64>() + (1 << 20);
        let body = match origin.get(&rel, limit) {
            Err(e) if e.downcast_ref::<TooLarge>().is_some() => None,
            other => other?,
        };
        let Some(body) = body else { continue };
        // Only what this pull is missing, at its signed size, is decompressed.
        let wanted = |e: &trove_site::PackEntry| {
            missing
                .get(e.path.as_str())
                .is_some_and(|f| f.size == e.size)
        };
        let Ok(files) = trove_site::unpack(&rel, &body, wanted) else {
            continue;
        };
        packs += 1;
        fetched_bytes += body.len() as u64;
        for (entry, bytes) in files {
            let f = missing[entry.path.as_str()];
            check_fetched(&base, f, &bytes)?;
            trove_site::write_atomic(&staging.join(&f.path), &bytes)?;
            settled.insert(f.path.as_str());
            from_packs += 1;
            fetched += 1;
        }
    }
    progress.finish();
    let progress = CountProgress::new("fetching files", opts.quiet);
    let total = wanted.len() as u64;
    for (i, (_, f)) in wanted.values().enumerate() {
        if settled.contains(f.path.as_str()) {
            // Counted by the pack phase.
        } else if held(f)? {
            reused += 1;
        } else {
            // Longer than the signed size: as wrong as a different hash.
            let body = match origin.get(&f.path, f.size + 1) {
                Err(e) if e.downcast_ref::<TooLarge>().is_some() => Some(Vec::new()),
                other => other?,
            };
            let body = body.ok_or_else(|| {
                anyhow!(
                    "{base}/{SITE_PREFIX}/{}: not served, though a signed release lists it; nothing new was accepted, and this mirror's copy is unchanged",
                    f.path
                )
            })?;
            check_fetched(&base, f, &body)?;
            trove_site::write_atomic(&staging.join(&f.path), &body)?;
            fetched += 1;
            fetched_bytes += body.len() as u64;
        }
        progress.update(i as u64 + 1, total);
    }
    progress.finish();

    // 3. Everything checked: apply each release in order as a release writer does (files,
    //    then signature, then manifest), then what it withdraws. Emails' files go into a
    //    pack per folder, as the origin keeps them.
    for (m, bytes, sig) in &new {
        for PackGroup { folder, files, .. } in pack_groups([m], &wanted) {
            let staged: Vec<PathBuf> = files.iter().map(|f| staging.join(&f.path)).collect();
            if !staged.iter().any(|p| p.exists()) {
                continue;
            }
            let mut contents = Vec::with_capacity(files.len());
            for (f, path) in files.iter().zip(&staged) {
                let bytes = match std::fs::read(path) {
                    Ok(b) => b,
                    // Already in place (a pull cut short after this pack was written).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => site
                        .read_file(&f.path)?
                        .ok_or_else(|| anyhow!("{}: neither staged nor in place", f.path))?,
                    Err(e) => return Err(anyhow!("{}: {e}", path.display())),
                };
                contents.push((f.path.clone(), bytes));
            }
            site.write_pack(&contents)
                .with_context(|| format!("packing folder {folder:04} of release {}", m.release))?;
            for path in staged {
                let _ = std::fs::remove_file(path);
            }
        }
        for f in &m.files {
            let staged = staging.join(&f.path);
            if wanted.contains_key(&f.path) && staged.exists() {
                let target = dir.join(&f.path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("{}", parent.display()))?;
                }
                std::fs::rename(&staged, &target).with_context(|| {
                    format!("moving {} to {}", staged.display(), target.display())
                })?;
            }
        }
        trove_site::write_atomic(&dir.join(trove_site::signature_path(m.release)), sig)?;
        trove_site::write_atomic(&dir.join(trove_site::manifest_path(m.release)), bytes)?;
        trove_site::remove_withdrawn(&site, m)?;
        let withdrawn = match m.withdrawn.len() {
            0 => String::new(),
            n => format!(", {n} withdrawn"),
        };
        println!(
            "Release {} \"{}\": signature, chain and {} files checked{withdrawn}.",
            m.release,
            m.title,
            m.files.len()
        );
    }
    let staging_root = dir.join(STAGING);
    if staging_root.exists() {
        std::fs::remove_dir_all(&staging_root)
            .with_context(|| format!("{}", staging_root.display()))?;
    }
    let indexed = trove_site::update_index(&site, have + 1)?;
    println!(
        "Mirrored releases {}..={} from {base} in {:.1}s: {fetched} files fetched ({fetched_bytes} bytes; {} of them in {packs} packs), {reused} already here; {indexed} emails indexed. Serve it with: trove serve {}",
        have + 1,
        have + new.len() as u32,
        started.elapsed().as_secs_f64(),
        from_packs,
        dir.display()
    );
    Ok(())
}

/// Stops the pull if `bytes`, fetched for `f`, are not what the manifest signed.
fn check_fetched(base: &str, f: &trove_site::FileEntry, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 != f.size || hex::encode(Sha256::digest(bytes)) != f.sha256 {
        bail!(
            "{base}/{SITE_PREFIX}/{}: its SHA-256 differs from the signed manifest (changed or corrupted at the origin or on the way); nothing new was accepted, and this mirror's copy is unchanged",
            f.path
        );
    }
    Ok(())
}

/// One release's emails' files in one folder: what the origin keeps in one pack.
struct PackGroup<'w> {
    folder: u64,
    /// The release's first number (the pack's name follows from it and the folder).
    first: u64,
    files: Vec<&'w trove_site::FileEntry>,
}

/// The emails' files each new release adds and the copy will hold, by the origin's pack
/// that holds them, in release order.
fn pack_groups<'m, 'w>(
    manifests: impl IntoIterator<Item = &'m Manifest>,
    wanted: &'w std::collections::BTreeMap<String, (u32, trove_site::FileEntry)>,
) -> Vec<PackGroup<'w>> {
    let mut out = Vec::new();
    for m in manifests {
        let mut by_folder: std::collections::BTreeMap<u64, Vec<&trove_site::FileEntry>> =
            Default::default();
        for f in &m.files {
            if let (Some((folder, _)), Some((k, entry))) =
                (trove_site::email_file(&f.path), wanted.get(&f.path))
                && *k == m.release
            {
                by_folder.entry(folder).or_default().push(entry);
            }
        }
        out.extend(by_folder.into_iter().map(|(folder, files)| PackGroup {
            folder,
            first: m.numbers.first,
            files,
        }));
    }
    out
}

/// Whether the site already holds exactly the file `f` describes (packed or loose).
fn site_holds(site: &Site, f: &trove_site::FileEntry) -> Result<bool> {
    Ok(site
        .read_file(&f.path)?
        .is_some_and(|b| b.len() as u64 == f.size && hex::encode(Sha256::digest(&b)) == f.sha256))
}

/// Whether `path` holds exactly the file `f` describes.
fn file_matches(path: &PathBuf, f: &trove_site::FileEntry) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == f.size => {
            let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
            Ok(hex::encode(Sha256::digest(&bytes)) == f.sha256)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(anyhow!("{}: {e}", path.display())),
    }
}
