"""The explorer page in a real browser: headless Chromium (Debian's `chromium`, installed
here where missing) driven by Playwright, on `verinfer serve` in front of anvil with two
provider agents. The page is loaded first; then jobs are posted through the gateway, a
model with a hostile name and a provider serving it are registered, and the page shows
them all without a reload, the name as text. A screenshot lands in artifacts/explorer.png."""

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import openai
import pytest
from eth_utils import keccak

from tests.e2e.cluster import FUNDS, STAKE
from tests.support.anvil import funded_account
from tests.support.market import transact

pytestmark = pytest.mark.anvil

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "artifacts" / "explorer.png"
MODEL = "all-MiniLM-L6-v2"
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="pwned=2">'
NEWCOMER = 5  # test account of the provider registered while the page is open


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed with apt-get where missing (CI runs as root)."""
    path = shutil.which("chromium")
    if path is None:
        if shutil.which("apt-get") is None:
            pytest.skip("chromium is not installed and apt-get is not available to install Debian's package")
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run("apt-get update && apt-get install -y chromium", shell=True, check=True, env=env,
                       timeout=900)
        path = shutil.which("chromium")
        assert path is not None, "apt-get installed chromium, yet it is not on PATH"
    return path


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # The system browser: Playwright never downloads one here.
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


def job_row(job_id: int, status: str | None = None) -> str:
    return f'tr.job[data-job="{job_id}"]' + (f'[data-status="{status}"]' if status else "")


def test_the_page_follows_jobs_and_providers_without_reload(gateway, api_keys, cluster, browser, tmp_path):
    root = gateway.url.removesuffix("/v1")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requests_out: list[str] = []
    page.on("request", lambda request: requests_out.append(request.url))

    # Public without a key, while the API needs one.
    assert httpx.get(f"{gateway.url}/models").status_code == 401
    page.goto(root + "/")
    page.wait_for_selector("tr.provider", timeout=30_000)
    assert page.title() == "Verinfer explorer"
    page.evaluate("window.loadedOnce = true")
    first = page.locator("#total-jobs").inner_text()

    client = openai.OpenAI(base_url=gateway.url, api_key=api_keys["app"])
    quick = client.embeddings.create(model=MODEL, input=["The page is open.", "Jobs flow in."])
    quick_ids = [item.model_extra["verinfer"]["job_id"] for item in quick.data]
    for job_id in quick_ids:
        page.wait_for_selector(job_row(job_id, "delivered"), timeout=60_000)
    path = page.locator(f"{job_row(quick_ids[0])} .step").all_inner_texts()
    assert [step.split()[0] for step in path] == ["posted", "delivered"]

    settled: dict = {}
    majority = threading.Thread(target=lambda: settled.update(answer=client.embeddings.create(
        model=MODEL, input="Three providers agree.", extra_body={"verinfer": {"r": 3, "until": "settled"}})))
    majority.start()

    # A model anyone could name, and a provider serving only it (so it takes no seat of
    # the jobs above), registered while the page is open.
    hostile_id = keccak(b"explorer hostile model")
    transact(cluster.w3, cluster.owner, cluster.market.build("register_model", hostile_id, HOSTILE,
                                                              keccak(b"w"), 1))
    newcomer = funded_account(NEWCOMER)
    transact(cluster.w3, cluster.owner, cluster.token.build_mint(newcomer.address, FUNDS))
    transact(cluster.w3, newcomer, cluster.token.build_approve(cluster.market.address, STAKE))
    transact(cluster.w3, newcomer, cluster.market.build_register([hostile_id], 1))
    transact(cluster.w3, newcomer, cluster.market.build_stake(STAKE))

    majority.join(180)
    assert "answer" in settled, "the r = 3 request did not settle"
    r3_id = settled["answer"].data[0].model_extra["verinfer"]["job_id"]
    page.wait_for_selector(job_row(r3_id, "finalized"), timeout=60_000)
    page.wait_for_selector(f'tr.provider[data-provider="{newcomer.address}"]', timeout=30_000)
    hostile_row = page.locator(f'tr.model[data-model="0x{hostile_id.hex()}"] .model-name')
    hostile_row.wait_for(timeout=30_000)

    assert page.evaluate("window.loadedOnce") is True  # the same document all along: no reload
    steps = [step.split()[0] for step in page.locator(f"{job_row(r3_id)} .step").all_inner_texts()]
    assert steps[0] == "posted" and steps[-1] == "finalized"
    assert {"drawn", "claimed", "sealed", "revealed"} <= set(steps) and steps.count("revealed") == 3
    assert page.locator("tr.provider").count() == 3
    assert page.locator("#total-jobs").inner_text() != first
    newcomer_models = page.locator(f'tr.provider[data-provider="{newcomer.address}"] td').last.inner_text()
    assert newcomer_models == HOSTILE  # the name as text, in the providers table too
    assert hostile_row.inner_text() == HOSTILE
    assert page.evaluate("typeof window.pwned") == "undefined" and errors == []
    assert {url.split("/")[2] for url in requests_out} == {root.split("/")[2]}  # nothing from elsewhere

    html = httpx.get(root + "/").text
    assert HOSTILE not in html and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    state = httpx.get(root + "/explorer/state").json()
    assert {j["job_id"] for j in state["jobs"]} >= {*quick_ids, r3_id}
    assert int(state["totals"]["stake"]) == sum(cluster.market.provider(p["address"]).total_stake
                                                for p in state["providers"])

    shot = tmp_path / "explorer.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
    (ARTIFACT.parent / "explorer-state.json").write_text(json.dumps(state, indent=1))
    page.close()
