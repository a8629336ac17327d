//! The verifiable-compute subnet: "if the work can be measured, it can be paid".
//!
//! A validator asks a miner for the product `C = A·B` of two `n × n` matrices over the
//! integers modulo 2^32, where `A` and `B` are expanded from a 32-byte seed the validator
//! picks (so a request is tiny and the miner cannot precompute). The miner returns `C`.
//! The validator checks it with Freivalds' algorithm: for a secret random 0/1 vector `r`,
//! `A(Br) = Cr` holds for a correct `C`, and fails with probability at least 1/2 for a wrong
//! one, over any ring. `k` independent vectors catch a wrong answer with probability at least
//! `1 - 2^-k`, at a cost of `O(k·n²)` against the miner's `O(n³)`.
//!
//! Score of one answer: 0 if wrong, missing or late; otherwise a speed factor in `(0, 1]`
//! that halves every `reference_ms` of latency. The subnet framework keeps a moving average
//! per uid, which makes availability count too.
//!
//! The crate root is pure: no I/O, randomness comes in as seeds. [`neuron`] plugs it into the
//! subnet framework as a miner handler and a validator's challenge and scorer.

pub mod cli;
pub mod neuron;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// Largest matrix side a miner accepts (a 512×512 product is ~134M multiply-adds and a 1 MiB
/// answer; larger requests would only be a way to tie a miner up).
pub const MAX_N: u16 = 512;

/// A request: multiply the matrices expanded from `seed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatmulTask {
    /// Seed of `A` and `B`, hex.
    pub seed: String,
    /// Matrix side.
    pub n: u16,
}

/// A miner's answer: `C` row-major, `n * n` entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatmulAnswer {
    /// The product, row-major.
    pub c: Vec<u32>,
}

/// Why a task or an answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComputeError {
    /// The seed is not 32 bytes of hex.
    #[error("seed must be 64 hex digits")]
    BadSeed,
    /// `n` is 0 or above [`MAX_N`].
    #[error("matrix side {0} outside 1..={MAX_N}")]
    BadSize(u16),
    /// The answer has the wrong number of entries.
    #[error("answer has {got} entries, expected {expected}")]
    WrongLength {
        /// Entries given.
        got: usize,
        /// Entries expected.
        expected: usize,
    },
    /// Freivalds' check failed: the product is wrong.
    #[error("the product is wrong (failed check {round})")]
    WrongProduct {
        /// Which random check caught it.
        round: u32,
    },
}

impl MatmulTask {
    /// A task from a seed.
    pub fn new(seed: [u8; 32], n: u16) -> Self {
        MatmulTask {
            seed: hex::encode(seed),
            n,
        }
    }

    /// Checks the request and returns the seed bytes.
    pub fn validate(&self) -> Result<[u8; 32], ComputeError> {
        if self.n == 0 || self.n > MAX_N {
            return Err(ComputeError::BadSize(self.n));
        }
        let mut seed = [0u8; 32];
        hex::decode_to_slice(&self.seed, &mut seed).map_err(|_| ComputeError::BadSeed)?;
        Ok(seed)
    }

    /// `A` and `B`, row-major.
    pub fn matrices(&self) -> Result<(Vec<u32>, Vec<u32>), ComputeError> {
        let seed = self.validate()?;
        let len = usize::from(self.n) * usize::from(self.n);
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut a = vec![0u32; len];
        let mut b = vec![0u32; len];
        a.iter_mut()
            .chain(b.iter_mut())
            .for_each(|x| *x = rng.next_u32());
        Ok((a, b))
    }
}

/// `C = A·B` modulo 2^32 for row-major `n × n` matrices, in the cache-friendly i-k-j order.
pub fn multiply(a: &[u32], b: &[u32], n: usize) -> Vec<u32> {
    let mut c = vec![0u32; n * n];
    for (a_row, c_row) in a.chunks_exact(n).zip(c.chunks_exact_mut(n)) {
        for (&aik, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
            for (cij, &bkj) in c_row.iter_mut().zip(b_row) {
                *cij = cij.wrapping_add(aik.wrapping_mul(bkj));
            }
        }
    }
    c
}

/// What an honest miner returns.
pub fn solve(task: &MatmulTask) -> Result<MatmulAnswer, ComputeError> {
    let (a, b) = task.matrices()?;
    Ok(MatmulAnswer {
        c: multiply(&a, &b, usize::from(task.n)),
    })
}

fn mat_vec(m: &[u32], v: &[u32], n: usize) -> Vec<u32> {
    m.chunks_exact(n)
        .map(|row| {
            row.iter()
                .zip(v)
                .fold(0u32, |acc, (&x, &y)| acc.wrapping_add(x.wrapping_mul(y)))
        })
        .collect()
}

