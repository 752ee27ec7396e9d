# pragma version ~=0.4.3
"""
@title Settlement: finalize, cancel, challenge, slashing
@custom:contract-name settlement
@license MIT
@notice Every deadline has a permissionless `finalize` behind it that settles
        whatever is due and never reverts for a due job:
        - no seat claimed by the claim deadline: full refund (CANCELLED);
        - r == 1 claimed but not delivered by the claim deadline: the seat is
          slashed (no commit) and the client refunded (UNRESOLVED);
        - r >= 2, after all reveals, or the commit deadline with every committed
          seat revealed, or the reveal deadline: the digest revealed by a
          strict majority of the r seats wins. Winners are paid; seats that did
          not commit, did not reveal or revealed a losing digest are slashed.
          No majority: the client is refunded every unpaid seat and only
          non-revealers are slashed (UNRESOLVED);
        - r == 1: nothing to do; an unchallenged delivery settles lazily
          (payouts.vy) and reads FINALIZED after its challenge window;
        - a challenged job after its re-execution round (see `challenge`).
        Money per seat: escrow = reward + fee. A paid seat sends the reward to
        its provider and the fee to the treasury; an unpaid seat refunds both to
        the client. A slash takes exactly the seat's locked collateral, once,
        and splits it: client share, honest-side share, treasury the rest.
"""

from ethereum.ercs import IERC20
from . import accounting
from . import jobs
from . import models
from . import params
from . import payouts
from . import sortition
from . import staking

uses: accounting
initializes: jobs[accounting := accounting, models := models, params := params, sortition := sortition, staking := staking]
uses: params
uses: payouts
uses: staking


BPS: constant(uint256) = 10_000

# ProviderSlashed.reason
FAULT_NO_COMMIT: constant(uint256) = 1
FAULT_NO_REVEAL: constant(uint256) = 2
FAULT_LOSING_DIGEST: constant(uint256) = 3
FAULT_LOST_CHALLENGE: constant(uint256) = 4


event JobFinalized:
    job_id: indexed(uint256)
    status: uint256
    result_digest: bytes32
    provider_pay: uint256
    client_refund: uint256
    slashed: uint256

event JobChallenged:
    job_id: indexed(uint256)
    challenger: indexed(address)
    bond: uint256
    claim_deadline: uint256
    commit_deadline: uint256
    reveal_deadline: uint256

event ProviderSlashed:
    job_id: indexed(uint256)
    provider: indexed(address)
    seat: uint256
    amount: uint256
    reason: uint256

# A share of a job's slashed stake credited to `account` (client, honest side or
# treasury): one event per recipient.
event SlashShareCredited:
    job_id: indexed(uint256)
    account: indexed(address)
    amount: uint256

# What is left of a challenge bond after the round's pay, credited to the challenger.
event BondReturned:
    job_id: indexed(uint256)
    challenger: indexed(address)
    amount: uint256


# Running totals of one settlement, so that every seat credits through one path.
struct Tally:
    paid: uint256
    fees: uint256
    slashed: uint256
    winners: DynArray[address, jobs.MAX_REDUNDANCY]


@deploy
def __init__(pay_token: IERC20, stake_token: IERC20, treasury: address):
    jobs.__init__(pay_token, stake_token, treasury)


@external
@nonreentrant
def finalize(job_id: uint256):
    """
    @notice Settle a job that is due (see the module notice); callable by anyone.
    @param job_id The job.
    """
    self._try_finalize(job_id, True)


@external
@nonreentrant
def finalize_many(job_ids: DynArray[uint256, jobs.MAX_ID_BATCH]) -> uint256:
    """
    @notice Settle many jobs; items not yet due or already settled are skipped
            with ItemSkipped (keepers race for them).
    @param job_ids The jobs.
    @return How many jobs were settled.
    """
    count: uint256 = 0
    for job_id: uint256 in job_ids:
        if self._try_finalize(job_id, False):
            count += 1
    return count


@external
@nonreentrant
def cancel(job_id: uint256):
    """
    @notice The client withdraws a job nobody has claimed yet; full refund to
            the client's balance.
    @param job_id The job.
    """
    t: jobs.Terms = jobs._terms(job_id)
    if not jobs._exists(t, job_id):
        params._fail("jobs: unknown job")
    if t.client != msg.sender:
        params._fail("jobs: not client")
    j: jobs.Job = jobs._load(job_id)
    if j.status != jobs.STATUS_OPEN or j.claimed != 0:
        params._fail("jobs: already claimed")
    self._cancel(job_id, t, j)


