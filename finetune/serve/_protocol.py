"""The OpenAI-compatible wire format: request models (validated by FastAPI), response models and error bodies.

Requests are validated against the models here before any route runs, within the limits below. Responses are
built from the response models and sent as plain dicts (`model_dump`), so the OpenAPI schema lists request
bodies only and every response keeps OpenAI's key order. Errors are OpenAI-style: `{"error": {message, type,
param, code}}`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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


class ModelCard(BaseModel):
    """A /v1/models entry; `fingerprint` changes whenever the weights answering as `id` change."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "medtune"
    fingerprint: str | None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    created: int
    model: str
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[Choice]
    usage: Usage


class ChunkChoice(BaseModel):
    """A streamed choice: `delta` is `{"role", "content"}` first, then `{"content"}`, and `{}` with the finish."""

    index: int = 0
    delta: dict[str, str]
    finish_reason: str | None


class ChatCompletionChunk(BaseModel):
    id: str
    created: int
    model: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]


class UsageChunk(ChatCompletionChunk):
    """The last chunk before [DONE] when `stream_options.include_usage` is set: no choices, the usage."""

    usage: Usage


class ScoreResult(BaseModel):
    index: int
    nll: float
    tokens: int


class ScoreResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[ScoreResult]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class APIError(Exception):
    """A request the server refuses: answered as an OpenAI-style error body with `status`."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def _printable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def error_body(message: str, code: str, param: str | None, kind: str) -> dict[str, Any]:
    """An OpenAI-style error body; text that cannot be encoded (echoed from the request) is replaced."""
    detail = ErrorDetail(message=_printable(message), type=kind, param=param and _printable(param), code=code)
    return ErrorResponse(error=detail).model_dump()
