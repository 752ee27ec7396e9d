"""OpenAI-shaped errors: what the gateway answers when a request fails, and the table
turning SDK errors into them.

Every error body is ``{"error": {"message", "type", "param", "code"}}`` as OpenAI's API
answers, so the ``openai`` client raises its usual exception classes
(``AuthenticationError`` for 401, ``NotFoundError`` for 404, ``RateLimitError`` for 429...).
Each carries ``x-should-retry: false`` unless retrying is harmless: the ``openai``
client retries 429 and 5xx by default, and a retried embeddings request that already
posted jobs would post (and pay for) them again.

>>> err = error_for(WaitTimeout("2 of 2 jobs not done after 300s", {}))
>>> err.status, err.code
(504, 'timeout')
"""
from __future__ import annotations

from typing import Any

from client.errors import (ConfigError, ContractError, DeploymentNotFound, InsufficientFunds, InvalidArgument,
                           InvalidInput, MarketplacePaused, ModelInactive, ModelNotFound, ResultMismatch,
                           ResultUnavailable, RpcUnavailable, TransactionTimeout, VerinferError, WaitTimeout)


class APIError(Exception):
    """An error answer: HTTP ``status`` and the fields of OpenAI's error object.

    ``extra`` goes into the error object under ``verinfer`` (e.g. the job ids of a
    request that timed out, to look up later).
    """

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, retry: bool = False,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.retry, self.extra = retry, extra
        self.posted = True  # whether the request's jobs may have been posted (then they are paid for)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        if self.extra:
            error["verinfer"] = self.extra
        return {"error": error}

    def headers(self) -> dict[str, str]:
        return {"x-should-retry": "true" if self.retry else "false"}


def invalid(message: str, *, param: str | None = None, code: str = "invalid_request") -> APIError:
    """400: a request the gateway (or the contracts) would refuse."""
    return APIError(400, message, param=param, code=code)


def unknown_model(model: str) -> APIError:
    return APIError(404, f"The model '{model}' does not exist on this marketplace (GET /v1/models lists them)",
                    param="model", code="model_not_found")


# SDK error -> (status, type, code); the first matching class wins (subclasses first).
_TABLE: list[tuple[type[VerinferError], int, str, str]] = [
    (ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (ModelInactive, 400, "invalid_request_error", "model_inactive"),
    (InvalidInput, 400, "invalid_request_error", "invalid_input"),
    (InvalidArgument, 400, "invalid_request_error", "invalid_argument"),
    # The gateway's own account cannot pay: the operator must fund it, not the caller.
    (InsufficientFunds, 503, "api_error", "gateway_insufficient_funds"),
    (MarketplacePaused, 503, "api_error", "marketplace_paused"),
    (RpcUnavailable, 503, "api_error", "chain_unavailable"),
    (WaitTimeout, 504, "api_error", "timeout"),
    (TransactionTimeout, 504, "api_error", "transaction_timeout"),
    (ResultMismatch, 502, "api_error", "verification_failed"),
    (ResultUnavailable, 502, "api_error", "no_result"),
    (ContractError, 502, "api_error", "chain_error"),
    (DeploymentNotFound, 503, "api_error", "no_marketplace"),
    (ConfigError, 500, "api_error", "gateway_misconfigured"),
]


def error_for(exc: VerinferError, **extra: Any) -> APIError:
    """The answer for an SDK error (its message is safe to show: the SDK never puts a key in one)."""
    for kind, status, type_, code in _TABLE:
        if isinstance(exc, kind):
            return APIError(status, f"{type(exc).__name__}: {exc}", type=type_, code=code, extra=extra or None)
    return APIError(500, f"{type(exc).__name__}: {exc}", type="api_error", code="internal_error",
                    extra=extra or None)
