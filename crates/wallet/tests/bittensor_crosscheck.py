#!/usr/bin/env python3
"""The Python half of the Bittensor cross-check (driven by tests/it/bittensor.rs).

Uses the real `bittensor_wallet` package (4.x) to make a wallet for Agora to open, and to open a
wallet Agora made. Prints one line `RESULT <json>` for the Rust test to read; everything else on
stdout is bittensor's own chatter.

    bittensor_crosscheck.py create PATH NAME HOTKEY PASSWORD MESSAGE_HEX
        Creates the wallet with an encrypted coldkey and a plain hotkey; reports both addresses,
        each key's signature of MESSAGE and the coldkey mnemonic.
    bittensor_crosscheck.py open PATH NAME HOTKEY PASSWORD MESSAGE_HEX COLD_SIG_HEX HOT_SIG_HEX
        Decrypts the coldkey with PASSWORD, loads the hotkey and the pub files; reports the
        addresses and whether the given signatures of MESSAGE verify under each key.
"""

import json
import sys

import bittensor_wallet


def result(**fields):
    print("RESULT " + json.dumps(fields), flush=True)


def create(path, name, hotkey, password, message):
    wallet = bittensor_wallet.Wallet(name=name, hotkey=hotkey, path=path)
    wallet.create_new_coldkey(
        n_words=12, use_password=True, overwrite=False, suppress=True, coldkey_password=password
    )
    wallet.create_new_hotkey(n_words=12, use_password=False, overwrite=False, suppress=True)
    # The wallet keeps the keys it just made; reading the coldkey back would cost a second
    # Argon2i derivation, and Agora's side of the test decrypts the file anyway.
    coldkey = wallet.coldkey
    hot = wallet.hotkey
    result(
        coldkey=coldkey.ss58_address,
        hotkey=hot.ss58_address,
        coldkey_signature=coldkey.sign(message).hex(),
        hotkey_signature=hot.sign(message).hex(),
        version=getattr(bittensor_wallet, "__version__", "unknown"),
    )


def open_wallet(path, name, hotkey, password, message, cold_sig, hot_sig):
    wallet = bittensor_wallet.Wallet(name=name, hotkey=hotkey, path=path)
    coldkey = wallet.get_coldkey(password=password)
    hot = wallet.get_hotkey()
    result(
        coldkey=coldkey.ss58_address,
        coldkeypub=wallet.get_coldkeypub().ss58_address,
        hotkey=hot.ss58_address,
        hotkeypub=wallet.get_hotkeypub().ss58_address,
        coldkey_encrypted=wallet.coldkey_file.is_encrypted(),
        coldkey_signature_ok=coldkey.verify(message, cold_sig),
        hotkey_signature_ok=hot.verify(message, hot_sig),
        version=getattr(bittensor_wallet, "__version__", "unknown"),
    )


def main(argv):
    if len(argv) >= 7 and argv[1] == "create":
        create(argv[2], argv[3], argv[4], argv[5], bytes.fromhex(argv[6]))
    elif len(argv) >= 9 and argv[1] == "open":
        open_wallet(
            argv[2], argv[3], argv[4], argv[5], bytes.fromhex(argv[6]),
            bytes.fromhex(argv[7]), bytes.fromhex(argv[8]),
        )
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
