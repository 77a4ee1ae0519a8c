"""The stages of a run in order, as one table: `medtune run` walks it and each `medtune VERB` runs its own stage
from it. Each stage reads only what the previous one wrote to disk, so any can be re-run alone."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep.config import LANGS
from finetune.recipe import Recipe, write_resolved

log = logging.getLogger(__name__)


TINY_MARKER = "tiny.json"
"""Written into a tiny base built here: the settings it was built with, so a changed recipe rebuilds it."""


def ensure_base_model(recipe: Recipe) -> None:
    """Build the tiny base when the recipe asks for one and it is not there yet (or was built with other settings).

    With `model.tiny.pretrain_steps`, the random start is continued-pretrained on the bundled clinic text through
    the completion objective (prepare with `tasks: [text]`, train, merge), so the base writes ru, kk and zh before
    any task is taught. The result is kept at `model.base` and reused by every later run.
    """
    tiny = recipe.model.tiny
    if tiny is None:
        return
    base = Path(recipe.model.base)
    wanted = tiny.model_dump(mode="json")
    marker = base / TINY_MARKER
    if (base / "config.json").is_file():
        if not marker.is_file() or json.loads(marker.read_text(encoding="utf-8")) == wanted:
            return
        log.info("the tiny base in %s was built with other settings: rebuilding it", base)
        shutil.rmtree(base)  # a directory medtune built and marked as its own
    from finetune.models import build_tiny_model

    log.info("building tiny %s model at %s", tiny.variant, base)
    if tiny.pretrain_steps == 0:
        build_tiny_model(base, tiny)
    else:
        _pretrained_tiny_base(recipe, base)
    marker.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")


def _pretrained_tiny_base(recipe: Recipe, base: Path) -> None:
    """Random tiny Gemma 3 → continued pretraining on the bundled text → merged weights at `base`."""
    from finetune.models import build_tiny_model
    from finetune.train import merge_adapter

    tiny = recipe.model.tiny
    assert tiny is not None
    work = base.parent / f"{base.name}.build"
    if work.exists():
        shutil.rmtree(work)
    random_dir = build_tiny_model(work / "random", tiny)
    pretrain = tiny_pretrain_recipe(recipe, random_dir, work)
    prepare_stage(pretrain)
    train_stage(pretrain)
    merge_adapter(str(random_dir), pretrain.adapter_dir, base)
    shutil.rmtree(work)


def tiny_pretrain_recipe(recipe: Recipe, random_dir: Path, work: Path) -> Recipe:
    """The continued pretraining that gives the tiny base its languages: full-precision LoRA of high rank on
    every projection plus the token embeddings (random ones know nothing of the text), over the bundled records of
    ru, kk and zh as raw text, a fixed number of steps."""
    tiny = recipe.model.tiny
    assert tiny is not None
    return Recipe.model_validate({
        "name": f"{recipe.name}-tiny-base",
        "output_dir": str(work),
        "seed": tiny.seed,
        "model": {"base": str(random_dir), "load_in_4bit": False},
        "data": {
            "sources": [{"lang": lang, "tasks": ["text"]} for lang in LANGS],
            "split": {"validation": 0.1, "test": 0.0, "seed": tiny.seed},
            "quality": {"max_tokens": None, "near_dup_threshold": None},
        },
        "lora": {"r": tiny.pretrain_rank, "alpha": tiny.pretrain_rank, "dropout": 0.0, "train_embeddings": True},
        "train": {
            "objective": "completion", "max_steps": tiny.pretrain_steps, "learning_rate": tiny.pretrain_learning_rate,
            "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1, "max_length": 256,
            "warmup_ratio": 0.05, "gradient_checkpointing": False, "eval_steps": tiny.pretrain_steps,
            "early_stopping_patience": None, "load_best_model_at_end": False, "save_total_limit": 1,
            "logging_steps": max(1, tiny.pretrain_steps // 10),
        },
        "export": {"enabled": False},
        "eval": {"tuned": "adapter"},
    })


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


def pretrain_stage(recipe: Recipe) -> Path:
    """The recipe's continued pretraining (its own prepare and completion training under output_dir/pretrain),
    and, for `hand_over: merged`, its merged weights; returns where SFT starts."""
    sub = recipe.pretrain_recipe()
    prepare_stage(sub)
    train_stage(sub)
    assert recipe.pretrain is not None and recipe.start_from is not None
    if recipe.pretrain.hand_over == "merged":
        from finetune.train import merge_adapter

        merge_adapter(sub.model.base, sub.adapter_dir, recipe.start_from, sub.model.revision)
    return recipe.start_from


def export_stage(recipe: Recipe) -> Path:
    """Merge the adapter and write the export bundle; returns its directory."""
    from finetune.export import export
    from finetune.train import with_start_base

    return export(with_start_base(recipe))


def eval_stage(recipe: Recipe, **options: Any) -> Path:
    """Evaluate base and tuned; `options` are `finetune.eval.evaluate`'s keyword arguments (endpoint, api_key,
    model, …), passed on as given. Returns the evaluation directory."""
    from finetune.eval import evaluate
    from finetune.train import with_start_base

    return evaluate(with_start_base(recipe), **options)


def _always(recipe: Recipe) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One step of a run: `run(recipe, **options)` does it; `in_run(recipe)` says whether `medtune run` does it."""

    name: str
    run: Callable[..., Any]
    in_run: Callable[[Recipe], bool] = _always


STAGES: tuple[Stage, ...] = (
    Stage("pretrain", pretrain_stage, in_run=lambda recipe: recipe.pretrain is not None),
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
    """pretrain (when the recipe has one) → prepare → train → export (when export.enabled) → eval; returns the
    evaluation directory."""
    result: Any = None
    for stage in STAGES:
        if stage.in_run(recipe):
            result = stage.run(recipe)
    return result
