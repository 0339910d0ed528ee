//! Smoke test: every workload of every area runs once on tiny sizes and
//! yields well-formed records, JSON and SVG. No timing is asserted.

use converge_benches::record::to_json;
use converge_benches::runner::AREAS;
use converge_benches::{run_suite, svg, Suite};
use std::collections::HashSet;

#[test]
fn every_workload_runs_once_and_reports() {
    let mut seen = 0;
    let records = run_suite(Suite::Smoke, &mut |_| seen += 1).expect("smoke suite runs");
    assert_eq!(seen, records.len(), "progress sees every record");

    let names: HashSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), records.len(), "record names are unique");
    for area in AREAS {
        assert!(
            records
                .iter()
                .any(|r| r.name.starts_with(&format!("{area}/"))),
            "area {area} produced no record"
        );
    }
    for prefix in [
        "local/", "rmw/", "remote/", "join/", "scale/", "read/", "aae/",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(prefix)),
            "{prefix} missing"
        );
    }
    for r in &records {
        assert!(
            r.value.is_finite() && r.value > 0.0,
            "{}: {}",
            r.name,
            r.value
        );
        assert_eq!(r.peer.is_some(), r.peer_value.is_some(), "{}", r.name);
        if let Some(p) = r.peer_value {
            assert!(p.is_finite() && p > 0.0, "{}: peer {p}", r.name);
        }
    }

    let json: serde_json::Value = serde_json::from_str(&to_json(&records)).expect("valid JSON");
    let list = json.as_array().expect("a JSON list");
    assert_eq!(list.len(), records.len());
    for item in list {
        for field in ["name", "value", "unit", "peer", "peer_value", "ratio"] {
            assert!(item.get(field).is_some(), "{field} missing in {item}");
        }
    }

    let plot = svg::plot("smoke", &records);
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    assert_eq!(plot.matches("<svg").count(), 1);
    for r in &records {
        assert!(plot.contains(r.name.as_str()), "{} not plotted", r.name);
    }
}
