"""The engine alone, as the e2e bench's agents run it: the peer that bench's r = 1
throughput is compared against (`python -m bench.e2e` runs this, after its agents stopped).

`engine_alone_rate` starts one process per agent (the same torch threads, the same
engine batch, the same sentences), each loading MiniLM and then, all at one moment,
running its share of the jobs through the agent's own entry point (`JobRunner.run` on
the posted bytes): jobs/s with no chain, no store and no transactions at all.

    python -m bench.engine_alone --jobs 333 --batch 64 --start-at <unix time>
"""

import json
import os
import subprocess
import sys
import time

import click

from bench.devchain import REPO

LOAD_SECONDS = 60.0  # time each process is given to load the engine before they start together


def engine_alone_rate(jobs: int, processes: int, threads: int, batch: int, salt: int) -> float:
    """Jobs/s of `processes` engine processes running `jobs` jobs between them at once."""
    start_at = time.time() + LOAD_SECONDS
    share = -(-jobs // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "bench.engine_alone", "--jobs", str(share), "--batch", str(batch),
         "--salt", str(salt + i * share), "--start-at", str(start_at)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) for i in range(processes)]
    runs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"engine-alone process exited {proc.returncode}")
        runs.append(json.loads(out))
    late = [r for r in runs if r["late"]]
    if late:
        raise RuntimeError(f"{len(late)} engine process(es) loaded after the common start: raise LOAD_SECONDS")
    # All started at start_at: the work is done when the last one ends.
    return sum(r["jobs"] for r in runs) / max(r["end"] - start_at for r in runs)


@click.command()
@click.option("--jobs", type=int, required=True)
@click.option("--batch", type=int, required=True)
@click.option("--salt", type=int, default=0)
@click.option("--start-at", type=float, required=True, help="Unix time to start computing at.")
def main(jobs: int, batch: int, salt: int, start_at: float) -> None:
    from bench.e2e import sentences
    from provider.engine import Engine

    engine = Engine.load(self_test=False)
    inputs = [s.encode() for s in sentences(jobs, salt=salt)]
    engine.run(inputs[:1])  # first call loads compiled kernels (the e2e bench warms up too)
    late = time.time() > start_at
    time.sleep(max(0.0, start_at - time.time()))
    for i in range(0, jobs, batch):
        engine.run(inputs[i:i + batch])
    print(json.dumps({"jobs": jobs, "end": time.time(), "late": late}))


if __name__ == "__main__":
    main()
