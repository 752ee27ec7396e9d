# pragma version ~=0.4.3
"""
@title Lazy settlement of single-provider jobs, and the one withdrawal
@custom:contract-name payouts
@license MIT
@notice An r == 1 delivery needs no settlement transaction. Its escrow (reward
        and fee) and its collateral go into the provider's open payout bucket,
        which tracks the latest challenge deadline of its jobs. Each provider
        has two buckets: the open one takes deliveries for one challenge
        window, then closes; a closed bucket is released (pay and fees
        credited, collateral unlocked) once every job in it is past its
        challenge deadline: by `withdraw`, by `release_payouts`, or when the
        provider's deliveries rotate buckets. Pay is therefore never released
        before a job's own challenge window is over, and one withdrawal
        collects any number of jobs. A challenge takes its job back out of its
        bucket (the bucket cannot have been released: it matures after the job).
"""

from ethereum.ercs import IERC20
from . import accounting
from . import params
from . import staking

uses: accounting
uses: params
initializes: staking[params := params]


_MASK32: constant(uint256) = 2**32 - 1
_MASK40: constant(uint256) = 2**40 - 1
_MASK24: constant(uint256) = 2**24 - 1
_MASK128: constant(uint256) = 2**128 - 1


struct Pending:
    pay: uint256
    fees: uint256
    collateral: uint256
    # Latest challenge deadline among the pending jobs (0 if none).
    matures_at: uint256


# open bucket generation (low 32 bits, starts at 1) | opened_at << 32
_head: HashMap[address, uint256]
# bucket (generation % 2) -> reward sum (low 128 bits) | fee sum << 128
_pay: HashMap[address, uint256[2]]
# bucket (generation % 2) -> collateral sum (low 128) | matures_at << 128 (40 bits) | generation << 168 (32 bits)
# | (_MASK24 - epoch) << 200: the oldest treasury epoch (params.vy) among the bucket's jobs,
#   stored complemented so that an empty bucket (0) takes the first job's and a max keeps the oldest
_lock: HashMap[address, uint256[2]]


event PayoutsReleased:
    provider: indexed(address)
    generation: uint256
    pay: uint256
    fees: uint256
    collateral: uint256
    # Credited with the fees: the oldest treasury among the bucket's jobs (see _add).
    treasury: address


@deploy
def __init__(pay_token: IERC20, stake_token: IERC20, treasury: address):
    staking.__init__(pay_token, stake_token, treasury)


@external
@nonreentrant
def withdraw():
    """
    @notice Collect everything credited to you, after releasing your matured
            single-provider payouts: the payment-token balance and the
            stake-token credits, in one call.
    """
    self._release(msg.sender)
    pay_amount: uint256 = accounting.balances[msg.sender]
    stake_amount: uint256 = accounting.stake_credits[msg.sender]
    if pay_amount + stake_amount == 0:
        params._fail("accounting: nothing to withdraw")
    accounting.balances[msg.sender] = 0
    accounting.stake_credits[msg.sender] = 0
    if accounting.PAY_TOKEN == accounting.STAKE_TOKEN:
        accounting._push(accounting.PAY_TOKEN, msg.sender, pay_amount + stake_amount)
    else:
        if pay_amount > 0:
            accounting._push(accounting.PAY_TOKEN, msg.sender, pay_amount)
        if stake_amount > 0:
            accounting._push(accounting.STAKE_TOKEN, msg.sender, stake_amount)
    log accounting.Withdrawn(account=msg.sender, pay_amount=pay_amount, stake_amount=stake_amount)


@external
@nonreentrant
def withdraw_stake():
    """
    @notice Withdraw all your unbonding stake once its delay has passed, after
            releasing your matured single-provider payouts. Open seats do not
            hold it back: their collateral stays locked apart from it.
    """
    self._release(msg.sender)
    staking._withdraw_unbonded(msg.sender)


@external
@nonreentrant
def release_payouts(provider: address):
    """
    @notice Release `provider`'s matured payout buckets into its balance and free
            stake (and the fees to the treasury) without withdrawing. Anyone may call.
    @param provider The provider.
    """
    self._release(provider)


