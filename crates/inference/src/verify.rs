//! Judging a miner's completion against the validator's own run of the claimed model.
//!
//! Generating costs one forward pass per token; checking costs one batched prefill over the
//! prompt and the miner's tokens, which yields, at every completion position, the model's
//! log-probability of the token the miner chose and what the model itself prefers there.
//! From that, without I/O and without trusting anything the miner reports:
//!
//! - **Greedy requests** (temperature 0): every token must be the model's own choice, up to a
//!   small slack for numerical ties between kernels. A smaller model, a coarser quantization,
//!   or made-up text leaves the argmax within a few tokens.
//! - **Sampled requests**: a miner that samples from another model and reports the true
//!   model's log-probabilities is caught statistically. Under honest sampling the log-prob of
//!   each chosen token has mean `-H` (the entropy at that position) and a known variance; the
//!   sum over the completion is compared with its expectation as a z-score.
//! - **Reported log-probabilities** must match the recomputation within a tolerance
//!   ([`verify_reported`]).
//! - **Length and finish**: `length` means exactly `max_tokens` tokens; `stop` on the
//!   end-of-sequence token means the model really prefers to end there (greedy) or gives it
//!   a plausible probability (sampled). A truncated answer fails both.

/// Why a completion ended, as the miner claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// `max_tokens` reached.
    Length,
    /// The model produced its end-of-sequence token (the last claimed token).
    EndOfSequence,
    /// A stop sequence matched; the text was cut before it.
    StopSequence,
}

/// What the miner claims it generated.
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    /// Completion token ids; when `finish` is [`Finish::EndOfSequence`] the last one is the
    /// end-of-sequence token.
    pub tokens: &'a [u32],
    /// Why it stopped.
    pub finish: Finish,
    /// The request's limit.
    pub max_tokens: u32,
    /// Whether the request asked for greedy decoding (temperature 0).
    pub greedy: bool,
}

/// The validator's recomputation at each completion position `i` (the distribution of
/// token `i` given the prompt and tokens `..i`).
#[derive(Clone, Copy, Debug)]
pub struct Recomputed<'a> {
    /// Log-probability of the claimed token.
    pub logprobs: &'a [f32],
    /// Log-probability of the model's most likely token.
    pub best_logprobs: &'a [f32],
    /// Entropy of the distribution, in nats.
    pub entropies: &'a [f32],
    /// Variance of the log-probability of a token drawn from the distribution.
    pub logprob_variances: &'a [f32],
}

/// Tolerances of [`verify`] and [`verify_reported`].
///
/// On x86 CPUs with AVX2 a miner's numbers are the validator's, bit for bit: the engine
/// gives a row the same arithmetic whether it is decoded alone or scored in a block, and
/// its AVX-512, AVX-VNNI and AVX2 kernels compute the same bits. The bounds are there for
/// miners whose CPU runs candle's products instead (ARM, or x86 without AVX2), which round
/// int8 activations otherwise. Measured with
/// `AGORA_KERNELS=portable` on the 30M and 380M Q8_0 test models over 200 tokens, such an
/// honest miner's log-probs differ from the validator's by a median of 0.04–0.07 nats, at
/// most 0.34, and 0.5–1.5% of its greedy tokens sit more than 0.2 nats below the best.
/// The same weights in Q6_K, served for Q8_0, differ by a median of 0.21–0.27 nats with
/// 15% of greedy tokens past 0.2 nats; Q4_K by a median of 0.5–1.1 with 40–50%.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VerifyPolicy {
    /// How far (nats) a greedy token's log-prob may sit below the best one.
    pub greedy_slack: f32,
    /// Share of greedy positions allowed outside the slack (near-ties that other kernels
    /// resolve differently).
    pub greedy_mismatch_share: f32,
    /// Largest difference (nats) between a reported and a recomputed log-prob at any one
    /// position.
    pub logprob_tolerance: f32,
    /// Largest median (nats), over the completion, of the differences between reported
    /// and recomputed log-probs: kernels' rounding moves most positions a little, a
    /// coarser quantization or another model moves them all further.
    pub median_logprob_tolerance: f32,
    /// The sampled test fails when the completion's total log-prob is this many standard
    /// deviations below its expectation under honest sampling.
    pub max_z: f32,
    /// Smallest probability the model may give its end-of-sequence token where a sampled
    /// completion claims to end.
    pub min_eos_prob: f32,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            greedy_slack: 0.2,
            greedy_mismatch_share: 0.05,
            logprob_tolerance: 1.0,
            median_logprob_tolerance: 0.15,
            max_z: 4.0,
            min_eos_prob: 1e-3,
        }
    }
}

