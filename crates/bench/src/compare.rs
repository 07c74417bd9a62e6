//! Side by side: the reports of the same scenarios run against two (or
//! more) servers, lined up by metric key, with the ratio of the last server
//! to the first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Report;
use crate::report::{Better, format_num};
use crate::sys::Machine;

/// The order scenarios are shown in.
pub const SCENARIOS: [&str; 10] = [
    "connect",
    "connect-paced",
    "hold",
    "reject",
    "echo",
    "rpc",
    "fanout",
    "refresh",
    "revoke",
    "reconnect",
];

/// The reports of one server, by scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// The server's name, as given with `--run NAME=DIR`.
    pub name: String,
    /// Its reports, keyed by scenario name (`connect`, `connect-paced`, ...).
    pub reports: BTreeMap<String, Report>,
}

impl Run {
    /// Reads every `*.json` report in `dir`.
    pub fn load(name: &str, dir: &Path) -> Result<Self, String> {
        let mut reports = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                let report =
                    Report::read_json(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                reports.insert(report.scenario.clone(), report);
            }
        }
        Ok(Self {
            name: name.to_owned(),
            reports,
        })
    }
}

/// One line of the comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The scenario the metric belongs to.
    pub scenario: String,
    /// The metric's key (`scenario.name`); `<scenario>.errors` for the line
    /// of error totals.
    pub key: String,
    /// The metric's label, as shown in the table.
    pub label: String,
    /// The metric's unit (`ms`, `conn/s`, ...); empty for counts.
    pub unit: String,
    /// Which way is better, for the verdict.
    pub better: Better,
    /// One per server, in the order of `servers`.
    pub values: Vec<Option<f64>>,
    /// Last server / first server.
    pub ratio: Option<f64>,
    /// Which server is better on this line (10% margin), when it is clear.
    pub verdict: Option<String>,
}

/// The whole comparison, as written to `latest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// The mode recorded with `--mode` (e.g. `quick`), shown in the heading.
    pub mode: String,
    /// The machine, as detected when the comparison was made.
    pub machine: Machine,
    /// The servers' names, in the order of the runs; the first is the baseline.
    pub servers: Vec<String>,
    /// Free-text notes (`--note`), printed under the table.
    pub notes: Vec<String>,
    /// The lines of the table, scenario by scenario in [`SCENARIOS`] order
    /// (any other scenarios after), each scenario ending with its error total.
    pub rows: Vec<Row>,
    /// Each server's full reports.
    pub runs: Vec<Run>,
}

impl Comparison {
    /// Lines up `runs` by metric key: one row per metric any run reports for a
    /// scenario, plus the scenario's error total, each with its ratio and
    /// verdict.
    pub fn new(runs: Vec<Run>, machine: Machine, mode: String, notes: Vec<String>) -> Self {
        let servers: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
        let mut rows = Vec::new();
        let mut scenarios: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
        for run in &runs {
            for s in run.reports.keys() {
                if !scenarios.contains(s) {
                    scenarios.push(s.clone());
                }
            }
        }
        for scenario in &scenarios {
            let reports: Vec<Option<&Report>> =
                runs.iter().map(|r| r.reports.get(scenario)).collect();
            if reports.iter().all(Option::is_none) {
                continue;
            }
            let mut keys: Vec<(String, String, String, Better)> = Vec::new();
            for r in reports.iter().flatten() {
                for m in &r.metrics {
                    if !keys.iter().any(|k| k.0 == m.key) {
                        keys.push((m.key.clone(), m.label.clone(), m.unit.clone(), m.better));
                    }
                }
            }
            keys.push((
                format!("{scenario}.errors"),
                "errors".into(),
                String::new(),
                Better::Lower,
            ));
            for (key, label, unit, better) in keys {
                let values: Vec<Option<f64>> = reports
                    .iter()
                    .map(|r| {
                        let r = (*r)?;
                        if key.ends_with(".errors") {
                            Some(r.errors.total() as f64)
                        } else {
                            r.metric(&key)?.value
                        }
                    })
                    .collect();
                let (ratio, verdict) = judge(&values, better, &servers);
                rows.push(Row {
                    scenario: scenario.clone(),
                    key,
                    label,
                    unit,
                    better,
                    values,
                    ratio,
                    verdict,
                });
            }
        }
        Self {
            mode,
            machine,
            servers,
            notes,
            rows,
            runs,
        }
    }

