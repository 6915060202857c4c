//! The `detcd` binary: etcd's flags in, an etcd v3 member out.

#[cfg(not(madsim))]
fn main() {
    use detcd::config::{self, Action};

    let cfg = match config::parse(std::env::args()) {
        Ok(Action::Version) => {
            println!("detcd Version: {}", env!("CARGO_PKG_VERSION"));
            println!(
                "etcd API Version: {}",
                detcd::server::maintenance::ETCD_API_VERSION
            );
            return;
        }
        Ok(Action::Run(cfg)) => cfg,
        Ok(Action::Restore(args)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match runtime.block_on(restore(*args)) {
                Ok(()) => return,
                Err(e) => {
                    eprintln!("Error: {e}");
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let level = match cfg.log_level.as_str() {
        "panic" | "fatal" => "error",
        l => l,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!("detcd={level},openraft=warn"))
            }),
        )
        .init();
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(*cfg)) {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

/// `detcd snapshot restore`: a new data dir from an etcd-format snapshot.
#[cfg(not(madsim))]
async fn restore(args: detcd::config::restore::RestoreArgs) -> Result<(), String> {
    let snapshot = detcd::io::fs::read_named_file(&args.file)?;
    if std::path::Path::new(&args.data_dir).join("member").exists() {
        return Err(format!("data-dir {:?} exists", args.data_dir));
    }
    let disk = detcd::io::disk::sled::open_data_dir(&args.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", args.data_dir))?;
    let r = detcd::backup::restore::restore(&snapshot, &args.options, &disk).await?;
    println!(
        "restored snapshot {} into {}: member {:x} of cluster {:x}, revision {}, raft index {}",
        args.file, args.data_dir, r.member_id, r.cluster_id, r.revision, r.index
    );
    Ok(())
}

#[cfg(not(madsim))]
async fn run(cfg: detcd::config::Config) -> Result<(), detcd::member::StartError> {
    use detcd::io::disk::sled;
    let etcd_db = sled::etcdctl_restored_db(&cfg.data_dir);
    if etcd_db.is_some() {
        sled::prepare_etcd_restore(&cfg.data_dir)
            .map_err(|e| format!("cannot take over data dir {}: {e}", cfg.data_dir))?;
    }
    let disk = sled::open_data_dir(&cfg.data_dir)
        .map_err(|e| format!("cannot open data dir {}: {e}", cfg.data_dir))?;
    if let Some(db) = etcd_db {
        take_over_etcdctl_restore(&cfg, &db, &disk).await?;
    }
    let server = detcd::member::Server::start(&cfg, disk).await?;
    tracing::info!(name = %cfg.name, data_dir = %cfg.data_dir, "ready to serve client requests");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("received signal; shutting down"),
        _ = term.recv() => tracing::info!("received signal; shutting down"),
        _ = server.removed() => tracing::info!("removed from the cluster; shutting down"),
        reason = server.failed() => {
            // Nothing can be served any more, and a graceful stop could wait on requests that
            // never finish: exit at once, non-zero, for the supervisor to restart the member.
            return Err(format!("stopping: the raft log or state store failed: {reason}").into());
        }
    }
    server.stop().await;
    Ok(())
}

/// Restores the database `etcdctl snapshot restore` left in the data dir into `disk`, as
/// `detcd snapshot restore` would with this member's flags (the same flags the runbook gave
/// etcdctl), keeping etcd's files beside detcd's.
#[cfg(not(madsim))]
async fn take_over_etcdctl_restore(
    cfg: &detcd::config::Config,
    db: &std::path::Path,
    disk: &detcd::io::Disk,
) -> Result<(), String> {
    let path = db.to_string_lossy().into_owned();
    tracing::info!(file = %path, "taking over a data dir restored by etcdctl");
    let snapshot = detcd::io::fs::read_named_file(&path)?;
    let options = detcd::backup::restore::RestoreOptions {
        name: cfg.name.clone(),
        initial_cluster: cfg.initial_cluster.clone(),
        initial_cluster_token: cfg.initial_cluster_token.clone(),
        initial_advertise_peer_urls: cfg.initial_advertise_peer_urls.clone(),
        // etcdctl strips the checksum when it restores.
        skip_hash_check: true,
    };
    let r = detcd::backup::restore::restore(&snapshot, &options, disk)
        .await
        .map_err(|e| format!("taking over {path}: {e}"))?;
    detcd::io::disk::sled::finish_etcd_restore(&cfg.data_dir)
        .map_err(|e| format!("taking over {path}: {e}"))?;
    tracing::info!(
        revision = r.revision,
        index = r.index,
        "took over the etcdctl-restored data dir (etcd's WAL kept in member/wal.etcd)"
    );
    Ok(())
}

#[cfg(madsim)]
fn main() {
    eprintln!("the detcd binary is not built for the simulator; use the detcd-sim crate");
}
