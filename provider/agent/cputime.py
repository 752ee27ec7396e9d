"""CPU time of the engine, for the agent's engine-CPU metric, from /proc.

The engine runs on the worker's thread, on its own side-by-side pool (threads named
ENGINE_POOL, provider.engine.Engine._side_by_side) and on threads Python did not start
(torch's OpenMP pool); the agent's other services run on threads of their own.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
ENGINE_POOL = "verinfer-engine"  # name prefix of the engine's worker threads


def engine_cpu() -> float:
    """CPU seconds of this thread, of the engine's side-by-side workers and of every
    thread Python did not start (torch's OpenMP pool), leaving out the agent's other
    services. Where /proc is missing: this thread's alone."""
    others = {t.native_id for t in threading.enumerate()
              if not t.name.startswith(ENGINE_POOL)} - {threading.get_native_id()}
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return time.thread_time()
    total = 0
    for task in tasks.iterdir():
        if int(task.name) not in others:
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended meanwhile
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS
