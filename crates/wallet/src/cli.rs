//! `agora wallet ...`: bittensor's wallet flags and the wallet commands, as library code so
//! the binary only parses and hands off.
//!
//! ```text
//! agora wallet create          [--n-words 12] [--no-password] [--overwrite]
//! agora wallet new-coldkey     [--n-words 12] [--no-password] [--overwrite]
//! agora wallet new-hotkey      [--n-words 12] [--use-password] [--overwrite]
//! agora wallet regen-coldkey   --mnemonic WORDS... | --seed 0x..  [--no-password] [--overwrite]
//! agora wallet regen-coldkeypub --ss58 ADDRESS | --public-key 0x..  [--overwrite]
//! agora wallet regen-hotkey    --mnemonic WORDS... | --seed 0x..  [--use-password] [--overwrite]
//! agora wallet list
//! agora wallet show
//! ```
//!
//! Every command takes `--wallet.name`, `--wallet.hotkey`, `--wallet.path` (or `BT_WALLET_NAME`,
//! `BT_WALLET_HOTKEY`, `BT_WALLET_PATH`, as bittensor reads them) and `--password-file`.
//! Without `--password-file`, passwords come from `AGORA_WALLET_PASSWORD` when it is set and
//! from a terminal prompt otherwise.

use crate::mnemonic::WordCount;
use crate::password::PasswordSource;
use crate::wallet::{list_wallets, DEFAULT_HOTKEY_NAME, DEFAULT_WALLET_NAME, DEFAULT_WALLET_PATH};
use crate::{Keypair, Wallet, WalletError};
use agora_primitives::AccountId;
use std::io::Write;
use std::path::PathBuf;

/// Bittensor's wallet selection flags, to `#[command(flatten)]` into any command that needs a
/// wallet. They are global, so they may come before or after a subcommand.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct WalletArgs {
    /// The wallet's name: a directory under --wallet.path.
    #[arg(
        id = "wallet.name",
        long = "wallet.name",
        visible_alias = "wallet-name",
        env = "BT_WALLET_NAME",
        default_value = DEFAULT_WALLET_NAME,
        global = true
    )]
    pub name: String,
    /// The hotkey's name: a file in the wallet's hotkeys/ directory.
    #[arg(
        id = "wallet.hotkey",
        long = "wallet.hotkey",
        visible_alias = "wallet-hotkey",
        env = "BT_WALLET_HOTKEY",
        default_value = DEFAULT_HOTKEY_NAME,
        global = true
    )]
    pub hotkey: String,
    /// The directory that holds the wallets.
    #[arg(
        id = "wallet.path",
        long = "wallet.path",
        visible_alias = "wallet-path",
        env = "BT_WALLET_PATH",
        default_value = DEFAULT_WALLET_PATH,
        global = true
    )]
    pub path: PathBuf,
}

impl Default for WalletArgs {
    fn default() -> Self {
        WalletArgs {
            name: DEFAULT_WALLET_NAME.into(),
            hotkey: DEFAULT_HOTKEY_NAME.into(),
            path: DEFAULT_WALLET_PATH.into(),
        }
    }
}

impl WalletArgs {
    /// The wallet these flags select.
    pub fn wallet(&self) -> Wallet {
        Wallet::new(&self.name, &self.hotkey, &self.path)
    }
}

impl From<&WalletArgs> for Wallet {
    fn from(args: &WalletArgs) -> Self {
        args.wallet()
    }
}

/// Where passwords come from, for scripts that cannot answer a prompt.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordArgs {
    /// Read the wallet password from the first line of FILE instead of prompting.
    #[arg(long = "password-file", value_name = "FILE", global = true)]
    pub password_file: Option<PathBuf>,
}

impl PasswordArgs {
    /// The file when given, else `AGORA_WALLET_PASSWORD` when set, else the terminal.
    pub fn source(&self) -> PasswordSource {
        match &self.password_file {
            Some(path) => PasswordSource::File(path.clone()),
            None => PasswordSource::from_env_or_prompt(),
        }
    }
}

/// `agora wallet`: the wallet flags and one command.
#[derive(clap::Args, Debug, Clone)]
pub struct WalletCli {
    /// Which wallet.
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Where passwords come from.
    #[command(flatten)]
    pub password: PasswordArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: WalletCommand,
}

