//! Integration tests for agora-wallet: one binary, one module per topic.

mod bittensor;
mod cli;
mod files;
