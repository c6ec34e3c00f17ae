//! Helpers shared by the `trove` integration tests: running the binary, the shared
//! corpora, listing a directory without trove's reader, and a real server on loopback.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn trove() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trove"))
}

pub fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(rel)
}

/// Runs trove and insists that it succeeds.
pub fn run(args: &[&str]) -> Output {
    let out = trove().args(args).output().expect("trove runs");
    assert!(
        out.status.success(),
        "trove {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every regular file under a directory, listed without trove's reader.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Site file `rel` (`messages/0000/1.json`) as readers get it, from its pack or loose.
pub fn site_file(site: &Path, rel: &str) -> Option<Vec<u8>> {
    trove_site::Site::open(site)
        .unwrap()
        .read_file(rel)
        .unwrap()
}

/// Every file under a site, with each pack's files in place of the pack: a file's name,
/// (`…/1.pack:messages/0000/1.json` for one in a pack) and its bytes.
pub fn site_files(site: &Path) -> Vec<(String, Vec<u8>)> {
    let opened = trove_site::Site::open(site).unwrap();
    let mut out = Vec::new();
    for path in files_under(site) {
        if path.extension().is_some_and(|e| e == "pack") {
            continue;
        }
        out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    for (pack, entry) in opened.packed_files().unwrap() {
        let bytes = opened.read_file(&entry.path).unwrap().unwrap();
        out.push((format!("{}:{}", pack.display(), entry.path), bytes));
    }
    out
}

/// Replaces site file `rel` with `bytes` behind trove's back, as a tamperer would: it is
/// taken out of its pack and put beside it as a file of its own, which readers then find.
pub fn tamper(site: &Path, rel: &str, bytes: &[u8]) {
    let opened = trove_site::Site::open(site).unwrap();
    opened.remove_files(&[rel.to_string()]).unwrap();
    std::fs::write(site.join(rel), bytes).unwrap();
}

/// `trove serve SITE` on a free loopback port, once it accepts connections; killed when
/// dropped.
/// Waits until something listens on `port` of 127.0.0.1; after `limit`, fails with
/// `why()` (which may read a log).
pub fn wait_for_port(port: u16, limit: Duration, why: impl Fn() -> String) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < limit, "{}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(site: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = trove()
            .args(["serve", p(site), "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, Duration::from_secs(20), || {
            "server did not start".into()
        });
        Server { child, port }
    }

    /// A handle on something already listening on `port` (not started or killed by us).
    pub fn at(port: u16) -> Server {
        Server {
            child: Command::new("true").spawn().unwrap(),
            port,
        }
    }

    /// Stops the server at once (SIGKILL), as a crash or a cut cable would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// One HTTP/1.0 GET: the status code and the body.
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let status = String::from_utf8_lossy(response.get(9..12).unwrap_or_default())
            .parse()
            .unwrap_or(0);
        let body_at = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(response.len(), |i| i + 4);
        (status, response[body_at..].to_vec())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
