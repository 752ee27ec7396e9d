"""The demo as a new user runs it (`ape run demo`, in its own process): it ends with its
report, tells the same story every run (seat draws picked on the local chain, and said
so), then keeps the marketplace up behind the gateway, whose printed `openai` snippet
works; Ctrl-C ends it cleanly. It prints no Python warning and none of ape's INFO lines."""
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from openai import OpenAI

from client.encoding import decode_embedding
from tests.e2e.cluster import python_env

REPO = Path(__file__).resolve().parents[2]
NOISE = re.compile(r"Warning|warnings\.warn|^INFO:|^WARNING:|Traceback")


class Demo:
    """`ape run demo --port 0 [args]` in its own process, read up to the end of the
    snippet it prints once the gateway answers; `stop()` sends Ctrl-C and returns the
    whole output (stdout and stderr)."""

    def __init__(self, *args: str):
        ape = Path(sys.executable).with_name("ape")
        self.proc = subprocess.Popen([str(ape), "run", "demo", "--port", "0", *args], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.errors: list[str] = []
        self.reader = threading.Thread(target=lambda: self.errors.extend(self.proc.stderr), daemon=True)
        self.reader.start()  # never blocks the demo
        self.lines: list[str] = []
        for line in self.proc.stdout:
            self.lines.append(line)
            found = re.search(r"Verinfer gateway \(OpenAI API\) on (http://127\.0\.0\.1:\d+/v1)", line)
            if found:
                break
        else:
            raise AssertionError("".join(self.lines)[-3000:] + "".join(self.errors)[-3000:])
        self.url = found.group(1)
        more = []  # the explorer's URL, then the snippet
        while not more or "(end of snippet)" not in more[-1]:
            more.append(next(self.proc.stdout))
        self.lines += more
        self.snippet = "".join(more)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        try:
            rest, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate()
        self.reader.join(timeout=10)
        return "".join(self.lines) + rest + "".join(self.errors)


@pytest.mark.slow
def test_demo_tells_its_story_then_serves_the_openai_api(engine):
    demo = Demo()
    try:
        url, snippet = demo.url, demo.snippet
        # The printed snippet, as a user would paste it (the demo's jobs keep running).
        assert f'OpenAI(base_url="{url}", api_key="none")' in snippet
        model = re.search(r'embeddings.create\(model="([^"]+)"', snippet).group(1)
        reply = OpenAI(base_url=url, api_key="none", timeout=120).embeddings.create(model=model, input=["hello world"])
        extension = reply.data[0].model_extra["verinfer"]
        expected = decode_embedding(engine.embed(["hello world"])[0])
        assert np.array_equal(np.asarray(reply.data[0].embedding, dtype=np.float32), expected)
        assert extension["status"] == "delivered"
        chat_model = re.search(r'chat.completions.create\(model="([^"]+)"', snippet).group(1)
        chat = OpenAI(base_url=url, api_key="none", timeout=120).chat.completions.create(
            model=chat_model, messages=[{"role": "user", "content": "What is the capital of France?"}])
        assert chat.choices[0].message.content == "The capital of France is Paris."
        # The explorer page's data shows the demo's jobs (11) and the two just asked.
        state, give_up = {}, time.monotonic() + 60
        while state.get("totals", {}).get("jobs", 0) < 13 and time.monotonic() < give_up:
            time.sleep(0.5)
            state = httpx.get(url.removesuffix("/v1") + "/explorer/state", timeout=30).json()
        assert state["totals"]["jobs"] == 13, state.get("totals")
        assert {p["address"] for p in state["providers"]} >= {extension["providers"][0]}
    finally:
        output = demo.stop()
    assert demo.proc.returncode == 0, output[-3000:]
    assert re.search(r"done in \d+s", output), output[-3000:]
    text = " ".join(output.split())  # rich wraps lines at the console's width
    assert ("Seats are drawn at random on a live chain: with its stake share s = 0.33, mallory would win a "
            "majority of a job's 3 seats with probability 3s^2 - 2s^3 = 25.9%. On this local chain the demo "
            "picked, for each job, the block whose draw gives mallory exactly one seat") in text
    assert "6 jobs finalized; mallory slashed on 6 of them" in text
    assert ("client asked 'What is the capital of France?'; verified answer (stop, 8 tokens, by ") in text
    assert ("The capital of France is Paris.; mallory answered 'The capital of France is Berlin.' and was "
            "slashed") in text
    assert "3 delivered" in text and "1 differ (by mallory)" in text
    assert re.search(r"re-executed by (alice|bob|mallory), (alice|bob|mallory), (alice|bob|mallory) \(3 seats", text)
    assert "client verified all 10 results" in text
    assert "mallory now serves no model" in text
    noise = [line for line in output.splitlines() if NOISE.search(line)]
    assert noise == [], "\n".join(noise)


@pytest.mark.slow
@pytest.mark.anvil
def test_verinfer_chat_against_the_demo_marketplace_on_anvil():
    """On anvil the demo's marketplace is reachable by other processes: the `verinfer chat`
    command it prints gets a verified r = 3 answer."""
    demo = Demo("--network", "ethereum:local:foundry")
    try:
        command = next(line for line in demo.proc.stdout if line.startswith("verinfer --network"))
        demo.lines.append(command)
        done = subprocess.run(shlex.split(command), cwd=REPO, capture_output=True, text=True, timeout=300,
                              env=python_env())
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.splitlines()[0] == "The capital of France is Paris."
        assert re.search(r"job \d+ · stop · 8 tokens · verified against 0x[0-9a-f]+\.\.\. · [12] provider\(s\) · final",
                         done.stdout), done.stdout
    finally:
        output = demo.stop()
    assert demo.proc.returncode == 0, output[-3000:]
