//! Load limits: a per-hotkey token bucket and a priority-aware concurrency limit.

use crate::error::WireError;
use agora_primitives::AccountId;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

/// One token in bucket units: a bucket refills `per_second` tokens per second, that is
/// `per_second` units per nanosecond, so refills need no division.
const UNITS_PER_TOKEN: u64 = 1_000_000_000;

/// A token-bucket rate per hotkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed in a burst (the bucket size).
    pub burst: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: u64,
    last_ns: u64,
}

/// Per-hotkey token buckets.
///
/// **Bound.** At most `max_hotkeys` buckets. Behind the guard only admitted hotkeys reach the
/// limiter (one subnet's registered hotkeys under the default policy). When the map is full,
/// buckets that have refilled completely (idle callers) are dropped — forgetting a full bucket
/// changes nothing — and if none has, the new hotkey is refused with [`WireError::RateLimited`].
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    max_hotkeys: usize,
    buckets: Mutex<HashMap<AccountId, Bucket>>,
}

impl RateLimiter {
    /// A limiter applying `limit` to each of at most `max_hotkeys` hotkeys.
    pub fn new(limit: RateLimit, max_hotkeys: usize) -> Self {
        RateLimiter {
            limit,
            max_hotkeys,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `hotkey`'s bucket at time `now_ns`.
    pub fn check(&self, hotkey: &AccountId, now_ns: u64) -> Result<(), WireError> {
        let cap = u64::from(self.limit.burst).saturating_mul(UNITS_PER_TOKEN);
        let rate = u64::from(self.limit.per_second);
        let refill = |b: &Bucket| {
            let elapsed = now_ns.saturating_sub(b.last_ns);
            b.units
                .saturating_add(elapsed.saturating_mul(rate))
                .min(cap)
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(hotkey) && buckets.len() >= self.max_hotkeys {
            buckets.retain(|_, b| refill(b) < cap);
            if buckets.len() >= self.max_hotkeys {
                return Err(WireError::RateLimited);
            }
        }
        let bucket = buckets.entry(*hotkey).or_insert(Bucket {
            units: cap,
            last_ns: now_ns,
        });
        let units = refill(bucket);
        bucket.last_ns = bucket.last_ns.max(now_ns);
        if units < UNITS_PER_TOKEN {
            bucket.units = units;
            return Err(WireError::RateLimited);
        }
        bucket.units = units - UNITS_PER_TOKEN;
        Ok(())
    }
}

/// A concurrency limit that keeps the last `reserved` slots for high-priority callers.
///
/// Requests are never queued: when the slots a caller may use are taken, it is told
/// [`WireError::Overloaded`] (429) at once and retries elsewhere or later. Callers whose
/// priority is at least `priority_floor` may use all `max_in_flight` slots; others only
/// `max_in_flight - reserved`.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimiter {
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    reserved: usize,
    priority_floor: u64,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConcurrencyLimiter {
    /// `max_in_flight` slots, the last `reserved` of them for priority ≥ `priority_floor`.
    pub fn new(max_in_flight: usize, reserved: usize, priority_floor: u64) -> Self {
        ConcurrencyLimiter {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight,
            reserved: reserved.min(max_in_flight),
            priority_floor,
        }
    }

    /// Takes a slot for a caller of `priority`.
    pub fn acquire(&self, priority: u64) -> Result<Permit, WireError> {
        let limit = if priority >= self.priority_floor {
            self.max_in_flight
        } else {
            self.max_in_flight - self.reserved
        };
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|_| Permit(self.in_flight.clone()))
            .map_err(|_| WireError::Overloaded("too many requests in flight"))
    }

    /// Slots now held.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let rl = RateLimiter::new(
            RateLimit {
                per_second: 2,
                burst: 3,
            },
            10,
        );
        let a = AccountId([1; 32]);
        for _ in 0..3 {
            rl.check(&a, S).unwrap();
        }
        assert!(matches!(rl.check(&a, S), Err(WireError::RateLimited)));
        // Half a second refills one token at 2/s.
        rl.check(&a, S + S / 2).unwrap();
        assert!(matches!(
            rl.check(&a, S + S / 2),
            Err(WireError::RateLimited)
        ));
        // Another hotkey has its own bucket.
        rl.check(&AccountId([2; 32]), S).unwrap();
    }

    #[test]
    fn bucket_map_is_bounded() {
        let rl = RateLimiter::new(
            RateLimit {
                per_second: 1,
                burst: 1,
            },
            1,
        );
        rl.check(&AccountId([1; 32]), S).unwrap();
        // The only bucket is empty: no room for a second hotkey.
        assert!(matches!(
            rl.check(&AccountId([2; 32]), S),
            Err(WireError::RateLimited)
        ));
        // Once it has refilled it is forgotten to make room.
        rl.check(&AccountId([2; 32]), 3 * S).unwrap();
    }

    #[test]
    fn reserved_slots_go_to_high_priority() {
        let cl = ConcurrencyLimiter::new(2, 1, 100);
        let p1 = cl.acquire(5).unwrap();
        assert!(matches!(cl.acquire(5), Err(WireError::Overloaded(_))));
        let p2 = cl.acquire(100).unwrap();
        assert!(cl.acquire(1_000).is_err());
        drop(p1);
        assert_eq!(cl.in_flight(), 1);
        drop(p2);
        assert_eq!(cl.in_flight(), 0);
    }
}
