"""Handing one training run's result to the next: what a `train.start_from` directory holds, the model a run starts
from (fresh LoRA, an earlier adapter that keeps training, or merged weights as the base), the recipe the later
stages see when a run starts from merged weights, and the merge that writes such weights. SFT after continued
pretraining, and GRPO or DPO after SFT, start this way.

An adapter directory holds `adapter_config.json`; a merged model directory holds `config.json` and weights. With
merged weights every later stage (train, export, serve, eval) must see them as the base, so the recipe is
rewritten once, here, rather than each stage looking for them.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Literal

from peft import LoraConfig, PeftModel
from transformers import PreTrainedModel
from transformers.utils import cached_file

from finetune.errors import StageInputError
from finetune.models import (
    check_lora_config,
    is_image_text,
    load_for_training,
    load_full_precision,
    load_processor,
    load_tokenizer,
    lora_config,
)
from finetune.recipe import Recipe

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


def start_kind(path: Path) -> Literal["adapter", "merged"]:
    """What `path` holds, or a StageInputError that says what was expected there."""
    if (path / ADAPTER_CONFIG).is_file():
        return "adapter"
    if (path / "config.json").is_file():
        return "merged"
    raise StageInputError(
        f"train.start_from: {path} holds neither an adapter ({ADAPTER_CONFIG}) nor a model (config.json); "
        "point it at the adapter or merged directory of an earlier run (or run its pretrain stage first)"
    )


def with_start_base(recipe: Recipe) -> Recipe:
    """The recipe as its later stages must see it: with merged start weights, those are model.base."""
    start = recipe.start_from
    if start is None or start_kind(start) != "merged":
        return recipe
    if recipe.model.base == str(start):
        return recipe  # already rewritten
    model = recipe.model.model_copy(update={"base": str(start), "tiny": None, "revision": None})
    train = recipe.train.model_copy(update={"start_from": str(start)})  # kept: provenance says where it started
    return recipe.model_copy(update={"model": model, "train": train, "pretrain": None})


def _same_base(adapter_dir: Path, base: str) -> None:
    """An adapter trained on another base would load without complaint and compute nonsense."""
    named = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if named and named != base and Path(named).resolve() != Path(base).resolve():
        raise StageInputError(
            f"train.start_from: {adapter_dir} is an adapter of {named}, but model.base is {base}; start from its "
            "merged weights instead, or set model.base to the base it was trained on"
        )


def start_model(recipe: Recipe) -> tuple[PreTrainedModel, LoraConfig | None]:
    """The model to train and the LoRA config the trainer should wrap it with: None when it already is a PeftModel
    whose adapter keeps training (`start_from` an adapter; its own rank and targets apply), so the result is one
    adapter on `model.base`, as export and serve expect. Merged start weights load as the base."""
    recipe = with_start_base(recipe)
    start = recipe.start_from
    model = load_for_training(recipe.model)
    if start is not None and start_kind(start) == "adapter":  # merged weights were made the base above
        _same_base(start, recipe.model.base)
        log.info("continuing the adapter in %s (its rank and targets apply)", start)
        return PeftModel.from_pretrained(model, str(start), is_trainable=True), None
    peft_config = lora_config(model, recipe.lora)
    if recipe.lora.train_embeddings:  # tied to lm_head: PEFT keeps both sides one matrix
        peft_config.modules_to_save = [*(peft_config.modules_to_save or []), "embed_tokens"]
        peft_config.ensure_weight_tying = True
    check_lora_config(peft_config, tokens_added=recipe.lora.train_embeddings)
    return model, peft_config


def merge_adapter(base: str, adapter_dir: Path, out_dir: Path, revision: str | None = None) -> Path:
    """Merge an adapter into the base's full-precision weights and write a model directory that later runs load as
    their base: weights in the base's own dtype, config, generation config, tokenizer (with its SentencePiece model,
    which GGUF export reads) and, for the image+text class, the processor."""
    model = load_full_precision(base, dtype="auto", revision=revision)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir, safe_serialization=True)
    if merged.generation_config is not None:
        merged.generation_config.save_pretrained(out_dir)
    load_tokenizer(base, revision).save_pretrained(out_dir)
    sentencepiece = cached_file(base, "tokenizer.model", revision=revision, _raise_exceptions_for_missing_entries=False)
    if sentencepiece is not None:
        shutil.copy2(sentencepiece, out_dir / "tokenizer.model")
    if is_image_text(base, revision):
        load_processor(base, revision).save_pretrained(out_dir)
    log.info("merged %s into %s: %s", adapter_dir, base, out_dir)
    return out_dir
