//! The compute subnet in the framework: the miner's handler (honest, or one of the cheats the
//! tests and the devnet use to show that cheating does not pay) and the validator's logic.

use crate::{multiply, score, verify, MatmulAnswer, MatmulTask};
use agora_subnet::{MinerHandler, Protocol, QueryOutcome, ValidatorLogic};
use agora_wire::Caller;
use rand::RngCore;
use rand_chacha::ChaCha20Rng;
use std::time::Duration;

/// The compute subnet's protocol.
#[derive(Debug)]
pub struct Matmul;

impl Protocol for Matmul {
    type Request = MatmulTask;
    type Response = MatmulAnswer;
    const ROUTE: &'static str = "/compute/matmul";
}

/// How a miner behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Computes the product.
    Honest,
    /// Returns a product with one wrong entry (saves nothing, but shows detection).
    Wrong,
    /// Returns zeros without computing (saves all the work).
    Lazy,
    /// Computes, then waits this long before answering.
    Slow(Duration),
}

impl std::str::FromStr for Behaviour {
    type Err = String;

    /// `honest`, `wrong`, `lazy` or `slow:<ms>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "honest" => Ok(Behaviour::Honest),
            "wrong" => Ok(Behaviour::Wrong),
            "lazy" => Ok(Behaviour::Lazy),
            _ => s
                .strip_prefix("slow:")
                .and_then(|ms| ms.parse().ok())
                .map(|ms| Behaviour::Slow(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    format!("unknown behaviour '{s}': use honest, wrong, lazy or slow:<ms>")
                }),
        }
    }
}

/// The miner's handler.
#[derive(Clone, Debug)]
pub struct ComputeMiner {
    /// How it behaves.
    pub behaviour: Behaviour,
}

impl MinerHandler for ComputeMiner {
    type P = Matmul;

    async fn handle(&self, _caller: &Caller, task: MatmulTask) -> Result<MatmulAnswer, String> {
        let (a, b) = task.matrices().map_err(|e| e.to_string())?;
        let n = usize::from(task.n);
        let behaviour = self.behaviour;
        // The product is CPU work: keep it off the async workers.
        let c = tokio::task::spawn_blocking(move || match behaviour {
            Behaviour::Lazy => vec![0; n * n],
            Behaviour::Wrong => {
                let mut c = multiply(&a, &b, n);
                if let Some(x) = c.first_mut() {
                    *x = x.wrapping_add(1);
                }
                c
            }
            Behaviour::Honest | Behaviour::Slow(_) => multiply(&a, &b, n),
        })
        .await
        .map_err(|e| e.to_string())?;
        if let Behaviour::Slow(d) = behaviour {
            tokio::time::sleep(d).await;
        }
        Ok(MatmulAnswer { c })
    }
}

/// The validator's challenge generator and scorer.
#[derive(Clone, Debug)]
pub struct ComputeValidator {
    /// Matrix side of each challenge.
    pub n: u16,
    /// Answers later than this score 0, ms.
    pub timeout_ms: u64,
    /// Latency at which a correct answer scores one half, ms.
    pub reference_ms: u64,
    /// Freivalds rounds (a wrong answer passes with probability at most 2^-rounds).
    pub rounds: u32,
}

impl Default for ComputeValidator {
    fn default() -> Self {
        ComputeValidator {
            n: 128,
            timeout_ms: 2000,
            reference_ms: 200,
            rounds: 32,
        }
    }
}

/// What the validator keeps of a challenge.
#[derive(Debug)]
pub struct ComputeCheck {
    task: MatmulTask,
    check_seed: [u8; 32],
}

impl ValidatorLogic for ComputeValidator {
    type P = Matmul;
    type Check = ComputeCheck;

    fn challenge(&self, _uid: u16, rng: &mut ChaCha20Rng) -> (MatmulTask, ComputeCheck) {
        let mut seed = [0u8; 32];
        let mut check_seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        rng.fill_bytes(&mut check_seed);
        let task = MatmulTask::new(seed, self.n);
        (task.clone(), ComputeCheck { task, check_seed })
    }

    fn score(&self, check: ComputeCheck, outcome: QueryOutcome<MatmulAnswer>) -> f64 {
        match outcome {
            QueryOutcome::Failed { .. } => 0.0,
            QueryOutcome::Answered { response, latency } => {
                let correct = verify(&check.task, &response, check.check_seed, self.rounds).is_ok();
                let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
                score(correct, ms, self.timeout_ms, self.reference_ms)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn behaviours_parse() {
        assert_eq!("honest".parse(), Ok(Behaviour::Honest));
        assert_eq!(
            "slow:250".parse(),
            Ok(Behaviour::Slow(Duration::from_millis(250)))
        );
        assert!("fast".parse::<Behaviour>().is_err());
    }

    #[test]
    fn validator_scores_honest_above_cheats() {
        let v = ComputeValidator {
            n: 32,
            ..ComputeValidator::default()
        };
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (task, check) = v.challenge(0, &mut rng);
        let good = crate::solve(&task).unwrap();
        let fast = QueryOutcome::Answered {
            response: good.clone(),
            latency: Duration::from_millis(5),
        };
        let s_good = v.score(check, fast);
        assert!(s_good > 0.9);
        let (task, check) = v.challenge(0, &mut rng);
        let zeros = MatmulAnswer {
            c: vec![0; usize::from(task.n).pow(2)],
        };
        assert_eq!(
            v.score(
                check,
                QueryOutcome::Answered {
                    response: zeros,
                    latency: Duration::ZERO
                }
            ),
            0.0
        );
        let (_, check) = v.challenge(0, &mut rng);
        assert_eq!(
            v.score(
                check,
                QueryOutcome::Failed {
                    error: "timeout".into()
                }
            ),
            0.0
        );
    }
}
