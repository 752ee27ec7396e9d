# pragma version ~=0.4.3
"""
@title Jobs: posting, claiming, commit-reveal and single-provider delivery
@custom:contract-name jobs
@license MIT
@notice A client posts a batch of jobs sharing one set of terms (model,
        redundancy r, reward per seat, windows); each job has r seats.
        r >= 2 (and a challenge's re-execution round): seats are drawn, not
        raced. The first claim in a block after the post (or challenge) draws
        every seat by stake-weighted sortition (sortition.vy) from the parent
        block's hash; each drawn provider takes its seats (collateral locked),
        an address may be drawn for several. Seats not taken within half the
        minimum claim window are drawn again by the next claim. Then seat
        holders commit a seal, reveal after all seals are in or the commit
        deadline, and anyone finalizes (settlement module).
        r == 1: first come, in two steps so that a pending delivery cannot be
        copied: a claim binds the seat to its provider, and only that provider
        may deliver, from a later block. Its pay waits out the challenge window.
        Storage per job is what verification needs: the input hash (inputs and
        results travel in calldata and events), one packed state word, and a
        provider address and a seal/digest word per extra seat. Terms are
        stored once per batch: job_id = batch_id << 8 | index. They include
        every parameter settlement depends on (fee, collateral, slash split,
        treasury epoch), so owner changes apply to later posts only.
"""

from ethereum.ercs import IERC20
from . import accounting
from . import models
from . import params
from . import payouts
from . import sortition
from . import staking

uses: accounting
uses: models
uses: params
uses: sortition
uses: staking
initializes: payouts[accounting := accounting, params := params]


MAX_REDUNDANCY: constant(uint256) = 7
# Fresh providers re-executing a challenged single-provider job.
R_CHALLENGE: constant(uint256) = 3
# Word index of the settled result digest: above every seat (seats < MAX_REDUNDANCY).
RESULT_WORD: constant(uint256) = 15
# Items per batch call. Calls whose items carry bytes reserve memory for the bound, which
# every call pays for, so theirs are small; id-only batches are cheap to bound high
# (fewer transactions per job for agents).
MAX_BATCH: constant(uint256) = 32  # post_jobs
MAX_RESULT_BATCH: constant(uint256) = 64  # deliver_many, reveal_many
MAX_ID_BATCH: constant(uint256) = 256  # claim_many, commit_many, finalize_many
MAX_INPUT: constant(uint256) = 2048
MAX_RESULT: constant(uint256) = 1024
MAX_WINDOW: constant(uint256) = 30 * 86_400
MAX_REWARD: constant(uint256) = 2**96 - 1
BPS: constant(uint256) = 10_000

STATUS_OPEN: constant(uint256) = 0
STATUS_DELIVERED: constant(uint256) = 1
STATUS_CHALLENGED: constant(uint256) = 2
STATUS_FINALIZED: constant(uint256) = 3
STATUS_UNRESOLVED: constant(uint256) = 4
STATUS_CANCELLED: constant(uint256) = 5

_MASK8: constant(uint256) = 2**8 - 1
_MASK16: constant(uint256) = 2**16 - 1
_MASK24: constant(uint256) = 2**24 - 1
_MASK40: constant(uint256) = 2**40 - 1
_MASK18: constant(uint256) = 2**18 - 1
_MASK160: constant(uint256) = 2**160 - 1
_MASK_SEATS: constant(uint256) = 2**8 - 1


# Terms shared by every job of a batch (memory form of the two packed words).
struct Terms:
    client: address
    reward: uint256
    model_index: uint256
    r: uint256
    size: uint256
    posted_at: uint256
    claim_window: uint256
    commit_window: uint256
    reveal_window: uint256
    # Low 24 bits of the post's block number.
    post_block: uint256
    fee_bps: uint256
    collateral_bps: uint256
    # How a slash of this job is split and the treasury epoch (params.vy) its fees
    # and treasury shares go to, snapshotted at post like fee and collateral:
    # slash_client_bps | slash_honest_bps << 16 | treasury epoch << 32. One field,
    # unpacked by settlement only: every internal call copies the struct.
    settle: uint256


# Mutable state of one job (memory form of its packed word). Counters and
# bitmaps cover the current round: the r seats, or seats 1..R_CHALLENGE of a
# re-execution (seat 0 keeps the original provider's bits).
struct Job:
    # r == 1: the seat's provider; r >= 2: seat 0's drawn provider.
    provider: address
    status: uint256
    # Bit s: seat s is taken (seat 0 of a challenged job: the original provider).
    claimed: uint256
    ncommitted: uint256
    nrevealed: uint256
    committed: uint256
    revealed: uint256
    # r == 1: the claim's block number, then the end of the challenge window once
    # delivered; r >= 2 and re-execution rounds: when the seats were last drawn (0: not yet).
    until: uint256
    # r == 1: low 8 bits of the provider's payout bucket generation (payouts.vy).
    gen: uint256


