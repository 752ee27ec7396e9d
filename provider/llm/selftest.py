"""The LLM engine's startup self-test: prove on this host, before serving, that it computes
the bytes every other provider computes (as ``provider.engine.selftest`` does for MiniLM).

- ``check_linear``: both CPU routes of ``intops.linear`` at the worst case of the float64
  bound (|x| = ACT_MAX with the signs of W, |W| = w_max(K) at K = MAX_K: partial sums up
  to ~2**52.6), and on random rows, against Python integers; on the Triton backend its
  GEMV and GEMM kernels too.
- the probe: one chat prompt's logits (every position) hashed, against the hash pinned for
  the model id (``PINNED``); it runs the whole forward on the engine's backend.

A failure raises ``SelfTestError`` naming this CPU's instruction sets (or the Triton
route).
"""
from __future__ import annotations

import hashlib

import numpy as np

from provider.engine.errors import SelfTestError
from provider.engine.selftest import cpu_description

from . import cpu_kernels as ck
from .intops import ACT_MAX, MAX_K, QLinear, w_max

PROBE = [{"role": "user", "content": "What is the capital of France?"}]

# sha256 of the probe's logits (int64 little-endian, every position) per model id. A new
# model id needs its line, computed on a machine that passes tests/llm.
PINNED = {
    "d3d3af2e4a521fb9254ef37c1d120304b70eb72f0d2321c60da27cd9888b1b6e":
        "d592c9a437d519dfd0860fd25caabda1edd1c55045ce4283aab9bec3977f87e9",
}


def worst_case_linear() -> tuple[np.ndarray, QLinear]:
    """x int16 [9, MAX_K] and a Q4_1-shaped QLinear whose W reaches +-w_max(MAX_K)."""
    k, top = MAX_K, w_max(MAX_K)
    nb = k // 32
    rng = np.random.default_rng(14)
    q = np.zeros((4, k), dtype=np.uint8)
    q[0] = 15                      # W = 15 * D + M = top everywhere
    q[1] = 0                       # W = M = -top everywhere
    q[2, ::2] = 15                 # alternating +top / -top
    q[3] = rng.integers(0, 16, k)  # random
    d = np.zeros((4, nb), dtype=np.int64)
    m = np.zeros((4, nb), dtype=np.int64)
    d[0], m[0] = top // 15, top - 15 * (top // 15)
    m[1] = -top
    d[2], m[2] = (2 * top) // 15, -top
    d[3], m[3] = rng.integers(0, top // 30, nb), -rng.integers(0, top // 2, nb)
    w = QLinear(q, d, m, 24)
    dense = w.dense()
    x = np.stack([np.full(k, ACT_MAX), np.full(k, -ACT_MAX),
                  np.where(dense[2] >= 0, ACT_MAX, -ACT_MAX),
                  np.where(dense[2] >= 0, -ACT_MAX, ACT_MAX),
                  *rng.integers(-ACT_MAX, ACT_MAX + 1, (5, k))]).astype(np.int16)
    return x, w


def check_linear(ops=None) -> None:
    """The CPU routes, and ``ops``' kernels when it is the Triton backend."""
    x, w = worst_case_linear()
    want = np.array(x.astype(object) @ w.dense().T.astype(object))
    assert abs(want).max() < 2**53
    routes = [("float64 GEMM", lambda: ck.gemm(x, w)), ("integer GEMV", lambda: ck.gemv(x, w))]
    where = cpu_description()
    if ops is not None and ops.name == "triton":
        from . import triton_ops

        dw = triton_ops.device_linear(w, ops.device)
        xd = ops.asarray(x)
        routes = [("Triton GEMM", lambda: ops.to_host(triton_ops.linear(xd, dw))),
                  ("Triton GEMV", lambda: ops.to_host(triton_ops.linear(xd[:8], dw)))]
        where = ops.route
    for name, run_route in routes:
        got = run_route()
        wrong = np.argwhere(got.astype(object) != want[:len(got)])
        if len(wrong):
            i, j = wrong[0]
            raise SelfTestError(
                f"the LLM's {name} is not exact on this host ({where}): case "
                f"{(int(i), int(j))} gave {got[i, j]}, the exact product is {want[i, j]}")


def run(engine) -> None:
    check_linear(engine.ops)
    pinned = PINNED.get(engine.model_id.hex())
    if pinned is None:
        raise SelfTestError(f"no pinned probe bytes for model {engine.model_id.hex()}")
    logits = engine.logits(engine.prompt_ids(PROBE))
    got = hashlib.sha256(logits.astype("<i8").tobytes()).hexdigest()
    if got != pinned:
        where = cpu_description() if engine.backend == "cpu" else engine.route
        raise SelfTestError(f"this host computes other LLM bytes than every other provider "
                            f"({where}): probe {got[:16]}..., pinned {pinned[:16]}...")
