//! Integration tests of the ledger: every call's success and errors, envelopes, epochs and
//! emission, replay determinism.
#![allow(unreachable_pub)]

mod harness;

mod calls;
mod envelope;
mod epochs;
mod replay;
