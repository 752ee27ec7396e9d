"""A foreign client that knows only docs/protocol.md: the doc's worked example, run as
written in a process of its own, posts an r = 1 and an r = 3 job with plain web3.py to a
marketplace on anvil served by three in-process provider agents, and its results are
checked here with plain web3.py against the chain and against this project's engine.

Only the provider side (the agents, the deployment) and the comparisons use this
project's code; the client side imports nothing from it (checked on the example's
source). The doc's other facts (event signatures, limits, defaults, the window rule) are
checked against the ABI and the sources, so the page fails a test when it drifts.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from eth_abi import encode
from eth_utils import keccak
from web3 import Web3

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "protocol.md"
ABI_DIR = REPO / "client" / "abi"
# What a foreign client may use: web3.py and its own packages, numpy, the standard library.
ALLOWED_IMPORTS = {"web3", "eth_account", "eth_utils", "eth_abi", "numpy",
                   "json", "os", "sys", "time", "pathlib"}
# anvil's default test account 4: no role in agent_market.Env (providers 1-3, owner 8,
# its own client 9).
FOREIGN_KEY = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a"
TEXTS = {1: "A foreign client posts this sentence with plain web3.py.",
         3: "Three providers embed this sentence and agree on every byte."}


def doc_text() -> str:
    return DOC.read_text()


def worked_example() -> str:
    """The doc's worked example: the python block that starts with its file name."""
    blocks = re.findall(r"```python\n(.*?)```", doc_text(), flags=re.S)
    [script] = [b for b in blocks if b.startswith('"""foreign_client.py')]
    return script


def marketplace_abi() -> list[dict]:
    return json.loads((ABI_DIR / "Marketplace.json").read_text())


