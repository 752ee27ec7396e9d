"""``Client``: what a marketplace customer does, in one object.

Connect, look at models, providers and prices, estimate, fund and post jobs (one or a
batch), wait with a progress display, fetch results from the chain and verify them
against the settled digest, decode embeddings; cancel, refund, challenge, withdraw;
read a job's full history.

>>> client = Client.connect("ethereum:local:test", account="TEST::0")  # doctest: +SKIP
>>> [job] = client.post_texts(["hello world"], reward=10**15)          # doctest: +SKIP
>>> client.wait([job], timeout=60)                                     # doctest: +SKIP
>>> client.verify_and_decode(job).shape                                # doctest: +SKIP
(384,)
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import astuple
from typing import Any, Literal

import numpy as np
from eth_utils import is_address, to_checksum_address
from rich.console import Console

from client.abi_codec import Call, to_bytes32
from client.chat import CHAT_FORMAT, TOP_P_ONE, ChatRequest, chat_request
from client.deployments import load_deployment
from client.diagnosis import Diagnosis, diagnose, takers
from client.encoding import EMBEDDING_FORMAT_VERSION
from client.errors import (ConfigError, ContractError, DeploymentNotFound, InsufficientFunds, InvalidInput,
                           ResultMismatch, ResultUnavailable, WaitTimeout)
from client.events import Event, JobChallenged, JobFinalized, JobPosted, ResultRevealed, Withdrawn
from client.inputs import job_payload
from client.marketplace import Marketplace, Token
from client.progress import WaitDisplay
from client.protocol import BPS, MAX_BATCH, MAX_ID_BATCH, MAX_WINDOW, JobStatus, result_digest
from client.records import (Balances, Deadlines, Estimate, JobInfo, ModelInfo, Params, ProviderInfo,
                            TxResult, VerifiedResult)
from client.signer import Signer
from client.transport import Connection, connect_ape, connect_rpc, translate_errors

Until = Literal["result", "settled"]


class Client:
    """A connection to the marketplace, acting for one account (or read-only without one).

    Build it with ``Client.connect``; use it as a context manager to leave an ape
    network it entered.
    """

    def __init__(self, connection: Connection, marketplace: str, *, start_block: int = 0,
                 poll_interval: float = 0.5):
        self.connection = connection
        self.w3 = connection.w3
        self.marketplace = Marketplace(self.w3, marketplace)
        self.signer = None
        if connection.account is not None:
            self.signer = Signer(self.w3, connection.account, gas_limit=connection.gas_limit)
        self.start_block = start_block
        self.poll_interval = poll_interval
        self._pay_token: Token | None = None

    # ------------------------------------------------------------ connecting

    @classmethod
    def connect(cls, network: str | None = None, *, rpc: str | None = None, account: Any = None,
                private_key: str | None = None, marketplace: str | None = None,
                poll_interval: float = 0.5) -> Client:
        """Connect through an ape network choice (default) or an RPC URL.

        ``account``: an ape account, alias or ``"TEST::<n>"``; or ``private_key``
        (``client.accounts.load_account`` reads either).
        ``marketplace``: its address; default, the one recorded for this chain.

        >>> Client.connect("ethereum:local:foundry", account="TEST::1")  # doctest: +SKIP
        >>> Client.connect(rpc="http://127.0.0.1:8545", private_key="0x...")  # doctest: +SKIP
        """
        if account is not None and private_key is not None:
            raise ConfigError("give an account or a private key, not both")
        # One loader takes both; a key reads as one even without its 0x.
        spec = account if private_key is None else "0x" + private_key.removeprefix("0x")
        if rpc is not None:
            if network is not None:
                raise ConfigError("give an ape network or an RPC URL, not both")
            connection = connect_rpc(rpc, spec)
        else:
            connection = connect_ape(network, spec)
        try:
            with translate_errors():
                chain_id = connection.w3.eth.chain_id
            start_block = 0
            if marketplace is None:
                deployment = load_deployment(chain_id)
                marketplace, start_block = deployment.marketplace, deployment.block
            elif not is_address(marketplace):
                raise ConfigError(f"not an address: {marketplace!r}")
            marketplace = to_checksum_address(marketplace)
            with translate_errors():
                code = connection.w3.eth.get_code(marketplace)
            if not code:
                raise DeploymentNotFound(f"no contract at {marketplace} on chain {chain_id} "
                                         f"({connection.network}); redeploy or pass the address")
        except BaseException:
            connection.close()
            raise
        return cls(connection, marketplace, start_block=start_block, poll_interval=poll_interval)

    def close(self) -> None:
        """Leave the ape network this client entered, if any."""
        self.connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def address(self) -> str:
        """The account this client acts for."""
        return self._signer().address

    # ------------------------------------------------------------ reading

    def models(self, *, active_only: bool = False) -> list[ModelInfo]:
        """Registered models (by registry index).

        >>> [m.name for m in client.models()]  # doctest: +SKIP
        ['all-MiniLM-L6-v2']
        """
        return [m for m in self.marketplace.models() if m.active or not active_only]

    def model(self, model_id: bytes | str | None = None, *, format_version: int | None = None) -> ModelInfo:
        """One model; without an id, the only active model (of ``format_version`` if
        given: 1 embeddings, ``client.chat.CHAT_FORMAT`` chat), ``InvalidInput`` if
        there is none or more than one.

        >>> client.model(format_version=CHAT_FORMAT).name  # doctest: +SKIP
        'HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1'
        """
        if model_id is not None:
            return self.marketplace.model(to_bytes32(model_id, "model_id"))
        active = [m for m in self.models(active_only=True)
                  if format_version is None or m.format_version == format_version]
        if len(active) != 1:
            kind = "" if format_version is None else f" of format_version {format_version}"
            raise InvalidInput(f"{len(active)} active models{kind}: pass model_id "
                               f"({', '.join(m.name for m in active) or 'none registered'})")
        return active[0]

    def providers(self, model_id: bytes | str | None = None) -> list[ProviderInfo]:
        """Registered providers (those serving ``model_id`` if given), cheapest first.

        Read from the registration events, then each provider's current state.

        >>> [(p.address, p.price) for p in client.providers()]  # doctest: +SKIP
        """
        seen = {e.provider for e in self.marketplace.get_events(
            self.start_block, events=["ProviderRegistered", "ProviderUpdated"])}
        infos = [self.marketplace.provider(a) for a in sorted(seen)]
        if model_id is not None:
            wanted = to_bytes32(model_id, "model_id")
            infos = [p for p in infos if wanted in p.model_ids]
        return sorted((p for p in infos if p.registered), key=lambda p: (p.price, p.address))

    def params(self) -> Params:
        """Protocol parameters (fee, collateral, slash split, windows, pause).

        >>> client.params().fee_bps  # doctest: +SKIP
        250
        """
        return self.marketplace.params()

    def estimate(self, *, reward: int, r: int = 1, count: int = 1,
                 model_id: bytes | str | None = None) -> Estimate:
        """The full cost of posting ``count`` jobs: r x (reward + protocol fee) each, and how
        many providers of the model (by default the embedding model) would take a seat at
        that reward: each declares its price on chain, the smallest reward it takes. For
        r >= 2 seats are drawn by stake, so only providers with a draw weight count, and
        ``taker_share`` is the share of the model's draw weight that they hold.

        >>> client.estimate(reward=1000, r=3, count=10).total  # doctest: +SKIP
        30750
        """
        if count < 1 or r < 1 or reward < 1:
            raise InvalidInput("reward, r and count must be positive")
        fee = self.marketplace.job_price(1, reward, 1) - reward
        collateral = reward * self.marketplace.call("collateral_bps") // BPS
        serving = self.providers(self.model(model_id, format_version=EMBEDDING_FORMAT_VERSION).model_id)
        found = takers(serving, self.marketplace.draw_weights([p.address for p in serving]), reward, collateral, r)
        return Estimate(r=r, reward=reward, count=count, fee_per_seat=fee, collateral_per_seat=collateral,
                        providers=len(found.takers), taker_share=found.taker_share)

    def why(self, job_id: int) -> Diagnosis:
        """Why providers don't take a job, from the chain alone (``client.diagnosis``):
        its input as posted, the model, the providers' prices, free stakes and draw
        weights against its terms, its claim deadline.

        >>> client.why(256).summary  # doctest: +SKIP
        'job 256 (OPEN): 3 of 3 provider(s) ask more than the reward 1000 (lowest asking price 2000); ...'
        """
        return diagnose(self, job_id)

    def job(self, job_id: int) -> JobInfo:
        """A job's terms and current state (``JobNotFound`` for unknown ids).

        >>> client.job(256).status  # doctest: +SKIP
        <JobStatus.FINALIZED: 3>
        """
        return self.marketplace.job(job_id)

    def balances(self, account: str | None = None) -> Balances:
        """Wallet, deposited and credited amounts and allowance of ``account`` (default: yours).

        >>> client.balances().deposited  # doctest: +SKIP
        0
        """
        account = account or self.address
        token = self.pay_token()
        return Balances(
            account=account, wallet=token.balance_of(account),
            deposited=self.marketplace.balance_of(account),
            stake_credits=self.marketplace.stake_credits_of(account),
            allowance=token.allowance(account, self.marketplace.address),
        )

    def history(self, job_id: int) -> list[Event]:
        """Every event of a job in chain order: posted, claims, seals, reveals, skips,
        challenge, slashes, finalization.

        >>> [type(e).__name__ for e in client.history(256)]  # doctest: +SKIP
        ['JobPosted', 'JobClaimed', ...]
        """
        self.job(job_id)  # JobNotFound for unknown ids rather than an empty history
        return self.marketplace.job_events([job_id], self.start_block)

    def pay_token(self) -> Token:
        """The payment token (ERC-20)."""
        if self._pay_token is None:
            self._pay_token = Token(self.w3, self.marketplace.pay_token())
        return self._pay_token

    # ------------------------------------------------------------ sending

    def send(self, call: Call) -> TxResult:
        """Sign, send and await ``call``; the marketplace events it emitted.

        >>> client.send(client.marketplace.build_withdraw())  # doctest: +SKIP
        """
        receipt = self._signer().send(call.tx)
        return TxResult(
            tx_hash=bytes(receipt["transactionHash"]), block_number=receipt["blockNumber"],
            gas_used=receipt["gasUsed"], events=tuple(self.marketplace.decode_receipt(receipt)),
        )

    def approve(self, amount: int) -> TxResult:
        """Allow the marketplace to pull ``amount`` payment tokens (replaces the allowance).

        >>> client.approve(10**18)  # doctest: +SKIP
        """
        return self.send(self.pay_token().build_approve(self.marketplace.address, amount))

    def deposit(self, amount: int) -> TxResult:
        """Pre-fund your internal balance so posting needs no token transfer (approves as needed).

        >>> client.deposit(10**18)  # doctest: +SKIP
        """
        if amount < 1:
            raise InvalidInput("deposit amount must be positive")
        self._ensure_allowance(amount)
        return self.send(self.marketplace.build_deposit(amount))

    def withdraw(self) -> Withdrawn:
        """Collect your internal balance and stake credits (refunds, compensation, pay).

        >>> client.withdraw().pay_amount  # doctest: +SKIP
        """
        return self.send(self.marketplace.build_withdraw()).of(Withdrawn)[0]

    # ------------------------------------------------------------ posting

    def post(self, input: bytes | str | ChatRequest, *, reward: int, r: int = 1,
             model_id: bytes | str | None = None, deadlines: Deadlines = Deadlines()) -> int:
        """Post one job, escrowing r x (reward + fee); its job id.

        Without ``model_id``: text goes to the embedding model, a ``ChatRequest`` to the
        chat model (each the only active one of its format). Text is UTF-8 encoded; an
        input no provider would serve (not UTF-8, over MAX_INPUT bytes, no text in it, a
        chat request that does not fit: ``client.inputs.job_payload``) or windows the
        marketplace would refuse (below ``params().min_windows``, over MAX_WINDOW) are
        refused here (``InvalidInput``) before anything is sent. Funds come from your deposited balance first, then from your wallet
        (approved here as needed).

        >>> job = client.post("a sentence", reward=10**15, r=3)  # doctest: +SKIP
        """
        return self.post_many([input], reward=reward, r=r, model_id=model_id, deadlines=deadlines)[0]

    def post_many(self, inputs: Sequence[bytes | str | ChatRequest], *, reward: int, r: int = 1,
                  model_id: bytes | str | None = None, deadlines: Deadlines = Deadlines()) -> list[int]:
        """Post many jobs with the same terms and model, MAX_BATCH per transaction; their
        ids in order.

        >>> ids = client.post_many([b"one", b"two"], reward=10**15)  # doctest: +SKIP
        """
        if not inputs:
            raise InvalidInput("nothing to post")
        chat = any(isinstance(x, ChatRequest) for x in inputs)
        info = self.model(model_id, format_version=CHAT_FORMAT if chat else EMBEDDING_FORMAT_VERSION)
        payloads = [job_payload(info.format_version, x, i) for i, x in enumerate(inputs)]  # before any call
        if max(astuple(deadlines)) > MAX_WINDOW:
            raise InvalidInput(f"windows {astuple(deadlines)}: each at most MAX_WINDOW = {MAX_WINDOW} s")
        model = info.model_id
        short = deadlines.shorter_than(self.marketplace.min_windows())
        if short:  # the contract would refuse them (jobs: window too short)
            raise InvalidInput(f"windows below the marketplace's minimums: {', '.join(short)}")
        self._ensure_funds(self.marketplace.job_price(r, reward, len(payloads)))
        ids: list[int] = []
        for start in range(0, len(payloads), MAX_BATCH):
            chunk = payloads[start:start + MAX_BATCH]
            if len(chunk) == 1:
                call = self.marketplace.build_post_job(model, chunk[0], r, reward, deadlines.claim,
                                                       deadlines.commit, deadlines.reveal)
            else:
                call = self.marketplace.build_post_jobs(model, chunk, r, reward, deadlines.claim,
                                                        deadlines.commit, deadlines.reveal)
            ids.extend(e.job_id for e in self.send(call).of(JobPosted))
        return ids

    def post_texts(self, texts: Sequence[str], *, reward: int, r: int = 1, model_id: bytes | str | None = None,
                   deadlines: Deadlines = Deadlines()) -> list[int]:
        """Post one embedding job per text (the default model if only one is active).

        >>> ids = client.post_texts(["first", "second"], reward=10**15, r=3)  # doctest: +SKIP
        """
        if any(not isinstance(t, str) or not t for t in texts):
            raise InvalidInput("texts must be non-empty strings")
        return self.post_many(list(texts), reward=reward, r=r, model_id=model_id, deadlines=deadlines)

    def chat(self, messages: Sequence[dict] | None = None, *, prompt: str | None = None, reward: int,
             r: int = 1, max_tokens: int = 64, temperature_milli: int = 0, top_k: int = 0,
             top_p_micro: int = TOP_P_ONE, seed: int = 0, model_id: bytes | str | None = None,
             deadlines: Deadlines = Deadlines(), timeout: float = 300.0, until: Until = "result",
             settle: bool = False) -> VerifiedResult:
        """Ask the chat model (``client.chat``): post one job, wait, verify the result
        against the settled digest; ``.answer`` holds the generated ids and text.
        Greedy by default; ``temperature_milli`` > 0 samples, replayably, from ``seed``.

        >>> client.chat([{"role": "user", "content": "Capital of France?"}], reward=10**15, r=3).answer.text  # doctest: +SKIP
        'The capital of France is Paris.'
        """
        request = chat_request(messages=messages, prompt=prompt, max_tokens=max_tokens,
                               temperature_milli=temperature_milli, top_k=top_k, top_p_micro=top_p_micro,
                               seed=seed)
        job = self.post(request, reward=reward, r=r, model_id=model_id, deadlines=deadlines)
        info = self.wait([job], timeout=timeout, until=until, settle=settle)[job]
        if not info.status.has_result:
            raise ResultUnavailable(f"job {job} ended {info.status.name} without a result")
        return self.result(job)

    def _ensure_funds(self, price: int) -> None:
        deposited = self.marketplace.balance_of(self.address)
        if deposited >= price:
            return
        shortfall = price - deposited
        wallet = self.pay_token().balance_of(self.address)
        if wallet < shortfall:
            raise InsufficientFunds("", f"need {price} (deposited {deposited}, wallet {wallet}): "
                                        f"short by {shortfall - wallet}")
        self._ensure_allowance(shortfall)

    def _ensure_allowance(self, amount: int) -> None:
        if self.pay_token().allowance(self.address, self.marketplace.address) < amount:
            self.approve(amount)

    # ------------------------------------------------------------ waiting

    def wait(self, job_ids: Iterable[int], *, timeout: float = 300.0, until: Until = "result",
             settle: bool = False, progress: bool | Console = False) -> dict[int, JobInfo]:
        """Poll until every job reaches ``until``; their last views.

        ``until="result"``: a result stands (FINALIZED, or DELIVERED for r = 1 while
        still challengeable) or the job ended without one (UNRESOLVED, CANCELLED).
        ``until="settled"``: a terminal state. ``settle``: finalize your jobs once due
        instead of waiting for a keeper. ``progress``: True or a rich Console to show a
        live display. ``WaitTimeout`` (with the last views) after ``timeout`` seconds.

        >>> infos = client.wait(ids, timeout=120, progress=True)  # doctest: +SKIP
        """
        if until not in ("result", "settled"):
            raise InvalidInput(f"until must be 'result' or 'settled', not {until!r}")
        ids = list(dict.fromkeys(job_ids))
        latest: dict[int, JobInfo] = {}
        pending, stale = set(ids), set(ids)
        give_up = time.monotonic() + timeout
        console = progress if isinstance(progress, Console) else None
        with translate_errors():
            head = self.w3.eth.block_number
        with WaitDisplay(len(ids), console=console, enabled=bool(progress)) as display:
            while True:
                for job_id in stale & pending:
                    latest[job_id] = self.marketplace.job(job_id, block=head)
                pending = {j for j in pending if not _reached(latest[j].status, until)}
                display.update(latest, done=len(ids) - len(pending))
                if not pending:
                    return {j: latest[j] for j in ids}
                if settle:
                    self._finalize_due([latest[j] for j in sorted(pending)])
                if time.monotonic() > give_up:
                    untaken = sorted(j for j in pending if latest[j].nclaimed == 0)
                    hint = f" (none claimed yet: see why(job_id), e.g. {untaken[0]})" if untaken else ""
                    raise WaitTimeout(f"{len(pending)} of {len(ids)} jobs not done after {timeout:.0f}s{hint}",
                                      {j: latest[j] for j in ids})
                time.sleep(self.poll_interval)
                stale, head = self._changed({j: latest[j] for j in pending}, since=head)

    def _changed(self, infos: dict[int, JobInfo], since: int) -> tuple[set[int], int]:
        """Jobs whose view may differ from ``infos`` after block ``since``, and the new head.

        Only a transaction changes a job (one of its events), except a delivery that
        turns FINALIZED when its challenge window ends: re-reading only those keeps a
        wait on thousands of jobs to a few log queries per new block.
        """
        with translate_errors():
            head = self.w3.eth.block_number
            if head <= since:
                return set(), since
            now = self.w3.eth.get_block(head)["timestamp"]
        touched = {e.job_id for e in self.marketplace.job_events(infos, since + 1, to_block=head)}
        return touched | {j for j, i in infos.items()
                          if i.status == JobStatus.DELIVERED and now > i.challenge_end}, head

    def _finalize_due(self, infos: Sequence[JobInfo]) -> list[JobFinalized]:
        """Finalize the jobs among ``infos`` that are due, confirmed by a dry run each."""
        now = self.w3.eth.get_block("latest")["timestamp"]
        due = [i.job_id for i in infos
               if i.finalize_due(now) and self._dry_run(self.marketplace.build_finalize(i.job_id))]
        settled: list[JobFinalized] = []
        for start in range(0, len(due), MAX_ID_BATCH):
            chunk = due[start:start + MAX_ID_BATCH]
            settled += self.send(self.marketplace.build_finalize_many(chunk)).of(JobFinalized)
        return settled

    def _dry_run(self, call: Call) -> bool:
        try:
            with translate_errors():
                self.w3.eth.call({"from": self.address, **call.tx})
        except ContractError:
            return False
        return True

    # ------------------------------------------------------------ results

    def results(self, job_ids: Iterable[int], from_block: int | None = None,
                reveals: Iterable[ResultRevealed] = ()) -> dict[int, VerifiedResult]:
        """Each job's result bytes from its reveal event on chain, verified against the
        digest the chain settled on (``ResultUnavailable`` if a job has none).
        ``from_block``: where the reveals are searched from, no later than the jobs'
        posts (default: the marketplace's deploy block, a scan of its whole history).
        ``reveals``: ResultRevealed events the caller already read (watching the chain),
        checked the same way; only jobs none of them settles are searched for.

        >>> client.results(ids)[ids[0]].embedding[:3]  # doctest: +SKIP
        """
        ids = list(dict.fromkeys(job_ids))
        infos = dict(zip(ids, self.marketplace.jobs(ids)))  # batched views, one block
        missing = {j: i.status.name for j, i in infos.items() if not i.status.has_result}
        if missing:
            raise ResultUnavailable(f"no standing result for jobs {missing}")
        # Trust neither the event's digest nor the node: hash the bytes ourselves.
        honest: dict[int, list[ResultRevealed]] = {j: [] for j in ids}
        for e in reveals:
            if e.job_id in infos and result_digest(e.result) == infos[e.job_id].result_digest:
                honest[e.job_id].append(e)
        unsettled = [j for j in ids if not honest[j]]
        if unsettled:
            start = self.start_block if from_block is None else from_block
            for e in self.marketplace.job_events(unsettled, start, events=["ResultRevealed"]):
                if result_digest(e.result) == infos[e.job_id].result_digest:
                    honest[e.job_id].append(e)
        out = {}
        for j, info in infos.items():
            if not honest[j]:
                raise ResultUnavailable(f"job {j}: no revealed result matches the settled digest "
                                        f"0x{info.result_digest.hex()} (node missing logs?)")
            out[j] = VerifiedResult(job_id=j, model_id=info.model_id, status=info.status,
                                    digest=info.result_digest, result=honest[j][0].result,
                                    providers=tuple(dict.fromkeys(e.provider for e in honest[j])))
        return out

    def result(self, job_id: int) -> VerifiedResult:
        """One job's verified result.

        >>> client.result(256).providers  # doctest: +SKIP
        """
        return self.results([job_id])[job_id]

    def verify(self, job_id: int, result: bytes) -> VerifiedResult:
        """Check result bytes obtained elsewhere against the job's settled digest
        (``ResultMismatch`` if they differ).

        >>> client.verify(256, result_bytes).final  # doctest: +SKIP
        True
        """
        info = self.job(job_id)
        if not info.status.has_result:
            raise ResultUnavailable(f"job {job_id} has no standing result ({info.status.name})")
        if result_digest(result) != info.result_digest:
            raise ResultMismatch(f"job {job_id}: result digest 0x{result_digest(result).hex()} differs from "
                                 f"the settled 0x{info.result_digest.hex()}")
        return VerifiedResult(job_id=job_id, model_id=info.model_id, status=info.status,
                              digest=info.result_digest, result=bytes(result), providers=())

    def verify_and_decode(self, job_id: int) -> np.ndarray:
        """The verified result of an embedding job, decoded to a unit-norm float32 vector.

        >>> client.verify_and_decode(256).shape  # doctest: +SKIP
        (384,)
        """
        return self.result(job_id).embedding

    # ------------------------------------------------------------ actions

    def cancel(self, job_id: int) -> JobFinalized:
        """Withdraw your job while nobody has taken a seat of it (a draw alone does not
        count; r = 1: before its claim); the full price returns to your deposited balance.

        >>> client.cancel(256).client_refund  # doctest: +SKIP
        """
        return self.send(self.marketplace.build_cancel(job_id)).of(JobFinalized)[0]

    def finalize(self, job_ids: Iterable[int]) -> list[JobFinalized]:
        """Settle the given jobs that are due (anyone may); jobs not due are left alone.

        Refunds (unclaimed after the claim deadline, an r = 1 job claimed and not
        delivered by it, no majority, slashed providers' compensation) go to the client's
        deposited balance; ``withdraw`` collects them.

        >>> [f.client_refund for f in client.finalize([256, 257])]  # doctest: +SKIP
        """
        return self._finalize_due([self.job(j) for j in dict.fromkeys(job_ids)])

    def challenge(self, job_id: int) -> JobChallenged:
        """Dispute a delivered r = 1 result inside its window, bonding ``challenge_bond``:
        R_CHALLENGE seats are drawn by stake among the model's providers (the delivering
        one included) and re-execute it.

        >>> client.challenge(256).bond  # doctest: +SKIP
        """
        self._ensure_funds(self.marketplace.challenge_bond(job_id))
        return self.send(self.marketplace.build_challenge(job_id)).of(JobChallenged)[0]

    def _signer(self) -> Signer:
        if self.signer is None:
            raise ConfigError("this client has no account: connect with account= or private_key=")
        return self.signer


def _reached(status: JobStatus, until: Until) -> bool:
    return status.settled or (until == "result" and status.has_result)
