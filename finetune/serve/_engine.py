"""`ChatModel`: the one inference engine, base, base+adapter or merged, answering chat messages the same way.

The HTTP server and the evaluation both go through `ChatModel`, so what is measured is what is deployed.
Generation is batched, each row with its own limit, stop strings and sampling (see `_decoding`). Loading
checks adapter directories first and fingerprints the weights that answer (see `_weights`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jinja2 import TemplateError
from transformers import LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteriaList

from finetune.models import (
    END_OF_TURN,
    ChatFormatError,
    check_messages,
    device_type,
    expected_assistant_mask,
    load_full_precision,
    load_tokenizer,
    text_only_token_type_ids,
)
from finetune.serve._decoding import (
    GREEDY,
    FinishReason,
    GenerationRequest,
    Message,
    Row,
    SampleRows,
    Sampling,
    TrackRows,
)
from finetune.serve._weights import (
    attach_adapter,
    check_adapter,
    combined_fingerprint,
    model_weight_files,
    weights_fingerprint,
)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason


@dataclass(frozen=True)
class Score:
    """Negative log-likelihood of the assistant turns of one conversation, summed over their tokens."""

    nll: float
    tokens: int


class ChatModel:
    """A Gemma 3 chat model (base, base+adapter or merged) with batched generation and scoring.

    Several `ChatModel`s may share one set of weights (a base with several LoRA adapters): `activate` then
    switches the shared model to this one's adapter, under a lock they share. `fingerprint` identifies the
    weights that answer (see `weights_fingerprint`); `load` and `load_shared` compute it, others may pass None.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        name: str,
        activate: Callable[[], AbstractContextManager[Any]] | None = None,
        lock: threading.Lock | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.fingerprint = fingerprint
        self._activate = activate or nullcontext
        self._lock = lock or threading.Lock()
        self.stop_token_ids = [
            t for t in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)} if t is not None
        ]
        self.is_multimodal = getattr(model.config, "vision_config", None) is not None
        self.context_length = int(getattr(model.config.get_text_config(), "max_position_embeddings", 8192))

    @classmethod
    def load(
        cls,
        path: str | Path,
        adapter: str | Path | None = None,
        name: str | None = None,
        dtype: torch.dtype | str = "auto",
        device: str | None = None,
    ) -> ChatModel:
        """Load full-precision weights from `path`, with a LoRA adapter on top when given (unmerged).

        A broken adapter directory raises `AdapterError` (naming the file) before any weights load.
        """
        adapter_files = check_adapter(adapter) if adapter is not None else []
        device = device or device_type()
        if dtype == "auto" and device == "cpu":
            dtype = torch.float32
        model = load_full_precision(str(path), dtype=dtype, device=device)
        fingerprint = weights_fingerprint(model_weight_files(path))
        tokenizer = load_tokenizer(str(adapter or path))
        if adapter is not None:
            model = attach_adapter(model, adapter)
            model.eval()
            fingerprint = combined_fingerprint(fingerprint, weights_fingerprint(adapter_files))
        return cls(model, tokenizer, name or Path(str(adapter or path)).name, fingerprint=fingerprint)

    @classmethod
    def load_shared(
        cls,
        path: str | Path,
        adapters: Mapping[str, str | Path],
        base_name: str | None = "base",
        dtype: torch.dtype | str = "auto",
        device: str | None = None,
    ) -> dict[str, ChatModel]:
        """One copy of the base weights serving the base (unless `base_name` is None) and every adapter.

        Every adapter directory is checked before the base loads: a broken one raises `AdapterError`.
        """
        if not adapters:
            raise ValueError("load_shared needs at least one adapter; use ChatModel.load for a base alone")
        adapter_files = {name: check_adapter(adapter) for name, adapter in adapters.items()}
        device = device or device_type()
        if dtype == "auto" and device == "cpu":
            dtype = torch.float32
        base = load_full_precision(str(path), dtype=dtype, device=device)
        base_fingerprint = weights_fingerprint(model_weight_files(path))
        tokenizer = load_tokenizer(str(path))
        model: Any = base
        for name, adapter in adapters.items():
            model = attach_adapter(model, adapter, name)
        model.eval()
        lock = threading.Lock()

        def use(adapter_name: str) -> Callable[[], AbstractContextManager[Any]]:
            def activate() -> AbstractContextManager[Any]:
                model.set_adapter(adapter_name)
                return nullcontext()

            return activate

        views = {
            name: cls(model, tokenizer, name, activate=use(name), lock=lock,
                      fingerprint=combined_fingerprint(base_fingerprint, weights_fingerprint(files)))
            for name, files in adapter_files.items()
        }
        if base_name is not None:
            base_view = cls(model, tokenizer, base_name, activate=model.disable_adapter, lock=lock,
                            fingerprint=base_fingerprint)
            views = {base_name: base_view, **views}
        return views

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                check_messages(messages), tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except TemplateError as exc:
            raise ChatFormatError(f"the chat template cannot render these messages: {exc}") from None

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    def _encode(self, texts: list[str], padding_side: str) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, padded here rather than by the tokenizer.

        A fast tokenizer keeps its padding settings in shared state: padding through it while another thread
        counts prompt tokens (the server does both at once) can strip the padding from a batch mid-call.
        """
        # The template already starts with <bos>: adding special tokens again would double it.
        sequences = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        width = max(len(ids) for ids in sequences)
        pad = self.tokenizer.pad_token_id
        input_ids, attention_mask = [], []
        for ids in sequences:
            fill = width - len(ids)
            if padding_side == "left":
                input_ids.append([pad] * fill + ids)
                attention_mask.append([0] * fill + [1] * len(ids))
            else:
                input_ids.append(ids + [pad] * fill)
                attention_mask.append([1] * len(ids) + [0] * fill)
        batch = {
            "input_ids": torch.tensor(input_ids, device=self.device),
            "attention_mask": torch.tensor(attention_mask, device=self.device),
        }
        if self.is_multimodal:
            batch["token_type_ids"] = text_only_token_type_ids(batch["input_ids"])
        return batch

    @torch.no_grad()
    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> list[Completion]:
        """Answer each conversation; one left-padded batch, greedy when temperature is 0."""
        requests = [GenerationRequest(messages, max_new_tokens, tuple(stop or ())) for messages in conversations]
        return self.generate_batch(requests, Sampling(temperature, top_p, seed))

    @torch.no_grad()
    def generate_batch(
        self, requests: Sequence[GenerationRequest], sampling: Sampling | Sequence[Sampling] = GREEDY
    ) -> list[Completion]:
        """Decode every request in one left-padded batch; each row stops on its own limit and stop strings.

        `sampling` is one per request, or one for all (each row then draws from its own generator, so rows
        given one seed each answer as that request would alone).
        """
        samplings = [sampling] * len(requests) if isinstance(sampling, Sampling) else list(sampling)
        if len(samplings) != len(requests):
            raise ValueError(f"{len(requests)} requests but {len(samplings)} sampling settings")
        texts = [self.render(request.messages) for request in requests]
        stop_ids = set(self.stop_token_ids)
        rows = [Row(request, self.tokenizer, stop_ids) for request in requests]
        with self._lock, self._activate():
            batch = self._encode(texts, padding_side="left")
            sampled = any(s.temperature > 0 for s in samplings)
            self.model.generate(
                **batch,
                max_new_tokens=max(request.max_new_tokens for request in requests),
                do_sample=False, temperature=None, top_p=None, top_k=None,  # sampling is SampleRows' part
                logits_processor=LogitsProcessorList([SampleRows(samplings, self.device)] if sampled else []),
                eos_token_id=self.stop_token_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([TrackRows(rows)]),
            )
        completions = []
        for index, row in enumerate(rows):
            row.close()
            prompt_tokens = int(batch["attention_mask"][index].sum())
            completions.append(Completion(row.text, prompt_tokens, len(row.tokens), row.finish or "length"))
        return completions

    def chat(self, messages: Sequence[Message], **options: Any) -> str:
        return self.generate([messages], **options)[0].text

    @torch.no_grad()
    def score(self, conversations: Sequence[Sequence[Message]]) -> list[Score]:
        """Assistant-token NLL of each conversation: the held-out loss the training objective optimises."""
        texts = [self.render(messages, add_generation_prompt=False) for messages in conversations]
        masks = [expected_assistant_mask(self.tokenizer, check_messages(m)) for m in conversations]
        with self._lock, self._activate():
            batch = self._encode(texts, padding_side="right")
            logits = self.model(**batch).logits.float()
        scores = []
        for row, mask in enumerate(masks):
            length = int(batch["attention_mask"][row].sum())
            ids = batch["input_ids"][row, :length]
            # Position t predicts token t+1.
            log_probs = torch.log_softmax(logits[row, : length - 1], dim=-1)
            token_nll = -log_probs.gather(1, ids[1:].unsqueeze(1)).squeeze(1)
            target_mask = torch.tensor(mask[1:length], dtype=torch.bool, device=token_nll.device)
            scores.append(Score(float(token_nll[target_mask].sum()), int(target_mask.sum())))
        return scores
