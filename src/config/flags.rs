//! The table of etcd 3.4's server flags (name, default, value kind, how detcd supports it) and
//! the clap command built from it, with Go's flag conventions (`-flag` as well as `--flag`,
//! booleans only as `--flag=false`) and an `ETCD_*` environment variable per flag.

use clap::{Arg, ArgAction, Command};

/// How detcd treats a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented.
    Built,
    /// Accepted; setting it to a non-default value logs a warning.
    Warn,
}

/// The type of a flag's value (Go's flag package semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `--flag`, `--flag=true|false` (never `--flag false`).
    Bool,
    /// Takes a value: `--flag v` or `--flag=v`.
    Value,
}

use Kind::{Bool, Value};
use Support::{Built, Warn};

/// Every etcd 3.4 server flag: name, default, kind, support.
pub(super) const FLAGS: &[(&str, &str, Kind, Support)] = &[
    ("name", "default", Value, Built),
    ("data-dir", "${name}.etcd", Value, Built),
    ("wal-dir", "", Value, Warn),
    ("snapshot-count", "100000", Value, Built),
    ("heartbeat-interval", "100", Value, Built),
    ("election-timeout", "1000", Value, Built),
    ("initial-election-tick-advance", "true", Bool, Warn),
    ("listen-peer-urls", "http://localhost:2380", Value, Built),
    ("listen-client-urls", "http://localhost:2379", Value, Built),
    ("listen-metrics-urls", "", Value, Built),
    ("max-snapshots", "5", Value, Warn),
    ("max-wals", "5", Value, Warn),
    ("quota-backend-bytes", "0", Value, Built),
    ("backend-batch-interval", "0s", Value, Warn),
    ("backend-batch-limit", "0", Value, Warn),
    ("max-txn-ops", "128", Value, Built),
    ("max-request-bytes", "1572864", Value, Built),
    ("max-concurrent-streams", "4294967295", Value, Warn),
    ("grpc-keepalive-min-time", "5s", Value, Warn),
    ("grpc-keepalive-interval", "2h0m0s", Value, Warn),
    ("grpc-keepalive-timeout", "20s", Value, Warn),
    (
        "initial-advertise-peer-urls",
        "http://localhost:2380",
        Value,
        Built,
    ),
    ("initial-cluster", "", Value, Built),
    ("initial-cluster-state", "new", Value, Built),
    ("initial-cluster-token", "etcd-cluster", Value, Built),
    (
        "advertise-client-urls",
        "http://localhost:2379",
        Value,
        Built,
    ),
    ("discovery", "", Value, Warn),
    ("discovery-fallback", "proxy", Value, Warn),
    ("discovery-proxy", "", Value, Warn),
    ("discovery-srv", "", Value, Warn),
    ("discovery-srv-name", "", Value, Warn),
    ("strict-reconfig-check", "true", Bool, Warn),
    ("pre-vote", "false", Bool, Warn),
    ("auto-compaction-retention", "0", Value, Built),
    ("auto-compaction-mode", "periodic", Value, Built),
    ("enable-v2", "false", Bool, Warn),
    ("cert-file", "", Value, Built),
    ("key-file", "", Value, Built),
    ("client-cert-auth", "false", Bool, Built),
    ("client-crl-file", "", Value, Built),
    ("client-cert-allowed-hostname", "", Value, Built),
    ("trusted-ca-file", "", Value, Built),
    ("auto-tls", "false", Bool, Built),
    ("peer-cert-file", "", Value, Built),
    ("peer-key-file", "", Value, Built),
    ("peer-client-cert-auth", "false", Bool, Built),
    ("peer-trusted-ca-file", "", Value, Built),
    ("peer-auto-tls", "false", Bool, Built),
    ("peer-crl-file", "", Value, Built),
    ("peer-cert-allowed-cn", "", Value, Built),
    ("peer-cert-allowed-hostname", "", Value, Built),
    ("cipher-suites", "", Value, Built),
    (
        "experimental-peer-skip-client-san-verification",
        "false",
        Bool,
        Built,
    ),
    ("self-signed-cert-validity", "1", Value, Built),
    ("cors", "*", Value, Warn),
    ("host-whitelist", "*", Value, Warn),
    ("auth-token", "simple", Value, Built),
    ("bcrypt-cost", "10", Value, Built),
    ("auth-token-ttl", "300", Value, Built),
    ("enable-pprof", "false", Bool, Warn),
    ("metrics", "basic", Value, Built),
    ("logger", "capnslog", Value, Warn),
    ("log-output", "default", Value, Warn),
    ("log-outputs", "default", Value, Warn),
    ("log-level", "info", Value, Built),
    ("debug", "false", Bool, Built),
    ("log-package-levels", "", Value, Warn),
    ("proxy", "off", Value, Warn),
    ("proxy-failure-wait", "5000", Value, Warn),
    ("proxy-refresh-interval", "30000", Value, Warn),
    ("proxy-dial-timeout", "1000", Value, Warn),
    ("proxy-write-timeout", "5000", Value, Warn),
    ("proxy-read-timeout", "0", Value, Warn),
    ("enable-grpc-gateway", "true", Bool, Built),
    ("experimental-initial-corrupt-check", "false", Bool, Built),
    ("experimental-corrupt-check-time", "0s", Value, Built),
    ("experimental-enable-v2v3", "", Value, Warn),
    (
        "experimental-backend-bbolt-freelist-type",
        "array",
        Value,
        Warn,
    ),
    ("experimental-enable-lease-checkpoint", "false", Bool, Built),
    (
        "experimental-enable-lease-checkpoint-persist",
        "false",
        Bool,
        Warn,
    ),
    ("experimental-compaction-batch-limit", "1000", Value, Warn),
    (
        "experimental-watch-progress-notify-interval",
        "10m0s",
        Value,
        Built,
    ),
    ("experimental-warning-apply-duration", "100ms", Value, Warn),
    ("unsafe-no-fsync", "false", Bool, Warn),
    ("force-new-cluster", "false", Bool, Warn),
    // Refused: a configuration file replaces every other flag, and may carry TLS settings this
    // build cannot honour, so it is not silently ignored.
    ("config-file", "", Value, Built),
];

