//! `detcd-sim merge FILE...`: sums the `--summary-json` files of a sharded sweep into one
//! summary table, lists every failure's replay command, and exits 1 if any shard failed.

#![allow(clippy::disallowed_methods)] // reads files outside every simulation

use std::io::Write;
use std::path::PathBuf;

use super::summary::Summary;

/// Merges `files`, printing to `out`; the exit code (2 when a file cannot be read).
pub fn merge(files: &[PathBuf], out: &mut impl Write) -> i32 {
    if files.is_empty() {
        let _ = writeln!(
            out,
            "detcd-sim merge: give the --summary-json files of the shards"
        );
        return 2;
    }
    let mut total = Summary::default();
    for f in files {
        let merged = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|text| total.merge_json(&text));
        if let Err(e) = merged {
            let _ = writeln!(out, "detcd-sim merge: {}: {e}", f.display());
            return 2;
        }
    }
    let _ = write!(out, "{}", total.table());
    for r in &total.replays {
        let _ = writeln!(out, "replay: {r}");
    }
    if total.failed.is_empty() {
        0
    } else {
        1
    }
}
