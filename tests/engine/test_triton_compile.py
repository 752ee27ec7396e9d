"""Every Triton kernel compiles to a CUDA binary (A100 and H100 targets), without a GPU.

The interpreter runs the kernels' arithmetic but never lowers them, so a kernel that
the GPU compiler rejects (an int8 ``tl.dot`` shape, a bool mask load, an int64
conversion) would pass the bit-equality tests. Here, in a fresh process where the
kernels are real ``JITFunction``s, each public op is called on CPU tensors with its
launch recorded instead of run, and every recorded launch is compiled down to a cubin
with the argument types the real launch would have.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import sys
import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction, mangle_type

from provider.engine import intops, quantize
from provider.engine import triton_ops as ops

launches = []
JITFunction.run = lambda self, *args, grid, warmup, **kw: launches.append((self, args, kw))

heads, dim, rows, hidden = 12, 32, 36, 384
x16 = torch.ones(rows, hidden, dtype=torch.int16)
ops.quantize_rows(x16)
ops.quantize_rows(x16.int())
for n, out_max, lut in [(1536, intops.INT16_MAX, quantize.gelu_lut(quantize.F_FFN)),
                        (hidden, intops.RESIDUAL_MAX, None)]:
    ops.linear(x16, intops.LinearParams(torch.ones(n, hidden, dtype=torch.int8),
                                        torch.ones(n, dtype=torch.int64),
                                        torch.ones(n, dtype=torch.int64), 20, out_max, lut))
mask = torch.ones(3, 12, dtype=torch.bool)
for length in (12, 70):  # one 32-wide tile; several 64-wide tiles
    ops.attention(torch.ones(3, length, 3 * hidden, dtype=torch.int16),
                  torch.ones(3, length, dtype=torch.bool), quantize.attention_params(heads, dim))
ln = intops.LayerNormParams(torch.ones(hidden, dtype=torch.int64),
                            torch.ones(hidden, dtype=torch.int64), 1)
ops.add_layernorm(x16.int(), x16, ln)
ops.add_layernorm(x16.int(), x16.int(), ln)
ops.mean_pool_normalize(x16.view(3, 12, hidden), mask)

for arch in map(int, sys.argv[1:]):
    for fn, args, kw in launches:
        options = {k: kw.pop(k) for k in ("num_warps", "num_stages") if k in kw}
        bound = {**dict(zip(fn.arg_names, args)), **kw}
        constexprs = {p.name: bound[p.name] for p in fn.params
                      if p.is_constexpr or bound[p.name] is None}
        signature = {name: "constexpr" if name in constexprs else mangle_type(bound[name])
                     for name in fn.arg_names}
        kernel = triton.compile(ASTSource(fn, signature, constexprs),
                                target=GPUTarget("cuda", arch, 32), options=options)
        assert kernel.asm["cubin"], fn.__name__
        print("compiled", arch, fn.__name__, flush=True)
'''


@pytest.mark.slow
def test_every_kernel_compiles_for_cuda(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(tmp_path / "cache"),
               TRITON_DEFAULT_FP_FUSION="1")
    done = subprocess.run([sys.executable, "-c", SCRIPT, "80", "90"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    compiled = done.stdout.split("\n")
    assert sum(line.startswith("compiled") for line in compiled) == 2 * 9, done.stdout
    assert any("_attention_kernel" in line for line in compiled)
