//! Integration tests of the `agora` binary: real node processes on 127.0.0.1 with
//! ephemeral ports, driven through the CLI and the RPC client.

#[cfg(feature = "bft")]
mod bft;
mod common;
mod crash;
mod e2e;
#[cfg(feature = "insecure-mock-tee")]
mod private;
