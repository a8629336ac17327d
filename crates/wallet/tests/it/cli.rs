//! The `agora wallet` commands run in-process, as the binary runs them.

use agora_wallet::cli::{run, WalletCli};
use clap::Parser;
use std::fs;

#[derive(Parser, Debug)]
struct Agora {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    Wallet(WalletCli),
}

fn agora(args: &[&str]) -> Result<String, agora_wallet::WalletError> {
    let parsed =
        Agora::try_parse_from(std::iter::once("agora").chain(args.iter().copied())).unwrap();
    let Command::Wallet(cli) = parsed.command;
    let mut out = Vec::new();
    run(&cli, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn create_show_list_and_regenerate() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().to_str().unwrap();
    let out = agora(&[
        "wallet",
        "--wallet.path",
        path,
        "--wallet.name",
        "w1",
        "create",
        "--no-password",
    ])
    .unwrap();
    assert_eq!(out.matches("mnemonic").count(), 2, "{out}");
    let w = agora_wallet::Wallet::new("w1", "default", path);
    let cold = w.coldkeypub().unwrap().to_ss58();
    let hot = w.hotkeypub().unwrap().to_ss58();
    assert!(out.contains(&cold) && out.contains(&hot), "{out}");

    let out = agora(&[
        "wallet",
        "new-hotkey",
        "--wallet.path",
        path,
        "--wallet.name",
        "w1",
        "--wallet.hotkey",
        "h2",
    ])
    .unwrap();
    let h2 = w.with_hotkey("h2").hotkeypub().unwrap().to_ss58();
    assert!(out.contains(&h2));

    let out = agora(&[
        "wallet",
        "show",
        "--wallet.path",
        path,
        "--wallet.name",
        "w1",
    ])
    .unwrap();
    for address in [&cold, &hot, &h2] {
        assert!(out.contains(address.as_str()), "{out}");
    }
    let out = agora(&["wallet", "list", "--wallet.path", path]).unwrap();
    assert!(
        out.contains("w1") && out.contains(&cold) && out.contains("h2"),
        "{out}"
    );

    let phrase = "legal winner thank year wave sausage worth useful legal winner thank yellow";
    let mut args = vec![
        "wallet",
        "regen-coldkey",
        "--wallet.path",
        path,
        "--wallet.name",
        "w2",
        "--no-password",
        "--mnemonic",
    ];
    args.extend(phrase.split(' '));
    let out = agora(&args).unwrap();
    assert!(
        out.contains("5EHgWw2Af1pnoc7f1A8bfmM97W3DAYW8xr82RfhLL9oAabAe"),
        "{out}"
    );
    let err = agora(&args).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");

    let out = agora(&[
        "wallet",
        "regen-coldkeypub",
        "--wallet.path",
        path,
        "--wallet.name",
        "watch",
        "--ss58",
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
    ])
    .unwrap();
    assert!(out.contains("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"));
    let out = agora(&[
        "wallet",
        "show",
        "--wallet.path",
        path,
        "--wallet.name",
        "watch",
    ])
    .unwrap();
    assert!(
        out.contains("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"),
        "{out}"
    );

    let seed = "0x6fa2796b0071cac425d8a7851038318c2c37dcebfe4bae73197ce93e75909bd2";
    let out = agora(&[
        "wallet",
        "regen-hotkey",
        "--wallet.path",
        path,
        "--wallet.name",
        "w2",
        "--seed",
        seed,
    ])
    .unwrap();
    assert!(
        out.contains("5EHgWw2Af1pnoc7f1A8bfmM97W3DAYW8xr82RfhLL9oAabAe"),
        "{out}"
    );

    assert!(agora(&[
        "wallet",
        "show",
        "--wallet.path",
        path,
        "--wallet.name",
        "nope"
    ])
    .is_err());
    assert!(fs::read_dir(tmp.path()).unwrap().count() >= 3);
}
