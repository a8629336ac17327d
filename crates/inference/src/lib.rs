//! Agora's inference subnet.
//!
//! [`engine`] runs Llama-family LLMs (Llama, Mistral, Qwen2, Qwen3) on the CPU with candle,
//! from a local directory of GGUF or safetensors weights: tokenization and chat templates,
//! greedy and seeded sampled decoding with stop sequences and log-probabilities, token
//! streaming to many concurrent callers with batched decoding, and one-pass scoring of a
//! given completion (how validators check miners). [`engine::testmodel`] writes small
//! deterministic random-weight models in real formats for tests and the devnet. [`cli`]
//! holds the `agora model` and `agora bench decode` commands.
//!
//! The subnet's neurons: [`miner`] (the OpenAI-compatible axon), [`private`] (the attested
//! enclave serving end-to-end encrypted requests, its evidence from the guest kernel via
//! [`tsm`]), [`validator`] (plaintext and private
//! challenges checked against the validator's own copy of the model, with [`verify`],
//! [`challenge`] and [`attestation`], the verdicts on miners' TEE bundles).

pub mod attestation;
pub mod challenge;
pub mod cli;
pub mod engine;
pub mod miner;
pub mod neuron_cli;
pub mod private;
pub mod tee_bench;
pub mod tsm;
pub mod validator;
pub mod verify;
