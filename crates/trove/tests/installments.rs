//! Installments and their checks: releases planned ahead that leave no trace before
//! their time, withdrawals, and the /verify page's steps run with standard tools.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Server, files_under, p, run, site_file, site_files, tamper, trove};

/// An mbox of `n` emails per group; every email of group `g` carries the token
/// `{g}canary` in its subject, body and attachment name, and is dated in year 2000 + i
/// of its group, so oldest-first selections take the groups in order.
fn planted_mbox(path: &Path, groups: &[&str], n: usize) {
    let mut mbox = String::new();
    for (gi, g) in groups.iter().enumerate() {
        for i in 0..n {
            let day = i + 1;
            mbox.push_str(&format!(
                "From sender@example.org Mon Jan  1 00:00:00 {year}\n\
                 From: Sender {g} <sender{i}@example.org>\n\
                 To: reader@example.net\n\
                 Subject: {g}canary subject {i}\n\
                 Date: Mon, {day:02} Jan {year} 10:00:00 +0000\n\
                 Message-ID: <{g}-{i}@example.org>\n\
                 MIME-Version: 1.0\n\
                 Content-Type: multipart/mixed; boundary=\"b\"\n\
                 \n\
                 --b\n\
                 Content-Type: text/plain\n\
                 \n\
                 This is email {i} of group {g}: {g}canary body text.\n\
                 --b\n\
                 Content-Type: text/plain; name=\"{g}canary-{i}.txt\"\n\
                 Content-Disposition: attachment; filename=\"{g}canary-{i}.txt\"\n\
                 \n\
                 attachment of {g}canary {i}\n\
                 --b--\n\n",
                year = 2000 + gi,
            ));
        }
    }
    std::fs::write(path, mbox).unwrap();
}

