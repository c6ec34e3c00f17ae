//! The real server in a real browser: `trove serve` on 127.0.0.1, Debian's headless
//! Chromium loading the search and email pages at desktop and phone widths. The pages
//! are what a reader with JavaScript off sees: they ship no script, and their
//! Content-Security-Policy (checked in trove-web's tests) forbids any. Headless Chromium
//! itself needs script enabled to dump the DOM or take a screenshot, so it stays on. Screenshots go to `target/screenshots/` to be looked at.
//!
//! Without Chromium the test is skipped, except under CI (`CI` set), where it fails:
//! `.ci/run` installs Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::Server;

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn browse(chrome: &Path, profile: &Path, url: &str, width: u32, shot: Option<&Path>) -> String {
    let mut cmd = Command::new(chrome);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &format!("--window-size={width},1400"),
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    match shot {
        Some(path) => cmd.arg(format!("--screenshot={}", path.display())),
        None => cmd.arg("--dump-dom"),
    };
    cmd.arg(url);
    let out = cmd.stderr(Stdio::null()).output().expect("chromium runs");
    assert!(out.status.success(), "chromium failed on {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn search_and_email_pages_render_in_headless_chromium() {
    let Some(chrome) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium (apt-get install chromium)"
        );
        eprintln!("chromium not installed; skipped");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let st = common::trove()
        .args(["demo", "--no-serve", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let server = Server::start(&dir.join("workspace/site"));
    let base = format!("http://127.0.0.1:{}", server.port);
    let profile = tmp.path().join("profile");

    let dom = browse(
        &chrome,
        &profile,
        &format!("{base}/search?q=gas+prices"),
        1280,
        None,
    );
    assert!(dom.contains("emails match"), "{dom}");
    assert!(dom.contains("href=\"/emailid/"), "{dom}");
    assert!(
        dom.contains("<b>gas</b>") || dom.contains("<b>prices</b>"),
        "highlighted: {dom}"
    );

    let dom = browse(&chrome, &profile, &format!("{base}/emailid/1"), 1280, None);
    assert!(dom.contains("From"), "{dom}");
    assert!(dom.contains(" -0"), "date shown with its offset: {dom}");
    assert!(dom.contains("raw email"), "{dom}");
    assert!(dom.contains("Cite as: /emailid/1"), "{dom}");

    let dom = browse(
        &chrome,
        &profile,
        &format!("{base}/emailid/100000"),
        1280,
        None,
    );
    assert!(dom.contains("Not found"), "{dom}");

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, url, width) in [
        (
            "search-desktop.png",
            format!("{base}/search?q=gas+prices"),
            1280,
        ),
        (
            "search-phone.png",
            format!("{base}/search?q=gas+prices"),
            360,
        ),
        ("email-desktop.png", format!("{base}/emailid/97"), 1280),
        ("email-phone.png", format!("{base}/emailid/97"), 360),
        ("home-desktop.png", format!("{base}/"), 1280),
    ] {
        let path = shots.join(name);
        let _ = std::fs::remove_file(&path);
        browse(&chrome, &profile, &url, width, Some(&path));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 5_000,
            "{name}: screenshot missing or blank ({size} bytes)"
        );
    }
}
