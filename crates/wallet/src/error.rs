//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading, writing or unlocking a wallet.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// A key file that should exist does not (e.g. `coldkeypub.txt` before `wallet create`).
    #[error("key file {0} does not exist (create or regenerate the key first)")]
    MissingFile(PathBuf),
    /// Writing would replace an existing key file and `overwrite` was not set.
    #[error("key file {0} already exists; pass overwrite to replace it")]
    AlreadyExists(PathBuf),
    /// The password does not open the encrypted key file.
    #[error("wrong password for {0}")]
    WrongPassword(PathBuf),
    /// The file is (or decrypts to) something that is not a valid key file.
    #[error("corrupt key file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is encrypted with a scheme this crate recognises but cannot open, or with no
    /// scheme it recognises at all.
    #[error("key file {path} uses an unsupported format: {format}")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format found, in words.
        format: String,
    },
    /// The key file holds a key type other than sr25519 (bittensor-wallet 4.1 can write ed25519
    /// keys, marked `"cryptoType": 0`).
    #[error("key file {path} holds crypto type {crypto_type}; only sr25519 (1) is supported")]
    UnsupportedCryptoType {
        /// The file.
        path: PathBuf,
        /// The `cryptoType` it declares.
        crypto_type: u64,
    },
    /// The operation needs a secret key and the file holds only a public key.
    #[error("{0} holds only a public key")]
    PublicOnly(PathBuf),
    /// A wallet or hotkey name that is not a single plain path component.
    #[error(
        "invalid {kind} name '{name}': use a non-empty name without '/', '\\' or a leading '.'"
    )]
    InvalidName {
        /// `"wallet"` or `"hotkey"`.
        kind: &'static str,
        /// The name given.
        name: String,
    },
    /// A mnemonic, seed, address or public key given by the user that does not parse.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No password could be obtained (empty input, unset variable, unreadable file).
    #[error("no password: {0}")]
    Password(String),
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`"read"`, `"write"`, `"create directory"`, ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a command's output failed (e.g. a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    /// The key derivation or cipher failed for a reason other than a wrong password.
    #[error("encryption failed: {0}")]
    Crypto(String),
}

impl WalletError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| WalletError::Io { op, path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        WalletError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
