//! `detcd-jepsen`: check histories from the command line, and benchmark the
//! checker on porcupine's etcd histories.

use clap::{Parser, Subcommand, ValueEnum};
use detcd_jepsen::porcupine::{parse_etcd_log, parse_kv_log};
use detcd_jepsen::report::{Report, Section};
use detcd_jepsen::{check_with, CheckOptions, History, KvModel, RegisterModel, Verdict};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Command-line interface.
#[derive(Parser)]
#[command(
    name = "detcd-jepsen",
    version,
    about = "Linearizability, watch and lock checkers for detcd histories"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// History file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Guess from the content: Jepsen log lines, EDN maps, or JSON lines.
    Auto,
    /// Our JSON-lines format (see README); pick the model with --model.
    Jsonl,
    /// Jepsen etcd register logs (porcupine's etcd_NNN.log).
    PorcupineEtcd,
    /// Jepsen EDN kv logs (porcupine's kv/*.txt).
    PorcupineKv,
}

/// Models for JSON-lines histories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    /// Single read/write/cas register.
    Register,
    /// etcd-style multi-key KV.
    Kv,
}

/// Subcommands.
#[derive(Subcommand)]
enum Cmd {
    /// Check histories for linearizability.
    Check {
        /// Input format.
        #[arg(long, value_enum, default_value_t = Format::Auto)]
        format: Format,
        /// Model for jsonl histories (porcupine formats imply theirs).
        #[arg(long, value_enum, default_value_t = ModelArg::Register)]
        model: ModelArg,
        /// Write a self-contained HTML report here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Give up on a file after this many seconds (verdict unknown); a
        /// value too large to represent means no limit.
        #[arg(long)]
        timeout: Option<f64>,
        /// Print one JSON line per file: {"file","valid","ops","ms"}.
        #[arg(long)]
        json: bool,
        /// History files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check watch guarantees. Each FILE is a JSON document
    /// `{"writes": [...], "streams": [...]}` (see README).
    Watch {
        /// Write a self-contained HTML report here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Print one JSON line per file: {"file","valid","violations"}.
        #[arg(long)]
        json: bool,
        /// Watch history files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check lock safety. Each FILE is a JSON document `{"holds": [...]}`
    /// (see README).
    Lock {
        /// Write a self-contained HTML report here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Print one JSON line per file: {"file","valid","violations"}.
        #[arg(long)]
        json: bool,
        /// Lock history files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Time the checker on porcupine's etcd_NNN.log files in DIR (sum of
    /// per-file medians, check time only, parsing excluded).
    Bench {
        /// Directory holding etcd_NNN.log files.
        dir: PathBuf,
        /// Runs per file (the median is taken).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Print a JSON summary line instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// A parsed history of either model.
enum Loaded {
    Register(History<detcd_jepsen::RegisterInput, detcd_jepsen::RegisterOutput>),
    Kv(History<detcd_jepsen::KvInput, detcd_jepsen::KvOutput>, bool),
}

fn load(path: &Path, format: Format, model: ModelArg) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let format = match format {
        Format::Auto => {
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            if first.contains("jepsen.util") {
                Format::PorcupineEtcd
            } else if first.trim_start().starts_with("{:") {
                Format::PorcupineKv
            } else if first.is_empty() && path.extension().is_some_and(|e| e == "log") {
                Format::PorcupineEtcd
            } else {
                Format::Jsonl
            }
        }
        f => f,
    };
    let err = |e: detcd_jepsen::HistoryError| format!("{}: {e}", path.display());
    let loaded = match format {
        Format::PorcupineEtcd => Loaded::Register(parse_etcd_log(&text).map_err(err)?),
        Format::PorcupineKv => Loaded::Kv(parse_kv_log(&text).map_err(err)?, true),
        Format::Jsonl | Format::Auto => match model {
            ModelArg::Register => {
                Loaded::Register(History::from_jsonl(text.as_bytes()).map_err(err)?)
            }
            ModelArg::Kv => Loaded::Kv(History::from_jsonl(text.as_bytes()).map_err(err)?, false),
        },
    };
    // Never check a malformed history (the checker would have to guess
    // what it means): reject it, whatever parser produced it.
    let valid = match &loaded {
        Loaded::Register(h) => h.validate(),
        Loaded::Kv(h, _) => h.validate(),
    };
    valid.map_err(err)?;
    Ok(loaded)
}

/// `--timeout SECS` as a duration: negative or NaN is an error; a value
/// too large for a `Duration` (or infinity) means no limit.
fn timeout_duration(secs: f64) -> Result<Option<Duration>, String> {
    if secs.is_nan() || secs < 0.0 {
        return Err(format!("{secs} is not a number of seconds >= 0"));
    }
    Ok(Duration::try_from_secs_f64(secs).ok())
}

fn run_check(loaded: &Loaded, opts: &CheckOptions) -> detcd_jepsen::CheckResult {
    match loaded {
        Loaded::Register(h) => check_with(&RegisterModel, h, opts),
        Loaded::Kv(h, empty_is_absent) => {
            check_with(&KvModel::for_history(h, *empty_is_absent), h, opts)
        }
    }
}

fn cmd_check(
    format: Format,
    model: ModelArg,
    html: Option<PathBuf>,
    timeout: Option<f64>,
    json: bool,
    files: Vec<PathBuf>,
) -> ExitCode {
    let timeout = match timeout.map(timeout_duration).transpose() {
        Ok(t) => t.flatten(),
        Err(e) => {
            eprintln!("error: --timeout: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = CheckOptions {
        timeout,
        ..CheckOptions::default()
    };
    let mut report = Report::new("detcd-jepsen report");
    let mut errors = false;
    for f in &files {
        let name = f.display().to_string();
        let loaded = match load(f, format, model) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                errors = true;
                continue;
            }
        };
        let r = run_check(&loaded, &opts);
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "file": name,
                    "valid": r.verdict.as_valid(),
                    "ops": r.ops,
                    "ms": r.elapsed.as_secs_f64() * 1e3,
                })
            );
        }
        report.sections.push(Section::from_check(name, &r));
    }
    if !json {
        print!("{}", report.summary());
    }
    if let Some(out) = html {
        if let Err(e) = std::fs::write(&out, report.to_html()) {
            eprintln!("error: writing {}: {e}", out.display());
            errors = true;
        }
    }
    exit_code(errors, report.verdict())
}

