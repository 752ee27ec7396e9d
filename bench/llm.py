"""LLM speed: the integer decoder vs transformers on the same GGUF, as a rich table.

    python -m bench.llm [--threads 1,2] [--prompt 128] [--decode 32] [--trials 3]

Prefill: tokens/s of one forward pass over a ``--prompt``-token prompt (a fresh cache).
Decode: tokens/s of ``--decode`` single-token steps after that prefill, with the KV cache
(transformers: its DynamicCache). Both sides compute logits for the last position only,
in the same process, alternating trials (best of ``--trials``): a load spike on a shared
machine hits both. With CUDA, the same rows for the Triton path (the same bytes as the
CPU path) against transformers in fp16 on the GPU.
"""
from __future__ import annotations

import os
import time

# transformers' GGUF loading progress bars (tqdm reads this when it is first imported)
os.environ.setdefault("TQDM_DISABLE", "1")

import click
import torch
from rich.console import Console
from rich.table import Table

from provider.engine.selftest import cpu_description
from provider.llm import LLMEngine
from provider.llm.decoder import KVCache, forward
from provider.llm.gguf_model import locate

TEXT = ("The old harbour town woke slowly. Fishermen carried nets down to the boats, the baker "
        "opened his shutters, and gulls argued over the scraps behind the market. ")


def prompt_ids(engine: LLMEngine, length: int) -> list[int]:
    ids: list[int] = []
    while len(ids) < length:
        ids += engine.tokenizer.encode(TEXT)
    return ids[:length]


def ours(engine: LLMEngine, prompt: list[int], steps: int) -> tuple[float, float]:
    """(prefill seconds, decode seconds) of the integer decoder on the engine's backend
    (each step returns its logits to the host: the timing includes the device's work)."""
    ops = engine.ops
    cache = KVCache.empty(engine.params, len(prompt) + steps, ops)
    with torch.inference_mode():
        start = time.perf_counter()
        forward(engine.params, [prompt], [cache], ops=ops)
        mid = time.perf_counter()
        for i in range(steps):
            forward(engine.params, [[prompt[i]]], [cache], ops=ops)
        return mid - start, time.perf_counter() - mid


def reference(model, prompt: list[int], steps: int) -> tuple[float, float]:
    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ids = torch.tensor([prompt], device=device)
    with torch.inference_mode():
        start = time.perf_counter()
        out = model(ids, use_cache=True, logits_to_keep=1)
        sync()
        mid = time.perf_counter()
        past = out.past_key_values
        for i in range(steps):
            out = model(ids[:, i:i + 1], past_key_values=past, use_cache=True)
            past = out.past_key_values
        sync()
        return mid - start, time.perf_counter() - mid


def measure(engine, model, prompt: list[int], steps: int, trials: int):
    """Best (prefill, decode) seconds of each side over alternating trials."""
    best_ours, best_ref = [float("inf")] * 2, [float("inf")] * 2
    for _ in range(trials):
        best_ours = [min(a, b) for a, b in zip(best_ours, ours(engine, prompt, steps))]
        best_ref = [min(a, b) for a, b in zip(best_ref, reference(model, prompt, steps))]
    return best_ours, best_ref


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


@click.command()
@click.option("--threads", default="1,2", help="torch CPU thread counts")
@click.option("--prompt", "prompt_len", default=128, help="prefill length in tokens")
@click.option("--decode", "steps", default=32, help="decode steps measured")
@click.option("--trials", default=3)
def main(threads: str, prompt_len: int, steps: int, trials: int) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    console = Console()
    console.print("loading the integer decoder and transformers' fp32 model of the same GGUF ...")
    engine = LLMEngine.load(backend="cpu")
    path = locate()
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                 dtype=torch.float32).eval()
    prompt = prompt_ids(engine, prompt_len)
    ours(engine, prompt[:16], 2)  # first use: numba's compiled kernels load, the GEMM operands build
    ours(engine, prompt, 2)
    table = Table(title="Verinfer LLM: SmolLM2-135M tokens/s, integer decoder (bit-exact) vs "
                        "transformers (same GGUF; fp32 on the CPU, fp16 on a GPU)",
                  caption=f"CPU: {cpu_description()}; prompt {prompt_len} tokens, "
                          f"{steps} decode steps, best of {trials}")
    for col in ("path", "phase", "ours (int)", "transformers", "ratio"):
        table.add_column(col, justify="left" if col in ("path", "phase") else "right")
    for n in _ints(threads):
        torch.set_num_threads(n)
        console.print(f"measuring with torch.set_num_threads({n}) ...")
        best_ours, best_ref = measure(engine, model, prompt, steps, trials)
        label = f"CPU, {torch.get_num_threads()} thread(s)"
        for phase, tokens, i in (("prefill", prompt_len, 0), ("decode", steps, 1)):
            r_ours, r_ref = tokens / best_ours[i], tokens / best_ref[i]
            table.add_row(label, phase, f"{r_ours:,.1f}", f"{r_ref:,.1f}", f"{r_ours / r_ref:.2f}x")
    if torch.cuda.is_available():
        console.print("measuring the Triton path against transformers fp16 on the GPU ...")
        gpu = LLMEngine.load(backend="triton")
        model = model.half().cuda()
        ours(gpu, prompt[:16], 2)  # compiles the kernels, puts the weights on the device
        ours(gpu, prompt, 2)
        reference(model, prompt, 2)
        best_ours, best_ref = measure(gpu, model, prompt, steps, trials)
        label = f"GPU ({torch.cuda.get_device_name()}), vs fp16"
        for phase, tokens, i in (("prefill", prompt_len, 0), ("decode", steps, 1)):
            r_ours, r_ref = tokens / best_ours[i], tokens / best_ref[i]
            table.add_row(label, phase, f"{r_ours:,.1f}", f"{r_ref:,.1f}", f"{r_ours / r_ref:.2f}x")
    console.print(table)
    console.print(f"load average while measuring: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores;"
                  " above the thread count, rows are not comparable across runs)")
    if not torch.cuda.is_available():
        console.print("no CUDA device: the Triton path's GPU rows skipped")
    console.print(f"model_id {engine.model_id.hex()}")


if __name__ == "__main__":
    main()
