//! Choosing the next token from logits: greedy, or seeded sampling with temperature,
//! top-k and nucleus (top-p) filtering. Pure functions of their inputs.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Natural-log probabilities of every token under the model's own distribution
/// (temperature 1, no filtering): what `logprobs` report and what `score` recomputes.
pub(crate) fn log_softmax(logits: &[f32]) -> Vec<f32> {
    log_softmax_with_entropy(logits).0
}

/// [`log_softmax`], with the distribution's entropy and log-probability variance: one
/// vectorized pass of exponentials for finite rows; rows with masked (`-inf`) or broken
/// entries take the f64 reference path, which gives such entries probability zero.
pub(crate) fn log_softmax_with_entropy(logits: &[f32]) -> (Vec<f32>, f32, f32) {
    let mut out = vec![0f32; logits.len()];
    if let Ok(d) = agora_kernels::log_softmax(logits, &mut out) {
        return (out, d.entropy, d.logprob_variance);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_sum = sum.ln() as f32;
    let lp: Vec<f32> = logits.iter().map(|&l| l - max - log_sum).collect();
    let (entropy, variance) = crate::verify::entropy_and_variance(&lp);
    (lp, entropy, variance)
}

/// The `k` most likely tokens, most likely first; ties go to the lower id.
pub(crate) fn top_k(logprobs: &[f32], k: usize) -> Vec<(u32, f32)> {
    if k == 0 || logprobs.is_empty() {
        return Vec::new();
    }
    if k == 1 {
        // What a validator asks for at every position: one pass, no index vector.
        let best = argmax(logprobs);
        return vec![(best, logprobs[best as usize])];
    }
    let mut ids: Vec<u32> = (0..logprobs.len() as u32).collect();
    let by_rank = |a: &u32, b: &u32| {
        logprobs[*b as usize]
            .total_cmp(&logprobs[*a as usize])
            .then(a.cmp(b))
    };
    if k < ids.len() {
        ids.select_nth_unstable_by(k, by_rank);
        ids.truncate(k);
    }
    ids.sort_unstable_by(by_rank);
    ids.into_iter().map(|i| (i, logprobs[i as usize])).collect()
}

/// The index of the largest logit; ties go to the lower id.
pub(crate) fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Sampling settings, already validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SamplingParams {
    /// 0 means greedy.
    pub(crate) temperature: f32,
    /// In (0, 1]; 1 disables nucleus filtering.
    pub(crate) top_p: f32,
    /// 0 disables top-k filtering.
    pub(crate) top_k: usize,
}

/// A per-request sampler. The same seed and logits give the same tokens on every machine
/// that computes the same logits.
#[derive(Debug)]
pub(crate) struct Sampler {
    params: SamplingParams,
    rng: ChaCha20Rng,
}

impl Sampler {
    pub(crate) fn new(params: SamplingParams, seed: u64) -> Self {
        Sampler {
            params,
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    pub(crate) fn sample(&mut self, logits: &[f32]) -> u32 {
        let p = self.params;
        if p.temperature <= 0.0 || logits.len() <= 1 {
            return argmax(logits);
        }
        let inv_t = 1.0 / f64::from(p.temperature);
        let filtering = (p.top_k > 0 && p.top_k < logits.len()) || p.top_p < 1.0;
        // Candidates in the order the cumulative sums walk them: by probability when
        // filtering (the filters keep a most-likely prefix), by id otherwise.
        let mut cands: Vec<u32> = (0..logits.len() as u32).collect();
        if filtering {
            let by_rank = |a: &u32, b: &u32| {
                logits[*b as usize]
                    .total_cmp(&logits[*a as usize])
                    .then(a.cmp(b))
            };
            if p.top_k > 0 && p.top_k < cands.len() {
                cands.select_nth_unstable_by(p.top_k, by_rank);
                cands.truncate(p.top_k);
            }
            cands.sort_unstable_by(by_rank);
        }
        let max = cands
            .iter()
            .map(|&i| f64::from(logits[i as usize]))
            .fold(f64::NEG_INFINITY, f64::max);
        let mut weights: Vec<f64> = cands
            .iter()
            .map(|&i| ((f64::from(logits[i as usize]) - max) * inv_t).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        if p.top_p < 1.0 {
            let target = f64::from(p.top_p) * total;
            let mut cum = 0.0;
            let mut keep = weights.len();
            for (n, w) in weights.iter().enumerate() {
                cum += w;
                if cum >= target {
                    keep = n + 1;
                    break;
                }
            }
            weights.truncate(keep);
            cands.truncate(keep);
        }
        let total: f64 = weights.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return argmax(logits);
        }
        let mut u = self.rng.gen::<f64>() * total;
        for (n, w) in weights.iter().enumerate() {
            if u < *w {
                return cands[n];
            }
            u -= w;
        }
        // Rounding left `u` past the end: the last candidate.
        cands[cands.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises() {
        let lp = log_softmax(&[1.0, 2.0, 3.0]);
        let total: f32 = lp.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(lp[2] > lp[1] && lp[1] > lp[0]);
    }

    #[test]
    fn top_k_orders_and_breaks_ties_by_id() {
        let got = top_k(&[0.5, 2.0, 2.0, -1.0], 3);
        assert_eq!(got.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2, 0]);
        assert_eq!(top_k(&[1.0], 5).len(), 1);
        // The single-best shortcut agrees with the general path, ties included.
        for row in [vec![0.5, 2.0, 2.0, -1.0], vec![-3.0], vec![1.0, 1.0]] {
            let general = {
                let mut all = top_k(&row, row.len());
                all.truncate(1);
                all
            };
            assert_eq!(top_k(&row, 1), general);
        }
    }

    #[test]
    fn entropy_comes_with_the_log_probabilities() {
        let logits: Vec<f32> = (0..300).map(|i| (i % 17) as f32 * 0.3).collect();
        let (lp, h, var) = log_softmax_with_entropy(&logits);
        let (want_h, want_var) = crate::verify::entropy_and_variance(&lp);
        assert!((h - want_h).abs() < 1e-5 && (var - want_var).abs() < 1e-4);
        // A masked entry: the reference path, with that entry at probability zero.
        let (lp, h, _) = log_softmax_with_entropy(&[0.0, f32::NEG_INFINITY, 0.0]);
        assert_eq!(lp[1], f32::NEG_INFINITY);
        assert!((lp[0] - 0.5f32.ln()).abs() < 1e-6 && (h - 2f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn greedy_takes_the_argmax() {
        let mut s = Sampler::new(
            SamplingParams {
                temperature: 0.0,
                top_p: 1.0,
                top_k: 0,
            },
            7,
        );
        assert_eq!(s.sample(&[0.1, 3.0, 2.9]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_small_is_greedy() {
        let logits = [0.1, 3.0, 2.9, -4.0];
        for (top_k, top_p) in [(1, 1.0), (0, 1e-6)] {
            let mut s = Sampler::new(
                SamplingParams {
                    temperature: 1.5,
                    top_p,
                    top_k,
                },
                3,
            );
            for _ in 0..50 {
                assert_eq!(s.sample(&logits), 1);
            }
        }
    }

    #[test]
    fn same_seed_same_draws_and_rough_frequencies() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 0.25, 0.75
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
        };
        let draw = |seed| {
            let mut s = Sampler::new(params, seed);
            (0..4000).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        let a = draw(11);
        assert_eq!(a, draw(11));
        assert_ne!(a, draw(12));
        let ones = a.iter().filter(|&&t| t == 1).count() as f64 / a.len() as f64;
        assert!((ones - 0.75).abs() < 0.03, "{ones}");
    }
}