struct JobView:
    client: address
    model_id: bytes32
    r: uint256
    reward: uint256
    fee_per_seat: uint256
    collateral_per_seat: uint256
    status: uint256
    posted_at: uint256
    claim_deadline: uint256
    commit_deadline: uint256
    reveal_deadline: uint256
    challenge_end: uint256
    challenger: address
    nclaimed: uint256
    ncommitted: uint256
    nrevealed: uint256
    input_hash: bytes32
    result_digest: bytes32


struct SeatView:
    # The drawn provider (r == 1: the claimant); `claimed` once it took the seat.
    provider: address
    claimed: bool
    committed: bool
    revealed: bool
    # The seal while committed, the result digest once revealed.
    word: bytes32


next_batch_id: public(uint256)
# client | reward << 160
_terms_a: HashMap[uint256, uint256]
# model | r << 8 | size << 16 | posted_at << 24 | windows << 64/88/112 (24 bits each: at most MAX_WINDOW)
# | post block mod 2**24 << 136 | fee_bps << 160 | collateral_bps << 176
# | slash_client_bps << 200 | slash_honest_bps << 216 | treasury epoch << 232 (24 bits)
_terms_b: HashMap[uint256, uint256]
_input_hash: HashMap[uint256, bytes32]
# seat-0 provider | status << 160 | claimed bits << 168 | ncommitted << 176 | nrevealed << 184
# | committed bits << 192 | revealed bits << 200 | until << 208 (40 bits) | bucket gen << 248
_jobs: HashMap[uint256, uint256]
# job_id << 4 | seat -> drawn provider of seats >= 1
_seats: HashMap[uint256, address]
# job_id << 4 | seat -> seal, replaced by the result digest at reveal;
# job_id << 4 | RESULT_WORD -> the digest settlement decided (a seat's own word never changes)
_words: HashMap[uint256, bytes32]
# challenger | round start << 160 (40 bits) | the round's claim, commit, reveal
# windows << 200, 218, 236 (18 bits each: the protocol minimums when challenged)
_challenges: HashMap[uint256, uint256]
# Low 24 bits of the challenge's block number (the round is drawn from a later block).
_challenge_block: HashMap[uint256, uint256]


event JobPosted:
    job_id: indexed(uint256)
    client: indexed(address)
    model_id: indexed(bytes32)
    r: uint256
    reward: uint256
    claim_deadline: uint256
    commit_deadline: uint256
    reveal_deadline: uint256
    input: Bytes[MAX_INPUT]

event JobClaimed:
    job_id: indexed(uint256)
    provider: indexed(address)
    seat: uint256

# A seat's draw (empty provider: nobody has weight for the model).
event SeatDrawn:
    job_id: indexed(uint256)
    provider: indexed(address)
    seat: uint256

event SealCommitted:
    job_id: indexed(uint256)
    provider: indexed(address)
    seat: uint256
    seal: bytes32

event ResultRevealed:
    job_id: indexed(uint256)
    provider: indexed(address)
    seat: uint256
    digest: bytes32
    result: Bytes[MAX_RESULT]

# A batch item that lost a race (or was otherwise invalid) and was skipped.
event ItemSkipped:
    job_id: indexed(uint256)
    caller: indexed(address)
    reason: String[64]


@deploy
def __init__(pay_token: IERC20, stake_token: IERC20, treasury: address):
    payouts.__init__(pay_token, stake_token, treasury)
    self.next_batch_id = 1


# ---------------------------------------------------------------- posting


@external
@nonreentrant
def post_job(
    model_id: bytes32,
    input: Bytes[MAX_INPUT],
    r: uint256,
    reward: uint256,
    claim_window: uint256,
    commit_window: uint256,
    reveal_window: uint256,
) -> uint256:
    """
    @notice Post one job and escrow its full price: r * (reward + fee). The price
            is taken from your internal balance first, the rest by transferFrom.
    @param model_id An active registered model.
    @param input The job input (UTF-8 text for embedding models), 1..MAX_INPUT bytes.
    @param r Redundancy: seats (independent providers), 1..MAX_REDUNDANCY.
    @param reward Pay per seat in payment-token units, 1..MAX_REWARD.
    @param claim_window Seconds from now until the claim deadline (r == 1: the
           delivery deadline). Each window is at least its `min_windows()`
           minimum and at most MAX_WINDOW.
    @param commit_window Seconds from the claim deadline to the commit deadline.
    @param reveal_window Seconds from the commit deadline to the reveal deadline.
    @return The job id.
    """
    job_id: uint256 = 0
    price: uint256 = 0
    job_id, price = self._open_batch(model_id, 1, r, reward, claim_window, commit_window, reveal_window)
    self._post_one(job_id, model_id, input, r, reward, claim_window, commit_window, reveal_window)
    accounting._collect(msg.sender, price)
    return job_id


