"""Verinfer client SDK: the one place that knows the contracts' ABI, where they are
deployed, the seal/commitment format and the result encoding.

Layers, bottom up: ``protocol`` (limits, states, seals), ``abi`` (shipped ABIs),
``abi_codec`` (calldata, results and logs as bytes), ``contract`` (calls, batched views,
logs of one contract), ``marketplace`` (call builders, typed views, events: what the
provider agent builds on), ``transport`` (web3 connection and local signing), ``client`` (the
customer API) and ``cli`` (the ``verinfer`` command).

>>> from client import Client, seal_result, JobStatus
>>> JobStatus.FINALIZED.settled
True
"""
from __future__ import annotations

import importlib

# Imported on first use (PEP 562), so that a light submodule such as ``client.encoding``
# (which the inference engine uses) doesn't pull in web3 and its stack.
_EXPORTS = {
    "Client": "client.client", "VerinferError": "client.errors",
    "Call": "client.abi_codec", "Marketplace": "client.marketplace", "Token": "client.marketplace",
    "Fault": "client.protocol", "JobStatus": "client.protocol", "new_salt": "client.protocol",
    "result_digest": "client.protocol", "seal": "client.protocol", "seal_result": "client.protocol",
    "Deadlines": "client.records", "Estimate": "client.records", "JobInfo": "client.records",
    "VerifiedResult": "client.records",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'client' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
