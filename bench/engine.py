"""Inference speed: the integer engine vs sentence-transformers, as a rich table.

    python -m bench.engine [--threads 1,2] [--batches 1,16,64] [--lengths 16,128]

CPU: our integer path vs sentence-transformers fp32 at each torch thread count.
With CUDA: additionally the Triton path vs sentence-transformers fp16 on the GPU.
Inputs are built to tokenise to exactly the requested length ([CLS] ... [SEP]).
"""
from __future__ import annotations

import os
import time

import click
import torch
from rich.console import Console
from rich.table import Table

from provider.engine import Engine
from provider.engine.selftest import cpu_description
from provider.engine.weights import locate

TRIALS = 3
WORDS = ("time people year way day thing man world life hand part child eye woman place "
         "work week case point government company number group problem fact").split()


def texts_of_length(engine: Engine, length: int, count: int) -> list[str]:
    """``count`` distinct texts that tokenise to exactly ``length`` ids."""
    out = []
    for i in range(count):
        words = [WORDS[(i + 7 * j) % len(WORDS)] for j in range(length - 2)]
        text = " ".join(words)
        if len(engine.tokenize(text)) != length:
            raise RuntimeError(f"bench text does not tokenise to {length} ids")
        out.append(text)
    return out


def rate(fn, batch: int, min_seconds: float) -> float:
    """Sentences per second of ``fn`` (one warm-up call, then repeated for min_seconds)."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls * batch / elapsed


def run_rows(table: Table, label: str, ours, reference, engine: Engine, batches, lengths,
             min_seconds: float) -> None:
    for length in lengths:
        for batch in batches:
            texts = texts_of_length(engine, length, batch)
            # alternating best-of-3 trials: a load spike on the shared machine hits both
            r_ours = r_ref = 0.0
            for _ in range(TRIALS):
                r_ours = max(r_ours, rate(lambda: ours(texts), batch, min_seconds / TRIALS))
                r_ref = max(r_ref, rate(lambda: reference(texts), batch, min_seconds / TRIALS))
            table.add_row(label, str(batch), str(length), f"{r_ours:,.1f}", f"{r_ref:,.1f}",
                          f"{r_ours / r_ref:.2f}x")


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


@click.command()
@click.option("--threads", default="1,2", help="torch CPU thread counts")
@click.option("--batches", default="1,16,64")
@click.option("--lengths", default="16,128", help="sequence lengths in tokens")
@click.option("--min-seconds", default=1.5, help="time spent per measurement")
def main(threads: str, batches: str, lengths: str, min_seconds: float) -> None:
    from sentence_transformers import SentenceTransformer

    console = Console()
    batches_, lengths_ = _ints(batches), _ints(lengths)
    engine = Engine.load("cpu")
    st = SentenceTransformer(str(locate().directory), device="cpu")
    table = Table(title="Verinfer engine: sentences/s (integer, bit-exact) vs sentence-transformers",
                  caption=f"CPU: {cpu_description()}; our route: {engine.route}")
    for col in ("path", "batch", "tokens", "ours (int)", "st (fp32 CPU / fp16 GPU)", "ratio"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for n in _ints(threads):
        torch.set_num_threads(n)
        console.print(f"measuring CPU with torch.set_num_threads({n}) ...")
        run_rows(table, f"CPU, {torch.get_num_threads()} thread(s)", engine.embed,
                 lambda t: st.encode(t, batch_size=len(t)), engine, batches_, lengths_,
                 min_seconds)
    if torch.cuda.is_available():
        console.print("measuring GPU: Triton vs sentence-transformers fp16 ...")
        gpu = Engine.load("triton")
        st_gpu = SentenceTransformer(str(locate().directory), device="cuda").half()

        def st_fp16(t):
            st_gpu.encode(t, batch_size=len(t))
            torch.cuda.synchronize()

        run_rows(table, f"GPU ({torch.cuda.get_device_name()})", gpu.embed,
                 st_fp16, gpu, batches_, lengths_, min_seconds)
    else:
        console.print("no CUDA device: GPU rows skipped")
    console.print(table)
    console.print(f"load average while measuring: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores;"
                  " above the thread count, rows are not comparable across runs)")
    console.print(f"model_id {engine.model_id.hex()}  (bit-exact on every backend)")


if __name__ == "__main__":
    main()
