"""The demo as a new user runs it (`ape run demo`, in its own process): it ends with its
report and prints no Python warning and none of ape's INFO lines."""
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
    noise = [line for line in output.splitlines() if NOISE.search(line)]
    assert noise == [], "\n".join(noise)
