//! etcd's server flags: every flag etcd 3.4 accepts, with etcd's names, defaults and `ETCD_*`
//! environment variables (a flag on the command line wins over its variable).
//!
//! Each flag is one of two kinds ([`Support`]): built, or accepted but not built yet (a warning
//! is logged when it is set to anything but its default). `--config-file` ([`file`]) replaces the
//! command line and the environment with etcd's YAML file, as in etcd.

pub mod file;
pub mod restore;

use std::collections::BTreeMap;
use std::time::Duration;

use clap::ArgMatches;

mod flags;

pub use flags::Support;
use flags::{command, normalize, Kind, FLAGS, IGNORED};
use Kind::{Bool, Value};
use Support::{Built, Warn};

/// One member of `--initial-cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    /// The member's name.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
}

/// TLS for one kind of listener and its dialers (client or peer), from etcd's flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// `--cert-file` / `--peer-cert-file`.
    pub cert_file: String,
    /// `--key-file` / `--peer-key-file`.
    pub key_file: String,
    /// `--trusted-ca-file` / `--peer-trusted-ca-file`.
    pub trusted_ca_file: String,
    /// `--client-cert-auth` / `--peer-client-cert-auth`: connections must present a
    /// certificate signed by the trusted CA.
    pub client_cert_auth: bool,
    /// `--client-crl-file` / `--peer-crl-file`: revoked certificates.
    pub crl_file: String,
    /// `--auto-tls` / `--peer-auto-tls`: self-signed certificates under the data dir when no
    /// cert and key are given.
    pub auto_tls: bool,
    /// `--peer-cert-allowed-cn`: the only CN a peer's certificate may have.
    pub allowed_cn: String,
    /// `--client-cert-allowed-hostname` / `--peer-cert-allowed-hostname`: a DNS name or IP a
    /// connecting certificate must carry.
    pub allowed_hostname: String,
    /// `--experimental-peer-skip-client-san-verification`.
    pub skip_client_san_verification: bool,
}

impl TlsInfo {
    /// Whether anything asks for TLS (certificates given, or generated).
    pub fn is_set(&self) -> bool {
        !self.cert_file.is_empty() || !self.key_file.is_empty() || self.auto_tls
    }
}

/// The resolved server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--name`.
    pub name: String,
    /// `--data-dir`.
    pub data_dir: String,
    /// `--listen-client-urls`.
    pub listen_client_urls: Vec<String>,
    /// `--advertise-client-urls`.
    pub advertise_client_urls: Vec<String>,
    /// `--listen-peer-urls`.
    pub listen_peer_urls: Vec<String>,
    /// `--listen-metrics-urls`: more listeners serving only `/metrics` and `/health`.
    pub listen_metrics_urls: Vec<String>,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: Vec<String>,
    /// `--initial-cluster`, by member.
    pub initial_cluster: Vec<InitialMember>,
    /// `--initial-cluster-state` is `new`.
    pub initial_cluster_new: bool,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// `--heartbeat-interval`.
    pub heartbeat: Duration,
    /// `--election-timeout`.
    pub election: Duration,
    /// `--snapshot-count`.
    pub snapshot_count: u64,
    /// `--experimental-watch-progress-notify-interval` (`None`: a negative value, which keeps
    /// etcd's default).
    pub watch_progress_notify_interval: Option<Duration>,
    /// `--experimental-enable-lease-checkpoint`: the leader persists remaining TTLs through raft.
    pub lease_checkpoint: bool,
    /// `--experimental-initial-corrupt-check`: compare hashes with the peers before serving.
    pub initial_corrupt_check: bool,
    /// `--experimental-corrupt-check-time`: how often the leader compares the members' hashes
    /// (`None`: never, etcd's default `0s`).
    pub corrupt_check_time: Option<Duration>,
    /// `--auto-compaction-mode` and `--auto-compaction-retention` (`None`: off).
    pub auto_compaction: Option<crate::compactor::Policy>,
    /// `--metrics extensive`: also the gRPC handling-time histograms (any other value is
    /// `basic`, as etcd takes it).
    pub metrics_extensive: bool,
    /// `--enable-grpc-gateway`: serve the JSON gateway (`/v3/...`) on the client URLs.
    pub grpc_gateway: bool,
    /// Size of a WAL segment file: etcd's 64 MiB (no flag; the simulator sets small ones).
    pub wal_segment_bytes: u64,
    /// TLS of the client URLs.
    pub client_tls: TlsInfo,
    /// TLS of the peer URLs and of the connections to other members.
    pub peer_tls: TlsInfo,
    /// `--cipher-suites`: the TLS 1.2 suites allowed (empty: the library's defaults).
    pub cipher_suites: Vec<String>,
    /// `--self-signed-cert-validity`, in years.
    pub self_signed_cert_validity: u32,
    /// `--quota-backend-bytes` (0: etcd's default of 2 GiB; negative: no quota).
    pub quota_backend_bytes: i64,
    /// `--auth-token`: `simple`, or `jwt,` and its options.
    pub auth_token: String,
    /// `--auth-token-ttl`, in seconds (simple tokens).
    pub auth_token_ttl: u64,
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
    /// `--log-level` (or `debug` with `--debug`).
    pub log_level: String,
    /// Warnings to log once logging is up (flags accepted but not built).
    pub warnings: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    /// Print the version and exit.
    Version,
    /// Run the server.
    Run(Box<Config>),
    /// `detcd snapshot restore FILE ...`: build a data dir from a snapshot and exit.
    Restore(Box<restore::RestoreArgs>),
}

