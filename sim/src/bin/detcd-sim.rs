//! `detcd-sim`: seeded fault sweeps of detcd clusters in the deterministic simulator. See
//! `detcd-sim --help`; it only works in the simulator build.

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    detcd_sim::run::quiet_panics(true);
    detcd_sim::log_from_env();
    // Worker mode: one simulation per process (see detcd_sim::run::isolated).
    if std::env::args().nth(1).as_deref() == Some(detcd_sim::run::isolated::WORKER_FLAG) {
        return std::process::ExitCode::from(detcd_sim::run::isolated::worker_main() as u8);
    }
    // `detcd-sim merge FILE...`: the summaries of a sharded sweep, summed.
    if std::env::args().nth(1).as_deref() == Some("merge") {
        let files: Vec<std::path::PathBuf> = std::env::args_os().skip(2).map(Into::into).collect();
        let code = detcd_sim::cli::merge(&files, &mut std::io::stdout());
        return std::process::ExitCode::from(code as u8);
    }
    let args = detcd_sim::cli::Args::parse();
    let worker = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("detcd-sim: cannot find its own executable to run workers: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let code = detcd_sim::cli::execute(&args, &worker, &mut std::io::stdout());
    std::process::ExitCode::from(code as u8)
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "detcd-sim runs detcd inside the madsim simulator and must be built for it:\n  \
         RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/madsim cargo run -p detcd-sim -- --seeds 0..100"
    );
    std::process::ExitCode::from(2)
}
