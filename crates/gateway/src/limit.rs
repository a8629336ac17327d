//! Per-key token buckets. Pure: time comes in as `now_ns`.

use std::{collections::HashMap, sync::Mutex};

/// Nanoseconds in a minute: a bucket holds tokens in units of 1/60e9, and refills
/// `requests_per_minute` units per nanosecond, so no division is needed.
const UNITS_PER_TOKEN: u64 = 60_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: u64,
    last_ns: u64,
}

/// Token buckets by key name.
///
/// **Bound.** One bucket per configured key (names come from the keys file, never from
/// requests), so the map holds at most as many entries as the keys file has.
#[derive(Debug, Default)]
pub struct KeyLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl KeyLimiter {
    /// Takes one request from `name`'s bucket (`requests_per_minute` sustained, `burst` at
    /// once). On refusal, the whole seconds until a request would be allowed.
    pub fn check(
        &self,
        name: &str,
        requests_per_minute: u32,
        burst: u32,
        now_ns: u64,
    ) -> Result<(), u64> {
        let cap = u64::from(burst).saturating_mul(UNITS_PER_TOKEN);
        let rate = u64::from(requests_per_minute).max(1);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = match buckets.get_mut(name) {
            Some(b) => b,
            None => buckets.entry(name.to_owned()).or_insert(Bucket {
                units: cap,
                last_ns: now_ns,
            }),
        };
        let elapsed = now_ns.saturating_sub(bucket.last_ns);
        let units = bucket
            .units
            .saturating_add(elapsed.saturating_mul(rate))
            .min(cap);
        bucket.last_ns = bucket.last_ns.max(now_ns);
        if units >= UNITS_PER_TOKEN {
            bucket.units = units - UNITS_PER_TOKEN;
            return Ok(());
        }
        bucket.units = units;
        let missing_ns = (UNITS_PER_TOKEN - units).div_ceil(rate);
        Err(missing_ns.div_ceil(1_000_000_000).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_refill_with_retry_after() {
        let l = KeyLimiter::default();
        for _ in 0..3 {
            l.check("a", 60, 3, S).unwrap();
        }
        assert_eq!(l.check("a", 60, 3, S), Err(1));
        // 60/min refills one per second.
        l.check("a", 60, 3, 2 * S).unwrap();
        assert_eq!(l.check("c", 6, 1, 0), Ok(()));
        assert_eq!(l.check("c", 6, 1, 0).unwrap_err(), 10);
        // Keys are independent.
        l.check("b", 60, 1, S).unwrap();
    }
}