/// Why a completion was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// No tokens at all.
    #[error("empty completion")]
    Empty,
    /// More tokens than the request allowed.
    #[error("{got} tokens exceed max_tokens {max}")]
    TooLong {
        /// Claimed tokens.
        got: usize,
        /// The limit.
        max: u32,
    },
    /// `finish_reason: length` with fewer tokens than the limit: truncated output.
    #[error("finish 'length' after {got} of {max} tokens")]
    Truncated {
        /// Claimed tokens.
        got: usize,
        /// The limit.
        max: u32,
    },
    /// The recomputation does not cover the claim (a validator-side bug or a bad claim).
    #[error("recomputation covers {recomputed} positions, the claim has {claimed}")]
    Coverage {
        /// Positions recomputed.
        recomputed: usize,
        /// Tokens claimed.
        claimed: usize,
    },
    /// Too many greedy positions where the model prefers another token.
    #[error(
        "{mismatches} of {positions} greedy tokens are not the model's choice (first at {first})"
    )]
    NotGreedy {
        /// Positions outside the slack.
        mismatches: usize,
        /// Positions checked.
        positions: usize,
        /// The first such position.
        first: usize,
    },
    /// The model would not end where the miner says it ended.
    #[error("end of sequence at position {position} has log-prob {logprob:.3}")]
    UnlikelyEnd {
        /// Where.
        position: usize,
        /// The model's log-prob of ending there.
        logprob: f32,
    },
    /// A reported log-prob disagrees with the recomputation.
    #[error("reported log-prob {reported:.4} at position {position}, recomputed {recomputed:.4}")]
    LogprobMismatch {
        /// Where.
        position: usize,
        /// What the miner said.
        reported: f32,
        /// What the model says.
        recomputed: f32,
    },
    /// Reported log-probs differ from the recomputation at most positions.
    #[error("reported log-probs differ from the recomputation by a median of {median:.3} nats")]
    LogprobDrift {
        /// The median difference.
        median: f32,
    },
    /// Sampled tokens far less likely than honest samples would be.
    #[error("sampled tokens are {z:.1} standard deviations less likely than honest sampling")]
    Improbable {
        /// The z-score.
        z: f32,
    },
    /// A number that is not finite, on either side.
    #[error("non-finite log-prob at position {0}")]
    NonFinite(usize),
}

/// Checks `claim` against `recomputed` under `policy`. Pure; never panics.
pub fn verify(
    claim: &Claim<'_>,
    recomputed: &Recomputed<'_>,
    policy: &VerifyPolicy,
) -> Result<(), Rejection> {
    let n = claim.tokens.len();
    if n == 0 {
        return Err(Rejection::Empty);
    }
    let max = claim.max_tokens;
    if u32::try_from(n).map_or(true, |n| n > max) {
        return Err(Rejection::TooLong { got: n, max });
    }
    if claim.finish == Finish::Length && u32::try_from(n).ok() != Some(max) {
        return Err(Rejection::Truncated { got: n, max });
    }
    let covered = [
        recomputed.logprobs.len(),
        recomputed.best_logprobs.len(),
        recomputed.entropies.len(),
        recomputed.logprob_variances.len(),
    ];
    if let Some(&short) = covered.iter().find(|&&len| len != n) {
        return Err(Rejection::Coverage {
            recomputed: short,
            claimed: n,
        });
    }
    for i in 0..n {
        let values = [
            recomputed.logprobs[i],
            recomputed.best_logprobs[i],
            recomputed.entropies[i],
            recomputed.logprob_variances[i],
        ];
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Rejection::NonFinite(i));
        }
    }
    if claim.finish == Finish::EndOfSequence {
        let last = n - 1;
        let lp = recomputed.logprobs[last];
        let unlikely = if claim.greedy {
            lp < recomputed.best_logprobs[last] - policy.greedy_slack
        } else {
            lp < policy.min_eos_prob.max(f32::MIN_POSITIVE).ln()
        };
        if unlikely {
            return Err(Rejection::UnlikelyEnd {
                position: last,
                logprob: lp,
            });
        }
    }
    if claim.greedy {
        check_greedy(recomputed, policy, n)
    } else {
        check_sampled(recomputed, policy)
    }
}

