//! What a scenario reports: a flat list of metrics (what the tables and the
//! comparison line up), the errors by label, and the scenario's own typed
//! result as `details`. Printed as a table, written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::{Summary, ms};

/// Errors counted by label (a refusal code, or `ERR_...` for transport errors).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Errors(pub BTreeMap<String, u64>);

impl Errors {
    /// Counts one error under `label`.
    pub fn add(&mut self, label: impl Into<String>) {
        self.add_n(label, 1);
    }

    /// Counts `n` errors under `label` (nothing when `n` is 0).
    pub fn add_n(&mut self, label: impl Into<String>, n: u64) {
        if n > 0 {
            *self.0.entry(label.into()).or_default() += n;
        }
    }

    /// Adds every count of `other` to this one.
    pub fn merge(&mut self, other: &Errors) {
        for (k, v) in &other.0 {
            self.add_n(k.clone(), *v);
        }
    }

    /// All errors, over every label.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The count under `label` (0 when none).
    pub fn get(&self, label: &str) -> u64 {
        self.0.get(label).copied().unwrap_or_default()
    }

    /// Whether no error was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Serde for `Duration` as seconds (`1.5`), for readable configs.
pub mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `d` as seconds (`f64`).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Reads seconds (`f64`) into a `Duration`; a negative or non-finite value
    /// is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// Which way is better for a metric, for comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Lower is better (latencies, failures, memory).
    Lower,
    /// Higher is better (rates, shares).
    Higher,
    /// Informational (counts, settings).
    Neither,
}

/// One number of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Stable key, `scenario.name`, used to line up two servers.
    pub key: String,
    /// Human-readable name, as shown in tables (e.g. `connections/s`).
    pub label: String,
    /// Unit of `value` (`ms`, `MiB`, `conn/s`, `share`, ...); empty for counts.
    pub unit: String,
    /// `None` = not measured (n/a).
    pub value: Option<f64>,
    /// Which way is better, for comparisons.
    pub better: Better,
}

impl Metric {
    /// A metric from its parts.
    pub fn new(key: &str, label: &str, unit: &str, value: Option<f64>, better: Better) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            unit: unit.into(),
            value,
            better,
        }
    }

    /// A count: no unit, [`Better::Neither`].
    pub fn count(key: &str, label: &str, value: usize) -> Self {
        Self::new(key, label, "", Some(value as f64), Better::Neither)
    }

    /// p50, p90, p99 and max of `summary` in ms, keyed `prefix.p50` etc.
    pub fn latencies(prefix: &str, what: &str, summary: Option<&Summary>) -> Vec<Self> {
        let get = |f: fn(&Summary) -> u64| summary.map(|s| ms(f(s)));
        vec![
            Self::new(
                &format!("{prefix}.p50"),
                &format!("{what} p50"),
                "ms",
                get(|s| s.p50_us),
                Better::Lower,
            ),
            Self::new(
                &format!("{prefix}.p90"),
                &format!("{what} p90"),
                "ms",
                get(|s| s.p90_us),
                Better::Lower,
            ),
            Self::new(
                &format!("{prefix}.p99"),
                &format!("{what} p99"),
                "ms",
                get(|s| s.p99_us),
                Better::Lower,
            ),
            Self::new(
                &format!("{prefix}.max"),
                &format!("{what} max"),
                "ms",
                get(|s| s.max_us),
                Better::Lower,
            ),
        ]
    }

    /// [`Metric::latencies`] without p90, for scenarios whose tables are
    /// long enough already.
    pub fn latencies_short(prefix: &str, what: &str, summary: Option<&Summary>) -> Vec<Self> {
        let mut all = Self::latencies(prefix, what, summary);
        all.retain(|m| !m.key.ends_with(".p90"));
        all
    }

    /// The value as a table cell.
    pub fn cell(&self) -> String {
        match self.value {
            None => "n/a".into(),
            Some(v) => {
                let num = format_num(v, &self.unit);
                if self.unit.is_empty() {
                    num
                } else {
                    format!("{num} {}", self.unit)
                }
            }
        }
    }
}

