"""The OpenAI-compatible HTTP API: ``GET /v1/models``, ``GET /v1/models/{id}``,
``POST /v1/embeddings`` and ``POST /v1/chat/completions`` (``gateway.chat``), answered
from the marketplace through ``gateway.service``;
``GET /v1/audit``: the r = 1 answers the gateway re-executed (``gateway.audit``).

Point any OpenAI client at it::

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="vk-...")
    client.embeddings.create(model="all-MiniLM-L6-v2", input=["hello world"])

Each embedding carries a ``verinfer`` object: the job id, the digest the chain holds,
the raw result bytes (base64), the post and result transactions, r and the job's
status. A request may set its terms in the body (``extra_body={"verinfer": {"r": 3,
"reward": 10**16, "until": "settled", "audit": 1.0}}``); a key may set defaults for its
requests.
"""
from __future__ import annotations

import base64
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from client import Client
from client.errors import InvalidInput, VerinferError
from client.inputs import job_input
from client.protocol import MAX_INPUT
from client.chat import CHAT_FORMAT
from client.encoding import EMBEDDING_FORMAT_VERSION
from client.records import ModelInfo
from gateway.audit import Auditor
from gateway.audit_log import record_json
from gateway.config import GatewayConfig, Policy
from gateway.chat import chat_job, chunks, completion
from gateway.errors import APIError, error_for, invalid
from gateway.explorer import Explorer, mount_explorer
from gateway.keys import KeyRecord, KeyStore, OverLimit
from gateway.service import Answer, Batcher, Market, Terms

log = logging.getLogger("verinfer.gateway")

POLICY_FIELDS = ("r", "reward", "until", "audit")
KINDS = {EMBEDDING_FORMAT_VERSION: "an embedding model", CHAT_FORMAT: "a chat model"}


