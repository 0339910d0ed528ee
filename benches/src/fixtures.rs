//! Fixtures shared by the report workloads and the criterion benches:
//! engines in temporary directories, replica ids, elements, and equivalent
//! pairs of diverged states for Converge's types and the `crdts` crate's.

use crate::BenchResult;
use converge::causal::{CausalContext, ReplicaId};
use converge::codec::encode_state;
use converge::crdt::{GCounter, MvRegister, ORSet, PNCounter};
use converge::{Delta, Durability, Engine, Options, State};
use crdts::{CmRDT, MVReg, Orswot};
use tempfile::TempDir;

/// Actor id type used with the `crdts` crate (the same 128 bits as a
/// [`ReplicaId`]).
pub type Actor = u128;

/// The replica id of actor `i`: a scattered 128-bit number, as generated
/// ids are (so encodings have realistic sizes).
pub fn actor(i: u64) -> ReplicaId {
    ReplicaId((i as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
}

/// The id the benchmark engines write as.
pub fn local_replica() -> ReplicaId {
    actor(1_000_000)
}

/// Element (or register value) number `i`: 11 bytes.
pub fn elem(i: u64) -> Vec<u8> {
    format!("elem-{:06}", i % 1_000_000).into_bytes()
}

/// An engine with default options (but `durability`) in a fresh temporary
/// directory; keep the directory alive as long as the engine. With
/// `CONVERGE_BENCH_CHANGES_FEED=off` in the environment the changes feed is
/// off (to measure what its log costs).
pub fn open_engine(durability: Durability) -> BenchResult<(Engine, TempDir)> {
    let dir = tempfile::Builder::new()
        .prefix("converge-bench-engine-")
        .tempdir()?;
    let mut options = Options::with_replica(local_replica()).durability(durability);
    options.changes_feed = std::env::var("CONVERGE_BENCH_CHANGES_FEED").as_deref() != Ok("off");
    let engine = Engine::open(dir.path(), options)?;
    Ok((engine, dir))
}

/// Bytes of the files under `dir`, recursively (0 if it does not exist).
/// Files that vanish while it looks (an open engine's compactions delete
/// tables) count nothing; any other error is returned.
pub fn disk_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if gone(&e) => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    for e in entries {
        let e = e?;
        total += match e.metadata() {
            Ok(md) if md.is_dir() => disk_bytes(&e.path())?,
            Ok(md) => md.len(),
            Err(err) if gone(&err) => 0,
            Err(err) => return Err(err),
        };
    }
    Ok(total)
}

/// `g.increment(replica, n)`, with overflow as a benchmark error.
pub fn increment(g: &mut GCounter, replica: ReplicaId, n: u64) -> BenchResult<GCounter> {
    g.increment(replica, n)
        .map_err(|_| "counter overflow in a fixture".into())
}

/// `c.add(replica, n)`, with overflow as a benchmark error.
pub fn pn_add(c: &mut PNCounter, replica: ReplicaId, n: i64) -> BenchResult<PNCounter> {
    c.add(replica, n)
        .map_err(|_| "counter overflow in a fixture".into())
}

/// Two diverged G-Counters over `actors` replicas: both saw every replica,
/// and the second saw half of them count further.
pub fn gcounter_pair(actors: u64) -> BenchResult<(GCounter, GCounter)> {
    let (mut a, mut b) = (GCounter::default(), GCounter::default());
    for i in 0..actors {
        increment(&mut a, actor(i), 10 + i)?;
        increment(&mut b, actor(i), 10 + i + (i % 2) * 5)?;
    }
    Ok((a, b))
}

/// The same two G-Counters in the `crdts` crate.
pub fn crdts_gcounter_pair(actors: u64) -> (crdts::GCounter<Actor>, crdts::GCounter<Actor>) {
    let (mut a, mut b) = (crdts::GCounter::new(), crdts::GCounter::new());
    for i in 0..actors {
        a.apply(a.inc_many(actor(i).0, 10 + i));
        b.apply(b.inc_many(actor(i).0, 10 + i + (i % 2) * 5));
    }
    (a, b)
}

/// Two diverged PN-Counters: every replica incremented and decremented;
/// in the second, half of them went further.
pub fn pncounter_pair(actors: u64) -> BenchResult<(PNCounter, PNCounter)> {
    let (mut a, mut b) = (PNCounter::default(), PNCounter::default());
    for i in 0..actors {
        let step = (i % 2) as i64 * 5;
        pn_add(&mut a, actor(i), 10 + i as i64)?;
        pn_add(&mut a, actor(i), -(3 + i as i64))?;
        pn_add(&mut b, actor(i), 10 + i as i64 + step)?;
        pn_add(&mut b, actor(i), -(3 + i as i64 + step))?;
    }
    Ok((a, b))
}

/// The same two PN-Counters in the `crdts` crate.
pub fn crdts_pncounter_pair(actors: u64) -> (crdts::PNCounter<Actor>, crdts::PNCounter<Actor>) {
    let (mut a, mut b) = (crdts::PNCounter::new(), crdts::PNCounter::new());
    for i in 0..actors {
        let step = (i % 2) * 5;
        a.apply(a.inc_many(actor(i).0, 10 + i));
        a.apply(a.dec_many(actor(i).0, 3 + i));
        b.apply(b.inc_many(actor(i).0, 10 + i + step));
        b.apply(b.dec_many(actor(i).0, 3 + i + step));
    }
    (a, b)
}

/// Two diverged OR-Sets of about `elements` members: a common history of
/// adds by four replicas, then the first adds 10% new elements while the
/// second removes 10% and adds 10% others.
pub fn orset_pair(elements: u64) -> (ORSet, ORSet) {
    let mut a = ORSet::default();
    for i in 0..elements {
        a.add(actor(i % 4), &elem(i));
    }
    let mut b = a.clone();
    let tenth = (elements / 10).max(1);
    for i in 0..tenth {
        a.add(actor(5), &elem(elements + i));
        b.remove(&elem(i * 7 % elements.max(1)), None);
        b.add(actor(6), &elem(2 * elements + i));
    }
    (a, b)
}

/// The same two OR-Sets as `crdts` Orswots.
pub fn crdts_orswot_pair(elements: u64) -> (Orswot<Vec<u8>, Actor>, Orswot<Vec<u8>, Actor>) {
    fn add(s: &mut Orswot<Vec<u8>, Actor>, who: ReplicaId, e: Vec<u8>) {
        let op = s.add(e, s.read_ctx().derive_add_ctx(who.0));
        s.apply(op);
    }
    let mut a = Orswot::new();
    for i in 0..elements {
        add(&mut a, actor(i % 4), elem(i));
    }
    let mut b = a.clone();
    let tenth = (elements / 10).max(1);
    for i in 0..tenth {
        add(&mut a, actor(5), elem(elements + i));
        let gone = elem(i * 7 % elements.max(1));
        let op = b.rm(gone.clone(), b.contains(&gone).derive_rm_ctx());
        b.apply(op);
        add(&mut b, actor(6), elem(2 * elements + i));
    }
    (a, b)
}

/// Two MV registers with a common write, then one concurrent write each:
/// the join has two siblings.
pub fn mvreg_pair() -> (MvRegister, MvRegister) {
    let mut a = MvRegister::default();
    a.write(actor(0), &elem(0), &CausalContext::new());
    let mut b = a.clone();
    let seen = a.context().clone();
    a.write(actor(1), &elem(1), &seen);
    b.write(actor(2), &elem(2), &seen);
    (a, b)
}

/// The same two registers as `crdts` MVRegs.
pub fn crdts_mvreg_pair() -> (MVReg<Vec<u8>, Actor>, MVReg<Vec<u8>, Actor>) {
    let mut a = MVReg::new();
    a.apply(a.write(elem(0), a.read_ctx().derive_add_ctx(actor(0).0)));
    let mut b = a.clone();
    a.apply(a.write(elem(1), a.read_ctx().derive_add_ctx(actor(1).0)));
    b.apply(b.write(elem(2), b.read_ctx().derive_add_ctx(actor(2).0)));
    (a, b)
}

/// `n` encoded G-Counter deltas from `actors` peers (delta envelopes:
/// origin, sequence number, the peer's new entry).
pub fn counter_deltas(actors: u64, n: u64) -> BenchResult<Vec<Vec<u8>>> {
    (0..n)
        .map(|k| {
            let origin = actor(k % actors);
            let seq = k / actors + 1;
            let state = State::GCounter(increment(&mut GCounter::default(), origin, seq)?);
            Ok(Delta {
                origin,
                seq,
                deps: Some(CausalContext::new()),
                state,
            }
            .encode())
        })
        .collect()
}

/// `variants` encoded full G-Counter states, each with an entry for every
/// one of `actors` peers.
pub fn counter_states(actors: u64, variants: u64) -> BenchResult<Vec<Vec<u8>>> {
    (0..variants)
        .map(|v| {
            let mut g = GCounter::default();
            for i in 0..actors {
                increment(&mut g, actor(i), 1 + v * actors + i)?;
            }
            Ok(encode_state(&State::GCounter(g)))
        })
        .collect()
}

/// `n` encoded OR-Set add deltas from `actors` peers, each adding one of
/// `elements` elements.
pub fn orset_deltas(actors: u64, elements: u64, n: u64) -> Vec<Vec<u8>> {
    let mut sets: Vec<ORSet> = (0..actors).map(|_| ORSet::default()).collect();
    (0..n)
        .map(|k| {
            let a = k % actors;
            let d = sets[a as usize].add(actor(a), &elem(k % elements.max(1)));
            let delta = Delta {
                origin: actor(a),
                seq: k / actors + 1,
                deps: Some(CausalContext::new()),
                state: State::ORSet(d),
            };
            delta.encode()
        })
        .collect()
}

/// `variants` encoded full OR-Set states of `elements` members, each
/// written by a different peer.
pub fn orset_states(elements: u64, variants: u64) -> Vec<Vec<u8>> {
    (0..variants)
        .map(|v| {
            let mut s = ORSet::default();
            for i in 0..elements {
                s.add(actor(v), &elem(i));
            }
            encode_state(&State::ORSet(s))
        })
        .collect()
}
