//! Packs: the email files one release adds to one folder, compressed, in one file.
//!
//! A release of 100,000 emails wrote 200,000 files of about 3.5 KB each: every one took a
//! 4 KiB block or two (the site was 2.4 times the mail on disk) and its own `openat`
//! and inode (about 14 % of a release's `perf` samples). A pack holds the `messages/FFFF/N.json`
//! and `N.eml` files a release adds to folder `FFFF`, each compressed on its own, so one
//! is read without the others. The manifest still lists, hashes and signs each email's
//! files by their logical path, and the server still serves them one by one at
//! `/site/messages/FFFF/N.json`: a pack changes how a site is stored, not what it says.
//!
//! Layout of `messages/FFFF/FIRST.pack` (FIRST is the lowest number in it):
//!
//! ```text
//! frame*        one zstd frame per file, with its size in the frame header
//! index         a zstd skippable frame (magic 0x184D2A5E, u32 LE length) holding the
//!               index as JSON, then the JSON's length as u32 LE
//! ```
//!
//! `zstd -dc FIRST.pack` prints every file in the pack end to end (the index frame is
//! skipped); the index (`{"format": "trove-pack/1", "files": [{"path", "offset",
//! "length", "size"}]}`) says where each one starts. With standard tools:
//!
//! ```text
//! n=$(tail -c 4 FIRST.pack | od -An -tu4 | tr -d ' ')      # the index's length
//! tail -c $((n + 4)) FIRST.pack | head -c $n               # the index, JSON
//! tail -c +$((offset + 1)) FIRST.pack | head -c $length | zstd -d | sha256sum
//! ```
//!
//! and the last line's hash is the one the manifest lists for that path (checked by hand
//! on the demo site). A pack is written whole through a rename, and
//! rewritten whole (again by rename) when a withdrawal takes files out of it.
//!
//! A folder may also hold loose `N.json` and `N.eml` files: sites written before packs,
//! and mirrors, which store the files they fetch as they are. Readers look in the packs
//! first, then for a loose file.

use std::collections::HashMap;
use std::fs;
use std::hash::BuildHasherDefault;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::{KeptBytes, Result, SiteError, io_err, sha256_hex, write_atomic};

pub const PACK_FORMAT: &str = "trove-pack/1";
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// zstd's level for published files. On 600 of them (JSON and raw source, 2.4 MB),
/// each compressed on its own, level 1 gave 1.24 MB and level 3 1.22 MB, and level 3
/// cost a 100k release about 5 s more CPU than level 1 did.
const LEVEL: i32 = 1;
/// Folders whose pack indexes a reader keeps: 32 KB each (two 16-byte slots per
/// number), so 32 MB when a server has read every folder of a million emails.
const FOLDERS_KEPT: usize = 1024;

/// One file in a pack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackEntry {
    pub path: String,
    /// Where its zstd frame starts in the pack, and how long the frame is.
    pub offset: u64,
    pub length: u64,
    /// The file's own size.
    pub size: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct PackIndex {
    format: String,
    files: Vec<PackEntry>,
}

/// The folder (`messages/FFFF`, as a number) and email number of an email file's path
/// (`messages/FFFF/N.json` or `.eml`), if `rel` is one.
pub fn email_file(rel: &str) -> Option<(u64, u64)> {
    let (folder, name) = rel.strip_prefix("messages/")?.split_once('/')?;
    let stem = name
        .strip_suffix(".json")
        .or_else(|| name.strip_suffix(".eml"))?;
    folder_and_number(folder, stem)
}

/// The folder and lowest number of a pack's path (`messages/FFFF/FIRST.pack`), if `rel`
/// is one.
pub fn pack_file(rel: &str) -> Option<(u64, u64)> {
    let (folder, name) = rel.strip_prefix("messages/")?.split_once('/')?;
    folder_and_number(folder, name.strip_suffix(".pack")?)
}

/// A folder's four digits and a number written as `{number}` (no sign, no leading zero)
/// that belongs in it.
fn folder_and_number(folder: &str, number: &str) -> Option<(u64, u64)> {
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !(digits(folder) && folder.len() == 4 && digits(number)) || number.starts_with('0') {
        return None;
    }
    let (folder, number): (u64, u64) = (folder.parse().ok()?, number.parse().ok()?);
    (folder == number / 1000).then_some((folder, number))
}

fn folder_dir(root: &Path, folder: u64) -> PathBuf {
    root.join(format!("messages/{folder:04}"))
}

/// An email's file, compressed and hashed, ready to go into a pack: made on any thread,
/// so that a release compresses and hashes on all its cores.
#[derive(Debug)]
pub(crate) struct PackedFile {
    pub(crate) path: String,
    pub(crate) sha256: String,
    pub(crate) size: u64,
    frame: Vec<u8>,
}

