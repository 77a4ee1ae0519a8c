"""Gemma 3 specific guards, gathered in one place; each has a test that shows the failure it prevents."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors import safe_open
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from finetune.recipe import refuse_float16

END_OF_TURN = "<end_of_turn>"
START_OF_TURN = "<start_of_turn>"
IMAGE_MARKERS = ("<start_of_image>", "<end_of_image>", "<image_soft_token>")
CHAT_ROLES = ("system", "user", "assistant")
# Attention implementations that keep packed examples apart: eager and sdpa get a block-diagonal mask built from
# the restarting position ids, flash attention gets the cumulative sequence lengths.
PACKING_SAFE_ATTENTION = ("eager", "sdpa", "flash_attention_2")
# Full copies of these would put ~0.7B parameters (Gemma's 262k vocabulary) into the adapter.
EMBEDDING_MODULES = ("lm_head", "embed_tokens")
VISION_MODULES = ("vision_tower", "multi_modal_projector")


class ChatFormatError(ValueError):
    """Messages that Gemma's chat template cannot render (it raises deep inside Jinja otherwise)."""


class AssistantMaskError(RuntimeError):
    """The loss mask would train on prompt tokens, or on nothing at all."""


class PackingError(ValueError):
    """Packing was asked for where packed examples could see each other."""


class AdapterContentError(RuntimeError):
    """The adapter would carry weights it should not (vision tower, copies of the embeddings)."""


def resolve_compute_dtype(
    requested: str, device_type: str, bf16_supported: Callable[[], bool] | None = None
) -> torch.dtype:
    """bf16 on GPU, fp32 on CPU; fp16 is refused (by the recipe's one refusal) because Gemma 3 activations overflow
    in it (NaN losses).

    A GPU without bf16 (before Ampere) is refused too rather than silently falling back to fp16.
    """
    refuse_float16(requested)
    dtype = {"auto": torch.bfloat16 if device_type == "cuda" else torch.float32,
             "bfloat16": torch.bfloat16, "float32": torch.float32}[requested]
    if device_type == "cuda" and dtype is torch.bfloat16:
        supported = bf16_supported or torch.cuda.is_bf16_supported
        if not supported():
            raise ValueError(
                "this GPU has no bfloat16 support (it needs an Ampere or newer card) and float16 is refused for "
                "Gemma 3 (activations overflow, NaN losses); train on a bf16-capable GPU, or set "
                "model.compute_dtype=float32 knowingly (about twice the activation memory)."
            )
    return dtype


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


def is_multimodal(model: PreTrainedModel) -> bool:
    return getattr(model.config, "vision_config", None) is not None


def sequence_spans(batch: dict[str, torch.Tensor]) -> Iterator[tuple[int, int, int]]:
    """(row, start, end) of every example in a batch: padded rows, or the examples inside a packed row.

    Packed (padding-free) rows have no attention mask; their examples start where the position ids restart at 0.
    """
    input_ids = batch["input_ids"]
    if "attention_mask" not in batch and "position_ids" in batch:
        positions = batch["position_ids"]
        for row in range(input_ids.shape[0]):
            starts = (positions[row] == 0).nonzero().flatten().tolist()
            ends = [*starts[1:], input_ids.shape[1]]
            for start, end in zip(starts, ends, strict=True):
                yield row, start, end
        return
    mask = batch.get("attention_mask")
    for row in range(input_ids.shape[0]):
        kept = (mask[row] != 0).nonzero().flatten() if mask is not None else torch.arange(input_ids.shape[1])
        if len(kept):
            yield row, int(kept[0]), int(kept[-1]) + 1


@dataclass(frozen=True)
class MarkerIds:
    """Token ids the batch checks look for, read from the vocabulary once (Gemma's has 262k entries)."""

    bos: int
    pad: int | None
    end_of_turn: int | None
    never_trained: torch.Tensor  # prompt markers and image tokens

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> MarkerIds:
        vocab = tokenizer.get_vocab()
        found = [vocab[token] for token in (START_OF_TURN, *IMAGE_MARKERS) if token in vocab]
        return cls(
            bos=tokenizer.bos_token_id, pad=tokenizer.pad_token_id, end_of_turn=vocab.get(END_OF_TURN),
            never_trained=torch.tensor([*found, tokenizer.bos_token_id]),
        )


