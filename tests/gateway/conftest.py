"""A gateway process in front of a marketplace on anvil with provider agents running
(module-scoped: starting agents costs seconds), and the API keys it knows."""

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.keys import KeyPolicy, KeyStore
from tests.e2e.cluster import CLIENT, REWARD, Cluster, python_env

REPO = Path(__file__).resolve().parents[2]


class GatewayProcess:
    """`verinfer serve` as its own process (the key in its environment, as an operator
    would keep it off the command line); its URL once it answers, its log."""

    def __init__(self, cluster: Cluster, workdir: Path, keys: Path, *args: str):
        self.log = workdir / "gateway.log"
        self.out = workdir / "gateway.out"
        env = python_env() | {"VERINFER_PRIVATE_KEY": cluster.key(CLIENT)}
        command = [sys.executable, "-m", "client.cli", "--rpc", cluster.anvil.url, "--marketplace",
                   cluster.market.address, "serve", "--reward", str(REWARD / 10**18), "--port", "0",
                   "--keys", str(keys), "--deposit", "50", "--timeout", "120", "--data-dir", str(workdir / "data"), *args]
        with open(self.out, "w") as out, open(self.log, "w") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=log)
        self.url = self._await_url(timeout=60)

    def _await_url(self, timeout: float) -> str:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            for line in self.out.read_text().splitlines():
                if " on http" in line:
                    return line.rsplit(" ", 1)[1]
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"gateway did not start (exit {self.proc.poll()}):\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def audit_of(gateway, key: str, job_id: int, timeout: float = 400) -> dict:
    """The gateway's audit record of a job, once done, and its counters."""
    give_up = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{gateway.url}/audit", params={"job": job_id},
                           headers={"Authorization": f"Bearer {key}"}).json()
        if answer["data"] and answer["data"][0]["state"] == "done":
            return answer
        assert time.monotonic() < give_up, f"no finished audit of job {job_id}: {answer}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster(engine, tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("gateway-cluster"), engine, agents=2)
    try:
        cluster.start_agents()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gateway-keys") / "keys.json"


@pytest.fixture(scope="module")
def api_keys(cluster, keys_file) -> dict[str, str]:
    """Secrets by name: `app` (no limit), `tight` (limited to one r = 1 job) and
    `majority` (its requests default to r = 3, awaited until settled)."""
    store = KeyStore(keys_file)
    one_job = cluster.market.job_price(1, REWARD, 1)
    return {"app": store.create("app")[1], "tight": store.create("tight", spend_limit=one_job)[1],
            "majority": store.create("majority", policy=KeyPolicy(r=3, until="settled"))[1]}


@pytest.fixture(scope="module")
def gateway(cluster, api_keys, keys_file, tmp_path_factory):
    process = GatewayProcess(cluster, tmp_path_factory.mktemp("gateway"), keys_file, "--batch-window", "0.3")
    yield process
    process.stop()
    assert process.proc.returncode == 0, process.log.read_text()[-3000:]

