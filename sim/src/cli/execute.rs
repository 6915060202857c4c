//! What each mode of the command line does.

// A sweep's wall time (for seeds per minute and simulated seconds per wall second) is measured
// outside every simulation; it never feeds a run.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use super::summary::Summary;
use super::Args;
use crate::nemesis::Schedule;
use crate::run::isolated::run_isolated;
use crate::run::{Failure, RunConfig, RunReport};

/// Runs what `args` asks for, each simulation in a fresh `worker` process (the `detcd-sim`
/// binary), printing to `out`; returns the process exit code: 0 when every seed passed, 1 when
/// one failed, 2 for a usage error.
pub fn execute(args: &Args, worker: &Path, out: &mut impl Write) -> i32 {
    let base = RunConfig {
        seed: 0,
        nodes: args.nodes as usize,
        faults: args.faults.clone(),
        duration: args.duration,
        clients: args.clients,
        report_dir: args.report_dir.clone(),
        canaries: args.canaries.clone(),
        workload: args.workload,
    };
    let result = match (args.seed, &args.seeds) {
        (Some(seed), _) => replay(args, worker, &base.with_seed(seed), out),
        (None, Some(seeds)) => {
            let seeds = match args.shard {
                Some(shard) => shard.seeds(seeds.clone()),
                None => seeds.clone().collect(),
            };
            sweep(args, worker, &base, &seeds, out)
        }
        (None, None) => Err("give --seed S (one run) or --seeds A..B (a sweep)".to_string()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(out, "detcd-sim: {e}");
            2
        }
    }
}

/// One seed, verbosely.
fn replay(
    args: &Args,
    worker: &Path,
    config: &RunConfig,
    out: &mut impl Write,
) -> Result<i32, String> {
    let schedule = match &args.schedule {
        Some(path) => read_schedule(path)?,
        None => config.schedule(),
    };
    let _ = write!(
        out,
        "seed {} on {} members, {} workload\n{schedule}",
        config.seed,
        config.nodes,
        config.workload()
    );
    let r = checked_run(args, worker, config, &schedule);
    // The trace after the schedule: what each step did, restarts, the outcome.
    for line in r.trace.iter().skip(1) {
        let _ = writeln!(out, "  | {line}");
    }
    let _ = writeln!(
        out,
        "trace hash {:016x}; {} ops, {:?}, {:.1} s simulated",
        r.trace_hash,
        r.ops,
        r.verdict,
        r.simulated.as_secs_f64()
    );
    if !r.stats.is_empty() {
        let _ = writeln!(out, "{}: {}", r.workload, r.stats);
    }
    if r.passed() {
        let _ = writeln!(out, "seed {}: ok", config.seed);
        return Ok(0);
    }
    report_failure(config, &r, out);
    if args.shrink {
        crate::shrink::shrink_and_print(config, &r.schedule, worker, args.shrink_budget, out);
    }
    Ok(1)
}

