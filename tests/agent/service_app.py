"""Helper process for the runner tests: `service_app.py loop|crash|setup-fails`.

Prints one line per lifecycle step so the test can follow what happened.
"""

import sys
import time

from provider.agent.logs import configure_logging
from provider.agent.service import Service, run_services


def say(text: str) -> None:
    print(text, flush=True)


class Looper(Service):
    name = "looper"

    def setup(self) -> None:
        say("setup looper")

    def run_forever(self) -> None:
        say("running")
        while not self.stop_event.wait(0.05):
            pass

    def cleanup(self) -> None:
        say("cleanup looper")


class Crasher(Service):
    name = "crasher"

    def run_forever(self) -> None:
        time.sleep(0.2)
        raise RuntimeError("boom")

    def cleanup(self) -> None:
        say("cleanup crasher")


class BadSetup(Service):
    name = "bad-setup"

    def setup(self) -> None:
        raise OSError("port in use")

    def run_forever(self) -> None:
        raise AssertionError("never started")


configure_logging("INFO", "kv")
mode = sys.argv[1]
services = {
    "loop": [Looper()], "crash": [Looper(), Crasher()], "setup-fails": [Looper(), BadSetup()],
}
code = run_services(services[mode], join_timeout=5)
say(f"exit {code}")
sys.exit(code)
