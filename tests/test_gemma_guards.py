"""Gemma 3 guards: each test shows the failure the guard prevents."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer
from trl.chat_template_utils import gemma3_training_chat_template

from finetune.gemma import (
    AssistantMaskError,
    ChatFormatError,
    check_messages,
    expected_assistant_mask,
    resolve_compute_dtype,
    text_only_token_type_ids,
    verify_assistant_masks,
)

CHAT = [
    {"role": "system", "content": "Вы — врач-терапевт."},
    {"role": "user", "content": "Что означает гемоглобин 98 г/л?"},
    {"role": "assistant", "content": "Это ниже нормы: возможна анемия."},
]
MULTI_TURN = [
    {"role": "user", "content": "患者主诉头痛。"},
    {"role": "assistant", "content": "请问持续多久了？"},
    {"role": "user", "content": "三天。"},
    {"role": "assistant", "content": "建议测量血压。"},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _training_mask(tokenizer, messages) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
        chat_template=gemma3_training_chat_template,
    )
    return out["assistant_masks"]


def test_fp16_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="overflow"):
        resolve_compute_dtype("float16", "cuda")
    assert resolve_compute_dtype("auto", "cuda") is torch.bfloat16
    assert resolve_compute_dtype("auto", "cpu") is torch.float32


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([], "messages is empty"),
        ([{"role": "system", "content": "s"}], "only a system message"),
        ([{"role": "assistant", "content": "a"}], "messages[0].role is 'assistant'"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}], "messages[1].role is 'system'"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "alternate"),
        ([{"role": "tool", "content": "a"}], "expected one of system, user, assistant"),
        ([{"role": "user", "content": 3}], "content must be a string"),
    ],
)
def test_bad_chats_fail_before_the_template(messages: list, fragment: str) -> None:
    with pytest.raises(ChatFormatError) as error:
        check_messages(messages)
    assert fragment in str(error.value)


def test_system_text_is_folded_into_first_user_turn(tokenizer) -> None:
    text = tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert "<start_of_turn>system" not in text
    assert text.startswith("<bos><start_of_turn>user\nВы — врач-терапевт.\n\nЧто означает")


def test_template_output_has_one_bos_when_tokenized_without_special_tokens(tokenizer) -> None:
    text = tokenizer.apply_chat_template(CHAT, tokenize=False)
    doubled = tokenizer(text)["input_ids"]
    single = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert doubled[:2] == [tokenizer.bos_token_id, tokenizer.bos_token_id]  # the bug the guard avoids
    assert single[0] == tokenizer.bos_token_id and single[1] != tokenizer.bos_token_id


@pytest.mark.parametrize("messages", [CHAT, MULTI_TURN])
def test_training_template_mask_equals_prefix_mask(tokenizer, messages) -> None:
    mask = _training_mask(tokenizer, messages)
    expected = expected_assistant_mask(tokenizer, messages)
    assert mask == expected
    assert sum(expected) > 0
    verify_assistant_masks(tokenizer, [messages], [mask])
    # Every prompt token is outside the mask: the user's text never appears in the trained span.
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert "Что означает" not in trained and "三天" not in trained
    assert trained.count("<end_of_turn>") == sum(1 for m in messages if m["role"] == "assistant")


def test_stock_template_yields_an_empty_mask_and_the_guard_stops_it(tokenizer) -> None:
    out = tokenizer.apply_chat_template(CHAT, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert not any(out["assistant_masks"])
    with pytest.raises(AssistantMaskError, match="empty"):
        verify_assistant_masks(tokenizer, [CHAT], [out["assistant_masks"]])


def test_mask_covering_the_prompt_is_refused(tokenizer) -> None:
    full = [1] * len(expected_assistant_mask(tokenizer, CHAT))
    with pytest.raises(AssistantMaskError, match="prompt token"):
        verify_assistant_masks(tokenizer, [CHAT], [full])


def test_mask_missing_end_of_turn_is_refused(tokenizer) -> None:
    mask = expected_assistant_mask(tokenizer, CHAT)
    last = max(i for i, m in enumerate(mask) if m)
    mask[last - 1] = 0
    with pytest.raises(AssistantMaskError, match="left out"):
        verify_assistant_masks(tokenizer, [CHAT], [mask])


def test_text_only_token_type_ids_are_zeros() -> None:
    ids = torch.tensor([[2, 5, 7], [2, 9, 1]])
    assert torch.equal(text_only_token_type_ids(ids), torch.zeros_like(ids))
