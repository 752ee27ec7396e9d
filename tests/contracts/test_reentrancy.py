"""Reentrancy attacks on the marketplace through an ERC-777-style hook token.

`contracts/mocks/HookToken.vy` calls an opted-in sender back before its tokens
move and an opted-in recipient after they arrive; `contracts/mocks/Reenterer.vy`
is a participant whose callback re-enters the marketplace once and reads its
state with a static probe. For every token-moving entry point we check that:
- the re-entrant call is refused by the shared lock (it succeeds when made
  outside the callback, so the lock is the only reason it failed);
- the balances moved are exactly those of the outer call;
- the state was written before the token call (the probe sees it).
"""

import ape
import pytest
from eth_utils import keccak

from market_helpers import (
    REWARD, STATUS_CHALLENGED, STATUS_OPEN, WINDOW, advance, claim_all, commit_all, draw_seats_until, reveal_all,
)

MODEL_ID = keccak(text="verinfer-reentrancy-model")
STAKE = 100 * REWARD
FUNDS = 10**24  # minted to every participant
DEPOSIT = 7  # a small amount for re-entrant deposits and stakes


@pytest.fixture(scope="module")
def hook_token(project, owner):
    return owner.deploy(project.HookToken, "Hook", "HOOK")


@pytest.fixture(scope="module")
def hmarket(project, owner, treasury, hook_token, clients, providers):
    """A marketplace paying and staking in the hook token; providers[:4] staked, clients funded."""
    m = owner.deploy(project.Marketplace, hook_token, hook_token, treasury)
    m.register_model(MODEL_ID, "test-model", MODEL_ID, 1, sender=owner)
    for acct in [*clients, *providers[:4]]:
        hook_token.mint(acct, FUNDS, sender=acct)
        hook_token.approve(m, 2**256 - 1, sender=acct)
    for p in providers[:4]:
        m.register([MODEL_ID], 1, sender=p)
        m.stake(STAKE, sender=p)
    return m


def make_attacker(project, operator, market, tokens):
    """A Reenterer funded in every token, approving the market, registered as a staked provider."""
    attacker = operator.deploy(project.Reenterer)
    for token in tokens:
        token.mint(attacker, FUNDS, sender=operator)
        act(attacker, operator, token.approve, market, 2**256 - 1)
        act(attacker, operator, token.set_hook, True)
    act(attacker, operator, market.register, [MODEL_ID], 1)
    act(attacker, operator, market.stake, STAKE)
    return attacker


@pytest.fixture(scope="module")
def attacker(project, outsider, hmarket, hook_token):
    return make_attacker(project, outsider, hmarket, [hook_token])


def act(attacker, operator, method, *args):
    """Have the attacker contract call `method(*args)` as itself."""
    return attacker.execute(method.contract.address, method.encode_input(*args), sender=operator)


def arm(attacker, operator, method, args, probe, probe_args):
    attacker.arm(
        method.contract.address, method.encode_input(*args), probe.contract.address, probe.encode_input(*probe_args), sender=operator
    )


def probe(attacker, view):
    """Decode what the armed probe (a call of `view`) returned inside the callback."""
    (value,) = view.contract.provider.network.ecosystem.decode_returndata(view.abis[0], attacker.probe_returndata())
    return value


def assert_refused_by_lock(attacker):
    """The armed re-entry fired and failed without a reason string: Vyper's lock reverts
    without one, while every other refusal of these entry points carries a reason."""
    assert attacker.callbacks() > 0 and not attacker.armed()
    assert not attacker.reentry_succeeded()
    assert attacker.reentry_returndata() == b""


@pytest.fixture(scope="module")
def delivered_job(hmarket, clients, providers):
    """An r = 1 job delivered by providers[0], inside its challenge window."""
    tx = hmarket.post_job(MODEL_ID, b"input", 1, REWARD, WINDOW, WINDOW, WINDOW, sender=clients[0])
    (job_id,) = [log.job_id for log in tx.decode_logs(hmarket.JobPosted)]
    hmarket.claim(job_id, sender=providers[0])
    hmarket.deliver(job_id, b"result", sender=providers[0])  # a later block than the claim
    return job_id


def reentry_calls(market, delivered_job):
    """Each token-moving entry point with arguments that are valid outside the lock."""
    return {
        "withdraw": (market.withdraw, []),
        "deposit": (market.deposit, [DEPOSIT]),
        "post_job": (market.post_job, [MODEL_ID, b"x", 2, REWARD, WINDOW, WINDOW, WINDOW]),
        "post_jobs": (market.post_jobs, [MODEL_ID, [b"x", b"y"], 2, REWARD, WINDOW, WINDOW, WINDOW]),
        "challenge": (market.challenge, [delivered_job]),
        "stake": (market.stake, [DEPOSIT]),
    }


