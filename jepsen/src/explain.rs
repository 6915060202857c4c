//! Explanations of linearizability violations: the partition, the longest
//! linearizable prefix found, and the operations that cannot be placed
//! next, with model states; rendered as text or as a self-contained HTML
//! timeline.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// An operation of the violating partition, as shown in reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpView {
    /// Index of the operation in the checked history.
    pub history_index: usize,
    /// The client process.
    pub process: u64,
    /// Invoke time.
    pub invoke: u64,
    /// Completion time; `None` for `info` (unknown outcome, open forever).
    pub complete: Option<u64>,
    /// `ok` or `info`.
    pub outcome: String,
    /// Model-provided description, e.g. `read -> 3`.
    pub description: String,
}

/// One step of the longest linearizable prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrefixStep {
    /// Index into [`Explanation::ops`].
    pub op: usize,
    /// Model state before the step.
    pub state_before: String,
    /// Model state after the step.
    pub state_after: String,
}

/// An operation that could come next in real time but cannot be
/// linearized next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Blocked {
    /// Index into [`Explanation::ops`].
    pub op: usize,
    /// Why, in words.
    pub reason: String,
}

/// Why a history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// Index of the violating partition.
    pub partition: usize,
    /// Its keys (empty for single-object models like the register).
    pub partition_keys: Vec<String>,
    /// The partition's operations (failed ops and unknown reads, which
    /// cannot matter, are not included), sorted by invoke time.
    pub ops: Vec<OpView>,
    /// The model's initial state.
    pub initial_state: String,
    /// The longest linearizable prefix found (most `ok` ops placed).
    pub prefix: Vec<PrefixStep>,
    /// The state after the prefix.
    pub stuck_state: String,
    /// The unplaced `ok` op that completes first: every op placed next
    /// must have been invoked before it completed. `None` if all `ok` ops
    /// were placed (cannot happen for a violation, kept for robustness).
    pub frontier: Option<usize>,
    /// The `ok` ops that could come next in real time, and why none can.
    pub blocked: Vec<Blocked>,
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

impl Explanation {
    fn op_label(&self, j: usize) -> String {
        let o = &self.ops[j];
        let end = o
            .complete
            .map_or_else(|| "∞".to_string(), |c| c.to_string());
        format!(
            "p{} [{}, {}] {} ({})",
            o.process, o.invoke, end, o.description, o.outcome
        )
    }

    /// A short plain-text summary (a few lines plus one per blocked op).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let keys = if self.partition_keys.is_empty() {
            String::new()
        } else {
            format!(" (keys {})", self.partition_keys.join(", "))
        };
        let required = self.ops.iter().filter(|o| o.outcome == "ok").count();
        let placed = self
            .prefix
            .iter()
            .filter(|p| self.ops[p.op].outcome == "ok")
            .count();
        let _ = writeln!(
            s,
            "partition {}{}: {} ops; longest linearizable prefix places {} of {} completed ops ({} steps), ending in state {}",
            self.partition,
            keys,
            self.ops.len(),
            placed,
            required,
            self.prefix.len(),
            self.stuck_state
        );
        if let Some(last) = self.prefix.last() {
            let _ = writeln!(s, "  last placed: {}", self.op_label(last.op));
        }
        if let Some(f) = self.frontier {
            let _ = writeln!(s, "  must come before the end of: {}", self.op_label(f));
        }
        for b in &self.blocked {
            let _ = writeln!(
                s,
                "  cannot place next: {} — {}",
                self.op_label(b.op),
                b.reason
            );
        }
        s
    }

    /// An HTML fragment (no `<html>` wrapper) with the timeline: one lane
    /// per process, operations as bars positioned by rank-compressed time,
    /// the prefix numbered in green, the blocked next steps in red, and
    /// states/reasons on hover. Needs [`HTML_STYLE`] and [`HTML_SCRIPT`].
    pub fn html_fragment(&self) -> String {
        // Rank-compress times so that bars are readable.
        let mut times: BTreeSet<u64> = BTreeSet::new();
        for o in &self.ops {
            times.insert(o.invoke);
            if let Some(c) = o.complete {
                times.insert(c);
            }
        }
        let rank: BTreeMap<u64, usize> = times.iter().enumerate().map(|(i, &t)| (t, i)).collect();
        let max_rank = times.len() + 1;
        // Pixels per time rank: wide bars for short histories, at least
        // 14 px so long ones stay scrollable rather than unreadable.
        let unit = (1400 / max_rank).clamp(14, 90);
        let width = max_rank * unit + 20;
        let mut procs: Vec<u64> = self.ops.iter().map(|o| o.process).collect();
        procs.sort_unstable();
        procs.dedup();
        let lane_of: BTreeMap<u64, usize> =
            procs.iter().enumerate().map(|(i, &p)| (p, i)).collect();
        let order: BTreeMap<usize, (usize, &PrefixStep)> = self
            .prefix
            .iter()
            .enumerate()
            .map(|(k, p)| (p.op, (k + 1, p)))
            .collect();
        let blocked: BTreeMap<usize, &Blocked> = self.blocked.iter().map(|b| (b.op, b)).collect();
        let lane_h = 30usize;
        let mut h = String::new();
        let _ = writeln!(
            h,
            "<div class=\"summary\"><pre>{}</pre></div>",
            esc(&self.summary())
        );
        let _ = writeln!(
            h,
            "<div class=\"legend\"><span class=\"bar lin\">placed (n = order)</span> <span class=\"bar bad\">cannot be placed next</span> \
             <span class=\"bar front\">earliest-completing unplaced op</span> <span class=\"bar other\">not placed</span> \
             <span class=\"bar other info\">unknown outcome (open to the end)</span></div>"
        );
        let _ = writeln!(
            h,
            "<div class=\"timeline\" style=\"width:{}px;height:{}px\">",
            width + 60,
            procs.len() * lane_h + 10
        );
        for (i, p) in procs.iter().enumerate() {
            let _ = writeln!(
                h,
                "<div class=\"lane\" style=\"top:{}px;width:{}px\"><span class=\"lanelabel\">p{}</span></div>",
                i * lane_h,
                width + 60,
                p
            );
        }
        for (j, o) in self.ops.iter().enumerate() {
            let x0 = rank[&o.invoke] * unit + 50;
            let x1 = o
                .complete
                .map_or(max_rank * unit + 50, |c| rank[&c] * unit + 50 + unit / 2);
            let w = (x1 - x0).max(6);
            let top = lane_of[&o.process] * lane_h + 4;
            let mut class = String::from("bar");
            let mut label = String::new();
            let mut tip = self.op_label(j);
            if let Some((k, step)) = order.get(&j) {
                class.push_str(" lin");
                label = format!("{k}");
                let _ = write!(
                    tip,
                    "\nplaced #{k}: state {} → {}",
                    step.state_before, step.state_after
                );
            } else if let Some(b) = blocked.get(&j) {
                class.push_str(" bad");
                label = "✗".into();
                let _ = write!(
                    tip,
                    "\ncannot be placed next in state {}: {}",
                    self.stuck_state, b.reason
                );
            } else {
                class.push_str(" other");
            }
            if self.frontier == Some(j) {
                class.push_str(" front");
            }
            if o.outcome == "info" {
                class.push_str(" info");
            }
            let _ = writeln!(
                h,
                "<div class=\"{class}\" style=\"left:{x0}px;top:{top}px;width:{w}px\" title=\"{}\" data-tip=\"{}\">{}&nbsp;{}</div>",
                esc(&tip),
                esc(&tip),
                esc(&label),
                esc(&o.description)
            );
        }
        let _ = writeln!(h, "</div>");
        let _ = writeln!(
            h,
            "<h3>Longest linearizable prefix</h3><table><tr><th>#</th><th>op</th><th>state before</th><th>state after</th></tr>"
        );
        for (k, p) in self.prefix.iter().enumerate() {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                k + 1,
                esc(&self.op_label(p.op)),
                esc(&p.state_before),
                esc(&p.state_after)
            );
        }
        let _ = writeln!(
            h,
            "</table><h3>Cannot be placed next (state {})</h3><ul>",
            esc(&self.stuck_state)
        );
        for b in &self.blocked {
            let _ = writeln!(
                h,
                "<li class=\"badtext\">{} — {}</li>",
                esc(&self.op_label(b.op)),
                esc(&b.reason)
            );
        }
        let _ = writeln!(h, "</ul>");
        h
    }
}

