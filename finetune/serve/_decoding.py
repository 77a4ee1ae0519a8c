"""Per-row decoding inside one batched `generate`: what each row asked for, when it stops, how it samples.

Each row of a batch carries its own token limit, stop strings, sampling settings and an optional text callback
(for streaming). `TrackRows` feeds every new token to its row and stops rows independently; `SampleRows`
draws a sampled row's token from a random generator of its own, so a seed reproduces a request's answer
whatever shares its batch or runs in other threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase, StoppingCriteria

Message = dict[str, Any]
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Sampling:
    """How one request picks its tokens: greedy at temperature 0, else sampled (reproducibly when seeded)."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


GREEDY = Sampling()


@dataclass
class GenerationRequest:
    """One row of a batch. `on_text` receives text deltas as they become final (never a partial stop string)."""

    messages: Sequence[Message]
    max_new_tokens: int = 256
    stop: Sequence[str] = ()
    on_text: Callable[[str], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)


def _pending_stop_prefix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that could still grow into a stop string: held back while streaming."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-size:]):
                longest = size
                break
    return longest


class Row:
    """The tokens one row has produced so far, and the text it has already handed out."""

    def __init__(self, request: GenerationRequest, tokenizer: PreTrainedTokenizerBase, stop_ids: set[int]) -> None:
        self.request, self.tokenizer, self.stop_ids = request, tokenizer, stop_ids
        self.tokens: list[int] = []
        self.text = ""
        self.emitted = 0
        self.finish: FinishReason | None = None

    def push(self, token: int) -> None:
        if self.finish is not None:
            return
        if self.request.cancelled.is_set():
            self.finish = "stop"
            return
        if token in self.stop_ids:
            self.finish = "stop"
        elif token != self.tokenizer.pad_token_id:
            self.tokens.append(token)
            self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
            cut = min((self.text.find(s) for s in self.request.stop if s in self.text), default=-1)
            if cut >= 0:
                self.text, self.finish = self.text[:cut], "stop"
        if self.finish is None and len(self.tokens) >= self.request.max_new_tokens:
            self.finish = "length"
        self._emit()

    def close(self) -> None:
        """Generation ended without this row deciding (cannot happen unless `generate` stops early)."""
        if self.finish is None:
            self.finish = "length"
        self._emit()

    def _emit(self) -> None:
        if self.request.on_text is None:
            return
        end = len(self.text)
        if self.finish is None:
            # Hold back an unfinished multi-byte character and anything that may still become a stop string.
            end -= _pending_stop_prefix(self.text, self.request.stop)
            while end > self.emitted and self.text[end - 1] == "\ufffd":
                end -= 1
        if end > self.emitted:
            self.request.on_text(self.text[self.emitted : end])
            self.emitted = end


class TrackRows(StoppingCriteria):
    """Feeds each new token to its row and stops rows independently (limit, stop token, stop string, cancel)."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        for row, token in zip(self.rows, input_ids[:, -1].tolist(), strict=True):
            row.push(token)
        return torch.tensor([row.finish is not None for row in self.rows], device=input_ids.device)


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


class SampleRows(LogitsProcessor):
    """Draws each sampled row's next token with that row's own generator; greedy rows are left to the argmax.

    `generate` runs greedy with this last in its processors: a sampled row's scores become -inf except at the
    drawn token. The process-wide RNG, which every batching thread shares, is never touched.
    """

    def __init__(self, samplings: Sequence[Sampling], device: torch.device) -> None:
        sampled = [(index, s) for index, s in enumerate(samplings) if s.temperature > 0]
        self.rows = torch.tensor([index for index, _ in sampled], device=device)
        self.temperature = torch.tensor([[s.temperature] for _, s in sampled], device=device)
        self.top_p = torch.tensor([[s.top_p] for _, s in sampled], device=device)
        self.generators = [_generator(s.seed, device) for _, s in sampled]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores[self.rows].float() / self.temperature, dim=-1)
        # A stable sort keeps tied tokens in id order, so a row ranks its tokens alike in any batch.
        ranked, order = probs.sort(dim=-1, descending=True, stable=True)
        # Keep the fewest top tokens holding top_p of the mass (all at top_p 1, whatever the rounding of cumsum).
        ranked[(ranked.cumsum(dim=-1) - ranked >= self.top_p) & (self.top_p < 1)] = 0
        picks = torch.stack([torch.multinomial(row, 1, generator=generator)
                             for row, generator in zip(ranked, self.generators, strict=True)])
        tokens = order.gather(1, picks).squeeze(1)
        chosen = scores.clone()
        chosen[self.rows] = float("-inf")
        chosen[self.rows, tokens] = 0.0
        return chosen
