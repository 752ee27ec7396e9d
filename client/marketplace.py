"""The marketplace and token facades: a builder for every entry point, typed views, events.

Builders return a ``Call`` (target + calldata) that any sender can sign: the client's
``Signer`` or the provider agent's own transaction manager. Views return the frozen
records of ``client.records``; logs decode to the dataclasses of ``client.events``.
The bytes come from ``client.abi_codec``; calls, batched views and logs from
``client.contract``.

>>> call = Marketplace(None, "0x" + "11" * 20).build_claim_many([256, 257])
>>> call.function, call.data[:4].hex()
('claim_many', '1f1db043')
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from eth_utils import to_checksum_address

from client.abi_codec import Call, to_bytes32
from client.chain import block_number
from client.contract import LOG_CHUNK, Contract
from client.errors import InvalidInput
from client.events import Event
from client.protocol import (MAX_BATCH, MAX_ID_BATCH, MAX_INPUT, MAX_RESULT, MAX_RESULT_BATCH, R_CHALLENGE,
                             JobStatus)
from client.records import Assignment, Deadlines, JobInfo, ModelInfo, Params, PendingPayouts, ProviderInfo, Seat
from client.transport import translate_errors

TOPICS_PER_QUERY = 100  # job ids OR-ed in one log filter


def _batch(items: Sequence, what: str, limit: int) -> list:
    if not 1 <= len(items) <= limit:
        raise InvalidInput(f"{what}: 1..{limit} items per call, got {len(items)}")
    return list(items)


def _sized(data: bytes, limit: int, what: str) -> bytes:
    data = bytes(data)
    if not 1 <= len(data) <= limit:
        raise InvalidInput(f"{what} must be 1..{limit} bytes, got {len(data)}")
    return data



class Marketplace(Contract):
    """The deployed marketplace: builders for every entry point, typed views, events.

    >>> m = Marketplace(None, "0x" + "11" * 20)
    >>> m.build_commit(256, bytes(31) + b"\\x01").function
    'commit'
    """

    CONTRACT = "Marketplace"

    # ------------------------------------------------------------ clients

    def build_post_job(self, model_id: bytes, input: bytes, r: int, reward: int,
                       claim_window: int, commit_window: int, reveal_window: int) -> Call:
        """Post one job; escrow r x (reward + fee) comes from the internal balance, then transferFrom."""
        return self.build("post_job", to_bytes32(model_id, "model_id"), _sized(input, MAX_INPUT, "input"),
                          r, reward, claim_window, commit_window, reveal_window)

    def build_post_jobs(self, model_id: bytes, inputs: Sequence[bytes], r: int, reward: int,
                        claim_window: int, commit_window: int, reveal_window: int) -> Call:
        """Post up to MAX_BATCH jobs with the same terms; ids are first_id + i."""
        inputs = [_sized(x, MAX_INPUT, f"input {i}") for i, x in enumerate(_batch(inputs, "post_jobs", MAX_BATCH))]
        return self.build("post_jobs", to_bytes32(model_id, "model_id"), inputs, r, reward,
                          claim_window, commit_window, reveal_window)

    def build_cancel(self, job_id: int) -> Call:
        """The client withdraws an unclaimed job (full refund to its balance)."""
        return self.build("cancel", job_id)

    def build_challenge(self, job_id: int) -> Call:
        """Dispute a delivered r = 1 result inside its window (bond: ``challenge_bond``)."""
        return self.build("challenge", job_id)

    def build_deposit(self, amount: int) -> Call:
        """Move payment tokens into the internal balance (approve first)."""
        return self.build("deposit", amount)

    def build_withdraw(self) -> Call:
        """Collect the internal payment balance and stake credits."""
        return self.build("withdraw")

    # ------------------------------------------------------------ anyone (keepers)

    def build_finalize(self, job_id: int) -> Call:
        """Settle a due job (reverts with the reason when it isn't due)."""
        return self.build("finalize", job_id)

    def build_finalize_many(self, job_ids: Sequence[int]) -> Call:
        """Settle many jobs; items not due are skipped with ItemSkipped."""
        return self.build("finalize_many", _batch(job_ids, "finalize_many", MAX_ID_BATCH))

    # ------------------------------------------------------------ providers

    def build_register(self, model_ids: Sequence[bytes], price: int) -> Call:
        """Register as a provider serving ``model_ids`` at an asking ``price`` per seat."""
        return self.build("register", [to_bytes32(m, "model_id") for m in model_ids], price)

    def build_update_provider(self, model_ids: Sequence[bytes], price: int) -> Call:
        """Replace the served models and the asking price."""
        return self.build("update_provider", [to_bytes32(m, "model_id") for m in model_ids], price)

    def build_stake(self, amount: int) -> Call:
        """Add stake (approve the stake token first)."""
        return self.build("stake", amount)

    def build_request_unbond(self, amount: int) -> Call:
        """Move free stake to unbonding."""
        return self.build("request_unbond", amount)

    def build_withdraw_stake(self) -> Call:
        """Withdraw unbonded stake after the delay."""
        return self.build("withdraw_stake")

    def build_release_payouts(self, provider: str) -> Call:
        """Credit ``provider``'s matured r = 1 pay without withdrawing (anyone may)."""
        return self.build("release_payouts", provider)

    def build_claim(self, job_id: int) -> Call:
        """Take your seats of a job, locking collateral per seat. r >= 2 or a re-execution
        round: the seats drawn to you (the first claim in a block after the post or the
        challenge draws them; a strict claim by someone not drawn reverts, undoing that
        draw: use ``build_claim_many`` to draw). r = 1: the job's seat, first come; then
        deliver from a later block."""
        return self.build("claim", job_id)

    def build_claim_many(self, job_ids: Sequence[int]) -> Call:
        """Claim many (as ``build_claim``); items that fail are skipped with ItemSkipped
        (``jobs: not drawn``, ``jobs: draw not ready``, ``jobs: already claimed``, ...),
        not reverted, and a draw an item made stands."""
        return self.build("claim_many", _batch(job_ids, "claim_many", MAX_ID_BATCH))

    def build_deliver(self, job_id: int, result: bytes) -> Call:
        """r = 1: deliver the result of a job you claimed in an earlier block."""
        return self.build("deliver", job_id, _sized(result, MAX_RESULT, "result"))

    def build_deliver_many(self, job_ids: Sequence[int], results: Sequence[bytes]) -> Call:
        """Deliver many r = 1 jobs you claimed; failing items are skipped."""
        self._same_length(job_ids, results)
        return self.build("deliver_many", _batch(job_ids, "deliver_many", MAX_RESULT_BATCH),
                          [_sized(r, MAX_RESULT, "result") for r in results])

    def build_commit(self, job_id: int, seal: bytes) -> Call:
        """Commit a seal (``client.protocol.seal``) for every seat you hold in the round and
        have not committed (a seat a redraw gave you after your commit takes its own)."""
        return self.build("commit", job_id, to_bytes32(seal, "seal"))

    def build_commit_many(self, job_ids: Sequence[int], seals: Sequence[bytes]) -> Call:
        """Commit many seals; all or nothing."""
        self._same_length(job_ids, seals)
        return self.build("commit_many", _batch(job_ids, "commit_many", MAX_ID_BATCH), [to_bytes32(s, "seal") for s in seals])

    def build_reveal(self, job_id: int, result: bytes, salt: bytes) -> Call:
        """Reveal the committed result and its salt: opens every committed seat of yours whose
        seal they match."""
        return self.build("reveal", job_id, _sized(result, MAX_RESULT, "result"), to_bytes32(salt, "salt"))

    def build_reveal_many(self, job_ids: Sequence[int], results: Sequence[bytes], salts: Sequence[bytes]) -> Call:
        """Reveal many; all or nothing."""
        self._same_length(job_ids, results, salts)
        return self.build("reveal_many", _batch(job_ids, "reveal_many", MAX_RESULT_BATCH),
                          [_sized(r, MAX_RESULT, "result") for r in results], [to_bytes32(s, "salt") for s in salts])

    def build_reweigh(self, account: str) -> Call:
        """Re-apply the current ``min_draw_stake`` to ``account``'s draw weight (anyone may;
        e.g. after the owner raised the floor)."""
        return self.build("reweigh", account)

    @staticmethod
    def _same_length(*lists: Sequence) -> None:
        if len({len(x) for x in lists}) != 1:
            raise InvalidInput(f"parallel lists differ in length: {[len(x) for x in lists]}")

    # ------------------------------------------------------------ views

    def job(self, job_id: int, block: int | str = "latest") -> JobInfo:
        """A job's terms and current state (``JobNotFound`` for unknown ids)."""
        return _job_info(job_id, self.call("job", job_id, block=block))

    def jobs(self, job_ids: Iterable[int], block: int | str = "latest") -> list[JobInfo]:
        """Many jobs' views (as ``job``), read at one block in batched round trips.

        >>> [i.status for i in market.jobs([256, 257])]  # doctest: +SKIP
        [<JobStatus.OPEN: 0>, <JobStatus.DELIVERED: 2>]
        """
        ids = list(job_ids)
        return [_job_info(j, v) for j, v in zip(ids, self.call_many([("job", (j,)) for j in ids], block))]

    def seat(self, job_id: int, index: int, block: int | str = "latest") -> Seat:
        """Seat ``index`` of a job: its drawn provider (r = 1: the claimant), whether it
        took the seat, its seal or digest."""
        return Seat(**self.call("seat", job_id, index, block=block))

    def round_seats(self, job_id: int, block: int | str = "latest") -> dict[int, Seat]:
        """The seats of a job's current round by index (0..r-1, or 1..R_CHALLENGE once
        challenged), read at one block.

        >>> {s: seat.provider for s, seat in market.round_seats(256).items()}  # doctest: +SKIP
        {0: '0xAlice...', 1: '0xMallory...', 2: '0xAlice...'}
        """
        if block == "latest":
            with translate_errors():
                block = block_number(self.w3)
        info = self.job(job_id, block=block)
        indices = range(1, R_CHALLENGE + 1) if info.status == JobStatus.CHALLENGED else range(info.r)
        views = self.call_many([("seat", (job_id, s)) for s in indices], block)
        return {s: Seat(**v) for s, v in zip(indices, views)}

    def seats(self, wanted: dict[int, Iterable[int]], block: int | str = "latest") -> dict[int, dict[int, Seat]]:
        """Seats of many jobs, ``{job id: seat indices}`` (any round's: an r = 1 job's
        delivered seat 0 and its re-execution seats 1..R_CHALLENGE), by job and index,
        read at one block in batched round trips."""
        pairs = [(job_id, s) for job_id, indices in wanted.items() for s in indices]
        out: dict[int, dict[int, Seat]] = {job_id: {} for job_id in wanted}
        for (job_id, s), view in zip(pairs, self.call_many([("seat", pair) for pair in pairs], block)):
            out[job_id][s] = Seat(**view)
        return out

    def assignment(self, job_id: int, account: str) -> Assignment:
        """Whether ``account`` holds (took) a seat of the job's current round, and its first seat."""
        return Assignment(*self.call("assignment", job_id, account))

    def model(self, model_id: bytes) -> ModelInfo:
        """A registered model (``ModelNotFound`` otherwise)."""
        return ModelInfo(**self.call("model_info", to_bytes32(model_id, "model_id")))

    def models(self) -> list[ModelInfo]:
        """Every registered model, active or not, by registry index."""
        return [ModelInfo(**self.call("model_at", i)) for i in range(self.call("model_count"))]

    def provider(self, account: str) -> ProviderInfo:
        """A provider's registration, stake and served models."""
        info = self.call("provider_info", account)
        models = self.call("provider_models", account)
        return ProviderInfo(address=to_checksum_address(account), model_ids=models, **info)

    def providers(self, accounts: Iterable[str], block: int | str = "latest") -> list[ProviderInfo]:
        """Many providers' views (as ``provider``), read at one block in batched round trips."""
        accounts = [to_checksum_address(a) for a in accounts]
        views = self.call_many([(name, (a,)) for a in accounts for name in ("provider_info", "provider_models")],
                               block)
        return [ProviderInfo(address=a, model_ids=views[2 * i + 1], **views[2 * i]) for i, a in enumerate(accounts)]

    def provider_accounts(self, from_block: int = 0, to_block: int | str = "latest") -> set[str]:
        """Every account that registered as a provider in ``[from_block, to_block]``
        (registered or not today: ``providers`` says)."""
        return {e.provider for e in self.get_events(from_block, to_block, events=["ProviderRegistered"])}

    def pending_payouts(self, provider: str) -> PendingPayouts:
        """A provider's r = 1 pay waiting for its challenge windows (released lazily)."""
        return PendingPayouts(**self.call("pending_payouts", provider))

    def params(self) -> Params:
        """The current protocol parameters."""
        client_bps, honest_bps, treasury_bps = self.call("slash_split")
        return Params(
            fee_bps=self.call("fee_bps"), collateral_bps=self.call("collateral_bps"),
            slash_client_bps=client_bps, slash_honest_bps=honest_bps, slash_treasury_bps=treasury_bps,
            challenge_window=self.call("challenge_window"), unbond_delay=self.call("unbond_delay"),
            paused=self.call("paused"), treasury=self.call("treasury"), owner=self.call("owner"),
            min_windows=self.min_windows(), min_draw_stake=self.min_draw_stake(),
        )

    def min_windows(self) -> Deadlines:
        """The shortest claim / commit / reveal windows a post may ask for (owner-set per
        network); a challenge's re-execution round runs on them."""
        return Deadlines(*self.call("min_windows"))

    def min_draw_stake(self) -> int:
        """The least bonded stake (free + locked, stake-token units) that gives a provider a
        draw weight (owner-set; applies from each provider's next stake change or ``reweigh``)."""
        return self.call("min_draw_stake")

    def draw_weight(self, account: str, block: int | str = "latest") -> int:
        """``account``'s weight in the seat draws of the models it serves
        (``client.protocol.draw_weight`` of its bonded stake at its last stake change)."""
        return self.call("draw_weight", account, block=block)

    def draw_weights(self, accounts: Iterable[str], block: int | str = "latest") -> dict[str, int]:
        """Many accounts' draw weights, read at one block in batched round trips."""
        accounts = [to_checksum_address(a) for a in accounts]
        return dict(zip(accounts, self.call_many([("draw_weight", (a,)) for a in accounts], block)))

    def job_price(self, r: int, reward: int, count: int = 1) -> int:
        """Escrow needed to post ``count`` jobs at the current fee."""
        return self.call("job_price", r, reward, count)

    def challenge_bond(self, job_id: int) -> int:
        """Bond a challenge of ``job_id`` costs."""
        return self.call("challenge_bond", job_id)

    def escrow_of(self, job_id: int) -> int:
        """Payment tokens held for an unsettled job (0 once settled)."""
        return self.call("escrow_of", job_id)

    def balance_of(self, account: str) -> int:
        """Internal payment-token balance of ``account``."""
        return self.call("balances", account)

    def stake_credits_of(self, account: str) -> int:
        """Withdrawable stake-token credits of ``account``."""
        return self.call("stake_credits", account)

    def pay_token(self) -> str:
        return self.call("PAY_TOKEN")

    def stake_token(self) -> str:
        return self.call("STAKE_TOKEN")

    def job_events(self, job_ids: Iterable[int], from_block: int = 0, to_block: int | str = "latest", *,
                   events: Iterable[str] | None = None, chunk: int = LOG_CHUNK) -> list[Event]:
        """Every event of these jobs (all of them carry the job id as first topic), in order."""
        ids = list(job_ids)
        out: list[Event] = []
        for start in range(0, len(ids), TOPICS_PER_QUERY):
            out += self.get_events(from_block, to_block, events=events, job_ids=ids[start:start + TOPICS_PER_QUERY],
                                   chunk=chunk)
        return sorted(out, key=lambda e: e.meta.position)


def _job_info(job_id: int, view: dict) -> JobInfo:
    return JobInfo(job_id=job_id, **{**view, "status": JobStatus(view["status"])})


class Token(Contract):
    """An ERC-20 (the payment or stake token)."""

    CONTRACT = "TestToken"

    def balance_of(self, account: str) -> int:
        return self.call("balanceOf", account)

    def allowance(self, owner: str, spender: str) -> int:
        return self.call("allowance", owner, spender)

    def symbol(self) -> str:
        return self.call("symbol")

    def decimals(self) -> int:
        return self.call("decimals")

    def build_approve(self, spender: str, amount: int) -> Call:
        return self.build("approve", spender, amount)

    def build_transfer(self, to: str, amount: int) -> Call:
        return self.build("transfer", to, amount)

    def build_mint(self, to: str, amount: int) -> Call:
        """The local test token's open faucet (not part of ERC-20)."""
        return self.build("mint", to, amount)
