//! What a validator asks inference miners, and how it turns a checked answer into a score.
//! Pure: prompts come from a seeded RNG, scores from measured times.

use rand::Rng;
use std::time::Duration;

/// Words the challenge prompts are made of. Prompts are fresh per round and per miner, so an
/// answer cannot be cached or copied from another miner.
const WORDS: &[&str] = &[
    "river", "stone", "lantern", "harbor", "winter", "garden", "copper", "signal", "forest",
    "engine", "market", "shadow", "meadow", "silver", "thunder", "island", "window", "mirror",
    "candle", "valley", "orbit", "pepper", "ladder", "canvas", "pocket", "anchor", "falcon",
    "velvet", "marble", "timber", "compass", "harvest", "glacier", "echo", "saddle", "ribbon",
    "quarry", "beacon", "cedar", "tundra", "violin", "prairie", "crystal", "ember", "mosaic",
    "summit", "lagoon", "parcel", "walnut", "furnace", "bridge", "cotton", "desert", "fable",
    "gravel", "hollow", "ivory", "jungle", "kettle", "lemon", "magnet", "needle", "oyster",
    "pillow", "quiver", "rocket", "sparrow", "tulip", "umbrella", "vessel", "whistle", "yarn",
    "zephyr", "atlas", "basket", "cobalt", "dune", "easel", "fern", "granite", "hammock",
];

/// How the prompt is phrased.
const FRAMES: &[&str] = &[
    "Write a short story about {}.",
    "Describe {} in plain words.",
    "List facts about {}.",
    "Explain how {} are connected.",
    "Compose a poem on {}.",
];

/// One challenge: a chat prompt and how to decode it.
#[derive(Clone, Debug, PartialEq)]
pub struct Challenge {
    /// The user message.
    pub prompt: String,
    /// Completion length asked for.
    pub max_tokens: u32,
    /// 0 for greedy decoding; otherwise the sampling temperature.
    pub temperature: f32,
    /// Sampling seed sent with the request (below 2^63, as OpenAI's API takes it).
    pub seed: u64,
}

impl Challenge {
    /// A fresh challenge: three to six random words in a random frame; greedy on
    /// `greedy_share` of challenges, sampled at temperature 1 otherwise.
    pub fn generate(rng: &mut impl Rng, max_tokens: u32, greedy_share: f64) -> Challenge {
        let n = rng.gen_range(3..=6);
        let words: Vec<&str> = (0..n)
            .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
            .collect();
        let frame = FRAMES[rng.gen_range(0..FRAMES.len())];
        let prompt = frame.replacen("{}", &words.join(", "), 1);
        let greedy = rng.gen_bool(greedy_share.clamp(0.0, 1.0));
        Challenge {
            prompt,
            max_tokens: max_tokens.max(1),
            temperature: if greedy { 0.0 } else { 1.0 },
            // OpenAI's `seed` is a signed 64-bit integer: miners refuse larger ones.
            seed: rng.gen::<u64>() >> 1,
        }
    }

    /// Whether the challenge asks for greedy decoding.
    pub fn greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// Reference times a verified answer is measured against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpeedReference {
    /// Time to first token that scores one half on its own.
    pub ttft: Duration,
    /// Time per completion token after the first that scores one half on its own.
    pub per_token: Duration,
}

/// The speed factor of a verified answer, in `(0, 1]`: the mean of `r / (r + t)` for time to
/// first token and time per later token. Equal to the reference scores 0.5; twice as fast
/// scores 0.67; ten times slower scores 0.09. Smooth, so that small timing noise moves the
/// score little.
pub fn speed_factor(
    reference: SpeedReference,
    ttft: Duration,
    total: Duration,
    tokens: u32,
) -> f64 {
    let ratio = |r: Duration, t: Duration| {
        let r = r.as_secs_f64().max(1e-9);
        r / (r + t.as_secs_f64().max(0.0))
    };
    let decode = total.saturating_sub(ttft);
    let per_token = if tokens > 1 {
        decode / (tokens - 1)
    } else {
        Duration::ZERO
    };
    0.5 * ratio(reference.ttft, ttft) + 0.5 * ratio(reference.per_token, per_token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn challenges_are_seeded_and_varied() {
        let a = Challenge::generate(&mut ChaCha8Rng::seed_from_u64(7), 16, 0.5);
        let b = Challenge::generate(&mut ChaCha8Rng::seed_from_u64(7), 16, 0.5);
        assert_eq!(a, b);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let many: Vec<Challenge> = (0..100)
            .map(|_| Challenge::generate(&mut rng, 16, 0.5))
            .collect();
        let distinct: std::collections::HashSet<&str> =
            many.iter().map(|c| c.prompt.as_str()).collect();
        assert!(distinct.len() > 95);
        let greedy = many.iter().filter(|c| c.greedy()).count();
        assert!((30..=70).contains(&greedy), "{greedy}");
        assert_eq!(Challenge::generate(&mut rng, 0, 1.0).max_tokens, 1);
        assert!(many.iter().all(|c| i64::try_from(c.seed).is_ok()));
    }

    #[test]
    fn faster_answers_score_higher() {
        let r = SpeedReference {
            ttft: Duration::from_millis(100),
            per_token: Duration::from_millis(20),
        };
        let at_ref = speed_factor(r, r.ttft, r.ttft + r.per_token * 9, 10);
        assert!((at_ref - 0.5).abs() < 1e-9);
        let fast = speed_factor(r, r.ttft / 2, r.ttft / 2 + r.per_token * 9 / 2, 10);
        let slow = speed_factor(r, r.ttft * 10, r.ttft * 10 + r.per_token * 90, 10);
        assert!(fast > at_ref && at_ref > slow && slow > 0.0);
        assert!(speed_factor(r, Duration::ZERO, Duration::ZERO, 1) <= 1.0);
    }
}
