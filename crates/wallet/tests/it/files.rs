//! Wallets written and read back through the public API, bittensor's fixtures, bad files.

use agora_primitives::crypto::verify;
use agora_wallet::{
    list_wallets, load_keyfile, Encryption, Keypair, PasswordSource, Wallet, WalletError, WordCount,
};
use std::fs;
use std::path::Path;

const PHRASE: &str = "legal winner thank year wave sausage worth useful legal winner thank yellow";
const ADDRESS: &str = "5EHgWw2Af1pnoc7f1A8bfmM97W3DAYW8xr82RfhLL9oAabAe";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn no_password() -> PasswordSource {
    // Any attempt to use it fails the test with a clear message.
    PasswordSource::Env("AGORA_WALLET_TEST_NO_PASSWORD_EXPECTED".into())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_then_load_gives_the_same_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let wallet = Wallet::new("w", "h", tmp.path());
    let cold = wallet
        .create_coldkey(WordCount::Fifteen, None, false)
        .unwrap();
    let hot = wallet
        .create_hotkey(WordCount::Twelve, None, false)
        .unwrap();
    assert_eq!(cold.phrase().unwrap().split(' ').count(), 15);
    assert_ne!(cold.account(), hot.account());

    assert_eq!(wallet.coldkeypub().unwrap(), cold.account());
    assert_eq!(
        wallet.coldkey(&no_password()).unwrap().account(),
        cold.account()
    );
    assert_eq!(wallet.hotkeypub().unwrap(), hot.account());
    let by_path = load_keyfile(&wallet.hotkey_path().unwrap(), None).unwrap();
    assert_eq!(by_path.account(), hot.account());
    assert_eq!(
        wallet.hotkey_pair(&no_password()).unwrap().account(),
        hot.account()
    );
    assert_eq!(
        wallet.coldkey_pair(&no_password()).unwrap().account(),
        cold.account()
    );
    let loaded = wallet.hotkey(&no_password()).unwrap();
    assert_eq!(loaded.account(), hot.account());
    assert_eq!(loaded.phrase(), hot.phrase());
    let sig = loaded.sign(b"agora").unwrap();
    assert!(verify(&hot.account(), b"agora", &sig));

    assert_eq!(wallet.coldkey_encryption().unwrap(), Encryption::None);
    assert_eq!(list_wallets(tmp.path()).unwrap(), vec!["w".to_owned()]);
    assert_eq!(wallet.hotkeys().unwrap(), vec!["h".to_owned()]);
    #[cfg(unix)]
    {
        let dir = tmp.path().join("w");
        for file in ["coldkey", "coldkeypub.txt", "hotkeys/h", "hotkeys/hpub.txt"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("hotkeys")), 0o700);
    }
    // No temporary files are left behind.
    assert_eq!(fs::read_dir(tmp.path().join("w")).unwrap().count(), 3);
}

#[test]
fn encrypted_coldkey_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let wallet = Wallet::new("w", "h", tmp.path());
    let password = PasswordSource::value("correct horse battery staple");
    let cold = wallet
        .create_coldkey(WordCount::Twelve, Some(&password), false)
        .unwrap();

    let raw = fs::read(wallet.coldkey_path().unwrap()).unwrap();
    assert!(raw.starts_with(b"$NACL"));
    assert!(!String::from_utf8_lossy(&raw).contains(cold.phrase().unwrap()));
    assert_eq!(wallet.coldkey_encryption().unwrap(), Encryption::Nacl);
    // The public half needs no password.
    assert_eq!(wallet.coldkeypub().unwrap(), cold.account());

    let unlocked = wallet.coldkey(&password).unwrap();
    assert_eq!(unlocked.account(), cold.account());
    assert_eq!(unlocked.phrase(), cold.phrase());
    let sig = unlocked.sign(b"transfer").unwrap();
    assert!(verify(&cold.account(), b"transfer", &sig));
    let pair = unlocked.into_pair().unwrap();
    assert_eq!(pair.account(), cold.account());
}

#[test]
fn bittensor_coldkey_opens_and_wrong_password_is_rejected() {
    // Written by bittensor-wallet 4.1.1: `regenerate_coldkey(mnemonic=PHRASE,
    // coldkey_password="testpass123")`, then `regenerate_hotkey(mnemonic=PHRASE)`.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bt");
    fs::create_dir_all(dir.join("hotkeys")).unwrap();
    let fixture = |name: &str| Path::new(FIXTURES).join(name);
    fs::copy(
        fixture("bittensor_4.1.1_coldkey_testpass123"),
        dir.join("coldkey"),
    )
    .unwrap();
    fs::copy(
        fixture("bittensor_4.1.1_coldkeypub.txt"),
        dir.join("coldkeypub.txt"),
    )
    .unwrap();
    fs::copy(
        fixture("bittensor_4.1.1_hotkey"),
        dir.join("hotkeys/default"),
    )
    .unwrap();
    let wallet = Wallet::new("bt", "default", tmp.path());

    assert_eq!(wallet.coldkeypub().unwrap().to_ss58(), ADDRESS);
    // No hotkeypub file: the address comes from the unencrypted hotkey.
    assert_eq!(wallet.hotkeypub().unwrap().to_ss58(), ADDRESS);
    assert_eq!(
        wallet.hotkey(&no_password()).unwrap().phrase(),
        Some(PHRASE)
    );

    let wrong = wallet
        .coldkey(&PasswordSource::value("testpass124"))
        .unwrap_err();
    assert!(matches!(wrong, WalletError::WrongPassword(_)), "{wrong}");
    let cold = wallet
        .coldkey(&PasswordSource::value("testpass123"))
        .unwrap();
    assert_eq!(cold.ss58_address(), ADDRESS);
    assert_eq!(cold.phrase(), Some(PHRASE));
}

#[test]
fn regenerate_from_mnemonic_seed_and_address() {
    let tmp = tempfile::tempdir().unwrap();
    let wallet = Wallet::new("w", "h", tmp.path());
    wallet
        .set_coldkey(&Keypair::from_phrase(PHRASE).unwrap(), None, false)
        .unwrap();
    assert_eq!(wallet.coldkeypub().unwrap().to_ss58(), ADDRESS);
    assert_eq!(
        wallet.coldkey(&no_password()).unwrap().ss58_address(),
        ADDRESS
    );

    let seed = "0x6fa2796b0071cac425d8a7851038318c2c37dcebfe4bae73197ce93e75909bd2";
    wallet
        .set_hotkey(&Keypair::from_seed_hex(seed).unwrap(), None, false)
        .unwrap();
    assert_eq!(
        wallet.hotkey(&no_password()).unwrap().ss58_address(),
        ADDRESS
    );

    let watch = Wallet::new("watch", "h", tmp.path());
    let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        .parse()
        .unwrap();
    watch.set_coldkeypub(alice, false).unwrap();
    assert_eq!(watch.coldkeypub().unwrap(), alice);
    assert!(matches!(
        watch.coldkey(&no_password()),
        Err(WalletError::MissingFile(_))
    ));
    // A secret is required where a secret is stored.
    let public_only = Keypair::public(alice);
    assert!(matches!(
        watch.set_hotkey(&public_only, None, false),
        Err(WalletError::InvalidInput(_))
    ));
}

#[test]
fn never_overwrites_without_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let wallet = Wallet::new("w", "h", tmp.path());
    let first = wallet
        .create_hotkey(WordCount::Twelve, None, false)
        .unwrap();
    let err = wallet
        .create_hotkey(WordCount::Twelve, None, false)
        .unwrap_err();
    assert!(matches!(err, WalletError::AlreadyExists(_)), "{err}");
    assert_eq!(wallet.hotkeypub().unwrap(), first.account());
    let err = wallet.set_coldkeypub(first.account(), false);
    assert!(err.is_ok(), "a different file is free");
    assert!(matches!(
        wallet.set_coldkeypub(first.account(), false),
        Err(WalletError::AlreadyExists(_))
    ));

    // A pub file alone also blocks, so a refused write never leaves a mismatched pair.
    let other = wallet.with_hotkey("h2");
    fs::write(other.hotkeypub_path().unwrap(), b"{}").unwrap();
    assert!(matches!(
        other.create_hotkey(WordCount::Twelve, None, false),
        Err(WalletError::AlreadyExists(_))
    ));
    assert!(!other.hotkey_path().unwrap().exists());

    let second = wallet.create_hotkey(WordCount::Twelve, None, true).unwrap();
    assert_eq!(wallet.hotkeypub().unwrap(), second.account());
    assert_eq!(
        wallet.hotkey(&no_password()).unwrap().account(),
        second.account()
    );
}

