//! Coldkey and hotkey files compatible with bittensor-wallet 4.x, BIP39 mnemonics, and the
//! `agora wallet` commands.
//!
//! A [`Wallet`] is `<path>/<name>/` with `coldkey`, `coldkeypub.txt`, `hotkeys/<hotkey>` and
//! `hotkeys/<hotkey>pub.txt`, exactly as bittensor-wallet writes them, so a wallet made by
//! `btcli` opens here and one made here opens in `btcli`:
//!
//! - key files are bittensor's JSON ([`Keypair::to_json`]); keys come from BIP39 phrases the
//!   Substrate way (`agora_primitives::crypto`);
//! - the coldkey is encrypted in bittensor's `$NACL` format (Argon2i with libsodium's
//!   "sensitive" limits, then XSalsa20-Poly1305; see [`encryption`]); hotkeys are not, unless
//!   asked;
//! - key files are mode 0600, directories this crate creates 0700, and an existing key file is
//!   never replaced unless the caller says `overwrite`.
//!
//! Passwords come from a [`PasswordSource`] the caller picks: a terminal prompt, an environment
//! variable (`AGORA_WALLET_PASSWORD`), a file, or a value. [`cli`] holds bittensor's
//! `--wallet.name/--wallet.hotkey/--wallet.path` flags and the commands, so the binary only
//! parses and calls [`cli::run`].
//!
//! This is an adapter crate: it reads and writes files. It has no feature flags.

pub mod cli;
pub mod encryption;
mod error;
mod keypair;
mod legacy;
pub mod mnemonic;
pub mod password;
mod wallet;

pub use encryption::Encryption;
pub use error::WalletError;
pub use keypair::Keypair;
pub use mnemonic::{generate_mnemonic, WordCount};
pub use password::{PasswordSource, PasswordUse, PASSWORD_ENV};
pub use wallet::{
    expand_tilde, list_wallets, load_keyfile, Wallet, DEFAULT_HOTKEY_NAME, DEFAULT_WALLET_NAME,
    DEFAULT_WALLET_PATH,
};
