"""The demo as a new user runs it (`ape run demo`, in its own process): it ends with its
report, tells the same story every run (seat draws picked on the local chain, and said
so), and prints no Python warning and none of ape's INFO lines."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOISE = re.compile(r"Warning|warnings\.warn|^INFO:|^WARNING:|Traceback")


@pytest.mark.slow
def test_demo_output_is_clean():
    ape = Path(sys.executable).with_name("ape")
    done = subprocess.run([str(ape), "run", "demo"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert re.search(r"done in \d+s", output), output[-3000:]
    text = " ".join(output.split())  # rich wraps lines at the console's width
    assert ("Seats are drawn at random on a live chain: with its stake share s = 0.33, mallory would win a "
            "majority of a job's 3 seats with probability 3s^2 - 2s^3 = 25.9%. On this local chain the demo "
            "picked, for each job, the block whose draw gives mallory exactly one seat") in text
    assert "6 jobs finalized; mallory slashed on 6 of them" in text
    assert "3 delivered" in text and "1 differ (by mallory)" in text
    assert re.search(r"re-executed by (alice|bob|mallory), (alice|bob|mallory), (alice|bob|mallory) \(3 seats", text)
    assert "client verified all 10 results" in text
    noise = [line for line in output.splitlines() if NOISE.search(line)]
    assert noise == [], "\n".join(noise)