@pytest.mark.parametrize("reentry", ["withdraw", "deposit", "post_job", "post_jobs", "challenge", "stake"])
def test_withdraw_reentry_is_refused(hmarket, hook_token, attacker, outsider, delivered_job, reentry):
    """withdraw pays the attacker; its receive hook re-enters: refused, and the balance was zeroed first."""
    credit = 5 * REWARD
    act(attacker, outsider, hmarket.deposit, credit)
    market_before = hook_token.balanceOf(hmarket)
    attacker_before = hook_token.balanceOf(attacker)
    method, args = reentry_calls(hmarket, delivered_job)[reentry]
    arm(attacker, outsider, method, args, hmarket.balances, [attacker])

    act(attacker, outsider, hmarket.withdraw)

    assert probe(attacker, hmarket.balances) == 0  # balance written before the transfer
    assert hmarket.balances(attacker) == 0
    assert hook_token.balanceOf(attacker) == attacker_before + credit
    assert hook_token.balanceOf(hmarket) == market_before - credit
    assert_refused_by_lock(attacker)
    if reentry == "withdraw":
        with ape.reverts("accounting: nothing to withdraw"):  # paid once
            act(attacker, outsider, method, *args)
    else:
        act(attacker, outsider, method, *args)  # outside the callback the same call is fine


@pytest.mark.parametrize("single", [True, False], ids=["post_job", "post_jobs"])
def test_post_reentry_is_refused(hmarket, hook_token, attacker, outsider, single):
    """The post's transferFrom calls the paying attacker back: the job is already stored and the
    internal balance already spent, and withdrawing that balance again is refused."""
    balance = REWARD // 2  # less than the price: the rest comes by transferFrom
    act(attacker, outsider, hmarket.deposit, balance)
    first_id = hmarket.next_batch_id() << 8
    price = hmarket.job_price(2, REWARD, 1 if single else 3)
    arm(attacker, outsider, hmarket.withdraw, [], hmarket.job, [first_id])
    market_before = hook_token.balanceOf(hmarket)
    attacker_before = hook_token.balanceOf(attacker)

    if single:
        act(attacker, outsider, hmarket.post_job, MODEL_ID, b"in", 2, REWARD, WINDOW, WINDOW, WINDOW)
    else:
        act(attacker, outsider, hmarket.post_jobs, MODEL_ID, [b"a", b"b", b"c"], 2, REWARD, WINDOW, WINDOW, WINDOW)

    # The probe read job(first_id) from inside the callback: it existed, posted by the attacker.
    seen = probe(attacker, hmarket.job)
    assert seen.client == attacker.address and seen.status == STATUS_OPEN
    assert hmarket.balances(attacker) == 0
    assert hook_token.balanceOf(attacker) == attacker_before - (price - balance)
    assert hook_token.balanceOf(hmarket) == market_before + price - balance
    assert hmarket.escrow_of(first_id) == price // (1 if single else 3)
    # Outside the callback the attacker has nothing left to withdraw.
    assert_refused_by_lock(attacker)
    with ape.reverts("accounting: nothing to withdraw"):
        act(attacker, outsider, hmarket.withdraw)


def test_challenge_reentry_is_refused(hmarket, hook_token, attacker, outsider, delivered_job):
    """The bond's transferFrom calls the challenger back: the job is already CHALLENGED, and a
    second challenge (or any locked entry point) is refused."""
    bond = hmarket.challenge_bond(delivered_job)
    arm(attacker, outsider, hmarket.deposit, [DEPOSIT], hmarket.job, [delivered_job])
    market_before = hook_token.balanceOf(hmarket)

    act(attacker, outsider, hmarket.challenge, delivered_job)

    seen = probe(attacker, hmarket.job)
    assert seen.status == STATUS_CHALLENGED and seen.challenger == attacker.address
    assert hook_token.balanceOf(hmarket) == market_before + bond
    assert_refused_by_lock(attacker)
    act(attacker, outsider, hmarket.deposit, DEPOSIT)
    with ape.reverts("jobs: not challengeable"):
        act(attacker, outsider, hmarket.challenge, delivered_job)


def test_stake_and_withdraw_stake_reentry_is_refused(hmarket, hook_token, attacker, outsider, chain):
    """stake's transferFrom re-enters withdraw_stake, and withdraw_stake's transfer re-enters
    itself: both refused; each call sees its own stake update already written."""
    unbond = 3 * REWARD
    act(attacker, outsider, hmarket.request_unbond, unbond)
    advance(chain, hmarket.unbond_delay() + 1)
    free_before = hmarket.provider_info(attacker).free

    arm(attacker, outsider, hmarket.withdraw_stake, [], hmarket.provider_info, [attacker])
    act(attacker, outsider, hmarket.stake, DEPOSIT)
    seen = probe(attacker, hmarket.provider_info)
    assert seen.free == free_before + DEPOSIT
    assert_refused_by_lock(attacker)

    market_before = hook_token.balanceOf(hmarket)
    attacker_before = hook_token.balanceOf(attacker)
    arm(attacker, outsider, hmarket.withdraw_stake, [], hmarket.provider_info, [attacker])
    act(attacker, outsider, hmarket.withdraw_stake)
    seen = probe(attacker, hmarket.provider_info)
    assert seen.unbonding == 0  # zeroed before the transfer
    assert_refused_by_lock(attacker)
    assert hook_token.balanceOf(attacker) == attacker_before + unbond  # paid once
    assert hook_token.balanceOf(hmarket) == market_before - unbond
    with ape.reverts("staking: nothing unbonding"):
        act(attacker, outsider, hmarket.withdraw_stake)


