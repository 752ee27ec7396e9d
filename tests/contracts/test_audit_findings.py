"""Regression tests for the audit findings of issue 12, one section per finding.

Each test failed on the contracts before its fix. Findings 1-3 (seat sortition, the
r = 1 mempool copy) are not covered here yet.
"""

from market_helpers import (
    CHALLENGE_WINDOW, CLIENT_BPS, COLLATERAL, FEE, HONEST_BPS, advance, assert_solvent, post, run_round,
)


# ---------------------------------------------------------------- 5: settlement terms snapshotted at post


def test_owner_cannot_route_a_pending_slash_to_itself(staked, owner, client, providers, treasury, outsider, token,
                                                      everyone):
    """The split and the treasury a job settles with are those of its post: an owner who
    sets the split to 100% treasury and itself as treasury before finalize gains nothing."""
    a, b, c = providers[:3]
    (job_id,) = post(staked, client, r=3)
    run_round(staked, job_id, [a, b, c], [b"R", b"R", b"wrong"])
    staked.set_slash_split(0, 0, sender=owner)
    staked.set_treasury(owner, sender=owner)
    staked.finalize(job_id, sender=outsider)
    to_client = COLLATERAL * CLIENT_BPS // 10_000
    each = COLLATERAL * HONEST_BPS // 10_000 // 2
    assert staked.stake_credits(client) == to_client
    assert staked.stake_credits(a) == staked.stake_credits(b) == each
    assert staked.stake_credits(treasury) == COLLATERAL - to_client - 2 * each
    assert staked.balances(treasury) == 2 * FEE
    assert staked.stake_credits(owner) == staked.balances(owner) == 0
    # Jobs posted now settle on the new terms.
    (later,) = post(staked, client, r=3)
    run_round(staked, later, [a, b, c], [b"R", b"R", b"wrong"])
    staked.finalize(later, sender=outsider)
    assert staked.stake_credits(owner) == COLLATERAL and staked.balances(owner) == 2 * FEE
    assert_solvent(staked, token, everyone, [job_id, later])


def test_challenge_settles_on_the_terms_of_the_post(staked, owner, client, providers, treasury, outsider, token,
                                                    everyone):
    """A challenged r = 1 job: slash split, treasury share and fee follow the post's terms."""
    p0, p1, p2, p3 = providers[:4]
    (convicted,) = post(staked, client, r=1)
    staked.deliver(convicted, b"bad", sender=p0)
    (upheld,) = post(staked, client, r=1)
    staked.deliver(upheld, b"good", sender=p0)
    staked.challenge(convicted, sender=outsider)
    staked.challenge(upheld, sender=outsider)
    staked.set_slash_split(0, 0, sender=owner)
    staked.set_treasury(owner, sender=owner)
    run_round(staked, convicted, [p1, p2, p3], [b"good"] * 3)
    run_round(staked, upheld, [p1, p2, p3], [b"good"] * 3)
    staked.finalize(convicted, sender=outsider)
    staked.finalize(upheld, sender=outsider)
    to_client = COLLATERAL * CLIENT_BPS // 10_000
    to_honest = COLLATERAL * HONEST_BPS // 10_000
    assert staked.stake_credits(client) == to_client
    assert staked.stake_credits(outsider) == to_honest
    assert staked.stake_credits(treasury) == COLLATERAL - to_client - to_honest
    assert staked.balances(treasury) == FEE  # the upheld delivery's fee
    assert staked.stake_credits(owner) == staked.balances(owner) == 0
    assert_solvent(staked, token, everyone, [convicted, upheld])


def test_single_provider_fees_go_to_the_treasury_of_their_post(staked, owner, client, providers, treasury, chain,
                                                               token, everyone):
    """r = 1 fees wait in payout buckets; a treasury change does not redirect them."""
    p = providers[0]
    ids = post(staked, client, r=1, n=2)
    staked.deliver_many(ids, [b"res", b"res"], sender=p)
    staked.set_treasury(owner, sender=owner)
    advance(chain, CHALLENGE_WINDOW + 1)
    staked.release_payouts(p, sender=client)
    assert staked.balances(treasury) == 2 * FEE and staked.balances(owner) == 0
    (later,) = post(staked, client, r=1)
    staked.deliver(later, b"res", sender=p)
    advance(chain, CHALLENGE_WINDOW + 1)
    staked.release_payouts(p, sender=client)
    assert staked.balances(owner) == FEE and staked.balances(treasury) == 2 * FEE
    assert_solvent(staked, token, everyone, [*ids, later])

