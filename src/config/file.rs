//! `--config-file`: etcd's YAML configuration (the keys of etcd's `etcd.conf.yml.sample`: the flag
//! names, plus `client-transport-security` and `peer-transport-security` sections). As in etcd,
//! a configuration file replaces the command line and the `ETCD_*` environment entirely.
//!
//! The file is turned into the equivalent flags and parsed as they would be, so a key means
//! exactly what its flag means. Keys that are no flag (etcd ignores unknown YAML fields) are
//! reported as warnings.

use yaml_rust2::{Yaml, YamlLoader};

use super::flags::FLAGS;

/// The sections etcd's file nests, and the flag each of their keys becomes.
fn security_flag(section: &str, key: &str) -> Option<String> {
    let peer = match section {
        "client-transport-security" => false,
        "peer-transport-security" => true,
        _ => return None,
    };
    let base = match key {
        "cert-file" | "key-file" | "trusted-ca-file" | "auto-tls" | "crl-file" => key,
        "client-cert-auth" => "client-cert-auth",
        "allowed-cn" if peer => "cert-allowed-cn",
        "allowed-hostname" if peer => "cert-allowed-hostname",
        _ => return None,
    };
    Some(match (peer, base) {
        (false, "crl-file") => "client-crl-file".to_string(),
        (false, b) => b.to_string(),
        (true, b) => format!("peer-{b}"),
    })
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Array(items) => Some(
            items
                .iter()
                .filter_map(scalar)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

/// The flags a configuration file stands for (`--name=value` each), and warnings for what it
/// holds that is no flag.
pub fn to_flags(text: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let docs =
        YamlLoader::load_from_str(text).map_err(|e| format!("error parsing config file: {e}"))?;
    let mut flags = Vec::new();
    let mut warnings = Vec::new();
    let Some(doc) = docs.first() else {
        return Ok((flags, warnings));
    };
    let Yaml::Hash(top) = doc else {
        return Err("error parsing config file: not a mapping of settings".into());
    };
    let known = |name: &str| FLAGS.iter().any(|(f, ..)| *f == name);
    for (k, v) in top {
        let Some(key) = k.as_str() else { continue };
        if let Yaml::Hash(section) = v {
            for (sk, sv) in section {
                let Some(sk) = sk.as_str() else { continue };
                match (security_flag(key, sk), scalar(sv)) {
                    (Some(flag), Some(value)) => flags.push(format!("--{flag}={value}")),
                    (Some(_), None) => {}
                    (None, _) => {
                        warnings.push(format!("config file: unknown key {key}.{sk} ignored"))
                    }
                }
            }
            continue;
        }
        if key == "config-file" {
            continue;
        }
        match scalar(v) {
            Some(value) if known(key) => flags.push(format!("--{key}={value}")),
            Some(_) => warnings.push(format!("config file: unknown key {key} ignored")),
            None => {}
        }
    }
    Ok((flags, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcds_sample_keys_become_flags() {
        let text = r#"
name: 'm1'
data-dir: /var/lib/m1
snapshot-count: 10000
heartbeat-interval: 100
listen-client-urls: http://127.0.0.1:2379,http://127.0.0.1:12379
initial-cluster-state: 'new'
enable-v2: false
discovery:
client-transport-security:
  cert-file: /c.pem
  client-cert-auth: true
  auto-tls: false
peer-transport-security:
  key-file: /k.pem
  allowed-cn: etcd-peer
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
no-such-setting: 1
"#;
        let (flags, warnings) = to_flags(text).unwrap();
        assert_eq!(
            flags,
            [
                "--name=m1",
                "--data-dir=/var/lib/m1",
                "--snapshot-count=10000",
                "--heartbeat-interval=100",
                "--listen-client-urls=http://127.0.0.1:2379,http://127.0.0.1:12379",
                "--initial-cluster-state=new",
                "--enable-v2=false",
                "--cert-file=/c.pem",
                "--client-cert-auth=true",
                "--auto-tls=false",
                "--peer-key-file=/k.pem",
                "--peer-cert-allowed-cn=etcd-peer",
                "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ]
        );
        assert_eq!(
            warnings,
            ["config file: unknown key no-such-setting ignored"]
        );
        assert!(to_flags("- a\n- b\n").is_err());
        assert!(to_flags("name: [unclosed").is_err());
        assert_eq!(to_flags("").unwrap(), (vec![], vec![]));
    }
}