def check_batch(
    batch: dict[str, torch.Tensor], markers: MarkerIds, batch_index: int, assistant_only: bool,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> None:
    """Cheap checks on one collated batch, so a broken template or collator fails on its first batch.

    Every example must start with exactly one <bos>. With an assistant-only loss, every example must train on some
    tokens, on its end-of-turn (so the model learns to stop), and on no prompt marker or image token.
    """
    input_ids, labels = batch["input_ids"], batch.get("labels")
    for example, (row, start, end) in enumerate(sequence_spans(batch)):
        ids = input_ids[row, start:end]
        if markers.pad is not None and bool((ids == markers.pad).all()):
            continue  # padding added after a packed row
        where = f"batch {batch_index}, example {example}"
        if len(ids) > 1 and int(ids[0]) == markers.bos and int(ids[1]) == markers.bos:
            raise AssistantMaskError(
                f"{where} starts with two <bos> tokens: the chat template already writes <bos>, so its output must "
                "be tokenized with add_special_tokens=False."
            )
        if not assistant_only or labels is None:
            continue
        trained = ids[labels[row, start:end] != -100]
        if len(trained) == 0:
            raise AssistantMaskError(
                f"{where}: the assistant-only loss mask is empty, so nothing would be trained. The chat template "
                "probably lacks {% generation %} markers, or truncation cut the answer off; check the template or "
                "raise train.max_length."
            )
        leaked = torch.isin(trained, markers.never_trained)
        if bool(leaked.any()):
            first = int(trained[leaked][0])
            token = tokenizer.convert_ids_to_tokens(first) if tokenizer is not None else f"id {first}"
            raise AssistantMaskError(
                f"{where}: the loss mask covers {int(leaked.sum())} prompt or image token(s) (e.g. {token}); the model "
                "would learn to write prompts."
            )
        if markers.end_of_turn is not None and not bool((trained == markers.end_of_turn).any()):
            raise AssistantMaskError(
                f"{where}: {END_OF_TURN} is not in the loss mask, so the model would not learn to stop."
            )


class BatchGuard:
    """Wraps the trainer's collator: text-only batches for the multimodal class get zero token_type_ids, and every
    batch is checked (`check_batch`) before the model sees it."""

    def __init__(
        self, collator: Callable[[list[dict[str, Any]]], dict[str, Any]], tokenizer: PreTrainedTokenizerBase,
        multimodal: bool, assistant_only: bool,
    ) -> None:
        self.collator = collator
        self.tokenizer = tokenizer
        self.markers = MarkerIds.from_tokenizer(tokenizer)
        self.multimodal = multimodal
        self.assistant_only = assistant_only
        self.batches_seen = 0

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        if self.multimodal and "token_type_ids" not in batch:
            batch["token_type_ids"] = text_only_token_type_ids(batch["input_ids"])
        check_batch(batch, self.markers, self.batches_seen, self.assistant_only, self.tokenizer)
        self.batches_seen += 1
        return batch

    def __getattr__(self, name: str) -> Any:  # TRL reads settings such as `padding_free` off its collator
        return getattr(self.__dict__["collator"], name)


def check_packing_supported(model: PreTrainedModel) -> None:
    """Refuse packing where packed examples would attend to each other.

    transformers keeps packed examples apart only when it can see the restarting position ids: no 2D attention mask
    and no KV cache (with a cache it builds a plain causal mask over the whole row), and an attention implementation
    it builds packed masks for.
    """
    from transformers import masking_utils

    if not hasattr(masking_utils, "find_packed_sequence_indices"):
        raise PackingError(
            f"transformers {transformers.__version__} cannot build attention masks for packed rows, so packed examples "
            "would attend to each other; set train.packing=false or upgrade transformers"
        )
    attention = model.config._attn_implementation
    if attention not in PACKING_SAFE_ATTENTION:
        raise PackingError(
            f"attention implementation {attention!r} does not keep packed examples apart; use one of "
            f"{', '.join(PACKING_SAFE_ATTENTION)} or set train.packing=false"
        )
    for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        if getattr(config, "use_cache", False):
            raise PackingError(
                "the model config has use_cache=True: with a KV cache transformers builds a plain causal mask and "
                "packed examples attend to each other; load the model with use_cache=False"
            )


def check_lora_config(peft_config: Any, tokens_added: bool = False) -> None:
    """No full copies of lm_head/embed_tokens in the adapter unless new tokens were added to the vocabulary, and
    then only tied.

    Gemma ties lm_head to embed_tokens. A trained copy of one side that PEFT does not keep tied leaves the adapter
    with two different matrices, while a merged checkpoint with `tie_word_embeddings` and GGUF (one matrix for both)
    keep only one of them: the exported model would not compute what base+adapter computed.
    """
    saved = set(getattr(peft_config, "modules_to_save", None) or [])
    copies = sorted(saved & set(EMBEDDING_MODULES))
    if copies and not tokens_added:
        raise AdapterContentError(
            f"lora: modules_to_save={copies} would copy Gemma's 262k-token embedding matrix (~0.7B parameters for "
            "the 4B model) into the adapter; only do that when new tokens were added to the vocabulary."
        )
    if copies and not getattr(peft_config, "ensure_weight_tying", False):
        raise AdapterContentError(
            f"lora: modules_to_save={copies} trains one side of Gemma's tied embedding (lm_head shares "
            "embed_tokens' weights); set ensure_weight_tying=True so both sides stay one matrix through training, "
            "merging and GGUF export."
        )


def check_lora_targets(model: torch.nn.Module, language_model_only: bool) -> list[str]:
    """The adapted module names; refuses LoRA in the vision tower or projector unless the recipe asks for it."""
    adapted = sorted({name.split(".lora_")[0] for name, _ in model.named_parameters() if ".lora_" in name})
    if not adapted:
        raise AdapterContentError("no LoRA layer was created: check lora.target_modules against the model's modules")
    vision = [name for name in adapted if any(part in name for part in VISION_MODULES)]
    if vision and language_model_only:
        raise AdapterContentError(
            f"{len(vision)} LoRA layer(s) landed in the vision tower or projector (e.g. {vision[0]}) although "
            "lora.language_model_only is true: a text-only adapter must leave them frozen"
        )
    return adapted


def adapter_summary(adapter_dir: Path, tokens_added: bool = False) -> dict[str, Any]:
    """Parameter count and size of a saved adapter; refuses full embedding copies (see `check_lora_config`)."""
    path = adapter_dir / "adapter_model.safetensors"
    parameters = 0
    copies: list[str] = []
    with safe_open(str(path), "pt") as weights:
        for key in weights.keys():  # noqa: SIM118 (safe_open handles are not mappings)
            parameters += math.prod(weights.get_slice(key).get_shape())
            if "lora_" not in key and any(module in key for module in EMBEDDING_MODULES):
                copies.append(key)
    if copies and not tokens_added:
        raise AdapterContentError(
            f"{path} holds full copies of {', '.join(copies[:3])}: that adds Gemma's embedding matrix to every "
            "adapter; train without modules_to_save (or only with new tokens)"
        )
    return {"adapter_parameters": parameters, "adapter_bytes": path.stat().st_size}
