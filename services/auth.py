"""Token authentication through call metadata (``authorization: Bearer <token>``).

A server interceptor checks every call except health checks (load balancers probe without
credentials) and answers UNAUTHENTICATED, saying whether the token was missing or wrong. The
comparison is constant-time; the token never appears in logs or messages.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

log = logging.getLogger("eventsp.services")

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)


def _denying_handler(handler: Any, message: str) -> Any:
    """A handler of the same streaming kind as ``handler`` that aborts UNAUTHENTICATED."""

    async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    kind = (handler.request_streaming, handler.response_streaming)
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[kind]
    return factory(
        deny,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(EXEMPT_PREFIXES):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = metadata.get("authorization")
        if isinstance(given, str) and hmac.compare_digest(given.encode(), self._expected):
            return handler
        if given is None:
            message = (
                "this server needs a token: send call metadata 'authorization: Bearer <token>' "
                "(eventsp clients: --token)"
            )
        else:
            message = "the token in 'authorization' metadata is not valid; check --token"
        log.info(
            "unauthenticated call",
            extra={"event": "unauthenticated", "method": method, "missing": given is None},
        )
        return _denying_handler(handler, message)
