//! Reading mail out of whatever a publisher was handed. The principal function is
//! [`read_path`]: give it a file or directory and a callback, and it calls back with one
//! [`Event`] per message found, per file finished and per file skipped, detecting the
//! format of each file itself (mbox in its variants, gzip, zip, tar, tar.gz, single
//! messages as in Maildir, Maildir++, Enron trees and `.eml` directories).
//!
//! It streams: a large file is never read whole; an mbox or a tar is read one message at
//! a time. Small files (up to [`WHOLE`], which is every Maildir message) are read whole,
//! ahead of their turn, by [`READERS`] threads: a million-message Maildir is a million
//! small reads, and on a cold page cache one thread waiting on each in turn was ingest's
//! limit. Events still come in the walk's order. Errors are events too, naming the file,
//! so that one unreadable file does not stop an ingest.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use flate2::read::MultiGzDecoder;

use crate::mbox::{MboxReader, is_envelope, is_header_line};

/// Where a message was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file, as a path relative to the ingested root, with `!/` separating an
    /// archive from a member inside it (`dump.zip!/allen-p/inbox/1.`).
    pub file: String,
    /// For an mbox, the byte offset of the message's envelope line in the (decompressed) file.
    pub offset: Option<u64>,
    /// The mail folder: Maildir `cur`/`new` removed, Maildir++ `.a.b` written `a/b`,
    /// an mbox's file name without extension.
    pub folder: String,
    /// Maildir flags from the file name (`:2,FS` gives `FS`).
    pub flags: Option<String>,
}

#[derive(Debug)]
pub enum Event {
    Message {
        origin: Origin,
        bytes: Vec<u8>,
    },
    /// A file (or archive member) was read; `messages` found in it.
    FileRead {
        file: String,
        messages: u64,
    },
    /// A file that holds no mail (an index, a picture, a Maildir `tmp` file).
    Skipped {
        file: String,
        reason: String,
    },
    /// A file that could not be read; what was read before the error was delivered.
    Error {
        file: String,
        error: String,
    },
}

/// Counts bytes read from the input files on disk, for progress reporting.
#[derive(Debug, Default, Clone)]
pub struct ByteCounter(Arc<AtomicU64>);

impl ByteCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Counting<R> {
    inner: R,
    counter: ByteCounter,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Total size of the regular files under `path`, for a progress bar's denominator.
pub fn total_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Archives inside archives are followed this deep; deeper ones are skipped and said so.
const MAX_NESTING: usize = 4;

/// Reads every message under `root` (a file or a directory), in a stable order. Files are
/// named by their path from `root`'s parent directory (so the name starts with `root`'s
/// own name), or by their file name when `root` is a file.
/// Returns `Err` only when `root` itself cannot be read.
pub fn read_path(
    root: &Path,
    counter: &ByteCounter,
    on_event: &mut dyn FnMut(Event),
) -> io::Result<()> {
    let meta = std::fs::metadata(root)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", root.display())))?;
    if meta.is_file() {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return read_file(root, &name, counter, on_event);
    }
    // Names start with the root's own name, so `enron/allen-p` gives `allen-p/sent/1.`
    // and folders read `allen-p/sent`, not a bare `sent` shared by every mailbox.
    let name_base = root
        .parent()
        .filter(|_| root.file_name().is_some())
        .unwrap_or(root);
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name();
    let (jobs, queue) = mpsc::channel::<(PathBuf, mpsc::SyncSender<Loaded>)>();
    let queue = Mutex::new(queue);
    std::thread::scope(|scope| {
        for _ in 0..READERS {
            let queue = &queue;
            scope.spawn(move || {
                loop {
                    // The lock is held while waiting: one reader waits for the next job,
                    // the others for the lock.
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((path, answer)) = job else { break };
                    let _ = answer.send(load(&path));
                }
            });
        }
        let mut ahead: VecDeque<Ahead> = VecDeque::new();
        for entry in walker {
            let next = match entry {
                Ok(e) if e.file_type().is_file() => {
                    let (answer, loaded) = mpsc::sync_channel(1);
                    let path = e.into_path();
                    let name = rel(name_base, &path);
                    let loaded = jobs.send((path.clone(), answer)).ok().map(|()| loaded);
                    Ahead::File { path, name, loaded }
                }
                Ok(_) => continue,
                Err(e) => Ahead::Event(Event::Error {
                    file: e
                        .path()
                        .map(|p| rel(name_base, p))
                        .unwrap_or_else(|| root.display().to_string()),
                    error: e.to_string(),
                }),
            };
            ahead.push_back(next);
            if ahead.len() > AHEAD
                && let Some(first) = ahead.pop_front()
            {
                first.deliver(counter, on_event);
            }
        }
        drop(jobs);
        while let Some(first) = ahead.pop_front() {
            first.deliver(counter, on_event);
        }
    });
    Ok(())
}

/// The largest single message read: one larger is reported as an error and not held.
/// No mail system carries such a message (Gmail takes 25 MB, Exchange Online 150 MB),
/// and a message is held several times over while it is parsed and stored (a 300 MB
/// one took ingest to a 1.2 GB peak), so that a zip bomb of one "message" would take the
/// machine's memory. Tests use a small limit, to write little.
#[cfg(not(test))]
pub const MAX_MESSAGE: u64 = 256 << 20;
#[cfg(test)]
pub const MAX_MESSAGE: u64 = 2 << 20;

/// Files up to this size are read whole by the read-ahead threads; larger ones (mboxes,
/// archives) are streamed by the walking thread when their turn comes.
pub const WHOLE: u64 = 1 << 20;
/// Threads reading files ahead of the walk. The disk answers several reads at once (a
/// cold 50,000-file slice of the 1M Maildir: `cat` one file after another 9.5 s, four at
/// a time 5.4 s, sixteen 4.9 s); more threads than this only add memory.
pub const READERS: usize = 4;
/// Files read ahead of the one being delivered (at most `AHEAD` × [`WHOLE`] bytes held).
const AHEAD: usize = 64;

/// A file as a read-ahead thread left it.
enum Loaded {
    Whole(Vec<u8>),
    /// Open, too large to hold: streamed in its turn.
    Large(File),
    Failed(io::Error),
}

fn load(path: &Path) -> Loaded {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return Loaded::Failed(e),
    };
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return Loaded::Failed(e),
    };
    if len > WHOLE {
        return Loaded::Large(file);
    }
    // The length the file had when opened, read in one call: a file's own `read_to_end`
    // asks its size and position again and reads once more to find the end, three calls
    // of seven per file. A file in a Maildir's `cur` or `new` is complete (delivery writes
    // it under `tmp` and renames it); one that grows while being read, an mbox, is
    // streamed past `WHOLE`.
    let mut bytes = Vec::with_capacity(len as usize);
    match file.take(len).read_to_end(&mut bytes) {
        Ok(_) => Loaded::Whole(bytes),
        Err(e) => Loaded::Failed(e),
    }
}

