//! A member's WAL directory seen from outside, as an operator would `ls` it: which segments it
//! holds and how many bytes they take. Segments are numbered from 0 in the order they are
//! created and removed oldest first, so the names alone tell how many were rolled and purged.

use detcd::io::fs::{Dir, SimDir};

/// The segments of a WAL directory: (sequence number, first entry index), oldest first.
pub fn segments(dir: &SimDir) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Dir::Sim(dir.clone())
        .list()
        .unwrap_or_default()
        .iter()
        .filter_map(|name| {
            let (seq, first) = name.strip_suffix(".wal")?.split_once('-')?;
            Some((
                u64::from_str_radix(seq, 16).ok()?,
                u64::from_str_radix(first, 16).ok()?,
            ))
        })
        .collect();
    out.sort_unstable();
    out
}

/// Bytes the files of a WAL directory take (their allocated lengths): what a full disk is
/// measured against. Reads each file, so a corrupt-read fault in force draws from its dice.
pub fn used_bytes(dir: &SimDir) -> u64 {
    let d = Dir::Sim(dir.clone());
    d.list()
        .unwrap_or_default()
        .iter()
        .filter_map(|name| d.read(name).ok())
        .map(|data| data.len() as u64)
        .sum()
}

/// How a WAL directory's segments came and went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalStats {
    /// Segments created after the first (rolls).
    pub rolled: u64,
    /// Segments removed (purges).
    pub purged: u64,
}

impl WalStats {
    /// What the names in `dir` tell.
    pub fn of(dir: &SimDir) -> WalStats {
        let segs = segments(dir);
        WalStats {
            rolled: segs.last().map_or(0, |s| s.0),
            purged: segs.first().map_or(0, |s| s.0),
        }
    }

    /// Both counts, summed.
    pub fn add(&mut self, other: WalStats) {
        self.rolled += other.rolled;
        self.purged += other.purged;
    }
}
