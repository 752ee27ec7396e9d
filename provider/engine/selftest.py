"""The engine's startup self-test: prove on this host, before serving, that it computes
the bytes every other provider computes.

The CPU route is exact by construction (``cpu_kernels.PackedLinear`` and
``intops.attention`` carry the arguments), but a provider stakes money on that claim,
so it is checked where it runs: a library update, an exotic BLAS, a patched torch or a
GPU could still differ, and a provider whose hardware computes other bytes would lose
every majority and be slashed for being honest. Two checks, both cheap (~0.2 s):

- ``check_gemm``: the CPU GEMM's accumulators at the worst cases (the pattern that
  saturates 16-bit pair sums without VNNI, all-extreme inputs at the longest K, alternating
  signs), against Python integers.
- the probe set: ``PROBES`` embedded and hashed, against the hash pinned for the model id
  (``PINNED``). It runs the whole forward on whatever backend the engine uses.

A failure raises ``SelfTestError`` naming the route and this CPU's instruction sets.
"""
from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import torch

from .errors import SelfTestError
from .intops import INT16_MAX, MAX_K, LinearParams

PROBES = (
    "A man is playing a guitar.",
    "Le chat dort sur le canapé, 東京は晴れ.",
    "x",
    "Numbers: 3.14159, -2**15, 0xDEADBEEF; punctuation !?;:",
    # over MAX_TOKENS: truncated, so every position of the longest sequence is used
    "The quick brown fox jumps over the lazy dog. " * 40,
)

# sha256 of b"".join(engine.embed(PROBES)) per model id. A new model id (any change to
# the weights, the tokenizer or the arithmetic) needs its line here, computed on a machine
# that passes tests/engine (the pinned sentence-set bytes).
PINNED = {
    "48ad3cb15793b498b9b57c0a8556e6ae481e016922cf89fd8af2d4f41a6a61de":
        "71b43715cfaff7a20b16199425412b2b5759fb1ead02b0a6f256da3a73d9f508",
}

# Instruction sets worth naming when bytes differ (x86 flag names of /proc/cpuinfo).
NOTABLE_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni",
                 "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_description() -> str:
    """This CPU's model and its notable instruction sets (the platform's machine name
    where there is no /proc/cpuinfo)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()

    def field(*names: str) -> str:
        return next((line.split(":", 1)[1].strip() for line in lines
                     if line.split(":", 1)[0].strip() in names), "")

    flags = set(field("flags", "Features").split())
    notable = " ".join(f for f in NOTABLE_FLAGS if f in flags) or "none of " + " ".join(NOTABLE_FLAGS)
    return f"{field('model name') or platform.machine()} (flags: {notable})"


def gemm_cases() -> list[torch.Tensor]:
    """int16 activations [M, K] paired with ``gemm_weights``: the worst cases of every
    GEMM route this engine ever had (and of the 16-bit pair sums of int8 kernels)."""
    k = MAX_K
    alternating = torch.full((k,), INT16_MAX, dtype=torch.int16)
    alternating[::2] = -INT16_MAX
    saturating = torch.zeros(k, dtype=torch.int16)
    saturating[:4] = 2  # x 127 over K = 4: 1016, which a saturating int8 route gives as 510
    gen = torch.Generator().manual_seed(11)
    return torch.stack([
        saturating,
        torch.full((k,), INT16_MAX, dtype=torch.int16),
        torch.full((k,), -INT16_MAX - 1, dtype=torch.int16),  # int16's minimum
        alternating,
        torch.full((k,), 127, dtype=torch.int16),  # the int8 plane extremes
        torch.full((k,), -128, dtype=torch.int16),
        torch.randint(-INT16_MAX - 1, INT16_MAX + 1, (k,), dtype=torch.int16, generator=gen),
    ])


def gemm_weights() -> torch.Tensor:
    """int8 [N, MAX_K]: all +127, all -127, alternating, and random rows."""
    k = MAX_K
    alternating = torch.full((k,), 127, dtype=torch.int8)
    alternating[1::2] = -127
    gen = torch.Generator().manual_seed(12)
    return torch.stack([torch.full((k,), 127, dtype=torch.int8),
                        torch.full((k,), -127, dtype=torch.int8), alternating,
                        torch.randint(-127, 128, (k,), dtype=torch.int8, generator=gen)])


def check_gemm() -> None:
    """The CPU GEMM's accumulators at the worst cases equal the integer products,
    at every prefix length the bounds care about (K = 4 for the saturation pattern, K = 384
    and MAX_K for the models' layers)."""
    from .cpu_kernels import PackedLinear

    x, w = gemm_cases(), gemm_weights()
    for k in (4, 384, MAX_K):
        n = w.shape[0]
        params = LinearParams(w[:, :k].contiguous(), torch.ones(n, dtype=torch.int64),
                              torch.zeros(n, dtype=torch.int64), 1, INT16_MAX)
        got = torch.from_numpy(PackedLinear(params).gemm(x[:, :k].contiguous()))
        # int64 arithmetic: exact on every host (|products| < 2**33), no float anywhere
        want = x[:, :k].to(torch.int64) @ w[:, :k].to(torch.int64).t()
        wrong = (got != want.to(torch.float64)).nonzero()
        if len(wrong):
            i, j = wrong[0].tolist()
            raise SelfTestError(
                f"the CPU GEMM is not exact on this host: K = {k}, case {(i, j)} gave "
                f"{got[i, j]:.0f}, the exact product is {want[i, j]}")


def run(engine) -> None:
    """Raise ``SelfTestError`` unless ``engine`` computes the pinned probe bytes here."""
    try:
        if engine.backend == "cpu":
            check_gemm()
        pinned = PINNED.get(engine.model_id.hex())
        if pinned is None:
            raise SelfTestError(f"no pinned probe hash for model {engine.model_id.hex()} "
                                "(provider.engine.selftest.PINNED)")
        got = hashlib.sha256(b"".join(engine.embed(PROBES))).hexdigest()
        if got != pinned:
            raise SelfTestError(f"probe bytes differ from the pinned ones (sha256 {got}, "
                                f"pinned {pinned})")
    except SelfTestError as err:
        raise SelfTestError(
            f"engine self-test failed on route {engine.route}; CPU {cpu_description()}: "
            f"{err}. This machine would commit other result bytes than honest providers "
            "(and be slashed for it): refusing to serve. Report it with this message."
        ) from None