@external
@nonreentrant
def challenge(job_id: uint256):
    """
    @notice Dispute a single-provider result during its challenge window. Bond:
            (R_CHALLENGE + 1) * reward, taken from your balance first, then by
            transferFrom. The job re-opens as a round of R_CHALLENGE seats
            drawn by stake (jobs.vy: the first claim in a later block draws
            them; the original provider weighs like anyone, so splitting stake
            buys nothing), timed by the protocol's minimum windows
            (`min_windows()`) from now.
            If a strict majority of the round reveals a digest other than the
            delivered one, the provider is slashed and you get the whole bond
            back plus the honest share of the slash; otherwise the delivered
            result stands, the provider is paid plus one reward from your bond
            for the delay. Round seats revealing the standing digest are paid
            one reward each from the bond; the rest of the bond returns to you.
    @param job_id A delivered r == 1 job inside its window.
    """
    t: jobs.Terms = jobs._terms(job_id)
    if not jobs._exists(t, job_id):
        params._fail("jobs: unknown job")
    j: jobs.Job = jobs._load(job_id)
    if j.status != jobs.STATUS_DELIVERED:
        params._fail("jobs: not challengeable")
    if block.timestamp > j.until:
        params._fail("jobs: challenge window closed")
    j.status = jobs.STATUS_CHALLENGED
    # Seat 0 keeps the original provider's bits; the round's seats are not drawn yet.
    j.claimed = 1
    j.until = 0
    j.ncommitted = 0
    j.nrevealed = 0
    jobs._store(job_id, j)
    # The job's escrow and collateral come back out of the provider's payout bucket.
    payouts._remove(j.provider, j.gen, t.reward, jobs._fee(t), jobs._collateral(t))
    # The round runs on the protocol's minimum windows, snapshotted now.
    jobs._challenges[job_id] = (
        convert(msg.sender, uint256) | (block.timestamp << 160) | (params._min_windows(params._load()) << 200)
    )
    jobs._challenge_block[job_id] = block.number & jobs._MASK24
    bond: uint256 = self._bond(t)
    claim_dl: uint256 = 0
    commit_dl: uint256 = 0
    reveal_dl: uint256 = 0
    claim_dl, commit_dl, reveal_dl = jobs._deadlines(job_id, t, j)
    log JobChallenged(
        job_id=job_id,
        challenger=msg.sender,
        bond=bond,
        claim_deadline=claim_dl,
        commit_deadline=commit_dl,
        reveal_deadline=reveal_dl,
    )
    accounting._collect(msg.sender, bond)


@external
@view
def challenge_bond(job_id: uint256) -> uint256:
    """
    @notice Bond needed to challenge `job_id`.
    @param job_id The job.
    """
    return self._bond(jobs._terms(job_id))


@external
@view
def escrow_of(job_id: uint256) -> uint256:
    """
    @notice Payment tokens the contract holds for an unsettled job (seat escrow
            plus a pending challenge bond); zero once settled, and zero for a
            delivered r == 1 job, whose escrow waits in the provider's payout
            bucket (`pending_payouts`).
    @param job_id The job.
    """
    t: jobs.Terms = jobs._terms(job_id)
    if not jobs._exists(t, job_id):
        return 0
    status: uint256 = jobs._load(job_id).status
    if status == jobs.STATUS_OPEN:
        return t.r * (t.reward + jobs._fee(t))
    if status == jobs.STATUS_CHALLENGED:
        return t.r * (t.reward + jobs._fee(t)) + self._bond(t)
    return 0


@internal
@pure
def _bond(t: jobs.Terms) -> uint256:
    return (jobs.R_CHALLENGE + 1) * t.reward


