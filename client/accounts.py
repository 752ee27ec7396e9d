"""The one account loader: whatever names a signing account, as an eth_account
``LocalAccount``. Verinfer signs every transaction locally and sends it raw
(``client.signer``), so each way of naming an account ends in its private key:

- ``0x`` and 64 hex digits: the private key itself;
- ``TEST::<n>``: ape's n-th test account, from the mnemonic anvil funds (for local
  networks only: the agent's config refuses it elsewhere);
- any other name: an ape keyfile alias (``ape accounts generate`` / ``import``),
  unlocked with the passphrase in ``APE_ACCOUNTS_<alias>_PASSPHRASE``. Agents and
  gateways run unattended, so nothing ever prompts;
- an ape account object (``accounts.load(alias)``, ``accounts.test_accounts[n]``).

Each failure is an ``AccountError`` of one line saying what is wrong and what to do.

>>> load_account("0x" + "01" * 32).address[:6]
'0x1a64'
>>> load_account("0x1234")
Traceback (most recent call last):
client.errors.AccountError: not a private key: expected 0x and 64 hex digits
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from client.errors import AccountError

TEST_PREFIX = "TEST::"


def passphrase_variable(alias: str) -> str:
    """The environment variable holding keyfile account ``alias``'s passphrase (ape's name for it).

    >>> passphrase_variable("provider-a")
    'APE_ACCOUNTS_provider-a_PASSPHRASE'
    """
    return f"APE_ACCOUNTS_{alias}_PASSPHRASE"


def load_account(spec: Any, *, accounts_dir: str | Path | None = None) -> LocalAccount:
    """The signing account ``spec`` names: a private key, ``TEST::<n>``, an ape keyfile
    alias or an ape account object. ``accounts_dir``: where keyfiles live (default ape's,
    ``~/.ape/accounts``).

    >>> load_account("TEST::0").address  # doctest: +SKIP
    '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266'
    """
    if isinstance(spec, str):
        if spec.startswith("0x"):
            return _from_key(spec)
        if spec.upper().startswith(TEST_PREFIX):
            return _test_account(spec)
        return _keyfile_account(spec, accounts_dir)
    key = getattr(spec, "private_key", None)  # ape's test accounts hold theirs in the clear
    if key:
        return _from_key(key)
    keyfile, alias = getattr(spec, "keyfile_path", None), getattr(spec, "alias", None)
    if keyfile is not None and alias:
        return _unlock(alias, Path(keyfile))
    raise AccountError(f"cannot sign locally with {spec!r}: give a private key, TEST::<n>, "
                       "an ape keyfile alias or an ape keyfile/test account")


def _from_key(key: str | bytes) -> LocalAccount:
    try:
        return Account.from_key(key)
    except Exception:  # eth_account raises several types; the key itself must not be echoed
        raise AccountError("not a private key: expected 0x and 64 hex digits") from None


def _test_account(spec: str) -> LocalAccount:
    index_text = spec[len(TEST_PREFIX):]
    if not index_text.isdigit():
        raise AccountError(f"test account {spec!r}: expected TEST::<index>, e.g. TEST::0")
    from ape import accounts  # deferred: loading ape is slow and only test accounts need it

    index, count = int(index_text), accounts.test_accounts.number_of_accounts
    if index >= count:
        raise AccountError(f"there is no test account {index}: ape has TEST::0 to TEST::{count - 1}")
    return _from_key(accounts.test_accounts[index].private_key)


def _keyfile_account(alias: str, accounts_dir: str | Path | None) -> LocalAccount:
    if accounts_dir is None:
        import ape  # deferred, as above

        accounts_dir = Path(ape.config.DATA_FOLDER) / "accounts"
    keyfile = Path(accounts_dir) / f"{alias}.json"
    if not keyfile.is_file():
        raise AccountError(f"no ape account {alias!r} (no keyfile {keyfile}): create it with "
                           f"`ape accounts generate {alias}` or `ape accounts import {alias}`")
    return _unlock(alias, keyfile)


def _unlock(alias: str, keyfile: Path) -> LocalAccount:
    variable = passphrase_variable(alias)
    passphrase = os.environ.get(variable)
    if passphrase is None:
        raise AccountError(f"ape account {alias!r} is locked: set {variable} to its passphrase")
    try:
        key = Account.decrypt(json.loads(keyfile.read_text()), passphrase)
    except ValueError:  # eth-keyfile's wrong MAC (wrong passphrase) or a malformed keyfile
        raise AccountError(f"cannot unlock ape account {alias!r} with {variable}: wrong passphrase "
                           f"or damaged keyfile {keyfile}") from None
    return Account.from_key(key)
