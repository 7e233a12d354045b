"""Ethereum accounts for peers: simulated (derived), devnet (well-known) and real (key files).

Keys never appear in logs, results or exceptions: :class:`LocalAccount` objects are
passed around, and error messages name the file, never its content.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import stat
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from bdfl.errors import BDFLError

log = logging.getLogger(__name__)

#: The mnemonic anvil, Hardhat and Ganache use for their pre-funded accounts.
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
DEVNET_CHAIN_IDS = frozenset({31337, 1337})


@functools.lru_cache(maxsize=1)
def well_known_keys(count: int = 20) -> tuple[str, ...]:
    """Addresses of the public devnet accounts (their keys are printed by every devnet)."""
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address for i in range(count)
    )


def devnet_account(index: int = 0) -> LocalAccount:
    """The i-th pre-funded devnet account (the deployer and funder of simulations)."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def account_from_key(key: bytes | str) -> LocalAccount:
    """The account of a raw private key (32 bytes or hex)."""
    return Account.from_key(key)


def derive_keys(seed: int, n: int, *, namespace: str = "bdfl-peer") -> list[LocalAccount]:
    """``n`` deterministic accounts for simulated peers: key_i = keccak(namespace, seed, i).

    Same seed, same accounts, so a re-run reproduces addresses (and so committees).
    These keys are public knowledge given the seed: use them on devnets only.
    """
    out = []
    for i in range(n):
        key = keccak(f"{namespace}:{seed}:{i}".encode())
        out.append(Account.from_key(key))
    return out


def is_simulation_key(account: LocalAccount) -> bool:
    """Is this a well-known devnet account? (Derived simulation keys are checked by the caller's seed.)"""
    return account.address in well_known_keys()


def check_key_allowed(account: LocalAccount, chain_id: int) -> None:
    """Refuse the public devnet keys on any chain that is not a local devnet."""
    if chain_id not in DEVNET_CHAIN_IDS and is_simulation_key(account):
        raise BDFLError(
            f"refusing to use a well-known devnet account ({account.address}) on chain id {chain_id}: "
            "its private key is public, anyone could take its funds",
            fix="use your own key file (--key-file) on non-devnet chains",
        )


def load_key_file(path: str | os.PathLike[str], *, password: str | None = None) -> LocalAccount:
    """Load an account from a key file: an encrypted JSON keystore (password from the
    argument or ``$BDFL_KEY_PASSWORD``) or a file holding one 0x-prefixed hex private key.
    Errors name the file, never its content."""
    p = Path(path)
    try:
        raw = p.read_text().strip()
    except OSError as exc:
        raise BDFLError(f"cannot read key file {p}: {exc.strerror or exc}", fix="check the path and its permissions") from None
    _warn_if_others_can_read(p)
    if raw.startswith("{"):
        try:
            keystore = json.loads(raw)
        except ValueError:
            raise BDFLError(f"key file {p} is not valid JSON", fix="give a JSON keystore or a hex private key file") from None
        if not isinstance(keystore, dict) or not isinstance(keystore.get("crypto", keystore.get("Crypto")), dict):
            # e.g. the deployment file given as the key: no password can open it
            raise BDFLError(f"key file {p} is JSON but not an encrypted keystore (it has no \"crypto\" section)",
                            fix="give --key-file a JSON keystore or a file holding a hex private key")
        password = password if password is not None else os.environ.get("BDFL_KEY_PASSWORD")
        if password is None:
            raise BDFLError(f"key file {p} is an encrypted keystore and no password was given", fix="set BDFL_KEY_PASSWORD")
        try:
            key = Account.decrypt(keystore, password)
        except Exception:  # noqa: BLE001 - wrong password or corrupt keystore; never echo content
            raise BDFLError(f"cannot decrypt keystore {p} (wrong password or corrupt file)", fix="check BDFL_KEY_PASSWORD") from None
        return Account.from_key(key)
    text = raw[2:] if raw.startswith(("0x", "0X")) else raw
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise BDFLError(f"key file {p} does not hold a 32-byte hex private key or a JSON keystore", fix="write the key as 0x followed by 64 hex digits")
    try:
        return Account.from_key(bytes.fromhex(text))
    except Exception:  # noqa: BLE001 - e.g. zero or out-of-range key
        raise BDFLError(f"key file {p} holds an invalid private key") from None


def _warn_if_others_can_read(path: Path) -> None:
    """A warning (as ssh gives) when users other than the owner may read the key file: anyone
    who can read a hex key file owns the account. Not an error: a keystore is encrypted, and a
    devnet key is public anyway."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("key file %s can be read by other users (mode %s): run `chmod 600 %s`", path, oct(stat.S_IMODE(mode)), path)


def key_from_env(var: str = "BDFL_PRIVATE_KEY") -> LocalAccount | None:
    """An account from a hex key in an environment variable, or None if unset."""
    value = os.environ.get(var)
    if not value:
        return None
    try:
        return Account.from_key(value)
    except Exception:  # noqa: BLE001
        raise BDFLError(f"${var} does not hold a valid private key", fix="set it to 0x followed by 64 hex digits") from None
