//! `detcd-sim`: seeded fault sweeps of detcd clusters in the deterministic simulator. See
//! `detcd-sim --help`; it only works in the simulator build.

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    let args = detcd_sim::cli::Args::parse();
    detcd_sim::run::quiet_panics(true);
    let code = detcd_sim::cli::execute(&args, &mut std::io::stdout());
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
