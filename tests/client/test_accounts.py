"""client.accounts.load_account, the one account loader of the SDK, the agent and the
gateway: private keys, ape's test accounts, passphrase-protected ape keyfiles and ape
account objects; every failure an AccountError (a ConfigError) of one line."""

import json

import pytest
from ape_accounts.accounts import KeyfileAccount
from eth_account import Account

from client.accounts import load_account, passphrase_variable
from client.errors import AccountError, ConfigError
from tests.support.anvil import ANVIL_KEYS


def one_line_error(spec, match: str, **kwargs) -> AccountError:
    with pytest.raises(AccountError, match=match) as caught:
        load_account(spec, **kwargs)
    assert "\n" not in str(caught.value)
    return caught.value


def test_private_key():
    assert load_account(ANVIL_KEYS[1]).address == Account.from_key(ANVIL_KEYS[1]).address
    error = one_line_error(ANVIL_KEYS[1][:-2], "not a private key: expected 0x and 64 hex digits")
    assert ANVIL_KEYS[1][2:-2] not in str(error)  # a mistyped key is not echoed into logs
    assert isinstance(error, ConfigError)


def test_test_account_is_anvils_funded_account():
    assert load_account("TEST::1").address == Account.from_key(ANVIL_KEYS[1]).address
    assert load_account("test::1").address == Account.from_key(ANVIL_KEYS[1]).address
    one_line_error("TEST::999", r"there is no test account 999: ape has TEST::0 to TEST::\d+$")
    one_line_error("TEST::x", "expected TEST::<index>")
    one_line_error("TEST::-1", "expected TEST::<index>")


def test_ape_account_objects(accounts, keyfile_dir, monkeypatch):
    assert load_account(accounts[3]).address == accounts[3].address  # ape's test account
    folder, address = keyfile_dir
    keyfile_account = KeyfileAccount(keyfile_path=folder / "provider-a.json")
    monkeypatch.setenv(passphrase_variable("provider-a"), "s3cret")
    assert load_account(keyfile_account).address == address
    one_line_error(object(), "cannot sign locally with <object")


@pytest.fixture
def keyfile_dir(tmp_path):
    key = Account.create()
    keyfile = Account.encrypt(key.key, "s3cret", iterations=2)
    (tmp_path / "provider-a.json").write_text(json.dumps(keyfile))
    return tmp_path, key.address


def test_keyfile_unlocked_from_environment(keyfile_dir, monkeypatch):
    folder, address = keyfile_dir
    monkeypatch.setenv(passphrase_variable("provider-a"), "s3cret")
    assert passphrase_variable("provider-a") == "APE_ACCOUNTS_provider-a_PASSPHRASE"
    assert load_account("provider-a", accounts_dir=folder).address == address


def test_keyfile_errors(keyfile_dir, monkeypatch):
    folder, _ = keyfile_dir
    monkeypatch.delenv(passphrase_variable("provider-a"), raising=False)
    one_line_error("provider-a", "locked: set APE_ACCOUNTS_provider-a_PASSPHRASE to its passphrase",
                   accounts_dir=folder)
    monkeypatch.setenv(passphrase_variable("provider-a"), "wrong")
    one_line_error("provider-a", "cannot unlock ape account 'provider-a' with APE_ACCOUNTS_provider-a_"
                   "PASSPHRASE: wrong passphrase", accounts_dir=folder)
    (folder / "broken.json").write_text("{not json")
    monkeypatch.setenv(passphrase_variable("broken"), "s3cret")
    one_line_error("broken", "damaged keyfile", accounts_dir=folder)
    one_line_error("nobody", "no ape account 'nobody' .*`ape accounts generate nobody`", accounts_dir=folder)
