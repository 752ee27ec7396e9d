"""Why nobody takes a job (client/diagnosis.py, ``Client.why``, ``verinfer why``): every
reason an agent would have, read from the chain for the job as posted."""
from __future__ import annotations

from dataclasses import astuple

from click.testing import CliRunner
from sdk_helpers import MODEL, PRICE, STAKE, WINDOWS, advance

from client.cli import main
from client.errors import WaitTimeout
from client.events import JobPosted


def test_a_job_any_provider_takes_has_no_reason(client, bots):
    job = client.post("a fine sentence", reward=PRICE, r=3, deadlines=WINDOWS)
    diagnosis = client.why(job)
    assert diagnosis.reasons == () and diagnosis.takers == len(bots) and diagnosis.seats == 3
    assert "nothing on chain keeps providers away" in diagnosis.summary


def test_a_reward_below_every_price_is_named_with_the_lowest_price(client, bots):
    job = client.post("underpaid", reward=PRICE - 1, r=1, deadlines=WINDOWS)
    reasons = client.why(job).reasons
    assert f"4 of 4 provider(s) ask more than the reward {PRICE - 1} (lowest asking price {PRICE})" in reasons
    assert "0 provider(s) would take a seat; the job needs 1" in reasons


def test_an_input_posted_past_the_sdk_is_named(client, bots, sdk_market):
    # Another client posts raw bytes the SDK would have refused (the contract takes any).
    call = sdk_market.build_post_job(MODEL.model_id, b"\xff\xfe not utf-8", 1, PRICE, *astuple(WINDOWS))
    client.deposit(sdk_market.job_price(1, PRICE, 1))
    [job] = [e.job_id for e in client.send(call).of(JobPosted)]
    [reason] = client.why(job).reasons
    assert reason.startswith("no honest provider can answer its input (not UTF-8")


def test_stake_weight_and_deadline_reasons(client, bots, sdk_market, chain):
    # Two providers unbond everything: no draw weight and no free stake for collateral.
    for bot in bots[:2]:
        bot.send(sdk_market.build_request_unbond(STAKE))
    job = client.post("needs three", reward=PRICE, r=3, deadlines=WINDOWS)
    diagnosis = client.why(job)
    assert "2 provider(s) lack the free stake for the collateral" in " ".join(diagnosis.reasons)
    assert "2 provider(s) would take a seat; the job needs 3" in diagnosis.reasons
    advance(chain, WINDOWS.claim + 1)
    assert client.why(job).reasons[-1] == "its claim deadline passed: finalize refunds the untaken seats"
    out = CliRunner().invoke(main, ["--network", "ethereum:local:test", "--account", "TEST::2", "--marketplace",
                                    client.marketplace.address, "why", str(job)])
    assert out.exit_code == 0 and "the job needs 3" in out.output and "claim deadline passed" in out.output


def test_a_wait_that_times_out_on_untaken_jobs_points_to_why(client, bots):
    job = client.post("nobody takes me", reward=PRICE - 1, deadlines=WINDOWS)
    try:
        client.wait([job], timeout=0.05)
    except WaitTimeout as exc:
        assert f"none claimed yet: see why(job_id), e.g. {job}" in str(exc)
    else:
        raise AssertionError("the wait should time out")
