"""Errors to gRPC status codes, in one place.

Everything a handler raises goes through :func:`grpc_errors`:

- a :class:`ServiceError` carries its status code and a message written for the client (what
  was wrong, what was expected, what to do);
- ``ValueError`` raised by a converter or task on client input is INVALID_ARGUMENT with its
  message (converters and tasks only raise ``ValueError`` about the caller's data);
- a cancelled call (client gone, server stopping) propagates untouched;
- anything else is INTERNAL with a generic message and a reference; the traceback goes only
  to the server log, under that reference.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any

import grpc

log = logging.getLogger("eventsp.services")


class ServiceError(Exception):
    """An error the client should see, with its status code."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidArgumentError(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class ResourceExhaustedError(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceededError(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnavailableError(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


def _status_for(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, ServiceError):
        return exc.code, str(exc)
    if isinstance(exc, ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    ref = uuid.uuid4().hex[:12]
    log.error(
        "unexpected error",
        exc_info=exc,
        extra={"event": "internal_error", "method": method, "ref": ref},
    )
    return grpc.StatusCode.INTERNAL, f"internal error (reference {ref} in the server log)"


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    code, message = _status_for(exc, method)
    if code != grpc.StatusCode.INTERNAL:
        log.info(
            "request refused",
            extra={"event": "refused", "method": method, "code": code.name, "reason": message},
        )
    await context.abort(code, message)


def grpc_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an async servicer method with the error mapping.

    Handlers are coroutines (streaming ones answer with ``await context.write(...)``), so a
    cancelled call always interrupts the handler itself and its ``finally`` blocks run at once.
    """
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{handler.__qualname__} must be an async def coroutine function")
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            return await handler(self, request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await _abort(context, exc, method)

    return wrapper