fn check_greedy(
    recomputed: &Recomputed<'_>,
    policy: &VerifyPolicy,
    n: usize,
) -> Result<(), Rejection> {
    let mut mismatches = 0usize;
    let mut first = None;
    for (i, (&lp, &best)) in recomputed
        .logprobs
        .iter()
        .zip(recomputed.best_logprobs)
        .enumerate()
    {
        if lp < best - policy.greedy_slack {
            mismatches += 1;
            first.get_or_insert(i);
        }
    }
    // The allowance rounds down: a short completion gets none.
    let allowed = (policy.greedy_mismatch_share.clamp(0.0, 1.0) * n as f32) as usize;
    match first {
        Some(first) if mismatches > allowed => Err(Rejection::NotGreedy {
            mismatches,
            positions: n,
            first,
        }),
        _ => Ok(()),
    }
}

fn check_sampled(recomputed: &Recomputed<'_>, policy: &VerifyPolicy) -> Result<(), Rejection> {
    // Sum of log p(chosen) against its honest mean (-sum H) and variance (sum Var), in f64.
    let observed: f64 = recomputed.logprobs.iter().map(|&v| f64::from(v)).sum();
    let expected: f64 = recomputed.entropies.iter().map(|&h| -f64::from(h)).sum();
    let variance: f64 = recomputed
        .logprob_variances
        .iter()
        .map(|&v| f64::from(v.max(0.0)))
        .sum();
    // A floor on the spread keeps near-deterministic distributions from failing on noise.
    let sd = variance.max(1e-6 * recomputed.logprobs.len() as f64).sqrt();
    let z = (expected - observed) / sd;
    if z > f64::from(policy.max_z) {
        return Err(Rejection::Improbable { z: z as f32 });
    }
    Ok(())
}

/// Checks the log-probabilities a miner reported against the recomputed ones, position by
/// position. Pure; never panics.
pub fn verify_reported(
    reported: &[f32],
    recomputed: &[f32],
    policy: &VerifyPolicy,
) -> Result<(), Rejection> {
    if reported.len() != recomputed.len() {
        return Err(Rejection::Coverage {
            recomputed: recomputed.len(),
            claimed: reported.len(),
        });
    }
    for (i, (&r, &v)) in reported.iter().zip(recomputed).enumerate() {
        if !r.is_finite() || !v.is_finite() {
            return Err(Rejection::NonFinite(i));
        }
        if (r - v).abs() > policy.logprob_tolerance {
            return Err(Rejection::LogprobMismatch {
                position: i,
                reported: r,
                recomputed: v,
            });
        }
    }
    let mut differences: Vec<f32> = reported
        .iter()
        .zip(recomputed)
        .map(|(r, v)| (r - v).abs())
        .collect();
    if differences.is_empty() {
        return Ok(());
    }
    let middle = differences.len() / 2;
    let (_, &mut median, _) = differences.select_nth_unstable_by(middle, f32::total_cmp);
    if median > policy.median_logprob_tolerance {
        return Err(Rejection::LogprobDrift { median });
    }
    Ok(())
}