/// One step of the walk, waiting for its turn.
enum Ahead {
    Event(Event),
    File {
        path: PathBuf,
        name: String,
        /// Where a reader answers; none, or no answer (a reader that failed), and the
        /// file is read here, in its turn.
        loaded: Option<mpsc::Receiver<Loaded>>,
    },
}

impl Ahead {
    fn deliver(self, counter: &ByteCounter, on_event: &mut dyn FnMut(Event)) {
        let (path, name, loaded) = match self {
            Ahead::Event(event) => return on_event(event),
            Ahead::File { path, name, loaded } => (path, name, loaded),
        };
        match loaded
            .and_then(|answer| answer.recv().ok())
            .unwrap_or_else(|| load(&path))
        {
            Loaded::Whole(bytes) => {
                counter.0.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                read_whole(bytes, &name, on_event);
            }
            Loaded::Large(file) => read_open(file, &name, counter, on_event),
            Loaded::Failed(e) => on_event(Event::Error {
                file: name,
                error: e.to_string(),
            }),
        }
    }
}

/// A file read whole: a single message is handed on as it is, without a copy; anything
/// else is read as a stream from memory.
fn read_whole(bytes: Vec<u8>, name: &str, on_event: &mut dyn FnMut(Event)) {
    match Kind::of(&bytes) {
        Kind::Message => emit_message(bytes, name, on_event),
        Kind::Zip => read_zip(io::Cursor::new(bytes), name, 0, on_event),
        _ => read_stream(&mut bytes.as_slice(), name, 0, None, on_event),
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

fn read_file(
    path: &Path,
    name: &str,
    counter: &ByteCounter,
    on_event: &mut dyn FnMut(Event),
) -> io::Result<()> {
    match File::open(path) {
        Ok(file) => read_open(file, name, counter, on_event),
        Err(e) => on_event(Event::Error {
            file: name.to_string(),
            error: e.to_string(),
        }),
    }
    Ok(())
}

fn read_open(file: File, name: &str, counter: &ByteCounter, on_event: &mut dyn FnMut(Event)) {
    let mut input = BufReader::with_capacity(
        256 << 10,
        Counting {
            inner: file,
            counter: counter.clone(),
        },
    );
    let head = match input.fill_buf() {
        Ok(head) => head,
        Err(e) => {
            on_event(Event::Error {
                file: name.to_string(),
                error: e.to_string(),
            });
            return;
        }
    };
    if Kind::of(head) == Kind::Zip {
        // Zip needs to seek to its central directory at the end of the file.
        let reader = input.into_inner();
        read_zip(reader, name, 0, on_event);
        return;
    }
    read_stream(&mut input, name, 0, None, on_event);
}

/// Reads one stream whose format is not yet known. `declared` is its size where its
/// archive states it (a tar or zip member), so that a member too large to be one message
/// is refused without being decompressed and held.
fn read_stream(
    input: &mut dyn BufRead,
    name: &str,
    depth: usize,
    declared: Option<u64>,
    on_event: &mut dyn FnMut(Event),
) {
    if let Err(e) = detect_and_read(input, name, depth, declared, on_event) {
        on_event(Event::Error {
            file: name.to_string(),
            error: e.to_string(),
        });
    }
}

fn detect_and_read(
    input: &mut dyn BufRead,
    name: &str,
    depth: usize,
    declared: Option<u64>,
    on_event: &mut dyn FnMut(Event),
) -> io::Result<()> {
    let head = input.fill_buf()?.to_vec();
    let kind = Kind::of(&head);
    if matches!(kind, Kind::Gzip | Kind::Tar | Kind::Zip) && depth >= MAX_NESTING {
        on_event(Event::Skipped {
            file: name.to_string(),
            reason: format!("archive nested more than {MAX_NESTING} deep"),
        });
        return Ok(());
    }
    match kind {
        Kind::Empty => on_event(Event::Skipped {
            file: name.to_string(),
            reason: "empty file".into(),
        }),
        Kind::Gzip => {
            let mut inner = BufReader::with_capacity(256 << 10, MultiGzDecoder::new(input));
            let inner_name = strip_gz(name);
            return detect_and_read(&mut inner, &inner_name, depth + 1, None, on_event);
        }
        Kind::Tar => return read_tar(input, name, depth, on_event),
        Kind::Zip => {
            // A zip inside a tar or gzip stream is read by seeking (its directory is at
            // its end), so it is copied out of the stream first, up to a ceiling; one
            // its archive says is over it is not copied to find out.
            let spooled = match declared {
                Some(size) if size > MAX_SPOOLED => None,
                _ => spool(input, MAX_SPOOLED).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("copying the zip out of its archive, to read it: {e}"),
                    )
                })?,
            };
            match spooled {
                Some(spooled) => read_zip(spooled, name, depth + 1, on_event),
                None => on_event(too_large(
                    name,
                    "a zip inside an archive",
                    MAX_SPOOLED,
                    "a decompression bomb; taken out and ingested as a file of its own, a \
                     zip is read where it is, at any size",
                )),
            }
        }
        Kind::Unsupported(reason) => on_event(Event::Skipped {
            file: name.to_string(),
            reason: reason.into(),
        }),
        Kind::Mbox => return read_mbox(input, name, on_event),
        Kind::Message => {
            // One its archive says is over the limit is not read to find out.
            let bytes = match declared {
                Some(size) if size > MAX_MESSAGE => None,
                _ => Some(read_limited(input, MAX_MESSAGE)?)
                    .filter(|bytes| bytes.len() as u64 <= MAX_MESSAGE),
            };
            match bytes {
                Some(bytes) => emit_message(bytes, name, on_event),
                None => on_event(too_large(name, "a message", MAX_MESSAGE, NOT_A_MESSAGE)),
            }
        }
        Kind::NotMail => on_event(Event::Skipped {
            file: name.to_string(),
            reason: "not mail".into(),
        }),
    }
    Ok(())
}

