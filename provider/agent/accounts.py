"""The agent's signing key, taken from ape's accounts.

`TEST::n` is ape's n-th test account (the same mnemonic as anvil's funded accounts), for
local networks only. Any other name is an ape keyfile alias (`ape accounts generate` /
`import`), unlocked non-interactively with `APE_ACCOUNTS_<alias>_PASSPHRASE`: an agent
runs unattended, so it never prompts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from provider.agent.errors import AccountError


def passphrase_variable(alias: str) -> str:
    return f"APE_ACCOUNTS_{alias}_PASSPHRASE"


def load_signer(alias: str, *, accounts_dir: str | Path | None = None) -> LocalAccount:
    """The private key behind an ape account alias.

    `accounts_dir` defaults to ape's keyfile folder (`~/.ape/accounts`).
    """
    if alias.upper().startswith("TEST::"):
        index_text = alias.split("::", 1)[1]
        if not index_text.isdigit():
            raise AccountError(f"test account {alias!r}: expected TEST::<index>")
        import ape  # deferred: loading ape is slow and only test accounts need it here

        index = int(index_text)
        try:
            return Account.from_key(ape.accounts.test_accounts[index].private_key)
        except IndexError as err:
            raise AccountError(f"there is no test account {index}") from err

    if accounts_dir is None:
        import ape

        accounts_dir = Path(ape.config.DATA_FOLDER) / "accounts"
    keyfile = Path(accounts_dir) / f"{alias}.json"
    if not keyfile.is_file():
        raise AccountError(f"no ape account {alias!r} (looked for {keyfile})")
    passphrase = os.environ.get(passphrase_variable(alias))
    if passphrase is None:
        raise AccountError(f"account {alias!r} is locked: set {passphrase_variable(alias)}")
    try:
        key = Account.decrypt(json.loads(keyfile.read_text()), passphrase)
    except ValueError as err:  # eth-keyfile raises ValueError for a wrong MAC / passphrase
        raise AccountError(f"cannot unlock account {alias!r}: {err}") from err
    return Account.from_key(key)
