//! The evidence bundle of one email (`/emailid/N/evidence`): everything needed to check
//! its DKIM signatures again without trove, as a tar file.

use trove_site::PublishedMessage;

/// `email-N-evidence.tar`: the raw source, the key records used (in the key-archive format
/// dkimpy's test harness and `trove verify-message --keys` read), the verdicts as JSON,
/// and a README saying how to check them.
pub fn bundle(
    m: &PublishedMessage,
    raw: Option<&[u8]>,
    site_url_hint: &str,
) -> std::io::Result<Vec<u8>> {
    let n = m.number;
    let keys: String = m
        .dkim
        .iter()
        .filter_map(|d| d.key.as_ref())
        .chain(
            m.arc
                .iter()
                .flat_map(|a| a.seals.iter().filter_map(|s| s.key.as_ref())),
        )
        .map(|k| format!("{} {}\n", k.name, k.txt))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let verdicts = serde_json::to_vec_pretty(&m.dkim).map_err(std::io::Error::other)?;
    let readme = readme(m, site_url_hint);
    let arc = match &m.arc {
        Some(arc) => Some(serde_json::to_vec_pretty(arc).map_err(std::io::Error::other)?),
        None => None,
    };
    let arc_entry = arc.as_deref().map(|a| (format!("email-{n}/arc.json"), a));
    let mut out = tar::Builder::new(Vec::new());
    let raw_entry = raw.map(|r| (format!("email-{n}/email-{n}.eml"), r));
    for (name, bytes) in raw_entry.into_iter().chain(arc_entry).chain([
        (format!("email-{n}/keys.txt"), keys.as_bytes()),
        (format!("email-{n}/verdicts.json"), &verdicts[..]),
        (format!("email-{n}/README.txt"), readme.as_bytes()),
    ]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        out.append_data(&mut header, name, bytes)?;
    }
    out.into_inner()
}

fn readme(m: &PublishedMessage, site: &str) -> String {
    let n = m.number;
    let mut s = format!(
        "Evidence for email #{n} of {site}\n\n\
         email-{n}.eml   the email's original bytes, as released (SHA-256 {sha})\n\
         keys.txt        the DKIM key records used: one line each, `selector._domainkey.domain TXT-value`\n\
         verdicts.json   trove's verdict on each DKIM-Signature, with the key and where it came from\n\n",
        sha = m.raw_sha256.as_deref().unwrap_or("not published"),
    );
    if let Some(arc) = &m.arc {
        s.push_str(&format!(
            "arc.json        trove's verdict on the ARC chain (RFC 8617)\n\n{}\n\
             dkimpy checks ARC with dkim.arc_verify(raw, dnsfunc=...) (it has no Ed25519 for ARC).\n\n",
            arc.sentence()
        ));
    }
    if m.dkim.is_empty() {
        s.push_str("This email carries no DKIM signature: there is nothing to check this way.\n");
        return s;
    }
    s.push_str("Verdicts:\n");
    for d in &m.dkim {
        s.push_str(&format!("  - {}\n", d.sentence()));
    }
    s.push_str(&format!(
        "\nCheck it yourself with dkimpy (pip install dkimpy; add pynacl for Ed25519 keys).\n\
         dkimpy looks keys up in DNS; keys rotate, so give it the archived records instead:\n\n\
         python3 - <<'PY'\n\
         import dkim\n\
         keys = {{}}\n\
         for line in open('keys.txt'):\n\
         \x20   name, _, txt = line.strip().partition(' ')\n\
         \x20   keys[name + '.'] = txt.encode()\n\
         raw = open('email-{n}.eml', 'rb').read()\n\
         d = dkim.DKIM(raw)\n\
         for i in range({count}):\n\
         \x20   ok = d.verify(idx=i, dnsfunc=lambda name, timeout=5: keys.get(name.decode() if isinstance(name, bytes) else name))\n\
         \x20   print('signature', i, 'pass' if ok else 'FAIL')\n\
         PY\n\n\
         dkimpy judges the x= (expiry) tag against today's clock; trove judges it at the\n\
         email's own Date. A signature with x= in the past fails in dkimpy for that reason\n\
         alone. The key text in keys.txt can also be checked against DNS history services,\n\
         or, for a key archive, against the archive the publisher names.\n\n\
         With `trove verify-message email-{n}.eml --keys keys.txt` the same check runs in trove.\n",
        count = m.dkim.len()
    ));
    s
}