def test_the_worked_example_imports_nothing_from_this_project():
    imported = set()
    for node in ast.walk(ast.parse(worked_example())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS


def test_the_event_signatures_in_the_doc_are_the_abi_s():
    abi = {e["name"]: e for e in marketplace_abi() if e["type"] == "event"}
    quoted = re.findall(r"^\s*(\w+)\(([\w,\[\]]*)\)$", doc_text(), flags=re.M)
    assert {name for name, _ in quoted} >= {"JobPosted", "ResultRevealed", "JobFinalized", "JobChallenged"}
    for name, types in quoted:
        assert types == ",".join(i["type"] for i in abi[name]["inputs"]), name
    # JobPosted's layout as section 3 states it: three indexed topics, the rest in data.
    indexed = [i["name"] for i in abi["JobPosted"]["inputs"] if i["indexed"]]
    assert indexed == ["job_id", "client", "model_id"]
    # "status is field 6 of job, result_digest field 17"
    [job_view] = [f for f in marketplace_abi() if f.get("name") == "job" and f["type"] == "function"]
    fields = [c["name"] for c in job_view["outputs"][0]["components"]]
    assert fields.index("status") == 6 and fields.index("result_digest") == 17


def test_the_doc_s_numbers_are_the_code_s():
    from client.encoding import EMBEDDING_SIZE
    from client.protocol import MAX_INPUT, MAX_RESULT, MAX_WINDOW, job_id_of, seal
    from client.records import Deadlines
    from provider.engine.tokenization import MAX_TOKENS

    doc = doc_text()
    params = (REPO / "contracts" / "modules" / "params.vy").read_text()
    jobs = (REPO / "contracts" / "modules" / "jobs.vy").read_text()

    def const(name: str) -> int:  # a params.vy constant such as `7 * 86_400`
        expr = re.search(rf"^{name}: constant\(uint256\) = ([\d_ *]+)$", params, re.M).group(1)
        return eval(expr, {"__builtins__": {}})  # digits, `_` and `*` only (the regex)

    assert "**1..2048 bytes**" in doc and MAX_INPUT == 2048
    assert "at most 1,024 bytes" in doc and MAX_RESULT == 1024
    assert "**256 tokens**" in doc and MAX_TOKENS == 256
    assert "**385 bytes**" in doc and EMBEDDING_SIZE == 385
    assert "job_id = batch_id << 8 | index" in doc and job_id_of(1, 0) == 256 and job_id_of(2, 0) == 512
    assert "**600 s each**" in doc and Deadlines() == Deadlines(600, 600, 600)
    assert "default 3,600 s, bounded 60 s .. 7 days" in doc
    assert (const("DEFAULT_CHALLENGE_WINDOW"), const("MIN_CHALLENGE_WINDOW"), const("MAX_CHALLENGE_WINDOW")) == (
        3600, 60, 7 * 86_400)
    assert "default 250 = 2.5%, at most 1,000" in doc
    assert (const("DEFAULT_FEE_BPS"), const("MAX_FEE_BPS")) == (250, 1000)
    assert "default 50,000 = 5x the" in doc and const("DEFAULT_COLLATERAL_BPS") == 50_000
    assert "default 30% / 60% / 10%" in doc
    assert (const("DEFAULT_SLASH_CLIENT_BPS"), const("DEFAULT_SLASH_HONEST_BPS")) == (3000, 6000)
    # Section 8's window rule: each window from the owner's minimum (min_windows(), default
    # 120 s each, settable 10 s .. 1 day) to 30 days. When the contract's rule changes,
    # section 8 must say the new one.
    assert "at most **30 days**" in doc and MAX_WINDOW == 30 * 86_400
    assert "default **120 s each**" in doc and const("DEFAULT_MIN_WINDOW") == 120
    assert "within **10 s .. 1 day**" in doc and (const("MIN_MIN_WINDOW"), const("MAX_MIN_WINDOW")) == (10, 86_400)
    assert '"jobs: window too short"' in jobs and "def min_windows()" in params, (
        "jobs.vy's window rule changed: update docs/protocol.md section 8")
    # Section 9's drawn seats: the weight floor's default and the redraw delay.
    from client.protocol import WEIGHT_SHIFT, redraw_delay
    assert "default\n10**18 units" in doc and const("DEFAULT_MIN_DRAW_STAKE") == 10**18
    assert "`>> 16`" in doc and WEIGHT_SHIFT == 16
    assert "**half the minimum claim window**\n  (default 60 s)" in doc and redraw_delay(const("DEFAULT_MIN_WINDOW")) == 60
    # Section 6's seal, written from the doc with eth_abi, is the SDK's.
    provider, digest, salt = "0x" + "22" * 20, keccak(b"result"), bytes(range(32))
    from_doc = keccak(encode(["uint256", "address", "bytes32", "bytes32"], [769, provider, digest, salt]))
    assert from_doc == seal(769, provider, digest, salt)


# --- the foreign client against agents on anvil -------------------------------------------

def run_example(script: Path, env: dict, r: int, agents, drive) -> dict:
    """Run the doc's example for one job while the agents are stepped here; its JSON line."""
    proc = subprocess.Popen([sys.executable, str(script), str(r), TEXTS[r]], cwd=script.parent,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        drive(agents, lambda: proc.poll() is not None, rounds=20_000)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def check_on_chain(w3: Web3, market, job_id: int, text: str, r: int, expected: bytes) -> None:
    """What the doc promises, read back with plain web3.py: the posted input, one
    ResultRevealed per seat whose keccak is the job's result_digest, the engine's bytes."""
    job = market.functions.job(job_id).call()
    [posted] = market.events.JobPosted().get_logs(from_block=0, argument_filters={"job_id": job_id})
    assert posted.args.input == text.encode() and job.input_hash == keccak(text.encode())
    assert (posted.args.r, job.r) == (r, r)
    revealed = market.events.ResultRevealed().get_logs(from_block=0, argument_filters={"job_id": job_id})
    assert sorted(e.args.seat for e in revealed) == list(range(r))
    for event in revealed:
        assert bytes(event.args.result) == expected
        assert keccak(bytes(event.args.result)) == job.result_digest == event.args.digest


@pytest.mark.anvil
def test_a_foreign_client_posts_waits_verifies_and_decodes(node, engine, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "tests" / "agent"))  # the agent tests' provider side
    from agent_market import REWARD, Env, drive

    from client.deployments import Deployment, record_deployment
    from client.encoding import decode_embedding

    env = Env(node, engine)
    agents = [env.agent(i, tmp_path) for i in (1, 2, 3)]
    # The deployment record the doc tells a client to read, written by the project's writer.
    monkeypatch.setenv("VERINFER_HOME", str(tmp_path / "home"))
    record_deployment(Deployment(chain_id=env.w3.eth.chain_id, marketplace=env.market.address,
                                 block=env.start_block, network="ethereum:local:foundry",
                                 model_ids=("0x" + engine.model_id.hex(),)))
    script = tmp_path / "foreign_client.py"
    script.write_text(worked_example())
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("VERINFER_")} | {
        "RPC_URL": node.url, "PRIVATE_KEY": FOREIGN_KEY, "VERINFER_ABI_DIR": str(ABI_DIR),
        "VERINFER_HOME": str(tmp_path / "home"), "TIMEOUT": "120"}

    w3 = Web3(Web3.HTTPProvider(node.url))
    market = w3.eth.contract(address=env.market.address, abi=marketplace_abi(), decode_tuples=True)
    started = time.monotonic()
    for r in (1, 3):
        out = run_example(script, child_env, r, agents, drive)
        job_id, text = out["job_id"], TEXTS[r]
        [expected] = engine.embed([text.encode()])
        assert job_id & 0xFF == 0 and job_id >> 8 == market.functions.next_batch_id().call() - 1
        assert out["reward"] == REWARD  # every agent's price: the r-th lowest is REWARD
        assert out["status"] == (1 if r == 1 else 3) and out["final"] is (r == 3)  # DELIVERED / FINALIZED
        assert out["result"] == "0x" + expected.hex() and out["digest"] == "0x" + keccak(expected).hex()
        check_on_chain(w3, market, job_id, text, r, expected)
        # The doc's decoding is the SDK's, to the bit.
        embedding = np.array(out["embedding"], dtype=np.float32)
        assert np.array_equal(embedding, decode_embedding(expected))
        assert abs(float(np.linalg.norm(embedding)) - 1.0) < 1e-6
    print(f"foreign client: r = 1 and r = 3 served in {time.monotonic() - started:.1f} s")
