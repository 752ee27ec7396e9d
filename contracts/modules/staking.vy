# pragma version ~=0.4.3
"""
@title Provider registry and staking
@custom:contract-name staking
@license MIT
@notice Providers register the models they serve and an asking price, and
        stake the stake token. Stake is `free` (backs new claims), `locked`
        (collateral of open seats, slashable) or `unbonding` (requested out,
        withdrawable after the delay). A claim locks the seat's collateral
        from free stake; settlement unlocks it or slashes it. Every slash is
        bounded by the collateral locked for that seat, so locked stake always
        covers the open seats and unbonding stake backs nothing: open seats
        never hold it back (a dust job can freeze only its own collateral).
        `withdraw_stake` lives in payouts.vy: it first releases matured payouts.
        free and locked share one slot: a claim or a settlement touches it once.
        Packed 128-bit fields cannot overflow: `stake` caps what a provider
        holds (free + locked + unbonding) at MAX_STAKE, and every other move
        (lock, unlock, unbond, slash, a payout release) only shifts stake
        between those fields or removes it. So a settlement, which unlocks or
        slashes, never reverts on a provider's amounts.
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from . import accounting
from . import models
from . import params
from . import sortition

initializes: accounting
initializes: models[ownable := ownable]
initializes: sortition[params := params]
uses: params


MAX_AMOUNT: constant(uint256) = 2**128 - 1
# The most stake one provider may hold (free + locked + unbonding): each field fits its 128 bits.
MAX_STAKE: constant(uint256) = 2**128 - 1


struct Provider:
    registered: bool
    price: uint256
    free: uint256
    locked: uint256
    unbonding: uint256
    unbond_ready_at: uint256


# registered (bit 0) | price << 8
_info: HashMap[address, uint256]
# Bit i set: serves the model with registry index i.
_served: HashMap[address, uint256]
# free (low 128 bits) | locked (high 128 bits)
_stake: HashMap[address, uint256]
# amount (low 128 bits) | ready_at << 128
_unbonding: HashMap[address, uint256]


event ProviderRegistered:
    provider: indexed(address)
    price: uint256
    model_ids: DynArray[bytes32, models.MAX_MODELS]

event ProviderUpdated:
    provider: indexed(address)
    price: uint256
    model_ids: DynArray[bytes32, models.MAX_MODELS]

event Staked:
    provider: indexed(address)
    amount: uint256

event UnbondRequested:
    provider: indexed(address)
    amount: uint256
    ready_at: uint256

event StakeWithdrawn:
    provider: indexed(address)
    amount: uint256


@deploy
def __init__(pay_token: IERC20, stake_token: IERC20, treasury: address):
    accounting.__init__(pay_token, stake_token)
    models.__init__(treasury)


@external
def register(model_ids: DynArray[bytes32, models.MAX_MODELS], price: uint256):
    """
    @notice Register as a provider.
    @param model_ids Active registered models you serve (may be empty).
    @param price Your asking price per seat in payment-token units; informational
           (clients and agents read it), never enforced on chain.
    """
    if self._info[msg.sender] & 1 != 0:
        params._fail("staking: already registered")
    self._set_provider(model_ids, price)
    log ProviderRegistered(provider=msg.sender, price=price, model_ids=model_ids)


@external
def update_provider(model_ids: DynArray[bytes32, models.MAX_MODELS], price: uint256):
    """
    @notice Replace the models you serve and your price.
    @param model_ids Active registered models you serve (may be empty).
    @param price Asking price per seat (informational).
    """
    if self._info[msg.sender] & 1 == 0:
        params._fail("staking: not registered")
    self._set_provider(model_ids, price)
    log ProviderUpdated(provider=msg.sender, price=price, model_ids=model_ids)


@external
@nonreentrant
def stake(amount: uint256):
    """
    @notice Add stake-token stake to your free stake (approve first).
    @param amount Token amount, > 0; your free + locked + unbonding stake stays
           at most MAX_STAKE.
    """
    if self._info[msg.sender] & 1 == 0:
        params._fail("staking: not registered")
    if amount == 0:
        params._fail("staking: zero amount")
    free: uint256 = 0
    locked: uint256 = 0
    free, locked = self._load(msg.sender)
    if free + locked + (self._unbonding[msg.sender] & MAX_AMOUNT) + amount > MAX_STAKE:
        params._fail("staking: amount too large")
    self._store(msg.sender, free + amount, locked)
    self._reweigh(msg.sender, free + amount + locked, True)
    accounting._pull(accounting.STAKE_TOKEN, msg.sender, amount)
    log Staked(provider=msg.sender, amount=amount)


@external
def request_unbond(amount: uint256):
    """
    @notice Move free stake to unbonding. The unbonding total becomes withdrawable
            `unbond_delay` seconds after this (latest) request.
    @param amount Token amount, > 0, at most your free stake.
    """
    if amount == 0:
        params._fail("staking: zero amount")
    free: uint256 = 0
    locked: uint256 = 0
    free, locked = self._load(msg.sender)
    if amount > free:
        params._fail("staking: insufficient free stake")
    self._store(msg.sender, free - amount, locked)
    # Never a new slot here: a full model must not block an unbond request.
    self._reweigh(msg.sender, free - amount + locked, False)
    # <= MAX_STAKE (stake's cap): no carry into ready_at.
    pending: uint256 = (self._unbonding[msg.sender] & MAX_AMOUNT) + amount
    ready_at: uint256 = block.timestamp + params._unbond_delay(params._load())
    self._unbonding[msg.sender] = pending | (ready_at << 128)
    log UnbondRequested(provider=msg.sender, amount=pending, ready_at=ready_at)


@external
def reweigh(account: address):
    """
    @notice Re-apply the current draw rules (`min_draw_stake`) to `account`'s draw
            weight; anyone may call (e.g. after the owner raised the floor).
    @param account A provider.
    """
    free: uint256 = 0
    locked: uint256 = 0
    free, locked = self._load(account)
    self._reweigh(account, free + locked, True)


@external
@view
def provider_info(account: address) -> Provider:
    """
    @notice Registration, price and stake of `account`.
    @param account Provider address.
    """
    free: uint256 = 0
    locked: uint256 = 0
    free, locked = self._load(account)
    info: uint256 = self._info[account]
    unbonding: uint256 = self._unbonding[account]
    return Provider(
        registered=info & 1 != 0,
        price=info >> 8,
        free=free,
        locked=locked,
        unbonding=unbonding & MAX_AMOUNT,
        unbond_ready_at=unbonding >> 128,
    )


@external
@view
def provider_models(account: address) -> DynArray[bytes32, models.MAX_MODELS]:
    """
    @notice The model ids `account` serves.
    @param account Provider address.
    """
    served: uint256 = self._served[account]
    ids: DynArray[bytes32, models.MAX_MODELS] = []
    for i: uint256 in range(models.MAX_MODELS):
        if served >> i == 0:
            break
        if (served >> i) & 1 != 0:
            ids.append(models._id_at(i))
    return ids


@internal
def _set_provider(model_ids: DynArray[bytes32, models.MAX_MODELS], price: uint256):
    if price > MAX_AMOUNT:
        params._fail("staking: price too large")
    served: uint256 = 0
    for model_id: bytes32 in model_ids:
        served |= 1 << models._active_index(model_id)
    free: uint256 = 0
    locked: uint256 = 0
    free, locked = self._load(msg.sender)
    sortition._reweigh(msg.sender, self._served[msg.sender], served, free + locked, True)
    self._served[msg.sender] = served
    self._info[msg.sender] = 1 | (price << 8)


@internal
def _reweigh(account: address, bonded: uint256, can_grow: bool):
    """
    @dev Bonded (free + locked) stake changed: so does the draw weight in every served model.
    """
    served: uint256 = self._served[account]
    sortition._reweigh(account, served, served, bonded, can_grow)


@internal
def _withdraw_unbonded(account: address):
    """
    @dev Pay out all of `account`'s unbonding stake once its delay has passed.
         Locked collateral backs the open seats by itself, so it does not matter here.
    """
    word: uint256 = self._unbonding[account]
    amount: uint256 = word & MAX_AMOUNT
    if amount == 0:
        params._fail("staking: nothing unbonding")
    if block.timestamp < word >> 128:
        params._fail("staking: unbond delay not passed")
    self._unbonding[account] = 0
    accounting._push(accounting.STAKE_TOKEN, account, amount)
    log StakeWithdrawn(provider=account, amount=amount)


@internal
@view
def _serves(account: address, model_index: uint256) -> bool:
    return (self._served[account] >> model_index) & 1 != 0


@internal
@view
def _load(account: address) -> (uint256, uint256):
    word: uint256 = self._stake[account]
    return word & MAX_AMOUNT, word >> 128


@internal
def _store(account: address, free: uint256, locked: uint256):
    # Both fit 128 bits: free + locked <= MAX_STAKE (see the module notice).
    self._stake[account] = free | (locked << 128)


@internal
def _lock(account: address, amount: uint256):
    """
    @dev Free -> locked. Callers check `_free(account) >= amount` first so that
         batch paths can skip instead of reverting.
    """
    free: uint256 = 0
    locked: uint256 = 0
    free, locked = self._load(account)
    self._store(account, free - amount, locked + amount)


@internal
@view
def _free(account: address) -> uint256:
    return self._stake[account] & MAX_AMOUNT


@internal
def _unlock(account: address, amount: uint256):
    free: uint256 = 0
    locked: uint256 = 0
    free, locked = self._load(account)
    self._store(account, free + amount, locked - amount)


@internal
def _slash(account: address, amount: uint256):
    """
    @dev Remove a seat's locked collateral; the caller credits it to the recipients.
    """
    word: uint256 = self._stake[account] - (amount << 128)
    self._stake[account] = word
    self._reweigh(account, (word & MAX_AMOUNT) + (word >> 128), False)