/// Freivalds' check of `answer` with `rounds` random vectors drawn from `check_seed` (the
/// validator's secret: a miner that knew it could forge an answer that passes).
pub fn verify(
    task: &MatmulTask,
    answer: &MatmulAnswer,
    check_seed: [u8; 32],
    rounds: u32,
) -> Result<(), ComputeError> {
    let (a, b) = task.matrices()?;
    let n = usize::from(task.n);
    if answer.c.len() != n * n {
        return Err(ComputeError::WrongLength {
            got: answer.c.len(),
            expected: n * n,
        });
    }
    let mut rng = ChaCha20Rng::from_seed(check_seed);
    for round in 0..rounds {
        let r: Vec<u32> = (0..n).map(|_| rng.next_u32() & 1).collect();
        let abr = mat_vec(&a, &mat_vec(&b, &r, n), n);
        let cr = mat_vec(&answer.c, &r, n);
        if abr != cr {
            return Err(ComputeError::WrongProduct { round });
        }
    }
    Ok(())
}

/// Score of one answer in `[0, 1]`: 0 unless correct and within `timeout_ms`; then
/// `2^(-latency / reference_ms)`, so a miner twice as slow scores less but not nothing.
pub fn score(correct: bool, latency_ms: u64, timeout_ms: u64, reference_ms: u64) -> f64 {
    if !correct || latency_ms > timeout_ms {
        return 0.0;
    }
    let reference = reference_ms.max(1) as f64;
    (-(latency_ms as f64) / reference).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[u32], b: &[u32], n: usize) -> Vec<u32> {
        let mut c = vec![0u32; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut s = 0u32;
                for k in 0..n {
                    s = s.wrapping_add(a[i * n + k].wrapping_mul(b[k * n + j]));
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    #[test]
    fn multiply_matches_definition() {
        let t = MatmulTask::new([3; 32], 17);
        let (a, b) = t.matrices().unwrap();
        assert_eq!(multiply(&a, &b, 17), naive(&a, &b, 17));
    }

    #[test]
    fn honest_answer_verifies() {
        let t = MatmulTask::new([1; 32], 64);
        let ans = solve(&t).unwrap();
        assert_eq!(verify(&t, &ans, [9; 32], 32), Ok(()));
    }

    #[test]
    fn any_single_wrong_entry_is_caught() {
        let t = MatmulTask::new([2; 32], 32);
        let good = solve(&t).unwrap();
        for pos in [0usize, 5, 511, 1023] {
            let mut bad = good.clone();
            bad.c[pos] = bad.c[pos].wrapping_add(1 << 31);
            assert!(matches!(
                verify(&t, &bad, [7; 32], 32),
                Err(ComputeError::WrongProduct { .. })
            ));
        }
        let zeros = MatmulAnswer { c: vec![0; 1024] };
        assert!(verify(&t, &zeros, [7; 32], 32).is_err());
        let short = MatmulAnswer { c: vec![0; 10] };
        assert_eq!(
            verify(&t, &short, [7; 32], 1),
            Err(ComputeError::WrongLength {
                got: 10,
                expected: 1024
            })
        );
    }

    #[test]
    fn bad_tasks_are_refused() {
        assert_eq!(
            MatmulTask::new([0; 32], 0).validate(),
            Err(ComputeError::BadSize(0))
        );
        assert_eq!(
            MatmulTask::new([0; 32], MAX_N + 1).validate(),
            Err(ComputeError::BadSize(MAX_N + 1))
        );
        let t = MatmulTask {
            seed: "zz".into(),
            n: 4,
        };
        assert_eq!(t.validate(), Err(ComputeError::BadSeed));
    }

    #[test]
    fn score_prefers_fast_correct_answers() {
        assert_eq!(score(false, 1, 1000, 100), 0.0);
        assert_eq!(score(true, 2000, 1000, 100), 0.0);
        assert_eq!(score(true, 0, 1000, 100), 1.0);
        assert!((score(true, 100, 1000, 100) - 0.5).abs() < 1e-12);
        assert!(score(true, 10, 1000, 100) > score(true, 50, 1000, 100));
    }

    proptest::proptest! {
        #[test]
        fn a_random_error_is_caught(pos in 0usize..256, delta in 1u32..) {
            let t = MatmulTask::new([5; 32], 16);
            let mut ans = solve(&t).unwrap();
            ans.c[pos] = ans.c[pos].wrapping_add(delta);
            proptest::prop_assert!(verify(&t, &ans, [11; 32], 40).is_err());
        }
    }
}