/// Numbers with a sensible precision for their unit. A `share` (0..1) gets
/// three decimals.
pub fn format_num(v: f64, unit: &str) -> String {
    if unit == "share" {
        return format!("{v:.3}");
    }
    if unit.is_empty() || (v.fract() == 0.0 && v.abs() >= 1.0 && unit != "ms") {
        return format!("{v:.0}");
    }
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A scenario's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's name (`connect`, `connect-paced`, `hold`, ...); reports
    /// of two servers are lined up by it.
    pub scenario: String,
    /// The server, as `http://addr`.
    pub target: String,
    /// False when anything failed (errors counted, or the scenario's own check).
    pub ok: bool,
    /// A failure that is more than a count: e.g. a bad token was accepted,
    /// or the server lacks an endpoint the scenario needs.
    pub failure: Option<String>,
    /// Duration of the scenario's measured phase, in seconds (e.g. the hold
    /// for `hold`, the wait after the restart for `reconnect`).
    pub elapsed_s: f64,
    /// The scenario's parameters.
    pub config: Value,
    /// The numbers of the table, which comparisons line up by key.
    pub metrics: Vec<Metric>,
    /// Errors counted by label.
    pub errors: Errors,
    /// Remarks printed under the table (e.g. what was not measured).
    pub notes: Vec<String>,
    /// The scenario's typed result.
    pub details: Value,
}

impl Report {
    /// The metric with `key`.
    pub fn metric(&self, key: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.key == key)
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let status = if self.ok { "ok" } else { "FAILED" };
        let _ = writeln!(
            out,
            "== {} against {} ({:.1} s, {status})",
            self.scenario, self.target, self.elapsed_s
        );
        let _ = writeln!(out, "   config: {}", self.config);
        let width = self
            .metrics
            .iter()
            .map(|m| m.label.len())
            .chain(self.errors.0.keys().map(|k| k.len() + 8))
            .max()
            .unwrap_or(10)
            .max(24);
        for m in &self.metrics {
            let _ = writeln!(out, "   {:<width$}  {:>14}", m.label, m.cell());
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "   {:<width$}  {:>14}", "errors", "none");
        } else {
            let _ = writeln!(out, "   {:<width$}  {:>14}", "errors", self.errors.total());
            for (label, n) in &self.errors.0 {
                let _ = writeln!(out, "   {:<width$}  {n:>14}", format!("  error {label}"));
            }
        }
        if let Some(f) = &self.failure {
            let _ = writeln!(out, "   !!! FAILURE: {f}");
        }
        for n in &self.notes {
            let _ = writeln!(out, "   note: {n}");
        }
        out
    }

    /// Writes the report to `path` as pretty JSON, creating its directory.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    /// Reads a report written by [`Report::write_json`].
    pub fn read_json(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_count_by_label() {
        let mut e = Errors::default();
        e.add("TOKEN_INVALID");
        e.add("TOKEN_INVALID");
        e.add_n("ERR_TIMEOUT: handshake", 0);
        assert_eq!(e.total(), 2);
        assert_eq!(e.get("TOKEN_INVALID"), 2);
        assert!(!e.0.contains_key("ERR_TIMEOUT: handshake"));
    }

    #[test]
    fn cells_and_tables_show_units_and_errors() {
        assert_eq!(
            Metric::new("a", "a", "ms", Some(1.23456), Better::Lower).cell(),
            "1.23 ms"
        );
        assert_eq!(
            Metric::new("a", "a", "conn/s", Some(12345.6), Better::Higher).cell(),
            "12346 conn/s"
        );
        assert_eq!(Metric::count("a", "a", 7).cell(), "7");
        assert_eq!(
            Metric::new("a", "a", "share", Some(1.0), Better::Higher).cell(),
            "1.000 share"
        );
        assert_eq!(format_num(0.97345, "share"), "0.973");
        assert_eq!(
            Metric::new("a", "a", "ms", None, Better::Lower).cell(),
            "n/a"
        );
        let mut errors = Errors::default();
        errors.add("ERR_TCP_CONNECT: connection refused");
        let r = Report {
            scenario: "connect".into(),
            target: "http://127.0.0.1:1".into(),
            ok: false,
            failure: Some("boom".into()),
            elapsed_s: 1.0,
            config: Value::Null,
            metrics: vec![Metric::count("connect.connected", "connected", 3)],
            errors,
            notes: vec![],
            details: Value::Null,
        };
        let t = r.table();
        assert!(t.contains("FAILED"), "{t}");
        assert!(
            t.contains("error ERR_TCP_CONNECT: connection refused"),
            "{t}"
        );
        assert!(t.contains("!!! FAILURE: boom"), "{t}");
    }
}