/// The rest of `input` up to one byte past `limit` (so that a caller can tell it was
/// over), in a buffer that grows by doubling but never past that: `read_to_end` doubles
/// it at the last byte too, copying what it holds. A 300 MB message gzipped took ingest
/// to 823 MB with `read_to_end`, 634 MB with this.
fn read_limited(input: &mut dyn BufRead, limit: u64) -> io::Result<Vec<u8>> {
    let mut input = input.take(limit + 1);
    let most = usize::try_from(limit + 1).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    loop {
        let piece = input.fill_buf()?;
        if piece.is_empty() {
            return Ok(bytes);
        }
        let len = piece.len();
        let wanted = bytes.len() + len;
        if wanted > bytes.capacity() {
            let capacity = wanted.max(bytes.capacity() * 2).min(most);
            bytes.reserve_exact(capacity - bytes.len());
        }
        bytes.extend_from_slice(piece);
        input.consume(len);
    }
}

/// How much of a zip inside a stream is held in memory; a larger one goes to an unnamed
/// temporary file (`TMPDIR`). Read whole into memory, a zip of a few gigabytes in a
/// `tar.gz` (an export of a whole mail system) took as much memory. Tests use a small
/// one, to write little.
#[cfg(not(test))]
const SPOOL_IN_MEMORY: usize = 64 << 20;
#[cfg(test)]
const SPOOL_IN_MEMORY: usize = 64 << 10;

