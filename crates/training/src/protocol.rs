//! What the training subnet's validator and miners say to each other over `agora-wire`, and
//! the checks on it (pure: no sockets).
//!
//! One round, all requests signed by the validator's hotkey:
//! 1. `POST /training/round` ([`RoundRequest`]) to every miner: the run, the checkpoint id
//!    and where to download it (`GET /training/checkpoints/{id}` on the validator, plain
//!    HTTP: the bytes are checked against the id), the round seed and the miners taking
//!    part (from which everyone derives the same [`Ownership`](crate::round::Ownership)).
//!    The miner trains and answers its [`CommitResponse`].
//! 2. `POST /training/reveal` ([`RevealRequest`]) to every committer: the update's canonical
//!    bytes ([`Update::encode`](crate::update::Update::encode)).
//! 3. `POST /training/state` ([`RevealRequest`]) to the miner picked for the replay: the
//!    canonical bytes of the state it committed to
//!    ([`MinerState::encode`](crate::round::MinerState::encode)).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::Corpus;
use crate::params::Digest32;
use crate::round::{Commit, RunConfig};

/// The round route.
pub const ROUND_ROUTE: &str = "/training/round";
/// The reveal route.
pub const REVEAL_ROUTE: &str = "/training/reveal";
/// The committed-state route (replay spot checks).
pub const STATE_ROUTE: &str = "/training/state";
/// The validator's checkpoint download route (prefix; the hex id follows).
pub const CHECKPOINT_ROUTE: &str = "/training/checkpoints";
/// Most miners one round names.
pub const MAX_MINERS: usize = 4096;
/// Longest checkpoint URL accepted.
const MAX_URL_LEN: usize = 2048;

/// A digest of the corpus text (training and held-out parts): miners and validator must
/// train and measure on the same bytes, so a round names the corpus it was made for.
pub fn corpus_fingerprint(corpus: &Corpus) -> Digest32 {
    let mut h = Sha256::new();
    h.update(b"agora-training/corpus/v1");
    for part in [&corpus.train, &corpus.heldout] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Validator → miner: train this round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRequest {
    /// The run's settings.
    pub run: RunConfig,
    /// [`corpus_fingerprint`] of the corpus, hex.
    pub corpus: String,
    /// Round number.
    pub round: u64,
    /// The validator's seed for the round's shards.
    pub round_seed: u64,
    /// Id of the checkpoint to train from, hex.
    pub checkpoint: String,
    /// Where its safetensors bytes can be downloaded.
    pub checkpoint_url: String,
    /// The uid the validator addresses.
    pub uid: u16,
    /// Every miner taking part, sorted (expert ownership is derived from it).
    pub miners: Vec<u16>,
}

/// A [`RoundRequest`] that passed [`RoundRequest::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRound {
    /// The checkpoint id.
    pub checkpoint: Digest32,
}

/// Parses a 32-byte hex digest.
pub fn parse_digest(what: &str, hex_text: &str) -> Result<Digest32, String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out)
        .map_err(|e| format!("{what} must be 64 hex digits: {e}"))?;
    Ok(out)
}

impl RoundRequest {
    /// Checks the request against the miner: its uid, the corpus it holds, and the largest
    /// model it agrees to train.
    pub fn check(
        &self,
        my_uid: u16,
        corpus: &Digest32,
        max_params: usize,
    ) -> Result<CheckedRound, String> {
        self.run.validate().map_err(|e| e.to_string())?;
        let params = self.run.model.num_params();
        if params > max_params {
            return Err(format!(
                "the run's model has {params} parameters, more than this miner's limit of {max_params}"
            ));
        }
        if self.uid != my_uid {
            return Err(format!(
                "the round is addressed to uid {}, this miner is uid {my_uid}",
                self.uid
            ));
        }
        if self.miners.is_empty() || self.miners.len() > MAX_MINERS {
            return Err(format!("miners must list 1 to {MAX_MINERS} uids"));
        }
        if self.miners.windows(2).any(|w| w[0] >= w[1]) {
            return Err("miners must be sorted and distinct".into());
        }
        if self.miners.binary_search(&my_uid).is_err() {
            return Err("this miner is not among the round's miners".into());
        }
        if parse_digest("corpus", &self.corpus)? != *corpus {
            return Err(
                "the round is for another corpus than this miner's (start both with the same corpus flags)"
                    .into(),
            );
        }
        let checkpoint = parse_digest("checkpoint", &self.checkpoint)?;
        let url = &self.checkpoint_url;
        if url.len() > MAX_URL_LEN || !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err("checkpoint_url must be an http(s) URL of at most 2048 bytes".into());
        }
        Ok(CheckedRound { checkpoint })
    }
}

/// Miner → validator: the commitment of the round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitResponse {
    /// The miner.
    pub uid: u16,
    /// The round.
    pub round: u64,
    /// Commitment of the update it will reveal, hex.
    pub update_hash: String,
    /// Hash of the state it started the round from, hex.
    pub state_hash: String,
}

