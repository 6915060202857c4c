//! rustls from etcd's TLS flags: server configurations for the client and peer listeners,
//! the client configuration members dial each other with, certificates, keys and revocation
//! lists read from PEM files, and self-signed certificates for `--auto-tls`/`--peer-auto-tls`.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::CertNames;
use crate::config::TlsInfo;
use crate::io::clock;

/// The crypto provider with the TLS 1.2 suites `--cipher-suites` names (every TLS 1.3 suite
/// stays: Go's TLS 1.3 suites are not configurable either).
fn provider(suites: &[String]) -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    if !suites.is_empty() {
        p.cipher_suites.retain(|s| {
            if s.version() == &rustls::version::TLS13 {
                return true;
            }
            let name = format!("{:?}", s.suite());
            suites
                .iter()
                .any(|want| *want == name || format!("{want}_SHA256") == name)
        });
    }
    Arc::new(p)
}

fn read(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {path}: {e}"))
}

/// The certificates in a PEM file.
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path, "certificate file")?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(&pem[..]))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot parse the certificates in {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {path}"));
    }
    Ok(certs)
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(path, "key file")?;
    rustls_pemfile::private_key(&mut BufReader::new(&pem[..]))
        .map_err(|e| format!("cannot parse the key in {path}: {e}"))?
        .ok_or_else(|| format!("no private key in {path}"))
}

fn load_crls(path: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let pem = read(path, "CRL file")?;
    rustls_pemfile::crls(&mut BufReader::new(&pem[..]))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot parse the CRLs in {path}: {e}"))
}

fn roots(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots
            .add(c)
            .map_err(|e| format!("bad CA certificate in {path}: {e}"))?;
    }
    Ok(roots)
}

/// Cert and key files for `info`: as given, or self-signed ones under `auto_dir` for auto-TLS.
fn cert_and_key(
    info: &TlsInfo,
    auto_dir: &Path,
    hosts: &[String],
    validity_years: u32,
) -> Result<(String, String), String> {
    if !info.cert_file.is_empty() {
        return Ok((info.cert_file.clone(), info.key_file.clone()));
    }
    let (cert, key) = self_signed(auto_dir, hosts, validity_years)?;
    Ok((cert.display().to_string(), key.display().to_string()))
}

/// A listener's TLS: its rustls configuration and the rules checked after each handshake.
#[derive(Clone)]
pub struct ServerTls {
    /// The rustls configuration.
    pub config: Arc<ServerConfig>,
    /// The flags it was built from (for [`super::admit`]).
    pub info: TlsInfo,
}

impl ServerTls {
    /// Builds the TLS of a listener: certificates from `info` (or self-signed under `auto_dir`
    /// for `hosts`), client certificates required and verified against the trusted CA (and its
    /// CRL) with `client_cert_auth`; ALPN `h2` (gRPC).
    pub fn build(
        info: &TlsInfo,
        suites: &[String],
        auto_dir: &Path,
        hosts: &[String],
        validity_years: u32,
    ) -> Result<ServerTls, String> {
        let provider = provider(suites);
        let (cert, key) = cert_and_key(info, auto_dir, hosts, validity_years)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if info.client_cert_auth {
            if info.trusted_ca_file.is_empty() {
                return Err("client certificate authentication needs a trusted CA file".into());
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(&info.trusted_ca_file)?),
                provider,
            )
            .with_crls(load_crls(&info.crl_file)?)
            .build()
            .map_err(|e| format!("client certificate verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(load_certs(&cert)?, load_key(&key)?)
            .map_err(|e| format!("bad certificate or key ({cert}, {key}): {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            info: info.clone(),
        })
    }
}

/// Accepts any server certificate: members with `--peer-auto-tls` and no trusted CA dial each
/// other's self-signed certificates, as etcd does (its peer auto-TLS skips verification).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS members dial each other with: the peer certificate as client identity, server
/// certificates verified against the peer trusted CA (or, with peer auto-TLS and no CA, not
/// verified).
pub fn peer_client_config(
    info: &TlsInfo,
    suites: &[String],
    auto_dir: &Path,
    hosts: &[String],
    validity_years: u32,
) -> Result<Arc<ClientConfig>, String> {
    let provider = provider(suites);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if !info.trusted_ca_file.is_empty() {
        builder.with_root_certificates(roots(&info.trusted_ca_file)?)
    } else if info.auto_tls {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        return Err("peer TLS needs --peer-trusted-ca-file (or --peer-auto-tls)".into());
    };
    let (cert, key) = cert_and_key(info, auto_dir, hosts, validity_years)?;
    let mut config = builder
        .with_client_auth_cert(load_certs(&cert)?, load_key(&key)?)
        .map_err(|e| format!("bad peer certificate or key ({cert}, {key}): {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The names in a certificate (for [`super::admit`] and for authentication by common name).
pub fn cert_names(der: &CertificateDer<'_>) -> CertNames {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return CertNames::default();
    };
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(String::from);
    let mut names = CertNames {
        common_name,
        ..Default::default()
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.dns.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names
                        .ips
                        .push(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).expect("4")).into()),
                    16 => names.ips.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).expect("16")).into(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    names
}

/// A self-signed certificate and key in `dir` (`cert.pem`, `key.pem`) for `hosts`, valid for
/// `validity_years` years: the ones already there, else new ones (ECDSA P-256), as etcd's
/// auto-TLS keeps them under the data dir.
pub fn self_signed(
    dir: &Path,
    hosts: &[String],
    validity_years: u32,
) -> Result<(PathBuf, PathBuf), String> {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut sans: Vec<String> = hosts.to_vec();
    if sans.is_empty() {
        sans.push("localhost".into());
    }
    let mut params =
        rcgen::CertificateParams::new(sans).map_err(|e| format!("self-signed certificate: {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "etcd");
    let now_secs = (clock::unix_nanos() / 1_000_000_000) as i64;
    let now = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(now_secs.max(0) as u64);
    params.not_before = now;
    params.not_after = now + Duration::from_secs(u64::from(validity_years.max(1)) * 365 * 86_400);
    let key = rcgen::KeyPair::generate().map_err(|e| format!("self-signed key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    std::fs::write(&cert_path, cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate");
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_carry_the_hosts_and_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let (cert, key) = self_signed(dir.path(), &hosts, 1).unwrap();
        let der = load_certs(cert.to_str().unwrap()).unwrap().remove(0);
        let names = cert_names(&der);
        assert!(names.valid_for("127.0.0.1") && names.valid_for("localhost"));
        let first = std::fs::read(&cert).unwrap();
        self_signed(dir.path(), &hosts, 1).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first, "reused");
        let info = TlsInfo {
            cert_file: cert.display().to_string(),
            key_file: key.display().to_string(),
            ..Default::default()
        };
        assert!(ServerTls::build(&info, &[], dir.path(), &hosts, 1).is_ok());
    }

    #[test]
    fn cipher_suites_restrict_tls12_only() {
        let p = provider(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()]);
        let tls12: Vec<String> = p
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(tls12, vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        assert!(p
            .cipher_suites
            .iter()
            .any(|s| s.version() == &rustls::version::TLS13));
    }
}