fn text(m: &ArgMatches, name: &str) -> String {
    m.get_one::<String>(name).cloned().unwrap_or_default()
}

fn flag(m: &ArgMatches, name: &str) -> bool {
    m.get_one::<bool>(name).copied().unwrap_or(false)
}

fn urls(m: &ArgMatches, name: &str) -> Result<Vec<String>, String> {
    let v: &String = m.get_one(name).expect("has default");
    let list: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    for u in &list {
        if u.starts_with("unixs://") {
            return Err(format!(
                "--{name}={u}: unix socket listeners are not supported by detcd; refusing to \
                 start"
            ));
        }
        if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("unix://")) {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {u}"
            ));
        }
    }
    Ok(list)
}

fn number<T: std::str::FromStr>(m: &ArgMatches, name: &str) -> Result<T, String> {
    let v: &String = m.get_one(name).expect("has default");
    v.parse()
        .map_err(|_| format!("invalid value {v:?} for flag -{name}: parse error"))
}

fn watch_interval(m: &ArgMatches) -> Result<Option<Duration>, String> {
    let name = "experimental-watch-progress-notify-interval";
    let v: &String = m.get_one(name).expect("has default");
    crate::watch::progress::parse_go_duration(v)
        .map_err(|e| format!("invalid value {v:?} for flag -{name}: {e}"))
}

fn corrupt_check_time(m: &ArgMatches) -> Result<Option<Duration>, String> {
    let name = "experimental-corrupt-check-time";
    let v: &String = m.get_one(name).expect("has default");
    let d = crate::watch::progress::parse_go_duration(v)
        .map_err(|e| format!("invalid value {v:?} for flag -{name}: {e}"))?;
    Ok(d.filter(|d| !d.is_zero()))
}

/// Parses `--initial-cluster` (`name=url,name=url,...`; a name may appear with several URLs).
pub fn parse_initial_cluster(s: &str) -> Result<Vec<InitialMember>, String> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part
            .split_once('=')
            .ok_or_else(|| format!("invalid value \"{s}\" for flag -initial-cluster"))?;
        if !by_name.contains_key(name) {
            order.push(name.to_string());
        }
        by_name
            .entry(name.to_string())
            .or_default()
            .push(url.to_string());
    }
    Ok(order
        .into_iter()
        .map(|name| {
            let peer_urls = by_name.remove(&name).unwrap_or_default();
            InitialMember { name, peer_urls }
        })
        .collect())
}

