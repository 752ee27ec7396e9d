"""Helpers for driving the Marketplace in tests (importable by other contract test modules)."""

from eth_abi import encode
from eth_utils import keccak

from conftest import TEST_MODEL_ID  # noqa: F401  (re-exported for test modules)

WINDOW = 600  # claim / commit / reveal windows used by default in tests
REWARD = 10**18

STATUS_OPEN, STATUS_DELIVERED, STATUS_CHALLENGED, STATUS_FINALIZED, STATUS_UNRESOLVED, STATUS_CANCELLED = range(6)
FAULT_NO_COMMIT, FAULT_NO_REVEAL, FAULT_LOSING_DIGEST, FAULT_LOST_CHALLENGE = 1, 2, 3, 4


def seal(job_id: int, provider, result: bytes, salt: bytes) -> bytes:
    """keccak256(abi_encode(job_id, provider, keccak256(result), salt)) - the documented seal."""
    return keccak(encode(["uint256", "address", "bytes32", "bytes32"], [job_id, str(provider), keccak(result), salt]))


def post(market, client, r=3, n=1, reward=REWARD, windows=(WINDOW, WINDOW, WINDOW), inputs=None):
    """Post `n` jobs (one batch) and return their ids."""
    inputs = inputs or [b"input %d" % i for i in range(n)]
    if len(inputs) == 1:
        tx = market.post_job(TEST_MODEL_ID, inputs[0], r, reward, *windows, sender=client)
    else:
        tx = market.post_jobs(TEST_MODEL_ID, inputs, r, reward, *windows, sender=client)
    return [log.job_id for log in tx.events if log.event_name == "JobPosted"]


def advance(chain, seconds: int):
    """Move the next block's timestamp `seconds` forward."""
    chain.pending_timestamp += seconds
    chain.mine()


def run_round(market, job_id, providers, results, salt=b"\x01" * 32):
    """Claim, commit and reveal `results[i]` by `providers[i]` (all in time)."""
    for p in providers:
        market.claim(job_id, sender=p)
    for p, res in zip(providers, results):
        market.commit(job_id, seal(job_id, p, res, salt), sender=p)
    for p, res in zip(providers, results):
        market.reveal(job_id, res, salt, sender=p)
