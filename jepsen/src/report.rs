//! One report for all checkers: a short text summary and a self-contained
//! HTML page with a section per checked history.

use crate::checker::{CheckResult, Verdict};
use crate::explain::{html_escape, html_page};
use std::fmt::Write as _;

/// One checked artifact (a history file, a set of watch streams, ...).
#[derive(Clone, Debug)]
pub struct Section {
    /// What was checked (usually a file name and checker).
    pub title: String,
    /// The verdict. For the watch and lock checkers `Linearizable` means
    /// "every guarantee held" and `NotLinearizable` "something was violated".
    pub verdict: Verdict,
    /// A short plain-text account (empty when there is nothing to say).
    pub text: String,
    /// HTML details (already escaped), e.g. an explanation timeline.
    pub html: String,
}

impl Section {
    /// A section for a linearizability check.
    pub fn from_check(title: impl Into<String>, r: &CheckResult) -> Section {
        let mut text = format!(
            "{} ops in {} partition(s), {} configurations, {:.3} ms",
            r.ops,
            r.partitions,
            r.states,
            r.elapsed.as_secs_f64() * 1e3
        );
        let mut html = String::new();
        if let Some(e) = &r.explanation {
            text.push('\n');
            text.push_str(&e.summary());
            html = e.html_fragment();
        } else if r.verdict == Verdict::Unknown {
            text.push_str("\ngave up (timeout or memory cap) before deciding");
        }
        Section {
            title: title.into(),
            verdict: r.verdict,
            text,
            html,
        }
    }
}

fn verdict_word(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Linearizable => ("valid", "ok"),
        Verdict::NotLinearizable => ("INVALID", "notok"),
        Verdict::Unknown => ("unknown", "unknown"),
    }
}

/// A report: sections in order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Page title.
    pub title: String,
    /// The sections.
    pub sections: Vec<Section>,
}

impl Report {
    /// An empty report with a title.
    pub fn new(title: impl Into<String>) -> Report {
        Report {
            title: title.into(),
            sections: Vec::new(),
        }
    }

    /// The worst verdict over all sections (any violation wins, then
    /// unknown, else valid). An empty report is valid.
    pub fn verdict(&self) -> Verdict {
        let vs: Vec<Verdict> = self.sections.iter().map(|s| s.verdict).collect();
        if vs.contains(&Verdict::NotLinearizable) {
            Verdict::NotLinearizable
        } else if vs.contains(&Verdict::Unknown) {
            Verdict::Unknown
        } else {
            Verdict::Linearizable
        }
    }

    /// Plain-text summary: one line per section plus its details.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for sec in &self.sections {
            let _ = writeln!(s, "{}: {}", sec.title, verdict_word(sec.verdict).0);
            for line in sec.text.lines() {
                let _ = writeln!(s, "  {line}");
            }
        }
        s
    }

    /// The self-contained HTML page (inline CSS and JS, no network).
    pub fn to_html(&self) -> String {
        let mut body = String::new();
        let _ = writeln!(
            body,
            "<table><tr><th>checked</th><th>verdict</th></tr>{}</table>",
            self.sections
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let (w, c) = verdict_word(s.verdict);
                    format!(
                        "<tr><td><a href=\"#s{i}\">{}</a></td><td class=\"{c}\">{w}</td></tr>",
                        html_escape(&s.title)
                    )
                })
                .collect::<String>()
        );
        for (i, s) in self.sections.iter().enumerate() {
            let (w, c) = verdict_word(s.verdict);
            let _ = writeln!(
                body,
                "<h2 id=\"s{i}\">{} — <span class=\"{c}\">{w}</span></h2>",
                html_escape(&s.title)
            );
            if s.html.is_empty() {
                let _ = writeln!(body, "<pre>{}</pre>", html_escape(&s.text));
            } else {
                let first = s.text.lines().next().unwrap_or("");
                let _ = writeln!(body, "<p>{}</p>{}", html_escape(first), s.html);
            }
        }
        html_page(&self.title, &body)
    }
}
