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


def backend_name(name: str = "auto") -> str:
    """"cpu" or "triton" for ``name`` (see module doc); the LLM decoder chooses the same way."""
    if name not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if name == "auto":
        name = os.environ.get("VERINFER_BACKEND", "").strip().lower() or (
            "triton" if torch.cuda.is_available() else "cpu")
        if name not in BACKENDS[1:]:
            raise BackendUnavailableError(f"VERINFER_BACKEND={name!r}; choose cpu or triton")
    return name


def triton_backend(load):
    """``load()()``: the Triton ops class that ``load`` imports, instantiated; an import
    or device failure becomes ``BackendUnavailableError``."""
    try:
        ops_class = load()
    except ImportError as exc:
        raise BackendUnavailableError(f"triton backend unavailable: {exc}") from exc
    try:
        return ops_class()
    except (RuntimeError, AssertionError) as exc:
        raise BackendUnavailableError(f"triton backend unavailable: {exc}") from exc


def select_backend(name: str = "auto"):
    """The ops object for ``name`` (see module doc)."""
    if backend_name(name) == "cpu":
        return CpuOps()

    def load():
        from .triton_ops import TritonOps
        return TritonOps

    return triton_backend(load)
