"""The engine alone, as the e2e bench's agents run it: the peer that bench's r = 1
throughput is compared against (`python -m bench.e2e` runs this, after its agents stopped).

`engine_alone_rate` starts one process per agent (the same torch threads, the same
engine batch, the same sentences). Each loads MiniLM, says so, and waits; once all have,
they are started together and run their share of the jobs through the agent's own entry
point (`JobRunner.run` on the posted bytes): jobs/s with no chain, no store and no
transactions at all.

    python -m bench.engine_alone --jobs 333 --batch 64   # then a line on stdin starts it
"""

import json
import os
import subprocess
import sys
import time

import click

from bench.devchain import REPO


def engine_alone_rate(jobs: int, processes: int, threads: int, batch: int, salt: int) -> float:
    """Jobs/s of `processes` engine processes running `jobs` jobs between them at once."""
    share = -(-jobs // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "bench.engine_alone", "--jobs", str(share), "--batch", str(batch),
         "--salt", str(salt + i * share)],
        cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for i in range(processes)]
    for proc in procs:  # each says "loaded" once its engine is ready
        if proc.stdout.readline().strip() != "loaded":
            raise RuntimeError(f"engine-alone process exited {proc.wait()} before loading")
    start = time.time()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    runs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"engine-alone process exited {proc.returncode}")
        runs.append(json.loads(out))
    # All started together: the work is done when the last one ends.
    return sum(r["jobs"] for r in runs) / (max(r["end"] for r in runs) - start)


@click.command()
@click.option("--jobs", type=int, required=True)
@click.option("--batch", type=int, required=True)
@click.option("--salt", type=int, default=0)
def main(jobs: int, batch: int, salt: int) -> None:
    from bench.e2e import sentences
    from provider.engine import Engine

    engine = Engine.load(self_test=False)
    inputs = [s.encode() for s in sentences(jobs, salt=salt)]
    engine.run(inputs[:1])  # first call loads compiled kernels (the e2e bench warms up too)
    print("loaded", flush=True)
    sys.stdin.readline()  # go
    for i in range(0, jobs, batch):
        engine.run(inputs[i:i + batch])
    print(json.dumps({"jobs": jobs, "end": time.time()}))


if __name__ == "__main__":
    main()
