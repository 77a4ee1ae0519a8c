"""The request body limit: bodies over `max_body_bytes` get a 413 before they are held in memory whole."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from finetune.serve._protocol import error_body


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` mid-body: FastAPI re-raises an HTTPException met while reading a body as it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds this server's limit of {limit} bytes")


class BodyLimit:
    """Refuses request bodies over `limit` bytes with a 413, so no oversized body is ever held in memory.

    A Content-Length over the limit is refused before anything is read; a body without one (chunked) is
    counted as it arrives, and the route reading it fails with a 413 that the app's error handler answers.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            error = _BodyTooLarge(self.limit)
            body = error_body(error.detail, "request_too_large", None, "invalid_request_error")
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> ASGIMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)