/// Parses the command line (`args[0]` is the program) and environment into an [`Action`].
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Action, String> {
    let args: Vec<String> = args.into_iter().collect();
    if args.get(1).map(String::as_str) == Some("snapshot") {
        return match args.get(2).map(String::as_str) {
            Some("restore") => Ok(Action::Restore(Box::new(restore::parse(
                args[3..].to_vec(),
            )?))),
            other => Err(format!(
                "unknown command {:?} for \"detcd snapshot\" (supported: restore)",
                other.unwrap_or("")
            )),
        };
    }
    let mut m = command()
        .try_get_matches_from(normalize(args))
        .map_err(|e| e.to_string())?;
    if m.get_flag("version") {
        return Ok(Action::Version);
    }
    let mut warnings = Vec::new();
    let config_file = text(&m, "config-file");
    if !config_file.is_empty() {
        // As etcd: the file replaces the command line and the environment.
        let yaml = crate::io::fs::read_named_file(&config_file)?;
        let yaml = String::from_utf8(yaml)
            .map_err(|_| format!("config file {config_file} is not UTF-8"))?;
        let (flags, notes) = file::to_flags(&yaml)?;
        warnings.extend(notes);
        let others = FLAGS.iter().any(|(name, ..)| {
            *name != "config-file"
                && m.value_source(name) != Some(clap::parser::ValueSource::DefaultValue)
        });
        if others {
            warnings.push(format!(
                "config file {config_file} given: other command-line flags and environment \
                 variables are ignored"
            ));
        }
        let argv = std::iter::once("detcd".to_string()).chain(flags);
        m = flags::command_with_env(false)
            .try_get_matches_from(normalize(argv))
            .map_err(|e| format!("config file {config_file}: {e}"))?;
    }
    for (name, default, kind, support) in FLAGS {
        let explicit = m.value_source(name) != Some(clap::parser::ValueSource::DefaultValue);
        let value = match kind {
            Bool => m
                .get_one::<bool>(name)
                .map(|b| b.to_string())
                .unwrap_or_default(),
            Value => m.get_one::<String>(name).cloned().unwrap_or_default(),
        };
        if !explicit || value == *default {
            continue;
        }
        match support {
            Built => {}
            Warn => warnings.push(format!(
                "flag --{name}={value} is accepted but not implemented by detcd yet; it has no effect"
            )),
        }
    }
    for name in IGNORED {
        if m.contains_id(name)
            && m.value_source(name) == Some(clap::parser::ValueSource::CommandLine)
        {
            warnings.push(format!("flag --{name} is an etcd v2 flag and is ignored"));
        }
    }

    let name: String = m.get_one::<String>("name").cloned().expect("has default");
    let mut data_dir: String = m
        .get_one::<String>("data-dir")
        .cloned()
        .expect("has default");
    if data_dir == "${name}.etcd" {
        data_dir = format!("{name}.etcd");
    }
    let initial_advertise_peer_urls = urls(&m, "initial-advertise-peer-urls")?;
    let ic: &String = m.get_one("initial-cluster").expect("has default");
    let initial_cluster = if ic.is_empty() {
        vec![InitialMember {
            name: name.clone(),
            peer_urls: initial_advertise_peer_urls.clone(),
        }]
    } else {
        parse_initial_cluster(ic)?
    };
    let state: &String = m.get_one("initial-cluster-state").expect("has default");
    let initial_cluster_new = match state.as_str() {
        "new" => true,
        "existing" => false,
        other => {
            return Err(format!(
                "invalid value \"{other}\" for flag -initial-cluster-state: valid values are \"new\" and \"existing\""
            ))
        }
    };
    let log_level = if m.get_one::<bool>("debug").copied().unwrap_or(false) {
        "debug".to_string()
    } else {
        m.get_one::<String>("log-level")
            .cloned()
            .expect("has default")
    };
    if !["debug", "info", "warn", "error", "panic", "fatal"].contains(&log_level.as_str()) {
        return Err(format!("unknown level: {log_level:?}"));
    }
    let cfg = Config {
        listen_client_urls: urls(&m, "listen-client-urls")?,
        advertise_client_urls: urls(&m, "advertise-client-urls")?,
        listen_peer_urls: urls(&m, "listen-peer-urls")?,
        listen_metrics_urls: urls(&m, "listen-metrics-urls")?,
        initial_advertise_peer_urls,
        initial_cluster,
        initial_cluster_new,
        initial_cluster_token: m
            .get_one::<String>("initial-cluster-token")
            .cloned()
            .expect("has default"),
        max_request_bytes: number(&m, "max-request-bytes")?,
        max_txn_ops: number(&m, "max-txn-ops")?,
        heartbeat: Duration::from_millis(number(&m, "heartbeat-interval")?),
        election: Duration::from_millis(number(&m, "election-timeout")?),
        snapshot_count: number(&m, "snapshot-count")?,
        watch_progress_notify_interval: watch_interval(&m)?,
        lease_checkpoint: m
            .get_one::<bool>("experimental-enable-lease-checkpoint")
            .copied()
            .unwrap_or(false),
        initial_corrupt_check: flag(&m, "experimental-initial-corrupt-check"),
        corrupt_check_time: corrupt_check_time(&m)?,
        grpc_gateway: flag(&m, "enable-grpc-gateway"),
        metrics_extensive: text(&m, "metrics") == "extensive",
        auto_compaction: crate::compactor::Policy::parse(
            &text(&m, "auto-compaction-mode"),
            &text(&m, "auto-compaction-retention"),
        )?,
        wal_segment_bytes: crate::raft::wal::DEFAULT_SEGMENT_BYTES,
        quota_backend_bytes: number(&m, "quota-backend-bytes")?,
        auth_token: text(&m, "auth-token"),
        auth_token_ttl: number(&m, "auth-token-ttl")?,
        bcrypt_cost: number(&m, "bcrypt-cost")?,
        client_tls: TlsInfo {
            cert_file: text(&m, "cert-file"),
            key_file: text(&m, "key-file"),
            trusted_ca_file: text(&m, "trusted-ca-file"),
            client_cert_auth: flag(&m, "client-cert-auth"),
            crl_file: text(&m, "client-crl-file"),
            auto_tls: flag(&m, "auto-tls"),
            allowed_cn: String::new(),
            allowed_hostname: text(&m, "client-cert-allowed-hostname"),
            skip_client_san_verification: false,
        },
        peer_tls: TlsInfo {
            cert_file: text(&m, "peer-cert-file"),
            key_file: text(&m, "peer-key-file"),
            trusted_ca_file: text(&m, "peer-trusted-ca-file"),
            client_cert_auth: flag(&m, "peer-client-cert-auth"),
            crl_file: text(&m, "peer-crl-file"),
            auto_tls: flag(&m, "peer-auto-tls"),
            allowed_cn: text(&m, "peer-cert-allowed-cn"),
            allowed_hostname: text(&m, "peer-cert-allowed-hostname"),
            skip_client_san_verification: flag(
                &m,
                "experimental-peer-skip-client-san-verification",
            ),
        },
        cipher_suites: text(&m, "cipher-suites")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        self_signed_cert_validity: number(&m, "self-signed-cert-validity")?,
        log_level,
        warnings,
        name,
        data_dir,
    };
    cfg.validate()?;
    Ok(Action::Run(Box::new(cfg)))
}