#[test]
fn bad_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let wallet = Wallet::new("w", "h", tmp.path());
    assert!(matches!(
        wallet.coldkeypub(),
        Err(WalletError::MissingFile(_))
    ));
    assert!(matches!(
        wallet.hotkey(&no_password()),
        Err(WalletError::MissingFile(_))
    ));
    assert!(matches!(
        wallet.hotkeypub(),
        Err(WalletError::MissingFile(_))
    ));

    let dir = tmp.path().join("w");
    fs::create_dir_all(dir.join("hotkeys")).unwrap();
    let pw = PasswordSource::value("pw");
    type Expect = fn(&WalletError) -> bool;
    let cases: &[(&[u8], Expect)] = &[
        (b"{\"ss58Address\": 5", |e| {
            matches!(e, WalletError::Corrupt { .. })
        }),
        (b"{}", |e| matches!(e, WalletError::Corrupt { .. })),
        (b"\x00\x01binary", |e| {
            matches!(e, WalletError::UnsupportedFormat { .. })
        }),
        (b"", |e| matches!(e, WalletError::UnsupportedFormat { .. })),
        (b"$NACL\x01\x02", |e| {
            matches!(e, WalletError::Corrupt { .. })
        }),
        (b"$ANSIBLE_VAULT;1.1;AES256\nzz", |e| {
            matches!(
                e,
                WalletError::Corrupt { .. } | WalletError::UnsupportedFormat { .. }
            )
        }),
        (b"gAAAAA!!", |e| {
            matches!(
                e,
                WalletError::Corrupt { .. } | WalletError::UnsupportedFormat { .. }
            )
        }),
    ];
    for (body, expected) in cases {
        fs::write(dir.join("coldkey"), body).unwrap();
        let err = wallet.coldkey(&pw).unwrap_err();
        assert!(expected(&err), "{:?}: {err}", String::from_utf8_lossy(body));
    }
    // An encrypted file with no password source is a password error, not a prompt.
    fs::write(
        dir.join("coldkeypub.txt"),
        b"$NACL0123456789012345678901234567890123456789",
    )
    .unwrap();
    assert!(matches!(wallet.coldkeypub(), Err(WalletError::Password(_))));
    // A public file where a secret is needed.
    wallet
        .set_coldkeypub(Keypair::from_phrase(PHRASE).unwrap().account(), true)
        .unwrap();
    fs::copy(dir.join("coldkeypub.txt"), dir.join("coldkey")).unwrap();
    assert!(matches!(
        wallet.coldkey(&pw),
        Err(WalletError::PublicOnly(_))
    ));
}

#[test]
fn lists_wallets_and_hotkeys() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(list_wallets(tmp.path().join("missing")).unwrap().is_empty());
    for (name, hotkeys) in [
        ("b", &["x", "y"][..]),
        ("a", &["default"][..]),
        ("c", &[][..]),
    ] {
        let wallet = Wallet::new(name, "default", tmp.path());
        wallet
            .create_coldkey(WordCount::Twelve, None, false)
            .unwrap();
        for hotkey in hotkeys {
            wallet
                .with_hotkey(*hotkey)
                .create_hotkey(WordCount::Twelve, None, false)
                .unwrap();
        }
    }
    fs::create_dir(tmp.path().join(".cache")).unwrap();
    fs::write(tmp.path().join("stray-file"), b"").unwrap();
    assert_eq!(list_wallets(tmp.path()).unwrap(), ["a", "b", "c"]);
    assert_eq!(
        Wallet::new("b", "x", tmp.path()).hotkeys().unwrap(),
        ["x", "y"]
    );
    assert!(Wallet::new("c", "x", tmp.path())
        .hotkeys()
        .unwrap()
        .is_empty());
}

#[test]
fn older_bittensor_encryptions_still_open() {
    // Ansible Vault written by bittensor-wallet 4.1.1 `legacy_encrypt_keyfile_data`, and a
    // Fernet token made as the first bittensor did (PBKDF2-SHA256, 10^7 rounds, fixed salt).
    let tmp = tempfile::tempdir().unwrap();
    for (name, fixture, password) in [
        ("ansible", "ansible_vault_coldkey_ansible-pw", "ansible-pw"),
        ("fernet", "legacy_fernet_coldkey_fernet-pw", "fernet-pw"),
    ] {
        let wallet = Wallet::new(name, "h", tmp.path());
        fs::create_dir_all(wallet.dir().unwrap()).unwrap();
        fs::copy(
            Path::new(FIXTURES).join(fixture),
            wallet.coldkey_path().unwrap(),
        )
        .unwrap();
        let key = wallet.coldkey(&PasswordSource::value(password)).unwrap();
        assert_eq!(key.ss58_address(), ADDRESS, "{name}");
    }
}
