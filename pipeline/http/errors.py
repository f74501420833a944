"""Errors of the HTTP ingress and the one JSON shape every error response takes.

Handlers raise :class:`ApiError`; a middleware renders it (and aiohttp's own HTTP errors, such as
an unknown route) as ``{"error": code, "message": ..., "details": [...]}`` so clients parse one
format whatever went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler

from pipeline.errors import ConfigError, MSMError

JsonDetail = Mapping[str, object]
log = logging.getLogger(__name__)


class HttpIngressError(MSMError):
    """Base of the HTTP ingress's own errors."""


class TokenConfigError(HttpIngressError, ConfigError):
    """The configured ingress tokens cannot be read; the message never contains a token."""


class ApiError(HttpIngressError):
    """A request the ingress refuses: rendered as JSON with ``status`` and ``headers``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[JsonDetail] = (),
        headers: Mapping[str, str] | None = None,
        *,
        retriable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})
        self.retriable = retriable

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.details, self.headers)


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[JsonDetail] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {"error": code, "message": message, "details": list(details)}
    return web.json_response(body, status=status, headers=headers)


def bad_request(
    message: str, details: Sequence[JsonDetail] = (), code: str = "invalid"
) -> ApiError:
    return ApiError(400, code, message, details)


def _code_of(exc: web.HTTPException) -> str:
    return (exc.reason or "error").lower().replace(" ", "_")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ApiError, aiohttp's HTTP errors (404 route, 405, 413) and bugs as error JSON."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in _KEPT_HEADERS}
        message = exc.text if exc.text and exc.content_type == "text/plain" else exc.reason
        return error_response(exc.status, _code_of(exc), message, (), headers)
    except Exception:
        log.exception("HTTP %s %s failed", request.method, request.path)
        return error_response(500, "internal", "internal error; the server log has the details")


_KEPT_HEADERS = frozenset({"allow", "www-authenticate", "retry-after"})