@external
@view
def pending_payouts(provider: address) -> Pending:
    """
    @notice Single-provider pay not yet released: reward and fee sums held for
            `provider`, the collateral they keep locked, and when the last of
            them matures.
    @param provider The provider.
    """
    out: Pending = empty(Pending)
    for slot: uint256 in range(2):
        pw: uint256 = self._pay[provider][slot]
        lw: uint256 = self._lock[provider][slot]
        out.pay += pw & _MASK128
        out.fees += pw >> 128
        out.collateral += lw & _MASK128
        out.matures_at = max(out.matures_at, (lw >> 128) & _MASK40)
    return out


@internal
def _add(
    provider: address, reward: uint256, fee: uint256, collateral: uint256, challenge_end: uint256, window: uint256, epoch: uint256
) -> uint256:
    """
    @dev Put a delivered job's escrow and collateral into the provider's open
         bucket; returns the bucket generation (the job keeps its low 8 bits).
         The open bucket closes after `window`; a new one opens only once the
         other bucket is released, so at most two are ever pending.
         `epoch` is the job's treasury epoch. A bucket's fees go to the oldest
         treasury among its jobs: a treasury change never redirects the fees
         of jobs posted before it (while a bucket mixes jobs from both sides
         of a change, the newer jobs' fees go to the older treasury).
    """
    head: uint256 = self._head[provider]
    gen: uint256 = head & _MASK32
    if gen == 0 or (block.timestamp >= (head >> 32) + window and self._release_slot(provider, (gen + 1) % 2)):
        gen += 1
        self._head[provider] = gen | (block.timestamp << 32)
    slot: uint256 = gen % 2
    pw: uint256 = self._pay[provider][slot]
    lw: uint256 = self._lock[provider][slot]
    # Sums can't carry into the next field: a bucket's reward, fee and collateral
    # sums are each at most its collateral sum (collateral >= reward >= fee per
    # job), which is part of the provider's locked stake, < 2**128 (staking.vy).
    self._pay[provider][slot] = pw + (reward | (fee << 128))
    self._lock[provider][slot] = (
        ((lw & _MASK128) + collateral)
        | (max((lw >> 128) & _MASK40, challenge_end) << 128)
        | (gen << 168)
        | (max(lw >> 200, _MASK24 - epoch) << 200)
    )
    return gen


@internal
def _remove(provider: address, gen8: uint256, reward: uint256, fee: uint256, collateral: uint256):
    """
    @dev Take a challenged job back out of its (still pending) bucket.
    """
    slot: uint256 = gen8 % 2
    lw: uint256 = self._lock[provider][slot]
    # A bucket matures after each of its jobs' windows, so it cannot be released yet.
    assert (lw >> 168) % 256 == gen8 and lw & _MASK128 >= collateral, UNREACHABLE
    self._pay[provider][slot] -= reward + (fee << 128)
    self._lock[provider][slot] = lw - collateral


@internal
def _release(provider: address):
    self._release_slot(provider, 0)
    self._release_slot(provider, 1)


@internal
def _release_slot(provider: address, slot: uint256) -> bool:
    """
    @dev Release one bucket if all its jobs are past their challenge deadline.
         Returns True when the bucket is now empty.
    """
    lw: uint256 = self._lock[provider][slot]
    pw: uint256 = self._pay[provider][slot]
    if lw & _MASK128 == 0 and pw == 0:
        return True
    if block.timestamp <= (lw >> 128) & _MASK40:
        return False
    pay: uint256 = pw & _MASK128
    fees: uint256 = pw >> 128
    collateral: uint256 = lw & _MASK128
    self._pay[provider][slot] = 0
    self._lock[provider][slot] = 0
    treasury: address = params._treasury_at(_MASK24 - (lw >> 200))
    accounting.balances[provider] += pay
    if fees > 0:
        accounting.balances[treasury] += fees
    staking._unlock(provider, collateral)
    log PayoutsReleased(
        provider=provider, generation=(lw >> 168) & _MASK32, pay=pay, fees=fees, collateral=collateral, treasury=treasury
    )
    return True
