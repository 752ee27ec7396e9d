"""bench.devchain, the dev chain the tests and benches start: nothing of it outlives them."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.anvil import REPO, subprocess_env


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _tree(pid: int) -> list[int]:
    """The process and its descendants (npm's launcher, then anvil)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo += [int(child) for child in task.read_text().split()]
    return found


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="the kernel's parent-death signal is set with setpriv")
def test_a_node_stops_when_whoever_started_it_is_killed():
    """A test or bench killed with SIGKILL (no stop(), no cleanup) leaves no anvil running."""
    starter = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom bench.devchain import start_anvil\nnode = start_anvil()\n"
                               "print(node.proc.pid, node.port, flush=True)\ntime.sleep(600)"],
        cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    pid, port = map(int, starter.stdout.readline().split())
    node = _tree(pid)
    assert len(node) >= 1 and all(_alive(p) for p in node)
    starter.kill()
    starter.wait()
    give_up = time.monotonic() + 20
    while any(_alive(p) for p in node) and time.monotonic() < give_up:
        time.sleep(0.1)
    assert not any(_alive(p) for p in node), [Path(f"/proc/{p}/cmdline").read_text() for p in node if _alive(p)]
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