@pytest.mark.parametrize("reentry", ["deposit", "withdraw"])
def test_deposit_reentry_is_refused(hmarket, hook_token, attacker, outsider, reentry):
    """deposit's transferFrom calls the depositor back with its balance already credited."""
    act(attacker, outsider, hmarket.deposit, DEPOSIT)  # something to withdraw outside the lock
    before = hmarket.balances(attacker)
    method, args = (hmarket.deposit, [DEPOSIT]) if reentry == "deposit" else (hmarket.withdraw, [])
    arm(attacker, outsider, method, args, hmarket.balances, [attacker])
    act(attacker, outsider, hmarket.deposit, REWARD)
    assert probe(attacker, hmarket.balances) == before + REWARD
    assert_refused_by_lock(attacker)
    act(attacker, outsider, method, *args)  # outside the callback the same call is fine


def test_unlocked_reentry_sees_consistent_state(hmarket, hook_token, attacker, outsider):
    """request_unbond moves no tokens, so it is not locked: re-entered from stake's own
    transferFrom it already sees the new stake as free, and the books stay exact."""
    before = hmarket.provider_info(attacker)
    market_before = hook_token.balanceOf(hmarket)
    amount = STAKE // 2
    arm(attacker, outsider, hmarket.request_unbond, [before.free + amount], hmarket.provider_info, [attacker])

    act(attacker, outsider, hmarket.stake, amount)

    assert attacker.reentry_succeeded()  # unbonding more than the old free stake: the new stake counted
    seen = probe(attacker, hmarket.provider_info)
    after = hmarket.provider_info(attacker)
    assert (seen.free, seen.unbonding) == (after.free, after.unbonding) == (0, before.unbonding + before.free + amount)
    assert hook_token.balanceOf(hmarket) == market_before + amount


def test_split_token_withdraw_zeroes_both_ledgers_first(project, owner, treasury, outsider, clients, providers, chain):
    """With different payment and stake tokens withdraw makes two transfers. The first one (payment
    token) calls the attacker back: both ledgers are already zero and withdrawing again is refused."""
    pay = owner.deploy(project.HookToken, "Pay", "PAY")
    stk = owner.deploy(project.HookToken, "Stake", "STK")
    m = owner.deploy(project.Marketplace, pay, stk, owner)
    m.register_model(MODEL_ID, "test-model", MODEL_ID, 1, sender=owner)
    for p in providers[:3]:
        stk.mint(p, STAKE, sender=p)
        stk.approve(m, 2**256 - 1, sender=p)
        m.register([MODEL_ID], 1, sender=p)
        m.stake(STAKE, sender=p)
    attacker = make_attacker(project, outsider, m, [pay, stk])

    # The attacker is the client of an r = 3 job with one losing seat: a refund in the payment
    # token and the client's slash share in the stake token. (The attacker is staked too: the
    # draw is kept once the three seats go to the three providers.)
    tx = act(attacker, outsider, m.post_job, MODEL_ID, b"in", 3, REWARD, WINDOW, WINDOW, WINDOW)
    (job_id,) = [log.job_id for log in tx.decode_logs(m.JobPosted)]
    seats = draw_seats_until(m, chain, job_id, outsider, [*providers[:3], attacker],
                             lambda d: {p.address for p in d} == {p.address for p in providers[:3]})
    claim_all(m, job_id, seats)
    commit_all(m, job_id, seats, [b"A", b"A", b"B"])
    reveal_all(m, job_id, seats, [b"A", b"A", b"B"])
    m.finalize(job_id, sender=outsider)
    pay_owed, stake_owed = m.balances(attacker), m.stake_credits(attacker)
    assert pay_owed > 0 and stake_owed > 0
    pay_before, stake_before = pay.balanceOf(attacker), stk.balanceOf(attacker)

    arm(attacker, outsider, m.withdraw, [], m.stake_credits, [attacker])
    act(attacker, outsider, m.withdraw)

    assert probe(attacker, m.stake_credits) == 0
    assert_refused_by_lock(attacker)
    assert pay.balanceOf(attacker) == pay_before + pay_owed
    assert stk.balanceOf(attacker) == stake_before + stake_owed
    assert m.balances(attacker) == 0 and m.stake_credits(attacker) == 0
