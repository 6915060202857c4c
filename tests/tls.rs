//! TLS as etcd does it, on real processes with certificates made by the test: client TLS with
//! etcdctl's `--cacert`/`--cert`/`--key` and `--insecure-skip-tls-verify`, client certificate
//! authentication (no certificate, another CA, a revoked one, the right one), auto-TLS, http and
//! https listeners at once, a 3-member cluster over https peer URLs, a peer whose certificate has
//! the wrong CN, peer auto-TLS, and a cipher suite mismatch (openssl's client).

// Real processes, real time: the seam rule (clippy.toml) is for the server.
#![allow(clippy::disallowed_methods)]
// TLS is not part of the simulator build (no rcgen there).
#![cfg(not(madsim))]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod pki;

use common::{free_ports, Builder, Kind, Server};
use pki::Pki;

/// etcdctl against `url` with `flags`, on `args`.
fn ctl(url: &str, flags: &[&str], args: &[&str]) -> common::Output {
    let mut full = vec![
        format!("--endpoints={url}"),
        "--dial-timeout=2s".to_string(),
        "--command-timeout=4s".to_string(),
    ];
    full.extend(flags.iter().map(|f| f.to_string()));
    full.extend(args.iter().map(|a| a.to_string()));
    common::run_etcdctl(&full, None)
}

#[test]
fn client_tls_with_etcdctls_ca_and_insecure_skip_verify() {
    let mut pki = Pki::new("client CA");
    let (cert, key) = pki.issue("server", "server");
    let cacert = format!("--cacert={}", pki.ca_file());
    let s = Builder::new(Kind::Detcd)
        .https_clients(&[&cacert])
        .args(["--cert-file", &cert, "--key-file", &key])
        .start();
    assert!(s.etcdctl(&["put", "k", "over-tls"], None).success());
    let url = s.client_url();
    let got = ctl(&url, &[&cacert], &["get", "k", "--print-value-only"]);
    assert_eq!(got.stdout.trim(), "over-tls", "{got:?}");
    let unverified = ctl(&url, &[], &["get", "k"]);
    assert!(
        !unverified.success(),
        "no CA: the server cannot be verified"
    );
    // etcdctl 3.4 skips verification only with transport security explicitly on.
    let skip = ctl(
        &url,
        &["--insecure-transport=false", "--insecure-skip-tls-verify"],
        &["get", "k", "--print-value-only"],
    );
    assert_eq!(skip.stdout.trim(), "over-tls", "{skip:?}");
    // The plain-text client port of another scheme is not served.
    let plain = ctl(&s.endpoint(), &["--insecure-transport=true"], &["get", "k"]);
    assert!(!plain.success());
}

#[test]
fn client_certificates_are_required_verified_and_revocable() {
    let mut pki = Pki::new("client CA");
    let (cert, key) = pki.issue("server", "server");
    let (good, good_key) = pki.issue("client", "alice");
    let (revoked, revoked_key) = pki.issue("revoked", "mallory");
    let revoked_serial = pki.serial;
    let crl = pki.revoke(revoked_serial);
    let mut other = Pki::new("another CA");
    let (foreign, foreign_key) = other.issue("foreign", "eve");
    let ca = pki.ca_file();
    let cacert = format!("--cacert={ca}");
    let (c, k) = (format!("--cert={good}"), format!("--key={good_key}"));
    let s = Builder::new(Kind::Detcd)
        .https_clients(&[&cacert, &c, &k])
        .args([
            "--cert-file",
            &cert,
            "--key-file",
            &key,
            "--client-cert-auth",
        ])
        .args(["--trusted-ca-file", &ca, "--client-crl-file", &crl])
        .start();
    let url = s.client_url();
    assert!(ctl(&url, &[&cacert, &c, &k], &["put", "a", "1"]).success());
    let none = ctl(&url, &[&cacert], &["get", "a"]);
    assert!(!none.success(), "no client certificate: {none:?}");
    let wrong = ctl(
        &url,
        &[
            &cacert,
            &format!("--cert={foreign}"),
            &format!("--key={foreign_key}"),
        ],
        &["get", "a"],
    );
    assert!(!wrong.success(), "a certificate of another CA: {wrong:?}");
    let gone = ctl(
        &url,
        &[
            &cacert,
            &format!("--cert={revoked}"),
            &format!("--key={revoked_key}"),
        ],
        &["get", "a"],
    );
    assert!(!gone.success(), "a revoked certificate: {gone:?}");
}

