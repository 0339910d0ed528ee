//! The plot: for every record, a Converge bar and a peer bar on a
//! logarithmic axis, one panel per unit (throughput, latency), with the
//! ratio and the goal verdict beside each pair. Plain SVG, written by hand.

use crate::record::{human, Record, MICROS};
use std::fmt::Write as _;

const WIDTH: f64 = 1180.0;
const LABEL_W: f64 = 330.0;
const PLOT_X: f64 = LABEL_W + 10.0;
const PLOT_W: f64 = 600.0;
const ROW_H: f64 = 30.0;
const BAR_H: f64 = 11.0;
const OURS: &str = "#2b6cb0";
const PEER: &str = "#dd8452";

/// Label of the gridline at 10^d: 0.1, 1, 10, 1k, 10M, …
fn decade_label(d: i32) -> String {
    const SUFFIX: [&str; 4] = ["", "k", "M", "G"];
    if d < 0 {
        return format!("{}", 10f64.powi(d));
    }
    let group = (d / 3).min(3);
    format!(
        "{}{}",
        10u64.pow((d - group * 3) as u32),
        SUFFIX[group as usize]
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Decades spanned by the values of a panel: (low, high) exponents.
fn decades(records: &[&Record]) -> (i32, i32) {
    let values = records
        .iter()
        .flat_map(|r| std::iter::once(r.value).chain(r.peer_value))
        .filter(|v| *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0, 1);
    }
    let lo = lo.log10().floor() as i32;
    let hi = (hi.log10().ceil() as i32).max(lo + 1);
    (lo, hi)
}

struct Panel<'a> {
    title: &'a str,
    records: Vec<&'a Record>,
}

fn panel(out: &mut String, y0: f64, p: &Panel) -> f64 {
    let (lo, hi) = decades(&p.records);
    let x_of = |v: f64| -> f64 {
        let t = (v.max(10f64.powi(lo)).log10() - lo as f64) / (hi - lo) as f64;
        PLOT_X + t * PLOT_W
    };
    let _ = writeln!(
        out,
        r#"<text x="10" y="{:.1}" class="title">{}</text>"#,
        y0 + 18.0,
        esc(p.title)
    );
    let top = y0 + 40.0;
    let bottom = top + p.records.len() as f64 * ROW_H;
    for d in lo..=hi {
        let x = x_of(10f64.powi(d));
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"##,
            top - 4.0,
            top - 8.0,
            decade_label(d)
        );
    }
    for (i, r) in p.records.iter().enumerate() {
        let y = top + i as f64 * ROW_H;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end">{}</text>"#,
            LABEL_W,
            y + ROW_H / 2.0 + 4.0,
            esc(&r.name)
        );
        let bar = |out: &mut String, v: f64, dy: f64, color: &str, who: &str| {
            let w = (x_of(v) - PLOT_X).max(1.0);
            let _ = writeln!(
                out,
                r#"<rect x="{PLOT_X:.1}" y="{:.1}" width="{w:.1}" height="{BAR_H}" fill="{color}"><title>{}: {} {}</title></rect>"#,
                y + dy,
                esc(who),
                human(v),
                r.unit
            );
        };
        bar(out, r.value, 3.0, OURS, "converge");
        if let (Some(v), Some(peer)) = (r.peer_value, &r.peer) {
            bar(out, v, 3.0 + BAR_H + 1.0, PEER, peer);
        }
        let verdict = match (r.ratio(), r.goal, r.met()) {
            (Some(x), Some(g), Some(met)) => {
                let mark = if met { "met" } else { "missed" };
                format!("{x:.2}x (goal {g}x: {mark})")
            }
            (Some(x), _, _) => format!("{x:.2}x"),
            _ => format!("{} {}", human(r.value), r.unit),
        };
        let color = match r.met() {
            Some(true) => "#2f855a",
            Some(false) => "#c53030",
            None => "#333",
        };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="label" fill="{color}">{}</text>"#,
            PLOT_X + PLOT_W + 10.0,
            y + ROW_H / 2.0 + 4.0,
            esc(&verdict)
        );
    }
    bottom + 20.0
}

/// The SVG document for `records` of `suite`.
pub fn plot(suite: &str, records: &[Record]) -> String {
    let panels = [
        Panel {
            title: "Throughput, ops/s (log scale; higher is better; ratio = converge / peer)",
            records: records.iter().filter(|r| r.unit != MICROS).collect(),
        },
        Panel {
            title: "Latency, microseconds (log scale; lower is better; ratio = converge / peer)",
            records: records.iter().filter(|r| r.unit == MICROS).collect(),
        },
    ];
    let mut body = String::new();
    let mut y = 60.0;
    for p in panels.iter().filter(|p| !p.records.is_empty()) {
        y = panel(&mut body, y, p);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y:.0}" viewBox="0 0 {WIDTH} {y:.0}" font-family="sans-serif">"#
    );
    out.push_str(
        "<style>.title{font-size:15px;font-weight:bold}.label{font-size:12px}.axis{font-size:11px;fill:#555}</style>\n",
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="white"/><text x="10" y="24" class="title">Converge benchmarks, suite "{}": Converge vs peer (medians)</text>"##,
        esc(suite)
    );
    let _ = writeln!(
        out,
        r#"<rect x="10" y="36" width="14" height="10" fill="{OURS}"/><text x="30" y="45" class="label">converge</text><rect x="110" y="36" width="14" height="10" fill="{PEER}"/><text x="130" y="45" class="label">peer (named in the table / JSON)</text>"#
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::OPS_PER_S;

    #[test]
    fn plot_has_a_bar_per_value_and_escapes_labels() {
        let records = vec![
            Record::versus("local/a<b", 8e4, OPS_PER_S, "rocksdb put", 1e5).goal(0.8),
            Record::alone("aae/root", 2.5, MICROS),
        ];
        let svg = plot("quick", &records);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=\"340.0\"").count(), 3);
        assert!(svg.contains("local/a&lt;b"));
        assert!(svg.contains("goal 0.8x: met"));
        assert_eq!(decade_label(4), "10k");
        assert_eq!(decade_label(-1), "0.1");
        assert_eq!(decade_label(0), "1");
    }
}
