"""Long-running services and the runner that owns their lifecycle (infernet-node style).

Each service is set up in order, runs in its own thread, and is stopped and cleaned up
in reverse order. SIGINT, SIGTERM, a service crash and a service finishing all take the
same shutdown path; the exit code is 1 when anything crashed, else 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("verinfer.agent.service")


class Service(ABC):
    """A unit of work with setup / run_forever / stop / cleanup."""

    name: str = "service"

    def __init__(self) -> None:
        self.stop_event = threading.Event()

    def setup(self) -> None:
        """Prepare resources; raising here aborts the start of the whole agent."""

    @abstractmethod
    def run_forever(self) -> None:
        """Do the work until `stop_event` is set, then return."""

    def stop(self) -> None:
        """Ask run_forever to return soon; must be safe to call from any thread, twice."""
        self.stop_event.set()

    def cleanup(self) -> None:
        """Release resources; runs once after run_forever returned (or never started)."""


class Runner:
    """Runs services until a signal, a crash or a service finishing; returns an exit code."""

    def __init__(self, services: Sequence[Service], *, join_timeout: float = 15.0):
        self.services = list(services)
        self.join_timeout = join_timeout
        self._shutdown = threading.Event()
        self._crashed: list[str] = []
        self._lock = threading.Lock()

    def request_shutdown(self, reason: str) -> None:
        if not self._shutdown.is_set():
            log.info("shutting down", extra={"reason": reason})
        self._shutdown.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.request_shutdown(signal.Signals(signum).name)

    def _run_one(self, service: Service) -> None:
        try:
            service.run_forever()
        except BaseException:
            log.exception("service crashed", extra={"service": service.name})
            with self._lock:
                self._crashed.append(service.name)
            self.request_shutdown(f"{service.name} crashed")
        else:
            self.request_shutdown(f"{service.name} finished")

    def run(self) -> int:
        in_main = threading.current_thread() is threading.main_thread()
        previous = {}
        if in_main:  # signal handlers can only be installed from the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> int:
        ready: list[Service] = []
        failed = False
        for service in self.services:
            if self._shutdown.is_set():
                break
            try:
                service.setup()
            except Exception:
                log.exception("service setup failed", extra={"service": service.name})
                failed = True
                break
            ready.append(service)

        threads = []
        if not failed and not self._shutdown.is_set():
            for service in ready:
                thread = threading.Thread(
                    target=self._run_one, args=(service,), name=service.name, daemon=True
                )
                thread.start()
                threads.append((service, thread))
            log.info("agent running", extra={"services": ",".join(s.name for s in ready)})
            # A timed wait keeps the main thread responsive to signals.
            while not self._shutdown.wait(0.2):
                pass

        for service in reversed(ready):
            service.stop()
        for service, thread in reversed(threads):
            thread.join(self.join_timeout)
            if thread.is_alive():
                log.error("service did not stop in time", extra={"service": service.name})
                failed = True
        for service in reversed(ready):
            try:
                service.cleanup()
            except Exception:
                log.exception("service cleanup failed", extra={"service": service.name})
                failed = True
        code = 1 if failed or self._crashed else 0
        log.info("agent stopped", extra={"exit_code": code})
        return code


def run_services(services: Sequence[Service], *, join_timeout: float = 15.0) -> int:
    """Run `services` to completion; returns the process exit code (0 clean, 1 crash)."""
    return Runner(services, join_timeout=join_timeout).run()
