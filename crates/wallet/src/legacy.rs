//! The encrypted formats bittensor wrote before `$NACL`.

use crate::encryption::Encryption;
use crate::WalletError;
use std::path::Path;
use zeroize::Zeroizing;

/// Decrypts an Ansible Vault or legacy Fernet key file.
pub(crate) fn decrypt(
    format: Encryption,
    _data: &[u8],
    _password: &str,
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, WalletError> {
    Err(WalletError::UnsupportedFormat {
        path: path.to_path_buf(),
        format: format!(
            "{} encryption (re-encrypt it with `btcli wallet update`, or regenerate it from the mnemonic)",
            format.name()
        ),
    })
}