#[test]
fn auto_tls_generates_a_self_signed_certificate_under_the_data_dir() {
    let s = Builder::new(Kind::Detcd)
        .https_clients(&["--insecure-transport=false", "--insecure-skip-tls-verify"])
        .args(["--auto-tls"])
        .start();
    assert!(s.etcdctl(&["put", "auto", "tls"], None).success());
    assert!(s.data_dir().join("fixtures/client/cert.pem").exists());
    assert!(s.data_dir().join("fixtures/client/key.pem").exists());
}

#[test]
fn one_member_serves_http_and_https_client_urls_at_once() {
    let mut pki = Pki::new("client CA");
    let (cert, key) = pki.issue("server", "server");
    let (plain, _) = free_ports();
    let plain_url = format!("http://127.0.0.1:{plain}");
    let cacert = format!("--cacert={}", pki.ca_file());
    let s = Builder::new(Kind::Detcd)
        .https_clients(&[&cacert])
        .also_listen(&plain_url)
        .args(["--cert-file", &cert, "--key-file", &key])
        .start();
    assert!(s.etcdctl(&["put", "both", "ways"], None).success());
    let via_plain = ctl(
        &format!("127.0.0.1:{plain}"),
        &[],
        &["get", "both", "--print-value-only"],
    );
    assert_eq!(via_plain.stdout.trim(), "ways", "{via_plain:?}");
}

/// Starts `n` members with https peer URLs; `args(i)` are member i's extra flags.
fn https_peer_cluster(n: usize, args: impl Fn(usize) -> Vec<String>) -> Vec<Server> {
    let ports: Vec<(u16, u16)> = (0..n).map(|_| free_ports()).collect();
    let ic = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{}=https://127.0.0.1:{peer}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let token = format!("tls-{}", ports[0].0);
    ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| {
            Builder::new(Kind::Detcd)
                .name(format!("m{}", i + 1))
                .ports(*client, *peer)
                .https_peers()
                .initial_cluster(ic.clone())
                .args(["--initial-cluster-token", token.as_str()])
                .args(args(i))
                .spawn()
        })
        .collect()
}

#[test]
fn three_members_replicate_over_https_peer_urls_with_client_certificates() {
    let mut pki = Pki::new("peer CA");
    let (cert, key) = pki.issue("peer", "etcd-peer");
    let ca = pki.ca_file();
    let flags = vec![
        "--peer-cert-file".to_string(),
        cert,
        "--peer-key-file".to_string(),
        key,
        "--peer-trusted-ca-file".to_string(),
        ca,
        "--peer-client-cert-auth".to_string(),
        "--peer-cert-allowed-cn".to_string(),
        "etcd-peer".to_string(),
    ];
    let mut members = https_peer_cluster(3, |_| flags.clone());
    for m in &mut members {
        m.wait_until_ready();
    }
    assert!(members[0]
        .etcdctl(&["put", "replicated", "yes"], None)
        .success());
    for m in &members[1..] {
        let got = m.etcdctl(&["get", "replicated", "--print-value-only"], None);
        assert_eq!(got.stdout.trim(), "yes", "{got:?}");
    }
}

