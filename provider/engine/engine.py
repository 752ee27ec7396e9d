"""The public engine: load the model, identify it, embed job inputs into result bytes."""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from client.encoding import EMBEDDING_DIM, EMBEDDING_FORMAT_VERSION, encode_embedding

from . import quantize, selftest, weights
from .backend import select_backend
from .errors import InvalidInputError, UnknownModelError
from .model import QuantizedModel, forward
from .tokenization import MAX_INPUT_BYTES, MAX_TOKENS, JobTokenizer

# Tokens per forward pass: small enough that activations stay in the CPU caches,
# large enough to amortise per-op overhead (results never depend on the split).
BATCH_TOKENS = 512


@dataclass(frozen=True)
class ModelInfo:
    """What ``model_id`` commits to, for the on-chain model registry."""

    name: str
    model_id: bytes
    weights_digest: bytes
    params_digest: bytes
    tokenizer_digest: bytes
    format_version: int
    dim: int
    max_tokens: int
    max_input_bytes: int


def compute_model_id(name: str, format_version: int, weights_digest: bytes,
                     params_digest: bytes, tokenizer_digest: bytes) -> bytes:
    """bytes32 = sha256 over the model name, output format version and the three digests."""
    h = hashlib.sha256(b"verinfer/model-id/v1\x00" + name.encode() + b"\x00")
    h.update(bytes([format_version]) + weights_digest + params_digest + tokenizer_digest)
    return h.digest()


