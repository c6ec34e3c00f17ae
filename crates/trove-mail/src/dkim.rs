//! DKIM verification for archives (RFC 6376, RFC 8463). The principal function is
//! [`verify`]: give it a message's original bytes, a [`KeyLookup`] and the message's own
//! date, and it returns one [`SignatureVerdict`] per DKIM-Signature header, top to bottom.
//!
//! Why our own verifier rather than mail-auth's: an archive is checked years after the
//! mail was sent. mail-auth judges `x=` against the wall clock (so old mail comes back
//! "expired" without any cryptographic check) and fetches keys through its DNS resolver.
//! Here keys come from a [`KeyLookup`] (a key archive supplied by the publisher, a key
//! captured earlier, DNS through a trait), `x=` is judged at the message's own Date, and
//! every verdict says exactly why. The cryptography is the `rsa` and `ed25519-dalek`
//! crates'; this module does the parsing and canonicalisation around them.
//!
//! Verdicts are data, not errors: a malformed signature is a [`Verdict::Fail`] with the
//! reason, never an `Err`.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Where a key came from: part of the provenance a verdict carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A key archive file supplied by the publisher (`--keys FILE`).
    Archive { file: String },
    /// Looked up in DNS at the given time (RFC 3339).
    Dns { at: String },
    /// Captured by an earlier run and kept in the workspace.
    Captured { at: String },
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Archive { file } => {
                write!(f, "key archive {file}, supplied by the publisher")
            }
            KeySource::Dns { at } => write!(f, "DNS, looked up at {at}"),
            KeySource::Captured { at } => write!(f, "captured earlier, at {at}"),
        }
    }
}

/// A DKIM key record (the TXT value at `selector._domainkey.domain`) and its provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// `selector._domainkey.domain`, lower case.
    pub name: String,
    pub txt: String,
    pub source: KeySource,
    /// The private half is known to be public: a pass then proves nothing.
    pub private_key_published: bool,
}

/// Finds key records by name. DNS, when it is used, comes in through this trait.
pub trait KeyLookup {
    fn lookup(&self, name: &str) -> Option<KeyRecord>;
}

/// Key records held in memory, e.g. read from a key archive file.
#[derive(Debug, Default, Clone)]
pub struct KeyStore {
    records: HashMap<String, KeyRecord>,
}

impl KeyStore {
    /// Reads a key archive: one record a line, `selector._domainkey.domain TXT-value`;
    /// `#` starts a comment line; the TXT value may be quoted in one or more strings.
    /// Returns the store and the lines that could not be read (line number, text).
    pub fn parse_archive(text: &str, file: &str) -> (KeyStore, Vec<(usize, String)>) {
        let mut store = KeyStore::default();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once(char::is_whitespace) else {
                bad.push((i + 1, line.to_string()));
                continue;
            };
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !name.contains("._domainkey.") || name.contains('#') {
                // `name#label` marks alternative test keys (dkimpy's corrupted key): not a DNS name.
                bad.push((i + 1, line.to_string()));
                continue;
            }
            let txt = unquote_txt(value.trim());
            store.insert(KeyRecord {
                name,
                txt,
                source: KeySource::Archive {
                    file: file.to_string(),
                },
                private_key_published: false,
            });
        }
        (store, bad)
    }

    pub fn insert(&mut self, record: KeyRecord) {
        self.records.insert(record.name.clone(), record);
    }

    /// Every record held, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = &KeyRecord> {
        self.records.values()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl KeyLookup for KeyStore {
    fn lookup(&self, name: &str) -> Option<KeyRecord> {
        self.records.get(&name.to_ascii_lowercase()).cloned()
    }
}

/// `"v=DKIM1; p=abc" "def"` → `v=DKIM1; p=abcdef`; an unquoted value is kept as it is.
fn unquote_txt(value: &str) -> String {
    if !value.starts_with('"') {
        return value.to_string();
    }
    let mut out = String::new();
    let mut in_quote = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => in_quote = !in_quote,
            '\\' if in_quote => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c if in_quote => out.push(c),
            _ => {}
        }
    }
    out
}

