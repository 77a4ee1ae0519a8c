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
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from finetune.errors import StageInputError
from finetune.models import ChatFormatError
from finetune.recipe import Recipe
from finetune.serve._batching import MicroBatcher
from finetune.serve._engine import (
    AdapterError,
    ChatModel,
    Completion,
    GenerationRequest,
    Message,
    Sampling,
    check_adapter,
)
from finetune.serve._metrics import ServeMetrics

log = logging.getLogger(__name__)
text_log = logging.getLogger("finetune.serve._app.text")

SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_STOP_STRINGS = 4
MAX_SCORE_CONVERSATIONS = 64  # a memory guard; evaluation sends eval.batch_size (default 8) per request
# Validating a body of many tiny messages holds the GIL (and so the event loop) throughout; this bounds it.
MAX_MESSAGES = 2048


def _utf8(value: str) -> str:
    """Lone surrogates (legal in JSON escapes) cannot be tokenized or echoed back: refuse them up front."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no unpaired surrogate escapes)") from None
    return value


Text = Annotated[str, AfterValidator(_utf8)]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Text = Field(description="Only 'text' is supported.", json_schema_extra={"enum": ["text"]})
    text: Text | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant"]
    content: Text | list[ContentPart]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Text
    messages: list[ChatMessage] = Field(max_length=MAX_MESSAGES, json_schema_extra={"minItems": 1})
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is supported.")
    stop: Text | list[Text] | None = None
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(0.0, ge=0.0, le=0.0, description="Not supported: only 0 is accepted.")
    frequency_penalty: float = Field(0.0, ge=0.0, le=0.0, description="Not supported: only 0 is accepted.")
    logprobs: bool = Field(False, description="Not supported: only false is accepted.")
    tools: list[dict[str, Any]] | None = Field(None, max_length=0, description="Not supported.")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: Text
    conversations: list[Annotated[list[ChatMessage], Field(max_length=MAX_MESSAGES)]] = Field(
        min_length=1, max_length=MAX_SCORE_CONVERSATIONS)


class APIError(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def _printable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def _error_body(message: str, code: str, param: str | None, kind: str) -> dict[str, Any]:
    return {"error": {"message": _printable(message), "type": kind, "param": param and _printable(param),
                      "code": code}}


def _is_type_tag(part: object) -> bool:
    """pydantic puts union members (`str`, `function-after[_utf8(), str]`) in error locations; clients need none."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part)


def _plain_messages(messages: list[ChatMessage], where: str = "messages") -> list[Message]:
    """OpenAI messages → the plain dicts `ChatModel` takes; text parts are joined, other parts refused."""
    plain = []
    for index, message in enumerate(messages):
        content = message.content
        if isinstance(content, list):
            texts = []
            for part_index, part in enumerate(content):
                if part.type != "text" or part.text is None:
                    raise APIError(400, f"{where}[{index}].content[{part_index}]: only text parts "
                                   "({\"type\": \"text\", \"text\": ...}) are supported by this server",
                                   "unsupported_content", where)
                texts.append(part.text)
            content = "".join(texts)
        plain.append({"role": message.role, "content": content})
    return plain


def _stop_strings(stop: str | list[str] | None) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOP_STRINGS:
        raise APIError(400, f"stop: at most {MAX_STOP_STRINGS} stop strings", "invalid_request", "stop")
    if any(s == "" for s in stops):
        raise APIError(400, "stop: stop strings must not be empty", "invalid_request", "stop")
    return tuple(stops)


