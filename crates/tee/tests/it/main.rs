//! Integration tests of agora-tee (one binary, as in the workspace convention).

mod channel;
mod fixtures;
mod hpke_interop;
#[cfg(feature = "insecure-mock-tee")]
mod mock;
mod robustness;