/// Why a signature failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The body (as far as `l=` covers it) is not the one that was signed.
    BodyHashMismatch,
    /// The signed headers, or the signature itself, changed since signing.
    SignatureMismatch,
    /// The DKIM-Signature header cannot be read or breaks the rules.
    Malformed(String),
    /// `x=` had passed at the message's own date.
    Expired { expires: i64, date: i64 },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::BodyHashMismatch => {
                f.write_str("body hash mismatch: the body changed since signing")
            }
            Failure::SignatureMismatch => f.write_str(
                "header/signature mismatch: a signed header or the signature changed since signing",
            ),
            Failure::Malformed(why) => write!(f, "malformed signature: {why}"),
            Failure::Expired { expires, date } => {
                write!(
                    f,
                    "signature expired (x={expires}) before the message's date ({date})"
                )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(Failure),
    KeyNotFound,
    KeyInvalid(String),
    Unsupported(String),
}

impl Verdict {
    /// `pass`, `fail`, `key-not-found`, `key-invalid` or `unsupported`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::KeyNotFound => "key-not-found",
            Verdict::KeyInvalid(_) => "key-invalid",
            Verdict::Unsupported(_) => "unsupported",
        }
    }

    /// Why, in words; empty for a pass.
    pub fn reason(&self) -> String {
        match self {
            Verdict::Pass => String::new(),
            Verdict::Fail(f) => f.to_string(),
            Verdict::KeyNotFound => "no key record for this selector and domain".into(),
            Verdict::KeyInvalid(why) => format!("key invalid: {why}"),
            Verdict::Unsupported(why) => format!("unsupported: {why}"),
        }
    }
}

/// The verdict on one DKIM-Signature header, with what it was checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureVerdict {
    /// 0 for the topmost DKIM-Signature header.
    pub index: usize,
    /// `d=` and `s=`, as written (empty when missing).
    pub domain: String,
    pub selector: String,
    /// `a=`, e.g. `rsa-sha256`.
    pub algorithm: String,
    pub verdict: Verdict,
    /// Size of the key used, in bits (RSA modulus; 256 for Ed25519).
    pub key_bits: Option<u32>,
    pub key: Option<KeyRecord>,
    /// `l=`: only this many bytes of the canonicalised body were signed.
    pub body_length_limit: Option<u64>,
    /// Length of the canonicalised body, to say how much `l=` covered.
    pub body_length: Option<u64>,
    /// Header names listed in `h=`.
    pub signed_headers: Vec<String>,
    /// `t=` and `x=`.
    pub timestamp: Option<i64>,
    pub expires: Option<i64>,
    /// rsa-sha1, or an RSA key under 1024 bits: a pass is weak evidence.
    pub weak: Option<String>,
}

/// Verifies every DKIM-Signature of `raw`. `message_date` (seconds since the epoch, from
/// the Date header) is the time `x=` is judged at; without it, `x=` is not judged.
pub fn verify(
    raw: &[u8],
    keys: &dyn KeyLookup,
    message_date: Option<i64>,
) -> Vec<SignatureVerdict> {
    // Most mail is unsigned: find that out before copying the message to CRLF.
    if !has_field(raw, b"dkim-signature:") {
        return Vec::new();
    }
    let message = to_crlf(raw);
    let (headers, body) = split_message(&message);
    let mut verdicts = Vec::new();
    for (index, field) in headers
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("dkim-signature"))
        .enumerate()
    {
        verdicts.push(verify_one(
            Kind::Dkim,
            index,
            field,
            &headers,
            body,
            keys,
            message_date,
        ));
    }
    verdicts
}

/// The result of checking an ARC chain (RFC 8617).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcResult {
    /// How many ARC sets the message carries.
    pub sets: u32,
    /// `Pass` when every seal and the newest message signature verify and the chain is
    /// well formed; otherwise what broke first.
    pub verdict: Verdict,
    /// Each set's sealer, oldest first: (instance, domain, selector, the seal's verdict).
    pub seals: Vec<(u32, String, String, Verdict)>,
    /// The newest ARC-Message-Signature's verdict.
    pub message_signature: Option<SignatureVerdict>,
}

