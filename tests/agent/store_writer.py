"""Helper process for the store tests: saves a result, says so, then waits to be killed."""

import sys
import time

from provider.agent.store import Store

store = Store(sys.argv[1])
store.add_job(7, b"m" * 32)
store.save_result(7, digest=b"d" * 32, result=b"embedding", salt=b"s" * 32)
print("saved", flush=True)
time.sleep(60)