/// The largest zip copied out of a stream to be read. Beyond it the copy would only fill
/// `TMPDIR` (a tmpfs, memory, on many systems): a gzip bomb whose content starts like a
/// zip wrote until the disk was full. A zip file of its own is read where it is, at any
/// size.
#[cfg(not(test))]
const MAX_SPOOLED: u64 = 4 << 30;
#[cfg(test)]
const MAX_SPOOLED: u64 = 1 << 20;

/// The rest of `input`, held to be read with seeks from its start: in memory up to
/// [`SPOOL_IN_MEMORY`], in a temporary file beyond it; `None` when it is longer than
/// `limit`, of which no more than one byte past `limit` is copied.
fn spool(input: &mut dyn BufRead, limit: u64) -> io::Result<Option<tempfile::SpooledTempFile>> {
    let mut spooled = tempfile::spooled_tempfile(SPOOL_IN_MEMORY);
    if io::copy(&mut input.take(limit + 1), &mut spooled)? > limit {
        return Ok(None);
    }
    spooled.seek(io::SeekFrom::Start(0))?;
    Ok(Some(spooled))
}

/// What a file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Gzip,
    Tar,
    Zip,
    /// Recognised, not read yet: what to do instead.
    Unsupported(&'static str),
    Mbox,
    /// A single RFC 5322 message (a Maildir file, an `.eml`).
    Message,
    NotMail,
}

impl Kind {
    fn of(head: &[u8]) -> Kind {
        if head.is_empty() {
            return Kind::Empty;
        }
        if head.starts_with(&[0x1f, 0x8b]) {
            return Kind::Gzip;
        }
        if is_tar(head) {
            return Kind::Tar;
        }
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            return Kind::Zip;
        }
        if let Some(reason) = unsupported_format(head) {
            return Kind::Unsupported(reason);
        }
        let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let first_line = body.split(|&b| b == b'\n').next().unwrap_or_default();
        // "From " without a colon: an mbox envelope. (A header "From: x" has a colon.)
        if first_line.starts_with(b"From ")
            && !is_header_line(first_line)
            && (is_envelope(first_line) || looks_like_message(after_first_line(body)))
        {
            return Kind::Mbox;
        }
        if looks_like_message(body) {
            return Kind::Message;
        }
        Kind::NotMail
    }
}

/// A single message, with its place from the file's name (skipped in a Maildir `tmp`).
fn emit_message(bytes: Vec<u8>, name: &str, on_event: &mut dyn FnMut(Event)) {
    let (origin, skip) = maildir_origin(name);
    if let Some(reason) = skip {
        on_event(Event::Skipped {
            file: name.to_string(),
            reason,
        });
        return;
    }
    on_event(Event::Message { origin, bytes });
    on_event(Event::FileRead {
        file: name.to_string(),
        messages: 1,
    });
}

/// Mail formats recognised but not read yet, with what to do instead.
fn unsupported_format(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"!BDN") {
        return Some(
            "Outlook PST file: not read by trove yet; convert it first with `readpst -r -o DIR FILE` (Debian package pst-utils) and ingest DIR",
        );
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Some(
            "Outlook .msg (OLE compound) file: not read by trove yet; convert it to .eml first (e.g. with msgconvert, Debian package libemail-outlook-message-perl)",
        );
    }
    None
}

fn after_first_line(body: &[u8]) -> &[u8] {
    match body.iter().position(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None => &[],
    }
}

/// A single RFC 5322 message starts with a header line; files of other kinds (indexes,
/// pictures, `maildirfolder` markers, Dovecot lists) do not.
fn looks_like_message(head: &[u8]) -> bool {
    let mut lines = head.split(|&b| b == b'\n');
    let Some(first) = lines.next() else {
        return false;
    };
    if !is_header_line(first) || first.contains(&0) {
        return false;
    }
    // Two header lines, or one followed by the end of the headers, rule out a stray colon.
    match lines.next() {
        Some(second) => {
            is_header_line(second)
                || second.starts_with(b" ")
                || second.starts_with(b"\t")
                || second == b"\r"
                || second.is_empty()
        }
        None => true,
    }
}

fn is_tar(head: &[u8]) -> bool {
    head.len() >= 262 && &head[257..262] == b"ustar"
}

