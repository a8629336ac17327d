//! A named wallet on disk, laid out as bittensor-wallet lays it out:
//!
//! ```text
//! <path>/<name>/coldkey                 the coldkey, normally encrypted ($NACL)
//! <path>/<name>/coldkeypub.txt          its public key, never encrypted
//! <path>/<name>/hotkeys/<hotkey>        a hotkey, normally unencrypted
//! <path>/<name>/hotkeys/<hotkey>pub.txt its public key
//! ```
//!
//! Key files are written with mode 0600 and the directories this crate creates with 0700.
//! A file is written to a temporary name and renamed into place, so a crash never leaves half a
//! key; an existing key file is only replaced when the caller passes `overwrite`.

use crate::encryption::{nacl_decrypt, nacl_encrypt, Encryption};
use crate::mnemonic::{generate_mnemonic, WordCount};
use crate::password::{PasswordSource, PasswordUse};
use crate::{legacy, Keypair, WalletError};
use agora_primitives::{crypto::Pair, AccountId};
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use zeroize::Zeroizing;

/// Bittensor's default wallet directory; `~` is expanded.
pub const DEFAULT_WALLET_PATH: &str = "~/.bittensor/wallets";
/// Bittensor's default wallet name.
pub const DEFAULT_WALLET_NAME: &str = "default";
/// Bittensor's default hotkey name.
pub const DEFAULT_HOTKEY_NAME: &str = "default";

/// A wallet: a coldkey and its hotkeys under `path/name`, with `hotkey` the one in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    /// The wallet's directory name.
    pub name: String,
    /// The hotkey in use (a file name under `hotkeys/`).
    pub hotkey: String,
    /// The directory holding all wallets, already `~`-expanded.
    pub path: PathBuf,
}

impl Default for Wallet {
    fn default() -> Self {
        Wallet::new(
            DEFAULT_WALLET_NAME,
            DEFAULT_HOTKEY_NAME,
            DEFAULT_WALLET_PATH,
        )
    }
}

