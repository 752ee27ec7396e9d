"""Signing keys from ape accounts: test accounts and passphrase-protected keyfiles."""

import json

import pytest
from eth_account import Account

from provider.agent.accounts import load_signer, passphrase_variable
from provider.agent.errors import AccountError
from tests.support.anvil import ANVIL_KEYS


def test_test_account_is_anvils_funded_account():
    assert load_signer("TEST::1").address == Account.from_key(ANVIL_KEYS[1]).address
    with pytest.raises(AccountError, match="no test account"):
        load_signer("TEST::999")
    with pytest.raises(AccountError, match="TEST::<index>"):
        load_signer("TEST::x")


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
    assert load_signer("provider-a", accounts_dir=folder).address == address


def test_keyfile_errors(keyfile_dir, monkeypatch):
    folder, _ = keyfile_dir
    monkeypatch.delenv(passphrase_variable("provider-a"), raising=False)
    with pytest.raises(AccountError, match="APE_ACCOUNTS_provider-a_PASSPHRASE"):
        load_signer("provider-a", accounts_dir=folder)
    monkeypatch.setenv(passphrase_variable("provider-a"), "wrong")
    with pytest.raises(AccountError, match="cannot unlock"):
        load_signer("provider-a", accounts_dir=folder)
    with pytest.raises(AccountError, match="no ape account 'nobody'"):
        load_signer("nobody", accounts_dir=folder)