impl PackedFile {
    pub(crate) fn new(path: String, bytes: &[u8]) -> io::Result<PackedFile> {
        thread_local! {
            static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
                const { std::cell::RefCell::new(None) };
        }
        let frame = COMPRESSOR.with(|c| -> io::Result<Vec<u8>> {
            let mut c = c.borrow_mut();
            if c.is_none() {
                let mut made = zstd::bulk::Compressor::new(LEVEL)?;
                made.include_contentsize(true)?;
                made.include_checksum(false)?;
                *c = Some(made);
            }
            c.as_mut().expect("made above").compress(bytes)
        })?;
        Ok(PackedFile {
            path,
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            frame,
        })
    }

    /// A file whose zstd frame the caller has already (a workspace keeps its originals
    /// so): `frame` goes into the pack as it is when it is one whole frame stating the
    /// size of `bytes`, and `bytes` are compressed again otherwise. `sha256` is the hash
    /// of `bytes`, which the caller has computed.
    pub(crate) fn framed(
        path: String,
        bytes: &[u8],
        frame: Vec<u8>,
        sha256: String,
    ) -> io::Result<PackedFile> {
        debug_assert_eq!(sha256, sha256_hex(bytes), "{path}");
        let whole = zstd::zstd_safe::find_frame_compressed_size(&frame) == Ok(frame.len());
        let sized = matches!(zstd::zstd_safe::get_frame_content_size(&frame),
            Ok(Some(size)) if size == bytes.len() as u64);
        if !(whole && sized) {
            return PackedFile::new(path, bytes);
        }
        debug_assert!(
            decompress(&frame, bytes.len()).is_ok_and(|d| d == bytes),
            "{path}: the frame does not hold the file"
        );
        Ok(PackedFile {
            path,
            sha256,
            size: bytes.len() as u64,
            frame,
        })
    }
}

/// One file's frame decompressed, with a context kept per thread: made afresh for each
/// file, the context's setup was a quarter of a thread page's time (thirty emails).
fn decompress(frame: &[u8], size: usize) -> io::Result<Vec<u8>> {
    with_decompressor(|d| d.decompress(frame, size))
}

/// `frame` decompressed into a shared buffer of `size` bytes, which it must fill.
fn decompress_shared(frame: &[u8], size: usize) -> io::Result<Arc<[u8]>> {
    let mut out: Arc<[u8]> = std::iter::repeat_n(0, size).collect();
    let buffer = Arc::get_mut(&mut out).expect("made above, not shared yet");
    let written = with_decompressor(|d| d.decompress_to_buffer(frame, buffer))?;
    if written != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{written} bytes, its index says {size}"),
        ));
    }
    Ok(out)
}

/// Runs `f` with this thread's zstd decompressor, made once.
fn with_decompressor<T>(
    f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> io::Result<T>,
) -> io::Result<T> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        f(d.as_mut().expect("made above"))
    })
}

/// Gathers one folder's files for one release and writes them as a pack.
#[derive(Debug)]
pub(crate) struct PackWriter {
    folder: u64,
    first: u64,
    bytes: Vec<u8>,
    files: Vec<PackEntry>,
}

impl PackWriter {
    pub(crate) fn new(folder: u64, first: u64) -> PackWriter {
        PackWriter {
            folder,
            first,
            bytes: Vec::with_capacity(4 << 20),
            // A folder's thousand emails, two files each (grown from empty: 0.4 % of a
            // 100,000-email release's samples).
            files: Vec::with_capacity(2000),
        }
    }

    pub(crate) fn folder(&self) -> u64 {
        self.folder
    }

    pub(crate) fn add(&mut self, file: &PackedFile) {
        self.files.push(PackEntry {
            path: file.path.clone(),
            offset: self.bytes.len() as u64,
            length: file.frame.len() as u64,
            size: file.size,
        });
        self.bytes.extend_from_slice(&file.frame);
    }

    pub(crate) fn finish(self, root: &Path) -> Result<()> {
        let path = folder_dir(root, self.folder).join(format!("{}.pack", self.first));
        write_atomic(&path, &seal(self.bytes, self.files))
    }
}

