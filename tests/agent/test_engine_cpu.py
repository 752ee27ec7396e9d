"""The engine-CPU metric counts the engine's worker threads and not the agent's services."""
import sys
import threading
import time

import pytest

from provider.agent.cputime import ENGINE_POOL, engine_cpu


def _cpu_of_a_thread_named(name: str) -> float:
    """engine_cpu's growth while a thread called `name` burns 0.2 s of CPU (read before
    the thread ends: a finished thread leaves /proc)."""
    burnt, stop = threading.Event(), threading.Event()

    def burn():
        while not stop.is_set():
            if time.thread_time() > 0.2:
                burnt.set()

    before = engine_cpu()
    thread = threading.Thread(target=burn, name=name)
    thread.start()
    try:
        assert burnt.wait(60)
        return engine_cpu() - before
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_engine_workers_count_and_other_services_do_not():
    assert _cpu_of_a_thread_named(f"{ENGINE_POOL}_0") >= 0.15  # clock ticks are 10 ms
    assert _cpu_of_a_thread_named("txmanager") < 0.1  # only this thread's own polling