impl Config {
    /// etcd's consistency checks between flags.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat.is_zero() || self.election < self.heartbeat * 5 {
            return Err(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election.as_millis(),
                self.heartbeat.as_millis()
            ));
        }
        if self.election > Duration::from_millis(50_000) {
            return Err(format!(
                "--election-timeout[{}ms] is too long, and should be set less than 50000ms",
                self.election.as_millis()
            ));
        }
        let me = self
            .initial_cluster
            .iter()
            .find(|m| m.name == self.name)
            .ok_or_else(|| {
                format!(
                    "couldn't find local name \"{}\" in the initial cluster configuration",
                    self.name
                )
            })?;
        let mut a = me.peer_urls.clone();
        let mut b = self.initial_advertise_peer_urls.clone();
        a.sort();
        b.sort();
        if a != b {
            return Err(format!(
                "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} \
                 (\"{}\"(resolved from \"{}\") != \"{}\"(resolved from \"{}\"))",
                me.name,
                me.peer_urls.join(","),
                self.initial_advertise_peer_urls.join(","),
                a.join(","),
                a.join(","),
                b.join(","),
                b.join(",")
            ));
        }
        if self.max_txn_ops == 0 {
            return Err("--max-txn-ops must be positive".into());
        }
        for url in &self.listen_client_urls {
            if url.starts_with("https://") && !self.client_tls.is_set() {
                return Err(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} \
                     with HTTPS scheme"
                ));
            }
        }
        for url in &self.listen_metrics_urls {
            if url.starts_with("https://") && !self.client_tls.is_set() {
                return Err(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for metrics url \
                     {url} with HTTPS scheme"
                ));
            }
        }
        for url in &self.listen_peer_urls {
            if url.starts_with("https://") && !self.peer_tls.is_set() {
                return Err(format!(
                    "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer \
                     url {url} with HTTPS scheme"
                ));
            }
        }
        // As etcd: a lone cert or key file is ignored (with a warning) on http URLs and
        // fatal once an https URL would need it.
        let https = |urls: &[String]| urls.iter().any(|u| u.starts_with("https://"));
        for (tls, urls) in [
            (&self.client_tls, &self.listen_client_urls),
            (&self.peer_tls, &self.listen_peer_urls),
        ] {
            if https(urls) && tls.cert_file.is_empty() != tls.key_file.is_empty() {
                return Err(format!(
                    "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                    tls.key_file, tls.cert_file
                ));
            }
        }
        crate::io::tls::check_cipher_suites(&self.cipher_suites)?;
        Ok(())
    }

    /// A single-member configuration with etcd's defaults, for tests and the simulator.
    pub fn single(name: &str, client_url: &str, peer_url: &str) -> Config {
        Config {
            name: name.to_string(),
            data_dir: format!("{name}.etcd"),
            listen_client_urls: vec![client_url.to_string()],
            advertise_client_urls: vec![client_url.to_string()],
            listen_peer_urls: vec![peer_url.to_string()],
            listen_metrics_urls: Vec::new(),
            initial_advertise_peer_urls: vec![peer_url.to_string()],
            initial_cluster: vec![InitialMember {
                name: name.to_string(),
                peer_urls: vec![peer_url.to_string()],
            }],
            initial_cluster_new: true,
            initial_cluster_token: "etcd-cluster".to_string(),
            max_request_bytes: 1_572_864,
            max_txn_ops: 128,
            heartbeat: Duration::from_millis(100),
            election: Duration::from_millis(1000),
            snapshot_count: 100_000,
            watch_progress_notify_interval: Some(crate::watch::progress::DEFAULT_INTERVAL),
            lease_checkpoint: false,
            initial_corrupt_check: false,
            corrupt_check_time: None,
            grpc_gateway: true,
            metrics_extensive: false,
            auto_compaction: None,
            wal_segment_bytes: crate::raft::wal::DEFAULT_SEGMENT_BYTES,
            client_tls: TlsInfo::default(),
            peer_tls: TlsInfo::default(),
            cipher_suites: Vec::new(),
            self_signed_cert_validity: 1,
            quota_backend_bytes: 0,
            auth_token: "simple".to_string(),
            auth_token_ttl: 300,
            bcrypt_cost: 10,
            log_level: "info".to_string(),
            warnings: vec![],
        }
    }
}

#[cfg(test)]
mod tests;
