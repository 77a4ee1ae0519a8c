"""The stages in order. Each reads only what the previous one wrote to disk, so any can be re-run alone."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from finetune.recipe import Recipe, write_resolved

log = logging.getLogger(__name__)

STAGES = ("prepare", "train", "export", "eval")


def ensure_base_model(recipe: Recipe) -> None:
    """Build the tiny base when the recipe asks for one and it is not there yet."""
    if recipe.model.tiny is None:
        return
    base = Path(recipe.model.base)
    if (base / "config.json").is_file():
        return
    from finetune.models import build_tiny_model

    log.info("building tiny %s model at %s", recipe.model.tiny.variant, base)
    build_tiny_model(base, recipe.model.tiny)


def prepare_stage(recipe: Recipe) -> dict[str, Any]:
    """Convert the recipe's sources into chat splits; token lengths are counted with the base's template."""
    ensure_base_model(recipe)
    from data_prep.prepare import prepare
    from finetune.models import load_tokenizer

    tokenizer = load_tokenizer(recipe.model.base, recipe.model.revision)

    def count_tokens(messages: list[dict[str, Any]]) -> int:
        return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))

    card = prepare(recipe.data, recipe.data_dir, token_counter=count_tokens, progress=sys.stderr.isatty())
    write_resolved(recipe, recipe.data_dir)
    return card


def train_stage(recipe: Recipe, resume: bool = False) -> Path:
    ensure_base_model(recipe)
    from finetune.train import train

    return train(recipe, resume=resume)


def export_stage(recipe: Recipe) -> Path:
    from finetune.export import export

    return export(recipe)


def eval_stage(recipe: Recipe, endpoint: str | None = None, api_key: str | None = None) -> Path:
    from finetune.eval import evaluate

    return evaluate(recipe, endpoint=endpoint, api_key=api_key)


def run_all(recipe: Recipe) -> Path:
    """prepare → train → export → eval; returns the evaluation directory."""
    prepare_stage(recipe)
    train_stage(recipe)
    if recipe.export.enabled:
        export_stage(recipe)
    return eval_stage(recipe)