    /// The side-by-side table, with failures and errors listed under it.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "sockgate-bench comparison ({} mode) on {} ({} cores, {} GiB, Linux {}), {}",
            self.mode, m.cpu_model, m.cores, m.memory_gib, m.kernel, m.date
        );
        let ratio_head = match self.servers.as_slice() {
            [first, .., last] => format!("{last}/{first}"),
            _ => "ratio".into(),
        };
        let mut header = format!("{:<9} {:<31}", "scenario", "metric");
        for s in &self.servers {
            let _ = write!(header, " {s:>16}");
        }
        let _ = write!(header, " {ratio_head:>20}");
        let _ = writeln!(out, "{header}");
        let _ = writeln!(out, "{}", "-".repeat(header.len() + 10));
        let mut last = "";
        for row in &self.rows {
            let scenario = if row.scenario == last {
                ""
            } else {
                &row.scenario
            };
            last = &row.scenario;
            let mut line = format!("{scenario:<9} {:<31}", truncate(&row.label, 31));
            for v in &row.values {
                let cell = match v {
                    None => "n/a".to_owned(),
                    Some(v) if row.unit.is_empty() => format_num(*v, ""),
                    Some(v) => format!("{} {}", format_num(*v, &row.unit), row.unit),
                };
                let _ = write!(line, " {cell:>16}");
            }
            let ratio = row.ratio.map_or(String::new(), |r| format!("{r:.2}x"));
            let verdict = row.verdict.as_deref().unwrap_or("");
            let _ = write!(line, " {ratio:>8} {verdict:<11}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let mut problems = Vec::new();
        for run in &self.runs {
            for scenario in SCENARIOS {
                let Some(r) = run.reports.get(scenario) else {
                    continue;
                };
                if let Some(f) = &r.failure {
                    problems.push(format!("{} {scenario}: FAILED: {f}", run.name));
                }
                if !r.errors.is_empty() {
                    let list: Vec<String> = r
                        .errors
                        .0
                        .iter()
                        .map(|(k, v)| format!("{k} ×{v}"))
                        .collect();
                    problems.push(format!(
                        "{} {scenario}: errors: {}",
                        run.name,
                        list.join(", ")
                    ));
                }
            }
        }
        let missing: Vec<String> = SCENARIOS
            .iter()
            .flat_map(|s| {
                self.runs
                    .iter()
                    .filter(|r| !r.reports.contains_key(*s))
                    .filter(|_| self.runs.iter().any(|o| o.reports.contains_key(*s)))
                    .map(move |r| format!("{} {s}", r.name))
            })
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(out, "n/a: not run: {}", missing.join(", "));
        }
        if problems.is_empty() {
            let _ = writeln!(out, "no errors");
        }
        for p in problems {
            let _ = writeln!(out, "{p}");
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }

    /// Writes the comparison to `path` as pretty JSON, creating its directory.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    /// Reads a comparison written by [`Comparison::write_json`].
    pub fn read_json(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// Ratio last/first and, beyond a 10% margin, which server is better.
fn judge(
    values: &[Option<f64>],
    better: Better,
    servers: &[String],
) -> (Option<f64>, Option<String>) {
    let (Some(Some(first)), Some(Some(last))) = (values.first(), values.last()) else {
        return (None, None);
    };
    if values.len() < 2 {
        return (None, None);
    }
    let ratio = (*first != 0.0).then(|| last / first);
    let (first_name, last_name) = (&servers[0], &servers[servers.len() - 1]);
    let verdict = match better {
        Better::Neither => None,
        _ if (first - last).abs() <= 0.1 * first.abs().max(last.abs()) => Some("≈".to_owned()),
        Better::Higher if last > first => Some(format!("{last_name} better")),
        Better::Lower if last < first => Some(format!("{last_name} better")),
        _ => Some(format!("{first_name} better")),
    };
    (ratio, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Errors, Metric};
    use serde_json::Value;

    fn report(scenario: &str, metrics: Vec<Metric>, errors: u64) -> Report {
        let mut e = Errors::default();
        e.add_n("ERR_X", errors);
        Report {
            scenario: scenario.into(),
            target: "t".into(),
            ok: errors == 0,
            failure: None,
            elapsed_s: 1.0,
            config: Value::Null,
            metrics,
            errors: e,
            notes: vec![],
            details: Value::Null,
        }
    }

    fn run(name: &str, reports: Vec<Report>) -> Run {
        Run {
            name: name.into(),
            reports: reports
                .into_iter()
                .map(|r| (r.scenario.clone(), r))
                .collect(),
        }
    }

    #[test]
    fn lines_up_metrics_and_judges_direction() {
        let rate = |v| Metric::new("echo.rate", "messages/s", "msg/s", Some(v), Better::Higher);
        let p99 = |v| {
            Metric::new(
                "echo.rtt.p99",
                "round trip p99",
                "ms",
                Some(v),
                Better::Lower,
            )
        };
        let peer = run(
            "peer",
            vec![report("echo", vec![rate(1000.0), p99(10.0)], 0)],
        );
        let sg = run(
            "sockgate",
            vec![
                report("echo", vec![rate(3000.0), p99(10.5)], 2),
                report("revoke", vec![Metric::count("revoke.ended", "ended", 5)], 0),
            ],
        );
        let c = Comparison::new(vec![peer, sg], Machine::default(), "quick".into(), vec![]);
        let row = |k: &str| c.rows.iter().find(|r| r.key == k).unwrap();
        assert_eq!(row("echo.rate").ratio, Some(3.0));
        assert_eq!(row("echo.rate").verdict.as_deref(), Some("sockgate better"));
        assert_eq!(row("echo.rtt.p99").verdict.as_deref(), Some("≈"));
        assert_eq!(row("echo.errors").values, vec![Some(0.0), Some(2.0)]);
        assert_eq!(row("echo.errors").verdict.as_deref(), Some("peer better"));
        assert_eq!(row("revoke.ended").values, vec![None, Some(5.0)]);
        let t = c.table();
        assert!(t.contains("sockgate/peer"), "{t}");
        assert!(t.contains("n/a: not run: peer revoke"), "{t}");
        assert!(t.contains("sockgate echo: errors: ERR_X ×2"), "{t}");
    }

    #[test]
    fn reconnect_rows_judge_shares_up_and_times_down() {
        let back = |v| {
            Metric::new(
                "reconnect.back_within_5s",
                "back within 5 s",
                "share",
                Some(v),
                Better::Higher,
            )
        };
        let p99 = |v| {
            Metric::new(
                "reconnect.return.p99",
                "disconnect→back p99",
                "ms",
                Some(v),
                Better::Lower,
            )
        };
        let peer = run(
            "peer",
            vec![report("reconnect", vec![back(0.5), p99(9000.0)], 0)],
        );
        let sg = run(
            "sockgate",
            vec![report("reconnect", vec![back(0.95), p99(4000.0)], 3)],
        );
        let c = Comparison::new(vec![peer, sg], Machine::default(), "quick".into(), vec![]);
        let row = |k: &str| c.rows.iter().find(|r| r.key == k).unwrap();
        assert_eq!(
            row("reconnect.back_within_5s").verdict.as_deref(),
            Some("sockgate better")
        );
        assert_eq!(
            row("reconnect.return.p99").verdict.as_deref(),
            Some("sockgate better")
        );
        assert_eq!(row("reconnect.errors").values, vec![Some(0.0), Some(3.0)]);
        let t = c.table();
        assert!(t.contains("0.950 share"), "{t}");
        // Listed under the table like every known scenario's errors.
        assert!(t.contains("sockgate reconnect: errors: ERR_X ×3"), "{t}");
    }
}
