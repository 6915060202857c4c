//! Judging a finished simulation: the history check, the invariants, and the HTML report of a
//! failure.

use std::path::{Path, PathBuf};

use detcd_jepsen::{History, Report, Section, Verdict};

use super::simulate::Simulated;
use super::{Failure, RunConfig, RunReport};
use crate::nemesis::Schedule;
use crate::workloads::register::{self, KvOp};

/// Turns what the simulation produced (or the panic that ended it) into a report; writes the
/// HTML report of a failure.
pub(super) fn judge(
    config: &RunConfig,
    schedule: &Schedule,
    simulated: Result<Simulated, String>,
) -> RunReport {
    let mut report = RunReport::empty(config, schedule);
    let mut html = Report::new(format!("detcd-sim seed {}", config.seed));
    html.sections.push(Section {
        title: "fault schedule".to_string(),
        verdict: Verdict::Linearizable,
        text: schedule.to_string(),
        html: String::new(),
    });
    let sim = match simulated {
        Ok(sim) => sim,
        Err(panic) => {
            html.sections
                .push(violation_section("the run panicked", &panic));
            report.failure = Some(Failure {
                message: format!("panic: {}", first_line(&panic)),
                explanation: panic,
                html_path: write_html(config, &html),
            });
            return report;
        }
    };
    let mut trace = sim.trace;
    report.ops = sim.ops.len();
    report.faults_seen = sim.seen;
    report.simulated = sim.simulated;
    report.wal = sim.wal;
    report.refusals = sim.refusals;
    let history = history_of(&sim.ops);
    let check = register::check(sim.ops);
    report.verdict = check.verdict;
    trace.record(format!("verdict {:?}", check.verdict));
    report.trace_hash = trace.hash();
    report.trace = trace.events().to_vec();
    html.sections
        .push(Section::from_check("history (etcd KV model)", &check));
    let mut problems = Vec::new();
    match check.verdict {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable => problems.push("the history is not linearizable".to_string()),
        Verdict::Unknown => problems.push("the linearizability checker gave up".to_string()),
    }
    if !sim.violations.is_empty() {
        html.sections
            .push(violation_section("invariants", &sim.violations.join("\n")));
        problems.push(format!("invariant violated: {}", sim.violations[0]));
    }
    if problems.is_empty() {
        return report;
    }
    let mut explanation = String::new();
    if let Some(e) = &check.explanation {
        explanation.push_str(&e.summary());
    }
    for v in &sim.violations {
        explanation.push_str(v);
        explanation.push('\n');
    }
    html.sections.push(Section {
        title: "history (JSON lines)".to_string(),
        verdict: Verdict::Linearizable,
        text: history,
        html: String::new(),
    });
    report.failure = Some(Failure {
        message: problems.join("; "),
        explanation,
        html_path: write_html(config, &html),
    });
    report
}

pub(super) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

pub(super) fn violation_section(title: &str, text: &str) -> Section {
    Section {
        title: title.to_string(),
        verdict: Verdict::NotLinearizable,
        text: text.to_string(),
        html: String::new(),
    }
}

/// The recorded history in detcd-jepsen's JSON-lines format, so it can be checked again with
/// the `detcd-jepsen` CLI.
fn history_of(ops: &[KvOp]) -> String {
    let mut h = History::new();
    for op in ops {
        h.push(op.clone());
    }
    let mut out = Vec::new();
    if h.to_jsonl(&mut out).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the report as `<report_dir>/seed-<seed>.html`; `None` if the file system refused.
pub(super) fn write_html(config: &RunConfig, report: &Report) -> Option<PathBuf> {
    let path = config.report_dir.join(format!("seed-{}.html", config.seed));
    write_file(&config.report_dir, &path, &report.to_html()).then_some(path)
}

// The one file-system write of the simulator crate: a report for people, written after the
// simulation ended, so it cannot affect any run.
fn write_file(dir: &Path, path: &Path, text: &str) -> bool {
    std::fs::create_dir_all(dir).is_ok() && std::fs::write(path, text).is_ok()
}
