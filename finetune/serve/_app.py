"""OpenAI-compatible HTTP API on top of `ChatModel`: several models in one process, chosen by `model`.

Endpoints: POST /v1/chat/completions (plain or server-sent events), GET /v1/models, POST /v1/score
(assistant-token log-likelihood, which the evaluation uses for held-out loss), GET /health and GET /metrics
(Prometheus). Concurrent requests for one model are decoded together by a `MicroBatcher`. With an API key,
every /v1 route needs the bearer token; /health and /metrics stay open for probes and scrapers (they hold
counts and timings only).

Bad requests get OpenAI-style JSON errors with a 4xx status; a body over `max_body_bytes` gets a 413 before
it is read whole. Prompts are rendered and tokenized in worker threads, never on the event loop, so /health
answers at once while a long prompt is being counted. /v1/models gives each model's weights `fingerprint`.
Prompts and completions never reach the logs unless `log_text` is set: the access log holds the route, status
and timing, never bodies or query strings.

This module holds the app, its routes and the two ways to run it (`serve`, `BackgroundServer`); the wire
format is in `_protocol`, what the chat and score routes do in `_chat`.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from finetune.models import ChatFormatError
from finetune.serve._batching import MicroBatcher
from finetune.serve._body_limit import BodyLimit
from finetune.serve._chat import complete, identity, on_finish, prepare_chat, scoreable, stream, text_log
from finetune.serve._decoding import GenerationRequest, Sampling
from finetune.serve._engine import ChatModel
from finetune.serve._metrics import ServeMetrics
from finetune.serve._protocol import (
    DEFAULT_MAX_BODY_BYTES,
    APIError,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    ScoreRequest,
    ScoreResponse,
    ScoreResult,
    error_body,
)

log = logging.getLogger(__name__)


def _is_type_tag(part: object) -> bool:
    """pydantic puts union members (`str`, `function-after[_utf8(), str]`) in error locations; clients need none."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error a client can cause is an OpenAI-style JSON body with a 4xx status; anything else a 500."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        kind = "authentication_error" if exc.status == 401 else "invalid_request_error"
        return JSONResponse(error_body(exc.message, exc.code, exc.param, kind), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"] if p != "body" and not _is_type_tag(p)) or None
        message = f"{param}: {first['msg']}" if param else str(first["msg"])
        return JSONResponse(error_body(message, "invalid_request", param, "invalid_request_error"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code,
                                                                                           "invalid_request")
        return JSONResponse(error_body(str(exc.detail), code, None, "invalid_request_error"),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)
        return JSONResponse(error_body("internal server error", "internal_error", None, "server_error"),
                            status_code=500)


def _add_auth_and_access_log(app: FastAPI, metrics: ServeMetrics, api_key: str | None) -> None:
    @app.middleware("http")
    async def _auth_and_access_log(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        if api_key and request.url.path.startswith("/v1/") and not secrets.compare_digest(
            request.headers.get("authorization", "").encode(), f"Bearer {api_key}".encode()
        ):
            body = error_body("missing or wrong bearer token", "invalid_api_key", None, "authentication_error")
            response: Response = JSONResponse(body, status_code=401)
        else:
            response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        elapsed = time.perf_counter() - started
        metrics.requests.labels(route=route, method=request.method, status=str(response.status_code)).inc()
        metrics.request_latency.labels(route=route).observe(elapsed)
        log.info("%s %s %d %.3fs", request.method, route, response.status_code, elapsed)
        return response


def _pick(models: Mapping[str, ChatModel], name: str) -> ChatModel:
    if name not in models:
        raise APIError(404, f"model {name!r} is not served here; available: {', '.join(models)}",
                       "model_not_found", "model")
    return models[name]


def _add_info_routes(app: FastAPI, models: Mapping[str, ChatModel], metrics: ServeMetrics) -> None:
    """/health, /metrics and /v1/models."""
    created = int(time.time())

    @app.get("/health")
    async def health() -> dict[str, Any]:  # async: answered on the event loop, never queued behind workers
        return {"status": "ok", "models": list(models)}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        cards = [ModelCard(id=name, created=created, fingerprint=model.fingerprint) for name, model in models.items()]
        return ModelList(data=cards).model_dump()


def _add_chat_route(
    app: FastAPI,
    models: Mapping[str, ChatModel],
    batchers: Mapping[str, MicroBatcher],
    metrics: ServeMetrics,
    default_max_tokens: int,
    max_tokens_limit: int | None,
    log_text: bool,
) -> None:
    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
        model = _pick(models, request.model)
        messages, stop, max_tokens = await run_in_threadpool(
            prepare_chat, model, request, default_max_tokens, max_tokens_limit)
        sampling = Sampling(request.temperature, request.top_p, request.seed)
        if log_text:
            text_log.info("prompt model=%s messages=%s", request.model, json.dumps(messages, ensure_ascii=False))
        ids = identity(request.model)
        finished = on_finish(metrics, request, log_text)
        generation = GenerationRequest(messages, max_tokens, stop)
        if request.stream:
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            return StreamingResponse(
                stream(batchers[request.model], generation, sampling, ids, include_usage, finished),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache"},
            )
        return await complete(batchers[request.model], generation, sampling, ids, finished)


def _add_score_route(app: FastAPI, models: Mapping[str, ChatModel]) -> None:
    @app.post("/v1/score")
    async def score(request: ScoreRequest) -> dict[str, Any]:
        model = _pick(models, request.model)
        conversations = await run_in_threadpool(scoreable, model, request)
        try:
            results = await run_in_threadpool(model.score, conversations)
        except ChatFormatError as exc:
            raise APIError(400, str(exc), "invalid_messages", "conversations") from None
        data = [ScoreResult(index=i, nll=s.nll, tokens=s.tokens) for i, s in enumerate(results)]
        return ScoreResponse(model=request.model, data=data).model_dump()


def create_app(
    models: Mapping[str, ChatModel],
    api_key: str | None = None,
    default_max_tokens: int = 256,
    *,
    max_batch_size: int = 8,
    batch_wait_ms: float = 5.0,
    max_tokens_limit: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_text: bool = False,
) -> FastAPI:
    """The API for `models` (name → ChatModel). With `api_key`, every /v1 route needs that bearer token.

    `max_tokens_limit` caps what one request may ask for (a 400 above it); `max_body_bytes` caps a request
    body (a 413 above it); `log_text` logs prompts and completions to the `finetune.serve._app.text` logger, which
    is off by default because they hold patient text.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
    metrics = ServeMetrics()
    batchers = {
        name: MicroBatcher(model, max_batch_size, batch_wait_ms / 1000,
                           on_batch=metrics.batch_size.labels(model=name).observe)
        for name, model in models.items()
    }

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for batcher in batchers.values():
            await run_in_threadpool(batcher.close)

    app = FastAPI(title="medtune", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan)
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, limit=max_body_bytes)  # inside the access log, so a 413 is counted
    _add_auth_and_access_log(app, metrics, api_key)
    _add_info_routes(app, models, metrics)
    _add_chat_route(app, models, batchers, metrics, default_max_tokens, max_tokens_limit, log_text)
    _add_score_route(app, models)
    app.openapi = partial(_openapi_listing_models, app, list(models))  # type: ignore[method-assign]
    return app


def _openapi_listing_models(app: FastAPI, names: list[str]) -> dict[str, Any]:
    """The schema names the served models (validation still takes any name: unknown ones get a 404)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for name in ("ChatCompletionRequest", "ScoreRequest"):
            schema["components"]["schemas"][name]["properties"]["model"]["enum"] = names
        app.openapi_schema = schema
    return app.openapi_schema


class BackgroundServer:
    """Run the API in a thread on loopback (for evaluation and tests); `port=0` picks a free port."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self

    @property
    def base_url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(
    models: Mapping[str, ChatModel],
    host: str,
    port: int,
    api_key: str | None = None,
    log_level: Literal["info", "warning"] = "info",
    **options: Any,
) -> None:
    """Serve in the foreground until interrupted; `options` go to `create_app` (batching, limits, log_text).

    uvicorn's own access log is off: it would print query strings. The app logs route, status and timing.
    """
    app = create_app(models, api_key=api_key, **options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)

