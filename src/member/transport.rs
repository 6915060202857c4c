//! The member's transport security, from etcd's TLS flags: the TLS of its `https://` client and
//! peer listeners, and how it dials the other members (TLS to `https://` peer URLs). Built once
//! at start; auto-TLS certificates live under `<data-dir>/fixtures/{client,peer}` as etcd's.

use crate::config::Config;
use crate::io::net::serve::ListenerTls;
use crate::io::net::Dialer;

use super::StartError;

/// The TLS of a member's listeners and dialer.
#[derive(Clone, Default)]
pub struct Transport {
    /// TLS for `https://` client URLs.
    client: ListenerTls,
    /// TLS for `https://` peer URLs.
    peer: ListenerTls,
    /// How to reach the other members.
    pub dialer: Dialer,
}

/// The hosts of `urls` (what a self-signed certificate must be valid for).
#[cfg_attr(madsim, allow(dead_code))]
fn hosts(urls: &[String]) -> Vec<String> {
    let mut out: Vec<String> = urls
        .iter()
        .filter_map(|u| {
            let rest = u.split_once("://")?.1.trim_end_matches('/');
            let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
            Some(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

impl Transport {
    /// Builds the member's TLS from `cfg`: certificates read (or generated for auto-TLS) and
    /// checked now, so a bad file fails the start, not the first connection.
    #[cfg(not(madsim))]
    pub fn from_config(cfg: &Config) -> Result<Transport, StartError> {
        use crate::io::tls::rustls::{peer_client_config, ServerTls};
        let fixtures = std::path::Path::new(&cfg.data_dir).join("fixtures");
        let validity = cfg.self_signed_cert_validity;
        let https = |urls: &[String]| urls.iter().any(|u| u.starts_with("https://"));
        let client_hosts = hosts(&cfg.listen_client_urls);
        let peer_hosts = hosts(&cfg.listen_peer_urls);
        let client = if https(&cfg.listen_client_urls) {
            let tls = ServerTls::build(
                &cfg.client_tls,
                &cfg.cipher_suites,
                &fixtures.join("client"),
                &client_hosts,
                validity,
            )
            .map_err(|e| format!("client TLS: {e}"))?;
            Some(tls)
        } else {
            if cfg.client_tls.is_set() {
                tracing::warn!("scheme is HTTP while key and cert files are present; ignoring key and cert files");
            }
            None
        };
        let peer_https =
            https(&cfg.listen_peer_urls) || cfg.initial_cluster.iter().any(|m| https(&m.peer_urls));
        let (peer, dialer) = if peer_https || cfg.peer_tls.is_set() {
            let listener = if https(&cfg.listen_peer_urls) {
                Some(
                    ServerTls::build(
                        &cfg.peer_tls,
                        &cfg.cipher_suites,
                        &fixtures.join("peer"),
                        &peer_hosts,
                        validity,
                    )
                    .map_err(|e| format!("peer TLS: {e}"))?,
                )
            } else {
                None
            };
            let dial = peer_client_config(
                &cfg.peer_tls,
                &cfg.cipher_suites,
                &fixtures.join("peer"),
                &peer_hosts,
                validity,
            )
            .map_err(|e| format!("peer TLS: {e}"))?;
            (listener, Dialer::with_tls(Some(dial)))
        } else {
            (None, Dialer::default())
        };
        Ok(Transport {
            client,
            peer,
            dialer,
        })
    }

    /// The simulator does not simulate transport security: plain connections everywhere.
    #[cfg(madsim)]
    pub fn from_config(_cfg: &Config) -> Result<Transport, StartError> {
        Ok(Transport::default())
    }

    /// The TLS of the client listener at `url` (none for `http://`).
    pub fn client_listener(&self, url: &str) -> ListenerTls {
        if url.starts_with("https://") {
            self.client.clone()
        } else {
            None
        }
    }

    /// The TLS of the peer listener at `url` (none for `http://`).
    pub fn peer_listener(&self, url: &str) -> ListenerTls {
        if url.starts_with("https://") {
            self.peer.clone()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        let urls = vec![
            "https://127.0.0.1:2379".to_string(),
            "http://localhost:2379/".to_string(),
            "https://[::1]:2379".to_string(),
            "https://127.0.0.1:22379".to_string(),
        ];
        assert_eq!(hosts(&urls), vec!["127.0.0.1", "::1", "localhost"]);
    }
}
