//! One measured result and its peer, the table printed for people and the
//! JSON list written for tools.

use serde_json::{json, Value};
use std::fmt::Write as _;

/// Throughput unit: operations (or joins, merges) per second.
pub const OPS_PER_S: &str = "ops/s";
/// Latency unit: microseconds.
pub const MICROS: &str = "us";

/// One measurement: Converge's median and, if it has one, its peer's median
/// from the same run.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Stable name, `area/workload/parameters`.
    pub name: String,
    /// Converge's median.
    pub value: f64,
    /// [`OPS_PER_S`] (higher is better) or [`MICROS`] (lower is better).
    pub unit: &'static str,
    /// What it is compared with, if anything.
    pub peer: Option<String>,
    /// The peer's median, in the same unit.
    pub peer_value: Option<f64>,
    /// The goal for `value / peer_value`, if there is one.
    pub goal: Option<f64>,
}

impl Record {
    /// A record without a peer.
    pub fn alone(name: impl Into<String>, value: f64, unit: &'static str) -> Record {
        Record {
            name: name.into(),
            value,
            unit,
            peer: None,
            peer_value: None,
            goal: None,
        }
    }

    /// A record compared with `peer`.
    pub fn versus(
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        peer: impl Into<String>,
        peer_value: f64,
    ) -> Record {
        Record {
            peer: Some(peer.into()),
            peer_value: Some(peer_value),
            ..Record::alone(name, value, unit)
        }
    }

    /// This record with a goal for the ratio.
    pub fn goal(mut self, goal: f64) -> Record {
        self.goal = Some(goal);
        self
    }

    /// `value / peer_value`: for throughput, above 1 means Converge is
    /// faster; for latency, above 1 means Converge is slower.
    pub fn ratio(&self) -> Option<f64> {
        self.peer_value.filter(|p| *p > 0.0).map(|p| self.value / p)
    }

    /// Whether the goal is met (`None` without a goal).
    pub fn met(&self) -> Option<bool> {
        Some(self.ratio()? >= self.goal?)
    }

    /// Whether higher values are better.
    pub fn higher_is_better(&self) -> bool {
        self.unit != MICROS
    }

    /// The JSON object of this record.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "peer": self.peer,
            "peer_value": self.peer_value,
            "ratio": self.ratio(),
            "goal": self.goal,
        })
    }
}

/// The JSON list of records, pretty-printed.
pub fn to_json(records: &[Record]) -> String {
    let list: Vec<Value> = records.iter().map(Record::to_json).collect();
    // Serializing plain values cannot fail.
    serde_json::to_string_pretty(&Value::Array(list)).unwrap_or_else(|_| "[]".into())
}

/// A number with three significant digits and an SI suffix (`1.23M`).
pub fn human(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = match scaled.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    format!("{scaled:.digits$}{suffix}")
}

/// The table people read: workload, Converge value, peer, peer value,
/// ratio, goal, met.
pub fn table(records: &[Record]) -> String {
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                format!("{} {}", human(r.value), r.unit),
                r.peer.clone().unwrap_or_else(|| "-".into()),
                r.peer_value
                    .map(|p| format!("{} {}", human(p), r.unit))
                    .unwrap_or_else(|| "-".into()),
                r.ratio()
                    .map(|x| format!("{x:.2}x"))
                    .unwrap_or_else(|| "-".into()),
                r.goal
                    .map(|g| format!(">= {g}x"))
                    .unwrap_or_else(|| "-".into()),
                match r.met() {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let header = [
        "workload",
        "converge",
        "peer",
        "peer value",
        "ratio",
        "goal",
        "met?",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", parts.join(" | "));
    };
    line(&mut out, &header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_goal_and_json() {
        let r = Record::versus("local/x", 80.0, OPS_PER_S, "rocksdb put", 100.0).goal(0.8);
        assert_eq!(r.ratio(), Some(0.8));
        assert_eq!(r.met(), Some(true));
        let j = r.to_json();
        assert_eq!(j["name"], "local/x");
        assert_eq!(j["peer_value"], 100.0);
        assert_eq!(j["goal"], 0.8);
        let alone = Record::alone("aae/root", 3.0, MICROS);
        assert_eq!(alone.ratio(), None);
        assert!(alone.to_json()["ratio"].is_null());
        assert!(table(&[r, alone]).contains("| local/x"));
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(1234.0), "1.23k");
        assert_eq!(human(12_345_678.0), "12.3M");
        assert_eq!(human(5.0), "5.00");
    }
}