@internal
def _try_finalize(job_id: uint256, strict: bool) -> bool:
    t: jobs.Terms = jobs._terms(job_id)
    if not jobs._exists(t, job_id):
        return jobs._skip(job_id, "jobs: unknown job", strict)
    j: jobs.Job = jobs._load(job_id)
    status: uint256 = jobs._status(j)
    if status >= jobs.STATUS_FINALIZED:
        return jobs._skip(job_id, "jobs: already settled", strict)
    if status == jobs.STATUS_DELIVERED:
        return jobs._skip(job_id, "jobs: challenge window open", strict)
    base: uint256 = 0
    size: uint256 = 0
    base, size = jobs._round(t, j)
    claim_dl: uint256 = 0
    commit_dl: uint256 = 0
    reveal_dl: uint256 = 0
    claim_dl, commit_dl, reveal_dl = jobs._deadlines(job_id, t, j)
    if j.status == jobs.STATUS_OPEN and j.claimed == 0 and block.timestamp > claim_dl:
        self._cancel(job_id, t, j)
        return True
    due: bool = (
        j.nrevealed == size
        or block.timestamp > reveal_dl
        or (block.timestamp > commit_dl and j.nrevealed == j.ncommitted)
        # An open r == 1 job: the claim deadline is the delivery deadline (not its
        # re-execution round's, which runs its commit and reveal windows).
        or (t.r == 1 and j.status == jobs.STATUS_OPEN and block.timestamp > claim_dl)
    )
    if not due:
        return jobs._skip(job_id, "jobs: not finalizable yet", strict)
    if j.status == jobs.STATUS_OPEN:
        self._settle_round(job_id, t, j)
    else:
        self._settle_challenge(job_id, t, j)
    return True


@internal
def _cancel(job_id: uint256, t: jobs.Terms, j: jobs.Job):
    refund: uint256 = t.r * (t.reward + jobs._fee(t))
    j.status = jobs.STATUS_CANCELLED
    jobs._store(job_id, j)
    accounting.balances[t.client] += refund
    log JobFinalized(job_id=job_id, status=jobs.STATUS_CANCELLED, result_digest=empty(bytes32), provider_pay=0, client_refund=refund, slashed=0)


@internal
def _settle_round(job_id: uint256, t: jobs.Terms, j: jobs.Job):
    """
    @dev r >= 2: strict majority of the r seats decides.
    """
    found: bool = False
    majority: bytes32 = empty(bytes32)
    found, majority = self._majority(job_id, j, 0, t.r)
    tally: Tally = empty(Tally)
    for s: uint256 in range(t.r, bound=jobs.MAX_REDUNDANCY):
        if (j.claimed >> s) & 1 != 0:
            tally = self._judge(job_id, t, j, s, found, majority, tally)
    refund: uint256 = (t.r - len(tally.winners)) * (t.reward + jobs._fee(t))
    status: uint256 = jobs.STATUS_UNRESOLVED
    if found:
        status = jobs.STATUS_FINALIZED
        jobs._words[(job_id << 4) | jobs.RESULT_WORD] = majority
    j.status = status
    jobs._store(job_id, j)
    accounting.balances[t.client] += refund
    self._split_slash(job_id, tally.slashed, t, tally.winners)
    self._credit_fees(t, tally.fees)
    log JobFinalized(
        job_id=job_id, status=status, result_digest=majority, provider_pay=tally.paid, client_refund=refund, slashed=tally.slashed
    )


@internal
def _settle_challenge(job_id: uint256, t: jobs.Terms, j: jobs.Job):
    """
    @dev Re-execution round over: the round's strict majority, if it differs from
         the delivered digest, convicts the provider; otherwise the delivery stands.
         Round winners are paid from the bond in both cases.
    """
    delivered: bytes32 = jobs._words[job_id << 4]
    found: bool = False
    majority: bytes32 = empty(bytes32)
    found, majority = self._majority(job_id, j, 1, jobs.R_CHALLENGE)
    convicted: bool = found and majority != delivered
    standing: bytes32 = delivered
    if convicted:
        standing = majority
    tally: Tally = empty(Tally)
    for k: uint256 in range(jobs.R_CHALLENGE):
        if (j.claimed >> (1 + k)) & 1 != 0:
            tally = self._judge(job_id, t, j, 1 + k, found, standing, tally)
    # The round's pay came out of the bond, not the job's escrow.
    tally.fees = 0
    challenger: address = jobs._challenger(job_id)
    bond_left: uint256 = self._bond(t) - tally.paid
    refund: uint256 = 0
    collateral: uint256 = jobs._collateral(t)
    honest: DynArray[address, jobs.MAX_REDUNDANCY] = [challenger]
    if convicted:
        staking._slash(j.provider, collateral)
        tally.slashed += collateral
        log ProviderSlashed(job_id=job_id, provider=j.provider, seat=0, amount=collateral, reason=FAULT_LOST_CHALLENGE)
        refund = t.reward + jobs._fee(t)
        jobs._words[(job_id << 4) | jobs.RESULT_WORD] = majority
    else:
        honest = [j.provider]
        staking._unlock(j.provider, collateral)
        accounting.balances[j.provider] += 2 * t.reward
        tally.paid += 2 * t.reward
        bond_left -= t.reward
        tally.fees = jobs._fee(t)
    j.status = jobs.STATUS_FINALIZED
    jobs._store(job_id, j)
    accounting.balances[challenger] += bond_left
    log BondReturned(job_id=job_id, challenger=challenger, amount=bond_left)
    accounting.balances[t.client] += refund
    self._split_slash(job_id, tally.slashed, t, honest)
    self._credit_fees(t, tally.fees)
    log JobFinalized(
        job_id=job_id, status=jobs.STATUS_FINALIZED, result_digest=standing, provider_pay=tally.paid, client_refund=refund, slashed=tally.slashed
    )


