//! A validator's memory of each uid's performance, and the weights it derives.
//!
//! Scores are an exponential moving average per uid of per-round samples in `[0, 1]`: a miner
//! that stops answering decays toward zero, one that recovers climbs back. A uid whose hotkey
//! changed (the slot was pruned and re-registered) starts again from zero, so a newcomer
//! neither inherits nor pays for its predecessor's record.

use agora_primitives::AccountId;
use std::collections::BTreeMap;

/// One uid's record.
#[derive(Clone, Debug, PartialEq)]
pub struct UidScore {
    /// The hotkey the score belongs to.
    pub hotkey: AccountId,
    /// The moving average, in `[0, 1]`.
    pub score: f64,
    /// Samples recorded for this hotkey.
    pub samples: u64,
}

/// Moving-average scores per uid.
#[derive(Clone, Debug)]
pub struct ScoreBook {
    alpha: f64,
    by_uid: BTreeMap<u16, UidScore>,
}

impl ScoreBook {
    /// A book where each new sample weighs `alpha` (clamped to `(0, 1]`).
    pub fn new(alpha: f64) -> Self {
        let alpha = if alpha.is_finite() {
            alpha.clamp(f64::MIN_POSITIVE, 1.0)
        } else {
            1.0
        };
        ScoreBook {
            alpha,
            by_uid: BTreeMap::new(),
        }
    }

    /// Records one sample for `uid`. Non-finite samples count as 0; others are clamped to
    /// `[0, 1]`.
    pub fn record(&mut self, uid: u16, hotkey: AccountId, sample: f64) {
        let sample = if sample.is_finite() {
            sample.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let entry = self.by_uid.entry(uid).or_insert(UidScore {
            hotkey,
            score: 0.0,
            samples: 0,
        });
        if entry.hotkey != hotkey {
            *entry = UidScore {
                hotkey,
                score: 0.0,
                samples: 0,
            };
        }
        entry.score = (1.0 - self.alpha) * entry.score + self.alpha * sample;
        entry.samples = entry.samples.saturating_add(1);
    }

    /// Forgets uids that are no longer registered (`n` uids remain) or changed hotkey.
    pub fn retain_current(&mut self, hotkeys: &[AccountId]) {
        self.by_uid
            .retain(|uid, s| hotkeys.get(usize::from(*uid)) == Some(&s.hotkey));
    }

    /// The record of `uid`.
    pub fn get(&self, uid: u16) -> Option<&UidScore> {
        self.by_uid.get(&uid)
    }

    /// Weights to set: every uid with a positive score, as u16 values scaled so that the best
    /// is 65535 (the chain normalises rows anyway). Empty when nothing scored above zero.
    pub fn weights(&self) -> (Vec<u16>, Vec<u16>) {
        weights_from_scores(self.by_uid.iter().map(|(&uid, s)| (uid, s.score)))
    }
}

/// Weights to set from any per-uid scores: every uid with a positive finite score, as u16
/// values scaled so that the best is 65535. Empty when nothing scored above zero.
pub fn weights_from_scores(scores: impl IntoIterator<Item = (u16, f64)>) -> (Vec<u16>, Vec<u16>) {
    let scores: Vec<(u16, f64)> = scores
        .into_iter()
        .filter(|(_, s)| s.is_finite() && *s > 0.0)
        .collect();
    let max = scores.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    if max <= 0.0 {
        return (Vec::new(), Vec::new());
    }
    scores
        .into_iter()
        .map(|(uid, s)| (uid, (s / max * f64::from(u16::MAX)).round() as u16))
        .filter(|&(_, w)| w > 0)
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hk(b: u8) -> AccountId {
        AccountId([b; 32])
    }

    #[test]
    fn moving_average_and_weights() {
        let mut book = ScoreBook::new(0.5);
        book.record(1, hk(1), 1.0);
        book.record(2, hk(2), 0.5);
        book.record(3, hk(3), 0.0);
        let (uids, values) = book.weights();
        assert_eq!(uids, vec![1, 2]);
        assert_eq!(values, vec![65535, 32768]);
        book.record(1, hk(1), 0.0);
        assert!((book.get(1).unwrap().score - 0.25).abs() < 1e-12);
    }

    #[test]
    fn new_hotkey_resets_the_uid() {
        let mut book = ScoreBook::new(0.1);
        for _ in 0..50 {
            book.record(4, hk(1), 1.0);
        }
        book.record(4, hk(9), 0.0);
        let s = book.get(4).unwrap();
        assert_eq!((s.hotkey, s.score, s.samples), (hk(9), 0.0, 1));
        book.retain_current(&[hk(0), hk(1), hk(2), hk(3), hk(5)]);
        assert!(book.get(4).is_none());
    }

    #[test]
    fn weights_from_any_scores_skip_non_positive_and_non_finite() {
        let (uids, values) =
            weights_from_scores([(3, 0.2), (1, f64::NAN), (2, -1.0), (5, 0.4), (7, 0.0)]);
        assert_eq!(uids, vec![3, 5]);
        assert_eq!(values, vec![32768, 65535]);
        assert_eq!(weights_from_scores([(1, f64::INFINITY)]), (vec![], vec![]));
    }

    #[test]
    fn no_weights_without_positive_scores() {
        let mut book = ScoreBook::new(1.0);
        book.record(0, hk(0), f64::NAN);
        assert_eq!(book.weights(), (vec![], vec![]));
    }

    proptest::proptest! {
        #[test]
        fn scores_stay_in_unit_interval(samples in proptest::collection::vec(-10.0f64..10.0, 1..50)) {
            let mut book = ScoreBook::new(0.3);
            for s in &samples {
                book.record(0, hk(0), *s);
            }
            let v = book.get(0).unwrap().score;
            proptest::prop_assert!((0.0..=1.0).contains(&v));
        }
    }
}
