"""A deployed marketplace on anvil with funded providers and a client, and a driver
that runs in-process agents step by step (for the job-logic tests)."""

import time


from client.events import JobPosted
from client.protocol import JobStatus
from provider.agent.config import AgentConfig
from provider.agent.main import build_agent
from provider.agent.store import TxStatus
from tests.support.anvil import funded_account
from tests.support.market import deploy_market, draw, holders, transact

REWARD = 10**18
STAKE = 10**21
# Generous windows (chain time runs with the wall clock): a slow, loaded machine must
# not see a deadline pass before the test moves time on itself.
WINDOW = 1800
CHALLENGE_WINDOW = 900
SENTENCES = [b"The cat sits on the mat.", b"Stock markets fell sharply today.",
             b"A quick brown fox jumps over the lazy dog."]
SINGLE = [b"Integer inference is reproducible.", b"Verifiable compute on a blockchain."]


class Env:
    def __init__(self, anvil, engine):
        self.anvil, self.engine, self.w3 = anvil, engine, anvil.w3()
        self.owner, self.client = funded_account(8), funded_account(9)
        self.start_block, self.market, self.token = deploy_market(
            self.w3, self.owner, engine.model_id, CHALLENGE_WINDOW)
        for who in (funded_account(1), funded_account(2), funded_account(3), self.client):
            # Minted by the owner: the providers' nonces belong to their agents alone.
            transact(self.w3, self.owner, self.token.build_mint(who.address, 10**24))
        transact(self.w3, self.client, self.token.build_approve(self.market.address, 10**24))

    def agent(self, index: int, tmp_path, result_hook=None, tx_confirmations: int = 1,
              w3=None, **sections):
        """An agent set up (registered, staked) on this market, talking to the chain
        through `w3` (default: anvil directly); `sections` replace the config sections
        given here (e.g. watcher={"confirmations": 2})."""
        config = AgentConfig(**{
            "models": ["0x" + self.engine.model_id.hex()],
            "db_path": tmp_path / f"agent{index}.db",
            "dashboard": False, "metrics": {"enabled": False},
            "policy": {"stake": STAKE, "price": REWARD},
            "claim_batch": {"max_wait": 0.01}, "engine_batch": {"max_wait": 0.01},
            "watcher": {"confirmations": 0, "poll_interval": 0.05}, "tx": {"confirmations": 1},
            **sections,
        })
        agent = build_agent(config, w3 or self.w3, funded_account(index),
                            marketplace=self.market.address, start_block=self.start_block,
                            engines={self.engine.model_id: self.engine}, result_hook=result_hook)
        agent.txm.setup()
        agent.worker.setup()  # registers and stakes on first start
        # Deeper confirmations only after setup: on automine, blocks come only from txs.
        agent.txm.config = agent.txm.config.model_copy(update={"confirmations": tx_confirmations})
        return agent

    def post(self, inputs, r, reward=REWARD, claim_window=WINDOW) -> list[int]:
        receipt = transact(self.w3, self.client, self.market.build_post_jobs(
            self.engine.model_id, inputs, r, reward, claim_window, WINDOW, WINDOW))
        return [e.job_id for e in self.market.decode_receipt(receipt) if isinstance(e, JobPosted)]

    def status(self, job_id) -> JobStatus:
        return self.market.job(job_id).status

    def draw(self, job_id, accept=None, tries=200) -> list[str]:
        """The round's seats drawn by the owner until `accept` (tests.support.market.draw)."""
        return draw(self.anvil, self.market, self.owner, job_id, accept, tries)

    def holders(self, job_id) -> set[str]:
        return holders(self.market, job_id)

    def advance(self, seconds: int) -> None:
        self.anvil.rpc("evm_increaseTime", seconds)
        self.anvil.rpc("evm_mine")


def drive(agents, done, rounds=200, anvil=None):
    """Step every agent in turn until done(); with `anvil`, mine a block per round
    (confirmations need blocks, and on automine only transactions make them)."""
    for _ in range(rounds):
        for agent in agents:
            agent.step()
        if done():
            return
        if anvil is not None:
            anvil.rpc("evm_mine")
        time.sleep(0.02)  # lets the batchers' max_wait pass
    raise AssertionError("agents did not get there")


def wait_for(condition, timeout=30.0) -> None:
    """Poll `condition` until it holds; AssertionError after `timeout` seconds."""
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def assert_clean_transactions(env, store, address) -> None:
    """Every intent confirmed once, nonces contiguous: no duplicate, nothing skipped."""
    intents = store.txs()
    assert all(t.status is TxStatus.CONFIRMED for t in intents)
    assert [t.nonce for t in intents] == list(range(len(intents)))
    assert env.w3.eth.get_transaction_count(address) == len(intents)
