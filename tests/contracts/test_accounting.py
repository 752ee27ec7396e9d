"""Internal balances: deposit, withdraw, two-token ledgers, failing tokens, constructor checks."""

import ape
from eth_utils import keccak

from market_helpers import COLLATERAL, CLIENT_BPS, REWARD, SEAT, commit_all, post, reveal_all, take_seats


def test_deposit_and_withdraw(funded, client, token):
    before = token.balanceOf(client)
    tx = funded.deposit(500, sender=client)
    assert tx.events.filter(funded.Deposited)[0].amount == 500
    assert funded.balances(client) == 500 and token.balanceOf(client) == before - 500
    tx = funded.withdraw(sender=client)
    (log,) = tx.events.filter(funded.Withdrawn)
    assert (log.pay_amount, log.stake_amount) == (500, 0)
    assert funded.balances(client) == 0 and token.balanceOf(client) == before
    with ape.reverts("accounting: nothing to withdraw"):
        funded.withdraw(sender=client)
    with ape.reverts("accounting: zero amount"):
        funded.deposit(0, sender=client)


def test_two_token_ledgers(project, owner, treasury, clients, providers, outsider, chain):
    """Pay and stake in different tokens: slash shares are paid in the stake token."""
    pay = owner.deploy(project.TestToken, "Pay", "PAY")
    stake = owner.deploy(project.TestToken, "Stake", "STK")
    m = owner.deploy(project.Marketplace, pay, stake, treasury)
    model = keccak(text="two-token-model")
    m.register_model(model, "m", bytes(32), 1, sender=owner)
    client = clients[0]
    pay.mint(client, 10**24, sender=client)
    pay.approve(m, 2**256 - 1, sender=client)
    for p in providers[:3]:
        stake.mint(p, 10**24, sender=p)
        stake.approve(m, 2**256 - 1, sender=p)
        m.register([model], 0, sender=p)
        m.stake(10**22, sender=p)
    (job_id,) = post(m, client, r=3, model_id=model)
    a, b, c = take_seats(m, chain, job_id, outsider, providers[:3])
    commit_all(m, job_id, [a, b, c], [b"R", b"R", b"bad"])
    reveal_all(m, job_id, [a, b, c], [b"R", b"R", b"bad"])
    m.finalize(job_id, sender=outsider)
    assert m.balances(client) == SEAT and m.stake_credits(client) == COLLATERAL * CLIENT_BPS // 10_000
    m.withdraw(sender=client)
    assert pay.balanceOf(client) == 10**24 - 3 * SEAT + SEAT
    assert stake.balanceOf(client) == COLLATERAL * CLIENT_BPS // 10_000
    m.withdraw(sender=a)  # a winner: its reward in the pay token, its honest share in the stake token
    assert pay.balanceOf(a) == REWARD and stake.balanceOf(a) > 10**24 - 10**22


def test_tokens_returning_false_revert(project, owner, treasury, clients):
    bad = owner.deploy(project.MockToken)
    m = owner.deploy(project.Marketplace, bad, bad, treasury)
    client = clients[0]
    bad.mint(client, 1000, sender=client)
    bad.approve(m, 2**256 - 1, sender=client)
    m.deposit(100, sender=client)
    bad.set_failing(True, sender=client)
    with ape.reverts("accounting: transfer failed"):
        m.deposit(100, sender=client)
    with ape.reverts("accounting: transfer failed"):
        m.withdraw(sender=client)
    assert m.balances(client) == 100


def test_constructor_rejects_zero_addresses(project, owner, token, treasury):
    zero = "0x" + "00" * 20
    with ape.reverts("accounting: zero token"):
        owner.deploy(project.Marketplace, zero, token, treasury)
    with ape.reverts("params: zero treasury"):
        owner.deploy(project.Marketplace, token, token, zero)
