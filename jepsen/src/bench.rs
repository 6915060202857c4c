//! The benchmark over porcupine's etcd histories: every non-empty
//! `etcd_NNN.log` in a directory is parsed once and checked `runs` times,
//! and the per-file medians of the check time are summed (the figure
//! porcupine's reference timing uses). Shared by `detcd-jepsen bench` and
//! `cargo bench -p detcd-jepsen`.

use crate::checker::{check_with, CheckOptions, Verdict};
use crate::porcupine::parse_etcd_log;
use crate::register::RegisterModel;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// One file's result.
#[derive(Clone, Debug)]
pub struct FileTiming {
    /// File name.
    pub name: String,
    /// Median check time over the runs.
    pub median: Duration,
    /// The verdict (the same on every run: the checker is deterministic).
    pub verdict: Verdict,
    /// Operations in the history.
    pub ops: usize,
}

/// The whole benchmark's result.
#[derive(Clone, Debug)]
pub struct BenchSummary {
    /// Runs per file.
    pub runs: usize,
    /// Per file, in file-name order.
    pub files: Vec<FileTiming>,
    /// Sum of the per-file medians.
    pub total: Duration,
    /// Time spent parsing (once per file).
    pub parse: Duration,
    /// Wall time of the whole benchmark.
    pub wall: Duration,
}

impl BenchSummary {
    /// Files judged (linearizable, not linearizable, unknown).
    pub fn counts(&self) -> (usize, usize, usize) {
        let c = |v| self.files.iter().filter(|f| f.verdict == v).count();
        (
            c(Verdict::Linearizable),
            c(Verdict::NotLinearizable),
            c(Verdict::Unknown),
        )
    }

    /// A short human-readable report with the slowest files.
    pub fn text(&self) -> String {
        let (lin, not, unknown) = self.counts();
        let mut s = format!(
            "{} files, {} runs each: sum of per-file medians {:.3} ms (parsing, once per file: {:.3} ms; wall {:.2} s); {} linearizable, {} not, {} unknown\nslowest:\n",
            self.files.len(),
            self.runs,
            self.total.as_secs_f64() * 1e3,
            self.parse.as_secs_f64() * 1e3,
            self.wall.as_secs_f64(),
            lin,
            not,
            unknown
        );
        let mut by_time: Vec<&FileTiming> = self.files.iter().collect();
        by_time.sort_by_key(|f| std::cmp::Reverse(f.median));
        for f in by_time.iter().take(8) {
            let _ = writeln!(s, "  {}: {:.3} ms", f.name, f.median.as_secs_f64() * 1e3);
        }
        s
    }

    /// A one-line JSON summary.
    pub fn json(&self) -> serde_json::Value {
        let (lin, not, unknown) = self.counts();
        serde_json::json!({
            "files": self.files.len(), "runs": self.runs,
            "total_ms": self.total.as_secs_f64() * 1e3,
            "parse_ms": self.parse.as_secs_f64() * 1e3,
            "linearizable": lin, "not_linearizable": not, "unknown": unknown,
        })
    }
}

/// Runs the benchmark on the `etcd_*.log` files of `dir` (empty files, such
/// as `etcd_095`, are skipped).
pub fn bench_etcd_dir(dir: &Path, runs: usize) -> Result<BenchSummary, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("etcd_") && n.ends_with(".log"))
        })
        .collect();
    paths.sort();
    let runs = runs.max(1);
    let opts = CheckOptions::default();
    let wall = Instant::now();
    let mut parse = Duration::ZERO;
    let mut total = Duration::ZERO;
    let mut files = Vec::new();
    for p in &paths {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if text.trim().is_empty() {
            continue;
        }
        let t0 = Instant::now();
        let h = parse_etcd_log(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        parse += t0.elapsed();
        let mut times = Vec::with_capacity(runs);
        let mut verdict = Verdict::Unknown;
        for _ in 0..runs {
            let r = check_with(&RegisterModel, &h, &opts);
            verdict = r.verdict;
            times.push(r.elapsed);
        }
        times.sort();
        let median = times[times.len() / 2];
        total += median;
        files.push(FileTiming {
            name: p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            median,
            verdict,
            ops: h.len(),
        });
    }
    Ok(BenchSummary {
        runs,
        files,
        total,
        parse,
        wall: wall.elapsed(),
    })
}