impl CommitResponse {
    /// The commitment of `uid` in `round`, when the answer is about that round and miner.
    pub fn to_commit(&self, uid: u16, round: u64) -> Result<Commit, String> {
        if self.uid != uid || self.round != round {
            return Err(format!(
                "commit for uid {} round {}, expected uid {uid} round {round}",
                self.uid, self.round
            ));
        }
        Ok(Commit {
            uid,
            update_hash: parse_digest("update_hash", &self.update_hash)?,
            state_hash: parse_digest("state_hash", &self.state_hash)?,
        })
    }

    /// The answer for a commitment.
    pub fn from_commit(c: &Commit, round: u64) -> Self {
        Self {
            uid: c.uid,
            round,
            update_hash: hex::encode(c.update_hash),
            state_hash: hex::encode(c.state_hash),
        }
    }
}

/// Validator → miner: send what you committed to in `round`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealRequest {
    /// The round.
    pub round: u64,
}

/// Upper bound on the bytes of a dense update or checkpoint of `run`'s model: 4 bytes per
/// parameter, plus names, shapes and headers.
pub fn max_payload_bytes(run: &RunConfig) -> usize {
    let tensors = run.model.param_shapes().len();
    run.model
        .num_params()
        .saturating_mul(4)
        .saturating_add(tensors.saturating_mul(512))
        .saturating_add(64 << 10)
}

/// Upper bound on the bytes of a [`MinerState`](crate::round::MinerState) of `run`'s model (three parameter sets).
pub fn max_state_bytes(run: &RunConfig) -> usize {
    max_payload_bytes(run).saturating_mul(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(corpus: &Corpus) -> RoundRequest {
        RoundRequest {
            run: RunConfig::tiny(),
            corpus: hex::encode(corpus_fingerprint(corpus)),
            round: 3,
            round_seed: 9,
            checkpoint: hex::encode([7u8; 32]),
            checkpoint_url: "http://127.0.0.1:1/training/checkpoints/07".into(),
            uid: 2,
            miners: vec![1, 2, 5],
        }
    }

    #[test]
    fn a_good_request_passes_and_bad_ones_say_why() {
        let corpus = Corpus::synthetic(0, 20_000);
        let fp = corpus_fingerprint(&corpus);
        let ok = request(&corpus);
        assert_eq!(ok.check(2, &fp, 1 << 30).unwrap().checkpoint, [7u8; 32]);
        let cases: Vec<(RoundRequest, &str)> = vec![
            (
                RoundRequest {
                    uid: 1,
                    ..ok.clone()
                },
                "addressed",
            ),
            (
                RoundRequest {
                    miners: vec![2, 1],
                    ..ok.clone()
                },
                "sorted",
            ),
            (
                RoundRequest {
                    miners: vec![1, 5],
                    uid: 2,
                    ..ok.clone()
                },
                "not among",
            ),
            (
                RoundRequest {
                    checkpoint: "zz".into(),
                    ..ok.clone()
                },
                "hex",
            ),
            (
                RoundRequest {
                    corpus: hex::encode([0u8; 32]),
                    ..ok.clone()
                },
                "another corpus",
            ),
            (
                RoundRequest {
                    checkpoint_url: "file:///etc/passwd".into(),
                    ..ok.clone()
                },
                "http",
            ),
            (
                RoundRequest {
                    run: RunConfig {
                        inner_steps: 0,
                        ..RunConfig::tiny()
                    },
                    ..ok.clone()
                },
                "inner_steps",
            ),
        ];
        for (req, why) in cases {
            let err = req.check(2, &fp, 1 << 30).unwrap_err();
            assert!(err.contains(why), "{err} should mention {why}");
        }
        assert!(ok.check(2, &fp, 10).unwrap_err().contains("limit"));
    }

    #[test]
    fn commits_must_name_the_round_and_uid() {
        let c = Commit {
            uid: 4,
            update_hash: [1; 32],
            state_hash: [2; 32],
        };
        let r = CommitResponse::from_commit(&c, 6);
        assert_eq!(r.to_commit(4, 6).unwrap(), c);
        assert!(r.to_commit(4, 7).is_err());
        assert!(r.to_commit(5, 6).is_err());
        let bad = CommitResponse {
            update_hash: "00".into(),
            ..r
        };
        assert!(bad.to_commit(4, 6).is_err());
    }

    #[test]
    fn payload_bounds_cover_a_dense_update() {
        let run = RunConfig::tiny();
        let params = run.initial_params().unwrap();
        let u = crate::update::Update::dense(0, 0, [0; 32], &params);
        assert!(u.encode().len() <= max_payload_bytes(&run));
        let bytes = crate::checkpoint::to_safetensors(&run.model, &params).unwrap();
        assert!(bytes.len() <= max_payload_bytes(&run));
    }
}
