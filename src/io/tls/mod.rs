//! TLS as etcd's flags ask for it: the rules that need no TLS library (which cipher suite names
//! are accepted, which certificates a listener lets in) here, testable anywhere; the rustls
//! configuration, certificate loading and generation in [`rustls`](self::rustls) (production
//! build only: the simulator does not simulate transport security).

#[cfg(not(madsim))]
pub mod rustls;

use std::net::IpAddr;

use crate::config::TlsInfo;

/// The TLS 1.2 cipher suites detcd can offer, by the names etcd's `--cipher-suites` takes
/// (Go's names). TLS 1.3 suites are not configurable, as in etcd.
pub const CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// Suites etcd (Go) accepts that detcd cannot offer: CBC and static-RSA suites, which rustls
/// does not implement.
const UNSUPPORTED_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// Checks `--cipher-suites`: every name must be a suite detcd offers. An unknown name gets
/// etcd's error; a suite etcd knows but rustls lacks is refused rather than silently dropped.
pub fn check_cipher_suites(names: &[String]) -> Result<(), String> {
    for n in names {
        if CIPHER_SUITES.contains(&n.as_str()) {
            continue;
        }
        if UNSUPPORTED_SUITES.contains(&n.as_str()) {
            return Err(format!(
                "cipher suite {n} is not supported by detcd (its TLS library offers AEAD suites \
                 only: {})",
                CIPHER_SUITES.join(", ")
            ));
        }
        return Err(format!("unexpected TLS cipher suite {n:?}"));
    }
    Ok(())
}

/// What a listener learned of a verified certificate that connected to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    /// The subject's common name.
    pub common_name: Option<String>,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// IP subject alternative names.
    pub ips: Vec<IpAddr>,
}

impl CertNames {
    /// Whether the certificate is valid for `host` (a DNS name, `*.` wildcards one label deep,
    /// or an IP address).
    pub fn valid_for(&self, host: &str) -> bool {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return self.ips.contains(&ip);
        }
        let host = host.to_ascii_lowercase();
        self.dns.iter().any(|d| {
            let d = d.to_ascii_lowercase();
            match d.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
                None => d == host,
            }
        })
    }
}

/// Whether a verified certificate may connect to a listener with `info`'s rules (etcd's
/// `--peer-cert-allowed-cn`, `--peer-cert-allowed-hostname`, `--client-cert-allowed-hostname`),
/// and, on a peer listener, whether it names the address it connects from (etcd checks the
/// client certificate's SANs against the remote IP unless
/// `--experimental-peer-skip-client-san-verification`).
pub fn admit(
    cert: &CertNames,
    remote: Option<IpAddr>,
    info: &TlsInfo,
    peer: bool,
) -> Result<(), String> {
    if !info.allowed_cn.is_empty() && cert.common_name.as_deref() != Some(&info.allowed_cn) {
        return Err(format!(
            "CommonName authentication failed (got {:?}, want {:?})",
            cert.common_name.as_deref().unwrap_or(""),
            info.allowed_cn
        ));
    }
    if !info.allowed_hostname.is_empty() && !cert.valid_for(&info.allowed_hostname) {
        return Err(format!(
            "the certificate is not valid for the allowed hostname {:?}",
            info.allowed_hostname
        ));
    }
    if peer && info.client_cert_auth && !info.skip_client_san_verification {
        if let Some(ip) = remote {
            let named = cert.ips.contains(&ip)
                || (ip.is_loopback() && cert.dns.iter().any(|d| d == "localhost"));
            if !named {
                return Err(format!(
                    "the client certificate's SANs do not include the address it connects \
                     from ({ip})"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suite_names_are_etcds() {
        assert!(check_cipher_suites(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()]).is_ok());
        let cbc = check_cipher_suites(&["TLS_RSA_WITH_AES_128_CBC_SHA".into()]).unwrap_err();
        assert!(cbc.contains("not supported"), "{cbc}");
        assert_eq!(
            check_cipher_suites(&["nope".into()]),
            Err("unexpected TLS cipher suite \"nope\"".into())
        );
    }

    fn names(cn: &str, dns: &[&str], ips: &[&str]) -> CertNames {
        CertNames {
            common_name: Some(cn.into()),
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn allowed_cn_and_hostname() {
        let peer = TlsInfo {
            client_cert_auth: true,
            allowed_cn: "etcd-peer".into(),
            ..Default::default()
        };
        let local = Some("127.0.0.1".parse().unwrap());
        assert!(admit(&names("etcd-peer", &[], &["127.0.0.1"]), local, &peer, true).is_ok());
        assert!(admit(&names("intruder", &[], &["127.0.0.1"]), local, &peer, true).is_err());
        let by_host = TlsInfo {
            allowed_hostname: "node1.example.com".into(),
            ..Default::default()
        };
        assert!(admit(&names("x", &["*.example.com"], &[]), None, &by_host, false).is_ok());
        assert!(admit(&names("x", &["example.com"], &[]), None, &by_host, false).is_err());
    }

    #[test]
    fn peer_certificates_must_name_the_address_they_come_from() {
        let info = TlsInfo {
            client_cert_auth: true,
            ..Default::default()
        };
        let from = Some("10.0.0.7".parse().unwrap());
        assert!(admit(&names("p", &[], &["10.0.0.7"]), from, &info, true).is_ok());
        assert!(admit(&names("p", &[], &["10.0.0.8"]), from, &info, true).is_err());
        let skip = TlsInfo {
            skip_client_san_verification: true,
            ..info.clone()
        };
        assert!(admit(&names("p", &[], &["10.0.0.8"]), from, &skip, true).is_ok());
        // Client listeners do not check the remote address.
        assert!(admit(&names("p", &[], &[]), from, &info, false).is_ok());
    }
}
