"""Talking to a served model over the OpenAI-compatible API: concurrent generations and scores, through the cache.

Requests go out `concurrency` at a time so that a batching server (medtune's, vLLM) decodes them together;
every answer is cached the moment it arrives, so an interrupted run loses nothing it already paid for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import httpx
import openai
from openai import OpenAI

from finetune.eval._cache import GenerationCache, cache_key

Messages = list[dict[str, Any]]
MODEL_ROLES = ("base", "tuned")  # the two models an evaluation compares


class EndpointError(RuntimeError):
    """The endpoint refused or failed; the message says which endpoint, model and what is already cached."""


PROBE_PROMPT: Messages = [{"role": "user", "content": "Continue the list with five more words: heart, lung, liver,"}]
PROBE_MAX_TOKENS = 8
PROBE_REPLY = "kidney, spleen, stomach, pancreas, brain."
LOGPROB_DECIMALS = 1  # coarse: run-to-run numeric noise must not change a probe, other weights must


def _rounded(log_likelihood: float) -> float:
    return round(float(log_likelihood), LOGPROB_DECIMALS) + 0.0  # + 0.0: -0.0 and 0.0 hash alike


def _error_message(exc: Exception) -> str:
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("error", body) if isinstance(body, dict) else body
        message = detail.get("message") if isinstance(detail, dict) else None
        return f"HTTP {exc.status_code}: {message or exc.message}"
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return "cannot connect (is the server running and the URL right?)"
    return str(exc)


class APIClient:
    """One OpenAI-compatible endpoint: chat completions for everyone, /v1/score where medtune serves it."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.sends_key = bool(api_key)
        # Retries cover transient 5xx/429 answers (a restarting or overloaded server), with backoff.
        self.openai = OpenAI(base_url=f"{self.base_url}/v1", api_key=api_key or "unused", max_retries=4,
                             timeout=timeout)
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout,
                                 headers={"Authorization": f"Bearer {api_key}"} if api_key else {})

    def _key_refused(self, exc: openai.APIStatusError) -> EndpointError:
        sent = "refused the API key" if self.sends_key else "needs an API key and none was given"
        return EndpointError(f"{self.base_url}: the server {sent} ({_error_message(exc)}): set --api-key-env to "
                             "the environment variable that holds this server's bearer token")

    def list_models(self) -> list[dict[str, Any]] | None:
        """GET /v1/models, each model as the server describes it; None where the server lists none (404/405).

        Every run sends this before it uses a cached answer, so a server that is down or refuses the key fails
        the run instead of letting old answers stand in for it.
        """
        try:
            page = self.openai.with_options(max_retries=1).models.list()
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise self._key_refused(exc) from None
        except openai.APIStatusError as exc:
            if exc.status_code in (404, 405):
                return None
            raise EndpointError(f"{self.base_url}/v1/models: {_error_message(exc)}") from None
        except openai.APIConnectionError as exc:
            raise EndpointError(f"{self.base_url}: {_error_message(exc)}") from None
        return [entry.to_dict() for entry in page.data]

    def require_model(self, model: str) -> dict[str, Any] | None:
        """`model`'s entry in /v1/models (None where the server lists none); fails with the names on offer."""
        listed = self.list_models()
        if listed is None:
            return None
        entry = next((e for e in listed if e.get("id") == model), None)
        if entry is None:
            names = ", ".join(str(e.get("id")) for e in listed)
            raise EndpointError(f"{self.base_url}: no model {model!r} served here; available: {names}")
        return entry

    def probe(self, model: str) -> str:
        """A hash of `model`'s greedy answer to a fixed short prompt, with what the server says of its likelihood.

        Servers that publish no weights fingerprint are told apart by this. Greedy text alone can agree between
        checkpoints (a few tokens, or an untrained model's blank lines), so the answer's logprobs go in where the
        server gives them, and the score of a fixed reply where it serves POST /v1/score.
        """
        request: dict[str, Any] = {"model": model, "messages": PROBE_PROMPT, "max_tokens": PROBE_MAX_TOKENS,
                                   "temperature": 0.0}
        try:
            try:
                response = self.openai.chat.completions.create(**request, logprobs=True)
            except openai.BadRequestError:
                response = self.openai.chat.completions.create(**request)  # a server without logprobs
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise self._key_refused(exc) from None
        except (openai.APIError, httpx.TransportError) as exc:
            raise EndpointError(
                f"{self.base_url}, model {model!r}: the probe that identifies the served weights failed "
                f"({_error_message(exc)}): name the checkpoint with --cache-tag (eval.cache_tag), or use --no-cache"
            ) from None
        choice = response.choices[0]
        tokens = [(t.token, _rounded(t.logprob)) for t in ((choice.logprobs.content or []) if choice.logprobs else [])]
        try:
            scored = self.score(model, [[*PROBE_PROMPT, {"role": "assistant", "content": PROBE_REPLY}]])
        except (EndpointError, httpx.TransportError, KeyError, TypeError, ValueError):
            scored = None  # a /v1/score of another kind (vLLM's is for cross-encoders): the answer must do
        nll = _rounded(scored[0]["nll"]) if scored else None
        blob = json.dumps([choice.message.content or "", tokens, nll], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def chat(self, model: str, messages: Messages, max_tokens: int) -> dict[str, Any]:
        """One greedy answer: its text, why it stopped and how many tokens it took."""
        response = self.openai.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=0.0  # type: ignore[arg-type]
        )
        choice = response.choices[0]
        usage = response.usage
        return {
            "text": choice.message.content or "",
            "finish_reason": choice.finish_reason or "stop",
            "completion_tokens": usage.completion_tokens if usage else None,
        }

    def score(self, model: str, conversations: Sequence[Messages]) -> list[dict[str, Any]] | None:
        """Assistant-token NLL per conversation via POST /v1/score; None where the server has no such route."""
        response = self.http.post("/v1/score", json={"model": model, "conversations": list(conversations)})
        if response.status_code in (404, 405):
            try:
                code = response.json().get("error", {}).get("code")
            except ValueError:
                code = None
            if code != "model_not_found":
                return None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise EndpointError(f"{self.base_url}/v1/score, model {model!r}: HTTP {response.status_code}: {message}")
        return [{"nll": row["nll"], "tokens": row["tokens"]} for row in response.json()["data"]]


