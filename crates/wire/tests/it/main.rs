//! agora-wire integration tests: the guard through `oneshot`, the client and server over real
//! sockets, and property tests of the verifier.

mod common;
mod e2e;
mod guard;
mod props;
