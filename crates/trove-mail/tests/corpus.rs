//! The readers against real mail from ../shared/corpus, with expectations computed
//! independently of trove's own splitter.

use std::path::PathBuf;

use trove_mail::mbox::MboxReader;

fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(rel)
}

/// The `mboxMarkerOffset` values MimeKit's own parser expects, from its test data.
fn expected_offsets(file: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(corpus(&format!(
        "parser/jstedfast-MimeKit-TestData/UnitTests/TestData/mbox/{file}"
    )))
    .unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("\"mboxMarkerOffset\":"))
        .map(|v| v.trim().trim_end_matches(',').parse().unwrap())
        .collect()
}

fn offsets(bytes: &[u8]) -> Vec<u64> {
    MboxReader::new(bytes).map(|m| m.unwrap().offset).collect()
}

#[test]
fn mimekit_mboxes_split_at_the_expected_offsets() {
    for name in ["content-length", "issue1189"] {
        let path = corpus(&format!(
            "parser/jstedfast-MimeKit-TestData/UnitTests/TestData/mbox/{name}.mbox.txt"
        ));
        let unix = std::fs::read(&path).unwrap();
        assert_eq!(
            offsets(&unix),
            expected_offsets(&format!("{name}.unix-offsets.json")),
            "{name} (LF)"
        );
        // The DOS expectations are for the same file with CRLF line endings.
        let mut dos = Vec::with_capacity(unix.len() * 11 / 10);
        for &b in &unix {
            if b == b'\n' {
                dos.push(b'\r');
            }
            dos.push(b);
        }
        assert_eq!(
            offsets(&dos),
            expected_offsets(&format!("{name}.dos-offsets.json")),
            "{name} (CRLF)"
        );
    }
}

#[test]
fn unmunged_from_lines_stay_in_their_message() {
    let bytes = std::fs::read(corpus(
        "parser/jstedfast-MimeKit-TestData/UnitTests/TestData/mbox/unmunged.mbox.txt",
    ))
    .unwrap();
    let messages: Vec<_> = MboxReader::new(&bytes[..]).map(|m| m.unwrap()).collect();
    assert_eq!(messages.len(), 2);
    assert!(
        String::from_utf8_lossy(&messages[1].bytes).contains("From Russia with love\nYear: 1963")
    );
}

/// public-inbox writes every envelope as `From mboxrd@z Thu Jan  1 00:00:00 1970`, and
/// quotes body lines, so counting that exact line counts the messages.
#[test]
fn list_archives_split_into_every_message() {
    for name in [
        "lists/linux-serial-first3000.mbox",
        "lists/usrp-users-first300.mbox",
    ] {
        let bytes = std::fs::read(corpus(name)).unwrap();
        let expected = bytes
            .split(|&b| b == b'\n')
            .filter(|l| *l == b"From mboxrd@z Thu Jan  1 00:00:00 1970")
            .count();
        let got = MboxReader::new(&bytes[..]).count();
        assert_eq!(got, expected, "{name}");
        assert!(expected >= 300);
    }
}

/// Pipermail envelopes are `From user at host  Www Mmm dd hh:mm:ss yyyy`; body lines
/// starting with `From ` are not escaped, so a plain `^From ` count would be wrong.
#[test]
fn pipermail_archives_split_at_envelopes_only() {
    let dir = corpus("lists/pipermail-linux-uvc-devel");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let expected = text
            .lines()
            .filter(|l| {
                let Some(rest) = l.strip_prefix("From ") else {
                    return false;
                };
                let words: Vec<&str> = rest.split_whitespace().collect();
                // user at host Www Mmm d hh:mm:ss yyyy
                words.len() == 8
                    && words[1] == "at"
                    && words[6].len() == 8
                    && words[6].matches(':').count() == 2
                    && words[7].len() == 4
            })
            .count();
        let got = MboxReader::new(&bytes[..]).count();
        assert_eq!(got, expected, "{}", path.display());
        total += got;
    }
    assert!(total > 900, "{total}");
}
