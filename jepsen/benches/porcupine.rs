//! `cargo bench -p detcd-jepsen`: the checker on porcupine's 102 etcd
//! histories (sum of per-file medians over 7 runs). Finds the data through
//! `$DETCD_PORCUPINE_DATA` or `shared/jepsen/porcupine-data` beside the
//! repository.

use std::path::PathBuf;

fn main() {
    let mut candidates = Vec::new();
    if let Ok(d) = std::env::var("DETCD_PORCUPINE_DATA") {
        candidates.push(PathBuf::from(d));
    }
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/jepsen/porcupine-data"
    )));
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/jepsen/porcupine-data"
    )));
    let Some(dir) = candidates.iter().find(|c| c.join("etcd_000.log").is_file()) else {
        eprintln!("porcupine data not found; tried {candidates:?} (set DETCD_PORCUPINE_DATA)");
        std::process::exit(2);
    };
    match detcd_jepsen::bench::bench_etcd_dir(dir, 7) {
        Ok(s) => print!("{}", s.text()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
