# pragma version ~=0.4.3
"""
@title Marketplace state reader (test only)
@custom:contract-name MarketLens
@license MIT
@notice Reads every ledger, stake and job of a marketplace in one eth_call, so
        that the property tests can compare the whole state with their model
        after every step (one call instead of hundreds). Layout of the
        returned words, in order:
        block.timestamp, token.balanceOf(market);
        per account: balances, stake_credits;
        per provider: free, locked, unbonding, unbond_ready_at,
        pending_payouts' pay, fees, collateral, matures_at, and draw_weight;
        per job: status, nclaimed, ncommitted, nrevealed, result_digest,
        challenger, claim_deadline, commit_deadline, reveal_deadline,
        challenge_end, escrow_of, then per seat whose bit is set in
        seat_masks[i], in index order: provider (the drawn one),
        committed | revealed << 1 | claimed << 2, word.
        The reads run in the test chain's Python EVM, where every call costs
        real time: callers ask only for what may have changed.
"""

from ethereum.ercs import IERC20

MAX_ACCOUNTS: constant(uint256) = 16
MAX_PROVIDERS: constant(uint256) = 8
MAX_JOBS: constant(uint256) = 96
MAX_WORDS: constant(uint256) = 4096


struct ProviderInfo:
    registered: bool
    price: uint256
    free: uint256
    locked: uint256
    unbonding: uint256
    unbond_ready_at: uint256


struct Pending:
    pay: uint256
    fees: uint256
    collateral: uint256
    matures_at: uint256


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
    provider: address
    claimed: bool
    committed: bool
    revealed: bool
    word: bytes32


interface IMarket:
    def balances(account: address) -> uint256: view
    def stake_credits(account: address) -> uint256: view
    def provider_info(account: address) -> ProviderInfo: view
    def pending_payouts(provider: address) -> Pending: view
    def job(job_id: uint256) -> JobView: view
    def seat(job_id: uint256, index: uint256) -> SeatView: view
    def escrow_of(job_id: uint256) -> uint256: view
    def draw_weight(account: address) -> uint256: view


@external
@view
def read(
    market: IMarket,
    token: IERC20,
    accounts: DynArray[address, MAX_ACCOUNTS],
    providers: DynArray[address, MAX_PROVIDERS],
    job_ids: DynArray[uint256, MAX_JOBS],
    seat_masks: DynArray[uint256, MAX_JOBS],
) -> DynArray[uint256, MAX_WORDS]:
    """
    @notice The whole state of `market`, flattened (layout in the contract notice).
    """
    out: DynArray[uint256, MAX_WORDS] = [block.timestamp, staticcall token.balanceOf(market.address)]
    for a: address in accounts:
        out.append(staticcall market.balances(a))
        out.append(staticcall market.stake_credits(a))
    for p: address in providers:
        info: ProviderInfo = staticcall market.provider_info(p)
        pending: Pending = staticcall market.pending_payouts(p)
        out.append(info.free)
        out.append(info.locked)
        out.append(info.unbonding)
        out.append(info.unbond_ready_at)
        out.append(pending.pay)
        out.append(pending.fees)
        out.append(pending.collateral)
        out.append(pending.matures_at)
        out.append(staticcall market.draw_weight(p))
    for i: uint256 in range(len(job_ids), bound=MAX_JOBS):
        job_id: uint256 = job_ids[i]
        j: JobView = staticcall market.job(job_id)
        out.append(j.status)
        out.append(j.nclaimed)
        out.append(j.ncommitted)
        out.append(j.nrevealed)
        out.append(convert(j.result_digest, uint256))
        out.append(convert(j.challenger, uint256))
        out.append(j.claim_deadline)
        out.append(j.commit_deadline)
        out.append(j.reveal_deadline)
        out.append(j.challenge_end)
        out.append(staticcall market.escrow_of(job_id))
        for s: uint256 in range(16):
            if (seat_masks[i] >> s) & 1 == 0:
                continue
            seat: SeatView = staticcall market.seat(job_id, s)
            out.append(convert(seat.provider, uint256))
            out.append(
                convert(seat.committed, uint256) | (convert(seat.revealed, uint256) << 1) | (convert(seat.claimed, uint256) << 2)
            )
            out.append(convert(seat.word, uint256))
    return out