class ServedModel:
    """A model as the evaluation reaches it: which endpoint, which name, and what identifies its weights.

    `connect` is called the first time the endpoint is needed, so a run that finds every answer in the cache
    starts no server at all.
    """

    def __init__(self, role: str, name: str, identity: str, connect: Callable[[], APIClient]) -> None:
        self.role, self.name, self.identity = role, name, identity
        self._connect = connect
        self._client: APIClient | None = None

    @property
    def client(self) -> APIClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def generate(
        self, prompts: Sequence[Messages], max_tokens: Sequence[int], cache: GenerationCache, concurrency: int
    ) -> list[dict[str, Any]]:
        """Answers for every prompt, in order; cached ones are not asked again."""
        keys = [cache_key("chat", self.identity, p, {"max_tokens": m, "temperature": 0.0})
                for p, m in zip(prompts, max_tokens, strict=True)]
        answers: list[dict[str, Any] | None] = [cache.get(k) for k in keys]
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            self.client.require_model(self.name)
            with ThreadPoolExecutor(max(1, concurrency)) as pool:
                futures = {pool.submit(self._chat_or_refusal, prompts[i], max_tokens[i]): i for i in missing}
                try:
                    for future in as_completed(futures):
                        index = futures[future]
                        answer = future.result()
                        answers[index] = answer
                        if answer.get("finish_reason") != "error":
                            cache.put(keys[index], answer)
                except Exception as exc:
                    for pending in futures:
                        pending.cancel()
                    done = sum(a is not None for a in answers)
                    raise EndpointError(
                        f"{self.client.base_url}, model {self.name!r}: {_error_message(exc)}; {done} of "
                        f"{len(prompts)} answers are cached: run again to continue where this stopped"
                    ) from None
        return [a for a in answers if a is not None]

    def _chat_or_refusal(self, messages: Messages, max_tokens: int) -> dict[str, Any]:
        """A 400 for one prompt (too long for the context, say) scores as an error, not a crashed run."""
        try:
            return self.client.chat(self.name, messages, max_tokens)
        except openai.BadRequestError as exc:
            return {"text": "", "finish_reason": "error", "completion_tokens": 0, "error": _error_message(exc)}

    def score(
        self, conversations: Sequence[Messages | None], batch_size: int, cache: GenerationCache
    ) -> list[dict[str, Any] | None] | None:
        """NLL and token count for each conversation (None entries are skipped); None if the server can't score."""
        keys = [cache_key("score", self.identity, c, {}) if c is not None else None for c in conversations]
        results: list[dict[str, Any] | None] = [cache.get(k) if k else None for k in keys]
        missing = [i for i, c in enumerate(conversations) if c is not None and results[i] is None]
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            try:
                scored = self.client.score(self.name, [conversations[i] for i in chunk])  # type: ignore[misc]
            except httpx.TransportError as exc:
                raise EndpointError(f"{self.client.base_url}/v1/score: {_error_message(exc)}") from None
            if scored is None:
                return None
            for index, row in zip(chunk, scored, strict=True):
                results[index] = row
                cache.put(keys[index], row)  # type: ignore[arg-type]
        return results
