"""Gemma 3 specific guards, gathered in one place; each has a test that shows the failure it prevents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

END_OF_TURN = "<end_of_turn>"
CHAT_ROLES = ("system", "user", "assistant")


class ChatFormatError(ValueError):
    """Messages that Gemma's chat template cannot render (it raises deep inside Jinja otherwise)."""


class AssistantMaskError(RuntimeError):
    """The loss mask would train on prompt tokens, or on nothing at all."""


def resolve_compute_dtype(requested: str, device_type: str) -> torch.dtype:
    """bf16 on GPU, fp32 on CPU; fp16 is refused because Gemma 3 activations overflow in it (NaN losses)."""
    if requested in ("float16", "fp16", "half"):
        raise ValueError(
            "float16 is not supported for Gemma 3: its activations overflow fp16 and the loss turns NaN. "
            "Use bfloat16 on GPU (Ampere or newer) or float32 on CPU."
        )
    if requested == "auto":
        return torch.bfloat16 if device_type == "cuda" else torch.float32
    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[requested]


def check_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate a chat for Gemma: an optional leading system turn, then user/assistant alternating from user.

    Gemma has no system turn: its template folds the system text into the first user turn, and raises on
    anything else, so callers get a clear error here instead of a Jinja traceback.
    """
    if not messages:
        raise ChatFormatError("messages is empty: send at least one user message")
    checked: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in CHAT_ROLES:
            raise ChatFormatError(f"messages[{index}].role is {role!r}; expected one of {', '.join(CHAT_ROLES)}")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise ChatFormatError(f"messages[{index}].content must be a string or a list of parts")
        checked.append({"role": role, "content": content})
    turns = checked[1:] if checked[0]["role"] == "system" else checked
    if not turns:
        raise ChatFormatError("only a system message was sent: add a user message")
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            offset = index + (len(checked) - len(turns))
            raise ChatFormatError(
                f"messages[{offset}].role is {message['role']!r} but Gemma needs {expected!r} here: after an "
                "optional first system message, roles must alternate user/assistant starting with user"
            )
    return checked


def expected_assistant_mask(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict[str, Any]], chat_template: str | None = None
) -> list[int]:
    """The mask an assistant-only loss should have: 1 on every model turn (with its end-of-turn), 0 elsewhere.

    Computed from prefix renderings, independently of `{% generation %}` markers, so it can check them.
    """
    def length(turns: Sequence[dict[str, Any]], generation_prompt: bool) -> int:
        ids = tokenizer.apply_chat_template(
            list(turns), tokenize=True, add_generation_prompt=generation_prompt, chat_template=chat_template,
            return_dict=False,
        )
        return len(ids)

    total = length(messages, False)
    mask = [0] * total
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = length(messages[:index], True)
        end = length(messages[: index + 1], False)
        mask[start:end] = [1] * (end - start)
    return mask


def verify_assistant_masks(
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Sequence[dict[str, Any]]],
    masks: Sequence[Sequence[int]],
    chat_template: str | None = None,
) -> None:
    """Fail fast when a loss mask is empty or covers prompt tokens (TRL trusts the template's markers)."""
    for index, (messages, mask) in enumerate(zip(conversations, masks, strict=True)):
        if not any(mask):
            raise AssistantMaskError(
                f"example {index}: the assistant-only loss mask is empty, so nothing would be trained. The chat "
                "template probably lacks {% generation %} markers; use Gemma's stock template (medtune swaps in "
                "its training variant) or set train.assistant_only_loss=false knowingly."
            )
        expected = expected_assistant_mask(tokenizer, messages, chat_template)[: len(mask)]
        leaked = [pos for pos, (got, want) in enumerate(zip(mask, expected, strict=True)) if got and not want]
        if leaked:
            raise AssistantMaskError(
                f"example {index}: the loss mask covers {len(leaked)} prompt token(s) (first at position "
                f"{leaked[0]}); the model would learn to write prompts."
            )
        missing = sum(1 for got, want in zip(mask, expected, strict=True) if want and not got)
        if missing:
            raise AssistantMaskError(
                f"example {index}: {missing} assistant token(s) are left out of the loss mask (e.g. the "
                "end-of-turn token), so the model would not learn to stop."
            )


def text_only_token_type_ids(input_ids: torch.Tensor) -> torch.Tensor:
    """Zeros shaped like `input_ids`: the multimodal Gemma 3 class needs them even for text-only batches."""
    return torch.zeros_like(input_ids)