def _sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` mid-body: FastAPI re-raises an HTTPException met while reading a body as it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds this server's limit of {limit} bytes")


class _BodyLimit:
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
            body = _error_body(error.detail, "request_too_large", None, "invalid_request_error")
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


def _add_error_handlers(app: FastAPI) -> None:
    """Every error a client can cause is an OpenAI-style JSON body with a 4xx status; anything else a 500."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        kind = "authentication_error" if exc.status == 401 else "invalid_request_error"
        return JSONResponse(_error_body(exc.message, exc.code, exc.param, kind), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"] if p != "body" and not _is_type_tag(p)) or None
        message = f"{param}: {first['msg']}" if param else str(first["msg"])
        return JSONResponse(_error_body(message, "invalid_request", param, "invalid_request_error"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code,
                                                                                           "invalid_request")
        return JSONResponse(_error_body(str(exc.detail), code, None, "invalid_request_error"),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)
        return JSONResponse(_error_body("internal server error", "internal_error", None, "server_error"),
                            status_code=500)


def _add_auth_and_access_log(app: FastAPI, metrics: ServeMetrics, api_key: str | None) -> None:
    @app.middleware("http")
    async def _auth_and_access_log(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        if api_key and request.url.path.startswith("/v1/") and not secrets.compare_digest(
            request.headers.get("authorization", "").encode(), f"Bearer {api_key}".encode()
        ):
            body = _error_body("missing or wrong bearer token", "invalid_api_key", None, "authentication_error")
            response: Response = JSONResponse(body, status_code=401)
        else:
            response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        elapsed = time.perf_counter() - started
        metrics.requests.labels(route=route, method=request.method, status=str(response.status_code)).inc()
        metrics.request_latency.labels(route=route).observe(elapsed)
        log.info("%s %s %d %.3fs", request.method, route, response.status_code, elapsed)
        return response


def _prepare_chat(
    model: ChatModel, request: ChatCompletionRequest, default_max_tokens: int, max_tokens_limit: int | None
) -> tuple[list[Message], tuple[str, ...], int]:
    """A request's messages, stop strings and token budget, or the 400 that refuses it.

    Called in a worker thread: rendering and tokenizing a prompt of megabytes takes seconds.
    """
    messages = _plain_messages(request.messages)
    stop = _stop_strings(request.stop)
    try:
        prompt_tokens = model.count_prompt_tokens(messages)
    except ChatFormatError as exc:
        raise APIError(400, str(exc), "invalid_messages", "messages") from None
    room = model.context_length - prompt_tokens
    if room < 1:
        raise APIError(400, f"prompt ({prompt_tokens} tokens) leaves no room for an answer within the context "
                       f"length {model.context_length}", "context_length_exceeded", "messages")
    asked = request.max_completion_tokens or request.max_tokens
    if max_tokens_limit is not None and asked is not None and asked > max_tokens_limit:
        raise APIError(400, f"max_tokens ({asked}) exceeds this server's limit of {max_tokens_limit}",
                       "invalid_request", "max_tokens")
    max_tokens = asked or min(default_max_tokens, max_tokens_limit or default_max_tokens, room)
    if max_tokens > room:
        raise APIError(400, f"prompt ({prompt_tokens} tokens) + max_tokens ({max_tokens}) exceeds the "
                       f"context length {model.context_length}", "context_length_exceeded", "messages")
    return messages, stop, max_tokens


def _scoreable(model: ChatModel, request: ScoreRequest) -> list[list[Message]]:
    """The conversations to score, each checked to render and fit the context (in a worker thread, like chat)."""
    conversations = [_plain_messages(conv, f"conversations[{i}]") for i, conv in enumerate(request.conversations)]
    for index, conversation in enumerate(conversations):
        try:
            length = model.count_prompt_tokens(conversation)
        except ChatFormatError as exc:
            raise APIError(400, f"conversations[{index}]: {exc}", "invalid_messages", "conversations") from None
        if length > model.context_length:
            raise APIError(400, f"conversations[{index}] has {length} tokens, more than the context length "
                           f"{model.context_length}", "context_length_exceeded", "conversations")
    return conversations


def _model_entry(name: str, model: ChatModel, created: int) -> dict[str, Any]:
    """A /v1/models entry; `fingerprint` changes whenever the weights answering as `name` change."""
    return {"id": name, "object": "model", "created": created, "owned_by": "medtune",
            "fingerprint": model.fingerprint}


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
    app.state.batchers = batchers
    app.state.metrics = metrics
    created = int(time.time())
    _add_error_handlers(app)
    app.add_middleware(_BodyLimit, limit=max_body_bytes)  # inside the access log, so a 413 is counted
    _add_auth_and_access_log(app, metrics, api_key)

    def pick(name: str) -> ChatModel:
        if name not in models:
            raise APIError(404, f"model {name!r} is not served here; available: {', '.join(models)}",
                           "model_not_found", "model")
        return models[name]

    @app.get("/health")
    async def health() -> dict[str, Any]:  # async: answered on the event loop, never queued behind workers
        return {"status": "ok", "models": list(models)}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_entry(name, model, created) for name, model in models.items()]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
        model = pick(request.model)
        messages, stop, max_tokens = await run_in_threadpool(
            _prepare_chat, model, request, default_max_tokens, max_tokens_limit)
        sampling = Sampling(request.temperature, request.top_p, request.seed)
        if log_text:
            text_log.info("prompt model=%s messages=%s", request.model, json.dumps(messages, ensure_ascii=False))
        identity = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": request.model}
        finished = partial(_finished, metrics, request.model, time.perf_counter(), log_text)
        if request.stream:
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            return StreamingResponse(
                _stream(batchers[request.model], messages, max_tokens, stop, sampling, identity, include_usage,
                        finished),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache"},
            )
        generation = GenerationRequest(messages, max_tokens, stop)
        future = batchers[request.model].submit(generation, sampling)
        try:
            completion = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            generation.cancelled.set()
            raise
        usage = finished(completion, streamed=False)
        return {
            **identity,
            "object": "chat.completion",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason,
            }],
            "usage": usage,
        }

    @app.post("/v1/score")
    async def score(request: ScoreRequest) -> dict[str, Any]:
        model = pick(request.model)
        conversations = await run_in_threadpool(_scoreable, model, request)
        try:
            results = await run_in_threadpool(model.score, conversations)
        except ChatFormatError as exc:
            raise APIError(400, str(exc), "invalid_messages", "conversations") from None
        return {
            "object": "list",
            "model": request.model,
            "data": [{"index": i, "nll": s.nll, "tokens": s.tokens} for i, s in enumerate(results)],
        }

    app.openapi = partial(_openapi_listing_models, app, list(models))  # type: ignore[method-assign]
    return app


def _finished(
    metrics: ServeMetrics, model: str, started: float, log_text: bool, completion: Completion, streamed: bool
) -> dict[str, int]:
    """Counts a finished completion in the metrics (and the text log, when asked) and returns its usage."""
    metrics.completions.labels(model=model, stream=str(streamed).lower(),
                               finish_reason=completion.finish_reason).inc()
    metrics.prompt_tokens.labels(model=model).inc(completion.prompt_tokens)
    metrics.completion_tokens.labels(model=model).inc(completion.completion_tokens)
    metrics.generation_latency.labels(model=model).observe(time.perf_counter() - started)
    if log_text:
        text_log.info("completion model=%s text=%s", model, json.dumps(completion.text, ensure_ascii=False))
    return {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.prompt_tokens + completion.completion_tokens}


def _openapi_listing_models(app: FastAPI, names: list[str]) -> dict[str, Any]:
    """The schema names the served models (validation still takes any name: unknown ones get a 404)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for name in ("ChatCompletionRequest", "ScoreRequest"):
            schema["components"]["schemas"][name]["properties"]["model"]["enum"] = names
        app.openapi_schema = schema
    return app.openapi_schema


async def _stream(
    batcher: MicroBatcher,
    messages: list[Message],
    max_tokens: int,
    stop: tuple[str, ...],
    sampling: Sampling,
    identity: dict[str, Any],
    include_usage: bool,
    finished: Any,
) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them: a role chunk, content deltas, a finish chunk, [DONE]."""
    loop = asyncio.get_running_loop()
    deltas: asyncio.Queue[str | None] = asyncio.Queue()

    def on_text(text: str) -> None:
        loop.call_soon_threadsafe(deltas.put_nowait, text)

    generation = GenerationRequest(messages, max_tokens, stop, on_text=on_text)
    future = batcher.submit(generation, sampling)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(deltas.put_nowait, None))

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {**identity, "object": "chat.completion.chunk", "choices": [choice]}

    try:
        yield _sse(chunk({"role": "assistant", "content": ""}, None))
        while (text := await deltas.get()) is not None:
            yield _sse(chunk({"content": text}, None))
        completion = future.result()
        usage = finished(completion, streamed=True)
        yield _sse(chunk({}, completion.finish_reason))
        if include_usage:
            yield _sse({**identity, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        yield _sse("[DONE]")
    finally:
        generation.cancelled.set()  # a client that went away stops its row; a finished row ignores this


def models_for_recipe(
    recipe: Recipe,
    adapters: Mapping[str, str | Path] | None = None,
    merged: Mapping[str, str | Path] | None = None,
) -> dict[str, ChatModel]:
    """`base` and `tuned` as the recipe defines them, plus any further adapters and merged checkpoints.

    Adapters share one copy of the base weights; merged checkpoints are full models of their own.
    """
    adapters, merged = dict(adapters or {}), dict(merged or {})
    if recipe.eval.tuned == "merged":
        if not (recipe.merged_dir / "config.json").is_file():
            raise StageInputError(f"{recipe.merged_dir} holds no merged model: run `medtune export` first")
        merged = {"tuned": recipe.merged_dir, **merged}
    else:
        if not (recipe.adapter_dir / "adapter_config.json").is_file():
            raise StageInputError(f"{recipe.adapter_dir} holds no adapter: run `medtune train` first")
        adapters = {"tuned": recipe.adapter_dir, **adapters}
    clash = {"base"} & (set(adapters) | set(merged)) | set(adapters) & set(merged)
    if clash:
        raise ValueError(f"model name(s) {', '.join(sorted(clash))} given twice: every served model needs its own")
    for name, path in adapters.items():
        try:
            check_adapter(path)  # before any weights load: a broken adapter fails in a second, naming its file
        except AdapterError as exc:
            raise AdapterError(f"adapter {name!r}: {exc}") from None
    for name, path in merged.items():
        if not (Path(path) / "config.json").is_file():
            raise StageInputError(f"merged model {name!r}: {path} holds no config.json")
    if adapters:
        models = ChatModel.load_shared(recipe.model.base, adapters, base_name="base")
    else:
        models = {"base": ChatModel.load(recipe.model.base, name="base")}
    for name, path in merged.items():
        models[name] = ChatModel.load(path, name=name)
    order = ["base", "tuned"]
    return dict(sorted(models.items(), key=lambda item: (order.index(item[0]) if item[0] in order else 2)))


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

