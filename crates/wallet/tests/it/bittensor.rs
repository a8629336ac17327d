//! Cross-check with Bittensor's own `bittensor_wallet` Python package, in both directions.
//!
//! Skips (with a message on stderr) when `python3 -c "import bittensor_wallet"` fails, unless
//! `AGORA_REQUIRE_BITTENSOR` is set, as CI may do to make a missing package a failure.
//! `PYTHON` picks the interpreter (default `python3`).

use agora_primitives::crypto::{verify, Signature};
use agora_primitives::AccountId;
use agora_wallet::{PasswordSource, Wallet, WordCount};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bittensor_crosscheck.py");
const PASSWORD: &str = "Agora-cross-check-42";
const MESSAGE: &[u8] = b"agora <-> bittensor cross-check";

fn python() -> Option<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import bittensor_wallet"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let why = format!(
        "`{python} -c \"import bittensor_wallet\"` failed; \
         install it with `{python} -m pip install bittensor-wallet` to run this test"
    );
    assert!(
        std::env::var_os("AGORA_REQUIRE_BITTENSOR").is_none(),
        "bittensor cross-check required by AGORA_REQUIRE_BITTENSOR: {why}"
    );
    let message = format!("SKIP bittensor cross-check: {why}");
    // Written to the stderr handle directly: the test harness captures `eprintln!`.
    let _ = writeln!(std::io::stderr(), "{message}");
    None
}

fn run_script(python: &str, args: &[&str]) -> Value {
    let output = Command::new(python)
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bittensor_crosscheck.py {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("a RESULT line");
    serde_json::from_str(line).expect("RESULT is JSON")
}

fn field<'a>(result: &'a Value, name: &str) -> &'a str {
    result[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing in {result}"))
}

fn signature(hex_sig: &str) -> Signature {
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(hex_sig, &mut bytes).expect("64-byte hex signature");
    Signature(bytes)
}

fn account(ss58: &str) -> AccountId {
    ss58.parse().expect("an SS58 address")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

#[test]
fn wallet_made_by_bittensor_opens_in_agora() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let msg_hex = hex::encode(MESSAGE);
    let made = run_script(
        &python,
        &[
            "create",
            path_str(tmp.path()),
            "pyw",
            "pyh",
            PASSWORD,
            &msg_hex,
        ],
    );
    let (cold_ss58, hot_ss58) = (field(&made, "coldkey"), field(&made, "hotkey"));

    let wallet = Wallet::new("pyw", "pyh", tmp.path());
    assert_eq!(wallet.coldkeypub().unwrap().to_ss58(), cold_ss58);
    assert_eq!(wallet.hotkeypub().unwrap().to_ss58(), hot_ss58);
    let hot = wallet
        .hotkey(&PasswordSource::Env("AGORA_TEST_UNUSED".into()))
        .unwrap();
    assert_eq!(hot.ss58_address(), hot_ss58);
    let cold = wallet.coldkey(&PasswordSource::value(PASSWORD)).unwrap();
    assert_eq!(cold.ss58_address(), cold_ss58);
    assert!(cold.phrase().is_some(), "bittensor stores the mnemonic");

    // Bittensor's signatures verify here, and ours verify under the keys Bittensor made.
    assert!(verify(
        &account(cold_ss58),
        MESSAGE,
        &signature(field(&made, "coldkey_signature"))
    ));
    assert!(verify(
        &account(hot_ss58),
        MESSAGE,
        &signature(field(&made, "hotkey_signature"))
    ));
    assert!(verify(
        &account(cold_ss58),
        MESSAGE,
        &cold.sign(MESSAGE).unwrap()
    ));
    assert!(verify(
        &account(hot_ss58),
        MESSAGE,
        &hot.sign(MESSAGE).unwrap()
    ));
}

#[test]
fn wallet_made_by_agora_opens_in_bittensor() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let wallet = Wallet::new("agw", "agh", tmp.path());
    let cold = wallet
        .create_coldkey(
            WordCount::Twelve,
            Some(&PasswordSource::value(PASSWORD)),
            false,
        )
        .unwrap();
    let hot = wallet
        .create_hotkey(WordCount::Twelve, None, false)
        .unwrap();
    let cold_sig = hex::encode(cold.sign(MESSAGE).unwrap().0);
    let hot_sig = hex::encode(hot.sign(MESSAGE).unwrap().0);

    let opened = run_script(
        &python,
        &[
            "open",
            path_str(tmp.path()),
            "agw",
            "agh",
            PASSWORD,
            &hex::encode(MESSAGE),
            &cold_sig,
            &hot_sig,
        ],
    );
    assert_eq!(field(&opened, "coldkey"), cold.ss58_address(), "{opened}");
    assert_eq!(
        field(&opened, "coldkeypub"),
        cold.ss58_address(),
        "{opened}"
    );
    assert_eq!(field(&opened, "hotkey"), hot.ss58_address(), "{opened}");
    assert_eq!(field(&opened, "hotkeypub"), hot.ss58_address(), "{opened}");
    assert_eq!(opened["coldkey_encrypted"], true, "{opened}");
    assert_eq!(opened["coldkey_signature_ok"], true, "{opened}");
    assert_eq!(opened["hotkey_signature_ok"], true, "{opened}");
}