#[test]
fn a_peer_with_the_wrong_common_name_is_refused() {
    let mut pki = Pki::new("peer CA");
    let (good, good_key) = pki.issue("good", "etcd-peer");
    let (bad, bad_key) = pki.issue("bad", "intruder");
    let ca = pki.ca_file();
    let mut members = https_peer_cluster(3, |i| {
        let (c, k) = if i < 2 {
            (&good, &good_key)
        } else {
            (&bad, &bad_key)
        };
        vec![
            "--peer-cert-file".into(),
            c.clone(),
            "--peer-key-file".into(),
            k.clone(),
            "--peer-trusted-ca-file".into(),
            ca.clone(),
            "--peer-client-cert-auth".into(),
            "--peer-cert-allowed-cn".into(),
            "etcd-peer".into(),
            // The intruder hears the others (they dial it) but cannot reach them, so each of its
            // campaigns only raises the term it answers them with, unseating their leader (raft
            // without pre-vote, etcd's too): it waits long before campaigning, and learns of the
            // leader from its heartbeats instead — its publish to the leader is what is refused.
            "--heartbeat-interval".into(),
            "300".into(),
            "--election-timeout".into(),
            if i < 2 { "3000" } else { "30000" }.into(),
        ]
    });
    // The two members with the right CN form the cluster.
    members[0].wait_until_ready();
    members[1].wait_until_ready();
    assert!(members[0].etcdctl(&["put", "k", "v"], None).success());
    // The third cannot reach the others' peer services: it never publishes itself, and a write
    // through it (forwarded to the leader) fails.
    let through = members[2].etcdctl(&["put", "k", "intruded"], None);
    assert!(!through.success(), "{through:?}");
    let got = members[1].etcdctl(&["get", "k", "--print-value-only"], None);
    assert_eq!(got.stdout.trim(), "v");
    // The intruder keeps knocking; under load its first attempt may come late.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let refused = members[..2]
            .iter()
            .any(|m| m.log().contains("CommonName authentication failed"));
        if refused {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", members[0].log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn peer_auto_tls_forms_a_cluster() {
    let mut members = https_peer_cluster(3, |_| vec!["--peer-auto-tls".to_string()]);
    for m in &mut members {
        m.wait_until_ready();
    }
    assert!(members[2]
        .etcdctl(&["put", "auto", "peers"], None)
        .success());
    let got = members[0].etcdctl(&["get", "auto", "--print-value-only"], None);
    assert_eq!(got.stdout.trim(), "peers");
    assert!(members[0]
        .data_dir()
        .join("fixtures/peer/cert.pem")
        .exists());
}

/// Whether openssl's TLS 1.2 client completes a handshake with `cipher` against `addr`.
fn openssl_handshake(addr: &str, cipher: &str, ca: &Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client", "-connect", addr, "-tls1_2", "-cipher", cipher, "-CAfile",
        ])
        .arg(ca)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let agreed = text.contains(&format!("Cipher is {cipher}"));
    (agreed, text)
}

#[test]
fn cipher_suites_restrict_what_a_client_may_negotiate() {
    let mut pki = Pki::new("client CA");
    let (cert, key) = pki.issue("server", "server");
    let cacert = format!("--cacert={}", pki.ca_file());
    let s = Builder::new(Kind::Detcd)
        .https_clients(&[&cacert])
        .args(["--cert-file", &cert, "--key-file", &key])
        .args(["--cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"])
        .start();
    let ca = PathBuf::from(pki.ca_file());
    let (ok, text) = openssl_handshake(&s.endpoint(), "ECDHE-ECDSA-AES256-GCM-SHA384", &ca);
    assert!(ok, "the allowed suite: {text}");
    let (ok, text) = openssl_handshake(&s.endpoint(), "ECDHE-ECDSA-AES128-GCM-SHA256", &ca);
    assert!(
        !ok,
        "a suite not in --cipher-suites must not be agreed: {text}"
    );
    let _ = s;
}

#[test]
fn an_https_url_without_certificates_is_refused_at_start() {
    let (client, peer) = free_ports();
    let out = common::run_detcd(
        &[
            "--listen-client-urls",
            &format!("https://127.0.0.1:{client}"),
            "--advertise-client-urls",
            &format!("https://127.0.0.1:{client}"),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-cluster",
            &format!("default=http://127.0.0.1:{peer}"),
        ],
        &[],
        Duration::from_secs(10),
    );
    assert!(!out.success());
    assert!(
        out.stderr.contains("must be provided for client url"),
        "{out:?}"
    );
}
