//! The real server in a real browser: `trove serve` on 127.0.0.1, Debian's headless
//! Chromium loading the search and email pages at desktop and phone widths. The pages
//! are what a reader with JavaScript off sees: they ship no script, and their
//! Content-Security-Policy (checked in trove-web's tests) forbids any. Headless Chromium
//! itself needs script enabled to dump the DOM or take a screenshot, so it stays on. Screenshots go to `target/screenshots/` to be looked at.
//!
//! The reader's pages (search with facets, thread, person, email) are also loaded with
//! JavaScript switched off in the browser profile, as Tor Browser's safest setting does,
//! and must be complete either way.
//!
//! Without Chromium the test is skipped, except under CI (`CI` set), where it fails:
//! `.ci/run` installs Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::Server;

/// Debian's chromium; `None` (the test is skipped, and says so) only outside CI, which
/// must have it.
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium (apt-get install chromium)"
        );
        eprintln!("chromium not installed; skipped");
    }
    found
}

/// A fresh browser profile; with `javascript: false`, one whose content settings block
/// JavaScript on every site.
fn profile(dir: &Path, javascript: bool) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("Default")).unwrap();
    if !javascript {
        std::fs::write(
            dir.join("Default/Preferences"),
            r#"{"profile":{"default_content_setting_values":{"javascript":2}}}"#,
        )
        .unwrap();
    }
    dir.to_path_buf()
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
    assert!(dom.contains("Copy this citation"), "{dom}");
    assert!(
        dom.contains("rel=\"canonical\" href=\"/emailid/1\""),
        "{dom}"
    );

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

/// The first `href` in `dom` that starts with `prefix`, unescaped.
fn link(dom: &str, prefix: &str) -> Option<String> {
    let at = dom.find(&format!("href=\"{prefix}"))? + 6;
    let end = dom[at..].find('"')? + at;
    Some(dom[at..end].replace("&amp;", "&"))
}

#[test]
fn reader_pages_work_with_javascript_off_and_on_at_desktop_and_phone_widths() {
    let Some(chrome) = chromium() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    common::run(&["init", common::p(&ws)]);
    common::run(&[
        "ingest",
        common::p(&ws),
        common::p(&common::corpus("lists/usrp-users-first300.mbox")),
    ]);
    common::run(&["release", common::p(&ws), "--all"]);
    let server = Server::start(&ws.join("site"));
    let base = format!("http://127.0.0.1:{}", server.port);
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // A check that JavaScript really is off in the second profile: a page whose script
    // would rewrite its own text.
    let probe = tmp.path().join("probe.html");
    std::fs::write(
        &probe,
        "<p id=p>static</p><script>document.getElementById('p').textContent='scripted'</script>",
    )
    .unwrap();
    let off = profile(&tmp.path().join("js-off"), false);
    let dom = browse(
        &chrome,
        &off,
        &format!("file://{}", probe.display()),
        800,
        None,
    );
    assert!(dom.contains(">static<"), "JavaScript is off: {dom}");
    let on = profile(&tmp.path().join("js-on"), true);
    let dom = browse(
        &chrome,
        &on,
        &format!("file://{}", probe.display()),
        800,
        None,
    );
    assert!(dom.contains(">scripted<"), "JavaScript is on: {dom}");

    for (js, prof) in [("js-off", &off), ("js-on", &on)] {
        // Search: count, timeline, facets; a facet link narrows.
        let dom = browse(&chrome, prof, &format!("{base}/search?q=uhd"), 1280, None);
        assert!(dom.contains("emails match"), "{js}: {dom}");
        assert!(
            dom.contains("timeline-title"),
            "{js}: the timeline is drawn"
        );
        assert!(dom.contains("Sender's domain"), "{js}: facets");
        let facet = link(&dom, "/search?q=uhd%20domain%3A").expect("a domain facet link");
        let narrowed = browse(&chrome, prof, &format!("{base}{facet}"), 1280, None);
        assert!(narrowed.contains("emails match") || narrowed.contains("1 email matches"));
        assert!(
            narrowed.contains("domain:"),
            "{js}: the query shows the facet"
        );
        // From a hit to its email, its conversation and a person.
        let email = link(&dom, "/emailid/").unwrap();
        let dom = browse(&chrome, prof, &format!("{base}{email}"), 1280, None);
        assert!(dom.contains("Copy this citation"), "{js}");
        let person = link(&dom, "/person/").expect("people are links");
        let dom = browse(&chrome, prof, &format!("{base}{person}"), 1280, None);
        assert!(dom.contains("Most frequent correspondents"), "{js}: {dom}");
        assert!(dom.contains("Received"), "{js}");
        let (_, api) = server.get("/api/v1/search?q=&limit=1&facets=false");
        assert!(!api.is_empty());
        // The biggest conversation: its tree and emails.
        let thread = (1..=300)
            .map(|n| {
                let (_, b) = server.get(&format!("/api/v1/emails/{n}"));
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                v["thread"].as_u64().unwrap()
            })
            .fold(
                std::collections::HashMap::<u64, usize>::new(),
                |mut m, t| {
                    *m.entry(t).or_default() += 1;
                    m
                },
            )
            .into_iter()
            .max_by_key(|(_, c)| *c)
            .unwrap()
            .0;
        let dom = browse(
            &chrome,
            prof,
            &format!("{base}/thread/{thread}"),
            1280,
            None,
        );
        assert!(dom.contains("Conversation:"), "{js}");
        assert!(dom.contains("by the References of") || dom.contains("by the In-Reply-To of"));

        for (name, path) in [
            ("search", "/search?q=uhd".to_string()),
            ("thread", format!("/thread/{thread}")),
            ("person", person.clone()),
            ("email", email.clone()),
        ] {
            for (device, width) in [("desktop", 1280), ("phone", 360)] {
                let shot = shots.join(format!("reader-{name}-{device}-{js}.png"));
                let _ = std::fs::remove_file(&shot);
                browse(&chrome, prof, &format!("{base}{path}"), width, Some(&shot));
                let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
                assert!(size > 5_000, "{}: blank ({size} bytes)", shot.display());
            }
        }
    }
}
