//! Read repair: a quorum read that finds replicas behind the join of the
//! answers sends them the joined state, in the background.
//!
//! Bounded on both sides, so that reads of a cluster full of stale
//! replicas cannot overload it (Riak's complaint): repairs wait in a
//! queue of at most `--repair-queue` entries holding at most
//! `--repair-queue-bytes` of states (a full queue drops the repair and
//! counts it, `converge_read_repairs_dropped_total`; the next read or
//! anti-entropy repairs that replica), and one worker sends them at most
//! `--repair-rate` per second (a token bucket with one second of burst).

use super::quorum::deliver;
use super::Shared;
use crate::proto::Entry;
use converge::codec::encode_state;
use converge::{ReplicaId, State};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
        let n = state.len() as u64;
        // Reserve the bytes first: the worker releases them once taken.
        if !reserve(&shared.repair_bytes, n, shared.config.repair_queue_bytes) {
            shared.metrics.repair_dropped();
            continue;
        }
        let repair = Repair {
            to: *r,
            partition,
            key: key.to_vec(),
            state,
        };
        if shared.repairs.try_send(repair).is_err() {
            shared.repair_bytes.fetch_sub(n, Relaxed);
            shared.metrics.repair_dropped();
        }
    }
    stale
}

/// Add `n` bytes to what `held` counts if that stays within `max`;
/// whether it did (concurrent callers never pass `max` together).
fn reserve(held: &AtomicU64, n: u64, max: u64) -> bool {
    held.fetch_update(Relaxed, Relaxed, |h| {
        h.checked_add(n).filter(|total| *total <= max)
    })
    .is_ok()
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
        shared.repair_bytes.fetch_sub(r.state.len() as u64, Relaxed);
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

#[cfg(test)]
mod tests {
    use super::reserve;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[test]
    fn the_queue_holds_at_most_its_bytes() {
        let held = AtomicU64::new(0);
        assert!(reserve(&held, 600, 1000));
        assert!(!reserve(&held, 401, 1000), "past the bound");
        assert_eq!(
            held.load(Relaxed),
            600,
            "a refused reservation holds nothing"
        );
        assert!(reserve(&held, 400, 1000), "up to the bound");
        held.fetch_sub(600, Relaxed);
        assert!(reserve(&held, 600, 1000), "room again once sent");
        assert!(!reserve(&held, u64::MAX, u64::MAX), "no overflow");
    }
}
