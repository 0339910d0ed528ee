//! Runs a whole suite: every workload area in turn, records in a stable
//! order.

use crate::record::Record;
use crate::suite::Suite;
use crate::{aae, bigset, joins, local, reads, remote, BenchResult};

/// The workload areas, in the order they run.
pub const AREAS: [&str; 7] = ["join", "local", "scale", "remote", "read", "aae", "bigset"];

/// Run every workload of `suite`; `progress` sees each record as soon as it
/// is measured.
pub fn run_suite(suite: Suite, progress: &mut dyn FnMut(&Record)) -> BenchResult<Vec<Record>> {
    run_areas(suite, &AREAS, progress)
}

/// Run the workloads of the named areas only (see [`AREAS`]).
pub fn run_areas(
    suite: Suite,
    areas: &[&str],
    progress: &mut dyn FnMut(&Record),
) -> BenchResult<Vec<Record>> {
    let sizes = suite.sizes();
    let mut out = Vec::new();
    for area in areas {
        let mut records = match *area {
            "join" => joins::records(&sizes, progress)?,
            "local" => local::records(&sizes, progress)?,
            "scale" => local::scale_records(&sizes, progress)?,
            "remote" => remote::records(&sizes, progress)?,
            "read" => reads::records(&sizes, progress)?,
            "aae" => aae::records(&sizes, progress)?,
            "bigset" => bigset::records(&sizes, progress)?,
            other => return Err(format!("unknown area {other:?} (one of {AREAS:?})").into()),
        };
        out.append(&mut records);
    }
    Ok(out)
}
