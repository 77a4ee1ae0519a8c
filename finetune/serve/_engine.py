"""The one inference class: base, base+adapter or merged, answering chat messages the same way everywhere.

The HTTP server and the evaluation both go through `ChatModel`, so what is measured is what is deployed.
Generation is batched: each row of a batch carries its own token limit, stop strings, sampling settings and
an optional text callback (for streaming). A sampled row draws its tokens from a random generator of its own,
so a seed reproduces a request's answer whatever shares its batch or runs in other threads.

Loading checks adapter directories first (`check_adapter`) and fingerprints the weights that answer
(`weights_fingerprint`), so clients can tell when the model behind a name changed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from jinja2 import TemplateError
from peft import PeftModel
from safetensors import SafetensorError, safe_open
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

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

Message = dict[str, Any]
FinishReason = Literal["stop", "length"]


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


@dataclass(frozen=True)
class Sampling:
    """How one request picks its tokens: greedy at temperature 0, else sampled (reproducibly when seeded)."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


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


class _Row:
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


class _TrackRows(StoppingCriteria):
    """Feeds each new token to its row and stops rows independently (limit, stop token, stop string, cancel)."""

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        for row, token in zip(self.rows, input_ids[:, -1].tolist(), strict=True):
            row.push(token)
        return torch.tensor([row.finish is not None for row in self.rows], device=input_ids.device)


ADAPTER_FIX = ("give the directory `medtune train` wrote, which holds adapter_config.json and "
               "adapter_model.safetensors (copy it again, or train again, if they are damaged)")


class AdapterError(ValueError):
    """An adapter directory that cannot be loaded; the message names the file at fault and what to do."""


def check_adapter(path: str | Path) -> list[Path]:
    """Refuse a broken adapter directory before any weights load; returns its weights and config files.

    PEFT would otherwise fail deep inside loading, with a `KeyError` or a `SafetensorError` that names no file.
    """
    root = Path(path)
    if not root.is_dir():
        raise AdapterError(f"adapter directory {root} does not exist: {ADAPTER_FIX}")
    config = root / "adapter_config.json"
    if not config.is_file():
        raise AdapterError(f"{config} is missing: {ADAPTER_FIX}")
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{config} is not valid JSON ({exc}): {ADAPTER_FIX}") from None
    if not isinstance(settings, dict) or "peft_type" not in settings:
        raise AdapterError(f"{config} names no peft_type, so it is no PEFT adapter config: {ADAPTER_FIX}")
    weights = root / "adapter_model.safetensors"
    if not weights.is_file():
        legacy = root / "adapter_model.bin"
        if legacy.is_file():
            return [legacy, config]
        raise AdapterError(f"{weights} is missing: {ADAPTER_FIX}")
    try:
        with safe_open(str(weights), framework="pt") as tensors:
            tensors.keys()
    except (SafetensorError, OSError) as exc:
        raise AdapterError(f"{weights} is unreadable or truncated ({exc}): {ADAPTER_FIX}") from None
    return [weights, config]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def weights_fingerprint(paths: Iterable[str | Path]) -> str:
    """sha256 over the names and contents of weight files: it changes exactly when the weights do.

    Only file names (not directories) enter it, so a copied adapter keeps its fingerprint. Files are hashed
    in parallel (hashlib releases the GIL): a base model's shards run to many gigabytes.
    """
    files = sorted((Path(p) for p in paths), key=lambda f: f.name)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(files)))) as pool:
        digests = list(pool.map(_file_sha256, files))
    total = hashlib.sha256()
    for file, digest in zip(files, digests, strict=True):
        total.update(f"{file.name}\0{digest}\n".encode())
    return total.hexdigest()


def combined_fingerprint(*fingerprints: str) -> str:
    """The fingerprint of a base with an adapter on top: it changes when either does."""
    return hashlib.sha256("+".join(fingerprints).encode()).hexdigest()


def model_weight_files(path: str | Path) -> list[Path]:
    """The weight files of a full model: a local directory's, or the hub cache's copy of a hub id."""
    root = Path(path)
    if not root.is_dir():
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(str(path), local_files_only=True))
    files = sorted(root.glob("*.safetensors")) or sorted(root.glob("*.bin"))
    if not files:
        raise ValueError(f"{root} holds no weight files (*.safetensors or *.bin)")
    return files


def _attach_adapter(model: PreTrainedModel | PeftModel, adapter: str | Path, name: str = "default") -> PeftModel:
    """`model` with the adapter at `adapter` loaded as `name`; a failure names the adapter directory."""
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(adapter), adapter_name=name)
            return model
        return PeftModel.from_pretrained(model, str(adapter), adapter_name=name)
    except (SafetensorError, KeyError, ValueError, RuntimeError, OSError) as exc:
        which = "the adapter" if name == "default" else f"adapter {name!r}:"
        raise AdapterError(f"{which} {adapter} does not fit this base model ({type(exc).__name__}: {exc}); was it "
                           f"trained on this base? Otherwise {ADAPTER_FIX}") from exc


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


class _SampleRows(LogitsProcessor):
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
            model = _attach_adapter(model, adapter)
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
            model = _attach_adapter(model, adapter, name)
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
        self, requests: Sequence[GenerationRequest], sampling: Sampling | Sequence[Sampling] = Sampling()
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
        rows = [_Row(request, self.tokenizer, stop_ids) for request in requests]
        with self._lock, self._activate():
            batch = self._encode(texts, padding_side="left")
            sampled = any(s.temperature > 0 for s in samplings)
            self.model.generate(
                **batch,
                max_new_tokens=max(request.max_new_tokens for request in requests),
                do_sample=False, temperature=None, top_p=None, top_k=None,  # sampling is _SampleRows' part
                logits_processor=LogitsProcessorList([_SampleRows(samplings, self.device)] if sampled else []),
                eos_token_id=self.stop_token_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([_TrackRows(rows)]),
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
