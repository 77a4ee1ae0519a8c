"""How far one model's outputs are from another's on the same held-out conversations.

Used at export to show that the merged checkpoint answers like base+adapter, and, when training used 4-bit
base weights, how far the shipped full-precision merge drifts from the model that was actually trained.
Logits are compared teacher-forced on whole conversations (answers included); greedy answers are compared
token for token from the prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from finetune.models import END_OF_TURN, text_only_token_type_ids

KEPT_POSITIONS = 128  # logits of the last positions only: Gemma's 262k vocabulary makes full rows costly


@dataclass
class CheckInputs:
    """Held-out conversations (right-padded, for logits) and their prompts (left-padded, for greedy answers)."""

    conversations: dict[str, torch.Tensor]
    prompts: dict[str, torch.Tensor]
    new_tokens: int


@dataclass
class Outputs:
    logits: list[torch.Tensor]
    greedy: list[list[int]]


def check_inputs(
    tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict[str, Any]]], new_tokens: int, multimodal: bool
) -> CheckInputs:
    def encode(texts: list[str], side: str) -> dict[str, torch.Tensor]:
        tokenizer.padding_side = side
        # The rendered template already starts with <bos>.
        batch = dict(tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False))
        if multimodal:
            batch["token_type_ids"] = text_only_token_type_ids(batch["input_ids"])
        return batch

    def prompt_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        return messages[:last]

    whole = [tokenizer.apply_chat_template(m, tokenize=False) for m in conversations]
    prompts = [tokenizer.apply_chat_template(prompt_of(m), tokenize=False, add_generation_prompt=True)
               for m in conversations]
    return CheckInputs(encode(whole, "right"), encode(prompts, "left"), new_tokens)


@torch.no_grad()
def run(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs: CheckInputs) -> Outputs:
    """Logits of the last positions of each conversation, and each prompt's greedy answer (one batch each)."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in inputs.conversations.items()}
    all_logits = model(**batch).logits
    lengths = inputs.conversations["attention_mask"].sum(1).tolist()
    logits = [all_logits[row, max(0, n - KEPT_POSITIONS) : n].float().cpu() for row, n in enumerate(lengths)]
    del all_logits
    stops = [t for t in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)) if t is not None]
    prompts = {k: v.to(device) for k, v in inputs.prompts.items()}
    ids = model.generate(
        **prompts, max_new_tokens=inputs.new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
        eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
    )
    answers = ids[:, prompts["input_ids"].shape[1]:].tolist()
    greedy = [[t for t in row if t != tokenizer.pad_token_id] for row in answers]
    return Outputs(logits, greedy)


def compare(reference: Outputs, other: Outputs) -> dict[str, Any]:
    """max and mean |Δlogit|, share of positions with the same top token, and identical greedy answers."""
    diffs = [(a - b).abs() for a, b in zip(reference.logits, other.logits, strict=True)]
    agree = sum(int((a.argmax(-1) == b.argmax(-1)).sum()) for a, b in zip(reference.logits, other.logits, strict=True))
    positions = sum(a.shape[0] for a in reference.logits)
    identical = sum(a == b for a, b in zip(reference.greedy, other.greedy, strict=True))
    return {
        "max_abs_logit_diff": max(float(d.max()) for d in diffs),
        "mean_abs_logit_diff": sum(float(d.sum()) for d in diffs) / sum(d.numel() for d in diffs),
        "top1_agreement": agree / positions,
        "greedy_identical": f"{identical}/{len(reference.greedy)}",
    }


def logit_scale(outputs: Outputs) -> float:
    return max(float(logits.abs().max()) for logits in outputs.logits)
