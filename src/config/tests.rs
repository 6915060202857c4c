//! Flag parsing against etcd's behaviour.
use super::*;

fn run(args: &[&str]) -> Result<Config, String> {
    let mut v = vec!["detcd".to_string()];
    v.extend(args.iter().map(|s| s.to_string()));
    match parse(v)? {
        Action::Run(c) => Ok(*c),
        Action::Version => Err("version".into()),
        Action::Restore(_) => Err("restore".into()),
    }
}

#[test]
fn snapshot_restore_is_a_subcommand() {
    let args = ["detcd", "snapshot", "restore", "s.db", "--name", "m1"].map(String::from);
    match parse(args).unwrap() {
        Action::Restore(r) => {
            assert_eq!((r.file.as_str(), r.data_dir.as_str()), ("s.db", "m1.etcd"))
        }
        other => panic!("{other:?}"),
    }
    assert!(parse(["detcd", "snapshot", "save"].map(String::from)).is_err());
}

#[test]
fn defaults_are_etcds() {
    let c = run(&[]).unwrap();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, "default.etcd");
    assert_eq!(c.listen_client_urls, vec!["http://localhost:2379"]);
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!(c.max_txn_ops, 128);
    assert_eq!(
        c.initial_cluster[0].peer_urls,
        vec!["http://localhost:2380"]
    );
}

#[test]
fn go_style_flags_and_data_dir_default() {
    let c = run(&[
        "-name",
        "n1",
        "--max-txn-ops=3",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:1",
        "--initial-cluster=n1=http://127.0.0.1:1",
    ])
    .unwrap();
    assert_eq!(c.data_dir, "n1.etcd");
    assert_eq!(c.max_txn_ops, 3);
}

#[test]
fn tls_flags_parse_and_unbuilt_flags_warn() {
    let c = run(&[
        "--cert-file",
        "s.pem",
        "--key-file",
        "s-key.pem",
        "--client-cert-auth",
        "--trusted-ca-file",
        "ca.pem",
        "--peer-auto-tls",
        "--peer-cert-allowed-cn",
        "etcd-peer",
        "--cipher-suites",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ])
    .unwrap();
    assert!(c.client_tls.client_cert_auth && c.client_tls.is_set());
    assert_eq!(c.client_tls.trusted_ca_file, "ca.pem");
    assert!(c.peer_tls.auto_tls);
    assert_eq!(c.peer_tls.allowed_cn, "etcd-peer");
    assert_eq!(c.cipher_suites.len(), 2);
    assert!(
        run(&["--cert-file", "x.pem"]).is_ok(),
        "ignored on http URLs"
    );
    assert!(run(&[
        "--cert-file",
        "x.pem",
        "--listen-client-urls",
        "https://127.0.0.1:2379"
    ])
    .unwrap_err()
    .contains("KeyFile and CertFile must both be present[key: , cert: x.pem]"));
    assert!(run(&["--listen-client-urls", "https://127.0.0.1:2379"])
        .unwrap_err()
        .contains("must be provided for client url https://127.0.0.1:2379"));
    assert!(run(&["--cipher-suites", "TLS_RSA_WITH_AES_128_CBC_SHA"])
        .unwrap_err()
        .contains("not supported"));
    let c = run(&["--cors", "example.com", "--enable-v2=false"]).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(run(&["--no-such-flag"]).is_err());
}

#[test]
fn lease_checkpoint_flag_is_built() {
    assert!(!run(&[]).unwrap().lease_checkpoint);
    let c = run(&["--experimental-enable-lease-checkpoint"]).unwrap();
    assert!(c.lease_checkpoint);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn initial_cluster_must_name_this_member() {
    assert!(run(&["--initial-cluster", "other=http://localhost:2380"])
        .unwrap_err()
        .contains("couldn't find local name"));
    let m = parse_initial_cluster("a=http://1:1,b=http://2:2,a=http://3:3").unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].peer_urls, vec!["http://1:1", "http://3:3"]);
}

#[test]
fn a_flag_given_twice_takes_its_last_value() {
    // As Go's flag package: scripts append overrides to a base command line.
    let c = run(&["--data-dir", "a", "--name", "x", "--data-dir", "b"]).unwrap();
    assert_eq!((c.data_dir.as_str(), c.name.as_str()), ("b", "x"));
    let c = run(&["--max-txn-ops=1", "-max-txn-ops", "7"]).unwrap();
    assert_eq!(c.max_txn_ops, 7);
}