@external
@nonreentrant
def post_jobs(
    model_id: bytes32,
    inputs: DynArray[Bytes[MAX_INPUT], MAX_BATCH],
    r: uint256,
    reward: uint256,
    claim_window: uint256,
    commit_window: uint256,
    reveal_window: uint256,
) -> uint256:
    """
    @notice Post a batch of jobs with the same terms (all or nothing); ids are
            consecutive: first_job_id + i for inputs[i].
    @param model_id An active registered model.
    @param inputs 1..MAX_BATCH inputs, each 1..MAX_INPUT bytes.
    @param r Redundancy, 1..MAX_REDUNDANCY.
    @param reward Pay per seat, 1..MAX_REWARD.
    @param claim_window Seconds from now until the claim deadline.
    @param commit_window Seconds from the claim deadline to the commit deadline.
    @param reveal_window Seconds from the commit deadline to the reveal deadline.
    @return The first job id.
    """
    n: uint256 = len(inputs)
    first: uint256 = 0
    price: uint256 = 0
    first, price = self._open_batch(model_id, n, r, reward, claim_window, commit_window, reveal_window)
    for i: uint256 in range(n, bound=MAX_BATCH):
        self._post_one(first + i, model_id, inputs[i], r, reward, claim_window, commit_window, reveal_window)
    accounting._collect(msg.sender, price)
    return first


# ---------------------------------------------------------------- claims


@external
@nonreentrant
def claim(job_id: uint256):
    """
    @notice Take your seats of a job and lock their collateral from your free
            stake. r >= 2 or a re-execution round: the seats drawn to you
            (the first claim in a block after the post or challenge draws them;
            the draw is kept even when the caller was not drawn, so use
            claim_many to draw for others). r == 1: the seat, if nobody holds it;
            deliver from a later block.
    @param job_id The job.
    """
    self._try_claim(job_id, True)


@external
@nonreentrant
def claim_many(job_ids: DynArray[uint256, MAX_ID_BATCH]) -> uint256:
    """
    @notice Claim many jobs. An item that fails (not drawn, deadline passed,
            stake short, ...) is skipped with an ItemSkipped event instead of
            reverting the batch; a draw it made stands.
    @param job_ids The jobs.
    @return How many jobs you took seats of.
    """
    count: uint256 = 0
    for job_id: uint256 in job_ids:
        if self._try_claim(job_id, False):
            count += 1
    return count


@external
@nonreentrant
def deliver(job_id: uint256, result: Bytes[MAX_RESULT]):
    """
    @notice Deliver the result of an r == 1 job you claimed in an earlier block.
            The escrow and the locked collateral wait in your payout bucket
            until the challenge window is over; no settlement transaction is
            needed (payouts.vy, `withdraw`). A claimed job not delivered by its
            claim deadline is slashed at finalize.
    @param job_id An open r == 1 job whose seat you hold.
    @param result The result bytes (emitted in ResultRevealed; only the digest is stored).
    """
    self._try_deliver(job_id, result, True)


@external
@nonreentrant
def deliver_many(job_ids: DynArray[uint256, MAX_RESULT_BATCH], results: DynArray[Bytes[MAX_RESULT], MAX_RESULT_BATCH]) -> uint256:
    """
    @notice Deliver many r == 1 jobs; failing items are skipped with ItemSkipped.
    @param job_ids The jobs.
    @param results results[i] for job_ids[i].
    @return How many jobs were delivered.
    """
    if len(job_ids) != len(results):
        params._fail("jobs: length mismatch")
    count: uint256 = 0
    for i: uint256 in range(len(job_ids), bound=MAX_RESULT_BATCH):
        if self._try_deliver(job_ids[i], results[i], False):
            count += 1
    return count


# ---------------------------------------------------------------- commit / reveal


@external
def commit(job_id: uint256, seal: bytes32):
    """
    @notice Commit to your result: seal = keccak256(abi_encode(job_id, provider,
            keccak256(result), salt)). Binding the provider makes a copied seal useless.
    @param job_id A job where you hold a seat of the current round (every
           seat you hold in it takes the seal).
    @param seal The seal (non-zero).
    """
    self._commit(job_id, seal)


