# pragma version ~=0.4.3
"""
@title Protocol parameters
@custom:contract-name params
@license MIT
@notice Owner-set parameters, each bounded by a hard-coded constant and
        announced by an event, plus the treasury address and the pause
        switch. Pause stops new work (posting, claiming, delivering) only;
        nothing here can move escrow or stake or block settlement.
        The numeric parameters share one storage slot so that a hot path
        pays a single cold SLOAD for all of them.
        Every treasury the owner sets is kept under its epoch (0, 1, ...):
        a job snapshots the epoch at post with the fee, collateral and slash
        split, so a later change never redirects what a pending job pays out.
"""

from snekmate.auth import ownable
from snekmate.auth import ownable_2step

initializes: ownable
# Two-step transfer: the new owner must accept, so a typo can't lose the marketplace.
initializes: ownable_2step[ownable := ownable]


# Basis points denominator.
BPS: constant(uint256) = 10_000
MAX_FEE_BPS: constant(uint256) = 1_000
# Collateral locked per seat, as a multiple of the seat's reward.
MIN_COLLATERAL_BPS: constant(uint256) = 10_000
MAX_COLLATERAL_BPS: constant(uint256) = 100_000
MIN_CHALLENGE_WINDOW: constant(uint256) = 60
MAX_CHALLENGE_WINDOW: constant(uint256) = 7 * 86_400
MIN_UNBOND_DELAY: constant(uint256) = 60
MAX_UNBOND_DELAY: constant(uint256) = 30 * 86_400
# Bounds on the owner's minimum claim / commit / reveal windows: a floor that still
# spans several blocks of a fast chain, and a day at most (these minimums also time
# every re-execution round, which must not freeze collateral for long; 18 bits each).
MIN_MIN_WINDOW: constant(uint256) = 10
MAX_MIN_WINDOW: constant(uint256) = 86_400

DEFAULT_FEE_BPS: constant(uint256) = 250
DEFAULT_COLLATERAL_BPS: constant(uint256) = 50_000
DEFAULT_SLASH_CLIENT_BPS: constant(uint256) = 3_000
DEFAULT_SLASH_HONEST_BPS: constant(uint256) = 6_000
DEFAULT_CHALLENGE_WINDOW: constant(uint256) = 3_600
DEFAULT_UNBOND_DELAY: constant(uint256) = 3 * 86_400
# 10 blocks of a 12 s chain per phase: an agent trailing the head by a block or two
# sees a phase open within ~30 s and its transaction manager replaces an unmined
# transaction after 3 blocks / 30 s, so two fee bumps still fit before the deadline
# (60 s would leave one missed block between an honest seat and a slash).
DEFAULT_MIN_WINDOW: constant(uint256) = 120
# One token of an 18-decimal stake token; set per deployment (set_min_draw_stake).
DEFAULT_MIN_DRAW_STAKE: constant(uint256) = 10**18
MAX_MIN_DRAW_STAKE: constant(uint256) = 2**128 - 1

# Bit offsets inside the packed parameter word.
_FEE: constant(uint256) = 0
_COLLATERAL: constant(uint256) = 16
_SLASH_CLIENT: constant(uint256) = 40
_SLASH_HONEST: constant(uint256) = 56
_CHALLENGE_WINDOW: constant(uint256) = 72
_UNBOND_DELAY: constant(uint256) = 104
_PAUSED: constant(uint256) = 136
_TREASURY_EPOCH: constant(uint256) = 144
_MASK18: constant(uint256) = 2**18 - 1
# Minimum claim, commit and reveal windows, 18 bits each, in this order (a
# challenge copies the three as one 54-bit block: jobs.vy _challenges).
_MIN_WINDOWS: constant(uint256) = 168
# Treasury epochs fit the 24 bits a job's terms keep for them.
MAX_TREASURY_EPOCH: constant(uint256) = 2**24 - 1


_packed: uint256
# Least bonded stake that gives a provider a draw weight (sortition.vy). Its own slot:
# only stake changes read it. A floor per slot makes filling a model's CAP slots with
# throwaway addresses cost CAP times this much stake.
min_draw_stake: public(uint256)
# Treasury epoch -> the treasury set then; the current one is the packed word's epoch.
_treasuries: HashMap[uint256, address]


event ParameterChanged:
    name: String[32]
    old_value: uint256
    new_value: uint256

event TreasuryChanged:
    old_treasury: indexed(address)
    new_treasury: indexed(address)

