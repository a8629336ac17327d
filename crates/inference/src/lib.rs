//! Agora's inference subnet.
//!
//! [`engine`] runs Llama-family LLMs (Llama, Mistral, Qwen2, Qwen3) on the CPU with candle,
//! from a local directory of GGUF or safetensors weights: tokenization and chat templates,
//! greedy and seeded sampled decoding with stop sequences and log-probabilities, token
//! streaming to many concurrent callers with batched decoding, and one-pass scoring of a
//! given completion (how validators check miners). [`engine::testmodel`] writes small
//! deterministic random-weight models in real formats for tests and the devnet. [`cli`]
//! holds the `agora model` and `agora bench decode` commands.

pub mod challenge;
pub mod cli;
pub mod engine;
pub mod miner;
pub mod neuron_cli;
pub mod private;
pub mod tee_bench;
pub mod validator;
pub mod verify;