/// The wallet commands.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum WalletCommand {
    /// Create a new coldkey (encrypted) and hotkey, and print their mnemonics.
    Create {
        /// Words in each new mnemonic: 12, 15, 18, 21 or 24.
        #[arg(long = "n-words", default_value = "12")]
        n_words: WordCount,
        /// Store the coldkey unencrypted (not recommended).
        #[arg(long)]
        no_password: bool,
        /// Also encrypt the hotkey.
        #[arg(long)]
        use_password: bool,
        /// Replace existing key files.
        #[arg(long)]
        overwrite: bool,
    },
    /// Create a new coldkey (encrypted) and print its mnemonic.
    NewColdkey {
        /// Words in the new mnemonic: 12, 15, 18, 21 or 24.
        #[arg(long = "n-words", default_value = "12")]
        n_words: WordCount,
        /// Store the coldkey unencrypted (not recommended).
        #[arg(long)]
        no_password: bool,
        /// Replace existing key files.
        #[arg(long)]
        overwrite: bool,
    },
    /// Create a new hotkey (unencrypted unless --use-password) and print its mnemonic.
    NewHotkey {
        /// Words in the new mnemonic: 12, 15, 18, 21 or 24.
        #[arg(long = "n-words", default_value = "12")]
        n_words: WordCount,
        /// Encrypt the hotkey.
        #[arg(long)]
        use_password: bool,
        /// Replace existing key files.
        #[arg(long)]
        overwrite: bool,
    },
    /// Restore the coldkey from its mnemonic or seed.
    RegenColdkey {
        /// The key to restore.
        #[command(flatten)]
        source: KeySourceArgs,
        /// Store the coldkey unencrypted (not recommended).
        #[arg(long)]
        no_password: bool,
        /// Replace existing key files.
        #[arg(long)]
        overwrite: bool,
    },
    /// Write only coldkeypub.txt, from an SS58 address or public key.
    RegenColdkeypub {
        /// The coldkey's SS58 address.
        #[arg(
            long,
            conflicts_with = "public_key",
            required_unless_present = "public_key"
        )]
        ss58: Option<String>,
        /// The coldkey's public key, 32 bytes in hex.
        #[arg(long = "public-key", visible_alias = "public-key-hex")]
        public_key: Option<String>,
        /// Replace an existing coldkeypub.txt.
        #[arg(long)]
        overwrite: bool,
    },
    /// Restore the selected hotkey from its mnemonic or seed.
    RegenHotkey {
        /// The key to restore.
        #[command(flatten)]
        source: KeySourceArgs,
        /// Encrypt the hotkey.
        #[arg(long)]
        use_password: bool,
        /// Replace existing key files.
        #[arg(long)]
        overwrite: bool,
    },
    /// List the wallets under --wallet.path with their addresses.
    List,
    /// Print the SS58 addresses of the selected wallet's coldkey and hotkeys.
    Show,
}

/// A key to restore: a mnemonic or a 32-byte seed.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[group(required = true, multiple = false)]
pub struct KeySourceArgs {
    /// The mnemonic, as one quoted argument or as separate words.
    #[arg(long, num_args = 1.., value_name = "WORDS")]
    pub mnemonic: Option<Vec<String>>,
    /// The 32-byte seed in hex (bittensor's secretSeed).
    #[arg(long, value_name = "HEX")]
    pub seed: Option<String>,
}

impl KeySourceArgs {
    /// The key these arguments describe.
    pub fn keypair(&self) -> Result<Keypair, WalletError> {
        match (&self.mnemonic, &self.seed) {
            (Some(words), _) => Keypair::from_phrase(&words.join(" ")),
            (None, Some(seed)) => Keypair::from_seed_hex(seed),
            (None, None) => Err(WalletError::InvalidInput(
                "give --mnemonic or --seed".into(),
            )),
        }
    }
}

