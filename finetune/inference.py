"""The one inference class: base, base+adapter or merged, answering chat messages the same way everywhere.

The HTTP server and the evaluation both go through `ChatModel`, so what is measured is what is deployed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

from finetune.gemma import END_OF_TURN, check_messages, expected_assistant_mask, text_only_token_type_ids
from finetune.model import device_type, load_full_precision, load_tokenizer

Message = dict[str, Any]


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]


@dataclass(frozen=True)
class Score:
    """Negative log-likelihood of the assistant turns of one conversation, summed over their tokens."""

    nll: float
    tokens: int


class _StopOnStrings(StoppingCriteria):
    """Stop a whole batch once every row contains one of the caller's stop strings."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stops: Sequence[str], prompt_length: int) -> None:
        self.tokenizer, self.stops, self.prompt_length = tokenizer, list(stops), prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        done = [any(stop in text for stop in self.stops) for text in texts]
        return torch.tensor(done, device=input_ids.device)


class ChatModel:
    """A Gemma 3 chat model (base, base+adapter or merged) with batched generation and scoring."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self._lock = threading.Lock()
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
        """Load full-precision weights from `path`, with a LoRA adapter on top when given (unmerged)."""
        device = device or device_type()
        if dtype == "auto" and device == "cpu":
            dtype = torch.float32
        model = load_full_precision(str(path), dtype=dtype, device=device)
        tokenizer = load_tokenizer(str(adapter or path))
        if adapter is not None:
            model = PeftModel.from_pretrained(model, str(adapter))
            model.eval()
        return cls(model, tokenizer, name or Path(str(adapter or path)).name)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            check_messages(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    def _encode(self, texts: list[str], padding_side: str) -> dict[str, torch.Tensor]:
        # The template already starts with <bos>: adding special tokens again would double it.
        self.tokenizer.padding_side = padding_side
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = {k: v.to(self.device) for k, v in batch.items()}
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
        texts = [self.render(messages) for messages in conversations]
        with self._lock:
            batch = self._encode(texts, padding_side="left")
            prompt_length = batch["input_ids"].shape[1]
            sampling = temperature > 0
            if seed is not None:
                torch.manual_seed(seed)
            options: dict[str, Any] = {
                "max_new_tokens": max_new_tokens,
                "do_sample": sampling,
                "eos_token_id": self.stop_token_ids,
                "pad_token_id": self.tokenizer.pad_token_id,
            }
            if sampling:
                options.update(temperature=temperature, top_p=top_p)
            else:
                options.update(temperature=None, top_p=None, top_k=None)
            if stop:
                options["stopping_criteria"] = StoppingCriteriaList(
                    [_StopOnStrings(self.tokenizer, stop, prompt_length)]
                )
            output = self.model.generate(**batch, **options)
        completions = []
        for row, ids in enumerate(output[:, prompt_length:].tolist()):
            prompt_tokens = int(batch["attention_mask"][row].sum())
            finish: Literal["stop", "length"] = "length"
            kept: list[int] = []
            for token in ids:
                if token in self.stop_token_ids:
                    finish = "stop"
                    break
                if token == self.tokenizer.pad_token_id:
                    continue
                kept.append(token)
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            for marker in stop or ():
                if marker in text:
                    text, finish = text.split(marker, 1)[0], "stop"
            completions.append(Completion(text, prompt_tokens, len(kept), finish))
        return completions

    def chat(self, messages: Sequence[Message], **options: Any) -> str:
        return self.generate([messages], **options)[0].text

    @torch.no_grad()
    def score(self, conversations: Sequence[Sequence[Message]]) -> list[Score]:
        """Assistant-token NLL of each conversation: the held-out loss the training objective optimises."""
        texts = [self.render(messages, add_generation_prompt=False) for messages in conversations]
        masks = [expected_assistant_mask(self.tokenizer, check_messages(m)) for m in conversations]
        with self._lock:
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
