//! Running each simulation in a child process, so it replays bit for bit (see the module docs
//! of [`crate::run`] for why a second run in one process may not).
//!
//! The child is the `detcd-sim` binary in worker mode: it reads the run's configuration and
//! schedule as one JSON object on stdin, runs it, and prints the [`RunReport`] as JSON on
//! stdout.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{run_schedule, Failure, RunConfig, RunReport};
use crate::nemesis::Schedule;

/// The flag that puts `detcd-sim` in worker mode.
pub const WORKER_FLAG: &str = "--worker";

/// What a worker is asked to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The configuration (its seed included).
    pub config: RunConfig,
    /// The schedule to play.
    pub schedule: Schedule,
}

/// Runs `schedule` under `config` in a fresh `worker` process (the `detcd-sim` binary).
pub fn run_isolated(worker: &Path, config: &RunConfig, schedule: &Schedule) -> RunReport {
    let job = Job {
        config: config.clone(),
        schedule: schedule.clone(),
    };
    match spawn(worker, &job) {
        Ok(r) => r,
        Err(e) => RunReport {
            failure: Some(Failure {
                message: format!("the worker process failed: {}", first_line(&e)),
                explanation: e,
                html_path: None,
            }),
            ..RunReport::empty(config, schedule)
        },
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn spawn(worker: &Path, job: &Job) -> Result<RunReport, String> {
    let mut child = Command::new(worker)
        .arg(WORKER_FLAG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // The members' logs (DETCD_SIM_LOG) go where the user looks.
        .stderr(match std::env::var_os("DETCD_SIM_LOG") {
            Some(_) => Stdio::inherit(),
            None => Stdio::piped(),
        })
        .spawn()
        .map_err(|e| format!("{}: {e}", worker.display()))?;
    let input = serde_json::to_vec(job).map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(&input)
        .map_err(|e| format!("writing the job: {e}"))?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).map_err(|e| {
        format!(
            "{e} (exit {:?}); its stderr ends with:\n{}",
            out.status.code(),
            tail(&String::from_utf8_lossy(&out.stderr))
        )
    })
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Worker mode: reads a [`Job`] from stdin, runs it in this process, prints the report as one
/// JSON line. Returns the exit code.
pub fn worker_main() -> i32 {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("detcd-sim worker: reading the job: {e}");
        return 2;
    }
    let job: Job = match serde_json::from_str(&input) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("detcd-sim worker: bad job: {e}");
            return 2;
        }
    };
    let report = run_schedule(&job.config, &job.schedule);
    match serde_json::to_string(&report) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("detcd-sim worker: {e}");
            2
        }
    }
}