class Engine:
    """Integer-only all-MiniLM-L6-v2: bit-identical result bytes on every backend.

    >>> engine = Engine.load("cpu")
    >>> [result] = engine.embed(["A sentence to embed."], model_id=engine.model_id)
    >>> len(result)
    385
    """

    def __init__(self, model: QuantizedModel, tokenizer: JobTokenizer, info: ModelInfo, ops):
        self._model = model.to(ops.device)
        self._tokenizer = tokenizer
        self._ops = ops
        self.model_info = info
        self._pool: tuple[int, ThreadPoolExecutor] | None = None  # (workers, pool)
        self._pool_lock = threading.Lock()

    @classmethod
    def load(cls, backend: str = "auto", *, self_test: bool = True) -> Engine:
        """Load the packaged model and derive its integer parameters (about a second),
        then run the startup self-test (``self_test``) unless told not to."""
        ops = select_backend(backend)
        files = weights.locate()
        model = quantize.quantize_model(weights.load_weights(files), weights.load_config(files))
        limits = {"MAX_TOKENS": MAX_TOKENS, "MAX_INPUT_BYTES": MAX_INPUT_BYTES}
        digests = dict(weights_digest=weights.file_digest(files.weights),
                       params_digest=quantize.params_digest(model, limits),
                       tokenizer_digest=weights.file_digest(files.tokenizer))
        model_id = compute_model_id(weights.MODEL_NAME, EMBEDDING_FORMAT_VERSION, **digests)
        info = ModelInfo(weights.MODEL_NAME, model_id, **digests,
                         format_version=EMBEDDING_FORMAT_VERSION, dim=EMBEDDING_DIM,
                         max_tokens=MAX_TOKENS, max_input_bytes=MAX_INPUT_BYTES)
        engine = cls(model, JobTokenizer(files.tokenizer), info, ops)
        if self_test:
            engine.self_test()
        return engine

    @property
    def model_id(self) -> bytes:
        return self.model_info.model_id

    @property
    def backend(self) -> str:
        return self._ops.name

    @property
    def route(self) -> str:
        """The arithmetic route in words (backend, library, ISA): for error messages."""
        return self._ops.route

    def self_test(self) -> None:
        """Raise ``SelfTestError`` unless this host computes the pinned probe bytes
        (``selftest``): a provider must never serve, and be slashed, for its hardware."""
        selftest.run(self)

    def check_model(self, model_id: bytes) -> None:
        """Raise ``UnknownModelError`` unless this engine reproduces ``model_id``."""
        if bytes(model_id) != self.model_id:
            raise UnknownModelError(
                f"model {bytes(model_id).hex()} is not served (this engine: {self.model_id.hex()})")

    def tokenize(self, job_input: str | bytes, index: int | None = None) -> list[int]:
        """Validate one job input and return its token ids (typed error if invalid)."""
        return self._tokenizer.ids(job_input, index)

    def embed(self, inputs: Sequence[str | bytes], model_id: bytes | None = None) -> list[bytes]:
        """Result bytes (``client.encoding`` format) for each input, in order.

        A bad input raises its ``InvalidInputError`` (with ``.index``) before any work;
        callers that batch untrusted jobs validate each with ``tokenize`` first.
        """
        if model_id is not None:
            self.check_model(model_id)
        if isinstance(inputs, (str, bytes)):
            raise InvalidInputError("expected a sequence of inputs, not one input")
        return self.embed_ids([self.tokenize(x, i) for i, x in enumerate(inputs)])

    # The agent's JobRunner interface (provider/agent/jobs/runner.py): model-agnostic
    # names over bytes, which an engine of another model implements as well.

    def check(self, job_input: bytes) -> None:
        """Raise ``InvalidInputError`` if ``run`` would refuse this job input."""
        self.tokenize(job_input)

    def run(self, inputs: list[bytes]) -> list[bytes]:
        """Result bytes for each job input, in order (``embed``)."""
        return self.embed(inputs)

    def embed_ids(self, token_ids: Sequence[Sequence[int]]) -> list[bytes]:
        """Result bytes for already validated token id lists (from ``tokenize``)."""
        vocab = self._model.word_type.shape[0]
        for i, seq in enumerate(token_ids):
            if not 0 < len(seq) <= MAX_TOKENS or min(seq) < 0 or max(seq) >= vocab:
                raise InvalidInputError("token ids out of range (use tokenize)", i)
        threads = torch.get_num_threads() if self._ops.name == "cpu" else 1
        # Several CPU threads: at least as many chunks as threads, when there are enough inputs.
        budget = min(BATCH_TOKENS, -(-sum(map(len, token_ids)) // threads))
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        chunks, start = [], 0
        while start < len(order):  # ascending lengths: the next one is the chunk's longest
            stop = start + 1
            while stop < len(order) and (stop + 1 - start) * len(token_ids[order[stop]]) <= budget:
                stop += 1
            chunks.append(order[start:stop])
            start = stop
        batches = [[token_ids[i] for i in chunk] for chunk in chunks]
        if threads > 1 and len(chunks) > 1:
            outs = self._side_by_side(batches, threads)
        else:
            outs = map(self._run, batches)
        results: list[bytes] = [b""] * len(token_ids)
        for chunk, out in zip(chunks, outs):
            for i, vec in zip(chunk, out):
                results[i] = encode_embedding(vec)
        return results

    def _side_by_side(self, batches: list[list[Sequence[int]]], threads: int) -> list:
        """Run the chunks on ``threads`` workers at one torch thread each: on CPU, chunks
        side by side scale better than every op split across threads. torch's thread
        count is process-wide, so it is restored when they are done."""
        def run(batch):
            torch.set_num_threads(1)
            return self._run(batch)

        with self._pool_lock:
            if self._pool is None or self._pool[0] != threads:
                if self._pool is not None:
                    self._pool[1].shutdown()
                self._pool = threads, ThreadPoolExecutor(threads, "verinfer-engine")
            try:
                return list(self._pool[1].map(run, batches))
            finally:
                torch.set_num_threads(threads)

    def _run(self, batch: list[Sequence[int]]):
        length = max(len(ids) for ids in batch)
        ids = torch.zeros(len(batch), length, dtype=torch.int64)
        mask = torch.zeros(len(batch), length, dtype=torch.bool)
        for row, seq in enumerate(batch):
            ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.int64)
            mask[row, :len(seq)] = True
        with torch.inference_mode():
            out = forward(self._model, self._ops, ids.to(self._ops.device), mask.to(self._ops.device))
        return out.cpu().numpy()
