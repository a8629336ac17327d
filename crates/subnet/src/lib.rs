//! The framework Agora subnets are written in.
//!
//! A subnet supplies the work and how to score it, as a trait pair over one [`Protocol`]:
//! - [`MinerHandler`]: what a miner does with one validated request;
//! - [`ValidatorLogic`]: how a validator makes a challenge for a uid, and how it scores the
//!   outcome (answer and latency, or failure).
//!
//! The framework does the rest:
//! - at start-up: connect to a node, register the hotkey (burned registration paid by the
//!   coldkey) unless it already has a uid, stake for validators, publish the axon
//!   (`serve_axon`);
//! - the miner's axon: an HTTP server behind `agora-wire` (btauth/1 signatures, freshness,
//!   replay, admission by the live metagraph, body limits, signed responses);
//! - the validator loop: follow the metagraph, query every served miner concurrently with a
//!   timeout, keep a moving-average score per uid that resets when a uid changes hotkey
//!   ([`scores::ScoreBook`]), and set weights within the subnet's rate limit — committing then
//!   revealing when the subnet uses commit-reveal;
//! - graceful shutdown on a signal, `tracing` logs, Prometheus counters ([`metrics`]) on the
//!   miner's `/metrics` and on a validator's optional metrics address.

pub mod chain;
pub mod cli;
mod error;
pub mod metrics;
pub mod miner;
pub mod scores;
pub mod validator;

pub use error::SubnetError;
pub use miner::{run_axon, run_miner, AxonRoutes, MinerConfig, MinerHandler};
pub use validator::{
    axon_url, run_validator, QueryOutcome, Target, ValidatorConfig, ValidatorLogic, WeightSetter,
};

use serde::{de::DeserializeOwned, Serialize};

/// A subnet's request/response pair and where miners serve it.
pub trait Protocol: Send + Sync + 'static {
    /// What a validator sends.
    type Request: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What a miner answers.
    type Response: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The HTTP path of the miner endpoint, e.g. `/compute/matmul`.
    const ROUTE: &'static str;
}
