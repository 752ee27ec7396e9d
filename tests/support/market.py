"""Raw deploys of this project's contracts (compiled by ape) on any node, and the SDK's
`Call`s sent from plain accounts: a marketplace ready for agents and clients."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from client.marketplace import Marketplace, Token
from tests.support.anvil import send_signed


def deploy(w3: Web3, account: LocalAccount, contract: str, *args) -> str:
    """Deploy a contract of this project (compiled by ape) with constructor `args`."""
    from ape import project
    from eth_abi import encode

    contract_type = getattr(project, contract).contract_type
    ctor = next((i for i in contract_type.abi if i.type == "constructor"), None)
    types = [p.canonical_type for p in ctor.inputs] if ctor else []
    data = contract_type.deployment_bytecode.to_bytes() + encode(types, list(args))
    receipt = send_signed(w3, account, {"data": data, "gas": 15_000_000})
    assert receipt["status"] == 1, f"deploying {contract} failed"
    return receipt["contractAddress"]


def transact(w3: Web3, account: LocalAccount, call) -> dict:
    """Send an SDK `Call` from `account`; the receipt, which must succeed."""
    receipt = send_signed(w3, account, {"to": call.to, "data": call.data, "gas": 5_000_000})
    assert receipt["status"] == 1, f"{call.function} reverted"
    return receipt


def deploy_market(w3: Web3, owner: LocalAccount, model_id: bytes, challenge_window: int | None = None, *,
                  model_name: str = "all-MiniLM-L6-v2") -> tuple[int, Marketplace, Token]:
    """A TestToken (pay and stake) + Marketplace owned by `owner`, who is also its treasury,
    with `model_id` registered and, if given, the challenge window set:
    (start block, market, token)."""
    token = deploy(w3, owner, "TestToken", "Verinfer Test", "VIT")
    address = deploy(w3, owner, "Marketplace", token, token, owner.address)
    start_block = w3.eth.block_number
    market, token_ = Marketplace(w3, address), Token(w3, token)
    transact(w3, owner, market.build("register_model", model_id, model_name, keccak(b"weights"), 1))
    if challenge_window is not None:
        transact(w3, owner, market.build("set_challenge_window", challenge_window))
    return start_block, market, token_


def draw(anvil, market: Marketplace, keeper: LocalAccount, job_id: int, accept=None, tries: int = 200) -> list[str]:
    """Draw the seats of the job's current round before any agent claims it, by a
    claim_many of `keeper` (not a provider: it takes no seat), and keep the draw only
    if `accept(providers by seat)` holds (default: every seat its own provider);
    otherwise undo it (anvil snapshot) and draw again from a later block, so that a
    test can give each seat its role. Returns the drawn providers by seat."""
    accept = accept or (lambda drawn: len(set(drawn)) == len(drawn))
    for _ in range(tries):
        snapshot = anvil.rpc("evm_snapshot")
        transact(market.w3, keeper, market.build_claim_many([job_id]))
        drawn = [seat.provider for seat in market.round_seats(job_id).values()]
        if accept(drawn):
            return drawn
        anvil.rpc("evm_revert", snapshot)
        # Another parent block, another seed; chain time stays (the seats' take
        # windows run from their draws).
        anvil.rpc("evm_mine")
    raise AssertionError(f"no acceptable draw of job {job_id} in {tries} blocks")


def holders(market: Marketplace, job_id: int) -> set[str]:
    """Providers that took a seat of the job's current round (seats are drawn by stake)."""
    return {seat.provider for seat in market.round_seats(job_id).values() if seat.claimed}