/// CSS for the HTML report (inlined; no network access needed).
pub const HTML_STYLE: &str = r#"
body { font-family: sans-serif; margin: 1em; color: #222; }
pre { background: #f6f6f6; padding: .5em; }
.timeline { position: relative; overflow-x: auto; border: 1px solid #ccc; margin: .5em 0; }
.lane { position: absolute; left: 0; height: 29px; border-bottom: 1px solid #eee; }
.lanelabel { position: absolute; left: 4px; top: 7px; font-size: 12px; color: #555; }
.bar { position: absolute; height: 20px; font-size: 11px; line-height: 20px; white-space: nowrap;
       overflow: hidden; border-radius: 3px; padding: 0 2px; box-sizing: border-box; cursor: default; }
.legend .bar { position: static; display: inline-block; margin-right: .5em; padding: 0 .4em; }
.lin { background: #9be39b; border: 1px solid #3a3; }
.bad { background: #f59a9a; border: 2px solid #c00; font-weight: bold; }
.other { background: #ddd; border: 1px solid #aaa; }
.front { outline: 2px dashed #e80; }
.info { background-image: repeating-linear-gradient(45deg, transparent, transparent 4px, rgba(0,0,0,.08) 4px, rgba(0,0,0,.08) 8px); }
.bar:hover { outline: 2px solid #00f; z-index: 5; }
#tip { position: fixed; bottom: 0; left: 0; right: 0; background: #ffe; border-top: 1px solid #cc9;
       padding: .4em; white-space: pre-wrap; font-family: monospace; min-height: 2.5em; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
.badtext { color: #a00; }
.ok { color: #070; } .notok { color: #a00; } .unknown { color: #a60; }
"#;

/// JavaScript for the HTML report: shows the hovered bar's details
/// (operation, states, reason) in a panel at the bottom.
pub const HTML_SCRIPT: &str = r#"
document.addEventListener('mouseover', function (e) {
  var t = e.target.closest ? e.target.closest('[data-tip]') : null;
  if (t) { document.getElementById('tip').textContent = t.getAttribute('data-tip'); }
});
"#;

/// Wraps HTML body content into a complete self-contained page.
pub fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head>\n<body>\n<h1>{}</h1>\n{}\n<div id=\"tip\">Hover over an operation to see its details and the model state.</div>\n<div style=\"height:4em\"></div>\n<script>{}</script>\n</body></html>\n",
        esc(title),
        HTML_STYLE,
        esc(title),
        body,
        HTML_SCRIPT
    )
}

/// HTML-escapes text (for report builders in this crate).
pub(crate) fn html_escape(s: &str) -> String {
    esc(s)
}
