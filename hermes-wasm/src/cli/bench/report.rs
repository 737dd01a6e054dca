//! The bench's results: each figure as it is measured (a progress line on
//! stderr), then one table of the figures and one of the ratios, or JSON.

use std::fmt::Write as _;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

/// What a figure counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// Events (or records) per second.
    PerSecond,
    /// Bytes per second.
    BytesPerSecond,
    /// Microseconds per call.
    Micros,
    /// Milliseconds.
    Millis,
    /// Mebibytes of resident memory.
    MiB,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::PerSecond => "events/s",
            Unit::BytesPerSecond => "MB/s",
            Unit::Micros => "µs",
            Unit::Millis => "ms",
            Unit::MiB => "MiB",
        }
    }

    fn show(self, value: f64) -> String {
        match self {
            Unit::PerSecond => thousands(value),
            Unit::BytesPerSecond => format!("{:.1}", value / 1e6),
            Unit::Micros | Unit::Millis => format!("{value:.2}"),
            Unit::MiB => format!("{value:.1}"),
        }
    }
}

/// A figure's goal relative to its reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// figure / reference must be at least this.
    AtLeast(f64),
    /// figure / reference must be at most this.
    AtMost(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(goal) => ratio >= goal,
            Target::AtMost(goal) => ratio <= goal,
        }
    }

    fn show(self) -> String {
        match self {
            Target::AtLeast(goal) => format!(">= {goal}"),
            Target::AtMost(goal) => format!("<= {goal}"),
        }
    }
}

struct Figure {
    key: String,
    group: &'static str,
    what: String,
    value: f64,
    unit: Unit,
    /// An absolute goal: at most this value.
    at_most: Option<f64>,
}

struct Ratio {
    what: String,
    figure: String,
    reference: String,
    value: Option<f64>,
    target: Target,
}

/// How many figures a run with every case gives: the progress bar's length.
const FIGURES: u64 = 41;

/// Collects the figures of one run.
pub struct Report {
    header: serde_json::Value,
    figures: Vec<Figure>,
    ratios: Vec<Ratio>,
    skipped: Vec<String>,
    progress: ProgressBar,
    json: bool,
    started: Instant,
}