/// Replaces a leading `~` with the home directory, as bittensor does for `--wallet.path`.
pub fn expand_tilde(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

/// The wallets under `path` (`~` expanded): every visible directory, sorted. A missing
/// directory holds no wallets.
pub fn list_wallets(path: impl AsRef<Path>) -> Result<Vec<String>, WalletError> {
    list_dir(&expand_tilde(path), |entry_is_dir, _| entry_is_dir)
}

impl Wallet {
    /// The wallet `name` with hotkey `hotkey` under `path` (`~` expanded). Names are checked
    /// when the wallet is used, so that this constructor cannot fail.
    pub fn new(name: impl Into<String>, hotkey: impl Into<String>, path: impl AsRef<Path>) -> Self {
        Wallet {
            name: name.into(),
            hotkey: hotkey.into(),
            path: expand_tilde(path),
        }
    }

    /// The same wallet with another hotkey selected.
    pub fn with_hotkey(&self, hotkey: impl Into<String>) -> Self {
        Wallet {
            hotkey: hotkey.into(),
            ..self.clone()
        }
    }

    /// `path/name`.
    pub fn dir(&self) -> Result<PathBuf, WalletError> {
        check_name("wallet", &self.name)?;
        Ok(self.path.join(&self.name))
    }

    /// `path/name/coldkey`.
    pub fn coldkey_path(&self) -> Result<PathBuf, WalletError> {
        Ok(self.dir()?.join("coldkey"))
    }

    /// `path/name/coldkeypub.txt`.
    pub fn coldkeypub_path(&self) -> Result<PathBuf, WalletError> {
        Ok(self.dir()?.join("coldkeypub.txt"))
    }

    /// `path/name/hotkeys/hotkey`.
    pub fn hotkey_path(&self) -> Result<PathBuf, WalletError> {
        check_name("hotkey", &self.hotkey)?;
        Ok(self.dir()?.join("hotkeys").join(&self.hotkey))
    }

    /// `path/name/hotkeys/<hotkey>pub.txt`.
    pub fn hotkeypub_path(&self) -> Result<PathBuf, WalletError> {
        check_name("hotkey", &self.hotkey)?;
        Ok(self
            .dir()?
            .join("hotkeys")
            .join(format!("{}pub.txt", self.hotkey)))
    }

    /// The hotkey names of this wallet, sorted (files under `hotkeys/` other than `*pub.txt`).
    pub fn hotkeys(&self) -> Result<Vec<String>, WalletError> {
        list_dir(&self.dir()?.join("hotkeys"), |is_dir, name| {
            !is_dir && !name.ends_with("pub.txt")
        })
    }

    /// Makes a new coldkey from a fresh mnemonic and writes `coldkey` and `coldkeypub.txt`;
    /// the coldkey is encrypted when `password` is given. The returned key holds the phrase,
    /// which the caller must show the user once.
    pub fn create_coldkey(
        &self,
        words: WordCount,
        password: Option<&PasswordSource>,
        overwrite: bool,
    ) -> Result<Keypair, WalletError> {
        self.check_writable(&[self.coldkey_path()?, self.coldkeypub_path()?], overwrite)?;
        let key = Keypair::from_phrase(&generate_mnemonic(words))?;
        self.set_coldkey(&key, password, overwrite)?;
        Ok(key)
    }

    /// Makes a new hotkey from a fresh mnemonic and writes it and `<hotkey>pub.txt`,
    /// encrypted only when `password` is given (bittensor leaves hotkeys unencrypted).
    pub fn create_hotkey(
        &self,
        words: WordCount,
        password: Option<&PasswordSource>,
        overwrite: bool,
    ) -> Result<Keypair, WalletError> {
        self.check_writable(&[self.hotkey_path()?, self.hotkeypub_path()?], overwrite)?;
        let key = Keypair::from_phrase(&generate_mnemonic(words))?;
        self.set_hotkey(&key, password, overwrite)?;
        Ok(key)
    }

    /// Writes `key` as the coldkey (encrypted when `password` is given) and its public part as
    /// `coldkeypub.txt`. This is also how a coldkey is regenerated from a mnemonic or seed.
    pub fn set_coldkey(
        &self,
        key: &Keypair,
        password: Option<&PasswordSource>,
        overwrite: bool,
    ) -> Result<(), WalletError> {
        let (path, pub_path) = (self.coldkey_path()?, self.coldkeypub_path()?);
        write_pair(key, &path, &pub_path, password, "the coldkey", overwrite)
    }

    /// Writes only `coldkeypub.txt` (bittensor's `regen_coldkeypub`): enough to watch a
    /// coldkey, receive funds and name it as an owner, without its secret.
    pub fn set_coldkeypub(&self, account: AccountId, overwrite: bool) -> Result<(), WalletError> {
        let path = self.coldkeypub_path()?;
        check_writable(&[&path], overwrite)?;
        write_keyfile(&path, &Keypair::public(account).to_json(), overwrite)
    }

    /// Writes `key` as the selected hotkey and its public part as `<hotkey>pub.txt`.
    pub fn set_hotkey(
        &self,
        key: &Keypair,
        password: Option<&PasswordSource>,
        overwrite: bool,
    ) -> Result<(), WalletError> {
        let (path, pub_path) = (self.hotkey_path()?, self.hotkeypub_path()?);
        write_pair(key, &path, &pub_path, password, "the hotkey", overwrite)
    }

    /// The coldkey's public key from `coldkeypub.txt`; never needs a password.
    pub fn coldkeypub(&self) -> Result<AccountId, WalletError> {
        Ok(read_keyfile(&self.coldkeypub_path()?, None, "coldkeypub.txt")?.account())
    }

    /// Unlocks the coldkey; `password` is asked only when the file is encrypted.
    pub fn coldkey(&self, password: &PasswordSource) -> Result<Keypair, WalletError> {
        let what = format!("coldkey of wallet '{}'", self.name);
        let key = read_keyfile(&self.coldkey_path()?, Some(password), &what)?;
        require_secret(key, self.coldkey_path()?)
    }

    /// Loads the selected hotkey; `password` is asked only when the file is encrypted (by
    /// default hotkeys are not).
    pub fn hotkey(&self, password: &PasswordSource) -> Result<Keypair, WalletError> {
        let what = format!("hotkey '{}' of wallet '{}'", self.hotkey, self.name);
        let key = read_keyfile(&self.hotkey_path()?, Some(password), &what)?;
        require_secret(key, self.hotkey_path()?)
    }

    /// The coldkey's signing pair (for transfers, staking, registration).
    pub fn coldkey_pair(&self, password: &PasswordSource) -> Result<Pair, WalletError> {
        let path = self.coldkey_path()?;
        self.coldkey(password)?
            .into_pair()
            .ok_or(WalletError::PublicOnly(path))
    }

    /// The selected hotkey's signing pair (for weights, axon requests).
    pub fn hotkey_pair(&self, password: &PasswordSource) -> Result<Pair, WalletError> {
        let path = self.hotkey_path()?;
        self.hotkey(password)?
            .into_pair()
            .ok_or(WalletError::PublicOnly(path))
    }

    /// The selected hotkey's public key, from `<hotkey>pub.txt`, or from the hotkey file itself
    /// when it is unencrypted and the pub file is missing (wallets made before bittensor-wallet
    /// wrote pub files).
    pub fn hotkeypub(&self) -> Result<AccountId, WalletError> {
        let pub_path = self.hotkeypub_path()?;
        match read_keyfile(&pub_path, None, "the hotkey's pub file") {
            Err(WalletError::MissingFile(_)) => {
                let key_path = self.hotkey_path()?;
                match read_keyfile(&key_path, None, "the hotkey") {
                    Ok(key) => Ok(key.account()),
                    Err(WalletError::MissingFile(_)) => Err(WalletError::MissingFile(key_path)),
                    Err(WalletError::Password(_)) => Err(WalletError::MissingFile(pub_path)),
                    Err(e) => Err(e),
                }
            }
            other => other.map(|key| key.account()),
        }
    }

    /// How the coldkey file is stored, without decrypting it.
    pub fn coldkey_encryption(&self) -> Result<Encryption, WalletError> {
        let path = self.coldkey_path()?;
        Ok(Encryption::detect(&read_bytes(&path)?))
    }

    fn check_writable(&self, paths: &[PathBuf], overwrite: bool) -> Result<(), WalletError> {
        check_writable(&paths.iter().collect::<Vec<_>>(), overwrite)
    }
}

fn check_name(kind: &'static str, name: &str) -> Result<(), WalletError> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0'])
        || Path::new(name).components().count() != 1;
    if bad {
        return Err(WalletError::InvalidName {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn require_secret(key: Keypair, path: PathBuf) -> Result<Keypair, WalletError> {
    if key.has_secret() {
        Ok(key)
    } else {
        Err(WalletError::PublicOnly(path))
    }
}

fn check_writable(paths: &[&PathBuf], overwrite: bool) -> Result<(), WalletError> {
    match paths.iter().find(|p| p.exists()) {
        Some(existing) if !overwrite => Err(WalletError::AlreadyExists(existing.to_path_buf())),
        _ => Ok(()),
    }
}

/// Writes a secret key file and its public companion, checking both first so that a refused
/// overwrite leaves nothing half-written.
fn write_pair(
    key: &Keypair,
    path: &Path,
    pub_path: &Path,
    password: Option<&PasswordSource>,
    what: &str,
    overwrite: bool,
) -> Result<(), WalletError> {
    check_writable(&[&path.to_path_buf(), &pub_path.to_path_buf()], overwrite)?;
    if !key.has_secret() {
        return Err(WalletError::InvalidInput(format!(
            "{what} needs a secret key, not only a public one"
        )));
    }
    let json = key.to_json();
    let data = match password {
        Some(source) => Zeroizing::new(nacl_encrypt(
            &json,
            &source.get(PasswordUse::Encrypt(what))?,
        )?),
        None => json,
    };
    write_keyfile(path, &data, overwrite)?;
    write_keyfile(pub_path, &key.to_public().to_json(), overwrite)
}

fn read_bytes(path: &Path) -> Result<Zeroizing<Vec<u8>>, WalletError> {
    match fs::read(path) {
        Ok(data) => Ok(Zeroizing::new(data)),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Err(WalletError::MissingFile(path.to_path_buf()))
        }
        Err(e) => Err(WalletError::Io {
            op: "read",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Reads one key file at any path (e.g. a hotkey kept outside a wallet directory), decrypting
/// it with `password` when it is encrypted; without a source, an encrypted file is an error.
pub fn load_keyfile(
    path: &Path,
    password: Option<&PasswordSource>,
) -> Result<Keypair, WalletError> {
    read_keyfile(path, password, &path.display().to_string())
}

/// Reads and, if needed, decrypts one key file. `what` names it in the password prompt.
fn read_keyfile(
    path: &Path,
    password: Option<&PasswordSource>,
    what: &str,
) -> Result<Keypair, WalletError> {
    let data = read_bytes(path)?;
    let encryption = Encryption::detect(&data);
    if !encryption.is_encrypted() {
        if data.trim_ascii_start().first() != Some(&b'{') {
            return Err(WalletError::UnsupportedFormat {
                path: path.to_path_buf(),
                format: "unrecognised: not JSON, $NACL, Ansible Vault or Fernet".into(),
            });
        }
        return Keypair::from_json(&data, path);
    }
    let source = password.ok_or_else(|| {
        WalletError::Password(format!(
            "{} is encrypted ({}) and no password source was given",
            path.display(),
            encryption.name()
        ))
    })?;
    let password = source.get(PasswordUse::Decrypt(what))?;
    let plain = match encryption {
        Encryption::Nacl => nacl_decrypt(&data, &password, path)?,
        Encryption::AnsibleVault | Encryption::LegacyFernet => {
            legacy::decrypt(encryption, &data, &password, path)?
        }
        Encryption::None => data,
    };
    Keypair::from_json(&plain, path)
}

/// Writes `data` to `path` with mode 0600 through a temporary file and a rename.
fn write_keyfile(path: &Path, data: &[u8], overwrite: bool) -> Result<(), WalletError> {
    let dir = path
        .parent()
        .ok_or_else(|| WalletError::InvalidInput(format!("{} has no directory", path.display())))?;
    create_private_dir(dir)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("keyfile");
    // Unique per process and per write, so concurrent writers never share a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.tmp-{}-{n}", std::process::id()));
    let result = write_new_private_file(&tmp, data).and_then(|()| {
        if !overwrite && path.exists() {
            return Err(WalletError::AlreadyExists(path.to_path_buf()));
        }
        fs::rename(&tmp, path).map_err(WalletError::io("rename into place", path))
    });
    if result.is_err() {
        // Best effort: the temporary file holds key material.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_new_private_file(path: &Path, data: &[u8]) -> Result<(), WalletError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(WalletError::io("create", path))?;
    #[cfg(unix)]
    {
        // The mode above applies only to a new file; a stale temporary file keeps its own.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(WalletError::io("chmod 600", path))?;
    }
    file.write_all(data)
        .map_err(WalletError::io("write", path))?;
    file.sync_all().map_err(WalletError::io("sync", path))
}

fn create_private_dir(dir: &Path) -> Result<(), WalletError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(WalletError::io("create directory", dir))
}

/// The visible entries of `dir` that `keep(is_dir, name)` accepts, sorted; none if `dir` is
/// missing.
fn list_dir(dir: &Path, keep: impl Fn(bool, &str) -> bool) -> Result<Vec<String>, WalletError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(WalletError::Io {
                op: "list",
                path: dir.to_path_buf(),
                source: e,
            })
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(WalletError::io("list", dir))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // Follows symlinks, so a linked wallet directory still counts as one.
        let is_dir = entry.path().is_dir();
        if !name.starts_with('.') && keep(is_dir, &name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_bittensor() {
        let w = Wallet::new("alice", "miner1", "/tmp/w");
        assert_eq!(w.coldkey_path().unwrap(), Path::new("/tmp/w/alice/coldkey"));
        assert_eq!(
            w.coldkeypub_path().unwrap(),
            Path::new("/tmp/w/alice/coldkeypub.txt")
        );
        assert_eq!(
            w.hotkey_path().unwrap(),
            Path::new("/tmp/w/alice/hotkeys/miner1")
        );
        assert_eq!(
            w.hotkeypub_path().unwrap(),
            Path::new("/tmp/w/alice/hotkeys/miner1pub.txt")
        );
    }

    #[test]
    fn tilde_expands_to_home() {
        let Some(home) = dirs::home_dir() else { return };
        assert_eq!(Wallet::default().path, home.join(".bittensor/wallets"));
        assert_eq!(expand_tilde("~"), home);
        assert_eq!(expand_tilde("/abs/~"), Path::new("/abs/~"));
    }

    #[test]
    fn bad_names_are_refused() {
        for (name, hotkey) in [
            ("", "h"),
            ("..", "h"),
            ("a/b", "h"),
            (".hidden", "h"),
            ("w", "../x"),
            ("w", ""),
        ] {
            let w = Wallet::new(name, hotkey, "/tmp/w");
            let err = w.hotkey_path().unwrap_err();
            assert!(
                matches!(err, WalletError::InvalidName { .. }),
                "{name:?}/{hotkey:?}: {err}"
            );
        }
    }
}
