"""What the agent needs from a model's engine: bytes in, bytes out, nothing model-specific.

An engine serves one model (`model_id`); the agent holds one per model it serves. A
job's input is the bytes the client posted (MiniLM: UTF-8 text; an LLM: a canonical
JSON chat request) and its result the bytes whose digest is sealed (MiniLM: an encoded
embedding; an LLM: token ids), so the job logic never decodes either.
"""

from __future__ import annotations

from typing import Protocol


class JobRunner(Protocol):
    """One model's engine, as the job logic drives it (provider.engine.Engine is one)."""

    @property
    def model_id(self) -> bytes:
        """The model this engine reproduces bit for bit (its on-chain id)."""

    @property
    def route(self) -> str:
        """The arithmetic route in words (backend, library, ISA): for `doctor` and errors."""

    def check(self, job_input: bytes) -> None:
        """Raise a ValueError (with a message a client can act on) if `job_input` would
        be refused by `run`: the agent refuses such a job instead of claiming it."""

    def run(self, inputs: list[bytes]) -> list[bytes]:
        """The result bytes of each input, in order (independent of the batch); a bad
        input raises its ValueError before any work."""

    def self_test(self) -> None:
        """Raise unless this host computes the model's pinned probe results."""