impl Report {
    pub fn new(
        n: u64,
        n_durable: u64,
        dir: &tempfile::TempDir,
        redis: Option<&str>,
        json: bool,
    ) -> Report {
        let progress = ProgressBar::new(FIGURES);
        progress.set_style(
            ProgressStyle::with_template("[{elapsed}] {bar:30} {pos}/{len} figures: {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        progress.enable_steady_tick(std::time::Duration::from_millis(120));
        Report {
            header: json!({
                "events": n,
                "durable_events": n_durable,
                "dir": dir.path().display().to_string(),
                "redis": redis,
            }),
            figures: Vec::new(),
            ratios: Vec::new(),
            skipped: Vec::new(),
            progress,
            json,
            started: Instant::now(),
        }
    }

    /// Notes the machine, what the figures depend on, and the events' mean
    /// size in bytes of hermes JSON.
    pub fn machine(&mut self, event_bytes: u64) {
        self.header["event_bytes"] = json!(event_bytes);
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        self.header["cpus"] = json!(cpus);
        self.header["cpu"] = json!(model);
        self.header["version"] = json!(env!("CARGO_PKG_VERSION"));
    }

    /// Says what is being measured now.
    pub fn step(&self, what: &str) {
        self.progress.set_message(what.to_owned());
    }

    /// Records a figure.
    pub fn figure(&mut self, key: &str, group: &'static str, what: &str, value: f64, unit: Unit) {
        self.push(key, group, what, value, unit, None);
    }

    /// Records a figure with an absolute goal (at most `goal`).
    pub fn figure_at_most(
        &mut self,
        key: &str,
        group: &'static str,
        what: &str,
        value: f64,
        unit: Unit,
        goal: f64,
    ) {
        self.push(key, group, what, value, unit, Some(goal));
    }

    fn push(
        &mut self,
        key: &str,
        group: &'static str,
        what: &str,
        value: f64,
        unit: Unit,
        at_most: Option<f64>,
    ) {
        self.progress.inc(1);
        self.progress.println(format!(
            "  {group:<8} {what}: {} {}",
            unit.show(value),
            unit.name()
        ));
        self.figures.push(Figure {
            key: key.to_owned(),
            group,
            what: what.to_owned(),
            value,
            unit,
            at_most,
        });
    }

    /// Notes a case that could not run, why, and how many figures it would
    /// have given.
    pub fn skip(&mut self, what: &str, why: &str, figures: u64) {
        self.progress.dec_length(figures);
        self.progress.println(format!("  skipped: {what}: {why}"));
        self.skipped.push(format!("{what}: {why}"));
    }

    /// The value of a figure recorded earlier.
    pub fn value(&self, key: &str) -> Option<f64> {
        self.figures.iter().find(|f| f.key == key).map(|f| f.value)
    }

    /// Records the ratio of two figures and its target; a ratio whose figures
    /// were skipped shows as such.
    pub fn ratio(&mut self, what: &str, figure: &str, reference: &str, target: Target) {
        let value = match (self.value(figure), self.value(reference)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        self.ratios.push(Ratio {
            what: what.to_owned(),
            figure: figure.to_owned(),
            reference: reference.to_owned(),
            value,
            target,
        });
    }

    /// Prints the results.
    pub fn finish(self) {
        // Every figure counted: the bar's length is kept true.
        let counted = Some(self.progress.position()) == self.progress.length();
        self.progress.finish_and_clear();
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.json {
            let figures: Vec<_> = self
                .figures
                .iter()
                .map(|f| {
                    json!({
                        "key": f.key, "group": f.group, "what": f.what,
                        "value": f.value, "unit": f.unit.name(),
                        "at_most": f.at_most, "met": f.at_most.map(|goal| f.value <= goal),
                    })
                })
                .collect();
            let ratios: Vec<_> = self
                .ratios
                .iter()
                .map(|r| {
                    json!({
                        "what": r.what, "figure": r.figure, "reference": r.reference,
                        "ratio": r.value, "target": r.target.show(),
                        "met": r.value.map(|v| r.target.met(v)),
                    })
                })
                .collect();
            let out = json!({
                "run": self.header, "seconds": elapsed, "all_counted": counted,
                "figures": figures, "ratios": ratios, "skipped": self.skipped,
            });
            println!("{out:#}");
            return;
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "hermes-wasm bench: {} events of {} bytes per case ({} for the durable ones), {} CPUs ({}), in {}; {elapsed:.0} s\n",
            self.header["events"],
            self.header["event_bytes"],
            self.header["durable_events"],
            self.header["cpus"],
            self.header["cpu"].as_str().unwrap_or("?"),
            self.header["dir"].as_str().unwrap_or("?"),
        );
        let mut rows = vec![["group", "what", "figure", "unit", "goal"].map(str::to_owned)];
        for f in &self.figures {
            let goal = f.at_most.map_or(String::new(), |goal| {
                format!(
                    "<= {goal} {}",
                    if f.value <= goal { "met" } else { "MISSED" }
                )
            });
            rows.push([
                f.group.to_owned(),
                f.what.clone(),
                f.unit.show(f.value),
                f.unit.name().to_owned(),
                goal,
            ]);
        }
        table(&mut out, &rows, &[false, false, true, false, false]);
        out.push('\n');
        let mut rows = vec![["ratio", "value", "target", ""].map(str::to_owned)];
        for r in &self.ratios {
            let (value, met) = match r.value {
                Some(v) => (
                    format!("{v:.2}"),
                    if r.target.met(v) { "met" } else { "MISSED" },
                ),
                None => ("-".to_owned(), "skipped"),
            };
            rows.push([r.what.clone(), value, r.target.show(), met.to_owned()]);
        }
        table(&mut out, &rows, &[false, true, false, false]);
        for skipped in &self.skipped {
            let _ = writeln!(out, "skipped: {skipped}");
        }
        print!("{out}");
    }
}

/// Aligned columns, numbers to the right.
fn table<const N: usize>(out: &mut String, rows: &[[String; N]], right: &[bool; N]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if right[c] {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
            line.push_str("  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
        if i == 0 {
            let _ = writeln!(
                out,
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (N - 1))
            );
        }
    }
}

/// `1234567.8` as `1,234,568`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_print_readably() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(Unit::BytesPerSecond.show(123_456_789.0), "123.5");
    }

    #[test]
    fn a_ratio_meets_its_target_or_not() {
        assert!(Target::AtLeast(0.8).met(0.8));
        assert!(!Target::AtLeast(0.8).met(0.79));
        assert!(Target::AtMost(1.25).met(1.1));
        assert!(!Target::AtMost(1.25).met(1.3));
    }
}
