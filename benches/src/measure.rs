//! Timing helpers shared by every workload: keys, the deterministic order
//! in which operations visit them, the multi-threaded driver, medians and
//! percentiles.

use crate::BenchResult;
use std::time::{Duration, Instant};

/// Bytes of every benchmark key.
pub const KEY_LEN: usize = 16;

/// The key of index `i`: `key:` and twelve decimal digits.
pub fn key(i: u64) -> [u8; KEY_LEN] {
    let mut k = *b"key:000000000000";
    let mut n = i;
    for b in k[4..].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// Odd prime multiplier of the key permutation.
const SCATTER: u128 = 2_654_435_761;

/// The key index operation `op` visits in a keyspace of `keys`: operations
/// sweep the keyspace in a scattered (multiplicative) order, so the first
/// `keys` operations touch every key once, not in byte order.
pub fn key_index(op: u64, keys: u64) -> u64 {
    let keys = keys.max(1);
    ((op % keys) as u128 * SCATTER % keys as u128) as u64
}

/// A write load: how many operations, over how many keys, grouped in
/// batches of what size, by how many threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Operations in total.
    pub ops: u64,
    /// Size of the keyspace.
    pub keys: u64,
    /// Operations per write.
    pub batch: usize,
    /// Writer threads.
    pub threads: usize,
}

impl Load {
    /// A single-threaded load.
    pub fn new(ops: u64, keys: u64, batch: usize) -> Load {
        Load {
            ops,
            keys,
            batch: batch.max(1),
            threads: 1,
        }
    }

    /// The same load with `threads` writers.
    pub fn threads(mut self, threads: usize) -> Load {
        self.threads = threads.max(1);
        self
    }

    /// The key index of operation `op`.
    pub fn key_of(&self, op: u64) -> u64 {
        key_index(op, self.keys)
    }
}

/// Run `write` over the load and return the wall time. Thread `t` takes
/// operations `t, t + threads, …` and hands them to `write` in chunks of
/// `batch` operation numbers (use [`Load::key_of`] for their keys).
pub fn drive<F>(load: &Load, write: F) -> BenchResult<Duration>
where
    F: Fn(&[u64]) -> BenchResult<()> + Sync,
{
    let write = &write;
    let start = Instant::now();
    let results: Vec<BenchResult<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..load.threads)
            .map(|t| {
                s.spawn(move || -> BenchResult<()> {
                    let mut chunk = Vec::with_capacity(load.batch);
                    let mut op = t as u64;
                    while op < load.ops {
                        chunk.push(op);
                        if chunk.len() == load.batch {
                            write(&chunk)?;
                            chunk.clear();
                        }
                        op += load.threads as u64;
                    }
                    if !chunk.is_empty() {
                        write(&chunk)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("writer thread panicked".into()))
            })
            .collect()
    });
    let elapsed = start.elapsed();
    for r in results {
        r?;
    }
    Ok(elapsed)
}

/// Operations per second.
pub fn rate(ops: u64, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Median of the samples (mean of the middle two for an even count; 0 for
/// none).
pub fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The `p`-th percentile (0–100, nearest rank) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Run a Converge measurement and its peer's `runs` times each,
/// interleaved so that drift on a shared machine hits both alike; return
/// their medians.
pub fn paired<A, B>(runs: usize, mut ours: A, mut peer: B) -> BenchResult<(f64, f64)>
where
    A: FnMut() -> BenchResult<f64>,
    B: FnMut() -> BenchResult<f64>,
{
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        a.push(ours()?);
        b.push(peer()?);
    }
    Ok((median(&a), median(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width_and_distinct() {
        assert_eq!(&key(42), b"key:000000000042");
        assert_ne!(key(1), key(10));
    }

    #[test]
    fn first_pass_visits_every_key_once() {
        for keys in [1u64, 7, 100, 1000] {
            let mut seen: Vec<u64> = (0..keys).map(|j| key_index(j, keys)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..keys).collect::<Vec<_>>());
        }
    }

    #[test]
    fn drive_hands_out_every_operation_once() {
        let load = Load::new(1003, 10, 100).threads(3);
        let seen = std::sync::Mutex::new(Vec::new());
        drive(&load, |ops| {
            assert!(ops.len() <= 100);
            seen.lock()
                .map_err(|e| e.to_string())?
                .extend_from_slice(ops);
            Ok(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..1003).collect::<Vec<_>>());
    }

    #[test]
    fn median_and_percentile() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), 50.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
    }
}
