"""The ``verinfer`` CLI, in process (click's CliRunner) against the embedded chain."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sdk_helpers import MODEL, WINDOWS, advance, embedding_bytes

from client.cli import main
from client.protocol import JobStatus


@pytest.fixture
def verinfer(funded_clients, market_address):
    """run(*args, ok=True) -> CliRunner result, as clients[0] (TEST::2) on the embedded chain."""
    runner = CliRunner()

    def run(*args: str, ok: bool = True, input: str | None = None):
        result = runner.invoke(main, ["--network", "ethereum:local:test", "--account", "TEST::2",
                                      "--marketplace", market_address, *args], input=input)
        assert (result.exit_code == 0) == ok, result.output
        return result

    return run


def test_read_commands(verinfer, bots):
    assert MODEL.name in verinfer("models").output
    out = verinfer("providers", "--model", "0x" + MODEL.model_id.hex()).output
    assert all(bot.address in out for bot in bots)
    assert "0.002 VIT" in out  # asking price 2e15 in an 18-decimal token
    out = verinfer("estimate", "--reward", "0.001", "--r", "3", "--count", "2").output
    assert "0.00615 VIT" in out  # 2 jobs x 3 seats x (0.001 + 2.5% fee)
    # below every provider's declared price (0.002): nobody would take the jobs
    assert "only 0 provider(s) take this reward; jobs with r = 3 would wait unclaimed" in out
    out = verinfer("estimate", "--reward", "0.002", "--r", "3").output
    assert "only" not in out and out.split("│")[-2].strip() == str(len(bots))
    assert "1000 VIT" in verinfer("balance").output


def test_post_file_that_is_not_utf8_is_a_usage_error(verinfer, tmp_path):
    lines = tmp_path / "inputs.txt"
    lines.write_bytes(b"fine\nnot \xff utf-8\n")
    result = verinfer("post", "--reward", "0.001", "--file", str(lines), ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for --file: line 2 is not UTF-8 (invalid start byte at byte 4 of the " \
           "line)" in result.output


def test_post_file_wait_result_history(verinfer, bots, tmp_path, sdk_market):
    lines = tmp_path / "inputs.txt"
    lines.write_text("first line\n\nsecond line\n")
    out = verinfer("post", "--reward", "0.001", "--file", str(lines), "third from argv").output
    ids = [int(x) for x in out.split()]
    assert len(ids) == 3
    results = [embedding_bytes(i) for i in range(3)]
    bots[1].deliver(ids, results)

    assert "delivered" in verinfer("wait", *map(str, ids), "--timeout", "30").output
    records = json.loads(verinfer("result", "--json", *map(str, ids)).output)
    assert [r["job_id"] for r in records] == ids
    assert all(r["status"] == JobStatus.DELIVERED.name and not r["final"] for r in records)
    assert abs(np.linalg.norm(records[0]["embedding"]) - 1) < 1e-5
    assert records[2]["providers"] == [bots[1].address]

    out = verinfer("history", str(ids[0])).output
    assert "JobPosted" in out and "ResultRevealed" in out
    assert "delivered" in verinfer("status", *map(str, ids)).output


def test_cancel_refund_withdraw_and_errors(verinfer, chain, other_client):
    windows = ["--claim-window", str(WINDOWS.claim)]
    first, second = (int(verinfer("post", "--reward", "0.001", "--r", "2", *windows, text).output) for text in "ab")
    assert "refunded 0.00205 VIT" in verinfer("cancel", str(first)).output
    assert "nothing due yet" in verinfer("refund", str(second)).output

    foreign = other_client.post(b"not yours", reward=10**15, r=2, deadlines=WINDOWS)
    failed = verinfer("cancel", str(foreign), ok=False)
    assert "Unauthorized: jobs: not client" in failed.output
    assert "JobNotFound" in verinfer("status", "12345", ok=False).output
    assert "Usage" in verinfer("post", "--reward", "-1", "x", ok=False).output

    advance(chain, WINDOWS.claim + 1)
    out = verinfer("refund", "--withdraw", str(second)).output
    assert "CANCELLED, refund 0.00205 VIT" in out
    assert "withdrew 0.0041 VIT" in out


def test_challenge_command(verinfer, bots, sdk_market):
    job = int(verinfer("post", "--reward", "0.001", "disputed").output)
    bots[0].deliver([job], [embedding_bytes(7)])
    assert "bond 0.004 VIT" in verinfer("challenge", str(job)).output
    assert "challenged" in verinfer("status", str(job)).output
    assert "InvalidJobState: jobs: not challengeable" in verinfer("challenge", str(job), ok=False).output