/// Entropy and variance of the log-probability of a token drawn from a distribution given
/// by its log-probabilities (`-sum p log p` and `sum p (log p)^2 - H^2`). Non-finite entries
/// count as probability zero.
pub fn entropy_and_variance(logprobs: &[f32]) -> (f32, f32) {
    let (mut h, mut m2) = (0.0f64, 0.0f64);
    for &lp in logprobs {
        if lp.is_finite() {
            let lp = f64::from(lp);
            let p = lp.exp();
            h -= p * lp;
            m2 += p * lp * lp;
        }
    }
    (h as f32, (m2 - h * h).max(0.0) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A toy model: at each position a fixed distribution over 8 tokens.
    fn dist(seed: u64, sharp: f32) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let logits: Vec<f32> = (0..8).map(|_| rng.gen::<f32>() * sharp).collect();
        let max = logits.iter().cloned().fold(f32::MIN, f32::max);
        let z: f32 = logits.iter().map(|l| (l - max).exp()).sum();
        logits.iter().map(|l| l - max - z.ln()).collect()
    }

    struct Run {
        tokens: Vec<u32>,
        lps: Vec<f32>,
        best: Vec<f32>,
        ent: Vec<f32>,
        var: Vec<f32>,
    }

    impl Run {
        /// Generates `n` tokens with `pick` choosing from each position's distribution.
        fn new(n: usize, mut pick: impl FnMut(&[f32], usize) -> u32) -> Run {
            let mut r = Run {
                tokens: vec![],
                lps: vec![],
                best: vec![],
                ent: vec![],
                var: vec![],
            };
            for i in 0..n {
                let d = dist(i as u64, 4.0);
                let t = pick(&d, i);
                r.tokens.push(t);
                r.lps.push(d[t as usize]);
                r.best.push(d.iter().cloned().fold(f32::MIN, f32::max));
                let (h, v) = entropy_and_variance(&d);
                r.ent.push(h);
                r.var.push(v);
            }
            r
        }

        fn recomputed(&self) -> Recomputed<'_> {
            Recomputed {
                logprobs: &self.lps,
                best_logprobs: &self.best,
                entropies: &self.ent,
                logprob_variances: &self.var,
            }
        }

        fn claim(&self, greedy: bool) -> Claim<'_> {
            Claim {
                tokens: &self.tokens,
                finish: Finish::Length,
                max_tokens: self.tokens.len() as u32,
                greedy,
            }
        }
    }

    fn argmax(d: &[f32]) -> u32 {
        (0..d.len())
            .max_by(|&a, &b| d[a].total_cmp(&d[b]))
            .unwrap_or(0) as u32
    }

    fn sample(d: &[f32], rng: &mut ChaCha8Rng) -> u32 {
        let mut u: f32 = rng.gen();
        for (t, lp) in d.iter().enumerate() {
            u -= lp.exp();
            if u <= 0.0 {
                return t as u32;
            }
        }
        (d.len() - 1) as u32
    }

    #[test]
    fn honest_greedy_passes_and_a_wrong_token_fails() {
        let run = Run::new(40, |d, _| argmax(d));
        let policy = VerifyPolicy::default();
        assert_eq!(verify(&run.claim(true), &run.recomputed(), &policy), Ok(()));
        // Three off-argmax tokens in forty exceed the 5% allowance.
        let forged = Run::new(40, |d, i| {
            if i % 13 == 5 {
                (argmax(d) + 1) % 8
            } else {
                argmax(d)
            }
        });
        let err = verify(&forged.claim(true), &forged.recomputed(), &policy).unwrap_err();
        assert!(
            matches!(err, Rejection::NotGreedy { first: 5, .. }),
            "{err}"
        );
    }

    #[test]
    fn honest_sampling_passes_and_another_distribution_fails() {
        let policy = VerifyPolicy::default();
        let mut passed = 0;
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let run = Run::new(64, |d, _| sample(d, &mut rng));
            passed += usize::from(verify(&run.claim(false), &run.recomputed(), &policy).is_ok());
        }
        assert_eq!(passed, 50, "honest samples must not be flagged at z = 4");
        // Sampling from a different model (another seed's distributions) is caught.
        let mut caught = 0;
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let run = Run::new(64, |_, i| sample(&dist(1000 + i as u64, 4.0), &mut rng));
            caught += usize::from(matches!(
                verify(&run.claim(false), &run.recomputed(), &policy),
                Err(Rejection::Improbable { .. })
            ));
        }
        assert!(caught >= 45, "caught only {caught} of 50");
    }

    #[test]
    fn lengths_finish_and_reported_logprobs() {
        let run = Run::new(10, |d, _| argmax(d));
        let policy = VerifyPolicy::default();
        let mut claim = run.claim(true);
        claim.max_tokens = 16;
        assert_eq!(
            verify(&claim, &run.recomputed(), &policy),
            Err(Rejection::Truncated { got: 10, max: 16 })
        );
        claim.max_tokens = 4;
        assert!(matches!(
            verify(&claim, &run.recomputed(), &policy),
            Err(Rejection::TooLong { .. })
        ));
        // Every position 0.2 nats off: past the median bound.
        let lied: Vec<f32> = run.lps.iter().map(|v| v + 0.2).collect();
        assert!(matches!(
            verify_reported(&lied, &run.lps, &policy),
            Err(Rejection::LogprobDrift { .. })
        ));
        // One position far off: past the bound for any one position.
        let mut lied = run.lps.clone();
        lied[3] -= 1.5;
        assert!(matches!(
            verify_reported(&lied, &run.lps, &policy),
            Err(Rejection::LogprobMismatch { position: 3, .. })
        ));
        // Another CPU's rounding: every position a little off, a few up to 0.4 nats.
        let noisy: Vec<f32> = (run.lps.iter().enumerate())
            .map(|(i, v)| v + if i % 4 == 0 { 0.4 } else { 0.06 })
            .collect();
        assert_eq!(verify_reported(&noisy, &run.lps, &policy), Ok(()));
        assert_eq!(verify_reported(&run.lps, &run.lps, &policy), Ok(()));
        assert!(matches!(
            verify_reported(&run.lps[..5], &run.lps, &policy),
            Err(Rejection::Coverage { .. })
        ));
        let empty = Claim {
            tokens: &[],
            ..run.claim(true)
        };
        assert_eq!(
            verify(&empty, &run.recomputed(), &policy),
            Err(Rejection::Empty)
        );
    }

    #[test]
    fn an_end_the_model_does_not_prefer_is_rejected() {
        // The last greedy token is not the argmax: as an end of sequence it is refused even
        // though one mismatch in a long completion would be within the allowance.
        let run = Run::new(40, |d, i| {
            if i == 39 {
                (argmax(d) + 1) % 8
            } else {
                argmax(d)
            }
        });
        let mut claim = run.claim(true);
        claim.finish = Finish::EndOfSequence;
        claim.max_tokens = 64;
        assert!(matches!(
            verify(&claim, &run.recomputed(), &VerifyPolicy::default()),
            Err(Rejection::UnlikelyEnd { position: 39, .. })
        ));
    }

    #[test]
    fn non_finite_values_are_rejected_not_trusted() {
        let mut run = Run::new(8, |d, _| argmax(d));
        run.ent[3] = f32::NAN;
        assert_eq!(
            verify(
                &run.claim(true),
                &run.recomputed(),
                &VerifyPolicy::default()
            ),
            Err(Rejection::NonFinite(3))
        );
    }

    #[test]
    fn entropy_of_uniform_and_certain() {
        let uniform = vec![(0.25f32).ln(); 4];
        let (h, v) = entropy_and_variance(&uniform);
        assert!((h - 4f32.ln()).abs() < 1e-6 && v.abs() < 1e-6);
        let (h, v) = entropy_and_variance(&[0.0, f32::NEG_INFINITY]);
        assert!(h.abs() < 1e-6 && v.abs() < 1e-6);
    }
}