/// Shared driver for the watch and lock subcommands: parse each file as
/// JSON, run the checker, print and report.
fn cmd_json_checker<T: serde::de::DeserializeOwned>(
    what: &str,
    html: Option<PathBuf>,
    json: bool,
    files: Vec<PathBuf>,
    validate: impl Fn(&T) -> Result<(), String>,
    run: impl Fn(&T, String) -> (Section, usize),
) -> ExitCode {
    let mut report = Report::new(format!("detcd-jepsen {what} report"));
    let mut errors = false;
    for f in &files {
        let name = f.display().to_string();
        let parsed = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<T>(&t).map_err(|e| e.to_string()))
            .and_then(|d| validate(&d).map(|()| d));
        let doc = match parsed {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {name}: {e}");
                errors = true;
                continue;
            }
        };
        let (section, violations) = run(&doc, name.clone());
        if json {
            println!(
                "{}",
                serde_json::json!({"file": name, "valid": violations == 0, "violations": violations})
            );
        }
        report.sections.push(section);
    }
    if !json {
        print!("{}", report.summary());
    }
    if let Some(out) = html {
        if let Err(e) = std::fs::write(&out, report.to_html()) {
            eprintln!("error: writing {}: {e}", out.display());
            errors = true;
        }
    }
    exit_code(errors, report.verdict())
}

/// 0 when everything was checked and valid, 1 when everything was checked
/// and something is invalid, 2 when a file could not be read, parsed or
/// validated (even if another file was invalid) or a verdict is unknown.
fn exit_code(errors: bool, verdict: Verdict) -> ExitCode {
    match (errors, verdict) {
        (true, _) | (false, Verdict::Unknown) => ExitCode::from(2),
        (false, Verdict::Linearizable) => ExitCode::SUCCESS,
        (false, Verdict::NotLinearizable) => ExitCode::from(1),
    }
}

fn cmd_bench(dir: &Path, runs: usize, json: bool) -> ExitCode {
    match detcd_jepsen::bench::bench_etcd_dir(dir, runs) {
        Ok(summary) => {
            if json {
                println!("{}", summary.json());
            } else {
                print!("{}", summary.text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check {
            format,
            model,
            html,
            timeout,
            json,
            files,
        } => cmd_check(format, model, html, timeout, json, files),
        Cmd::Watch { html, json, files } => cmd_json_checker(
            "watch",
            html,
            json,
            files,
            |_: &detcd_jepsen::WatchHistory| Ok(()),
            |h: &detcd_jepsen::WatchHistory, name| {
                let r = detcd_jepsen::check_watches(h);
                (r.to_section(format!("{name} (watch)")), r.violations.len())
            },
        ),
        Cmd::Lock { html, json, files } => cmd_json_checker(
            "lock",
            html,
            json,
            files,
            detcd_jepsen::LockHistory::validate,
            |h: &detcd_jepsen::LockHistory, name| {
                let r = detcd_jepsen::check_locks(h);
                (r.to_section(format!("{name} (lock)")), r.violations.len())
            },
        ),
        Cmd::Bench { dir, runs, json } => cmd_bench(&dir, runs, json),
    }
}
