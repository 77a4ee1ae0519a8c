"""What the chat and score routes do with a validated request: check it against the model, answer it, count it.

The checks (`prepare_chat`, `scoreable`) render and tokenize prompts, which for a prompt of megabytes can take
seconds: the routes run them in worker threads, never on the event loop. Answers go through the model's
`MicroBatcher`, whole (`complete`) or as server-sent events (`stream`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from finetune.models import ChatFormatError
from finetune.serve._batching import MicroBatcher
from finetune.serve._decoding import GenerationRequest, Message, Sampling
from finetune.serve._engine import ChatModel, Completion
from finetune.serve._metrics import ServeMetrics
from finetune.serve._protocol import (
    MAX_STOP_STRINGS,
    APIError,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    ScoreRequest,
    Usage,
    UsageChunk,
)

# Prompts and completions hold patient text: this logger is written to only when the app's `log_text` is set.
text_log = logging.getLogger("finetune.serve._app.text")

Finished = Callable[[Completion, bool], Usage]


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


def prepare_chat(
    model: ChatModel, request: ChatCompletionRequest, default_max_tokens: int, max_tokens_limit: int | None
) -> tuple[list[Message], tuple[str, ...], int]:
    """A request's messages, stop strings and token budget, or the 400 that refuses it (in a worker thread)."""
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


def scoreable(model: ChatModel, request: ScoreRequest) -> list[list[Message]]:
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


def _finished(
    metrics: ServeMetrics, model: str, started: float, log_text: bool, completion: Completion, streamed: bool
) -> Usage:
    """Counts a finished completion in the metrics (and the text log, when asked) and returns its usage."""
    metrics.completions.labels(model=model, stream=str(streamed).lower(),
                               finish_reason=completion.finish_reason).inc()
    metrics.prompt_tokens.labels(model=model).inc(completion.prompt_tokens)
    metrics.completion_tokens.labels(model=model).inc(completion.completion_tokens)
    metrics.generation_latency.labels(model=model).observe(time.perf_counter() - started)
    if log_text:
        text_log.info("completion model=%s text=%s", model, json.dumps(completion.text, ensure_ascii=False))
    return Usage(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                 total_tokens=completion.prompt_tokens + completion.completion_tokens)


def on_finish(metrics: ServeMetrics, request: ChatCompletionRequest, log_text: bool) -> Finished:
    """What to do when the request's completion ends; the generation latency is timed from this call."""
    return partial(_finished, metrics, request.model, time.perf_counter(), log_text)


def identity(model: str) -> dict[str, Any]:
    """The fields every response and chunk of one completion shares."""
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}


async def complete(
    batcher: MicroBatcher, generation: GenerationRequest, sampling: Sampling, ids: dict[str, Any], finished: Finished
) -> dict[str, Any]:
    """The whole answer as one chat.completion; a client that goes away cancels its row."""
    future = batcher.submit(generation, sampling)
    try:
        completion = await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        generation.cancelled.set()
        raise
    usage = finished(completion, False)
    choice = Choice(message=AssistantMessage(content=completion.text), finish_reason=completion.finish_reason)
    return ChatCompletion(**ids, choices=[choice], usage=usage).model_dump()


def _sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def _chunk(ids: dict[str, Any], delta: dict[str, str], finish_reason: str | None) -> str:
    choice = ChunkChoice(delta=delta, finish_reason=finish_reason)
    return _sse(ChatCompletionChunk(**ids, choices=[choice]).model_dump())


async def stream(
    batcher: MicroBatcher,
    generation: GenerationRequest,
    sampling: Sampling,
    ids: dict[str, Any],
    include_usage: bool,
    finished: Finished,
) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them: a role chunk, content deltas, a finish chunk, [DONE].

    `generation`'s text callback is set here: it hands each delta from the batching thread to this loop.
    """
    loop = asyncio.get_running_loop()
    deltas: asyncio.Queue[str | None] = asyncio.Queue()

    def on_text(text: str) -> None:
        loop.call_soon_threadsafe(deltas.put_nowait, text)

    generation.on_text = on_text
    future = batcher.submit(generation, sampling)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(deltas.put_nowait, None))
    try:
        yield _chunk(ids, {"role": "assistant", "content": ""}, None)
        while (text := await deltas.get()) is not None:
            yield _chunk(ids, {"content": text}, None)
        completion = future.result()
        usage = finished(completion, True)
        yield _chunk(ids, {}, completion.finish_reason)
        if include_usage:
            yield _sse(UsageChunk(**ids, choices=[], usage=usage).model_dump())
        yield _sse("[DONE]")
    finally:
        generation.cancelled.set()  # a client that went away stops its row; a finished row ignores this
