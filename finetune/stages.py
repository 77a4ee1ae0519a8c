"""The stages of a run in order, as one table: `medtune run` walks it and each `medtune VERB` runs its own stage
from it. Each stage reads only what the previous one wrote to disk, so any can be re-run alone."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.recipe import Recipe, write_resolved

log = logging.getLogger(__name__)


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

    card = prepare(recipe.data, recipe.data_dir, token_counter=count_tokens, progress=sys.stderr.isatty(),
                   prompt_only=recipe.train.objective == "grpo")
    write_resolved(recipe, recipe.data_dir)
    return card


def train_stage(recipe: Recipe, resume: bool = False) -> Path:
    """Train the adapter (building the tiny base first where the recipe asks for one); returns its directory."""
    ensure_base_model(recipe)
    from finetune.train import train

    return train(recipe, resume=resume)


def export_stage(recipe: Recipe) -> Path:
    """Merge the adapter and write the export bundle; returns its directory."""
    from finetune.export import export

    return export(recipe)


def eval_stage(recipe: Recipe, **options: Any) -> Path:
    """Evaluate base and tuned; `options` are `finetune.eval.evaluate`'s keyword arguments (endpoint, api_key,
    model, …), passed on as given. Returns the evaluation directory."""
    from finetune.eval import evaluate

    return evaluate(recipe, **options)


def _always(recipe: Recipe) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One step of a run: `run(recipe, **options)` does it; `in_run(recipe)` says whether `medtune run` does it."""

    name: str
    run: Callable[..., Any]
    in_run: Callable[[Recipe], bool] = _always


STAGES: tuple[Stage, ...] = (
    Stage("prepare", prepare_stage),
    Stage("train", train_stage),
    Stage("export", export_stage, in_run=lambda recipe: recipe.export.enabled),
    Stage("eval", eval_stage),
)
_STAGE_NAMED = {stage.name: stage for stage in STAGES}


def run_stage(name: str, recipe: Recipe, **options: Any) -> Any:
    """Run the stage called `name` alone, with its options (e.g. `resume=True` for train)."""
    return _STAGE_NAMED[name].run(recipe, **options)


def run_all(recipe: Recipe) -> Path:
    """prepare → train → export (when export.enabled) → eval; returns the evaluation directory."""
    result: Any = None
    for stage in STAGES:
        if stage.in_run(recipe):
            result = stage.run(recipe)
    return result
