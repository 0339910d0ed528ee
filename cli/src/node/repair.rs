//! Read repair: a quorum read that finds replicas behind the join of the
//! answers sends them the joined state, in the background.
//!
//! Bounded on both sides, so that reads of a cluster full of stale
//! replicas cannot overload it (Riak's complaint): repairs wait in a
//! queue of `--repair-queue` entries (a full queue drops the repair and
//! counts it, `converge_read_repairs_dropped_total`; the next read or
//! anti-entropy repairs that replica), and one worker sends them at most
//! `--repair-rate` per second (a token bucket with one second of burst).

use super::quorum::deliver;
use super::Shared;
use crate::proto::Entry;
use converge::codec::encode_state;
use converge::{ReplicaId, State};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// One replica to repair.
#[derive(Debug)]
pub struct Repair {
    to: ReplicaId,
    partition: u32,
    key: Vec<u8>,
    state: Vec<u8>,
}

/// Queue a repair for every answer older than `joined`; how many were.
pub fn schedule(
    shared: &Shared,
    partition: u32,
    key: &[u8],
    joined: &Option<State>,
    answers: &[(ReplicaId, Option<State>)],
) -> usize {
    let Some(j) = joined else { return 0 };
    let mut bytes: Option<Vec<u8>> = None;
    let mut stale = 0;
    for (r, s) in answers {
        if s.as_ref() == Some(j) {
            continue;
        }
        stale += 1;
        let state = bytes.get_or_insert_with(|| encode_state(j)).clone();
        let repair = Repair {
            to: *r,
            partition,
            key: key.to_vec(),
            state,
        };
        if shared.repairs.try_send(repair).is_err() {
            shared.metrics.repair_dropped();
        }
    }
    stale
}

/// Send the queued repairs, at most `rate` per second.
pub async fn worker(shared: Arc<Shared>, mut queue: mpsc::Receiver<Repair>, rate: u32) {
    let rate = f64::from(rate.max(1));
    let mut tokens = rate;
    let mut last = Instant::now();
    let mut stopping = shared.stopping.subscribe();
    loop {
        let r = tokio::select! {
            r = queue.recv() => match r { Some(r) => r, None => return },
            _ = stopping.changed() => return,
        };
        tokens = (tokens + last.elapsed().as_secs_f64() * rate).min(rate);
        last = Instant::now();
        if tokens < 1.0 {
            tokio::time::sleep(Duration::from_secs_f64((1.0 - tokens) / rate)).await;
            tokens = 1.0;
            last = Instant::now();
        }
        tokens -= 1.0;
        let n = r.state.len() as u64;
        let entry = Entry {
            key: r.key,
            item: r.state,
        };
        match deliver(&shared, r.to, r.partition, vec![entry], None).await {
            Ok(_) => shared.metrics.repaired(n),
            Err(e) => tracing::debug!(replica = %r.to, error = %e, "read repair failed"),
        }
    }
}