/// A pack's bytes: the frames, then the index frame.
fn seal(mut bytes: Vec<u8>, files: Vec<PackEntry>) -> Vec<u8> {
    let index = PackIndex {
        format: PACK_FORMAT.into(),
        files,
    };
    // Written straight after the frames, in room made for it at once: serialised into a
    // buffer of its own that grew from empty, then copied, sealing took 1.3 % of a
    // 100,000-email release's samples (0.2 % so).
    bytes.reserve(index.files.len() * 96 + 64);
    bytes.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    let size_at = bytes.len();
    bytes.extend_from_slice(&[0; 4]);
    let start = bytes.len();
    serde_json::to_writer(&mut bytes, &index).expect("serialisable");
    let json_len = (bytes.len() - start) as u32;
    bytes[size_at..start].copy_from_slice(&(json_len + 4).to_le_bytes());
    bytes.extend_from_slice(&json_len.to_le_bytes());
    bytes
}

/// Reads a pack's index from the end of its bytes.
fn read_index(path: &Path, file: &mut (impl Read + Seek), len: u64) -> Result<Vec<PackEntry>> {
    let bad = |message: String| SiteError::Format {
        path: path.to_path_buf(),
        message,
    };
    if len < 12 {
        return Err(bad(format!("{len} bytes is too short for a pack")));
    }
    let mut tail = [0u8; 4];
    file.seek(SeekFrom::Start(len - 4)).map_err(io_err(path))?;
    file.read_exact(&mut tail).map_err(io_err(path))?;
    let json_len = u32::from_le_bytes(tail) as u64;
    if json_len + 12 > len {
        return Err(bad(format!(
            "its index claims {json_len} bytes of a {len}-byte pack"
        )));
    }
    let start = len - 4 - json_len - 8;
    let mut head = vec![0u8; (json_len + 8) as usize];
    file.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
    file.read_exact(&mut head).map_err(io_err(path))?;
    let magic = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let frame_len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as u64;
    if magic != SKIPPABLE_MAGIC || frame_len != json_len + 4 {
        return Err(bad("no index frame at its end".into()));
    }
    let index: PackIndex =
        serde_json::from_slice(&head[8..]).map_err(|e| bad(format!("its index: {e}")))?;
    if index.format != PACK_FORMAT {
        return Err(bad(format!(
            "format {:?}, this trove reads {PACK_FORMAT:?}",
            index.format
        )));
    }
    if let Some(e) = index
        .files
        .iter()
        .find(|e| e.offset.checked_add(e.length).is_none_or(|end| end > start))
    {
        return Err(bad(format!("{} lies outside the pack's frames", e.path)));
    }
    Ok(index.files)
}

/// The index of the pack whose bytes are `bytes` (read whole, as the server does to
/// serve one); errors name `rel`.
pub fn pack_index(rel: &str, bytes: &[u8]) -> Result<Vec<PackEntry>> {
    read_index(
        Path::new(rel),
        &mut io::Cursor::new(bytes),
        bytes.len() as u64,
    )
}

/// The files in pack `bytes` (as a mirror fetched them) that `wanted` accepts by their
/// entry, each decompressed and checked against the size its index gives; errors name
/// `rel`, where the pack came from. The pack may come from anyone: only entries the
/// caller accepts (for a mirror, of the size a signed manifest gives) are decompressed,
/// so an index claiming a huge size allocates nothing.
pub fn unpack(
    rel: &str,
    bytes: &[u8],
    wanted: impl Fn(&PackEntry) -> bool,
) -> Result<Vec<(PackEntry, Vec<u8>)>> {
    let path = Path::new(rel);
    let entries = pack_index(rel, bytes)?;
    let mut out = Vec::new();
    for e in entries.into_iter().filter(|e| wanted(e)) {
        let frame = &bytes[e.offset as usize..(e.offset + e.length) as usize];
        let data = usize::try_from(e.size)
            .ok()
            .and_then(|size| decompress(frame, size).ok())
            .filter(|d| d.len() as u64 == e.size)
            .ok_or_else(|| SiteError::Format {
                path: path.to_path_buf(),
                message: format!("{}: does not decompress to its {} bytes", e.path, e.size),
            })?;
        out.push((e, data));
    }
    Ok(out)
}

/// Writes `files` (paths of emails' files in one folder, with their bytes) as one pack,
/// named by the lowest number among them: how a mirror stores what it fetched.
pub(crate) fn write_files(root: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let mut placed = Vec::with_capacity(files.len());
    for (rel, bytes) in files {
        let (folder, number) = email_file(rel).ok_or_else(|| SiteError::Format {
            path: root.join(rel),
            message: "not an email's file".into(),
        })?;
        placed.push((folder, number, rel, bytes));
    }
    let Some(&(folder, _, _, _)) = placed.first() else {
        return Ok(());
    };
    if let Some((_, _, rel, _)) = placed.iter().find(|p| p.0 != folder) {
        return Err(SiteError::Format {
            path: root.join(rel),
            message: format!("not in folder {folder:04}, as the pack's other files are"),
        });
    }
    let first = placed.iter().map(|p| p.1).min().expect("not empty");
    let mut w = PackWriter::new(folder, first);
    for (_, _, rel, bytes) in placed {
        let file = PackedFile::new(rel.clone(), bytes).map_err(|e| SiteError::Format {
            path: root.join(rel),
            message: format!("compressing: {e}"),
        })?;
        w.add(&file);
    }
    w.finish(root)
}