@deploy
def __init__(treasury_: address):
    ownable.__init__()
    ownable_2step.__init__()
    if treasury_ == empty(address):
        self._fail("params: zero treasury")
    self._treasuries[0] = treasury_
    self._packed = (
        (DEFAULT_FEE_BPS << _FEE)
        | (DEFAULT_COLLATERAL_BPS << _COLLATERAL)
        | (DEFAULT_SLASH_CLIENT_BPS << _SLASH_CLIENT)
        | (DEFAULT_SLASH_HONEST_BPS << _SLASH_HONEST)
        | (DEFAULT_CHALLENGE_WINDOW << _CHALLENGE_WINDOW)
        | (DEFAULT_UNBOND_DELAY << _UNBOND_DELAY)
        | (DEFAULT_MIN_WINDOW << _MIN_WINDOWS)
        | (DEFAULT_MIN_WINDOW << (_MIN_WINDOWS + 18))
        | (DEFAULT_MIN_WINDOW << (_MIN_WINDOWS + 36))
    )
    self.min_draw_stake = DEFAULT_MIN_DRAW_STAKE


@external
@view
def fee_bps() -> uint256:
    """
    @notice Protocol fee charged on every paid seat, in bps of its reward.
    """
    return self._fee(self._packed)


@external
@view
def collateral_bps() -> uint256:
    """
    @notice Stake locked per seat at claim, in bps of the seat's reward.
    """
    return self._collateral(self._packed)


@external
@view
def slash_split() -> (uint256, uint256, uint256):
    """
    @notice How slashed stake is split, in bps: (client, honest side, treasury).
    """
    packed: uint256 = self._packed
    client_bps: uint256 = self._slash_client(packed)
    honest_bps: uint256 = self._slash_honest(packed)
    return client_bps, honest_bps, BPS - client_bps - honest_bps


@external
@view
def challenge_window() -> uint256:
    """
    @notice Seconds after a single-provider delivery during which anyone may challenge.
    """
    return self._challenge_window(self._packed)


@external
@view
def unbond_delay() -> uint256:
    """
    @notice Seconds between an unbond request and the stake withdrawal.
    """
    return self._unbond_delay(self._packed)


@external
@view
def min_windows() -> (uint256, uint256, uint256):
    """
    @notice The shortest claim, commit and reveal windows a post may ask for, in
            seconds; also the windows of every re-execution round (snapshotted
            when the challenge opens it).
    """
    mins: uint256 = self._min_windows(self._packed)
    return mins & _MASK18, (mins >> 18) & _MASK18, mins >> 36


@external
@view
def treasury() -> address:
    """
    @notice The account credited with the fees and treasury slash shares of jobs
            posted from now on (jobs keep the treasury of their post).
    """
    return self._treasuries[self._treasury_epoch(self._packed)]


@external
@view
def paused() -> bool:
    """
    @notice True while new posts, claims and deliveries are stopped.
    """
    return self._paused(self._packed)


@external
def set_fee_bps(new_value: uint256):
    """
    @notice Set the protocol fee (applies to jobs posted afterwards).
    @param new_value Fee in bps of the reward, at most MAX_FEE_BPS.
    """
    ownable._check_owner()
    if new_value > MAX_FEE_BPS:
        self._fail("params: fee too high")
    self._set("fee_bps", _FEE, 16, new_value)


@external
def set_collateral_bps(new_value: uint256):
    """
    @notice Set the collateral per seat (applies to jobs posted afterwards).
    @param new_value Collateral in bps of the reward, within [MIN_COLLATERAL_BPS, MAX_COLLATERAL_BPS].
    """
    ownable._check_owner()
    if new_value < MIN_COLLATERAL_BPS or new_value > MAX_COLLATERAL_BPS:
        self._fail("params: collateral out of bounds")
    self._set("collateral_bps", _COLLATERAL, 24, new_value)


@external
def set_slash_split(client_bps: uint256, honest_bps: uint256):
    """
    @notice Set how slashed stake is split; the treasury gets the rest.
    @param client_bps Share compensating the job's client.
    @param honest_bps Share rewarding the honest side (majority providers or challenger).
    """
    ownable._check_owner()
    if client_bps + honest_bps > BPS:
        self._fail("params: split exceeds 100%")
    self._set("slash_client_bps", _SLASH_CLIENT, 16, client_bps)
    self._set("slash_honest_bps", _SLASH_HONEST, 16, honest_bps)


@external
def set_challenge_window(new_value: uint256):
    """
    @notice Set the challenge window (applies to deliveries made afterwards).
    @param new_value Seconds, within [MIN_CHALLENGE_WINDOW, MAX_CHALLENGE_WINDOW].
    """
    ownable._check_owner()
    if new_value < MIN_CHALLENGE_WINDOW or new_value > MAX_CHALLENGE_WINDOW:
        self._fail("params: window out of bounds")
    self._set("challenge_window", _CHALLENGE_WINDOW, 32, new_value)


@external
def set_unbond_delay(new_value: uint256):
    """
    @notice Set the unbonding delay (applies to requests made afterwards).
    @param new_value Seconds, within [MIN_UNBOND_DELAY, MAX_UNBOND_DELAY].
    """
    ownable._check_owner()
    if new_value < MIN_UNBOND_DELAY or new_value > MAX_UNBOND_DELAY:
        self._fail("params: delay out of bounds")
    self._set("unbond_delay", _UNBOND_DELAY, 32, new_value)