/// Checks the ARC chain of `raw`, if it has ARC headers.
pub fn verify_arc(
    raw: &[u8],
    keys: &dyn KeyLookup,
    message_date: Option<i64>,
) -> Option<ArcResult> {
    if !has_field(raw, b"arc-") {
        return None;
    }
    let message = to_crlf(raw);
    let (headers, body) = split_message(&message);
    let named = |name: &str| -> Vec<&Field<'_>> {
        headers
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .collect()
    };
    let (seals, sigs, results) = (
        named("arc-seal"),
        named("arc-message-signature"),
        named("arc-authentication-results"),
    );
    if seals.is_empty() && sigs.is_empty() && results.is_empty() {
        return None;
    }
    let fail = |why: String| Verdict::Fail(Failure::Malformed(why));
    let n = seals.len() as u32;
    let mut result = ArcResult {
        sets: n,
        verdict: Verdict::Pass,
        seals: Vec::new(),
        message_signature: None,
    };
    // One of each header per instance, instances 1..=n.
    let mut sets: Vec<(&Field<'_>, &Field<'_>, &Field<'_>)> = Vec::new();
    for i in 1..=n {
        match (
            pick_instance(&results, i),
            pick_instance(&sigs, i),
            pick_instance(&seals, i),
        ) {
            (Some(aar), Some(ams), Some(seal)) => sets.push((aar, ams, seal)),
            _ => {
                result.verdict = fail(format!("ARC set {i} is missing a header or has two"));
                return Some(result);
            }
        }
    }
    if n == 0 || sigs.len() as u32 != n || results.len() as u32 != n {
        result.verdict = fail("ARC headers do not form complete, numbered sets".into());
        return Some(result);
    }
    // The newest message signature must verify; older ones may have been broken by
    // later, sealed changes.
    let newest = verify_one(
        Kind::ArcMessage,
        (n - 1) as usize,
        sets[n as usize - 1].1,
        &headers,
        body,
        keys,
        message_date,
    );
    let newest_pass = newest.verdict == Verdict::Pass;
    result.message_signature = Some(newest.clone());
    for i in 1..=n {
        let seal = sets[i as usize - 1].2;
        let (domain, selector, verdict) = verify_seal(i, &sets[..i as usize], keys);
        let tags = tag_list(&field_value(seal)).unwrap_or_default();
        let cv = tags
            .iter()
            .find(|(t, _)| t == "cv")
            .map(|(_, v)| strip_ws(v).to_ascii_lowercase())
            .unwrap_or_default();
        let expected = if i == 1 { "none" } else { "pass" };
        if result.verdict == Verdict::Pass {
            if cv != expected {
                result.verdict = fail(format!("ARC set {i} says cv={cv}, expected cv={expected}"));
            } else if verdict != Verdict::Pass {
                result.verdict = verdict.clone();
            }
        }
        result.seals.push((i, domain, selector, verdict));
    }
    if result.verdict == Verdict::Pass && !newest_pass {
        result.verdict = newest.verdict;
    }
    Some(result)
}

/// The `i=` of an ARC header. ARC-Authentication-Results is not a tag list (`i=1;
/// mx.google.com; dkim=pass …`): its instance is the leading `i=N;`.
fn arc_instance(f: &Field<'_>) -> Option<u32> {
    let value = field_value(f);
    if let Ok(tags) = tag_list(&value)
        && let Some((_, v)) = tags.iter().find(|(n, _)| n == "i")
    {
        return strip_ws(v).parse().ok();
    }
    let first = value.split(';').next()?;
    strip_ws(first).strip_prefix("i=")?.parse().ok()
}

/// The one header of `list` with instance `i`; `None` if there is none or several.
fn pick_instance<'a, 'b>(list: &[&'a Field<'b>], i: u32) -> Option<&'a Field<'b>> {
    let mut found = list.iter().filter(|f| arc_instance(f) == Some(i));
    match (found.next(), found.next()) {
        (Some(f), None) => Some(*f),
        _ => None,
    }
}

