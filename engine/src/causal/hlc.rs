//! Hybrid logical clock: timestamps that follow wall-clock time but never go
//! backwards and always order after every timestamp the replica has seen.

use bincode::{Decode, Encode};
use parking_lot::Mutex;

/// A hybrid logical timestamp: milliseconds since the Unix epoch, then a
/// logical counter that orders events within the same millisecond (or while
/// the wall clock lags behind a timestamp already seen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Timestamp {
    /// Physical component, milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Logical component.
    pub logical: u32,
}

/// A replica's clock. Thread-safe.
#[derive(Debug, Default)]
pub struct HybridClock {
    last: Mutex<Timestamp>,
}

impl HybridClock {
    /// A clock that will never issue a timestamp at or below `floor`.
    pub fn new(floor: Timestamp) -> HybridClock {
        HybridClock {
            last: Mutex::new(floor),
        }
    }

    /// Milliseconds since the Unix epoch by the system clock.
    pub fn wall_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// A new timestamp, strictly greater than every one issued or observed,
    /// given the wall clock reading `wall_ms`.
    pub fn tick_at(&self, wall_ms: u64) -> Timestamp {
        let mut last = self.last.lock();
        let next = if wall_ms > last.wall_ms {
            Timestamp {
                wall_ms,
                logical: 0,
            }
        } else if last.logical == u32::MAX {
            Timestamp {
                wall_ms: last.wall_ms + 1,
                logical: 0,
            }
        } else {
            Timestamp {
                wall_ms: last.wall_ms,
                logical: last.logical + 1,
            }
        };
        *last = next;
        next
    }

    /// A new timestamp by the system clock.
    pub fn tick(&self) -> Timestamp {
        self.tick_at(Self::wall_now())
    }

    /// Record a timestamp seen from elsewhere so later ticks order after it.
    pub fn observe(&self, ts: Timestamp) {
        let mut last = self.last.lock();
        if ts > *last {
            *last = ts;
        }
    }

    /// The latest timestamp issued or observed.
    pub fn last(&self) -> Timestamp {
        *self.last.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lagging_wall_clock_still_orders_after_what_was_seen() {
        let c = HybridClock::new(Timestamp::default());
        let a = c.tick_at(1_000);
        c.observe(Timestamp {
            wall_ms: 5_000,
            logical: 7,
        });
        let b = c.tick_at(1_001);
        assert!(b > a);
        assert_eq!(
            b,
            Timestamp {
                wall_ms: 5_000,
                logical: 8
            }
        );
        let later = c.tick_at(6_000);
        assert_eq!(
            later,
            Timestamp {
                wall_ms: 6_000,
                logical: 0
            }
        );
    }

    #[test]
    fn same_millisecond_uses_logical() {
        let c = HybridClock::new(Timestamp::default());
        let a = c.tick_at(10);
        let b = c.tick_at(10);
        let d = c.tick_at(9);
        assert!(a < b && b < d);
    }
}
