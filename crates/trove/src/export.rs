//! `trove export SITE`: copies of a site for distribution.
//!
//! - `--static DIR`: every page as HTML with relative links (see `trove_web::export`).
//! - `--torrent DIR`: one BitTorrent metainfo file per release (BEP 3, multi-file), over
//!   the files a reader needs to check that release: `site.json`, `public-key.pem`, the
//!   manifest, its signature, and every file it lists that is still published. The
//!   torrent's name is `site`, so it is seeded from (and checks against) a directory
//!   named `site` holding those files as files: a static export's (`DIR/site`); not a
//!   site itself, which keeps emails' files in packs.
//!   `--web-seed URL` adds the archive's address
//!   as a BEP 19 web seed, which works because `trove serve` serves the same files under
//!   `URL/site/`.
//! - `--mbox DIR`, `--jsonl DIR`: each release's published emails, one file per release.
//!   The mbox (mboxrd) holds each email's raw source as published; an email whose raw
//!   source is withheld (redacted) is written from its published, redacted form, with an
//!   `X-Trove-Redacted: yes` header, so the mbox never holds more than the site does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use sha1::{Digest, Sha1};
use trove_site::{Manifest, PublishedMessage, Site};

pub struct Options {
    pub static_dir: Option<PathBuf>,
    pub torrent_dir: Option<PathBuf>,
    pub mbox_dir: Option<PathBuf>,
    pub jsonl_dir: Option<PathBuf>,
    pub live_url: Option<String>,
    pub web_seed: Option<String>,
    pub quiet: bool,
}

/// 256 KiB pieces: a release of a few thousand emails makes a metainfo file of tens of KB.
const PIECE_LENGTH: u64 = 256 * 1024;

pub fn export(site_dir: &Path, opts: &Options) -> Result<()> {
    let site = Site::open(site_dir)?;
    let manifests = site.manifests()?;
    if let Some(dir) = &opts.static_dir {
        let progress = crate::progress::CountProgress::new("writing pages", opts.quiet);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stats = rt
            .block_on(trove_web::export::export_static(
                site_dir,
                dir,
                opts.live_url.as_deref(),
                &|done, total| progress.update(done, total),
            ))
            .map_err(|e| anyhow!("static export: {e}"))?;
        progress.finish();
        let search = match &opts.live_url {
            Some(url) => format!("search links go to {url}"),
            None => "search links go to a page explaining that a static copy has no search (give --live-url to send readers to the live archive)".into(),
        };
        println!(
            "Static copy: {} pages, {} files, {} bytes in {}; {search}.",
            stats.pages,
            stats.files,
            stats.bytes,
            dir.display()
        );
    }
    if let Some(dir) = &opts.torrent_dir {
        let live = trove_site::LiveFiles::of(&manifests);
        for m in &manifests {
            let (path, info_hash, files) =
                write_torrent(&site, m, &live, dir, opts.web_seed.as_deref())?;
            println!(
                "{}: release {}, {files} files, info hash {info_hash}",
                path.display(),
                m.release
            );
        }
    }
    if opts.mbox_dir.is_some() || opts.jsonl_dir.is_some() {
        for m in &manifests {
            if m.numbers.count() == 0 {
                continue;
            }
            let messages = published(&site, m)?;
            if let Some(dir) = &opts.mbox_dir {
                let path = dir.join(format!("release-{:06}.mbox", m.release));
                write_mbox(&site, &messages, &path)?;
                println!(
                    "{}: release {}, {} emails",
                    path.display(),
                    m.release,
                    messages.len()
                );
            }
            if let Some(dir) = &opts.jsonl_dir {
                let path = dir.join(format!("release-{:06}.jsonl", m.release));
                let mut out = create(&path)?;
                for message in &messages {
                    serde_json::to_writer(&mut out, message)?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
                println!(
                    "{}: release {}, {} emails",
                    path.display(),
                    m.release,
                    messages.len()
                );
            }
        }
    }
    Ok(())
}

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    let file = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
    Ok(std::io::BufWriter::new(file))
}