/// A new workspace in a temporary directory with mail ingested: the planted groups
/// (three emails each) or, with `None`, the demo's 332 Enron emails. Returns the
/// directory (removed when dropped), the workspace and its site.
fn ingested(groups: Option<&[&str]>) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let mbox = match groups {
        Some(groups) => {
            let mbox = tmp.path().join("planted.mbox");
            planted_mbox(&mbox, groups, 3);
            mbox
        }
        None => demo_mbox(),
    };
    run(&["init", p(&ws)]);
    run(&["ingest", p(&ws), p(&mbox), "--quiet"]);
    let site = ws.join("site");
    (tmp, ws, site)
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let dt = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Nothing of the groups in `hidden` may be anywhere under the site or behind a route.
fn assert_absent(site: &Path, server: &Server, hidden: &[&str], step: &str) {
    for (file, bytes) in site_files(site) {
        for g in hidden {
            let token = format!("{g}canary");
            assert!(
                memfind(&bytes, token.as_bytes()).is_none(),
                "{step}: {token} is in {file}"
            );
        }
    }
    let mut routes: Vec<String> = vec![
        "/".into(),
        "/releases".into(),
        "/releases.atom".into(),
        "/verify".into(),
    ];
    for k in 1..=6 {
        routes.push(format!("/releases/{k}"));
        routes.push(format!("/site/releases/{k:06}.json"));
    }
    for n in 1..=12 {
        routes.push(format!("/emailid/{n}"));
        routes.push(format!("/emailid/{n}/raw"));
        routes.push(format!("/emailid/{n}/attachments/1"));
        routes.push(format!("/site/messages/0000/{n}.json"));
        routes.push(format!("/site/messages/0000/{n}.eml"));
    }
    for g in hidden {
        routes.push(format!("/search?q={g}canary"));
        routes.push(format!("/search?q=subject:{g}canary"));
    }
    for route in routes {
        let (_, body) = server.get(&route);
        for g in hidden {
            let token = format!("{g}canary");
            // The search page echoes the query back; it must find nothing.
            if route.contains("search?") && route.contains(&token) {
                let body = String::from_utf8_lossy(&body);
                // Exactly the zero-hit wording: "10 emails match." also holds "0 emails".
                assert!(
                    body.contains("No emails match."),
                    "{step}: {route} found something: {body}"
                );
                continue;
            }
            assert!(
                memfind(&body, token.as_bytes()).is_none(),
                "{step}: {token} is behind {route}"
            );
        }
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn planned_releases_leave_no_trace_before_their_time() {
    let (_tmp, ws, site) = ingested(Some(&["alpha", "bravo", "charlie"]));

    // A: due already (a time in the past publishes at once).
    let out = run(&[
        "release",
        p(&ws),
        "--next",
        "3",
        "--at",
        "2001-01-01T00:00Z",
        "--title",
        "A",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Published release 1 \"A\": emails 1..=3")
    );
    // B: twenty seconds from now, so the checks after A finish first even on a slow
    // machine. C: far ahead, chosen by date.
    let b_at = SystemTime::now() + Duration::from_secs(20);
    let out = run(&[
        "release",
        p(&ws),
        "--next",
        "3",
        "--at",
        &rfc3339(b_at),
        "--title",
        "B",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Planned (plan 2): 3 emails"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&[
        "release",
        p(&ws),
        "--until",
        "2002-12",
        "--at",
        "2099-01-01T09:00Z",
        "--title",
        "C",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Planned (plan 3): 3 emails"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let listing = String::from_utf8_lossy(&run(&["plan", p(&ws)]).stdout).to_string();
    assert!(
        listing.contains("live as release 1") && listing.contains("scheduled"),
        "{listing}"
    );

    let server = Server::start(&site);
    assert_absent(&site, &server, &["bravo", "charlie"], "after A");
    let (_, body) = server.get("/emailid/3");
    assert!(String::from_utf8_lossy(&body).contains("alphacanary"));

    // publish-due before B's time publishes nothing.
    assert!(
        SystemTime::now() < b_at,
        "the checks after A outlasted B's lead time"
    );
    let out = run(&["publish-due", p(&ws)]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Nothing due. Next: plan 2"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_absent(
        &site,
        &server,
        &["bravo", "charlie"],
        "publish-due before B",
    );

    while SystemTime::now() < b_at + Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = run(&["publish-due", p(&ws)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Published release 2 \"B\": emails 4..=6"),
        "{stdout}"
    );
    // The server picks up the new manifest within its refresh interval.
    std::thread::sleep(Duration::from_millis(2200));
    let (status, body) = server.get("/emailid/4");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("bravocanary"));
    assert_absent(&site, &server, &["charlie"], "after B");
    // The same search was answered (and its page kept) before B: now it finds B's email.
    let (_, body) = server.get("/search?q=bravocanary");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("href=\"/emailid/4\""), "after B: {body}");
    run(&["verify", p(&site)]);

    // Cancelling C returns its emails; a plain release then takes them.
    run(&["plan", p(&ws), "--cancel", "3"]);
    let out = run(&["release", p(&ws), "--all", "--title", "C now"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("emails 7..=9"));
}

/// A release made now goes out after a plan whose time has come, and is listed as a plan
/// that went live, counting the emails it published and the ones it held back.
#[test]
fn a_release_now_follows_the_due_plan_and_is_listed_with_its_emails() {
    let (_tmp, ws, site) = ingested(Some(&["alpha", "bravo", "charlie"]));
    let policy = ws.join("policy.toml");
    let mut rules = std::fs::read_to_string(&policy).unwrap();
    rules.push_str(
        "\n[[overrides]]\nmessage_id = \"<charlie-1@example.org>\"\n\
         action = \"withhold-message\"\nreason = \"court order\"\n",
    );
    std::fs::write(&policy, rules).unwrap();
    // Far enough ahead that planning it is done before it is due on a loaded machine.
    let due = SystemTime::now() + Duration::from_secs(5);
    let out = run(&[
        "release",
        p(&ws),
        "--next",
        "3",
        "--at",
        &rfc3339(due),
        "--title",
        "Due",
    ]);
    says(&out, "Planned (plan 1): 3 emails");
    while SystemTime::now() < due + Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = run(&["release", p(&ws), "--all", "--title", "Now"]);
    says(&out, "Published release 1 \"Due\": emails 1..=3");
    says(&out, "Published release 2 \"Now\": emails 4..=8");
    let plans: serde_json::Value =
        serde_json::from_slice(&run(&["plan", p(&ws), "--json"]).stdout).unwrap();
    let plans = plans.as_array().unwrap();
    assert_eq!(plans.len(), 2, "{plans:?}");
    for (plan, (title, release, emails)) in plans.iter().zip([("Due", 1, 3), ("Now", 2, 6)]) {
        assert_eq!(plan["title"], title, "{plan}");
        assert_eq!(plan["state"], "published", "{plan}");
        assert_eq!(plan["release"], release, "{plan}");
        assert_eq!(plan["emails"], emails, "{plan}");
    }
    let (status, _) = Server::start(&site).get("/emailid/8");
    assert_eq!(status, 200);
    run(&["verify", p(&site)]);
}

#[test]
fn withdrawal_is_signed_and_the_verify_page_steps_work_with_standard_tools() {
    if !["openssl", "curl", "sha256sum", "python3"]
        .iter()
        .all(|t| tool_present(t))
    {
        return;
    }
    let (tmp, ws, site) = ingested(Some(&["alpha", "bravo"]));
    run(&["release", p(&ws), "--next", "3"]);
    run(&["release", p(&ws), "--all"]);

    // Withdraw email 5: a signed release of its own, files gone, verify still passes.
    let out = run(&["withdraw", p(&ws), "5", "--reason", "court order"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("in release 3"));
    assert!(site_file(&site, "messages/0000/5.json").is_none());
    assert!(site_file(&site, "messages/0000/5.eml").is_none());
    assert!(site_file(&site, "messages/0000/4.json").is_some());
    let out = run(&["verify", p(&site)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 withdrawn"), "{stdout}");
    // Withdrawing twice, or an unpublished number, is refused with the reason.
    let again = trove()
        .args(["withdraw", p(&ws), "5", "--reason", "x"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already withdrawn by release 3"));
    let never = trove()
        .args(["withdraw", p(&ws), "99", "--reason", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&never.stderr).contains("email 99 has not been published"));
    // Putting the file back is caught.
    std::fs::write(site.join("messages/0000/5.json"), b"{}").unwrap();
    let out = trove().args(["verify", p(&site)]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("withdrawn by release 3, but still present"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(site.join("messages/0000/5.json")).unwrap();

    let server = Server::start(&site);
    let (status, body) = server.get("/emailid/5");
    assert_eq!(status, 410);
    assert!(String::from_utf8_lossy(&body).contains("court order"));
    assert_eq!(server.get("/site/messages/0000/5.json").0, 404);
    let (_, release) = server.get("/releases/3");
    let release = String::from_utf8_lossy(&release);
    assert!(
        release.contains("Emails withdrawn") && release.contains("court order"),
        "{release}"
    );
    let (_, feed) = server.get("/releases.atom");
    assert!(String::from_utf8_lossy(&feed).contains("Email 5 withdrawn: court order"));
    // The feed is well-formed Atom: an XML parser reads one entry per release.
    let parsed = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys,xml.etree.ElementTree as E; f=E.parse(sys.argv[1]).getroot(); A='{http://www.w3.org/2005/Atom}'; assert f.tag==A+'feed'; print([e.find(A+'title').text for e in f.findall(A+'entry')])",
        ])
        .arg({
            let path = tmp.path().join("releases.atom");
            std::fs::write(&path, &feed).unwrap();
            path
        })
        .output()
        .unwrap();
    assert!(parsed.status.success(), "{}", text(&parsed));
    assert_eq!(
        String::from_utf8_lossy(&parsed.stdout).trim(),
        "['Release 3: Withdrawal of email 5', 'Release 2: Release 2', 'Release 1: Release 1']"
    );
    // Searching no longer finds it.
    let out = run(&[
        "search",
        p(&site),
        "subject:\"bravocanary subject 1\"",
        "--json",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"total\": 0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The /verify page's steps, run as a reader would, against this server.
    let (_, page) = server.get("/verify");
    let page = String::from_utf8_lossy(&page).to_string();
    let fingerprint = between(&page, "<code id=\"fingerprint\">", "</code>");
    let script = between(&page, "<pre class=\"body\" id=\"verify-script\">", "</pre>")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    assert!(
        script.contains("000002.json"),
        "the steps check the last release with files:\n{script}"
    );
    let script = script.replacen(
        "BASE=https://this-site.example",
        &format!("BASE=http://127.0.0.1:{}", server.port),
        1,
    );
    let work = tmp.path().join("reader");
    std::fs::create_dir_all(&work).unwrap();
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&work)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the /verify steps failed:\n{script}\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("{fingerprint}  -")),
        "fingerprint differs:\n{stdout}"
    );
    assert!(
        stdout.contains("Signature Verified Successfully"),
        "{stdout}"
    );
    assert!(
        stdout.contains("release 2: every file served matches"),
        "{stdout}"
    );
    assert!(
        stdout.contains("messages/0000/5.json: not served (withdrawn?)"),
        "{stdout}"
    );
    assert!(work.join("messages/0000/4.json").exists());
    let previous_sum = std::fs::read(work.join("000001.json"))
        .map(|b| sha256_hex(&b))
        .unwrap();
    assert!(
        stdout.contains(&format!("\"previous\": \"{previous_sum}\"")),
        "{stdout}"
    );

    // The same steps catch a changed file.
    let victim = "messages/0000/4.json";
    let original = site_file(&site, victim).unwrap();
    tamper(&site, victim, &[original.as_slice(), b" "].concat());
    let fresh = tmp.path().join("reader2");
    std::fs::create_dir_all(&fresh).unwrap();
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&fresh)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("messages/0000/4.json: FAILED"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    tamper(&site, victim, &original);
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in page"))
        + start.len();
    let j = s[i..].find(end).unwrap() + i;
    &s[i..j]
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn demo_mbox() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("demo/enron-allen-p-sample.mbox")
}

/// Fails, showing everything it printed, unless the command's output contains `needle`.
fn says(out: &std::process::Output, needle: &str) {
    let said = text(out);
    assert!(said.contains(needle), "expected {needle:?} in:\n{said}");
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_mirror_checks_everything_resumes_and_serves_the_same_pages() {
    let (tmp, ws, site) = ingested(None);
    let copy = tmp.path().join("mirror");
    run(&["release", p(&ws), "--next", "100", "--title", "One"]);
    let origin = Server::start(&site);
    let url = format!("http://127.0.0.1:{}", origin.port);

    let out = run(&["mirror", &url, p(&copy), "--quiet"]);
    says(&out, "pinning its key");
    assert!(text(&out).contains("Mirrored releases 1..=1"));
    // The emails' 200 files came in one request, the folder's pack, and are kept so.
    says(&out, "200 of them in 1 packs");
    assert_eq!(origin.get("/site/messages/0000/1.pack").0, 200);
    for unsigned in ["/site/messages/0000/101.pack", "/site/messages/0000/2.pack"] {
        assert_eq!(origin.get(unsigned).0, 404, "{unsigned}");
    }
    assert!(copy.join("messages/0000/1.pack").exists());
    assert!(!copy.join("messages/0000/1.json").exists());
    assert!(text(&run(&["verify", p(&copy)])).contains("OK: 1 releases, 100 emails"));

    // Release 2 at the origin, with one of its files changed after signing.
    run(&["release", p(&ws), "--all", "--title", "Two"]);
    std::thread::sleep(Duration::from_millis(2200)); // the origin's manifest refresh
    let victim = "messages/0000/150.json";
    let original = site_file(&site, victim).unwrap();
    tamper(&site, victim, &[original.as_slice(), b"\n"].concat());
    let out = trove()
        .args(["mirror", &url, p(&copy), "--quiet"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out)
            .contains("site/messages/0000/150.json: its SHA-256 differs from the signed manifest"),
        "{}",
        text(&out)
    );
    // The copy is as it was: release 1 complete, nothing of release 2.
    assert!(text(&run(&["verify", p(&copy)])).contains("OK: 1 releases, 100 emails"));
    assert!(!copy.join("releases/000002.json").exists());
    assert!(!copy.join("messages/0000/150.json").exists());
    tamper(&site, victim, &original);

    // A pull killed part way, then run again, completes from what it had staged.
    let mut child = trove()
        .args(["mirror", &url, p(&copy), "--quiet", "--pause-ms", "10"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let staged_dir = copy.join(".trove-mirror/files");
    let started = std::time::Instant::now();
    loop {
        let staged = if staged_dir.exists() {
            files_under(&staged_dir).len()
        } else {
            0
        };
        if staged >= 40 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the pull did not start"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pull ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !copy.join("releases/000002.json").exists(),
        "killed before the manifest"
    );
    assert!(text(&run(&["verify", p(&copy)])).contains("OK: 1 releases"));
    let out = run(&["mirror", &url, p(&copy), "--quiet"]);
    let said = text(&out);
    let reused: u64 = said
        .split(" already here")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        reused >= 40,
        "the resumed pull fetched again what it had: {said}"
    );
    assert!(text(&run(&["verify", p(&copy)])).contains("OK: 2 releases"));
    assert!(!copy.join(".trove-mirror").exists());
    // Nothing new: nothing fetched.
    assert!(text(&run(&["mirror", &url, p(&copy)])).contains("Up to date"));

    // A withdrawal at the origin reaches the mirror.
    run(&["withdraw", p(&ws), "7", "--reason", "court order"]);
    std::thread::sleep(Duration::from_millis(2200));
    let out = run(&["mirror", &url, p(&copy), "--quiet"]);
    says(&out, "1 withdrawn");
    assert!(site_file(&copy, "messages/0000/7.json").is_none());
    assert!(site_file(&copy, "messages/0000/8.json").is_some());

    // Readers cannot tell the mirror from the origin.
    let mirror = Server::start(&copy);
    std::thread::sleep(Duration::from_millis(100));
    for route in [
        "/",
        "/releases",
        "/releases/2",
        "/releases.atom",
        "/emailid/150",
        "/emailid/150/raw",
        "/emailid/7",
        "/verify",
        "/search?q=gas",
        "/site/releases/000003.json",
    ] {
        let a = origin.get(route);
        let b = mirror.get(route);
        assert_eq!(a.0, b.0, "{route}: status differs");
        assert!(
            a.1 == b.1,
            "{route}: the mirror's page differs from the origin's"
        );
    }

    // An origin signing with another key is refused unless told to trust it.
    let other_ws = tmp.path().join("other");
    run(&["init", p(&other_ws)]);
    run(&["ingest", p(&other_ws), p(&demo_mbox()), "--quiet"]);
    run(&["release", p(&other_ws), "--next", "10"]);
    let impostor = Server::start(&other_ws.join("site"));
    let impostor_url = format!("http://127.0.0.1:{}", impostor.port);
    let out = trove()
        .args(["mirror", &impostor_url, p(&copy)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    says(&out, "the origin's signing key changed");
    assert!(text(&run(&["verify", p(&copy)])).contains("OK: 3 releases"));
    let out = run(&[
        "mirror",
        &impostor_url,
        p(&copy),
        "--trust-new-key",
        "--quiet",
    ]);
    says(&out, "Trusting the new key");
    assert!(text(&run(&["verify", p(&copy)])).contains("OK: 1 releases, 10 emails"));
}

/// `nginx` (Debian) balancing origin and mirror; `retry` says whether it may retry a
/// request on the other server when one fails. Returns how many of `requests` failed
/// when the mirror is killed a third of the way through.
/// Debian's nginx on a free loopback port, with `body` as the inside of its `http`
/// block (`{port}` stands for the port); stopped with SIGTERM when dropped, so the master
/// takes its workers down with it.
struct Nginx {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(body: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let conf = format!(
            "{user}worker_processes 1;\n\
             error_log {root}/error.log warn;\n\
             pid {root}/nginx.pid;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;\n\
               fastcgi_temp_path {root}/fcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;\n\
               {body}\n\
             }}\n",
            user = if is_root { "user root;\n" } else { "" },
            root = root.display(),
            body = body.replace("{port}", &port.to_string()),
        );
        std::fs::write(root.join("nginx.conf"), conf).unwrap();
        let child = std::process::Command::new("nginx")
            .args([
                "-p",
                p(root),
                "-c",
                p(&root.join("nginx.conf")),
                "-g",
                "daemon off;",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        common::wait_for_port(port, Duration::from_secs(10), || {
            format!(
                "nginx did not start: {}",
                std::fs::read_to_string(root.join("error.log")).unwrap_or_default()
            )
        });
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `nginx` (Debian) balancing origin and mirror; `retry` says whether it may retry a
/// request on the other server when one fails. Returns how many of `requests` failed
/// when the mirror is killed a third of the way through.
fn load_through_nginx(origin: &Server, copy: &Path, retry: bool, requests: usize) -> usize {
    let mut mirror = Server::start(copy);
    let next_upstream = if retry {
        "error timeout http_502 http_503 http_504"
    } else {
        "off"
    };
    let nginx = Nginx::start(&format!(
        "upstream trove {{\n\
           server 127.0.0.1:{a} max_fails=1 fail_timeout=30s;\n\
           server 127.0.0.1:{b} max_fails=1 fail_timeout=30s;\n\
         }}\n\
         server {{\n\
           listen 127.0.0.1:{{port}};\n\
           location / {{\n\
             proxy_pass http://trove;\n\
             proxy_next_upstream {next_upstream};\n\
             proxy_next_upstream_tries 2;\n\
             proxy_connect_timeout 2s;\n\
             proxy_read_timeout 10s;\n\
           }}\n\
         }}",
        a = origin.port,
        b = mirror.port,
    ));
    let port = nginx.port;
    let balancer = Server::at(port);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let routes = [
        "/",
        "/emailid/150",
        "/emailid/20",
        "/releases/2",
        "/search?q=gas",
        "/site/messages/0000/150.json",
    ];
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (balancer, done, failed) = (&balancer, &done, &failed);
            scope.spawn(move || {
                for i in 0..requests / 4 {
                    let route = routes[(i + t) % routes.len()];
                    let (status, _) = balancer.get(route);
                    if status != 200 {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        while done.load(std::sync::atomic::Ordering::Relaxed) < requests / 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        mirror.kill();
    });
    drop(nginx);
    failed.into_inner()
}

#[test]
fn nginx_in_front_of_origin_and_mirror_loses_no_request_when_one_dies() {
    if !tool_present("nginx") {
        return;
    }
    let (tmp, ws, site) = ingested(None);
    let copy = tmp.path().join("mirror");
    run(&["release", p(&ws), "--next", "100"]);
    run(&["release", p(&ws), "--all"]);
    let origin = Server::start(&site);
    run(&[
        "mirror",
        &format!("http://127.0.0.1:{}", origin.port),
        p(&copy),
        "--quiet",
    ]);

    let failed = load_through_nginx(&origin, &copy, true, 2000);
    eprintln!("with retries: {failed} of 2000 requests failed");
    assert_eq!(
        failed, 0,
        "requests lost although nginx may retry them on the origin"
    );
    // The control: without retries the same kill does lose requests, so the test can fail.
    let failed = load_through_nginx(&origin, &copy, false, 2000);
    eprintln!("without retries: {failed} of 2000 requests failed");
    assert!(
        failed > 0,
        "killing the mirror lost nothing even without retries: the load did not reach it"
    );
}

fn tool_present(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing under CI"
        );
        eprintln!("skipping: {tool} not installed");
    }
    found
}

#[test]
fn exports_check_with_real_tools() {
    if !["transmission-show", "aria2c", "python3"]
        .iter()
        .all(|t| tool_present(t))
    {
        return;
    }
    let (tmp, ws, site) = ingested(None);
    let out = tmp.path().join("out");
    run(&["release", p(&ws), "--next", "100", "--title", "One"]);
    run(&["release", p(&ws), "--all", "--title", "Two"]);
    run(&["withdraw", p(&ws), "7", "--reason", "court order"]);
    let said = text(&run(&[
        "export",
        p(&site),
        "--static",
        p(&out.join("static")),
        "--torrent",
        p(&out.join("torrents")),
        "--mbox",
        p(&out.join("mbox")),
        "--jsonl",
        p(&out.join("jsonl")),
        "--quiet",
    ]));

    // Torrents: transmission reads them and agrees on the info hash; aria2c checks the
    // static copy's signed files (`static/site`, the site's files as files) against
    // them, and catches a changed byte.
    for k in 1..=3 {
        let torrent = out.join(format!("torrents/release-{k:06}.torrent"));
        let hash = said
            .lines()
            .find(|l| l.contains(&format!("release-{k:06}.torrent")))
            .and_then(|l| l.rsplit("info hash ").next())
            .unwrap()
            .trim()
            .to_string();
        let shown = std::process::Command::new("transmission-show")
            .arg(&torrent)
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.contains(&format!("Hash: {hash}")), "{shown}");
        assert!(
            shown.contains(&format!("site/releases/{k:06}.json")),
            "{shown}"
        );
    }
    let aria = |dir: &Path, k: u32| {
        std::process::Command::new("aria2c")
            .args([
                "--check-integrity=true",
                "--seed-time=0",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--bt-stop-timeout=3",
                "--console-log-level=warn",
                &format!("--dir={}", dir.display()),
                p(&out.join(format!("torrents/release-{k:06}.torrent"))),
            ])
            .output()
            .unwrap()
    };
    let seeded = out.join("static");
    for k in 1..=2 {
        let o = aria(&seeded, k);
        assert!(
            o.status.success(),
            "aria2c rejects release {k}: {}",
            text(&o)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("download completed"));
    }
    // Email 7 was withdrawn: release 1's torrent no longer carries its files.
    let shown = std::process::Command::new("transmission-show")
        .arg(out.join("torrents/release-000001.torrent"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&shown.stdout).contains("messages/0000/7.json"));
    let changed = tmp.path().join("changed");
    std::fs::create_dir_all(changed.join("site")).unwrap();
    for f in files_under(&seeded.join("site")) {
        let rel = f.strip_prefix(seeded.join("site")).unwrap();
        let to = changed.join("site").join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap();
    }
    let victim = changed.join("site/messages/0000/150.json");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    assert!(
        !aria(&changed, 2).status.success(),
        "aria2c accepted a changed file"
    );

    // mbox and JSON Lines: Python's mailbox reads every email; trove ingests them again.
    let count = |k: u32| {
        let o = std::process::Command::new("python3")
            .args([
                "-c",
                "import mailbox,sys; print(len(mailbox.mbox(sys.argv[1])))",
                p(&out.join(format!("mbox/release-{k:06}.mbox"))),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    let manifest = |k: u32| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(site.join(format!("releases/{k:06}.json"))).unwrap())
            .unwrap()
    };
    let emails = |k: u32| {
        let m = manifest(k);
        (m["numbers"]["last"].as_u64().unwrap() - m["numbers"]["first"].as_u64().unwrap() + 1)
            as usize
    };
    assert_eq!(
        count(1),
        emails(1) - 1,
        "release 1 less the withdrawn email"
    );
    assert_eq!(count(2), emails(2));
    let jsonl = std::fs::read_to_string(out.join("jsonl/release-000002.jsonl")).unwrap();
    let numbers: Vec<u64> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["number"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(numbers.len(), emails(2));
    assert_eq!(
        numbers[0],
        manifest(2)["numbers"]["first"].as_u64().unwrap()
    );
    let again = tmp.path().join("again");
    run(&["init", p(&again)]);
    let said = text(&run(&[
        "ingest",
        p(&again),
        p(&out.join("mbox")),
        "--quiet",
    ]));
    let status = text(&run(&["status", p(&again), "--json"]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["messages"].as_u64().unwrap() as usize,
        emails(1) - 1 + emails(2),
        "{said}"
    );

    // The static copy: every link of every page leads to a file of the copy, and a
    // plain file server serves it.
    let root = out.join("static");
    let mut pages = 0;
    for file in files_under(&root) {
        if file.extension().is_none_or(|e| e != "html") {
            continue;
        }
        pages += 1;
        let html = std::fs::read_to_string(&file).unwrap();
        for attr in ["href=\"", "src=\"", "action=\""] {
            for piece in html.split(attr).skip(1) {
                let link = piece.split('"').next().unwrap().replace("&amp;", "&");
                if link.starts_with("http")
                    || link.starts_with("mailto:")
                    || link.starts_with('#')
                    || link.is_empty()
                {
                    continue;
                }
                assert!(
                    !link.starts_with('/'),
                    "{}: absolute link {link}",
                    file.display()
                );
                // As a browser does: the path without query or fragment, %XX decoded.
                let path = link.split(['?', '#']).next().unwrap();
                let mut decoded = Vec::new();
                let mut bytes = path.bytes();
                while let Some(b) = bytes.next() {
                    if b == b'%' {
                        let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                        decoded.push(u8::from_str_radix(&hex, 16).unwrap());
                    } else {
                        decoded.push(b);
                    }
                }
                let target = file
                    .parent()
                    .unwrap()
                    .join(String::from_utf8(decoded).unwrap());
                assert!(
                    target.is_file(),
                    "{}: link {link} leads nowhere",
                    file.display()
                );
            }
        }
    }
    assert!(pages > 300, "{pages} pages");
    assert!(
        root.join("emailid/7/index.html").exists(),
        "the withdrawn notice is a page too"
    );
    assert!(!root.join("site/messages/0000/7.json").exists());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut http = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
            p(&root),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_port(port, Duration::from_secs(10), || {
        "the static file server did not start".into()
    });
    let files = Server::at(port);
    let (status, body) = files.get("/emailid/150/index.html");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("href=\"../../style.css\""));
    assert_eq!(files.get("/site/releases/000002.json").0, 200);
    let _ = http.kill();
    let _ = http.wait();
}

#[test]
fn a_mirror_pulls_over_https_and_checks_the_certificate() {
    if !tool_present("nginx") || !tool_present("openssl") {
        return;
    }
    let (tmp, ws, site) = ingested(None);
    run(&["release", p(&ws), "--next", "20"]);
    let origin = Server::start(&site);

    // A private CA and a certificate for 127.0.0.1, made with openssl.
    let pki = tmp.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::write(
        pki.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    for args in [
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=trove-test-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
        "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf",
    ] {
        let out = std::process::Command::new("openssl")
            .args(args.split(' '))
            .current_dir(&pki)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args}: {}", text(&out));
    }
    let tls = Nginx::start(&format!(
        "server {{\n\
           listen 127.0.0.1:{{port}} ssl;\n\
           ssl_certificate {pki}/server.pem;\n\
           ssl_certificate_key {pki}/server.key;\n\
           location / {{ proxy_pass http://127.0.0.1:{origin}; }}\n\
         }}",
        pki = pki.display(),
        origin = origin.port,
    ));
    let url = format!("https://127.0.0.1:{}", tls.port);
    let copy = tmp.path().join("mirror");

    // Not signed by a CA it trusts: refused, nothing copied.
    let out = trove().args(["mirror", &url, p(&copy)]).output().unwrap();
    eprintln!("without the CA: {}", text(&out));
    assert_eq!(out.status.code(), Some(1));
    says(&out, &format!("{url}/site/site.json"));
    assert!(!copy.join("releases").exists());
    // With the CA: copied and checked over TLS.
    let out = run(&[
        "mirror",
        &url,
        p(&copy),
        "--ca-cert",
        p(&pki.join("ca.pem")),
        "--quiet",
    ]);
    says(&out, "Mirrored releases 1..=1");
    assert!(text(&run(&["verify", p(&copy)])).contains("OK: 1 releases, 20 emails"));
}
