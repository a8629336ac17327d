//! Replay protection: the (hotkey, nonce) pairs accepted inside the freshness window.

use crate::error::WireError;
use agora_primitives::AccountId;
use std::{
    collections::BTreeSet,
    sync::{Mutex, MutexGuard},
};

/// Default [`NonceStore`] capacity: 262,144 pairs, about 20 MiB at the ~80 bytes a B-tree entry
/// of (u64, 32-byte key) costs. That is ~21,800 requests/s sustained over the 12 s window, well
/// above what a registered-only, rate-limited server admits.
pub const DEFAULT_NONCE_CAPACITY: usize = 1 << 18;

/// The accepted (nonce, hotkey) pairs, ordered by nonce so that expiry is one split.
///
/// **Bound.** A pair is kept only while its nonce could still pass the freshness check: nonces
/// older than `now - max_age` are dropped on every insert, so the store holds at most the pairs
/// whose nonces lie in `[now - max_age, now + skew]` — a 12 s window with the defaults. Behind the
/// guard only admitted hotkeys that passed their rate limit reach the store, so its size is at
/// most `Σ over admitted hotkeys of (burst + rate × 12 s)`, and never more than `capacity`:
/// a full store refuses new pairs ([`WireError::Overloaded`]) rather than forgetting live ones,
/// because forgetting would re-open a replay. For the same reason the store remembers its
/// prune horizon and refuses any nonce below it as expired, whatever `now_ns` a caller passes.
#[derive(Debug)]
pub struct NonceStore {
    state: Mutex<State>,
    max_age_ns: u64,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    seen: BTreeSet<(u64, [u8; 32])>,
    /// Every nonce below this has been forgotten, so none below it may be accepted: it only
    /// rises, even if a caller passes an older `now_ns` (a request whose body was slow to
    /// arrive, checked after a newer one pruned).
    horizon_ns: u64,
}

impl NonceStore {
    /// A store for a verifier whose nonces may be up to `max_age_ns` old, holding at most
    /// `capacity` pairs.
    pub fn new(max_age_ns: u64, capacity: usize) -> Self {
        NonceStore {
            state: Mutex::new(State::default()),
            max_age_ns,
            capacity,
        }
    }

    /// Whether `(hotkey, nonce_ns)` was already accepted. Does not record it.
    pub fn contains(&self, hotkey: &AccountId, nonce_ns: u64) -> bool {
        self.lock().seen.contains(&(nonce_ns, hotkey.0))
    }

    /// Records `(hotkey, nonce_ns)` if it is new; [`WireError::Replayed`] if it was seen,
    /// [`WireError::Expired`] if it is older than what the store still remembers,
    /// [`WireError::Overloaded`] if the store is full of live pairs.
    pub fn check_and_insert(
        &self,
        hotkey: &AccountId,
        nonce_ns: u64,
        now_ns: u64,
    ) -> Result<(), WireError> {
        let mut st = self.lock();
        let oldest_live = now_ns.saturating_sub(self.max_age_ns);
        if oldest_live > st.horizon_ns {
            st.horizon_ns = oldest_live;
            if st.seen.first().is_some_and(|(n, _)| *n < oldest_live) {
                let live = st.seen.split_off(&(oldest_live, [0u8; 32]));
                st.seen = live;
            }
        }
        if nonce_ns < st.horizon_ns {
            return Err(WireError::Expired {
                age_ms: st
                    .horizon_ns
                    .saturating_add(self.max_age_ns)
                    .saturating_sub(nonce_ns)
                    / 1_000_000,
                max_age_ms: self.max_age_ns / 1_000_000,
            });
        }
        let key = (nonce_ns, hotkey.0);
        if st.seen.contains(&key) {
            return Err(WireError::Replayed);
        }
        if st.seen.len() >= self.capacity {
            return Err(WireError::Overloaded("replay store full"));
        }
        st.seen.insert(key);
        Ok(())
    }

    /// How many pairs are held.
    pub fn len(&self) -> usize {
        self.lock().seen.len()
    }

    /// Whether no pair is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: no mutation can panic midway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn replay_rejected_then_forgotten_after_window() {
        let store = NonceStore::new(10 * S, 8);
        let a = AccountId([1; 32]);
        let b = AccountId([2; 32]);
        let t = 100 * S;
        store.check_and_insert(&a, t, t).unwrap();
        store.check_and_insert(&b, t, t).unwrap();
        assert!(matches!(
            store.check_and_insert(&a, t, t + S),
            Err(WireError::Replayed)
        ));
        assert!(store.contains(&a, t));
        // Exactly max_age old: still live (the freshness check still accepts it).
        assert!(matches!(
            store.check_and_insert(&a, t, t + 10 * S),
            Err(WireError::Replayed)
        ));
        // One ns later it is stale: pruned, and the freshness check rejects it anyway.
        store
            .check_and_insert(&a, t + 11 * S, t + 10 * S + 1)
            .unwrap();
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_late_check_cannot_slip_under_the_prune_horizon() {
        let store = NonceStore::new(10 * S, 8);
        let a = AccountId([1; 32]);
        let t = 100 * S;
        store.check_and_insert(&a, t, t).unwrap();
        // A newer request prunes everything older than t + 1 s.
        store.check_and_insert(&a, t + 11 * S, t + 11 * S).unwrap();
        // A replay of the first one that was fresh when it arrived (its now_ns is old) is
        // still refused: the pair is forgotten, but the horizon is remembered.
        assert!(matches!(
            store.check_and_insert(&a, t, t + S),
            Err(WireError::Expired { .. })
        ));
    }

    #[test]
    fn full_store_refuses_instead_of_forgetting() {
        let store = NonceStore::new(10 * S, 2);
        let a = AccountId([1; 32]);
        store.check_and_insert(&a, 1, 1).unwrap();
        store.check_and_insert(&a, 2, 2).unwrap();
        assert!(matches!(
            store.check_and_insert(&a, 3, 3),
            Err(WireError::Overloaded(_))
        ));
        // After the window, room again.
        store.check_and_insert(&a, 20 * S, 20 * S).unwrap();
        assert_eq!(store.len(), 1);
    }
}
