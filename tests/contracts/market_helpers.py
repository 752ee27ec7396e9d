"""Helpers for driving the Marketplace in tests; importable by every contract test module."""

from eth_abi import encode
from eth_utils import keccak

WINDOW = 600  # claim / commit / reveal windows used by default in tests
MIN_WINDOW = 120  # the contract's default minimum for each window; also each phase of a re-execution round
REWARD = 10**18
FEE_BPS, COLLATERAL_BPS, CLIENT_BPS, HONEST_BPS = 250, 50_000, 3_000, 6_000  # contract defaults
FEE = REWARD * FEE_BPS // 10_000
SEAT = REWARD + FEE  # escrow per seat
COLLATERAL = REWARD * COLLATERAL_BPS // 10_000
CHALLENGE_WINDOW = 3_600
SALT = b"\x01" * 32

STATUS_OPEN, STATUS_DELIVERED, STATUS_CHALLENGED, STATUS_FINALIZED, STATUS_UNRESOLVED, STATUS_CANCELLED = range(6)
FAULT_NO_COMMIT, FAULT_NO_REVEAL, FAULT_LOSING_DIGEST, FAULT_LOST_CHALLENGE = 1, 2, 3, 4


def seal(job_id: int, provider, result: bytes, salt: bytes = SALT) -> bytes:
    """keccak256(abi_encode(job_id, provider, keccak256(result), salt)): the documented seal."""
    return keccak(encode(["uint256", "address", "bytes32", "bytes32"], [job_id, str(provider), keccak(result), salt]))


def post(market, client, r=3, n=1, reward=REWARD, windows=(WINDOW, WINDOW, WINDOW), model_id=None):
    """Post `n` jobs as one batch (post_job for n == 1) and return their ids.
    model_id defaults to the first registered model."""
    model_id = market.model_at(0).model_id if model_id is None else model_id
    inputs = [b"input %d" % i for i in range(n)]
    if n == 1:
        tx = market.post_job(model_id, inputs[0], r, reward, *windows, sender=client)
    else:
        tx = market.post_jobs(model_id, inputs, r, reward, *windows, sender=client)
    return [log.job_id for log in tx.events.filter(market.JobPosted)]


def advance(chain, seconds: int):
    """Mine a block `seconds` after the latest one."""
    chain.pending_timestamp += seconds
    chain.mine()


def claim_all(market, job_id, providers):
    for p in providers:
        market.claim(job_id, sender=p)


def commit_all(market, job_id, providers, results, salt=SALT):
    for p, res in zip(providers, results):
        market.commit(job_id, seal(job_id, p, res, salt), sender=p)


def reveal_all(market, job_id, providers, results, salt=SALT):
    for p, res in zip(providers, results):
        market.reveal(job_id, res, salt, sender=p)


def run_round(market, job_id, providers, results, salt=SALT):
    """Claim, commit and reveal `results[i]` by `providers[i]`, all in time."""
    claim_all(market, job_id, providers)
    commit_all(market, job_id, providers, results, salt)
    reveal_all(market, job_id, providers, results, salt)


def held(market, accounts, job_ids) -> int:
    """Everything the marketplace owes, by its own views (pay == stake token)."""
    total = sum(market.escrow_of(j) for j in job_ids)
    for a in accounts:
        info = market.provider_info(a)
        pending = market.pending_payouts(a)
        total += market.balances(a) + market.stake_credits(a)
        total += info.free + info.locked + info.unbonding + pending.pay + pending.fees
    return total


def assert_solvent(market, token, accounts, job_ids):
    """Token balance of the market == its internal accounting, exactly."""
    assert token.balanceOf(market) == held(market, accounts, job_ids)