/// Where a site keeps the files a release whose first number is `first_of_release`
/// added to `folder`: the pack named by the lowest of its numbers in that folder.
pub fn pack_path(folder: u64, first_of_release: u64) -> String {
    format!(
        "messages/{folder:04}/{}.pack",
        first_of_release.max(folder * 1000)
    )
}

/// Where one file is in a pack; `length` 0 when the pack does not hold it (a zstd
/// frame is never empty).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    offset: u64,
    length: u32,
    size: u32,
}

/// One pack as a reader knows it: a JSON and a raw slot per number from `first` on
/// (a pack holds one release's numbers in one folder, a dense range). Kept this small
/// because a server keeps the packs of a thousand folders.
#[derive(Debug)]
struct OpenPack {
    path: PathBuf,
    /// Its length when the index was read: a pack rewritten since (a withdrawal) is
    /// read again.
    len: u64,
    first: u64,
    slots: Vec<[Slot; 2]>,
}

/// 0 for an email's JSON, 1 for its raw source.
fn kind(rel: &str) -> usize {
    rel.ends_with(".eml") as usize
}

impl OpenPack {
    fn new(path: PathBuf, len: u64, folder: u64, entries: Vec<PackEntry>) -> Result<OpenPack> {
        let mut placed = Vec::with_capacity(entries.len());
        for e in entries {
            // What is not an email file of this folder is never looked for here (and
            // `trove verify` names it).
            let Some((_, number)) = email_file(&e.path).filter(|(f, _)| *f == folder) else {
                continue;
            };
            let (Ok(length), Ok(size)) = (u32::try_from(e.length), u32::try_from(e.size)) else {
                return Err(SiteError::Format {
                    path: path.clone(),
                    message: format!("{}: over 4 GiB", e.path),
                });
            };
            placed.push((
                number,
                kind(&e.path),
                Slot {
                    offset: e.offset,
                    length,
                    size,
                },
            ));
        }
        // Every number is in this folder, so the range is under a thousand.
        let first = placed.iter().map(|p| p.0).min().unwrap_or(0);
        let last = placed.iter().map(|p| p.0).max().unwrap_or(first);
        let mut slots = vec![[Slot::default(); 2]; (last + 1 - first) as usize];
        for (number, k, slot) in placed {
            slots[(number - first) as usize][k] = slot;
        }
        Ok(OpenPack {
            path,
            len,
            first,
            slots,
        })
    }

    fn slot(&self, number: u64, kind: usize) -> Option<Slot> {
        let i = usize::try_from(number.checked_sub(self.first)?).ok()?;
        self.slots.get(i).map(|s| s[kind]).filter(|s| s.length > 0)
    }
}

/// The packs of one folder.
#[derive(Debug, Default)]
struct Folder {
    packs: Vec<OpenPack>,
}