@internal
def _judge(
    job_id: uint256, t: jobs.Terms, j: jobs.Job, s: uint256, found: bool, standing: bytes32, tally: Tally
) -> Tally:
    """
    @dev Settle seat `s`: pay it (revealed the standing digest: the majority, or
         in a re-execution round without majority the delivered one), release it
         (revealed, no majority to lose against) or slash it (did not commit,
         did not reveal, or revealed against the majority).
    """
    provider: address = jobs._seat_provider(job_id, j, s)
    collateral: uint256 = jobs._collateral(t)
    fault: uint256 = 0
    if (j.revealed >> s) & 1 != 0:
        digest: bytes32 = jobs._words[(job_id << 4) | s]
        if digest == standing:
            staking._unlock(provider, collateral)
            accounting.balances[provider] += t.reward
            tally.paid += t.reward
            tally.fees += jobs._fee(t)
            tally.winners.append(provider)
            return tally
        if not found:
            staking._unlock(provider, collateral)
            return tally
        fault = FAULT_LOSING_DIGEST
    elif (j.committed >> s) & 1 != 0:
        fault = FAULT_NO_REVEAL
    else:
        fault = FAULT_NO_COMMIT
    staking._slash(provider, collateral)
    tally.slashed += collateral
    log ProviderSlashed(job_id=job_id, provider=provider, seat=s, amount=collateral, reason=fault)
    return tally


@internal
@view
def _majority(job_id: uint256, j: jobs.Job, base: uint256, size: uint256) -> (bool, bytes32):
    """
    @dev The digest revealed by more than size / 2 seats of the round, if any.
    """
    for a: uint256 in range(size, bound=jobs.MAX_REDUNDANCY):
        if (j.revealed >> (base + a)) & 1 == 0:
            continue
        candidate: bytes32 = jobs._words[(job_id << 4) | (base + a)]
        votes: uint256 = 0
        for b: uint256 in range(size, bound=jobs.MAX_REDUNDANCY):
            if (j.revealed >> (base + b)) & 1 != 0 and jobs._words[(job_id << 4) | (base + b)] == candidate:
                votes += 1
        if 2 * votes > size:
            return True, candidate
    return False, empty(bytes32)


@internal
def _split_slash(job_id: uint256, amount: uint256, t: jobs.Terms, honest: DynArray[address, jobs.MAX_REDUNDANCY]):
    """
    @dev Credit slashed stake by the job's split (snapshotted at post): client
         share, honest share split evenly (to the client when there is no
         honest side), the job's treasury the rest incl. dust.
    """
    if amount == 0:
        return
    client: address = t.client
    to_client: uint256 = amount * (t.settle & 65535) // BPS
    to_honest: uint256 = amount * ((t.settle >> 16) & 65535) // BPS
    if len(honest) == 0:
        to_client += to_honest
        to_honest = 0
    else:
        each: uint256 = to_honest // len(honest)
        to_honest = each * len(honest)
        for account: address in honest:
            self._credit_share(job_id, account, each)
    self._credit_share(job_id, client, to_client)
    self._credit_share(job_id, params._treasury_at(jobs._treasury_epoch(t)), amount - to_client - to_honest)


@internal
def _credit_share(job_id: uint256, account: address, amount: uint256):
    if amount > 0:
        accounting.stake_credits[account] += amount
        log SlashShareCredited(job_id=job_id, account=account, amount=amount)


@internal
def _credit_fees(t: jobs.Terms, fees: uint256):
    if fees > 0:
        accounting.balances[params._treasury_at(jobs._treasury_epoch(t))] += fees
