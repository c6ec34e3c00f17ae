//! Live DNS lookups of DKIM keys (`--dns`), opt-in: a key found today shows what the
//! domain publishes today, which for an old email may be a rotated key. Each record found
//! is kept with the time it was looked up, so later runs and readers see exactly that.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use trove_mail::dkim::{KeyRecord, KeySource};

/// What a round of lookups found.
#[derive(Debug, Default)]
pub struct Lookups {
    pub found: Vec<KeyRecord>,
    /// (name, why): no record, no DKIM record among the TXT records, or a DNS error.
    pub missing: Vec<(String, String)>,
}

/// Looks up the TXT record of each name, a few at a time. `server` replaces the system's
/// resolvers (from /etc/resolv.conf), e.g. a local resolver that keeps a history.
pub fn lookup_keys(names: &[String], server: Option<SocketAddr>) -> anyhow::Result<Lookups> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(lookup_all(names, server))
}

async fn lookup_all(names: &[String], server: Option<SocketAddr>) -> anyhow::Result<Lookups> {
    let mut options = ResolverOpts::default();
    options.timeout = Duration::from_secs(5);
    options.attempts = 2;
    let builder = match server {
        Some(addr) => {
            let group = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
            Resolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], group),
                TokioConnectionProvider::default(),
            )
        }
        None => Resolver::builder_tokio()
            .map_err(|e| anyhow::anyhow!("reading the system's DNS configuration: {e}"))?,
    };
    let mut builder = builder;
    *builder.options_mut() = options;
    let resolver = builder.build();
    let at = trove_workspace::now_rfc3339();
    let mut lookups = Lookups::default();
    for chunk in names.chunks(32) {
        let mut tasks = tokio::task::JoinSet::new();
        for name in chunk {
            let (resolver, name) = (resolver.clone(), name.clone());
            tasks.spawn(async move {
                // Fully qualified, so no search domain is tried.
                let answer = resolver.txt_lookup(format!("{name}.")).await;
                (name, answer)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (name, answer) = done?;
            match answer {
                Ok(records) => {
                    let texts: Vec<String> = records
                        .iter()
                        .map(|txt| {
                            // A long record comes as several strings, read as one.
                            txt.txt_data()
                                .iter()
                                .map(|part| String::from_utf8_lossy(part).into_owned())
                                .collect::<String>()
                        })
                        .collect();
                    match texts.into_iter().find(|t| is_dkim_key(t)) {
                        Some(txt) => lookups.found.push(KeyRecord {
                            name,
                            txt,
                            source: KeySource::Dns { at: at.clone() },
                            private_key_published: false,
                        }),
                        None => lookups
                            .missing
                            .push((name, "TXT records, but none is a DKIM key".into())),
                    }
                }
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                    lookups.missing.push((name, "no such record".into()))
                }
                Err(e) => lookups.missing.push((name, format!("DNS error: {e}"))),
            }
        }
    }
    lookups.found.sort_by(|a, b| a.name.cmp(&b.name));
    lookups.missing.sort();
    Ok(lookups)
}

/// A DKIM key record has a `p=` tag (RFC 6376 §3.6.1); `v=`, when present, is first.
fn is_dkim_key(txt: &str) -> bool {
    let tags: Vec<&str> = txt.split(';').map(str::trim).collect();
    let version_ok = match tags.first() {
        Some(first) if first.starts_with("v=") => first.trim_start_matches("v=").trim() == "DKIM1",
        _ => true,
    };
    version_ok && tags.iter().any(|t| t.starts_with("p="))
}

#[cfg(test)]
mod tests {
    use super::is_dkim_key;

    #[test]
    fn only_dkim_key_records_are_taken() {
        assert!(is_dkim_key("v=DKIM1; k=rsa; p=MIIB"));
        assert!(is_dkim_key("k=rsa; p=MIIB"));
        assert!(!is_dkim_key("v=spf1 include:_spf.google.com ~all"));
        assert!(!is_dkim_key("v=DKIM2; p=MIIB"));
    }
}