/// Every `*.pack` in folder `folder`, in name order.
fn pack_paths(root: &Path, folder: u64) -> Result<Vec<PathBuf>> {
    let dir = folder_dir(root, folder);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(SiteError::Io {
                path: dir,
                source: e,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err(&dir))?.path();
        if path.extension().is_some_and(|e| e == "pack") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The length of the pack at `path` and its entries.
fn index_of(path: &Path) -> Result<(u64, Vec<PackEntry>)> {
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    Ok((len, read_index(path, &mut file, len)?))
}

/// The entries of the pack at `path`.
pub(crate) fn entries(path: &Path) -> Result<Vec<PackEntry>> {
    index_of(path).map(|(_, entries)| entries)
}

fn load_folder(root: &Path, folder: u64) -> Result<Folder> {
    let mut packs = Vec::new();
    for path in pack_paths(root, folder)? {
        let (len, entries) = index_of(&path)?;
        packs.push(OpenPack::new(path, len, folder, entries)?);
    }
    Ok(Folder { packs })
}

/// What a site's readers know of its packs, shared by every clone of a [`crate::Site`].
#[derive(Debug)]
pub(crate) struct Packs {
    folders: Mutex<HashMap<u64, Arc<Folder>>>,
    /// Packs read lately, kept open: a thread page reads thirty emails, and opening and
    /// closing a pack for each was a fifth of its time. A pack rewritten since (a
    /// withdrawal renames a new one over it) is seen by its link count, and let go.
    open: Mutex<HashMap<PathBuf, Arc<fs::File>>>,
    /// Files read lately, decompressed, keyed by where they are: the pack's device,
    /// inode, length and modification time (a pack is never changed in place; a rewrite
    /// is a new inode, and should the old number be reused, the length and time tell the
    /// two apart) and the file's offset.
    /// Loose files stayed in the kernel's page cache and were read back with a copy; a
    /// packed one would be decompressed again on every read of a hot thread page.
    recent: Mutex<KeptBytes<Place, Arc<[u8]>, BuildHasherDefault<rustc_hash::FxHasher>>>,
    /// How many packs `open` holds at most ([`open_kept`], asked once).
    open_kept: usize,
}

impl Default for Packs {
    fn default() -> Self {
        Packs {
            folders: Default::default(),
            open: Default::default(),
            recent: Mutex::new(KeptBytes::new(RECENT_BYTES, RECENT_BYTES / 64)),
            open_kept: open_kept(),
        }
    }
}

/// Packs a reader keeps open, at most: half the files the process may open (at least 64,
/// at most 8,192), so that sockets and the index have the rest. A million emails are a
/// thousand packs; under the default limit of 1,024 a reader could keep a quarter of them,
/// and opening and closing packs was 4.4 % of a server's samples under different
/// searches, which is why `trove` raises its limit to the hard one
/// ([`raise_open_files_limit`]). At 64, fewer than the 101 packs of 100,000 emails,
/// opening packs was 2.4 %.
fn open_kept() -> usize {
    use rustix::process::{Resource, getrlimit};
    let limit = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    usize::try_from(limit / 2)
        .unwrap_or(usize::MAX)
        .clamp(64, 8192)
}

/// The most open files Linux lets a process have (`fs.nr_open`'s default): what "no
/// limit" is raised to.
const MOST_OPEN_FILES: u64 = 1 << 20;

/// Raises this process's limit on open files to its hard limit (a reader keeps packs
/// open: [`open_kept`], asked when a site is opened). Call it first; a limit that cannot be
/// raised is left as it is.
pub fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // No limit (`None`) is as high as a limit goes.
    let want = limit
        .maximum
        .unwrap_or(MOST_OPEN_FILES)
        .min(MOST_OPEN_FILES);
    if limit.current.is_some_and(|current| current < want) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: limit.maximum,
            },
        );
    }
}

/// Bytes of decompressed files a reader keeps, at most.
const RECENT_BYTES: usize = 32 << 20;

/// Where a file was read from: device, inode, length, modification time (s, ns) of its
/// pack, and its offset there.
type Place = (u64, u64, u64, i64, i64, u64);

/// A site file's bytes as a reader got them: shared with the files kept of late when
/// they came out of a pack (a search's snippets read them without a copy), owned when
/// read from a file of their own.
#[derive(Debug)]
pub(crate) enum FileBytes {
    Packed(Arc<[u8]>),
    Loose(Vec<u8>),
}

impl FileBytes {
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            FileBytes::Packed(shared) => shared.to_vec(),
            FileBytes::Loose(owned) => owned,
        }
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Packed(shared) => shared,
            FileBytes::Loose(owned) => owned,
        }
    }
}

enum Found {
    Bytes(Arc<[u8]>),
    /// Not in any pack this reader knows of.
    Absent,
    /// Listed, but the pack changed or went since its index was read.
    Stale,
}

impl Packs {
    fn folder(&self, root: &Path, folder: u64, fresh: bool) -> Result<Arc<Folder>> {
        if !fresh && let Some(f) = self.folders.lock().expect("not poisoned").get(&folder) {
            return Ok(f.clone());
        }
        let loaded = Arc::new(load_folder(root, folder)?);
        let mut folders = self.folders.lock().expect("not poisoned");
        if folders.len() >= FOLDERS_KEPT {
            folders.clear();
        }
        folders.insert(folder, loaded.clone());
        Ok(loaded)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<fs::File>> {
        if let Some(f) = self.open.lock().expect("not poisoned").get(path) {
            return Ok(f.clone());
        }
        let file = Arc::new(fs::File::open(path)?);
        let mut open = self.open.lock().expect("not poisoned");
        if open.len() >= self.open_kept {
            open.clear();
        }
        open.insert(path.to_path_buf(), file.clone());
        Ok(file)
    }

    fn find(&self, folder: &Folder, rel: &str, number: u64) -> Result<Found> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        for pack in &folder.packs {
            let Some(e) = pack.slot(number, kind(rel)) else {
                continue;
            };
            let file = match self.open(&pack.path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Stale),
                Err(e) => {
                    return Err(SiteError::Io {
                        path: pack.path.clone(),
                        source: e,
                    });
                }
            };
            let meta = file.metadata().map_err(io_err(&pack.path))?;
            if meta.nlink() == 0 || meta.len() != pack.len {
                self.open.lock().expect("not poisoned").remove(&pack.path);
                return Ok(Found::Stale);
            }
            let key = (
                meta.dev(),
                meta.ino(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec(),
                e.offset,
            );
            if let Some(bytes) = self.recent.lock().expect("not poisoned").get(&key) {
                return Ok(Found::Bytes(bytes));
            }
            let mut frame = vec![0u8; e.length as usize];
            file.read_exact_at(&mut frame, e.offset)
                .map_err(io_err(&pack.path))?;
            let bytes =
                decompress_shared(&frame, e.size as usize).map_err(|err| SiteError::Format {
                    path: pack.path.clone(),
                    message: format!("{rel}: {err}"),
                })?;
            self.recent
                .lock()
                .expect("not poisoned")
                .put(key, bytes.clone());
            return Ok(Found::Bytes(bytes));
        }
        Ok(Found::Absent)
    }

