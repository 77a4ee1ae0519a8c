"""`train.objective` → the trainer that runs it; every objective shares SFT's run (`_sft.train`): checkpoints and
resume, loggers, the final evaluation, the adapter and its provenance."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from transformers import Trainer, TrainerCallback

from finetune.recipe import Recipe
from finetune.train import _sft
from finetune.train._dpo import build_dpo_trainer
from finetune.train._grpo import build_grpo_trainer

BUILDERS: dict[str, Callable[[Recipe, Sequence[TrainerCallback]], Trainer]] = {
    "sft": _sft.build_trainer,
    "completion": _sft.build_trainer,
    "grpo": build_grpo_trainer,
    "dpo": build_dpo_trainer,
}


def train(recipe: Recipe, resume: bool = False, callbacks: Sequence[TrainerCallback] = ()) -> Path:
    """Train the recipe's adapter with its objective (continuing from the last checkpoint with `resume`); returns the
    adapter directory."""
    return _sft.train(recipe, resume, callbacks, build=BUILDERS[recipe.train.objective])