/// Verifies the seal of set `i` over the ARC headers of sets 1..=i (RFC 8617 §5.1.1).
fn verify_seal(
    i: u32,
    sets: &[(&Field<'_>, &Field<'_>, &Field<'_>)],
    keys: &dyn KeyLookup,
) -> (String, String, Verdict) {
    let seal = sets[i as usize - 1].2;
    let bad = |why: String| Verdict::Fail(Failure::Malformed(why));
    let tags = match tag_list(&field_value(seal)) {
        Ok(t) => t,
        Err(why) => return (String::new(), String::new(), bad(why)),
    };
    let tag = |name: &str| {
        tags.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| strip_ws(v))
    };
    let (domain, selector) = (tag("d").unwrap_or_default(), tag("s").unwrap_or_default());
    let algorithm = tag("a").unwrap_or_default().to_ascii_lowercase();
    let hash = match algorithm.as_str() {
        "rsa-sha256" | "ed25519-sha256" => Hash::Sha256,
        other => {
            return (
                domain,
                selector,
                Verdict::Unsupported(format!("seal algorithm a={other}")),
            );
        }
    };
    if !valid_domain(&domain) || !valid_domain(&selector) {
        return (
            domain,
            selector,
            bad("seal d= or s= is not a domain name".into()),
        );
    }
    let Some(record) = keys.lookup(&format!("{selector}._domainkey.{domain}")) else {
        return (domain, selector, Verdict::KeyNotFound);
    };
    let key = match PublicKey::parse(&record.txt, &algorithm, hash) {
        Ok(k) => k,
        Err(KeyProblem::Invalid(why)) => return (domain, selector, Verdict::KeyInvalid(why)),
        Err(KeyProblem::Unsupported(why)) => return (domain, selector, Verdict::Unsupported(why)),
    };
    let mut data = Vec::new();
    for (j, (aar, ams, s)) in sets.iter().enumerate() {
        data.extend_from_slice(&Canon::Relaxed.header(aar.raw));
        data.extend_from_slice(&Canon::Relaxed.header(ams.raw));
        if j + 1 < sets.len() {
            data.extend_from_slice(&Canon::Relaxed.header(s.raw));
        }
    }
    let own = Canon::Relaxed.header(&without_b(seal.raw));
    data.extend_from_slice(own.strip_suffix(b"\r\n").unwrap_or(&own));
    let signature = match STANDARD.decode(tag("b").unwrap_or_default()) {
        Ok(b) => b,
        Err(_) => return (domain, selector, bad("seal b= is not base64".into())),
    };
    let verdict = if key.verify(hash, &data, &signature) {
        Verdict::Pass
    } else {
        Verdict::Fail(Failure::SignatureMismatch)
    };
    (domain, selector, verdict)
}

/// Whether a header line of `raw`'s header section starts with `prefix` (lower case,
/// compared without regard to case).
fn has_field(raw: &[u8], prefix: &[u8]) -> bool {
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        if line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix) {
            return true;
        }
    }
    false
}

/// Bare LF line ends become CRLF, as they were on the wire when the mail was signed.
fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

struct Field<'a> {
    name: &'a str,
    /// The whole field, name to final CRLF, as in the message.
    raw: &'a [u8],
}

fn split_message(message: &[u8]) -> (Vec<Field<'_>>, &[u8]) {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    let mut start: Option<usize> = None;
    let body_start;
    loop {
        let line_end = match message[pos..].windows(2).position(|w| w == b"\r\n") {
            Some(i) => pos + i + 2,
            None => message.len(),
        };
        let line = &message[pos..line_end];
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            if let Some(s) = start.take() {
                push_field(&mut fields, &message[s..pos]);
            }
            if line == b"\r\n" || line.is_empty() {
                body_start = line_end;
                break;
            }
            start = Some(pos);
        }
        pos = line_end;
        if pos >= message.len() {
            if let Some(s) = start.take() {
                push_field(&mut fields, &message[s..pos]);
            }
            body_start = message.len();
            break;
        }
    }
    (fields, &message[body_start.min(message.len())..])
}

fn push_field<'a>(fields: &mut Vec<Field<'a>>, raw: &'a [u8]) {
    let Some(colon) = raw.iter().position(|&b| b == b':') else {
        return;
    };
    let Ok(name) = std::str::from_utf8(&raw[..colon]) else {
        return;
    };
    fields.push(Field {
        name: name.trim_end(),
        raw,
    });
}

/// `tag=value` pairs of a tag list (RFC 6376 §3.2), whitespace removed from around names
/// and values; folding whitespace inside values is kept for the caller to strip.
fn tag_list(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in value.split(';') {
        if part.trim().is_empty() {
            continue;
        }
        let Some((name, val)) = part.split_once('=') else {
            return Err(format!("tag without '=': {:?}", part.trim()));
        };
        let name = name.trim().to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad tag name {name:?}"));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("tag {name}= appears twice"));
        }
        out.push((name, val.trim().to_string()));
    }
    Ok(out)
}