    /// The bytes of site file `rel`, from a pack or a loose file; `None` if it is in
    /// neither.
    pub(crate) fn read(&self, root: &Path, rel: &str) -> Result<Option<FileBytes>> {
        let loose = || read_loose(&root.join(rel)).map(|b| b.map(FileBytes::Loose));
        let Some((folder, number)) = email_file(rel) else {
            return loose();
        };
        let known = self.folder(root, folder, false)?;
        match self.find(&known, rel, number)? {
            Found::Bytes(b) => return Ok(Some(FileBytes::Packed(b))),
            Found::Absent => {
                if let Some(b) = loose()? {
                    return Ok(Some(b));
                }
            }
            Found::Stale => {}
        }
        // A release or a withdrawal since this reader last looked: look again.
        let fresh = self.folder(root, folder, true)?;
        match self.find(&fresh, rel, number)? {
            Found::Bytes(b) => Ok(Some(FileBytes::Packed(b))),
            _ => loose(),
        }
    }
}

fn read_loose(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SiteError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Removes site files `rels` wherever they are: loose files are deleted, and each pack
/// holding any of them is rewritten without them (deleted when nothing is left).
pub(crate) fn remove(root: &Path, rels: &[String]) -> Result<()> {
    let mut by_folder: HashMap<u64, Vec<&str>> = HashMap::new();
    for rel in rels {
        let path = root.join(rel);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SiteError::Io { path, source: e }),
        }
        if let Some((folder, _)) = email_file(rel) {
            by_folder.entry(folder).or_default().push(rel);
        }
    }
    for (folder, gone) in by_folder {
        for path in pack_paths(root, folder)? {
            let files = entries(&path)?;
            if !files.iter().any(|e| gone.contains(&e.path.as_str())) {
                continue;
            }
            let old = fs::read(&path).map_err(io_err(&path))?;
            let mut bytes = Vec::with_capacity(old.len());
            let mut kept = Vec::new();
            for mut e in files {
                if gone.contains(&e.path.as_str()) {
                    continue;
                }
                let frame = &old[e.offset as usize..(e.offset + e.length) as usize];
                e.offset = bytes.len() as u64;
                bytes.extend_from_slice(frame);
                kept.push(e);
            }
            if kept.is_empty() {
                fs::remove_file(&path).map_err(io_err(&path))?;
            } else {
                write_atomic(&path, &seal(bytes, kept))?;
            }
        }
    }
    Ok(())
}