fn strip_gz(name: &str) -> String {
    for ext in [".tgz", ".gz"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return if ext == ".tgz" {
                format!("{stem}.tar")
            } else {
                stem.to_string()
            };
        }
    }
    name.to_string()
}

fn read_mbox(
    input: &mut dyn BufRead,
    name: &str,
    on_event: &mut dyn FnMut(Event),
) -> io::Result<()> {
    let folder = mbox_folder(name);
    let mut count = 0;
    for message in MboxReader::new(input) {
        let message = message?;
        if let Some(size) = message.too_large {
            let what = format!("the message at byte {} ({size} bytes)", message.offset);
            on_event(too_large(name, &what, MAX_MESSAGE, NOT_A_MESSAGE));
            continue;
        }
        count += 1;
        on_event(Event::Message {
            origin: Origin {
                file: name.to_string(),
                offset: Some(message.offset),
                folder: folder.clone(),
                flags: None,
            },
            bytes: message.bytes,
        });
    }
    on_event(Event::FileRead {
        file: name.to_string(),
        messages: count,
    });
    Ok(())
}

/// What a message over [`MAX_MESSAGE`] most likely is.
const NOT_A_MESSAGE: &str = "a decompression bomb, or no mail system's message";

/// The error for `what`, a part of `file` over `limit` bytes and not read, and `why` it
/// may be so large.
fn too_large(file: &str, what: &str, limit: u64, why: &str) -> Event {
    Event::Error {
        file: file.to_string(),
        error: format!(
            "{what} is larger than {} MiB: not read ({why})",
            limit >> 20
        ),
    }
}

fn read_tar(
    input: &mut dyn BufRead,
    name: &str,
    depth: usize,
    on_event: &mut dyn FnMut(Event),
) -> io::Result<()> {
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries()? {
        let entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = format!("{name}!/{}", entry.path()?.to_string_lossy());
        let size = entry.size();
        let mut reader = BufReader::with_capacity(64 << 10, entry);
        read_stream(&mut reader, &member, depth + 1, Some(size), on_event);
    }
    on_event(Event::FileRead {
        file: name.to_string(),
        messages: 0,
    });
    Ok(())
}

fn read_zip<R: Read + Seek>(reader: R, name: &str, depth: usize, on_event: &mut dyn FnMut(Event)) {
    let mut archive = match zip::ZipArchive::new(reader) {
        Ok(a) => a,
        Err(e) => {
            on_event(Event::Error {
                file: name.to_string(),
                error: format!("not a readable zip archive: {e}"),
            });
            return;
        }
    };
    for i in 0..archive.len() {
        let entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                on_event(Event::Error {
                    file: format!("{name}!/#{i}"),
                    error: e.to_string(),
                });
                continue;
            }
        };
        if !entry.is_file() {
            continue;
        }
        let member = match entry.name() {
            Ok(n) => format!("{name}!/{n}"),
            // A name that is not UTF-8 (nor CP437): the entry is still read, by number.
            Err(_) => format!("{name}!/#{i}"),
        };
        // The size the zip states: a member that says less than it holds is still read
        // no further than the limit.
        let size = entry.size();
        let mut reader = BufReader::with_capacity(64 << 10, entry);
        read_stream(&mut reader, &member, depth + 1, Some(size), on_event);
    }
    on_event(Event::FileRead {
        file: name.to_string(),
        messages: 0,
    });
}

/// The folder of a single-message file, from its path: Maildir's `cur`/`new` dropped,
/// Maildir++ `.a.b` read as `a/b`, archive prefixes removed. A file in a Maildir `tmp`
/// is still being delivered and is skipped, as every Maildir reader does.
fn maildir_origin(name: &str) -> (Origin, Option<String>) {
    let inner = name.rsplit("!/").next().unwrap_or(name);
    let mut parts: Vec<&str> = inner.split('/').collect();
    let file_name = parts.pop().unwrap_or_default();
    let mut skip = None;
    let mut folder: Vec<String> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *part {
            "cur" | "new" if last => {}
            "tmp" if last => skip = Some("Maildir tmp file (delivery not finished)".to_string()),
            p if p.starts_with('.') && p.len() > 1 && p != ".." => {
                folder.extend(p[1..].split('.').map(str::to_string));
            }
            p => folder.push(p.to_string()),
        }
    }
    let flags = file_name
        .split_once(":2,")
        .or_else(|| file_name.split_once(";2,"))
        .or_else(|| file_name.split_once("!2,"))
        .map(|(_, f)| f.to_string());
    let folder = if folder.is_empty() {
        "INBOX".to_string()
    } else {
        folder.join("/")
    };
    (
        Origin {
            file: name.to_string(),
            offset: None,
            folder,
            flags,
        },
        skip,
    )
}

