"""The service runner: SIGTERM / SIGINT shut down cleanly (exit 0), a crash exits 1."""

import signal
import subprocess
import threading

import pytest

from provider.agent.service import Runner, Service


def start(python_script, mode):
    proc = python_script("service_app.py", mode, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly_with_exit_0(python_script, sig):
    proc = start(python_script, "loop")
    assert proc.stdout.readline().strip() == "setup looper"
    assert proc.stdout.readline().strip() == "running"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert out.splitlines() == ["cleanup looper", "exit 0"]
    assert f"reason={sig.name}" in err


def test_a_crashing_service_stops_the_others_and_exits_1(python_script):
    proc = start(python_script, "crash")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    lines = out.splitlines()
    assert lines[-3:] == ["cleanup crasher", "cleanup looper", "exit 1"]  # reverse order
    assert "RuntimeError: boom" in err and "service crashed" in err


def test_failed_setup_cleans_up_what_was_set_up_and_exits_1(python_script):
    proc = start(python_script, "setup-fails")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert out.splitlines() == ["setup looper", "cleanup looper", "exit 1"]
    assert "port in use" in err


class Finisher(Service):
    name = "finisher"

    def run_forever(self) -> None:
        pass


class Stubborn(Service):
    """Ignores stop: the runner must give up on it and report failure."""

    name = "stubborn"

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def run_forever(self) -> None:
        self.release.wait(30)


def test_a_finished_service_ends_the_run_cleanly_in_a_thread():
    # Off the main thread no signal handlers are installed; the runner still works.
    result = []
    thread = threading.Thread(target=lambda: result.append(Runner([Finisher()]).run()))
    thread.start()
    thread.join(20)
    assert result == [0]


def test_a_service_that_ignores_stop_makes_the_exit_code_1():
    stubborn = Stubborn()
    try:
        assert Runner([Finisher(), stubborn], join_timeout=0.2).run() == 1
    finally:
        stubborn.release.set()