/// etcd 2 flags etcd 3.4 still accepts and ignores.
pub(super) const IGNORED: &[&str] = &[
    "cluster-active-size",
    "cluster-remove-delay",
    "cluster-sync-interval",
    "config",
    "force",
    "max-result-buffer",
    "max-retry-attempts",
    "peer-heartbeat-interval",
    "peer-election-timeout",
    "retry-interval",
    "snapshot",
    "v",
    "vv",
];

/// Go's flag package accepts `-flag` as well as `--flag`; clap wants the latter.
pub(super) fn normalize(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_terminator = false;
    for (i, a) in args.into_iter().enumerate() {
        if i > 0 && !after_terminator && a.starts_with('-') && !a.starts_with("--") && a.len() > 2 {
            out.push(format!("-{a}"));
        } else {
            if a == "--" {
                after_terminator = true;
            }
            out.push(a);
        }
    }
    out
}

pub(super) fn env_name(flag: &str) -> String {
    format!("ETCD_{}", flag.to_uppercase().replace('-', "_"))
}

pub(super) fn command() -> Command {
    command_with_env(true)
}

/// The command line, reading `ETCD_*` variables only if `env` (a configuration file replaces
/// them, as in etcd).
pub(super) fn command_with_env(env: bool) -> Command {
    let mut cmd = Command::new("detcd")
        .about("An etcd v3 compatible key-value store that runs inside a deterministic simulation")
        .disable_version_flag(true)
        // Go's flag package: a flag given twice takes its last value.
        .args_override_self(true)
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::SetTrue)
                .env("ETCD_VERSION"),
        );
    for (name, default, kind, _) in FLAGS {
        let mut arg = Arg::new(*name).long(*name).default_value(*default);
        if env {
            arg = arg.env(env_name(name));
        }
        arg = match kind {
            Bool => arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .value_parser(clap::builder::BoolishValueParser::new()),
            Value => arg.num_args(1),
        };
        cmd = cmd.arg(arg);
    }
    for name in IGNORED {
        let long = Arg::new(*name)
            .long(*name)
            .num_args(0..=1)
            .require_equals(true)
            .hide(true);
        cmd = cmd.arg(if name.len() == 1 {
            long.short(name.chars().next().unwrap())
        } else {
            long
        });
    }
    cmd
}