fn strip_ws(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn field_value(field: &Field<'_>) -> String {
    let raw = &field.raw[field
        .raw
        .iter()
        .position(|&b| b == b':')
        .map_or(0, |i| i + 1)..];
    String::from_utf8_lossy(raw).into_owned()
}

/// A domain name as `d=` must be: labels of letters, digits and hyphens.
fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// The two kinds of message signature: their tags differ a little (RFC 8617 §4.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dkim,
    /// ARC-Message-Signature: `i=` is the instance, there is no `v=`, and `h=` need not
    /// hold From.
    ArcMessage,
}

fn verify_one(
    kind: Kind,
    index: usize,
    field: &Field<'_>,
    headers: &[Field<'_>],
    body: &[u8],
    keys: &dyn KeyLookup,
    message_date: Option<i64>,
) -> SignatureVerdict {
    let mut v = SignatureVerdict {
        index,
        domain: String::new(),
        selector: String::new(),
        algorithm: String::new(),
        verdict: Verdict::Pass,
        key_bits: None,
        key: None,
        body_length_limit: None,
        body_length: None,
        signed_headers: Vec::new(),
        timestamp: None,
        expires: None,
        weak: None,
    };
    let malformed =
        |v: &mut SignatureVerdict, why: String| v.verdict = Verdict::Fail(Failure::Malformed(why));
    let value = field_value(field);
    let tags = match tag_list(&value) {
        Ok(t) => t,
        Err(why) => {
            malformed(&mut v, why);
            return v;
        }
    };
    let tag = |name: &str| {
        tags.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    v.domain = tag("d").map(strip_ws).unwrap_or_default();
    v.selector = tag("s").map(strip_ws).unwrap_or_default();
    v.algorithm = tag("a")
        .map(strip_ws)
        .unwrap_or_default()
        .to_ascii_lowercase();
    v.signed_headers = tag("h")
        .map(|h| {
            strip_ws(h)
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let required: &[&str] = match kind {
        Kind::Dkim => &["v", "a", "b", "bh", "d", "h", "s"],
        Kind::ArcMessage => &["i", "a", "b", "bh", "d", "h", "s"],
    };
    for required in required {
        if tag(required).is_none() {
            malformed(&mut v, format!("required tag {required}= is missing"));
            return v;
        }
    }
    if kind == Kind::Dkim && tag("v").map(strip_ws).as_deref() != Some("1") {
        malformed(
            &mut v,
            format!("v={} (only v=1 exists)", tag("v").unwrap_or_default()),
        );
        return v;
    }
    if !valid_domain(&v.domain) {
        let why = format!("d={:?} is not a domain name", v.domain);
        malformed(&mut v, why);
        return v;
    }
    if !valid_domain(&v.selector) {
        let why = format!("s={:?} is not a valid selector", v.selector);
        malformed(&mut v, why);
        return v;
    }
    if kind == Kind::Dkim
        && !v
            .signed_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("from"))
    {
        malformed(&mut v, "h= does not include From".into());
        return v;
    }
    if let Some(i) = tag("i").map(strip_ws).filter(|_| kind == Kind::Dkim) {
        let idomain = i
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let d = v.domain.to_ascii_lowercase();
        if !(idomain == d || idomain.ends_with(&format!(".{d}"))) {
            let why = format!("i={i} is not in d={}", v.domain);
            malformed(&mut v, why);
            return v;
        }
    }
    let number = |name: &str| -> Result<Option<i64>, String> {
        match tag(name).map(strip_ws) {
            None => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{name}={s} is not a number")),
        }
    };
    let (t, x, l) = match (number("t"), number("x"), number("l")) {
        (Ok(t), Ok(x), Ok(l)) => (t, x, l),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            malformed(&mut v, e);
            return v;
        }
    };
    v.timestamp = t;
    v.expires = x;
    v.body_length_limit = l.map(|l| l.max(0) as u64);
    if let (Some(t), Some(x)) = (t, x)
        && x < t
    {
        malformed(&mut v, format!("x={x} is before t={t}"));
        return v;
    }
    let (header_canon, body_canon) = match tag("c").map(strip_ws) {
        None => (Canon::Simple, Canon::Simple),
        Some(c) => {
            let mut parts = c.splitn(2, '/');
            let h = Canon::parse(parts.next().unwrap_or_default());
            let b = parts.next().map_or(Some(Canon::Simple), Canon::parse);
            match (h, b) {
                (Some(h), Some(b)) => (h, b),
                _ => {
                    malformed(&mut v, format!("c={c} is not a canonicalisation"));
                    return v;
                }
            }
        }
    };
    let hash = match v.algorithm.as_str() {
        "rsa-sha256" | "ed25519-sha256" => Hash::Sha256,
        "rsa-sha1" => Hash::Sha1,
        other => {
            v.verdict = Verdict::Unsupported(format!("signature algorithm a={other}"));
            return v;
        }
    };
    if hash == Hash::Sha1 {
        v.weak = Some("rsa-sha1: SHA-1 is broken for signatures; a pass is weak evidence".into());
    }
    let name = format!("{}._domainkey.{}", v.selector, v.domain).to_ascii_lowercase();
    let Some(record) = keys.lookup(&name) else {
        v.verdict = Verdict::KeyNotFound;
        return v;
    };
    v.key = Some(record.clone());
    let key = match PublicKey::parse(&record.txt, &v.algorithm, hash) {
        Ok(k) => k,
        Err(KeyProblem::Invalid(why)) => {
            v.verdict = Verdict::KeyInvalid(why);
            return v;
        }
        Err(KeyProblem::Unsupported(why)) => {
            v.verdict = Verdict::Unsupported(why);
            return v;
        }
    };
    v.key_bits = Some(key.bits());
    if let PublicKey::Rsa(k) = &key
        && k.size() * 8 < 1024
    {
        v.weak = Some(format!("{}-bit RSA key: too short to trust", k.size() * 8));
    }
    if let (Some(x), Some(date)) = (x, message_date)
        && date > x
    {
        v.verdict = Verdict::Fail(Failure::Expired { expires: x, date });
        return v;
    }
    // Body.
    let canon_body = body_canon.body(body);
    v.body_length = Some(canon_body.len() as u64);
    let covered = match v.body_length_limit {
        Some(l) if (l as usize) > canon_body.len() => {
            malformed(
                &mut v,
                format!("l={l} is longer than the body ({} bytes)", canon_body.len()),
            );
            return v;
        }
        Some(l) => &canon_body[..l as usize],
        None => &canon_body[..],
    };
    let bh = match STANDARD.decode(strip_ws(tag("bh").unwrap_or_default())) {
        Ok(b) => b,
        Err(_) => {
            malformed(&mut v, "bh= is not base64".into());
            return v;
        }
    };
    if hash.digest(covered) != bh {
        v.verdict = Verdict::Fail(Failure::BodyHashMismatch);
        return v;
    }
    // Headers: each name in h= takes the last not yet used instance, bottom up.
    let mut data = Vec::new();
    let mut used = vec![false; headers.len()];
    for h in &v.signed_headers {
        if let Some(i) = (0..headers.len())
            .rev()
            .find(|&i| !used[i] && headers[i].name.eq_ignore_ascii_case(h))
        {
            used[i] = true;
            data.extend_from_slice(&header_canon.header(headers[i].raw));
        }
    }
    // The signature's own header, with b= emptied and no final CRLF.
    let own = header_canon.header(&without_b(field.raw));
    data.extend_from_slice(own.strip_suffix(b"\r\n").unwrap_or(&own));
    let signature = match STANDARD.decode(strip_ws(tag("b").unwrap_or_default())) {
        Ok(b) => b,
        Err(_) => {
            malformed(&mut v, "b= is not base64".into());
            return v;
        }
    };
    if !key.verify(hash, &data, &signature) {
        v.verdict = Verdict::Fail(Failure::SignatureMismatch);
    }
    v
}

/// The field with the value of its `b=` tag removed (and `bh=` untouched).
fn without_b(raw: &[u8]) -> Vec<u8> {
    let colon = raw.iter().position(|&b| b == b':').map_or(0, |i| i + 1);
    let mut out = raw[..colon].to_vec();
    let value = &raw[colon..];
    let mut start = 0;
    // Walk the tag list on bytes, so folding and odd bytes are kept exactly.
    while start <= value.len() {
        let end = value[start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(value.len(), |i| start + i);
        let part = &value[start..end];
        let name_end = part.iter().position(|&b| b == b'=').unwrap_or(part.len());
        let name: Vec<u8> = part[..name_end]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if name == b"b" && name_end < part.len() {
            out.extend_from_slice(&part[..=name_end]);
            // Keep the line end if the tag list ends here, so the field stays well formed.
            if end == value.len() && part.ends_with(b"\r\n") {
                out.extend_from_slice(b"\r\n");
            }
        } else {
            out.extend_from_slice(part);
        }
        if end < value.len() {
            out.push(b';');
        }
        start = end + 1;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Canon {
    Simple,
    Relaxed,
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl Canon {
    fn parse(s: &str) -> Option<Canon> {
        match s.to_ascii_lowercase().as_str() {
            "simple" => Some(Canon::Simple),
            "relaxed" => Some(Canon::Relaxed),
            _ => None,
        }
    }

    fn header(self, raw: &[u8]) -> Vec<u8> {
        match self {
            Canon::Simple => raw.to_vec(),
            Canon::Relaxed => {
                let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
                let mut out: Vec<u8> = raw[..colon]
                    .iter()
                    .copied()
                    .filter(|&b| !is_wsp(b))
                    .map(|b| b.to_ascii_lowercase())
                    .collect();
                out.push(b':');
                // Unfold, then squeeze runs of WSP, then trim both ends.
                let value: Vec<u8> = raw
                    .get(colon + 1..)
                    .unwrap_or_default()
                    .iter()
                    .copied()
                    .filter(|&b| b != b'\r' && b != b'\n')
                    .collect();
                let mut squeezed = Vec::with_capacity(value.len());
                let mut in_ws = false;
                for b in value {
                    if is_wsp(b) {
                        in_ws = true;
                    } else {
                        if in_ws && !squeezed.is_empty() {
                            squeezed.push(b' ');
                        }
                        in_ws = false;
                        squeezed.push(b);
                    }
                }
                out.extend_from_slice(&squeezed);
                out.extend_from_slice(b"\r\n");
                out
            }
        }
    }

    fn body(self, body: &[u8]) -> Vec<u8> {
        let mut out = match self {
            Canon::Simple => body.to_vec(),
            Canon::Relaxed => {
                let mut out = Vec::with_capacity(body.len());
                for line in body.split_inclusive(|&b| b == b'\n') {
                    let content = line.strip_suffix(b"\r\n").unwrap_or(line);
                    let has_end = content.len() != line.len();
                    let mut in_ws = false;
                    let mut piece = Vec::with_capacity(content.len());
                    for &b in content {
                        if is_wsp(b) {
                            in_ws = true;
                        } else {
                            if in_ws {
                                piece.push(b' ');
                            }
                            in_ws = false;
                            piece.push(b);
                        }
                    }
                    out.extend_from_slice(&piece);
                    if has_end {
                        out.extend_from_slice(b"\r\n");
                    }
                }
                out
            }
        };
        // Trailing empty lines go; a non-empty body ends with exactly one CRLF.
        while out.ends_with(b"\r\n\r\n") {
            out.truncate(out.len() - 2);
        }
        if out == b"\r\n" && self == Canon::Relaxed {
            out.clear();
        }
        if !out.is_empty() && !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        if out.is_empty() && self == Canon::Simple {
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha1,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha1 => Sha1::digest(data).to_vec(),
        }
    }
}

enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

enum KeyProblem {
    Invalid(String),
    Unsupported(String),
}

impl PublicKey {
    fn parse(txt: &str, algorithm: &str, hash: Hash) -> Result<PublicKey, KeyProblem> {
        let tags = tag_list(txt).map_err(KeyProblem::Invalid)?;
        let tag = |name: &str| {
            tags.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| strip_ws(v))
        };
        if let Some(v) = tag("v")
            && v != "DKIM1"
        {
            return Err(KeyProblem::Invalid(format!("v={v} (expected DKIM1)")));
        }
        if let Some(h) = tag("h") {
            let wanted = if hash == Hash::Sha1 { "sha1" } else { "sha256" };
            if !h.split(':').any(|x| x.eq_ignore_ascii_case(wanted)) {
                return Err(KeyProblem::Invalid(format!(
                    "the key allows h={h}, not {wanted}"
                )));
            }
        }
        let Some(p) = tag("p") else {
            return Err(KeyProblem::Invalid("no p= tag".into()));
        };
        if p.is_empty() {
            return Err(KeyProblem::Invalid(
                "the key has been revoked (empty p=)".into(),
            ));
        }
        let der = STANDARD
            .decode(&p)
            .map_err(|_| KeyProblem::Invalid("p= is not base64".into()))?;
        let k = tag("k")
            .unwrap_or_else(|| "rsa".into())
            .to_ascii_lowercase();
        let want = if algorithm.starts_with("ed25519") {
            "ed25519"
        } else {
            "rsa"
        };
        if k != want {
            return Err(KeyProblem::Invalid(format!(
                "the key is k={k}, the signature a={algorithm}"
            )));
        }
        match k.as_str() {
            "rsa" => rsa::RsaPublicKey::from_public_key_der(&der)
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(&der))
                .map(PublicKey::Rsa)
                .map_err(|e| KeyProblem::Invalid(format!("not an RSA public key: {e}"))),
            "ed25519" => {
                let bytes: [u8; 32] = der
                    .try_into()
                    .map_err(|_| KeyProblem::Invalid("an Ed25519 key is 32 bytes".into()))?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map(PublicKey::Ed25519)
                    .map_err(|e| KeyProblem::Invalid(format!("not an Ed25519 key: {e}")))
            }
            other => Err(KeyProblem::Unsupported(format!("key type k={other}"))),
        }
    }

    fn bits(&self) -> u32 {
        match self {
            PublicKey::Rsa(k) => (k.size() * 8) as u32,
            PublicKey::Ed25519(_) => 256,
        }
    }

    fn verify(&self, hash: Hash, data: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Rsa(k) => {
                let scheme = match hash {
                    Hash::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
                    Hash::Sha1 => rsa::Pkcs1v15Sign::new::<Sha1>(),
                };
                k.verify(scheme, &hash.digest(data), signature).is_ok()
            }
            // RFC 8463: Ed25519 signs the SHA-256 hash of the canonicalised headers.
            PublicKey::Ed25519(k) => match ed25519_dalek::Signature::from_slice(signature) {
                Ok(sig) => k.verify_strict(&Sha256::digest(data), &sig).is_ok(),
                Err(_) => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_canonicalisation_follows_rfc_6376_examples() {
        // RFC 6376 §3.4.5.
        let h = Canon::Relaxed.header(b"A: X\r\n");
        assert_eq!(h, b"a:X\r\n");
        let h = Canon::Relaxed.header(b"B : Y\t\r\n\tZ  \r\n");
        assert_eq!(h, b"b:Y Z\r\n");
        assert_eq!(
            Canon::Relaxed.body(b" C \r\nD \t E\r\n\r\n\r\n"),
            b" C\r\nD E\r\n"
        );
        assert_eq!(
            Canon::Simple.body(b" C \r\nD \t E\r\n\r\n\r\n"),
            b" C \r\nD \t E\r\n"
        );
        assert_eq!(Canon::Simple.body(b""), b"\r\n");
        assert_eq!(Canon::Relaxed.body(b""), b"");
    }

    #[test]
    fn header_presence_looks_at_the_header_section_only() {
        assert!(has_field(
            b"From: a\r\ndkim-SIGNATURE: v=1\r\n\r\nbody",
            b"dkim-signature:"
        ));
        assert!(!has_field(
            b"From: a\n\nDKIM-Signature: in the body\n",
            b"dkim-signature:"
        ));
        assert!(!has_field(
            b"From: a\n X-DKIM-Signature: folded\n\n",
            b"dkim-signature:"
        ));
    }

    #[test]
    fn b_tag_value_is_removed_but_bh_kept() {
        let out = without_b(b"DKIM-Signature: v=1; bh=abc=; b=xyz\r\n  123;\r\n d=x\r\n");
        assert_eq!(out, b"DKIM-Signature: v=1; bh=abc=; b=;\r\n d=x\r\n");
        let out = without_b(b"DKIM-Signature: v=1; d=x; b=xyz\r\n  123\r\n");
        assert_eq!(out, b"DKIM-Signature: v=1; d=x; b=\r\n");
    }

    #[test]
    fn archive_lines_and_quoted_txt() {
        let (store, bad) = KeyStore::parse_archive(
            "# comment\nsel._domainkey.example.com \"v=DKIM1; k=rsa; \" \"p=AB\"\nbad-line\nx._domainkey.y#corrupted p=\n",
            "keys.txt",
        );
        assert_eq!(store.len(), 1);
        assert_eq!(
            store.lookup("SEL._domainkey.example.com").unwrap().txt,
            "v=DKIM1; k=rsa; p=AB"
        );
        assert_eq!(bad.len(), 2);
    }
}