@external
def commit_many(job_ids: DynArray[uint256, MAX_ID_BATCH], seals: DynArray[bytes32, MAX_ID_BATCH]):
    """
    @notice Commit many seals; all or nothing (these are your own seats, so a
            failure is a bug worth reverting for).
    @param job_ids The jobs.
    @param seals seals[i] for job_ids[i].
    """
    if len(job_ids) != len(seals):
        params._fail("jobs: length mismatch")
    for i: uint256 in range(len(job_ids), bound=MAX_ID_BATCH):
        self._commit(job_ids[i], seals[i])


@external
def reveal(job_id: uint256, result: Bytes[MAX_RESULT], salt: bytes32):
    """
    @notice Reveal your result (for every seat you hold in the round) once every
            seat has committed or the commit deadline has passed; the contract
            recomputes digest and seal.
    @param job_id The job.
    @param result The result bytes (emitted in ResultRevealed).
    @param salt The salt used in the seal.
    """
    self._reveal(job_id, result, salt)


@external
def reveal_many(
    job_ids: DynArray[uint256, MAX_RESULT_BATCH], results: DynArray[Bytes[MAX_RESULT], MAX_RESULT_BATCH], salts: DynArray[bytes32, MAX_RESULT_BATCH]
):
    """
    @notice Reveal many results; all or nothing.
    @param job_ids The jobs.
    @param results results[i] for job_ids[i].
    @param salts salts[i] for job_ids[i].
    """
    if len(job_ids) != len(results) or len(job_ids) != len(salts):
        params._fail("jobs: length mismatch")
    for i: uint256 in range(len(job_ids), bound=MAX_RESULT_BATCH):
        self._reveal(job_ids[i], results[i], salts[i])


# ---------------------------------------------------------------- views


@external
@view
def job(job_id: uint256) -> JobView:
    """
    @notice Everything about a job. Deadlines are those of the current round
            (a challenge opens a new round); counters count the current round.
            result_digest is set once a result stands (delivered or finalized).
            A delivered r == 1 job reads FINALIZED once its challenge window
            is over (it settles lazily, see payouts.vy).
    @param job_id The job.
    """
    t: Terms = self._terms(job_id)
    if not self._exists(t, job_id):
        params._fail("jobs: unknown job")
    j: Job = self._load(job_id)
    claim_dl: uint256 = 0
    commit_dl: uint256 = 0
    reveal_dl: uint256 = 0
    claim_dl, commit_dl, reveal_dl = self._deadlines(job_id, t, j)
    j.status = self._status(j)
    digest: bytes32 = empty(bytes32)
    if j.status == STATUS_DELIVERED or j.status == STATUS_CHALLENGED or j.status == STATUS_FINALIZED:
        # Settled by a majority: its own word; an r == 1 delivery that stands: seat 0's.
        digest = self._words[(job_id << 4) | RESULT_WORD]
        if digest == empty(bytes32):
            digest = self._words[job_id << 4]
    challenge_end: uint256 = 0
    if t.r == 1 and (j.status == STATUS_DELIVERED or j.status == STATUS_FINALIZED) and self._challenges[job_id] == 0:
        challenge_end = j.until
    return JobView(
        client=t.client,
        model_id=models._id_at(t.model_index),
        r=t.r,
        reward=t.reward,
        fee_per_seat=self._fee(t),
        collateral_per_seat=self._collateral(t),
        status=j.status,
        posted_at=t.posted_at,
        claim_deadline=claim_dl,
        commit_deadline=commit_dl,
        reveal_deadline=reveal_dl,
        challenge_end=challenge_end,
        challenger=self._challenger(job_id),
        nclaimed=self._count(j.claimed >> convert(j.status == STATUS_CHALLENGED, uint256)),
        ncommitted=j.ncommitted,
        nrevealed=j.nrevealed,
        input_hash=self._input_hash[job_id],
        result_digest=digest,
    )


@external
@view
def seat(job_id: uint256, index: uint256) -> SeatView:
    """
    @notice Seat `index` of a job: its drawn provider (empty if not drawn yet)
            and whether it took the seat.
    @param job_id The job.
    @param index 0..r-1, or 1..R_CHALLENGE for a re-execution round.
    """
    if index >= MAX_REDUNDANCY:
        params._fail("jobs: bad seat")
    j: Job = self._load(job_id)
    return SeatView(
        provider=self._seat_provider(job_id, j, index),
        claimed=(j.claimed >> index) & 1 != 0,
        committed=(j.committed >> index) & 1 != 0,
        revealed=(j.revealed >> index) & 1 != 0,
        word=self._words[(job_id << 4) | index],
    )


