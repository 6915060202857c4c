//! `detcd snapshot restore FILE` and its flags, as `etcdctl snapshot restore` takes them (same
//! names and defaults), so operators' runbooks carry over.

use clap::{Arg, ArgAction, Command};

use crate::backup::restore::RestoreOptions;

use super::parse_initial_cluster;

/// A parsed `snapshot restore` command line.
#[derive(Debug, Clone)]
pub struct RestoreArgs {
    /// The snapshot file.
    pub file: String,
    /// `--data-dir` (default `<name>.etcd`).
    pub data_dir: String,
    /// What to restore as.
    pub options: RestoreOptions,
}

fn command() -> Command {
    let flag = |name: &'static str, default: &'static str, help: &'static str| {
        Arg::new(name).long(name).default_value(default).help(help)
    };
    Command::new("detcd snapshot restore")
        .about("Restores an etcd-format snapshot into a new data dir")
        .arg(Arg::new("file").required(true).help("The snapshot file"))
        .arg(flag(
            "name",
            "default",
            "Human-readable name for this member",
        ))
        .arg(flag(
            "data-dir",
            "",
            "Path to the data directory (default <name>.etcd)",
        ))
        .arg(flag(
            "initial-cluster",
            "default=http://localhost:2380",
            "Initial cluster configuration for restore bootstrap",
        ))
        .arg(flag(
            "initial-cluster-token",
            "etcd-cluster",
            "Initial cluster token for the etcd cluster during restore bootstrap",
        ))
        .arg(flag(
            "initial-advertise-peer-urls",
            "http://localhost:2380",
            "List of this member's peer URLs to advertise to the rest of the cluster",
        ))
        .arg(
            Arg::new("skip-hash-check")
                .long("skip-hash-check")
                .action(ArgAction::SetTrue)
                .help(
                    "Ignore snapshot integrity hash value (required if copied from data directory)",
                ),
        )
}

/// Parses the arguments after `detcd snapshot restore`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<RestoreArgs, String> {
    let m = command()
        .try_get_matches_from(std::iter::once("restore".to_string()).chain(args))
        .map_err(|e| e.to_string())?;
    let text = |n: &str| m.get_one::<String>(n).cloned().unwrap_or_default();
    let name = text("name");
    let data_dir = match text("data-dir") {
        d if d.is_empty() => format!("{name}.etcd"),
        d => d,
    };
    let urls = |n: &str| -> Vec<String> {
        text(n)
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    };
    Ok(RestoreArgs {
        file: text("file"),
        data_dir,
        options: RestoreOptions {
            name,
            initial_cluster: parse_initial_cluster(&text("initial-cluster"))?,
            initial_cluster_token: text("initial-cluster-token"),
            initial_advertise_peer_urls: urls("initial-advertise-peer-urls"),
            skip_hash_check: m.get_flag("skip-hash-check"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcdctls_defaults_and_flags() {
        let a = parse(["snap.db".to_string()]).unwrap();
        assert_eq!(a.data_dir, "default.etcd");
        assert_eq!(a.options.initial_cluster_token, "etcd-cluster");
        assert_eq!(
            a.options.initial_cluster[0].peer_urls,
            ["http://localhost:2380"]
        );
        let a = parse(
            [
                "s.db",
                "--name",
                "m1",
                "--initial-cluster",
                "m1=http://127.0.0.1:1,m2=http://127.0.0.1:2",
                "--skip-hash-check",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(
            (a.data_dir.as_str(), a.options.name.as_str()),
            ("m1.etcd", "m1")
        );
        assert_eq!(a.options.initial_cluster.len(), 2);
        assert!(a.options.skip_hash_check);
        assert!(parse(Vec::<String>::new()).is_err(), "the file is required");
    }
}
