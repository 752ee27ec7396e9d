# pragma version ~=0.4.3
"""
@title Test double: an attacker that bundles marketplace calls in one transaction
@notice A provider contract (it registers and stakes itself) whose calls share one
        transaction, hence one block: a challenge followed by claims (audit finding 1),
        and a weight change right before a draw (sortition.vy's block-start weights).
"""

interface Market:
    def register(model_ids: DynArray[bytes32, 256], price: uint256): nonpayable
    def stake(amount: uint256): nonpayable
    def request_unbond(amount: uint256): nonpayable
    def challenge(job_id: uint256): nonpayable
    def claim_many(job_ids: DynArray[uint256, 256]) -> uint256: nonpayable

interface Token:
    def approve(spender: address, amount: uint256) -> bool: nonpayable


MARKET: immutable(Market)


@deploy
def __init__(market: Market, token: Token):
    MARKET = market
    extcall token.approve(market.address, max_value(uint256))


@external
def join(model_id: bytes32, amount: uint256):
    extcall MARKET.register([model_id], 0)
    extcall MARKET.stake(amount)


@external
def challenge_and_claim(job_id: uint256) -> uint256:
    extcall MARKET.challenge(job_id)
    return extcall MARKET.claim_many([job_id])


@external
def stake_and_claim(amount: uint256, job_ids: DynArray[uint256, 256]) -> uint256:
    extcall MARKET.stake(amount)
    return extcall MARKET.claim_many(job_ids)


@external
def unbond_and_claim(amount: uint256, job_ids: DynArray[uint256, 256]) -> uint256:
    extcall MARKET.request_unbond(amount)
    return extcall MARKET.claim_many(job_ids)
