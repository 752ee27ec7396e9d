"""Verinfer client SDK: the one place that knows the contracts' ABI, where they are
deployed, the seal/commitment format and the result encoding.

Layers, bottom up: ``protocol`` (limits, states, seals), ``abi`` (shipped ABIs),
``marketplace`` (call builders, typed views, event decoding: what the provider agent
builds on), ``transport`` (web3 connection and local signing), ``client`` (the
customer API) and ``cli`` (the ``verinfer`` command).

>>> from client import Client, seal_result, JobStatus
>>> JobStatus.FINALIZED.settled
True
"""
from client.client import Client
from client.errors import VerinferError
from client.marketplace import Call, Marketplace, Token
from client.protocol import Fault, JobStatus, new_salt, result_digest, seal, seal_result
from client.records import Deadlines, Estimate, JobInfo, VerifiedResult

__all__ = [
    "Call", "Client", "Deadlines", "Estimate", "Fault", "JobInfo", "JobStatus", "Marketplace",
    "Token", "VerifiedResult", "VerinferError", "new_salt", "result_digest", "seal", "seal_result",
]