fn mbox_folder(name: &str) -> String {
    let inner = name.rsplit("!/").next().unwrap_or(name);
    let mut folder = inner.to_string();
    for ext in [".mbox", ".mbx", ".txt"] {
        if let Some(stem) = folder.strip_suffix(ext) {
            folder = stem.to_string();
            break;
        }
    }
    folder
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages read (origin, bytes) and errors (file, error), each in order.
    type Read = (Vec<(Origin, Vec<u8>)>, Vec<(String, String)>);

    /// What reading `path` gave.
    fn read_all(path: &Path) -> Read {
        let (mut read, mut errors) = (Vec::new(), Vec::new());
        read_path(path, &ByteCounter::default(), &mut |event| match event {
            Event::Message { origin, bytes } => read.push((origin, bytes)),
            Event::Error { file, error } => errors.push((file, error)),
            _ => {}
        })
        .unwrap();
        (read, errors)
    }

    #[test]
    fn maildir_folders() {
        let (o, skip) = maildir_origin("mail/.lists.dev/cur/123.host:2,FS");
        assert_eq!(o.folder, "mail/lists/dev");
        assert_eq!(o.flags.as_deref(), Some("FS"));
        assert!(skip.is_none());
        let (o, _) = maildir_origin("allen-p/all_documents/12.");
        assert_eq!(o.folder, "allen-p/all_documents");
        let (_, skip) = maildir_origin("x/tmp/1.host");
        assert!(skip.is_some());
        let (o, _) = maildir_origin("dump.zip!/bob/inbox/3.");
        assert_eq!(o.folder, "bob/inbox");
    }

    /// A message over the limit, alone and as the member of a zip (where it would be a
    /// decompression bomb), is an error naming it; the others are read.
    #[test]
    fn a_message_over_the_limit_is_an_error_and_not_held() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dump");
        std::fs::create_dir_all(&root).unwrap();
        let huge = |fill: u64| {
            let mut m = b"From: a@example.org\nSubject: big\n\n".to_vec();
            m.resize(m.len() + fill as usize, b'x');
            m
        };
        std::fs::write(root.join("1-huge.eml"), huge(MAX_MESSAGE)).unwrap();
        std::fs::write(root.join("2-fits.eml"), huge(MAX_MESSAGE - 100)).unwrap();
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("bomb.eml", deflated).unwrap();
        zip.write_all(&huge(MAX_MESSAGE * 3)).unwrap();
        zip.start_file("small.eml", deflated).unwrap();
        zip.write_all(b"From: b@example.org\nSubject: small\n\nhi\n")
            .unwrap();
        let zip = zip.finish().unwrap().into_inner();
        assert!(zip.len() < (MAX_MESSAGE / 10) as usize);
        std::fs::write(root.join("3-bomb.zip"), zip).unwrap();
        let (read, errors) = read_all(&root);
        let names: Vec<&str> = read.iter().map(|(o, _)| o.file.as_str()).collect();
        assert_eq!(names, ["dump/2-fits.eml", "dump/3-bomb.zip!/small.eml"]);
        let failed: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(failed, ["dump/1-huge.eml", "dump/3-bomb.zip!/bomb.eml"]);
        assert!(errors[0].1.contains("larger than 2 MiB"), "{:?}", errors[0]);
    }

    /// A message read to its end is held whole, and one over the limit only to one byte
    /// past it, in a buffer no larger.
    #[test]
    fn a_message_is_read_into_a_buffer_no_larger_than_the_limit() {
        let limit = 100_000;
        for size in [0, 1, 4_096, 99_999, 100_000, 100_001, 300_000] {
            let text: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            let mut input = BufReader::with_capacity(1_000, &text[..]);
            let bytes = read_limited(&mut input, limit).unwrap();
            let kept = size.min(limit as usize + 1);
            assert_eq!(bytes, text[..kept], "{size}");
            assert!(
                bytes.capacity() <= limit as usize + 1,
                "{size}: {}",
                bytes.capacity()
            );
        }
    }

    /// Reads `bytes` as archive member `name` whose archive states `declared`: the errors
    /// it gave, and how many bytes it pulled from the input (in 4 KiB reads).
    fn read_member(bytes: &[u8], name: &str, declared: Option<u64>) -> (Vec<String>, u64) {
        let counter = ByteCounter::default();
        let mut input = BufReader::with_capacity(
            4096,
            Counting {
                inner: bytes,
                counter: counter.clone(),
            },
        );
        let mut errors = Vec::new();
        read_stream(&mut input, name, 1, declared, &mut |event| {
            if let Event::Error { error, .. } = event {
                errors.push(error);
            }
        });
        (errors, counter.get())
    }

    /// An archive member whose stated size is over the limit, and which is a message, is
    /// refused from its first bytes: the rest is not decompressed to find out.
    #[test]
    fn a_member_stated_too_large_is_refused_unread() {
        let mut message = b"From: a@example.org\nSubject: big\n\n".to_vec();
        message.resize(MAX_MESSAGE as usize * 3, b'x');
        for (declared, refused_unread) in [(Some(message.len() as u64), true), (None, false)] {
            let (errors, read) = read_member(&message, "a.zip!/big.eml", declared);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains("larger than 2 MiB"), "{errors:?}");
            assert_eq!(read <= 4096, refused_unread, "{read}");
        }
    }

    /// A zip inside a stream past the spool's ceiling is refused: from its first bytes when
    /// its archive states its size, after copying no more than the ceiling otherwise.
    #[test]
    fn a_zip_past_the_spools_ceiling_is_refused_without_copying_it_all() {
        let mut zip = b"PK\x03\x04".to_vec();
        zip.resize(MAX_SPOOLED as usize * 3, 0);
        for (declared, refused_unread) in [(Some(zip.len() as u64), true), (None, false)] {
            let (errors, read) = read_member(&zip, "a.tar!/big.zip", declared);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains("larger than 1 MiB"), "{errors:?}");
            assert_eq!(read <= 4096, refused_unread, "{read}");
            assert!(read <= MAX_SPOOLED + 8192, "{read}");
        }
    }

    /// A zip inside a tar.gz is read through a spool: from memory when small, from a
    /// temporary file when over the limit, each read from its start.
    #[test]
    fn a_zip_inside_a_stream_is_spooled_and_read() {
        use std::io::Write;
        let message = |i: usize, fill: usize| {
            format!(
                "From: a@example.org\nMessage-ID: <{i}@example.org>\nSubject: {i}\n\n{}\n",
                "w".repeat(fill)
            )
        };
        let zip_of = |messages: &[String]| {
            let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
            for (i, m) in messages.iter().enumerate() {
                let stored = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored);
                zip.start_file(format!("inbox/{i}.eml"), stored).unwrap();
                zip.write_all(m.as_bytes()).unwrap();
            }
            zip.finish().unwrap().into_inner()
        };
        let small = vec![message(1, 10), message(2, 10)];
        let large: Vec<String> = (3..8).map(|i| message(i, SPOOL_IN_MEMORY / 3)).collect();
        let (small_zip, large_zip) = (zip_of(&small), zip_of(&large));
        assert!(small_zip.len() < SPOOL_IN_MEMORY && large_zip.len() > SPOOL_IN_MEMORY);
        for (zip, rolled) in [(&small_zip, false), (&large_zip, true)] {
            let spooled = spool(&mut &zip[..], MAX_SPOOLED).unwrap().unwrap();
            assert_eq!(spooled.is_rolled(), rolled);
        }
        let mut tar = tar::Builder::new(Vec::new());
        for (name, zip) in [("small.zip", &small_zip), ("large.zip", &large_zip)] {
            let mut header = tar::Header::new_gnu();
            header.set_size(zip.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, &zip[..]).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar.into_inner().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("export.tar.gz"), gz.finish().unwrap()).unwrap();
        let (read, errors) = read_all(dir.path());
        assert!(errors.is_empty(), "{errors:?}");
        let files: Vec<&str> = read.iter().map(|(o, _)| o.file.as_str()).collect();
        assert_eq!(files.len(), 7, "{files:?}");
        assert!(
            files[0].ends_with("export.tar!/small.zip!/inbox/0.eml"),
            "{files:?}"
        );
        assert!(
            files[6].ends_with("export.tar!/large.zip!/inbox/4.eml"),
            "{files:?}"
        );
        for ((_, bytes), want) in read.iter().zip(small.iter().chain(&large)) {
            assert_eq!(bytes.as_slice(), want.as_bytes());
        }
    }

    /// In an mbox, a message over the limit (made of lines, or of one line with no end,
    /// gzipped as a bomb would be) is an error naming its place; the others are read whole.
    #[test]
    fn an_mbox_message_over_the_limit_is_an_error_and_the_others_are_read() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let envelope = "From a@example.org Mon Jan  1 00:00:00 2001\n";
        let small = |i: usize| format!("{envelope}From: a@example.org\nSubject: {i}\n\nhi {i}\n\n");
        let mut lines = format!("{envelope}From: b@example.org\nSubject: lines\n\n");
        while (lines.len() as u64) < MAX_MESSAGE * 2 {
            lines.push_str(&"y".repeat(99));
            lines.push('\n');
        }
        lines.push('\n');
        let one_line = format!(
            "{envelope}From: c@example.org\nSubject: one line\n\n{}\n\n",
            "z".repeat(MAX_MESSAGE as usize * 3)
        );
        let mbox = [small(1), lines.clone(), small(2), one_line, small(3)].concat();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(mbox.as_bytes()).unwrap();
        std::fs::write(dir.path().join("list.mbox.gz"), gz.finish().unwrap()).unwrap();
        let (read, errors) = read_all(dir.path());
        let subjects: Vec<String> = read
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned())
            .collect();
        assert_eq!(read.len(), 3, "{subjects:?}");
        for (i, (_, bytes)) in read.iter().enumerate() {
            // The blank line before the next envelope is the mbox's; the last keeps it.
            let want = small(i + 1);
            let end = want.len() - usize::from(i < 2);
            assert_eq!(bytes.as_slice(), &want.as_bytes()[envelope.len()..end]);
        }
        assert_eq!(errors.len(), 2, "{errors:?}");
        let second = small(1).len();
        assert!(
            errors[0].1.contains(&format!("at byte {second} ")),
            "{errors:?}"
        );
        assert!(errors[1].1.contains("larger than 2 MiB"), "{errors:?}");
    }

    #[test]
    fn detects_messages_not_other_files() {
        assert!(looks_like_message(b"Message-ID: <x@y>\nDate: now\n"));
        assert!(looks_like_message(b"Received: from x\n\tby y\n"));
        assert!(!looks_like_message(b"\x89PNG\r\n"));
        assert!(!looks_like_message(
            b"Hello: there is a colon in this sentence, see\nthe rest"
        ));
        assert!(!looks_like_message(b"1 2 3\n"));
    }

    /// More files than are read ahead, with a large mbox (streamed, not held), a gzip and
    /// a zip among them, and a file that is not mail: every event comes in the walk's
    /// order, every message once, and every byte on disk is counted.
    #[test]
    fn files_read_ahead_arrive_in_the_walks_order() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dump");
        let cur = root.join("inbox/cur");
        std::fs::create_dir_all(&cur).unwrap();
        let message = |i: usize| format!("From: a{i}@example.org\nSubject: {i}\n\nbody {i}\n");
        let files = AHEAD * 3;
        for i in 0..files {
            std::fs::write(cur.join(format!("{i:04}.host:2,S")), message(i)).unwrap();
        }
        // Over WHOLE: streamed by the walking thread in its turn.
        let mut mbox = Vec::new();
        let mut big = 0;
        while mbox.len() as u64 <= WHOLE {
            mbox.extend_from_slice(
                format!(
                    "From x@y Mon Jan  1 00:00:00 2001\n{}{}\n",
                    message(big),
                    "x".repeat(4000)
                )
                .as_bytes(),
            );
            big += 1;
        }
        std::fs::write(root.join("inbox/0100-big.mbox"), &mbox).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(message(9000).as_bytes()).unwrap();
        std::fs::write(root.join("inbox/cur/0050-one.eml.gz"), gz.finish().unwrap()).unwrap();
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        zip.start_file("inner/1.eml", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(message(9001).as_bytes()).unwrap();
        std::fs::write(
            root.join("inbox/cur/0060-two.zip"),
            zip.finish().unwrap().into_inner(),
        )
        .unwrap();
        std::fs::write(root.join("inbox/cur/0070-picture.png"), b"\x89PNG\r\n").unwrap();

        let counter = ByteCounter::default();
        let mut finished = Vec::new();
        let mut messages = 0;
        let mut skipped = Vec::new();
        read_path(&root, &counter, &mut |event| match event {
            Event::Message { .. } => messages += 1,
            Event::FileRead { file, .. } => finished.push(file),
            Event::Skipped { file, .. } => skipped.push(file),
            Event::Error { file, error } => panic!("{file}: {error}"),
        })
        .unwrap();

        assert_eq!(messages, files + big + 2);
        assert_eq!(skipped, ["dump/inbox/cur/0070-picture.png"]);
        let mut walked: Vec<String> = walkdir::WalkDir::new(&root)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file() && !e.path().ends_with("0070-picture.png"))
            .map(|e| rel(dir.path(), e.path()))
            .collect();
        // The gzip's member is named without `.gz`; a zip's members finish before it.
        for name in &mut walked {
            if let Some(stem) = name.strip_suffix(".gz") {
                *name = stem.to_string();
            }
        }
        let zip_at = walked.iter().position(|n| n.ends_with(".zip")).unwrap();
        walked.insert(zip_at, format!("{}!/inner/1.eml", walked[zip_at]));
        assert_eq!(finished, walked);
        assert_eq!(counter.get(), total_size(&root));
    }
}
