"""Backend choice: the object holding the five integer ops the model runs on.

``auto`` picks Triton when CUDA is present, the CPU reference otherwise; the
``VERINFER_BACKEND`` environment variable (cpu | triton) overrides ``auto``.
"""
from __future__ import annotations

import os

import torch

from . import intops
from .errors import BackendUnavailableError

BACKENDS = ("auto", "cpu", "triton")


class CpuOps:
    """The reference ops of ``intops`` on CPU tensors."""

    name = "cpu"
    device = torch.device("cpu")

    @property
    def route(self) -> str:
        return (f"cpu (float64 GEMMs, torch {torch.__version__}, "
                f"ATen {torch.backends.cpu.get_cpu_capability()})")
    quantize_rows = staticmethod(intops.quantize_rows)
    linear = staticmethod(intops.linear)
    attention = staticmethod(intops.attention)
    add_layernorm = staticmethod(intops.add_layernorm)
    mean_pool_normalize = staticmethod(intops.mean_pool_normalize)


def select_backend(name: str = "auto"):
    """The ops object for ``name`` (see module doc)."""
    if name not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if name == "auto":
        name = os.environ.get("VERINFER_BACKEND", "").strip().lower() or (
            "triton" if torch.cuda.is_available() else "cpu")
        if name not in BACKENDS[1:]:
            raise BackendUnavailableError(f"VERINFER_BACKEND={name!r}; choose cpu or triton")
    if name == "cpu":
        return CpuOps()
    try:
        from .triton_ops import TritonOps
    except ImportError as exc:
        raise BackendUnavailableError(f"triton backend unavailable: {exc}") from exc
    try:
        return TritonOps()
    except (RuntimeError, AssertionError) as exc:
        raise BackendUnavailableError(f"triton backend unavailable: {exc}") from exc