/// Removes the packs a release cut short left in the folders of numbers
/// `first..=last` (their lowest number is `first` or above: no signed release holds
/// them), so that the release written again whole leaves no stale copy behind.
pub(crate) fn remove_unsigned(root: &Path, first: u64, last: u64) -> Result<()> {
    for folder in first / 1000..=last / 1000 {
        for path in pack_paths(root, folder)? {
            let lowest = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok());
            if lowest.is_some_and(|n| n >= first) {
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack_of(root: &Path, folder: u64, first: u64, files: &[(&str, &[u8])]) {
        let mut w = PackWriter::new(folder, first);
        for (path, bytes) in files {
            w.add(&PackedFile::new(path.to_string(), bytes).unwrap());
        }
        w.finish(root).unwrap();
    }

    #[test]
    fn email_paths_are_recognised_exactly() {
        assert_eq!(email_file("messages/0000/1.json"), Some((0, 1)));
        assert_eq!(email_file("messages/0012/12345.eml"), Some((12, 12345)));
        for other in [
            "messages/0001/12.json",
            "messages/0000/01.json",
            "messages/0000/+1.json",
            "messages/000/1.json",
            "messages/0000/1.txt",
            "attachments/ab/ab12",
            "messages/0000/1.pack",
        ] {
            assert_eq!(email_file(other), None, "{other}");
        }
    }

    #[test]
    fn files_come_back_from_packs_and_loose_files_alike() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let big = "Lorem ipsum dolor sit amet. ".repeat(200);
        pack_of(
            root,
            0,
            1,
            &[
                ("messages/0000/1.json", b"{\"one\": 1}"),
                ("messages/0000/1.eml", big.as_bytes()),
                ("messages/0000/2.json", b""),
            ],
        );
        fs::write(root.join("messages/0000/3.json"), b"loose").unwrap();
        let packs = Packs::default();
        let read = |rel: &str| packs.read(root, rel).unwrap().map(FileBytes::into_vec);
        assert_eq!(read("messages/0000/1.json").unwrap(), b"{\"one\": 1}");
        assert_eq!(read("messages/0000/1.eml").unwrap(), big.as_bytes());
        assert_eq!(read("messages/0000/2.json").unwrap(), b"");
        assert_eq!(read("messages/0000/3.json").unwrap(), b"loose");
        assert_eq!(read("messages/0000/4.json"), None);
        // Compressed on its own: the repeated text is far smaller in the pack.
        let len = fs::metadata(root.join("messages/0000/1.pack"))
            .unwrap()
            .len();
        assert!(len < big.len() as u64 / 4, "{len}");

        // A later release's pack in the same folder, after this reader cached the folder.
        pack_of(root, 0, 5, &[("messages/0000/5.json", b"five")]);
        assert_eq!(read("messages/0000/5.json").unwrap(), b"five");

        // A withdrawal rewrites the pack: what is gone is gone for a reader that had
        // the old index, and what stays is still read right at its new offset.
        remove(root, &["messages/0000/1.json".to_string()]).unwrap();
        assert_eq!(read("messages/0000/1.json"), None);
        assert_eq!(read("messages/0000/1.eml").unwrap(), big.as_bytes());
        remove(root, &["messages/0000/5.json".to_string()]).unwrap();
        assert!(!root.join("messages/0000/5.pack").exists());
        assert_eq!(read("messages/0000/5.json"), None);
    }

    /// The limit on open files goes up to the hard one, and a reader keeps half of it.
    #[test]
    fn the_open_files_limit_goes_up_to_the_hard_one() {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let before = getrlimit(Resource::Nofile);
        // Lowered first (as low as the usual default), so that raising it shows.
        let low = before.current.unwrap_or(1024).min(1024);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(low),
                maximum: before.maximum,
            },
        )
        .unwrap();
        raise_open_files_limit();
        let after = getrlimit(Resource::Nofile);
        let want = before
            .maximum
            .unwrap_or(MOST_OPEN_FILES)
            .min(MOST_OPEN_FILES);
        assert_eq!(after.current, Some(want.max(low)));
        assert_eq!(after.maximum, before.maximum);
        assert_eq!(
            Packs::default().open_kept as u64,
            (after.current.unwrap() / 2).clamp(64, 8192),
            "half the raised limit"
        );
    }

    /// A frame made elsewhere goes in as it is when it is one whole frame of the file's
    /// size; anything else (two frames, a frame of other bytes, one not stating its size)
    /// is compressed again, and every file reads back as its bytes.
    #[test]
    fn a_frame_made_elsewhere_is_kept_only_when_it_is_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let raw = "Received: from a\r\nSubject: x\r\n\r\nbody ".repeat(50);
        let raw = raw.as_bytes();
        let hash = sha256_hex(raw);
        let level = |level| zstd::bulk::compress(raw, level).unwrap();
        let kept = PackedFile::framed("messages/0000/1.eml".into(), raw, level(5), hash.clone());
        assert_eq!(kept.unwrap().frame, level(5));

        let mut two = zstd::bulk::compress(&raw[..10], 1).unwrap();
        two.extend(zstd::bulk::compress(&raw[10..], 1).unwrap());
        let other = zstd::bulk::compress(b"other bytes", 1).unwrap();
        let mut streamed = Vec::new();
        let mut encoder = zstd::stream::Encoder::new(&mut streamed, 1).unwrap();
        std::io::Write::write_all(&mut encoder, raw).unwrap();
        encoder.finish().unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&streamed),
            Ok(None)
        ));
        let mut w = PackWriter::new(0, 1);
        for (n, frame) in [
            (1, level(5)),
            (2, two.clone()),
            (3, other.clone()),
            (4, streamed.clone()),
        ] {
            let file = PackedFile::framed(
                format!("messages/0000/{n}.eml"),
                raw,
                frame.clone(),
                hash.clone(),
            )
            .unwrap();
            assert_eq!(file.frame == frame, n == 1, "{n}");
            w.add(&file);
        }
        w.finish(root).unwrap();
        let packs = Packs::default();
        for n in 1..=4 {
            let read = packs.read(root, &format!("messages/0000/{n}.eml")).unwrap();
            assert_eq!(read.as_deref(), Some(raw), "{n}");
        }
    }

    #[test]
    fn a_broken_pack_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        pack_of(root, 0, 1, &[("messages/0000/1.json", b"{}")]);
        let path = root.join("messages/0000/1.pack");
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes.truncate(n - 3);
        fs::write(&path, &bytes).unwrap();
        let err = Packs::default()
            .read(root, "messages/0000/1.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("1.pack"), "{err}");
    }

    #[test]
    fn zstd_reads_a_pack_as_the_files_end_to_end() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        pack_of(
            root,
            0,
            1,
            &[
                ("messages/0000/1.json", b"first "),
                ("messages/0000/1.eml", b"second"),
            ],
        );
        let pack = fs::read(root.join("messages/0000/1.pack")).unwrap();
        let mut out = Vec::new();
        zstd::stream::copy_decode(pack.as_slice(), &mut out).unwrap();
        assert_eq!(out, b"first second");
    }

    #[test]
    fn a_fetched_pack_unpacks_and_a_damaged_one_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let files = vec![
            (
                "messages/0003/3001.json".to_string(),
                b"{\"n\": 3001}".to_vec(),
            ),
            (
                "messages/0003/3001.eml".to_string(),
                b"Subject: x\n\nbody\n".to_vec(),
            ),
        ];
        write_files(root, &files).unwrap();
        let rel = pack_path(3, 2500);
        assert_eq!(rel, "messages/0003/3000.pack");
        assert_eq!(pack_path(3, 3001), "messages/0003/3001.pack");
        let bytes = fs::read(root.join("messages/0003/3001.pack")).unwrap();
        let got: Vec<(String, Vec<u8>)> = unpack(&rel, &bytes, |_| true)
            .unwrap()
            .into_iter()
            .map(|(e, b)| (e.path, b))
            .collect();
        assert_eq!(got, files);
        // Cut short in transit, or a frame changed: an error naming where it came from.
        let err = unpack(&rel, &bytes[..bytes.len() - 1], |_| true)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&rel), "{err}");
        let mut changed = bytes.clone();
        changed[6] ^= 0xff;
        assert!(unpack(&rel, &changed, |_| true).is_err());
        // Only what the caller wants is decompressed.
        let only = unpack(&rel, &bytes, |e| e.path.ends_with(".eml")).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].1, files[1].1);
        // Files of two folders are not one pack.
        let mixed = vec![
            ("messages/0003/3002.json".to_string(), b"{}".to_vec()),
            ("messages/0004/4000.json".to_string(), b"{}".to_vec()),
        ];
        assert!(write_files(root, &mixed).is_err());
    }

    #[test]
    fn recent_files_stay_within_their_budget_oldest_out() {
        let mut recent = Packs::default().recent.into_inner().unwrap();
        let file: Arc<[u8]> = Arc::from(vec![7u8; RECENT_BYTES / 64]);
        let at = |n: u64| (1, 2, 3, 4, 5, n);
        for n in 0..70 {
            recent.put(at(n), file.clone());
        }
        assert!(recent.bytes() <= RECENT_BYTES);
        for n in 0..6 {
            assert!(recent.get(&at(n)).is_none(), "{n} should have gone first");
        }
        for n in 6..70 {
            assert_eq!(recent.get(&at(n)).unwrap(), file);
        }
        // Another pack (inode, length or time) is another file.
        assert!(recent.get(&(1, 9, 3, 4, 5, 69)).is_none());
        assert!(recent.get(&(1, 2, 3, 4, 6, 69)).is_none());
        recent.put(at(99), Arc::from(vec![0; RECENT_BYTES / 64 + 1]));
        assert!(recent.get(&at(99)).is_none(), "too big to keep");
    }

    #[test]
    fn a_release_written_again_clears_its_unsigned_packs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        pack_of(root, 0, 1, &[("messages/0000/1.json", b"signed")]);
        pack_of(root, 0, 7, &[("messages/0000/7.json", b"cut short")]);
        pack_of(root, 1, 1000, &[("messages/0001/1000.json", b"cut short")]);
        remove_unsigned(root, 7, 1200).unwrap();
        assert!(root.join("messages/0000/1.pack").exists());
        assert!(!root.join("messages/0000/7.pack").exists());
        assert!(!root.join("messages/0001/1000.pack").exists());
    }
}