/// The release's emails still published (withdrawn ones have no file).
fn published(site: &Site, m: &Manifest) -> Result<Vec<PublishedMessage>> {
    let mut out = Vec::new();
    for n in m.numbers.first..=m.numbers.last {
        if let Some(message) = site.message(n)? {
            out.push(message);
        }
    }
    Ok(out)
}

#[derive(serde::Serialize)]
struct TorrentFile {
    length: u64,
    path: Vec<String>,
}

#[derive(serde::Serialize)]
struct Info {
    files: Vec<TorrentFile>,
    name: String,
    #[serde(rename = "piece length")]
    piece_length: u64,
    #[serde(with = "serde_bytes")]
    pieces: Vec<u8>,
}

#[derive(serde::Serialize)]
struct Metainfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(rename = "created by")]
    created_by: String,
    info: Info,
    #[serde(rename = "url-list", skip_serializing_if = "Vec::is_empty")]
    url_list: Vec<String>,
}

/// Writes release `m`'s metainfo file; returns its path, info hash and file count.
fn write_torrent(
    site: &Site,
    m: &Manifest,
    live: &trove_site::LiveFiles,
    dir: &Path,
    web_seed: Option<&str>,
) -> Result<(PathBuf, String, usize)> {
    let mut paths: BTreeMap<String, ()> = BTreeMap::new();
    for p in [
        "site.json".to_string(),
        "public-key.pem".to_string(),
        trove_site::manifest_path(m.release),
        trove_site::signature_path(m.release),
    ] {
        paths.insert(p, ());
    }
    for f in &m.files {
        if live.files.contains_key(&f.path) {
            paths.insert(f.path.clone(), ());
        }
    }
    // Pieces over the files' bytes end to end, in the order listed.
    let mut pieces = Vec::new();
    let mut piece = Sha1::new();
    let mut in_piece = 0u64;
    let mut files = Vec::with_capacity(paths.len());
    for rel in paths.keys() {
        let path = site.root().join(rel);
        let bytes = site
            .read_file(rel)?
            .ok_or_else(|| anyhow::anyhow!("{}: missing", path.display()))?;
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let take = ((PIECE_LENGTH - in_piece) as usize).min(rest.len());
            piece.update(&rest[..take]);
            in_piece += take as u64;
            rest = &rest[take..];
            if in_piece == PIECE_LENGTH {
                pieces.extend_from_slice(&piece.finalize_reset());
                in_piece = 0;
            }
        }
        files.push(TorrentFile {
            length: bytes.len() as u64,
            path: rel.split('/').map(str::to_string).collect(),
        });
    }
    if in_piece > 0 {
        pieces.extend_from_slice(&piece.finalize());
    }
    let count = files.len();
    let info = Info {
        files,
        name: "site".into(),
        piece_length: PIECE_LENGTH,
        pieces,
    };
    let info_hash = hex::encode(Sha1::digest(serde_bencode::to_bytes(&info)?));
    let metainfo = Metainfo {
        comment: Some(format!(
            "{}: release {} \"{}\"; check it with the signed manifest in releases/",
            site.info().title,
            m.release,
            m.title
        )),
        created_by: "trove".into(),
        info,
        url_list: web_seed
            .map(|u| vec![format!("{}/", u.trim_end_matches('/'))])
            .unwrap_or_default(),
    };
    let path = dir.join(format!("release-{:06}.torrent", m.release));
    let mut out = create(&path)?;
    out.write_all(&serde_bencode::to_bytes(&metainfo)?)?;
    out.flush()?;
    Ok((path, info_hash, count))
}

/// mboxrd, one entry per email (see `trove_site::mbox`).
fn write_mbox(site: &Site, messages: &[PublishedMessage], path: &Path) -> Result<()> {
    let mut out = create(path)?;
    for m in messages {
        let bytes = trove_site::mbox::source_of(site, m)?;
        trove_site::mbox::write_entry(&mut out, m, &bytes)?;
    }
    out.flush()?;
    Ok(())
}