/// Runs one wallet command, writing what it has to say to `out` (passwords are read from the
/// terminal or the chosen source, never from `out`).
pub fn run(cli: &WalletCli, out: &mut dyn Write) -> Result<(), WalletError> {
    let wallet = cli.wallet.wallet();
    let password = cli.password.source();
    let mut text = String::new();
    let encrypt = |yes: bool| yes.then_some(&password);
    match &cli.command {
        WalletCommand::Create {
            n_words,
            no_password,
            use_password,
            overwrite,
        } => {
            let cold = wallet.create_coldkey(*n_words, encrypt(!no_password), *overwrite)?;
            report_new(
                &mut text,
                "coldkey",
                &wallet.coldkey_path()?,
                &cold,
                !no_password,
            );
            let hot = wallet.create_hotkey(*n_words, encrypt(*use_password), *overwrite)?;
            report_new(
                &mut text,
                "hotkey",
                &wallet.hotkey_path()?,
                &hot,
                *use_password,
            );
        }
        WalletCommand::NewColdkey {
            n_words,
            no_password,
            overwrite,
        } => {
            let cold = wallet.create_coldkey(*n_words, encrypt(!no_password), *overwrite)?;
            report_new(
                &mut text,
                "coldkey",
                &wallet.coldkey_path()?,
                &cold,
                !no_password,
            );
        }
        WalletCommand::NewHotkey {
            n_words,
            use_password,
            overwrite,
        } => {
            let hot = wallet.create_hotkey(*n_words, encrypt(*use_password), *overwrite)?;
            report_new(
                &mut text,
                "hotkey",
                &wallet.hotkey_path()?,
                &hot,
                *use_password,
            );
        }
        WalletCommand::RegenColdkey {
            source,
            no_password,
            overwrite,
        } => {
            let key = source.keypair()?;
            wallet.set_coldkey(&key, encrypt(!no_password), *overwrite)?;
            report_written(
                &mut text,
                "coldkey",
                &wallet.coldkey_path()?,
                &key,
                !no_password,
            );
        }
        WalletCommand::RegenColdkeypub {
            ss58,
            public_key,
            overwrite,
        } => {
            let account = parse_account(ss58.as_deref(), public_key.as_deref())?;
            wallet.set_coldkeypub(account, *overwrite)?;
            text.push_str(&format!(
                "wrote {}\ncoldkey  {}\n",
                wallet.coldkeypub_path()?.display(),
                account.to_ss58()
            ));
        }
        WalletCommand::RegenHotkey {
            source,
            use_password,
            overwrite,
        } => {
            let key = source.keypair()?;
            wallet.set_hotkey(&key, encrypt(*use_password), *overwrite)?;
            report_written(
                &mut text,
                "hotkey",
                &wallet.hotkey_path()?,
                &key,
                *use_password,
            );
        }
        WalletCommand::List => list(&mut text, &wallet)?,
        WalletCommand::Show => show(&mut text, &wallet)?,
    }
    out.write_all(text.as_bytes()).map_err(WalletError::Output)
}

fn report_written(
    text: &mut String,
    kind: &str,
    path: &std::path::Path,
    key: &Keypair,
    encrypted: bool,
) {
    let how = if encrypted {
        "encrypted"
    } else {
        "unencrypted"
    };
    text.push_str(&format!(
        "wrote {} ({how})\n{kind:<8} {}\n",
        path.display(),
        key.ss58_address()
    ));
}

fn report_new(
    text: &mut String,
    kind: &str,
    path: &std::path::Path,
    key: &Keypair,
    encrypted: bool,
) {
    report_written(text, kind, path, key, encrypted);
    if let Some(phrase) = key.phrase() {
        text.push_str(&format!(
            "The mnemonic of the new {kind} follows. Write it down and keep it secret: it is the \
             only way to restore the key, and anyone who has it controls the key.\n  {phrase}\n\n"
        ));
    }
}

fn parse_account(ss58: Option<&str>, public_key: Option<&str>) -> Result<AccountId, WalletError> {
    match (ss58, public_key) {
        (Some(address), _) => AccountId::from_ss58_with_prefix(address.trim())
            .map(|(account, _)| account)
            .map_err(|e| WalletError::InvalidInput(format!("SS58 address '{address}': {e}"))),
        (None, Some(hex)) => crate::keypair::parse_public_hex(hex).ok_or_else(|| {
            WalletError::InvalidInput(format!("public key '{hex}' is not 32 bytes of hex"))
        }),
        (None, None) => Err(WalletError::InvalidInput(
            "give --ss58 or --public-key".into(),
        )),
    }
}

/// One line per key: the address, or why it cannot be read.
fn address_or_reason(result: Result<AccountId, WalletError>) -> String {
    match result {
        Ok(account) => account.to_ss58(),
        Err(WalletError::MissingFile(path)) => format!(
            "(no {})",
            path.file_name().unwrap_or_default().to_string_lossy()
        ),
        Err(e) => format!("({e})"),
    }
}

