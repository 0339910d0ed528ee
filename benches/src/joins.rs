//! In-memory joins: Converge's `Lattice::join` against the `crdts` crate's
//! `CvRDT::merge` on equivalent diverged states (same actors, elements and
//! divergence; see [`crate::fixtures`]). Left operands (and, for `crdts`,
//! whose merge takes the right operand by value, right operands too) are
//! cloned in chunks outside the timed region.

use crate::fixtures::{
    crdts_gcounter_pair, crdts_mvreg_pair, crdts_orswot_pair, crdts_pncounter_pair, gcounter_pair,
    mvreg_pair, orset_pair, pncounter_pair,
};
use crate::measure::paired;
use crate::record::{Record, OPS_PER_S};
use crate::suite::Sizes;
use crate::BenchResult;
use converge::crdt::Lattice;
use crdts::CvRDT;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Goal: Converge's in-memory join at least this many times the `crdts`
/// crate's merge.
pub const GOAL_VS_CRDTS: f64 = 2.0;
/// Actors of the counter states.
pub const ACTORS: u64 = 64;
/// Members of the OR-Set states.
pub const ELEMENTS: u64 = 1_000;
/// Operand pairs cloned per timed chunk.
const CHUNK: usize = 64;

/// Joins per second of `join(left, right)` over `reps` fresh clones.
pub fn join_rate<L: Clone, R: Clone>(
    reps: usize,
    left: &L,
    right: &R,
    mut join: impl FnMut(&mut L, R),
) -> f64 {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < reps {
        let n = (reps - done).min(CHUNK);
        let mut lefts: Vec<L> = (0..n).map(|_| left.clone()).collect();
        let rights: Vec<R> = (0..n).map(|_| right.clone()).collect();
        let start = Instant::now();
        for (l, r) in lefts.iter_mut().zip(rights) {
            join(l, r);
        }
        total += start.elapsed();
        black_box(&lefts);
        done += n;
    }
    reps as f64 / total.as_secs_f64().max(1e-9)
}

/// Check that the two libraries' joins of their fixtures agree, so the
/// comparison is between equivalent states.
fn check_equivalence() -> BenchResult<()> {
    let (mut a, b) = gcounter_pair(ACTORS)?;
    let (mut x, y) = crdts_gcounter_pair(ACTORS);
    a.join(&b);
    x.merge(y);
    if a.value().to_string() != x.read().to_string() {
        return Err("G-Counter fixtures are not equivalent".into());
    }
    let (mut a, b) = pncounter_pair(ACTORS)?;
    let (mut x, y) = crdts_pncounter_pair(ACTORS);
    a.join(&b);
    x.merge(y);
    if a.value().to_string() != x.read().to_string() {
        return Err("PN-Counter fixtures are not equivalent".into());
    }
    let (mut a, b) = orset_pair(ELEMENTS);
    let (mut x, y) = crdts_orswot_pair(ELEMENTS);
    a.join(&b);
    x.merge(y);
    if a.len() != x.read().val.len() {
        return Err("OR-Set fixtures are not equivalent".into());
    }
    let (mut a, b) = mvreg_pair();
    let (mut x, y) = crdts_mvreg_pair();
    a.join(&b);
    x.merge(y);
    if a.siblings().len() != x.read().val.len() {
        return Err("MV-register fixtures are not equivalent".into());
    }
    Ok(())
}

/// The join records of a suite; `progress` sees each one.
pub fn records(sizes: &Sizes, progress: &mut dyn FnMut(&Record)) -> BenchResult<Vec<Record>> {
    check_equivalence()?;
    let reps = sizes.join_reps;
    // Small states join in nanoseconds: time more of them.
    let small = reps * 50;
    let mut out = Vec::new();
    let mut push = |name: String, (ours, peer): (f64, f64)| {
        let r = Record::versus(name, ours, OPS_PER_S, "crdts 7 merge", peer).goal(GOAL_VS_CRDTS);
        progress(&r);
        out.push(r);
    };

    let (a, b) = gcounter_pair(ACTORS)?;
    let (x, y) = crdts_gcounter_pair(ACTORS);
    push(
        format!("join/gcounter{ACTORS}"),
        paired(
            sizes.runs,
            || Ok(join_rate(small, &a, &&b, |l, r| l.join(r))),
            || Ok(join_rate(small, &x, &y, |l, r| l.merge(r))),
        )?,
    );
    let (a, b) = pncounter_pair(ACTORS)?;
    let (x, y) = crdts_pncounter_pair(ACTORS);
    push(
        format!("join/pncounter{ACTORS}"),
        paired(
            sizes.runs,
            || Ok(join_rate(small, &a, &&b, |l, r| l.join(r))),
            || Ok(join_rate(small, &x, &y, |l, r| l.merge(r))),
        )?,
    );
    let (a, b) = orset_pair(ELEMENTS);
    let (x, y) = crdts_orswot_pair(ELEMENTS);
    push(
        format!("join/orset{ELEMENTS}"),
        paired(
            sizes.runs,
            || Ok(join_rate(reps, &a, &&b, |l, r| l.join(r))),
            || Ok(join_rate(reps, &x, &y, |l, r| l.merge(r))),
        )?,
    );
    let (a, b) = mvreg_pair();
    let (x, y) = crdts_mvreg_pair();
    push(
        "join/mvreg2".into(),
        paired(
            sizes.runs,
            || Ok(join_rate(small, &a, &&b, |l, r| l.join(r))),
            || Ok(join_rate(small, &x, &y, |l, r| l.merge(r))),
        )?,
    );
    Ok(out)
}
