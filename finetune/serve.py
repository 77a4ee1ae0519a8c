"""OpenAI-compatible HTTP API on top of `ChatModel`: several models in one process, chosen by `model`.

Endpoints: POST /v1/chat/completions, GET /v1/models, GET /health, and POST /v1/score (assistant-token
log-likelihood, which the evaluation uses for held-out loss). Prompts and completions are never logged.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from finetune.gemma import ChatFormatError
from finetune.inference import ChatModel
from finetune.recipe import Recipe
from finetune.train import StageInputError


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]]


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    conversations: list[list[ChatMessage]] = Field(min_length=1)


class APIError(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def _error_body(message: str, code: str, param: str | None, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def create_app(
    models: Mapping[str, ChatModel], api_key: str | None = None, default_max_tokens: int = 256
) -> FastAPI:
    """The API for `models` (name → ChatModel). With `api_key`, every /v1 route needs that bearer token."""
    app = FastAPI(title="medtune", version="0.1.0", docs_url=None, redoc_url=None)
    created = int(time.time())

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        kind = "authentication_error" if exc.status == 401 else "invalid_request_error"
        return JSONResponse(_error_body(exc.message, exc.code, exc.param, kind), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"] if p != "body") or None
        body = _error_body(f"{param}: {first['msg']}" if param else first["msg"], "invalid_request", param,
                           "invalid_request_error")
        return JSONResponse(body, status_code=400)

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        if api_key and request.url.path.startswith("/v1/"):
            header = request.headers.get("authorization", "")
            if not secrets.compare_digest(header, f"Bearer {api_key}"):
                body = _error_body("missing or wrong bearer token", "invalid_api_key", None, "authentication_error")
                return JSONResponse(body, status_code=401)
        return await call_next(request)

    def pick(name: str) -> ChatModel:
        if name not in models:
            raise APIError(404, f"model {name!r} is not served here; available: {', '.join(models)}",
                           "model_not_found", "model")
        return models[name]

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(models)}

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        data = [{"id": name, "object": "model", "created": created, "owned_by": "medtune"} for name in models]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest) -> dict[str, Any]:
        model = pick(request.model)
        if request.stream:
            raise APIError(400, "stream=true is not supported by this server yet", "unsupported", "stream")
        messages = [m.model_dump() for m in request.messages]
        max_tokens = request.max_completion_tokens or request.max_tokens or default_max_tokens
        try:
            prompt_tokens = model.count_prompt_tokens(messages)
        except ChatFormatError as exc:
            raise APIError(400, str(exc), "invalid_messages", "messages") from None
        if prompt_tokens + max_tokens > model.context_length:
            raise APIError(400, f"prompt ({prompt_tokens} tokens) + max_tokens ({max_tokens}) exceeds the "
                           f"context length {model.context_length}", "context_length_exceeded", "messages")
        stop = [request.stop] if isinstance(request.stop, str) else request.stop
        completion = (await run_in_threadpool(
            model.generate, [messages], max_new_tokens=max_tokens, temperature=request.temperature,
            top_p=request.top_p, stop=stop, seed=request.seed,
        ))[0]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason,
            }],
            "usage": {
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "total_tokens": completion.prompt_tokens + completion.completion_tokens,
            },
        }

    @app.post("/v1/score")
    async def score(request: ScoreRequest) -> dict[str, Any]:
        model = pick(request.model)
        conversations = [[m.model_dump() for m in conv] for conv in request.conversations]
        try:
            results = await run_in_threadpool(model.score, conversations)
        except ChatFormatError as exc:
            raise APIError(400, str(exc), "invalid_messages", "conversations") from None
        return {
            "object": "list",
            "model": request.model,
            "data": [{"index": i, "nll": s.nll, "tokens": s.tokens} for i, s in enumerate(results)],
        }

    return app


def models_for_recipe(recipe: Recipe) -> dict[str, ChatModel]:
    """`base` and `tuned` as the recipe defines them, ready to serve."""
    base = ChatModel.load(recipe.model.base, name="base")
    if recipe.eval.tuned == "merged":
        if not (recipe.merged_dir / "config.json").is_file():
            raise StageInputError(f"{recipe.merged_dir} holds no merged model: run `medtune export` first")
        tuned = ChatModel.load(recipe.merged_dir, name="tuned")
    else:
        if not (recipe.adapter_dir / "adapter_config.json").is_file():
            raise StageInputError(f"{recipe.adapter_dir} holds no adapter: run `medtune train` first")
        tuned = ChatModel.load(recipe.model.base, adapter=recipe.adapter_dir, name="tuned")
    return {"base": base, "tuned": tuned}


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


def serve(models: Mapping[str, ChatModel], host: str, port: int, api_key: str | None = None,
          log_level: Literal["info", "warning"] = "info") -> None:
    """Serve in the foreground until interrupted. Access logs hold paths and status codes, never bodies."""
    uvicorn.run(create_app(models, api_key=api_key), host=host, port=port, log_level=log_level)
