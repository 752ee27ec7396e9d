"""The demo as a new user runs it (`ape run demo`, in its own process): it ends with its
report, tells the same story every run (seat draws picked on the local chain, and said
so), then keeps the marketplace up behind the gateway, whose printed `openai` snippet
works; Ctrl-C ends it cleanly. It prints no Python warning and none of ape's INFO lines."""
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from openai import OpenAI

from client.encoding import decode_embedding

REPO = Path(__file__).resolve().parents[2]
NOISE = re.compile(r"Warning|warnings\.warn|^INFO:|^WARNING:|Traceback")


@pytest.mark.slow
def test_demo_tells_its_story_then_serves_the_openai_api(engine):
    ape = Path(sys.executable).with_name("ape")
    proc = subprocess.Popen([str(ape), "run", "demo", "--port", "0"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)  # never blocks the demo
    reader.start()
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            found = re.search(r"Verinfer gateway \(OpenAI API\) on (http://127\.0\.0\.1:\d+/v1)", line)
            if found:
                break
        else:
            raise AssertionError("".join(lines)[-3000:] + "".join(errors)[-3000:])
        url = found.group(1)
        more = []  # the explorer's URL, then the snippet
        while not more or "(end of snippet)" not in more[-1]:
            more.append(next(proc.stdout))
        lines += more
        snippet = "".join(more)
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
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        reader.join(timeout=10)
    output = "".join(lines) + rest + "".join(errors)
    assert proc.returncode == 0, output[-3000:]
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
    noise = [line for line in output.splitlines() if NOISE.search(line)]
    assert noise == [], "\n".join(noise)
