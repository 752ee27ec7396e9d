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


def round_seats(market, job_id) -> list[int]:
    """Seat indices of the job's current round: 0..r-1, or 1..3 once challenged."""
    info = market.job(job_id)
    return [1, 2, 3] if info.status == STATUS_CHALLENGED else list(range(info.r))


def draw_seats(market, chain, job_id, keeper, providers, distinct=True, tries=300):
    """Draw the current round's seats (a claim_many by `keeper`, who is not a provider)
    and return the drawn providers (accounts from `providers`) by seat. With `distinct`,
    a draw that gives one provider several seats is undone (chain snapshot) and drawn
    again in a later block, so that tests can give each seat its own role."""
    by_address = {p.address: p for p in providers}
    for _ in range(tries):
        snapshot = chain.snapshot()
        market.claim_many([job_id], sender=keeper)
        drawn = [by_address[market.seat(job_id, s).provider] for s in round_seats(market, job_id)]
        if not distinct or len({p.address for p in drawn}) == len(drawn):
            return drawn
        chain.restore(snapshot)
        advance(chain, 1)
    raise AssertionError(f"no draw with distinct providers in {tries} blocks")


def draw_seats_until(market, chain, job_id, keeper, providers, accept, tries=300):
    """Like draw_seats, but keep the first draw whose providers by seat satisfy
    `accept(drawn)` (e.g. one provider holding two seats); earlier draws are undone."""
    by_address = {p.address: p for p in providers}
    for _ in range(tries):
        snapshot = chain.snapshot()
        market.claim_many([job_id], sender=keeper)
        drawn = [by_address[market.seat(job_id, s).provider] for s in round_seats(market, job_id)]
        if accept(drawn):
            return drawn
        chain.restore(snapshot)
        advance(chain, 1)
    raise AssertionError(f"no acceptable draw in {tries} blocks")


def claim_and_deliver(market, provider, job_ids, results):
    """r = 1: claim the jobs (claim / claim_many), then deliver them from the next block
    (deliver / deliver_many); returns the delivery receipt."""
    if len(job_ids) == 1:
        market.claim(job_ids[0], sender=provider)
        return market.deliver(job_ids[0], results[0], sender=provider)
    market.claim_many(job_ids, sender=provider)
    return market.deliver_many(job_ids, results, sender=provider)


def take_seats(market, chain, job_id, keeper, providers, distinct=True):
    """Draw the round (see draw_seats) and have every drawn provider take its seats;
    returns the providers by seat."""
    drawn = draw_seats(market, chain, job_id, keeper, providers, distinct)
    for p in dict.fromkeys(drawn):
        market.claim(job_id, sender=p)
    return drawn


def claim_all(market, job_id, providers):
    """Each provider takes its drawn seats (the draw must have been made)."""
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
