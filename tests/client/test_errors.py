"""Every revert string is mapped to a named error, and real reverts raise it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import snekmate
from eth_abi import encode
from sdk_helpers import MODEL, REWARD, WINDOWS, advance, draw, embedding_bytes, seated
from web3.exceptions import ContractLogicError

from client import Client
from client.abi import CONTRACTS as CONTRACT_NAMES
from client.deployments import Deployment, record_deployment
from client.errors import (REVERTS, ConfigError, DeadlinePassed, DeploymentNotFound, InsufficientFunds,
                           InvalidArgument, InvalidJobState, JobNotFound, MarketplacePaused, ModelNotFound,
                           RpcUnavailable, SealMismatch, TooEarly, TransactionTimeout, Unauthorized, UnknownRevert,
                           VerinferError, error_for_revert, revert_reason)
from client.protocol import new_salt
from client.signer import Signer

REPO = Path(__file__).resolve().parents[2]
SNEKMATE = Path(next(iter(snekmate.__path__)))
_REASON = re.compile(r'"([a-z0-9_]+: [^"\n]+)"')
_IMPORT = re.compile(r"^from (\S+) import (\w+)", re.M)
_DOCSTRING = re.compile(r'"""[\s\S]*?"""')


def _code(path: Path) -> str:
    """Source without docstrings and comments."""
    return re.sub(r"#.*", "", _DOCSTRING.sub("", path.read_text()))


def _imported(path: Path) -> list[Path]:
    """The .vy modules a Vyper file imports (snekmate's and relative ones)."""
    out = []
    for package, name in _IMPORT.findall(path.read_text()):
        rest = package.lstrip(".")
        if package.startswith("snekmate"):
            base = SNEKMATE.joinpath(*package.split(".")[1:])
        elif package.startswith("."):
            base = path.parent
            for _ in range(len(package) - len(rest) - 1):
                base = base.parent
            base = base.joinpath(*rest.split(".")) if rest else base
        else:
            continue  # vyper built-ins (ethereum.ercs)
        if (base / f"{name}.vy").exists():
            out.append((base / f"{name}.vy").resolve())
    return out


def sources() -> set[Path]:
    """The SDK's contracts (Marketplace, TestToken) and every module they import, transitively.

    Test mocks under contracts/mocks/ are not part of what the SDK talks to.
    """
    todo, seen = [(REPO / "contracts" / f"{name}.vy").resolve() for name in CONTRACT_NAMES], set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(_imported(path))
    return seen


def test_every_revert_string_in_the_contracts_is_mapped():
    paths = sources()
    assert set((REPO / "contracts" / "modules").resolve().glob("*.vy")) <= paths
    found = {m for path in paths for m in _REASON.findall(_code(path))}
    assert {"jobs: seal mismatch", "ownable: caller is not the owner", "erc20: insufficient allowance"} <= found
    assert sorted(found - REVERTS.keys()) == [], "map these in client/errors.py REVERTS"
    assert sorted(REVERTS.keys() - found) == [], "these are no longer in the contracts"


def test_errors_inherit_the_matching_builtins():
    assert isinstance(error_for_revert("jobs: unknown job"), LookupError)
    assert isinstance(error_for_revert("jobs: bad window"), ValueError)
    assert isinstance(error_for_revert("erc20: insufficient allowance"), ValueError)
    assert isinstance(error_for_revert("jobs: not client"), PermissionError)
    assert isinstance(error_for_revert("jobs: claim deadline passed"), TimeoutError)
    assert type(error_for_revert("something: new")) is UnknownRevert
    assert all(issubclass(cls, VerinferError) for cls in REVERTS.values())


def test_revert_reason_from_node_error_data_and_text():
    data = "0x08c379a0" + encode(["string"], ["jobs: bad reward"]).hex()
    assert revert_reason(ContractLogicError("execution reverted", data=data)) == "jobs: bad reward"
    assert revert_reason(RuntimeError("execution reverted: params: paused")) == "params: paused"
    assert revert_reason(RuntimeError("nonce too low")) is None


def test_real_reverts_raise_named_errors(client, bots, chain, owner, sdk_market, signer_for):
    m = client.marketplace
    with pytest.raises(JobNotFound, match="jobs: unknown job"):
        client.job(2**40)
    with pytest.raises(ModelNotFound, match="models: unknown model"):
        client.model(bytes(32))
    with pytest.raises(InvalidArgument, match="jobs: window too short"):
        client.send(m.build_post_job(MODEL.model_id, b"x", 1, REWARD, 0, 1, 1))
    with pytest.raises(InvalidArgument, match="jobs: bad window"):
        client.send(m.build_post_job(MODEL.model_id, b"x", 1, REWARD, 600, 600, 30 * 86_400 + 1))
    with pytest.raises(InsufficientFunds, match="erc20: insufficient allowance"):  # bubbled up from the token
        client.send(m.build_post_job(MODEL.model_id, b"x", 1, REWARD, 120, 120, 120))
    with pytest.raises(InsufficientFunds, match="accounting: nothing to withdraw"):
        client.withdraw()
    with pytest.raises(Unauthorized, match="ownable: caller is not the owner"):
        client.send(m.build("set_paused", True))

    r1 = client.post(b"single", reward=REWARD, r=1, deadlines=WINDOWS)
    bots[0].send(m.build_claim(r1))
    with pytest.raises(InvalidJobState, match="jobs: already claimed"):
        bots[1].send(m.build_claim(r1))
    with pytest.raises(Unauthorized, match="jobs: not your seat"):
        bots[1].send(m.build_deliver(r1, embedding_bytes(2)))
    with pytest.raises(InvalidJobState, match="jobs: use deliver"):  # r = 1 never commits
        bots[0].send(m.build_commit(r1, b"\x01" * 32))
    job = client.post(b"triple", reward=REWARD, r=3, deadlines=WINDOWS)
    holders = seated(bots, draw(chain, m, job, client.signer))
    [idle] = [b for b in bots if b not in holders]
    with pytest.raises(Unauthorized, match="jobs: not drawn"):  # a strict claim reverts
        idle.send(m.build_claim(job))
    salts = [bot.run(job, embedding_bytes(1)) for bot in holders]
    with pytest.raises(SealMismatch, match="jobs: seal mismatch"):
        holders[0].reveal(job, embedding_bytes(1), new_salt())
    with pytest.raises(TooEarly, match="jobs: not finalizable yet"):
        client.send(m.build_finalize(job))
    holders[0].reveal(job, embedding_bytes(1), salts[0])

    advance(chain, WINDOWS.claim + 1)
    late = sdk_market.build_deliver(r1, embedding_bytes(2))
    with pytest.raises(DeadlinePassed, match="jobs: claim deadline passed"):
        bots[0].send(late)

    signer_for(owner).send(m.build("set_paused", True).tx)
    with pytest.raises(MarketplacePaused, match="params: paused"):
        client.post(b"paused", reward=REWARD)


def test_a_mined_revert_is_replayed_for_its_reason(client):
    call = client.marketplace.build_post_job(MODEL.model_id, b"x", 1, REWARD, 0, 1, 1)
    with pytest.raises(InvalidArgument, match="jobs: window too short"):
        client.signer.send(call.tx, gas=300_000)  # skips estimation: mined with status 0


def test_transport_failures(client, monkeypatch, tmp_path, clients, market_address):
    with pytest.raises(TransactionTimeout) as caught:
        Signer(client.w3, client.signer.account, receipt_timeout=0.05).wait(b"\x01" * 32)
    assert isinstance(caught.value, TimeoutError) and caught.value.tx_hash == "0x" + "01" * 32
    with pytest.raises(RpcUnavailable) as unreachable:
        Client.connect(rpc="http://127.0.0.1:9")
    assert isinstance(unreachable.value, ConnectionError)
    with pytest.raises(ConfigError):
        Client.connect(rpc="ws://nowhere")
    with pytest.raises(ConfigError):
        Client.connect(account="TEST::999")

    monkeypatch.setenv("VERINFER_HOME", str(tmp_path))
    with pytest.raises(DeploymentNotFound):
        Client.connect(account=clients[0])
    record_deployment(Deployment(chain_id=client.w3.eth.chain_id, marketplace="0x" + "42" * 20))
    with pytest.raises(DeploymentNotFound, match="no contract"):
        Client.connect(account=clients[0])
    record_deployment(Deployment(chain_id=client.w3.eth.chain_id, marketplace=market_address, block=1))
    with Client.connect(account=clients[0]) as found:
        assert (found.marketplace.address, found.start_block) == (market_address, 1)
        assert found.model().model_id == MODEL.model_id

    read_only = Client.connect(marketplace=market_address)
    assert read_only.models()
    with pytest.raises(ConfigError):
        read_only.withdraw()
