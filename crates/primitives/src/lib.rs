//! Agora's base types, shared by every other crate.
//!
//! - ids: [`NetUid`], [`Uid`], [`BlockNumber`];
//! - amounts: [`Balance`] in rao (1 token = 10^9 rao), with checked arithmetic only;
//! - [`AccountId`]: a 32-byte sr25519 public key, shown as SS58 (prefix 42, as in Bittensor);
//! - [`crypto`]: sr25519 key pairs and signatures with Substrate's signing context, BIP39
//!   mnemonics and `//hard` / `/soft` derivation paths exactly as Substrate derives them, so a
//!   Bittensor key gives the same address here;
//! - [`hashing`]: BLAKE2b and SHA-256 helpers, and the [`Hash`] type;
//! - [`fixed`]: the fixed-point types subtensor computes with and its u16 proportion
//!   conversions;
//! - [`codec`]: SCALE encoding (re-exported `parity-scale-codec`), the canonical encoding of
//!   everything that is signed or hashed.
//!
//! Pure: no I/O. Key generation takes its randomness from the caller or the OS only in
//! [`crypto::Pair::generate`], which the ledger never calls.

mod account;
mod balance;
pub mod crypto;
pub mod fixed;
pub mod hashing;
mod ids;

pub use account::{AccountId, Ss58Error, SS58_PREFIX};
pub use balance::{Balance, BalanceParseError, RAO_PER_TOKEN};
pub use hashing::Hash;
pub use ids::{BlockNumber, NetUid, Uid};

/// SCALE encoding, re-exported so that every crate encodes with the same version.
pub use parity_scale_codec as codec;
