# pragma version ~=0.4.3
"""
@title Sortition: stake-weighted seat draws
@custom:contract-name sortition
@license MIT
@notice Per model, a Fenwick (binary indexed) tree over provider slots holds
        the weight of every provider serving it: its bonded stake (free +
        locked) >> WEIGHT_SHIFT, zero below `min_draw_stake`. A draw maps a
        uniform number below the total weight to the slot whose cumulative
        range holds it, so each draw picks a provider with probability equal
        to its weight share. Seats are drawn independently (with
        replacement), so the seats an owner of several addresses wins follow
        Binomial(seats, its stake share) however it splits the stake: a
        split only loses the rounding below WEIGHT_SHIFT and `min_draw_stake`.
        Weights are frozen before the randomness exists: every node keeps its
        value as of the start of the block it last changed in, and a draw in
        block b reads the tree as of the start of b with the seed
        blockhash(b - 1). A weight change can therefore only affect draws whose
        seed was not yet known when it was made. (A block proposer can still
        choose its block's hash among the blocks it could build: see
        contracts/README.md, "Seat draws".)
"""

from . import params

uses: params


# Slots per model (a power of two) and its log2.
CAP: constant(uint256) = 4096
LOG_CAP: constant(uint256) = 12
# Weight = stake >> WEIGHT_SHIFT, at most MAX_WEIGHT: CAP slots sum below 2**108.
WEIGHT_SHIFT: constant(uint256) = 16
MAX_WEIGHT: constant(uint256) = 2**96 - 1
_MASK108: constant(uint256) = 2**108 - 1
_MASK16: constant(uint256) = 2**16 - 1


# model << 16 | node (1..CAP) -> value | value at the start of block `changed` << 108 | changed << 216
_nodes: HashMap[uint256, uint256]
# model << 160 | provider -> its slot (1..CAP), 0 if none
_slot_of: HashMap[uint256, uint256]
# model << 16 | slot -> provider | block it was released in << 160 (a released slot keeps its
# last provider: draws in the release block still see that provider's weight there)
_owner: HashMap[uint256, uint256]
# model -> slots handed out so far | free-stack depth << 16
_slots: HashMap[uint256, uint256]
# model << 16 | depth -> a released slot (the free stack)
_free_slots: HashMap[uint256, uint256]
# The weight every tree of the provider's models holds for it.
draw_weight: public(HashMap[address, uint256])


event WeightChanged:
    provider: indexed(address)
    weight: uint256


@internal
def _reweigh(account: address, served_before: uint256, served: uint256, bonded: uint256, can_grow: bool):
    """
    @dev Bring `account`'s leaf in every model tree it leaves, joins or stays
         in to its new weight (bonded stake, or 0 when serving stops). A slash
         passes can_grow=False: settlement must never need a new slot (a full
         model would make it revert), even after the owner lowered the floor.
    """
    before: uint256 = self.draw_weight[account]
    weight: uint256 = 0
    # Serving no model, no tree holds a weight for it.
    if served != 0 and bonded >= params.min_draw_stake:
        weight = min(bonded >> WEIGHT_SHIFT, MAX_WEIGHT)
    if not can_grow:
        weight = min(weight, before)
    touched: uint256 = served_before | served
    for m: uint256 in range(256):
        if touched >> m == 0:
            break
        if (touched >> m) & 1 == 0:
            continue
        old: uint256 = 0
        new: uint256 = 0
        if (served_before >> m) & 1 != 0:
            old = before
        if (served >> m) & 1 != 0:
            new = weight
        if old != new:
            self._move(m, account, old, new)
    if weight != before:
        self.draw_weight[account] = weight
        log WeightChanged(provider=account, weight=weight)


@internal
def _move(m: uint256, account: address, old: uint256, new: uint256):
    """
    @dev Change `account`'s leaf in model `m` from `old` to `new`, taking a slot
         on the way up from zero and giving it back on the way down to zero.
    """
    key: uint256 = (m << 160) | convert(account, uint256)
    slot: uint256 = self._slot_of[key]
    if slot == 0:
        slot = self._take_slot(m, account)
        self._slot_of[key] = slot
    if new > old:
        self._add(m, slot, new - old, True)
    else:
        self._add(m, slot, old - new, False)
    if new == 0:
        # Reusable from the next block on: within this block draws still see the old weight here.
        self._slot_of[key] = 0
        self._owner[(m << 16) | slot] = convert(account, uint256) | (block.number << 160)
        state: uint256 = self._slots[m]
        depth: uint256 = state >> 16
        self._free_slots[(m << 16) | depth] = slot
        self._slots[m] = state + (1 << 16)


@internal
def _take_slot(m: uint256, account: address) -> uint256:
    state: uint256 = self._slots[m]
    depth: uint256 = state >> 16
    slot: uint256 = 0
    if depth > 0:
        slot = self._free_slots[(m << 16) | (depth - 1)]
        if self._owner[(m << 16) | slot] >> 160 < block.number:
            self._slots[m] = state - (1 << 16)
        else:
            slot = 0
    if slot == 0:
        if state & _MASK16 == CAP:
            params._fail("sortition: model full")
        slot = (state & _MASK16) + 1
        self._slots[m] = state + 1
    self._owner[(m << 16) | slot] = convert(account, uint256)
    return slot


@internal
def _add(m: uint256, slot: uint256, delta: uint256, up: bool):
    i: uint256 = slot
    for _: uint256 in range(LOG_CAP + 1):
        if i > CAP:
            break
        key: uint256 = (m << 16) | i
        word: uint256 = self._nodes[key]
        value: uint256 = word & _MASK108
        start: uint256 = (word >> 108) & _MASK108
        if word >> 216 != block.number:
            start = value
        if up:
            value += delta
        else:
            value -= delta
        self._nodes[key] = value | (start << 108) | (block.number << 216)
        i += i & unsafe_sub(0, i)


@internal
@view
def _at_block_start(word: uint256) -> uint256:
    if word >> 216 == block.number:
        return (word >> 108) & _MASK108
    return word & _MASK108


@internal
@view
def _total(m: uint256) -> uint256:
    """
    @dev Total weight of model `m` as of the start of this block.
    """
    return self._at_block_start(self._nodes[(m << 16) | CAP])


@internal
@view
def _draw(m: uint256, seed: uint256) -> address:
    """
    @dev The provider whose cumulative weight range (as of the start of this
         block) holds seed mod total; empty when nobody has weight.
    """
    total: uint256 = self._total(m)
    if total == 0:
        return empty(address)
    u: uint256 = seed % total
    pos: uint256 = 0
    step: uint256 = CAP >> 1
    for _: uint256 in range(LOG_CAP):
        value: uint256 = self._at_block_start(self._nodes[(m << 16) | (pos + step)])
        if value <= u:
            pos += step
            u -= value
        step >>= 1
    return convert(convert(self._owner[(m << 16) | (pos + 1)] & (2**160 - 1), uint160), address)