def create_app(client: Client, config: GatewayConfig, keys: KeyStore | None = None) -> FastAPI:
    """The gateway's ASGI app, acting for ``client``'s account.

    ``keys``: API keys every request must present (``Authorization: Bearer``); None
    (only allowed on a loopback address) leaves the API open to this machine.
    """
    if keys is None and not config.loopback:
        raise ValueError(f"listening on {config.host} needs API keys")
    market = Market(client, config)
    batcher = Batcher(market, config)
    batcher.auditor = auditor = Auditor(client, batcher, config)
    explorer = Explorer(client, config.explorer_interval) if config.explorer else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher.start()
        auditor.start()
        if explorer is not None:
            explorer.start()
        try:
            yield
        finally:
            await auditor.stop()
            await batcher.stop()
            if explorer is not None:
                await explorer.stop()

    app = FastAPI(title="Verinfer gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.market, app.state.batcher, app.state.keys, app.state.auditor = market, batcher, keys, auditor
    app.add_middleware(BodyLimit, limit=config.max_body)

    @app.exception_handler(APIError)
    async def api_error(_request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return await api_error(_request, invalid(f"{param or 'body'}: {first.get('msg', 'invalid request')}",
                                                 param=param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return await api_error(_request, APIError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        # The type only: an unexpected exception's text is not known to be fit to show.
        log.error("internal error: %s", type(exc).__name__, exc_info=exc)
        return await api_error(_request, APIError(500, "internal error", type="api_error", code="internal_error"))

    async def caller(request: Request) -> KeyRecord | None:
        if keys is None:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        record = keys.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if record is None:
            raise APIError(401, "Incorrect API key provided", code="invalid_api_key")
        return record

    def policy_for(key: KeyRecord | None, options: dict[str, Any] | None = None) -> Policy:
        """The request's terms: its own, else its key's defaults, else the gateway's."""
        merged = config.default_policy().model_dump()
        if key is not None:
            merged |= key.policy.model_dump(exclude_none=True)
        if options is not None:
            if not isinstance(options, dict):
                raise invalid("verinfer must be an object", param="verinfer")
            unknown = set(options) - set(POLICY_FIELDS)
            if unknown:
                raise invalid(f"unknown verinfer options {sorted(unknown)}; known: {list(POLICY_FIELDS)}",
                              param="verinfer")
            merged |= {k: v for k, v in options.items() if v is not None}
        if isinstance(merged["reward"], str) and merged["reward"].isdigit():
            merged["reward"] = int(merged["reward"])  # base units, as a string for JSON's sake
        try:
            return Policy.model_validate(merged, strict=False)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = "verinfer." + ".".join(str(p) for p in first["loc"])
            raise invalid(f"{param}: {first['msg']}", param=param) from None

    def model_object(model: ModelInfo, quote: dict | None) -> dict:
        return {"id": market.model_key(model), "object": "model", "created": 0, "owned_by": "verinfer",
                "verinfer": {"model_id": "0x" + model.model_id.hex(), "name": model.name, "active": model.active,
                             "format_version": model.format_version,
                             "weights_digest": "0x" + model.weights_digest.hex(), "price": quote}}

    async def quoted(model: ModelInfo, policy: Policy) -> dict:
        quote = await batcher.read(market.quote, model, policy) if model.active else None
        return model_object(model, quote)

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict:
        policy = policy_for(await caller(request))
        models = await chain(batcher.read(market.models))
        return {"object": "list", "data": [await chain(quoted(m, policy)) for m in models]}

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str, request: Request) -> dict:
        policy = policy_for(await caller(request))
        return await chain(quoted(await chain(batcher.read(market.resolve, model)), policy))

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        key = await caller(request)
        body = await json_body(request)
        name = model_of(body)
        inputs = texts_of(body.get("input"), config.max_inputs)
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise invalid(f"encoding_format must be 'float' or 'base64', not {encoding!r}", param="encoding_format")
        if body.get("dimensions") is not None:
            raise invalid("dimensions: the marketplace's models answer at their own size", param="dimensions")
        policy = policy_for(key, body.get("verinfer"))
        model, cost, answers = await run_jobs(key, policy, name, inputs, EMBEDDING_FORMAT_VERSION)
        return JSONResponse({
            "object": "list", "model": name,
            "data": [embedding_object(i, a, encoding) for i, a in enumerate(answers)],
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
            "verinfer": {"model_id": "0x" + model.model_id.hex(), "cost": str(cost), **policy.model_dump(),
                         "reward": str(policy.reward)},
        })

    async def run_jobs(key: KeyRecord | None, policy: Policy, name: str, inputs: list[bytes],
                       format_version: int) -> tuple[ModelInfo, int, list[Answer]]:
        """Post ``inputs`` as jobs of the model ``name`` (of ``format_version``) on
        ``policy``'s terms (paid within the key's limit), wait and verify: the model, the
        cost and the answers."""
        model = await chain(batcher.read(market.resolve, name))
        if not model.active:
            raise APIError(400, f"model '{name}' takes no new jobs", param="model", code="model_inactive")
        if model.format_version != format_version:
            raise invalid(f"model '{name}' is not {KINDS[format_version]} (GET /v1/models: "
                          f"verinfer.format_version {format_version})", param="model", code="wrong_model_kind")
        cost = await chain(batcher.read(market.price, policy, len(inputs)))
        if key is not None:
            try:
                keys.reserve(key.id, cost)
            except OverLimit as exc:
                raise APIError(429, f"This key's spending limit is reached: {exc}", type="insufficient_quota",
                               code="insufficient_quota") from None
        terms = Terms(model.model_id, policy.r, policy.reward, policy.until)
        try:
            answers = await batcher.submit(terms, inputs, audit=policy.audit, key=key and key.id)
        except APIError as exc:
            if key is not None and not exc.posted:
                keys.release(key.id, cost)
            raise
        return model, cost, answers

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        key = await caller(request)
        body = await json_body(request)
        name = model_of(body)
        options = body.get("verinfer")
        top_k = options.pop("top_k", 0) if isinstance(options, dict) else 0
        job = chat_job(body, top_k)
        policy = policy_for(key, options)
        _model, _cost, [answer] = await run_jobs(key, policy, name, [job.encode()], CHAT_FORMAT)
        if body.get("stream"):
            return StreamingResponse(chunks(answer, name, job), media_type="text/event-stream")
        return JSONResponse(completion(answer, name, job))

    @app.get("/v1/audit")
    async def audits(request: Request, job: int | None = None, limit: int = Query(100, ge=1, le=10_000)) -> dict:
        """The audited answers, newest first (a key sees its own requests'), and the
        counters over them: audited, mismatched, challenged, won..."""
        key = await caller(request)
        records = auditor.log.records(key=key and key.id, every_key=key is None)
        if job is not None:
            records = [r for r in records if r.job_id == job]
        return {"object": "list", "data": [record_json(r) for r in records[:limit]],
                "counters": auditor.counters(records)}

    if explorer is not None:  # public chain data: no API key (see gateway.explorer)
        mount_explorer(app, explorer)

    @app.get("/healthz")
    async def health() -> dict:
        return {"status": "ok", "account": client.address, "marketplace": client.marketplace.address}

    return app


async def chain(awaitable):
    """Await an SDK call, its errors turned into answers."""
    try:
        return await awaitable
    except VerinferError as exc:
        raise error_for(exc) from None


async def json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise invalid("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    return body


def model_of(body: dict) -> str:
    """The model a request names (required)."""
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise invalid("model: a model id is required (GET /v1/models lists them)", param="model")
    return name


def texts_of(value: Any, max_inputs: int) -> list[bytes]:
    """A request's ``input`` as job inputs: one string or a list of them, each one a job
    the providers would serve (``client.inputs.job_input``)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise invalid("input: a string or a non-empty list of strings", param="input")
    if not all(isinstance(x, str) for x in value):
        raise invalid("input: token arrays are not supported: send text", param="input")
    if len(value) > max_inputs:
        raise invalid(f"input: at most {max_inputs} inputs per request, got {len(value)}", param="input",
                      code="too_many_inputs")
    out = []
    for i, text in enumerate(value):
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_INPUT:
            raise invalid(f"input[{i}]: {size} bytes, over the marketplace's limit of {MAX_INPUT} bytes per input",
                          param="input", code="input_too_large")
        try:
            out.append(job_input(text, i))
        except InvalidInput as exc:
            raise invalid(f"input[{i}]: {exc}".replace(f"input {i}: ", ""), param="input",
                          code="invalid_input") from None
    return out


def embedding_object(index: int, answer: Answer, encoding: str) -> dict:
    vector = answer.verified.embedding.astype("<f4")
    result = answer.verified
    return {
        "object": "embedding", "index": index,
        "embedding": base64.b64encode(vector.tobytes()).decode() if encoding == "base64" else vector.tolist(),
        "verinfer": {
            "job_id": answer.job_id, "digest": "0x" + result.digest.hex(), "r": answer.r,
            "status": result.status.name.lower(), "final": result.final,
            "audit": "pending" if answer.audit else None,  # GET /v1/audit?job=<job_id> tells its outcome
            "transaction": "0x" + answer.post_tx.hex(), "result_transaction": "0x" + answer.result_tx.hex(),
            "providers": list(result.providers), "result": base64.b64encode(result.result).decode(),
        },
    }


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, by their Content-Length or
    as they stream in (a body without one)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise self._error()  # answered by the app's APIError handler
            return message

        await self.app(scope, counted, send)

    def _error(self) -> APIError:
        return APIError(413, f"request body over {self.limit} bytes", code="request_too_large")

    async def _refuse(self, send) -> None:
        error = self._error()
        response = JSONResponse(error.body(), status_code=413, headers=error.headers())
        await response({"type": "http"}, None, send)