@external
@view
def assignment(job_id: uint256, account: address) -> (bool, uint256, bool, bool):
    """
    @notice Whether `account` holds (took) a seat of the job's current round.
    @param job_id The job.
    @param account A provider.
    @return (assigned, its first seat, committed, revealed)
    """
    t: Terms = self._terms(job_id)
    if not self._exists(t, job_id):
        return False, 0, False, False
    j: Job = self._load(job_id)
    mine: uint256 = self._seats_of(job_id, t, j, account, j.claimed)
    if mine == 0:
        return False, 0, False, False
    s: uint256 = 0
    for k: uint256 in range(MAX_REDUNDANCY):
        if (mine >> k) & 1 != 0:
            s = k
            break
    return True, s, (j.committed >> s) & 1 != 0, (j.revealed >> s) & 1 != 0


@external
@view
def job_price(r: uint256, reward: uint256, count: uint256) -> uint256:
    """
    @notice Escrow needed to post `count` jobs at the current fee.
    @param r Redundancy.
    @param reward Pay per seat.
    @param count Number of jobs.
    """
    return count * r * (reward + reward * params._fee(params._load()) // BPS)


# ---------------------------------------------------------------- internal: posting


@internal
def _open_batch(
    model_id: bytes32, n: uint256, r: uint256, reward: uint256, claim_window: uint256, commit_window: uint256, reveal_window: uint256
) -> (uint256, uint256):
    """
    @dev Validate the terms, store them once for the batch, return (first job id, price).
    """
    p: uint256 = params._load()
    if params._paused(p):
        params._fail("params: paused")
    model_index: uint256 = models._active_index(model_id)
    if n == 0:
        params._fail("jobs: empty batch")
    if r == 0 or r > MAX_REDUNDANCY:
        params._fail("jobs: bad redundancy")
    if reward == 0 or reward > MAX_REWARD:
        params._fail("jobs: bad reward")
    # Windows a chain can honour: shorter ones would let a client slash honest
    # providers who cannot get a transaction in (the owner sets them per network).
    minimums: uint256 = params._min_windows(p)
    if (
        claim_window < minimums & _MASK18
        or commit_window < (minimums >> 18) & _MASK18
        or reveal_window < minimums >> 36
    ):
        params._fail("jobs: window too short")
    if max(claim_window, max(commit_window, reveal_window)) > MAX_WINDOW:
        params._fail("jobs: bad window")
    fee_bps: uint256 = params._fee(p)
    batch_id: uint256 = self.next_batch_id
    self.next_batch_id = batch_id + 1
    self._terms_a[batch_id] = convert(msg.sender, uint256) | (reward << 160)
    self._terms_b[batch_id] = (
        model_index
        | (r << 8)
        | (n << 16)
        | (block.timestamp << 24)
        | (claim_window << 64)
        | (commit_window << 88)
        | (reveal_window << 112)
        | ((block.number & _MASK24) << 136)
        | (fee_bps << 160)
        | (params._collateral(p) << 176)
        | (params._slash_client(p) << 200)
        | (params._slash_honest(p) << 216)
        | (params._treasury_epoch(p) << 232)
    )
    return batch_id << 8, n * r * (reward + reward * fee_bps // BPS)


@internal
def _post_one(
    job_id: uint256,
    model_id: bytes32,
    input: Bytes[MAX_INPUT],
    r: uint256,
    reward: uint256,
    claim_window: uint256,
    commit_window: uint256,
    reveal_window: uint256,
):
    if len(input) == 0:
        params._fail("jobs: empty input")
    self._input_hash[job_id] = keccak256(input)
    claim_dl: uint256 = block.timestamp + claim_window
    log JobPosted(
        job_id=job_id,
        client=msg.sender,
        model_id=model_id,
        r=r,
        reward=reward,
        claim_deadline=claim_dl,
        commit_deadline=claim_dl + commit_window,
        reveal_deadline=claim_dl + commit_window + reveal_window,
        input=input,
    )


# ---------------------------------------------------------------- internal: actions


@internal
def _skip(job_id: uint256, reason: String[64], strict: bool) -> bool:
    """
    @dev Single calls revert with `reason`; batch calls log it and go on.
    """
    assert not strict, reason
    log ItemSkipped(job_id=job_id, caller=msg.sender, reason=reason)
    return False


@internal
def _try_claim(job_id: uint256, strict: bool) -> bool:
    t: Terms = self._terms(job_id)
    if not self._exists(t, job_id):
        return self._skip(job_id, "jobs: unknown job", strict)
    j: Job = self._load(job_id)
    start: uint256 = t.post_block
    if j.status == STATUS_OPEN:
        if params._paused(params._load()):
            return self._skip(job_id, "params: paused", strict)
    elif j.status == STATUS_CHALLENGED:
        # Re-execution claims are settlement of existing work: never paused.
        start = self._challenge_block[job_id]
    else:
        return self._skip(job_id, "jobs: not claimable", strict)
    # The round's claim deadline (_deadlines, without its struct copies: claims are hot).
    claim_dl: uint256 = t.posted_at + t.claim_window
    if j.status == STATUS_CHALLENGED:
        c: uint256 = self._challenges[job_id]
        claim_dl = ((c >> 160) & _MASK40) + ((c >> 200) & _MASK18)
    if block.timestamp > claim_dl:
        return self._skip(job_id, "jobs: claim deadline passed", strict)
    collateral: uint256 = self._collateral(t)
    if t.r == 1 and j.status == STATUS_OPEN:
        if j.claimed != 0:
            return self._skip(job_id, "jobs: already claimed", strict)
        j.provider = msg.sender
        j.claimed = 1
        j.until = block.number
        # No JobClaimed: ~1.8k gas a job, the margin that keeps a batched r == 1 job
        # within 105k; the claim shows in seat(job_id, 0) and in the delivery's event.
        return self._take(job_id, t.model_index, j, 0, collateral, strict)

    # A later block than the post's (or challenge's): the seed, the parent block's
    # hash, did not exist when the client or challenger acted. (24 bits: a claim
    # exactly 2**24 blocks later waits one block.)
    if block.number & _MASK24 == start:
        return self._skip(job_id, "jobs: draw not ready", strict)
    base: uint256 = 0
    size: uint256 = 0
    base, size = self._round(t, j)
    if j.until == 0 or block.timestamp > j.until + (params._min_windows(params._load()) & _MASK18) // 2:
        j = self._draw(job_id, t, j, base, size)
        # The draw stands even if this caller was not drawn.
        self._store(job_id, j)
    mine: uint256 = self._seats_of(job_id, t, j, msg.sender, _MASK_SEATS ^ j.claimed)
    if mine == 0:
        return self._skip(job_id, "jobs: not drawn", strict)
    j.claimed |= mine
    return self._take(job_id, t.model_index, j, mine, collateral * self._count(mine), strict)


@internal
def _take(job_id: uint256, model_index: uint256, j: Job, seats: uint256, collateral: uint256, strict: bool) -> bool:
    """
    @dev Store the job as taken by the caller, lock `collateral` and announce `seats`.
    """
    if not staking._serves(msg.sender, model_index):
        return self._skip(job_id, "staking: model not served", strict)
    if staking._free(msg.sender) < collateral:
        return self._skip(job_id, "staking: insufficient free stake", strict)
    self._store(job_id, j)
    staking._lock(msg.sender, collateral)
    for s: uint256 in range(MAX_REDUNDANCY + 1):
        if seats >> s == 0:
            break
        if (seats >> s) & 1 != 0:
            log JobClaimed(job_id=job_id, provider=msg.sender, seat=s)
    return True


@internal
def _draw(job_id: uint256, t: Terms, j: Job, base: uint256, size: uint256) -> Job:
    """
    @dev Draw every seat of the round not taken yet, from the parent block's hash
         and the weights as of this block's start (sortition.vy).
    """
    parent: bytes32 = blockhash(block.number - 1)
    drawn: Job = j
    for k: uint256 in range(size, bound=MAX_REDUNDANCY):
        s: uint256 = base + k
        if (j.claimed >> s) & 1 != 0:
            continue
        provider: address = sortition._draw(t.model_index, convert(keccak256(abi_encode(parent, job_id, s)), uint256))
        if s == 0:
            drawn.provider = provider
        else:
            self._seats[(job_id << 4) | s] = provider
        log SeatDrawn(job_id=job_id, provider=provider, seat=s)
    drawn.until = block.timestamp
    return drawn


@internal
def _try_deliver(job_id: uint256, result: Bytes[MAX_RESULT], strict: bool) -> bool:
    t: Terms = self._terms(job_id)
    if not self._exists(t, job_id):
        return self._skip(job_id, "jobs: unknown job", strict)
    if t.r != 1:
        return self._skip(job_id, "jobs: not single-provider", strict)
    j: Job = self._load(job_id)
    if j.status != STATUS_OPEN:
        return self._skip(job_id, "jobs: not open", strict)
    p: uint256 = params._load()
    if params._paused(p):
        return self._skip(job_id, "params: paused", strict)
    if j.claimed == 0 or j.provider != msg.sender:
        return self._skip(job_id, "jobs: not your seat", strict)
    # A delivery sent with its claim could be copied whole from the mempool.
    if block.number <= j.until:
        return self._skip(job_id, "jobs: claimed in this block", strict)
    if block.timestamp > t.posted_at + t.claim_window:
        return self._skip(job_id, "jobs: claim deadline passed", strict)
    if len(result) == 0:
        return self._skip(job_id, "jobs: empty result", strict)

    digest: bytes32 = keccak256(result)
    window: uint256 = params._challenge_window(p)
    until: uint256 = block.timestamp + window
    gen: uint256 = payouts._add(msg.sender, t.reward, self._fee(t), self._collateral(t), until, window, self._treasury_epoch(t))
    self._store(
        job_id,
        Job(
            provider=msg.sender,
            status=STATUS_DELIVERED,
            claimed=1,
            ncommitted=1,
            nrevealed=1,
            committed=1,
            revealed=1,
            until=until,
            gen=gen % 256,
        ),
    )
    self._words[job_id << 4] = digest
    log ResultRevealed(job_id=job_id, provider=msg.sender, seat=0, digest=digest, result=result)
    return True


@internal
def _active_seats(job_id: uint256) -> (Terms, Job, uint256):
    """
    @dev Load a job in a commit/reveal phase and the caller's taken seats in its current round.
    """
    t: Terms = self._terms(job_id)
    if not self._exists(t, job_id):
        params._fail("jobs: unknown job")
    j: Job = self._load(job_id)
    if j.status != STATUS_OPEN and j.status != STATUS_CHALLENGED:
        params._fail("jobs: not active")
    # An r == 1 seat delivers, never commits: a commit-reveal-finalize would pay it
    # without the challenge window.
    if t.r == 1 and j.status == STATUS_OPEN:
        params._fail("jobs: use deliver")
    mine: uint256 = self._seats_of(job_id, t, j, msg.sender, j.claimed)
    if mine == 0:
        params._fail("jobs: not assigned")
    return t, j, mine


@internal
def _commit(job_id: uint256, seal: bytes32):
    t: Terms = empty(Terms)
    j: Job = empty(Job)
    mine: uint256 = 0
    t, j, mine = self._active_seats(job_id)
    # Seats taken after an earlier commit (a redraw gave the holder another) commit now.
    mine &= ~j.committed
    if mine == 0:
        params._fail("jobs: already committed")
    claim_dl: uint256 = 0
    commit_dl: uint256 = 0
    reveal_dl: uint256 = 0
    claim_dl, commit_dl, reveal_dl = self._deadlines(job_id, t, j)
    if block.timestamp > commit_dl:
        params._fail("jobs: commit deadline passed")
    if seal == empty(bytes32):
        params._fail("jobs: empty seal")
    for s: uint256 in range(MAX_REDUNDANCY + 1):
        if mine >> s == 0:
            break
        if (mine >> s) & 1 != 0:
            self._words[(job_id << 4) | s] = seal
            log SealCommitted(job_id=job_id, provider=msg.sender, seat=s, seal=seal)
    j.committed |= mine
    j.ncommitted += self._count(mine)
    self._store(job_id, j)


@internal
def _reveal(job_id: uint256, result: Bytes[MAX_RESULT], salt: bytes32):
    t: Terms = empty(Terms)
    j: Job = empty(Job)
    mine: uint256 = 0
    t, j, mine = self._active_seats(job_id)
    mine &= j.committed
    if mine == 0:
        params._fail("jobs: not committed")
    mine &= ~j.revealed
    if mine == 0:
        params._fail("jobs: already revealed")
    base: uint256 = 0
    size: uint256 = 0
    base, size = self._round(t, j)
    claim_dl: uint256 = 0
    commit_dl: uint256 = 0
    reveal_dl: uint256 = 0
    claim_dl, commit_dl, reveal_dl = self._deadlines(job_id, t, j)
    if j.ncommitted != size and block.timestamp <= commit_dl:
        params._fail("jobs: reveal not open")
    if block.timestamp > reveal_dl:
        params._fail("jobs: reveal deadline passed")
    digest: bytes32 = keccak256(result)
    seal: bytes32 = self._seal(job_id, msg.sender, digest, salt)
    # Every committed, unrevealed seat of the caller whose seal this opens (seats
    # committed at different times may hold different seals).
    opened: uint256 = 0
    for s: uint256 in range(MAX_REDUNDANCY + 1):
        if mine >> s == 0:
            break
        if (mine >> s) & 1 != 0 and self._words[(job_id << 4) | s] == seal:
            self._words[(job_id << 4) | s] = digest
            opened |= 1 << s
            log ResultRevealed(job_id=job_id, provider=msg.sender, seat=s, digest=digest, result=result)
    if opened == 0:
        params._fail("jobs: seal mismatch")
    j.revealed |= opened
    j.nrevealed += self._count(opened)
    self._store(job_id, j)


# ---------------------------------------------------------------- internal: storage codecs


@internal
@pure
def _seal(job_id: uint256, provider: address, digest: bytes32, salt: bytes32) -> bytes32:
    return keccak256(abi_encode(job_id, provider, digest, salt))


@internal
@view
def _terms(job_id: uint256) -> Terms:
    batch_id: uint256 = job_id >> 8
    a: uint256 = self._terms_a[batch_id]
    b: uint256 = self._terms_b[batch_id]
    return Terms(
        client=convert(convert(a & _MASK160, uint160), address),
        reward=a >> 160,
        model_index=b & _MASK8,
        r=(b >> 8) & _MASK8,
        size=(b >> 16) & _MASK8,
        posted_at=(b >> 24) & _MASK40,
        claim_window=(b >> 64) & _MASK24,
        commit_window=(b >> 88) & _MASK24,
        reveal_window=(b >> 112) & _MASK24,
        post_block=(b >> 136) & _MASK24,
        fee_bps=(b >> 160) & _MASK16,
        collateral_bps=(b >> 176) & _MASK24,
        settle=b >> 200,
    )


@internal
@pure
def _exists(t: Terms, job_id: uint256) -> bool:
    return job_id & _MASK8 < t.size


@internal
@view
def _load(job_id: uint256) -> Job:
    w: uint256 = self._jobs[job_id]
    return Job(
        provider=convert(convert(w & _MASK160, uint160), address),
        status=(w >> 160) & _MASK8,
        claimed=(w >> 168) & _MASK8,
        ncommitted=(w >> 176) & _MASK8,
        nrevealed=(w >> 184) & _MASK8,
        committed=(w >> 192) & _MASK8,
        revealed=(w >> 200) & _MASK8,
        until=(w >> 208) & _MASK40,
        gen=w >> 248,
    )


@internal
def _store(job_id: uint256, j: Job):
    self._jobs[job_id] = (
        convert(j.provider, uint256)
        | (j.status << 160)
        | (j.claimed << 168)
        | (j.ncommitted << 176)
        | (j.nrevealed << 184)
        | (j.committed << 192)
        | (j.revealed << 200)
        | (j.until << 208)
        | (j.gen << 248)
    )


@internal
@view
def _status(j: Job) -> uint256:
    """
    @dev The effective status: an unchallenged delivery is final after its window.
    """
    if j.status == STATUS_DELIVERED and block.timestamp > j.until:
        return STATUS_FINALIZED
    return j.status


@internal
@pure
def _fee(t: Terms) -> uint256:
    return t.reward * t.fee_bps // BPS


@internal
@pure
def _collateral(t: Terms) -> uint256:
    return t.reward * t.collateral_bps // BPS


@internal
@pure
def _treasury_epoch(t: Terms) -> uint256:
    return t.settle >> 32


@internal
@pure
def _round(t: Terms, j: Job) -> (uint256, uint256):
    """
    @dev (first seat, seat count) of the current round.
    """
    if j.status == STATUS_CHALLENGED:
        return 1, R_CHALLENGE
    return 0, t.r


@internal
@view
def _deadlines(job_id: uint256, t: Terms, j: Job) -> (uint256, uint256, uint256):
    """
    @dev (claim, commit, reveal) deadlines of the current round; a re-execution
         round runs on the protocol's minimum windows as of the challenge, from
         its moment (never the client's windows: a client could make them a
         trap or a months-long freeze).
    """
    if j.status == STATUS_CHALLENGED:
        c: uint256 = self._challenges[job_id]
        round_claim_dl: uint256 = ((c >> 160) & _MASK40) + ((c >> 200) & _MASK18)
        round_commit_dl: uint256 = round_claim_dl + ((c >> 218) & _MASK18)
        return round_claim_dl, round_commit_dl, round_commit_dl + (c >> 236)
    claim_dl: uint256 = t.posted_at + t.claim_window
    commit_dl: uint256 = claim_dl + t.commit_window
    return claim_dl, commit_dl, commit_dl + t.reveal_window


@internal
@view
def _seat_provider(job_id: uint256, j: Job, s: uint256) -> address:
    if s == 0:
        return j.provider
    return self._seats[(job_id << 4) | s]


@internal
@view
def _seats_of(job_id: uint256, t: Terms, j: Job, account: address, among: uint256) -> uint256:
    """
    @dev Bitmap of the current round's seats in `among` whose provider is `account`.
    """
    base: uint256 = 0
    size: uint256 = 0
    base, size = self._round(t, j)
    mine: uint256 = 0
    for k: uint256 in range(size, bound=MAX_REDUNDANCY):
        s: uint256 = base + k
        if (among >> s) & 1 != 0 and self._seat_provider(job_id, j, s) == account:
            mine |= 1 << s
    return mine


@internal
@pure
def _count(bits: uint256) -> uint256:
    """
    @dev Set bits among the low 8 (seat bitmaps).
    """
    n: uint256 = 0
    for s: uint256 in range(8):
        n += (bits >> s) & 1
    return n


@internal
@view
def _challenger(job_id: uint256) -> address:
    return convert(convert(self._challenges[job_id] & _MASK160, uint160), address)