fn show(text: &mut String, wallet: &Wallet) -> Result<(), WalletError> {
    let dir = wallet.dir()?;
    if !dir.is_dir() {
        return Err(WalletError::MissingFile(dir));
    }
    text.push_str(&format!("wallet {} ({})\n", wallet.name, dir.display()));
    text.push_str(&format!(
        "  coldkey  {}\n",
        address_or_reason(wallet.coldkeypub())
    ));
    let mut hotkeys = wallet.hotkeys()?;
    if !hotkeys.contains(&wallet.hotkey) && wallet.hotkeypub_path()?.exists() {
        hotkeys.push(wallet.hotkey.clone());
    }
    let width = hotkeys.iter().map(String::len).max().unwrap_or(0);
    for hotkey in &hotkeys {
        let marker = if *hotkey == wallet.hotkey { "*" } else { " " };
        let address = address_or_reason(wallet.with_hotkey(hotkey).hotkeypub());
        text.push_str(&format!("  hotkey {marker} {hotkey:<width$}  {address}\n"));
    }
    if hotkeys.is_empty() {
        text.push_str("  (no hotkeys)\n");
    }
    Ok(())
}

fn list(text: &mut String, wallet: &Wallet) -> Result<(), WalletError> {
    let names = list_wallets(&wallet.path)?;
    if names.is_empty() {
        text.push_str(&format!("no wallets in {}\n", wallet.path.display()));
        return Ok(());
    }
    text.push_str(&format!("wallets in {}\n", wallet.path.display()));
    for name in names {
        let w = Wallet::new(&name, &wallet.hotkey, &wallet.path);
        text.push_str(&format!(
            "{name}\n  coldkey  {}\n",
            address_or_reason(w.coldkeypub())
        ));
        let hotkeys = w.hotkeys().unwrap_or_default();
        let width = hotkeys.iter().map(String::len).max().unwrap_or(0);
        for hotkey in &hotkeys {
            let address = address_or_reason(w.with_hotkey(hotkey).hotkeypub());
            text.push_str(&format!("  hotkey   {hotkey:<width$}  {address}\n"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Top {
        #[command(subcommand)]
        command: TopCommand,
    }

    #[derive(clap::Subcommand, Debug)]
    enum TopCommand {
        Wallet(WalletCli),
    }

    fn parse(args: &[&str]) -> WalletCli {
        let top =
            Top::try_parse_from(std::iter::once("agora").chain(args.iter().copied())).unwrap();
        let TopCommand::Wallet(cli) = top.command;
        cli
    }

    #[test]
    fn bittensor_flags_parse_before_or_after_the_command() {
        let cli = parse(&[
            "wallet",
            "--wallet.name",
            "w1",
            "show",
            "--wallet.hotkey",
            "h1",
            "--wallet.path",
            "/x",
        ]);
        assert_eq!(
            cli.wallet,
            WalletArgs {
                name: "w1".into(),
                hotkey: "h1".into(),
                path: "/x".into()
            }
        );
        assert_eq!(cli.command, WalletCommand::Show);
        let cli = parse(&["wallet", "list"]);
        assert_eq!(cli.wallet.name, "default");
        assert_eq!(cli.wallet.path, PathBuf::from("~/.bittensor/wallets"));
    }

    #[test]
    fn command_arguments_parse() {
        let cli = parse(&[
            "wallet",
            "new-hotkey",
            "--n-words",
            "24",
            "--password-file",
            "/pw",
        ]);
        assert_eq!(
            cli.command,
            WalletCommand::NewHotkey {
                n_words: WordCount::TwentyFour,
                use_password: false,
                overwrite: false
            }
        );
        assert_eq!(cli.password.password_file, Some(PathBuf::from("/pw")));
        let cli = parse(&[
            "wallet",
            "regen-coldkey",
            "--mnemonic",
            "a",
            "b",
            "c",
            "--no-password",
        ]);
        let WalletCommand::RegenColdkey {
            source,
            no_password: true,
            ..
        } = cli.command
        else {
            panic!()
        };
        assert_eq!(
            source.mnemonic,
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        let top = Top::try_parse_from(["agora", "wallet", "regen-hotkey"]);
        assert!(top.is_err(), "a mnemonic or a seed is required");
        let top = Top::try_parse_from(["agora", "wallet", "create", "--n-words", "13"]);
        assert!(top.is_err());
    }
}