@external
def set_min_windows(claim_window: uint256, commit_window: uint256, reveal_window: uint256):
    """
    @notice Set the minimum windows of posts (applies to posts and challenges
            made afterwards): per network, what its block time lets a provider
            honour, with room for a fee bump or two.
    @param claim_window Seconds, within [MIN_MIN_WINDOW, MAX_MIN_WINDOW]; likewise the others.
    """
    ownable._check_owner()
    if (
        min(claim_window, min(commit_window, reveal_window)) < MIN_MIN_WINDOW
        or max(claim_window, max(commit_window, reveal_window)) > MAX_MIN_WINDOW
    ):
        self._fail("params: window out of bounds")
    self._set("min_claim_window", _MIN_WINDOWS, 18, claim_window)
    self._set("min_commit_window", _MIN_WINDOWS + 18, 18, commit_window)
    self._set("min_reveal_window", _MIN_WINDOWS + 36, 18, reveal_window)


@external
def set_min_draw_stake(new_value: uint256):
    """
    @notice Set the least bonded stake that makes a provider drawable. Applies to
            each provider from its next stake change (stake, unbond, slash,
            update_provider), never to a draw already made.
    @param new_value Stake-token units, at most MAX_MIN_DRAW_STAKE.
    """
    ownable._check_owner()
    if new_value > MAX_MIN_DRAW_STAKE:
        self._fail("params: stake out of bounds")
    log ParameterChanged(name="min_draw_stake", old_value=self.min_draw_stake, new_value=new_value)
    self.min_draw_stake = new_value


@external
def set_treasury(new_treasury: address):
    """
    @notice Set the account credited with protocol fees and the treasury share of
            slashes of jobs posted afterwards (pending jobs keep theirs).
    @param new_treasury Non-zero address.
    """
    ownable._check_owner()
    if new_treasury == empty(address):
        self._fail("params: zero treasury")
    packed: uint256 = self._packed
    epoch: uint256 = self._treasury_epoch(packed)
    if epoch >= MAX_TREASURY_EPOCH:
        self._fail("params: too many treasuries")
    log TreasuryChanged(old_treasury=self._treasuries[epoch], new_treasury=new_treasury)
    self._treasuries[epoch + 1] = new_treasury
    self._packed = packed + (1 << _TREASURY_EPOCH)


@external
def set_paused(paused_: bool):
    """
    @notice Stop or resume new posts, claims and deliveries. Reveals, settlement,
            challenges, refunds and withdrawals are never paused.
    @param paused_ True to pause.
    """
    ownable._check_owner()
    self._set("paused", _PAUSED, 8, convert(paused_, uint256))


@internal
@pure
def _field(packed: uint256, offset: uint256, width: uint256) -> uint256:
    return (packed >> offset) & ((1 << width) - 1)


@internal
def _set(name: String[32], offset: uint256, width: uint256, new_value: uint256):
    packed: uint256 = self._packed
    mask: uint256 = ((1 << width) - 1) << offset
    log ParameterChanged(name=name, old_value=self._field(packed, offset, width), new_value=new_value)
    self._packed = (packed & ~mask) | (new_value << offset)


@internal
@view
def _load() -> uint256:
    return self._packed


@internal
@pure
def _fee(packed: uint256) -> uint256:
    return self._field(packed, _FEE, 16)


@internal
@pure
def _collateral(packed: uint256) -> uint256:
    return self._field(packed, _COLLATERAL, 24)


@internal
@pure
def _slash_client(packed: uint256) -> uint256:
    return self._field(packed, _SLASH_CLIENT, 16)


@internal
@pure
def _slash_honest(packed: uint256) -> uint256:
    return self._field(packed, _SLASH_HONEST, 16)


@internal
@pure
def _challenge_window(packed: uint256) -> uint256:
    return self._field(packed, _CHALLENGE_WINDOW, 32)


@internal
@pure
def _unbond_delay(packed: uint256) -> uint256:
    return self._field(packed, _UNBOND_DELAY, 32)


@internal
@pure
def _paused(packed: uint256) -> bool:
    return self._field(packed, _PAUSED, 8) != 0


@internal
@pure
def _min_windows(packed: uint256) -> uint256:
    """
    @dev The three minimum windows as one block: claim | commit << 18 | reveal << 36.
    """
    return self._field(packed, _MIN_WINDOWS, 54)


@internal
@pure
def _treasury_epoch(packed: uint256) -> uint256:
    return self._field(packed, _TREASURY_EPOCH, 24)


@internal
@view
def _treasury_at(epoch: uint256) -> address:
    return self._treasuries[epoch]


@internal
@pure
def _fail(reason: String[64]):
    """
    @dev Revert with `reason` (never empty). The one revert site the modules share:
         each inline `assert cond, "reason"` compiles to ~110 bytes of code, a call
         to this to ~50, and the marketplace sits near the 24 KiB code limit.
         Call sites branch first (`if not cond: params._fail(...)`), so the string
         is only built on the failing path and passing checks cost what an assert does.
    """
    assert len(reason) == 0, reason