/// Many seeds, with a progress bar and a summary table (and with `--summary-json`, the same
/// summary as JSON).
fn sweep(
    args: &Args,
    worker: &Path,
    base: &RunConfig,
    seeds: &[u64],
    out: &mut impl Write,
) -> Result<i32, String> {
    let bar = ProgressBar::new(seeds.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds {msg} [{elapsed_precise} < {eta}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let began = std::time::Instant::now();
    let mut summary = Summary::default();
    let mut first_failure: Option<(RunConfig, RunReport)> = None;
    // `--jobs` threads each hand seeds to worker processes; results come back in completion
    // order (each run is its own process, so the order changes nothing in any run).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else {
                    return;
                };
                let config = base.with_seed(seed);
                let r = checked_run(args, worker, &config, &config.schedule());
                if tx.send((config, r)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for (config, r) in rx {
            summary.add(&r);
            if !r.passed() {
                let replay = bar.suspend(|| report_failure(&config, &r, out));
                summary.replays.push(replay);
                bar.set_message(format!("({} failed)", summary.failed.len()));
                if first_failure
                    .as_ref()
                    .is_none_or(|(c, _)| c.seed > config.seed)
                {
                    first_failure = Some((config, r));
                }
            }
            bar.inc(1);
        }
    });
    summary.failed.sort_unstable();
    summary.replays.sort_unstable();
    bar.finish_and_clear();
    summary.wall = began.elapsed();
    summary.shard = args.shard.map(|s| s.to_string());
    let _ = write!(out, "{}", summary.table());
    if let Some(path) = &args.summary_json {
        std::fs::write(path, summary.to_json())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if let (true, Some((config, r))) = (args.shrink, first_failure) {
        crate::shrink::shrink_and_print(&config, &r.schedule, worker, args.shrink_budget, out);
    }
    Ok(if summary.failed.is_empty() { 0 } else { 1 })
}

/// A run, and with `--check-determinism` a second one whose trace hash must match.
fn checked_run(args: &Args, worker: &Path, config: &RunConfig, schedule: &Schedule) -> RunReport {
    let mut r = run_isolated(worker, config, schedule);
    if args.check_determinism && r.failure.is_none() {
        let again = run_isolated(worker, config, schedule);
        if again.trace_hash != r.trace_hash {
            let at = r
                .trace
                .iter()
                .zip(&again.trace)
                .position(|(a, b)| a != b)
                .unwrap_or(r.trace.len().min(again.trace.len()));
            r.failure = Some(Failure {
                message: format!(
                    "not deterministic: trace hash {:016x} then {:016x}",
                    r.trace_hash, again.trace_hash
                ),
                explanation: format!(
                    "the traces first differ at line {at}:\n  first:  {:?}\n  second: {:?}",
                    r.trace.get(at),
                    again.trace.get(at)
                ),
                html_path: None,
            });
        }
    }
    r
}

fn read_schedule(path: &Path) -> Result<Schedule, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Schedule::from_json(&text)
}

/// Saves a failing schedule next to its report, for `--schedule`.
fn save_schedule(config: &RunConfig, schedule: &Schedule, name: &str) -> Option<PathBuf> {
    let path = config.report_dir.join(name);
    let ok = std::fs::create_dir_all(&config.report_dir).is_ok()
        && std::fs::write(&path, schedule.to_json()).is_ok();
    ok.then_some(path)
}

/// The shell command that replays `config` with the schedule saved at `path`.
pub fn replay_command(config: &RunConfig, path: Option<&Path>) -> String {
    let mut cmd = format!(
        "RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/madsim cargo run -p detcd-sim -- --seed {} --workload {} --nodes {} --clients {}",
        config.seed,
        config.workload(),
        config.nodes,
        config.clients
    );
    for c in &config.canaries {
        cmd.push_str(&format!(" --canary {c}"));
    }
    match path {
        Some(p) => cmd.push_str(&format!(" --schedule {}", p.display())),
        None => {
            let kinds: Vec<&str> = config.faults.iter().map(|k| k.name()).collect();
            cmd.push_str(&format!(
                " --faults {} --duration {}ms",
                kinds.join(","),
                config.duration.as_millis()
            ));
        }
    }
    cmd
}

/// Everything needed to understand and replay a failure; returns the replay command.
fn report_failure(config: &RunConfig, r: &RunReport, out: &mut impl Write) -> String {
    let Some(f) = &r.failure else {
        return String::new();
    };
    let saved = save_schedule(
        config,
        &r.schedule,
        &format!("seed-{}.schedule.json", r.seed),
    );
    let _ = writeln!(out, "\nFAILED seed {}: {}", r.seed, f.message);
    let _ = write!(out, "schedule:\n{}", r.schedule);
    let _ = writeln!(out, "trace hash {:016x}", r.trace_hash);
    let _ = writeln!(out, "{}", f.explanation.trim_end());
    if let Some(p) = &f.html_path {
        let _ = writeln!(out, "report: {}", p.display());
    }
    let replay = replay_command(config, saved.as_deref());
    let _ = writeln!(out, "replay: {replay}");
    replay
}
