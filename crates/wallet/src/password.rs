//! Where a key file's password comes from: the terminal, or, for scripts, an environment
//! variable, a file, or a value the caller already holds. The caller chooses.

use crate::WalletError;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The environment variable scripts set to give the wallet password without a prompt.
pub const PASSWORD_ENV: &str = "AGORA_WALLET_PASSWORD";

/// A source of passwords.
#[derive(Clone)]
pub enum PasswordSource {
    /// Ask on the terminal without echo (`rpassword`); a new password is asked twice.
    Prompt,
    /// Read an environment variable (normally [`PASSWORD_ENV`]).
    Env(String),
    /// Read the first line of a file (trailing `\r`/`\n` removed).
    File(PathBuf),
    /// A password already in memory.
    Value(Zeroizing<String>),
}

impl std::fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordSource::Prompt => write!(f, "Prompt"),
            PasswordSource::Env(var) => write!(f, "Env({var})"),
            PasswordSource::File(path) => write!(f, "File({})", path.display()),
            PasswordSource::Value(_) => write!(f, "Value(***)"),
        }
    }
}

/// What the password is for, which decides the prompt and whether it is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordUse<'a> {
    /// Encrypting a new key file named by the string: a prompt asks twice.
    Encrypt(&'a str),
    /// Decrypting the key file named by the string.
    Decrypt(&'a str),
}

impl PasswordSource {
    /// A password given directly.
    pub fn value(password: impl Into<String>) -> Self {
        PasswordSource::Value(Zeroizing::new(password.into()))
    }

    /// The non-interactive default: [`PASSWORD_ENV`] when it is set, else the terminal.
    pub fn from_env_or_prompt() -> Self {
        if std::env::var_os(PASSWORD_ENV).is_some() {
            PasswordSource::Env(PASSWORD_ENV.to_owned())
        } else {
            PasswordSource::Prompt
        }
    }

    /// Obtains a password. An empty password is refused for encryption: it protects nothing
    /// and is almost always a script error (an unset variable, an empty file).
    pub fn get(&self, purpose: PasswordUse<'_>) -> Result<Zeroizing<String>, WalletError> {
        let password = match self {
            PasswordSource::Prompt => prompt(purpose)?,
            PasswordSource::Env(var) => Zeroizing::new(std::env::var(var).map_err(|_| {
                WalletError::Password(format!("environment variable {var} is not set"))
            })?),
            PasswordSource::File(path) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    WalletError::Password(format!("cannot read {}: {e}", path.display()))
                })?);
                Zeroizing::new(text.lines().next().unwrap_or("").to_owned())
            }
            PasswordSource::Value(v) => v.clone(),
        };
        if password.is_empty() && matches!(purpose, PasswordUse::Encrypt(_)) {
            return Err(WalletError::Password(
                "refusing to encrypt with an empty password".into(),
            ));
        }
        Ok(password)
    }
}

fn prompt(purpose: PasswordUse<'_>) -> Result<Zeroizing<String>, WalletError> {
    let read = |text: &str| {
        rpassword::prompt_password(text)
            .map(Zeroizing::new)
            .map_err(|e| {
                WalletError::Password(format!(
                    "cannot read from the terminal ({e}); give --password-file or set {PASSWORD_ENV}"
                ))
            })
    };
    match purpose {
        PasswordUse::Decrypt(what) => read(&format!("Password for {what}: ")),
        PasswordUse::Encrypt(what) => {
            let first = read(&format!("New password to encrypt {what}: "))?;
            let again = read("Retype the password: ")?;
            if first != again {
                return Err(WalletError::Password("the two passwords differ".into()));
            }
            Ok(first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_and_file_sources() {
        let use_ = PasswordUse::Decrypt("coldkey");
        assert_eq!(
            PasswordSource::value("pw").get(use_).unwrap().as_str(),
            "pw"
        );
        let empty = PasswordSource::value("");
        assert!(matches!(
            empty.get(PasswordUse::Encrypt("coldkey")),
            Err(WalletError::Password(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "secret words\nignored\n").unwrap();
        assert_eq!(
            PasswordSource::File(path).get(use_).unwrap().as_str(),
            "secret words"
        );
        let missing = PasswordSource::File(dir.path().join("nope"));
        assert!(matches!(missing.get(use_), Err(WalletError::Password(_))));
        let unset = PasswordSource::Env("AGORA_WALLET_TEST_SURELY_UNSET".into());
        assert!(matches!(unset.get(use_), Err(WalletError::Password(_))));
        assert_eq!(format!("{:?}", PasswordSource::value("pw")), "Value(***)");
    }
}
